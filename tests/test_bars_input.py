"""Candles as input (docs/fill-rules.md section 8): hand-worked examples of the intra-bar rule,
each run on the pure-Python oracle (tests/oracle.py) and on the compiled engine, which must agree
bit for bit; random bar scenarios engine == oracle; the CLI end to end (import Binance klines,
run a strategy with on_bar, JIT on and --no-jit).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import backtest as bt
from backtest.core.schema import EventKind
from backtest.data.instruments import Instrument, write_instruments
from backtest.data.writer import write_stream
from backtest.errors import StrategyError
from oracle import GTC, IOC, OrderStatus, OrderType, Reason, simulate
from scripted import Scripted, load_script, run_actions

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "exchange"
T0 = 1_770_249_600_000_000_000  # 2026-02-05 00:00 UTC
MIN = 60_000_000_000
BUY, SELL = 1, -1
MKT, LMT = int(OrderType.MARKET), int(OrderType.LIMIT)
STP, STPL = int(OrderType.STOP_MARKET), int(OrderType.STOP_LIMIT)
TPM, TRL = int(OrderType.TAKE_PROFIT_MARKET), int(OrderType.TRAILING_STOP)
MAKER, TAKER = 0, 1
S, R = OrderStatus, Reason
PERP = dict(type=1, tick_size=0.5, lot_size=0.25, maker_fee_rate=0.0, taker_fee_rate=0.0,
            leverage=10.0)
FILL_COLS = ["event_idx", "ts_ns", "oid", "sym", "side", "liquidity", "qty", "price", "fee",
             "realized_pnl", "position_after", "avg_price_after"]
ORDER_COLS = ["oid", "sym", "order_type", "side", "status", "reason", "filled_qty",
              "avg_fill_price", "done_ts_ns"]


class BarScripted(Scripted):
    """Scripted (tests/scripted.py), also acting at bars and market liquidations."""

    def on_bar(self, c, ts_ns, sym, open, high, low, close, volume):
        run_actions(self, c)

    def on_market_liquidation(self, c, ts_ns, sym, price, qty, side):
        run_actions(self, c)


def B(i, o, h, lo, c, v=10.0, sym=0):
    """The bar that closes at T0 + (i + 1) minutes."""
    return dict(ts_ns=T0 + (i + 1) * MIN, sym=sym, kind=int(EventKind.BAR), bid=o, ask=h,
                bid_qty=lo, price=c, qty=v)


def events(*rows):
    cols = dict(ts_ns=("i8", 0), sym=("i4", 0), kind=("i1", 0), side=("i1", 0),
                price=("f8", np.nan), qty=("f8", np.nan), bid=("f8", np.nan),
                ask=("f8", np.nan), bid_qty=("f8", np.nan), ask_qty=("f8", np.nan))
    return {k: np.array([r.get(k, d) for r in rows], dtype=dt) for k, (dt, d) in cols.items()}


def sub(g, otype, side, qty, limit=0.0, stop=0.0, tif=GTC, ro=False, trail=0.0, oco=0):
    return (g, "submit", 0, otype, side, qty, limit, stop, tif, ro, 0, trail, 0.0, oco)


def write_bars(root: Path, ev: dict, nsym: int = 1) -> list[str]:
    names = [f"S{i}" for i in range(nsym)]
    for s, name in enumerate(names):
        m = (ev["sym"] == s) & (ev["kind"] == int(EventKind.BAR))
        if m.any():
            write_stream(root, "bars", name, dict(ts_ns=ev["ts_ns"][m], open=ev["bid"][m],
                                                 high=ev["ask"][m], low=ev["bid_qty"][m],
                                                 close=ev["price"][m], volume=ev["qty"][m]))
        for kind, kdir in ((EventKind.TRADE, "trades"), (EventKind.MARKET_LIQUIDATION, "liquidations")):
            m = (ev["sym"] == s) & (ev["kind"] == int(kind))
            if m.any():
                write_stream(root, kdir, name, dict(ts_ns=ev["ts_ns"][m], price=ev["price"][m],
                                                   qty=ev["qty"][m], side=ev["side"][m]))
    write_instruments(root / "instruments.json", {
        n: Instrument(n, "linear_perpetual", n, "USDT", "USDT", tick_size=PERP["tick_size"],
                      lot_size=PERP["lot_size"], maker_fee_rate=PERP["maker_fee_rate"],
                      taker_fee_rate=PERP["taker_fee_rate"]) for n in names})
    return names


def engine(root: Path, ev: dict, script: list, *, touch=False, latency_ns=0, chunk_rows=1 << 20,
           balance=10_000.0, nsym=1):
    names = write_bars(root, ev, nsym)
    cfg = dict(initial_balance=balance, sample_interval="0", chunk_rows=chunk_rows,
               leverage={n: PERP["leverage"] for n in names},
               execution=dict(latency=int(latency_ns), touch_fills=touch))
    state = BarScripted.new_state({}, names)
    load_script(state, script)
    res = bt.run(BarScripted, root, symbols=names, config=cfg, state=state)
    return dict(fills=res.fills.select(FILL_COLS).to_dicts(),
                orders=res.orders.select(ORDER_COLS).to_dicts(),
                results=[int(x) for x in state.result[0][: len(script)]],
                balance=res.headline["balance"],
                positions=list(res.headline["positions"].values()),
                equity_after_fills=res.equity["equity"].to_list()[: res.fills.height],
                result=res)


def both(tmp_path, rows, script, **kw):
    """Run on the oracle and the engine; they must agree exactly. Returns the oracle's output."""
    ev = events(*rows)
    inst = [dict(PERP) for _ in range(kw.get("nsym", 1))]
    want = simulate(ev, inst, dict(initial_balance=kw.get("balance", 10_000.0),
                                   latency_ns=kw.get("latency_ns", 0),
                                   touch_fills=kw.get("touch", False)), script)
    got = engine(tmp_path / "ds", ev, script, **kw)
    assert got["fills"] == [{k: f[k] for k in FILL_COLS} for f in want["fills"]]
    assert got["orders"] == [{k: o[k] for k in ORDER_COLS} for o in want["orders"]]
    assert got["results"] == [int(x) for x in want["results"]]
    assert got["balance"] == want["balance"]
    assert got["positions"] == want["positions"]
    assert got["equity_after_fills"] == want["equity_after_fills"]
    return want


def fills(out):
    return [(f["event_idx"], f["side"], f["price"], f["qty"], f["liquidity"]) for f in out["fills"]]


def status(out, oid):
    o = next(o for o in out["orders"] if o["oid"] == oid)
    return o["status"], o["reason"]


# ------------------------------------------------------------------------------ hand-worked
def test_market_order_decided_at_close_fills_at_next_open(tmp_path):
    # R8.1/R8.4: decided in on_bar of bar 0 (close 100.5) -> bar 1's open 101, taker
    out = both(tmp_path, [B(0, 100, 101, 99, 100.5), B(1, 101, 103, 100, 102)],
               [sub(0, MKT, BUY, 1.0)])
    assert fills(out) == [(1, BUY, 101.0, 1.0, TAKER)]
    assert out["positions"] == [1.0]
    assert out["balance"] == 10_000.0  # zero fees; the position is valued at the close (102)
    assert out["equity_after_fills"] == [10_000.0]  # valued at the fill's reach price


@pytest.mark.parametrize("side", [BUY, SELL])
def test_stop_before_target_in_one_bar(tmp_path, side):
    # R8.2: a bracket whose stop and target are both inside one bar: the stop fills, the target
    # is cancelled (OCO), for a long (sells: low first) and for a short (buys: high first)
    stop, target = (95.0, 105.0) if side == BUY else (105.0, 95.0)
    rows = [B(0, 100, 100, 100, 100), B(1, 100, 100.5, 99.5, 100), B(2, 100, 106, 94, 100)]
    out = both(tmp_path, rows, [(0, "bracket", 0, side, 1.0, 0.0, stop, target)])
    assert fills(out) == [(1, side, 100.0, 1.0, TAKER), (2, -side, stop, 1.0, TAKER)]
    assert out["fills"][1]["realized_pnl"] == -5.0
    assert status(out, 2) == (S.FILLED, R.NONE)  # the stop child
    assert status(out, 3) == (S.CANCELED, R.OCO_SIBLING_FILLED)  # the target child
    assert out["balance"] == 9_995.0


def test_gap_through_stop_fills_at_the_open(tmp_path):
    # R8.4: the bar opens below a sell stop: the fill is at the open (93), not the stop (95)
    rows = [B(0, 100, 100, 100, 100), B(1, 100, 100, 100, 100), B(2, 93, 96, 92, 94)]
    out = both(tmp_path, rows, [sub(0, MKT, BUY, 1.0), sub(1, STP, SELL, 1.0, stop=95.0, ro=True)])
    assert fills(out) == [(1, BUY, 100.0, 1.0, TAKER), (2, SELL, 93.0, 1.0, TAKER)]


def test_stop_inside_a_bar_fills_at_the_stop(tmp_path):
    rows = [B(0, 100, 100, 100, 100), B(1, 100, 100, 100, 100), B(2, 99, 99.5, 90, 91)]
    out = both(tmp_path, rows, [sub(0, MKT, BUY, 1.0), sub(1, STP, SELL, 1.0, stop=95.0, ro=True)])
    assert fills(out)[1] == (2, SELL, 95.0, 1.0, TAKER)
    assert out["equity_after_fills"][1] == 9_995.0


@pytest.mark.parametrize("touch, want", [(False, [(2, BUY, 99.0, 1.0, MAKER)]),
                                         (True, [(1, BUY, 99.0, 1.0, MAKER)])])
def test_buy_limit_fills_only_strictly_through(tmp_path, touch, want):
    # R8.6: low == limit is not a fill (unless touch_fills); low < limit fills at the limit
    rows = [B(0, 100, 100, 100, 100), B(1, 100, 101, 99, 100), B(2, 100, 100.5, 98.5, 99.5)]
    out = both(tmp_path, rows, [sub(0, LMT, BUY, 1.0, limit=99.0)], touch=touch)
    assert fills(out) == want


def test_sell_limit_fills_strictly_through_the_high(tmp_path):
    rows = [B(0, 100, 100, 100, 100), B(1, 100, 102, 99, 100), B(2, 100, 102.5, 99, 100)]
    out = both(tmp_path, rows, [sub(0, LMT, SELL, 1.0, limit=102.0)])
    assert fills(out) == [(2, SELL, 102.0, 1.0, MAKER)]


def test_marketable_limit_fills_at_the_open(tmp_path):
    # R8.5: buy limit 101 arriving at a bar that opens at 100: taker at the open
    out = both(tmp_path, [B(0, 100, 100, 100, 100), B(1, 100, 102, 99, 101)],
               [sub(0, LMT, BUY, 1.0, limit=101.0)])
    assert fills(out) == [(1, BUY, 100.0, 1.0, TAKER)]


def test_ioc_limit_not_marketable_at_the_open_expires(tmp_path):
    # R8.5: IOC is decided at the open only, even if the low trades through later
    out = both(tmp_path, [B(0, 100, 100, 100, 100), B(1, 100, 100, 95, 100)],
               [sub(0, LMT, BUY, 1.0, limit=99.0, tif=IOC)])
    assert fills(out) == []
    assert status(out, 1) == (S.EXPIRED, R.IOC_UNFILLED)


def test_stop_limit_rests_after_trigger_then_fills_at_favourable_extreme(tmp_path):
    # R8.4/R8.5/R8.6: sell stop-limit stop 95 limit 95.5: triggered at 95 on the way to the low
    # (P1), not marketable (95 < 95.5), rests; P2 = high 100.5 > 95.5 -> maker at 95.5
    out = both(tmp_path, [B(0, 100, 100, 100, 100), B(1, 100, 100.5, 94, 94)],
               [sub(0, STPL, SELL, 1.0, limit=95.5, stop=95.0)])
    assert fills(out) == [(1, SELL, 95.5, 1.0, MAKER)]


def test_take_profit_fills_at_its_price_not_the_extreme(tmp_path):
    # a short's take-profit (buy, TP 95) in a bar with low 94: filled at 95
    rows = [B(0, 100, 100, 100, 100), B(1, 100, 100, 100, 100), B(2, 99, 99.5, 94, 96)]
    out = both(tmp_path, rows, [sub(0, MKT, SELL, 1.0), sub(1, TPM, BUY, 1.0, stop=95.0, ro=True)])
    assert fills(out) == [(1, SELL, 100.0, 1.0, TAKER), (2, BUY, 95.0, 1.0, TAKER)]
    assert out["balance"] == 10_005.0


def test_trailing_stop_follows_the_high_then_fills_on_the_close_leg(tmp_path):
    # R8.4 + R3.8: sell trailing, trail 2, arrives at O100: P0 ref 100 stop 98; P1 low 99.5;
    # P2 high 104: ref 104, stop 102; P3 close 101 <= 102: reached at the stop, 102
    out = both(tmp_path, [B(0, 100, 100, 100, 100), B(1, 100, 104, 99.5, 101)],
               [sub(0, TRL, SELL, 1.0, trail=2.0)])
    assert fills(out) == [(1, SELL, 102.0, 1.0, TAKER)]


def test_order_waits_for_latency_across_bars(tmp_path):
    # R8.1: latency longer than a bar: the order arrives at the bar after next
    rows = [B(0, 100, 100, 100, 100), B(1, 101, 101, 101, 101), B(2, 102, 102, 102, 102)]
    out = both(tmp_path, rows, [sub(0, MKT, BUY, 1.0)], latency_ns=MIN + 1)
    assert fills(out) == [(2, BUY, 102.0, 1.0, TAKER)]


def test_liquidation_inside_a_bar_that_closes_higher(tmp_path):
    # R8.7: balance 15, long 1 at 100 (10x, mmr 0.4 %): the margin balance 15 + (P - 100) reaches
    # the maintenance margin 0.004 P at P <= 85.34. Bar 2 dips to 84 and closes at 99: the
    # position is liquidated at the low, although the close alone would not breach.
    from backtest.data.instruments import Bracket
    ev = events(B(0, 100, 100, 100, 100), B(1, 100, 100, 100, 100), B(2, 100, 101, 84, 99),
                B(3, 99, 99, 99, 99))
    root = tmp_path / "ds"
    write_bars(root, ev)
    write_instruments(root / "instruments.json", {"S0": Instrument(
        "S0", "linear_perpetual", "S0", "USDT", "USDT", tick_size=0.5, lot_size=0.25,
        maker_fee_rate=0.0, taker_fee_rate=0.0, brackets=(Bracket(0.0, 1e12, 125.0, 0.004, 0.0),))})
    state = BarScripted.new_state({}, ["S0"])
    load_script(state, [sub(0, MKT, BUY, 1.0)])
    res = bt.run(BarScripted, root, symbols=["S0"], state=state,
                 config=dict(initial_balance=15.0, sample_interval="0", leverage={"S0": 10.0}))
    assert res.liquidations.height == 1
    liq = res.liquidations.row(0, named=True)
    assert liq["ts_ns"] == T0 + 3 * MIN and liq["mark_price"] == 84.0 and liq["qty"] == 1.0
    assert res.headline["positions"] == {"S0": 0.0}
    assert res.headline["liquidations"] == 1


def test_strategy_without_on_bar_refuses_candles(tmp_path):
    # bar matching compiles only with on_bar (R8.1): a strategy without it is refused, not run
    # with orders that would never be matched
    ev = events(B(0, 100, 100, 100, 100))
    write_bars(tmp_path / "ds", ev)
    with pytest.raises(StrategyError, match="no on_bar hook"):
        bt.run(Scripted, tmp_path / "ds", symbols=["S0"], config=dict(sample_interval="0"))


@pytest.mark.slow
def test_hand_worked_examples_without_jit(tmp_path):
    # the same examples on the pure-Python backend (NUMBA_DISABLE_JIT=1, as `--no-jit`)
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "CASCADE_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": f"{ROOT}{os.pathsep}{Path(__file__).parent}"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                        "-k", "not random and not cli_import and not without_jit"],
                       env=env, capture_output=True, text=True, timeout=900, cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout[-3000:]
    assert " passed" in r.stdout and "failed" not in r.stdout


# ------------------------------------------------------------------------------ engine == oracle
def random_bars(rng, nsym):
    n = int(rng.integers(20, 80))
    rows, level = [], [100.0] * nsym
    for i in range(n):
        for s in range(nsym):
            if rng.random() < 0.3:
                continue
            o = level[s] + float(rng.integers(-3, 4)) * 0.5
            c = o + float(rng.integers(-6, 7)) * 0.5
            h = max(o, c) + float(rng.integers(0, 5)) * 0.5
            lo = min(o, c) - float(rng.integers(0, 5)) * 0.5
            level[s] = c
            rows.append(B(i, o, h, lo, c, sym=s))
    return rows


def random_script(rng, ev, nsym):
    from test_oracle_equivalence import make_script
    return make_script(rng, ev, nsym)


@pytest.mark.parametrize("seed", range(25))
def test_random_bars_engine_equals_oracle(tmp_path, seed):
    rng = np.random.default_rng(1000 + seed)
    nsym = int(rng.integers(1, 3))
    ev = events(*random_bars(rng, nsym))
    script = random_script(rng, ev, nsym)
    touch = bool(rng.random() < 0.3)
    latency = int(rng.choice([0, 0, MIN // 2, MIN]))
    chunk = int(rng.choice([3, 64, 1 << 20]))
    inst = [dict(PERP) for _ in range(nsym)]
    want = simulate(ev, inst, dict(initial_balance=10_000.0, latency_ns=latency,
                                        touch_fills=touch), script)
    got = engine(tmp_path / "ds", ev, script, touch=touch, latency_ns=latency,
                 chunk_rows=chunk, nsym=nsym)
    assert got["results"] == [int(x) for x in want["results"]]
    assert got["fills"] == [{k: f[k] for k in FILL_COLS} for f in want["fills"]]
    assert got["orders"] == [{k: o[k] for k in ORDER_COLS} for o in want["orders"]]
    assert got["balance"] == want["balance"]
    assert got["positions"] == want["positions"]
    assert got["equity_after_fills"] == want["equity_after_fills"]


# ------------------------------------------------------------------------------ importers
from backtest.data.importers import parse_file  # noqa: E402
from backtest.errors import DataError  # noqa: E402

FIX_BARS = [  # (close ts_ns, open, high, low, close, volume) of binance-futures-klines-1m.csv
    (T0 + 1 * MIN, 62000.0, 62050.0, 61950.0, 62000.0, 120.512),
    (T0 + 2 * MIN, 62010.0, 62100.0, 61990.0, 62050.0, 98.004),
    (T0 + 3 * MIN, 62050.0, 62400.0, 61700.0, 62100.0, 310.25),
    (T0 + 4 * MIN, 62100.0, 62150.0, 62000.0, 62120.0, 75.3),
]


def rows_of(cols):
    return list(zip(*(cols[k].tolist() for k in ("ts_ns", "open", "high", "low", "close", "volume"))))


def test_parse_binance_klines_with_header_ms():
    kind, cols = parse_file(FIXTURES / "binance-futures-klines-1m.csv", "binance-klines")
    assert kind == "bars"
    assert rows_of(cols) == FIX_BARS  # stamped at the interval's end: close_time + 1 ms


def test_parse_binance_spot_klines_headerless_us():
    _, cols = parse_file(FIXTURES / "binance-spot-klines-1m-us.csv", "binance-klines")
    assert cols["ts_ns"].tolist() == [T0 + MIN, T0 + 2 * MIN]  # close_time + 1 µs
    assert cols["volume"].tolist() == [12.0512, 9.8004]


def test_parse_ohlcv_csv_iso_times_and_parquet(tmp_path):
    _, cols = parse_file(FIXTURES / "ohlcv-1m.csv", "ohlcv")
    assert rows_of(cols) == FIX_BARS[:2]  # interval = the step between bars (1 min)
    import polars as pl
    f = tmp_path / "bars.parquet"
    pl.DataFrame({"ts": [1770249600, 1770249660], "open": [62000.0, 62010.0],
                  "high": [62050.0, 62100.0], "low": [61950.0, 61990.0],
                  "close": [62000.0, 62050.0], "volume": [120.512, 98.004],
                  "close_ts": [1770249660, 1770249720]}).write_parquet(f)
    _, cols = parse_file(f, "ohlcv")
    assert rows_of(cols) == FIX_BARS[:2]


@pytest.mark.parametrize("line, col", [
    ("1770249600000,62000,61990,61950,62000,1,1770249659999,0,0,0,0,0", "high"),  # high < open
    ("1770249600000,62000,62050,61950,62000,-1,1770249659999,0,0,0,0,0", "volume"),
    ("1770249600000,62000,62050,61950,62000,1,1770249500000,0,0,0,0,0", "close_time"),
    ("1770249600000,62000,62050,abc,62000,1,1770249659999,0,0,0,0,0", "low"),
])
def test_bad_kline_line_names_file_line_column(tmp_path, line, col):
    f = tmp_path / "k.csv"
    f.write_text(",".join(KLINE_HEADER) + "\n" + FIX_LINE + "\n" + line + "\n")
    with pytest.raises(DataError) as e:
        parse_file(f, "binance-klines")
    assert f"{f}:3" in str(e.value) and col in str(e.value)


def test_single_ohlcv_bar_without_close_ts_is_refused(tmp_path):
    f = tmp_path / "one.csv"
    f.write_text("ts,open,high,low,close,volume\n1770249600000,1,1,1,1,1\n")
    with pytest.raises(DataError, match="close_ts"):
        parse_file(f, "ohlcv")


def _ohlcv_frame(n, step_s=60, t0=1770249600):
    import polars as pl
    return pl.DataFrame({"TS": [t0 + step_s * k for k in range(n)], "open": [100.0] * n,
                         "high": [101.0] * n, "low": [99.0] * n, "close": [100.5] * n,
                         "volume": [float(k) for k in range(n)]})


def test_parquet_ohlcv_read_in_batches_equals_whole(tmp_path, monkeypatch):
    # Parquet is streamed by batches: the interval (state) carries across them, any batch size
    from backtest.data import importers
    f = tmp_path / "bars.parquet"
    _ohlcv_frame(7).write_parquet(f)
    _, whole = parse_file(f, "ohlcv")
    monkeypatch.setattr(importers, "PARQUET_ROWS", 2)
    _, batched = parse_file(f, "ohlcv")
    assert rows_of(batched) == rows_of(whole)
    assert batched["ts_ns"].tolist() == [T0 + (k + 1) * MIN for k in range(7)]


def test_ohlcv_interval_smaller_in_a_later_batch_is_refused(tmp_path, monkeypatch):
    # the interval is taken from the first batch; never stamp bars with a wrong interval
    import polars as pl
    from backtest.data import importers
    f = tmp_path / "bars.parquet"
    df = _ohlcv_frame(4)
    pl.concat([df, df.with_columns(pl.col("TS") + 240 - 30)]).write_parquet(f)  # 30 s steps later
    monkeypatch.setattr(importers, "PARQUET_ROWS", 4)
    with pytest.raises(DataError, match="close_ts") as e:
        parse_file(f, "ohlcv")
    assert f"{f}:5" in str(e.value) and "ts" in str(e.value)


def test_ohlcv_iso_offset_and_bad_time(tmp_path):
    f = tmp_path / "b.csv"
    f.write_text("ts,open,high,low,close,volume\n2026-02-05T01:00:00+01:00,1,1,1,1,1\n"
                 "2026-02-05T00:01:00Z,1,1,1,1,1\n")
    _, cols = parse_file(f, "ohlcv")
    assert cols["ts_ns"].tolist() == [T0 + MIN, T0 + 2 * MIN]
    f.write_text("ts,open,high,low,close,volume\n2026-02-05T00:00:00Z,1,1,1,1,1\nyesterday,1,1,1,1,1\n")
    with pytest.raises(DataError, match="not a time") as e:
        parse_file(f, "ohlcv")
    assert f"{f}:3" in str(e.value)


def test_inconsistent_candle_names_the_bad_column(tmp_path):
    # the importer and `data validate` share the rule (validate.candle_problem) and name the
    # column at fault: low above the open here, high below the close on the next line
    f = tmp_path / "b.csv"
    f.write_text("ts,open,high,low,close,volume\n1770249600,10,12,10.5,11,1\n1770249660,10,12,9,11,1\n")
    with pytest.raises(DataError, match="inconsistent candle") as e:
        parse_file(f, "ohlcv")
    assert e.value.column == "low" and f"{f}:2" in str(e.value)
    f.write_text("ts,open,high,low,close,volume\n1770249600,10,12,9,11,1\n1770249660,10,10.5,9,11,1\n")
    with pytest.raises(DataError, match="inconsistent candle") as e:
        parse_file(f, "ohlcv")
    assert e.value.column == "high" and f"{f}:3" in str(e.value)


def test_csv_format_refuses_parquet(tmp_path):
    f = tmp_path / "k.parquet"
    _ohlcv_frame(2).write_parquet(f)
    with pytest.raises(DataError, match="not Parquet"):
        parse_file(f, "binance-klines")


def test_validate_refuses_an_inconsistent_candle(tmp_path):
    from backtest.data.validate import validate_dataset
    ev = events(B(0, 100, 101, 99, 100), B(1, 100, 99.5, 99, 100))  # high below the open
    write_bars(tmp_path / "ds", ev)
    with pytest.raises(DataError, match="inconsistent candle") as e:
        validate_dataset(tmp_path / "ds")
    assert "high" in str(e.value) and "kind=bars" in str(e.value)


KLINE_HEADER = ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
                "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore")
FIX_LINE = "1770249540000,62000,62050,61950,62000,1,1770249599999,0,0,0,0,0"


# ------------------------------------------------------------------------------ end to end (CLI)
from cli_helpers import BACKTEST  # noqa: E402


def cli(*args, timeout=900):
    r = subprocess.run([*BACKTEST, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "PYTHONPATH": f"{ROOT}:{Path(__file__).parent}"})
    assert r.returncode == 0, r.stderr
    return r


@pytest.mark.slow
def test_cli_import_klines_run_on_bar_jit_and_no_jit(tmp_path):
    # BarBracket buys at the first bar's close with stop 61800 / target 62300: the entry fills at
    # bar 2's open (62010); bar 3 (low 61700, high 62400) holds both: the stop fills (61800), the
    # target is cancelled. Fees 0.05 % taker. Same results with JIT on and --no-jit.
    ds = tmp_path / "ds"
    cli("data", "import", "--format", "binance-klines", "--symbol", "BTCUSDT", "--out", ds,
        "--instruments", FIXTURES / "instruments.json", "--quiet",
        FIXTURES / "binance-futures-klines-1m.csv")
    strat = f"{Path(__file__).parent / 'bar_strategies.py'}:BarBracket"
    outs = {}
    for name, extra in (("jit", []), ("py", ["--no-jit"])):
        r = cli("run", strat, "--data", ds, "--out", tmp_path / name, "--json", *extra)
        outs[name] = (json.loads(r.stdout), bt.Result.load(tmp_path / name))
    (ja, ra), (jb, rb) = outs["jit"], outs["py"]
    assert ja["timings"]["jit"] is True and jb["timings"]["jit"] is False
    for res in (ra, rb):
        f = res.fills.select("ts_ns", "side", "price", "qty", "fee", "realized_pnl").to_dicts()
        assert f == [
            dict(ts_ns=T0 + 2 * MIN, side=1, price=62010.0, qty=0.01, fee=0.01 * 62010.0 * 0.0005,
                 realized_pnl=0.0),
            dict(ts_ns=T0 + 3 * MIN, side=-1, price=61800.0, qty=0.01, fee=0.01 * 61800.0 * 0.0005,
                 realized_pnl=0.01 * (61800.0 - 62010.0)),
        ]
        st = dict(zip(res.orders["oid"].to_list(), zip(res.orders["status"].to_list(),
                                                       res.orders["reason"].to_list())))
        assert st[3] == (int(S.CANCELED), int(R.OCO_SIBLING_FILLED))
    assert ra.fills.equals(rb.fills) and ra.equity.equals(rb.equity)


def test_on_bar_gets_each_bar_at_its_close(tmp_path):
    from bar_strategies import BarBracket
    ds = tmp_path / "ds"
    from backtest.data.importers import import_files
    import_files([FIXTURES / "binance-futures-klines-1m.csv"], fmt="binance-klines", symbol="BTCUSDT",
                 out=ds, instruments=FIXTURES / "instruments.json")
    st = BarBracket.new_state({}, ["BTCUSDT"])
    res = bt.run(BarBracket, ds, symbols=["BTCUSDT"], config=dict(sample_interval="1m"), state=st)
    r = st[0]
    assert r.n == 4
    got = [(int(r.ts[k]), *map(float, r.ohlcv[k])) for k in range(4)]
    assert got == FIX_BARS
    assert r.sy[:4].tolist() == [0, 0, 0, 0]
    assert res.headline["positions"] == {"BTCUSDT": 0.0}
    # equity is recorded as usual: sample rows at each minute plus one per fill
    assert res.equity.height >= 4 + 2
    # the bars table aggregates the input candles: the row at minute m holds the candle that
    # closed at minute m - 1 (a sample row has the state before the events at its time), and the
    # final row the last candle
    got = res.bars.select("ts_ns", "open", "high", "low", "close", "volume").rows()
    assert got == [(T0 + 2 * MIN, *FIX_BARS[0][1:]), (T0 + 3 * MIN, *FIX_BARS[1][1:]),
                   (T0 + 4 * MIN, *FIX_BARS[2][1:]), (T0 + 4 * MIN, *FIX_BARS[3][1:])]
