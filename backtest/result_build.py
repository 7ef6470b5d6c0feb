"""A run's Result from its output rows and the manifest the engine wrote: tables, round trips,
metrics. numba-free (polars and numpy only), so that a batch's result helper (batch_helper.py)
can build Results in a process that never loads the compiled engine."""
from __future__ import annotations

import numpy as np
import polars as pl

from .core.schema import (
    BAR_DTYPE, EQUITY_DTYPE, FILL_DTYPE, FUNDING_DTYPE, LIQUIDATION_DTYPE, LOAN_DTYPE, ORDER_DTYPE,
    LoanEvent,
)
from .result import Result, collect_small

# output table -> (row dtype, the engine's buffer it comes from, sort column)
TABLE_ROWS = {
    "fills": (FILL_DTYPE, "fills", None),
    "orders": (ORDER_DTYPE, "orders", "oid"),
    "equity": (EQUITY_DTYPE, "equity", None),
    "bars": (BAR_DTYPE, "bars", None),
    "funding": (FUNDING_DTYPE, "funding", None),
    "liquidations": (LIQUIDATION_DTYPE, "liquidations", None),
    "loans": (LOAN_DTYPE, "loans", None),
}


def jsonable(v):
    """`v` with numpy values as Python ones and non-finite floats as None (JSON has neither)."""
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def joined(parts: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """The drained parts of an output buffer as one record array of `dtype`."""
    # joined as bytes: numpy's concatenate of record arrays promotes their dtypes part by part
    # (18 us each, and a table has a part per chunk)
    raw = [np.ascontiguousarray(p, dtype=dtype).view(np.uint8) for p in parts]
    return np.concatenate(raw).view(dtype) if raw else np.zeros(0, dtype=dtype)


def table(parts: list[np.ndarray], dtype: np.dtype, symbols: list[str], sort_by: str | None = None) -> pl.DataFrame:
    """The rows of `parts` as a DataFrame (columns in dtype order, `symbol` names after `sym`),
    built column by column: a run builds seven of these per Result, and each polars operation on a
    small frame costs more than the rows do."""
    arr = joined(parts, dtype)
    if sort_by is not None:
        arr = arr[np.argsort(arr[sort_by], kind="stable")]
    cols = []
    for name in dtype.names:
        cols.append(pl.Series(name, arr[name]))
        if name == "sym":
            names = np.array(symbols + [""], dtype=object)
            idx = np.where((arr["sym"] >= 0) & (arr["sym"] < len(symbols)), arr["sym"], len(symbols))
            cols.append(pl.Series("symbol", names[idx], dtype=pl.Utf8))
    return pl.DataFrame(cols)


def build_result(rows: dict[str, list[np.ndarray]], manifest: dict) -> Result:
    """The Result of a run: `rows` are the engine's drained output buffers (engine._Buffers.out),
    `manifest` everything but what the tables give (headline trades and max_drawdown, metrics,
    costs_by_symbol), which is filled in here."""
    from .metrics import compute_metrics, costs_by_symbol
    from .trades import round_trips

    syms = list(manifest["symbols"])
    tables = {name: table(rows[buf], dtype, syms, sort_by) for name, (dtype, buf, sort_by) in TABLE_ROWS.items()}
    names = {int(e): e.name.lower() for e in LoanEvent}
    tables["loans"] = collect_small(tables["loans"].lazy().rename({"event": "event_code"}).with_columns(
        pl.col("event_code").replace_strict(names, return_dtype=pl.Utf8).alias("event")))
    tables["trades"] = round_trips(tables["fills"])
    manifest["headline"]["trades"] = len(tables["trades"])
    result = Result(manifest=manifest, tables=tables)  # the metrics read its tables
    manifest["metrics"] = jsonable(compute_metrics(result))
    manifest["headline"]["max_drawdown"] = manifest["metrics"].get("max_drawdown")
    manifest["costs_by_symbol"] = costs_by_symbol(tables["fills"], tables["funding"]).to_dicts()
    return result.replace(manifest=manifest)
