"""Import public exchange files (Binance, Bybit, Tardis CSV) into a dataset folder.

    import_files(["BTCUSDT-trades-2026-02.zip"], fmt="binance-trades", symbol="BTCUSDT",
                 out="data/btc", venue="binance-usdm")

Streaming: each input is parsed in bounded batches straight from the .csv/.csv.gz/.zip
(backtest.data.csvsource) and written as it comes, one Parquet part per (kind, UTC date, input),
into a staging folder. Dates that need it (existing rows, several inputs, unsorted input) are then
merged one date at a time, so memory is bounded by the largest day, not the input.
All or nothing: the whole import is committed at once (backtest.data.commit); a bad line or a
kill leaves the dataset as it was. Formats: backtest.data.formats; rules: data/README.md.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, shown
from .formats import FORMATS, Batch, choose_layout, line_error
from .layout import KINDS, date_of_day, partition_dir

Progress = Callable[[int, int, str], None]
CARRY = ("funding",)  # parser state carried from one input file to the next (pending funding)
_DAY_NS = 86_400 * 10**9


@dataclass
class ImportResult:
    """What an import did."""

    kind: str  # the kinds written, joined by '+' (e.g. 'marks+funding')
    symbol: str
    out: Path
    files: int
    rows_read: int
    rows_added: int  # new rows after de-duplication against the dataset
    dates: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    instruments_copied: bool = False
    rows: dict[str, int] = field(default_factory=dict)  # rows read per kind

    def to_dict(self) -> dict:
        return {"kind": self.kind, "symbol": self.symbol, "out": str(self.out), "files": self.files,
                "rows_read": self.rows_read, "rows_added": self.rows_added, "dates": self.dates,
                "written": [str(p) for p in self.written], "rows": dict(self.rows),
                "instruments_copied": self.instruments_copied}


# ------------------------------------------------------------------------------------------------
# Parsing one file in batches

def iter_file(path: Path, fmt: str, state: dict | None = None, *,
              strict: bool = False) -> Iterator[dict[str, dict[str, np.ndarray]]]:
    """Parse one input in bounded batches, in file order: yields {kind: columns} per batch.
    Any bad line raises DataError with file, 1-based line (header counted) and column."""
    import polars as pl
    import pyarrow as pa

    from .csvsource import ConversionError, Source

    _ARROW = {"i8": pa.int64(), "f8": pa.float64(), "b1": pa.bool_()}
    if fmt not in FORMATS:
        raise ConfigError(f"unknown import format {shown(fmt)}; use one of {', '.join(FORMATS)}")
    spec = FORMATS[fmt]
    state = {} if state is None else state
    if Path(path).suffix.lower() == ".parquet":
        if not spec.parquet:
            raise DataError(f"--format {fmt} reads CSV files (.csv, .csv.gz, .zip), not Parquet", file=path,
                            fix="pass the exchange's CSV file, or --format ohlcv for Parquet candles")
        yield from _parquet_batches(Path(path), fmt, state)
        return
    with Source(Path(path)) as src:
        first = src.first_line()
        if not first.strip():
            raise line_error(src.name, 1, "empty file or empty first line", fix="download the file again")
        layout, skip = choose_layout(fmt, first, src.name)

        def bad_row(row):  # pyarrow cannot carry our exception: keep it, Source raises it
            bad_row.error = line_error(src.name, row.number if row.number >= 0 else None,
                                       f"{row.actual_columns} fields, expected {len(layout)} "
                                       f"({','.join(layout)})")
            return "error"

        fast = not strict and spec.types is not None
        include = None
        if fast and spec.columns:
            include = tuple(c for c in layout if c == layout[0] or c in spec.columns)
        types = {c: _ARROW[t] for c, t in spec.types.items() if c != layout[0]} if fast else None
        line = skip + 1  # line number of the next row
        empty_at = None  # first empty line seen (allowed only at the end of the file)
        rows = 0
        batches = src.batches(layout, skip, bad_row, include=include, types=types)
        while True:
            try:
                rb = next(batches, None)
            except ConversionError:  # a bad value in a typed column: re-read as text to say where
                for _ in iter_file(path, fmt, {}, strict=True):
                    pass
                raise
            if rb is None:
                break
            n = rb.num_rows
            if not n:
                continue
            df = pl.from_arrow(rb)
            if empty_at is not None:
                raise line_error(src.name, empty_at, "empty line")
            emp = (df[layout[0]] == "").to_numpy()
            if emp.any():
                emp &= np.all([((df[c] == "") if df[c].dtype == pl.String else df[c].is_null()).to_numpy()
                               for c in df.columns], axis=0)
                if emp.any():
                    i = int(np.flatnonzero(emp)[0])
                    if not emp[i:].all():
                        raise line_error(src.name, line + i, "empty line")
                    empty_at = line + i
                    df = df.slice(0, i)
            if df.height:
                rows += df.height
                yield spec.parse(Batch(df, src.name, line, state))
            line += n
        if rows == 0:
            raise DataError("no data lines" + (" after the header" if skip else ""), file=src.name,
                            fix="download the file again")
        if spec.finish is not None:
            yield spec.finish(state)


PARQUET_ROWS = 64 * 1024  # rows per batch read from a Parquet input


def _parquet_batches(path: Path, fmt: str, state: dict) -> Iterator[dict[str, dict[str, np.ndarray]]]:
    """A Parquet input read in batches of PARQUET_ROWS rows; columns are matched to a layout by
    name (case-insensitive, longest layout first) and handed to the parser as text, except
    datetimes. Errors name the 1-based row as file:row."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    spec = FORMATS[fmt]

    def unreadable(e):
        return DataError(f"cannot read Parquet file ({' '.join(str(e).split())})", file=path,
                         fix="check that this is a Parquet file, or download it again")

    try:
        pf = pq.ParquetFile(path)
        names = {n.strip().lower(): n for n in pf.schema_arrow.names}
        layout = max((lay for lay in spec.layouts if set(lay) <= set(names)), key=len, default=None)
        if layout is None:
            missing = [c for c in spec.layouts[0] if c not in names]
            raise DataError(f"missing column(s) {', '.join(missing)} (a {fmt} file needs "
                            f"{' or '.join(','.join(lay) for lay in spec.layouts)})", file=path,
                            column=missing[0], fix="rename the columns to these names")
        row = 1
        for rb in pf.iter_batches(batch_size=PARQUET_ROWS, columns=[names[c] for c in layout]):
            df = pl.from_arrow(rb).rename({names[c]: c for c in layout})
            df = df.with_columns(pl.col(c).cast(pl.String).fill_null("") for c in layout
                                 if not df[c].dtype.is_temporal())
            if df.height:
                yield spec.parse(Batch(df, str(path), row, state))
            row += df.height
    except (OSError, pa.ArrowException) as e:
        raise unreadable(e) from None
    if row == 1:
        raise DataError("no rows", file=path, fix="export the file again")


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {n: np.concatenate([p[n] for p in parts]) for n in parts[0]}


def _exact(kind: str, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    dtypes = {n: np.dtype(t.to_pandas_dtype()) for n, t in KINDS[kind][1].items()}
    return {n: np.ascontiguousarray(cols[n], dtype=dtypes[n]) for n in dtypes}


def parse_file_kinds(path: Path, fmt: str) -> dict[str, dict[str, np.ndarray]]:
    """All rows of one file per kind, in the kinds' exact dtypes, stably sorted by ts_ns."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown import format {shown(fmt)}; use one of {', '.join(FORMATS)}")
    got: dict[str, list] = {k: [] for k in FORMATS[fmt].kinds}
    for parsed in iter_file(path, fmt):
        for kind, cols in parsed.items():
            got[kind].append(cols)
    out = {}
    for kind, parts in got.items():
        cols = _exact(kind, _concat(parts))
        order = np.argsort(cols["ts_ns"], kind="stable")
        out[kind] = {n: a[order] for n, a in cols.items()}
    return out


def parse_file(path: Path, fmt: str) -> tuple[str, dict[str, np.ndarray]]:
    """Parse and check one file; returns (kind, columns) of the format's first kind."""
    kind = FORMATS[fmt].kinds[0] if fmt in FORMATS else None
    cols = parse_file_kinds(path, fmt)
    return kind, cols[kind]


# ------------------------------------------------------------------------------------------------
# Writing batches as they come: one part file per (kind, date, input)

class _Part:
    def __init__(self, path: Path, kind: str, src: int):
        import pyarrow.parquet as pq

        from .layout import schema_of
        from .writer import COMPRESSION

        self.path, self.kind, self.src = path, kind, src
        path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = pq.ParquetWriter(path, schema_of(kind), compression=COMPRESSION,
                                       write_page_checksum=True)
        self.buf: list[dict[str, np.ndarray]] = []
        self.buffered = self.rows = 0
        self.last_ts: int | None = None
        self.sorted = True
        self.closed = False

    def add(self, cols: dict[str, np.ndarray]) -> None:
        from .writer import ROW_GROUP_ROWS

        ts = cols["ts_ns"]
        if (self.last_ts is not None and ts[0] < self.last_ts) or np.any(np.diff(ts) < 0):
            self.sorted = False
        self.last_ts = int(ts[-1])
        self.buf.append(cols)
        self.buffered += len(ts)
        self.rows += len(ts)
        if self.buffered >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        from .writer import to_table

        if self.buf:
            self.writer.write_table(to_table(self.kind, _concat(self.buf)))
            self.buf, self.buffered = [], 0

    def close(self) -> None:
        if not self.closed:
            self.flush()
            self.writer.close()
            self.closed = True


class _Sink:
    """Receives parsed batches of one import and spills them to part files by (kind, date)."""

    def __init__(self, stage, symbol: str, fills: str | None = None):
        self.stage, self.symbol, self.fills = stage, symbol, fills
        self.parts: dict[tuple[str, int], list[_Part]] = {}  # (kind, day) -> parts in write order
        self.rows: dict[str, int] = {}

    def add(self, src: int, name: str, kind: str, cols: dict[str, np.ndarray]) -> None:
        from .validate import check_values

        cols = _exact(kind, cols)
        n = len(cols["ts_ns"])
        if not n:
            return
        if not self.fills:  # a fill's other columns are NaN placeholders (its parser checked the rest)
            check_values(kind, name, cols)
        self.rows[kind] = self.rows.get(kind, 0) + n
        days = np.floor_divide(cols["ts_ns"], _DAY_NS)
        lo = int(days.min())
        for (k, day), parts in self.parts.items():  # sorted input: earlier days are done
            if k == kind and day < lo and not parts[-1].closed:
                parts[-1].close()
        uniq = np.unique(days)
        for day in uniq:
            piece = cols if len(uniq) == 1 else {c: a[days == day] for c, a in cols.items()}
            parts = self.parts.setdefault((kind, int(day)), [])
            if not parts or parts[-1].closed or parts[-1].src != src:
                if parts and not parts[-1].closed:
                    parts[-1].close()
                path = self.stage.dir / "spill" / kind / f"{int(day)}-{len(parts):04d}.parquet"
                parts.append(_Part(path, kind, src))
            parts[-1].add(piece)

    def close(self) -> None:
        for parts in self.parts.values():
            for p in parts:
                p.close()
# ------------------------------------------------------------------------------------------------
# Instruments and merging into the dataset

def _check_symbol_name(symbol: str) -> None:
    if not symbol or any(c in symbol for c in '/\\=:*?"<>| ') or symbol.startswith("."):
        raise ConfigError(f"--symbol {shown(symbol)} cannot be a folder name; use e.g. BTCUSDT")


def _resolve_instruments(out: Path, symbol: str, instruments: Path | None, venue: str | None):
    """Check the symbol against the dataset's instruments; returns the instruments file to write
    (the given file, the dataset's with the symbol added, or None to leave it alone)."""
    from .instruments import INSTRUMENT_FILES, load_instruments

    existing = next((out / n for n in INSTRUMENT_FILES if (out / n).is_file()), None)
    given = load_instruments(Path(instruments)) if instruments is not None else None
    source = instruments
    if venue is not None and (given is None or symbol not in given):
        from .catalogue import catalogue_instrument

        given = {**(given or {}), symbol: catalogue_instrument(venue, symbol)}
        source = f"the {venue} catalogue"
    if existing is not None:
        have = load_instruments(existing)
        if symbol not in have:
            if given is not None and symbol in given:
                return {**have, symbol: given[symbol]}
            raise DataError(f"symbol {shown(symbol)} is not in the dataset's instruments file", file=existing,
                            fix=f"add {symbol} to it, or pass --venue to take it from the bundled catalogue "
                                f"(known: {', '.join(sorted(have))})")
        if given is not None and symbol in given and given[symbol] != have[symbol]:
            raise DataError(f"the spec of {symbol} in {source} differs from the dataset's", file=existing,
                            fix="edit the dataset's instruments file, or drop --instruments/--venue")
        return None
    if given is None:
        raise DataError("the dataset has no instruments file", file=out,
                        fix="pass --venue (bundled catalogue) or --instruments FILE (see data/README.md)")
    if symbol not in given:
        raise DataError(f"symbol {shown(symbol)} is not in the instruments file", file=instruments,
                        fix=f"add {symbol} to it (known: {', '.join(sorted(given))})")
    return given


def _read_existing(kind: str, files: list[Path]):
    """Existing rows of one date partition (all part files, in name order) as a polars frame."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .validate import FIX_REWRITE, check_schema

    names = list(KINDS[kind][1])
    frames = []
    for f in files:
        try:
            t = pq.read_table(f)
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"unreadable Parquet file ({str(e).strip().splitlines()[0] if str(e).strip() else e!r})",
                            file=f, fix=FIX_REWRITE + ", or delete it before importing") from None
        check_schema(kind, f, t.schema)
        frames.append(pl.from_arrow(t.select(names)))
    return pl.concat(frames, how="vertical") if frames else None


def _merge(kind: str, sources: list) -> "object":
    """Union of row multisets: a row that occurs k times in one source and m in another is kept
    max(k, m) times (so re-imports add nothing but identical trades within a file are kept).
    First occurrences keep their order; the result is stably sorted by ts_ns."""
    import polars as pl

    names = list(KINDS[kind][1])
    numbered = [s.with_columns(pl.int_range(pl.len()).over(names).alias("__n")) for s in sources]
    merged = pl.concat(numbered, how="vertical").unique(subset=[*names, "__n"], keep="first",
                                                        maintain_order=True)
    return merged.sort("ts_ns", maintain_order=True).drop("__n")



def _fill(column: str, kind: str, parts, old_files, target: Path, staged: Path, date: str) -> bool:
    """Fill `column` of the existing rows of one date from the imported rows with the same ts_ns
    (the last one wins); rows without a match are ignored. Returns False when nothing changed."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..atomic import write_parquet
    from .validate import check_batch
    from .writer import COMPRESSION, ROW_GROUP_ROWS, to_table

    old = _read_existing(kind, old_files)
    if old is None:
        raise DataError(f"no {kind} on {date} to fill {column} into", file=parts[0].path.name,
                        fix="import the mark prices first (e.g. --format binance-mark-klines)")
    new = (pl.from_arrow(pa.concat_tables([pq.read_table(p.path) for p in parts]))
           .select("ts_ns", pl.col(column).alias("__fill")).unique("ts_ns", keep="last"))
    merged = (old.join(new, on="ts_ns", how="left", maintain_order="left")
              .with_columns(pl.coalesce("__fill", column).alias(column)).drop("__fill"))
    if merged.equals(old):
        return False
    columns = {n: merged[n].to_numpy() for n in KINDS[kind][1]}
    check_batch(kind, target, columns, 0, None, date=date)
    write_parquet(to_table(kind, columns), staged, row_group_size=ROW_GROUP_ROWS,
                  compression=COMPRESSION)
    return True


def _finalize(sink: _Sink, out: Path, stage, symbol: str):
    """Per (kind, date): the staged file that replaces the date partition, merged with the
    existing rows where needed. Returns (moves, deletes, written, rows added, dates)."""
    import os

    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..atomic import write_parquet
    from .validate import check_batch
    from .writer import COMPRESSION, ROW_GROUP_ROWS, to_table

    moves, deletes, written, dates = [], [], [], set()
    added = 0
    order = list(KINDS)
    for kind, day in sorted(sink.parts, key=lambda k: (order.index(k[0]), k[1])):
        parts = sink.parts[(kind, day)]
        date = str(date_of_day(day))
        dates.add(date)
        pdir = partition_dir(out, kind, symbol, date)
        old_files = sorted(pdir.glob("*.parquet")) if pdir.is_dir() else []
        target = pdir / "part-0000.parquet"
        rel = target.relative_to(out).as_posix()
        staged = stage.path(rel)
        if sink.fills:
            if not _fill(sink.fills, kind, parts, old_files, target, staged, date):
                continue
        elif len(parts) == 1 and parts[0].sorted and not old_files:
            os.replace(parts[0].path, staged)  # the common case: streamed straight through
            added += parts[0].rows
        else:  # existing rows, several inputs or unsorted input: merge this one date in memory
            names = list(KINDS[kind][1])
            old = _read_existing(kind, old_files)
            by_src: dict[int, list] = {}
            for p in parts:
                by_src.setdefault(p.src, []).append(pq.read_table(p.path))
            news = [pl.from_arrow(pa.concat_tables(t)).sort("ts_ns", maintain_order=True)
                    for t in by_src.values()]
            merged = _merge(kind, ([old] if old is not None else []) + news)
            columns = {n: merged[n].to_numpy() for n in names}
            check_batch(kind, target, columns, 0, None, date=date)
            added += len(merged) - (len(old) if old is not None else 0)
            if old_files == [target] and merged.equals(old):
                continue  # nothing new for this date: leave the file alone
            write_parquet(to_table(kind, columns), staged, row_group_size=ROW_GROUP_ROWS,
                          compression=COMPRESSION)
        moves.append(rel)
        deletes += [f.relative_to(out).as_posix() for f in old_files if f != target]
        written.append(target)
    return moves, deletes, written, added, sorted(dates)


def import_files(files: Sequence[Path | str], *, fmt: str, symbol: str, out: Path | str,
                 instruments: Path | str | None = None, venue: str | None = None,
                 progress: Progress | None = None, options: dict | None = None) -> ImportResult:
    """Import exchange files into the dataset at `out` (created if needed).

    `options` are format options seeded into each file's parser state, only those the format
    lists in `Format.options`: `book_levels` (levels kept per side, default 25) and
    `book_interval_ns` (snapshot interval of tardis-incremental-book-l2, default 1 s).

    Streams every input into a staging folder, merges the touched dates, then commits the whole
    import at once. A bad line (DataError naming file, line and column), an error or a kill
    leaves the dataset as it was. Re-importing the same file is a no-op.
    """
    import shutil

    from . import commit
    from .instruments import write_instruments
    from .layout import INSTRUMENT_FILES

    if fmt not in FORMATS:
        raise ConfigError(f"unknown import format {shown(fmt)}; use one of {', '.join(FORMATS)}")
    _check_symbol_name(symbol)
    opts = _check_options(fmt, options or {})
    files = [Path(f) for f in files]
    if not files:
        raise ConfigError("no input files given")
    for f in files:
        if not f.is_file():
            raise DataError("file not found", file=f, fix="check the path")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError("--out is a file, not a dataset folder", file=out, fix="pass a folder")
    created = not out.exists()
    try:
        with commit.lock(out):
            commit.recover_locked(out)
            to_write = _resolve_instruments(out, symbol, Path(instruments) if instruments else None, venue)
            stage = commit.Staging(out)
            try:
                sink = _Sink(stage, symbol, FORMATS[fmt].fills)
                carry: dict = {}
                for j, f in enumerate(files):
                    if progress:
                        progress(j, len(files) + 1, f"reading {f.name}")
                    state = {**opts, **{k: carry[k] for k in CARRY if k in carry}}
                    for parsed in iter_file(f, fmt, state):
                        for kind, cols in parsed.items():
                            sink.add(j, str(f), kind, cols)
                    carry.update((k, state[k]) for k in CARRY if k in state)
                sink.close()
                if progress:
                    progress(len(files), len(files) + 1, "merging")
                if not sink.parts:
                    raise DataError("no rows to import", file=files[0],
                                    fix="check --format (a derivative ticker needs marks or a passed funding time)")
                moves, deletes, written, added, dates = _finalize(sink, out, stage, symbol)
                if to_write is not None:  # moved first: readers find the spec before the rows
                    write_instruments(stage.path(INSTRUMENT_FILES[0]), to_write)
                    moves.insert(0, INSTRUMENT_FILES[0])
                    deletes += [n for n in INSTRUMENT_FILES[1:] if (out / n).exists()]
                if moves:
                    stage.commit(moves, deletes)
                else:
                    stage.abort()
            except BaseException:
                stage.abort()
                raise
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    if progress:
        progress(len(files) + 1, len(files) + 1, "done")
    return ImportResult(kind="+".join(k for k in KINDS if k in sink.rows), symbol=symbol, out=out,
                        files=len(files), rows_read=sum(sink.rows.values()), rows_added=added,
                        dates=dates, written=written, instruments_copied=to_write is not None,
                        rows=dict(sink.rows))


def _check_options(fmt: str, options: dict) -> dict:
    """Format options, checked: unknown to the format or out of range -> ConfigError."""
    from ..core.schema import MAX_BOOK_LEVELS

    flag = {"book_levels": "--levels", "book_interval_ns": "--book-interval"}
    allowed = FORMATS[fmt].options
    for k in options:
        if k not in allowed:
            raise ConfigError(f"--format {fmt} takes no {flag.get(k, k)} option"
                              + (f" (it takes {', '.join(flag.get(a, a) for a in allowed)})" if allowed else ""))
    lv = options.get("book_levels")
    if lv is not None and not (isinstance(lv, int) and 1 <= lv <= MAX_BOOK_LEVELS):
        raise ConfigError(f"--levels must be an integer in 1 .. {MAX_BOOK_LEVELS}, got {shown(lv)}")
    iv = options.get("book_interval_ns")
    if iv is not None and not (isinstance(iv, int) and iv >= 1_000_000):
        raise ConfigError(f"--book-interval must be at least 1 ms, got {shown(iv)} ns")
    return dict(options)


def read_csv_bytes(path: Path) -> bytes:
    """The raw CSV bytes of an input file (.csv, .csv.gz, or a .zip holding one CSV); small files only."""
    from .csvsource import Source

    with Source(Path(path)) as src:
        return src.stream.read()


__all__ = ["FORMATS", "ImportResult", "import_files", "iter_file", "parse_file", "parse_file_kinds",
           "read_csv_bytes"]
