"""Matching: what the live orders of one symbol do at one market event (docs/fill-rules.md §3)."""
import numpy as np

from .account import EPS_QTY, apply_fill, margin_ok, record_equity, update_drawdown
from .codes import (
    K_FUNDING, K_MARK, K_QUOTE, K_TRADE, LQ_MAKER, LQ_TAKER, OT_LIMIT, OT_MARKET, R_FOK, R_INSUFFICIENT_BALANCE, R_IOC,
    R_INVALID_QTY, R_NOTHING_TO_REDUCE, R_OCO, R_POST_ONLY, R_USER_CANCEL, ST_CANCELED, ST_EXPIRED, ST_FILLED,
    ST_FREE, ST_OPEN, ST_PENDING, ST_REJECTED, ST_WAITING, T_SPOT, TIF_FOK, TIF_IOC, TK_TAKE_PROFIT, TK_TRAILING, TS_LAST,
    ot_market_like, ot_needs_limit, ot_stop_like, ot_trigger_kind,
)
from .book import queue_ahead, rare_walk
from .execution import opp_price, taker_price, uses_book
from .jit import kernel
from .orders import WAKE_NOW, apply_amend, finish, post_only_crosses, reject_margin_at_fill
from .rare import rare_path

@kernel
def _check_trigger(o, kind, px):
    """R3.7/R3.8: update a trailing reference and say whether the order triggers now."""
    otype = o.type
    if o.trigger_src == TS_LAST:
        if kind != K_TRADE:
            return False
    elif kind != K_MARK:
        return False
    d = o.side
    tk = ot_trigger_kind(otype)
    if tk == TK_TRAILING:
        ref = o.trail_ref
        if ref != ref:
            ref = px
        elif d < 0:
            ref = max(ref, px)
        else:
            ref = min(ref, px)
        o.trail_ref = ref
        if o.trail_dist > 0.0:
            dist = o.trail_dist
        else:
            dist = ref * o.trail_bps / 10000.0
        stop = ref - dist if d < 0 else ref + dist
        o.stop = stop
        return px >= stop if d > 0 else px <= stop
    stop = o.stop
    if tk == TK_TAKE_PROFIT:
        return px <= stop if d > 0 else px >= stop
    return px >= stop if d > 0 else px <= stop


@kernel
def _init_trailing_ref(c, j):
    s = c.orders[j].sym
    if c.orders[j].trigger_src == TS_LAST:
        if c.mkt[s].has_trade:
            c.orders[j].trail_ref = c.mkt[s].last_px
    elif c.mkt[s].has_mark:
        c.orders[j].trail_ref = c.mkt[s].mark_px


@kernel
def _sync_children(c, j, g, t):
    """Bracket children cover what the entry has filled: they open on its first fill and grow
    with its later (partial) fills."""
    oid = c.orders[j].oid
    for k in range(j + 1, c.acct.o_hwm):
        if c.orders[k].parent != oid:
            continue
        if c.orders[k].status == ST_WAITING:
            c.orders[k].status = ST_OPEN
            c.orders[k].qty = c.orders[j].filled
            c.orders[k].decision_idx = g
            c.orders[k].arrive_ts = t
            c.orders[k].created_ts = t
        elif c.orders[k].status == ST_OPEN or c.orders[k].status == ST_PENDING:
            c.orders[k].qty = c.orders[j].filled


@kernel
def _cancel_oco_siblings(c, j, t):
    grp = c.orders[j].oco
    for k in range(c.acct.o_hwm):
        if k != j and c.orders[k].status != ST_FREE and c.orders[k].oco == grp:
            finish(c, k, ST_CANCELED, R_OCO, t)


@kernel
def _benchmark(o):
    """R4.5: the price a fill's cost is measured from: the mid at decision time for market
    orders, the limit for limit orders, the trigger price for stop-like orders."""
    otype = o.type
    if otype == OT_MARKET:
        return o.ref_px
    if otype == OT_LIMIT:
        return o.limit
    return o.stop


@kernel
def try_fill(c, j, q, price, liquidity, t, g, fills, equity_rows):
    """Fill q of the order in slot j at price, after the fill-time checks (R3.9, R4.4)."""
    s = c.orders[j].sym
    d = c.orders[j].side
    pos = c.pos[s].qty
    if c.orders[j].reduce:
        if pos == 0.0 or (pos > 0.0) == (d > 0):
            finish(c, j, ST_EXPIRED, R_NOTHING_TO_REDUCE, t)
            return
        if q > abs(pos):
            q = abs(pos)
            c.orders[j].qty = c.orders[j].filled + q
    if c.inst[s].type == T_SPOT and d < 0 and q > pos + EPS_QTY and not c.run.spot_margin:
        c.acct.n_rejects += 1
        finish(c, j, ST_REJECTED, R_INSUFFICIENT_BALANCE, t)
        return
    if not margin_ok(c, s, d, q, price):
        reject_margin_at_fill(c, j, t)
        return
    apply_fill(c, s, d, q, price, liquidity, t, g, c.orders[j].oid, c.orders[j].type, _benchmark(c.orders[j]), fills)
    c.orders[j].filled += q
    c.orders[j].notional += q * price
    record_equity(c, t, equity_rows)
    update_drawdown(c)
    _sync_children(c, j, g, t)
    if c.orders[j].oco != 0:
        _cancel_oco_siblings(c, j, t)
    if c.orders[j].filled >= c.orders[j].qty * (1.0 - 1e-12):
        finish(c, j, ST_FILLED, 0, t)


@kernel
def _capped(d, p, limit):
    """A marketable limit never fills beyond its limit price."""
    if d > 0:
        return min(p, limit)
    return max(p, limit)


@kernel
def _init_queue(c, j):
    """Queue model: the displayed size ahead of a new resting limit (NaN: behind the touch, or
    past the deepest level of the L2 book under l2_depth)."""
    s = c.orders[j].sym
    if not c.run.queue_model:
        return
    if uses_book(c.inst[s], c.book[s], -c.orders[j].side):  # R9.8: the size displayed at its level of the L2 book
        c.orders[j].queue = queue_ahead(c, s, c.orders[j].side, c.orders[j].limit, c.clock.ev_ts)
        return
    if not c.mkt[s].has_quote:
        return
    lim = c.orders[j].limit
    if c.orders[j].side > 0:
        touch, shown, better = c.mkt[s].bid, c.mkt[s].bid_qty, lim > c.mkt[s].bid
    else:
        touch, shown, better = c.mkt[s].ask, c.mkt[s].ask_qty, lim < c.mkt[s].ask
    if better:
        c.orders[j].queue = 0.0
    elif lim == touch:
        c.orders[j].queue = shown


rare_init_queue = rare_path(_init_queue, None)


@kernel
def _update_queue_on_quote(c, j):
    """The touch reached our price: the displayed size there is the queue (it only shrinks)."""
    s = c.orders[j].sym
    lim = c.orders[j].limit
    if c.orders[j].side > 0:
        touch, shown, better = c.mkt[s].bid, c.mkt[s].bid_qty, lim > c.mkt[s].bid
    else:
        touch, shown, better = c.mkt[s].ask, c.mkt[s].ask_qty, lim < c.mkt[s].ask
    q = c.orders[j].queue
    if better:
        c.orders[j].queue = 0.0
    elif lim == touch:
        c.orders[j].queue = shown if q != q else min(q, shown)


rare_update_queue_on_quote = rare_path(_update_queue_on_quote, None)


@kernel(hot=True)  # per live order per event: inlined, no call passing `c` by value
def _work_order(c, j, g, t, kind, px, ev_qty, first, fills, equity_rows):
    """An OPEN order at an event of its symbol: trigger, then market or limit behaviour."""
    otype = c.orders[j].type
    d = c.orders[j].side
    s = c.orders[j].sym
    if ot_stop_like(otype) and not c.orders[j].triggered:
        if not _check_trigger(c.orders[j], kind, px):
            return
        c.orders[j].triggered = 1
        first = True
    remaining = c.orders[j].qty - c.orders[j].filled
    if ot_market_like(otype):
        p = taker_price(c, s, d, remaining)
        if p == p:
            try_fill(c, j, remaining, p, LQ_TAKER, t, g, fills, equity_rows)
        return
    limit = c.orders[j].limit
    if first:
        if ot_stop_like(otype) and post_only_crosses(c, j):  # a triggered stop/take-profit limit
            c.acct.n_rejects += 1
            finish(c, j, ST_REJECTED, R_POST_ONLY, t)
            return
        opp = opp_price(c.mkt[s], d)
        l2 = uses_book(c.inst[s], c.book[s], d)
        notional = 0.0
        if l2:  # R9.5: the depth within the limit; the rest rests (IOC: expires, FOK: all or none)
            q, notional = rare_walk(c, s, d, remaining, limit, t)
            marketable = q > 0.0
        else:
            marketable = opp == opp and ((d > 0 and opp <= limit) or (d < 0 and opp >= limit))
            q = remaining
        if marketable:
            if c.run.partial_fills and not l2:  # at most what is shown at the touch (or this trade's size)
                if c.mkt[s].has_quote:
                    q = min(remaining, c.mkt[s].ask_qty if d > 0 else c.mkt[s].bid_qty)
                elif kind == K_TRADE:
                    q = min(remaining, ev_qty)
            if (c.run.partial_fills or l2) and c.orders[j].tif == TIF_FOK and q < remaining:
                finish(c, j, ST_EXPIRED, R_FOK, t)
                return
            if q > 0.0:
                p = notional / q if l2 else taker_price(c, s, d, q)
                try_fill(c, j, q, _capped(d, p, limit), LQ_TAKER, t, g, fills, equity_rows)
            if c.orders[j].status != ST_OPEN:
                return  # filled (or rejected at fill time)
            if c.orders[j].tif == TIF_IOC:
                finish(c, j, ST_EXPIRED, R_IOC, t)
            else:
                rare_init_queue(c, j)  # the partly filled rest rests at its limit
            return
        if c.orders[j].tif == TIF_IOC:
            finish(c, j, ST_EXPIRED, R_IOC, t)
            return
        if c.orders[j].tif == TIF_FOK:
            finish(c, j, ST_EXPIRED, R_FOK, t)
            return
        rare_init_queue(c, j)
        # resting from this event on: a trade at this same event may already trade through (R3.6)
    if c.run.queue_model and kind == K_QUOTE:
        rare_update_queue_on_quote(c, j)
        return
    if kind != K_TRADE:
        return
    if c.run.queue_model:
        through = px < limit if d > 0 else px > limit
        q = 0.0
        if through:
            q = min(remaining, ev_qty)
        elif px == limit and c.orders[j].queue == c.orders[j].queue:
            ahead = c.orders[j].queue
            c.orders[j].queue = max(0.0, ahead - ev_qty)
            q = min(remaining, max(0.0, ev_qty - ahead))
        if q > 0.0:
            try_fill(c, j, q, limit, LQ_MAKER, t, g, fills, equity_rows)
        return
    if d > 0:
        through = px < limit or (c.run.touch_fills and px == limit)
    else:
        through = px > limit or (c.run.touch_fills and px == limit)
    if through:
        q = remaining
        if c.run.partial_fills:
            q = min(remaining, ev_qty)
        try_fill(c, j, q, limit, LQ_MAKER, t, g, fills, equity_rows)


@kernel(hot=True)  # per live order per event: inlined, no call passing `c` by value
def arrive(c, j, g, t):
    """An order's bookkeeping at an event of its symbol, before it can fill: a due cancel
    (R3.12), the arrival of a pending order (R3.2: post-only check, trailing reference) or a due
    amend (R3.13). Returns -1 when the order does nothing at this event, 1 when it has just
    arrived, 0 otherwise."""
    st = c.orders[j].status
    if c.orders[j].cancel_ts >= 0 and t >= c.orders[j].cancel_ts:
        finish(c, j, ST_CANCELED, R_USER_CANCEL, t)
        return -1
    if st == ST_WAITING or c.orders[j].decision_idx >= g:
        return -1
    if st == ST_PENDING:
        if t < c.orders[j].arrive_ts:
            return -1
        c.orders[j].status = ST_OPEN
        if c.orders[j].type == OT_LIMIT and post_only_crosses(c, j):
            c.acct.n_rejects += 1
            finish(c, j, ST_REJECTED, R_POST_ONLY, t)
            return -1
        if ot_trigger_kind(c.orders[j].type) == TK_TRAILING:
            _init_trailing_ref(c, j)
        return 1
    if c.orders[j].amend_ts >= 0 and t >= c.orders[j].amend_ts:
        nq = c.orders[j].new_qty
        if nq > 0.0 and nq <= c.orders[j].filled:  # filled meanwhile up to the new quantity
            finish(c, j, ST_CANCELED, R_INVALID_QTY, t)
            return -1
        nl = c.orders[j].new_limit
        otype = c.orders[j].type
        resting = otype == OT_LIMIT or (ot_needs_limit(otype) and c.orders[j].triggered != 0)
        requeue = resting and ((nl > 0.0 and nl != c.orders[j].limit) or nq > c.orders[j].qty)
        apply_amend(c.orders[j], nq, nl, c.orders[j].new_stop)
        if requeue and c.run.queue_model:  # R3.16: a new price or a larger size queues again
            c.orders[j].queue = np.nan
            rare_init_queue(c, j)
    return 0


@kernel
def process_orders(c, g, t, s, kind, px, ev_qty, fills, equity_rows):
    """Run every live order of symbol s (ascending oid) against event g (R3.1-R3.13)."""
    if c.pos[s].n_open == 0 or kind >= K_FUNDING:  # funding, bars (bars_match.py), market liquidations
        return
    # only the slots that can hold s's orders (state.py: o_first, o_last), narrowed on the way to
    # the ones still live (orders are only placed by hooks, never during this scan), and when the
    # live ones can next do something (o_wake, o_buy_max, o_sell_min)
    first = -1
    last = -1
    wake = np.int64(1 << 62)
    buy_max = -np.inf
    sell_min = np.inf
    for j in range(c.pos[s].o_first, min(c.pos[s].o_last + 1, c.acct.o_hwm)):
        st = c.orders[j].status
        if st == ST_FREE or c.orders[j].sym != s:
            continue
        state = arrive(c, j, g, t)
        if state >= 0:
            _work_order(c, j, g, t, kind, px, ev_qty, state == 1, fills, equity_rows)
        if c.orders[j].status != ST_FREE:
            if first < 0:
                first = j
            last = j
            wake = min(wake, _wake_of(c.run, c.orders[j]))
            if c.orders[j].status == ST_OPEN and not ot_market_like(c.orders[j].type):
                if c.orders[j].side > 0:
                    buy_max = max(buy_max, c.orders[j].limit)
                else:
                    sell_min = min(sell_min, c.orders[j].limit)
    if first >= 0:
        c.pos[s].o_first = first
        c.pos[s].o_last = last
        c.pos[s].o_wake = wake
        c.pos[s].o_buy_max = buy_max
        c.pos[s].o_sell_min = sell_min


@kernel
def _wake_of(run, o):
    """From when a live order can act at any event of its symbol, not only at a trade through
    its limit (process_orders' bounds): a due cancel or amend, a pending order's arrival, every
    event for a market-like or untriggered stop-like order (or a resting limit under the queue
    model, which quotes update). A waiting bracket child opens only in a scan of its symbol."""
    w = np.int64(1 << 62)
    if o.cancel_ts >= 0:
        w = o.cancel_ts
    if o.amend_ts >= 0:
        w = min(w, o.amend_ts)
    if o.status == ST_PENDING:
        return min(w, o.arrive_ts)
    if o.status == ST_OPEN and (ot_market_like(o.type) or (ot_stop_like(o.type) and not o.triggered)
                                or run.queue_model):
        return WAKE_NOW
    return w
