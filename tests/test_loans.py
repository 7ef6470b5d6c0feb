"""Crypto-backed loans: hand-computed examples and the February 2026 crash."""
import math

import numpy as np
import polars as pl
import pytest

import backtest as bt
from backtest.data.instruments import Instrument, write_instruments
from backtest.data.writer import write_stream

from lev_strategies import Borrower

T0 = 1_770_163_200_000_000_000  # 2026-02-04 00:00 UTC
H = 3_600_000_000_000
# Morpho liquidation incentive factor computed from the LLTV (86%): 1 / (0.3 * 0.86 + 1 - 0.3)
LIF = 1.0 / (0.3 * 0.86 + 1.0 - 0.3)


def spot_dataset(root, prices, step_ns=H):
    prices = np.asarray(prices, float)
    ts = T0 + np.arange(len(prices)) * step_ns
    write_stream(root, "trades", "BTC-USDT", dict(ts_ns=ts, price=prices, qty=np.full(len(ts), 1.0),
                                                  side=np.ones(len(ts), np.int8)))
    write_instruments(root / "instruments.json", {"BTC-USDT": Instrument(
        "BTC-USDT", "spot", "BTC", "USDT", "USDT", 0.01, 0.0001, maker_fee_rate=0.0,
        taker_fee_rate=0.0)})
    return root


def run(root, **loans):
    return bt.run(Borrower, root, config={"initial_balance": 100_000.0, "sample_interval": "0",
                                          "loans": loans})


def test_loan_opens_at_75pct_ltv_and_accrues_interest_continuously(tmp_path):
    # buy at 70,000 (event 0), borrow 52,500 at the next trade (70,000), then a flat year.
    root = spot_dataset(tmp_path / "d", [70_000.0] * 3, step_ns=int(365 * 24 * H / 2))
    res = run(root, apr=0.10)
    ev = res.loans
    opened = ev.filter(pl.col("event") == "open").row(0, named=True)
    assert opened["amount"] == pytest.approx(52_500.0)
    assert opened["ltv"] == pytest.approx(0.75)
    # half a year of continuous interest at 10% APR: debt * (e^0.05 - 1)
    h = res.headline
    assert h["interest"] == pytest.approx(52_500.0 * (math.exp(0.05) - 1.0), rel=1e-12)
    # equity = cash + coins - debt; nothing else moved
    assert h["final_equity"] == pytest.approx(100_000.0 - h["interest"], rel=1e-12)


def test_warning_band_then_liquidation_with_the_coinbase_penalty(tmp_path):
    p0 = 70_000.0
    warn_px = p0 * 0.75 / 0.774 * 0.999  # just inside the warning band
    liq_px = p0 * 0.75 / 0.86 * 0.999  # just past the 86% LLTV
    root = spot_dataset(tmp_path / "d", [p0, p0, warn_px, liq_px, liq_px], step_ns=1_000_000)
    res = run(root, apr=0.0)
    st = res.manifest["strategy"]["state"]
    assert st["calls"] == 1 and st["call_ratio"] == pytest.approx(0.75 * p0 / warn_px / 0.86)
    assert st["liquidated"] == 1
    liq = res.loans.filter(pl.col("event") == "liquidation").row(0, named=True)
    debt = 0.75 * p0
    assert liq["amount"] == pytest.approx(debt)  # the whole debt is repaid
    assert liq["seized_qty"] == pytest.approx(debt * LIF / liq_px)
    assert liq["penalty"] == pytest.approx(debt * (LIF - 1))
    assert res.loans["event"].to_list()[-1] == "closed"
    # the rest of the collateral came back to the spot position
    assert res.headline["positions"]["BTC-USDT"] == pytest.approx(1.0 - debt * LIF / liq_px)
    # equity fell by the penalty on top of the market move
    eq_before = 100_000.0 + (liq_px - p0)
    assert res.headline["final_equity"] == pytest.approx(eq_before - debt * (LIF - 1))
    # balance identity with loan cash flows
    h = res.headline
    assert h["balance"] == pytest.approx(100_000.0 + h["realized_pnl"] - h["fees"] + h["funding"]
                                         + h["loan_cash_in"] - h["loan_cash_out"]
                                         - h["loan_seized_cost"])
    assert len(res.liquidations) == 1


def test_partial_liquidation_restores_the_opening_ltv(tmp_path):
    p0 = 70_000.0
    liq_px = p0 * 0.75 / 0.86 * 0.999
    root = spot_dataset(tmp_path / "d", [p0, p0, liq_px, liq_px], step_ns=1_000_000)
    res = run(root, apr=0.0, partial=True)
    liq = res.loans.filter(pl.col("event") == "liquidation").row(0, named=True)
    assert liq["ltv"] == pytest.approx(0.75, rel=1e-9)
    assert liq["debt"] > 0 and liq["collateral_qty"] > 0


def test_btc_backed_loan_at_75pct_is_liquidated_when_btc_falls_about_13pct(tmp_path):
    from backtest.data.generate import generate_dataset

    root = tmp_path / "feb"
    generate_dataset("feb-2026-crash", root, seed=3, scale=0.05)
    res = bt.run(Borrower, root, symbols=["BTC-USDT"], config={"initial_balance": 100_000.0})
    ev = res.loans
    opened = ev.filter(pl.col("event") == "open").row(0, named=True)
    liq = ev.filter(pl.col("event") == "liquidation").row(0, named=True)
    fall = liq["price"] / opened["price"] - 1.0
    assert -0.135 < fall < -0.12  # LTV 0.75 -> 0.86 takes a 12.8% fall (plus a little interest)
    assert liq["penalty"] == pytest.approx(liq["amount"] * (LIF - 1))
    # it is the first trade at or below the liquidation price
    debt = liq["amount"]
    assert liq["price"] <= debt / (0.86 * opened["collateral_qty"]) + 1e-6
