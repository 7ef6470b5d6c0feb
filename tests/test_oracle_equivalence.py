"""The compiled engine equals the pure-Python oracle (tests/oracle.py) on random scenarios.

Each scenario is a random multi-symbol tick stream (trades, quotes, marks, funding; equal
timestamps included; L2 book snapshots in the l2_depth scenarios) written as a real dataset, plus a random script of orders, cancels, amends,
brackets and closes replayed by tests/scripted.py inside the compiled hooks.
"""
import numpy as np
import pytest

import backtest as bt
from backtest.core.schema import EventKind, InstrumentType, OrderType
from backtest.data.instruments import Instrument, write_instruments
from backtest.data.reader import open_dataset
from backtest.data.writer import write_stream

from oracle import simulate
from scripted import Scripted, load_script

N_SCENARIOS = 120
N_L2_SCENARIOS = 40
N_QUEUE_SCENARIOS = 60  # partial fills and the queue model (R3.15, R3.16, R9.8), half with a book
T0 = 1_770_249_600_000_000_000  # 2026-02-05 00:00 UTC
KIND_NAMES = {EventKind.TRADE: "trades", EventKind.QUOTE: "quotes", EventKind.MARK: "marks",
              EventKind.FUNDING: "funding"}


def make_events(rng, types):
    """Random events for len(types) symbols; prices on a 0.5 tick grid."""
    n = int(rng.integers(40, 300))
    nsym = len(types)
    sym = rng.integers(0, nsym, n).astype(np.int32)
    kind = rng.choice([0, 1, 2, 3], n, p=[0.5, 0.3, 0.15, 0.05]).astype(np.int8)
    kind[(kind == 3) & (np.array(types)[sym] == InstrumentType.SPOT)] = 0  # spot has no funding
    ts = T0 + np.cumsum(rng.integers(0, 3, n)) * 1_000_000  # ties happen
    price = np.zeros(n)
    level = rng.integers(180, 220, nsym).astype(float)
    for i in range(n):
        level[sym[i]] = max(20, level[sym[i]] + rng.integers(-4, 5))
        price[i] = level[sym[i]] * 0.5
    return ts, sym, kind, price


def write_dataset(root, rng, types):
    ts, sym, kind, price = make_events(rng, types)
    symbols = [f"S{i}" for i in range(len(types))]
    for s, name in enumerate(symbols):
        for k, kname in KIND_NAMES.items():
            m = (sym == s) & (kind == k)
            t, p = ts[m], price[m]
            if not m.any():
                continue
            if k == EventKind.TRADE:
                cols = dict(ts_ns=t, price=p, qty=rng.integers(1, 20, len(t)) * 0.25,
                            side=rng.choice([-1, 1], len(t)).astype(np.int8))
            elif k == EventKind.QUOTE:
                spread = rng.integers(1, 4, len(t)) * 0.5
                cols = dict(ts_ns=t, bid=p - spread, ask=p + spread, bid_qty=np.ones(len(t)),
                            ask_qty=np.ones(len(t)))
            elif k == EventKind.MARK:
                cols = dict(ts_ns=t, mark_price=p + rng.integers(-2, 3, len(t)) * 0.25,
                            index_price=p)
            else:
                cols = dict(ts_ns=t, rate=rng.integers(-4, 5, len(t)) * 2.0 ** -13)
            write_stream(root, kname, name, cols)
    inst = {}
    for i, (name, t) in enumerate(zip(symbols, types)):
        inst[name] = Instrument(name, "spot" if t == InstrumentType.SPOT else "linear_perpetual",
                                name, "USDT", "USDT", tick_size=0.5, lot_size=0.25,
                                maker_fee_rate=2.0 ** -12, taker_fee_rate=2.0 ** -10)
    write_instruments(root / "instruments.json", inst)
    return symbols


def make_script(rng, ev, nsym):
    """Random actions at TRADE/QUOTE/MARK events; mostly valid, some deliberately invalid."""
    idx = np.flatnonzero(ev["kind"] <= EventKind.MARK)  # events with hooks (not funding, book)
    n_act = int(rng.integers(5, 60))
    gs = np.sort(rng.choice(idx, size=min(n_act, len(idx)), replace=True))
    last = {}
    script = []
    for g in gs:
        g = int(g)
        for s in range(nsym):  # a price level to place orders around
            m = (ev["sym"][: g + 1] == s) & (ev["kind"][: g + 1] == EventKind.TRADE)
            if m.any():
                last[s] = float(ev["price"][: g + 1][m][-1])
        s = int(rng.integers(0, nsym))
        px = last.get(s, 100.0)
        roll = rng.random()
        qty = float(rng.integers(1, 12)) * 0.25
        if rng.random() < 0.04:
            qty += 0.1  # off lot
        if roll < 0.55:
            otype = int(rng.choice(list(OrderType)))
            side = int(rng.choice([-1, 1]))
            off = float(rng.integers(-6, 7)) * 0.5
            limit = max(0.5, px + off) if otype in (1, 3, 5) else 0.0
            stop = max(0.5, px - side * float(rng.integers(1, 8)) * 0.5) if otype in (2, 3) else 0.0
            if otype in (4, 5):
                stop = max(0.5, px + side * -1 * float(rng.integers(1, 8)) * 0.5 * -1)
            if rng.random() < 0.03:
                limit += 0.1 if limit else 0.0  # off tick
            tif = int(rng.choice([0, 0, 0, 1, 2, 3]))
            reduce = bool(rng.random() < 0.2)
            trigger = int(rng.random() < 0.3)
            trail = float(rng.integers(1, 6)) * 0.5 if otype == 6 and rng.random() < 0.5 else 0.0
            bps = float(rng.integers(5, 80)) if otype == 6 and trail == 0.0 else 0.0
            oco = int(1_000_000 + rng.integers(0, 3)) if rng.random() < 0.15 else 0
            script.append((g, "submit", s, otype, side, qty, limit, stop, tif, reduce, trigger,
                           trail, bps, oco))
        elif roll < 0.65:
            side = int(rng.choice([-1, 1]))
            limit = px - side * 0.5 if rng.random() < 0.5 else 0.0
            stop = px - side * float(rng.integers(1, 6))
            target = px + side * float(rng.integers(1, 6))
            script.append((g, "bracket", s, side, qty, limit, max(0.5, stop), max(0.5, target)))
        elif roll < 0.8 and script:
            script.append((g, "cancel", int(rng.integers(0, len(script)))))
        elif roll < 0.9 and script:
            k = int(rng.integers(0, len(script)))
            script.append((g, "amend", k, float(rng.integers(1, 12)) * 0.25,
                           max(0.5, px + float(rng.integers(-4, 5)) * 0.5), 0.0))
        else:
            script.append((g, "close", s))
    return script


def write_books(root, rng, symbols, ev):
    """L2 snapshots (1-6 levels a side, sometimes fewer asks, thin sizes so that walks reach
    past the deepest level) at some event times of each symbol, around its latest trade."""
    for s, name in enumerate(symbols):
        idx = np.flatnonzero((ev["sym"] == s) & (ev["kind"] == EventKind.TRADE))
        if len(idx) == 0 or name == symbols[-1] and rng.random() < 0.3:
            continue  # some symbols have no book: l2_depth prices them as l1_depth (R9.6)
        at = np.unique(ev["ts_ns"][np.sort(rng.choice(idx, size=min(len(idx), int(rng.integers(1, 8)))))])
        rows = {k: [] for k in ("ts_ns", "level", "bid", "bid_qty", "ask", "ask_qty")}
        for t in at:
            mid = float(ev["price"][idx][ev["ts_ns"][idx] <= t][-1]) + float(rng.integers(-2, 3)) * 0.5
            nb, na = int(rng.integers(1, 7)), int(rng.integers(1, 7))
            for k in range(max(nb, na)):
                rows["ts_ns"].append(int(t))
                rows["level"].append(k)
                rows["bid"].append(mid - 0.5 * (k + 1) if k < nb else np.nan)
                rows["bid_qty"].append(float(rng.integers(1, 8)) * 0.25 if k < nb else 0.0)
                rows["ask"].append(mid + 0.5 * (k + 1) if k < na else np.nan)
                rows["ask_qty"].append(float(rng.integers(1, 8)) * 0.25 if k < na else 0.0)
        cols = {k: np.array(v, dtype=np.int8 if k == "level" else None) for k, v in rows.items()}
        write_stream(root, "book", name, cols)


def run_both(tmp_path, seed, l2=False, queue=False):
    rng = np.random.default_rng(seed)
    nsym = int(rng.integers(1, 4))
    types = [InstrumentType.LINEAR_PERPETUAL] + [
        InstrumentType(int(rng.choice([0, 1]))) for _ in range(nsym - 1)]
    root = tmp_path / f"ds{seed}"
    symbols = write_dataset(root, rng, types)
    if l2:  # a separate generator: the spread scenarios stay what they were
        lrng = np.random.default_rng(10_000 + seed)
        chunks = list(open_dataset(root, symbols=symbols))
        write_books(root, lrng, symbols, {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]})
    chunks = list(open_dataset(root, symbols=symbols))
    ev = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    script = make_script(rng, ev, nsym)
    leverage = {sym: float(rng.choice([1, 2, 5, 10])) for sym, t in zip(symbols, types)
                if t != InstrumentType.SPOT}
    cfg = dict(initial_balance=float(rng.choice([500.0, 5_000.0, 100_000.0])),
               sample_interval="0", leverage=leverage, chunk_rows=int(rng.choice([7, 64, 1 << 20])),
               execution=dict(latency=f"{int(rng.choice([0, 0, 1, 3]))}ms",
                              cancel_latency=f"{int(rng.choice([0, 2]))}ms",
                              touch_fills=bool(rng.random() < 0.3)))
    if queue:  # a separate generator again: the other scenarios stay what they were
        qrng = np.random.default_rng(20_000 + seed)
        partial, queue_model = [(True, False), (False, True), (True, True)][int(qrng.integers(0, 3))]
        cfg["execution"].update(partial_fills=partial, queue_model=queue_model)
    if l2:
        cfg["execution"].update(slippage="l2_depth", impact_k=0.0,
                                book_resilience_half_life=float(lrng.choice([0.0, 0.002, 1.0])),
                                book_beyond_bps=float(lrng.choice([0.0, 10.0, 50.0])))
    state = Scripted.new_state({}, symbols)
    load_script(state, script)
    res = bt.run(Scripted, root, symbols=symbols, config=cfg, state=state)
    inst = [dict(type=int(t), tick_size=0.5, lot_size=0.25, maker_fee_rate=2.0 ** -12,
                 taker_fee_rate=2.0 ** -10, leverage=leverage.get(sym, 1.0))
            for sym, t in zip(symbols, types)]
    ocfg = dict(initial_balance=cfg["initial_balance"],
                latency_ns=int(cfg["execution"]["latency"][:-2]) * 1_000_000,
                cancel_latency_ns=int(cfg["execution"]["cancel_latency"][:-2]) * 1_000_000,
                touch_fills=cfg["execution"]["touch_fills"])
    if queue:
        ocfg.update(partial_fills=partial, queue_model=queue_model)
    if l2:
        ocfg.update(slippage="l2_depth", book_resilience_half_life=cfg["execution"]["book_resilience_half_life"],
                    book_beyond_bps=cfg["execution"]["book_beyond_bps"])
    want = simulate(ev, inst, ocfg, script)
    return res, state, want, script


FILL_COLS = ["event_idx", "ts_ns", "oid", "sym", "side", "liquidity", "qty", "price", "fee",
             "realized_pnl", "position_after", "avg_price_after", "bench_price", "slippage"]
ORDER_COLS = ["oid", "sym", "order_type", "side", "status", "reason", "filled_qty",
              "avg_fill_price", "done_ts_ns"]


@pytest.mark.parametrize("seed", range(N_SCENARIOS))
def test_engine_equals_oracle(tmp_path, seed):
    check_equal(*run_both(tmp_path, seed))


@pytest.mark.parametrize("seed", range(N_L2_SCENARIOS))
def test_engine_equals_oracle_with_an_l2_book(tmp_path, seed):
    """l2_depth (section 9): walks, consumption and refill, marketable limits' partial fills."""
    check_equal(*run_both(tmp_path, seed, l2=True))


@pytest.mark.parametrize("seed", range(N_QUEUE_SCENARIOS))
def test_engine_equals_oracle_with_partial_fills_and_queues(tmp_path, seed):
    """partial_fills and queue_model (R3.15, R3.16), and the queue in an L2 book (R9.8)."""
    check_equal(*run_both(tmp_path, 30_000 + seed, l2=seed % 2 == 1, queue=True))


def check_equal(res, state, want, script):
    got_results = [int(x) for x in state.result[0][: len(script)]]
    assert got_results == [int(x) for x in want["results"]], "action results differ"
    got_fills = res.fills.select(FILL_COLS).to_dicts()
    want_fills = [{k: f[k] for k in FILL_COLS} for f in want["fills"]]
    assert got_fills == want_fills
    assert (res.orders["symbol"] == ("S" + res.orders["sym"].cast(str))).all()  # names follow sym
    got_orders = res.orders.select(ORDER_COLS).to_dicts()
    want_orders = [{k: o[k] for k in ORDER_COLS} for o in want["orders"]]
    assert got_orders == want_orders
    eq = res.equity["equity"].to_list()
    assert eq[: len(want_fills)] == want["equity_after_fills"]
    h = res.headline
    assert h["balance"] == want["balance"]
    assert h["realized_pnl"] == want["realized_pnl"]
    assert h["fees"] == want["fees"]
    assert h["funding"] == want["funding"]
    assert h["max_drawdown_any_event"] == -want["max_drawdown_frac"]  # R6.1, at every event
    assert list(h["positions"].values()) == want["positions"]
    fund = res.funding.select(["ts_ns", "sym", "rate", "position", "mark_price", "payment"]).to_dicts()
    assert fund == [dict(r) for r in want["funding_rows"]]
