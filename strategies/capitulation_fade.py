"""Capitulation fade: after a liquidation flush, buy the reclaim with a stop under the flush low.

Idea: a liquidation cascade ends in a flush, a burst of forced selling that overshoots (Feb 2026:
BTC through 62k to a 58.9k wick in under an hour, funding deeply negative). Catching the knife is
expensive; waiting until price *reclaims* a level shows the forced selling is over, and the flush
low is a natural, nearby invalidation point.

1. Flush detection (either source arms a setup):
   * volume burst (`use_volume`): the volume traded in the last `burst_sec` seconds exceeds
     `vol_mult` x its slow average (an exponentially weighted volume rate with time constant
     `slow_min` minutes, x `burst_sec`), AND price is at least `drop_pct` % below its high of the
     last `drop_min` minutes. Needs `warmup_min` minutes of data first (0 = slow_min);
   * funding (`use_funding`): a funding event of `sym` with rate <= `funding_max`.
2. The flush low is the lowest trade since the flush (for a funding flush, starting from the low
   of the last `low_min` minutes); it keeps updating until the entry.
3. Reclaim: the level is `reclaim` (63,500), or flush_low x (1 + reclaim_pct / 100) when
   `reclaim_pct` > 0. Price must trade below the level after the flush, then at or above it: that
   trade triggers a market buy of equity x leverage x fraction / price (lot-rounded). With the
   fixed level, the flush low must also be at least `min_depth_pct` % below it (a 3 % dip to
   63,000 is not a capitulation under 63,500); until then the setup stays armed and the low keeps
   updating, so a later, deeper flush still counts.
4. On the entry fill: a reduce-only STOP_MARKET sell at flush_low x (1 - stop_pct / 100) (tick-
   rounded down, so always below the flush low) and, with `target` > 0, a reduce-only limit sell
   at `target`; both share an OCO group, so either one cancels the other.
A setup not reclaimed within `expiry_h` hours is dropped. At most `max_trades` entries.

Parameters: sym, use_volume, burst_sec, vol_mult, slow_min, warmup_min, drop_pct, drop_min,
use_funding, funding_max, low_min, reclaim, reclaim_pct, min_depth_pct, stop_pct, target, fraction, leverage,
expiry_h, max_trades.
"""
import numpy as np
from numba import njit

from backtest import (
    OrderType, Strategy, Symbol, buy, cancel_all, open_orders, param, position, submit,
)

try:
    from ._lib import (
        MODE_MAX, MODE_MIN, MODE_SUM, bucket_add, bucket_window, floor_step, rate_update,
        round_step, size_for_fraction, tick_size,
    )
except ImportError:  # loaded as a file
    from _lib import (
        MODE_MAX, MODE_MIN, MODE_SUM, bucket_add, bucket_window, floor_step, rate_update,
        round_step, size_for_fraction, tick_size,
    )

LIMIT = int(OrderType.LIMIT)
STOP_MARKET = int(OrderType.STOP_MARKET)
SEC_NS = 1_000_000_000
MIN_NS = 60 * SEC_NS
HOUR_NS = 60 * MIN_NS
BURST_BUCKETS = 10  # the burst window is kept in this many buckets
WIN_BUCKETS = 30  # drop / low windows


class CapitulationFade(Strategy):
    """Detect a liquidation flush, wait for a reclaim, buy with a stop below the flush low."""

    sym: Symbol = param("BTCUSDT", "symbol traded")
    use_volume: bool = param(True, "detect flushes by a volume burst plus a drop")
    burst_sec: float = param(300.0, "volume burst window in seconds")
    vol_mult: float = param(3.0, "burst: window volume > vol_mult x its slow average")
    slow_min: float = param(240.0, "time constant of the slow volume average, in minutes")
    warmup_min: float = param(0.0, "minutes of data before volume flushes count (0 = slow_min)")
    drop_pct: float = param(3.0, "burst must come with a drop of this % from the recent high")
    drop_min: float = param(60.0, "window of the recent high, in minutes")
    use_funding: bool = param(True, "a funding rate <= funding_max also marks a flush")
    funding_max: float = param(-0.0005, "funding rate threshold (per interval, e.g. -0.0005 = -0.05 %)")
    low_min: float = param(240.0, "funding flush: the flush low starts at the low of these minutes")
    reclaim: float = param(63_500.0, "level to reclaim before entering")
    reclaim_pct: float = param(0.0, "> 0: reclaim flush_low x (1 + reclaim_pct %) instead")
    min_depth_pct: float = param(2.0, "fixed level: enter only if the flush low is this % below it")
    stop_pct: float = param(0.25, "stop this % below the flush low")
    target: float = param(0.0, "take-profit limit price (0 = none)")
    fraction: float = param(0.5, "share of equity per entry")
    leverage: float = param(3.0, "sizing leverage (notional = equity x leverage x fraction)")
    expiry_h: float = param(48.0, "drop a setup not reclaimed within this many hours")
    max_trades: int = param(1, "maximum number of entries")
    # --- state
    vol_ids: ("i8", 64)
    vol_vals: ("f8", 64)
    hi_ids: ("i8", 64)
    hi_vals: ("f8", 64)
    lo_ids: ("i8", 64)
    lo_vals: ("f8", 64)
    vol_rate: float = 0.0
    last_ts: int = 0
    first_ts: int = 0
    burst: float = 0.0
    expected: float = 0.0
    drop: float = 0.0
    armed: bool = False
    flush_src: int = 0  # 1 volume, 2 funding
    flush_ts: int = 0
    flush_low: float = 0.0
    level: float = 0.0
    below: bool = False
    flushes: int = 0
    entries: int = 0
    entry_oid: int = 0
    entry_ts: int = 0
    entry_px: float = 0.0
    entry_flush_low: float = 0.0
    stop_px: float = 0.0
    stop_oid: int = 0
    target_oid: int = 0
    stops_hit: int = 0
    targets_hit: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if sym != self.sym:
            return
        _update_flow(self, ts_ns, price, qty)
        flat = position(c, sym) == 0.0 and open_orders(c, sym) == 0
        if self.armed and self.entry_oid == 0 and ts_ns - self.flush_ts > int(self.expiry_h * HOUR_NS):
            self.armed = False  # expired
        warm = self.warmup_min if self.warmup_min > 0.0 else self.slow_min
        if (self.use_volume and ts_ns - self.first_ts >= int(warm * MIN_NS)
                and self.burst > self.vol_mult * self.expected and self.drop >= self.drop_pct
                and flat and self.entries < self.max_trades):
            if not self.armed:
                _arm(self, ts_ns, price, 1)
        if not self.armed or not flat or self.entries >= self.max_trades:
            return
        if price < self.flush_low:
            self.flush_low = price
        self.level = self.reclaim
        if self.reclaim_pct > 0.0:
            self.level = self.flush_low * (1.0 + self.reclaim_pct / 100.0)
        if price < self.level:
            self.below = True
            return
        if not self.below:
            return
        if self.reclaim_pct <= 0.0 and self.flush_low * (1.0 + self.min_depth_pct / 100.0) > self.level:
            return  # the flush did not go deep enough below the level: keep waiting
        q = size_for_fraction(c, sym, self.fraction, self.leverage, price)
        if q <= 0.0:
            return
        oid = buy(c, sym, q)
        if oid > 0:
            self.entry_oid = oid
            self.entries += 1
            self.entry_flush_low = self.flush_low
            self.armed = False

    def on_funding(self, c, ts_ns, sym, rate, payment):
        if sym != self.sym or not self.use_funding or rate > self.funding_max:
            return
        if self.armed or self.entries >= self.max_trades or position(c, sym) != 0.0:
            return
        width = max(int(self.low_min * MIN_NS) // WIN_BUCKETS, 1)
        low = bucket_window(self.lo_ids, self.lo_vals, ts_ns, width, WIN_BUCKETS + 1, MODE_MIN)
        if low == low:
            _arm(self, ts_ns, low, 2)

    def on_fill(self, c, ts_ns, sym, oid, price, qty, side):
        if sym != self.sym:
            return
        pos = position(c, sym)
        if oid == self.entry_oid:
            self.entry_ts = ts_ns
            self.entry_px = price
            tick = tick_size(c, sym)
            stop = floor_step(self.entry_flush_low * (1.0 - self.stop_pct / 100.0), tick)
            if stop >= self.entry_flush_low:
                stop -= tick
            self.stop_px = stop
            group = self.entry_oid
            self.stop_oid = submit(c, sym, STOP_MARKET, -1, pos, 0.0, stop, 0, True, 0, 0.0, 0.0,
                                   group)
            if self.target > 0.0:
                self.target_oid = submit(c, sym, LIMIT, -1, pos, round_step(self.target, tick), 0.0,
                                         0, True, 0, 0.0, 0.0, group)
            return
        if pos == 0.0:
            if oid == self.stop_oid:
                self.stops_hit += 1
            elif oid == self.target_oid:
                self.targets_hit += 1
            cancel_all(c, sym)
            self.entry_oid = 0
            self.stop_oid = 0
            self.target_oid = 0


@njit(cache=True)
def _arm(s, ts_ns, low, src):
    s.armed = True
    s.flush_src = src
    s.flush_ts = ts_ns
    s.flush_low = low
    s.below = False
    s.flushes += 1


@njit(cache=True)
def _update_flow(s, ts_ns, price, qty):
    """Burst volume vs its slow average, drop from the rolling high, rolling low."""
    if s.first_ts == 0:
        s.first_ts = ts_ns
    burst_ns = int(s.burst_sec * SEC_NS)
    tau = int(s.slow_min * MIN_NS)
    # expected volume in a burst window from the slow rate *before* this trade
    rate = s.vol_rate
    if s.last_ts > 0 and ts_ns > s.last_ts and tau > 0:
        rate *= np.exp(-float(ts_ns - s.last_ts) / float(tau))
    s.expected = rate * burst_ns
    s.vol_rate = rate_update(s.vol_rate, s.last_ts, ts_ns, qty, tau)
    s.last_ts = ts_ns
    bw = max(burst_ns // BURST_BUCKETS, 1)
    bucket_add(s.vol_ids, s.vol_vals, ts_ns, bw, qty, MODE_SUM)
    s.burst = bucket_window(s.vol_ids, s.vol_vals, ts_ns, bw, BURST_BUCKETS, MODE_SUM)
    hw = max(int(s.drop_min * MIN_NS) // WIN_BUCKETS, 1)
    bucket_add(s.hi_ids, s.hi_vals, ts_ns, hw, price, MODE_MAX)
    hi = bucket_window(s.hi_ids, s.hi_vals, ts_ns, hw, WIN_BUCKETS + 1, MODE_MAX)
    s.drop = (hi - price) / hi * 100.0 if hi > 0.0 else 0.0
    lw = max(int(s.low_min * MIN_NS) // WIN_BUCKETS, 1)
    bucket_add(s.lo_ids, s.lo_vals, ts_ns, lw, price, MODE_MIN)
