"""Account figures of a run report: equity against buy-and-hold, drawdown, position and
leverage, margin ratio and liquidation distance."""
from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib import ticker
from matplotlib.figure import Figure

from .. import metrics as M
from . import decimate
from .runview import RunView, mark_liquidations
from .style import COLORS, Thousands, empty_panel, fmt_ts, new_figure, pct_small, styled, time_axis, x_times, money


# ------------------------------------------------------------------------------------------------
# Figures
@styled
def fig_equity(result, benchmark: str | None = None) -> Figure:
    """Equity curve against buy-and-hold of one symbol (the first with bars by default)."""
    run = RunView(result)
    fig, axes = new_figure(4.6)
    ax = axes[0, 0]
    ax.set_title(f"Equity vs buy & hold ({run.ccy})")
    ts, eq = run.equity
    if len(ts) == 0:
        empty_panel(ax, "No equity samples in this run")
        return fig
    x, y = decimate.minmax(ts, eq)
    tot = M.total_return(run.initial, float(eq[-1]))
    ax.plot(x_times(x), y, color=COLORS["strategy"], lw=1.4, label=f"Strategy ({tot:+.1%})", gid="equity")
    bts, growth, bsym = M.buy_and_hold(run.t("bars"), benchmark, fills=run.t("fills"))
    if len(bts):
        bx, by = decimate.minmax(bts, growth * run.initial)
        ax.plot(x_times(bx), by, color=COLORS["benchmark"], lw=1.1, ls="--",
                label=f"Buy & hold {bsym} ({growth[-1] - 1:+.1%})", gid="benchmark")
    ax.axhline(run.initial, color="#bbbbbb", lw=0.8, ls=":", zorder=0)
    liq_ts = run.liquidation_ts()
    if len(liq_ts):
        idx = np.clip(np.searchsorted(ts, liq_ts, side="right") - 1, 0, len(ts) - 1)
        ax.scatter(x_times(ts[idx]), eq[idx], marker="X", s=70, color=COLORS["liq"], edgecolor="white",
                   linewidth=0.6, zorder=5, label=f"Liquidation ({len(liq_ts)})", gid="liquidations")
    ax.set_ylabel(f"Equity ({run.ccy})")
    ax.set_xlabel("Time (UTC)")
    ax.yaxis.set_major_formatter(Thousands())
    time_axis(ax)
    ax.legend(loc="best")
    ax.text(1.0, 1.01, f"start {money(run.initial)}  ·  end {money(float(eq[-1]))} {run.ccy}",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=8, color="#555555")
    return fig


@styled
def fig_drawdown(result) -> Figure:
    """Underwater curve (equity / running peak - 1) with the deepest point annotated."""
    run = RunView(result)
    fig, axes = new_figure(3.4)
    ax = axes[0, 0]
    ax.set_title("Drawdown from running peak")
    ts, eq = run.equity
    if len(ts) == 0:
        empty_panel(ax, "No equity samples in this run")
        return fig
    dd = M.drawdown_series(eq, run.initial)
    x, y = decimate.minmax(ts, dd)
    ax.fill_between(x_times(x), y, 0, color=COLORS["down"], alpha=0.25, lw=0, step="post")
    ax.plot(x_times(x), y, color=COLORS["down"], lw=1.0, label="Strategy", gid="drawdown")
    bts, growth, bsym = M.buy_and_hold(run.t("bars"), fills=run.t("fills"))
    if len(bts):
        bx, by = decimate.minmax(bts, M.drawdown_series(growth))
        ax.plot(x_times(bx), by, color=COLORS["benchmark"], lw=1.0, ls="--", label=f"Buy & hold {bsym}",
                gid="benchmark-drawdown")
    info = M.drawdown_info(ts, eq, run.initial, longest=False, dd=dd)
    if info["max_drawdown"] < 0:
        tx = x_times([info["max_drawdown_trough_ts_ns"]])[0]
        ax.scatter([tx], [info["max_drawdown"]], color=COLORS["down"], s=25, zorder=5)
        rec = ("recovered " + fmt_ts(info["max_drawdown_recovery_ts_ns"])
               if info["max_drawdown_recovery_ts_ns"] else "not recovered")
        ax.annotate(f"max {info['max_drawdown']:.1%} at {fmt_ts(info['max_drawdown_trough_ts_ns'])}"
                    f" UTC\n{rec}", (tx, info["max_drawdown"]), xytext=(12, 8),
                    textcoords="offset points", fontsize=8, color=COLORS["down"],
                    arrowprops={"arrowstyle": "-", "color": COLORS["down"], "lw": 0.6})
    lo = min(float(np.nanmin(y)), float(np.nanmin(by)) if len(bts) else 0.0)
    deepest = M.max_drawdown_any_event(run.manifest)  # between samples, the kernel saw deeper
    if deepest is not None and deepest < info["max_drawdown"]:
        ax.axhline(deepest, color=COLORS["down"], lw=0.8, ls=(0, (2, 2)), gid="drawdown-any-event",
                   label=f"Deepest at any event {deepest:.1%} (between samples)")
        lo = min(lo, deepest)
    ax.set_ylim(min(lo * 1.15, -0.01), 0.005)
    ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    ax.set_ylabel("Drawdown (%)")
    ax.set_xlabel("Time (UTC)")
    time_axis(ax)
    ax.legend(loc="lower left")
    return fig


# by trigger kind (core/enums.py ORDER_TRAITS): a trailing stop plots as a stop
def _liq_line(ax, x, lp: np.ndarray, prices: np.ndarray) -> None:
    """The liquidation price, clipped to the price range so that a far-away liquidation price
    cannot squash the price axis; where it is off the scale, triangles on the edge mark it."""
    if not len(prices):
        ax.plot(x, lp, color=COLORS["liq_line"], lw=1.1, ls=(0, (5, 2)), label="Liquidation price",
                gid="liq-price")
        return
    top, bottom = float(prices.max()), float(prices.min())
    pad = 0.08 * (top - bottom) or 0.01 * abs(top) or 1.0
    ymin, ymax = bottom - pad, top + pad
    inside = (lp >= ymin) & (lp <= ymax)
    ax.plot(x, np.where(inside, lp, np.nan), color=COLORS["liq_line"], lw=1.1, ls=(0, (5, 2)),
            label="Liquidation price", gid="liq-price")
    off = np.isfinite(lp) & ~inside
    if off.any():
        xs = np.asarray(x)
        for sel, edge, marker in ((off & (lp > ymax), ymax, "^"), (off & (lp < ymin), ymin, "v")):
            if sel.any():
                ax.scatter(xs[sel], np.full(int(sel.sum()), edge), s=12, color=COLORS["liq_line"],
                           marker=marker, clip_on=False, zorder=4, gid="liq-offscale",
                           label=f"Liquidation price off the scale ({_fmt_range(lp[sel])})")
        ax.set_ylim(ymin, ymax)


def _fmt_range(v: np.ndarray) -> str:
    lo, hi = float(np.min(v)), float(np.max(v))
    return f"{lo:,.0f}" if lo == hi else f"{lo:,.0f} to {hi:,.0f}"


@styled
def fig_position(result) -> Figure:
    """Signed position notional per symbol (position x mark, from the bars) and account leverage
    (gross exposure / equity, from the equity samples)."""
    run = RunView(result)
    fig, axes = new_figure(5.6, 2, 1, sharex=True, height_ratios=[1.3, 1])
    ax, axl = axes[0, 0], axes[1, 0]
    fig.suptitle("Position and leverage")
    ax.set_title(f"Position notional per symbol ({run.ccy}, + long / − short)")
    bars = run.t("bars")
    drawn = False
    if bars.height and "position" in bars.columns:
        for sym in run.traded_symbols():
            b = run.for_symbol("bars", sym)
            if b.height == 0 or not (b["position"].fill_nan(0.0) != 0).any():
                continue
            notional = (b["position"] * b["mark"]).fill_nan(0.0).to_numpy()
            x, y = decimate.minmax(b["ts_ns"].to_numpy(), notional)
            ax.step(x_times(x), y, where="post", lw=1.1, label=sym, gid=f"position-{sym}")
            drawn = True
    elif run.t("fills").height:
        f = M.by_time(run.t("fills"))
        for sym in run.traded_symbols():
            g = f.filter(run.symbol_col(f) == sym)
            if g.height:
                ax.step(x_times(g["ts_ns"].to_numpy()), (g["position_after"] * g["price"]).to_numpy(),
                        where="post", lw=1.1, label=sym, gid=f"position-{sym}")
                drawn = True
    if drawn:
        ax.axhline(0, color="#888888", lw=0.7)
        ax.set_ylabel(f"Notional ({run.ccy})")
        ax.yaxis.set_major_formatter(Thousands(sign=True))
        ax.legend(loc="upper right", ncol=4)
        mark_liquidations(ax, run, label=False)
        time_axis(ax)
    else:
        empty_panel(ax, "No positions were held")
    axl.set_title("Leverage (gross exposure / equity)")
    lts, lev = M.leverage_series(run.t("equity"))
    if len(lts) and np.isfinite(lev).any() and np.nanmax(lev) > 0:
        x, y = decimate.minmax(lts, lev)
        axl.fill_between(x_times(x), y, 0, color=COLORS["strategy"], alpha=0.15, lw=0, step="post")
        axl.plot(x_times(x), y, color=COLORS["strategy"], lw=1.1, drawstyle="steps-post", gid="leverage")
        i = int(np.nanargmax(lev))
        axl.annotate(f"max {lev[i]:.1f}×", (x_times([lts[i]])[0], lev[i]), xytext=(8, -4),
                     textcoords="offset points", fontsize=8, color=COLORS["strategy"])
        axl.set_ylim(0, float(np.nanmax(lev)) * 1.18)
        axl.set_ylabel("Leverage (×)")
        axl.yaxis.set_major_formatter(ticker.FormatStrFormatter("%.1f×"))
        mark_liquidations(axl, run)
        if axl.get_legend_handles_labels()[0]:
            axl.legend(loc="upper right")
        axl.set_xlabel("Time (UTC)")
        time_axis(axl)
    else:
        empty_panel(axl, "No leverage data (no exposure or no equity samples)")
    return fig


@styled
def fig_margin(result) -> Figure:
    """Margin ratio (maintenance margin / margin balance; 100% = liquidation) and the distance of
    the mark price to the liquidation price per symbol."""
    run = RunView(result)
    fig, axes = new_figure(5.6, 2, 1, sharex=True)
    ax, axd = axes[0, 0], axes[1, 0]
    fig.suptitle("Margin and distance to liquidation")
    ax.set_title("Margin ratio (maintenance margin / margin balance of the pool liquidated)")
    eqt = run.t("equity")
    pools = [("margin_ratio", "Nearest liquidation", COLORS["strategy"], 1.3, "margin-ratio"),
             ("cross_margin_ratio", "Cross pool", "#1f77b4", 0.8, "margin-ratio-cross"),
             ("iso_margin_ratio", "Isolated position (worst)", "#ff7f0e", 0.8, "margin-ratio-isolated")]
    cols = [p for p in pools if eqt.height and p[0] in eqt.columns]
    mr = M.by_time(eqt.select("ts_ns", *[p[0] for p in cols])) if cols else pl.DataFrame()
    if mr.height and (mr["margin_ratio"] != 0).any():
        # the ratios liquidation tests, per pool (docs/metrics.md): a pool is liquidated when its
        # ratio reaches 100%; a margin balance at or below 0 (inf) is drawn at the top
        finite = mr["margin_ratio"].to_numpy()
        finite = finite[np.isfinite(finite)]
        top = max(1.2, float(finite.max()) * 1.08 if len(finite) else 1.2)
        ax.axhspan(1.0, top * 10, color=COLORS["down"], alpha=0.08, lw=0)
        ax.axhline(1.0, color=COLORS["down"], lw=1.0, ls="--", label="Liquidation threshold (100%)")
        for col, label, color, lw, gid in cols:
            v = mr[col].fill_nan(None).fill_null(0.0).to_numpy()
            if col != "margin_ratio" and not (v != 0).any():
                continue  # a pool this run never used
            x, y = decimate.minmax(mr["ts_ns"].to_numpy(), np.where(np.isinf(v), top, v))
            ax.plot(x_times(x), y, color=color, lw=lw, drawstyle="steps-post", gid=gid, label=label)
        ax.set_ylim(0, top)
        ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
        ax.set_ylabel("Margin ratio (%)")
        mark_liquidations(ax, run)
        ax.legend(loc="center left")
        time_axis(ax)
    else:
        empty_panel(ax, "No margin in use during this run")
    axd.set_title("Distance to liquidation |mark − liq price| / mark")
    d = M.liq_distance(run.t("bars"))
    if d.height:
        for sym in [s for s in run.traded_symbols() if s in set(d["symbol"].to_list())]:
            g = d.filter(pl.col("symbol") == sym).sort("ts_ns")
            # re-insert gaps where the symbol was flat so the line does not bridge them
            b = run.for_symbol("bars", sym).select("ts_ns").join(g, on="ts_ns", how="left")
            x, y = decimate.minmax(b["ts_ns"].to_numpy(), b["distance"].fill_null(np.nan).to_numpy())
            axd.plot(x_times(x), y, lw=1.1, label=sym, gid=f"liq-distance-{sym}")
        i = int(d["distance"].arg_min())
        r = d.row(i, named=True)
        axd.scatter(x_times([r["ts_ns"]]), [r["distance"]], color=COLORS["down"], s=22, zorder=5)
        axd.annotate(f"min {pct_small(r['distance'])} ({r['symbol']}, {fmt_ts(r['ts_ns'])} UTC)",
                     (x_times([r["ts_ns"]])[0], r["distance"]), xytext=(10, 10),
                     textcoords="offset points", fontsize=8, color=COLORS["down"])
        axd.set_ylim(0, float(d["distance"].max()) * 1.12 + 1e-9)
        axd.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
        axd.set_ylabel("Distance (% of mark)")
        mark_liquidations(axd, run, label=False)
        axd.legend(loc="upper right", ncol=4)
        axd.set_xlabel("Time (UTC)")
        time_axis(axd)
    else:
        empty_panel(axd, "No liquidation price (no leveraged position)")
    return fig
