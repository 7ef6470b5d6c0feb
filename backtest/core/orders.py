"""The order table and the order requests a strategy makes (submit, bracket, cancel, amend).

Orders live in the slots of `c.orders` (one record per order), allocated in oid order, so scanning the slots
visits a symbol's orders in submission order (R3.1). Finished orders are copied to the done ring
(`done`, exactly ORDER_DTYPE), which the Python side drains with a slice copy into the orders table. Rules: docs/fill-rules.md §3.
"""
import numpy as np

from .account import EPS_QTY, margin_ok
from .execution import mid_or_last, opp_price, order_latency
from .jit import kernel
from .margin_math import bracket_max_leverage
from .codes import (
    N_ORDER_TYPES, OT_LIMIT, OT_MARKET, OT_STOP_MARKET, OT_TP_MARKET, OT_TRAILING,
    R_BELOW_LOT, R_INSUFFICIENT_BALANCE, R_INSUFFICIENT_MARGIN, R_INVALID_ORDER, R_INVALID_PRICE,
    R_INVALID_QTY, R_NONE, R_OFF_LOT, R_OFF_TICK, R_PARENT_CANCELED, R_REDUCE_ONLY, R_TOO_MANY,
    R_UNKNOWN_ORDER, R_UNKNOWN_SYMBOL, R_LEVERAGE_TOO_HIGH, ST_CANCELED, ST_FREE, ST_OPEN, ST_PENDING, ST_REJECTED,
    ST_WAITING, T_INVERSE, T_SPOT, TIF_POST_ONLY, ot_needs_limit, ot_needs_stop,
)

STEP_TOL = 1e-9  # relative tolerance of the lot/tick multiple checks
WAKE_NOW = np.int64(-(1 << 62))  # pos.o_wake: match the symbol's orders at its next event


@kernel
def off_step(x, step):
    r = x / step
    return abs(r - np.round(r)) > STEP_TOL * max(1.0, abs(r))


@kernel
def write_done_slot(done, k, o, status, reason, done_ts):
    """Row k of the finished orders: the order of slot `o` ending with status and reason."""
    r = done[k]
    r.oid = o.oid
    r.sym = o.sym
    r.order_type = o.type
    r.side = o.side
    r.tif = o.tif
    r.status = status
    r.reason = reason
    r.reduce_only = o.reduce
    r.trigger_source = o.trigger_src
    r.created_ts_ns = o.created_ts
    r.done_ts_ns = done_ts
    r.qty = o.qty
    r.filled_qty = o.filled
    r.avg_fill_price = o.notional / o.filled if o.filled > 0.0 else 0.0
    r.limit_price = o.limit
    r.stop_price = o.stop
    r.oco_group = o.oco
    r.parent_oid = o.parent


@kernel
def end_slot(c, j, status, reason, done_ts):
    """Record the order of slot j as finished (the slot stays in use)."""
    k = c.acct.n_done
    write_done_slot(c.done, k, c.orders[j], status, reason, done_ts)
    c.acct.n_done = k + 1


@kernel
def free_slot(c, j):
    s = c.orders[j].sym
    c.orders[j].status = ST_FREE
    c.pos[s].n_open -= 1
    while c.acct.o_hwm > 0 and c.orders[c.acct.o_hwm - 1].status == ST_FREE:
        c.acct.o_hwm -= 1


@kernel
def finish(c, j, status, reason, t):
    """End the order in slot j; a bracket entry ending without a fill cancels its children."""
    oid = c.orders[j].oid
    filled = c.orders[j].filled
    end_slot(c, j, status, reason, t)
    free_slot(c, j)
    if filled == 0.0:
        for k in range(j + 1, c.acct.o_hwm):
            if c.orders[k].status == ST_WAITING and c.orders[k].parent == oid:
                end_slot(c, k, ST_CANCELED, R_PARENT_CANCELED, t)
                free_slot(c, k)


@kernel
def _move_slot(orders, a, b):
    orders[b] = orders[a]


@kernel
def compact(c):
    """Move live orders to the front, keeping their order; only called outside slot scans."""
    n = 0
    for j in range(c.acct.o_hwm):
        if c.orders[j].status != ST_FREE:
            if j != n:
                _move_slot(c.orders, j, n)
            n += 1
    for j in range(n, c.acct.o_hwm):
        c.orders[j].status = ST_FREE
    c.acct.o_hwm = n
    for s in range(c.run.nsym):  # the symbols' slot ranges, anew
        c.pos[s].o_first = n
        c.pos[s].o_last = -1
    for j in range(n):
        s = c.orders[j].sym
        c.pos[s].o_first = min(c.pos[s].o_first, j)
        c.pos[s].o_last = j


@kernel
def find_slot(orders, acct, oid):
    """Binary search: slots [0, o_hwm) hold ascending oids. -1 if the order is not live."""
    lo = 0
    hi = acct.o_hwm - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        v = orders[mid].oid
        if v == oid:
            if orders[mid].status == ST_FREE:
                return -1
            return mid
        if v < oid:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1


@kernel
def validate(c, s, otype, d, qty, limit, stop, tif, reduce, trail, trail_bps):
    """R3.14: the first reason this order must be rejected at submit, or R_NONE."""
    if s < 0 or s >= c.run.nsym:
        return R_UNKNOWN_SYMBOL
    if otype < 0 or otype >= N_ORDER_TYPES or (d != 1 and d != -1) or tif < 0 or tif > TIF_POST_ONLY:
        return R_INVALID_ORDER
    if not (qty > 0.0) or not np.isfinite(qty):
        return R_INVALID_QTY
    lot = c.inst[s].lot
    if qty / lot < 1.0 - STEP_TOL:
        return R_BELOW_LOT
    if off_step(qty, lot):
        return R_OFF_LOT
    has_limit = ot_needs_limit(otype)
    has_stop = ot_needs_stop(otype)
    if has_limit and (not (limit > 0.0) or not np.isfinite(limit)):
        return R_INVALID_PRICE
    if has_stop and (not (stop > 0.0) or not np.isfinite(stop)):
        return R_INVALID_PRICE
    if otype == OT_TRAILING and not (trail > 0.0 or trail_bps > 0.0):
        return R_INVALID_PRICE
    tick = c.inst[s].tick
    if has_limit and off_step(limit, tick):
        return R_OFF_TICK
    if has_stop and off_step(stop, tick):
        return R_OFF_TICK
    pos = c.pos[s].qty
    if reduce and (pos == 0.0 or (pos > 0.0) == (d > 0)):
        return R_REDUCE_ONLY
    if c.inst[s].type == T_SPOT and d < 0 and qty > pos + EPS_QTY and not c.run.spot_margin:
        return R_INSUFFICIENT_BALANCE
    # R4.4 at submit: priced at opp; a buy limit above opp (or any limit without opp) at its limit
    px = opp_price(c.mkt[s], d)
    if has_limit and (px != px or (d > 0 and limit > px)):
        px = limit
    if not reduce and px == px and not margin_ok(c, s, d, qty, px):
        return R_INSUFFICIENT_MARGIN
    if c.inst[s].type != T_SPOT and px == px and c.inst[s].n_brackets > 0:
        # the leverage must be allowed by the bracket of the position after the fill
        notional = abs(pos + d * qty) * px
        if c.inst[s].type == T_INVERSE:  # brackets of inverse contracts are in coin notional
            notional = abs(pos + d * qty) * c.inst[s].contract_size / px
        if c.inst[s].leverage > bracket_max_leverage(notional, c.inst[s].br_floor, c.inst[s].br_cap,
                                                c.inst[s].br_max_lev, c.inst[s].n_brackets):
            return R_LEVERAGE_TOO_HIGH
    return R_NONE


@kernel
def _reject(c, oid, s, otype, d, tif, reason, reduce, trig, qty, limit, stop, oco, parent):
    c.acct.n_rejects += 1
    k = c.acct.n_done
    r = c.done[k]
    r.oid = oid
    r.sym = s
    r.order_type = otype
    r.side = d
    r.tif = tif
    r.status = ST_REJECTED
    r.reason = reason
    r.reduce_only = reduce
    r.trigger_source = trig
    r.created_ts_ns = c.clock.now_ts
    r.done_ts_ns = c.clock.now_ts
    r.qty = qty
    r.filled_qty = 0.0
    r.avg_fill_price = 0.0
    r.limit_price = limit
    r.stop_price = stop
    r.oco_group = oco
    r.parent_oid = parent
    c.acct.n_done = k + 1
    return -reason


@kernel
def _room(c, n):
    """Make room for n new slots; False when the table (or the done ring) is full."""
    if c.acct.n_done > len(c.done) - len(c.orders) - n:
        return False
    if c.acct.o_hwm + n > len(c.orders):
        compact(c)
    return c.acct.o_hwm + n <= len(c.orders)


@kernel
def _place(c, oid, s, otype, d, qty, limit, stop, tif, reduce, trig, trail, trail_bps, oco,
           parent, status):
    j = c.acct.o_hwm
    c.acct.o_hwm = j + 1
    c.orders[j].status = status
    c.orders[j].oid = oid
    c.orders[j].sym = s
    c.orders[j].type = otype
    c.orders[j].side = d
    c.orders[j].tif = tif
    c.orders[j].reduce = reduce
    c.orders[j].trigger_src = trig
    c.orders[j].triggered = 0
    c.orders[j].qty = qty
    c.orders[j].filled = 0.0
    c.orders[j].notional = 0.0
    c.orders[j].limit = limit
    c.orders[j].stop = stop
    c.orders[j].trail_dist = trail
    c.orders[j].trail_bps = trail_bps
    c.orders[j].trail_ref = np.nan
    c.orders[j].ref_px = mid_or_last(c.mkt[s])  # the reference of the fill's slippage cost
    c.orders[j].created_ts = c.clock.now_ts
    c.orders[j].arrive_ts = c.clock.now_ts + order_latency(c.run, c.clock)
    c.orders[j].queue = np.nan
    c.orders[j].decision_idx = c.clock.idx_base + c.clock.cur_i
    c.orders[j].cancel_ts = -1
    c.orders[j].amend_ts = -1
    c.orders[j].oco = oco
    c.orders[j].parent = parent
    if c.pos[s].n_open == 0:
        c.pos[s].o_first = j
    c.pos[s].o_last = j  # the highest slot in use
    c.pos[s].o_wake = WAKE_NOW
    c.pos[s].n_open += 1
    return j


@kernel
def submit(c, sym, order_type, side, qty, limit=0.0, stop=0.0, tif=0, reduce_only=False,
           trigger=0, trail=0.0, trail_bps=0.0, oco=0):
    """Place an order. Returns its oid (> 0) or -reason (see Reason) when rejected."""
    reduce = np.uint8(1) if reduce_only else np.uint8(0)
    c.acct.seq += 1
    oid = c.acct.seq
    reason = validate(c, sym, order_type, side, qty, limit, stop, tif, reduce, trail, trail_bps)
    if reason == R_NONE and not _room(c, 1):
        reason = R_TOO_MANY
    if reason != R_NONE:
        if c.acct.n_done >= len(c.done) - len(c.orders):
            c.acct.n_rejects += 1
            c.acct.n_table_full += 1
            return -reason  # no room left to record it (counted in n_table_full)
        return _reject(c, oid, sym, order_type, side, tif, reason, reduce, trigger, qty, limit,
                       stop, oco, 0)
    _place(c, oid, sym, order_type, side, qty, limit, stop, tif, reduce, trigger, trail, trail_bps,
           oco, 0, ST_PENDING)
    return oid


@kernel
def bracket(c, sym, side, qty, limit, stop, target):
    """Entry (limit if limit > 0, else market) with a stop-market and a take-profit-market child.

    The children are reduce-only, on the other side, in one OCO group, and wait for the entry's
    fill (R3.11). Returns the entry's oid (children are oid + 1 and oid + 2) or -reason.
    """
    otype = OT_LIMIT if limit > 0.0 else OT_MARKET
    if sym >= 0 and sym < c.run.nsym:
        tick = c.inst[sym].tick
        for p in (stop, target):
            if not (p > 0.0) or not np.isfinite(p):
                c.acct.seq += 1
                return _reject(c, c.acct.seq, sym, otype, side, 0, R_INVALID_PRICE, 0, 0, qty, limit,
                               stop, 0, 0)
            if off_step(p, tick):
                c.acct.seq += 1
                return _reject(c, c.acct.seq, sym, otype, side, 0, R_OFF_TICK, 0, 0, qty, limit,
                               stop, 0, 0)
        if not _room(c, 3):
            c.acct.seq += 1
            c.acct.n_table_full += 1
            c.acct.n_rejects += 1
            return -R_TOO_MANY
    oid = submit(c, sym, otype, side, qty, limit)
    if oid < 0:
        return oid
    c.acct.seq += 2
    _place(c, oid + 1, sym, OT_STOP_MARKET, -side, qty, 0.0, stop, 0, np.uint8(1), 0, 0.0, 0.0,
           oid, oid, ST_WAITING)
    _place(c, oid + 2, sym, OT_TP_MARKET, -side, qty, 0.0, target, 0, np.uint8(1), 0, 0.0, 0.0,
           oid, oid, ST_WAITING)
    return oid


@kernel
def cancel(c, oid):
    """Request a cancel (R3.12). Returns 0, or -UNKNOWN_ORDER if the order is not live."""
    j = find_slot(c.orders, c.acct, oid)
    if j < 0:
        return -R_UNKNOWN_ORDER
    t = c.clock.now_ts + c.run.cancel_latency_ns
    if c.orders[j].cancel_ts < 0 or t < c.orders[j].cancel_ts:
        c.orders[j].cancel_ts = t
    c.pos[c.orders[j].sym].o_wake = WAKE_NOW
    return 0


@kernel
def cancel_all(c, sym):
    """Request a cancel of every live order of a symbol (-1: all symbols). Returns the count."""
    n = 0
    for j in range(c.acct.o_hwm):
        if c.orders[j].status != ST_FREE and (sym < 0 or c.orders[j].sym == sym):
            cancel(c, c.orders[j].oid)
            n += 1
    return n


@kernel
def amend(c, oid, qty=0.0, limit=0.0, stop=0.0):
    """Change quantity, limit or stop (0 keeps a value) (R3.13). Returns 0 or -reason."""
    j = find_slot(c.orders, c.acct, oid)
    if j < 0:
        return -R_UNKNOWN_ORDER
    s = c.orders[j].sym
    if qty > 0.0:
        if off_step(qty, c.inst[s].lot):
            return -R_OFF_LOT
        if qty <= c.orders[j].filled:
            return -R_INVALID_QTY
    for p in (limit, stop):
        if p > 0.0 and off_step(p, c.inst[s].tick):
            return -R_OFF_TICK
    c.pos[s].o_wake = WAKE_NOW
    if c.orders[j].status == ST_OPEN:
        c.orders[j].amend_ts = c.clock.now_ts + c.run.cancel_latency_ns
        c.orders[j].new_qty = qty
        c.orders[j].new_limit = limit
        c.orders[j].new_stop = stop
    else:
        apply_amend(c.orders[j], qty, limit, stop)
    return 0


@kernel
def apply_amend(o, qty, limit, stop):
    if qty > 0.0:
        o.qty = qty
    if limit > 0.0:
        o.limit = limit
    if stop > 0.0:
        o.stop = stop
    o.amend_ts = -1


@kernel
def close_position(c, sym):
    """Market reduce-only order for the whole position of sym; 0 when flat."""
    p = c.pos[sym].qty
    if p == 0.0:
        return 0
    d = -1 if p > 0.0 else 1
    return submit(c, sym, OT_MARKET, d, abs(p), 0.0, 0.0, 0, True)


@kernel
def reject_margin_at_fill(c, j, t):
    c.acct.n_rejects += 1
    finish(c, j, ST_REJECTED, R_INSUFFICIENT_MARGIN, t)


@kernel
def post_only_crosses(c, j):
    """R3.2: would this post-only limit take liquidity at arrival?"""
    if c.orders[j].tif != TIF_POST_ONLY:
        return False
    s = c.orders[j].sym
    d = c.orders[j].side
    p = opp_price(c.mkt[s], d)
    if p != p:
        return False
    if d > 0:
        return c.orders[j].limit >= p
    return c.orders[j].limit <= p
