"""What the run figures read from one result (`RunView`), computed once per figure."""
from __future__ import annotations

import functools

import numpy as np
import polars as pl

from .. import metrics as M
from ..core.schema import Liquidity
from ..trades import round_trips
from .style import COLORS, x_times


# ------------------------------------------------------------------------------------------------
# Data access (cheap, column-wise; everything tolerates missing tables)
class RunView:
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


def mark_liquidations(ax, run: RunView, label: bool = True) -> None:
    ts = run.liquidation_ts()
    for i, x in enumerate(x_times(ts)):
        ax.axvline(x, color=COLORS["liq"], lw=0.9, ls=(0, (4, 3)), alpha=0.8,
                   label="Liquidation" if (label and i == 0) else None, gid="liquidation-line")
