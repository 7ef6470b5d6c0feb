"""Style of every report figure: colours, fonts, the page size, axis formatters and small
formatting helpers shared by the run, sweep and stress figures."""
from __future__ import annotations

import functools
import math
from datetime import timezone

import matplotlib as mpl
import numpy as np
from matplotlib import dates as mdates
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


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


def styled(fn):
    """Build the figure under the house rcParams (a context, never the global state)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def new_figure(height: float, nrows: int = 1, ncols: int = 1, **kw) -> tuple[Figure, np.ndarray]:
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


def signed(v: float) -> str:
    """+1,234 / −56 / 0 with a real minus sign and decimals only for small amounts."""
    if abs(v) < 0.005:
        return "0"
    txt = f"{abs(v):,.0f}" if abs(v) >= 100 else f"{abs(v):,.2f}"
    return ("+" if v > 0 else "−") + txt


def money(x: float, dec: int = 0) -> str:
    """1234567.8 -> '1,234,568' (NaN -> 'n/a')."""
    return "n/a" if x is None or not np.isfinite(x) else f"{x:,.{dec}f}"


def time_axis(ax) -> None:
    loc = mdates.AutoDateLocator(tz=UTC, minticks=4, maxticks=9)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc, tz=UTC, show_offset=True))


def x_times(ts_ns) -> np.ndarray:
    """int64 ns UTC -> matplotlib date numbers."""
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    return mdates.date2num(ts_ns.astype("datetime64[ns]"))


def empty_panel(ax, message: str) -> None:
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


def pct_small(v: float) -> str:
    """A percentage with enough decimals to be non-zero (0.012% rather than 0.0%)."""
    if not np.isfinite(v):
        return "n/a"
    if abs(v) >= 0.01:
        return f"{v:.1%}"
    return f"{v:.2%}" if abs(v) >= 0.0001 else f"{v * 100:.2g}%"


def fmt_ts(ts_ns: int | None) -> str:
    if ts_ns is None:
        return "n/a"
    return np.datetime64(int(ts_ns), "ns").astype("datetime64[m]").item().strftime("%d %b %H:%M")

# ------------------------------------------------------------------------------------------------
def pct(v) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:+.2%}"


def num(v, dec=2) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a" if v is None or np.isnan(v) else ("∞" if v > 0 else "−∞")
    return f"{v:,.{dec}f}"


def duration(seconds) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "n/a"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
