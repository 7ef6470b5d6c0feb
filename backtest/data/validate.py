"""Dataset validation: find the first bad file, column and row, and say how to fix it.

Two layers:

* ``check_schema`` / ``check_arrow_batch`` / ``check_batch`` raise a ``DataError`` for the first
  problem in one file or one batch of rows. They are cheap (numpy, vectorised) and stateless apart
  from the ``prev_ts`` carried between batches, so the streaming reader and the importers reuse
  them.
* ``validate_dataset(root)`` walks a whole dataset folder, streaming each Parquet file by row
  groups (``pyarrow.parquet.ParquetFile.iter_batches``), so memory stays bounded on 100M-row data.

Row numbers in Parquet errors are 0-based row indices within the file (``row_offset`` + index in
the batch). The rules are listed in data/README.md ("Validation rules").
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DataError, shown
from .instruments import instrument_warnings, load_instruments
from .layout import DATA_TS_MIN_NS, KINDS, TS_MAX_NS, date_of_file, list_streams

BATCH_ROWS = 256 * 1024
_DAY_NS = 86_400 * 1_000_000_000

FIX_REWRITE = "re-import or regenerate this file"
FIX_SORT = "sort the stream by ts_ns (re-import or regenerate it); files are read in date order"

# column -> (rule, fix) per kind; rules: "pos" finite > 0, "nonneg" finite >= 0, "finite",
# "pos_or_nan" NaN or finite > 0, "side" in {-1, +1}
_RULES: dict[str, dict[str, str]] = {
    "trades": {"price": "pos", "qty": "pos", "side": "side"},
    "quotes": {"bid": "pos", "ask": "pos", "bid_qty": "nonneg", "ask_qty": "nonneg"},
    "marks": {"mark_price": "pos", "index_price": "pos_or_nan"},
    "funding": {"rate": "finite"},
    "bars": {"open": "pos", "high": "pos", "low": "pos", "close": "pos", "volume": "nonneg"},
    "liquidations": {"price": "pos", "qty": "pos", "side": "side"},
    "premium": {"open": "finite", "high": "finite", "low": "finite", "close": "finite"},  # may be < 0
    "open_interest": {"open_interest": "nonneg"},
}
_RULE_TEXT = {
    "pos": "must be a finite number > 0",
    "nonneg": "must be a finite number >= 0",
    "finite": "must be a finite number",
    "pos_or_nan": "must be NaN (unknown) or a finite number > 0",
    "side": "must be +1 (buy) or -1 (sell)",
}


def _kind_columns(kind: str) -> dict[str, pa.DataType]:
    if kind not in KINDS:
        raise DataError(f"unknown kind {shown(kind)}", fix=f"use one of {sorted(KINDS)}")
    return KINDS[kind][1]


def check_schema(kind: str, file, schema: pa.Schema) -> None:
    """Raise for the first missing or mistyped column (extra columns are ignored)."""
    names = schema.names
    for name, typ in _kind_columns(kind).items():
        if name not in names:
            raise DataError(f"missing column (a {kind} file needs {list(KINDS[kind][1])})",
                            file=file, column=name, fix=FIX_REWRITE)
        got = schema.field(name).type
        if got != typ:
            raise DataError(f"column has type {got}, expected {typ}", file=file, column=name,
                            fix=f"{FIX_REWRITE} with the exact types listed in data/README.md")


def _first(mask: np.ndarray) -> int:
    """Index of the first True, or -1."""
    idx = np.flatnonzero(mask)
    return int(idx[0]) if len(idx) else -1


def _bad_mask(rule: str, v: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        if rule == "pos":
            return ~(np.isfinite(v) & (v > 0))
        if rule == "nonneg":
            return ~(np.isfinite(v) & (v >= 0))
        if rule == "finite":
            return ~np.isfinite(v)
        if rule == "pos_or_nan":
            return ~(np.isnan(v) | (np.isfinite(v) & (v > 0)))
        if rule == "side":
            return (v != 1) & (v != -1)
    raise AssertionError(rule)


FIX_BOOK = ("write each snapshot as rows of levels 0, 1, 2, ... sharing one ts_ns, bids strictly "
            "decreasing and asks strictly increasing with the level, bid < ask at level 0, sizes > 0 "
            "(a side with fewer levels: NaN price and size 0 in the rest); re-import or regenerate it")


def _book_problems(columns: dict[str, np.ndarray], carry: dict | None) -> list[tuple[int, str, str, str]]:
    """(row, column, problem, fix) of the first broken book row per rule. Each row is compared with
    the row before it (for the first row of a batch, `carry["book"]` = the last row of the previous
    batch of the stream, if the caller carries it; it is updated here)."""
    from ..core.schema import MAX_BOOK_LEVELS

    ts = np.asarray(columns["ts_ns"])
    lv = np.asarray(columns["level"]).astype(np.int64)
    bid, ask = np.asarray(columns["bid"]), np.asarray(columns["ask"])
    bq, aq = np.asarray(columns["bid_qty"]), np.asarray(columns["ask_qty"])
    last = (carry or {}).get("book")  # (ts, level, bid, ask) of the row before this batch
    # after rows were skipped unread (a reader starting mid-stream), the rows before the first
    # level 0 continue a snapshot that began in them: their links to it are not checked
    resync = bool(carry and carry.pop("resync", False))
    p_ts = np.concatenate(([last[0] if last else ts[0]], ts[:-1]))
    p_lv = np.concatenate(([last[1] if last else -1], lv[:-1]))
    p_bid = np.concatenate(([last[2] if last else np.nan], bid[:-1]))
    p_ask = np.concatenate(([last[3] if last else np.nan], ask[:-1]))
    if carry is not None:
        carry["book"] = (int(ts[-1]), int(lv[-1]), float(bid[-1]), float(ask[-1]))
    found = []

    def add(mask, col, problem_of):
        i = _first(mask)
        if i >= 0:
            found.append((i, col, problem_of(i), FIX_BOOK))

    add((lv < 0) | (lv >= MAX_BOOK_LEVELS), "level",
        lambda i: f"level {lv[i]} is outside 0 .. {MAX_BOOK_LEVELS - 1}")
    deeper = lv > 0
    linked = deeper.copy()
    if resync:
        z = _first(lv == 0)
        linked[:len(lv) if z < 0 else z] = False
        if z < 0:
            carry["resync"] = True
    add(linked & ((lv != p_lv + 1) | (ts != p_ts)), "level",
        lambda i: f"level {lv[i]} does not follow level {lv[i] - 1} of the same snapshot (ts_ns {int(ts[i])}); "
                  "levels must be contiguous from 0")
    with np.errstate(invalid="ignore"):
        for name, px, qty, p_px, word in (("bid", bid, bq, p_bid, "decreasing"), ("ask", ask, aq, p_ask, "increasing")):
            have = np.isfinite(px) & (px > 0)
            add(~have & ~(deeper & np.isnan(px)), name,
                lambda i, px=px, name=name: f"{name} {px[i]!r} at level {lv[i]}: must be a finite price > 0 "
                                            "(NaN only for a missing level above 0)")
            add(linked & have & ~np.isfinite(p_px), name,
                lambda i, name=name: f"{name} level {lv[i]} follows an empty level")
            worse = (px >= p_px) if word == "decreasing" else (px <= p_px)
            add(linked & have & np.isfinite(p_px) & worse, name,
                lambda i, px=px, p_px=p_px, name=name, word=word:
                f"{name} {px[i]!r} at level {lv[i]} after {p_px[i]!r}: {name} prices must be strictly "
                f"{word} with the level")
            add(have & ~(np.isfinite(qty) & (qty > 0)), f"{name}_qty",
                lambda i, qty=qty, name=name: f"{name}_qty must be a finite number > 0 where the level has a "
                                              f"price, got {qty[i]!r}")
            add(~have & (qty != 0), f"{name}_qty",
                lambda i, qty=qty, name=name: f"{name}_qty must be 0 on a missing level (NaN price), got {qty[i]!r}")
        add((lv == 0) & (bid >= ask), "bid", lambda i: f"crossed book: level-0 bid {bid[i]!r} >= ask {ask[i]!r}")
    return found


def _value_problems(kind: str, columns: dict[str, np.ndarray],
                    carry: dict | None = None) -> list[tuple[int, str, str, str]]:
    """(row, column, problem, fix) of the first bad value per rule: time range, value rules,
    crossed quotes, book structure."""
    found = []
    ts = np.asarray(columns["ts_ns"])
    i = _first((ts < DATA_TS_MIN_NS) | (ts >= TS_MAX_NS))
    if i >= 0:
        found.append((i, "ts_ns", f"timestamp {int(ts[i])} is outside 1970-01-01 .. 2100-01-01 UTC "
                      "(ns since the epoch; a unit mix-up or an overflow)",
                      "re-import the source file (the importer detects its time unit) or regenerate it"))
    for name, rule in _RULES.get(kind, {}).items():  # kinds added elsewhere may bring no rules
        v = np.asarray(columns[name])
        i = _first(_bad_mask(rule, v))
        if i >= 0:
            found.append((i, name, f"{name} {_RULE_TEXT[rule]}, got {v[i]!r}",
                          "fix or drop the row, then re-import or regenerate this file"))
    if kind == "quotes":
        with np.errstate(invalid="ignore"):
            i = _first(np.asarray(columns["bid"]) > np.asarray(columns["ask"]))
        if i >= 0:
            found.append((i, "bid", f"crossed quote: bid {columns['bid'][i]!r} > ask {columns['ask'][i]!r}",
                          "drop crossed quotes or swap the bid/ask columns"))
    if kind in ("bars", "premium"):
        bad = candle_problem(*(np.asarray(columns[n]) for n in ("open", "high", "low", "close")))
        if bad:
            found.append((*bad, FIX_CANDLE))
    if kind == "book" and len(ts):
        found += _book_problems(columns, carry)
    return found


FIX_CANDLE = "check the column order (open, high, low, close), or drop the row"


def candle_problem(o, h, lo, c) -> tuple[int, str, str] | None:
    """(row, column, problem) of the first candle without low <= open, close <= high, or None."""
    with np.errstate(invalid="ignore"):
        high_bad = h < np.maximum(o, c)
        i = _first(high_bad | (lo > np.minimum(o, c)))
    if i < 0:
        return None
    return (i, "high" if high_bad[i] else "low", f"inconsistent candle: open {o[i]} high {h[i]} low {lo[i]} "
            f"close {c[i]} (need low <= open, close <= high)")


def check_values(kind: str, file, columns: dict[str, np.ndarray], row_offset: int = 0,
                 carry: dict | None = None) -> None:
    """The value rules of check_batch alone (no order or date checks), for unsorted input."""
    found = _value_problems(kind, columns, carry)
    if found:
        i, col, problem, fix = min(found, key=lambda f: f[0])
        raise DataError(problem, file=file, column=col, row=row_offset + i, fix=fix)


def check_batch(kind: str, file, columns: dict[str, np.ndarray], row_offset: int = 0,
                prev_ts: int | None = None, *, date: str | dt.date | None = None,
                carry: dict | None = None) -> int | None:
    """Check one batch of rows of a (kind, symbol) stream; return the last ts_ns (for the next batch).

    ``columns`` maps the kind's column names to numpy arrays (extra keys are ignored).
    ``prev_ts`` is the last timestamp of the previous batch/file of the same stream (None at the
    start). With ``date`` (the file's date partition) every row must fall on that UTC date.
    ``carry`` (a dict the caller keeps per stream) carries the last row of a book snapshot into
    the next batch, so a snapshot split across batches is checked as one.
    Raises DataError for the first bad row (row = row_offset + index in the batch).
    """
    spec = _kind_columns(kind)
    for name, typ in spec.items():
        if name not in columns:
            raise DataError("missing column", file=file, column=name, fix=FIX_REWRITE)
        want = np.dtype(typ.to_pandas_dtype())
        if np.asarray(columns[name]).dtype != want:
            raise DataError(f"column has dtype {np.asarray(columns[name]).dtype}, expected {want}",
                            file=file, column=name, fix=FIX_REWRITE)
    ts = np.asarray(columns["ts_ns"])
    n = len(ts)
    if n == 0:
        return prev_ts
    # (row index, column, problem, fix) candidates; the smallest row index wins
    found: list[tuple[int, str, str, str]] = []
    if prev_ts is not None and ts[0] < prev_ts:
        found.append((0, "ts_ns", f"timestamp {int(ts[0])} is before the previous row's {int(prev_ts)}"
                      " (unsorted, possibly across files)", FIX_SORT))
    i = _first(np.diff(ts) < 0)
    if i >= 0:
        found.append((i + 1, "ts_ns", f"timestamp {int(ts[i + 1])} is before the previous row's "
                      f"{int(ts[i])} (unsorted)", FIX_SORT))
    if date is not None:
        day = (dt.date.fromisoformat(str(date)) - dt.date(1970, 1, 1)).days
        i = _first(np.floor_divide(ts, _DAY_NS) != day)
        if i >= 0:
            found.append((i, "ts_ns", f"timestamp {int(ts[i])} is not on the file's date partition "
                          f"{date} (UTC)", "write each row under the date=YYYY-MM-DD folder of its UTC day"))
    found += _value_problems(kind, columns, carry)
    if found:
        i, col, problem, fix = min(found, key=lambda f: f[0])
        raise DataError(problem, file=file, column=col, row=row_offset + i, fix=fix)
    return int(ts[-1])


def check_arrow_batch(kind: str, file, batch: pa.RecordBatch | pa.Table, row_offset: int = 0,
                      prev_ts: int | None = None, *, date=None, carry: dict | None = None) -> int | None:
    """Like check_batch, for an Arrow batch: also checks types and nulls."""
    check_schema(kind, file, batch.schema)
    cols = {}
    for name in _kind_columns(kind):
        arr = batch.column(name)
        if arr.null_count:
            valid = arr.is_valid()
            if isinstance(valid, pa.ChunkedArray):
                valid = valid.combine_chunks()
            i = _first(~valid.to_numpy(zero_copy_only=False))
            raise DataError("null value", file=file, column=name, row=row_offset + i,
                            fix="fill or drop the row, then " + FIX_REWRITE)
        cols[name] = arr.to_numpy()
    return check_batch(kind, file, cols, row_offset, prev_ts, date=date, carry=carry)


def check_file(kind: str, path: Path, prev_ts: int | None = None, *, date=None,
               batch_rows: int = BATCH_ROWS, gaps: "Gaps | None" = None,
               carry: dict | None = None) -> tuple[int, int | None]:
    """Stream one Parquet file by batches; return (rows, last ts_ns). Corrupt files (including a
    page whose checksum does not match, as the reader checks) raise DataError. With `gaps`, time
    gaps longer than its threshold are recorded."""
    path = Path(path)
    carry = {} if carry is None else carry
    try:
        pf = pq.ParquetFile(path, page_checksum_verification=True)
        check_schema(kind, path, pf.schema_arrow)
        rows = 0
        for batch in pf.iter_batches(batch_size=batch_rows, columns=list(KINDS[kind][1])):
            before = prev_ts
            prev_ts = check_arrow_batch(kind, path, batch, rows, prev_ts, date=date, carry=carry)
            if gaps is not None and batch.num_rows:
                gaps.add(before, batch.column("ts_ns").to_numpy())
            rows += batch.num_rows
    except (pa.ArrowException, OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"unreadable Parquet file ({first})", file=path, fix=FIX_REWRITE) from None
    return rows, prev_ts


class Gaps:
    """Time gaps longer than `max_ns` between consecutive rows of one stream."""

    def __init__(self, max_ns: int):
        self.max_ns, self.count, self.largest = max_ns, 0, (0, 0)

    def add(self, prev_ts: int | None, ts: np.ndarray) -> None:
        t = ts if prev_ts is None else np.concatenate(([prev_ts], ts))
        d = np.diff(t)
        big = np.flatnonzero(d > self.max_ns)
        if len(big):
            self.count += len(big)
            j = big[np.argmax(d[big])]
            if d[j] > self.largest[1] - self.largest[0]:
                self.largest = (int(t[j]), int(t[j + 1]))


@dataclass
class ValidationReport:
    """What validate_dataset found: counts on success, and the problems (one per stream at most)."""

    root: Path
    files: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # per kind
    streams: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, symbol) -> rows
    symbols: list[str] = field(default_factory=list)
    start_ns: int | None = None
    end_ns: int | None = None
    problems: list[DataError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # gaps, missing days, missing marks/funding

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {n:,}" for k, n in self.rows.items())
        span = ""
        if self.start_ns is not None:
            span = f"; {_iso(self.start_ns)} .. {_iso(self.end_ns)}"
        status = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        return (f"{status}: {self.root}: {self.files} files, {sum(self.rows.values()):,} rows "
                f"({kinds}); symbols {', '.join(self.symbols)}{span}")

    def to_dict(self) -> dict:
        return {
            "ok": self.ok, "root": str(self.root), "files": self.files, "rows": dict(self.rows),
            "streams": {f"{k}/{s}": n for (k, s), n in self.streams.items()},
            "symbols": list(self.symbols),
            "start": _iso(self.start_ns) if self.start_ns is not None else None,
            "end": _iso(self.end_ns) if self.end_ns is not None else None,
            "problems": [str(p) for p in self.problems],
            "warnings": list(self.warnings),
        }


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


MAX_GAP_S = 3600.0  # default for trades, quotes and marks; funding uses 1.5 x its interval


def validate_dataset(root: Path, *, all_problems: bool = False,
                     max_gap_s: float = MAX_GAP_S) -> ValidationReport:
    """Validate a dataset folder (instruments file and every Parquet file).

    By default raises DataError for the first problem. With ``all_problems=True`` it records the
    first problem of each stream in ``report.problems`` and carries on (dataset-level problems,
    such as a missing instruments file or an empty dataset, still raise).
    ``report.warnings`` lists what is legal but probably wrong: missing date partitions or time
    gaps longer than ``max_gap_s`` inside a stream, perpetuals without marks or funding.
    """
    from .commit import recover

    from .storage import local_dataset

    root = local_dataset(root)  # an s3:// URI reads through the local cache
    if not root.is_dir():
        raise DataError("dataset folder not found", file=root,
                        fix="pass the folder made by `backtest data generate` or `backtest data import`")
    recover(root)  # finish a committed import (or drop a dead one) when no import is running
    try:
        instruments = load_instruments(root)
    except DataError as e:
        if e.fix:
            raise
        raise DataError(e.problem, file=e.file, column=e.column, row=e.row,
                        fix="see the instruments file format in data/README.md") from None
    streams = list_streams(root)
    if not streams:
        raise DataError("empty dataset: no Parquet files under kind=*/symbol=*/date=*/", file=root,
                        fix="generate or import data into this folder (see data/README.md)")
    report = ValidationReport(root=root)
    for sym in sorted({s for _, s in streams}):
        if sym not in instruments:
            continue  # reported with its stream below
        report.warnings += instrument_warnings(instruments[sym])
    for (kind, symbol), files in streams.items():
        try:
            n = _validate_stream(report, kind, symbol, files, instruments, max_gap_s)
        except DataError as e:
            if not all_problems:
                raise
            report.problems.append(e)
            continue
        report.rows[kind] = report.rows.get(kind, 0) + n
        report.streams[(kind, symbol)] = n
        if symbol not in report.symbols:
            report.symbols.append(symbol)
    for sym in report.symbols:
        ins = instruments[sym]
        if not ins.is_perpetual or not any((k, sym) in streams for k in ("trades", "quotes")):
            continue
        if ("marks", sym) not in streams:
            report.warnings.append(f"{sym}: a perpetual with trades/quotes but no marks: liquidation and "
                                   "unrealised PnL fall back to the last price (import mark prices, e.g. "
                                   "--format binance-mark-klines or tardis-derivative-ticker)")
        if ("funding", sym) not in streams:
            report.warnings.append(f"{sym}: a perpetual with no funding rows: no funding is charged "
                                   "(import e.g. --format binance-funding or tardis-derivative-ticker)")
    return report


def _validate_stream(report: ValidationReport, kind: str, symbol: str, files: list[Path],
                     instruments, max_gap_s: float = MAX_GAP_S) -> int:
    if symbol not in instruments:
        raise DataError(f"unknown symbol {shown(symbol)}: not in the instruments file", file=files[0].parent.parent,
                        fix=f"add {symbol} to instruments.json, or remove the folder")
    prev_ts = None
    rows = 0
    first_ts = None
    gap_s = 1.5 * 3600 * instruments[symbol].funding_interval_h if kind == "funding" else max_gap_s
    gaps = Gaps(int(gap_s * 1e9))
    carry: dict = {}  # a book snapshot may continue into the next batch or file
    dates = []
    for f in files:
        date = date_of_file(f)
        try:
            dates.append(dt.date.fromisoformat(date))
        except ValueError:
            raise DataError(f"bad date partition {shown(f.parent.name)}", file=f,
                            fix="name date folders date=YYYY-MM-DD") from None
        n, prev_ts = check_file(kind, f, prev_ts, date=date, gaps=gaps, carry=carry)
        if first_ts is None and n:
            first_ts = _first_ts(f)
        rows += n
        report.files += 1
    if first_ts is not None:
        report.start_ns = first_ts if report.start_ns is None else min(report.start_ns, first_ts)
    if prev_ts is not None:
        report.end_ns = prev_ts if report.end_ns is None else max(report.end_ns, prev_ts)
    have = set(dates)
    missing = [dates[0] + dt.timedelta(days=i) for i in range((dates[-1] - dates[0]).days)
               if dates[0] + dt.timedelta(days=i) not in have] if dates else []
    if missing:
        listed = ", ".join(str(d) for d in missing[:5]) + (", ..." if len(missing) > 5 else "")
        report.warnings.append(f"{kind}/{symbol}: {len(missing)} missing date partition(s) inside the "
                               f"stream's range: {listed}")
    if gaps.count:
        a, b = gaps.largest
        report.warnings.append(f"{kind}/{symbol}: {gaps.count} gap(s) longer than {gap_s:g} s; the largest "
                               f"{(b - a) / 1e9:,.0f} s from {_iso(a)} to {_iso(b)}")
    return rows


def _first_ts(path: Path) -> int:
    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=1, columns=["ts_ns"]):
        return int(batch.column(0)[0].as_py())
    raise AssertionError
