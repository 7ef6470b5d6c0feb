"""Scalar margin, liquidation, funding and loan numerics, compiled with numba.

Every function here is a ``@kernel(python=True, error_model="numpy")`` (core/jit.py) that takes only
floats, ints and 1-D float64 arrays, so the engine's compiled loop can call it directly. The
public, validated, documented API is :mod:`backtest.margin`; the formulas, their sources and the
venue differences are written up in ``docs/margin.md``.

Conventions shared by every kernel
----------------------------------
* ``side``: +1 long, -1 short (any positive / negative number works; 0 means flat).
* ``qty``: absolute position size (base units for linear, contracts for inverse), > 0.
* Bracket arrays ``floors, caps, mmrs, amounts`` (and ``max_levs``) hold at least ``n`` tiers in
  ascending order (``floors[i] == caps[i-1]``). Tier ``i`` covers notionals
  ``[caps[i-1], caps[i])``; the first tier extends down to 0 and the last tier extends to +inf.
  ``n <= 0`` means "no brackets": MMR 0 and maintenance amount 0.
* Divisions are guarded explicitly (not left to ``error_model``) so that the same code gives the
  same floats when run as plain Python under ``NUMBA_DISABLE_JIT=1``.

Liquidation-price convention
----------------------------
Let ``L = {P > 0 : margin_balance(P) <= maint_margin(P)}`` be the set of mark prices at which the
position is liquidated. Every ``*_liq_price`` kernel returns

* long:  ``sup L`` -- liquidated when ``mark <= LP``. ``0.0`` when ``L`` is empty (never
  liquidated at a positive price); ``+inf`` when every price liquidates.
* short: ``inf L`` -- liquidated when ``mark >= LP``. ``+inf`` when ``L`` is empty (e.g. a 1x
  inverse short); ``0.0`` when every price liquidates.
* ``NaN`` when flat (``side == 0`` or ``qty <= 0``), or when an input is NaN/inf or an entry
  price/contract size is not positive.

Tier selection at the liquidation price (Binance: "if your position (calculated at the
liquidation price) and the current position (calculated at the opening price) are of different
levels ... substitute the level at the liquidation price"): instead of a fixed-point iteration
(which can cycle between two tiers when the data are inconsistent) the kernels solve the linear
condition of *every* tier in closed form, intersect its solution half-line with the price range
in which that tier applies, and take the sup (long) / inf (short) of the union. With consistent
maintenance amounts the maintenance margin is continuous in notional, ``margin_balance -
maint_margin`` is monotone in price, and exactly one tier contains the root, so this is the exact
root of ``margin_balance(P) == maint_margin(notional(P))``. With inconsistent amounts it still
returns the first price (coming from the current side) at which the position is under-margined.
Cost: one pass over at most ``n`` tiers, no iteration, no allocation.
"""
from __future__ import annotations

import numpy as np

from . import schema  # noqa: F401  (the bracket arrays' layout is defined there: br_* fields)
from .jit import kernel
from .rare import rare_path

_INF = np.inf
_NAN = np.nan


# ------------------------------------------------------------------------------------------------
# Brackets
@kernel(python=True, error_model="numpy")
def bracket_index(notional, floors, caps, n):
    """Tier holding ``notional``: the number of caps ``<= notional`` among the first ``n - 1``
    tiers (so tier ``i`` covers ``[caps[i-1], caps[i])``; below the first cap -> 0; at or beyond
    the last cap -> ``n - 1``). Returns -1 when ``n <= 0``. ``floors`` is accepted for symmetry
    with the record layout; tiers are contiguous (``floors[i] == caps[i-1]``, checked by the
    instruments loader), so the caps alone define them."""
    if n <= 0:
        return -1
    idx = 0
    for i in range(n - 1):
        if notional >= caps[i]:
            idx = i + 1
    return idx


@kernel(python=True, error_model="numpy")
def maint_margin(notional, floors, caps, mmrs, amounts, n):
    """Maintenance margin ``|notional| * mmr - maint_amount`` of the tier holding ``|notional|``,
    never below 0 (0 when ``n <= 0``). Units: those of ``notional`` (quote for linear, coin for
    inverse)."""
    x = abs(notional)
    i = bracket_index(x, floors, caps, n)
    if i < 0:
        return 0.0
    mm = x * mmrs[i] - amounts[i]
    return mm if mm > 0.0 else 0.0


@kernel(python=True, error_model="numpy")
def maint_rate(notional, floors, caps, mmrs, n):
    """Maintenance margin rate of the tier holding ``|notional|`` (0 when ``n <= 0``)."""
    i = bracket_index(abs(notional), floors, caps, n)
    if i < 0:
        return 0.0
    return mmrs[i]


@kernel(python=True, error_model="numpy")
def bracket_max_leverage(notional, floors, caps, max_levs, n):
    """Maximum leverage of the tier holding ``|notional|`` (+inf when ``n <= 0``)."""
    i = bracket_index(abs(notional), floors, caps, n)
    if i < 0:
        return _INF
    return max_levs[i]


# ------------------------------------------------------------------------------------------------
# Margin balance
@kernel(python=True, error_model="numpy")
def linear_margin_balance(side, qty, entry, price, wallet, other_upnl):
    """``wallet + other_upnl + side * qty * (price - entry)`` (quote currency)."""
    s = 1.0 if side > 0 else (-1.0 if side < 0 else 0.0)
    return wallet + other_upnl + s * qty * (price - entry)


@kernel(python=True, error_model="numpy")
def inverse_margin_balance(side, qty_contracts, contract_size, entry, price, wallet_coin, other_upnl):
    """``wallet + other_upnl + side * Q * CS * (1/entry - 1/price)`` (coin). NaN if a price <= 0."""
    if not (entry > 0.0) or not (price > 0.0):
        return _NAN
    s = 1.0 if side > 0 else (-1.0 if side < 0 else 0.0)
    qcs = qty_contracts * contract_size
    return wallet_coin + other_upnl + s * qcs * (1.0 / entry - 1.0 / price)


# ------------------------------------------------------------------------------------------------
# Solver pieces
@kernel(python=True, error_model="numpy")
def _extreme(a, b, lo, hi, is_long, best):
    """Fold the set ``{P in [lo, hi] : a * P <= b}`` into ``best``: the running sup (long) or
    inf (short) of the liquidation set. ``lo >= 0`` always (prices are positive)."""
    if a > 0.0:
        h_lo = -_INF
        h_hi = b / a
    elif a < 0.0:
        h_lo = b / a
        h_hi = _INF
    elif b >= 0.0:  # 0 * P <= b holds everywhere
        h_lo = -_INF
        h_hi = _INF
    else:  # holds nowhere
        return best
    lo2 = lo if lo > h_lo else h_lo
    hi2 = hi if hi < h_hi else h_hi
    if lo2 > hi2:
        return best
    if is_long:
        return hi2 if hi2 > best else best
    return lo2 if lo2 < best else best


@kernel(python=True, error_model="numpy")
def _bad_inputs(side, qty, entry, x1, x2, x3):
    return (side == 0 or not (qty > 0.0) or not (entry > 0.0) or not np.isfinite(qty)
            or not np.isfinite(entry) or not np.isfinite(x1 + x2 + x3))


# ------------------------------------------------------------------------------------------------
# Binance (USDⓈ-M linear, COIN-M inverse)
@kernel(python=True, error_model="numpy")
def linear_liq_price(side, qty, entry, wallet, other_mm, other_upnl, floors, caps, mmrs, amounts, n):
    """Binance USDⓈ-M one-way liquidation price, tier re-selected at the liquidation price.

    ``LP = (WB - TMM1 + UPNL1 + cum - side*Q*EP) / (Q*MMR - side*Q)`` with (MMR, cum) of the tier
    whose ``[floor, cap)`` contains ``Q * LP``. Isolated: ``wallet`` = isolated margin,
    ``other_mm = other_upnl = 0``. Cross: ``wallet`` = cross wallet balance, ``other_mm`` /
    ``other_upnl`` = maintenance margin / unrealised PnL of all other positions.
    Return convention: see the module docstring (sup/inf of the liquidation set; NaN if flat).
    """
    if _bad_inputs(side, qty, entry, wallet, other_mm, other_upnl):
        return _NAN
    is_long = side > 0
    s = 1.0 if is_long else -1.0
    base = wallet - other_mm + other_upnl - s * qty * entry
    best = 0.0 if is_long else _INF
    if n <= 0:
        # no brackets: MMR 0, cum 0. margin_balance - mm = base - P*(0 - s*Q) <= 0
        return _extreme(s * qty, -base, 0.0, _INF, is_long, best)
    for i in range(n):
        lo = caps[i - 1] / qty if i > 0 else 0.0
        hi = caps[i] / qty if i < n - 1 else _INF
        # f_i(P) = (base + cum_i) - P * (Q*mmr_i - s*Q) <= 0  <=>  Q*(s - mmr_i) * P <= -(base + cum_i)
        best = _extreme(qty * (s - mmrs[i]), -(base + amounts[i]), lo, hi, is_long, best)
    return best


@kernel(python=True, error_model="numpy")
def inverse_liq_price(side, qty_contracts, contract_size, entry, wallet_coin, other_mm, other_upnl,
                      floors, caps, mmrs, amounts, n):
    """Binance COIN-M one-way liquidation price (coin-margined, ``contract_size`` USD/contract).

    ``LP = Q*CS*(MMR + side) / ((WB - TMM1 + UPNL1 + cum) + side*Q*CS/EP)``, derived from
    ``margin_balance = WB + UPNL1 + side*Q*CS*(1/EP - 1/P)`` and
    ``maint = TMM1 + (Q*CS/P)*MMR - cum`` (all in coin), with (MMR, cum) of the tier whose
    ``[floor, cap)`` contains the *coin* notional ``Q*CS/LP``. Return convention as module doc.
    """
    if _bad_inputs(side, qty_contracts, entry, wallet_coin, other_mm, other_upnl) or not (contract_size > 0.0):
        return _NAN
    is_long = side > 0
    s = 1.0 if is_long else -1.0
    qcs = qty_contracts * contract_size
    base = wallet_coin - other_mm + other_upnl + s * qcs / entry
    best = 0.0 if is_long else _INF
    if n <= 0:
        return _extreme(base, qcs * s, 0.0, _INF, is_long, best)
    for i in range(n):
        # coin notional N = qcs / P is decreasing in P: tier i <=> P in (qcs/caps[i], qcs/caps[i-1]]
        lo = qcs / caps[i] if (i < n - 1 and caps[i] > 0.0) else 0.0
        hi = qcs / caps[i - 1] if (i > 0 and caps[i - 1] > 0.0) else _INF
        # f_i(P) = B_i - K_i / P <= 0  <=>  B_i * P <= K_i  (P > 0)
        best = _extreme(base + amounts[i], qcs * (mmrs[i] + s), lo, hi, is_long, best)
    return best


rare_inverse_liq_price = rare_path(inverse_liq_price, np.nan, takes_c=False)


@kernel(python=True, error_model="numpy")
def linear_bankruptcy_price(side, qty, entry, wallet):
    """Price where the linear margin balance ``wallet + side*Q*(P - EP)`` is 0:
    ``EP - side * wallet / Q`` (long: clamped at 0.0 = never bankrupt; short: clamped at 0.0 =
    bankrupt at any price). For cross pass ``wallet + other_upnl`` (- other requirements)."""
    if _bad_inputs(side, qty, entry, wallet, 0.0, 0.0):
        return _NAN
    s = 1.0 if side > 0 else -1.0
    p = entry - s * wallet / qty
    return p if p > 0.0 else 0.0


@kernel(python=True, error_model="numpy")
def inverse_bankruptcy_price(side, qty_contracts, contract_size, entry, wallet_coin):
    """Price where the inverse margin balance ``wallet + side*Q*CS*(1/EP - 1/P)`` is 0:
    ``Q*CS / (side*wallet + Q*CS/EP)``. Long: +inf when the denominator <= 0 (bankrupt at any
    price); short: +inf when it is <= 0 (never bankrupt, e.g. a 1x short)."""
    if _bad_inputs(side, qty_contracts, entry, wallet_coin, 0.0, 0.0) or not (contract_size > 0.0):
        return _NAN
    is_long = side > 0
    s = 1.0 if is_long else -1.0
    qcs = qty_contracts * contract_size
    best = 0.0 if is_long else _INF
    return _extreme(wallet_coin + s * qcs / entry, s * qcs, 0.0, _INF, is_long, best)


# ------------------------------------------------------------------------------------------------
# Bybit (isolated, classic formula: maintenance margin valued at entry)
@kernel(python=True, error_model="numpy")
def bybit_linear_liq_price(side, qty, entry, leverage, extra_margin, floors, caps, mmrs, amounts, n):
    """Bybit USDT-contract isolated liquidation price.

    ``LP = EP - side * ((IM - MM) / Q + extra / Q)`` with ``value = Q*EP``, ``IM = value/leverage``,
    ``MM = value*MMR - deduction`` (tier by the position value at entry, *not* re-selected at the
    liquidation price). Clamped at 0.0. NaN if flat or ``leverage <= 0``.
    """
    if _bad_inputs(side, qty, entry, leverage, extra_margin, 0.0) or not (leverage > 0.0):
        return _NAN
    s = 1.0 if side > 0 else -1.0
    value = qty * entry
    im = value / leverage
    mm = maint_margin(value, floors, caps, mmrs, amounts, n)
    p = entry - s * (im - mm + extra_margin) / qty
    return p if p > 0.0 else 0.0


@kernel(python=True, error_model="numpy")
def bybit_inverse_liq_price(side, qty_contracts, contract_size, entry, leverage, extra_margin_coin,
                            floors, caps, mmrs, amounts, n):
    """Bybit inverse isolated liquidation price (classic form, MM valued at entry).

    ``LP = Q*CS / (value + side*(IM - MM + extra))`` with coin ``value = Q*CS/EP``,
    ``IM = value/leverage``, ``MM = value*MMR - deduction`` (tier by coin value at entry).
    A non-positive denominator gives +inf (long: liquidated at any price; short: never).
    """
    if (_bad_inputs(side, qty_contracts, entry, leverage, extra_margin_coin, 0.0)
            or not (leverage > 0.0) or not (contract_size > 0.0)):
        return _NAN
    s = 1.0 if side > 0 else -1.0
    qcs = qty_contracts * contract_size
    value = qcs / entry
    im = value / leverage
    mm = maint_margin(value, floors, caps, mmrs, amounts, n)
    den = value + s * (im - mm + extra_margin_coin)
    if den <= 0.0:
        return _INF
    return qcs / den


# ------------------------------------------------------------------------------------------------
# OKX (maintenance margin includes the taker-fee term; tier by position *size*)
@kernel(python=True, error_model="numpy")
def okx_linear_liq_price(side, qty, entry, margin, other_mm, other_upnl, fee_rate,
                         floors, caps, mmrs, amounts, n):
    """OKX USDT-margined liquidation price: margin ratio
    ``(margin + UPL) / (Q*P*(MMR + fee_rate) - amount) = 100%``.

    OKX position tiers are by position *size* (contracts / base qty, the unit of ``qty``), which
    does not move with the price, so the tier is ``bracket_index(qty)``: no re-selection.
    ``LP = (margin - TMM1 + UPNL1 + amount - side*Q*EP) / (Q*(MMR + fee) - side*Q)``.
    """
    if _bad_inputs(side, qty, entry, margin, other_mm, other_upnl + fee_rate):
        return _NAN
    is_long = side > 0
    s = 1.0 if is_long else -1.0
    i = bracket_index(qty, floors, caps, n)
    mmr = (mmrs[i] if i >= 0 else 0.0) + fee_rate
    amt = amounts[i] if i >= 0 else 0.0
    base = margin - other_mm + other_upnl - s * qty * entry + amt
    best = 0.0 if is_long else _INF
    return _extreme(qty * (s - mmr), -base, 0.0, _INF, is_long, best)


@kernel(python=True, error_model="numpy")
def okx_inverse_liq_price(side, qty_contracts, contract_size, entry, margin_coin, other_mm, other_upnl,
                          fee_rate, floors, caps, mmrs, amounts, n):
    """OKX coin-margined liquidation price: ``(margin + UPL) = Q*CS/P*(MMR + fee) - amount`` with
    the tier chosen by ``qty_contracts``. ``LP = Q*CS*(MMR + fee + side) /
    (margin - TMM1 + UPNL1 + amount + side*Q*CS/EP)``."""
    if (_bad_inputs(side, qty_contracts, entry, margin_coin, other_mm, other_upnl + fee_rate)
            or not (contract_size > 0.0)):
        return _NAN
    is_long = side > 0
    s = 1.0 if is_long else -1.0
    i = bracket_index(qty_contracts, floors, caps, n)
    mmr = (mmrs[i] if i >= 0 else 0.0) + fee_rate
    amt = amounts[i] if i >= 0 else 0.0
    qcs = qty_contracts * contract_size
    base = margin_coin - other_mm + other_upnl + amt + s * qcs / entry
    best = 0.0 if is_long else _INF
    return _extreme(base, qcs * (mmr + s), 0.0, _INF, is_long, best)


# ------------------------------------------------------------------------------------------------
# Funding
@kernel(python=True, error_model="numpy")
def funding_payment(position, mark, rate, contract_size, inverse):
    """Funding received by the account (negative = paid); ``position`` is signed.

    linear: ``-position * mark * rate`` (quote; ``contract_size`` unused: position in base units);
    inverse: ``-position * contract_size / mark * rate`` (coin). A positive rate means longs pay
    shorts. Returns 0.0 for a flat position, NaN for an inverse mark <= 0.
    """
    if position == 0.0:
        return 0.0
    if inverse:
        if not (mark > 0.0):
            return _NAN
        return -position * contract_size / mark * rate
    return -position * mark * rate


# ------------------------------------------------------------------------------------------------
# Crypto-backed loans (Coinbase / Morpho Blue)
@kernel(python=True, error_model="numpy")
def loan_ltv(debt, collateral_qty, price):
    """``debt / (collateral_qty * price)``; 0.0 without debt, +inf with debt and no collateral value."""
    if debt <= 0.0:
        return 0.0
    value = collateral_qty * price
    if not (value > 0.0):
        return _INF
    return debt / value


@kernel(python=True, error_model="numpy")
def loan_liquidation_price(debt, collateral_qty, lltv):
    """Collateral price at which ``LTV == lltv``: ``debt / (collateral_qty * lltv)``
    (0.0 without debt; +inf with debt and no collateral or ``lltv <= 0``)."""
    if debt <= 0.0:
        return 0.0
    den = collateral_qty * lltv
    if not (den > 0.0):
        return _INF
    return debt / den


@kernel(python=True, error_model="numpy")
def morpho_lif(lltv, cursor=0.3, max_lif=1.15):
    """Morpho Blue liquidation incentive factor ``min(max_lif, 1 / (1 - cursor * (1 - lltv)))``."""
    den = 1.0 - cursor * (1.0 - lltv)
    if not (den > 0.0):
        return max_lif
    lif = 1.0 / den
    return lif if lif < max_lif else max_lif


@kernel(python=True, error_model="numpy")
def loan_seized_collateral(repaid_debt, price, lif):
    """Collateral seized for repaying ``repaid_debt``: ``repaid * lif / price`` (NaN if price <= 0)."""
    if not (price > 0.0):
        return _NAN
    return repaid_debt * lif / price


@kernel(python=True, error_model="numpy")
def loan_repay_to_restore(debt, collateral_qty, price, lif, target_ltv):
    """Debt a liquidator must repay so that, after seizing ``repaid * lif / price`` collateral,
    ``LTV == target_ltv``.

    Solving ``(D - r) / (C*P - r*lif) = t`` gives ``r = (D - t*C*P) / (1 - t*lif)``, clamped to
    ``[0, D]``. Returns 0.0 when already at or below the target, and the whole debt ``D`` when the
    target cannot be reached by a partial liquidation (``t*lif >= 1``, or ``LTV >= 1/lif`` where
    every repayment raises the LTV).
    """
    if debt <= 0.0:
        return 0.0
    value = collateral_qty * price
    if debt <= target_ltv * value:
        return 0.0
    den = 1.0 - target_ltv * lif
    if not (den > 0.0):
        return debt
    r = (debt - target_ltv * value) / den
    if r >= debt:
        return debt
    return r if r > 0.0 else 0.0
