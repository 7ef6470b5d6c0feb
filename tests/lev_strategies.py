"""Small strategies used by the margin and liquidation tests."""
import numpy as np
from numba import njit

from backtest import (
    Strategy, Symbol, buy, equity, loan_open, param, position, sell,
)


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


class Borrower(Strategy):
    """Buy `coins` of spot `sym` at the first trade and borrow at `ltv` against them."""

    sym: Symbol = param("BTC-USDT")
    coins: float = param(1.0)
    ltv: float = param(0.75)
    loan: int = 0
    bought: bool = False
    calls: int = 0
    call_ratio: float = 0.0
    liquidated: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if sym != self.sym:
            return
        if not self.bought:
            if buy(c, sym, self.coins) > 0:
                self.bought = True
        elif self.loan == 0 and position(c, sym) >= self.coins:
            self.loan = loan_open(c, sym, self.coins, self.ltv * self.coins * price)

    def on_margin_call(self, c, ts_ns, sym, margin_ratio):
        self.calls += 1
        self.call_ratio = margin_ratio

    def on_liquidation(self, c, ts_ns, sym, qty, price):
        self.liquidated += 1


class SpotShort(Strategy):
    """Sell `coins` of spot `sym` short at the first trade (needs margin.spot_margin)."""

    sym: Symbol = param("BTC-USDT")
    coins: float = param(1.0)
    done: bool = False

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if sym == self.sym and not self.done:
            if sell(c, sym, self.coins) > 0:
                self.done = True


class BuyThenSell(Strategy):
    """Buy `qty` at the first trade, add `add` at the second, sell everything at trade `exit_at`."""

    qty: float = param(1.0)
    add: float = param(0.0)
    exit_at: int = param(-1)
    n: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if self.n == 0:
            buy(c, sym, self.qty)
        elif self.n == 1 and self.add > 0.0:
            buy(c, sym, self.add)
        elif self.n == self.exit_at and position(c, sym) > 0.0:
            sell(c, sym, position(c, sym))
        self.n += 1
