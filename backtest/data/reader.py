"""Stream a dataset as one time-ordered event stream, in chunks of numpy columns.

Each (kind, symbol) stream is read file by file and row group by row group (row groups outside the
time range are skipped from their statistics; only the needed columns are read). A k-way merge
emits every row whose time is below the smallest "last buffered time" of the streams that still
have data, so memory is bounded by the chunk size however long the dataset is.

Order of the merged stream (documented in data/README.md): ts_ns, then kind (TRADE < QUOTE < MARK
< FUNDING < BAR < MARKET_LIQUIDATION < BOOK), then symbol index, then row order within the file. Chunks are views of that one order,
so where the stream is cut never changes a result.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..core.schema import EVENT_COLUMNS, MAX_SYMBOLS
from ..errors import DataError
from .instruments import Instrument, load_instruments
from .layout import DATA_TS_MIN_NS, EVENT_KINDS, KINDS, TS_MAX_NS, date_of_file, list_streams
from .validate import check_batch

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

    def __init__(self, kind, sym_index, files, start_ns, end_ns, batch_rows):
        self.kind, self.sym, self.files = kind, sym_index, files
        self.start_ns, self.end_ns, self.batch_rows = start_ns, end_ns, batch_rows
        self.columns = list(KINDS[kind][1])
        self._it = self._batches()
        self.buf: dict[str, np.ndarray] | None = None
        self.exhausted = False
        self.last_ts = None  # last timestamp read (order is checked across batches and files)
        self.carry: dict = {}  # the last book row, so a snapshot split across batches is checked whole

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
            try:
                pf = pq.ParquetFile(path, page_checksum_verification=True)
                _check_schema(path, self.kind, pf.schema_arrow)
                groups = self._row_groups(path, pf)
                if not groups or groups[0] > 0:
                    self.carry["resync"] = True  # rows skipped unread: a book snapshot may resume
                if not groups:
                    continue
                row0 = 0
                for batch in pf.iter_batches(batch_size=self.batch_rows, row_groups=groups,
                                             columns=self.columns, use_threads=False):
                    cols = {n: batch.column(n).to_numpy(zero_copy_only=False) for n in self.columns}
                    ts = cols["ts_ns"]
                    # values, order and dates, the same checks as `backtest data validate`
                    self.last_ts = check_batch(self.kind, path, cols, row0, self.last_ts,
                                               date=date_of_file(path), carry=self.carry)
                    row0 += len(ts)
                    lo = np.searchsorted(ts, self.start_ns, "left")
                    hi = np.searchsorted(ts, self.end_ns, "left")
                    if hi > lo:
                        yield {n: a[lo:hi] for n, a in cols.items()}
            except (OSError, pa.ArrowException) as e:
                msg = " ".join(str(e).split())  # Arrow messages span lines
                raise DataError(f"cannot read Parquet file ({type(e).__name__}: {msg})", file=path,
                                fix="the file is truncated or corrupt; re-import or regenerate it") from None

    def fill(self) -> None:
        """Append the next batch to the buffer (or mark the stream exhausted)."""
        nxt = next(self._it, None)
        if nxt is None:
            self.exhausted = True
        elif self.buf is None or len(self.buf["ts_ns"]) == 0:
            self.buf = nxt
        else:
            self.buf = {n: np.concatenate((self.buf[n], nxt[n])) for n in self.columns}

    def take(self, upto_ns: int | None) -> dict[str, np.ndarray]:
        """Remove and return the buffered rows with ts < upto_ns (all rows if None)."""
        ts = self.buf["ts_ns"]
        cut = len(ts) if upto_ns is None else int(np.searchsorted(ts, upto_ns, "left"))
        out = {n: a[:cut] for n, a in self.buf.items()}
        self.buf = {n: a[cut:] for n, a in self.buf.items()}
        return out

    @property
    def buffered(self) -> int:
        return 0 if self.buf is None else len(self.buf["ts_ns"])


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

    def fingerprint(self) -> str:
        """Hash of the selected files' names, sizes and Parquet footers (cheap, content-bound)."""
        h = hashlib.sha256(f"{self.symbols}|{self.start_ns}|{self.end_ns}|{self.kinds}".encode())
        for key in sorted(self.files):
            for f in self.files[key]:
                h.update(str(f.relative_to(self.root)).encode())
                h.update(str(f.stat().st_size).encode())
                try:
                    h.update(pq.ParquetFile(f).metadata.to_dict().__repr__().encode())
                except (OSError, pa.ArrowException):
                    pass
        return h.hexdigest()[:16]

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        """Chunks: dicts of EVENT_COLUMNS arrays (exact dtypes, C-contiguous, writeable)."""
        order = [(k, s) for k in EVENT_KINDS for s in self.symbols if (k, s) in self.files and k in self.kinds]
        nstreams = max(1, len(order))
        batch_rows = max(4096, self.chunk_rows // nstreams)
        streams = [_Stream(k, self.symbols.index(s), self.files[(k, s)], self.start_ns, self.end_ns,
                           batch_rows) for k, s in order]
        pending: list[dict[str, np.ndarray]] = []
        pending_rows = 0
        while True:
            for st in streams:
                if st.buffered == 0 and not st.exhausted:
                    st.fill()
            live = [st for st in streams if st.buffered]
            if not live:
                break
            open_ = [st for st in live if not st.exhausted]
            upto = min(int(st.buf["ts_ns"][-1]) for st in open_) if open_ else None
            pieces = [(st, st.take(upto)) for st in live]
            pieces = [(st, p) for st, p in pieces if len(p["ts_ns"])]
            if not pieces:
                # every buffered row is at the watermark: read more of the streams holding it
                for st in open_:
                    if int(st.buf["ts_ns"][-1]) == upto:
                        st.fill()
                continue
            merged = _merge(pieces)
            pending.append(merged)
            pending_rows += len(merged["ts_ns"])
            while pending_rows >= self.chunk_rows:
                chunk, pending, pending_rows = _split(pending, self.chunk_rows)
                yield chunk
        if pending_rows:
            yield _concat(pending)


def _event_columns(kind: str, sym: int, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    n = len(cols["ts_ns"])
    out = {"ts_ns": cols["ts_ns"], "sym": np.full(n, sym, np.int32),
           "kind": np.full(n, int(KINDS[kind][0]), np.int8)}
    for src, dst in _COLUMN_MAP[kind].items():
        out[dst] = cols[src]
    for name, dt in EVENT_COLUMNS:
        if name not in out:
            out[name] = np.zeros(n, dt) if name == "side" else np.full(n, np.nan, dt)
    return out


def _merge(pieces) -> dict[str, np.ndarray]:
    """Pieces arrive in (kind, symbol) order; a stable sort by time keeps that order for ties."""
    cols = [_event_columns(st.kind, st.sym, p) for st, p in pieces]
    if len(cols) == 1:
        merged = cols[0]
    else:
        merged = {n: np.concatenate([c[n] for c in cols]) for n, _ in EVENT_COLUMNS}
        perm = np.argsort(merged["ts_ns"], kind="stable")
        merged = {n: a[perm] for n, a in merged.items()}
    # exact dtypes, C order and writeable: one compiled signature for every chunk
    return {n: np.require(merged[n], dtype=dt, requirements="CW") for n, dt in EVENT_COLUMNS}


def _concat(parts):
    if len(parts) == 1:
        return parts[0]
    return {n: np.concatenate([p[n] for p in parts]) for n, _ in EVENT_COLUMNS}


def _split(parts, rows):
    whole = _concat(parts)
    head = {n: np.require(a[:rows], requirements="CW") for n, a in whole.items()}
    tail = {n: a[rows:] for n, a in whole.items()}
    left = len(tail["ts_ns"])
    return head, ([tail] if left else []), left


def open_dataset(root: Path, *, symbols: list[str] | None = None, start_ns: int | None = None,
                 end_ns: int | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 kinds: tuple[str, ...] | None = None) -> EventStream:
    """Open a dataset folder for streaming; checks symbols against the instruments file."""
    from .storage import local_dataset

    root = local_dataset(root)  # an s3:// URI reads through the local cache
    if not root.is_dir():
        raise DataError("dataset folder not found", file=root,
                        fix="create one with `backtest data generate` or `backtest data import`")
    from .commit import recover

    recover(root)  # finish a committed import (or drop a dead one) when no import is running
    instruments = load_instruments(root)
    streams = list_streams(root)  # honours a commit still being applied
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
    if len(chosen) > MAX_SYMBOLS:
        raise DataError(f"{len(chosen)} symbols selected; at most {MAX_SYMBOLS} per run", file=root)
    kinds = tuple(k for k in (kinds or EVENT_KINDS) if k in EVENT_KINDS)  # data-only kinds never replay
    files = {k: v for k, v in streams.items() if k[1] in chosen and k[0] in kinds}
    lo = np.iinfo(np.int64).min if start_ns is None else int(start_ns)
    hi = np.iinfo(np.int64).max if end_ns is None else int(end_ns)
    if chunk_rows < 1:
        raise DataError("chunk_rows must be positive")
    return EventStream(root=root, symbols=chosen, instruments={s: instruments[s] for s in chosen},
                       start_ns=lo, end_ns=hi, chunk_rows=int(chunk_rows), kinds=kinds, files=files)
