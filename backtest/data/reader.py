"""Stream a dataset as one time-ordered event stream, in chunks of numpy columns.

Each (kind, symbol) stream is read file by file and row group by row group (row groups outside the
time range are skipped from their statistics; only the needed columns are read); chunks.py turns
the streams' batches into event chunks. A k-way merge emits every row whose time is below the
smallest "last buffered time" of the streams that still have data, so memory is bounded by the
chunk size however long the dataset is.

The data path copies as little as it can (the loop itself runs at 100+ M events/s): one stream's
decoded row groups are its chunks, a merge writes each event once (chunks.py); a background
thread decodes a single stream's next row groups, or prepares the merge's next steps, while the
kernel runs; each file's row checks run once: a file that passed them is remembered
(validated.py).

Order of the merged stream (documented in data/README.md): ts_ns, then kind (TRADE < QUOTE < MARK
< FUNDING < BAR < MARKET_LIQUIDATION < BOOK), then symbol index, then row order within the file.
Chunks are views of that one order, so where the stream is cut never changes a result.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DataError
from . import chunks, replay
from .instruments import Instrument, load_instruments
from .layout import DATA_TS_MIN_NS, EVENT_KINDS, KINDS, TS_MAX_NS, date_of_file, list_streams
from .storage import local_dataset, pending, ready
from .validate import check_batch
from .validated import file_key, footer, is_valid, remember

DEFAULT_CHUNK_ROWS = 1 << 20

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
    use_replay_cache: bool = True
    replayed_from: Path | None = None  # the replay entry the last iteration read, if any

    def fingerprint(self) -> str:
        """Hash of the selected files' names, sizes and Parquet footers (cheap, content-bound)."""
        h = hashlib.sha256(f"{self.symbols}|{self.start_ns}|{self.end_ns}|{self.kinds}".encode())
        for key in sorted(self.files):
            for f in self.files[key]:
                ready(f)
                h.update(str(f.relative_to(self.root)).encode())
                h.update(str(f.stat().st_size).encode())
                if (read := footer(f)) is not None:  # the footer's bytes, not parsed
                    h.update(read[1])
        return h.hexdigest()[:16]

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        """Chunks: dicts of EVENT_COLUMNS arrays (exact dtypes, C-contiguous, writeable; at most
        chunk_rows events, never empty). Constant columns are shared: never write to a chunk.
        A selection kept in the replay cache (`backtest data cache`) is read from there: the same
        chunks, without decoding or merging."""
        entry = self.replayed_from = replay.find(self) if self.use_replay_cache else None
        if entry is None:
            yield from self.parquet_chunks()
            return
        events = replay.chunks(entry, self.start_ns, self.end_ns, self.chunk_rows)
        yield from chunks.ahead(events, depth=2) if self.read_ahead else events

    def parquet_chunks(self) -> Iterator[dict[str, np.ndarray]]:
        """The chunks read from the Parquet files (decoded, checked and merged)."""
        order = [(k, s) for k in EVENT_KINDS for s in self.symbols if (k, s) in self.files and k in self.kinds]
        nstreams = max(1, len(order))
        # a merge step holds about a batch of each stream: larger batches, fewer steps, less
        # Python per event (the crash dataset, 40 streams: 12.1 -> 8.6 s, peak RSS 0.94 -> 1.03 GB)
        batch_rows = max(4096, self.chunk_rows // min(nstreams, 8))
        single = len(order) == 1
        # one stream: its decode runs ahead in a thread; several: the whole merge step does
        pool = (ThreadPoolExecutor(1, thread_name_prefix="cascade-read")
                if self.read_ahead and single else None)
        try:
            streams = [_Stream(k, self.symbols.index(s), self.files[(k, s)], self.start_ns,
                               self.end_ns, batch_rows, pool) for k, s in order]
            if single:
                yield from chunks.single(streams[0], self.chunk_rows, chunks.Constants())
            elif streams:
                steps = chunks.steps(streams)
                if self.read_ahead:
                    steps = chunks.ahead(steps, depth=2)
                yield from chunks.merged(steps, self.chunk_rows, self._rows_bound)
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
