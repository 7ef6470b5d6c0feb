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

With several open positions (all cross-margin linear perpetuals or spot longs: no isolated
position, no spot short, no margin call pending on the cross account) the same holds for a box,
one interval per position: equity and margin balance are sums of per-symbol terms, each monotone
in its own valuation price, and the floating-point sum is monotone in each term, so equity at the
two corners of the box (every position at its low, or at its high, end for equity) bounds it
everywhere inside; the peak/drawdown room and the margin slack are split evenly among the n
positions (each symbol's interval spends at most 1/n of them), and each notional stays in its
bracket. The intervals live in the positions' rows (`pos.g_lo`, `pos.g_hi`; flat symbols get an
empty one), and `guard.sym` says which kind is armed (-1: none, s: one position, `GUARD_ALL`).

`guard_holds` is then a few compares per event. The guard is valid only while the account is as
it was when armed: no fill, no change of balance, peak or max drawdown, no loan. Every writer of
those disarms it (`account.disarm_guard`; tests/test_guard.py finds them all), so holding needs
no copy of the account to compare; a disarmed guard, and any price outside its symbol's
interval, takes the full checks, which re-arm it. Results are identical with and without
the guard (margin.price_guard = false; tests/test_guard.py compares both on random scenarios).
"""
import numpy as np

from .account import GUARD_OFF, equity, is_isolated, iso_total, maint_of, upnl_total, val_px
from .codes import T_INVERSE, T_SPOT
from .jit import kernel

_SHRINK = 1.0 - 1e-6  # keep the ends strictly inside the computed distances
_TOL = 1e-9  # margin-condition slack, relative to the amounts involved
GUARD_ALL = -2  # guard.sym when armed over several positions (each with its own interval)


@kernel
def guard_holds(run, guard, mkt, pos, s):
    """Can the drawdown and margin checks of s be skipped at its current valuation price?"""
    if s != guard.sym and guard.sym != GUARD_ALL:
        return False
    v = val_px(run, mkt)
    return pos.g_lo <= v <= pos.g_hi


@kernel
def _equity_at(c, s, v):
    """equity() with s revalued at v, by the same operations as mark_to_market."""
    saved = c.pos[s].upnl
    c.pos[s].upnl = c.pos[s].qty * (v - c.pos[s].avg_px)
    e = equity(c)
    c.pos[s].upnl = saved
    return e


@kernel
def _drawdown_still(acct, e):
    """update_drawdown(c) would change nothing at equity e."""
    return e <= acct.peak_equity and acct.peak_equity - e <= acct.max_drawdown


@kernel
def arm_guard(c, s):
    """After the full checks of s: arm the guard around the valuation prices, when it applies."""
    c.guard.sym = GUARD_OFF
    if not c.run.guard_on or c.run.n_inverse != 0 or c.acct.n_loans != 0:
        return
    n = 0
    for k in range(c.run.nsym):
        if c.pos[k].qty != 0.0:
            n += 1
    if n > 1:
        _arm_many(c, n)
        return
    p = c.pos[s].qty
    typ = c.inst[s].type
    if p == 0.0 or typ == T_INVERSE:
        return
    if typ == T_SPOT and p < 0.0:  # a spot short accrues borrow interest at every check
        return
    v0 = val_px(c.run, c.mkt[s])
    e0 = equity(c)
    to_peak = c.acct.peak_equity - e0
    to_max_dd = c.acct.max_drawdown - to_peak
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
        mm = maint_of(c.run, c.inst[s], c.mkt[s], c.pos[s])
        if is_isolated(c.inst[s]):
            mb = c.pos[s].iso_margin + c.pos[s].upnl
        else:
            mb = c.acct.balance - iso_total(c) + upnl_total(c)
        slack = min(mb - mm, c.run.margin_call_level * mb - mm)
        tol = _TOL * (abs(mb) + mm + abs(c.acct.balance) + 2.0 * a * v0)
        if not slack > tol:
            return
        i = c.pos[s].br_idx
        mmr = c.inst[s].br_mmr[i] if c.inst[s].n_brackets > 0 else 0.0
        reach = (slack - tol) / (a * (1.0 + mmr))  # |d slack / dv| <= |p| (1 + mmr)
        up = min(up, reach)
        down = min(down, reach)
        if i < c.inst[s].n_brackets - 1:
            up = min(up, c.inst[s].br_cap[i] * (1.0 - _TOL) / a - v0)
        if i > 0:
            down = min(down, v0 - c.inst[s].br_cap[i - 1] * (1.0 + _TOL) / a)
    hi = v0 + max(up, 0.0) * _SHRINK
    lo = v0 - max(down, 0.0) * _SHRINK
    if not (_drawdown_still(c.acct, _equity_at(c, s, hi)) and _drawdown_still(c.acct, _equity_at(c, s, lo))):
        return
    c.guard.sym = s
    c.pos[s].g_lo = lo
    c.pos[s].g_hi = hi


@kernel
def _equity_box(c, high):
    """equity() with every position revalued at the end of its interval that gives the highest
    (high) or lowest equity, by the same operations as mark_to_market and equity()."""
    u = 0.0
    for k in range(c.run.nsym):
        p = c.pos[k].qty
        if p == 0.0:
            u += c.pos[k].upnl
        else:
            v = c.pos[k].g_hi if (p > 0.0) == high else c.pos[k].g_lo
            u += p * (v - c.pos[k].avg_px)
    return c.acct.balance + u


@kernel
def _arm_many(c, n):
    """arm_guard with n > 1 open positions: one interval per position (module docstring)."""
    any_perp = False
    for k in range(c.run.nsym):
        p = c.pos[k].qty
        if p == 0.0:
            continue
        if is_isolated(c.inst[k]) or (c.inst[k].type == T_SPOT and p < 0.0):
            return
        if c.inst[k].type != T_SPOT:
            any_perp = True
        # the box is centred on the price the stored upnl was computed at
        if c.pos[k].upnl != p * (val_px(c.run, c.mkt[k]) - c.pos[k].avg_px):
            return
    e0 = equity(c)
    to_peak = c.acct.peak_equity - e0
    to_max_dd = c.acct.max_drawdown - to_peak
    if not (to_peak >= 0.0 and to_max_dd >= 0.0):
        return
    room = 0.0
    if any_perp:  # the cross account's check (liquidation.margin_breached), as in arm_guard
        if c.acct.mc_cross_flag != 0:  # a skipped check would have cleared it
            return
        u = 0.0
        mm = 0.0
        av = 0.0
        for k in range(c.run.nsym):
            if is_isolated(c.inst[k]):
                continue
            u += c.pos[k].upnl
            if c.pos[k].qty != 0.0:
                av += abs(c.pos[k].qty) * val_px(c.run, c.mkt[k])
                if c.inst[k].type != T_SPOT:
                    mm += maint_of(c.run, c.inst[k], c.mkt[k], c.pos[k])
        mb = c.acct.balance - iso_total(c) + u
        slack = min(mb - mm, c.run.margin_call_level * mb - mm)
        tol = _TOL * (abs(mb) + mm + abs(c.acct.balance) + 2.0 * av)
        if not slack > tol:
            return
        room = (slack - tol) / n
    for k in range(c.run.nsym):
        p = c.pos[k].qty
        if p == 0.0:
            c.pos[k].g_lo = np.inf  # empty: a position opened later comes with a fill
            c.pos[k].g_hi = -np.inf
            continue
        a = abs(p)
        v0 = val_px(c.run, c.mkt[k])
        if p > 0.0:
            up = to_peak / (n * a)
            down = to_max_dd / (n * a)
        else:
            up = to_max_dd / (n * a)
            down = to_peak / (n * a)
        if any_perp:
            typ = c.inst[k].type
            i = c.pos[k].br_idx
            mmr = c.inst[k].br_mmr[i] if typ != T_SPOT and c.inst[k].n_brackets > 0 else 0.0
            reach = room / (a * (1.0 + mmr))
            up = min(up, reach)
            down = min(down, reach)
            if typ != T_SPOT:
                if i < c.inst[k].n_brackets - 1:
                    up = min(up, c.inst[k].br_cap[i] * (1.0 - _TOL) / a - v0)
                if i > 0:
                    down = min(down, v0 - c.inst[k].br_cap[i - 1] * (1.0 + _TOL) / a)
        c.pos[k].g_hi = v0 + max(up, 0.0) * _SHRINK
        c.pos[k].g_lo = v0 - max(down, 0.0) * _SHRINK
    if not (_drawdown_still(c.acct, _equity_box(c, True)) and _drawdown_still(c.acct, _equity_box(c, False))):
        return
    c.guard.sym = GUARD_ALL
