"""Spot margin shorts: borrowing the coin, hourly interest, margin-level liquidation."""
import polars as pl
import pytest

import backtest as bt
from backtest import Reason

from lev_strategies import SpotShort
from test_loans import H, spot_dataset


def run(root, **margin):
    lev = {"BTC-USDT": 3.0} if margin.get("spot_margin") else {}
    return bt.run(SpotShort, root, config={"initial_balance": 50_000.0, "sample_interval": "0",
                                           "margin": margin, "leverage": lev})


def test_spot_short_is_rejected_without_margin(tmp_path):
    res = run(spot_dataset(tmp_path / "d", [60_000.0, 60_000.0]))
    assert set(res.orders["reason"].to_list()) == {int(Reason.INSUFFICIENT_BALANCE)}
    assert res.fills.is_empty()


def test_borrow_interest_accrues_hourly_on_the_borrowed_value(tmp_path):
    # short 1 BTC at 60,000 (filled at event 1), hold 10 hours at a flat price
    root = spot_dataset(tmp_path / "d", [60_000.0] * 12)
    res = run(root, spot_margin=True, borrow_rate_hourly=0.0001)
    assert res.headline["positions"]["BTC-USDT"] == -1.0
    h = res.headline
    assert h["borrow_interest"] == pytest.approx(60_000.0 * 0.0001 * 10, rel=1e-12)
    assert h["final_equity"] == pytest.approx(50_000.0 - h["borrow_interest"], rel=1e-12)


def test_short_is_bought_back_when_the_margin_level_falls_below_maintenance(tmp_path):
    # assets/liabilities = (50,000 + 60,000) / price  <  1.1  once price > 100,000
    root = spot_dataset(tmp_path / "d", [60_000.0, 60_000.0, 90_000.0, 99_000.0, 101_000.0, 120_000.0],
                        step_ns=1_000_000)
    res = run(root, spot_margin=True, borrow_rate_hourly=0.0, liquidation_fee_rate=0.01)
    liq = res.liquidations.row(0, named=True)
    assert liq["fill_price"] == 101_000.0
    assert res.headline["positions"]["BTC-USDT"] == 0.0
    fills = res.fills.filter(pl.col("liquidity") == int(bt.Liquidity.LIQUIDATION))
    assert fills["fee"][0] == pytest.approx(101_000.0 * (0.0 + 0.01))
    # after the buy-back the account keeps what is left: 50,000 - 41,000 - fee
    assert res.headline["final_equity"] == pytest.approx(50_000.0 - 41_000.0 - 1_010.0)
