"""round_trips(): hand-computed round trips, including adds, partial closes, flips and liquidations."""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from backtest.core.schema import FILL_DTYPE, Liquidity, OrderType, Side
from backtest.trades import TRADE_SCHEMA, round_trips

S = 1_000_000_000


def fills_frame(rows, symbols=("BTCUSDT", "ETHUSDT"), with_symbol=True) -> pl.DataFrame:
    """rows: (t_s, sym, side, qty, price, fee, realized_pnl, position_after[, liquidity, order_type])."""
    arr = np.zeros(len(rows), dtype=FILL_DTYPE)
    for i, r in enumerate(rows):
        t, sym, side, qty, price, fee, rpnl, pos = r[:8]
        liq = r[8] if len(r) > 8 else Liquidity.TAKER
        otype = r[9] if len(r) > 9 else OrderType.MARKET
        arr[i] = (t * S, i, i + 1, sym, int(side), int(liq), int(otype), qty, price, fee, rpnl, 0.0,
                  pos, 0.0) + (0.0,) * (len(FILL_DTYPE.names) - 14)  # cost attribution fields
    df = pl.DataFrame({n: arr[n] for n in FILL_DTYPE.names})
    if with_symbol:
        df = df.insert_column(4, pl.Series("symbol", [symbols[s] for s in arr["sym"]]))
    return df


def one(df: pl.DataFrame, **where) -> dict:
    for k, v in where.items():
        df = df.filter(pl.col(k) == v)
    assert df.height == 1, df
    return df.row(0, named=True)


def test_simple_long_round_trip():
    f = fills_frame([
        (10, 0, Side.BUY, 1.0, 100.0, 0.10, 0.0, 1.0),
        (20, 0, Side.SELL, 1.0, 110.0, 0.11, 10.0, 0.0),
    ])
    t = round_trips(f)
    assert t.schema == pl.Schema(TRADE_SCHEMA)
    r = t.row(0, named=True)
    assert r["symbol"] == "BTCUSDT" and r["direction"] == 1
    assert (r["entry_ts_ns"], r["exit_ts_ns"]) == (10 * S, 20 * S)
    assert r["qty"] == 1.0 and r["entry_price"] == 100.0 and r["exit_price"] == 110.0
    assert r["gross_pnl"] == pytest.approx(10.0)
    assert r["fees"] == pytest.approx(0.21)
    assert r["net_pnl"] == pytest.approx(9.79)
    assert r["return_pct"] == pytest.approx(9.79 / 100.0)
    assert r["n_fills"] == 2 and not r["liquidated"] and not r["open"]


def test_add_then_partial_close_then_close():
    # buy 2 @100, buy 1 @103 (avg 101), sell 1 @105 (+4), sell 2 @99 (-4)
    f = fills_frame([
        (1, 0, Side.BUY, 2.0, 100.0, 0.2, 0.0, 2.0),
        (2, 0, Side.BUY, 1.0, 103.0, 0.1, 0.0, 3.0),
        (3, 0, Side.SELL, 1.0, 105.0, 0.1, 4.0, 2.0),
        (4, 0, Side.SELL, 2.0, 99.0, 0.2, -4.0, 0.0),
    ])
    t = round_trips(f)
    assert t.height == 1
    r = t.row(0, named=True)
    assert r["qty"] == 3.0  # max absolute position
    assert r["entry_price"] == pytest.approx(101.0)  # (2*100 + 103) / 3
    assert r["exit_price"] == pytest.approx(101.0)  # (105 + 2*99) / 3
    assert r["gross_pnl"] == pytest.approx(0.0)
    assert r["fees"] == pytest.approx(0.6)
    assert r["net_pnl"] == pytest.approx(-0.6)
    assert r["return_pct"] == pytest.approx(-0.6 / 303.0)
    assert r["n_fills"] == 4 and r["exit_ts_ns"] == 4 * S


def test_flip_splits_fee_and_opens_new_trade_then_liquidation():
    # short 2 @50; buy 5 @45 flips to long 3 (+10 realised, fee 0.5 split 2:3); liquidated 3 @40
    f = fills_frame([
        (1, 1, Side.SELL, 2.0, 50.0, 0.1, 0.0, -2.0),
        (2, 1, Side.BUY, 5.0, 45.0, 0.5, 10.0, 3.0),
        (3, 1, Side.SELL, 3.0, 40.0, 1.2, -15.0, 0.0, Liquidity.LIQUIDATION),
    ])
    t = round_trips(f)
    assert t.height == 2
    short = one(t, direction=-1)
    assert short["symbol"] == "ETHUSDT"
    assert (short["entry_ts_ns"], short["exit_ts_ns"]) == (1 * S, 2 * S)
    assert short["qty"] == 2.0 and short["entry_price"] == 50.0 and short["exit_price"] == 45.0
    assert short["gross_pnl"] == pytest.approx(10.0)
    assert short["fees"] == pytest.approx(0.1 + 0.5 * 2 / 5)
    assert short["net_pnl"] == pytest.approx(9.7)
    assert short["return_pct"] == pytest.approx(9.7 / 100.0)
    assert short["n_fills"] == 2 and not short["liquidated"]
    long = one(t, direction=1)
    assert (long["entry_ts_ns"], long["exit_ts_ns"]) == (2 * S, 3 * S)
    assert long["qty"] == 3.0 and long["entry_price"] == 45.0 and long["exit_price"] == 40.0
    assert long["gross_pnl"] == pytest.approx(-15.0)  # the flip's realised PnL stays with the short
    assert long["fees"] == pytest.approx(0.5 * 3 / 5 + 1.2)
    assert long["net_pnl"] == pytest.approx(-16.5)
    assert long["return_pct"] == pytest.approx(-16.5 / 135.0)
    assert long["n_fills"] == 2 and long["liquidated"] and not long["open"]
    # the fees of the trades add up to the fees of the fills
    assert t["fees"].sum() == pytest.approx(f["fee"].sum())


def test_open_trade_with_partial_close():
    f = fills_frame([
        (5, 0, Side.BUY, 1.0, 10.0, 0.01, 0.0, 1.0),
        (6, 0, Side.SELL, 0.4, 12.0, 0.005, 0.8, 0.6),
    ])
    r = round_trips(f).row(0, named=True)
    assert r["open"] and r["exit_ts_ns"] is None
    assert r["exit_price"] == pytest.approx(12.0) and r["qty"] == 1.0
    assert r["gross_pnl"] == pytest.approx(0.8) and r["net_pnl"] == pytest.approx(0.785)


def test_open_trade_without_closing_fill_has_null_exit_price():
    r = round_trips(fills_frame([(5, 0, Side.SELL, 2.0, 10.0, 0.0, 0.0, -2.0)])).row(0, named=True)
    assert r["open"] and r["direction"] == -1 and r["exit_price"] is None and r["exit_ts_ns"] is None


def test_symbols_are_independent_and_output_sorted_by_entry():
    f = fills_frame([
        (1, 0, Side.BUY, 1.0, 100.0, 0.0, 0.0, 1.0),
        (2, 1, Side.SELL, 1.0, 20.0, 0.0, 0.0, -1.0),
        (3, 0, Side.SELL, 1.0, 101.0, 0.0, 1.0, 0.0),
        (4, 0, Side.BUY, 2.0, 99.0, 0.0, 0.0, 2.0),
        (5, 1, Side.BUY, 1.0, 19.0, 0.0, 1.0, 0.0),
    ])
    t = round_trips(f)
    assert t["symbol"].to_list() == ["BTCUSDT", "ETHUSDT", "BTCUSDT"]
    assert t["entry_ts_ns"].to_list() == [1 * S, 2 * S, 4 * S]
    assert t["open"].to_list() == [False, False, True]
    assert t["gross_pnl"].to_list() == [1.0, 1.0, 0.0]


def test_unsorted_input_and_float_dust_are_handled():
    f = fills_frame([
        (3, 0, Side.SELL, 0.3, 110.0, 0.0, 3.0, 1e-17),  # 0.1 + 0.2 - 0.3 in floats: flat
        (1, 0, Side.BUY, 0.1, 100.0, 0.0, 0.0, 0.1),
        (2, 0, Side.BUY, 0.2, 100.0, 0.0, 0.0, 0.30000000000000004),
    ])
    t = round_trips(f)
    assert t.height == 1 and not t["open"][0]
    assert t["qty"][0] == pytest.approx(0.3) and t["n_fills"][0] == 3


def test_empty_and_symbol_less_fills():
    e = round_trips(fills_frame([]))
    assert e.height == 0 and e.schema == pl.Schema(TRADE_SCHEMA)
    assert round_trips(pl.DataFrame()).height == 0
    f = fills_frame([(1, 1, Side.BUY, 1.0, 5.0, 0.0, 0.0, 1.0)], with_symbol=False)
    assert round_trips(f)["symbol"].to_list() == ["1"]


def test_missing_columns_raise():
    with pytest.raises(ValueError, match="position_after"):
        round_trips(pl.DataFrame({"ts_ns": [1], "sym": [0], "qty": [1.0], "price": [1.0],
                                  "fee": [0.0], "realized_pnl": [0.0], "liquidity": [1]}))


def test_short_liquidation_flag_only_on_closing_fills():
    f = fills_frame([
        (1, 0, Side.SELL, 1.0, 100.0, 0.0, 0.0, -1.0, Liquidity.LIQUIDATION),  # odd, but an opener
        (2, 0, Side.BUY, 1.0, 90.0, 0.0, 10.0, 0.0),
    ])
    assert not round_trips(f)["liquidated"][0]


def test_matches_synthetic_crash_run():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_report import make_crash_result

    r = make_crash_result()
    t = round_trips(r.fills)
    # BTC: long (0.8 + 0.3, 0.3 taken off, liquidated), ETH: short flipped long, closed by stop,
    # BTC dip buy still open
    assert t.height == 4
    assert t.filter(pl.col("liquidated"))["symbol"].to_list() == ["BTCUSDT"]
    assert t.filter(pl.col("open"))["symbol"].to_list() == ["BTCUSDT"]
    assert t["fees"].sum() == pytest.approx(r.fills["fee"].sum())
    closed = t.filter(~pl.col("open"))
    assert closed["gross_pnl"].sum() == pytest.approx(r.fills["realized_pnl"].sum())
    assert math.isclose(one(t, liquidated=True)["qty"], 1.1)
