"""Open, high, low and volume of the bar rows, computed after each chunk from its trades.

The compiled loop writes a bar row per symbol at every sample time (and at the end) with the
state of that moment: close, valuation price, position, liquidation price. The OHLV columns are
plain aggregates of the trade stream, so they are filled in here, one compiled pass over the
chunk (core/bars.py; no per-chunk masks or copies), instead of costing six memory operations per
trade inside the loop. engine.py runs it in a thread while the loop runs over the next chunk.

A bar row written at time R covers the trades with ts < R since the previous bar row (the loop
writes it before the first event at or after R); the final rows cover every trade left. Trades
after the last row of a chunk carry over into the next chunk's first rows, and volumes are summed
in stream order across chunks, so chunking never changes a bar. Input candles (kind bars) count
as four trades at their close time: open, high, low, close, with their volume on the last.
"""
from __future__ import annotations

import numpy as np

from .core.bars import aggregate_chunk


class BarFiller:
    def __init__(self, nsym: int, candles: bool = False):
        self.nsym = nsym
        self.candles = candles  # the data holds candles (kind bars)
        self.carry = _empty(nsym)  # open, high, low, volume of the trades not yet in a bar

    def chunk(self, ev: dict, rows: list[np.ndarray]) -> None:
        """Fill `rows` (the bar rows written while the loop ran over `ev`, in order)."""
        times = np.unique(np.concatenate([r["ts_ns"] for r in rows])) if rows else np.zeros(0, np.int64)
        n = self.nsym
        agg = _empty((len(times) + 1) * n)
        for a, c in zip(agg, self.carry):
            a[:n] = c  # the carried trades come first in the first bucket
        aggregate_chunk(ev["ts_ns"], ev["sym"], ev["kind"], ev["price"], ev["qty"], ev["bid"],
                        ev["ask"], ev["bid_qty"], self.candles, times, n, *agg)
        for r in rows:
            j = np.searchsorted(times, r["ts_ns"]) * n + r["sym"]
            r["open"], r["high"], r["low"], r["volume"] = (a[j] for a in agg)
        self.carry = tuple(a[len(times) * n:].copy() for a in agg)

    def finish(self, rows: list[np.ndarray]) -> None:
        """Fill the final rows with every trade not yet in a bar."""
        for r in rows:
            r["open"], r["high"], r["low"], r["volume"] = (a[r["sym"]] for a in self.carry)
        self.carry = _empty(self.nsym)


def _empty(n: int) -> tuple:
    return np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan), np.zeros(n)
