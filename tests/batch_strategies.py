"""A strategy for tests/test_batch.py whose hook raises at a chosen trade (a parameter), so that
one set of a batch fails while the others carry on."""
from backtest import Strategy, Symbol, buy, param, position, sell


class Fragile(Strategy):
    """Buy every `every` trades, sell on the next; raise ValueError at trade `fail_at` (0: never)."""

    sym: Symbol = param("S0", "symbol traded")
    every: int = param(500, "trades between entries")
    fail_at: int = param(0, "raise at this trade (0: never)")
    n: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if sym != self.sym:
            return
        self.n += 1
        if self.n == self.fail_at:
            raise ValueError("fragile strategy fails on purpose")
        if self.n % self.every == 0:
            pos = position(c, sym)
            if pos == 0.0:
                buy(c, sym, 0.1)
            else:
                sell(c, sym, pos)
