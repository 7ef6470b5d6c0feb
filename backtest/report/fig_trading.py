"""Trading figures of a run report: prices with fills, the cost waterfall, trade returns."""
from __future__ import annotations

import math

import numpy as np
import polars as pl
from matplotlib import ticker
from matplotlib.figure import Figure

from .. import metrics as M
from ..core.schema import Liquidity, OrderType, TriggerKind, trigger_kind
from . import decimate
from .fig_account import _liq_line
from .runview import RunView
from .style import COLORS, Thousands, empty_panel, new_figure, signed, styled, time_axis, x_times, money


_STOP_TYPES = tuple(int(t) for t in OrderType if trigger_kind(t) in (TriggerKind.STOP, TriggerKind.TRAILING))
_TP_TYPES = tuple(int(t) for t in OrderType if trigger_kind(t) is TriggerKind.TAKE_PROFIT)


def classify_fills(fills: pl.DataFrame) -> pl.DataFrame:
    """Fills with a ``kind`` column for plotting: liquidation, stop, take_profit, entry or exit.

    An entry increases the absolute position (a flip counts as an entry); an exit reduces it.
    """
    if fills.height == 0:
        return fills.with_columns(pl.lit(None, pl.Utf8).alias("kind"))
    keys = ["ts_ns"] + (["event_idx"] if "event_idx" in fills.columns else [])
    f = fills.with_row_index("_r").sort([*keys, "_r"]).with_columns(
        prev=pl.col("position_after").shift(1).over("sym").fill_null(0.0))
    grows = (pl.col("position_after").abs() > pl.col("prev").abs()) | (
        pl.col("position_after") * pl.col("prev") < 0)
    kind = (pl.when(pl.col("liquidity") == int(Liquidity.LIQUIDATION)).then(pl.lit("liquidation"))
            .when(pl.col("order_type").is_in(_STOP_TYPES)).then(pl.lit("stop"))
            .when(pl.col("order_type").is_in(_TP_TYPES)).then(pl.lit("take_profit"))
            .when(grows).then(pl.lit("entry"))
            .otherwise(pl.lit("exit")))
    return f.with_columns(kind=kind).drop("_r", "prev")


# (kind, side) -> label, marker, face, edge, size
_MARKERS = [
    ("entry", 1, "Buy (entry)", "^", COLORS["up"], COLORS["up"], 36),
    ("entry", -1, "Sell (entry)", "v", COLORS["down"], COLORS["down"], 36),
    ("exit", 1, "Buy (exit)", "^", "none", COLORS["up"], 36),
    ("exit", -1, "Sell (exit)", "v", "none", COLORS["down"], 36),
    ("take_profit", 0, "Take profit", "D", COLORS["tp"], "white", 34),
    ("stop", 0, "Stop", "X", COLORS["stop"], "white", 60),
    ("liquidation", 0, "Liquidation", "*", COLORS["liq"], "black", 170),
]


@styled
def fig_prices(result, symbols: list[str] | None = None, max_symbols: int = 6) -> Figure:
    """Price per symbol (last-trade close, high-low band), liquidation price, and every fill as a
    marker: entries/exits by side (hollow = exit), stops, take-profits and liquidations."""
    run = RunView(result)
    traded = run.traded_symbols()
    syms = list(symbols) if symbols else traded[:max_symbols]
    n = max(1, len(syms))
    fig, axes = new_figure(2.0 + 2.6 * n, n, 1, sharex=True)
    fig.suptitle("Prices, fills and liquidation price")
    left_out = [s for s in traded if s not in syms]
    if left_out:  # never drop symbols silently
        more = f" +{len(left_out) - 12} more" if len(left_out) > 12 else ""
        fig.text(0.01, 0.002, f"Showing {len(syms)} of {len(traded)} traded symbols; not shown: "
                 f"{', '.join(left_out[:12])}{more} (fig_prices(result, symbols=[...]) draws them)",
                 fontsize=7.5, color="#666666", va="bottom", gid="prices-left-out")
    if not syms:
        empty_panel(axes[0, 0], "No bars and no fills in this run")
        return fig
    fills = classify_fills(run.t("fills"))
    for i, sym in enumerate(syms):
        ax = axes[i, 0]
        ax.set_title(sym)
        bars = run.for_symbol("bars", sym)
        f = fills.filter(run.symbol_col(fills) == sym) if fills.height else fills
        drawn = False
        if bars.height:
            b = bars.select("ts_ns", "open", "high", "low", "close").to_numpy()
            ts, o, h, lo, c = decimate.ohlc(b[:, 0].astype(np.int64), b[:, 1], b[:, 2], b[:, 3], b[:, 4])
            prices = np.concatenate([lo, h, f["price"].to_numpy() if f.height else []])
            if np.isfinite(c).any():
                xb = x_times(ts)
                ax.fill_between(xb, lo, h, color=COLORS["band"], alpha=0.45, lw=0, step="pre",
                                label="High-low range")
                ax.plot(xb, c, color=COLORS["strategy"], lw=0.9, label="Last price", gid="price")
                drawn = True
            if "liq_price" in bars.columns and bars["liq_price"].is_finite().any():
                lts, lp = decimate.minmax(bars["ts_ns"].to_numpy(), bars["liq_price"].to_numpy())
                _liq_line(ax, x_times(lts), np.asarray(lp, dtype=float), prices[np.isfinite(prices)])
                drawn = True
        elif f.height:
            ax.plot(x_times(f["ts_ns"].to_numpy()), f["price"].to_numpy(), color=COLORS["strategy"],
                    lw=0.8, label="Fill price", gid="price")
            drawn = True
        for kind, side, label, marker, face, edge, size in _MARKERS:
            sel = f.filter(pl.col("kind") == kind) if f.height else f
            if side and sel.height:
                sel = sel.filter(pl.col("side") == side)
            if sel.height == 0:
                continue
            ax.scatter(x_times(sel["ts_ns"].to_numpy()), sel["price"].to_numpy(), marker=marker, s=size,
                       facecolors=face, edgecolors=edge, linewidths=0.9 if face == "none" else 0.5,
                       zorder=6 if kind == "liquidation" else 5, label=f"{label} ({sel.height})",
                       gid=f"fills-{kind}")
            if kind == "liquidation":
                for r in sel.head(3).iter_rows(named=True):
                    ax.annotate(f"liquidated {r['qty']:,.4g} @ {r['price']:,.0f}",
                                (x_times([r["ts_ns"]])[0], r["price"]), xytext=(10, -14),
                                textcoords="offset points", fontsize=7.5, color=COLORS["liq"])
            drawn = True
        if not drawn:
            empty_panel(ax, f"No price data for {sym}")
            continue
        ax.set_ylabel(f"Price ({run.ccy})")
        ax.yaxis.set_major_formatter(Thousands())
        ax.legend(loc="best", ncol=3, fontsize=7.5)
        time_axis(ax)
    axes[-1, 0].set_xlabel("Time (UTC)")
    return fig


@styled
def fig_costs(result) -> Figure:
    """Waterfall from PnL before costs to the net change of equity."""
    run = RunView(result)
    fig, axes = new_figure(4.4)
    ax = axes[0, 0]
    ax.set_title(f"Cost attribution: PnL before costs to net PnL ({run.ccy})")
    c = M.cost_attribution({"manifest": run.manifest, "tables": run.tables})
    if max(abs(v) for k, v in c.items()) < 1e-12:
        empty_panel(ax, "No PnL and no costs in this run")
        return fig
    # slippage in its parts (R4.5): benchmark to mid (latency, gaps), spread, impact
    steps = [("Latency / gaps", -c["cost_drift"]), ("Spread", -c["cost_spread"]),
             ("Impact", -c["cost_impact"]), ("Trading fees", -c["fees"]),
             ("Liquidation fees", -c["liquidation_fees"]), ("Funding", c["funding"]),
             ("Interest", -c["interest"])]
    scale = max(abs(c["gross"]), abs(c["net"]), *(abs(v) for _, v in steps), 1e-12)
    steps.append(("Other", c["other"]))
    steps = [(k, v) for k, v in steps if abs(v) > 1e-6 * scale]  # lines this run never had
    labels = ["PnL before costs"] + [s for s, _ in steps] + ["Net PnL"]
    bottoms, heights, colors = [0.0], [c["gross"]], [COLORS["total"]]
    level = c["gross"]
    for _, v in steps:
        bottoms.append(level)
        heights.append(v)
        colors.append(COLORS["up"] if v >= 0 else COLORS["down"])
        level += v
    bottoms.append(0.0)
    heights.append(c["net"])
    colors.append(COLORS["strategy"])
    xs = np.arange(len(labels))
    bars = ax.bar(xs, heights, bottom=bottoms, color=colors, width=0.62, edgecolor="white",
                  gid="waterfall")
    for i in range(len(xs) - 1):
        y = bottoms[i] + heights[i]
        ax.plot([xs[i] + 0.31, xs[i + 1] - 0.31], [y, y], color="#999999", lw=0.7, ls=":")
    span = max(abs(b + h) for b, h in zip(bottoms, heights))
    span = max(span, max(abs(b) for b in bottoms), 1e-9)
    for rect, v in zip(bars, heights):
        top = rect.get_y() + max(rect.get_height(), 0)
        ax.text(rect.get_x() + rect.get_width() / 2, top + 0.015 * span, signed(v),
                ha="center", va="bottom", fontsize=8, color="#222222")
    ax.axhline(0, color="#666666", lw=0.8)
    ax.set_xticks(xs, labels)
    ax.grid(axis="x", visible=False)
    ax.set_ylabel(f"PnL ({run.ccy})")
    ax.yaxis.set_major_formatter(Thousands(sign=True))
    ymin = min(0.0, *(b + min(h, 0) for b, h in zip(bottoms, heights)))
    ymax = max(0.0, *(b + max(h, 0) for b, h in zip(bottoms, heights)))
    pad = 0.08 * (ymax - ymin or 1.0)
    ax.set_ylim(ymin - pad, ymax + pad)
    ax.text(1.0, 1.01, f"realised {money(c['realized_pnl'])} + unrealised at end "
            f"{money(c['unrealized_pnl'])} + slippage {money(c['slippage'])} = before costs "
            "(slippage against each fill's benchmark: arrival mid, trigger, limit or mark)",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=7.5, color="#555555")
    return fig


@styled
def fig_trade_returns(result, bins: int | None = None) -> Figure:
    """Distribution of closed round-trip returns (net PnL / entry notional), liquidations marked."""
    run = RunView(result)
    fig, axes = new_figure(3.8)
    ax = axes[0, 0]
    ax.set_title("Distribution of trade returns (closed round trips, net of fees)")
    tr = run.trades
    closed = tr.filter(~pl.col("open") & pl.col("return_pct").is_finite()) if tr.height else tr
    if closed.height == 0:
        empty_panel(ax, "No closed trades in this run")
        return fig
    r = closed["return_pct"].to_numpy() * 100.0
    nb = bins or int(np.clip(np.sqrt(len(r)) * 2, 8, 60))
    lo, hi = float(r.min()), float(r.max())
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, nb + 1)
    if lo < 0 < hi:  # put an edge exactly at 0 so wins and losses never share a bin
        w = (hi - lo) / nb
        edges = np.arange(math.floor(lo / w), math.ceil(hi / w) + 1) * w
    ax.hist(r[r <= 0], bins=edges, color=COLORS["down"], alpha=0.8, label=f"Losses ({(r <= 0).sum()})",
            gid="losses")
    ax.hist(r[r > 0], bins=edges, color=COLORS["up"], alpha=0.8, label=f"Wins ({(r > 0).sum()})",
            gid="wins")
    liq = closed["liquidated"].to_numpy()
    if liq.any():
        ax.scatter(r[liq], np.zeros(int(liq.sum())), marker="*", s=140, color=COLORS["liq"],
                   edgecolor="black", lw=0.5, zorder=5, clip_on=False,
                   label=f"Liquidated ({int(liq.sum())})", gid="liquidated-trades")
    ax.axvline(float(r.mean()), color=COLORS["neutral"], ls="--", lw=1.0,
               label=f"Mean {r.mean():+.2f}%")
    ax.xaxis.set_major_formatter(ticker.PercentFormatter(100.0, decimals=1))
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_xlabel("Trade return (% of entry notional)")
    ax.set_ylabel("Trades (count)")
    wins = r[r > 0]
    ax.legend(loc="upper right", title=f"{len(r)} trades · win rate {len(wins) / len(r):.0%}",
              title_fontsize=8)
    return fig
