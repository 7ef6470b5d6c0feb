import contextlib
"""Helpers shared by the engine-level tests: datasets from oracle-format events, an engine adapter
with the same output shape as tests/oracle.py `simulate`, a probe strategy, and bit-exact
comparison of Results.

Strategies defined here (`Probe`) and in tests/scripted.py (`Scripted`) are reused by every test
module in the same process, so each is compiled (or loaded from the numba cache) once per session.
"""


import json
from pathlib import Path

import numpy as np
from numba import njit

import backtest as bt
from backtest import Strategy, buy
from backtest.core.schema import EventKind, InstrumentType
from backtest.data.instruments import Instrument, write_instruments
from backtest.data.writer import write_stream

from scripted import Scripted, load_script

KIND_DIRS = {int(EventKind.TRADE): "trades", int(EventKind.QUOTE): "quotes",
             int(EventKind.MARK): "marks", int(EventKind.FUNDING): "funding"}

FILL_COLS = ["event_idx", "ts_ns", "oid", "sym", "side", "liquidity", "qty", "price", "fee",
             "realized_pnl", "position_after", "avg_price_after", "bench_price", "slippage"]
ORDER_COLS = ["oid", "sym", "order_type", "side", "status", "reason", "filled_qty",
              "avg_fill_price", "done_ts_ns"]
FUNDING_COLS = ["ts_ns", "sym", "rate", "position", "mark_price", "payment"]


# --------------------------------------------------------------------------------- datasets
def symbol_names(n: int) -> list[str]:
    """S0, S1, ...: for n <= 10 the sort order of the names equals the symbol index."""
    assert n <= 10
    return [f"S{i}" for i in range(n)]


def canonical_order(ev: dict) -> np.ndarray:
    """The stream order of docs/fill-rules.md R1.1: ts, kind, symbol index, then row order."""
    return np.lexsort((np.arange(len(ev["ts_ns"])), ev["sym"], ev["kind"], ev["ts_ns"]))


def write_events(root: Path, ev: dict, instruments: list[dict]) -> list[str]:
    """Write oracle-format events (tests/oracle.py columns) as a dataset; returns the symbols."""
    root = Path(root)
    symbols = symbol_names(len(instruments))
    ts, sym, kind = ev["ts_ns"], ev["sym"], ev["kind"]
    for s, name in enumerate(symbols):
        for k, kdir in KIND_DIRS.items():
            m = (sym == s) & (kind == k)
            if not m.any():
                continue
            t = np.asarray(ts[m], dtype=np.int64)
            if k == EventKind.TRADE:
                cols = dict(ts_ns=t, price=ev["price"][m], qty=ev["qty"][m],
                            side=np.asarray(ev["side"][m], dtype=np.int8))
            elif k == EventKind.QUOTE:
                cols = dict(ts_ns=t, bid=ev["bid"][m], ask=ev["ask"][m], bid_qty=ev["bid_qty"][m],
                            ask_qty=ev["ask_qty"][m])
            elif k == EventKind.MARK:
                cols = dict(ts_ns=t, mark_price=ev["price"][m], index_price=ev["qty"][m])
            else:
                cols = dict(ts_ns=t, rate=ev["price"][m])
            write_stream(root, kdir, name, {c: np.asarray(v) for c, v in cols.items()})
    inst = {}
    for name, i in zip(symbols, instruments):
        spot = int(i["type"]) == int(InstrumentType.SPOT)
        inst[name] = Instrument(name, "spot" if spot else "linear_perpetual", name, "USDT", "USDT",
                                tick_size=float(i["tick_size"]), lot_size=float(i["lot_size"]),
                                maker_fee_rate=float(i["maker_fee_rate"]),
                                taker_fee_rate=float(i["taker_fee_rate"]))
    write_instruments(root / "instruments.json", inst)
    return symbols


def run_config(instruments: list[dict], config: dict, symbols: list[str], **extra) -> dict:
    """An engine RunConfig dict from an oracle config dict (+ overrides such as chunk_rows)."""
    lev = {s: float(i.get("leverage", 1.0)) for s, i in zip(symbols, instruments)
           if int(i["type"]) != int(InstrumentType.SPOT)}
    cfg = dict(initial_balance=float(config.get("initial_balance", 10_000.0)), sample_interval="0",
               leverage=lev,
               execution=dict(latency=int(config.get("latency_ns", 0)),
                              cancel_latency=int(config.get("cancel_latency_ns", 0)),
                              touch_fills=bool(config.get("touch_fills", False))))
    for key in ("partial_fills", "queue_model"):  # R3.15, R3.16
        if key in config:
            cfg["execution"][key] = bool(config[key])
    if config.get("slippage") == "l2_depth":  # the oracle's book model has impact_k = 0
        cfg["execution"].update(slippage="l2_depth", impact_k=0.0)
        for key in ("book_resilience_half_life", "book_beyond_bps"):
            if key in config:
                cfg["execution"][key] = float(config[key])
    cfg.update(extra)
    return cfg


# --------------------------------------------------------------------------------- the adapter
class EngineSimulator:
    """`simulate(events, instruments, config, script)` on the compiled engine (Scripted strategy).

    Writes the events as a dataset under a fresh folder of `base`, runs `backtest.run` with
    sample_interval '0' and returns the dict shape of tests/oracle.py `simulate` (plus `result`,
    the engine's Result, `symbols`, `state` and `perm`, the event permutation applied).

    Events that are not in stream order (R1.1) are reordered into it, and the script's event
    indices (and cancel/amend references) are remapped, so invariant tests still apply; the
    `event_idx` of fills then refers to the reordered stream. `avg_prices` is derived from the
    last fill of each symbol (the engine does not report average prices otherwise).
    """

    def __init__(self, base: Path, **run_overrides):
        self.base = Path(base)
        self.n = 0
        self.run_overrides = run_overrides

    def __call__(self, events: dict, instruments: list[dict], config: dict, script: list) -> dict:
        self.n += 1
        root = self.base / f"ds{self.n}"
        ev = {k: np.asarray(v) for k, v in events.items()}
        perm = canonical_order(ev)
        identity = bool(np.array_equal(perm, np.arange(len(perm))))
        script = list(script)
        order = list(range(len(script)))
        if not identity:
            ev = {k: v[perm] for k, v in ev.items()}
            new_pos = np.empty_like(perm)
            new_pos[perm] = np.arange(len(perm))
            moved = [(int(new_pos[a[0]]), i) for i, a in enumerate(script)]
            order = [i for _, i in sorted(moved)]  # stable for actions at the same event
            rank = {old: new for new, old in enumerate(order)}
            new_script = []
            for i in order:
                a = list(script[i])
                a[0] = int(new_pos[a[0]])
                if a[1] in ("cancel", "amend") and 0 <= a[2] < len(script):
                    a[2] = rank[a[2]]
                new_script.append(tuple(a))
            script = new_script
        for a in script:
            if ev["kind"][a[0]] == EventKind.FUNDING:
                raise ValueError(f"action {a} is scheduled at a FUNDING event; Scripted has no "
                                 "on_funding hook, so the engine would never run it")
        symbols = write_events(root, ev, instruments)
        cfg = run_config(instruments, config, symbols, **self.run_overrides)
        state = Scripted.new_state({}, symbols)
        load_script(state, script)
        res = bt.run(Scripted, root, symbols=symbols, config=cfg, state=state)
        assert res.symbols == symbols
        out = engine_output(res, len(symbols))
        got = [int(x) for x in state.result[0][: len(script)]]
        results = [None] * len(script)
        for new, old in enumerate(order):
            results[old] = got[new]
        out.update(results=results, result=res, symbols=symbols, state=state, perm=perm)
        return out


def engine_output(res, nsym: int) -> dict:
    """The oracle-shaped dict of an engine Result."""
    fills = res.fills.select(FILL_COLS).to_dicts()
    orders = res.orders.select(ORDER_COLS).to_dicts()
    h = res.headline
    eq = res.equity["equity"].to_list()
    avg = [0.0] * nsym
    for f in fills:
        avg[f["sym"]] = f["avg_price_after"]
    return dict(
        fills=fills, orders=orders, balance=h["balance"], realized_pnl=h["realized_pnl"],
        fees=h["fees"], funding=h["funding"], positions=list(h["positions"].values()),
        avg_prices=avg, equity_after_fills=eq[: len(fills)],
        funding_rows=res.funding.select(FUNDING_COLS).to_dicts())


# --------------------------------------------------------------------------------- a probe strategy
LOGN = 512
LOG_TIMER, LOG_FILL = 4, 5  # log codes beyond the event kinds 0..3


@njit
def _log(self, c, code, sym, ts, val):
    """One log row; its index is the event's global index (the clock keeps it within the chunk)."""
    k = self.n_log
    if k < LOGN:
        self.lg_code[k] = code
        self.lg_idx[k] = c.clock.idx_base + c.clock.cur_i
        self.lg_sym[k] = sym
        self.lg_ts[k] = ts
        self.lg_val[k] = val
    self.n_log = k + 1


class Probe(Strategy):
    """Logs every hook call (code, the event's global index, sym, ts, value); optionally buys from on_timer."""

    n_log: int = 0
    lg_code: ("i8", LOGN)
    lg_idx: ("i8", LOGN)
    lg_sym: ("i8", LOGN)
    lg_ts: ("i8", LOGN)
    lg_val: ("f8", LOGN)
    n_timer: int = 0
    buy_at_timer: int = -1  # on the k-th timer call (0-based), buy `buy_qty` of `buy_sym`
    buy_sym: int = 0
    buy_qty: float = 1.0
    buy_result: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        _log(self, c, 0, sym, ts_ns, price)

    def on_quote(self, c, ts_ns, sym, bid, ask, bid_qty, ask_qty):
        _log(self, c, 1, sym, ts_ns, bid)

    def on_mark(self, c, ts_ns, sym, mark_price, index_price):
        _log(self, c, 2, sym, ts_ns, mark_price)

    def on_funding(self, c, ts_ns, sym, rate, payment):
        _log(self, c, 3, sym, ts_ns, payment)

    def on_timer(self, c, ts_ns):
        _log(self, c, LOG_TIMER, -1, ts_ns, c.clock.now_ts)
        if self.n_timer == self.buy_at_timer:
            self.buy_result = buy(c, self.buy_sym, self.buy_qty)
        self.n_timer += 1

    def on_fill(self, c, ts_ns, sym, oid, price, qty, side):
        _log(self, c, LOG_FILL, sym, ts_ns, price)


def probe_log(state) -> list[tuple]:
    n = min(int(state.n_log[0]), LOGN)
    return [(int(state.lg_code[0][i]), int(state.lg_idx[0][i]), int(state.lg_sym[0][i]),
             int(state.lg_ts[0][i]), float(state.lg_val[0][i])) for i in range(n)]


# --------------------------------------------------------------------------------- comparisons
def frame_diff(a, b):
    """None if the frames are bit-identical (names, dtypes, values incl. NaN payloads)."""
    if a.columns != b.columns:
        return f"columns {a.columns} != {b.columns}"
    if a.dtypes != b.dtypes:
        return f"dtypes {a.dtypes} != {b.dtypes}"
    if a.height != b.height:
        return f"height {a.height} != {b.height}"
    for name in a.columns:
        x, y = a[name], b[name]
        if x.dtype.is_numeric():
            xa, ya = x.to_numpy(), y.to_numpy()
            if xa.dtype != ya.dtype or xa.tobytes() != ya.tobytes():
                neq = ~((xa == ya) | ((xa != xa) & (ya != ya))) if xa.dtype.kind == "f" else xa != ya
                first = int(np.flatnonzero(neq)[0]) if neq.any() else -1
                return f"column {name!r} differs (first row {first}: {xa[first]!r} vs {ya[first]!r})"
        elif x.to_list() != y.to_list():
            return f"column {name!r} differs"
    return None


def manifest_core(m: dict) -> str:
    """The run-determined part of a manifest (without timings, run paths and versions) as JSON."""
    keep = {k: v for k, v in m.items() if k not in ("timings", "run_id")}
    if "data" in keep:
        keep["data"] = {k: v for k, v in keep["data"].items() if k != "path"}
    return json.dumps(keep, sort_keys=True, default=str)


def assert_results_identical(a, b, *, compare_data_section: bool = True) -> None:
    assert sorted(a.tables) == sorted(b.tables)
    for name in a.tables:
        d = frame_diff(a.tables[name], b.tables[name])
        assert d is None, f"table {name}: {d}"
    ma, mb = dict(a.manifest), dict(b.manifest)
    if not compare_data_section:
        ma.pop("data", None)
        mb.pop("data", None)
    assert manifest_core(ma) == manifest_core(mb)


# --------------------------------------------------------------------------------- market data
T0 = 1_770_249_600_000_000_000  # 2026-02-05 00:00 UTC


def make_market_dataset(root: Path, n: int, nsym: int = 2, seed: int = 0, step_ns: int = 1_000_000,
                        period: int = 20_000) -> list[str]:
    """A multi-kind dataset: S0 oscillates around 62.5k crossing 60k/62k/63k/65k every `period`
    events; other symbols are scaled copies. Two events share each timestamp (ties)."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    ts = T0 + (i // 2) * step_ns
    sym = rng.integers(0, nsym, n).astype(np.int32)
    kind = rng.choice([0, 1, 2, 3], n, p=[0.6, 0.3, 0.095, 0.005]).astype(np.int8)
    base = 62_500.0 + 3_000.0 * np.sin(2 * np.pi * i / period) + rng.normal(0, 40.0, n)
    scale = np.array([1.0, 0.05, 0.002, 0.5, 1.5, 0.01, 0.2, 3.0])[:nsym]
    price = np.round(base * scale[sym], 1)
    symbols = symbol_names(nsym)
    ev = dict(ts_ns=ts, sym=sym, kind=kind, side=rng.choice([-1, 1], n).astype(np.int8),
              price=np.where(kind == 3, rng.choice([-1.0, 1.0], n) * 1e-4, price),
              qty=np.where(kind == 2, price, rng.integers(1, 50, n) * 0.001),
              bid=price - 0.1, ask=price + 0.1, bid_qty=np.ones(n), ask_qty=np.ones(n))
    inst = [dict(type=1, tick_size=0.1, lot_size=0.001, maker_fee_rate=0.0002,
                 taker_fee_rate=0.0005) for _ in range(nsym)]
    write_events(root, ev, inst)
    return symbols


@contextlib.contextmanager
def build_loop_memo():
    """One compiled loop per strategy class and LoopFeatures while the block runs (the reliability
    modules run many short engine runs; building the loop anew each time would re-hash the
    framework)."""
    import backtest.engine as engine

    memo = engine.__dict__.setdefault("_reliability_loop_memo", {})
    orig = engine.build_loop
    if getattr(orig, "_memo", False):  # already wrapped by another module of the session
        yield
        return

    def cached(cls, refcounted=False, **kw):
        key = (cls, refcounted, tuple(kw.get("features", ())))
        if key not in memo:
            memo[key] = orig(cls, refcounted, **kw)
        return memo[key]

    cached._memo = True
    engine.build_loop = cached
    try:
        yield
    finally:
        engine.build_loop = orig
