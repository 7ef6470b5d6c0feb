"""Orders against a candle (docs/fill-rules.md section 8, rules R8.1-R8.7).

A bar's open, high, low and close are known only at its close, so the loop calls this at the
bar's close time with the orders that were resting (or arrived) before it. The bar is walked as
four path points, open -> adverse extreme -> favourable extreme -> close, where the adverse
extreme is chosen per order: a sell meets the low first, a buy the high first. A long's stop and
target (both sells) therefore see the stop first, and so do a short's (both buys): on candles the
pessimistic outcome happens. Points are walked point by point over all orders of the symbol
(ascending oid), so OCO siblings and brackets resolve in path order. No extra data is made: the
path lives in this loop only.
"""
from .account import mark_to_market, update_drawdown
from .codes import (
    K_TRADE, LQ_MAKER, LQ_TAKER, OT_LIMIT, R_FOK, R_IOC, R_POST_ONLY, ST_EXPIRED, ST_FREE, ST_OPEN,
    ST_REJECTED, TIF_FOK, TIF_IOC, ot_market_like, ot_stop_like,
)
from .execution import taker_price
from .guard import arm_guard, guard_holds
from .jit import kernel
from .liquidation import liquidate, margin_breached
from .matching import _capped, _check_trigger, arrive, try_fill
from .orders import WAKE_NOW, finish, post_only_crosses

N_POINTS = 4  # open, adverse extreme, favourable extreme, close


@kernel
def path_price(d, k, o, h, lo, cl):
    """R8.2: the k-th point of the bar's path as seen by an order on side d."""
    if k == 0:
        return o
    if k == 3:
        return cl
    if (k == 1) == (d < 0):  # a sell's adverse extreme is the low, a buy's the high
        return lo
    return h


@kernel
def _work_on_bar(c, j, g, t, k, px, first, fills, equity_rows):
    """One OPEN order at path point k (price px): trigger, then market or limit behaviour."""
    otype = c.orders[j].type
    d = c.orders[j].side
    s = c.orders[j].sym
    base = px  # R8.4: the price at which the order is reached on the path
    if ot_stop_like(otype) and not c.orders[j].triggered:
        if not _check_trigger(c.orders[j], K_TRADE, px):
            return
        c.orders[j].triggered = 1
        first = True
        if k > 0:  # reached within a segment: the path crossed the trigger price itself
            base = c.orders[j].stop
    remaining = c.orders[j].qty - c.orders[j].filled
    if ot_market_like(otype):
        c.mkt[s].last_px = base
        p = taker_price(c, s, d, remaining)
        if p == p:
            try_fill(c, j, remaining, p, LQ_TAKER, t, g, fills, equity_rows)
        c.mkt[s].last_px = px
        return
    limit = c.orders[j].limit
    if first:
        c.mkt[s].last_px = base
        if otype != OT_LIMIT and post_only_crosses(c, j):  # a triggered stop/take-profit limit
            c.acct.n_rejects += 1
            finish(c, j, ST_REJECTED, R_POST_ONLY, t)
            c.mkt[s].last_px = px
            return
        if (d > 0 and base <= limit) or (d < 0 and base >= limit):  # R8.5: marketable
            try_fill(c, j, remaining, _capped(d, taker_price(c, s, d, remaining), limit), LQ_TAKER,
                     t, g, fills, equity_rows)
            c.mkt[s].last_px = px
            return
        c.mkt[s].last_px = px
        if c.orders[j].tif == TIF_IOC:
            finish(c, j, ST_EXPIRED, R_IOC, t)
            return
        if c.orders[j].tif == TIF_FOK:
            finish(c, j, ST_EXPIRED, R_FOK, t)
            return
    # R8.6: a resting limit fills when the path point is strictly through it, at the limit
    if d > 0:
        through = px < limit or (c.run.touch_fills and px == limit)
    else:
        through = px > limit or (c.run.touch_fills and px == limit)
    if through:
        try_fill(c, j, remaining, limit, LQ_MAKER, t, g, fills, equity_rows)


@kernel
def match_bar(c, g, t, s, o, h, lo, cl, fills, equity_rows):
    """Walk the live orders of symbol s through the bar closing at t (event g); last = close after."""
    c.mkt[s].has_trade = 1
    for k in range(N_POINTS):
        for j in range(c.acct.o_hwm):
            st = c.orders[j].status
            if st == ST_FREE or c.orders[j].sym != s:
                continue
            px = path_price(c.orders[j].side, k, o, h, lo, cl)
            c.mkt[s].last_px = px
            first = False
            if k == 0:  # cancels, arrivals and amends, as at any event (R3.12, R3.2, R3.13)
                state = arrive(c, j, g, t)
                if state < 0:
                    continue
                first = state == 1
            elif st != ST_OPEN or c.orders[j].decision_idx >= g:
                continue  # finished, still travelling, or activated by a fill in this bar (R3.11)
            _work_on_bar(c, j, g, t, k, px, first, fills, equity_rows)
    c.mkt[s].last_px = cl
    c.pos[s].o_wake = WAKE_NOW  # the next event's matching recomputes the bounds (matching.py)


@kernel
def check_bar_extreme(c, g, t, s, lo, h, fills, equity_rows, liq_rows):
    """R8.7: value an open position at its adverse extreme of the bar (a long at the low, a short
    at the high) and run the margin check there, as the loop does at a trade (docs/margin.md):
    a liquidation inside the bar is never missed because the bar closed higher. Returns whether
    a liquidation wrote rows."""
    if c.pos[s].qty == 0.0 or not (c.run.liq_use_last or not c.mkt[s].has_mark):
        return False
    c.mkt[s].last_px = lo if c.pos[s].qty > 0.0 else h
    mark_to_market(c.run, c.inst[s], c.mkt[s], c.pos[s])
    wrote = False
    if not guard_holds(c.run, c.guard, c.mkt[s], c.pos[s], s):
        c.acct.n_margin_checks += 1
        update_drawdown(c)
        if margin_breached(c, s, t):
            liquidate(c, s, t, g, fills, equity_rows, liq_rows)
            wrote = True
        arm_guard(c, s)
    return wrote
