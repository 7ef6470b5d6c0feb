"""Return figures of a run report: calendar heatmap, rolling Sharpe, run comparison, and the
summary page with its metric tables."""
from __future__ import annotations

import math

import matplotlib as mpl
import numpy as np
import polars as pl
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .. import metrics as M
from . import decimate
from .runview import RunView, mark_liquidations
from .style import COLORS, CYCLE, DPI, Thousands, WIDTH, duration, empty_panel, fmt_ts, new_figure, num, pct, pct_small, styled, time_axis, x_times


_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


@styled
def fig_return_heatmap(result) -> Figure:
    """Mean hourly return (bps) by UTC hour of day × day of week, from the resampled equity."""
    run = RunView(result)
    fig, axes = new_figure(3.9)
    ax = axes[0, 0]
    ax.set_title("Mean hourly return by hour of day × day of week (UTC, bps)")
    ts, eq = run.equity
    start, r = (M.period_returns(ts, eq, "1h", start=run.initial) if len(ts)
                else (np.empty(0, np.int64), np.empty(0)))
    if len(r) == 0:
        empty_panel(ax, "Less than one hour of equity samples")
        return fig
    hour = (start // M.NS_PER_HOUR) % 24
    dow = ((start // M.NS_PER_DAY) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    total = np.zeros((7, 24))
    count = np.zeros((7, 24))
    np.add.at(total, (dow, hour), r * 1e4)
    np.add.at(count, (dow, hour), 1)
    with np.errstate(invalid="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    lim = float(np.nanmax(np.abs(mean))) or 1.0
    cmap = mpl.colormaps["RdYlGn"].with_extremes(bad="#f2f2f2")
    im = ax.imshow(np.ma.masked_invalid(mean), cmap=cmap, vmin=-lim, vmax=lim, aspect="auto",
                   interpolation="nearest", gid="heatmap")
    if np.isfinite(mean).sum() <= 7 * 24:
        for d, h in zip(*np.nonzero(np.isfinite(mean))):
            v = mean[d, h]
            ax.text(h, d, f"{v:,.0f}", ha="center", va="center", fontsize=6.2,
                    color="white" if abs(v) > 0.6 * lim else "#222222")
    ax.set_xticks(range(24), [f"{h:02d}" for h in range(24)])
    ax.set_yticks(range(7), _DAYS)
    ax.set_xlabel("Hour of day (UTC, start of the hour)")
    ax.set_ylabel("Day of week")
    ax.grid(False)
    for s in ax.spines.values():
        s.set_visible(False)
    cb = fig.colorbar(im, ax=ax, pad=0.01, fraction=0.04)
    cb.set_label("Mean return (bps)")
    cb.ax.yaxis.set_major_formatter(Thousands())
    ax.text(1.0, 1.01, f"{len(r):,} hourly returns", transform=ax.transAxes, ha="right",
            va="bottom", fontsize=8, color="#555555")
    return fig


@styled
def fig_rolling_sharpe(result, window: int | None = None) -> Figure:
    """Rolling annualised Sharpe ratio of the resampled returns (the metrics' frequency)."""
    run = RunView(result)
    fig, axes = new_figure(3.6)
    ax = axes[0, 0]
    ts, eq = run.equity
    freq = M.choose_frequency(int(ts[-1] - ts[0])) if len(ts) else "1h"
    ppy = M.PERIODS_PER_YEAR[freq]
    start, r = (M.period_returns(ts, eq, freq, start=run.initial) if len(ts)
                else (np.empty(0, np.int64), np.empty(0)))
    unit = "hours" if freq == "1h" else "days"
    w = window or (24 if freq == "1h" else 30)
    if len(r) < 2 * w and window is None:
        w = max(3, len(r) // 3)
    ax.set_title(f"Rolling Sharpe ratio ({w} {unit} window, annualised ×√{ppy:,})")
    if len(r) < max(w, 3) + 1:
        empty_panel(ax, f"Too few {'hourly' if freq == '1h' else 'daily'} returns ({len(r)}) "
                   "for a rolling Sharpe ratio")
        return fig
    s = pl.Series(r)
    mean = s.rolling_mean(w).to_numpy()
    sd = s.rolling_std(w).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        rs = np.where(sd > 0, mean / sd * math.sqrt(ppy), np.nan)
    end = start + M.PERIOD_NS[freq]  # a window's value is known at the end of its last period
    ax.axhline(0, color="#888888", lw=0.7)
    ax.plot(x_times(end), rs, color=COLORS["strategy"], lw=1.2, label="Rolling", gid="rolling-sharpe")
    full = M.sharpe(r, ppy)
    if np.isfinite(full) and not (run.manifest.get("metrics") or {}).get("ratios_note"):
        ax.axhline(full, color=COLORS["stop"], ls="--", lw=1.0, label=f"Whole run {full:,.1f}")
    ax.set_ylabel("Sharpe ratio (annualised)")
    ax.set_xlabel("Time (UTC)")
    ax.yaxis.set_major_formatter(Thousands())
    mark_liquidations(ax, run)
    ax.set_xlim(x_times([ts[0], ts[-1]]))
    time_axis(ax)
    ax.legend(loc="best")
    return fig


@styled
def fig_compare(results: list, labels: list[str] | None = None) -> Figure:
    """Equity of several runs, each divided by its initial equity (1.0 = start), and drawdowns."""
    runs = [RunView(r) for r in results]
    labels = list(labels) if labels else [str(r.manifest.get("run_id") or f"run {i + 1}")
                                          for i, r in enumerate(runs)]
    fig, axes = new_figure(6.0, 2, 1, sharex=True, height_ratios=[1.6, 1])
    ax, axd = axes[0, 0], axes[1, 0]
    fig.suptitle("Run comparison")
    ax.set_title("Equity normalised to 1.0 at the start")
    axd.set_title("Drawdown from running peak")
    drawn = False
    for i, (run, lab) in enumerate(zip(runs, labels)):
        ts, eq = run.equity
        if len(ts) == 0 or not np.isfinite(run.initial) or run.initial <= 0:
            continue
        ts0, g = np.concatenate([[ts[0]], ts]), np.concatenate([[1.0], eq / run.initial])
        x, y = decimate.minmax(ts0, g)
        color = CYCLE[i % len(CYCLE)]
        ax.plot(x_times(x), y, color=color, lw=1.3, label=f"{lab} ({g[-1] - 1:+.1%})", gid=f"compare-{i}")
        dx, dy = decimate.minmax(ts0, M.drawdown_series(g))
        axd.plot(x_times(dx), dy, color=color, lw=1.0)
        drawn = True
    if not drawn:
        empty_panel(ax, "None of the runs has equity samples")
        empty_panel(axd, "")
        return fig
    ax.axhline(1.0, color="#999999", lw=0.8, ls=":")
    ax.set_ylabel("Equity / initial (×)")
    ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%.2f"))
    ax.legend(loc="best")
    axd.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    axd.set_ylabel("Drawdown (%)")
    axd.set_xlabel("Time (UTC)")
    time_axis(ax)
    time_axis(axd)
    return fig



def metric_sections(m: dict, ccy: str = "") -> list[tuple[str, list[tuple[str, str]]]]:
    """The headline metrics grouped and formatted for tables (figure, HTML, markdown)."""
    c = f" ({ccy})" if ccy else ""
    return [
        ("Returns", [
            ("Initial equity" + c, num(m.get("initial_equity"), 0)),
            ("Final equity" + c, num(m.get("final_equity"), 0)),
            ("Total return", pct(m.get("total_return"))),
            ("Annualised return (CAGR)", pct(m.get("annual_return"))),
            ("Buy & hold " + str(m.get("benchmark_symbol") or ""), pct(m.get("benchmark_return"))),
            ("Annualised volatility", pct(m.get("annual_volatility")).lstrip("+")),
            ("Sharpe / Sortino", f"{num(m.get('sharpe'))} / {num(m.get('sortino'))}"),
            ("Calmar", num(m.get("calmar"))),
            ("Return frequency", f"{m.get('return_freq')} ({m.get('n_returns')} returns)"),
        ]),
        ("Risk", [
            ("Max drawdown", pct(m.get("max_drawdown"))),
            ("Max drawdown duration", duration(m.get("max_drawdown_duration_s"))),
            ("Time under water", pct(m.get("time_under_water")).lstrip("+")),
            ("Max leverage", num(m.get("max_leverage")) + "×"),
            ("Min distance to liquidation", pct_small(m.get("min_liq_distance") if m.get("min_liq_distance") is not None else float("nan"))),
            ("Liquidations", f"{m.get('n_liquidations', 0)} (loss {num(m.get('liquidation_loss'), 0)})"),
        ]),
        ("Trading", [
            ("Closed trades (open)", f"{m.get('n_trades', 0)} ({m.get('n_open_trades', 0)})"),
            ("Win rate", pct(m.get("win_rate")).lstrip("+")),
            ("Profit factor", num(m.get("profit_factor"))),
            ("Expectancy / trade" + c, num(m.get("expectancy"))),
            ("Average win / loss" + c, f"{num(m.get('avg_win'))} / {num(m.get('avg_loss'))}"),
            ("Exposure (time in market)", pct(m.get("exposure")).lstrip("+")),
            ("Turnover (× avg equity)", num(m.get("turnover"))),
        ]),
        ("Costs and carry" + c, [
            ("Fees (all)", num(m.get("fees"))),
            ("of which liquidation fees", num(m.get("liquidation_fees"))),
            ("Slippage cost", num(m.get("slippage_cost"))),
            ("Funding net (paid / received)",
             f"{num(m.get('funding_net'))} ({num(m.get('funding_paid'))} / {num(m.get('funding_received'))})"),
            ("Loan + borrow interest", num((m.get("loan_interest") or 0) + (m.get("borrow_interest") or 0))),
        ]),
    ]


@styled
def fig_summary(result, metrics: dict | None = None) -> Figure:
    """A title page: run identity, strategy parameters and the headline metrics table."""
    run = RunView(result)
    m = metrics if metrics is not None else M.compute_metrics({"manifest": run.manifest,
                                                               "tables": run.tables})
    fig = Figure(figsize=(WIDTH, 8.5), dpi=DPI)
    FigureCanvasAgg(fig)
    strat = run.manifest.get("strategy") or {}
    fig.text(0.05, 0.95, f"Backtest report: {strat.get('name', 'strategy')}", fontsize=17,
             fontweight="bold", va="top")
    params = ", ".join(f"{k}={v}" for k, v in (strat.get("params") or {}).items())
    sub = [f"run {run.manifest.get('run_id', 'n/a')}",
           f"symbols {', '.join(run.symbols[:4]) or 'n/a'}"
           + (f" +{len(run.symbols) - 4} more" if len(run.symbols) > 4 else ""),
           f"{fmt_ts(m.get('start_ts_ns'))} → {fmt_ts(m.get('end_ts_ns'))} UTC "
           f"({duration((m.get('duration_days') or 0) * 86400)})"]
    fig.text(0.05, 0.905, "  ·  ".join(sub), fontsize=9.5, color="#444444", va="top")
    if params:
        fig.text(0.05, 0.875, f"parameters: {params}", fontsize=8.5, color="#666666", va="top",
                 wrap=True)
    cols = [(0.05, 0.80), (0.53, 0.80)]
    sections = metric_sections(m, run.ccy)
    layout = [[sections[0], sections[2]], [sections[1], sections[3]]]
    for (x0, y0), col in zip(cols, layout):
        y = y0
        for title, rows in col:
            fig.text(x0, y, title, fontsize=11, fontweight="bold", color=COLORS["strategy"])
            y -= 0.012
            fig.add_artist(mpl.lines.Line2D([x0, x0 + 0.42], [y, y], color=COLORS["strategy"],
                                            lw=0.8, transform=fig.transFigure))
            y -= 0.033
            for label, value in rows:
                fig.text(x0, y, label, fontsize=9, color="#333333")
                fig.text(x0 + 0.42, y, value, fontsize=9, ha="right", family="monospace")
                y -= 0.031
            y -= 0.03
    from ..result import rejects_by_reason, rejects_text

    rejects = rejects_by_reason(run.t("orders"), int((run.manifest.get("headline") or {}).get("rejects") or 0))
    fig.text(0.05, 0.06, f"Rejected orders: {rejects_text(rejects)}", fontsize=8.5,
             color="#333333", wrap=True)
    fig.text(0.05, 0.03, "Return statistics from equity resampled to a UTC calendar grid, 365-day "
             "year, risk-free rate 0; drawdowns from the raw equity samples. See docs/metrics.md.",
             fontsize=7.5, color="#777777")
    return fig
