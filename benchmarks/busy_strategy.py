"""A busy strategy for the benchmarks: orders every few hundred ticks on every symbol.

Per symbol, every `every` ticks: when flat with nothing working, rest a limit buy `offset` below
the price; a limit that has waited `max_wait` ticks is cancelled; a position held for `hold`
ticks is closed at market. Exercises submit, resting-limit matching, cancels and market exits.
"""
from backtest import Strategy, buy_limit, cancel, open_orders, param, position, sell

NS = 8


class Busy(Strategy):
    """Limit entries, cancels and market exits on every symbol."""

    every: int = param(200, "act every this many ticks of a symbol")
    offset_bp: float = param(2.0, "limit price below the last trade, in basis points")
    max_wait: int = param(600, "cancel a resting limit after this many ticks")
    hold: int = param(400, "close a position after this many ticks")
    size: float = param(0.01, "order quantity")
    tick: float = param(0.1, "price tick used to round limit prices")
    n: ("i8", NS)
    oid: ("i8", NS)
    since: ("i8", NS)
    entries: int = 0
    cancels: int = 0
    exits: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        k = self.n[sym] + 1
        self.n[sym] = k
        if k % self.every != 0:
            return
        pos = position(c, sym)
        if pos != 0.0:
            if k - self.since[sym] >= self.hold and open_orders(c, sym) == 0:
                if sell(c, sym, pos) > 0:
                    self.exits += 1
                    self.since[sym] = k
        elif open_orders(c, sym) == 0:
            px = int(price * (1.0 - self.offset_bp * 1e-4) / self.tick) * self.tick
            oid = buy_limit(c, sym, self.size, px)
            if oid > 0:
                self.oid[sym] = oid
                self.since[sym] = k
                self.entries += 1
        elif k - self.since[sym] >= self.max_wait and self.oid[sym] > 0:
            if cancel(c, self.oid[sym]) == 0:
                self.cancels += 1
                self.oid[sym] = 0

    def on_fill(self, c, ts_ns, sym, oid, price, qty, side):
        if oid == self.oid[sym]:
            self.oid[sym] = 0
            self.since[sym] = self.n[sym]
