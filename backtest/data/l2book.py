"""An L2 order book rebuilt from incremental updates (Tardis `incremental_book_L2`), emitting the
`book` kind (top N levels on a fixed time grid) and `quotes` (when the top of the book changes).

Rules (data/README.md, "Tardis order books"):

* `is_snapshot` rows after non-snapshot rows (or at the start) begin a new snapshot: the book is
  cleared. Rows before the first snapshot are skipped (the book is unknown until then).
* `amount` is the new absolute size at that price; 0 removes the level (a removal of an unknown
  level is ignored).
* Rows sharing one `timestamp` are one venue message: the book is read only between messages.
* No look-ahead: the snapshot stamped T holds exactly the updates with timestamp <= T; it is
  emitted once a row with a later timestamp arrives, or at the end of the file for grid times up
  to its last timestamp. Grid points are multiples of the interval since the epoch, from the
  first snapshot on; rows are applied in file order.
* A quote is emitted at the end of a message when the best bid, best ask or their sizes changed.
* A crossed (bid >= ask) or one-sided top is not emitted (neither quote nor snapshot).

State lives in one `L2Book` object carried across the batches of a file.
"""
from __future__ import annotations

import heapq

import numpy as np


class L2Book:
    def __init__(self, levels: int, interval_ns: int):
        self.levels, self.interval_ns = int(levels), int(interval_ns)
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.best_bid: float | None = None
        self.best_ask: float | None = None
        self.known = False  # a snapshot has been seen
        self.in_snapshot = False
        self.cur_ts: int | None = None  # timestamp of the message being applied
        self.next_t: int | None = None  # next grid time to emit
        self.last_quote: tuple | None = None
        self.top: tuple | None = None  # cached top-N arrays, None when the book changed
        self.q: list[list] = [[], [], [], [], []]  # ts, bid, ask, bid_qty, ask_qty
        self.b: list[list] = [[], [], [], [], [], []]  # ts, level, bid, bid_qty, ask, ask_qty

    # -- updates ---------------------------------------------------------------------------------
    def apply(self, ts: list, snap: list, is_bid: list, price: list, amount: list) -> None:
        """Apply rows in file order (plain Python lists: this loop is the importer's hot path)."""
        bids, asks = self.bids, self.asks
        for t, s, bside, p, a in zip(ts, snap, is_bid, price, amount):
            if t != self.cur_ts:
                self._message_done(t)
            if s:
                if not self.in_snapshot:
                    bids.clear()
                    asks.clear()
                    self.best_bid = self.best_ask = None
                    self.in_snapshot = self.known = True
                    if self.next_t is None:
                        self.next_t = -(-t // self.interval_ns) * self.interval_ns
            else:
                self.in_snapshot = False
                if not self.known:
                    continue
            self.top = None
            if bside:
                if a == 0.0:
                    if bids.pop(p, None) is not None and p == self.best_bid:
                        self.best_bid = max(bids) if bids else None
                else:
                    bids[p] = a
                    if self.best_bid is None or p > self.best_bid:
                        self.best_bid = p
            else:
                if a == 0.0:
                    if asks.pop(p, None) is not None and p == self.best_ask:
                        self.best_ask = min(asks) if asks else None
                else:
                    asks[p] = a
                    if self.best_ask is None or p < self.best_ask:
                        self.best_ask = p

    def _message_done(self, next_ts: int) -> None:
        """The message at cur_ts is complete (the next row is at next_ts > cur_ts)."""
        if self.cur_ts is not None and self.known:
            self._quote(self.cur_ts)
            while self.next_t is not None and self.next_t < next_ts:
                if self.next_t >= self.cur_ts:
                    self._snapshot(self.next_t)
                self.next_t += self.interval_ns
        self.cur_ts = next_ts

    def finish(self) -> None:
        """End of the file: every row has been read, so the last message's quote and the grid
        times up to its timestamp are complete."""
        if self.cur_ts is not None and self.known:
            self._quote(self.cur_ts)
            while self.next_t is not None and self.next_t <= self.cur_ts:
                self._snapshot(self.next_t)
                self.next_t += self.interval_ns

    # -- output ----------------------------------------------------------------------------------
    def _ok(self) -> bool:
        return self.best_bid is not None and self.best_ask is not None and self.best_bid < self.best_ask

    def _quote(self, t: int) -> None:
        if not self._ok():
            return
        q = (self.best_bid, self.best_ask, self.bids[self.best_bid], self.asks[self.best_ask])
        if q != self.last_quote:
            self.last_quote = q
            for col, v in zip(self.q, (t, *q)):
                col.append(v)

    def _snapshot(self, t: int) -> None:
        if not self._ok():
            return
        if self.top is None:
            n = self.levels
            bp = heapq.nlargest(n, self.bids)
            ap = heapq.nsmallest(n, self.asks)
            self.top = (bp, [self.bids[p] for p in bp], ap, [self.asks[p] for p in ap])
        bp, bq, ap, aq = self.top
        depth = max(len(bp), len(ap))
        pad = [float("nan")] * (depth - len(bp)), [float("nan")] * (depth - len(ap))
        zero = [0.0] * (depth - len(bp)), [0.0] * (depth - len(ap))
        ts, lv, b, bqc, a, aqc = self.b
        ts.extend([t] * depth)
        lv.extend(range(depth))
        b.extend(bp + pad[0])
        bqc.extend(bq + zero[0])
        a.extend(ap + pad[1])
        aqc.extend(aq + zero[1])

    def drain(self) -> dict[str, dict[str, np.ndarray]]:
        """The quotes and book rows emitted since the last drain, as numpy columns."""
        ts, bid, ask, bq, aq = self.q
        out = {"quotes": {"ts_ns": np.array(ts, np.int64), "bid": np.array(bid, np.float64),
                          "ask": np.array(ask, np.float64), "bid_qty": np.array(bq, np.float64),
                          "ask_qty": np.array(aq, np.float64)}}
        ts, lv, b, bqc, a, aqc = self.b
        out["book"] = {"ts_ns": np.array(ts, np.int64), "level": np.array(lv, np.int8),
                       "bid": np.array(b, np.float64), "bid_qty": np.array(bqc, np.float64),
                       "ask": np.array(a, np.float64), "ask_qty": np.array(aqc, np.float64)}
        self.q = [[], [], [], [], []]
        self.b = [[], [], [], [], [], []]
        return out
