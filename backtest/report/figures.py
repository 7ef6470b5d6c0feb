"""The figures of a run report: one function per figure, each returning a matplotlib Figure.

Every function takes a result (a ``Result``, a run folder, or anything ``metrics.unpack`` reads)
and builds its Figure with the object API on an Agg canvas: no pyplot, no global state, safe in
threads and headless processes. Long series are reduced with ``report.decimate`` (every extreme
and every fill marker survives), times are UTC, money axes carry thousands separators, and a
table with no rows gives an annotated empty panel instead of an exception.

The figures live by subject: `fig_account` (equity, drawdown, position, margin), `fig_trading`
(prices with fills, costs, trade returns), `fig_returns` (heatmap, rolling Sharpe, comparison,
summary page); `style` holds the look and the formatters, `runview` what they read from a run.
This module is the registry of the report's charts and the one place callers import them from.
"""
from __future__ import annotations

from .fig_account import fig_drawdown, fig_equity, fig_margin, fig_position
from .fig_returns import fig_compare, fig_return_heatmap, fig_rolling_sharpe, fig_summary, metric_sections
from .fig_trading import classify_fills, fig_costs, fig_prices, fig_trade_returns
from .style import COLORS, DPI, WIDTH, duration, money

__all__ = ["FIGURES", "COLORS", "DPI", "WIDTH", "classify_fills", "duration", "fig_compare", "fig_costs",
           "fig_drawdown", "fig_equity", "fig_margin", "fig_position", "fig_prices", "fig_return_heatmap",
           "fig_rolling_sharpe", "fig_summary", "fig_trade_returns", "metric_sections", "money"]

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
