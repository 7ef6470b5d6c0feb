"""Buy and hold: the benchmark every other strategy has to beat.

Idea: at the first trade of `sym`, buy `fraction` of the account's equity times `leverage` at
market, and hold it to the end of the data. No stop, no target: the crash is taken in full.

Parameters:
    sym        symbol bought (default BTCUSDT)
    fraction   share of equity to put to work (default 1.0)
    leverage   sizing leverage: notional = equity x leverage x fraction (default 1.0). Margin is
               set by the run's config (`leverage: {BTCUSDT: 5}`); the size is capped by what the
               free margin can pay for, so a leverage above the configured one buys less.
    attempts   how many times to retry the buy if it is rejected (default 3)

Signals: none; one market buy, sized on the lot grid (rounded down).
"""
from backtest import Strategy, Symbol, buy, open_orders, param, position

try:
    from ._lib import size_for_fraction
except ImportError:  # loaded as a file (backtest run path/to/buy_and_hold.py)
    from _lib import size_for_fraction


class BuyAndHold(Strategy):
    """Buy `fraction` x `leverage` of equity of `sym` at the first trade and hold."""

    sym: Symbol = param("BTCUSDT", "symbol bought")
    fraction: float = param(1.0, "share of equity put to work")
    leverage: float = param(1.0, "sizing leverage (notional = equity x leverage x fraction)")
    attempts: int = param(3, "buy attempts if an order is rejected")
    tries: int = 0
    entry_oid: int = 0
    filled_qty: float = 0.0
    entry_price: float = 0.0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if sym != self.sym or self.tries >= self.attempts:
            return
        if position(c, sym) != 0.0 or open_orders(c, sym) > 0:
            return
        q = size_for_fraction(c, sym, self.fraction, self.leverage, price)
        self.tries += 1
        if q > 0.0:
            self.entry_oid = buy(c, sym, q)

    def on_fill(self, c, ts_ns, sym, oid, price, qty, side):
        if oid == self.entry_oid:
            self.filled_qty += qty
            self.entry_price = price
            self.tries = self.attempts  # done: never buy again
