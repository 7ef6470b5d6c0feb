"""Batched runs: many parameter sets of one strategy in one pass over the data.

The dataset is opened, read and merged once. Every parameter set has its own engine state
(core/state.py: account, positions, orders, ...) and its own strategy record; for each chunk the one
compiled loop runs over the chunk once per set, in turn. The loop and the per-chunk steps are
engine.run's, so each set's Result is bit-identical to running it alone (tests/test_batch.py):
results never depend on where chunks or output buffers end (tests/test_determinism.py).

What the sets share instead of repeating it N times:
- reading, decoding and merging the data (most of a run alone: the loop is a small part of it);
- compiling (or loading) the loop, and the checks and warnings of the run;
- the output buffers: one set per thread, drained into the set's own lists after every call;
- the open/high/low/volume of the bar rows (backtest/bars.py): they depend only on the chunk's
  trades and the row times, which are the sample times of the shared config, so one set computes
  them and the others copy them while their row keys (time, symbol) match; a set whose rows ever
  differ keeps its own BarFiller from then on (exact either way).

A set that fails (bad parameters, a hook that raises, a locked output folder) is reported as its
error and the others carry on; a failure every set would share (data, config, compiling) raises.

Threads: the loop is compiled `nogil`, so `threads` > 1 shares each chunk's sets among threads,
each taking the next set not yet run (with its own output buffers, which every set drains after
each call); the bar step then runs in set order.

Memory: one set costs its engine state (~1.5 MB with the default 4,096 order slots), its strategy record and its output rows
(equity and bar rows at each sample time, plus fills); `batch_size` caps a batch by a budget
(CASCADE_BATCH_MEMORY_MB, default 1024 MB per process) so that many sets never exhaust memory.
Apart from it: one data chunk, and one set of output buffers (~34 MB) per thread.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import CascadeError

HELPER_AHEAD = 3  # sets handed to the result helper at a time: one saving, one building, one waiting

# Per-process budget for the sets' own state and output rows (the shared data chunk is apart).
DEFAULT_BUDGET_MB = 1024


def set_bytes(ctx_bytes: int, state_bytes: int, samples: int, nsym: int) -> int:
    """Estimated memory of one set: its records plus an equity row and one bar row per symbol at
    each sample time (their dtypes are ~90 bytes), doubled for the tables built at the end."""
    return ctx_bytes + state_bytes + 2 * samples * 96 * (1 + nsym)


def batch_size(n_sets: int, per_set: int, budget_bytes: int | None = None) -> int:
    """How many sets one process runs in one pass: all of them, unless the budget says fewer."""
    if budget_bytes is None:
        budget_bytes = int(float(os.environ.get("CASCADE_BATCH_MEMORY_MB", DEFAULT_BUDGET_MB)) * 2**20)
    return max(1, min(n_sets, budget_bytes // max(per_set, 1)))


def estimate_set_bytes(cls, config, span_ns: int, nsym: int) -> int:
    """`set_bytes` for a strategy class and RunConfig over a time span of the data."""
    from .core.state import state_bytes

    iv = config.sample_interval_ns
    samples = span_ns // iv + 1 if iv > 0 else 1
    return set_bytes(state_bytes(nsym), cls.dtype.itemsize, int(samples), nsym)


def compile_loop(cls, features) -> None:
    """Compile the strategy's loop for these LoopFeatures (or load it from the cache) without
    running an event, as the first call of engine.run does, so that processes started next only
    load it."""
    import numba

    from . import engine as E
    from .core.state import new_state
    from .plugins.codegen import LoopFeatures, build_loop

    if numba.config.DISABLE_JIT:
        return  # nothing to compile
    features = LoopFeatures(*features)
    c, s = new_state(1, rare=features.rare), np.zeros(1, dtype=cls.dtype).view(np.recarray)
    _first_call(cls, build_loop(cls, features=features), c, s[0], E._Buffers.new(E.buffer_rows(c), True),
                features)


def _first_call(cls, loop, c, s, bufs, features):
    """engine.run's first call (engine.first_call): compiles (or loads from cache) without running
    an event; returns the loop to run."""
    from . import engine as E

    return E.first_call(cls, loop, c, s, bufs, features)


@dataclass
class _Set:
    """One parameter set's run: its records, its output lists (sharing the buffers), its time."""

    k: int
    params: dict
    out: Path | None
    s_arr: np.ndarray = None
    c: object = None
    s: object = None
    bufs: object = None
    bars: object = None
    synced: bool = True  # its bar rows have matched the leader's in every chunk so far
    own_s: float = 0.0  # seconds spent on this set alone
    error: CascadeError | None = None
    manifest: dict | None = None  # after the pass: its manifest (engine.run_manifest) and output
    rows: dict | None = None  # rows, until its Result is built
    here: bool = False  # the result helper failed on it: built in this process


def run_batch(strategy, data, params_list: list[dict | None], *, symbols=None, start=None, end=None,
              config=None, outs: list | None = None, progress=None, threads: int = 1) -> list:
    """Run every parameter set of `params_list` in one pass over `data`.

    Returns, in order, a Result (saved to `outs[k]` when given) or the CascadeError that set
    failed with. Errors that every set would share raise, as engine.run raises them. `threads`:
    the sets of each chunk are shared among this many threads (the compiled loop releases the
    GIL; each thread has its own output buffers); the results do not depend on it."""
    out = [None] * len(params_list)
    for k, r in iter_batch(strategy, data, params_list, symbols=symbols, start=start, end=end,
                           config=config, outs=outs, progress=progress, threads=threads):
        out[k] = r
    return out


def iter_batch(strategy, data, params_list: list[dict | None], *, symbols=None, start=None, end=None,
               config=None, outs: list | None = None, progress=None, threads: int = 1,
               manifests: bool = False) -> Iterator[tuple[int, object]]:
    """Like run_batch, yielding (k, Result or CascadeError) as each set's Result is built, so that
    a caller can keep one set's tables in memory at a time. `manifests`: yield each Result's
    manifest instead (its tables are in its run folder); the running command's result helper
    (batch_helper.py) then builds some of them in its own process."""
    with contextlib.ExitStack() as locks:
        yield from _iter_batch(strategy, data, params_list, symbols, start, end, config, outs,
                               progress, threads, locks, manifests)


def _iter_batch(strategy, data, params_list, symbols, start, end, config, outs, progress, threads, locks,
                manifests):
    import collections
    from concurrent.futures import ThreadPoolExecutor

    import numba

    from . import batch_helper
    from . import engine as E
    from .atomic import output_lock
    from .bars import BarFiller
    from .core.schema import RunStatus
    from .core.state import copy_state
    from .pack import check_quote_needs, loop_features, pack
    from .data.coverage import no_data_error
    from .errors import StrategyError
    from .plugins.codegen import build_loop, source_sha256
    from .result import frozen
    from .result_build import build_result

    # --- what every set shares: engine._run's checks, in its order -------------------------------
    cls, cfg, stream, start_ns, end_ns = E.open_run(strategy, data, symbols, start, end, config)
    jit = not numba.config.DISABLE_JIT
    syms = stream.symbols
    outs = list(outs) if outs is not None else [None] * len(params_list)
    sets = [_Set(k, p, Path(o) if o is not None else None) for k, (p, o) in enumerate(zip(params_list, outs))]
    for st in sets:
        try:
            st.params = cls.resolve_params(st.params)
        except CascadeError as e:
            st.error = e
    check_quote_needs(cfg, stream)
    candles = any(k == "bars" for k, _ in stream.files)
    if candles and "on_bar" not in cls.hooks():
        raise StrategyError(f"{cls.__name__} has no on_bar hook, but {data} holds candles (kind "
                            f"bars): add on_bar (bar matching is compiled only into strategies "
                            f"that have it; docs/strategies.md)")
    template = pack(cls, stream, cfg)  # the same state a run alone starts from
    notes = E._run_warnings(cls, cfg, stream, int(template.run.timer_interval_ns))

    rows = E.buffer_rows(template)
    shared = E._Buffers.new(rows, jit)  # one set of buffers, drained after every call
    for st in sets:
        if st.error is not None:
            continue
        try:
            if st.out is not None:
                locks.enter_context(output_lock(st.out))
            st.s_arr = cls.new_state(st.params, syms)
        except CascadeError as e:
            st.error = e
            continue
        st.bufs = E._Buffers(shared.fills, shared.equity, shared.bars, shared.funding, shared.liqs,
                             shared.loans)
        st.bars = BarFiller(len(syms), candles=candles)
        st.c = copy_state(template) if jit else E.python_state(copy_state(template))
        st.s = st.s_arr[0] if jit else E.PyMirror(st.s_arr[0])
    live = [st for st in sets if st.error is None]

    t0 = time.perf_counter()
    features = loop_features(cls, template)
    loop = build_loop(cls, features=features)
    if live:
        loop = _first_call(cls, loop, live[0].c, live[0].s, live[0].bufs, features)
    compile_s = time.perf_counter() - t0

    # --- one pass over the data ---------------------------------------------------------------
    def step(st: _Set, chunk: dict, events: int, first: bool) -> int:
        """Run one set over a chunk (engine._run's chunk step); returns where its bar rows start."""
        t = time.perf_counter()
        if first:
            E._align_first(st.c, int(chunk["ts_ns"][0]))
        st.c.clock.idx_base = events
        n_bars = len(st.bufs.out["bars"])
        i = 0
        try:
            while True:
                status, i = E._call(loop, chunk, i, st.c, st.s, st.bufs)
                if status == RunStatus.BUFFER_FULL:
                    st.bufs.drain(st.c)
                    continue
                break
        except Exception as e:  # an exception raised by this set's strategy hook
            st.error = E._hook_error(cls, e, st.c, chunk, syms)
            st.error.__cause__ = e
        else:
            st.bufs.drain(st.c)
            try:
                E.check_loans_allowed(cls, features, st.c)
            except CascadeError as e:
                st.error = e
        st.own_s += time.perf_counter() - t
        return n_bars

    def take_steps(own, todo: list[_Set], chunk: dict, events: int, first: bool) -> dict[int, int]:
        """Run sets taken from `todo` over the chunk, in this thread's output buffers, until none
        is left; {id(set): where its bar rows of the chunk start}."""
        starts = {}
        while True:
            try:
                st = todo.pop()  # atomic: the threads share the list
            except IndexError:
                return starts
            b = st.bufs  # every set drains after each call, so any thread's buffers will do
            b.fills, b.equity, b.bars, b.funding, b.liqs, b.loans = own
            starts[id(st)] = step(st, chunk, events, first)

    threads = max(1, min(threads, len(live))) if jit else 1  # the loop releases the GIL
    # each thread its own output buffers; the first thread's are the shared ones
    owns = [(shared.fills, shared.equity, shared.bars, shared.funding, shared.liqs, shared.loans)]
    for _ in range(threads - 1):
        b = E._Buffers.new(rows, jit)
        owns.append((b.fills, b.equity, b.bars, b.funding, b.liqs, b.loans))
    pool = None
    if threads > 1:
        pool = locks.enter_context(ThreadPoolExecutor(threads - 1, thread_name_prefix="cascade-batch"))

    t1 = time.perf_counter()
    events, last_ts = 0, None
    for chunk in stream:
        n = len(chunk["ts_ns"])
        if not live:
            break
        if n == 0:
            continue
        first = last_ts is None
        # the threads take the chunk's sets one at a time (sets differ in cost: fixed shares
        # left one thread idle at the end of each chunk); the results do not depend on who ran one
        todo = live[::-1]  # popped from the end: started in set order
        futures = [pool.submit(take_steps, own, todo, chunk, events, first) for own in owns[1:]] if pool else []
        starts = take_steps(owns[0], todo, chunk, events, first)
        for f in futures:
            starts.update(f.result())
        leader = None  # the first synced set of this chunk computes the bar aggregates
        for st in live:  # in set order, whichever thread ran it
            if st.error is not None:
                continue
            t = time.perf_counter()
            rows = st.bufs.out["bars"][starts[id(st)]:]
            if st.synced and leader is not None and _same_keys(leader[1], rows):
                _copy_ohlv(leader[1], rows)
                st.bars.carry = leader[0].bars.carry
            else:
                if st.synced and leader is not None:
                    st.synced = False  # its bar rows differ: its own aggregates from now on
                st.bars.chunk(chunk, rows)
                if st.synced and leader is None:
                    leader = (st, rows)
            st.own_s += time.perf_counter() - t
        live = [st for st in live if st.error is None]
        events += n
        last_ts = int(chunk["ts_ns"][-1])
        if progress is not None:
            progress(events, "events")
    pass_s = time.perf_counter() - t1
    if events == 0 and live:  # a gap in the data: never a "successful" run of nothing
        raise no_data_error(stream.root, start_ns, end_ns)

    # --- each set's Result ----------------------------------------------------------------------
    # A set's run folder is written by a thread while the next set's Result is built (writing
    # Parquet releases the GIL; building holds it); a set is yielded once its folder is complete.
    # With a result helper (batch_helper.py; manifests only), the helper builds sets taken from the
    # back while this process builds from the front.
    saver = locks.enter_context(ThreadPoolExecutor(1, thread_name_prefix="cascade-save"))
    shared_s = (pass_s - sum(st.own_s for st in sets)) / max(len(sets), 1)
    source = source_sha256(cls)  # the strategy's files and the data, hashed once for every set
    fingerprint = stream.fingerprint()
    helper = batch_helper.current() if manifests else None
    held: dict[int, _Set] = {}  # the sets the helper is building
    todo = collections.deque(sets)  # the sets to build: here from the front, the helper's from the back

    def drop_helper() -> None:
        """Stop the helper (ended, broken or slow); the sets it held are built here."""
        nonlocal helper
        if helper is not None:
            helper.stop([st.out for st in held.values()])
            helper = None
        todo.extend(held.pop(k) for k in sorted(held))

    # an interrupted batch: the helper stops before the folders' locks are released
    locks.callback(lambda: held and drop_helper())

    def prepare(st: _Set) -> None:
        """End the set's run (engine._finalize) and read its manifest from its compiled state."""
        t2 = time.perf_counter()
        E._finalize(st.c, st.bufs, st.bars, last_ts)
        if not jit:
            E.sync_state(st.c)
            st.s.sync()
        # run_s: the set's own loop time plus its share of the pass (reading, merging)
        run_s = st.own_s + time.perf_counter() - t2 + shared_s
        st.manifest = E.run_manifest(cls, st.params, cfg, stream, st.c, st.s_arr, syms, compile_s,
                                     run_s, events, jit, notes, source, fingerprint)
        st.rows = st.bufs.out
        st.s_arr = st.c = st.s = st.bufs = st.bars = None  # free it before the next

    def build_here(st: _Set):
        try:
            if st.manifest is None:
                prepare(st)
            return build_result(st.rows, st.manifest)
        except CascadeError as e:
            return e
        finally:
            st.rows = st.manifest = None

    def settle(got):
        """The helper's reply for one set: yields its outcome, or puts it back to be built here."""
        k, status, value = got
        st = held.pop(k)
        if status == "failed":  # not a CascadeError: built here, where it raises
            st.here = True
            todo.appendleft(st)
            return
        st.rows = st.manifest = None
        yield k, frozen(value) if status == "ok" else CascadeError(value)

    def hand_over():
        """Take the helper's replies, and keep it HELPER_AHEAD sets ahead with sets from the back
        of `todo` (yields their outcomes, and those of failed sets met there)."""
        while helper is not None and (got := helper.reply(0)) is not None:
            yield from settle(got)
        while (helper is not None and len(held) < HELPER_AHEAD and todo and todo[-1].out is not None
               and not todo[-1].here):
            st = todo.pop()
            if st.error is not None:
                yield st.k, st.error
                continue
            try:
                prepare(st)
            except CascadeError as e:
                yield st.k, e
                continue
            if not helper.send(st.k, st.rows, st.manifest, st.out):
                todo.append(st)
                drop_helper()
                break
            held[st.k] = st

    saving = None  # (k, Result, the future of its save) of the set before
    while True:
        yield from hand_over()
        if not todo:
            if not held:
                break
            # the rest is the helper's
            got = helper.reply(batch_helper.REPLY_WAIT_S) if helper is not None else None
            if got is not None:
                yield from settle(got)
            else:  # the helper ended, or keeps us waiting
                drop_helper()
            continue
        st = todo.popleft()
        if st.error is not None:
            if saving is not None:
                yield _saved(*saving, manifests)
                saving = None
            yield st.k, st.error
            continue
        res = build_here(st)
        if saving is not None:
            yield _saved(*saving, manifests)
        save = None if isinstance(res, CascadeError) or st.out is None else saver.submit(res.save, st.out)
        saving = (st.k, res, save)
    if saving is not None:
        yield _saved(*saving, manifests)


def _saved(k: int, res, save, manifest: bool = False) -> tuple[int, object]:
    """(k, Result or its manifest) once its folder is written; (k, the CascadeError) if building
    or writing it failed so."""
    try:
        if save is not None:
            save.result()
    except CascadeError as e:
        return k, e
    return k, res.manifest if manifest and not isinstance(res, CascadeError) else res


def _same_keys(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    """Do two sets' bar rows of a chunk have the same (time, symbol) sequence?"""
    na, nb = sum(len(r) for r in a), sum(len(r) for r in b)
    if na != nb:
        return False
    if na == 0:
        return True
    for col in ("ts_ns", "sym"):
        if not np.array_equal(np.concatenate([r[col] for r in a]), np.concatenate([r[col] for r in b])):
            return False
    return True


def _copy_ohlv(src: list[np.ndarray], dst: list[np.ndarray]) -> None:
    """Copy the filled open/high/low/volume of `src` rows into `dst` rows (same keys, possibly
    drained in different pieces)."""
    if not dst:
        return
    cols = {c: np.concatenate([r[c] for r in src]) for c in ("open", "high", "low", "volume")}
    at = 0
    for r in dst:
        m = len(r)
        for c, v in cols.items():
            r[c] = v[at:at + m]
        at += m
