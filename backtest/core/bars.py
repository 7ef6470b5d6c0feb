"""Open, high, low and volume of trades per bar (the kernel of backtest/bars.py)."""
from .jit import kernel


@kernel(python=True)
def aggregate_trades(key, price, qty, open_, high, low, volume):
    """Add each trade, in stream order, to the bar `key[i]`: its first price, max, min, and the
    running sum of qty (bars without trades keep NaN and their preloaded volume)."""
    for i in range(len(key)):
        k = key[i]
        p = price[i]
        if open_[k] != open_[k]:
            open_[k] = p
            high[k] = p
            low[k] = p
        elif p > high[k]:
            high[k] = p
        elif p < low[k]:
            low[k] = p
        volume[k] += qty[i]
