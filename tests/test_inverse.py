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


# Binance COIN-M BTCUSD perpetual tiers, in coin notional (BTC): leverage and MMR from the FAQ
# "Leverage and Margin in Coin-Margined Futures Contracts"; maintenance amounts by its formula
# cum_n = floor_n * (mmr_n - mmr_{n-1}) + cum_{n-1}, which gives the FAQ's example "300 BTC:
# MMR 12.5%, maintenance amount 11.605 BTC" (docs/margin.md, [BN-CM]).
_CM = [(0, 5, 125, 0.004), (5, 10, 100, 0.005), (10, 20, 50, 0.01), (20, 50, 20, 0.025),
       (50, 100, 10, 0.05), (100, 200, 5, 0.10), (200, 400, 4, 0.125), (400, 1000, 3, 0.15),
       (1000, 1500, 2, 0.25), (1500, 1e9, 1, 0.50)]


def _coin_m_brackets():
    out, cum = [], 0.0
    for j, (f, c, lev, mmr) in enumerate(_CM):
        cum = cum + f * (mmr - _CM[j - 1][3]) if j else 0.0
        out.append(Bracket(float(f), float(c), float(lev), mmr, cum))
    return tuple(out)


COIN_M = _coin_m_brackets()


def test_coin_m_table_matches_the_faq_example():
    assert margin.maintenance_rate(300.0, COIN_M) == 0.125
    assert COIN_M[6].maint_amount == pytest.approx(11.605)
    assert margin.max_leverage(1.0, COIN_M) == 125


def coin_m_dataset(root, prices, funding=None):
    dataset(root, prices, funding)
    write_instruments(root / "instruments.json", {"BTCUSD_PERP": Instrument(
        "BTCUSD_PERP", "inverse_perpetual", "BTC", "USD", "BTC", 0.1, 1.0, contract_size=CS,
        maker_fee_rate=0.0002, taker_fee_rate=0.0005, brackets=COIN_M)})
    return root


def run_mode(root, mode, coins, lev, qty):
    return bt.run(BuyThenSell, root, params=dict(qty=qty),
                  config={"coin_balances": {"BTCUSD_PERP": coins}, "leverage": {"BTCUSD_PERP": lev},
                          "margin": {"mode": mode}, "sample_interval": "0", "initial_balance": 1.0})


# issue #14.14: 10x isolated long of 700 contracts (1 BTC) at 70,000: isolated margin 0.1 BTC,
# wallet 0.5 BTC. Binance COIN-M, isolated (TMM = UPNL = 0, WB = isolated wallet balance):
# LP = Q*CS*(MMR + 1) / (WB + cum + Q*CS/EP) = 70,000 * 1.004 / (0.1 + 0 + 1) = 63,890.909...
LP_ISOLATED = 70_000 * 1.004 / 1.1
FALL = [70_000.0, 70_000.0, 65_000.0, 63_891.0, 63_890.0, 55_000.0]


def test_isolated_inverse_long_is_liquidated_at_its_own_coin_m_price(tmp_path):
    assert margin.liquidation_price(1, 700.0, 70_000.0, 0.1, COIN_M, contract="inverse",
                                    contract_size=CS) == pytest.approx(LP_ISOLATED, rel=1e-12)
    res = run_mode(coin_m_dataset(tmp_path / "d", FALL), "isolated", 0.5, 10.0, 700.0)
    assert res.fills["qty"][0] == 700.0  # the 10x order passed the COIN-M bracket check
    liq = res.liquidations.row(0, named=True)
    assert liq["mark_price"] == 63_890.0  # 63,891 > LP survives, 63,890 <= LP is liquidated
    # bankruptcy settlement forfeits the isolated margin, and only it: the rest of the wallet stays
    entry_fee = 700 * CS / 70_000 * 0.0005
    assert res.headline["coin_balances"]["BTCUSD_PERP"] == pytest.approx(0.5 - entry_fee - 0.1, abs=1e-12)
    assert res.headline["positions"]["BTCUSD_PERP"] == 0.0


def test_isolated_inverse_funding_is_paid_from_the_isolated_margin(tmp_path):
    # funding 1% on 1 BTC of coin notional: -0.01 BTC out of the 0.1 BTC isolated margin, so
    # LP = 70,280 / (0.09 + 1) = 64,477.06: 64,500 survives, 64,470 liquidates
    prices = [70_000.0, 70_000.0, 70_000.0, 64_500.0, 64_470.0]
    res = run_mode(coin_m_dataset(tmp_path / "d", prices, funding=[(2, 0.01)]), "isolated", 0.5,
                   10.0, 700.0)
    assert res.funding["payment"][0] == pytest.approx(-0.01)
    assert res.liquidations["mark_price"].to_list() == [64_470.0]
    entry_fee = 700 * CS / 70_000 * 0.0005
    assert res.headline["coin_balances"]["BTCUSD_PERP"] == pytest.approx(0.5 - entry_fee - 0.1, abs=1e-12)


def test_cross_inverse_long_is_margined_by_the_whole_wallet(tmp_path):
    # cross: WB = the wallet after the entry fee: LP = 70,280 / (0.4995 + 1) = 46,868.96: no liquidation
    wb = 0.5 - 700 * CS / 70_000 * 0.0005
    assert margin.liquidation_price(1, 700.0, 70_000.0, wb, COIN_M, contract="inverse",
                                    contract_size=CS) == pytest.approx(70_000 * 1.004 / (wb + 1))
    res = run_mode(coin_m_dataset(tmp_path / "d", FALL), "cross", 0.5, 10.0, 700.0)
    assert len(res.liquidations) == 0
    assert res.headline["positions"]["BTCUSD_PERP"] == 700.0


def test_isolated_inverse_gap_loses_only_the_isolated_margin(tmp_path):
    # a gap from 70,000 to 50,000 (below the bankruptcy price 70,000 / 1.1 = 63,636): the loss
    # 1 - 70,000/50,000 * ... is capped at the 0.1 BTC margin; the insurance fund takes the rest
    res = run_mode(coin_m_dataset(tmp_path / "d", [70_000.0, 70_000.0, 50_000.0]), "isolated",
                   0.5, 10.0, 700.0)
    entry_fee = 700 * CS / 70_000 * 0.0005
    assert res.headline["coin_balances"]["BTCUSD_PERP"] == pytest.approx(0.5 - entry_fee - 0.1, abs=1e-12)
    loss = 700 * CS * (1 / 50_000 - 1 / 70_000)  # 0.4 BTC
    assert res.fills["realized_pnl"][1] == pytest.approx(-0.1)
    assert res.headline["isolated_gap_cover"] == pytest.approx((loss - 0.1) * 50_000)


@pytest.mark.parametrize("qty, ok", [(700.0, True), (7_000.0, True), (69_930.0, True), (80_000.0, False)])
def test_coin_m_leverage_check_looks_the_bracket_up_by_coin_notional(tmp_path, qty, ok):
    # coin notional = contracts * 100 / 70,000: 1, 10, 99.9 BTC are in tiers allowing >= 10x;
    # 80,000 contracts = 114.3 BTC is in the 100-200 BTC tier (5x): rejected at 10x
    res = run_mode(coin_m_dataset(tmp_path / "d", [70_000.0, 70_000.0]), "cross", 20.0, 10.0, qty)
    o = res.orders.row(0, named=True)
    if ok:
        assert o["filled_qty"] == qty
    else:
        assert o["reason"] == bt.Reason.LEVERAGE_TOO_HIGH


_NO_JIT = """
import json, sys
sys.path.insert(0, sys.argv[2])
import test_inverse as T
from pathlib import Path
res = T.run_mode(T.coin_m_dataset(Path(sys.argv[1]), T.FALL), "isolated", 0.5, 10.0, 700.0)
liq = res.liquidations.row(0, named=True)
print(json.dumps([res.headline["coin_balances"]["BTCUSD_PERP"], liq["mark_price"], liq["fee"],
                  liq["insurance_fund_change"], res.fills["fee"].to_list()]))
"""


@pytest.mark.slow
def test_isolated_inverse_is_bit_identical_without_jit(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    res = run_mode(coin_m_dataset(tmp_path / "jit", FALL), "isolated", 0.5, 10.0, 700.0)
    liq = res.liquidations.row(0, named=True)
    want = [res.headline["coin_balances"]["BTCUSD_PERP"], liq["mark_price"], liq["fee"],
            liq["insurance_fund_change"], res.fills["fee"].to_list()]
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", _NO_JIT, str(tmp_path / "py"), str(Path(__file__).parent)],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == want


def test_isolated_inverse_margin_ratio_reaches_the_threshold_at_liquidation(tmp_path):
    # the equity row written at the liquidation trigger shows the ratio that triggered it: the
    # isolated margin's (not the coin wallet's), so it reaches 1.0 exactly when liquidated
    res = run_mode(coin_m_dataset(tmp_path / "d", FALL), "isolated", 0.5, 10.0, 700.0)
    t_liq = res.liquidations["ts_ns"][0]
    at = res.equity.filter(res.equity["ts_ns"] == t_liq)
    assert at["iso_margin_ratio"].max() >= 1.0
    before = res.equity.filter(res.equity["ts_ns"] < t_liq)
    assert before["iso_margin_ratio"].max() < 1.0
