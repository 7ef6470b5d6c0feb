"""The price guard: skip the per-event drawdown and margin checks while they cannot change anything.

While a position is open, every move of its valuation price v revalues it (R6.1) and then runs
`update_drawdown` and `margin_breached`; together they were three quarters of the cost of an event.
With a single open position (no loans, no inverse contracts) equity, margin balance and
maintenance margin depend on nothing but v. After the full checks at v0, `arm_guard` computes an
interval [lo, hi] around v0 inside which:

1. equity stays at or below the peak and within the max drawdown of it, so neither moves. equity
   is computed by the same floating-point operations as `equity()`, each monotone in v, so
   checking the two ends with that arithmetic proves the whole interval;
2. margin balance stays above maintenance margin, and maintenance / margin balance below the
   margin-call level, by a margin of 1e-9 of the amounts involved (the conditions are linear in v
   within a bracket; the margin absorbs rounding), so neither a liquidation nor a margin call
   can fire;
3. the notional stays in its maintenance-margin bracket.

`guard_holds` is then a few compares per event. The guard is valid only while the account is as
it was when armed (fills, balance, peak, max drawdown, no loans): anything else, and any price
outside [lo, hi], takes the full checks, which re-arm it. Results are identical with and without
the guard (margin.price_guard = false; tests/test_guard.py compares both on random scenarios).
"""
import numpy as np

from .account import equity, is_isolated, iso_total, maint_of, upnl_total, val_px
from .codes import T_INVERSE, T_SPOT
from .jit import kernel

_SHRINK = 1.0 - 1e-6  # keep the ends strictly inside the computed distances
_TOL = 1e-9  # margin-condition slack, relative to the amounts involved


@kernel
def guard_holds(c, s):
    """Can the drawdown and margin checks of s be skipped at its current valuation price?"""
    if s != c.g_sym or c.n_fills != c.g_fills or c.balance != c.g_balance:
        return False
    if c.peak_equity != c.g_peak or c.max_drawdown != c.g_max_drawdown or c.n_loans != 0:
        return False
    v = val_px(c, s)
    return c.g_lo <= v <= c.g_hi


@kernel
def _equity_at(c, s, v):
    """equity() with s revalued at v, by the same operations as mark_to_market."""
    saved = c.sym_upnl[s]
    c.sym_upnl[s] = c.pos[s] * (v - c.avg_px[s])
    e = equity(c)
    c.sym_upnl[s] = saved
    return e


@kernel
def _drawdown_still(c, e):
    """update_drawdown(c) would change nothing at equity e."""
    return e <= c.peak_equity and c.peak_equity - e <= c.max_drawdown


@kernel
def arm_guard(c, s):
    """After the full checks of s: arm the guard around its valuation price, when it applies."""
    c.g_sym = -1
    p = c.pos[s]
    typ = c.i_type[s]
    if not c.guard_on or p == 0.0 or c.n_inverse != 0 or c.n_loans != 0 or typ == T_INVERSE:
        return
    if typ == T_SPOT and p < 0.0:  # a spot short accrues borrow interest at every check
        return
    for k in range(c.nsym):
        if k != s and c.pos[k] != 0.0:
            return
    v0 = val_px(c, s)
    e0 = equity(c)
    to_peak = c.peak_equity - e0
    to_max_dd = c.max_drawdown - to_peak
    if not (to_peak >= 0.0 and to_max_dd >= 0.0):
        return
    a = abs(p)
    if p > 0.0:  # distances in price; equity moves by p per unit of v
        up = to_peak / a
        down = to_max_dd / a
    else:
        up = to_max_dd / a
        down = to_peak / a
    if typ != T_SPOT:
        mm = maint_of(c, s)
        if is_isolated(c, s):
            mb = c.iso_margin[s] + c.sym_upnl[s]
        else:
            mb = c.balance - iso_total(c) + upnl_total(c)
        slack = min(mb - mm, c.margin_call_level * mb - mm)
        tol = _TOL * (abs(mb) + mm + abs(c.balance) + 2.0 * a * v0)
        if not slack > tol:
            return
        i = c.br_idx[s]
        mmr = c.br_mmr[s, i] if c.i_n_brackets[s] > 0 else 0.0
        reach = (slack - tol) / (a * (1.0 + mmr))  # |d slack / dv| <= |p| (1 + mmr)
        up = min(up, reach)
        down = min(down, reach)
        if i < c.i_n_brackets[s] - 1:
            up = min(up, c.br_cap[s, i] * (1.0 - _TOL) / a - v0)
        if i > 0:
            down = min(down, v0 - c.br_cap[s, i - 1] * (1.0 + _TOL) / a)
    hi = v0 + max(up, 0.0) * _SHRINK
    lo = v0 - max(down, 0.0) * _SHRINK
    if not (_drawdown_still(c, _equity_at(c, s, hi)) and _drawdown_still(c, _equity_at(c, s, lo))):
        return
    c.g_sym = s
    c.g_lo = lo
    c.g_hi = hi
    c.g_fills = c.n_fills
    c.g_balance = c.balance
    c.g_peak = c.peak_equity
    c.g_max_drawdown = c.max_drawdown
