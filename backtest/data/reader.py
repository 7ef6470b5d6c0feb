"""Stream a dataset as one time-ordered event stream, in chunks of numpy columns.

Each (kind, symbol) stream is read file by file and row group by row group (row groups outside the
time range are skipped from their statistics; only the needed columns are read). A k-way merge
emits every row whose time is below the smallest "last buffered time" of the streams that still
have data, so memory is bounded by the chunk size however long the dataset is.

The data path copies as little as it can (the loop itself runs at 100+ M events/s):
- a dataset of one stream needs no merge: its chunks are the decoded row groups themselves
  (numpy views of the Arrow buffers, sliced to at most `chunk_rows`);
- the merge of several streams writes each event once, straight into its output chunk: per step
  a sort of one integer key per row, then one compiled gather that reads every piece in place
  (core/merge.py); rows left at the merge's watermark stay where they are (no re-copy);
- columns a kind does not have (sym, kind, and e.g. bid/ask of a trade) are never materialised
  per stream: they are slices of one shared constant array (the kernel never writes its input);
- a background thread works ahead while the gather and the kernel run (pyarrow, numpy's sort
  and the nogil kernels release the GIL): it decodes a single stream's next row groups, or
  prepares the merge's next steps (_ahead); the order of the events never depends on it, and its
  errors are raised in the caller;
- each file's row checks run once: a file that passed them is remembered (validated.py).

Order of the merged stream (documented in data/README.md): ts_ns, then kind (TRADE < QUOTE < MARK
< FUNDING < BAR < MARKET_LIQUIDATION < BOOK), then symbol index, then row order within the file. Chunks are views of that one order,
so where the stream is cut never changes a result.
"""
from __future__ import annotations

import hashlib
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..core.schema import EVENT_COLUMNS
from ..errors import DataError
from .instruments import Instrument, load_instruments
from .layout import DATA_TS_MIN_NS, EVENT_KINDS, KINDS, TS_MAX_NS, date_of_file, list_streams
from .storage import local_dataset, pending, ready
from .validate import check_batch
from .validated import file_key, is_valid, remember

DEFAULT_CHUNK_ROWS = 1 << 20

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


def _check_schema(path: Path, kind: str, schema: pa.Schema) -> None:
    expected = KINDS[kind][1]
    for name, typ in expected.items():
        idx = schema.get_field_index(name)
        if idx < 0:
            raise DataError(f"missing column (a {kind} file needs {', '.join(expected)})", file=path,
                            column=name, fix="re-import or regenerate this file")
        if schema.field(idx).type != typ:
            raise DataError(f"column has type {schema.field(idx).type}, expected {typ}", file=path,
                            column=name, fix=f"cast the column to {typ} when writing the file")


class _Stream:
    """One (kind, symbol) stream: yields numpy column batches in time order."""

    def __init__(self, kind, sym_index, files, start_ns, end_ns, batch_rows, pool=None):
        self.kind, self.sym, self.files = kind, sym_index, files
        self.start_ns, self.end_ns, self.batch_rows = start_ns, end_ns, batch_rows
        self.columns = list(KINDS[kind][1])
        self._it = self._batches()
        self.segs: list[dict[str, np.ndarray]] = []  # buffered batches (merge of several streams)
        self.exhausted = False
        self.last_ts = None  # last timestamp read (order is checked across batches and files)
        self.carry: dict = {}  # the last book row, so a snapshot split across batches is checked whole
        self._pool = pool  # read-ahead: the next batch is decoded while the caller works
        self._next = pool.submit(next, self._it, None) if pool is not None else None

    def _row_groups(self, path: Path, pf: pq.ParquetFile) -> list[int]:
        md = pf.metadata
        ts_idx = pf.schema_arrow.get_field_index("ts_ns")
        keep = []
        for rg in range(md.num_row_groups):
            st = md.row_group(rg).column(ts_idx).statistics
            if st is not None and st.has_min_max and DATA_TS_MIN_NS <= st.min and st.max < TS_MAX_NS:
                # out-of-range times are never skipped unseen: check_batch refuses them
                if st.max < self.start_ns or st.min >= self.end_ns:
                    continue
            keep.append(rg)
        return keep

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for path in self.files:
            ready(path)  # an S3 dataset's file may still be downloading (storage.local_dataset)
            try:
                pf = pq.ParquetFile(path, page_checksum_verification=True)
                _check_schema(path, self.kind, pf.schema_arrow)
                groups = self._row_groups(path, pf)
                if not groups or groups[0] > 0:
                    self.carry["resync"] = True  # rows skipped unread: a book snapshot may resume
                if not groups:
                    continue
                key = file_key(path, self.kind)
                checked = is_valid(key)  # this file passed the row checks before, unchanged
                date = date_of_file(path)
                row0 = 0
                for rg in groups:
                    table = pf.read_row_group(rg, columns=self.columns, use_threads=True)
                    for batch in table.to_batches(max_chunksize=self.batch_rows):
                        cols = {n: batch.column(n).to_numpy(zero_copy_only=False) for n in self.columns}
                        ts = cols["ts_ns"]
                        if not len(ts):
                            continue
                        if checked and (self.last_ts is None or ts[0] >= self.last_ts):
                            self.last_ts = int(ts[-1])  # only the order across batches and files
                            self.carry["resync"] = True  # rows not re-read: a book snapshot may resume
                        else:
                            # values, order and dates, the same checks as `backtest data validate`
                            self.last_ts = check_batch(self.kind, path, cols, row0, self.last_ts,
                                                       date=date, carry=self.carry)
                        row0 += len(ts)
                        lo = np.searchsorted(ts, self.start_ns, "left")
                        hi = np.searchsorted(ts, self.end_ns, "left")
                        if hi > lo:
                            yield {n: a[lo:hi] for n, a in cols.items()}
                if not checked and len(groups) == pf.metadata.num_row_groups:
                    remember(key)  # every row of the file passed
            except (OSError, pa.ArrowException) as e:
                msg = " ".join(str(e).split())  # Arrow messages span lines
                raise DataError(f"cannot read Parquet file ({type(e).__name__}: {msg})", file=path,
                                fix="the file is truncated or corrupt; re-import or regenerate it") from None

    def next_batch(self) -> dict[str, np.ndarray] | None:
        if self._next is None:
            return next(self._it, None)
        nxt = self._next.result()  # raises the reading thread's error here
        # one decode in flight per stream: a generator never runs in two threads at once
        self._next = self._pool.submit(next, self._it, None) if nxt is not None else None
        return nxt

    def fill(self) -> None:
        """Append the next batch to the buffer (or mark the stream exhausted)."""
        nxt = self.next_batch()
        if nxt is None:
            self.exhausted = True
        else:  # a list of batches: rows left at the merge's watermark are never re-copied
            self.segs = [g for g in self.segs if len(g["ts_ns"])] + [nxt]

    def take(self, upto_ns: int | None) -> list[dict[str, np.ndarray]]:
        """Remove and return the buffered rows with ts < upto_ns (all rows if None), as views."""
        out = []
        for k, g in enumerate(self.segs):
            ts = g["ts_ns"]
            cut = len(ts) if upto_ns is None else int(np.searchsorted(ts, upto_ns, "left"))
            if cut:
                out.append({n: a[:cut] for n, a in g.items()})
            if cut < len(ts):
                self.segs = [{n: a[cut:] for n, a in g.items()}] + self.segs[k + 1:]
                return out
        self.segs = []
        return out

    @property
    def buffered(self) -> int:
        return sum(len(g["ts_ns"]) for g in self.segs)

    @property
    def last_buffered_ts(self) -> int:
        return int(self.segs[-1]["ts_ns"][-1])


@dataclass
class EventStream:
    """A dataset opened for one run: its symbols (index = sym), instruments and event chunks."""

    root: Path
    symbols: list[str]
    instruments: dict[str, Instrument]
    start_ns: int
    end_ns: int
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    kinds: tuple[str, ...] = EVENT_KINDS
    files: dict[tuple[str, str], list[Path]] = field(default_factory=dict)
    read_ahead: bool = True

    def fingerprint(self) -> str:
        """Hash of the selected files' names, sizes and Parquet footers (cheap, content-bound)."""
        h = hashlib.sha256(f"{self.symbols}|{self.start_ns}|{self.end_ns}|{self.kinds}".encode())
        for key in sorted(self.files):
            for f in self.files[key]:
                ready(f)
                h.update(str(f.relative_to(self.root)).encode())
                h.update(str(f.stat().st_size).encode())
                try:
                    h.update(pq.ParquetFile(f).metadata.to_dict().__repr__().encode())
                except (OSError, pa.ArrowException):
                    pass
        return h.hexdigest()[:16]

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        """Chunks: dicts of EVENT_COLUMNS arrays (exact dtypes, C-contiguous, writeable; at most
        chunk_rows events, never empty). Constant columns are shared: never write to a chunk."""
        order = [(k, s) for k in EVENT_KINDS for s in self.symbols if (k, s) in self.files and k in self.kinds]
        nstreams = max(1, len(order))
        # a merge step holds about a batch of each stream: larger batches, fewer steps, less
        # Python per event (the crash dataset, 40 streams: 12.1 -> 8.6 s, peak RSS 0.94 -> 1.03 GB)
        batch_rows = max(4096, self.chunk_rows // min(nstreams, 8))
        single = len(order) == 1
        # one stream: its decode runs ahead in a thread; several: the whole merge step does (_ahead)
        pool = (ThreadPoolExecutor(1, thread_name_prefix="cascade-read")
                if self.read_ahead and single else None)
        try:
            streams = [_Stream(k, self.symbols.index(s), self.files[(k, s)], self.start_ns,
                               self.end_ns, batch_rows, pool) for k, s in order]
            if single:
                yield from _single(streams[0], self.chunk_rows, _Constants())
            elif streams:
                steps = _steps(streams)
                if self.read_ahead:
                    steps = _ahead(steps, depth=2)
                yield from _merged(steps, self.chunk_rows, self._rows_bound)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _rows_bound(self) -> int | None:
        """An upper bound of the rows to read (the files' row counts): sizes the last chunk.
        None while files of an S3 dataset are still downloading (the footers are not local yet)."""
        n = 0
        if pending(self.root):
            return None
        for paths in self.files.values():
            for f in paths:
                try:
                    n += pq.ParquetFile(f).metadata.num_rows
                except (OSError, pa.ArrowException):
                    return self.chunk_rows  # the reader reports it with its one-line error
        return n


class _Constants:
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


def _single(st: _Stream, chunk_rows: int, consts: _Constants) -> Iterator[dict[str, np.ndarray]]:
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

    def write(self, merge: _Merge) -> Iterator[dict[str, np.ndarray]]:
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


class _Merge:
    """One merge step: its pieces [(stream, columns)] (in (kind, symbol) order, a stream's pieces
    in row order) and their merged order, a stable sort by time (ties: piece order, then row
    order). Built where the decode runs (_ahead); written out by the caller n rows at a time."""

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


def _steps(streams: list[_Stream]) -> Iterator[_Merge]:
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
        yield _Merge(pieces)


def _merged(steps: Iterator[_Merge], chunk_rows: int, rows_bound):
    """k-way merge by time of several streams into chunks of exactly chunk_rows (the last short).
    rows_bound(): an upper bound of the rows, or None while it cannot be told without waiting."""
    writer = _ChunkWriter(chunk_rows, rows_bound)
    for step in steps:
        yield from writer.write(step)
    yield from writer.rest()


class _Raised:
    def __init__(self, error: BaseException):
        self.error = error


def _ahead(items: Iterator, depth: int) -> Iterator:
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


def open_dataset(root: Path, *, symbols: list[str] | None = None, start_ns: int | None = None,
                 end_ns: int | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 kinds: tuple[str, ...] | None = None) -> EventStream:
    """Open a dataset folder for streaming; checks symbols against the instruments file."""
    # an s3:// URI reads through the local cache, its partitions still downloading (each file is
    # waited for when the reader opens it: the first files decode while the rest download)
    root = local_dataset(root, wait=False)
    if not root.is_dir():
        raise DataError("dataset folder not found", file=root,
                        fix="create one with `backtest data generate` or `backtest data import`")
    from .commit import recover

    recover(root)  # finish a committed import (or drop a dead one) when no import is running
    instruments = load_instruments(root)
    streams = list_streams(root, pending(root))  # honours a commit still being applied
    if not streams:
        raise DataError("empty dataset: no Parquet files", file=root,
                        fix="generate or import data into this folder")
    present = sorted({s for _, s in streams})
    for s in present:
        if s not in instruments:
            raise DataError(f"symbol {s!r} has data but no entry in the instruments file", file=root,
                            fix=f"add {s} to instruments.json")
    if symbols:
        unknown = [s for s in symbols if s not in present]
        if unknown:
            raise DataError(f"unknown symbol(s) {unknown}", file=root,
                            fix=f"choose from {', '.join(present)}")
        chosen = list(dict.fromkeys(symbols))
    else:
        chosen = present
    kinds = tuple(k for k in (kinds or EVENT_KINDS) if k in EVENT_KINDS)  # data-only kinds never replay
    files = {k: v for k, v in streams.items() if k[1] in chosen and k[0] in kinds}
    lo = np.iinfo(np.int64).min if start_ns is None else int(start_ns)
    hi = np.iinfo(np.int64).max if end_ns is None else int(end_ns)
    if chunk_rows < 1:
        raise DataError("chunk_rows must be positive")
    return EventStream(root=root, symbols=chosen, instruments={s: instruments[s] for s in chosen},
                       start_ns=lo, end_ns=hi, chunk_rows=int(chunk_rows), kinds=kinds, files=files)
