"""A linear isolated position liquidated at a gap far through its bankruptcy price, by hand.

The isolated margin is the most the position loses (docs/margin.md): the wallet loses exactly
the margin (the clearance fee is capped by the margin left, here nothing), the insurance fund
pays the shortfall once, and nothing is credited back to the wallet.
"""
import math

import numpy as np
import polars as pl
import pytest

import backtest as bt
from backtest.data.instruments import Bracket, Instrument, write_instruments
from backtest.data.writer import write_stream

from lev_strategies import LevLong

T0 = 1_770_163_200_000_000_000
FUND = 1_000_000.0


def _gap_dataset(root, prices):
    ts = T0 + np.arange(len(prices)) * 1_000_000_000
    write_stream(root, "trades", "BTCUSDT", dict(ts_ns=ts, price=np.asarray(prices, float),
                                                 qty=np.ones(len(ts)), side=np.ones(len(ts), np.int8)))
    write_instruments(root / "instruments.json", {"BTCUSDT": Instrument(
        "BTCUSDT", "linear_perpetual", "BTC", "USDT", "USDT", 0.1, 0.001, maker_fee_rate=0.0,
        taker_fee_rate=0.0, brackets=(Bracket(0, 1e9, 50, 0.004, 0.0),))})


@pytest.mark.parametrize("settle", ["bankruptcy", "market"])
def test_linear_isolated_gap_through_bankruptcy_loses_the_margin_once(tmp_path, settle):
    root = tmp_path / "d"
    _gap_dataset(root, [60_000.0] * 4 + [40_000.0] * 3)
    cfg = {"leverage": {"BTCUSDT": 10.0}, "initial_balance": 10_000.0, "sample_interval": "0",
           "margin": {"mode": "isolated", "trigger": "last", "settle": settle,
                      "liquidation_fee_rate": 0.01, "insurance_fund": FUND}}
    res = bt.run(LevLong, root, params={"leverage": 10.0, "entry": 60_000.0}, config=cfg)
    entry = res.fills.row(0, named=True)
    # hand computation: q = floor(10,000 * 10 * 0.98 / 60,000 / 0.001) * 0.001 = 1.633 BTC
    assert entry["price"] == 60_000.0 and entry["qty"] == pytest.approx(1.633) and entry["fee"] == 0.0
    margin = 1.633 * 60_000.0 / 10.0  # isolated margin 9,798
    bankruptcy = 60_000.0 - margin / 1.633  # 54,000
    loss = 1.633 * (60_000.0 - 40_000.0)  # 32,660 at the gap
    shortfall = loss - margin  # 22,862: left = margin - loss < 0, so the fee is 0
    assert len(res.liquidations) == 1
    row = res.liquidations.row(0, named=True)
    assert row["fill_price"] == 40_000.0
    assert row["bankruptcy_price"] == pytest.approx(bankruptcy, abs=1e-6)
    assert row["fee"] == 0.0
    assert row["insurance_fund_change"] == pytest.approx(-shortfall, abs=1e-6)
    assert row["realized_pnl"] == pytest.approx(-loss, abs=1e-6)
    liq = res.fills.filter(pl.col("liquidity") == int(bt.Liquidity.LIQUIDATION)).row(0, named=True)
    assert liq["fee"] == 0.0 and liq["position_after"] == 0.0
    assert liq["realized_pnl"] == pytest.approx(-margin, abs=1e-6)  # capped at the margin

    h = res.headline
    # the wallet: balance before - isolated margin - fee (0), never credited the shortfall
    assert h["balance"] == pytest.approx(10_000.0 - margin - 0.0, abs=1e-6)
    assert h["final_equity"] == pytest.approx(10_000.0 - margin, abs=1e-6)
    # the fund pays the shortfall once; it was no payout to the wallet, it is the isolated gap cover
    assert h["insurance_fund"] == pytest.approx(FUND - shortfall, abs=1e-6)
    assert h["isolated_gap_cover"] == pytest.approx(shortfall, abs=1e-6)
    assert h["insurance_payout"] == 0.0
    # accounting identities: balance = initial + realised - fees + funding + payouts; equity = balance + uPnL
    fills = res.fills
    assert h["balance"] == pytest.approx(
        10_000.0 + math.fsum(fills["realized_pnl"].to_list()) - math.fsum(fills["fee"].to_list())
        + h["funding"] + h["insurance_payout"], abs=1e-6)
    assert h["balance"] == pytest.approx(10_000.0 + h["realized_pnl"] - h["fees"] + h["funding"]
                                         + h["insurance_payout"], abs=1e-6)
    eq = res.equity
    assert ((eq["equity"] - (eq["balance"] + eq["upnl"])).abs() < 1e-6).all()
    assert eq["equity"][-1] == pytest.approx(10_000.0 - margin, abs=1e-6)
