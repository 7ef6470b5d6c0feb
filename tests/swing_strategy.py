"""A strategy that trades at pseudo-random times on every symbol (tests of the price guard, bars
and the kernels' lean variant: its module names no loan call, so its runs compile lean)."""
import numpy as np

from backtest import Strategy, buy, close_position, equity, param, position, sell


class Swing(Strategy):
    """Opens leveraged longs and shorts at pseudo-random times, holds, closes; a second symbol
    sometimes, so that two positions are open at once."""

    seed: int = param(1)
    lev: float = param(10.0)
    two: bool = param(False)
    rng: int = 0
    liqs: int = 0
    calls: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if self.rng == 0:
            self.rng = self.seed
        self.rng = (self.rng * 48271) % 2147483647
        r = self.rng % 1000
        if sym == 1 and not self.two:
            return
        if position(c, sym) == 0.0:
            if r < 6:
                q = np.floor(equity(c) * self.lev * 0.9 / price / (2.0 if self.two else 1.0) * 1000) / 1000
                if q > 0:
                    if r < 3:
                        buy(c, sym, q)
                    else:
                        sell(c, sym, q)
        elif r < 2:
            close_position(c, sym)

    def on_liquidation(self, c, ts_ns, sym, qty, price):
        self.liqs += 1

    def on_margin_call(self, c, ts_ns, sym, margin_ratio):
        self.calls += 1
