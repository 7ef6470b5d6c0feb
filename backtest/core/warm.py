"""Cold start on two cores: a second process compiles the framework from the other end.

With empty caches the first run compiles every framework kernel while typing the strategy's
loop, one after another on one core, in the order the loop calls them. `start()` (called by
plugins/codegen.build_loop when the framework's numba cache has never been completed) launches
`python -m backtest.core.warm`, which compiles the same kernels into the shared cache in the
reverse order: the SDK's order entry and the loan, margin and liquidation kernels the loop
reaches last first, the order matching and records it reaches first last, and the OPTIONAL
steps this run's loop leaves out (the book, estimators and loans its codegen.LoopFeatures turn
off, bar matching without on_bar) only after all of those. The two processes meet in the
middle. A kernel compiles under a file lock (jit.py), so when both reach the same kernel, one
compiles it and the other loads it from the cache; the main process waits for a kernel the
helper holds at most jit.HELPER_WAIT_S, then compiles it itself, and never waits for the helper
as a whole: if it dies, the main process compiles what is left itself. The
signatures are the same in both processes: kernels widen their argument types (jit.py) and the
arguments here have the loop's types. The helper then compiles the rest of the SDK, and marks
the cache complete (`READY`) so that later processes never start it again. It compiles the
kernels' variant of the run's state (core/rare.py), and the cache is complete per variant.
CASCADE_PARALLEL_COMPILE: `auto` (the default) starts the helper only when a core is idle now
(cpu count minus the running threads, this one included, >= AUTO_IDLE_CORES): on a busy machine
the helper only took CPU from the main process (and Linux's autogroup scheduler gives a terminal
session one share however many processes it runs); `1` always (with >= 2 cores), `0` never.
`backtest cache warm` runs the same compile (`compile_framework`) in the foreground.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np
from numba import njit, typeof

from . import NUMBA_CACHE, NUMBA_TESTED, jit
from .account import (
    apply_constant_funding, apply_funding, free_margin, liq_price_of, mark_to_market, record_bars,
    record_equity, update_drawdown,
)
from .bars import aggregate_chunk
from .bars_match import check_bar_extreme, match_bar
from .book import apply_book_row, book_trade
from .execution import trade_through, update_estimators
from .guard import arm_guard, guard_holds
from .liquidation import liquidate, margin_breached
from .loans import check_loans, flush_loan_ring, loan_ltv, loan_open, loan_repay
from .matching import process_orders
from .orders import amend, bracket, cancel, cancel_all, close_position, submit
from .schema import (
    BAR_DTYPE, EQUITY_DTYPE, EVENT_COLUMNS, FILL_DTYPE, FUNDING_DTYPE, LIQUIDATION_DTYPE, LOAN_DTYPE,
)
from .state import new_state

READY = "framework-ready"  # a variant's mark: this name, "-lean" for the one without rare paths
VARIANTS = (True, False)  # the kernels' variants (core/rare.py): every path, the lean one


# Calls of each kernel the loop calls (core/loop.py), with the loop's argument types, in the
# reverse of the order in which compiling the loop reaches them (hooks and their order entry last).
def _order_entry(c, s, t, g, p, k, fills, equity_rows, bar_rows, funding_rows, liq_rows, loan_rows):
    submit(c, s, 0, 1, 1.0)
    cancel(c, g)
    amend(c, g, 1.0, 1.0, 1.0)


def _loans(c, s, t, g, p, k, fills, equity_rows, bar_rows, funding_rows, liq_rows, loan_rows):
    flush_loan_ring(c, loan_rows)
    check_loans(c, s, t, loan_rows, liq_rows)


def _margin(c, s, t, g, p, k, fills, equity_rows, bar_rows, funding_rows, liq_rows, loan_rows):
    arm_guard(c, s)
    if margin_breached(c, s, t):
        liquidate(c, s, t, g, fills, equity_rows, liq_rows)
    guard_holds(c.run, c.guard, c.mkt[s], c.pos[s], s)
    mark_to_market(c.run, c.inst[s], c.mkt[s], c.pos[s])
    update_drawdown(c)


def _funding(c, s, t, g, p, k, fills, equity_rows, bar_rows, funding_rows, liq_rows, loan_rows):
    apply_funding(c, s, t, p, funding_rows)


def _matching(c, s, t, g, p, k, fills, equity_rows, bar_rows, funding_rows, liq_rows, loan_rows):
    trade_through(c.mkt[s], p)
    process_orders(c, g, t, s, k, p, p, fills, equity_rows)
    apply_constant_funding(c, t, funding_rows)


def _book(c, s, t, g, p, k, fills, equity_rows, bar_rows, funding_rows, liq_rows, loan_rows):
    book_trade(c.book[s], p)
    apply_book_row(c.book[s], t, k, p, p, p, p)


def _estimators(c, s, t, g, p, k, fills, equity_rows, bar_rows, funding_rows, liq_rows, loan_rows):
    update_estimators(c.run, c.mkt[s], t, p, p)


def _bars(c, s, t, g, p, k, fills, equity_rows, bar_rows, funding_rows, liq_rows, loan_rows):
    match_bar(c, g, t, s, p, p, p, p, fills, equity_rows)
    check_bar_extreme(c, g, t, s, p, p, fills, equity_rows, liq_rows)


def _records(c, s, t, g, p, k, fills, equity_rows, bar_rows, funding_rows, liq_rows, loan_rows):
    record_bars(c, t, bar_rows)
    record_equity(c, t, equity_rows)


def _sdk(c, s, t, g, p, k, fills, equity_rows, bar_rows, funding_rows, liq_rows, loan_rows):
    """The bigger kernels behind the rest of the SDK (backtest/sdk.py), as hooks call them."""
    bracket(c, s, 1, p, p, p, p)
    cancel_all(c, s)
    close_position(c, s)
    free_margin(c)
    liq_price_of(c, s)
    loan_open(c, s, p, p)
    loan_repay(c, g, p)
    loan_ltv(c, g)


STEPS = (_order_entry, _loans, _margin, _funding, _matching, _book, _estimators, _bars, _records, _sdk)
# the steps a run's loop may leave out (codegen.LoopFeatures; `bars`: a strategy without on_bar)
OPTIONAL = {"loans": _loans, "book": _book, "estimators": _estimators, "bars": _bars}


def helper_steps(unused=()) -> tuple:
    """STEPS with those of the `unused` OPTIONAL names after every step this run's loop calls:
    the helper compiles what the run waits for first, and the rest only to complete the cache.
    Without the rare paths (`rare` unused) no loop calls the book's and the loans' steps."""
    skipped = (_book, _loans) if "rare" in unused else ()
    later = [OPTIONAL[name] for name in OPTIONAL if name in unused and OPTIONAL[name] not in skipped]
    first = [s for s in STEPS if s not in (*later, *skipped, _sdk)]
    return (*first, *later, _sdk)


def _args(rare: bool = True):
    c = new_state(1, rare=rare)
    rows = [np.zeros(1, dtype=d) for d in (FILL_DTYPE, EQUITY_DTYPE, BAR_DTYPE, FUNDING_DTYPE,
                                           LIQUIDATION_DTYPE, LOAN_DTYPE)]
    # the loop's types: symbol index int32 (the data's column), times and indexes int64
    return (c, np.int32(0), np.int64(0), np.int64(0), 1.0, np.int8(0), *rows)


def _mark(rare: bool) -> Path:
    return NUMBA_CACHE / (READY if rare else READY + "-lean")


def ready(rare: bool | None = None) -> bool:
    """Is the framework compiled in the cache: the variant `rare` (core/rare.py), or both (None)?"""
    return all(_mark(r).exists() for r in (VARIANTS if rare is None else (rare,)))


_started = False
_helper = None  # kept referenced while it runs (it is never waited for)
AUTO_IDLE_CORES = 0.5  # 2 cores: the helper when only this thread runs (8.9 s, not 14.4 s cold)
LOADAVG = "/proc/loadavg"  # Linux: its 4th field is "running threads/all threads"
LOAD_SAMPLES = 5  # the least of 5 reads ~4 ms apart: a shell or a short job caught once is no load


def wanted() -> bool:
    """CASCADE_PARALLEL_COMPILE: 0 never, 1 always (>= 2 cores), auto when a core is idle."""
    mode = os.environ.get("CASCADE_PARALLEL_COMPILE", "auto").strip().lower()
    cores = os.cpu_count() or 1
    if mode == "0" or cores < 2:
        return False
    if mode == "1":
        return True
    load = _load_now()
    return load is not None and cores - load >= AUTO_IDLE_CORES


def _load_now() -> float | None:
    """The threads running right now, this one included (Linux); elsewhere the 1-minute load
    average, or None. The average lags: right after a test run or another compile it still read
    1.5-2 on 2 idle cores, and the helper was not started (a cold start of 14.4 s, not 8.9 s)."""
    try:
        counts = []
        for k in range(LOAD_SAMPLES):
            if k:
                time.sleep(0.004)
            with open(LOADAVG) as f:
                counts.append(int(f.read().split()[3].split("/")[0]))
        return float(min(counts))
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this platform
        return None


def _helper_running() -> bool:
    return _helper is not None and _helper.poll() is None


def start(unused=()):
    """Launch the helper process on a cold cache, once per process; returns it (or None).
    `unused`: OPTIONAL steps the run's loop does not call (helper_steps)."""
    global _started, _helper
    if _started:
        return None
    if ready("rare" not in unused):  # before wanted(), which takes ~16 ms to sample the load
        _started = True
        return None
    if not wanted():
        return None
    _started = True
    # the same package as this process (which may have found it on a path the child cannot see)
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p))
    _helper = subprocess.Popen([sys.executable, "-m", "backtest.core.warm", ",".join(unused)], env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    jit.helper_running = _helper_running  # bounded waits for the helper's locks (jit.py)
    return _helper


def compile_steps(steps=STEPS, typed_only: bool = False, rare: bool = True) -> None:
    """Compile (or load from the cache) the kernels the steps call, in the steps' order.

    `typed_only` (`backtest cache warm`): type each step instead of compiling it. Typing a call
    compiles (or loads) the kernel called, for the caller's argument types, which is all a step
    is for; compiling the step also lowers it and links, optimises and assembles every kernel it
    calls into machine code nobody runs (28.1 -> 23.1 s for the whole framework). The helper
    does not: beside a cold run, a faster helper reached the kernels the run was compiling (those
    shared by order matching and liquidation) at the same time as the run, which then waited for
    them, and cold starts took 4 % longer (benchmarks/README.md)."""
    sig = tuple(typeof(a) for a in _args(rare))
    typed_only = typed_only and numba.__version__.startswith(NUMBA_TESTED)
    for step in steps:
        if typed_only:
            _type(step, sig)
        else:
            njit(step, no_cpython_wrapper=True).compile(sig)


def _type(step, sig) -> None:
    """numba's typing stage alone (its internal API, as verified on NUMBA_TESTED)."""
    from numba.core import compiler, typed_passes
    from numba.core.registry import cpu_target

    typing, target = cpu_target.typing_context, cpu_target.target_context
    typing.refresh()
    target.refresh()
    typed_passes.type_inference_stage(typing, target, compiler.run_frontend(step), sig, None)


def compile_python_called() -> None:
    """The kernels every run calls from Python, called as it calls them, on empty input."""
    ev = {k: np.zeros(0, dtype=d) for k, d in EVENT_COLUMNS}  # backtest/bars.py's call
    aggregate_chunk(ev["ts_ns"], ev["sym"], ev["kind"], ev["price"], ev["qty"], ev["bid"], ev["ask"],
                    ev["bid_qty"], False, np.zeros(0, np.int64), 1, *(np.zeros(1) for _ in range(4)))


def compile_framework(typed_only: bool = False, steps=None, rare: bool = True) -> None:
    """Compile every framework kernel of a variant (core/rare.py) into the cache and mark it
    complete (`READY`): what the helper does (in its `steps` order; by default those the
    variant's loops can call), and `backtest cache warm` in the foreground (`typed_only`:
    compile_steps)."""
    if steps is None:
        steps = helper_steps(() if rare else ("rare",))
    compile_steps(steps, typed_only=typed_only, rare=rare)
    compile_python_called()
    NUMBA_CACHE.mkdir(parents=True, exist_ok=True)
    _mark(rare).touch()


def main() -> None:
    try:
        os.nice(10)  # the main process comes first when the two compete for a core
    except (AttributeError, OSError):
        pass
    unused = sys.argv[1].split(",") if len(sys.argv) > 1 and sys.argv[1] else ()
    compile_framework(steps=helper_steps(unused), rare="rare" not in unused)


if __name__ == "__main__":
    main()
