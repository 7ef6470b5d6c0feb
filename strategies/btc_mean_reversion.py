"""BTC mean reversion at support: buy the oversold flush just above 60k with a tight stop.

Idea: in the Feb 2026 crash BTC broke the 62k support, wicked to ~58.9k (near the 0.618
retracement at 58.2k) and based around 60k before bouncing toward 63.5-65k. Buy when the tape
is oversold *near* that support, risk a tight stop just below 60k, and scale out into the bounce.

Entry (flat, no order in flight, fewer than `max_trades` entries, `cooldown_min` after the last
exit), all of:
  * price inside the band  stop < price <= stop + band;
  * an oversold signal: RSI of the last `rsi_n` price changes below `rsi_max` (changes between
    trades when `rsi_sec` = 0, else between the closes of `rsi_sec`-second bars; `use_rsi`), OR a
    drop of at least `drop_pct` % from the highest trade of the last `drop_min` minutes
    (`use_drop`; the window is kept in 30 time buckets, so it is exact to 1/30 of its length).
The entry is a market buy of equity x leverage x fraction / price (lot-rounded, capped by margin).

Exits, placed when the entry fills:
  * a reduce-only STOP_MARKET sell of the whole position at `stop` (59,800; `use_fib_stop` puts it
    at `fib_stop`, 58,200, the 0.618 level), triggered by the last trade (or the mark with
    `stop_on_mark`);
  * reduce-only limit sells at `tp1`, `tp2`, `tp3` (63,500 / 65,000 / 68,000) for `tp1_frac`,
    `tp2_frac` of the position and the rest (lot-rounded; a level <= 0 is skipped and its share
    moves to the next level);
  * after the first target, with `trail_bps` > 0 the fixed stop is replaced by a reduce-only
    TRAILING_STOP sell `trail_bps` below the highest trade since; otherwise the stop's quantity
    is reduced to the remaining position.
When the position is flat again (stop, trail or last target) every remaining order is cancelled.

Parameters: sym, stop, use_fib_stop, fib_stop, band, use_rsi, rsi_n, rsi_sec, rsi_max, use_drop,
drop_pct, drop_min, tp1, tp2, tp3, tp1_frac, tp2_frac, trail_bps, stop_on_mark, fraction,
leverage, max_trades, cooldown_min (each documented below).
"""
import numpy as np
from numba import njit

from backtest import (
    OrderType, Strategy, Symbol, TriggerSource, amend, buy, cancel, cancel_all, open_orders, param,
    position, submit,
)

try:
    from ._lib import (
        MODE_MAX, bucket_add, bucket_window, floor_lot, ring_push, rsi_from_ring, round_step,
        size_for_fraction, tick_size,
    )
except ImportError:  # loaded as a file
    from _lib import (
        MODE_MAX, bucket_add, bucket_window, floor_lot, ring_push, rsi_from_ring, round_step,
        size_for_fraction, tick_size,
    )

LIMIT = int(OrderType.LIMIT)
STOP_MARKET = int(OrderType.STOP_MARKET)
TRAILING_STOP = int(OrderType.TRAILING_STOP)
TRIG_LAST = int(TriggerSource.LAST)
TRIG_MARK = int(TriggerSource.MARK)
RSI_CAP = 256  # longest RSI lookback
DROP_BUCKETS = 30
MIN_NS = 60_000_000_000


class BtcMeanReversion(Strategy):
    """Buy oversold BTC just above 60k, stop below 60k, take profit at 63.5k / 65k / 68k."""

    sym: Symbol = param("BTCUSDT", "symbol traded")
    stop: float = param(59_800.0, "stop-market trigger price (below the 60k support)")
    use_fib_stop: bool = param(False, "put the stop at fib_stop (the 0.618 level) instead")
    fib_stop: float = param(58_200.0, "the 0.618 retracement stop used with use_fib_stop")
    band: float = param(2_000.0, "enter only when stop < price <= stop + band")
    use_rsi: bool = param(True, "oversold signal: RSI below rsi_max")
    rsi_n: int = param(14, "RSI lookback in price changes (max 256)")
    rsi_sec: float = param(60.0, "RSI sample bar in seconds (0 = every trade)")
    rsi_max: float = param(25.0, "RSI threshold of the oversold signal")
    use_drop: bool = param(True, "oversold signal: a drop of drop_pct % within drop_min minutes")
    drop_pct: float = param(3.0, "drop from the window high, in percent")
    drop_min: float = param(60.0, "drop window in minutes")
    tp1: float = param(63_500.0, "first take-profit price (<= 0 skips it)")
    tp2: float = param(65_000.0, "second take-profit price (<= 0 skips it)")
    tp3: float = param(68_000.0, "last take-profit price (<= 0: the rest rides with the stop)")
    tp1_frac: float = param(0.4, "share of the position sold at tp1")
    tp2_frac: float = param(0.3, "share of the position sold at tp2 (tp3 takes the rest)")
    trail_bps: float = param(150.0, "trailing stop distance after tp1, in bps (0 = keep the stop)")
    stop_on_mark: bool = param(False, "trigger the stop on the mark price instead of the last trade")
    fraction: float = param(0.5, "share of equity per entry")
    leverage: float = param(3.0, "sizing leverage (notional = equity x leverage x fraction)")
    max_trades: int = param(2, "maximum number of entries")
    cooldown_min: float = param(60.0, "minutes after an exit before a new entry")
    # --- state
    changes: ("f8", RSI_CAP)
    head: int = 0
    count: int = 0
    rsi_bar: int = -1
    rsi_close: float = 0.0
    rsi_prev: float = np.nan
    rsi: float = np.nan
    hi_ids: ("i8", 64)
    hi_vals: ("f8", 64)
    drop: float = 0.0
    stop_level: float = 0.0
    entries: int = 0
    entry_oid: int = 0
    entry_ts: int = 0
    entry_px: float = 0.0
    entry_qty: float = 0.0
    stop_oid: int = 0
    trailing: bool = False
    tp_oid: ("i8", 3)
    tp_hits: int = 0
    stops_hit: int = 0
    last_exit_ts: int = 0
    first_signal_ts: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if sym != self.sym:
            return
        _update_signals(self, ts_ns, price)
        if position(c, sym) != 0.0 or open_orders(c, sym) > 0:
            return
        if self.entries >= self.max_trades:
            return
        if self.last_exit_ts > 0 and ts_ns - self.last_exit_ts < int(self.cooldown_min * MIN_NS):
            return
        stop = self.fib_stop if self.use_fib_stop else self.stop
        if not (price > stop and price <= stop + self.band):
            return
        oversold = (self.use_rsi and self.rsi < self.rsi_max) or \
                   (self.use_drop and self.drop >= self.drop_pct)
        if not oversold:
            return
        if self.first_signal_ts == 0:
            self.first_signal_ts = ts_ns
        q = size_for_fraction(c, sym, self.fraction, self.leverage, price)
        if q <= 0.0:
            return
        oid = buy(c, sym, q)
        if oid > 0:
            self.entry_oid = oid
            self.entries += 1
            self.stop_level = round_step(stop, tick_size(c, sym))

    def on_fill(self, c, ts_ns, sym, oid, price, qty, side):
        if sym != self.sym:
            return
        pos = position(c, sym)
        if oid == self.entry_oid:
            self.entry_ts = ts_ns
            self.entry_px = price
            self.entry_qty = pos
            self.trailing = False
            self.tp_hits = 0
            trig = TRIG_MARK if self.stop_on_mark else TRIG_LAST
            self.stop_oid = submit(c, sym, STOP_MARKET, -1, pos, 0.0, self.stop_level, 0, True,
                                   trig, 0.0, 0.0, 0)
            _place_targets(self, c, sym, pos)
            return
        if pos <= 0.0:  # flat: a stop, the trail or the last target closed it
            if oid == self.stop_oid:
                self.stops_hit += 1
            elif oid == self.tp_oid[0] or oid == self.tp_oid[1] or oid == self.tp_oid[2]:
                self.tp_hits += 1
            cancel_all(c, sym)
            self.stop_oid = 0
            self.tp_oid[:] = 0
            self.last_exit_ts = ts_ns
            return
        if oid == self.tp_oid[0] or oid == self.tp_oid[1] or oid == self.tp_oid[2]:
            self.tp_hits += 1
            if self.trail_bps > 0.0 and not self.trailing:
                cancel(c, self.stop_oid)
                self.stop_oid = submit(c, sym, TRAILING_STOP, -1, floor_lot(c, sym, pos), 0.0, 0.0,
                                       0, True, TRIG_LAST, 0.0, self.trail_bps, 0)
                self.trailing = True
            elif self.stop_oid > 0:
                amend(c, self.stop_oid, floor_lot(c, sym, pos), 0.0, 0.0)


@njit(cache=True)
def _update_signals(s, ts_ns, price):
    """RSI (per trade or per bar) and the drop from the rolling high of the last drop_min minutes."""
    if s.rsi_sec > 0.0:
        width = int(s.rsi_sec * 1e9)
        b = ts_ns // width
        if s.rsi_bar < 0:
            s.rsi_bar = b
        elif b != s.rsi_bar:  # the previous bar closed
            if s.rsi_prev == s.rsi_prev:
                s.head, s.count = ring_push(s.changes, s.head, s.count, s.rsi_close - s.rsi_prev)
            s.rsi_prev = s.rsi_close
            s.rsi_bar = b
        s.rsi_close = price
    else:
        if s.rsi_prev == s.rsi_prev:
            s.head, s.count = ring_push(s.changes, s.head, s.count, price - s.rsi_prev)
        s.rsi_prev = price
    s.rsi = rsi_from_ring(s.changes, s.head, s.count, s.rsi_n)
    width = int(s.drop_min * MIN_NS) // DROP_BUCKETS
    if width < 1:
        width = 1
    bucket_add(s.hi_ids, s.hi_vals, ts_ns, width, price, MODE_MAX)
    hi = bucket_window(s.hi_ids, s.hi_vals, ts_ns, width, DROP_BUCKETS + 1, MODE_MAX)
    s.drop = (hi - price) / hi * 100.0 if hi > 0.0 else 0.0


@njit(cache=True)
def _place_targets(s, c, sym, pos):
    """Reduce-only limit sells at tp1/tp2/tp3 for tp1_frac, tp2_frac and the rest of pos."""
    levels = (s.tp1, s.tp2, s.tp3)
    fracs = (s.tp1_frac, s.tp2_frac, 1.0)
    left = pos
    carry = 0.0
    for k in range(3):
        s.tp_oid[k] = 0
        lvl = levels[k]
        share = carry + fracs[k]
        if not (lvl > 0.0):
            carry = share
            continue
        carry = 0.0
        q = left if k == 2 else floor_lot(c, sym, pos * share)
        if q > left:
            q = left
        q = floor_lot(c, sym, q)
        if q <= 0.0:
            continue
        oid = submit(c, sym, LIMIT, -1, q, round_step(lvl, tick_size(c, sym)), 0.0, 0, True, 0,
                     0.0, 0.0, 0)
        if oid > 0:
            s.tp_oid[k] = oid
            left -= q
