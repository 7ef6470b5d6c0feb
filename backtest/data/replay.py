"""The replay cache: a dataset selection's merged event stream kept on disk, so that later runs
read their chunks instead of decoding Parquet and merging streams.

Decoding the Parquet files and merging 40 streams by time is most of a multi-stream run (the
100M-event crash dataset: 3.2 CPU-s of decode in zstd, 1.65 in LZ4, 2.1 of the merge's gather
and 0.8 of its sort, where the whole run from merged events takes 1.8 s; benchmarks/README.md). `backtest data cache DATASET` reads a selection (its
symbols in index order and the streams of its kinds) once through the ordinary reader, which checks
every row, and stores the merged EVENT_COLUMNS as one raw file per column (62 bytes an event, about
4-5x the Parquet files; a column with one value throughout, such as the quote columns of a
selection without quotes, is stored as that value). Every later run of that selection maps its chunks straight from those
files (from the page cache, not copied) in a background thread; a time range is a slice of them (the times are sorted), so runs of
any window share one entry. The chunks are those of the merge, row for row: results do not change.

An entry is never stale: its key hashes, for every selected file, the reader's file key
(validated.file_key: path or S3 object, size, mtime, Parquet footer and the row rules), the
symbols and the source of the modules that define the merged order and the event layout. Any
change gives another key, and a run without an entry reads Parquet as before. An entry is built in
a temporary folder and renamed into place whole; a damaged one (a column file of the wrong size)
is ignored. Entries live in $CASCADE_REPLAY_CACHE (default $CASCADE_CACHE_DIR/replay/);
`backtest cache clear` removes them.
"""
from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..cachedir import cache_dir
from ..core.schema import EVENT_COLUMNS
from ..errors import DataError

ROW_BYTES = sum(np.dtype(dt).itemsize for _, dt in EVENT_COLUMNS)
WINDOW_ROWS = 1 << 20  # rows mapped at once (62 MB of columns), whatever the chunk size
ENTRY = "entry.json"


def folder() -> Path:
    """$CASCADE_REPLAY_CACHE (e.g. a larger disk), else $CASCADE_CACHE_DIR/replay."""
    if own := os.environ.get("CASCADE_REPLAY_CACHE"):
        return Path(own)
    return cache_dir() / "replay"


@lru_cache(maxsize=1)
def _layout_hash() -> bytes:
    """The merged order, the event layout and the entries' format are defined by these modules'
    source."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256(repr(EVENT_COLUMNS).encode())
    for f in (here / "replay.py", here / "reader.py", here / "chunks.py", here / "layout.py",
              here.parent / "core" / "merge.py", here.parent / "core" / "schema.py"):
        h.update(f.read_bytes())
    return h.digest()


def key_of(stream) -> str | None:
    """The entry key of a selection (reader.EventStream), or None if a file cannot be keyed (then
    it is read from Parquet, where any problem gets its one-line error)."""
    from .storage import pending
    from .validated import file_key

    if pending(stream.root):  # an S3 dataset still downloading: its files are not local yet
        return None
    h = hashlib.sha256(_layout_hash())
    h.update(json.dumps(stream.symbols).encode())
    for kind, sym in sorted(stream.files):
        for f in stream.files[(kind, sym)]:
            k = file_key(f, kind)
            if k is None:
                return None
            h.update(f"{kind}|{sym}|{k}|".encode())
    return h.hexdigest()[:32]


class _ColumnWriter:
    """One column's file. A column that holds one value throughout (a kind's unused columns in a
    dataset without that kind: a trades-only selection's bid and ask, `sym` of one symbol) gets
    no file, only its value's bits in the entry's description; the file is started, with the
    rows so far, at its first other value."""

    def __init__(self, path: Path, dtype: str, stored: bool = False):
        self.path, self.dtype = path, np.dtype(dtype)
        self.bits_dtype = np.dtype(f"u{self.dtype.itemsize}")
        self.file = open(path, "wb") if stored else None
        self.rows = 0
        self.bits: int | None = None  # the value so far, bit for bit (NaN and -0.0 exactly)

    def write(self, col: np.ndarray) -> None:
        if self.file is None:
            bits = col.view(self.bits_dtype)
            if self.bits is None:
                self.bits = int(bits[0])
            if (bits == self.bits).all():
                self.rows += len(col)
                return
            self.file = open(self.path, "wb")
            for a in range(0, self.rows, 1 << 20):
                self.file.write(self._constant(min(1 << 20, self.rows - a)))
        self.file.write(memoryview(col).cast("B"))

    def _constant(self, n: int) -> memoryview:
        return memoryview(np.full(n, self.bits, self.bits_dtype)).cast("B")

    def close(self) -> int | None:
        """The constant's bits, or None if the column was written to its file."""
        if self.file is None and self.bits is None:  # no rows at all
            self.file = open(self.path, "wb")
        if self.file is not None:
            self.file.close()
            return None
        return self.bits


def _complete(entry: Path) -> dict | None:
    """The entry's description if every stored column file has its full size, else None."""
    try:
        meta = json.loads((entry / ENTRY).read_text())
        rows = int(meta["rows"])
        for name, dt in EVENT_COLUMNS:
            if name in meta["constant"]:
                continue
            if (entry / f"{name}.bin").stat().st_size != rows * np.dtype(dt).itemsize:
                return None
        return meta
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find(stream) -> Path | None:
    """The complete entry of this selection, if one was built (cheap when none was)."""
    root = folder()
    if not root.is_dir() or not any(root.iterdir()):
        return None
    key = key_of(stream)
    if key is None:
        return None
    entry = root / key
    return entry if entry.is_dir() and _complete(entry) is not None else None


def chunks(entry: Path, start_ns: int, end_ns: int, chunk_rows: int) -> Iterator[dict[str, np.ndarray]]:
    """The entry's events with start_ns <= ts < end_ns, in chunks of chunk_rows (the last short):
    the same chunks as the reader's merge of the same selection and range."""
    meta = _complete(entry)
    rows = meta["rows"]
    ts = np.memmap(entry / "ts_ns.bin", dtype="i8", mode="r", shape=(rows,)) if rows else np.empty(0, "i8")
    lo, hi = int(np.searchsorted(ts, start_ns, "left")), int(np.searchsorted(ts, end_ns, "left"))
    del ts
    # a constant column is one shared array, sliced (chunks are read-only, reader.EventStream)
    size = max(1, min(chunk_rows, hi - lo))
    constant = {name: np.full(size, meta["constant"][name], f"u{np.dtype(dt).itemsize}").view(dt)
                for name, dt in EVENT_COLUMNS if name in meta["constant"]}
    files = {name: open(entry / f"{name}.bin", "rb", buffering=0) for name, _ in EVENT_COLUMNS
             if name not in constant}
    dtypes = {name: np.dtype(dt) for name, dt in EVENT_COLUMNS}
    # chunks are views of windows of at least WINDOW_ROWS rows, mapped one at a time: small
    # chunks cost no mapping each, and a window is released with the last chunk that views it
    span = max(chunk_rows, WINDOW_ROWS)
    w0 = w1 = lo  # the mapped window's rows
    mapped: dict[str, np.ndarray] = {}
    try:
        for a in range(lo, hi, chunk_rows):
            n = min(chunk_rows, hi - a)
            for name, f in files.items():  # at every chunk: a mapped page past the end would crash
                if os.fstat(f.fileno()).st_size < (a + n) * dtypes[name].itemsize:
                    raise DataError("replay cache entry is shorter than its description", file=f.name,
                                    fix="run `backtest cache clear` (the dataset itself is unaffected)")
            if a + n > w1:
                w0, w1 = a, min(a + span, hi)
                mapped = {name: _column(f, a, w1 - a, dtypes[name]) for name, f in files.items()}
            yield {name: constant[name][:n] if name in constant else mapped[name][a - w0:a - w0 + n]
                   for name, _ in EVENT_COLUMNS}
    finally:
        for f in files.values():
            f.close()


# Linux's madvise(MADV_POPULATE_READ) (5.14+): map a range's pages now, without copy-on-write
_POPULATE_READ = 22 if sys.platform.startswith("linux") else None


def _column(f, row: int, n: int, dt: np.dtype) -> np.ndarray:
    """n values of a column file from `row` on, mapped from the page cache, not copied (a copy
    of the crash dataset's 6.2 GB took a core 1.6-2.5 s; mapping takes 0.13 s).

    The mapping is private and writeable, as a read chunk is (numba compiles the loop for
    writeable arrays; nothing writes to a chunk, and a write would change only this process's
    copy). Its pages are mapped here, in the read-ahead thread, so that the loop never waits on
    a page fault; the mapping is released with the chunk's last reference."""
    start = row * dt.itemsize
    if not hasattr(mmap, "MAP_PRIVATE"):  # Windows: read it
        col = np.empty(n, dt)
        f.seek(start)
        f.readinto(memoryview(col).cast("B"))
        return col
    base = start - start % mmap.ALLOCATIONGRANULARITY
    length = start + n * dt.itemsize - base
    mapped = mmap.mmap(f.fileno(), length, flags=mmap.MAP_PRIVATE,
                       prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=base)
    if _POPULATE_READ is not None:
        try:
            mapped.madvise(_POPULATE_READ)
        except OSError:  # an older kernel: the loop maps the pages as it reads them
            pass
    return np.frombuffer(mapped, dtype=dt, count=n, offset=start - base)


def build(stream, progress: Callable[[int, int], None] | None = None) -> tuple[Path, dict, bool]:
    """Store the merged events of a selection (its whole time range); returns (entry, description,
    built now). Reads the dataset through the ordinary reader, so its rows are checked as by a run."""
    from ..atomic import tmp_name

    key = key_of(stream)
    if key is None:
        raise DataError("cannot key the dataset's files for the replay cache (a footer is unreadable "
                        "or the files are still downloading)", file=stream.root,
                        fix="run `backtest data validate` on it")
    entry = folder() / key
    if (meta := _complete(entry)) is not None:
        return entry, meta, False
    bound = stream._rows_bound() or 0
    entry.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(entry.parent).free
    if bound * ROW_BYTES > free:
        raise DataError(f"the replay cache needs {bound * ROW_BYTES / 1e9:.1f} GB and {free / 1e9:.1f} GB "
                        "are free", file=entry.parent, fix="free disk space or set CASCADE_CACHE_DIR to a larger disk")
    tmp = tmp_name(entry)
    tmp.mkdir()
    try:
        # the times are always stored: a run's time range is found in them
        files = {name: _ColumnWriter(tmp / f"{name}.bin", dt, stored=name == "ts_ns") for name, dt in EVENT_COLUMNS}
        rows, first, last = 0, None, None
        constant = {}
        try:
            for chunk in stream.parquet_chunks():
                for name, col in chunk.items():
                    files[name].write(col)
                rows += len(chunk["ts_ns"])
                first = int(chunk["ts_ns"][0]) if first is None else first
                last = int(chunk["ts_ns"][-1])
                if progress is not None:
                    progress(rows, bound)
        finally:
            for name, f in files.items():
                if (bits := f.close()) is not None:
                    constant[name] = bits
        stored = sum(np.dtype(dt).itemsize for name, dt in EVENT_COLUMNS if name not in constant)
        meta = {"rows": rows, "bytes": rows * stored, "dataset": str(stream.root),
                "symbols": stream.symbols, "streams": [f"{k}/{s}" for k, s in sorted(stream.files)],
                "first_ts_ns": first, "last_ts_ns": last, "constant": constant}
        (tmp / ENTRY).write_text(json.dumps(meta, indent=1))
        if entry.exists() and _complete(entry) is None:
            shutil.rmtree(entry, ignore_errors=True)  # a damaged entry of this key
        try:
            os.rename(tmp, entry)
        except OSError:  # another process built the same entry meanwhile: keep theirs
            if _complete(entry) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _drop_older(entry, meta)
    return entry, meta, True


def _drop_older(entry: Path, meta: dict) -> None:
    """Remove the entries of the same dataset and selection that this one replaces (their files
    changed since), so a re-cached dataset does not keep its old copy, and damaged ones. Folders
    being built (temporary names, starting with a dot) are left alone."""
    for other in folder().iterdir():
        if other == entry or other.name.startswith("."):
            continue
        old = _complete(other)
        if old is None or all(old.get(k) == meta[k] for k in ("dataset", "symbols", "streams")):
            shutil.rmtree(other, ignore_errors=True)


def entries() -> list[tuple[Path, dict]]:
    root = folder()
    if not root.is_dir():
        return []
    return [(p, m) for p in sorted(root.iterdir()) if not p.name.startswith(".") and (m := _complete(p))]
