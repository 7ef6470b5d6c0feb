"""Event chunks from the streams' decoded batches: one stream's batches as chunks, several
streams merged by time (reader.py opens the files and decodes them).

- a dataset of one stream needs no merge: its chunks are the decoded row groups themselves
  (numpy views of the Arrow buffers, sliced to at most `chunk_rows`; `single`);
- the merge of several streams writes each event once, straight into its output chunk: per step
  a sort of one integer key per row, then one compiled gather that reads every piece in place
  (core/merge.py); rows left at the merge's watermark stay where they are (no re-copy);
- columns a kind does not have (sym, kind, and e.g. bid/ask of a trade) are never materialised
  per stream: they are slices of one shared constant array (the kernel never writes its input);
- the merge's steps (decode and sort) are prepared in a background thread while the caller's
  gather and the kernel run (`ahead`; pyarrow, numpy's sort and the nogil kernels release the
  GIL); the order of the events never depends on it, and its errors are raised in the caller.

A stream here is reader._Stream: `kind`, `sym`, `next_batch()`, and for the merge `fill()`,
`take(upto_ns)`, `buffered`, `last_buffered_ts`, `exhausted`.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import numpy as np

from ..core.schema import EVENT_COLUMNS
from .layout import KINDS

# file column -> event column, per kind
_COLUMN_MAP = {
    "trades": {"price": "price", "qty": "qty", "side": "side"},
    "quotes": {"bid": "bid", "ask": "ask", "bid_qty": "bid_qty", "ask_qty": "ask_qty"},
    "marks": {"mark_price": "price", "index_price": "qty"},
    "funding": {"rate": "price"},
    "bars": {"open": "bid", "high": "ask", "low": "bid_qty", "close": "price", "volume": "qty"},
    "liquidations": {"price": "price", "qty": "qty", "side": "side"},
    "book": {"level": "side", "bid": "bid", "bid_qty": "bid_qty", "ask": "ask", "ask_qty": "ask_qty"},
}
_EVENT_DTYPES = dict(EVENT_COLUMNS)


class Constants:
    """Read-only-by-convention constant columns, one growing array per (dtype, value), sliced."""

    def __init__(self):
        self._arrays: dict[tuple[str, float], np.ndarray] = {}

    def get(self, dtype: str, value, n: int) -> np.ndarray:
        a = self._arrays.get((dtype, value))
        if a is None or len(a) < n:
            a = np.full(max(n, 1 << 16), value, dtype)
            self._arrays[(dtype, value)] = a
        return a[:n]


def _fill_value(name: str):
    return 0 if name in ("side",) else np.nan


class _Writeable:
    """Exposes a read-only array's memory as writeable to numpy, keeping its owner alive.
    Arrow buffers are immutable, and numba compiles a second loop for read-only arrays; the kernel
    never writes its input, so the chunk can view Arrow's memory with the one compiled type."""

    def __init__(self, a: np.ndarray):
        self.__array_interface__ = dict(a.__array_interface__, data=(a.ctypes.data, False))
        self._owner = a


def _as_event(a: np.ndarray, dtype: str) -> np.ndarray:
    if a.dtype != np.dtype(dtype) or not a.flags.c_contiguous:
        return np.require(a, dtype=dtype, requirements="CW")
    return a if a.flags.writeable else np.asarray(_Writeable(a))


def single(st, chunk_rows: int, consts: Constants) -> Iterator[dict[str, np.ndarray]]:
    """One stream: its batches are the chunks (no merge, no copy)."""
    mapping = _COLUMN_MAP[st.kind]
    code = int(KINDS[st.kind][0])
    while (batch := st.next_batch()) is not None:
        n = len(batch["ts_ns"])
        for a in range(0, n, chunk_rows):
            b = min(n, a + chunk_rows)
            have = {dst: batch[src][a:b] for src, dst in mapping.items()}
            have["ts_ns"] = batch["ts_ns"][a:b]
            chunk = {}
            for name, dt in EVENT_COLUMNS:
                if name in have:
                    chunk[name] = _as_event(have[name], dt)
                elif name == "sym":
                    chunk[name] = consts.get(dt, st.sym, b - a)
                elif name == "kind":
                    chunk[name] = consts.get(dt, code, b - a)
                else:
                    chunk[name] = consts.get(dt, _fill_value(name), b - a)
            yield chunk


class _ChunkWriter:
    """Output chunks of the merge: each event is written once, at its place in its chunk."""

    def __init__(self, chunk_rows: int, rows_bound):
        self.chunk_rows, self.rows_bound = chunk_rows, rows_bound
        self.left: int | None = None  # rows the bound still allows (unknown: a full chunk)
        self.written = 0
        self.out: dict[str, np.ndarray] = {}
        self.fill = self.cap = 0

    def _alloc(self):
        if self.left is None and (bound := self.rows_bound()) is not None:
            self.left = bound - self.written
        # only the last chunk is ever shorter than chunk_rows, so the cap never moves a boundary
        self.cap = self.chunk_rows if self.left is None else max(1, min(self.chunk_rows, self.left))
        self.out = {n: np.empty(self.cap, dt) for n, dt in EVENT_COLUMNS}
        self.fill = 0

    def write(self, merge: Merge) -> Iterator[dict[str, np.ndarray]]:
        """Write a merge step's rows in merged order; yield every chunk that becomes full. One
        compiled pass reads the pieces in place and writes each event once (core/merge.py): the
        event columns are never concatenated, a kind's missing columns never materialised."""
        w0, m = 0, merge.rows
        while w0 < m:
            if self.fill == self.cap:
                self._alloc()
            w1 = min(m, w0 + self.cap - self.fill)
            merge.write(w1 - w0, self.fill, self.out)
            self.fill += w1 - w0
            self.written += w1 - w0
            if self.left is not None:
                self.left -= w1 - w0
            w0 = w1
            if self.fill == self.cap:
                yield self.out
                self.out, self.fill, self.cap = {}, 0, 0

    def rest(self) -> Iterator[dict[str, np.ndarray]]:
        if self.fill:
            yield {n: a[:self.fill] for n, a in self.out.items()}


def _jit() -> bool:
    from numba import config

    return not config.DISABLE_JIT


class Merge:
    """One merge step: its pieces [(stream, columns)] (in (kind, symbol) order, a stream's pieces
    in row order) and their merged order, a stable sort by time (ties: piece order, then row
    order). Built where the decode runs (`ahead`); written out by the caller n rows at a time."""

    def __init__(self, pieces):
        from ..core.merge import ADDRESSED

        self.cols = []  # per piece: its event columns (exact dtypes, C order), kept alive here
        for st, cols in pieces:
            have = {dst: cols[src] for src, dst in _COLUMN_MAP[st.kind].items()}
            have["ts_ns"] = cols["ts_ns"]
            self.cols.append({n: np.require(have[n], _EVENT_DTYPES[n], "C") for n in have})
        k = len(pieces)
        self.sym = np.array([st.sym for st, _ in pieces], np.int64)
        self.kind = np.array([int(KINDS[st.kind][0]) for st, _ in pieces], np.int64)
        self.sizes = np.array([len(c["ts_ns"]) for c in self.cols], np.int64)
        self.rows = int(self.sizes.sum())
        self.done = 0
        self.cur = np.zeros(k, np.int64)  # the next row of each piece (core/merge.py)
        table = np.zeros((k, 2, len(ADDRESSED)), np.uint64)
        for j, cols in enumerate(self.cols):
            for c, name in enumerate(ADDRESSED):
                table[j, 0, c] = (cols[name] if name in cols else _FILL[name]).ctypes.data
                table[j, 1, c] = np.iinfo(np.uint64).max if name in cols else 0
        self.table = table.ravel()
        # the merged order, as the piece of each row: a sort of (ts - first ts) << bits | piece
        bits = max(1, (k - 1).bit_length())
        lo = min(int(c["ts_ns"][0]) for c in self.cols)
        hi = max(int(c["ts_ns"][-1]) for c in self.cols)
        if hi - lo < 1 << (63 - bits) and _jit():
            from ..core.merge import make_keys

            self.perm = None  # a stable sort of the times: only for --no-jit (write)
            self.order = np.empty(self.rows, np.uint64)
            make_keys(self.table, self.sizes, lo, bits, self.order)
            self.order.sort()
            self.mask = np.uint64((1 << bits) - 1)
        else:  # times too far apart for the key (or --no-jit): a stable sort of the times
            self.perm = np.argsort(np.concatenate([c["ts_ns"] for c in self.cols]), kind="stable")
            self.order = np.repeat(np.arange(k, dtype=np.uint64), self.sizes)[self.perm]
            self.mask = np.uint64(np.iinfo(np.uint64).max)

    def write(self, n: int, at: int, out: dict[str, np.ndarray]) -> None:
        """The next n rows of the merged order, at rows at.. of the chunk `out`."""
        order = self.order[self.done:self.done + n]
        if _jit():
            from ..core.merge import gather_pieces

            gather_pieces(order, self.mask, self.cur, self.table, self.sym, self.kind, at,
                          *out.values())
        else:  # --no-jit: numpy, a concatenation and a take per column; the same rows
            if self.perm is None:
                self.perm = np.argsort(np.concatenate([c["ts_ns"] for c in self.cols]), kind="stable")
            idx = self.perm[self.done:self.done + n]
            for name, dt in EVENT_COLUMNS:
                cat = np.concatenate([self._column(j, name) for j in range(len(self.cols))])
                np.take(cat, idx, out=out[name][at:at + n])
        self.done += n

    def _column(self, j: int, name: str) -> np.ndarray:
        cols, size = self.cols[j], int(self.sizes[j])
        if name in cols:
            return cols[name]
        value = {"sym": self.sym[j], "kind": self.kind[j]}.get(name, _fill_value(name))
        return np.full(size, value, _EVENT_DTYPES[name])


# the one-element constants a piece's missing column is read from (core/merge.py)
_FILL = {n: np.full(1, _fill_value(n), dt) for n, dt in EVENT_COLUMNS if n not in ("ts_ns", "sym", "kind")}


def steps(streams: list) -> Iterator[Merge]:
    """The k-way merge's steps: per step, every buffered row below the smallest "last buffered
    time" of the streams that still have data, with its merged order."""
    while True:
        for st in streams:
            if st.buffered == 0 and not st.exhausted:
                st.fill()
        live = [st for st in streams if st.buffered]
        if not live:
            return
        open_ = [st for st in live if not st.exhausted]
        upto = min(st.last_buffered_ts for st in open_) if open_ else None
        pieces = [(st, p) for st in live for p in st.take(upto)]
        if not pieces:
            # every buffered row is at the watermark: read more of the streams holding it
            for st in open_:
                if st.last_buffered_ts == upto:
                    st.fill()
            continue
        yield Merge(pieces)


def merged(steps: Iterator[Merge], chunk_rows: int, rows_bound):
    """k-way merge by time of several streams into chunks of exactly chunk_rows (the last short).
    rows_bound(): an upper bound of the rows, or None while it cannot be told without waiting."""
    writer = _ChunkWriter(chunk_rows, rows_bound)
    for step in steps:
        yield from writer.write(step)
    yield from writer.rest()


class _Raised:
    def __init__(self, error: BaseException):
        self.error = error


def ahead(items: Iterator, depth: int) -> Iterator:
    """Run the generator `items` in a background thread, at most `depth` items ahead of the
    caller: the merge's decode and sort run on one core while the caller's gather and the kernel
    run on the other (pyarrow and numpy's sort release the GIL). Same items, same order; an error
    is raised in the caller; closing the caller's generator stops the thread."""
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    end = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def work():
        try:
            for item in items:
                if not put(item):
                    return
            put(end)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            put(_Raised(e))
        finally:
            items.close()

    worker = threading.Thread(target=work, name="cascade-merge", daemon=True)
    worker.start()
    try:
        while (item := q.get()) is not end:
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()
