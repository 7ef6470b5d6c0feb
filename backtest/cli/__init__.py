"""The `backtest` command: a thin click shell over the library.

Domain errors (CascadeError) become one line on stderr and a non-zero exit; tracebacks only with
--debug. Heavy modules (numba, polars) are imported inside the commands so that `--help` is quick
and `--no-jit` can set NUMBA_DISABLE_JIT before numba is first imported.
"""
from __future__ import annotations

import os
import sys

import click

from ..errors import CascadeError


class CascadeGroup(click.Group):
    """Turns CascadeError into a one-line message; `--debug` anywhere keeps the traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CascadeError as e:
            if "--debug" in sys.argv:
                raise
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)


@click.group(cls=CascadeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cascade-backtest")
def cli():
    """Cascade: event-driven backtests of leveraged crypto strategies on Parquet tick data.

    \b
    Quick start:
      backtest data generate --scenario feb-2026-crash --out data/generated/feb-2026-crash
      backtest run reference --data data/generated/feb-2026-crash --out runs/ref --report
    """


def _register():
    import importlib

    # Each module defines register(cli); modules are added as their issues land.
    for name in ("data", "run", "report", "stress"):
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            continue
        module.register(cli)


_register()


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--no-jit" in argv:
        os.environ["NUMBA_DISABLE_JIT"] = "1"  # must happen before numba is imported
    cli.main(args=argv, prog_name="backtest")
