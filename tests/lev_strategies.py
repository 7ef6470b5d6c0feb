"""Small strategies used by the margin and liquidation tests."""
import numpy as np
from numba import njit

from backtest import Strategy, Symbol, buy, equity, param, position


@njit
def lots(qty, lot):
    return np.floor(qty / lot + 1e-9) * lot


class LevLong(Strategy):
    """Go long `leverage` x equity of `sym` once price trades at or below `entry`."""

    sym: Symbol = param("BTCUSDT")
    entry: float = param(70_000.0)
    leverage: float = param(20.0)
    lot: float = param(0.001)
    done: bool = False
    liquidated: int = 0
    liq_price: float = 0.0
    margin_calls: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if sym == self.sym and not self.done and price <= self.entry:
            q = lots(equity(c) * self.leverage * 0.98 / price, self.lot)
            if buy(c, sym, q) > 0:
                self.done = True

    def on_liquidation(self, c, ts_ns, sym, qty, price):
        self.liquidated += 1
        self.liq_price = price

    def on_margin_call(self, c, ts_ns, sym, margin_ratio):
        self.margin_calls += 1
