"""What a dataset covers: its time span, whether a chosen range has data, what perpetuals lack.

Cheap checks (file listings and Parquet column statistics, no data read) shared by `backtest run`
(before a run starts) and `backtest data validate`.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from ..errors import ConfigError, DataError
from .layout import list_streams


def iso(ts_ns: int) -> str:
    """A nanosecond timestamp as a short ISO UTC time (2026-02-05T12:00:00, fractions if any)."""
    secs, frac = divmod(int(ts_ns), 1_000_000_000)
    text = dt.datetime.fromtimestamp(secs, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{frac:09d}".rstrip("0") if frac else text


def data_time_range(data, symbols=None) -> tuple[int, int]:
    """(first ts_ns, last ts_ns + 1) over the selected streams, from Parquet column statistics."""
    import pyarrow.parquet as pq

    from .storage import pending, ready

    lo, hi = None, None
    for (_, sym), files in list_streams(Path(data), pending(Path(data))).items():
        if symbols and sym not in symbols:
            continue
        for f in files:
            ready(f)  # an S3 dataset's file may still be downloading
            pf = pq.ParquetFile(f)
            col = pf.schema_arrow.get_field_index("ts_ns")
            for rg in range(pf.metadata.num_row_groups):
                st = pf.metadata.row_group(rg).column(col).statistics
                if st is None or not st.has_min_max:  # no statistics: read the column
                    ts = pf.read_row_group(rg, columns=["ts_ns"]).column(0).to_numpy()
                    if not len(ts):
                        continue
                    mn, mx = int(ts.min()), int(ts.max())
                else:
                    mn, mx = int(st.min), int(st.max)
                lo = mn if lo is None else min(lo, mn)
                hi = mx if hi is None else max(hi, mx)
    if lo is None:
        raise DataError("no rows in the selected streams", file=Path(data))
    return lo, hi + 1


def check_time_range(data, symbols, start_ns: int | None, end_ns: int | None) -> None:
    """Refuse start >= end, and a range that holds no data, before anything runs."""
    if start_ns is not None and end_ns is not None and start_ns >= end_ns:
        raise ConfigError(f"start {iso(start_ns)} is not before end {iso(end_ns)} "
                          "(end is exclusive: give an end after the start)")
    if start_ns is None and end_ns is None:
        return
    lo, hi = data_time_range(data, symbols)
    if (start_ns is not None and start_ns >= hi) or (end_ns is not None and end_ns <= lo):
        raise no_data_error(data, start_ns, end_ns, lo, hi)


def no_data_error(data, start_ns, end_ns, lo: int | None = None, hi: int | None = None) -> DataError:
    """'no events between start and end', naming the span the dataset does cover."""
    if lo is None:
        lo, hi = data_time_range(data)
    want = f"{iso(start_ns) if start_ns is not None else 'the start'} to " \
           f"{iso(end_ns) if end_ns is not None else 'the end'}"
    return DataError(f"no events from {want}", file=Path(data),
                     fix=f"the data covers {iso(lo)} to {iso(hi)}: choose --start/--end inside it")


def perp_data_warnings(instruments: dict, streams, *, trigger: str = "mark", funding: str = "data") -> list[str]:
    """One line per perpetual without mark prices (when liquidation uses marks) or without
    funding rates (when funding comes from the data). `streams`: (kind, symbol) pairs present."""
    present = set(streams)
    out = []
    for sym, ins in instruments.items():
        if not ins.is_perpetual:
            continue
        if trigger == "mark" and ("marks", sym) not in present:
            out.append(f"{sym}: no mark prices in the data: liquidation falls back to the last trade "
                       "price (import marks, or set margin.trigger = \"last\" to choose it)")
        if funding == "data" and ("funding", sym) not in present:
            out.append(f"{sym}: no funding rates in the data: no funding is charged (import funding, "
                       "or set margin.funding to a constant rate such as \"0.0001\")")
    return out
