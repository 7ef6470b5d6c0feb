"""The stress table (one row per run) and its summary statistics (definitions in docs/stress.md).

Summary, per group of runs (the replay and each scenario alone; the Monte Carlo paths together),
per leverage: the probability of liquidation (share of runs with at least one liquidation), the
5/25/50/75/95 % quantiles of return and of max drawdown (linear interpolation), and the expected
shortfall at 95 %: minus the mean of the worst ceil(5 % of n) returns (a positive loss fraction).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl

TABLE = "table.parquet"
SUMMARY = "summary.json"
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def run_row(run_dir: Path, status: str) -> dict:
    """One run's figures, from its saved folder: final equity, return, max drawdown (a negative
    fraction of the peak), whether and when it was liquidated, the worst sampled margin ratio."""
    run_dir = Path(run_dir)
    m = json.loads((run_dir / "manifest.json").read_text())
    h = m.get("headline") or {}
    liq = pl.read_parquet(run_dir / "liquidations.parquet", columns=["ts_ns"])
    eq = pl.read_parquet(run_dir / "equity.parquet", columns=["margin_ratio"])
    worst = eq["margin_ratio"].drop_nans().max() if eq.height else None
    return {"status": status, "error": None, "final_equity": h.get("final_equity"),
            "return": h.get("return"), "max_drawdown": h.get("max_drawdown"),
            "liquidated": liq.height > 0, "liquidation_ns": int(liq["ts_ns"].min()) if liq.height else None,
            "worst_margin_ratio": None if worst is None else float(worst)}


COLUMNS = {"variant": pl.Utf8, "kind": pl.Utf8, "path": pl.Int64, "leverage": pl.Float64,
           "status": pl.Utf8, "final_equity": pl.Float64, "return": pl.Float64,
           "max_drawdown": pl.Float64, "liquidated": pl.Boolean, "liquidation_ns": pl.Int64,
           "worst_margin_ratio": pl.Float64, "error": pl.Utf8, "config_id": pl.Utf8,
           "run_dir": pl.Utf8, "crowd_table": pl.Utf8}


def write_table(out: Path, rows: list[dict]) -> pl.DataFrame:
    from ..atomic import write_parquet

    table = pl.DataFrame([{k: r.get(k) for k in COLUMNS} for r in rows], schema=COLUMNS)
    table = table.with_columns(pl.from_epoch("liquidation_ns", time_unit="ns").dt.replace_time_zone("UTC")
                               .alias("liquidation_time"))
    write_parquet(table.to_arrow(), Path(out) / TABLE)
    return table


def expected_shortfall(returns: np.ndarray, level: float = 0.95) -> float | None:
    """Minus the mean of the worst ceil((1 - level) * n) returns."""
    r = np.sort(np.asarray(returns, float))
    if not len(r):
        return None
    k = max(1, math.ceil((1.0 - level) * len(r) - 1e-9))
    return float(-r[:k].mean())


def summarize(table: pl.DataFrame, out: Path | None = None) -> pl.DataFrame:
    """One row per (group, leverage): n, p_liquidation, return and drawdown quantiles, ES 95 %."""
    ok = table.filter(pl.col("status") != "failed")
    ok = ok.with_columns(pl.when(pl.col("kind") == "path").then(pl.lit("monte carlo"))
                         .otherwise(pl.col("variant")).alias("group"))
    rows = []
    for (group, lev), g in ok.group_by("group", "leverage", maintain_order=True):
        r = g["return"].to_numpy().astype(float)
        dd = g["max_drawdown"].to_numpy().astype(float)
        row = {"group": group, "leverage": lev, "n": g.height,
               "p_liquidation": float(g["liquidated"].mean()) if g.height else None}
        for q in QUANTILES:
            row[f"return_q{int(q * 100):02d}"] = float(np.quantile(r, q)) if len(r) else None
        for q in QUANTILES:
            row[f"drawdown_q{int(q * 100):02d}"] = float(np.quantile(dd, q)) if len(dd) else None
        row["es95"] = expected_shortfall(r)
        rows.append(row)
    summary = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
    if out is not None:
        from ..atomic import write_text

        write_text(Path(out) / SUMMARY, json.dumps(summary.to_dicts(), indent=2, default=str))
    return summary
