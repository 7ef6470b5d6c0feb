"""The `backtest` command: `python -m backtest`, and the script pyproject.toml installs.

Ctrl-C is taken before the CLI loads (click and the commands take a few hundred ms): it ends the
command at once with one line, exit 130, and backtest.cli.main then takes it over. Taking it in the
CLI module itself left a gap as its import returned, when Python's handler raised inside the import
system. The supervised child starts with SIGINT ignored (backtest/supervisor.py) and is taken over
the same way.
"""
import signal

from . import supervisor  # stdlib only


def main():
    if signal.getsignal(signal.SIGINT) in (signal.default_int_handler, signal.SIG_IGN):
        signal.signal(signal.SIGINT, supervisor.exit_at_once)
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
