"""The order table and the order requests a strategy makes (submit, bracket, cancel, amend).

Orders live in fixed slots of the context record, allocated in oid order, so scanning the slots
visits a symbol's orders in submission order (R3.1). Finished orders are copied to the done ring
(ctx.dn_*), which the Python side drains into the orders table. Rules: docs/fill-rules.md §3.
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
from .schema import DONE_CAPACITY, MAX_ORDERS

STEP_TOL = 1e-9  # relative tolerance of the lot/tick multiple checks


@kernel
def off_step(x, step):
    r = x / step
    return abs(r - np.round(r)) > STEP_TOL * max(1.0, abs(r))


@kernel
def write_done(c, oid, s, otype, d, tif, status, reason, reduce, trig, created, done_ts,
               qty, filled, notional, limit, stop, oco, parent):
    k = c.n_done
    c.dn_oid[k] = oid
    c.dn_sym[k] = s
    c.dn_order_type[k] = otype
    c.dn_side[k] = d
    c.dn_tif[k] = tif
    c.dn_status[k] = status
    c.dn_reason[k] = reason
    c.dn_reduce_only[k] = reduce
    c.dn_trigger_source[k] = trig
    c.dn_created_ts_ns[k] = created
    c.dn_done_ts_ns[k] = done_ts
    c.dn_qty[k] = qty
    c.dn_filled_qty[k] = filled
    c.dn_avg_fill_price[k] = notional / filled if filled > 0.0 else 0.0
    c.dn_limit_price[k] = limit
    c.dn_stop_price[k] = stop
    c.dn_oco_group[k] = oco
    c.dn_parent_oid[k] = parent
    c.n_done = k + 1


@kernel
def write_done_slot(c, j, status, reason, done_ts):
    write_done(c, c.o_oid[j], c.o_sym[j], c.o_type[j], c.o_side[j], c.o_tif[j], status, reason,
               c.o_reduce[j], c.o_trigger_src[j], c.o_created_ts[j], done_ts, c.o_qty[j],
               c.o_filled[j], c.o_notional[j], c.o_limit[j], c.o_stop[j], c.o_oco[j], c.o_parent[j])


@kernel
def free_slot(c, j):
    s = c.o_sym[j]
    c.o_status[j] = ST_FREE
    c.n_open[s] -= 1
    while c.o_hwm > 0 and c.o_status[c.o_hwm - 1] == ST_FREE:
        c.o_hwm -= 1


@kernel
def finish(c, j, status, reason, t):
    """End the order in slot j; a bracket entry ending without a fill cancels its children."""
    oid = c.o_oid[j]
    filled = c.o_filled[j]
    write_done_slot(c, j, status, reason, t)
    free_slot(c, j)
    if filled == 0.0:
        for k in range(j + 1, c.o_hwm):
            if c.o_status[k] == ST_WAITING and c.o_parent[k] == oid:
                write_done_slot(c, k, ST_CANCELED, R_PARENT_CANCELED, t)
                free_slot(c, k)


@kernel
def _move_slot(c, a, b):
    c.o_status[b] = c.o_status[a]
    c.o_oid[b] = c.o_oid[a]
    c.o_sym[b] = c.o_sym[a]
    c.o_type[b] = c.o_type[a]
    c.o_side[b] = c.o_side[a]
    c.o_tif[b] = c.o_tif[a]
    c.o_reduce[b] = c.o_reduce[a]
    c.o_trigger_src[b] = c.o_trigger_src[a]
    c.o_triggered[b] = c.o_triggered[a]
    c.o_qty[b] = c.o_qty[a]
    c.o_filled[b] = c.o_filled[a]
    c.o_notional[b] = c.o_notional[a]
    c.o_limit[b] = c.o_limit[a]
    c.o_stop[b] = c.o_stop[a]
    c.o_trail_dist[b] = c.o_trail_dist[a]
    c.o_trail_bps[b] = c.o_trail_bps[a]
    c.o_trail_ref[b] = c.o_trail_ref[a]
    c.o_ref_px[b] = c.o_ref_px[a]
    c.o_created_ts[b] = c.o_created_ts[a]
    c.o_arrive_ts[b] = c.o_arrive_ts[a]
    c.o_decision_idx[b] = c.o_decision_idx[a]
    c.o_cancel_ts[b] = c.o_cancel_ts[a]
    c.o_amend_ts[b] = c.o_amend_ts[a]
    c.o_new_qty[b] = c.o_new_qty[a]
    c.o_new_limit[b] = c.o_new_limit[a]
    c.o_new_stop[b] = c.o_new_stop[a]
    c.o_oco[b] = c.o_oco[a]
    c.o_parent[b] = c.o_parent[a]
    c.o_queue[b] = c.o_queue[a]


@kernel
def compact(c):
    """Move live orders to the front, keeping their order; only called outside slot scans."""
    n = 0
    for j in range(c.o_hwm):
        if c.o_status[j] != ST_FREE:
            if j != n:
                _move_slot(c, j, n)
            n += 1
    for j in range(n, c.o_hwm):
        c.o_status[j] = ST_FREE
    c.o_hwm = n


@kernel
def find_slot(c, oid):
    """Binary search: slots [0, o_hwm) hold ascending oids. -1 if the order is not live."""
    lo = 0
    hi = c.o_hwm - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        v = c.o_oid[mid]
        if v == oid:
            if c.o_status[mid] == ST_FREE:
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
    if s < 0 or s >= c.nsym:
        return R_UNKNOWN_SYMBOL
    if otype < 0 or otype >= N_ORDER_TYPES or (d != 1 and d != -1) or tif < 0 or tif > TIF_POST_ONLY:
        return R_INVALID_ORDER
    if not (qty > 0.0) or not np.isfinite(qty):
        return R_INVALID_QTY
    lot = c.i_lot[s]
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
    tick = c.i_tick[s]
    if has_limit and off_step(limit, tick):
        return R_OFF_TICK
    if has_stop and off_step(stop, tick):
        return R_OFF_TICK
    pos = c.pos[s]
    if reduce and (pos == 0.0 or (pos > 0.0) == (d > 0)):
        return R_REDUCE_ONLY
    if c.i_type[s] == T_SPOT and d < 0 and qty > pos + EPS_QTY and not c.spot_margin:
        return R_INSUFFICIENT_BALANCE
    # R4.4 at submit: priced at opp; a buy limit above opp (or any limit without opp) at its limit
    px = opp_price(c, s, d)
    if has_limit and (px != px or (d > 0 and limit > px)):
        px = limit
    if not reduce and px == px and not margin_ok(c, s, d, qty, px):
        return R_INSUFFICIENT_MARGIN
    if c.i_type[s] != T_SPOT and px == px and c.i_n_brackets[s] > 0:
        # the leverage must be allowed by the bracket of the position after the fill
        notional = abs(pos + d * qty) * px
        if c.i_type[s] == T_INVERSE:  # brackets of inverse contracts are in coin notional
            notional = abs(pos + d * qty) * c.i_contract_size[s] / px
        if c.leverage[s] > bracket_max_leverage(notional, c.br_floor[s], c.br_cap[s],
                                                c.br_max_lev[s], c.i_n_brackets[s]):
            return R_LEVERAGE_TOO_HIGH
    return R_NONE


@kernel
def _reject(c, oid, s, otype, d, tif, reason, reduce, trig, qty, limit, stop, oco, parent):
    c.n_rejects += 1
    write_done(c, oid, s, otype, d, tif, ST_REJECTED, reason, reduce, trig, c.now_ts, c.now_ts,
               qty, 0.0, 0.0, limit, stop, oco, parent)
    return -reason


@kernel
def _room(c, n):
    """Make room for n new slots; False when the table (or the done ring) is full."""
    if c.n_done > DONE_CAPACITY - MAX_ORDERS - n:
        return False
    if c.o_hwm + n > MAX_ORDERS:
        compact(c)
    return c.o_hwm + n <= MAX_ORDERS


@kernel
def _place(c, oid, s, otype, d, qty, limit, stop, tif, reduce, trig, trail, trail_bps, oco,
           parent, status):
    j = c.o_hwm
    c.o_hwm = j + 1
    c.o_status[j] = status
    c.o_oid[j] = oid
    c.o_sym[j] = s
    c.o_type[j] = otype
    c.o_side[j] = d
    c.o_tif[j] = tif
    c.o_reduce[j] = reduce
    c.o_trigger_src[j] = trig
    c.o_triggered[j] = 0
    c.o_qty[j] = qty
    c.o_filled[j] = 0.0
    c.o_notional[j] = 0.0
    c.o_limit[j] = limit
    c.o_stop[j] = stop
    c.o_trail_dist[j] = trail
    c.o_trail_bps[j] = trail_bps
    c.o_trail_ref[j] = np.nan
    c.o_ref_px[j] = mid_or_last(c, s)  # the reference of the fill's slippage cost
    c.o_created_ts[j] = c.now_ts
    c.o_arrive_ts[j] = c.now_ts + order_latency(c)
    c.o_queue[j] = np.nan
    c.o_decision_idx[j] = c.cur_idx
    c.o_cancel_ts[j] = -1
    c.o_amend_ts[j] = -1
    c.o_oco[j] = oco
    c.o_parent[j] = parent
    c.n_open[s] += 1
    return j


@kernel
def submit(c, sym, order_type, side, qty, limit=0.0, stop=0.0, tif=0, reduce_only=False,
           trigger=0, trail=0.0, trail_bps=0.0, oco=0):
    """Place an order. Returns its oid (> 0) or -reason (see Reason) when rejected."""
    reduce = np.uint8(1) if reduce_only else np.uint8(0)
    c.seq += 1
    oid = c.seq
    reason = validate(c, sym, order_type, side, qty, limit, stop, tif, reduce, trail, trail_bps)
    if reason == R_NONE and not _room(c, 1):
        reason = R_TOO_MANY
    if reason != R_NONE:
        if c.n_done >= DONE_CAPACITY - MAX_ORDERS:
            c.n_rejects += 1
            c.n_table_full += 1
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
    if sym >= 0 and sym < c.nsym:
        tick = c.i_tick[sym]
        for p in (stop, target):
            if not (p > 0.0) or not np.isfinite(p):
                c.seq += 1
                return _reject(c, c.seq, sym, otype, side, 0, R_INVALID_PRICE, 0, 0, qty, limit,
                               stop, 0, 0)
            if off_step(p, tick):
                c.seq += 1
                return _reject(c, c.seq, sym, otype, side, 0, R_OFF_TICK, 0, 0, qty, limit,
                               stop, 0, 0)
        if not _room(c, 3):
            c.seq += 1
            c.n_table_full += 1
            c.n_rejects += 1
            return -R_TOO_MANY
    oid = submit(c, sym, otype, side, qty, limit)
    if oid < 0:
        return oid
    c.seq += 2
    _place(c, oid + 1, sym, OT_STOP_MARKET, -side, qty, 0.0, stop, 0, np.uint8(1), 0, 0.0, 0.0,
           oid, oid, ST_WAITING)
    _place(c, oid + 2, sym, OT_TP_MARKET, -side, qty, 0.0, target, 0, np.uint8(1), 0, 0.0, 0.0,
           oid, oid, ST_WAITING)
    return oid


@kernel
def cancel(c, oid):
    """Request a cancel (R3.12). Returns 0, or -UNKNOWN_ORDER if the order is not live."""
    j = find_slot(c, oid)
    if j < 0:
        return -R_UNKNOWN_ORDER
    t = c.now_ts + c.cancel_latency_ns
    if c.o_cancel_ts[j] < 0 or t < c.o_cancel_ts[j]:
        c.o_cancel_ts[j] = t
    return 0


@kernel
def cancel_all(c, sym):
    """Request a cancel of every live order of a symbol (-1: all symbols). Returns the count."""
    n = 0
    for j in range(c.o_hwm):
        if c.o_status[j] != ST_FREE and (sym < 0 or c.o_sym[j] == sym):
            cancel(c, c.o_oid[j])
            n += 1
    return n


@kernel
def amend(c, oid, qty=0.0, limit=0.0, stop=0.0):
    """Change quantity, limit or stop (0 keeps a value) (R3.13). Returns 0 or -reason."""
    j = find_slot(c, oid)
    if j < 0:
        return -R_UNKNOWN_ORDER
    s = c.o_sym[j]
    if qty > 0.0:
        if off_step(qty, c.i_lot[s]):
            return -R_OFF_LOT
        if qty <= c.o_filled[j]:
            return -R_INVALID_QTY
    for p in (limit, stop):
        if p > 0.0 and off_step(p, c.i_tick[s]):
            return -R_OFF_TICK
    if c.o_status[j] == ST_OPEN:
        c.o_amend_ts[j] = c.now_ts + c.cancel_latency_ns
        c.o_new_qty[j] = qty
        c.o_new_limit[j] = limit
        c.o_new_stop[j] = stop
    else:
        apply_amend(c, j, qty, limit, stop)
    return 0


@kernel
def apply_amend(c, j, qty, limit, stop):
    if qty > 0.0:
        c.o_qty[j] = qty
    if limit > 0.0:
        c.o_limit[j] = limit
    if stop > 0.0:
        c.o_stop[j] = stop
    c.o_amend_ts[j] = -1


@kernel
def close_position(c, sym):
    """Market reduce-only order for the whole position of sym; 0 when flat."""
    p = c.pos[sym]
    if p == 0.0:
        return 0
    d = -1 if p > 0.0 else 1
    return submit(c, sym, OT_MARKET, d, abs(p), 0.0, 0.0, 0, True)


@kernel
def reject_margin_at_fill(c, j, t):
    c.n_rejects += 1
    finish(c, j, ST_REJECTED, R_INSUFFICIENT_MARGIN, t)


@kernel
def post_only_crosses(c, j):
    """R3.2: would this post-only limit take liquidity at arrival?"""
    if c.o_tif[j] != TIF_POST_ONLY:
        return False
    s = c.o_sym[j]
    d = c.o_side[j]
    p = opp_price(c, s, d)
    if p != p:
        return False
    if d > 0:
        return c.o_limit[j] >= p
    return c.o_limit[j] <= p
