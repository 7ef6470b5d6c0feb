"""The `backtest` command: a thin click shell over the library.

Domain errors (CascadeError) become one line on stderr and a non-zero exit; tracebacks only with
--debug. Ctrl-C ends every command with one line and exit code 130. `run`, `sweep` and
`walk-forward` run in a child process watched by the command (backtest/supervisor.py), so that a
native crash of compiled strategy code is reported too. The process's entry point is
backtest/__main__.py (it takes Ctrl-C while this module loads). Heavy modules (numba, polars) are
imported inside the commands so that `--help` is quick and `--no-jit`/`--boundscheck` can set
numba's environment before numba is first imported.
"""
from __future__ import annotations

import os
import signal
import sys
import threading

import click

from .. import supervisor
from ..errors import CascadeError

MAX_MESSAGE = 600  # characters of an error message (numba's can hold a whole module's IR)


class CascadeGroup(click.Group):
    """Turns CascadeError into a one-line message and Ctrl-C into exit 130; `--debug` anywhere
    keeps the traceback."""

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except KeyboardInterrupt:  # while the arguments are parsed: click would say "Aborted!", exit 1
            exit_interrupted()

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CascadeError as e:
            if "--debug" in sys.argv:
                raise
            click.echo(f"error: {_short(str(e))}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:  # before click's own handler ("Aborted!", exit 1)
            exit_interrupted()


def _short(text: str) -> str:
    """At most one line of MAX_MESSAGE characters."""
    text = " ".join(text.split())
    if len(text) <= MAX_MESSAGE:
        return text
    return f"{text[:MAX_MESSAGE]}... ({len(text) - MAX_MESSAGE:,} more characters; --debug shows all)"


def exit_interrupted(line: str = "interrupted"):
    """The end of a command that took a Ctrl-C: one line, exit 130."""
    signal.signal(signal.SIGINT, supervisor.swallow)  # nothing interrupts the exit itself
    supervisor.note_interrupted()
    click.echo(line, err=True)
    sys.exit(supervisor.EXIT_INTERRUPTED)


# Where a KeyboardInterrupt must not be raised, so the signal is sent again a moment later:
# - Python code that native code calls back through ctypes while numba compiles or loads from its
#   cache (llvmlite's object-cache hooks): the exception is printed as "Exception ignored" and
#   dropped, so the Ctrl-C would be lost;
# - the import system's own code: it takes the global import lock before its `try` (e.g. the weakref
#   callback of `_get_module_lock`), so an exception raised between the two leaves the lock held and
#   the next import deadlocks (seen in CI: a run hung after a Ctrl-C in its first 0.1 s).
FOREIGN_CALLBACKS = (os.sep + os.path.join("llvmlite", "binding") + os.sep,)
IMPORT_SYSTEM = ("importlib._bootstrap", "importlib._bootstrap_external")
REDELIVER_S = 0.02
_redelivery = threading.Event()  # set while a redelivery is on its way


def _unsafe_to_raise(frame) -> bool:
    """`frame` is where the signal landed (the innermost frame)."""
    if frame is not None and frame.f_globals.get("__name__") in IMPORT_SYSTEM:
        return True
    while frame is not None:
        if any(part in frame.f_code.co_filename for part in FOREIGN_CALLBACKS):
            return True
        frame = frame.f_back
    return False


def _redeliver():
    _redelivery.clear()
    os.kill(os.getpid(), signal.SIGINT)


def _on_sigint(signum, frame):
    """One KeyboardInterrupt per Ctrl-C: the terminal and a supervising parent may both deliver
    it, and a second one would cut short the cleanup that the first one started. Where raising is
    unsafe the signal is sent again a moment later; a signal landing while that redelivery is on its
    way is the same Ctrl-C (and raising it would land in the unsafe frame all the same)."""
    if _redelivery.is_set():
        return
    if _unsafe_to_raise(frame):
        _redelivery.set()
        timer = threading.Timer(REDELIVER_S, _redeliver)
        timer.daemon = True
        timer.start()
        return
    signal.signal(signal.SIGINT, supervisor.swallow)
    raise KeyboardInterrupt


def ignore_interrupts():
    """From here on Ctrl-C no longer stops the command: its output is being published (the
    `before_commit` of atomic.atomic_dir) and what is left only reports it. Exit 130 then always
    means that nothing was published, and a late Ctrl-C leaves the saved output and exit 0."""
    if _in_main_thread() and signal.getsignal(signal.SIGINT) is _on_sigint:
        signal.signal(signal.SIGINT, supervisor.swallow)


def take_interrupts():
    """Undo ignore_interrupts (a further step the user may want to stop, e.g. drawing a report)."""
    if _in_main_thread() and signal.getsignal(signal.SIGINT) is supervisor.swallow:
        signal.signal(signal.SIGINT, _on_sigint)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


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
    for name in ("data", "run", "cache", "report", "stress"):
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            continue
        module.register(cli)


_register()


def main(argv=None):
    """The `backtest` command (argv None: the process's own arguments, and this is its end)."""
    entry = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--no-jit" in argv:
        os.environ["NUMBA_DISABLE_JIT"] = "1"  # must happen before numba is imported
    if "--boundscheck" in argv:
        os.environ["NUMBA_BOUNDSCHECK"] = "1"  # every function this process compiles is checked
    main_thread = _in_main_thread()
    previous = signal.getsignal(signal.SIGINT) if main_thread else None
    if supervisor.wanted(argv):
        code = supervisor.supervise(argv)  # leaves SIGINT swallowed: the child's outcome stands
        if main_thread:  # as at the end of a command below
            signal.signal(signal.SIGINT, signal.SIG_IGN if entry else previous)
        sys.exit(code)
    # also when started with SIGINT ignored (a background job of a shell script): Ctrl-C and
    # `kill -INT` stop every command
    if previous in (signal.default_int_handler, signal.SIG_IGN, supervisor.exit_at_once):
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        watcher = os.environ.pop(supervisor.SUPERVISOR, None)  # not inherited any further
        if watcher:
            from ..core.lifeline import die_with_parent

            die_with_parent(int(watcher))
        cli.main(args=argv, prog_name="backtest")
    except KeyboardInterrupt:  # outside a command (parsing), or in a command's own error handling
        exit_interrupted()
    finally:
        if main_thread:  # the process's exit (atexit, numba's cleanup) runs to its end: SIG_IGN,
            # since Python puts back the default handler in place of its own ones as it ends
            signal.signal(signal.SIGINT, signal.SIG_IGN if entry else previous)
