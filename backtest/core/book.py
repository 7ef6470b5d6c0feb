"""The L2 order book of a symbol: snapshots, the walk of a taker, consumption and refill
(docs/fill-rules.md section 9, docs/execution.md "l2_depth").

State lives in the symbol's row of the run state (`c.book[s]`, BOOK_DTYPE in core/state.py), so a
snapshot split across reader chunks is simply finished by the next chunk. Prices and sizes are
those of the latest snapshot; what takers consumed is kept apart (`bid_take`, `ask_take`) and
decays towards 0 with the half-life `book_half_life_ns`, so the book refills towards the snapshot:

    f(t) = 0.5 ** ((t - take_ts) / half_life)      (0 when half_life <= 0: instant refill)
    available depth at level i at time t = qty_i - take_i * f(t)
    a taker fill of x_i at level i at time t:  take_i = take_i * f(t) + x_i;  take_ts = t

Levels a trade has printed through since the snapshot (the row's `lo`, `hi`) or that are better than
the effective touch (R2.3a, R3.3) are out of reach (R9.2). These kernels run only for symbols whose model is
l2_depth and which have a book, so runs without one never reach them.
"""
import numpy as np

from .jit import kernel
from .rare import rare_path
from .schema import MAX_BOOK_LEVELS

INF = np.inf


@kernel
def apply_book_row(bk, t, lvl, bp, bq, ap, aq):
    """R9.1: one level of a snapshot. Level 0 starts a new snapshot (consumption and trades
    since the previous one are forgotten); a side's level counts only if it continues that side
    (level == levels so far, a price and a positive size), so a side may have fewer levels."""
    if lvl == 0:
        for i in range(bk.nb):
            bk.bid_take[i] = 0.0
        for i in range(bk.na):
            bk.ask_take[i] = 0.0
        bk.nb = 0
        bk.na = 0
        bk.ts = t
        bk.take_ts = t
        bk.dirty = 0
        bk.lo = INF
        bk.hi = -INF
        bk.has_book = 1
    elif not bk.has_book or lvl >= MAX_BOOK_LEVELS:
        return
    n = bk.nb
    if lvl == n and bp == bp and bq > 0.0:
        bk.bid_px[n] = bp
        bk.bid_qty[n] = bq
        bk.nb = n + 1
    n = bk.na
    if lvl == n and ap == ap and aq > 0.0:
        bk.ask_px[n] = ap
        bk.ask_qty[n] = aq
        bk.na = n + 1


@kernel
def book_trade(bk, p):
    """R9.2: a trade since the snapshot removes the levels it printed through."""
    if p < bk.lo:
        bk.lo = p
    if p > bk.hi:
        bk.hi = p


@kernel
def has_side(bk, d):
    """The symbol has a snapshot with at least one level on the side a taker on d meets."""
    if not bk.has_book:
        return False
    return (bk.na if d > 0 else bk.nb) > 0


@kernel
def _best_allowed(c, s, d):
    """R9.2: the best price a taker on side d may still get from the book: a buy no ask below
    the highest trade since the snapshot or the effective touch (R3.3: the ask, or the last trade
    without quotes), a sell no bid above the lowest trade or the effective bid (or last)."""
    if d > 0:
        b = c.book[s].hi
        if c.mkt[s].has_quote:
            b = max(b, c.mkt[s].ask)
        elif c.mkt[s].has_trade:
            b = max(b, c.mkt[s].last_px)
        return b
    b = c.book[s].lo
    if c.mkt[s].has_quote:
        b = min(b, c.mkt[s].bid)
    elif c.mkt[s].has_trade:
        b = min(b, c.mkt[s].last_px)
    return b


@kernel
def _refill_factor(c, s, t):
    """f(t): the fraction of the consumed depth still missing at time t."""
    if not c.book[s].dirty:
        return 0.0
    if c.run.book_half_life_ns <= 0.0:
        return 0.0
    dt = t - c.book[s].take_ts
    return 0.5 ** (max(dt, 0) / c.run.book_half_life_ns)


@kernel
def _level(c, s, d, i):
    """Price, displayed size and consumed depth of level i on the side a taker on d meets."""
    if d > 0:
        return c.book[s].ask_px[i], c.book[s].ask_qty[i], c.book[s].ask_take[i]
    return c.book[s].bid_px[i], c.book[s].bid_qty[i], c.book[s].bid_take[i]


@kernel
def walk(c, s, d, q, limit, t):
    """R9.4: a taker of q on side d walks the levels at time t, at prices no worse than limit
    (+inf for a buy, -inf for a sell without one). Returns (filled qty, notional): level by
    level x = min(left, available) at the level's price; past the deepest level the rest at the
    deepest price (no better than the best allowed price) worsened by book_beyond_frac."""
    n = c.book[s].na if d > 0 else c.book[s].nb
    best = _best_allowed(c, s, d)
    f = _refill_factor(c, s, t)
    left = q
    notional = 0.0
    for i in range(n):
        p, shown, take = _level(c, s, d, i)
        if (d > 0 and p < best) or (d < 0 and p > best):
            continue  # printed through or better than the effective touch
        if (d > 0 and p > limit) or (d < 0 and p < limit):
            return q - left, notional
        avail = shown - take * f
        if avail > 0.0:
            x = min(left, avail)
            notional += x * p
            left -= x
            if left <= 0.0:
                return q, notional
    deep = c.book[s].ask_px[n - 1] if d > 0 else c.book[s].bid_px[n - 1]
    if (d > 0 and best > deep) or (d < 0 and best < deep):
        deep = best
    rest_px = deep * (1.0 + d * c.run.book_beyond_frac)
    if (d > 0 and rest_px > limit) or (d < 0 and rest_px < limit):
        return q - left, notional
    notional += left * rest_px
    return q, notional


@kernel
def l2_price(c, s, d, q, t):
    """The l2_depth price of a taker of q on side d: the VWAP of the walk."""
    filled, notional = walk(c, s, d, q, INF * d, t)
    return notional / filled


rare_walk = rare_path(walk, (0.0, 0.0))
rare_l2_price = rare_path(l2_price, np.nan)


@kernel
def _refill(c, s, t):
    """Bring the consumed depth of both sides to time t (take_i = take_i * f(t))."""
    f = _refill_factor(c, s, t)
    for i in range(c.book[s].na):
        c.book[s].ask_take[i] = c.book[s].ask_take[i] * f
    for i in range(c.book[s].nb):
        c.book[s].bid_take[i] = c.book[s].bid_take[i] * f
    c.book[s].take_ts = t


@kernel
def consume(c, s, d, q, t):
    """R9.3: a taker fill of q at time t removes what it took from the levels of its walk
    (after refilling both sides to t; levels out of reach refill too, a quote may restore them)."""
    _refill(c, s, t)
    c.book[s].dirty = 1
    n = c.book[s].na if d > 0 else c.book[s].nb
    best = _best_allowed(c, s, d)
    left = q
    for i in range(n):
        p, shown, take = _level(c, s, d, i)
        if (d > 0 and p < best) or (d < 0 and p > best):
            continue
        avail = shown - take
        if avail > 0.0:
            x = min(left, avail)
            left -= x
            if d > 0:
                c.book[s].ask_take[i] = take + x
            else:
                c.book[s].bid_take[i] = take + x
            if left <= 0.0:
                return


@kernel
def level_of(c, s, side, i, t):
    """The i-th level (0 = best) of the effective book on `side` (+1 bids, -1 asks) at time t:
    (price, available size); (NaN, 0.0) past the last one."""
    d = -side  # a taker on the other side meets this side
    n = c.book[s].na if d > 0 else c.book[s].nb
    if not c.book[s].has_book:
        return np.nan, 0.0
    best = _best_allowed(c, s, d)
    f = _refill_factor(c, s, t)
    k = 0
    for j in range(n):
        p, shown, take = _level(c, s, d, j)
        if (d > 0 and p < best) or (d < 0 and p > best):
            continue
        if k == i:
            return p, max(0.0, shown - take * f)
        k += 1
    return np.nan, 0.0


@kernel
def depth_of(c, s, side, n, t):
    """Available size within the first n levels of the effective book on `side` at time t."""
    total = 0.0
    for i in range(n):
        p, q = level_of(c, s, side, i, t)
        if p != p:
            break
        total += q
    return total


@kernel
def queue_ahead(c, s, d, limit, t):
    """R9.8: the size ahead of a new resting limit on side d at `limit`: the available size of the
    book level at that price on its side (bids for a buy), 0 when the price improves on the
    level it reaches (better than the best, or between two levels), NaN past the deepest level
    (learned from the quotes later, as without a book)."""
    side = 1 if d > 0 else -1
    k = 0
    while True:
        p, q = level_of(c, s, side, k, t)
        if p != p:
            return np.nan
        if p == limit:
            return q
        if (d > 0 and limit > p) or (d < 0 and limit < p):
            return 0.0
        k += 1
