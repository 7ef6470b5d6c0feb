"""Cold start on two cores: a second process compiles part of the framework into the cache.

With empty caches the first run compiles every framework kernel while typing the strategy's
loop, one after another on one core. `start()` (called by plugins/codegen.build_loop when the
framework's numba cache has never been completed) launches `python -m backtest.core.warm`, which
compiles big kernels the loop reaches last (order entry, margin checks, liquidation) into the
shared cache while the main process works through the order kernels; when the main process gets
to them, numba loads them from the cache instead of compiling. The signatures are the same in
both processes: kernels widen their argument types (jit.py) and the arguments here have the
loop's types. Nothing waits for the helper: if it is late, the main process compiles the kernel
itself (numba writes cache files atomically, so both can), and the result is the same. The
helper marks the cache complete (`READY`) so that later processes never start it again.
Set CASCADE_PARALLEL_COMPILE=0 to turn it off.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from numba import njit, typeof

from . import NUMBA_CACHE
from .guard import arm_guard
from .liquidation import liquidate, margin_breached
from .orders import amend, cancel, submit
from .schema import EQUITY_DTYPE, FILL_DTYPE, LIQUIDATION_DTYPE, new_context

READY = "framework-ready"


def _late_kernels(c, s, t, g, fills, equity_rows, liq_rows):
    """Calls, with the loop's argument types, of big kernels the loop reaches late: the SDK's
    order entry, then the margin checks and liquidation. (Traced on the reference strategy: the
    main process reaches liquidation 8-11 s and the hooks 10-14 s into a cold compile; the
    helper needs about 9 s for these. The bar and equity records come first in the loop, so
    they stay with the main process.)"""
    submit(c, s, 0, 1, 1.0)
    cancel(c, g)
    amend(c, g, 1.0, 1.0, 1.0)
    if margin_breached(c, s, t):
        liquidate(c, s, t, g, fills, equity_rows, liq_rows)
    arm_guard(c, s)


def _args():
    c = new_context()[0]
    rows = [np.zeros(1, dtype=d) for d in (FILL_DTYPE, EQUITY_DTYPE, LIQUIDATION_DTYPE)]
    return (c, np.int32(0), np.int64(0), np.int64(0), *rows)


def ready() -> bool:
    return (NUMBA_CACHE / READY).exists()


_started = False
_helper = None  # kept referenced while it runs (it is never waited for)


def start():
    """Launch the helper process on a cold cache, once per process; returns it (or None)."""
    global _started, _helper
    if _started or os.environ.get("CASCADE_PARALLEL_COMPILE", "1") == "0" or (os.cpu_count() or 1) < 2:
        return None
    _started = True
    if ready():
        return None
    # the same package as this process (which may have found it on a path the child cannot see)
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p))
    _helper = subprocess.Popen([sys.executable, "-m", "backtest.core.warm"], env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    return _helper


def main() -> None:
    njit(_late_kernels, no_cpython_wrapper=True).compile(tuple(typeof(a) for a in _args()))
    NUMBA_CACHE.mkdir(parents=True, exist_ok=True)
    (NUMBA_CACHE / READY).touch()


if __name__ == "__main__":
    main()
