"""The reference strategy of the benchmarks: buy the 62k break, stop at 60k, target 65k.

Flat and price <= `entry` -> buy `size` at market; long and price <= `stop` -> sell (stop);
long and price >= `target` -> sell (target); after an exit, re-arm once price trades above `rearm`.
"""
from backtest import Strategy, Symbol, buy, param, position, sell


class Reference(Strategy):
    """Buy BTC at 62k, stop 60k, target 65k, re-arm above 63k."""

    sym: Symbol = param("BTCUSDT", "symbol traded")
    entry: float = param(62_000.0, "buy at or below this price when flat")
    stop: float = param(60_000.0, "sell at or below this price")
    target: float = param(65_000.0, "sell at or above this price")
    rearm: float = param(63_000.0, "re-arm entries after trading above this price")
    size: float = param(1.0, "quantity bought")
    armed: bool = True
    pending: bool = False
    entries: int = 0
    stops: int = 0
    targets: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if sym != self.sym or self.pending:
            return
        pos = position(c, sym)
        if pos == 0.0:
            if self.armed and price <= self.entry:
                if buy(c, sym, self.size) > 0:
                    self.pending = True
                    self.armed = False
                    self.entries += 1
            elif not self.armed and price > self.rearm:
                self.armed = True
        elif price <= self.stop or price >= self.target:
            if sell(c, sym, pos) > 0:
                self.pending = True
                if price <= self.stop:
                    self.stops += 1
                else:
                    self.targets += 1

    def on_fill(self, c, ts_ns, sym, oid, price, qty, side):
        self.pending = False
