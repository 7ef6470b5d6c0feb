"""Inverse (coin-margined) perpetuals: coin PnL, harmonic entry, coin fees and funding,
liquidation at the Binance COIN-M liquidation price (hand-computed)."""
import numpy as np
import pytest

import backtest as bt
from backtest import margin
from backtest.data.instruments import Bracket, Instrument, write_instruments
from backtest.data.writer import write_stream

from lev_strategies import BuyThenSell

T0 = 1_770_163_200_000_000_000
CS = 100.0  # USD per contract
BRACKETS = (Bracket(0, 50, 125, 0.004, 0.0), Bracket(50, 100, 100, 0.005, 0.05))


def dataset(root, prices, funding=None):
    prices = np.asarray(prices, float)
    ts = T0 + np.arange(len(prices)) * 1_000_000_000
    write_stream(root, "trades", "BTCUSD_PERP", dict(ts_ns=ts, price=prices, qty=np.ones(len(ts)),
                                                     side=np.ones(len(ts), np.int8)))
    if funding:
        fts, rate = zip(*funding)
        write_stream(root, "funding", "BTCUSD_PERP", dict(ts_ns=T0 + np.array(fts) * 1_000_000_000 + 1,
                                                          rate=np.array(rate, float)))
    write_instruments(root / "instruments.json", {"BTCUSD_PERP": Instrument(
        "BTCUSD_PERP", "inverse_perpetual", "BTC", "USD", "BTC", 0.1, 1.0, contract_size=CS,
        maker_fee_rate=0.0002, taker_fee_rate=0.0005, brackets=BRACKETS)})
    return root


def run(root, coins=1.0, lev=10.0, **params):
    return bt.run(BuyThenSell, root, params=params,
                  config={"coin_balances": {"BTCUSD_PERP": coins}, "leverage": {"BTCUSD_PERP": lev},
                          "sample_interval": "0", "initial_balance": 1.0})


def test_coin_pnl_harmonic_entry_and_coin_fees(tmp_path):
    # buy 1000 @ 50,000, add 1000 @ 40,000, sell 2000 @ 45,000
    res = run(dataset(tmp_path / "d", [50_000, 50_000, 40_000, 45_000, 45_000]), qty=1000.0,
              add=1000.0, exit_at=3)
    f = res.fills
    avg = 2000 / (1000 / 50_000 + 1000 / 40_000)  # harmonic: 44,444.44
    assert f["avg_price_after"][1] == pytest.approx(avg)
    realized = 2000 * CS * (1 / avg - 1 / 45_000)  # coin
    assert f["realized_pnl"][2] == pytest.approx(realized)
    fees = [1000 * CS / 50_000 * 0.0005, 1000 * CS / 40_000 * 0.0005, 2000 * CS / 45_000 * 0.0005]
    assert f["fee"].to_list() == pytest.approx(fees)
    coin = res.headline["coin_balances"]["BTCUSD_PERP"]
    assert coin == pytest.approx(1.0 + realized - sum(fees))


def test_funding_is_paid_in_coin_on_the_contracts_coin_value(tmp_path):
    res = run(dataset(tmp_path / "d", [50_000, 50_000, 50_000, 50_000], funding=[(2, 0.0001)]),
              qty=1000.0)
    pay = res.funding["payment"][0]
    assert pay == pytest.approx(-(1000 * CS / 50_000 * 0.0001))


def test_inverse_long_is_liquidated_at_the_coin_m_liquidation_price(tmp_path):
    wallet = 0.25
    prices = np.concatenate([[50_000.0, 50_000.0], np.linspace(49_900, 35_000, 300)])
    res = run(dataset(tmp_path / "d", prices), coins=wallet, lev=20.0, qty=1000.0)
    entry_fee = 1000 * CS / 50_000 * 0.0005
    lp = margin.liquidation_price(1, 1000.0, 50_000.0, wallet - entry_fee, BRACKETS,
                                  contract="inverse", contract_size=CS)
    liq = res.liquidations.row(0, named=True)
    assert liq["mark_price"] <= lp
    before = prices[prices > lp]
    assert liq["mark_price"] == pytest.approx(prices[len(before)])  # the first price past it
    # the coin wallet is gone (bankruptcy settlement), nothing more
    assert res.headline["coin_balances"]["BTCUSD_PERP"] == pytest.approx(0.0, abs=1e-12)
    assert res.headline["positions"]["BTCUSD_PERP"] == 0.0
