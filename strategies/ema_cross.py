"""EMA crossover: trend following with a fast and a slow exponential moving average.

Idea: long while the fast EMA is above the slow one; when it crosses below, go flat (or short with
`allow_short`). In the Feb 2026 crash the slow EMA lags the 73k -> 60k slide, so a fast/slow pair
gets out (or short) early in the sell-off and back in on the bounce, at the cost of whipsaws.

Samples: with `bar_sec` = 0 every trade of `sym` is a sample (tick-based EMAs); with `bar_sec` > 0
the sample is the last trade price of each `bar_sec`-second bar, taken when the next bar starts
(time-based EMAs; bars without trades are skipped). The EMAs use alpha = 2 / (n + 1).

Parameters:
    sym          symbol traded (default BTCUSDT)
    fast, slow   EMA lengths in samples (default 20, 100)
    bar_sec      bar length in seconds; 0 = one sample per trade (default 60)
    band_bps     dead band: long when fast > slow x (1 + band), short/flat when fast < slow x
                 (1 - band); in between the signal keeps its side (default 0)
    allow_short  go short (instead of flat) when fast < slow (default False)
    fraction     share of equity per position (default 1.0)
    leverage     sizing leverage: notional = equity x leverage x fraction (default 1.0); margin
                 comes from the run config's `leverage`
    warmup       samples before the first signal; 0 = `slow` (default 0)

Signals: +1 (fast above slow), -1 (below). On a change the position on the wrong side is closed
at market, and the new side (if any) is opened at market once that close has filled (two orders,
so the new position's margin is checked after the old one is released).
"""
from numba import njit

from backtest import Strategy, Symbol, buy, open_orders, param, position, sell

try:
    from ._lib import ema_alpha, ema_update, size_for_fraction
except ImportError:  # loaded as a file
    from _lib import ema_alpha, ema_update, size_for_fraction


class EmaCross(Strategy):
    """Long when the fast EMA is above the slow EMA, flat (or short) otherwise."""

    sym: Symbol = param("BTCUSDT", "symbol traded")
    fast: int = param(20, "fast EMA length (samples)")
    slow: int = param(100, "slow EMA length (samples)")
    bar_sec: float = param(60.0, "bar length in seconds (0 = every trade is a sample)")
    band_bps: float = param(0.0, "dead band around the crossing, in basis points")
    allow_short: bool = param(False, "short when fast < slow (else flat)")
    fraction: float = param(1.0, "share of equity per position")
    leverage: float = param(1.0, "sizing leverage (notional = equity x leverage x fraction)")
    warmup: int = param(0, "samples before trading (0 = slow)")
    fast_ema: float = 0.0
    slow_ema: float = 0.0
    samples: int = 0
    bar_id: int = -1
    bar_close: float = 0.0
    signal: int = 0  # +1 long, -1 short/flat, 0 unknown
    crosses: int = 0
    orders: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if sym != self.sym:
            return
        if self.bar_sec > 0.0:
            width = int(self.bar_sec * 1e9)
            b = ts_ns // width
            if self.bar_id < 0:
                self.bar_id = b
            if b != self.bar_id:  # the previous bar closed: its last price is a sample
                _sample(self, self.bar_close)
                self.bar_id = b
            self.bar_close = price
        else:
            _sample(self, price)
        need = self.warmup if self.warmup > 0 else self.slow
        if self.samples < need or self.signal == 0:
            return
        if open_orders(c, sym) > 0:
            return  # the previous order is still on its way
        pos = position(c, sym)
        want = 1 if self.signal > 0 else (-1 if self.allow_short else 0)
        if (pos > 0.0 and want <= 0) or (pos < 0.0 and want >= 0):
            # wrong side: close first; the new side is opened once the close has filled
            oid = sell(c, sym, pos) if pos > 0.0 else buy(c, sym, -pos)
            if oid > 0:
                self.orders += 1
            return
        if pos == 0.0 and want != 0:
            q = size_for_fraction(c, sym, self.fraction, self.leverage, price)
            if q > 0.0:
                oid = buy(c, sym, q) if want > 0 else sell(c, sym, q)
                if oid > 0:
                    self.orders += 1


@njit(cache=True)
def _sample(s, x):
    """Feed one sample to both EMAs and update the signal (with the dead band)."""
    s.fast_ema = ema_update(s.fast_ema, x, ema_alpha(float(s.fast)), s.samples)
    s.slow_ema = ema_update(s.slow_ema, x, ema_alpha(float(s.slow)), s.samples)
    s.samples += 1
    band = s.band_bps * 1e-4
    new = s.signal
    if s.fast_ema > s.slow_ema * (1.0 + band):
        new = 1
    elif s.fast_ema < s.slow_ema * (1.0 - band):
        new = -1
    if new != s.signal:
        if s.signal != 0:
            s.crosses += 1
        s.signal = new
