"""Describe a dataset per symbol (polars lazy scans, so it stays quick on large datasets).

    inspect_dataset("data/generated/feb-2026-crash") -> [{"symbol": "BTCUSDT", ...}, ...]

Per symbol: kinds present, UTC time range, row counts per kind, price min/max/last, the largest
peak-to-trough drop and the largest absolute 1-minute return (both on 1-minute closes of the
price series), funding rate min/max, and the L2 book's coverage (snapshots, most levels per side,
mean snapshot interval). The price series is the trades' last price, else the
quotes' mid price, else the mark price (``price_source`` says which).
"""
from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

from ..errors import DataError
from .layout import KINDS

MINUTE_NS = 60 * 1_000_000_000
_PRICE = {"trades": "price", "quotes": "(bid + ask) / 2", "marks": "mark_price"}


def iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _scan(root: Path, kind: str):
    import polars as pl

    hive = {"kind": pl.String, "symbol": pl.String, "date": pl.String}
    # __i numbers rows in path order (symbol, date, part), i.e. stream order in a valid dataset:
    # "last" = the row with the largest __i (cheaper than sorting by ts_ns within groups)
    lf = pl.scan_parquet(str(root / f"kind={kind}" / "**" / "*.parquet"), hive_partitioning=True,
                         hive_schema=hive, row_index_name="__i")
    if kind == "quotes":
        return lf.with_columns(((pl.col("bid") + pl.col("ask")) / 2).alias("px"))
    if kind in _PRICE:
        return lf.with_columns(pl.col(_PRICE[kind]).alias("px"))
    return lf


def _collect(lf, root: Path):
    import polars as pl

    try:
        return lf.collect(engine="streaming")
    except (pl.exceptions.PolarsError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot read the dataset ({first})", file=root,
                        fix=f"run `backtest data validate {root}` to find the bad file") from None


def inspect_dataset(root: Path | str) -> list[dict]:
    """One JSON-ready dict per symbol (sorted by symbol); raises DataError for an empty dataset."""
    import polars as pl

    from .layout import list_streams

    from .commit import recover

    from .storage import local_dataset

    root = local_dataset(root)  # an s3:// URI reads through the local cache
    if not root.is_dir():
        raise DataError("dataset folder not found", file=root, fix="check the path")
    recover(root)  # finish a committed import (or drop a dead one) before globbing the files
    streams = list_streams(root)
    if not streams:
        raise DataError("empty dataset: no Parquet files under kind=*/symbol=*/date=*/", file=root,
                        fix="generate or import data into this folder (see data/README.md)")
    kinds = [k for k in KINDS if any(sk == k for sk, _ in streams)]
    out: dict[str, dict] = {}
    for kind in kinds:
        aggs = [pl.len().alias("n"), pl.col("ts_ns").min().alias("t0"), pl.col("ts_ns").max().alias("t1")]
        if kind in _PRICE:
            aggs += [pl.col("px").min().alias("pmin"), pl.col("px").max().alias("pmax"),
                     pl.col("px").get(pl.col("__i").arg_max()).alias("plast")]
        if kind == "funding":
            aggs += [pl.col("rate").min().alias("fmin"), pl.col("rate").max().alias("fmax")]
        if kind == "book":  # level 0 starts a snapshot
            aggs += [(pl.col("level") == 0).sum().alias("snaps"), (pl.col("level").max() + 1).alias("levels")]
        df = _collect(_scan(root, kind).group_by("symbol").agg(aggs), root)
        for r in df.iter_rows(named=True):
            d = out.setdefault(r["symbol"], {"symbol": r["symbol"], "kinds": [], "counts": {},
                                             "_t0": r["t0"], "_t1": r["t1"]})
            d["kinds"].append(kind)
            d["counts"][kind] = r["n"]
            d["_t0"], d["_t1"] = min(d["_t0"], r["t0"]), max(d["_t1"], r["t1"])
            if kind in _PRICE and "price_source" not in d:
                d["price_source"] = kind
                d["price_min"], d["price_max"], d["last_price"] = r["pmin"], r["pmax"], r["plast"]
            if kind == "funding":
                d["funding_min"], d["funding_max"] = r["fmin"], r["fmax"]
            if kind == "book":
                snaps = int(r["snaps"])
                d["book_snapshots"], d["book_levels"] = snaps, int(r["levels"])
                d["book_interval_s"] = round((r["t1"] - r["t0"]) / 1e9 / (snaps - 1), 3) if snaps > 1 else None
    # 1-minute closes of each symbol's price series, then drop and move statistics
    for kind in ("trades", "quotes", "marks"):
        syms = [s for s, d in out.items() if d.get("price_source") == kind]
        if not syms:
            continue
        bars = _collect(
            _scan(root, kind).filter(pl.col("symbol").is_in(syms))
            .group_by("symbol", (pl.col("ts_ns") // MINUTE_NS).alias("minute"))
            .agg(pl.col("px").get(pl.col("__i").arg_max()).alias("close"))
            .sort("symbol", "minute"), root)
        for (sym,), g in bars.group_by("symbol", maintain_order=True):
            out[sym].update(_moves(g["minute"].to_numpy(), g["close"].to_numpy()))
    result = []
    for sym in sorted(out):
        d = out[sym]
        t0, t1 = d.pop("_t0"), d.pop("_t1")
        row = {"symbol": sym, "kinds": d["kinds"], "start": iso(t0), "end": iso(t1),
               "start_ns": t0, "end_ns": t1, "counts": d["counts"]}
        for k in ("price_source", "price_min", "price_max", "last_price", "max_drop_pct",
                  "max_drop_peak", "max_drop_trough", "max_1m_move_pct", "max_1m_move_at",
                  "funding_min", "funding_max", "book_snapshots", "book_levels", "book_interval_s"):
            row[k] = d.get(k)
        result.append(row)
    return result


def _moves(minute, close) -> dict:
    """Largest peak-to-trough drop and largest absolute 1-minute return of minute closes (in %).

    The move "at" a minute is the return from the previous close to that minute's close; times are
    the start of the minute (UTC).
    """
    import numpy as np

    out: dict = {"max_drop_pct": 0.0, "max_drop_peak": None, "max_drop_trough": None,
                 "max_1m_move_pct": 0.0, "max_1m_move_at": None}
    if len(close) == 0:
        return out
    peak = np.maximum.accumulate(close)
    dd = close / peak - 1.0
    j = int(np.argmin(dd))
    if dd[j] < 0:
        i = int(np.argmax(close[: j + 1]))
        out.update(max_drop_pct=round(float(dd[j]) * 100, 4), max_drop_peak=iso(int(minute[i]) * MINUTE_NS),
                   max_drop_trough=iso(int(minute[j]) * MINUTE_NS))
    if len(close) > 1:
        r = close[1:] / close[:-1] - 1.0
        k = int(np.argmax(np.abs(r)))
        out.update(max_1m_move_pct=round(float(r[k]) * 100, 4),
                   max_1m_move_at=iso(int(minute[k + 1]) * MINUTE_NS))
    return out


# ------------------------------------------------------------------------------------------------
# Presentation

def _num(x, digits: int = 6) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def table_rows(info: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and string cells of the inspect table (shared by the rich and plain renderings).
    Count columns appear only for kinds present in the dataset, funding columns only with funding."""
    present = [k for k in KINDS if any(k in d["counts"] for d in info)]
    funding = "funding" in present
    book = "book" in present
    header = ["symbol", "kinds", "start (UTC)", "end (UTC)", *present,
              "price min", "price max", "last", "max drop %", "max 1m move %"]
    if funding:
        header += ["funding min", "funding max"]
    if book:
        header += ["book snapshots x levels", "book mean interval s"]
    rows = []
    for d in info:
        c = d["counts"]
        row = [d["symbol"], ",".join(d["kinds"]), d["start"] or "-", d["end"] or "-",
               *(_num(c.get(k)) for k in present),
               _num(d["price_min"], 8), _num(d["price_max"], 8), _num(d["last_price"], 8),
               _num(d["max_drop_pct"], 4), _num(d["max_1m_move_pct"], 4)]
        if funding:
            row += [_num(d["funding_min"], 4), _num(d["funding_max"], 4)]
        if book:
            n = d.get("book_snapshots")
            row += [f"{n:,} x {d['book_levels']}" if n else "-", _num(d.get("book_interval_s"), 4)]
        rows.append(row)
    return header, rows


def format_plain(info: list[dict]) -> str:
    """Plain aligned text (for pipes and logs)."""
    header, rows = table_rows(info)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    lines.append(FOOTNOTE)
    return "\n".join(lines)


FOOTNOTE = ("price = trades last price (else quotes mid, else mark); max drop = largest peak-to-trough "
             "fall of 1-minute closes; max 1m move = largest absolute return between consecutive "
             "1-minute closes")
