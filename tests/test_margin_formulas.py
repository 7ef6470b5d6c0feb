"""Margin, liquidation, funding and loan formulas against the venues' own rules and examples.

Sources (each test names the one it checks):
  [BN-UM]   Binance, "How to Calculate Liquidation Price of USDⓈ-M Futures Contracts"
            https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93
  [BN-CM]   Binance, "How to Calculate Liquidation Price of COIN-M Futures Contracts"
            https://www.binance.com/en/support/faq/ceccfcfb4e3a45e3b48b0b1bb1a8ae46
  [BN-TR]   Binance trading rules, notional limits / maintenance margin
            https://www.binance.com/en/futures/trading-rules/perpetual/portfolio-margin/notional-limit
  [BN-LIQ]  Binance, "Binance Futures Liquidation Protocols"
            https://www.binance.com/en/support/faq/360033525271
  [BN-FUND] Binance, "Introduction to Binance Futures Funding Rates"
            https://www.binance.com/en/support/articles/360033525031
  [BYBIT]   Bybit, "Liquidation Price (USDT Contract)"
            https://testnet.bybit.com/en-US/help-center/s/article/Liquidation-Price-USDT-Contract
  [OKX]     OKX, "When would my order be liquidated?"
            https://www.okx.com/learn/when-would-my-order-be-liquidated
  [CB]      Coinbase, "USDC loan health" / "USDC loan collateral"
            https://help.coinbase.com/en/coinbase/trading-and-funding/loan/loan-health
            https://help.coinbase.com/en/coinbase/trading-and-funding/loan/collateral
  [MORPHO]  Morpho, "Liquidation" https://docs.morpho.org/build/borrow/concepts/liquidation and
            morpho-org/morpho-blue src/libraries/ConstantsLib.sol (LIQUIDATION_CURSOR = 0.3e18,
            MAX_LIQUIDATION_INCENTIVE_FACTOR = 1.15e18)
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from backtest import margin as M
from backtest.core import margin_math as K
from backtest.data.instruments import Bracket

ROOT = Path(__file__).resolve().parents[1]

# Binance BTCUSDT brackets (freqtrade snapshot of binance_leverage_tiers.json) [BN-TR]
BTCUSDT = [
    Bracket(0, 50_000, 125, 0.004, 0),
    Bracket(50_000, 600_000, 100, 0.005, 50),
    Bracket(600_000, 3_000_000, 75, 0.0065, 950),
    Bracket(3_000_000, 12_000_000, 50, 0.01, 11_450),
]


def arrays(brackets):
    f, c, lv, r, a, n = M.brackets_to_arrays(brackets)
    return f, c, r, a, n


def cumulative_amounts(floors, mmrs):
    """cum_n = floor_n * (mmr_n - mmr_{n-1}) + cum_{n-1}, cum_0 = 0  [BN-CM]"""
    cum = [0.0]
    for j in range(1, len(floors)):
        cum.append(floors[j] * (mmrs[j] - mmrs[j - 1]) + cum[-1])
    return cum


def make_brackets(caps, mmrs):
    floors = [0.0] + list(caps[:-1])
    cum = cumulative_amounts(floors, mmrs)
    return [Bracket(floors[j], caps[j], 100.0, mmrs[j], cum[j]) for j in range(len(caps))]


# ------------------------------------------------------------------------------------------------
# brute force: margin balance and maintenance margin evaluated directly, root by bisection
def excess(side, qty, entry, wallet, brackets, p, *, inverse=False, cs=1.0, omm=0.0, oup=0.0):
    """margin_balance(P) - (TMM1 + maint_margin(notional(P))), tier looked up at notional(P)."""
    s = 1 if side == "long" or side == 1 else -1
    if inverse:
        mb = wallet + oup + s * qty * cs * (1.0 / entry - 1.0 / p)
        notional = qty * cs / p
    else:
        mb = wallet + oup + s * qty * (p - entry)
        notional = qty * p
    return mb - omm - M.maintenance_margin(notional, brackets)


def bisect_root(fn, lo, hi, iters=200):
    flo = fn(lo)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        fm = fn(mid)
        if (fm > 0) == (flo > 0):
            lo, flo = mid, fm
        else:
            hi = mid
    return 0.5 * (lo + hi)


# ------------------------------------------------------------------------------------------------
# Binance USDⓈ-M
def test_binance_usdm_worked_example():
    """[BN-UM] one-way isolated long 1 BTC @ 50,000, WB 5,000, tier 1 MMR 0.4%, cum 0:
    LP = (WB + cum - Q*EP) / (Q*MMR - Q) = 45,000 / 0.996 = 45,180.72."""
    lp = M.liquidation_price("long", 1.0, 50_000, 5_000, BTCUSDT)
    assert lp == pytest.approx(45_000 / 0.996, rel=1e-14)
    assert round(lp, 2) == 45_180.72
    # isolated short closed form (Q*EP + WB + cum) / (Q*(1 + MMR)), tier re-selected (52.6k notional)
    lp_s = M.liquidation_price("short", 1.0, 48_000, 4_800, BTCUSDT)
    assert lp_s == pytest.approx((48_000 + 4_800 + 50) / 1.005, rel=1e-14)


def test_binance_cumulative_maintenance_amounts():
    """[BN-CM] cum_n = floor_n * (MMR_n - MMR_{n-1}) + cum_{n-1}; Binance BTCUSDT tiers [BN-TR]:
    0-50k 0.4%/0, 50k-600k 0.5%/50, 600k-3M 0.65%/950, 3M-12M 1%/11,450."""
    floors = [b.notional_floor for b in BTCUSDT]
    mmrs = [b.mmr for b in BTCUSDT]
    assert cumulative_amounts(floors, mmrs) == pytest.approx([0, 50, 950, 11_450], abs=1e-9)
    # the amounts make MM = notional*MMR - cum continuous at every tier boundary [BN-TR]
    for b in BTCUSDT[1:]:
        x = b.notional_floor
        below = M.maintenance_margin(x * (1 - 1e-12), BTCUSDT)
        assert M.maintenance_margin(x, BTCUSDT) == pytest.approx(below, rel=1e-9)
    assert M.maintenance_margin(1_000_000, BTCUSDT) == pytest.approx(1_000_000 * 0.0065 - 950)
    assert M.maintenance_rate(50_000, BTCUSDT) == 0.005  # [floor, cap): 50k is tier 2
    assert M.max_leverage(49_999, BTCUSDT) == 125 and M.max_leverage(5e6, BTCUSDT) == 50
    assert M.max_leverage(1e9, BTCUSDT) == 50  # beyond the last cap -> last tier
    assert M.initial_margin(50_000, 125) == 400


def test_binance_coinm_maintenance_amount_example():
    """[BN-CM] "Level 5 = 50 BTC x (5% - 2.5%) + 0.56 BTC = 1.81 BTC"; continuing the recursion
    with levels at 100 BTC (10%) and 200 BTC (12.5%) reproduces the FAQ's 300 BTC example at
    MMR 12.5% with maintenance amount 11.81 BTC (the 100/200 floors are our reconstruction)."""
    lvl5 = 50 * (0.05 - 0.025) + 0.56
    assert lvl5 == pytest.approx(1.81)
    lvl6 = 100 * (0.10 - 0.05) + lvl5
    lvl7 = 200 * (0.125 - 0.10) + lvl6
    assert lvl7 == pytest.approx(11.81)
    coin_tiers = [
        Bracket(0, 50, 20, 0.025, 0.56),  # stand-in for levels 1-4 (cum 0.56 at 2.5%)
        Bracket(50, 100, 10, 0.05, lvl5),
        Bracket(100, 200, 5, 0.10, lvl6),
        Bracket(200, 400, 4, 0.125, lvl7),
    ]
    assert M.maintenance_margin(300, coin_tiers) == pytest.approx(300 * 0.125 - 11.81)


# ------------------------------------------------------------------------------------------------
# tier change at the liquidation price
def test_tier_reselected_at_liquidation_price_linear():
    """[BN-CM]/[BN-UM]: "If your position (calculated at the liquidation price) and the current
    position (calculated at the opening price) are of different levels, ... substitute the level
    at the liquidation price". Long 10 BTC @ 60,000 (600k notional: tier 3, 0.65%/950) with 60k
    margin is liquidated near 54.3k, i.e. at ~543k notional: tier 2 (0.5%/50)."""
    q, ep, wb = 10.0, 60_000.0, 60_000.0
    lp = M.liquidation_price(1, q, ep, wb, BTCUSDT)
    entry_tier = (wb + 950 - q * ep) / (q * 0.0065 - q)  # naive: tier at entry
    assert K.bracket_index(q * ep, *arrays(BTCUSDT)[:2], 4) == 2
    assert K.bracket_index(q * lp, *arrays(BTCUSDT)[:2], 4) == 1
    assert lp == pytest.approx((wb + 50 - q * ep) / (q * 0.005 - q), rel=1e-14)
    assert abs(lp - entry_tier) > 5.0
    brute = bisect_root(lambda p: excess(1, q, ep, wb, BTCUSDT, p), 1.0, ep)
    assert lp == pytest.approx(brute, rel=1e-12)
    assert excess(1, q, ep, wb, BTCUSDT, lp) == pytest.approx(0.0, abs=1e-6)


def test_tier_reselected_at_liquidation_price_inverse():
    """[BN-CM] inverse: a falling price raises a long's *coin* notional Q*CS/P, here from 4.8 BTC
    (tier 1) at entry to ~5.73 BTC (tier 2) at the liquidation price."""
    tiers = make_brackets([5.0, 10.0, 20.0, 50.0], [0.005, 0.01, 0.015, 0.02])
    q, cs, ep = 2_400.0, 100.0, 50_000.0  # $240,000 = 4.8 BTC at entry
    wb = 0.96  # 5x
    lp = M.liquidation_price("long", q, ep, wb, tiers, contract="inverse", contract_size=cs)
    expected = q * cs * (1 + 0.01) / (wb + 0.025 + q * cs / ep)  # tier 2: MMR 1%, cum 0.025
    assert lp == pytest.approx(expected, rel=1e-14)
    assert 5.0 < q * cs / lp < 10.0
    naive = q * cs * 1.005 / (wb + q * cs / ep)
    assert q * cs / naive > 5.0  # the entry tier is not the tier at its own answer
    brute = bisect_root(lambda p: excess(1, q, ep, wb, tiers, p, inverse=True, cs=cs), 1.0, ep)
    assert lp == pytest.approx(brute, rel=1e-12)


def test_inverse_formula_matches_brute_force_solve():
    """[BN-CM] derived form LP = Q*CS*(MMR + side) / ((WB - TMM1 + UPNL1 + cum) + side*Q*CS/EP)
    against a direct solve of margin balance == maintenance margin (single tier, both sides)."""
    tier = [Bracket(0, 1e9, 125, 0.004, 0.0)]
    for side, wb in ((1, 0.02), (-1, 0.02), (-1, 0.15)):
        q, cs, ep = 1_000.0, 100.0, 40_000.0  # $100k = 2.5 BTC
        lp = M.liquidation_price(side, q, ep, wb, tier, contract="inverse", contract_size=cs)
        closed = q * cs * (0.004 + side) / (wb + side * q * cs / ep)
        assert lp == pytest.approx(closed, rel=1e-14)
        lo, hi = (1.0, ep) if side > 0 else (ep, 1e7)
        brute = bisect_root(lambda p: excess(side, q, ep, wb, tier, p, inverse=True, cs=cs), lo, hi)
        assert lp == pytest.approx(brute, rel=1e-12)


def test_no_liquidation_conventions():
    """Return conventions: long never liquidated -> 0.0; a 1x inverse short (collateral equal
    to the position's coin value) is never liquidated -> +inf; flat -> NaN in the kernels."""
    tier = [Bracket(0, 1e12, 125, 0.004, 0.0)]
    # linear long with more margin than notional: margin balance > MM at every positive price
    assert M.liquidation_price(1, 1.0, 100.0, 150.0, tier) == 0.0
    # inverse 1x short (WB = Q*CS/EP): never liquidated
    assert M.liquidation_price(-1, 100, 50_000, 100 * 100 / 50_000, tier,
                               contract="inverse", contract_size=100) == math.inf
    assert M.bankruptcy_price(-1, 100, 50_000, 0.2, contract="inverse", contract_size=100) == math.inf
    f, c, r, a, n = arrays(tier)
    assert math.isnan(K.linear_liq_price(0, 1.0, 100.0, 10.0, 0.0, 0.0, f, c, r, a, n))
    assert math.isnan(K.linear_liq_price(1, 0.0, 100.0, 10.0, 0.0, 0.0, f, c, r, a, n))
    assert math.isnan(K.inverse_liq_price(1, 1.0, 100.0, 100.0, math.nan, 0.0, 0.0, f, c, r, a, n))


def test_bankruptcy_price():
    """[BN-LIQ] liquidations are settled at the bankruptcy price (margin balance = 0)."""
    assert M.bankruptcy_price("long", 1.0, 50_000, 5_000) == 45_000
    assert M.bankruptcy_price("short", 2.0, 50_000, 5_000) == 52_500
    bp = M.bankruptcy_price("long", 2_400, 50_000, 0.96, contract="inverse", contract_size=100)
    assert M.margin_balance("long", 2_400, 50_000, bp, 0.96, contract="inverse",
                            contract_size=100) == pytest.approx(0.0, abs=1e-14)
    # bankruptcy = liquidation with zero maintenance margin
    zero = [Bracket(0, 1e12, 125, 0.0, 0.0)]
    assert M.liquidation_price("short", 2.0, 50_000, 5_000, zero) == pytest.approx(52_500)


# ------------------------------------------------------------------------------------------------
# Bybit and OKX
def test_bybit_worked_example():
    """[BYBIT] 1 BTC @ 20,000, 50x, MMR 0.5%: IM = 400, MM = 100, LP = 20,000 - (400 - 100) = 19,700
    (LP_long = EP - (IM - MM)/Size - ExtraMargin/Size; tier by position value at entry)."""
    tiers = [Bracket(0, 2_000_000, 100, 0.005, 0.0)]
    assert M.initial_margin(20_000, 50) == 400
    assert M.maintenance_margin(20_000, tiers) == 100
    assert M.liquidation_price("long", 1, 20_000, 400, tiers, venue="bybit", leverage=50) == 19_700
    assert M.liquidation_price("short", 1, 20_000, 400, tiers, venue="bybit", leverage=50) == 20_300
    # 100 USDT extra margin moves the long's LP down by 100 / Size
    assert M.liquidation_price("long", 1, 20_000, 500, tiers, venue="bybit", leverage=50) == 19_600
    f, c, r, a, n = arrays(tiers)
    assert K.bybit_linear_liq_price(1, 1.0, 20_000.0, 50.0, 0.0, f, c, r, a, n) == 19_700
    # inverse classic form: LP = Qty / (value + (IM - MM)), value = Qty/EP in coin
    q, ep = 20_000.0, 20_000.0  # 20k USD contracts = 1 BTC
    lp = M.liquidation_price("long", q, ep, 1 / 50, [Bracket(0, 1e6, 100, 0.005, 0.0)],
                             contract="inverse", venue="bybit", leverage=50)
    assert lp == pytest.approx(q / (1.0 + 0.02 - 0.005), rel=1e-14)


def test_okx_fee_term_and_size_tiers():
    """[OKX] liquidation when equity <= maintenance margin + liquidation fee; isolated USDT-margined
    margin ratio = (margin + UPL) / (|size| * mark * (MMR + fee rate)); tiers by size."""
    tiers = [Bracket(0, 10, 100, 0.004, 0.0), Bracket(10, 100, 50, 0.01, 0.0)]  # tiers in BTC size
    q, ep, margin, fee = 1.0, 50_000.0, 5_000.0, 0.0005
    lp = M.liquidation_price("long", q, ep, margin, tiers, venue="okx", taker_fee_rate=fee)
    assert lp == pytest.approx((q * ep - margin) / (q * (1 - 0.004 - fee)), rel=1e-14)
    ratio = (margin + q * (lp - ep)) / (q * lp * (0.004 + fee))
    assert ratio == pytest.approx(1.0, rel=1e-12)
    # a bigger *size* selects tier 2 whatever the price
    lp12 = M.liquidation_price("short", 12.0, ep, 60_000, tiers, venue="okx", taker_fee_rate=fee)
    assert lp12 == pytest.approx((12 * ep + 60_000) / (12 * (1 + 0.01 + fee)), rel=1e-14)
    # coin-margined: margin_coin + UPL = Q*CS/P*(MMR + fee); 500 contracts -> size tier 2 (1%)
    lpi = M.liquidation_price("long", 500, ep, 0.1, tiers, contract="inverse", contract_size=100,
                              venue="okx", taker_fee_rate=fee)
    mb = M.margin_balance("long", 500, ep, lpi, 0.1, contract="inverse", contract_size=100)
    assert mb == pytest.approx(500 * 100 / lpi * (0.01 + fee), rel=1e-12)
    # with zero fee OKX's formula is Binance's (single tier, cum 0)
    one = [Bracket(0, 1e9, 100, 0.004, 0.0)]
    assert M.liquidation_price(1, q, ep, margin, one, venue="okx") == pytest.approx(
        M.liquidation_price(1, q, ep, margin, one), rel=1e-15)


# ------------------------------------------------------------------------------------------------
# funding
def test_funding_sign_conventions():
    """[BN-FUND] Funding Amount = Nominal Value x Funding Rate; nominal = mark x size (USDⓈ-M) or
    contracts x multiplier / mark (COIN-M). A positive rate: longs pay shorts."""
    assert M.funding_payment(1.0, 50_000, 0.0001) == pytest.approx(-5.0)  # long pays
    assert M.funding_payment(-1.0, 50_000, 0.0001) == pytest.approx(5.0)  # short receives
    assert M.funding_payment(1.0, 50_000, -0.0003) == pytest.approx(15.0)  # negative: long receives
    assert M.funding_payment(0.0, 50_000, 0.01) == 0.0
    inv = M.funding_payment(100, 50_000, 0.0001, contract="inverse", contract_size=100)
    assert inv == pytest.approx(-100 * 100 / 50_000 * 0.0001)  # coin
    assert M.funding_payment(-100, 50_000, 0.0001, contract="inverse", contract_size=100) == pytest.approx(-inv)
    assert K.funding_payment(2.0, 100.0, 0.001, 1.0, False) == pytest.approx(-0.2)


# ------------------------------------------------------------------------------------------------
# loans
def test_coinbase_morpho_loan_numbers():
    """[CB] LLTV 86%, liquidation penalty 4.38%, Danger band from 90% of LLTV (77.4%);
    [MORPHO] LIF = min(1.15, 1 / (1 - 0.3 * (1 - LLTV))) = 1/0.958 = 1.0438 at LLTV 0.86."""
    lif = M.morpho_liquidation_incentive(0.86)
    assert lif == pytest.approx(1 / 0.958, rel=1e-15)
    assert round(lif - 1, 4) == M.COINBASE_PENALTY == 0.0438
    assert M.COINBASE_WARNING_LTV == pytest.approx(0.9 * M.COINBASE_LLTV)
    assert M.morpho_liquidation_incentive(0.77) == pytest.approx(1 / (1 - 0.3 * 0.23))
    assert M.morpho_liquidation_incentive(0.5) == 1.15  # 1/0.85 = 1.176 is capped at 1.15
    # a loan opened at 75% LTV is liquidated after a 12.8% fall: LP / P0 = 0.75 / 0.86
    p0, coll = 100_000.0, 1.0
    debt = M.COINBASE_MAX_OPEN_LTV * coll * p0
    assert M.loan_ltv(debt, coll, p0) == pytest.approx(0.75)
    lp = M.loan_liquidation_price(debt, coll)
    assert lp / p0 == pytest.approx(0.75 / 0.86, rel=1e-15)
    assert 1 - lp / p0 == pytest.approx(0.128, abs=5e-4)
    assert M.loan_ltv(debt, coll, lp) == pytest.approx(M.COINBASE_LLTV, rel=1e-15)
    # the warning e-mail comes first, at the price where LTV = 77.4%
    assert debt / (coll * M.COINBASE_WARNING_LTV) > lp


def test_loan_partial_liquidation():
    """[MORPHO] liquidators repay debt and seize repaid * LIF / price of collateral; any amount up
    to the whole debt. loan_repay_to_restore brings the LTV back to a target in closed form."""
    lif = M.morpho_liquidation_incentive(0.86)
    debt, coll, price = 87_000.0, 1.0, 100_000.0  # LTV 0.87 > LLTV
    r = M.loan_repay_to_restore(debt, coll, price, lif, 0.80)
    seized = M.loan_seized_collateral(r, price, lif)
    assert seized == pytest.approx(r * lif / price)
    assert M.loan_ltv(debt - r, coll - seized, price) == pytest.approx(0.80, rel=1e-12)
    assert 0 < r < debt
    assert M.loan_repay_to_restore(50_000, 1.0, price, lif, 0.8) == 0.0  # already healthy
    # target unreachable: LTV >= 1/LIF (every repayment raises the LTV) -> full liquidation
    assert M.loan_repay_to_restore(97_000, 1.0, price, lif, 0.8) == 97_000
    assert M.loan_repay_to_restore(90_000, 1.0, price, 1.5, 0.8) == 90_000  # t*lif >= 1


# ------------------------------------------------------------------------------------------------
# property: at the returned price, margin balance == maintenance margin
@st.composite
def scenarios(draw):
    nt = draw(st.integers(1, 6))
    first = draw(st.floats(1e2, 1e5))
    growth = draw(st.lists(st.floats(1.5, 10.0), min_size=nt, max_size=nt))
    caps, c = [], first
    for g in growth:
        caps.append(c)
        c *= g
    mmr0 = draw(st.floats(0.001, 0.02))
    steps = draw(st.lists(st.floats(0.0, 0.05), min_size=nt, max_size=nt))
    mmrs = list(np.minimum(mmr0 + np.cumsum([0.0] + steps[1:]), 0.5))
    side = draw(st.sampled_from([1, -1]))
    inverse = draw(st.booleans())
    cross = draw(st.booleans())
    ep = draw(st.floats(1.0, 1e5))
    lev = draw(st.floats(1.0, 125.0))
    cs = draw(st.sampled_from([1.0, 10.0, 100.0]))
    # size the position so that its notional lands anywhere in (or beyond) the tiers
    target = draw(st.floats(0.05, 1.5)) * caps[-1]
    if inverse:
        q = target * ep / cs
        value = q * cs / ep
    else:
        q = target / ep
        value = q * ep
    wb = value / lev
    omm = oup = 0.0
    if cross:
        omm = draw(st.floats(0.0, 0.2)) * value
        oup = draw(st.floats(-0.2, 0.5)) * value
        wb += draw(st.floats(0.0, 2.0)) * value
    return make_brackets(caps, mmrs), side, inverse, cross, q, cs, ep, wb, omm, oup


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_property_margin_balance_equals_maintenance_at_liq_price(sc):
    """At LP, margin_balance(LP) == TMM1 + maint_margin(notional(LP)) (tier looked up at LP), for
    linear & inverse, long & short, isolated & cross; just past LP the position is under-margined
    and just before it is not. Conventions (0.0 / inf) are checked at the extremes instead."""
    brackets, side, inverse, cross, q, cs, ep, wb, omm, oup = sc
    kw = dict(contract="inverse" if inverse else "linear", contract_size=cs,
              mode="cross" if cross else "isolated", other_maint_margin=omm, other_upnl=oup)
    lp = M.liquidation_price(side, q, ep, wb, brackets, **kw)

    def g(p):
        return excess(side, q, ep, wb, brackets, p, inverse=inverse, cs=cs, omm=omm, oup=oup)

    if lp == 0.0:  # long never liquidated / short liquidated everywhere
        tiny = ep * 1e-9
        assert (g(tiny) > 0) if side > 0 else (g(tiny) <= 0)
        return
    if math.isinf(lp):  # inverse: long liquidated everywhere / short never
        assert inverse
        huge = ep * 1e9
        assert (g(huge) <= 0) if side > 0 else (g(huge) > 0)
        return
    assert lp > 0
    if inverse:
        scale = q * cs / lp + q * cs / ep + abs(wb) + abs(oup) + omm
    else:
        scale = q * lp + q * ep + abs(wb) + abs(oup) + omm
    tol = 1e-9 * scale
    assert abs(g(lp)) <= tol
    eps = 1e-6
    safe, unsafe = (lp * (1 + eps), lp * (1 - eps)) if side > 0 else (lp * (1 - eps), lp * (1 + eps))
    # |dg| over the step is >= eps * (1 - MMR) * notional(LP); strict signs where that beats rounding
    move = eps * 0.5 * (q * cs / lp if inverse else q * lp)
    if move > 10 * tol:
        assert g(safe) > 0 and g(unsafe) < 0
    else:
        assert g(safe) > -tol and g(unsafe) < tol


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_property_kernels_agree_with_public_api(sc):
    """The public wrappers return exactly the compiled kernels' floats."""
    brackets, side, inverse, cross, q, cs, ep, wb, omm, oup = sc
    f, c, r, a, n = arrays(brackets)
    if inverse:
        k = K.inverse_liq_price(side, q, cs, ep, wb, omm, oup, f, c, r, a, n)
        kb = K.inverse_bankruptcy_price(side, q, cs, ep, wb + oup)
    else:
        k = K.linear_liq_price(side, q, ep, wb, omm, oup, f, c, r, a, n)
        kb = K.linear_bankruptcy_price(side, q, ep, wb + oup)
    contract = "inverse" if inverse else "linear"
    p = M.liquidation_price(side, q, ep, wb, brackets, contract=contract, contract_size=cs,
                            mode="cross" if cross else "isolated", other_maint_margin=omm, other_upnl=oup)
    assert p == k or (math.isnan(p) and math.isnan(k))
    assert M.bankruptcy_price(side, q, ep, wb, contract=contract, contract_size=cs, other_upnl=oup) == kb
    notional = q * ep
    assert M.maintenance_margin(notional, brackets) == K.maint_margin(notional, f, c, r, a, n)


# ------------------------------------------------------------------------------------------------
# NUMBA_DISABLE_JIT: the kernels are plain Python too and give the same floats
_CASES_SCRIPT = r"""
import json, sys
import numpy as np
from backtest.core import margin_math as K
f = np.array([0.0, 5e4, 6e5, 3e6]); c = np.array([5e4, 6e5, 3e6, 1.2e7])
r = np.array([0.004, 0.005, 0.0065, 0.01]); a = np.array([0.0, 50.0, 950.0, 11450.0])
fi = np.array([0.0, 5.0, 10.0]); ci = np.array([5.0, 10.0, 20.0])
ri = np.array([0.005, 0.01, 0.015]); ai = np.array([0.0, 0.025, 0.075])
out = [
    K.linear_liq_price(1, 1.0, 50000.0, 5000.0, 0.0, 0.0, f, c, r, a, 4),
    K.linear_liq_price(-1, 1.0, 48000.0, 4800.0, 0.0, 0.0, f, c, r, a, 4),
    K.linear_liq_price(1, 10.0, 60000.0, 60000.0, 0.0, 0.0, f, c, r, a, 4),
    K.linear_liq_price(-1, 3.0, 61000.0, 9000.0, 1500.0, -2500.0, f, c, r, a, 4),
    K.inverse_liq_price(1, 2400.0, 100.0, 50000.0, 0.96, 0.0, 0.0, fi, ci, ri, ai, 3),
    K.inverse_liq_price(-1, 2400.0, 100.0, 50000.0, 0.96, 0.01, 0.02, fi, ci, ri, ai, 3),
    K.inverse_liq_price(-1, 100.0, 100.0, 50000.0, 0.2, 0.0, 0.0, fi, ci, ri, ai, 3),
    K.linear_bankruptcy_price(1, 1.0, 50000.0, 5000.0),
    K.inverse_bankruptcy_price(1, 2400.0, 100.0, 50000.0, 0.96),
    K.bybit_linear_liq_price(1, 1.0, 20000.0, 50.0, 0.0, f, c, r, a, 4),
    K.bybit_inverse_liq_price(-1, 2400.0, 100.0, 50000.0, 20.0, 0.001, fi, ci, ri, ai, 3),
    K.okx_linear_liq_price(1, 1.0, 50000.0, 5000.0, 0.0, 0.0, 0.0005, f, c, r, a, 4),
    K.okx_inverse_liq_price(-1, 500.0, 100.0, 50000.0, 0.1, 0.0, 0.0, 0.0005, fi, ci, ri, ai, 3),
    K.maint_margin(1e6, f, c, r, a, 4),
    float(K.bracket_index(6e5, f, c, 4)),
    K.funding_payment(100.0, 50000.0, 0.0001, 100.0, True),
    K.funding_payment(-1.5, 50000.0, 0.0001, 1.0, False),
    K.morpho_lif(0.86, 0.3, 1.15),
    K.loan_ltv(75000.0, 1.0, 100000.0),
    K.loan_liquidation_price(75000.0, 1.0, 0.86),
    K.loan_seized_collateral(1000.0, 100000.0, 1.0438),
    K.loan_repay_to_restore(87000.0, 1.0, 100000.0, K.morpho_lif(0.86, 0.3, 1.15), 0.8),
]
print(json.dumps([repr(float(x)) for x in out]))
"""


def _run_cases(disable_jit: bool) -> list[str]:
    env = dict(os.environ)
    env["NUMBA_DISABLE_JIT"] = "1" if disable_jit else "0"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-c", _CASES_SCRIPT], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_kernels_identical_without_jit():
    """The kernels run as plain Python under NUMBA_DISABLE_JIT=1 and return identical floats."""
    if os.environ.get("NUMBA_DISABLE_JIT", "0") != "1":
        assert hasattr(K.linear_liq_price, "py_func")  # compiled in this process
    plain = _run_cases(True)
    ns: dict = {}
    exec(_CASES_SCRIPT.replace("print(json.dumps", "RESULT = (json.dumps"), ns)
    jitted = json.loads(ns["RESULT"])
    assert plain == jitted
    assert float(plain[0]) == pytest.approx(45_180.72, abs=0.005)


# ------------------------------------------------------------------------------------------------
# validation
@pytest.mark.parametrize("kwargs, match", [
    (dict(side=0), "side"),
    (dict(side="up"), "side"),
    (dict(side=True), "side"),
    (dict(qty=0.0), "qty"),
    (dict(qty=-1.0), "qty"),
    (dict(entry_price=float("nan")), "entry_price"),
    (dict(wallet_balance=float("inf")), "wallet_balance"),
    (dict(contract="quanto"), "contract"),
    (dict(mode="portfolio"), "mode"),
    (dict(other_upnl=5.0), "cross"),
    (dict(venue="ftx"), "venue"),
    (dict(venue="bybit"), "leverage"),
    (dict(venue="bybit", leverage=10, mode="cross"), "isolated"),
    (dict(taker_fee_rate=0.0005), "okx"),
    (dict(leverage=10), "bybit"),
    (dict(contract_size=0.0), "contract_size"),
    (dict(brackets=[]), "empty"),
    (dict(brackets=[Bracket(0, 10, 10, 0.01, 0), Bracket(20, 30, 5, 0.02, 0.1)]), "previous cap"),
    (dict(brackets=[dict(notional_floor=0, notional_cap=10, mmr=0.01, maint_amount=0)]), "max_leverage"),
    (dict(brackets=[Bracket(0, 10, 10, 1.5, 0)]), "mmr"),
])
def test_liquidation_price_validation(kwargs, match):
    args = dict(side="long", qty=1.0, entry_price=100.0, wallet_balance=10.0, brackets=BTCUSDT)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        M.liquidation_price(args.pop("side"), args.pop("qty"), args.pop("entry_price"),
                            args.pop("wallet_balance"), args.pop("brackets"), **args)


def test_other_validation():
    with pytest.raises(ValueError, match="leverage"):
        M.initial_margin(100, 0)
    with pytest.raises(ValueError, match="mark_price"):
        M.funding_payment(1, -5, 0.01)
    with pytest.raises(ValueError, match="lltv"):
        M.loan_liquidation_price(100, 1, 1.2)
    with pytest.raises(ValueError, match="price"):
        M.loan_ltv(100, 1, 0)
    with pytest.raises(ValueError, match="brackets"):
        M.maintenance_margin(100, "tiers")
    assert M.margin_ratio(100, 1000) == 0.1
    assert M.margin_ratio(100, -1) == math.inf
    # dict brackets are accepted as well as Bracket objects
    d = [dict(notional_floor=0, notional_cap=50_000, max_leverage=125, mmr=0.004, maint_amount=0)]
    assert M.maintenance_margin(10_000, d) == pytest.approx(40.0)


@pytest.mark.parametrize("lltv", [0.86, 0.915, 0.77, 0.625, 0.0, 1.0])
def test_pack_s_python_morpho_lif_is_the_kernels_result(lltv):
    """pack.py computes the run's loan incentive factor with the kernel's Python function (no
    compile on a cold start's path): the same IEEE double as the compiled kernel."""
    from backtest import pack
    from backtest.core.margin_math import morpho_lif

    assert pack._morpho_lif(lltv) == morpho_lif(lltv)
