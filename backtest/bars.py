"""Open, high, low and volume of the bar rows, computed after each chunk from its trades.

The compiled loop writes a bar row per symbol at every sample time (and at the end) with the
state of that moment: close, valuation price, position, liquidation price. The OHLV columns are
plain aggregates of the trade stream, so they are filled in here, one pass over the chunk's
trades (core/bars.py), instead of costing six memory operations per trade inside the loop.

A bar row written at time R covers the trades with ts < R since the previous bar row (the loop
writes it before the first event at or after R); the final rows cover every trade left. Trades
after the last row of a chunk carry over into the next chunk's first rows, and volumes are summed
in stream order across chunks, so chunking never changes a bar. Input candles (kind bars) count
as four trades at their close time: open, high, low, close, with their volume on the last.
"""
from __future__ import annotations

import numpy as np

from .core.bars import aggregate_trades
from .core.schema import EventKind


class BarFiller:
    def __init__(self, nsym: int, candles: bool = False):
        self.nsym = nsym
        self.candles = candles  # the data holds candles (kind bars)
        self.carry = _empty(nsym)  # open, high, low, volume of the trades not yet in a bar

    def chunk(self, ev: dict, rows: list[np.ndarray]) -> None:
        """Fill `rows` (the bar rows written while the loop ran over `ev`, in order)."""
        ts, sym, price, qty = _with_candles(ev) if self.candles else _trades(ev)
        times = np.unique(np.concatenate([r["ts_ns"] for r in rows])) if rows else np.zeros(0, np.int64)
        # bucket b: the first row with a time > ts (b = len(times): after the last row)
        b = np.searchsorted(times, ts, side="right")
        n = self.nsym
        agg = _empty((len(times) + 1) * n)
        for a, c in zip(agg, self.carry):
            a[:n] = c  # the carried trades come first in the first bucket
        aggregate_trades(b * n + sym.astype(np.int64), np.ascontiguousarray(price),
                         np.ascontiguousarray(qty), *agg)
        for r in rows:
            j = np.searchsorted(times, r["ts_ns"]) * n + r["sym"]
            r["open"], r["high"], r["low"], r["volume"] = (a[j] for a in agg)
        self.carry = tuple(a[len(times) * n:].copy() for a in agg)

    def finish(self, rows: list[np.ndarray]) -> None:
        """Fill the final rows with every trade not yet in a bar."""
        for r in rows:
            r["open"], r["high"], r["low"], r["volume"] = (a[r["sym"]] for a in self.carry)
        self.carry = _empty(self.nsym)


def _trades(ev: dict) -> tuple:
    m = ev["kind"] == int(EventKind.TRADE)
    return ev["ts_ns"][m], ev["sym"][m], ev["price"][m], ev["qty"][m]


def _with_candles(ev: dict) -> tuple:
    """Trades, and each candle as four trades open, high, low, close (volume on the close), in
    stream order. Candle events carry open, high, low in bid, ask, bid_qty (core/schema.py)."""
    k = ev["kind"]
    idx = np.flatnonzero((k == int(EventKind.TRADE)) | (k == int(EventKind.BAR)))
    bar = k[idx] == int(EventKind.BAR)
    reps = np.where(bar, 4, 1)
    at = np.repeat(idx, reps)
    step = np.arange(len(at)) - np.repeat(np.cumsum(reps) - reps, reps)  # 0..3 within a candle
    is_bar = np.repeat(bar, reps)
    ohlc = np.stack([ev["bid"], ev["ask"], ev["bid_qty"], ev["price"]])
    price = np.where(is_bar, ohlc[np.minimum(step, 3), at], ev["price"][at])
    qty = np.where(is_bar & (step < 3), 0.0, ev["qty"][at])
    return ev["ts_ns"][at], ev["sym"][at], price, qty


def _empty(n: int) -> tuple:
    return np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan), np.zeros(n)
