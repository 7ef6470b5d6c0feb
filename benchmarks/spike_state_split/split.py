"""(b) Split state: one structured array per owner, each kernel takes only the ones it uses."""
import numpy as np

from deco import kernel, loop
from layouts import K_QUOTE, K_TRADE, OT_STOP, ST_OPEN, STOP_GAP


@kernel
def update_market(mkt, s, k, p, q):
    m = mkt[s]
    if k == K_TRADE:
        m.last_px = p
        m.has_trade = 1
    elif k == K_QUOTE:
        m.bid = p * (1.0 - 1e-5)
        m.ask = p * (1.0 + 1e-5)
        m.bid_qty = q
        m.ask_qty = q
        m.has_quote = 1
    else:
        m.mark_px = p
        m.index_px = p
        m.has_mark = 1


@kernel
def mark_to_market(mkt, pos, s):
    ps = pos[s]
    ps.sym_upnl = ps.pos * (mkt[s].last_px - ps.avg_px)


@kernel
def book_fill(inst, acct, pos, s, d, q, price):
    a = acct[0]
    ps = pos[s]
    fee = q * price * inst[s].taker_fee
    p0 = ps.pos
    avg = ps.avg_px
    new = p0 + d * q
    if p0 == 0.0 or (p0 > 0.0) == (d > 0):
        avg = (abs(p0) * avg + q * price) / (abs(p0) + q)
    else:
        sg = 1.0 if p0 > 0.0 else -1.0
        r = min(q, abs(p0)) * (price - avg) * sg
        a.realized_pnl += r
        a.balance += r
        if abs(new) < 1e-12:
            new = 0.0
            avg = 0.0
        elif (new > 0.0) != (p0 > 0.0):
            avg = price
    ps.pos = new
    ps.avg_px = avg
    a.balance -= fee
    a.fees += fee
    a.n_fills += 1


@kernel
def match_stops(inst, acct, pos, orders, s, p):
    n = 0
    for j in range(acct[0].o_hwm):
        o = orders[j]
        if o.status == ST_OPEN and o.sym == s and o.type == OT_STOP:
            d = o.side
            if (d > 0 and p >= o.stop) or (d < 0 and p <= o.stop):
                book_fill(inst, acct, pos, s, d, o.qty, p)
                o.filled += o.qty
                o.stop = p * (1.0 + d * STOP_GAP)
                n += 1
    return n


@loop
def run(ts, sym, kind, price, qty, cfg, inst, mkt, acct, pos, orders):
    for i in range(len(ts)):
        u = np.uint64(i)
        s = sym[u]
        k = kind[u]
        p = price[u]
        update_market(mkt, s, k, p, qty[u])
        if k == K_TRADE:
            if pos[s].n_open != 0:
                match_stops(inst, acct, pos, orders, s, p)
            if pos[s].pos != 0.0:
                mark_to_market(mkt, pos, s)
    return acct[0].n_fills


def state(nsym, n_orders):
    from layouts import split_state
    return split_state(nsym, n_orders)


KERNELS = (update_market, mark_to_market, book_fill, match_stops)
