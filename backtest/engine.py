"""Drive a run: open the data, pack the state (pack.py), compile the loop, stream chunks, collect records.

The kernel never raises for expected conditions; it returns BUFFER_FULL with the index to resume
at, and this driver drains the output buffers and calls it again. The same resumption carries the
state across data chunks, so chunking never changes a result.
"""
from __future__ import annotations

import hashlib
import json
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numba.core.errors
import numpy as np
import polars as pl

from . import __version__
from .bars import BarFiller
from .config import RunConfig, parse_time_ns
from .core.schema import (
    BAR_DTYPE, EQUITY_DTYPE, EVENT_COLUMNS, FILL_DTYPE, FUNDING_DTYPE, LIQUIDATION_DTYPE, LOAN_DTYPE,
    ORDER_DTYPE, InstrumentType, OrderStatus, Reason, RunStatus,
)
from .core.state import ACCOUNT_DTYPE, SLOT_TO_DONE, State
from .data.coverage import check_time_range, no_data_error
from .data.reader import open_dataset
from .errors import CascadeError, StrategyError
from .plugins.codegen import LoopFeatures, build_loop, names_in_sources, source_sha256
from .pack import check_quote_needs, loop_features, pack
from .plugins.resolve import resolve_strategy
from .result import Result
from .result_build import build_result, jsonable
from .strategy import Strategy

BUFFER_ROWS = 1 << 16


class PyMirror:
    """Plain-object stand-in for a record in pure-Python mode (50x faster than np.record access).

    Array fields stay views of the record; scalars are copied and written back by `sync()`.
    """

    def __init__(self, rec):
        d = self.__dict__
        d["_rec"] = rec
        for n in rec.dtype.names:
            v = rec[n]
            d[n] = v if isinstance(v, np.ndarray) else v.item()

    def sync(self):
        rec = self.__dict__["_rec"]
        for n in rec.dtype.names:
            v = self.__dict__[n]
            if not isinstance(v, np.ndarray):
                rec[n] = v


@dataclass
class _Buffers:
    fills: np.ndarray
    equity: np.ndarray
    bars: np.ndarray
    funding: np.ndarray
    liqs: np.ndarray
    loans: np.ndarray
    out: dict = field(default_factory=lambda: {k: [] for k in ("fills", "equity", "bars", "funding",
                                                               "liquidations", "orders", "loans")})

    @classmethod
    def new(cls, rows: int, jit: bool):
        def mk(dt):
            a = np.zeros(rows, dtype=dt)
            return a if jit else a.view(np.recarray)

        return cls(mk(FILL_DTYPE), mk(EQUITY_DTYPE), mk(BAR_DTYPE), mk(FUNDING_DTYPE),
                   mk(LIQUIDATION_DTYPE), mk(LOAN_DTYPE))

    def drain(self, c: State) -> None:
        """Move the rows the kernel wrote into `out` and reset its counters. A batch drains every
        set after every chunk, so the counters are read through one int64 view of the account
        record (a record's attribute costs ~3 us; the six of them were most of a drain)."""
        a = c.acct
        counts = _row_counters(a)
        ns = counts.tolist() if counts is not None else [getattr(a, n) for n in _ROW_COUNTERS]
        for name, buf, n in zip(_ROW_TABLES, (self.fills, self.equity, self.bars, self.funding, self.liqs,
                                              self.loans), ns):
            if n:
                self.out[name].append(np.array(buf[:n], dtype=buf.dtype).view(np.ndarray))
        if any(ns):
            if counts is not None:
                counts[:] = 0
            else:
                for n in _ROW_COUNTERS:
                    setattr(a, n, 0)
        n = a.n_done
        if n:
            self.out["orders"].append(np.array(c.done[:n], dtype=ORDER_DTYPE).view(np.ndarray))
            a.n_done = 0


# the output tables and the account's counters of their rows, in the account's field order
_ROW_TABLES = ("fills", "equity", "bars", "funding", "liquidations", "loans")
_ROW_COUNTERS = ("n_fill_rows", "n_equity_rows", "n_bar_rows", "n_funding_rows", "n_liq_rows", "n_loan_rows")


def _counters_at(dtype: np.dtype) -> int:
    """Byte offset of the row counters in an account record; they must be consecutive int64s."""
    at = dtype.fields[_ROW_COUNTERS[0]][1]
    if not all(dtype.fields[n][0] == np.int64 and dtype.fields[n][1] == at + 8 * k
               for k, n in enumerate(_ROW_COUNTERS)):
        raise TypeError(f"ACCOUNT_DTYPE: {', '.join(_ROW_COUNTERS)} must be consecutive int64 fields "
                        f"(engine._Buffers.drain reads them as one array)")
    return at


_COUNTERS_AT = _counters_at(ACCOUNT_DTYPE)


def _row_counters(acct) -> np.ndarray | None:
    """The row counters of an account record as one writeable int64 array over its memory; None
    for a PyMirror (the --no-jit stand-in) or a record that is not a row of an array."""
    base = getattr(acct, "base", None)
    if not isinstance(acct, np.record) or not isinstance(base, np.ndarray):
        return None
    row_at = np.frombuffer(acct, np.uint8).ctypes.data - base.ctypes.data  # the row's place in base
    return np.ndarray(len(_ROW_COUNTERS), np.int64, buffer=base, offset=row_at + _COUNTERS_AT)


def buffer_rows(c: State) -> int:
    """Output buffer rows: BUFFER_ROWS, or more when the run's capacities need a larger reserve
    (core/loop.py keeps one event's worst case free in each buffer)."""
    return max(BUFFER_ROWS, 4 * (len(c.orders) + len(c.mkt) + 3 * len(c.loans) + len(c.loan_ring) + 8))


def python_state(c: State) -> State:
    """For --no-jit: the one-row parts as PyMirrors (plain attributes, written back by sync_state)."""
    return c._replace(run=PyMirror(c.run), clock=PyMirror(c.clock), acct=PyMirror(c.acct),
                      guard=PyMirror(c.guard))


def sync_state(c: State) -> None:
    for part in (c.run, c.clock, c.acct, c.guard):
        part.sync()


def replayed_kinds(cls, cfg: RunConfig) -> tuple[str, ...] | None:
    """The kinds a run replays: all (None), or all but the L2 book when nothing uses it. The book
    is several rows per snapshot (the crash sample: 2.7 M of its 4 M rows), so replaying it for a
    run that never reads it would double the run's time. It is used by the l2_depth model (any
    symbol) and by strategies that read it (`book_level`, `book_depth` in the source of the
    strategy's file or the user modules it uses, codegen.dependency_files; a source that cannot be
    read counts as using it). `execution.replay_book` = on / off decides instead (e.g. to compare
    models on the same event indices)."""
    from .data.layout import EVENT_KINDS

    without = tuple(k for k in EVENT_KINDS if k != "book")
    if cfg.execution.replay_book != "auto":
        return None if cfg.execution.replay_book == "on" else without
    if "l2_depth" in (cfg.execution.slippage, *cfg.execution.models.values()):
        return None
    return None if names_in_sources(cls, ("book_level", "book_depth")) else without


def _align_first(c, ts0: int) -> None:
    """First sample/timer boundary: the first multiple of the interval strictly after ts0."""
    if c.run.sample_interval_ns > 0:
        c.clock.next_sample_ts = (ts0 // c.run.sample_interval_ns + 1) * c.run.sample_interval_ns
    if c.run.timer_interval_ns > 0:
        c.clock.next_timer_ts = (ts0 // c.run.timer_interval_ns + 1) * c.run.timer_interval_ns
    if c.run.funding_interval_ns > 0:
        c.clock.next_funding_ts = (ts0 // c.run.funding_interval_ns + 1) * c.run.funding_interval_ns


def _finalize(c, bufs: _Buffers, bars: BarFiller, last_ts: int) -> None:
    """End of data: final equity and bar rows, and live orders reported as END_OF_DATA."""
    from .core.account import record_bars, record_equity

    bufs.drain(c)
    if last_ts is not None:
        record_equity(c, last_ts, bufs.equity)
        record_bars(c, last_ts, bufs.bars)
        n_bars = len(bufs.out["bars"])
        bufs.drain(c)
        bars.finish(bufs.out["bars"][n_bars:])
    o = c.orders[:int(c.acct.o_hwm)]
    live = o[o.status != int(OrderStatus.FREE)]
    rows = np.zeros(len(live), dtype=ORDER_DTYPE)
    for done_name, slot_name in SLOT_TO_DONE.items():
        rows[done_name] = live[slot_name]
    rows["reason"] = int(Reason.END_OF_DATA)
    rows["done_ts_ns"] = -1
    filled = live.filled
    rows["avg_fill_price"] = np.divide(live.notional, filled, out=np.zeros(len(live)), where=filled > 0)
    bufs.drain(c)
    if len(rows):
        bufs.out["orders"].append(rows)


def run(strategy, data, *, params: dict | None = None, symbols: list[str] | None = None,
        start=None, end=None, config: RunConfig | dict | None = None, out: Path | None = None,
        progress=None, state: np.recarray | None = None) -> Result:
    """Run a backtest and return its Result (also saved to `out` when given).

    `strategy` is a Strategy subclass or a name that `resolve_strategy` understands; `data` a
    dataset folder. `progress(events_done, label)` is called after each chunk. `state` replaces
    the strategy's initial record (advanced: e.g. arrays prepared in a notebook or a test).
    While it runs, `out` is locked: another run writing the same folder refuses at once.
    """
    if out is None:
        return _run(strategy, data, params, symbols, start, end, config, None, progress, state)
    from .atomic import output_lock

    with output_lock(Path(out)):
        return _run(strategy, data, params, symbols, start, end, config, Path(out), progress, state)


def open_run(strategy, data, symbols, start, end, config):
    """What a run (or a batch of runs, batch.py) checks and opens first, in this order: the
    dataset (an s3:// one through the local read cache), the config, the strategy class, the
    time range and the event stream. Returns (cls, cfg, stream, start_ns, end_ns)."""
    from .data.storage import local_dataset

    data = local_dataset(data, wait=False)  # partitions still downloading: the reader waits per file
    cfg = config if isinstance(config, RunConfig) else RunConfig.from_dict(config or {})
    cls = resolve_strategy(strategy) if isinstance(strategy, str) else strategy
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise StrategyError(f"{strategy!r} is not a Strategy subclass")
    start_ns, end_ns = parse_time_ns(start, "start"), parse_time_ns(end, "end")
    stream = open_dataset(Path(data), symbols=symbols, start_ns=start_ns, end_ns=end_ns,
                          chunk_rows=cfg.chunk_rows, kinds=replayed_kinds(cls, cfg))
    check_time_range(stream.root, stream.symbols, start_ns, end_ns)
    return cls, cfg, stream, start_ns, end_ns


def run_features(strategy, data, symbols=None, start=None, end=None, config=None):
    """The LoopFeatures a run with these arguments compiles its loop for (as _run computes them)."""
    cls, cfg, stream, _, _ = open_run(strategy, data, symbols, start, end, config)
    return loop_features(cls, pack(cls, stream, cfg))


def _run(strategy, data, params, symbols, start, end, config, out, progress, state) -> Result:
    cls, cfg, stream, start_ns, end_ns = open_run(strategy, data, symbols, start, end, config)
    jit = not numba.config.DISABLE_JIT
    syms = stream.symbols
    params = cls.resolve_params(params)

    check_quote_needs(cfg, stream)
    candles = any(k == "bars" for k, _ in stream.files)
    if candles and "on_bar" not in cls.hooks():
        raise StrategyError(f"{cls.__name__} has no on_bar hook, but {data} holds candles (kind "
                            f"bars): add on_bar (bar matching is compiled only into strategies "
                            f"that have it; docs/strategies.md)")
    state0 = pack(cls, stream, cfg)
    notes = _run_warnings(cls, cfg, stream, int(state0.run.timer_interval_ns))
    s_arr = cls.new_state(params, syms)
    if state is not None:
        if state.dtype != cls.dtype or state.shape != (1,):
            raise StrategyError(f"state must be {cls.__name__}.new_state(...) (a 1-element record)")
        s_arr = state.view(np.recarray)

    t0 = time.perf_counter()
    features = loop_features(cls, state0)
    loop = build_loop(cls, features=features)
    bufs = _Buffers.new(buffer_rows(state0), jit)
    if jit:
        c, s = state0, s_arr[0]
    else:
        c, s = python_state(state0), PyMirror(s_arr[0])
    loop = first_call(cls, loop, c, s, bufs, features)
    compile_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    events = 0
    last_ts = None
    bars = BarFiller(len(syms), candles=candles)
    # a chunk's bar rows are filled in a thread while the loop runs over the next chunk (both
    # compiled without the GIL); one chunk at a time, in order, so the bars never change
    with ThreadPoolExecutor(1, thread_name_prefix="cascade-bars") as filler:
        filling = None
        for chunk in stream:
            n = len(chunk["ts_ns"])
            if n == 0:
                continue
            if last_ts is None:
                _align_first(c, int(chunk["ts_ns"][0]))
            c.clock.idx_base = events
            n_bars = len(bufs.out["bars"])
            i = 0
            while True:
                try:
                    status, i = _call(loop, chunk, i, c, s, bufs)
                except Exception as e:  # an exception raised by a strategy hook
                    raise _hook_error(cls, e, c, chunk, syms) from e
                if status == RunStatus.BUFFER_FULL:
                    bufs.drain(c)
                    continue
                break
            check_loans_allowed(cls, features, c)
            bufs.drain(c)  # this chunk's bar rows, to fill their open/high/low/volume
            if filling is not None:
                filling.result()  # the previous chunk's (and its errors)
            filling = filler.submit(bars.chunk, chunk, bufs.out["bars"][n_bars:])
            events += n
            last_ts = int(chunk["ts_ns"][-1])
            if progress is not None:
                progress(events, "events")
        if filling is not None:
            filling.result()
    if events == 0:  # a gap in the data: never a "successful" run of nothing
        raise no_data_error(stream.root, start_ns, end_ns)
    _finalize(c, bufs, bars, last_ts)
    if not jit:
        sync_state(c)
        s.sync()
    run_s = time.perf_counter() - t1
    return _result(cls, params, cfg, stream, state0, s_arr, bufs, syms, compile_s, run_s, events,
                   jit, out, notes)


def check_loans_allowed(cls, features: LoopFeatures, c: State) -> None:
    """After a loop call: a loan opened by a loop compiled without the loans step (its health is
    then never checked) stops the run instead of giving results that ignore it."""
    if not features.loans and c.acct.n_loans > 0:
        raise StrategyError(f"{cls.__name__} opened a loan, but no source of it names loan_open, so "
                            "its loop was compiled without the loan checks: call "
                            "backtest.sdk.loan_open by that name")


def first_call(cls, loop, c, s, bufs, features: LoopFeatures):
    """The first call of a run's loop: compiles it (or loads it from the cache) without running an
    event. Returns the loop to run: `loop`, or, when its hooks allocate arrays (which the loop
    without reference counting cannot compile), the loop with it for the same `features` (slower)."""
    empty = {n: np.zeros(0, dtype=dt) for n, dt in EVENT_COLUMNS}
    for refcounted in (False, True):
        try:
            if refcounted:
                loop = build_loop(cls, refcounted=True, features=features)
            _call(loop, empty, 0, c, s, bufs)
            return loop
        except CascadeError:
            raise
        except Exception as e:  # numba's typing/lowering errors, and its internal KeyErrors
            if refcounted or numba.config.DISABLE_JIT:
                raise _compile_error(cls, e) from None


def _run_warnings(cls, cfg: RunConfig, stream, timer_ns: int) -> list[str]:
    """Say what this run silently lacks (marks, funding, a hook's events), one line each, before
    it starts; the lines are also kept in the manifest under "warnings"."""
    import warnings

    from .data.coverage import perp_data_warnings
    from .errors import CascadeWarning

    m = cfg.margin
    notes = perp_data_warnings(stream.instruments, stream.files, trigger=m.trigger, funding=m.funding)
    perps = [s for s, ins in stream.instruments.items() if ins.is_perpetual]
    funding = bool(perps) and (m.funding != "data" or any(("funding", s) in stream.files for s in perps))
    notes += cls.hook_warnings(timer_ns=timer_ns, kinds={k for k, _ in stream.files}, funding=funding)
    for n in notes:
        warnings.warn(n, CascadeWarning, stacklevel=4)  # the caller of run()
    return notes


def _compile_error(cls, e: Exception) -> StrategyError:
    """numba's typing/lowering error as one line naming the strategy file and line."""
    import re

    from .plugins.codegen import dependency_files

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    files = {str(f) for f in dependency_files(cls)}
    where = ""
    places = re.findall(r'File "([^"]+)", line (\d+)', text) + re.findall(r" at (\S+\.py) \((\d+)\)", text)
    for path, line in places:
        if str(Path(path).resolve()) in files:
            where = f"{path}:{line}: "
            break
    if not where:  # e.g. an undefined name: find it in the strategy's own source
        m = re.search(r"name '(\w+)' is not defined|has no attribute '(\w+)'|'(\w+)'", text)
        name = next((g for g in (m.groups() if m else ()) if g), None)
        if name:
            for path in sorted(files):
                for no, line in enumerate(Path(path).read_text().splitlines(), 1):
                    if re.search(rf"\b{re.escape(name)}\b", line) and not line.lstrip().startswith("#"):
                        where = f"{path}:{no}: "
                        break
                if where:
                    break
    skip = ("Failed in", "During", "File ", "<source", "def ", "^")
    first = next((ln.strip() for ln in text.splitlines()
                  if ln.strip() and not ln.strip().startswith(skip)), text.splitlines()[0])
    return StrategyError(f"{where}{cls.__name__} does not compile: {first} (hint: hooks may use only "
                         "the record's fields, numbers, numpy arrays and @njit helpers; run with "
                         "--no-jit to debug it as plain Python)")


def _hook_error(cls, e: Exception, c, chunk, syms) -> StrategyError:
    """An exception from a hook, with the event it happened at."""
    import datetime as dt
    import traceback

    local = int(c.clock.cur_i)
    idx = int(c.clock.idx_base) + local
    sym = syms[int(chunk["sym"][local])] if 0 <= local < len(chunk["sym"]) else "?"
    when = dt.datetime.fromtimestamp(int(c.clock.now_ts) / 1e9, tz=dt.timezone.utc).isoformat()
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "/backtest/" not in f.filename
              and "_cascade_gen_" not in f.filename]
    where = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
    return StrategyError(f"{where}{cls.__name__} raised {type(e).__name__}: {e} at event {idx} "
                         f"({when}, {sym})")


def _call(loop, chunk, start, c, s, bufs):
    return loop(chunk["ts_ns"], chunk["sym"], chunk["kind"], chunk["side"], chunk["price"],
                chunk["qty"], chunk["bid"], chunk["ask"], chunk["bid_qty"], chunk["ask_qty"], start,
                c, s, bufs.fills, bufs.equity, bufs.bars, bufs.funding, bufs.liqs, bufs.loans)


def _result(cls, params, cfg, stream, c, s_arr, bufs, syms, compile_s, run_s, events, jit, out, notes=()):
    """The run's tables, manifest and metrics, saved to `out` if given."""
    result = build_result(bufs.out, run_manifest(cls, params, cfg, stream, c, s_arr, syms, compile_s,
                                                 run_s, events, jit, notes))
    if out is not None:
        result.save(Path(out))
    return result


def run_manifest(cls, params, cfg, stream, c, s_arr, syms, compile_s, run_s, events, jit, notes=(),
                 source: str | None = None, fingerprint: str | None = None) -> dict:
    """A finished run's manifest but for what its tables give (result_build.build_result fills
    that in): everything read from the compiled state, which only this process holds. `source`,
    `fingerprint`: the strategy's source_sha256 and the data's, when the caller has them (a batch
    computes them once for every set)."""
    from .core.account import equity as _equity

    final_equity = float(_equity(c))
    init = float(c.run.initial_balance)
    manifest = {
        "version": 1,
        "strategy": {"name": cls.__name__, "class": f"{cls.__module__}:{cls.__qualname__}",
                     "source_sha256": source or source_sha256(cls), "params": jsonable(params),
                     "state": {f.name: jsonable(s_arr[f.name][0]) for f in cls._fields}},
        "symbols": syms,
        "instruments": {k: v.to_dict() for k, v in stream.instruments.items()},
        "initial_balance": init,
        "settle_currency": "USDT",
        "config": cfg.to_dict(),
        "data": {"path": str(Path(stream.root).resolve()), "fingerprint": fingerprint or stream.fingerprint(),
                 "start_ns": None if stream.start_ns == np.iinfo(np.int64).min else stream.start_ns,
                 "end_ns": None if stream.end_ns == np.iinfo(np.int64).max else stream.end_ns},
        "timings": {"compile_s": round(compile_s, 4), "run_s": round(run_s, 4), "events": events,
                    "events_per_s": round(events / run_s, 1) if run_s > 0 else None, "jit": jit,
                    "margin_checks": int(c.acct.n_margin_checks),
                    "replay_cache": stream.replayed_from is not None},
        "headline": {"final_equity": final_equity, "return": final_equity / init - 1.0,
                     "max_drawdown": None,  # metrics.max_drawdown, set by build_result (one definition)
                     "max_drawdown_any_event": -float(c.acct.max_drawdown_frac),
                     "trades": None,  # the round trips, counted by build_result
                     "fills": int(c.acct.n_fills), "fees": float(c.acct.fees),
                     "funding": float(c.acct.funding), "realized_pnl": float(c.acct.realized_pnl),
                     "balance": float(c.acct.balance),
                     "positions": {sym: float(c.pos[i].qty) for i, sym in enumerate(syms)},
                     "coin_balances": {sym: float(c.pos[i].coin_bal) for i, sym in enumerate(syms)
                                       if c.inst[i].type == int(InstrumentType.INVERSE_PERPETUAL)},
                     "rejects": int(c.acct.n_rejects),
                     "refused_unrecorded": int(c.acct.n_table_full), "liquidations": int(c.acct.n_liquidations),
                     "market_liquidations": int(c.acct.n_market_liquidations),
                     "margin_calls": int(c.acct.n_margin_calls),
                     "insurance_payout": float(c.acct.insurance_payout),
                     "isolated_gap_cover": float(c.acct.iso_gap_cover),
                     "insurance_fund": float(c.acct.insurance_fund),
                     "borrow_interest": float(c.acct.borrow_interest),
                     "interest": float(c.acct.interest), "loan_penalties": float(c.acct.loan_penalties),
                     "loan_liquidations": int(c.acct.n_loan_liquidations),
                     "loan_cash_in": float(c.acct.loan_cash_in), "loan_cash_out": float(c.acct.loan_cash_out),
                     "loan_seized_cost": float(c.acct.loan_seized_cost)},
        "warnings": list(notes),
        "versions": {"cascade": __version__, "numba": numba.__version__, "numpy": np.__version__,
                     "polars": pl.__version__, "python": platform.python_version()},
    }
    # the run's id: a hash of what determines its result (config, strategy code and parameters, data)
    config = {k: v for k, v in manifest["config"].items() if k != "chunk_rows"}  # never changes results
    ident = json.dumps([config, manifest["strategy"]["class"],
                        manifest["strategy"]["source_sha256"], manifest["strategy"]["params"],
                        manifest["data"]["fingerprint"], syms], sort_keys=True, default=str)
    manifest["run_id"] = hashlib.sha256(ident.encode()).hexdigest()[:12]
    return manifest
