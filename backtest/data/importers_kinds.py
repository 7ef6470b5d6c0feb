"""Importers of candles (`bars`) and other traders' liquidations (`liquidations`).

Same interface as the trade and quote parsers of importers.py (registered in its FORMATS table):
`parse_kind_file(path, fmt)` returns (kind, columns in the kind's exact dtypes, sorted by ts_ns),
or raises DataError naming the file, the 1-based line (or Parquet row) and the column.

    binance-klines       Binance kline CSV, with or without its header (open_time ... ignore)
    ohlcv                generic candles, CSV or Parquet: ts, open, high, low, close, volume
                         [, close_ts]; ts = the bar's open time
    tardis-liquidations  Tardis.dev `liquidations` CSV

A candle is stamped with the end of its interval (data/README.md, "Candles"): Binance's
close_time is the interval's last millisecond (or microsecond), so the bar's time is
close_time + 1 unit; a generic bar without close_ts ends one interval after its open, the
interval being the smallest step between consecutive bars of the file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .layout import KINDS

KLINE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume", "close_time",
                 "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore")
OHLCV_COLUMNS = ("ts", "open", "high", "low", "close", "volume")

# format -> (kind, accepted column layouts), the shape of importers.FORMATS
KIND_FORMATS: dict[str, tuple[str, tuple[tuple[str, ...], ...]]] = {
    "binance-klines": ("bars", (KLINE_COLUMNS,)),
    "ohlcv": ("bars", (OHLCV_COLUMNS, (*OHLCV_COLUMNS, "close_ts"))),
    "tardis-liquidations": ("liquidations", (
        ("exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount"),
    )),
}

_S_LIMIT = 10**11  # epoch integers below this are seconds (2026 is ~1.8e9 s, ~1.8e12 ms)


def _unit_ns(ts: np.ndarray) -> np.ndarray:
    """The size of one unit of each epoch integer, in ns (s, ms, µs or ns by magnitude)."""
    return np.where(ts < _S_LIMIT, 10**9, np.where(ts < 10**14, 10**6,
                                                   np.where(ts < 10**17, 10**3, 1))).astype(np.int64)


def _epoch_ns(ts: np.ndarray, name: str, first_line: int, col: str) -> np.ndarray:
    from .importers import _first_bad, _line_error

    i = _first_bad(ts <= 0)
    if i >= 0:
        raise _line_error(name, first_line + i, f"timestamp must be > 0, got {ts[i]}", column=col)
    return ts * _unit_ns(ts)


def _check_candles(o, h, lo, c, v, name: str, first_line: int) -> None:
    from .importers import _first_bad, _line_error

    with np.errstate(invalid="ignore"):
        i = _first_bad(~((h >= np.maximum(o, c)) & (lo <= np.minimum(o, c))))
    if i >= 0:
        raise _line_error(name, first_line + i, f"inconsistent candle: open {o[i]} high {h[i]} "
                          f"low {lo[i]} close {c[i]} (need low <= open, close <= high)", column="high",
                          fix="check the column order (open, high, low, close), or drop the line")
    i = _first_bad(~(np.isfinite(v) & (v >= 0)))
    if i >= 0:
        raise _line_error(name, first_line + i, f"volume must be a finite number >= 0, got {v[i]}",
                          column="volume")


def _klines(df, name: str, fl: int) -> dict[str, np.ndarray]:
    import polars as pl

    from .importers import _first_bad, _line_error, _number

    o, h, lo, c = (_number(df, k, pl.Float64, name, fl, positive=True)
                   for k in ("open", "high", "low", "close"))
    v = _number(df, "volume", pl.Float64, name, fl)
    _check_candles(o, h, lo, c, v, name, fl)
    start = _epoch_ns(_number(df, "open_time", pl.Int64, name, fl), name, fl, "open_time")
    close = _number(df, "close_time", pl.Int64, name, fl)
    end = _epoch_ns(close + 1, name, fl, "close_time")  # the interval's last unit, + 1 unit
    i = _first_bad(end <= start)
    if i >= 0:
        raise _line_error(name, fl + i, f"close_time {close[i]} is not after open_time", column="close_time")
    return {"ts_ns": end, "open": o, "high": h, "low": lo, "close": c, "volume": v}


def _ohlcv_time(df, col: str, name: str, fl: int) -> np.ndarray:
    """Epoch integers (s, ms, µs or ns) or ISO-8601 text (UTC unless it carries an offset)."""
    import polars as pl

    from .importers import _first_bad, _line_error

    raw = df[col]
    if raw.dtype.is_temporal():
        return raw.dt.replace_time_zone(None).dt.cast_time_unit("ns").cast(pl.Int64).to_numpy()
    as_int = raw.cast(pl.Int64, strict=False)
    if as_int.null_count() == 0:
        return _epoch_ns(as_int.to_numpy(), name, fl, col)
    text = raw.cast(pl.String)
    parsed = text.str.to_datetime(time_unit="ns", time_zone="UTC", strict=False)
    i = _first_bad(parsed.is_null().to_numpy())
    if i >= 0:
        raise _line_error(name, fl + i, f"not a time: {text[i]!r} (epoch s/ms/µs/ns or ISO-8601)",
                          column=col)
    return parsed.dt.replace_time_zone(None).cast(pl.Int64).to_numpy()


def _ohlcv(df, name: str, fl: int) -> dict[str, np.ndarray]:
    import polars as pl

    from .importers import _first_bad, _line_error, _number

    o, h, lo, c = (_number(df, k, pl.Float64, name, fl, positive=True)
                   for k in ("open", "high", "low", "close"))
    v = _number(df, "volume", pl.Float64, name, fl)
    _check_candles(o, h, lo, c, v, name, fl)
    start = _ohlcv_time(df, "ts", name, fl)
    if "close_ts" in df.columns:
        end = _ohlcv_time(df, "close_ts", name, fl)
    else:
        steps = np.diff(np.unique(start))
        if len(steps) == 0:
            raise DataError("cannot tell the bar interval from a single bar time", file=name,
                            column="ts", fix="add a close_ts column (the end of each bar)")
        end = start + int(steps.min())
    i = _first_bad(end <= start)
    if i >= 0:
        raise _line_error(name, fl + i, "close_ts is not after ts", column="close_ts")
    return {"ts_ns": end, "open": o, "high": h, "low": lo, "close": c, "volume": v}


def _tardis_liquidations(df, name: str, fl: int) -> dict[str, np.ndarray]:
    import polars as pl

    from .importers import _first_bad, _line_error, _number, _single_symbol

    _single_symbol(df, name)
    ts = _number(df, "timestamp", pl.Int64, name, fl)
    i = _first_bad(ts <= 0)
    if i >= 0:
        raise _line_error(name, fl + i, f"timestamp must be > 0, got {ts[i]}", column="timestamp")
    price = _number(df, "price", pl.Float64, name, fl, positive=True)
    qty = _number(df, "amount", pl.Float64, name, fl, positive=True)
    s = df["side"].str.to_lowercase().to_numpy()
    buy, sell = s == "buy", s == "sell"
    i = _first_bad(~(buy | sell))
    if i >= 0:
        raise _line_error(name, fl + i, f"unknown side {df['side'][i]!r} (expected buy or sell)",
                          column="side")
    return {"ts_ns": ts * 1000, "price": price, "qty": qty,
            "side": np.where(buy, 1, -1).astype(np.int8)}


def _parquet_table(path: Path, fmt: str):
    """A generic OHLCV Parquet file as a frame with the layout's columns (first data row = 1)."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        df = pl.from_arrow(pq.read_table(path))
    except (OSError, pa.ArrowException) as e:
        raise DataError(f"cannot read Parquet file ({' '.join(str(e).split())})", file=path,
                        fix="check that this is a Parquet file, or download it again") from None
    df.columns = [c.strip().lower() for c in df.columns]
    missing = [c for c in OHLCV_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)} (an {fmt} file needs "
                        f"{', '.join(OHLCV_COLUMNS)} [, close_ts])", file=path, column=missing[0],
                        fix="rename the columns to these names")
    if len(df) == 0:
        raise DataError("no rows", file=path, fix="export the candles again")
    return df.select([c for c in (*OHLCV_COLUMNS, "close_ts") if c in df.columns]), 1


_PARSERS = {"binance-klines": _klines, "ohlcv": _ohlcv, "tardis-liquidations": _tardis_liquidations}


def parse_kind_file(path: Path, fmt: str) -> tuple[str, dict[str, np.ndarray]]:
    """Parse and check one file of a format of KIND_FORMATS (see importers.parse_file)."""
    from .importers import _parse_table, _read_bytes

    path = Path(path)
    kind = KIND_FORMATS[fmt][0]
    if fmt == "ohlcv" and path.suffix.lower() == ".parquet":
        df, fl = _parquet_table(path, fmt)  # errors name the 1-based row as file:row
        name = str(path)
    else:
        data, name = _read_bytes(path)
        df, fl = _parse_table(fmt, data, name)
    out = _PARSERS[fmt](df, name, fl)
    order = np.argsort(out["ts_ns"], kind="stable")
    if np.any(order != np.arange(len(order))):
        out = {k: v[order] for k, v in out.items()}
    dtypes = {n: np.dtype(t.to_pandas_dtype()) for n, t in KINDS[kind][1].items()}
    return kind, {n: np.ascontiguousarray(out[n], dtype=dtypes[n]) for n in dtypes}
