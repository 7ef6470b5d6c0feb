"""Strategies of the candle and market-liquidation end-to-end tests (tests/test_bars_input.py,
tests/test_market_liquidations.py)."""
from backtest import Strategy, Symbol, bracket, buy_limit, param

N = 16


class BarBracket(Strategy):
    """At the first bar's close: a market buy with a stop and a target; logs every on_bar call."""

    sym: Symbol = param("BTCUSDT", "symbol traded")
    size: float = param(0.01, "BTC")
    stop: float = param(61_800.0, "stop price")
    target: float = param(62_300.0, "target price")
    n: int = 0
    ts: ("i8", N)
    sy: ("i8", N)
    ohlcv: ("f8", (N, 5))

    def on_bar(self, c, ts_ns, sym, open, high, low, close, volume):
        if self.n < N:
            k = self.n
            self.ts[k] = ts_ns
            self.sy[k] = sym
            self.ohlcv[k, 0] = open
            self.ohlcv[k, 1] = high
            self.ohlcv[k, 2] = low
            self.ohlcv[k, 3] = close
            self.ohlcv[k, 4] = volume
        if self.n == 0:
            bracket(c, self.sym, 1, self.size, 0.0, self.stop, self.target)
        self.n += 1


class LiqLog(Strategy):
    """Logs other traders' liquidations; places a buy limit at the first trade (limit > 0)."""

    sym: Symbol = param("BTCUSDT", "symbol")
    limit: float = param(0.0, "a resting buy limit placed at the first event (0: none)")
    n: int = 0
    ts: ("i8", N)
    sy: ("i8", N)
    side: ("i8", N)
    px: ("f8", N)
    qty: ("f8", N)

    placed: bool = False

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if not self.placed and self.limit > 0.0:
            buy_limit(c, self.sym, 0.01, self.limit)
            self.placed = True

    def on_market_liquidation(self, c, ts_ns, sym, price, qty, side):
        if self.n < N:
            k = self.n
            self.ts[k] = ts_ns
            self.sy[k] = sym
            self.side[k] = side
            self.px[k] = price
            self.qty[k] = qty
        self.n += 1
