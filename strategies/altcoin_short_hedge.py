"""Altcoin short basket: short the alts that are weakest against BTC, optionally hedged with BTC.

Idea: in a leveraged-long liquidation cascade the alts fall 1.5-3x as far as BTC (Feb 2026: BTC
-18 %, alts -50-60 %). Relative weakness persists while the forced selling lasts, so short the
alts that already lag BTC most, each with its own stop, and (optionally) hold a BTC long against
them so the book is a bet on alt/BTC, not on direction.

Universe: every symbol of the run except `btc`, `exclude` and spot instruments (no shorting
without margin), at most `max_alts` of them in symbol order. Pick the alts with the run's
`symbols` (up to 8 alts, plus BTC).

Every `on_timer` call (the run's `timer` config, e.g. '1h') the strategy records the last price
of every symbol (a ring of 64 snapshots per symbol). Every `rebalance_every` timer calls it:
  1. takes the newest snapshot at least `lookback_min` minutes old (none yet: it waits);
  2. scores each alt: rel = alt return - BTC return over that span;
  3. ranks the alts whose score is below -`min_rel_pct` %, weakest first;
  4. with `close_unselected`, covers (market, reduce-only) every short that no longer ranks within
     the weakest `n_short` + `keep_extra` (the extra ranks are a hysteresis band against churn);
  5. opens market shorts in the weakest flat alts until `n_short` shorts are held, skipping alts
     stopped out in the last `cooldown_min` minutes: notional = equity x leverage / n_short,
     capped so the gross exposure stays <= equity x max_leverage (and by the free margin);
  6. with `hedge`, moves the BTC long toward hedge_ratio x the short notional (when off by more
     than 10 %).
Each short gets a reduce-only STOP_MARKET buy at entry x (1 + stop_pct / 100) (tick-rounded up)
as soon as it fills.

Parameters: btc, exclude, n_short, lookback_min, min_rel_pct, leverage, max_leverage, stop_pct,
hedge, hedge_ratio, max_alts, cooldown_min, rebalance_every, close_unselected, keep_extra.
"""
import numpy as np
from numba import njit

from backtest import (
    OrderType, Strategy, Symbol, avg_price, buy, cancel_all, close_position, equity, last_price,
    open_orders, param, position, sell, submit,
)

try:
    from ._lib import (
        ceil_step, floor_lot, is_spot, margin_budget, margin_per_unit, n_symbols, tick_size,
    )
except ImportError:  # loaded as a file
    from _lib import (
        ceil_step, floor_lot, is_spot, margin_budget, margin_per_unit, n_symbols, tick_size,
    )

STOP_MARKET = int(OrderType.STOP_MARKET)
NSYM = 64  # symbols the per-symbol arrays hold (a run over more is refused: max_symbols)
NSNAP = 64  # price snapshots kept per symbol
MIN_NS = 60_000_000_000
HEDGE_TOLERANCE = 0.1


class AltcoinShortHedge(Strategy):
    """Short the N alts weakest against BTC, with per-position stops and an optional BTC hedge."""

    max_symbols = NSYM

    btc: Symbol = param("BTCUSDT", "the BTC contract: benchmark and hedge")
    exclude: Symbol = param("", "another symbol to leave out of the universe (e.g. a second BTC contract)")
    n_short: int = param(3, "number of alts shorted")
    lookback_min: float = param(240.0, "relative-strength lookback in minutes")
    min_rel_pct: float = param(0.0, "short only alts lagging BTC by more than this, in percent")
    leverage: float = param(2.0, "total short notional as a multiple of equity")
    max_leverage: float = param(3.0, "cap on gross exposure (shorts + hedge) / equity")
    stop_pct: float = param(5.0, "per-position stop: buy-stop this % above the entry price")
    hedge: bool = param(False, "hold a BTC long against the shorts")
    hedge_ratio: float = param(0.5, "BTC long notional / total short notional")
    max_alts: int = param(8, "largest number of alts considered (in symbol order)")
    cooldown_min: float = param(240.0, "minutes before an alt that was stopped out can be shorted again")
    rebalance_every: int = param(1, "rebalance every k timer calls")
    close_unselected: bool = param(True, "cover shorts that are no longer among the weakest")
    keep_extra: int = param(1, "keep a short while it ranks within the weakest n_short + keep_extra")
    # --- state
    snap_ts: ("i8", NSNAP)
    snap_px: ("f8", (NSNAP, NSYM))
    snap_head: int = 0
    snap_count: int = 0
    timers: int = 0
    rebalances: int = 0
    rel: ("f8", NSYM)
    rank: ("i8", NSYM)
    entry_oid: ("i8", NSYM)
    stop_oid: ("i8", NSYM)
    stopped_ts: ("i8", NSYM)
    shorts_opened: int = 0
    shorts_closed: int = 0
    stops_hit: int = 0
    hedge_oid: int = 0

    def on_timer(self, c, ts_ns):
        _snapshot(self, c, ts_ns)
        self.timers += 1
        if self.rebalance_every > 1 and (self.timers - 1) % self.rebalance_every != 0:
            return
        j = _lookback_slot(self, ts_ns)
        if j < 0:
            return  # not enough history yet
        if not _score(self, c, j):
            return
        _rank(self, c)
        self.rebalances += 1
        eq = equity(c)
        if eq <= 0.0:
            return
        n = n_symbols(c)
        gross = 0.0
        for x in range(n):
            gross += abs(position(c, x)) * last_price(c, x)
        cap = eq * self.max_leverage
        per = eq * self.leverage / max(self.n_short, 1)
        keep = self.n_short + self.keep_extra
        budget = margin_budget(c)  # shared by every order of this rebalance
        # 1. cover shorts that fell out of the weakest n_short + keep_extra
        shorts = 0
        short_notional = 0.0
        for x in range(n):
            if not _in_universe(self, c, x):
                continue
            pos = position(c, x)
            if pos < 0.0:
                px = last_price(c, x)
                if self.close_unselected and (self.rank[x] < 0 or self.rank[x] >= keep):
                    cancel_all(c, x)
                    if close_position(c, x) > 0:
                        self.shorts_closed += 1
                        gross -= -pos * px
                else:
                    shorts += 1
                    short_notional += -pos * px
            elif self.entry_oid[x] > 0 and open_orders(c, x) > 0:
                shorts += 1  # an entry still on its way
        # 2. open new shorts, weakest first, up to n_short positions
        cool = int(self.cooldown_min * MIN_NS)
        for r in range(self.n_short):
            if shorts >= self.n_short:
                break
            x = _with_rank(self, c, r)
            if x < 0:
                break
            px = last_price(c, x)
            if position(c, x) != 0.0 or open_orders(c, x) > 0 or not (px > 0.0):
                continue
            if self.stopped_ts[x] > 0 and ts_ns - self.stopped_ts[x] < cool:
                continue
            notional = min(per, cap - gross)
            if notional <= 0.0:
                break
            mpu = margin_per_unit(c, x, px)
            q = floor_lot(c, x, min(notional / px, budget / mpu))
            if q <= 0.0:
                continue
            oid = sell(c, x, q)
            if oid > 0:
                budget -= q * mpu
                self.entry_oid[x] = oid
                self.shorts_opened += 1
                shorts += 1
                gross += q * px
                short_notional += q * px
        if self.hedge:
            _hedge(self, c, short_notional, cap - gross, budget)

    def on_fill(self, c, ts_ns, sym, oid, price, qty, side):
        if oid == self.entry_oid[sym]:
            pos = position(c, sym)
            if pos < 0.0:
                stop = ceil_step(avg_price(c, sym) * (1.0 + self.stop_pct / 100.0), tick_size(c, sym))
                self.stop_oid[sym] = submit(c, sym, STOP_MARKET, 1, -pos, 0.0, stop, 0, True, 0,
                                            0.0, 0.0, 0)
            self.entry_oid[sym] = 0
        elif oid == self.stop_oid[sym]:
            self.stops_hit += 1
            self.stopped_ts[sym] = ts_ns
            self.stop_oid[sym] = 0
            cancel_all(c, sym)


@njit(cache=True)
def _in_universe(s, c, sym):
    """An alt: not the BTC contract, not excluded, not spot, among the first max_alts such."""
    if sym == s.btc or sym == s.exclude or is_spot(c, sym):
        return False
    k = 0
    for x in range(sym):
        if x != s.btc and x != s.exclude and not is_spot(c, x):
            k += 1
    return k < s.max_alts


@njit(cache=True)
def _snapshot(s, c, ts_ns):
    h = s.snap_head
    s.snap_ts[h] = ts_ns
    for x in range(n_symbols(c)):
        s.snap_px[h, x] = last_price(c, x)
    s.snap_head = (h + 1) % NSNAP
    if s.snap_count < NSNAP:
        s.snap_count += 1


@njit(cache=True)
def _lookback_slot(s, ts_ns):
    """The newest snapshot taken at least lookback_min minutes before ts_ns, or -1."""
    horizon = ts_ns - int(s.lookback_min * MIN_NS)
    best = -1
    best_ts = 0
    for k in range(s.snap_count):
        t = s.snap_ts[k]
        if t <= horizon and (best < 0 or t > best_ts):
            best = k
            best_ts = t
    return best


@njit(cache=True)
def _score(s, c, j):
    """rel[alt] = alt return - BTC return since snapshot j (NaN without prices). False without BTC."""
    b0 = s.snap_px[j, s.btc]
    b1 = last_price(c, s.btc)
    if not (b0 > 0.0 and b1 > 0.0):
        return False
    rb = b1 / b0 - 1.0
    for x in range(n_symbols(c)):
        s.rel[x] = np.nan
        if not _in_universe(s, c, x):
            continue
        p0 = s.snap_px[j, x]
        p1 = last_price(c, x)
        if p0 > 0.0 and p1 > 0.0:
            s.rel[x] = (p1 / p0 - 1.0) - rb
    return True


@njit(cache=True)
def _rank(s, c):
    """rank[alt] = 0 for the weakest alt with rel below -min_rel_pct %, 1 for the next, ...; -1 for
    alts that do not lag enough (or have no score)."""
    n = n_symbols(c)
    limit = -s.min_rel_pct / 100.0
    for x in range(n):
        s.rank[x] = -1
    for r in range(n):
        best = -1
        for x in range(n):
            v = s.rel[x]
            if s.rank[x] >= 0 or not (v < limit):
                continue
            if best < 0 or v < s.rel[best]:
                best = x
        if best < 0:
            break
        s.rank[best] = r


@njit(cache=True)
def _with_rank(s, c, r):
    for x in range(n_symbols(c)):
        if s.rank[x] == r:
            return x
    return -1


@njit(cache=True)
def _hedge(s, c, short_notional, room, budget):
    """Move the BTC long toward hedge_ratio x short_notional (within the gross room and budget)."""
    b = s.btc
    px = last_price(c, b)
    if not (px > 0.0) or open_orders(c, b) > 0:
        return
    target = s.hedge_ratio * short_notional / px
    pos = position(c, b)
    diff = target - pos
    if abs(diff) <= HEDGE_TOLERANCE * max(target, 0.0) or diff == 0.0:
        return
    if diff > 0.0:
        q = min(diff, max(room, 0.0) / px, budget / margin_per_unit(c, b, px))
        q = floor_lot(c, b, q)
        if q > 0.0:
            s.hedge_oid = buy(c, b, q)
    elif pos > 0.0:
        q = floor_lot(c, b, min(-diff, pos))
        if q > 0.0:
            s.hedge_oid = sell(c, b, q)
