"""The `backtest run | sweep | walk-forward` commands run in a child process watched by this one.

Compiled strategy code has no safety net: an out-of-bounds write in a hook can kill the process
with SIGSEGV, and a dying process can print nothing. So the command the user typed starts itself
again as a child (same arguments, same terminal) and waits for it; when the child is killed by a
signal, this process says so in one line, naming the strategy (which the child writes to a small
note file when it compiles the loop, backtest/plugins/codegen.py) and how to find the fault.

Signals: Ctrl-C in a terminal reaches both processes (one process group); a signal sent to this
process alone (`kill`, a wrapper's Popen.send_signal) is passed on to the child, which answers one
interrupt per Ctrl-C (backtest/cli/__init__.py). A second Ctrl-C here kills the child at once.
The child dies with this process (core/lifeline.py), so nothing outlives a SIGKILL of the command.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

SUPERVISOR = "CASCADE_SUPERVISOR"  # in the child: the supervising process's pid
NOTE = "CASCADE_CRASH_NOTE"  # in the child: file to write the running strategy's name to
TOOK_INTERRUPT = "(interrupted)"  # a line of the note: the child took a SIGINT and said so
COMMANDS = ("run", "sweep", "walk-forward")
EXIT_INTERRUPTED = 130
_CRASHES = {"SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT", "SIGSYS", "SIGTRAP"}
_WINDOWS_CRASHES = {0xC0000005: "access violation", 0xC000001D: "illegal instruction",
                    0xC00000FD: "stack overflow", 0xC0000409: "stack buffer overrun"}


def wanted(argv: list[str]) -> bool:
    """Supervise the commands that run compiled strategies (not --help, not other commands)."""
    if os.environ.get(SUPERVISOR) or os.environ.get("CASCADE_SUPERVISE", "1") == "0":
        return False
    command = next((a for a in argv if not a.startswith("-")), None)
    return command in COMMANDS and not {"-h", "--help"} & set(argv)


def note_strategy(text: str) -> None:
    """In a supervised child: the strategy whose compiled code now runs (for the crash line)."""
    _write_note(text + "\n", "w")


def note_interrupted() -> None:
    """In a supervised child: it took a SIGINT and has said "interrupted"; the supervisor stops
    sending it again and does not say it twice, even if the child then dies of a late one."""
    _write_note(TOOK_INTERRUPT + "\n", "a")


def _write_note(text: str, mode: str) -> None:
    path = os.environ.get(NOTE)
    if path:
        try:
            with open(path, mode) as f:
                f.write(text)
        except OSError:
            pass


def supervise(argv: list[str]) -> int:
    """Run `backtest ARGV` in a child; returns the exit code for this process."""
    fd, note = tempfile.mkstemp(prefix="cascade-run-", suffix=".txt")
    os.close(fd)
    # the same package as this process (which may have found it on a path the child cannot see)
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, **{SUPERVISOR: str(os.getpid()), NOTE: note, "PYTHONPATH": os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH", "")) if p)})
    forwarded = {"SIGINT": 0}
    child = None

    def forward(signum, frame):
        name = signal.Signals(signum).name
        if name == "SIGINT":
            forwarded["SIGINT"] += 1
        if child is None:  # not started yet: a SIGINT is passed on once it is
            return
        if forwarded["SIGINT"] > 1:  # a second Ctrl-C: stop now
            child.kill()
            return
        try:
            child.send_signal(signum)
        except (OSError, ValueError):  # gone already; or a signal Windows cannot send (its console
            pass                        # delivers Ctrl-C to every process attached to it)

    names = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGBREAK")
    old = {}
    for name in names:
        if hasattr(signal, name):
            old[name] = signal.signal(getattr(signal, name), forward)
    try:
        # The child starts with SIGINT ignored: an interrupt during its interpreter's start-up
        # would end it with a traceback (or "Fatal Python error"). Its entry point takes SIGINT
        # over first thing (backtest/__main__.py); until the child exits, an interrupt is sent
        # again every half second, which the child takes once (backtest/cli/__init__.py).
        child = subprocess.Popen([sys.executable, "-m", "backtest", *argv], env=env,
                                 preexec_fn=_ignore_sigint if os.name == "posix" else None)
        while True:
            if forwarded["SIGINT"] and TOOK_INTERRUPT not in _read(note):
                child.send_signal(signal.SIGINT)
            try:
                code = child.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                continue
        lines = _read(note).splitlines()
        strategy = next((ln for ln in lines if ln != TOOK_INTERRUPT), "")
    finally:
        # the outcome is the child's: a SIGINT from now on is too late to change it (restoring
        # Python's default handler let one that landed as this process exited end it with -2)
        for name, handler in old.items():
            signal.signal(getattr(signal, name), swallow if name == "SIGINT" else handler)
        try:
            os.unlink(note)
        except OSError:
            pass
    return _outcome(code, strategy, interrupted=forwarded["SIGINT"] > 0, said=TOOK_INTERRUPT in lines)


def exit_at_once(signum, frame):
    """SIGINT while the command loads (backtest/__main__.py): nothing has started, end now."""
    signal.signal(signal.SIGINT, swallow)  # a second delivery must not print twice
    os.write(2, b"interrupted\n")
    os._exit(EXIT_INTERRUPTED)


def swallow(signum, frame):
    """A Python handler that does nothing, where SIG_IGN is meant. A signal that arrives while
    the handler is being swapped is then run by Python, whereas one that finds SIG_IGN installed
    raises "OSError: Signal 2 ignored due to race condition" at whatever line runs next (a
    terminal's Ctrl-C and the supervisor's forwarded one often arrive together)."""


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _outcome(code: int, strategy: str, interrupted: bool, said: bool = False) -> int:
    """The exit code for this process, saying in one line how the child ended unless it has
    said so itself (`said`: it took an interrupt and reported it)."""
    who = f"strategy {strategy}" if strategy else "the command"
    if os.name == "nt" and (code & 0xFFFFFFFF) in _WINDOWS_CRASHES:  # an NTSTATUS, not a signal
        _say(_crash_line(who, _WINDOWS_CRASHES[code & 0xFFFFFFFF]))
        return 1
    if code >= 0:
        return code
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    if name == "SIGINT" or (interrupted and name == "SIGKILL"):
        if not said:
            _say("interrupted")
        return EXIT_INTERRUPTED
    if name in _CRASHES:
        _say(_crash_line(who, name))
        return 1
    if name in ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGBREAK") and hasattr(signal, name):
        # passed on from this process (or sent to the child alone): end the same way
        signal.signal(getattr(signal, name), signal.SIG_DFL)
        os.kill(os.getpid(), getattr(signal, name))
    _say(f"error: {who} was killed by {name}"
         + (" (the system may have run out of memory)" if name == "SIGKILL" else ""))
    return 128 + (-code)


def _crash_line(who: str, what: str) -> str:
    return (f"error: {who} crashed the process ({what}, a fault in compiled code such as an "
            "out-of-bounds index in a hook); rerun with --boundscheck to find the bad index, or "
            "--no-jit to debug it as plain Python")


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
