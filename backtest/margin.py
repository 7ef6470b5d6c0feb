"""Margin, liquidation, funding and loan formulas: the public, validated API.

Plain Python floats in and out. Each function wraps a compiled kernel of
:mod:`backtest.core.margin_math` (the same code the engine's loop calls), after validating its
arguments (a bad argument raises :class:`ValueError` with a message saying which and why).
Formulas, sign conventions, venue differences and sources are in ``docs/margin.md``.

Sources
-------
* Binance USDⓈ-M liquidation price:
  https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93
* Binance COIN-M liquidation price and maintenance amounts:
  https://www.binance.com/en/support/faq/ceccfcfb4e3a45e3b48b0b1bb1a8ae46
* Binance liquidation protocol: https://www.binance.com/en/support/faq/360033525271
* Binance funding: https://www.binance.com/en/support/articles/360033525031
* Bybit liquidation price (USDT contract):
  https://testnet.bybit.com/en-US/help-center/s/article/Liquidation-Price-USDT-Contract
* OKX liquidation: https://www.okx.com/learn/when-would-my-order-be-liquidated
* Coinbase loan health: https://help.coinbase.com/en/coinbase/trading-and-funding/loan/loan-health
* Morpho liquidation: https://docs.morpho.org/build/borrow/concepts/liquidation
  (constants in morpho-org/morpho-blue ``src/libraries/ConstantsLib.sol``)

Examples
--------
>>> from backtest.margin import liquidation_price
>>> tiers = [dict(notional_floor=0, notional_cap=50_000, max_leverage=125, mmr=0.004, maint_amount=0)]
>>> round(liquidation_price("long", 1.0, 50_000, 5_000, tiers), 2)
45180.72
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .core import margin_math as _mm

__all__ = [
    "COINBASE_LLTV",
    "COINBASE_PENALTY",
    "COINBASE_WARNING_LTV",
    "COINBASE_MAX_OPEN_LTV",
    "MORPHO_LIQUIDATION_CURSOR",
    "MORPHO_MAX_LIQUIDATION_INCENTIVE",
    "maintenance_margin",
    "maintenance_rate",
    "initial_margin",
    "max_leverage",
    "margin_balance",
    "margin_ratio",
    "liquidation_price",
    "bankruptcy_price",
    "funding_payment",
    "loan_ltv",
    "loan_liquidation_price",
    "morpho_liquidation_incentive",
    "loan_seized_collateral",
    "loan_repay_to_restore",
    "brackets_to_arrays",
]

#: Coinbase USDC loans (Morpho market on Base): liquidation loan-to-value.
COINBASE_LLTV = 0.86
#: Liquidation penalty Coinbase quotes (= Morpho LIF at LLTV 0.86, minus 1, rounded; the engine
#: uses the exact LIF, :func:`morpho_liquidation_incentive`).
COINBASE_PENALTY = 0.0438
#: Start of Coinbase's "Danger" band (90% of LLTV): an email notification is sent.
COINBASE_WARNING_LTV = 0.774
#: Maximum LTV at which a loan can be opened (secondary sources; see docs/margin.md).
COINBASE_MAX_OPEN_LTV = 0.75
#: Morpho Blue ``LIQUIDATION_CURSOR`` and ``MAX_LIQUIDATION_INCENTIVE_FACTOR``.
MORPHO_LIQUIDATION_CURSOR = 0.3
MORPHO_MAX_LIQUIDATION_INCENTIVE = 1.15

_BRACKET_KEYS = ("notional_floor", "notional_cap", "max_leverage", "mmr", "maint_amount")
_VENUES = ("binance", "bybit", "okx")


# ------------------------------------------------------------------------------------------------
# validation helpers
def _num(name: str, x, *, positive: bool = False, nonneg: bool = False) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {x!r}")
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v!r}")
    if positive and not v > 0.0:
        raise ValueError(f"{name} must be > 0, got {v!r}")
    if nonneg and v < 0.0:
        raise ValueError(f"{name} must be >= 0, got {v!r}")
    return v


def _side(side) -> int:
    if isinstance(side, str):
        s = side.strip().lower()
        if s in ("long", "buy"):
            return 1
        if s in ("short", "sell"):
            return -1
    elif not isinstance(side, bool) and isinstance(side, (int, float, np.integer, np.floating)):
        if side == 1:
            return 1
        if side == -1:
            return -1
    raise ValueError(f"side must be +1/-1 or 'long'/'short', got {side!r}")


def _contract(contract: str) -> bool:
    if contract not in ("linear", "inverse"):
        raise ValueError(f"contract must be 'linear' or 'inverse', got {contract!r}")
    return contract == "inverse"


def _bracket_field(b, key: str):
    if isinstance(b, Mapping):
        if key not in b:
            raise ValueError(f"bracket {dict(b)!r} is missing {key!r}")
        return b[key]
    if not hasattr(b, key):
        raise ValueError(f"bracket {b!r} has no attribute {key!r} (use Bracket or a dict with {_BRACKET_KEYS})")
    return getattr(b, key)


def brackets_to_arrays(brackets) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Validate brackets and return ``(floors, caps, max_levs, mmrs, amounts, n)`` float64 arrays.

    ``brackets`` is a non-empty sequence of :class:`backtest.data.instruments.Bracket` or of dicts
    with the keys ``notional_floor, notional_cap, max_leverage, mmr, maint_amount``, in ascending
    order, each tier starting where the previous one ends (tier ``i`` covers ``[floor, cap)``; the
    first extends down to 0 and the last up to infinity when computing margins).
    """
    if isinstance(brackets, (str, bytes, Mapping)) or not isinstance(brackets, Sequence):
        raise ValueError("brackets must be a sequence of Bracket objects or dicts")
    n = len(brackets)
    if n == 0:
        raise ValueError("brackets must not be empty (use one tier with mmr=0 for no maintenance margin)")
    cols = {k: np.empty(n, dtype=np.float64) for k in _BRACKET_KEYS}
    for j, b in enumerate(brackets):
        for k in _BRACKET_KEYS:
            cols[k][j] = _num(f"brackets[{j}].{k}", _bracket_field(b, k))
    floors, caps = cols["notional_floor"], cols["notional_cap"]
    mmrs, amounts, levs = cols["mmr"], cols["maint_amount"], cols["max_leverage"]
    for j in range(n):
        if not caps[j] > floors[j]:
            raise ValueError(f"brackets[{j}]: notional_cap ({caps[j]}) must exceed notional_floor ({floors[j]})")
        if not 0.0 <= mmrs[j] < 1.0:
            raise ValueError(f"brackets[{j}].mmr must be in [0, 1), got {mmrs[j]}")
        if amounts[j] < 0.0:
            raise ValueError(f"brackets[{j}].maint_amount must be >= 0, got {amounts[j]}")
        if not levs[j] > 0.0:
            raise ValueError(f"brackets[{j}].max_leverage must be > 0, got {levs[j]}")
        if j > 0 and floors[j] != caps[j - 1]:
            raise ValueError(f"brackets[{j}].notional_floor ({floors[j]}) must equal the previous cap ({caps[j - 1]})")
    return floors, caps, levs, mmrs, amounts, n


# ------------------------------------------------------------------------------------------------
# brackets
def maintenance_margin(notional: float, brackets) -> float:
    """Maintenance margin of a position of notional value ``notional``.

    ``MM = |notional| * MMR_i - maint_amount_i`` for the tier ``i`` whose ``[floor, cap)`` holds
    ``|notional|`` (never below 0). Units: those of the brackets (quote for linear contracts,
    coin for Binance COIN-M).

    Source: https://www.binance.com/en/futures/trading-rules/perpetual/portfolio-margin/notional-limit
    """
    x = _num("notional", notional)
    f, c, _, r, a, n = brackets_to_arrays(brackets)
    return float(_mm.maint_margin(x, f, c, r, a, n))


def maintenance_rate(notional: float, brackets) -> float:
    """Maintenance margin rate (MMR) of the tier holding ``|notional|``."""
    x = _num("notional", notional)
    f, c, _, r, _a, n = brackets_to_arrays(brackets)
    return float(_mm.maint_rate(x, f, c, r, n))


def initial_margin(notional: float, leverage: float) -> float:
    """Initial margin ``|notional| / leverage``."""
    return abs(_num("notional", notional)) / _num("leverage", leverage, positive=True)


def max_leverage(notional: float, brackets) -> float:
    """Maximum leverage allowed for a position of notional ``|notional|`` (its tier's cap)."""
    x = _num("notional", notional)
    f, c, lv, _, _a, n = brackets_to_arrays(brackets)
    return float(_mm.bracket_max_leverage(x, f, c, lv, n))


# ------------------------------------------------------------------------------------------------
# margin balance and ratio
def margin_balance(side, qty: float, entry_price: float, price: float, wallet_balance: float, *,
                   contract: str = "linear", contract_size: float = 1.0, other_upnl: float = 0.0) -> float:
    """Margin balance = wallet balance + unrealised PnL, valued at ``price`` (the mark price).

    linear:  ``WB + UPNL_other + side * Q * (P - EP)`` (quote)
    inverse: ``WB + UPNL_other + side * Q * CS * (1/EP - 1/P)`` (coin; Q in contracts, CS in USD)
    """
    s = _side(side)
    q = _num("qty", qty, positive=True)
    ep = _num("entry_price", entry_price, positive=True)
    p = _num("price", price, positive=True)
    wb = _num("wallet_balance", wallet_balance)
    ou = _num("other_upnl", other_upnl)
    if _contract(contract):
        cs = _num("contract_size", contract_size, positive=True)
        return float(_mm.inverse_margin_balance(s, q, cs, ep, p, wb, ou))
    return float(_mm.linear_margin_balance(s, q, ep, p, wb, ou))


def margin_ratio(maint_margin: float, margin_balance: float) -> float:
    """Binance margin ratio ``maintenance margin / margin balance``; liquidation at >= 1.0.

    Returns +inf when the margin balance is <= 0 with a positive maintenance margin, 0.0 when
    both are 0.
    """
    mm = _num("maint_margin", maint_margin, nonneg=True)
    mb = _num("margin_balance", margin_balance)
    if mb <= 0.0:
        return 0.0 if (mm == 0.0 and mb == 0.0) else math.inf
    return mm / mb


# ------------------------------------------------------------------------------------------------
# liquidation and bankruptcy
def liquidation_price(side, qty: float, entry_price: float, wallet_balance: float, brackets, *,
                      contract: str = "linear", contract_size: float = 1.0, mode: str = "isolated",
                      other_maint_margin: float = 0.0, other_upnl: float = 0.0, venue: str = "binance",
                      leverage: float | None = None, taker_fee_rate: float = 0.0) -> float:
    """Mark price at which a one-way position is liquidated.

    Parameters
    ----------
    side : +1 / -1 or "long" / "short"
    qty : absolute position size (base units for linear; contracts for inverse), > 0
    entry_price : average entry price, > 0
    wallet_balance : isolated: the position's isolated margin (Bybit: position margin = IM + extra
        margin); cross: the cross wallet balance. Quote currency for linear, coin for inverse.
    brackets : the symbol's margin tiers (``Bracket`` objects or dicts). Binance/Bybit tiers are
        by notional (quote for linear, coin for inverse); OKX tiers are by position size, in the
        unit of ``qty``.
    contract : "linear" (USDⓈ-margined) or "inverse" (coin-margined)
    contract_size : USD per contract for inverse contracts (ignored for linear)
    mode : "isolated" (``other_*`` must be 0) or "cross"
    other_maint_margin, other_upnl : cross only: maintenance margin and unrealised PnL of all
        other positions sharing the wallet (TMM1 and UPNL1 in Binance's notation)
    venue : "binance" (default), "bybit" (isolated only; needs ``leverage``) or "okx"
    leverage : Bybit: the position's leverage (IM = value / leverage)
    taker_fee_rate : OKX: the fee rate added to the MMR in the margin-ratio denominator

    Returns
    -------
    float
        Long: liquidated when ``mark <= LP`` (0.0 if never at a positive price). Short: liquidated
        when ``mark >= LP`` (``inf`` if never, e.g. a 1x inverse short).

    Notes
    -----
    Binance (both contract types): the price solving margin balance == maintenance margin with
    the tier re-selected at the liquidation price,

    * linear:  ``LP = (WB - TMM1 + UPNL1 + cum - side*Q*EP) / (Q*MMR - side*Q)``
    * inverse: ``LP = Q*CS*(MMR + side) / (WB - TMM1 + UPNL1 + cum + side*Q*CS/EP)``

    Bybit (isolated): ``LP = EP - side*(IM - MM + extra)/Q`` with MM at the entry value's tier;
    inverse ``LP = Q*CS / (value + side*(IM - MM + extra))``.
    OKX: as Binance with ``MMR + taker_fee_rate`` and the tier chosen by size.

    Sources: https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93 ,
    https://www.binance.com/en/support/faq/ceccfcfb4e3a45e3b48b0b1bb1a8ae46 ,
    https://testnet.bybit.com/en-US/help-center/s/article/Liquidation-Price-USDT-Contract ,
    https://www.okx.com/learn/when-would-my-order-be-liquidated
    """
    s = _side(side)
    q = _num("qty", qty, positive=True)
    ep = _num("entry_price", entry_price, positive=True)
    wb = _num("wallet_balance", wallet_balance)
    inverse = _contract(contract)
    cs = _num("contract_size", contract_size, positive=True)
    if mode not in ("isolated", "cross"):
        raise ValueError(f"mode must be 'isolated' or 'cross', got {mode!r}")
    omm = _num("other_maint_margin", other_maint_margin, nonneg=True)
    oup = _num("other_upnl", other_upnl)
    if mode == "isolated" and (omm != 0.0 or oup != 0.0):
        raise ValueError("other_maint_margin and other_upnl apply to cross margin only; use mode='cross'")
    if venue not in _VENUES:
        raise ValueError(f"venue must be one of {_VENUES}, got {venue!r}")
    fee = _num("taker_fee_rate", taker_fee_rate, nonneg=True)
    if fee != 0.0 and venue != "okx":
        raise ValueError("taker_fee_rate enters only OKX's maintenance margin; use venue='okx'")
    if leverage is not None and venue != "bybit":
        raise ValueError("leverage enters only Bybit's formula; use venue='bybit'")
    f, c, _, r, a, n = brackets_to_arrays(brackets)

    if venue == "bybit":
        if mode != "isolated":
            raise ValueError("venue='bybit' supports mode='isolated' only (Bybit cross liquidation is "
                             "account-level; use venue='binance' with mode='cross' for that formula)")
        if leverage is None:
            raise ValueError("venue='bybit' needs leverage (IM = position value / leverage)")
        lev = _num("leverage", leverage, positive=True)
        value = q * cs / ep if inverse else q * ep
        extra = wb - value / lev  # wallet_balance = position margin = IM + extra margin
        if inverse:
            return float(_mm.bybit_inverse_liq_price(s, q, cs, ep, lev, extra, f, c, r, a, n))
        return float(_mm.bybit_linear_liq_price(s, q, ep, lev, extra, f, c, r, a, n))
    if venue == "okx":
        if inverse:
            return float(_mm.okx_inverse_liq_price(s, q, cs, ep, wb, omm, oup, fee, f, c, r, a, n))
        return float(_mm.okx_linear_liq_price(s, q, ep, wb, omm, oup, fee, f, c, r, a, n))
    if inverse:
        return float(_mm.inverse_liq_price(s, q, cs, ep, wb, omm, oup, f, c, r, a, n))
    return float(_mm.linear_liq_price(s, q, ep, wb, omm, oup, f, c, r, a, n))


def bankruptcy_price(side, qty: float, entry_price: float, wallet_balance: float, *,
                     contract: str = "linear", contract_size: float = 1.0, other_upnl: float = 0.0) -> float:
    """Mark price at which the margin balance is 0 (where Binance/Bybit settle a liquidation).

    linear:  ``BP = EP - side * (WB + UPNL_other) / Q``
    inverse: ``BP = Q*CS / (side*(WB + UPNL_other) + Q*CS/EP)``

    Same return convention as :func:`liquidation_price` (long: 0.0 = never; short: inf = never).
    Source: https://help.bybit.com/hc/en-us/articles/900000167723 ("settled at the bankruptcy
    price"), https://www.binance.com/en/support/faq/360033525271
    """
    s = _side(side)
    q = _num("qty", qty, positive=True)
    ep = _num("entry_price", entry_price, positive=True)
    wb = _num("wallet_balance", wallet_balance) + _num("other_upnl", other_upnl)
    if _contract(contract):
        cs = _num("contract_size", contract_size, positive=True)
        return float(_mm.inverse_bankruptcy_price(s, q, cs, ep, wb))
    return float(_mm.linear_bankruptcy_price(s, q, ep, wb))


# ------------------------------------------------------------------------------------------------
# funding
def funding_payment(position: float, mark_price: float, rate: float, *, contract: str = "linear",
                    contract_size: float = 1.0) -> float:
    """Funding received by the account at a funding timestamp (negative = paid).

    linear:  ``-position * mark * rate`` (quote; ``position`` signed, in base units)
    inverse: ``-position * contract_size / mark * rate`` (coin; ``position`` in contracts)

    A positive rate means longs pay shorts. Source (``Funding Amount = Nominal Value x Funding
    Rate``, nominal at the mark price): https://www.binance.com/en/support/articles/360033525031
    """
    pos = _num("position", position)
    mk = _num("mark_price", mark_price, positive=True)
    rt = _num("rate", rate)
    inverse = _contract(contract)
    cs = _num("contract_size", contract_size, positive=True)
    return float(_mm.funding_payment(pos, mk, rt, cs, inverse))


# ------------------------------------------------------------------------------------------------
# loans
def loan_ltv(debt: float, collateral_qty: float, price: float) -> float:
    """Loan-to-value ``debt / (collateral_qty * price)`` (debt = principal + accrued interest).

    Source: https://help.coinbase.com/en/coinbase/trading-and-funding/loan/loan-health
    """
    d = _num("debt", debt, nonneg=True)
    cq = _num("collateral_qty", collateral_qty, nonneg=True)
    p = _num("price", price, positive=True)
    return float(_mm.loan_ltv(d, cq, p))


def loan_liquidation_price(debt: float, collateral_qty: float, lltv: float = COINBASE_LLTV) -> float:
    """Collateral price at which the loan reaches its LLTV: ``debt / (collateral_qty * lltv)``.

    A loan opened at LTV ``x`` is liquidated after a price fall of ``1 - x / lltv`` (12.8% from
    75% at LLTV 86%). Source: https://help.coinbase.com/en/coinbase/trading-and-funding/loan/collateral
    """
    d = _num("debt", debt, nonneg=True)
    cq = _num("collateral_qty", collateral_qty, positive=True)
    lt = _num("lltv", lltv, positive=True)
    if lt >= 1.0:
        raise ValueError(f"lltv must be in (0, 1), got {lt}")
    return float(_mm.loan_liquidation_price(d, cq, lt))


def morpho_liquidation_incentive(lltv: float = COINBASE_LLTV, *, cursor: float = MORPHO_LIQUIDATION_CURSOR,
                                 max_lif: float = MORPHO_MAX_LIQUIDATION_INCENTIVE) -> float:
    """Morpho Blue liquidation incentive factor ``min(max_lif, 1 / (1 - cursor * (1 - lltv)))``.

    1.0438413 at LLTV 0.86: Coinbase's 4.38% liquidation penalty (rounded).
    Source: https://docs.morpho.org/build/borrow/concepts/liquidation
    """
    lt = _num("lltv", lltv, positive=True)
    if lt >= 1.0:
        raise ValueError(f"lltv must be in (0, 1), got {lt}")
    cu = _num("cursor", cursor, nonneg=True)
    if cu >= 1.0:
        raise ValueError(f"cursor must be in [0, 1), got {cu}")
    ml = _num("max_lif", max_lif, positive=True)
    if ml < 1.0:
        raise ValueError(f"max_lif must be >= 1, got {ml}")
    return float(_mm.morpho_lif(lt, cu, ml))


def loan_seized_collateral(repaid_debt: float, price: float, lif: float) -> float:
    """Collateral a liquidator seizes for repaying ``repaid_debt``: ``repaid * lif / price``."""
    r = _num("repaid_debt", repaid_debt, nonneg=True)
    p = _num("price", price, positive=True)
    lf = _num("lif", lif, positive=True)
    return float(_mm.loan_seized_collateral(r, p, lf))


def loan_repay_to_restore(debt: float, collateral_qty: float, price: float, lif: float,
                          target_ltv: float) -> float:
    """Debt to repay (partial liquidation) so that the LTV after seizing ``repaid * lif / price``
    collateral equals ``target_ltv``: ``r = (D - t*C*P) / (1 - t*lif)``, clamped to ``[0, D]``;
    the whole debt when the target is unreachable (``t * lif >= 1`` or ``LTV >= 1 / lif``)."""
    d = _num("debt", debt, nonneg=True)
    cq = _num("collateral_qty", collateral_qty, nonneg=True)
    p = _num("price", price, positive=True)
    lf = _num("lif", lif, positive=True)
    t = _num("target_ltv", target_ltv, positive=True)
    return float(_mm.loan_repay_to_restore(d, cq, p, lf, t))
