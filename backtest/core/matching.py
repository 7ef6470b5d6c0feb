"""Matching: what the live orders of one symbol do at one market event (docs/fill-rules.md §3)."""

from .account import EPS_QTY, apply_fill, margin_ok, record_equity, update_drawdown
from .codes import (
    K_FUNDING, K_MARK, K_QUOTE, K_TRADE, LQ_MAKER, LQ_TAKER, OT_LIMIT, OT_MARKET, R_FOK, R_INSUFFICIENT_BALANCE, R_IOC,
    R_NOTHING_TO_REDUCE, R_OCO, R_POST_ONLY, R_USER_CANCEL, ST_CANCELED, ST_EXPIRED, ST_FILLED,
    ST_FREE, ST_OPEN, ST_PENDING, ST_REJECTED, ST_WAITING, T_SPOT, TIF_FOK, TIF_IOC, TK_TAKE_PROFIT, TK_TRAILING, TS_LAST,
    ot_market_like, ot_stop_like, ot_trigger_kind,
)
from .book import queue_ahead, walk
from .execution import opp_price, taker_price, uses_book
from .jit import kernel
from .orders import apply_amend, finish, post_only_crosses, reject_margin_at_fill

@kernel
def _check_trigger(c, j, kind, px):
    """R3.7/R3.8: update a trailing reference and say whether the order triggers now."""
    otype = c.o_type[j]
    if c.o_trigger_src[j] == TS_LAST:
        if kind != K_TRADE:
            return False
    elif kind != K_MARK:
        return False
    d = c.o_side[j]
    tk = ot_trigger_kind(otype)
    if tk == TK_TRAILING:
        ref = c.o_trail_ref[j]
        if ref != ref:
            ref = px
        elif d < 0:
            ref = max(ref, px)
        else:
            ref = min(ref, px)
        c.o_trail_ref[j] = ref
        if c.o_trail_dist[j] > 0.0:
            dist = c.o_trail_dist[j]
        else:
            dist = ref * c.o_trail_bps[j] / 10000.0
        stop = ref - dist if d < 0 else ref + dist
        c.o_stop[j] = stop
        return px >= stop if d > 0 else px <= stop
    stop = c.o_stop[j]
    if tk == TK_TAKE_PROFIT:
        return px <= stop if d > 0 else px >= stop
    return px >= stop if d > 0 else px <= stop


@kernel
def _init_trailing_ref(c, j):
    s = c.o_sym[j]
    if c.o_trigger_src[j] == TS_LAST:
        if c.has_trade[s]:
            c.o_trail_ref[j] = c.last_px[s]
    elif c.has_mark[s]:
        c.o_trail_ref[j] = c.mark_px[s]


@kernel
def _sync_children(c, j, g, t):
    """Bracket children cover what the entry has filled: they open on its first fill and grow
    with its later (partial) fills."""
    oid = c.o_oid[j]
    for k in range(j + 1, c.o_hwm):
        if c.o_parent[k] != oid:
            continue
        if c.o_status[k] == ST_WAITING:
            c.o_status[k] = ST_OPEN
            c.o_qty[k] = c.o_filled[j]
            c.o_decision_idx[k] = g
            c.o_arrive_ts[k] = t
            c.o_created_ts[k] = t
        elif c.o_status[k] == ST_OPEN or c.o_status[k] == ST_PENDING:
            c.o_qty[k] = c.o_filled[j]


@kernel
def _cancel_oco_siblings(c, j, t):
    grp = c.o_oco[j]
    for k in range(c.o_hwm):
        if k != j and c.o_status[k] != ST_FREE and c.o_oco[k] == grp:
            finish(c, k, ST_CANCELED, R_OCO, t)


@kernel
def _benchmark(c, j):
    """R4.5: the price a fill's cost is measured from: the mid at decision time for market
    orders, the limit for limit orders, the trigger price for stop-like orders."""
    otype = c.o_type[j]
    if otype == OT_MARKET:
        return c.o_ref_px[j]
    if otype == OT_LIMIT:
        return c.o_limit[j]
    return c.o_stop[j]


@kernel
def try_fill(c, j, q, price, liquidity, t, g, fills, equity_rows):
    """Fill q of the order in slot j at price, after the fill-time checks (R3.9, R4.4)."""
    s = c.o_sym[j]
    d = c.o_side[j]
    pos = c.pos[s]
    if c.o_reduce[j]:
        if pos == 0.0 or (pos > 0.0) == (d > 0):
            finish(c, j, ST_EXPIRED, R_NOTHING_TO_REDUCE, t)
            return
        if q > abs(pos):
            q = abs(pos)
            c.o_qty[j] = c.o_filled[j] + q
    if c.i_type[s] == T_SPOT and d < 0 and q > pos + EPS_QTY and not c.spot_margin:
        c.n_rejects += 1
        finish(c, j, ST_REJECTED, R_INSUFFICIENT_BALANCE, t)
        return
    if not margin_ok(c, s, d, q, price):
        reject_margin_at_fill(c, j, t)
        return
    apply_fill(c, s, d, q, price, liquidity, t, g, c.o_oid[j], c.o_type[j], _benchmark(c, j), fills)
    c.o_filled[j] += q
    c.o_notional[j] += q * price
    record_equity(c, t, equity_rows)
    update_drawdown(c)
    _sync_children(c, j, g, t)
    if c.o_oco[j] != 0:
        _cancel_oco_siblings(c, j, t)
    if c.o_filled[j] >= c.o_qty[j] * (1.0 - 1e-12):
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
    s = c.o_sym[j]
    if not c.queue_model:
        return
    if uses_book(c, s, -c.o_side[j]):  # R9.8: the size displayed at its level of the L2 book
        c.o_queue[j] = queue_ahead(c, s, c.o_side[j], c.o_limit[j], c.ev_ts)
        return
    if not c.has_quote[s]:
        return
    lim = c.o_limit[j]
    if c.o_side[j] > 0:
        touch, shown, better = c.bid[s], c.bid_qty[s], lim > c.bid[s]
    else:
        touch, shown, better = c.ask[s], c.ask_qty[s], lim < c.ask[s]
    if better:
        c.o_queue[j] = 0.0
    elif lim == touch:
        c.o_queue[j] = shown


@kernel
def _update_queue_on_quote(c, j):
    """The touch reached our price: the displayed size there is the queue (it only shrinks)."""
    s = c.o_sym[j]
    lim = c.o_limit[j]
    if c.o_side[j] > 0:
        touch, shown, better = c.bid[s], c.bid_qty[s], lim > c.bid[s]
    else:
        touch, shown, better = c.ask[s], c.ask_qty[s], lim < c.ask[s]
    q = c.o_queue[j]
    if better:
        c.o_queue[j] = 0.0
    elif lim == touch:
        c.o_queue[j] = shown if q != q else min(q, shown)


@kernel
def _work_order(c, j, g, t, kind, px, ev_qty, first, fills, equity_rows):
    """An OPEN order at an event of its symbol: trigger, then market or limit behaviour."""
    otype = c.o_type[j]
    d = c.o_side[j]
    s = c.o_sym[j]
    if ot_stop_like(otype) and not c.o_triggered[j]:
        if not _check_trigger(c, j, kind, px):
            return
        c.o_triggered[j] = 1
        first = True
    remaining = c.o_qty[j] - c.o_filled[j]
    if ot_market_like(otype):
        p = taker_price(c, s, d, remaining)
        if p == p:
            try_fill(c, j, remaining, p, LQ_TAKER, t, g, fills, equity_rows)
        return
    limit = c.o_limit[j]
    if first:
        if ot_stop_like(otype) and post_only_crosses(c, j):  # a triggered stop/take-profit limit
            c.n_rejects += 1
            finish(c, j, ST_REJECTED, R_POST_ONLY, t)
            return
        opp = opp_price(c, s, d)
        l2 = uses_book(c, s, d)
        notional = 0.0
        if l2:  # R9.5: the depth within the limit; the rest rests (IOC: expires, FOK: all or none)
            q, notional = walk(c, s, d, remaining, limit, t)
            marketable = q > 0.0
        else:
            marketable = opp == opp and ((d > 0 and opp <= limit) or (d < 0 and opp >= limit))
            q = remaining
        if marketable:
            if c.partial_fills and not l2:  # at most what is shown at the touch (or this trade's size)
                if c.has_quote[s]:
                    q = min(remaining, c.ask_qty[s] if d > 0 else c.bid_qty[s])
                elif kind == K_TRADE:
                    q = min(remaining, ev_qty)
            if (c.partial_fills or l2) and c.o_tif[j] == TIF_FOK and q < remaining:
                finish(c, j, ST_EXPIRED, R_FOK, t)
                return
            if q > 0.0:
                p = notional / q if l2 else taker_price(c, s, d, q)
                try_fill(c, j, q, _capped(d, p, limit), LQ_TAKER, t, g, fills, equity_rows)
            if c.o_status[j] != ST_OPEN:
                return  # filled (or rejected at fill time)
            if c.o_tif[j] == TIF_IOC:
                finish(c, j, ST_EXPIRED, R_IOC, t)
            else:
                _init_queue(c, j)  # the partly filled rest rests at its limit
            return
        if c.o_tif[j] == TIF_IOC:
            finish(c, j, ST_EXPIRED, R_IOC, t)
            return
        if c.o_tif[j] == TIF_FOK:
            finish(c, j, ST_EXPIRED, R_FOK, t)
            return
        _init_queue(c, j)
        # resting from this event on: a trade at this same event may already trade through (R3.6)
    if c.queue_model and kind == K_QUOTE:
        _update_queue_on_quote(c, j)
        return
    if kind != K_TRADE:
        return
    if c.queue_model:
        through = px < limit if d > 0 else px > limit
        q = 0.0
        if through:
            q = min(remaining, ev_qty)
        elif px == limit and c.o_queue[j] == c.o_queue[j]:
            ahead = c.o_queue[j]
            c.o_queue[j] = max(0.0, ahead - ev_qty)
            q = min(remaining, max(0.0, ev_qty - ahead))
        if q > 0.0:
            try_fill(c, j, q, limit, LQ_MAKER, t, g, fills, equity_rows)
        return
    if d > 0:
        through = px < limit or (c.touch_fills and px == limit)
    else:
        through = px > limit or (c.touch_fills and px == limit)
    if through:
        q = remaining
        if c.partial_fills:
            q = min(remaining, ev_qty)
        try_fill(c, j, q, limit, LQ_MAKER, t, g, fills, equity_rows)


@kernel
def arrive(c, j, g, t):
    """An order's bookkeeping at an event of its symbol, before it can fill: a due cancel
    (R3.12), the arrival of a pending order (R3.2: post-only check, trailing reference) or a due
    amend (R3.13). Returns -1 when the order does nothing at this event, 1 when it has just
    arrived, 0 otherwise."""
    st = c.o_status[j]
    if c.o_cancel_ts[j] >= 0 and t >= c.o_cancel_ts[j]:
        finish(c, j, ST_CANCELED, R_USER_CANCEL, t)
        return -1
    if st == ST_WAITING or c.o_decision_idx[j] >= g:
        return -1
    if st == ST_PENDING:
        if t < c.o_arrive_ts[j]:
            return -1
        c.o_status[j] = ST_OPEN
        if c.o_type[j] == OT_LIMIT and post_only_crosses(c, j):
            c.n_rejects += 1
            finish(c, j, ST_REJECTED, R_POST_ONLY, t)
            return -1
        if ot_trigger_kind(c.o_type[j]) == TK_TRAILING:
            _init_trailing_ref(c, j)
        return 1
    if c.o_amend_ts[j] >= 0 and t >= c.o_amend_ts[j]:
        apply_amend(c, j, c.o_new_qty[j], c.o_new_limit[j], c.o_new_stop[j])
    return 0


@kernel
def process_orders(c, g, t, s, kind, px, ev_qty, fills, equity_rows):
    """Run every live order of symbol s (ascending oid) against event g (R3.1-R3.13)."""
    if c.n_open[s] == 0 or kind >= K_FUNDING:  # funding, bars (bars_match.py), market liquidations
        return
    for j in range(c.o_hwm):
        st = c.o_status[j]
        if st == ST_FREE or c.o_sym[j] != s:
            continue
        state = arrive(c, j, g, t)
        if state >= 0:
            _work_order(c, j, g, t, kind, px, ev_qty, state == 1, fills, equity_rows)
