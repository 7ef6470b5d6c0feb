"""Liquidity-taking strategies for benchmarks/bench_execution.py.

`Taker` alternates market buys and sells every `every` trades, so every execution model prices
many taker fills; `LevLong` buys once and holds a leveraged long until it is liquidated.
"""
from backtest import Strategy, buy, param, position, sell


class Taker(Strategy):
    """A market order every `every` trades: buy when flat or short, sell when long."""

    every: int = param(20, "act every this many trades")
    size: float = param(0.5, "order quantity")
    n: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        self.n += 1
        if self.n % self.every == 0:
            if position(c, sym) > 0.0:
                sell(c, sym, self.size)
            else:
                buy(c, sym, self.size)


class LevLong(Strategy):
    """One market buy of `size` at the first trade, held (until the liquidation)."""

    size: float = param(100.0, "order quantity")
    done: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if self.done == 0:
            buy(c, sym, self.size)
            self.done = 1
