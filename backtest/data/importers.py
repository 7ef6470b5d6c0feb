"""Import public exchange tick files (Binance, Bybit, Tardis CSV) into a dataset folder.

    import_files(["BTCUSDT-trades-2026-02-05.zip"], fmt="binance-trades", symbol="BTCUSDT",
                 out="data/btc", instruments="instruments.json")

Every input is parsed and checked completely before anything is written, so a bad line leaves the
dataset untouched. Rows are merged into the existing (kind, symbol, date) partitions without
duplicates and each touched date is rewritten atomically as ``part-0000.parquet``.
Formats and rules: data/README.md ("Importers").
"""
from __future__ import annotations

import gzip
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .importers_kinds import KIND_FORMATS, parse_kind_file
from .layout import KINDS, date_of_day, day_bounds_ns, partition_dir

# format -> (kind, accepted column layouts). A header line, when present, must name one layout;
# without a header the layout is chosen by the number of fields.
FORMATS: dict[str, tuple[str, tuple[tuple[str, ...], ...]]] = {
    "binance-trades": ("trades", (
        ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match"),  # spot
        ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker"),  # USDⓈ-M futures
    )),
    "binance-aggtrades": ("trades", (
        ("agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time",
         "is_buyer_maker", "is_best_match"),  # spot
        ("agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time",
         "is_buyer_maker"),  # USDⓈ-M futures
    )),
    "bybit-trades": ("trades", (
        ("timestamp", "symbol", "side", "size", "price", "tickDirection", "trdMatchID",
         "grossValue", "homeNotional", "foreignNotional"),
    )),
    "tardis-trades": ("trades", (
        ("exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount"),
    )),
    "tardis-quotes": ("quotes", (
        ("exchange", "symbol", "timestamp", "local_timestamp", "ask_amount", "ask_price",
         "bid_price", "bid_amount"),
    )),
    "binance-klines": KIND_FORMATS["binance-klines"],  # bars: importers_kinds.py
    "ohlcv": KIND_FORMATS["ohlcv"],
    "tardis-liquidations": KIND_FORMATS["tardis-liquidations"],
}

FIX_LINE = "correct or delete this line; if the download was cut short, fetch the file again"
Progress = Callable[[int, int, str], None]


@dataclass
class ImportResult:
    """What an import did."""

    kind: str
    symbol: str
    out: Path
    files: int
    rows_read: int
    rows_added: int  # new rows after de-duplication against the dataset
    dates: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    instruments_copied: bool = False

    def to_dict(self) -> dict:
        return {"kind": self.kind, "symbol": self.symbol, "out": str(self.out), "files": self.files,
                "rows_read": self.rows_read, "rows_added": self.rows_added, "dates": self.dates,
                "written": [str(p) for p in self.written],
                "instruments_copied": self.instruments_copied}


# ------------------------------------------------------------------------------------------------
# Reading and parsing one file

def _line_error(file, line: int | None, problem: str, *, column=None, fix=FIX_LINE) -> DataError:
    """A DataError pointing at `file:line` (line is 1-based and counts the header line)."""
    e = DataError(problem, file=f"{file}:{line}" if line is not None else file, column=column, fix=fix)
    e.file, e.row = str(file), line
    return e


def _read_bytes(path: Path) -> tuple[bytes, str]:
    """The CSV bytes of a .csv, .csv.gz or .zip (one CSV inside) and the name used in errors."""
    name = str(path)
    try:
        if path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as z:
                members = [m for m in z.namelist()
                           if not m.endswith("/") and not m.startswith("__MACOSX/")]
                if len(members) != 1:
                    raise DataError(f"a .zip must hold exactly one CSV file, found {len(members)}",
                                    file=path, fix="unzip it and import the CSV files")
                return z.read(members[0]), f"{path}!{members[0]}"
        if path.suffix.lower() == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read(), name
        return path.read_bytes(), name
    except (zipfile.BadZipFile, gzip.BadGzipFile, EOFError, OSError, zipfile.LargeZipFile) as e:
        if isinstance(e, FileNotFoundError):
            raise DataError("file not found", file=path, fix="check the path") from None
        raise DataError(f"cannot read archive ({e})", file=path,
                        fix="download the file again (it looks truncated or corrupt)") from None


def _lines(data: bytes, name: str):
    """All lines as a polars String column (empty lines kept as null, so numbering stays exact)."""
    import polars as pl

    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise _line_error(name, line, "not UTF-8 text", fix="import the CSV, not a binary file") from None
    if not data.strip():
        raise DataError("empty file", file=name, fix="download the file again")
    try:
        df = pl.read_csv(data, has_header=False, separator="\x1f", quote_char=None,
                         schema={"line": pl.String}, raise_if_empty=False)
    except pl.exceptions.PolarsError as e:
        raise DataError(f"cannot read as CSV ({str(e).strip().splitlines()[0]})", file=name,
                        fix="check that this is a CSV export of the exchange") from None
    s = df["line"].str.strip_chars_end("\r")
    # drop trailing empty lines only
    nonempty = (s.is_not_null() & (s.str.strip_chars() != "")).to_numpy()
    last = int(np.flatnonzero(nonempty)[-1]) + 1
    return s.slice(0, last)


def _parse_table(fmt: str, data: bytes, name: str):
    """Split lines into string columns named after the format's layout; returns (df, first_line)."""
    import polars as pl

    kind, layouts = FORMATS[fmt]
    lines = _lines(data, name)
    if lines[0] is None or not lines[0].strip():
        raise _line_error(name, 1, "empty line")
    first = [f.strip().lower() for f in lines[0].split(",")]
    header = None
    for lay in layouts:
        if first == [c.lower() for c in lay]:
            header = lay
    first_line = 1
    if header is not None:
        lines = lines.slice(1)
        first_line = 2
        layout = header
        if len(lines) == 0:
            raise DataError("no data lines after the header", file=name, fix="download the file again")
    else:
        nf = len(first)
        by_count = [lay for lay in layouts if len(lay) == nf]
        if not by_count:
            want = " or ".join(str(len(lay)) for lay in layouts)
            raise _line_error(name, 1, f"{nf} fields, expected {want} for {fmt} "
                              f"(header {','.join(layouts[0])})",
                              fix=f"check --format (is this a {fmt} file?)")
        layout = by_count[0]
    n = len(layout)
    empty = lines.is_null() | (lines.str.strip_chars() == "")
    nfields = (lines.str.count_matches(",", literal=True) + 1).fill_null(0)
    bad = (empty | (nfields != n)).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        if empty[i]:
            raise _line_error(name, first_line + i, "empty line")
        raise _line_error(name, first_line + i,
                          f"{int(nfields[i])} fields, expected {n} ({','.join(layout)})")
    df = (pl.DataFrame({"line": lines})
          .select(pl.col("line").str.split_exact(",", n - 1).alias("s"))
          .unnest("s"))
    df.columns = list(layout)
    return df.with_columns(pl.all().str.strip_chars()), first_line


def _first_bad(mask) -> int:
    idx = np.flatnonzero(np.asarray(mask))
    return int(idx[0]) if len(idx) else -1


def _number(df, col: str, dtype, name: str, first_line: int, *, positive: bool = False,
            label: str | None = None) -> np.ndarray:
    """Cast a string column to Int64/Float64; bad, empty (and with positive=True, <= 0) raise."""
    import polars as pl

    raw = df[col]
    v = raw.cast(dtype, strict=False)
    i = _first_bad(v.is_null().to_numpy())
    if i >= 0:
        what = "an integer" if dtype == pl.Int64 else "a number"
        problem = f"not {what}: {raw[i]!r}" if raw[i] else f"empty value, expected {what}"
        raise _line_error(name, first_line + i, problem, column=label or col)
    arr = v.to_numpy()
    if positive:
        with np.errstate(invalid="ignore"):
            i = _first_bad(~(np.isfinite(arr) & (arr > 0)))
        if i >= 0:
            raise _line_error(name, first_line + i, f"must be a finite number > 0, got {raw[i]!r}",
                              column=label or col)
    return arr


def _epoch_to_ns(ts: np.ndarray, name: str, first_line: int, col: str) -> np.ndarray:
    """Epoch integers in ms, µs or ns (by magnitude: < 1e14 ms, < 1e17 µs, else ns) -> ns."""
    i = _first_bad(ts <= 0)
    if i >= 0:
        raise _line_error(name, first_line + i, f"timestamp must be > 0, got {ts[i]}", column=col)
    mult = np.where(ts < 10**14, 1_000_000, np.where(ts < 10**17, 1_000, 1)).astype(np.int64)
    return ts * mult


def _buyer_maker_side(df, col: str, name: str, first_line: int) -> np.ndarray:
    low = df[col].str.to_lowercase()
    is_true = (low == "true").to_numpy()
    is_false = (low == "false").to_numpy()
    i = _first_bad(~(is_true | is_false))
    if i >= 0:
        raise _line_error(name, first_line + i, f"unknown side value {df[col][i]!r} (expected true/false)",
                          column=col)
    # buyer is maker -> the seller was the aggressor
    return np.where(is_true, -1, 1).astype(np.int8)


def _single_symbol(df, name: str) -> None:
    syms = df["symbol"].unique(maintain_order=True).to_list()
    if len(syms) > 1:
        raise DataError(f"file holds several symbols ({', '.join(map(str, syms[:5]))})", file=name,
                        column="symbol", fix="split the file by symbol and import each with its --symbol")


def _bybit_seconds_to_ns(df, name: str, first_line: int) -> np.ndarray:
    """'1738713600.1234' (decimal seconds) -> int64 ns, exactly (no float rounding)."""
    import polars as pl

    raw = df["timestamp"]
    ok = raw.str.contains(r"^\d+(\.\d{0,9})?$").fill_null(False).to_numpy()
    i = _first_bad(~ok)
    if i >= 0:
        raise _line_error(name, first_line + i, f"not a timestamp in seconds: {raw[i]!r}",
                          column="timestamp")
    parts = pl.DataFrame({"t": raw}).select(pl.col("t").str.split_exact(".", 1).alias("p")).unnest("p")
    sec = parts["field_0"].cast(pl.Int64).to_numpy()
    frac = parts["field_1"].fill_null("").str.pad_end(9, "0").cast(pl.Int64).to_numpy()
    ns = sec * 1_000_000_000 + frac
    i = _first_bad(ns <= 0)
    if i >= 0:
        raise _line_error(name, first_line + i, f"timestamp must be > 0, got {raw[i]!r}", column="timestamp")
    return ns


def _tick_rule(price: np.ndarray) -> np.ndarray:
    """Aggressor side by the tick rule: up-tick +1, down-tick -1, zero-tick repeats the last
    non-zero tick's sign; +1 before the first price change."""
    d = np.sign(np.diff(price, prepend=price[:1]))
    idx = np.where(d != 0, np.arange(len(d)), -1)
    np.maximum.accumulate(idx, out=idx)
    out = np.where(idx >= 0, d[np.maximum(idx, 0)], 1.0)
    return out.astype(np.int8)


def parse_file(path: Path, fmt: str) -> tuple[str, dict[str, np.ndarray]]:
    """Parse and check one exchange file; returns (kind, columns) in the kind's exact dtypes,
    stably sorted by ts_ns. Any bad line raises DataError with file, 1-based line and column."""
    import polars as pl

    if fmt not in FORMATS:
        raise ConfigError(f"unknown import format {fmt!r}; use one of {', '.join(FORMATS)}")
    path = Path(path)
    if fmt in KIND_FORMATS:  # bars and market liquidations
        return parse_kind_file(path, fmt)
    kind = FORMATS[fmt][0]
    data, name = _read_bytes(path)
    df, fl = _parse_table(fmt, data, name)
    if fmt in ("binance-trades", "binance-aggtrades"):
        ts_col, qty_col = ("time", "qty") if fmt == "binance-trades" else ("transact_time", "quantity")
        price = _number(df, "price", pl.Float64, name, fl, positive=True)
        qty = _number(df, qty_col, pl.Float64, name, fl, positive=True)
        ts = _epoch_to_ns(_number(df, ts_col, pl.Int64, name, fl), name, fl, ts_col)
        side = _buyer_maker_side(df, "is_buyer_maker", name, fl)
        out = {"ts_ns": ts, "price": price, "qty": qty, "side": side}
    elif fmt == "bybit-trades":
        _single_symbol(df, name)
        ts = _bybit_seconds_to_ns(df, name, fl)
        s = df["side"].str.to_lowercase().to_numpy()
        buy, sell = s == "buy", s == "sell"
        i = _first_bad(~(buy | sell))
        if i >= 0:
            raise _line_error(name, fl + i, f"unknown side {df['side'][i]!r} (expected Buy or Sell)",
                              column="side")
        price = _number(df, "price", pl.Float64, name, fl, positive=True)
        qty = _number(df, "size", pl.Float64, name, fl, positive=True)
        out = {"ts_ns": ts, "price": price, "qty": qty, "side": np.where(buy, 1, -1).astype(np.int8)}
    elif fmt == "tardis-trades":
        _single_symbol(df, name)
        ts = _number(df, "timestamp", pl.Int64, name, fl)
        i = _first_bad(ts <= 0)
        if i >= 0:
            raise _line_error(name, fl + i, f"timestamp must be > 0, got {ts[i]}", column="timestamp")
        price = _number(df, "price", pl.Float64, name, fl, positive=True)
        qty = _number(df, "amount", pl.Float64, name, fl, positive=True)
        s = df["side"].str.to_lowercase().to_numpy()
        buy, sell, unknown = s == "buy", s == "sell", s == "unknown"
        i = _first_bad(~(buy | sell | unknown))
        if i >= 0:
            raise _line_error(name, fl + i, f"unknown side {df['side'][i]!r} (expected buy, sell or unknown)",
                              column="side")
        side = np.where(buy, 1, -1).astype(np.int8)
        if unknown.any():
            side = np.where(unknown, _tick_rule(price), side).astype(np.int8)
        out = {"ts_ns": ts * 1000, "price": price, "qty": qty, "side": side}
    elif fmt == "tardis-quotes":
        _single_symbol(df, name)
        ts = _number(df, "timestamp", pl.Int64, name, fl)
        i = _first_bad(ts <= 0)
        if i >= 0:
            raise _line_error(name, fl + i, f"timestamp must be > 0, got {ts[i]}", column="timestamp")
        bid = _number(df, "bid_price", pl.Float64, name, fl, positive=True)
        ask = _number(df, "ask_price", pl.Float64, name, fl, positive=True)
        bq = _number(df, "bid_amount", pl.Float64, name, fl, positive=True)
        aq = _number(df, "ask_amount", pl.Float64, name, fl, positive=True)
        i = _first_bad(bid > ask)
        if i >= 0:
            raise _line_error(name, fl + i, f"crossed quote: bid {bid[i]} > ask {ask[i]}", column="bid_price")
        out = {"ts_ns": ts * 1000, "bid": bid, "ask": ask, "bid_qty": bq, "ask_qty": aq}
    else:  # pragma: no cover - FORMATS and this switch are kept in step
        raise AssertionError(fmt)
    order = np.argsort(out["ts_ns"], kind="stable")
    if np.any(order != np.arange(len(order))):
        out = {k: v[order] for k, v in out.items()}
    dtypes = {n: np.dtype(t.to_pandas_dtype()) for n, t in KINDS[kind][1].items()}
    return kind, {n: np.ascontiguousarray(out[n], dtype=dtypes[n]) for n in dtypes}


# ------------------------------------------------------------------------------------------------
# Instruments and merging into the dataset

def _check_symbol_name(symbol: str) -> None:
    if not symbol or any(c in symbol for c in '/\\=:*?"<>| ') or symbol.startswith("."):
        raise ConfigError(f"--symbol {symbol!r} cannot be a folder name; use e.g. BTCUSDT")


def _resolve_instruments(out: Path, symbol: str, instruments: Path | None):
    """Check the symbol against the dataset's instruments; returns instruments to copy in (or None)."""
    from .instruments import INSTRUMENT_FILES, load_instruments

    existing = next((out / n for n in INSTRUMENT_FILES if (out / n).is_file()), None)
    given = load_instruments(Path(instruments)) if instruments is not None else None
    if existing is not None:
        have = load_instruments(existing)
        if symbol not in have:
            raise DataError(f"symbol {symbol!r} is not in the dataset's instruments file", file=existing,
                            fix=f"add {symbol} to it (known: {', '.join(sorted(have))})")
        if given is not None and symbol in given and given[symbol] != have[symbol]:
            raise DataError(f"--instruments spec of {symbol} differs from the dataset's", file=existing,
                            fix="edit the dataset's instruments file, or drop --instruments")
        return None
    if given is None:
        raise DataError("the dataset has no instruments file", file=out,
                        fix="pass --instruments FILE (JSON/TOML, see data/README.md) to copy one in")
    if symbol not in given:
        raise DataError(f"symbol {symbol!r} is not in the instruments file", file=instruments,
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


def import_files(files: Sequence[Path | str], *, fmt: str, symbol: str, out: Path | str,
                 instruments: Path | str | None = None,
                 progress: Progress | None = None) -> ImportResult:
    """Import exchange files into the dataset at `out` (created if needed).

    Everything is parsed and checked first (DataError names file, line and column); only then are
    the touched date partitions rewritten, each atomically. Re-importing the same file is a no-op.
    """
    import polars as pl

    from ..atomic import write_parquet
    from .instruments import write_instruments
    from .layout import INSTRUMENT_FILES
    from .validate import check_batch
    from .writer import ROW_GROUP_ROWS, to_table

    if fmt not in FORMATS:
        raise ConfigError(f"unknown import format {fmt!r}; use one of {', '.join(FORMATS)}")
    _check_symbol_name(symbol)
    files = [Path(f) for f in files]
    if not files:
        raise ConfigError("no input files given")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError("--out is a file, not a dataset folder", file=out, fix="pass a folder")
    to_copy = _resolve_instruments(out, symbol, Path(instruments) if instruments else None)
    kind = FORMATS[fmt][0]
    names = list(KINDS[kind][1])
    total_steps = len(files) + 1

    # 1. parse every input (nothing written yet)
    parsed = []
    rows_read = 0
    for j, f in enumerate(files):
        if progress:
            progress(j, total_steps, f"parsing {f.name}")
        _, cols = parse_file(f, fmt)
        rows_read += len(cols["ts_ns"])
        parsed.append(pl.DataFrame({n: cols[n] for n in names}))
    if progress:
        progress(len(files), total_steps, "merging")

    # 2. merge with the existing partitions of every touched date, and check the result
    days = np.unique(np.concatenate([day_bounds_ns(p["ts_ns"].to_numpy()) for p in parsed]))
    plans = []
    added = 0
    for day in days:
        date = str(date_of_day(day))
        pdir = partition_dir(out, kind, symbol, date)
        old_files = sorted(pdir.glob("*.parquet")) if pdir.is_dir() else []
        old = _read_existing(kind, old_files)
        lo, hi = int(day) * 86_400 * 10**9, (int(day) + 1) * 86_400 * 10**9
        new = [p.filter((pl.col("ts_ns") >= lo) & (pl.col("ts_ns") < hi)) for p in parsed]
        merged = _merge(kind, ([old] if old is not None else []) + [p for p in new if len(p)])
        columns = {n: merged[n].to_numpy() for n in names}
        target = pdir / "part-0000.parquet"
        check_batch(kind, target, columns, 0, None, date=date)
        added += len(merged) - (len(old) if old is not None else 0)
        if old_files == [target] and merged.equals(old):
            continue  # nothing new for this date: leave the file alone
        plans.append((date, pdir, target, to_table(kind, columns), old_files))

    # 3. write: instruments first, then each date file, then drop superseded part files
    out.mkdir(parents=True, exist_ok=True)
    if to_copy is not None:
        write_instruments(out / INSTRUMENT_FILES[0], to_copy)
    written = []
    for date, pdir, target, table, old_files in plans:
        pdir.mkdir(parents=True, exist_ok=True)
        write_parquet(table, target, row_group_size=ROW_GROUP_ROWS, compression="zstd")
        for f in old_files:
            if f != target:
                f.unlink(missing_ok=True)
        written.append(target)
    if progress:
        progress(total_steps, total_steps, "done")
    return ImportResult(kind=kind, symbol=symbol, out=out, files=len(files), rows_read=rows_read,
                        rows_added=added, dates=[str(date_of_day(d)) for d in days], written=written,
                        instruments_copied=to_copy is not None)


def read_csv_bytes(path: Path) -> bytes:
    """The raw CSV bytes of an input file (.csv, .csv.gz, or a .zip holding one CSV)."""
    return _read_bytes(Path(path))[0]


__all__ = ["FORMATS", "ImportResult", "import_files", "parse_file", "read_csv_bytes"]
