"""Figures of a stress folder (backtest/scenarios/run.py), drawn from its saved tables, never from the
engine: a fan chart of equity across Monte Carlo paths with the replay on top, the probability
of liquidation against leverage, the crowd's liquidation volume beside the price, and the
scenario table. `write_stress_report(STRESS_DIR)` writes them to STRESS_DIR/report/.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from .style import empty_panel, new_figure, styled, time_axis, x_times

TABLE = "table.parquet"
MC_ROW = "monte carlo (median)"  # the scenario table's row of the paths: medians and P(liquidation)


def load_table(stress_dir: Path) -> pl.DataFrame:
    path = Path(stress_dir) / TABLE
    if not path.is_file():
        from ..errors import CascadeError

        raise CascadeError(f"{stress_dir}: not a stress folder (no {TABLE}); pass the --out folder "
                           "of a finished `backtest stress`")
    return pl.read_parquet(path)


def _equity(run_dir: str) -> pl.DataFrame | None:
    p = Path(run_dir) / "equity.parquet"
    return pl.read_parquet(p, columns=["ts_ns", "equity"]) if p.is_file() else None


def _pick_leverage(table: pl.DataFrame, leverage):
    levs = [v for v in table["leverage"].unique().to_list() if v is not None]
    if leverage is not None or not levs:
        return leverage
    return sorted(levs)[len(levs) // 2]


def _at(table: pl.DataFrame, leverage) -> pl.DataFrame:
    ok = table.filter(pl.col("status") != "failed")
    return ok.filter(pl.col("leverage").is_null() if leverage is None else pl.col("leverage") == leverage)


@styled
def fig_fan(table: pl.DataFrame, leverage=None) -> Figure:
    """Equity across the Monte Carlo paths: median, 25-75 % and 5-95 % bands (on the replay's
    sampling times, each path carried forward), every path faint, the replay on top."""
    fig, axes = new_figure(4.2)
    ax = axes[0, 0]
    leverage = _pick_leverage(table, leverage)
    rows = _at(table, leverage)
    replay = rows.filter(pl.col("kind") == "replay")
    paths = rows.filter(pl.col("kind") == "path")
    ref = _equity(replay["run_dir"][0]) if replay.height else None
    curves = [c for c in (_equity(d) for d in paths["run_dir"]) if c is not None and c.height]
    if ref is None and not curves:
        empty_panel(ax, "no equity to draw")
        return fig
    grid = (ref if ref is not None else curves[0])["ts_ns"].to_numpy()
    if curves:
        m = np.vstack([_carry(c, grid) for c in curves])
        for row in m:
            ax.plot(x_times(grid), row, color="#4c72b0", alpha=0.06, lw=0.6)
        q = np.nanquantile(m, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
        ax.fill_between(x_times(grid), q[0], q[4], color="#4c72b0", alpha=0.18, lw=0, label="5–95 % of paths")
        ax.fill_between(x_times(grid), q[1], q[3], color="#4c72b0", alpha=0.30, lw=0, label="25–75 %")
        ax.plot(x_times(grid), q[2], color="#4c72b0", lw=1.2, label=f"median of {len(curves)} paths")
    if ref is not None:
        ax.plot(x_times(grid), ref["equity"].to_numpy(), color="black", lw=1.6, label="replay")
    time_axis(ax)
    ax.set_ylabel("equity")
    lev = "" if leverage is None else f" at {leverage:g}x"
    ax.set_title(f"Equity across Monte Carlo paths{lev}")
    ax.legend(loc="best", fontsize=8)
    return fig


def _carry(curve: pl.DataFrame, grid: np.ndarray) -> np.ndarray:
    ts, eq = curve["ts_ns"].to_numpy(), curve["equity"].to_numpy()
    k = np.searchsorted(ts, grid, side="right") - 1
    return np.where(k >= 0, eq[np.maximum(k, 0)], np.nan)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95 % interval of a proportion k / n."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    d = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, mid - half), min(1.0, mid + half))


@styled
def fig_liquidation_vs_leverage(table: pl.DataFrame) -> Figure:
    """Probability of liquidation across the Monte Carlo paths at each leverage (Wilson 95 %
    interval), with the replay's outcome as a marker."""
    fig, axes = new_figure(3.8)
    ax = axes[0, 0]
    ok = table.filter((pl.col("status") != "failed") & pl.col("leverage").is_not_null())
    paths = ok.filter(pl.col("kind") == "path")
    if not paths.height:
        empty_panel(ax, "no leverage sweep (run with --leverages 2,5,10,... and --paths N)")
        return fig
    g = paths.group_by("leverage").agg(pl.col("liquidated").sum().alias("k"), pl.len().alias("n")).sort("leverage")
    lev, k, n = g["leverage"].to_numpy(), g["k"].to_numpy(), g["n"].to_numpy()
    p = k / n
    lo_hi = np.array([wilson(int(a), int(b)) for a, b in zip(k, n)])
    ax.fill_between(lev, lo_hi[:, 0], lo_hi[:, 1], color="#c44e52", alpha=0.2, lw=0, label="95 % interval")
    ax.plot(lev, p, "o-", color="#c44e52", label=f"Monte Carlo ({int(n.max())} paths)")
    rep = ok.filter(pl.col("kind") == "replay").sort("leverage")
    if rep.height:
        ax.plot(rep["leverage"].to_numpy(), rep["liquidated"].cast(pl.Float64).to_numpy(), "kx",
                ms=8, label="replay (0 = survived, 1 = liquidated)")
    ax.axhline(0.05, color="#777777", lw=0.8, ls="--")
    ax.text(lev.min(), 0.05, " 5 %", va="bottom", fontsize=8, color="#555555")
    ax.set_xscale("log")
    ax.minorticks_off()  # only the leverages tested are labelled
    ax.set_xticks(lev, [f"{v:g}x" for v in lev])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("leverage")
    ax.set_ylabel("probability of liquidation")
    ax.set_title("Probability of liquidation against leverage")
    ax.legend(loc="best", fontsize=8)
    return fig


@styled
def fig_crowd(table: pl.DataFrame, symbol: str | None = None) -> Figure:
    """The crowd's liquidations per hour (longs below zero, shorts above) under the price of the
    crowd variant (the replay moved by the cascade) and the plain replay."""
    fig, axes = new_figure(5.2, 2, 1, sharex=True, height_ratios=[2, 1])
    ax_p, ax_v = axes[0, 0], axes[1, 0]
    ok = table.filter(pl.col("status") != "failed")
    crowd_row = ok.filter((pl.col("variant") == "crowd") & pl.col("crowd_table").is_not_null())
    if not crowd_row.height or not Path(crowd_row["crowd_table"][0]).is_file():
        empty_panel(ax_p, "no crowd (run with --crowd on)")
        empty_panel(ax_v, "")
        return fig
    buckets = pl.read_parquet(crowd_row["crowd_table"][0])
    spec = _spec(crowd_row["run_dir"][0])
    symbol = symbol or (spec.get("crowd") or {}).get("symbol", "BTCUSDT")
    for row, color, label in ((ok.filter(pl.col("kind") == "replay").head(1), "#999999", "replay"),
                              (crowd_row.head(1), "black", "with the crowd's cascade")):
        if row.height:
            bars = _bars(row["run_dir"][0], symbol)
            if bars is not None:
                ax_p.plot(x_times(bars["ts_ns"].to_numpy()), bars["close"].to_numpy(), color=color, lw=1, label=label)
    ax_p.set_ylabel(f"{symbol} last trade")
    ax_p.legend(loc="best", fontsize=8)
    liq = buckets.filter(pl.col("ts_ns").is_not_null())
    if liq.height:
        hour = 3_600_000_000_000
        h = (liq.with_columns((pl.col("ts_ns") // hour * hour).alias("hour"))
             .group_by("hour", "side").agg(pl.col("notional").sum()).sort("hour"))
        for side, color, label in ((1, "#c44e52", "longs liquidated"), (-1, "#55a868", "shorts liquidated")):
            s = h.filter(pl.col("side") == side)
            if s.height:
                ax_v.bar(x_times(s["hour"].to_numpy() + hour // 2), -side * s["notional"].to_numpy() / 1e6,
                         width=0.9 / 24, color=color, label=label)
        total, peak = liq["notional"].sum(), h.group_by("hour").agg(pl.col("notional").sum())["notional"].max()
        ax_v.set_title(f"crowd liquidations: {total / 1e9:,.2f} B USD in all, peak hour {peak / 1e6:,.0f} M",
                       fontsize=9)
        ax_v.legend(loc="best", fontsize=8)
    else:
        ax_v.set_title("the crowd was not liquidated", fontsize=9)
    ax_v.axhline(0, color="#777777", lw=0.6)
    ax_v.set_ylabel("M USD / hour")
    time_axis(ax_v)
    ax_p.set_title("The crowd's liquidation cascade")
    return fig


def _spec(run_dir: str) -> dict:
    p = Path(run_dir).parent.parent / "stress.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def _bars(run_dir: str, symbol: str) -> pl.DataFrame | None:
    p = Path(run_dir) / "bars.parquet"
    if not p.is_file():
        return None
    b = pl.read_parquet(p)
    if "symbol" in b.columns:
        b = b.filter(pl.col("symbol") == symbol)
    return b if b.height else None


def scenario_table(table: pl.DataFrame) -> pl.DataFrame:
    """The replay and each scenario (and the Monte Carlo summary per leverage), one row each."""
    ok = table.filter(pl.col("kind") != "path")
    rows = ok.select("variant", "leverage", "status", "final_equity", "return", "max_drawdown",
                     "liquidated", "liquidation_time", "worst_margin_ratio")
    paths = table.filter((pl.col("kind") == "path") & (pl.col("status") != "failed"))
    if paths.height:
        mc = paths.group_by("leverage", maintain_order=True).agg(
            pl.lit(MC_ROW).alias("variant"), pl.lit("ran").alias("status"),
            pl.col("final_equity").median(), pl.col("return").median(), pl.col("max_drawdown").median(),
            pl.col("liquidated").mean().alias("p_liq"), pl.col("liquidation_time").min(),
            pl.col("worst_margin_ratio").median())
        rows = pl.concat([rows.with_columns(pl.col("liquidated").cast(pl.Float64)),
                          mc.rename({"p_liq": "liquidated"}).select(rows.columns)], how="vertical_relaxed")
    return rows


@styled
def fig_scenario_table(table: pl.DataFrame) -> Figure:
    rows = scenario_table(table)
    fig, axes = new_figure(0.7 + 0.26 * max(rows.height, 1))
    ax = axes[0, 0]
    ax.axis("off")
    cells = []
    for r in rows.iter_rows(named=True):
        liq = r["liquidated"]
        cells.append([str(r["variant"])[:48], "" if r["leverage"] is None else f"{r['leverage']:g}x",
                      _f(r["final_equity"], "{:,.0f}"), _f(r["return"], "{:+.1%}"),
                      _f(r["max_drawdown"], "{:.1%}"),
                      _f(liq, "p={:.0%}") if r["variant"] == MC_ROW else ("" if liq is None else "yes" if liq else "no"),
                      "" if r["liquidation_time"] is None else r["liquidation_time"].strftime("%m-%d %H:%M"),
                      _f(r["worst_margin_ratio"], "{:.2f}")])
    head = ["scenario", "leverage", "final equity", "return", "max drawdown", "liquidated",
            "liquidation (UTC)", "worst margin ratio"]
    t = ax.table(cellText=cells or [[""] * len(head)], colLabels=head, loc="upper center", cellLoc="right")
    t.auto_set_font_size(False)
    t.set_fontsize(8)
    t.auto_set_column_width(list(range(len(head))))
    ax.set_title("Scenarios")
    return fig


def _f(v, fmt: str) -> str:
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


def markdown(df: pl.DataFrame) -> str:
    """A plain Markdown table (numbers to 6 significant digits, times in UTC)."""
    def cell(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.6g}"
        return v.strftime("%Y-%m-%d %H:%M:%S") if hasattr(v, "strftime") else str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.iter_rows()]
    return "\n".join(lines) + "\n"


FIGURES = {"fan": fig_fan, "liquidation_vs_leverage": fig_liquidation_vs_leverage, "crowd": fig_crowd,
           "scenarios": fig_scenario_table}


def write_stress_report(stress_dir: Path, formats: str = "png,pdf") -> dict[str, Path]:
    """Every figure as PNG and one multi-page PDF into STRESS_DIR/report/ (plus scenarios.md)."""
    from matplotlib.backends.backend_pdf import PdfPages

    from ..atomic import tmp_name, write_text

    stress_dir = Path(stress_dir)
    table = load_table(stress_dir)
    out = stress_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    wanted = {f.strip() for f in formats.split(",") if f.strip()}
    figs = {name: fn(table) for name, fn in FIGURES.items()}
    written = {}
    if "png" in wanted:
        for name, fig in figs.items():
            path = out / f"{name}.png"
            tmp = tmp_name(path).with_suffix(".png")
            fig.savefig(tmp, format="png")
            os.replace(tmp, path)
            written[name] = path
    if "pdf" in wanted:
        path = out / "stress.pdf"
        tmp = tmp_name(path).with_suffix(".pdf")
        with PdfPages(tmp) as pdf:
            for fig in figs.values():
                pdf.savefig(fig)
        os.replace(tmp, path)
        written["pdf"] = path
    write_text(out / "scenarios.md", markdown(scenario_table(table)))
    written["md"] = out / "scenarios.md"
    return written

