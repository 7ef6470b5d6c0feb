"""The figures of a run report: one function per figure, each returning a matplotlib Figure.

Every function takes a result (a ``Result``, a run folder, or anything ``metrics.unpack`` reads)
and builds its Figure with the object API on an Agg canvas: no pyplot, no global state, safe in
threads and headless processes. Long series are reduced with ``report.decimate`` (every extreme
and every fill marker survives), times are UTC, money axes carry thousands separators, and a
table with no rows gives an annotated empty panel instead of an exception.
"""
from __future__ import annotations

import functools
import math
from datetime import timezone

import matplotlib as mpl
import numpy as np
import polars as pl
from matplotlib import dates as mdates
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .. import metrics as M
from ..core.schema import Liquidity, OrderType, TriggerKind, trigger_kind
from ..trades import round_trips
from . import decimate

UTC = timezone.utc

# ------------------------------------------------------------------------------------------------
# House style
COLORS = {
    "strategy": "#1f4e79",
    "benchmark": "#8c8c8c",
    "up": "#2e7d32",
    "down": "#c62828",
    "liq": "#7b1fa2",
    "liq_line": "#d84315",
    "stop": "#ef6c00",
    "tp": "#00838f",
    "band": "#9fb8d0",
    "neutral": "#455a64",
    "total": "#37474f",
}
CYCLE = ["#1f4e79", "#ef6c00", "#2e7d32", "#7b1fa2", "#00838f", "#c62828", "#6d4c41", "#546e7a"]
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10.5,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 9,
    "axes.labelcolor": "#333333",
    "axes.edgecolor": "#999999",
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "axes.prop_cycle": mpl.cycler(color=CYCLE),
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "xtick.color": "#555555",
    "ytick.color": "#555555",
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "lines.linewidth": 1.2,
    "figure.facecolor": "white",
    "figure.titlesize": 12,
    "figure.titleweight": "bold",
    "savefig.facecolor": "white",
}
WIDTH = 11.0  # inches; a landscape memo page
DPI = 110


def _styled(fn):
    """Build the figure under the house rcParams (a context, never the global state)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def _new_figure(height: float, nrows: int = 1, ncols: int = 1, **kw) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(WIDTH, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


class Thousands(ticker.Formatter):
    """Tick labels with thousands separators and as many decimals as the tick step needs."""

    def __init__(self, suffix: str = "", sign: bool = False):
        self.suffix, self.sign = suffix, sign
        self._dec: int | None = None

    @staticmethod
    def decimals(values) -> int:
        vals = sorted({float(v) for v in values if np.isfinite(v)})
        steps = [b - a for a, b in zip(vals, vals[1:]) if b > a]
        step = min(steps) if steps else (abs(vals[0]) if vals and vals[0] else 1.0)
        return max(0, min(8, -int(math.floor(math.log10(step))))) if step > 0 else 0

    def format_ticks(self, values):
        self._dec = self.decimals(values)
        try:
            return [self(v, i) for i, v in enumerate(values)]
        finally:
            self._dec = None

    def __call__(self, x, pos=None):
        dec = self._dec if self._dec is not None else self.decimals([x])
        fmt = f"{{:{'+' if self.sign and x != 0 else ''},.{dec}f}}"
        return fmt.format(x).replace("-", "−") + self.suffix


def _signed(v: float) -> str:
    """+1,234 / −56 / 0 with a real minus sign and decimals only for small amounts."""
    if abs(v) < 0.005:
        return "0"
    txt = f"{abs(v):,.0f}" if abs(v) >= 100 else f"{abs(v):,.2f}"
    return ("+" if v > 0 else "−") + txt


def money(x: float, dec: int = 0) -> str:
    """1234567.8 -> '1,234,568' (NaN -> 'n/a')."""
    return "n/a" if x is None or not np.isfinite(x) else f"{x:,.{dec}f}"


def _time_axis(ax) -> None:
    loc = mdates.AutoDateLocator(tz=UTC, minticks=4, maxticks=9)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc, tz=UTC, show_offset=True))


def _x(ts_ns) -> np.ndarray:
    """int64 ns UTC -> matplotlib date numbers."""
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    return mdates.date2num(ts_ns.astype("datetime64[ns]"))


def _empty(ax, message: str) -> None:
    """An annotated empty panel (keeps the figure layout, never raises)."""
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="#777777",
            fontsize=10, style="italic", gid="empty-note")
    # hide ticks without removing them: a shared x axis keeps its locator for the other panels
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    for other in ax.get_shared_x_axes().get_siblings(ax):
        if other is not ax:
            other.tick_params(labelbottom=True)
    ax.grid(False)
    ax.set_facecolor("#f7f7f7")
    for s in ax.spines.values():
        s.set_visible(False)


def _pct_small(v: float) -> str:
    """A percentage with enough decimals to be non-zero (0.012% rather than 0.0%)."""
    if not np.isfinite(v):
        return "n/a"
    if abs(v) >= 0.01:
        return f"{v:.1%}"
    return f"{v:.2%}" if abs(v) >= 0.0001 else f"{v * 100:.2g}%"


def _fmt_ts(ts_ns: int | None) -> str:
    if ts_ns is None:
        return "n/a"
    return np.datetime64(int(ts_ns), "ns").astype("datetime64[m]").item().strftime("%d %b %H:%M")


# ------------------------------------------------------------------------------------------------
# Data access (cheap, column-wise; everything tolerates missing tables)
class _Run:
    """What the figures read from one result, computed once per call."""

    def __init__(self, result):
        self.manifest, self.tables = M.unpack(result)
        self.ccy = str(self.manifest.get("settle_currency") or "quote")
        self.symbols = list(self.manifest.get("symbols") or [])

    def t(self, name: str) -> pl.DataFrame:
        return M.table(self.tables, name)

    @functools.cached_property
    def equity(self) -> tuple[np.ndarray, np.ndarray]:
        return M.equity_arrays(self.t("equity"))

    @functools.cached_property
    def initial(self) -> float:
        return M.initial_equity(self.manifest, self.equity[1])

    @functools.cached_property
    def trades(self) -> pl.DataFrame:
        tr = self.t("trades")
        if tr.height and "return_pct" in tr.columns:
            return tr
        return round_trips(self.t("fills")) if self.t("fills").height else tr

    def symbol_col(self, df: pl.DataFrame) -> pl.Expr:
        return pl.col("symbol") if "symbol" in df.columns else pl.col("sym").cast(pl.Utf8)

    def traded_symbols(self) -> list[str]:
        """Symbols with fills first (in manifest order), then those with bars only."""
        out: list[str] = []
        for name in ("fills", "bars"):
            df = self.t(name)
            if df.height:
                have = set(df.select(self.symbol_col(df).unique()).to_series().to_list())
                order = [s for s in self.symbols if s in have] + sorted(have - set(self.symbols))
                out += [s for s in order if s not in out]
        return out

    def for_symbol(self, name: str, symbol: str) -> pl.DataFrame:
        df = self.t(name)
        if df.height == 0:
            return df
        return M.by_time(df.filter(self.symbol_col(df) == symbol))

    def liquidation_ts(self) -> np.ndarray:
        liq = self.t("liquidations")
        if liq.height:
            return liq["ts_ns"].to_numpy()
        f = self.t("fills")
        if f.height:
            return f.filter(pl.col("liquidity") == int(Liquidity.LIQUIDATION))["ts_ns"].unique().sort().to_numpy()
        return np.empty(0, np.int64)


def _mark_liquidations(ax, run: _Run, label: bool = True) -> None:
    ts = run.liquidation_ts()
    for i, x in enumerate(_x(ts)):
        ax.axvline(x, color=COLORS["liq"], lw=0.9, ls=(0, (4, 3)), alpha=0.8,
                   label="Liquidation" if (label and i == 0) else None, gid="liquidation-line")


# ------------------------------------------------------------------------------------------------
# Figures
@_styled
def fig_equity(result, benchmark: str | None = None) -> Figure:
    """Equity curve against buy-and-hold of one symbol (the first with bars by default)."""
    run = _Run(result)
    fig, axes = _new_figure(4.6)
    ax = axes[0, 0]
    ax.set_title(f"Equity vs buy & hold ({run.ccy})")
    ts, eq = run.equity
    if len(ts) == 0:
        _empty(ax, "No equity samples in this run")
        return fig
    x, y = decimate.minmax(ts, eq)
    tot = M.total_return(run.initial, float(eq[-1]))
    ax.plot(_x(x), y, color=COLORS["strategy"], lw=1.4, label=f"Strategy ({tot:+.1%})", gid="equity")
    bts, growth, bsym = M.buy_and_hold(run.t("bars"), benchmark, fills=run.t("fills"))
    if len(bts):
        bx, by = decimate.minmax(bts, growth * run.initial)
        ax.plot(_x(bx), by, color=COLORS["benchmark"], lw=1.1, ls="--",
                label=f"Buy & hold {bsym} ({growth[-1] - 1:+.1%})", gid="benchmark")
    ax.axhline(run.initial, color="#bbbbbb", lw=0.8, ls=":", zorder=0)
    liq_ts = run.liquidation_ts()
    if len(liq_ts):
        idx = np.clip(np.searchsorted(ts, liq_ts, side="right") - 1, 0, len(ts) - 1)
        ax.scatter(_x(ts[idx]), eq[idx], marker="X", s=70, color=COLORS["liq"], edgecolor="white",
                   linewidth=0.6, zorder=5, label=f"Liquidation ({len(liq_ts)})", gid="liquidations")
    ax.set_ylabel(f"Equity ({run.ccy})")
    ax.set_xlabel("Time (UTC)")
    ax.yaxis.set_major_formatter(Thousands())
    _time_axis(ax)
    ax.legend(loc="best")
    ax.text(1.0, 1.01, f"start {money(run.initial)}  ·  end {money(float(eq[-1]))} {run.ccy}",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=8, color="#555555")
    return fig


@_styled
def fig_drawdown(result) -> Figure:
    """Underwater curve (equity / running peak - 1) with the deepest point annotated."""
    run = _Run(result)
    fig, axes = _new_figure(3.4)
    ax = axes[0, 0]
    ax.set_title("Drawdown from running peak")
    ts, eq = run.equity
    if len(ts) == 0:
        _empty(ax, "No equity samples in this run")
        return fig
    dd = M.drawdown_series(eq, run.initial)
    x, y = decimate.minmax(ts, dd)
    ax.fill_between(_x(x), y, 0, color=COLORS["down"], alpha=0.25, lw=0, step="post")
    ax.plot(_x(x), y, color=COLORS["down"], lw=1.0, label="Strategy", gid="drawdown")
    bts, growth, bsym = M.buy_and_hold(run.t("bars"), fills=run.t("fills"))
    if len(bts):
        bx, by = decimate.minmax(bts, M.drawdown_series(growth))
        ax.plot(_x(bx), by, color=COLORS["benchmark"], lw=1.0, ls="--", label=f"Buy & hold {bsym}",
                gid="benchmark-drawdown")
    info = M.drawdown_info(ts, eq, run.initial, longest=False, dd=dd)
    if info["max_drawdown"] < 0:
        tx = _x([info["max_drawdown_trough_ts_ns"]])[0]
        ax.scatter([tx], [info["max_drawdown"]], color=COLORS["down"], s=25, zorder=5)
        rec = ("recovered " + _fmt_ts(info["max_drawdown_recovery_ts_ns"])
               if info["max_drawdown_recovery_ts_ns"] else "not recovered")
        ax.annotate(f"max {info['max_drawdown']:.1%} at {_fmt_ts(info['max_drawdown_trough_ts_ns'])}"
                    f" UTC\n{rec}", (tx, info["max_drawdown"]), xytext=(12, 8),
                    textcoords="offset points", fontsize=8, color=COLORS["down"],
                    arrowprops={"arrowstyle": "-", "color": COLORS["down"], "lw": 0.6})
    lo = min(float(np.nanmin(y)), float(np.nanmin(by)) if len(bts) else 0.0)
    ax.set_ylim(min(lo * 1.15, -0.01), 0.005)
    ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    ax.set_ylabel("Drawdown (%)")
    ax.set_xlabel("Time (UTC)")
    _time_axis(ax)
    ax.legend(loc="lower left")
    return fig


# by trigger kind (core/enums.py ORDER_TRAITS): a trailing stop plots as a stop
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


@_styled
def fig_prices(result, symbols: list[str] | None = None, max_symbols: int = 6) -> Figure:
    """Price per symbol (last-trade close, high-low band), liquidation price, and every fill as a
    marker: entries/exits by side (hollow = exit), stops, take-profits and liquidations."""
    run = _Run(result)
    traded = run.traded_symbols()
    syms = list(symbols) if symbols else traded[:max_symbols]
    n = max(1, len(syms))
    fig, axes = _new_figure(2.0 + 2.6 * n, n, 1, sharex=True)
    fig.suptitle("Prices, fills and liquidation price")
    left_out = [s for s in traded if s not in syms]
    if left_out:  # never drop symbols silently
        more = f" +{len(left_out) - 12} more" if len(left_out) > 12 else ""
        fig.text(0.01, 0.002, f"Showing {len(syms)} of {len(traded)} traded symbols; not shown: "
                 f"{', '.join(left_out[:12])}{more} (fig_prices(result, symbols=[...]) draws them)",
                 fontsize=7.5, color="#666666", va="bottom", gid="prices-left-out")
    if not syms:
        _empty(axes[0, 0], "No bars and no fills in this run")
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
                xb = _x(ts)
                ax.fill_between(xb, lo, h, color=COLORS["band"], alpha=0.45, lw=0, step="pre",
                                label="High-low range")
                ax.plot(xb, c, color=COLORS["strategy"], lw=0.9, label="Last price", gid="price")
                drawn = True
            if "liq_price" in bars.columns and bars["liq_price"].is_finite().any():
                lts, lp = decimate.minmax(bars["ts_ns"].to_numpy(), bars["liq_price"].to_numpy())
                _liq_line(ax, _x(lts), np.asarray(lp, dtype=float), prices[np.isfinite(prices)])
                drawn = True
        elif f.height:
            ax.plot(_x(f["ts_ns"].to_numpy()), f["price"].to_numpy(), color=COLORS["strategy"],
                    lw=0.8, label="Fill price", gid="price")
            drawn = True
        for kind, side, label, marker, face, edge, size in _MARKERS:
            sel = f.filter(pl.col("kind") == kind) if f.height else f
            if side and sel.height:
                sel = sel.filter(pl.col("side") == side)
            if sel.height == 0:
                continue
            ax.scatter(_x(sel["ts_ns"].to_numpy()), sel["price"].to_numpy(), marker=marker, s=size,
                       facecolors=face, edgecolors=edge, linewidths=0.9 if face == "none" else 0.5,
                       zorder=6 if kind == "liquidation" else 5, label=f"{label} ({sel.height})",
                       gid=f"fills-{kind}")
            if kind == "liquidation":
                for r in sel.head(3).iter_rows(named=True):
                    ax.annotate(f"liquidated {r['qty']:,.4g} @ {r['price']:,.0f}",
                                (_x([r["ts_ns"]])[0], r["price"]), xytext=(10, -14),
                                textcoords="offset points", fontsize=7.5, color=COLORS["liq"])
            drawn = True
        if not drawn:
            _empty(ax, f"No price data for {sym}")
            continue
        ax.set_ylabel(f"Price ({run.ccy})")
        ax.yaxis.set_major_formatter(Thousands())
        ax.legend(loc="best", ncol=3, fontsize=7.5)
        _time_axis(ax)
    axes[-1, 0].set_xlabel("Time (UTC)")
    return fig


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


@_styled
def fig_position(result) -> Figure:
    """Signed position notional per symbol (position x mark, from the bars) and account leverage
    (gross exposure / equity, from the equity samples)."""
    run = _Run(result)
    fig, axes = _new_figure(5.6, 2, 1, sharex=True, height_ratios=[1.3, 1])
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
            ax.step(_x(x), y, where="post", lw=1.1, label=sym, gid=f"position-{sym}")
            drawn = True
    elif run.t("fills").height:
        f = M.by_time(run.t("fills"))
        for sym in run.traded_symbols():
            g = f.filter(run.symbol_col(f) == sym)
            if g.height:
                ax.step(_x(g["ts_ns"].to_numpy()), (g["position_after"] * g["price"]).to_numpy(),
                        where="post", lw=1.1, label=sym, gid=f"position-{sym}")
                drawn = True
    if drawn:
        ax.axhline(0, color="#888888", lw=0.7)
        ax.set_ylabel(f"Notional ({run.ccy})")
        ax.yaxis.set_major_formatter(Thousands(sign=True))
        ax.legend(loc="upper right", ncol=4)
        _mark_liquidations(ax, run, label=False)
        _time_axis(ax)
    else:
        _empty(ax, "No positions were held")
    axl.set_title("Leverage (gross exposure / equity)")
    lts, lev = M.leverage_series(run.t("equity"))
    if len(lts) and np.isfinite(lev).any() and np.nanmax(lev) > 0:
        x, y = decimate.minmax(lts, lev)
        axl.fill_between(_x(x), y, 0, color=COLORS["strategy"], alpha=0.15, lw=0, step="post")
        axl.plot(_x(x), y, color=COLORS["strategy"], lw=1.1, drawstyle="steps-post", gid="leverage")
        i = int(np.nanargmax(lev))
        axl.annotate(f"max {lev[i]:.1f}×", (_x([lts[i]])[0], lev[i]), xytext=(8, -4),
                     textcoords="offset points", fontsize=8, color=COLORS["strategy"])
        axl.set_ylim(0, float(np.nanmax(lev)) * 1.18)
        axl.set_ylabel("Leverage (×)")
        axl.yaxis.set_major_formatter(ticker.FormatStrFormatter("%.1f×"))
        _mark_liquidations(axl, run)
        if axl.get_legend_handles_labels()[0]:
            axl.legend(loc="upper right")
        axl.set_xlabel("Time (UTC)")
        _time_axis(axl)
    else:
        _empty(axl, "No leverage data (no exposure or no equity samples)")
    return fig


@_styled
def fig_margin(result) -> Figure:
    """Margin ratio (maintenance margin / margin balance; 100% = liquidation) and the distance of
    the mark price to the liquidation price per symbol."""
    run = _Run(result)
    fig, axes = _new_figure(5.6, 2, 1, sharex=True)
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
            ax.plot(_x(x), y, color=color, lw=lw, drawstyle="steps-post", gid=gid, label=label)
        ax.set_ylim(0, top)
        ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
        ax.set_ylabel("Margin ratio (%)")
        _mark_liquidations(ax, run)
        ax.legend(loc="center left")
        _time_axis(ax)
    else:
        _empty(ax, "No margin in use during this run")
    axd.set_title("Distance to liquidation |mark − liq price| / mark")
    d = M.liq_distance(run.t("bars"))
    if d.height:
        for sym in [s for s in run.traded_symbols() if s in set(d["symbol"].to_list())]:
            g = d.filter(pl.col("symbol") == sym).sort("ts_ns")
            # re-insert gaps where the symbol was flat so the line does not bridge them
            b = run.for_symbol("bars", sym).select("ts_ns").join(g, on="ts_ns", how="left")
            x, y = decimate.minmax(b["ts_ns"].to_numpy(), b["distance"].fill_null(np.nan).to_numpy())
            axd.plot(_x(x), y, lw=1.1, label=sym, gid=f"liq-distance-{sym}")
        i = int(d["distance"].arg_min())
        r = d.row(i, named=True)
        axd.scatter(_x([r["ts_ns"]]), [r["distance"]], color=COLORS["down"], s=22, zorder=5)
        axd.annotate(f"min {_pct_small(r['distance'])} ({r['symbol']}, {_fmt_ts(r['ts_ns'])} UTC)",
                     (_x([r["ts_ns"]])[0], r["distance"]), xytext=(10, 10),
                     textcoords="offset points", fontsize=8, color=COLORS["down"])
        axd.set_ylim(0, float(d["distance"].max()) * 1.12 + 1e-9)
        axd.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
        axd.set_ylabel("Distance (% of mark)")
        _mark_liquidations(axd, run, label=False)
        axd.legend(loc="upper right", ncol=4)
        axd.set_xlabel("Time (UTC)")
        _time_axis(axd)
    else:
        _empty(axd, "No liquidation price (no leveraged position)")
    return fig


@_styled
def fig_costs(result) -> Figure:
    """Waterfall from PnL before costs to the net change of equity."""
    run = _Run(result)
    fig, axes = _new_figure(4.4)
    ax = axes[0, 0]
    ax.set_title(f"Cost attribution: PnL before costs to net PnL ({run.ccy})")
    c = M.cost_attribution({"manifest": run.manifest, "tables": run.tables})
    if max(abs(v) for k, v in c.items()) < 1e-12:
        _empty(ax, "No PnL and no costs in this run")
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
        ax.text(rect.get_x() + rect.get_width() / 2, top + 0.015 * span, _signed(v),
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


@_styled
def fig_trade_returns(result, bins: int | None = None) -> Figure:
    """Distribution of closed round-trip returns (net PnL / entry notional), liquidations marked."""
    run = _Run(result)
    fig, axes = _new_figure(3.8)
    ax = axes[0, 0]
    ax.set_title("Distribution of trade returns (closed round trips, net of fees)")
    tr = run.trades
    closed = tr.filter(~pl.col("open") & pl.col("return_pct").is_finite()) if tr.height else tr
    if closed.height == 0:
        _empty(ax, "No closed trades in this run")
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


_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


@_styled
def fig_return_heatmap(result) -> Figure:
    """Mean hourly return (bps) by UTC hour of day × day of week, from the resampled equity."""
    run = _Run(result)
    fig, axes = _new_figure(3.9)
    ax = axes[0, 0]
    ax.set_title("Mean hourly return by hour of day × day of week (UTC, bps)")
    ts, eq = run.equity
    start, r = (M.period_returns(ts, eq, "1h", start=run.initial) if len(ts)
                else (np.empty(0, np.int64), np.empty(0)))
    if len(r) == 0:
        _empty(ax, "Less than one hour of equity samples")
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


@_styled
def fig_rolling_sharpe(result, window: int | None = None) -> Figure:
    """Rolling annualised Sharpe ratio of the resampled returns (the metrics' frequency)."""
    run = _Run(result)
    fig, axes = _new_figure(3.6)
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
        _empty(ax, f"Too few {'hourly' if freq == '1h' else 'daily'} returns ({len(r)}) "
                   "for a rolling Sharpe ratio")
        return fig
    s = pl.Series(r)
    mean = s.rolling_mean(w).to_numpy()
    sd = s.rolling_std(w).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        rs = np.where(sd > 0, mean / sd * math.sqrt(ppy), np.nan)
    end = start + M.PERIOD_NS[freq]  # a window's value is known at the end of its last period
    ax.axhline(0, color="#888888", lw=0.7)
    ax.plot(_x(end), rs, color=COLORS["strategy"], lw=1.2, label="Rolling", gid="rolling-sharpe")
    full = M.sharpe(r, ppy)
    if np.isfinite(full) and not (run.manifest.get("metrics") or {}).get("ratios_note"):
        ax.axhline(full, color=COLORS["stop"], ls="--", lw=1.0, label=f"Whole run {full:,.1f}")
    ax.set_ylabel("Sharpe ratio (annualised)")
    ax.set_xlabel("Time (UTC)")
    ax.yaxis.set_major_formatter(Thousands())
    _mark_liquidations(ax, run)
    ax.set_xlim(_x([ts[0], ts[-1]]))
    _time_axis(ax)
    ax.legend(loc="best")
    return fig


@_styled
def fig_compare(results: list, labels: list[str] | None = None) -> Figure:
    """Equity of several runs, each divided by its initial equity (1.0 = start), and drawdowns."""
    runs = [_Run(r) for r in results]
    labels = list(labels) if labels else [str(r.manifest.get("run_id") or f"run {i + 1}")
                                          for i, r in enumerate(runs)]
    fig, axes = _new_figure(6.0, 2, 1, sharex=True, height_ratios=[1.6, 1])
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
        ax.plot(_x(x), y, color=color, lw=1.3, label=f"{lab} ({g[-1] - 1:+.1%})", gid=f"compare-{i}")
        dx, dy = decimate.minmax(ts0, M.drawdown_series(g))
        axd.plot(_x(dx), dy, color=color, lw=1.0)
        drawn = True
    if not drawn:
        _empty(ax, "None of the runs has equity samples")
        _empty(axd, "")
        return fig
    ax.axhline(1.0, color="#999999", lw=0.8, ls=":")
    ax.set_ylabel("Equity / initial (×)")
    ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%.2f"))
    ax.legend(loc="best")
    axd.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    axd.set_ylabel("Drawdown (%)")
    axd.set_xlabel("Time (UTC)")
    _time_axis(ax)
    _time_axis(axd)
    return fig


# ------------------------------------------------------------------------------------------------
def _pct(v) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:+.2%}"


def _num(v, dec=2) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a" if v is None or np.isnan(v) else ("∞" if v > 0 else "−∞")
    return f"{v:,.{dec}f}"


def _dur(seconds) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "n/a"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def metric_sections(m: dict, ccy: str = "") -> list[tuple[str, list[tuple[str, str]]]]:
    """The headline metrics grouped and formatted for tables (figure, HTML, markdown)."""
    c = f" ({ccy})" if ccy else ""
    return [
        ("Returns", [
            ("Initial equity" + c, _num(m.get("initial_equity"), 0)),
            ("Final equity" + c, _num(m.get("final_equity"), 0)),
            ("Total return", _pct(m.get("total_return"))),
            ("Annualised return (CAGR)", _pct(m.get("annual_return"))),
            ("Buy & hold " + str(m.get("benchmark_symbol") or ""), _pct(m.get("benchmark_return"))),
            ("Annualised volatility", _pct(m.get("annual_volatility")).lstrip("+")),
            ("Sharpe / Sortino", f"{_num(m.get('sharpe'))} / {_num(m.get('sortino'))}"),
            ("Calmar", _num(m.get("calmar"))),
            ("Return frequency", f"{m.get('return_freq')} ({m.get('n_returns')} returns)"),
        ]),
        ("Risk", [
            ("Max drawdown", _pct(m.get("max_drawdown"))),
            ("Max drawdown duration", _dur(m.get("max_drawdown_duration_s"))),
            ("Time under water", _pct(m.get("time_under_water")).lstrip("+")),
            ("Max leverage", _num(m.get("max_leverage")) + "×"),
            ("Min distance to liquidation", _pct_small(m.get("min_liq_distance") if m.get("min_liq_distance") is not None else float("nan"))),
            ("Liquidations", f"{m.get('n_liquidations', 0)} (loss {_num(m.get('liquidation_loss'), 0)})"),
        ]),
        ("Trading", [
            ("Closed trades (open)", f"{m.get('n_trades', 0)} ({m.get('n_open_trades', 0)})"),
            ("Win rate", _pct(m.get("win_rate")).lstrip("+")),
            ("Profit factor", _num(m.get("profit_factor"))),
            ("Expectancy / trade" + c, _num(m.get("expectancy"))),
            ("Average win / loss" + c, f"{_num(m.get('avg_win'))} / {_num(m.get('avg_loss'))}"),
            ("Exposure (time in market)", _pct(m.get("exposure")).lstrip("+")),
            ("Turnover (× avg equity)", _num(m.get("turnover"))),
        ]),
        ("Costs and carry" + c, [
            ("Fees (all)", _num(m.get("fees"))),
            ("of which liquidation fees", _num(m.get("liquidation_fees"))),
            ("Slippage cost", _num(m.get("slippage_cost"))),
            ("Funding net (paid / received)",
             f"{_num(m.get('funding_net'))} ({_num(m.get('funding_paid'))} / {_num(m.get('funding_received'))})"),
            ("Loan + borrow interest", _num((m.get("loan_interest") or 0) + (m.get("borrow_interest") or 0))),
        ]),
    ]


@_styled
def fig_summary(result, metrics: dict | None = None) -> Figure:
    """A title page: run identity, strategy parameters and the headline metrics table."""
    run = _Run(result)
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
           f"{_fmt_ts(m.get('start_ts_ns'))} → {_fmt_ts(m.get('end_ts_ns'))} UTC "
           f"({_dur((m.get('duration_days') or 0) * 86400)})"]
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


FIGURES = {
    "equity": fig_equity,
    "drawdown": fig_drawdown,
    "prices": fig_prices,
    "position": fig_position,
    "margin": fig_margin,
    "costs": fig_costs,
    "trade_returns": fig_trade_returns,
    "return_heatmap": fig_return_heatmap,
    "rolling_sharpe": fig_rolling_sharpe,
}
"""Name -> function of every chart of the report, in report order (the summary page aside)."""
