"""(a) Today's layout: every kernel takes the one wide context record `c` (CTX_DTYPE)."""
import numpy as np

from deco import kernel, loop
from layouts import K_QUOTE, K_TRADE, OT_STOP, ST_OPEN, STOP_GAP


@kernel
def update_market(c, s, k, p, q):
    """Step 3 of the loop: the symbol's market state."""
    if k == K_TRADE:
        c.last_px[s] = p
        c.has_trade[s] = 1
    elif k == K_QUOTE:
        c.bid[s] = p * (1.0 - 1e-5)
        c.ask[s] = p * (1.0 + 1e-5)
        c.bid_qty[s] = q
        c.ask_qty[s] = q
        c.has_quote[s] = 1
    else:
        c.mark_px[s] = p
        c.index_px[s] = p
        c.has_mark[s] = 1


@kernel
def mark_to_market(c, s):
    """The trivially small kernel whose inlining is checked."""
    c.sym_upnl[s] = c.pos[s] * (c.last_px[s] - c.avg_px[s])


@kernel
def book_fill(c, s, d, q, price):
    fee = q * price * c.i_taker_fee[s]
    pos = c.pos[s]
    avg = c.avg_px[s]
    new = pos + d * q
    if pos == 0.0 or (pos > 0.0) == (d > 0):
        avg = (abs(pos) * avg + q * price) / (abs(pos) + q)
    else:
        sg = 1.0 if pos > 0.0 else -1.0
        r = min(q, abs(pos)) * (price - avg) * sg
        c.realized_pnl += r
        c.balance += r
        if abs(new) < 1e-12:
            new = 0.0
            avg = 0.0
        elif (new > 0.0) != (pos > 0.0):
            avg = price
    c.pos[s] = new
    c.avg_px[s] = avg
    c.balance -= fee
    c.fees += fee
    c.n_fills += 1


@kernel
def match_stops(c, s, p):
    """The symbol's resting stops a trade crossed fill at the trade and re-arm 0.1 % away."""
    n = 0
    for j in range(c.o_hwm):
        if c.o_status[j] == ST_OPEN and c.o_sym[j] == s and c.o_type[j] == OT_STOP:
            d = c.o_side[j]
            if (d > 0 and p >= c.o_stop[j]) or (d < 0 and p <= c.o_stop[j]):
                book_fill(c, s, d, c.o_qty[j], p)
                c.o_filled[j] += c.o_qty[j]
                c.o_stop[j] = p * (1.0 + d * STOP_GAP)
                n += 1
    return n


@loop
def run(ts, sym, kind, price, qty, c):
    for i in range(len(ts)):
        u = np.uint64(i)
        s = sym[u]
        k = kind[u]
        p = price[u]
        update_market(c, s, k, p, qty[u])
        if k == K_TRADE:
            if c.n_open[s] != 0:
                match_stops(c, s, p)
            if c.pos[s] != 0.0:
                mark_to_market(c, s)
    return c.n_fills


def state(nsym, n_orders):
    from layouts import wide_state
    return (wide_state(nsym),)


KERNELS = (update_market, mark_to_market, book_fill, match_stops)
