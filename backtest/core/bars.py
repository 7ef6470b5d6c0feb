"""Open, high, low and volume of trades per bar, in one compiled pass over a chunk (the kernel of
backtest/bars.py): no mask, copy or sort of the chunk's columns, which cost more than the loop."""
from .codes import K_BAR, K_TRADE
from .jit import kernel


@kernel(python=True, nogil=True)  # the reader prepares the next merge step meanwhile
def aggregate_chunk(ts, sym, kind, price, qty, bid, ask, bid_qty, candles, times, nsym, open_,
                    high, low, volume):
    """Add each trade of the chunk, in stream order, to its bar: the first row of `times` (sorted,
    distinct bar-row times) later than the trade, key `bucket * nsym + sym` (bucket len(times):
    after the last row). A candle (kind bars, when `candles`) counts as four trades at its close
    time: open, high, low (bid, ask, bid_qty, see core/schema.py) with no volume, then the close
    with its volume. Bars keep their first price, max, min and the running sum of qty; bars
    without trades keep NaN and their preloaded volume."""
    b = 0
    nt = len(times)
    for i in range(len(ts)):
        k = kind[i]
        if k != K_TRADE and not (candles and k == K_BAR):
            continue
        t = ts[i]
        while b < nt and times[b] <= t:
            b += 1
        key = b * nsym + sym[i]
        for step in range(0 if k == K_BAR else 3, 4):  # a candle: open, high, low, close
            if step == 3:
                p = price[i]
                q = qty[i]
            else:
                p = bid[i] if step == 0 else (ask[i] if step == 1 else bid_qty[i])
                q = 0.0
            if open_[key] != open_[key]:
                open_[key] = p
                high[key] = p
                low[key] = p
            elif p > high[key]:
                high[key] = p
            elif p < low[key]:
                low[key] = p
            volume[key] += q
