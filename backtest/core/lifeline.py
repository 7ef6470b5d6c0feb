"""`die_with_parent`: a child process (sweep worker, supervised CLI) ends when its parent ends,
however the parent ends (SIGKILL included).

Without it, a killed `backtest sweep` left its spawned workers sleeping forever, holding the
caller's stdout open (a wrapper reading that output never saw EOF). Linux: the kernel sends
SIGKILL on the parent's death (prctl PR_SET_PDEATHSIG). Elsewhere a daemon thread waits for the
parent: on Windows on its process handle, on other POSIX systems by polling getppid(), which
changes when the orphan is adopted by init/launchd.
"""
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Call early in the child with the parent's pid (taken by the parent, so that a parent that
    died before this call is noticed too)."""
    if sys.platform.startswith("linux") and _pdeathsig():
        if os.getppid() != parent_pid:  # the parent died before the prctl call
            os._exit(1)
        return
    threading.Thread(target=_watch, args=(parent_pid,), name="die-with-parent", daemon=True).start()


def _pdeathsig() -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    if os.name == "nt":
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x00100000, False, parent_pid)  # SYNCHRONIZE
        if handle:
            kernel32.WaitForSingleObject(handle, 0xFFFFFFFF)  # INFINITE: until the parent exits
    else:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
    os._exit(1)
