"""The on-disk dataset layout, shared by the reader, writers, importers and validators.

A dataset is a folder::

    DIR/instruments.json                     contract specs (or instruments.toml)
    DIR/kind=trades/symbol=BTCUSDT/date=2026-02-05/part-0000.parquet
    DIR/kind=quotes/...  DIR/kind=marks/...  DIR/kind=funding/...
    DIR/kind=bars/...    DIR/kind=liquidations/...    DIR/kind=book/...
    DIR/kind=premium/...   (data only: never replayed as events)

Hive-style partitions: the kind, symbol and UTC date live in the path, not in the files.
Within one (kind, symbol) stream, rows are sorted by ts_ns (ties keep file order).
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..core.schema import EventKind

# kind folder name -> (EventKind, or None for data-only kinds; file columns with exact Arrow types)
KINDS: dict[str, tuple[EventKind | None, dict[str, pa.DataType]]] = {
    "trades": (
        EventKind.TRADE,
        {"ts_ns": pa.int64(), "price": pa.float64(), "qty": pa.float64(), "side": pa.int8()},
    ),
    "quotes": (
        EventKind.QUOTE,
        {
            "ts_ns": pa.int64(),
            "bid": pa.float64(),
            "ask": pa.float64(),
            "bid_qty": pa.float64(),
            "ask_qty": pa.float64(),
        },
    ),
    "marks": (
        EventKind.MARK,
        {"ts_ns": pa.int64(), "mark_price": pa.float64(), "index_price": pa.float64()},
    ),
    "funding": (EventKind.FUNDING, {"ts_ns": pa.int64(), "rate": pa.float64()}),
    # candles, stamped at their close (the end of the interval: when their OHLC is known)
    "bars": (
        EventKind.BAR,
        {
            "ts_ns": pa.int64(),
            "open": pa.float64(),
            "high": pa.float64(),
            "low": pa.float64(),
            "close": pa.float64(),
            "volume": pa.float64(),
        },
    ),
    # other traders' forced orders (information only: they never fill ours)
    "liquidations": (
        EventKind.MARKET_LIQUIDATION,
        {"ts_ns": pa.int64(), "price": pa.float64(), "qty": pa.float64(), "side": pa.int8()},
    ),
    # L2 depth snapshots, one row per level (0 = best), the rows of a snapshot sharing ts_ns in
    # level order; a side with fewer levels has NaN prices and 0 sizes in the rest
    "book": (
        EventKind.BOOK,
        {
            "ts_ns": pa.int64(),
            "level": pa.int8(),
            "bid": pa.float64(),
            "bid_qty": pa.float64(),
            "ask": pa.float64(),
            "ask_qty": pa.float64(),
        },
    ),
    # data only, never replayed: Binance premium index klines stamped at their close (the input
    # of the funding formula; backtest.data.premium derives funding estimates from it)
    "premium": (
        None,
        {"ts_ns": pa.int64(), "open": pa.float64(), "high": pa.float64(), "low": pa.float64(),
         "close": pa.float64()},
    ),
    # data only, never replayed: open interest (contracts outstanding, in the instrument's
    # quantity unit) as the exchange reported it (Tardis derivative_ticker)
    "open_interest": (None, {"ts_ns": pa.int64(), "open_interest": pa.float64()}),
}
# The kinds the reader turns into engine events (in the merge's tie-break order) and those stored
# for analysis only.
EVENT_KINDS: tuple[str, ...] = tuple(k for k, (ev, _) in KINDS.items() if ev is not None)
DATA_ONLY_KINDS: tuple[str, ...] = tuple(k for k, (ev, _) in KINDS.items() if ev is None)

INSTRUMENT_FILES = ("instruments.json", "instruments.toml")

# Imported timestamps must fall in [2009-01-01, 2100-01-01) UTC: anything else is a unit mix-up or
# garbage, and the bounds keep every ns value far from int64 overflow.
TS_MIN_NS = 1_230_768_000 * 10**9
TS_MAX_NS = 4_102_444_800 * 10**9
# Stored datasets (validate, reader) accept [1970-01-01, 2100-01-01): synthetic datasets and tests
# may start at the epoch; negative (pre-1970) and overflowing values are still refused.
DATA_TS_MIN_NS = 0


def schema_of(kind: str) -> pa.Schema:
    return pa.schema([pa.field(n, t, nullable=False) for n, t in KINDS[kind][1].items()])


def partition_dir(root: Path, kind: str, symbol: str, date: dt.date | str) -> Path:
    return Path(root) / f"kind={kind}" / f"symbol={symbol}" / f"date={date}"


def utc_date_of_ns(ts_ns: int) -> dt.date:
    return dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.timezone.utc).date()


def day_bounds_ns(ts_ns: np.ndarray) -> np.ndarray:
    """UTC day number (days since epoch) of each timestamp, for splitting rows into date partitions."""
    return np.floor_divide(ts_ns, 86_400 * 1_000_000_000)


def date_of_day(day: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=int(day))


def list_streams(root: Path, extra=()) -> dict[tuple[str, str], list[Path]]:
    """{(kind, symbol): [parquet files sorted by date then name]} found under a dataset folder,
    plus the files `extra` names (an S3 dataset's files still downloading: storage.pending).

    Honours committed imports that are still being applied (backtest.data.commit): a staged file
    stands in for its target and superseded files are left out, so a reader never sees half of
    an import. Uncommitted staging folders are invisible."""
    from .commit import overlay

    root = Path(root)
    staged, deleted = overlay(root)
    found: dict[str, Path] = {}
    for kind in KINDS:
        kdir = root / f"kind={kind}"
        if kdir.is_dir():
            for f in kdir.glob("symbol=*/date=*/*.parquet"):
                found[f.relative_to(root).as_posix()] = f
    found.update((f.relative_to(root).as_posix(), f) for f in extra)
    found.update((rel, p) for rel, p in staged.items() if rel.split("/", 1)[0][5:] in KINDS)
    out: dict[tuple[str, str], list[Path]] = {}
    for rel in sorted(found):
        if rel in deleted:
            continue
        parts = rel.split("/")
        if len(parts) != 4 or not parts[1].startswith("symbol="):
            continue
        out.setdefault((parts[0][5:], parts[1][7:]), []).append(found[rel])
    return {k: out[k] for k in sorted(out, key=lambda k: (list(KINDS).index(k[0]), k[1]))}


def date_of_file(path: Path) -> str:
    """The date partition of a file ('2026-02-05'), from its parent folder name."""
    return Path(path).parent.name.split("=", 1)[1]
