"""Figures of sweeps and walk-forwards, drawn from their saved tables (never from the engine).

Object API on an Agg canvas (headless, no pyplot global state); each `fig_*` function returns a
Figure. `write_sweep_heatmap` and `write_walk_forward_figure` save the PNGs that `backtest sweep`
and `backtest walk-forward` leave in their folders: the library (sweep.py, walkforward.py)
returns tables only, and only the report layer imports matplotlib.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .files import HEATMAP, WALK_FORWARD_PNG

_MAX_ANNOTATED = 400  # cells; beyond this the numbers would be unreadable


def _figure(w: float, h: float) -> tuple[Figure, object]:
    fig = Figure(figsize=(w, h), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _label(v) -> str:
    return f"{v:,.6g}" if isinstance(v, (int, float)) else str(v)


def fig_sweep_heatmap(df: pl.DataFrame, x: str, y: str, metric: str) -> Figure:
    """The metric over two swept parameters (mean when other parameters vary too)."""
    agg = df.group_by([x, y]).agg(pl.col(metric).cast(pl.Float64).mean())
    xs = sorted(agg[x].unique().to_list())
    ys = sorted(agg[y].unique().to_list())
    grid = np.full((len(ys), len(xs)), np.nan)
    for xv, yv, m in agg.select(x, y, metric).iter_rows():
        grid[ys.index(yv), xs.index(xv)] = np.nan if m is None else m
    fig, ax = _figure(min(3 + 0.7 * len(xs), 14), min(2.5 + 0.45 * len(ys), 10))
    finite = grid[np.isfinite(grid)]
    lim = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    # diverging around zero for signed metrics (returns), sequential otherwise
    cmap, norm = "viridis", dict(vmin=lim[0], vmax=lim[1])
    if lim[0] < 0 < lim[1]:
        span = max(abs(lim[0]), abs(lim[1]))
        cmap, norm = "RdYlGn", dict(vmin=-span, vmax=span)
    im = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap=cmap, **norm)
    ax.set_xticks(range(len(xs)), [_label(v) for v in xs], rotation=45 if len(xs) > 8 else 0)
    ax.set_yticks(range(len(ys)), [_label(v) for v in ys])
    ax.set_xlabel(x.removeprefix("param."))
    ax.set_ylabel(y.removeprefix("param."))
    if grid.size <= _MAX_ANNOTATED:
        for (i, j), v in np.ndenumerate(grid):
            if math.isfinite(v):
                ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=7, color="black",
                        in_layout=False)
    fig.colorbar(im, ax=ax, label=metric)
    ax.set_title(f"Sweep: {metric} by {ax.get_xlabel()} and {ax.get_ylabel()}")
    return fig


def fig_walk_forward(equity: pl.DataFrame, windows: pl.DataFrame | None = None) -> Figure:
    """The stitched out-of-sample equity curve, with each out-of-sample window shaded."""
    fig, ax = _figure(11, 4)
    if equity.height:
        t = equity["ts_ns"].to_numpy().astype("datetime64[ns]")
        ax.plot(t, equity["equity"].to_numpy(), color="#1f5fa8", lw=1.2)
    if windows is not None and windows.height:
        for k, (a, b) in enumerate(windows.select("oos_start_ns", "oos_end_ns").iter_rows()):
            ax.axvspan(np.datetime64(int(a), "ns"), np.datetime64(int(b), "ns"),
                       color="#888888", alpha=0.12 if k % 2 else 0.05, lw=0)
    ax.set_title("Walk-forward: stitched out-of-sample equity")
    ax.set_ylabel("equity")
    ax.grid(True, alpha=0.3)
    fig.autofmt_xdate()
    return fig


def write_sweep_heatmap(sweep) -> Path | None:
    """SWEEP_DIR/heatmap.png of a finished sweep (a `backtest.sweep.SweepResult`) when it has
    heatmap axes (two swept parameters, more than one good run), else None. Failed runs are left
    out."""
    axes = sweep.heatmap_axes
    if axes is None:
        return None
    return save_heatmap(sweep.table, axes, Path(sweep.out) / HEATMAP)


def save_heatmap(table: pl.DataFrame, axes, path: Path) -> Path:
    """The heatmap of a sweep's results `table` over `axes` (x, y, metric), failed runs left out."""
    return save_png(fig_sweep_heatmap(table.filter(table["status"] != "failed"), *axes), path)


def write_walk_forward_figure(wf) -> Path:
    """WF_DIR/oos_equity.png of a finished walk-forward (a `backtest.walkforward.WalkForwardResult`)."""
    return save_png(fig_walk_forward(wf.equity, wf.windows), Path(wf.out) / WALK_FORWARD_PNG)


def save_png(fig: Figure, path: Path) -> Path:
    """Write `fig` to `path` atomically: a reader sees the old file or the whole new one."""
    from ..atomic import tmp_name

    tmp = tmp_name(path).with_suffix(".png")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
