"""End to end on the February 2026 crash dataset: leverage decides who survives."""
import polars as pl
import pytest

import backtest as bt
from backtest import margin
from backtest.data.generate import generate_dataset
from backtest.data.instruments import load_instruments

from lev_strategies import LevLong


@pytest.fixture(scope="module")
def crash(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash") / "feb"
    generate_dataset("feb-2026-crash", root, seed=3, scale=0.1)
    return root


def run_long(root, leverage, mode="isolated"):
    return bt.run(LevLong, root, params={"leverage": leverage}, symbols=["BTCUSDT"],
                  config={"leverage": {"BTCUSDT": leverage}, "initial_balance": 10_000.0,
                          "margin": {"mode": mode}})


def test_20x_long_near_70k_is_liquidated_at_the_mark_crossing_its_liquidation_price(crash):
    res = run_long(crash, 20.0)
    entry = res.fills.row(0, named=True)
    assert 69_000 < entry["price"] <= 70_100
    liq = res.liquidations
    assert len(liq) == 1
    row = liq.row(0, named=True)
    # the published formula at entry: isolated margin = notional / 20
    brackets = load_instruments(crash)["BTCUSDT"].brackets
    wallet = entry["qty"] * entry["price"] / 20.0
    lp = margin.liquidation_price(1, entry["qty"], entry["price"], wallet, brackets)
    assert row["mark_price"] <= lp
    # ... and it is the FIRST valuation price at or below it: every earlier bar's low mark was above
    bars = res.bars.filter((pl.col("symbol") == "BTCUSDT") & (pl.col("ts_ns") < row["ts_ns"]) &
                           (pl.col("ts_ns") > entry["ts_ns"] + 60_000_000_000))
    assert (bars["mark"] > lp).all()
    assert row["bankruptcy_price"] < row["mark_price"]
    # the isolated margin is the most it can lose (plus the opening fee)
    loss = 10_000.0 - res.headline["final_equity"]
    assert loss <= wallet + entry["fee"] + 1e-6
    assert loss >= wallet - 1e-6  # bankruptcy settlement: the whole margin is gone
    assert res.headline["liquidations"] == 1
    assert res.manifest["strategy"]["state"]["liquidated"] == 1
    # the margin left at the trigger went to the insurance fund
    assert row["insurance_fund_change"] > 0
    fills = res.fills.filter(pl.col("liquidity") == int(bt.Liquidity.LIQUIDATION))
    assert len(fills) == 1 and fills["position_after"][0] == 0.0


def test_2x_long_survives_the_crash(crash):
    res = run_long(crash, 2.0)
    assert len(res.liquidations) == 0
    assert res.headline["positions"]["BTCUSDT"] > 0
    low = res.bars.filter(pl.col("symbol") == "BTCUSDT")["low"].min()
    assert low < 61_000  # it did live through the crash


def test_cross_20x_long_is_liquidated_too_and_equity_identity_holds(crash):
    res = run_long(crash, 20.0, mode="cross")
    assert len(res.liquidations) == 1
    h = res.headline
    assert h["balance"] == pytest.approx(10_000.0 + h["realized_pnl"] - h["fees"] + h["funding"]
                                         + h["insurance_payout"], abs=1e-6)
    eq = res.equity
    assert ((eq["equity"] - (eq["balance"] + eq["upnl"])).abs() < 1e-6).all()


def test_tiered_partial_liquidation_reduces_to_the_lower_bracket_first(tmp_path):
    """A position just inside a high-MMR bracket: cutting it below the bracket's floor restores
    the margin, so only the excess is liquidated (margin.partial); without it, all of it goes."""
    import numpy as np

    from backtest.data.instruments import Bracket, Instrument, write_instruments
    from backtest.data.writer import write_stream

    root = tmp_path / "d"
    prices = np.concatenate([[60_000.0, 60_000.0], np.linspace(59_990, 55_000, 500)])
    ts = 1_770_163_200_000_000_000 + np.arange(len(prices)) * 1_000_000_000
    write_stream(root, "trades", "BTCUSDT", dict(ts_ns=ts, price=prices, qty=np.ones(len(ts)),
                                                 side=np.ones(len(ts), np.int8)))
    # tier 1 up to 50k at 0.4%; tier 2 at 5% (cum = 50k * (5% - 0.4%) = 2,300)
    brackets = (Bracket(0, 50_000, 50, 0.004, 0.0), Bracket(50_000, 1e9, 20, 0.05, 2_300.0))
    write_instruments(root / "instruments.json", {"BTCUSDT": Instrument(
        "BTCUSDT", "linear_perpetual", "BTC", "USDT", "USDT", 0.1, 0.001, maker_fee_rate=0.0,
        taker_fee_rate=0.0, brackets=brackets)})
    cfg = {"leverage": {"BTCUSDT": 20.0}, "initial_balance": 3_100.0, "sample_interval": "0",
           "margin": {"mode": "isolated", "liquidation_fee_rate": 0.0}}
    full = bt.run(LevLong, root, params={"leverage": 20.0, "entry": 61_000.0}, config=cfg)
    part = bt.run(LevLong, root, params={"leverage": 20.0, "entry": 61_000.0},
                  config={**cfg, "margin": {**cfg["margin"], "partial": True}})
    assert full.fills["qty"][0] == part.fills["qty"][0] and full.fills["qty"][0] * 60_000 > 50_000
    assert full.headline["positions"]["BTCUSDT"] == 0.0
    first = part.liquidations.row(0, named=True)
    kept = part.fills["qty"][0] - first["qty"]
    assert 0 < kept * first["mark_price"] < 50_000  # reduced to just below the lower bracket
    assert first["mark_price"] == full.liquidations["mark_price"][0]  # at the same trigger


def test_l2_liquidation_walks_the_crash_book_with_its_cost_attributed(crash):
    """#16: under l2_depth a 20x long of ~70 BTC, liquidated and sold at the market, walks the
    generated crash book below its best bid, and the fill records its benchmark (the mark at the
    trigger) and the cost below it."""
    res = bt.run(LevLong, crash, params={"leverage": 20.0}, symbols=["BTCUSDT"],
                 config={"leverage": {"BTCUSDT": 20.0}, "initial_balance": 250_000.0,
                         "execution": {"slippage": "l2_depth"},
                         "margin": {"mode": "isolated", "settle": "market"}})
    liq = res.fills.filter(pl.col("liquidity") == 2)
    assert liq.height == 1
    f = liq.row(0, named=True)
    book = pl.read_parquet(crash / "kind=book" / "symbol=BTCUSDT").filter(pl.col("ts_ns") <= f["ts_ns"])
    snap = book.filter(pl.col("ts_ns") == book["ts_ns"].max()).sort("level")
    assert f["price"] < snap["bid"][0]  # past the touch: the sale took several levels
    quotes = pl.read_parquet(crash / "kind=quotes" / "symbol=BTCUSDT").filter(pl.col("ts_ns") <= f["ts_ns"])
    assert f["price"] < quotes["bid"][-1]  # and below the best bid quoted when it was sold
    assert f["bench_price"] > f["price"] and f["cost_impact"] > 0.0
    assert f["cost_impact"] + f["cost_spread"] + f["cost_drift"] == pytest.approx(
        (f["bench_price"] - f["price"]) * f["qty"], rel=1e-9)
