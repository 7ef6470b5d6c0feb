"""Reference simulator (test oracle) for docs/fill-rules.md.

A slow, deliberately plain pure-Python implementation of the order and fill rules, written from
the spec alone (it shares nothing with the compiled engine except the enum values in
backtest/core/schema.py). Every formula is evaluated in the exact order the doc writes it, with
plain Python floats, because the engine is compared against it bit for bit.

Candles (section 8, R8.1-R8.8) are walked by `_bar`: its own path points, per order, from the
doc's rules; market liquidations change nothing (R8.8).

Partial fills (R3.15) and the queue model (R3.16, and R9.8 in an L2 book) are modelled.

The L2 book and the l2_depth model (section 9, R9.1-R9.8) are `Book` below, written from the
rules; its l1_depth fallback (R9.6) is modelled with impact_k = 0 only (the causal estimators are
not modelled), so the equivalence scenarios run l2_depth with impact_k = 0.

Not modelled (out of scope for the oracle): samples/bars (R2.1), timer (R2.2), the split of
a fill's cost into spread, impact and drift (R4.5; its benchmark and total are modelled),
peak/drawdown (R6.1), liquidations, inverse contracts, interest.

Ambiguity decisions (the spec does not settle these; each is also marked "CHOICE" in the code):
  A1  Cancel (R3.12) is checked for every live order of the symbol (PENDING, OPEN and
      WAITING_PARENT) at each TRADE/QUOTE/MARK event of the symbol with t >= cancel_ts, BEFORE the
      R3.1 eligibility test: a cancel that reaches the venue before the order does still cancels it
      (at the first event of the symbol with t >= cancel_ts). A second cancel while one is in
      flight returns 0 and keeps the earlier cancel time.
  A2  The cancel/amend result is decided at request time: 0 if the order is live then (PENDING,
      OPEN, WAITING_PARENT), else -UNKNOWN_ORDER (also when the script action referenced returned
      <= 0). A cancel that arrives after a fill simply has no effect.
  A3  Amend (R3.13): a value > 0 replaces, anything else keeps. PENDING and WAITING_PARENT orders are
      amended immediately; OPEN orders at the first event of the symbol with t >= t_req +
      cancel_latency_ns (after the cancel check, before the fill check). The amended values are
      not re-validated, the order keeps its oid/status/trailing reference/triggered flag, and an
      amended OPEN order is NOT re-treated as an arrival (no new R3.5 marketability check).
  A4  Plain LIMIT orders at arrival follow R3.5 and, if they rest, R3.6 at that same event (the
      same "R3.5 then R3.6" as R3.7 states for triggered limit variants).
  A5  IOC/FOK limits that cannot be priced at arrival (no quote and no trade) are not marketable,
      so they EXPIRE. FOK behaves like IOC (fills are always whole). TIF is ignored for market-like
      orders (MARKET, STOP_MARKET, TAKE_PROFIT_MARKET, TRAILING_STOP): they wait for a price.
  A6  POST_ONLY is checked at arrival for LIMIT orders (R3.2) and, for STOP_LIMIT /
      TAKE_PROFIT_LIMIT, right after the trigger (their "arrival" as a limit order).
  A7  Trailing stop: ref = current trigger price at arrival if one exists (a trade for LAST, a mark
      for MARK), else it is set to px at the first trigger check. dist = (ref * trail_bps) / 10000.
      A trailing stop needs trail > 0 or trail_bps > 0, else INVALID_PRICE; trail is not tick-checked.
  A8  Validation order at submit: UNKNOWN_SYMBOL, INVALID_ORDER (bad type/side), INVALID_QTY,
      BELOW_LOT_SIZE, OFF_LOT_SIZE, INVALID_PRICE (limit then stop), OFF_TICK_SIZE (limit then
      stop), REDUCE_ONLY_WOULD_INCREASE, INSUFFICIENT_BALANCE, INSUFFICIENT_MARGIN,
      TOO_MANY_OPEN_ORDERS. Lot test: n = qty / lot; BELOW if n < 1 - 1e-9; OFF if
      abs(n - round(n)) > 1e-9. Tick test: same with price / tick and the same 1e-9 tolerance.
      A lot or tick size <= 0 disables that test.
  A9  Reduce-only at submit: rejected when pos == 0 or sign(pos) == side. At fill time: same
      condition -> EXPIRED (NOTHING_TO_REDUCE), else q = min(q, abs(pos)).
  A10 Margin check (R4.4), perpetuals: inc = q if pos == 0 or sign(pos) == side, else
      max(0, q - abs(pos)); only checked when inc > 0 and the order is not reduce-only;
      need = inc * px / lev + q * px * taker_fee; fails if need > free margin, where
      free = equity - (sum over all symbols in symbol order of abs(pos) * val / lev), lev = 1 for
      spot. The TAKER rate is used in the check even for maker fills.
      Spot buys (always checked): need = q * px + q * px * taker_fee; fails if need >
      balance - (sum over spot symbols in symbol order of pos * avg). Spot sells: no margin check.
      Submit px: buy with a limit price (LIMIT, STOP_LIMIT, TAKE_PROFIT_LIMIT) -> max(opp, limit);
      otherwise opp. Without opp: the limit price if the order has one, else the check is skipped
      at submit (it still runs at fill). Fill px: the fill price, q: the (clipped) fill quantity.
  A11 Spot sells above the held quantity: qty > pos + 1e-12 -> INSUFFICIENT_BALANCE (at submit
      REJECT with that reason; at fill the order is REJECTED with that reason, after the
      reduce-only clip). Applies to reduce-only spot sells too.
  A12 Fill-time checks in order: reduce-only (expire/clip), spot balance, margin; then R4.1.
  A13 equity = balance + (sum of upnl[s] over symbols in symbol order, starting from 0.0), with
      upnl[s] = pos * (val - avg) recomputed from the current state (val = 0.0 before any price).
  A14 Bracket children are not validated; they are created WAITING_PARENT with qty = entry qty,
      decision index g, and on the entry's fill become OPEN with qty = entry filled qty, decision
      index = the fill's event index and arrive time = the fill's time (no latency). Bracket entry
      has oco 0. OCO siblings are searched over all symbols; a cancelled/expired/rejected entry
      with no fill cancels its live children (PARENT_CANCELED) at the same time.
  A15 Orders still live at the end keep their status, reason END_OF_DATA, done_ts_ns -1.
  A16 TOO_MANY_OPEN_ORDERS when the number of live orders (all symbols) is >= MAX_ORDERS.
  A17 Funding row mark_price = val[s] (mark once seen, else last).
"""
from __future__ import annotations

import importlib
import math
import os
import sys
import types

# Load backtest/core/schema.py (and the enums.py it re-exports) directly by path, as modules of a
# stand-in package: no other backtest module, not even backtest/core/__init__.py, is imported.
_core = types.ModuleType("_oracle_core")
_core.__path__ = [os.path.join(os.path.dirname(__file__), "..", "backtest", "core")]
sys.modules.setdefault("_oracle_core", _core)
schema = importlib.import_module("_oracle_core.schema")

EventKind = schema.EventKind
Side = schema.Side
InstrumentType = schema.InstrumentType
OrderType = schema.OrderType
TimeInForce = schema.TimeInForce
TriggerSource = schema.TriggerSource
OrderStatus = schema.OrderStatus
Reason = schema.Reason
Liquidity = schema.Liquidity
MAX_ORDERS = schema.MAX_ORDERS

TRADE, QUOTE, MARK, FUNDING = (int(EventKind.TRADE), int(EventKind.QUOTE), int(EventKind.MARK),
                               int(EventKind.FUNDING))
BAR, MARKET_LIQUIDATION = int(EventKind.BAR), int(EventKind.MARKET_LIQUIDATION)
BOOK = int(EventKind.BOOK)
BOOK_LEVELS = schema.MAX_BOOK_LEVELS
PENDING, OPEN, WAITING_PARENT = int(OrderStatus.PENDING), int(OrderStatus.OPEN), int(
    OrderStatus.WAITING_PARENT)
FILLED, CANCELED, REJECTED, EXPIRED = (int(OrderStatus.FILLED), int(OrderStatus.CANCELED),
                                       int(OrderStatus.REJECTED), int(OrderStatus.EXPIRED))
LIVE = (PENDING, OPEN, WAITING_PARENT)

MARKET = int(OrderType.MARKET)
LIMIT = int(OrderType.LIMIT)
STOP_MARKET = int(OrderType.STOP_MARKET)
STOP_LIMIT = int(OrderType.STOP_LIMIT)
TP_MARKET = int(OrderType.TAKE_PROFIT_MARKET)
TP_LIMIT = int(OrderType.TAKE_PROFIT_LIMIT)
TRAILING = int(OrderType.TRAILING_STOP)

HAS_LIMIT = (LIMIT, STOP_LIMIT, TP_LIMIT)  # a limit price is needed
HAS_STOP = (STOP_MARKET, STOP_LIMIT, TP_MARKET, TP_LIMIT)  # a stop price is needed
STOP_LIKE = (STOP_MARKET, STOP_LIMIT, TP_MARKET, TP_LIMIT, TRAILING)  # wait for a trigger
MARKET_LIKE = (MARKET, STOP_MARKET, TP_MARKET, TRAILING)  # fill by R3.4 once OPEN/triggered
TP_TYPES = (TP_MARKET, TP_LIMIT)

GTC, IOC, FOK, POST_ONLY = (int(TimeInForce.GTC), int(TimeInForce.IOC), int(TimeInForce.FOK),
                            int(TimeInForce.POST_ONLY))
LAST_SRC, MARK_SRC = int(TriggerSource.LAST), int(TriggerSource.MARK)
SPOT = int(InstrumentType.SPOT)
MAKER, TAKER = int(Liquidity.MAKER), int(Liquidity.TAKER)

LOT_TOL = 1e-9  # R3.14 tolerance in lots (also used for ticks, CHOICE A8)
FLAT_EPS = 1e-12  # R4.1 flat threshold (also the spot-balance tolerance, CHOICE A11)


def _sign(x: float) -> float:
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


class Order:
    def __init__(self, oid, sym, otype, side, qty, limit, stop, tif, reduce_only, trigger, trail,
                 trail_bps, oco, parent, decision_idx, decision_ts, arrive_ts):
        self.oid = oid
        self.sym = sym
        self.otype = otype
        self.side = side
        self.qty = qty
        self.limit = limit
        self.stop = stop
        self.tif = tif
        self.reduce_only = bool(reduce_only)
        self.trigger = trigger
        self.trail = trail
        self.trail_bps = trail_bps
        self.oco = oco
        self.parent = parent
        self.decision_idx = decision_idx
        self.decision_ts = decision_ts
        self.arrive_ts = arrive_ts
        self.status = PENDING
        self.reason = int(Reason.NONE)
        self.filled = 0.0
        self.notional = 0.0  # sum of q * price over fills
        self.done_ts = -1
        self.cancel_ts = -1  # when a requested cancel reaches the venue (-1: none)
        self.amends = []  # queued amendments for OPEN orders: (effective_ts, qty, limit, stop)
        self.triggered = False
        self.trail_ref = None  # R3.8 reference (None until a trigger price exists)
        self.children = []  # bracket children (R3.11)
        self.arrival_mid = None  # R4.5: the mid (or last) at decision time
        self.queue = None  # R3.16: displayed size ahead of it while it rests (None: not known)


class Market:
    """Market state of one symbol (R2.3)."""

    def __init__(self):
        self.last = 0.0
        self.has_trade = False
        self.bid = 0.0
        self.ask = 0.0
        self.bid_qty = 0.0
        self.ask_qty = 0.0
        self.has_quote = False
        self.mark = 0.0
        self.index = 0.0
        self.has_mark = False
        self.thru = False  # R2.3: a trade printed through the quote since it was seen
        self.book = Book()

    def trade(self, p: float):
        # R2.3: last = p; a trade through the quote moves that side to p, with no size shown.
        self.last = p
        self.has_trade = True
        if self.book.has:
            self.book.trade(p)  # R9.2
        if self.has_quote:
            if p < self.bid:
                self.bid = p
                self.bid_qty = 0.0
                self.thru = True
            elif p > self.ask:
                self.ask = p
                self.ask_qty = 0.0
                self.thru = True

    def mid(self):
        # R4.5 arrival price: the quote's mid, else (or once traded through) the last trade.
        if self.has_quote and not self.thru:
            return 0.5 * (self.bid + self.ask)
        if self.has_trade:
            return self.last
        if self.has_quote:
            return 0.5 * (self.bid + self.ask)
        return None

    def val(self) -> float:
        # R2.3: valuation price = mark once a MARK was seen, else last (0.0 before any trade).
        return self.mark if self.has_mark else self.last

    def opp(self, d: int):
        # R3.3: ask (buy) / bid (sell) once a quote was seen, else last; None when nothing seen.
        if self.has_quote:
            return self.ask if d > 0 else self.bid
        if self.has_trade:
            return self.last
        return None


class Book:
    """The L2 book of one symbol (section 9): the latest snapshot, consumption, trades since."""

    def __init__(self):
        self.has = False
        self.bids = []  # [price, size, consumed]
        self.asks = []
        self.take_ts = 0
        self.consumed = False  # R9.3: f = 0 until something is consumed after the snapshot
        self.lo = math.inf  # lowest / highest trade since the snapshot (R9.2)
        self.hi = -math.inf

    def row(self, t, level, bid, bid_qty, ask, ask_qty):
        # R9.1
        if level == 0:
            self.has = True
            self.bids, self.asks = [], []
            self.take_ts = t
            self.consumed = False
            self.lo, self.hi = math.inf, -math.inf
        elif not self.has or level >= BOOK_LEVELS:
            return
        if level == len(self.bids) and not math.isnan(bid) and bid_qty > 0:
            self.bids.append([bid, bid_qty, 0.0])
        if level == len(self.asks) and not math.isnan(ask) and ask_qty > 0:
            self.asks.append([ask, ask_qty, 0.0])

    def trade(self, p):
        self.lo = min(self.lo, p)
        self.hi = max(self.hi, p)

    def side(self, d):
        return self.asks if d > 0 else self.bids

    def usable(self, d):
        return self.has and len(self.side(d)) > 0

    def best(self, m, d):
        # R9.2: the trades since the snapshot and the effective touch bound the reachable levels
        touch = m.opp(d)  # R3.3: the effective ask / bid, or the last trade without quotes
        if d > 0:
            return self.hi if touch is None else max(self.hi, touch)
        return self.lo if touch is None else min(self.lo, touch)

    def factor(self, t, half_life_ns):
        if not self.consumed or half_life_ns <= 0:
            return 0.0
        return 0.5 ** (max(t - self.take_ts, 0) / half_life_ns)

    @staticmethod
    def reachable(p, d, best):
        return p >= best if d > 0 else p <= best

    def walk(self, m, d, q, limit, t, half_life_ns, beyond):
        """R9.4 / R9.5: (filled, notional) of a taker of q no worse than limit (None: none)."""
        best = self.best(m, d)
        f = self.factor(t, half_life_ns)
        left = q
        notional = 0.0
        for p, size, used in self.side(d):
            if not self.reachable(p, d, best):
                continue
            if limit is not None and (p > limit if d > 0 else p < limit):
                return q - left, notional
            a = size - used * f
            if a > 0:
                x = min(left, a)
                notional += x * p
                left -= x
                if left <= 0:
                    return q, notional
        deep = self.side(d)[-1][0]
        if (d > 0 and best > deep) or (d < 0 and best < deep):
            deep = best
        rest = deep * (1.0 + d * beyond)
        if limit is not None and (rest > limit if d > 0 else rest < limit):
            return q - left, notional
        notional += left * rest
        return q, notional

    def take(self, m, d, q, t, half_life_ns):
        """R9.3: refill both sides to t, then consume q from the reachable levels in order."""
        f = self.factor(t, half_life_ns)
        for lv in self.bids + self.asks:
            lv[2] = lv[2] * f
        self.take_ts = t
        self.consumed = True
        best = self.best(m, d)
        left = q
        for lv in self.side(d):
            if not self.reachable(lv[0], d, best):
                continue
            a = lv[1] - lv[2]
            if a > 0:
                x = min(left, a)
                lv[2] = lv[2] + x
                left -= x
                if left <= 0:
                    return


class Account:
    def __init__(self, nsym: int, initial_balance: float):
        self.balance = float(initial_balance)
        self.realized = 0.0
        self.fees = 0.0
        self.funding = 0.0
        self.pos = [0.0] * nsym
        self.avg = [0.0] * nsym


class Simulator:
    def __init__(self, events, instruments, config, script):
        self.ev = events
        self.n = len(events["ts_ns"])
        self.inst = instruments
        self.nsym = len(instruments)
        self.latency = int(config.get("latency_ns", 0))
        self.cancel_latency = int(config.get("cancel_latency_ns", 0))
        self.touch = bool(config.get("touch_fills", False))
        self.partial = bool(config.get("partial_fills", False))  # R3.15
        self.queue = bool(config.get("queue_model", False))  # R3.16, R9.8
        self.l2 = config.get("slippage", "spread") == "l2_depth"  # impact_k = 0 (module docstring)
        self.half_life_ns = float(config.get("book_resilience_half_life", 1.0)) * 1e9
        self.beyond = float(config.get("book_beyond_bps", 10.0)) / 10000.0
        self.initial_balance = float(config.get("initial_balance", 0.0))
        self.script = list(script)
        self.mkt = [Market() for _ in range(self.nsym)]
        self.acct = Account(self.nsym, self.initial_balance)
        self.orders = []  # creation order == ascending oid
        self.by_oid = {}
        self.next_oid = 1
        self.fills = []
        self.equity_after_fills = []
        self.peak = float(config["initial_balance"])
        self.max_dd_frac = 0.0
        self.funding_rows = []
        self.results = [None] * len(self.script)

    # ------------------------------------------------------------------ instrument helpers
    def _is_spot(self, s):
        return int(self.inst[s]["type"]) == SPOT

    def _lev(self, s):
        if self._is_spot(s):
            return 1.0  # R4.4: leverage 1 for spot
        return float(self.inst[s].get("leverage", 1.0))

    # ------------------------------------------------------------------ accounting (R4.2-R4.4)
    def equity(self) -> float:
        # R4.2 / CHOICE A13: equity = balance + sum_s upnl[s], summed in symbol order.
        u = 0.0
        for s in range(self.nsym):
            u += self.acct.pos[s] * (self.mkt[s].val() - self.acct.avg[s])
        return self.acct.balance + u

    def _track_drawdown(self) -> None:
        # R6.1: running peak of equity and the deepest (peak - equity) / peak, at every point
        # where equity may have changed (here: after every fill and at the end of every event)
        e = self.equity()
        if e > self.peak:
            self.peak = e
        if self.peak > 0:
            self.max_dd_frac = max(self.max_dd_frac, (self.peak - e) / self.peak)

    def free_margin(self) -> float:
        # R4.4: free margin = equity - sum of initial margins abs(pos) * val / leverage.
        eq = self.equity()
        im = 0.0
        for s in range(self.nsym):
            im += abs(self.acct.pos[s]) * self.mkt[s].val() / self._lev(s)
        return eq - im

    def spot_cash(self) -> float:
        # R4.3: available cash = balance - sum_spot pos * avg.
        cost = 0.0
        for s in range(self.nsym):
            if self._is_spot(s):
                cost += self.acct.pos[s] * self.acct.avg[s]
        return self.acct.balance - cost

    def _margin_ok(self, s, d, q, px, reduce_only) -> bool:
        """R4.4 check (CHOICE A10). True when the order may proceed."""
        taker = float(self.inst[s]["taker_fee_rate"])
        if self._is_spot(s) and d < 0:
            return True  # spot sells reduce; their limit is INSUFFICIENT_BALANCE
        # R4.4: one account, one rule: spot buys are positions at leverage 1.
        if reduce_only:
            return True  # never increases exposure (clipped at fill)
        pos = self.acct.pos[s]
        if pos == 0 or _sign(pos) == d:
            inc = q
        else:
            inc = max(0.0, q - abs(pos))
        if not (inc > 0):
            return True
        need = inc * px / self._lev(s) + q * px * taker
        return not (need > self.free_margin())

    # ------------------------------------------------------------------ order lifecycle
    def _finish(self, o, status, reason, t):
        o.status = status
        o.reason = int(reason)
        o.done_ts = int(t)
        o.amends = []
        # R3.11: an entry that ends without a fill cancels its children.
        if o.children and o.filled == 0.0 and status != FILLED:
            for c in o.children:
                if c.status in LIVE:
                    self._finish(c, CANCELED, Reason.PARENT_CANCELED, t)

    def _validate(self, o) -> int:
        """R3.14 (order: CHOICE A8). Returns a Reason (0 = accepted)."""
        s = o.sym
        if not (0 <= s < self.nsym):
            return int(Reason.UNKNOWN_SYMBOL)
        if o.side not in (1, -1) or o.otype not in (MARKET, LIMIT, STOP_MARKET, STOP_LIMIT,
                                                    TP_MARKET, TP_LIMIT, TRAILING):
            return int(Reason.INVALID_ORDER)
        q = o.qty
        if not (math.isfinite(q) and q > 0):
            return int(Reason.INVALID_QTY)
        lot = float(self.inst[s]["lot_size"])
        if lot > 0:
            n = q / lot
            if n < 1.0 - LOT_TOL:
                return int(Reason.BELOW_LOT_SIZE)
            if abs(n - round(n)) > LOT_TOL * max(1.0, abs(n)):
                return int(Reason.OFF_LOT_SIZE)
        prices = []
        if o.otype in HAS_LIMIT:
            prices.append(o.limit)
        if o.otype in HAS_STOP:
            prices.append(o.stop)
        for p in prices:
            if not (math.isfinite(p) and p > 0):
                return int(Reason.INVALID_PRICE)
        if o.otype == TRAILING:
            ok = (math.isfinite(o.trail) and o.trail > 0) or (
                math.isfinite(o.trail_bps) and o.trail_bps > 0)
            if not ok:
                return int(Reason.INVALID_PRICE)
        tick = float(self.inst[s]["tick_size"])
        if tick > 0:
            for p in prices:
                n = p / tick
                if abs(n - round(n)) > LOT_TOL * max(1.0, abs(n)):
                    return int(Reason.OFF_TICK_SIZE)
        pos = self.acct.pos[s]
        d = o.side
        # R3.9: reduce-only that would increase the position.
        if o.reduce_only and (pos == 0 or _sign(pos) == d):
            return int(Reason.REDUCE_ONLY_WOULD_INCREASE)
        # R3.14 / R4.3: spot sells above the held quantity.
        if self._is_spot(s) and d < 0 and q > pos + FLAT_EPS:
            return int(Reason.INSUFFICIENT_BALANCE)
        # R4.4 at submit: px = opp, or the limit if higher for a buy (CHOICE A10).
        m = self.mkt[s]
        opp = m.opp(d)
        has_limit = o.otype in HAS_LIMIT
        if opp is None:
            px = o.limit if has_limit else None
        elif has_limit and d > 0:
            px = max(opp, o.limit)
        else:
            px = opp
        if px is not None and not self._margin_ok(s, d, q, px, o.reduce_only):
            return int(Reason.INSUFFICIENT_MARGIN)
        n_live = sum(1 for x in self.orders if x.status in LIVE and x is not o)
        if n_live >= MAX_ORDERS:
            return int(Reason.TOO_MANY_OPEN_ORDERS)
        return 0

    def submit(self, g, t, sym, otype, side, qty, limit=0.0, stop=0.0, tif=GTC,
               reduce_only=False, trigger=LAST_SRC, trail=0.0, trail_bps=0.0, oco=0) -> int:
        oid = self.next_oid  # oids are consecutive, rejected orders consume one too
        self.next_oid += 1
        o = Order(oid, int(sym), int(otype), int(side), float(qty), float(limit), float(stop),
                  int(tif), reduce_only, int(trigger), float(trail), float(trail_bps), int(oco),
                  0, g, t, t + self.latency)  # R3.1: arrive = t + latency
        o.arrival_mid = self.mkt[int(sym)].mid() if 0 <= int(sym) < len(self.mkt) else None
        self.orders.append(o)
        self.by_oid[oid] = o
        reason = self._validate(o)
        if reason:
            o.status = REJECTED
            o.reason = reason
            o.done_ts = int(t)
            return -reason
        return oid

    def bracket(self, g, t, sym, side, qty, limit, stop, target) -> int:
        # R3.11: entry LIMIT (GTC) if limit > 0 else MARKET.
        if limit > 0:
            r = self.submit(g, t, sym, LIMIT, side, qty, limit=limit, tif=GTC)
        else:
            r = self.submit(g, t, sym, MARKET, side, qty)
        if r < 0:
            return r  # entry rejected: no children
        entry = self.by_oid[r]
        for ctype, price in ((STOP_MARKET, stop), (TP_MARKET, target)):
            oid = self.next_oid
            self.next_oid += 1
            c = Order(oid, int(sym), ctype, -int(side), float(qty), 0.0, float(price), GTC, True,
                      LAST_SRC, 0.0, 0.0, entry.oid, entry.oid, g, t, t + self.latency)
            c.status = WAITING_PARENT  # CHOICE A14: children are not validated
            self.orders.append(c)
            self.by_oid[oid] = c
            entry.children.append(c)
        return r

    def _lookup(self, k):
        if not (0 <= k < len(self.results)):
            return None
        r = self.results[k]
        if r is None or r <= 0:
            return None
        o = self.by_oid.get(r)
        if o is None or o.status not in LIVE:
            return None
        return o

    def cancel(self, g, t, k) -> int:
        o = self._lookup(k)
        if o is None:
            return -int(Reason.UNKNOWN_ORDER)
        ts = t + self.cancel_latency  # R3.12
        if o.cancel_ts < 0 or ts < o.cancel_ts:
            o.cancel_ts = ts  # CHOICE A1: keep the earliest cancel in flight
        return 0

    def amend(self, g, t, k, qty, limit, stop) -> int:
        o = self._lookup(k)
        if o is None:
            return -int(Reason.UNKNOWN_ORDER)
        # R3.13: a new quantity on the lot and above what has filled, prices on the tick
        def off(x, step):
            n = x / step
            return abs(n - round(n)) > LOT_TOL * max(1.0, abs(n))
        if qty > 0:
            if off(qty, float(self.inst[o.sym]["lot_size"])):
                return -int(Reason.OFF_LOT_SIZE)
            if qty <= o.filled:
                return -int(Reason.INVALID_QTY)
        for p in (limit, stop):
            if p > 0 and off(p, float(self.inst[o.sym]["tick_size"])):
                return -int(Reason.OFF_TICK_SIZE)
        if o.status in (PENDING, WAITING_PARENT):
            self._apply_amend(o, qty, limit, stop)  # R3.13: immediate while PENDING
        else:
            o.amends.append((t + self.cancel_latency, qty, limit, stop))  # R3.13: OPEN
        return 0

    @staticmethod
    def _apply_amend(o, qty, limit, stop):
        # R3.13 / CHOICE A3: 0 (any value <= 0) keeps a value.
        if qty > 0:
            o.qty = float(qty)
        if limit > 0:
            o.limit = float(limit)
        if stop > 0:
            o.stop = float(stop)

    def close(self, g, t, sym) -> int:
        pos = self.acct.pos[sym]
        if pos == 0:
            return 0
        side = -1 if pos > 0 else 1
        return self.submit(g, t, sym, MARKET, side, abs(pos), tif=GTC, reduce_only=True,
                           trigger=LAST_SRC)

    # ------------------------------------------------------------------ taker prices
    def _uses_book(self, s, d):
        return self.l2 and self.mkt[s].book.usable(d)

    def _taker_price(self, s, d, q, t):
        """R3.3/R3.4 taker price: opp (spread); under l2_depth the walk's VWAP (R9.4), or the
        l1_depth price with impact_k = 0 without a book (R9.6). None: no price yet."""
        m = self.mkt[s]
        opp = m.opp(d)
        if not self.l2 or opp is None and not m.book.usable(d):
            return opp
        if m.book.usable(d):
            filled, notional = m.book.walk(m, d, q, None, t, self.half_life_ns, self.beyond)
            return notional / filled
        shown = m.ask_qty if d > 0 else m.bid_qty
        if not m.has_quote or q <= shown:
            return opp
        rest = q - shown
        worse = opp * (1.0 + d * 0.0)
        return (shown * opp + rest * worse) / q

    # ------------------------------------------------------------------ fills (R4.1)
    def _fill(self, o, q, price, liq, g, t):
        s = o.sym
        d = o.side
        acct = self.acct
        pos = acct.pos[s]
        # R3.9: reduce-only clip / expire (CHOICE A9, A12).
        if o.reduce_only:
            if pos == 0 or _sign(pos) == d:
                self._finish(o, EXPIRED, Reason.NOTHING_TO_REDUCE, t)
                return
            if q > abs(pos):
                q = abs(pos)
                o.qty = o.filled + q  # the order is done once it has closed the position
        # R4.3: spot never goes short (CHOICE A11).
        if self._is_spot(s) and d < 0 and q > pos + FLAT_EPS:
            self._finish(o, REJECTED, Reason.INSUFFICIENT_BALANCE, t)
            return
        # R4.4 again at fill, with the fill price.
        if not self._margin_ok(s, d, q, price, o.reduce_only):
            self._finish(o, REJECTED, Reason.INSUFFICIENT_MARGIN, t)
            return
        # R4.1
        inst = self.inst[s]
        r = float(inst["maker_fee_rate"]) if liq == MAKER else float(inst["taker_fee_rate"])
        n = q * price
        fee = n * r
        avg = acct.avg[s]
        realized = 0.0
        if pos == 0 or _sign(pos) == d:
            avg = (abs(pos) * avg + q * price) / (abs(pos) + q)
            new_pos = pos + d * q
        else:
            cq = min(q, abs(pos))
            realized = cq * (price - avg) * _sign(pos)
            new_pos = pos + d * q
            if new_pos != 0 and _sign(new_pos) != _sign(pos):
                avg = price  # flipped
        if abs(new_pos) < FLAT_EPS:
            new_pos = 0.0
            avg = 0.0
        acct.pos[s] = new_pos
        acct.avg[s] = avg
        # R4.2
        acct.balance += realized - fee
        acct.realized += realized
        acct.fees += fee
        o.filled += q
        o.notional += q * price
        # R4.5: benchmark = arrival mid (market), limit (limit), trigger price (stop-like)
        bench = o.arrival_mid if o.otype == MARKET else (o.limit if o.otype == LIMIT else o.stop)
        if bench is None:
            bench = price
        self.fills.append(dict(event_idx=int(g), ts_ns=int(t), oid=o.oid, sym=s, side=d,
                               liquidity=int(liq), qty=q, price=price, fee=fee,
                               realized_pnl=realized, position_after=new_pos,
                               avg_price_after=avg, bench_price=bench,
                               slippage=d * (price - bench) * q))
        if self._uses_book(s, d) and liq == TAKER:
            self.mkt[s].book.take(self.mkt[s], d, q, t, self.half_life_ns)  # R9.3
        self.equity_after_fills.append(self.equity())
        self._track_drawdown()
        if o.filled >= o.qty * (1.0 - 1e-12):  # a partial fill (R9.5) leaves the order OPEN
            self._finish(o, FILLED, Reason.NONE, t)
        # R3.11: children become OPEN for the filled quantity, eligible from the next event, and
        # grow with later partial fills of the entry.
        for c in o.children:
            if c.status == WAITING_PARENT:
                c.status = OPEN
                c.qty = o.filled
                c.decision_idx = g
                c.arrive_ts = t
            elif c.status in (OPEN, PENDING):
                c.qty = o.filled
        # R3.10: OCO siblings (also WAITING_PARENT ones) are cancelled at once.
        if o.oco != 0:
            for x in self.orders:
                if x is not o and x.oco == o.oco and x.status in LIVE:
                    self._finish(x, CANCELED, Reason.OCO_SIBLING_FILLED, t)

    # ------------------------------------------------------------------ per-order step (sec. 3)
    def _crosses(self, o) -> bool:
        # R3.2: buy limit >= ask / sell limit <= bid; with no quote, against last.
        m = self.mkt[o.sym]
        if m.has_quote:
            return o.limit >= m.ask if o.side > 0 else o.limit <= m.bid
        if m.has_trade:
            return o.limit >= m.last if o.side > 0 else o.limit <= m.last
        return False

    def _process_order(self, o, g, t, kind, trade_px, trade_qty):
        m = self.mkt[o.sym]
        # R3.12 (CHOICE A1): a cancel that has arrived is applied before any fill check.
        if o.cancel_ts >= 0 and t >= o.cancel_ts:
            self._finish(o, CANCELED, Reason.USER_CANCEL, t)
            return
        if o.status == WAITING_PARENT:
            return
        # R3.1: only at events g' > decision index with ts >= arrive.
        if g <= o.decision_idx or t < o.arrive_ts:
            return
        self._apply_due_amends(o, t)  # R3.13
        if o.status not in (PENDING, OPEN):
            return  # the amend canceled the rest
        arriving = False
        if o.status == PENDING:
            # R3.2: arrival at the first eligible non-FUNDING event.
            o.status = OPEN
            arriving = True
            if o.otype == LIMIT and o.tif == POST_ONLY and self._crosses(o):
                self._finish(o, REJECTED, Reason.POST_ONLY_WOULD_CROSS, t)
                return
            if o.otype == TRAILING:
                # R3.8 / CHOICE A7: ref = current trigger price at arrival.
                if o.trigger == MARK_SRC:
                    if m.has_mark:
                        o.trail_ref = m.mark
                elif m.has_trade:
                    o.trail_ref = m.last
        just_triggered = False
        if o.otype in STOP_LIKE and not o.triggered:
            # R3.7: LAST watched on TRADE events, MARK on MARK events.
            if o.trigger == MARK_SRC:
                if kind != MARK:
                    return
                px = m.mark
            else:
                if kind != TRADE:
                    return
                px = m.last
            if o.otype == TRAILING:
                # R3.8
                if o.trail_ref is None:
                    o.trail_ref = px
                elif o.side < 0:
                    o.trail_ref = max(o.trail_ref, px)
                else:
                    o.trail_ref = min(o.trail_ref, px)
                ref = o.trail_ref
                dist = o.trail if o.trail > 0 else ref * o.trail_bps / 10000
                o.stop = ref - dist if o.side < 0 else ref + dist
            if o.otype in TP_TYPES:
                hit = px <= o.stop if o.side > 0 else px >= o.stop
            else:
                hit = px >= o.stop if o.side > 0 else px <= o.stop
            if not hit:
                return
            o.triggered = True
            just_triggered = True
        remaining = o.qty - o.filled
        if o.otype in MARKET_LIKE:
            # R3.4: whole remaining quantity at opp (the model's price), as taker.
            px = self._taker_price(o.sym, o.side, remaining, t)
            if px is None:
                return
            self._fill(o, remaining, px, TAKER, g, t)
            return
        # Limit variants.
        if (arriving and o.otype == LIMIT) or just_triggered:
            if just_triggered and o.tif == POST_ONLY and self._crosses(o):  # CHOICE A6
                self._finish(o, REJECTED, Reason.POST_ONLY_WOULD_CROSS, t)
                return
            # R3.5
            opp = m.opp(o.side)
            if self._uses_book(o.sym, o.side):
                # R9.5: the depth within the limit, at its VWAP (capped at the limit)
                q, notional = m.book.walk(m, o.side, remaining, o.limit, t, self.half_life_ns,
                                          self.beyond)
                if q > 0:
                    if o.tif == FOK and q < remaining:
                        self._finish(o, EXPIRED, Reason.FOK_UNFILLED, t)
                        return
                    px = notional / q
                    px = min(px, o.limit) if o.side > 0 else max(px, o.limit)
                    self._fill(o, q, px, TAKER, g, t)
                    self._rest_after_taking(o, t)
                    return
            elif opp is not None and (opp <= o.limit if o.side > 0 else opp >= o.limit):
                q = remaining
                if self.partial:
                    # R3.15: at most the size shown at the touch, else this trade's size
                    if m.has_quote:
                        q = min(remaining, m.ask_qty if o.side > 0 else m.bid_qty)
                    elif kind == TRADE:
                        q = min(remaining, trade_qty)
                    if o.tif == FOK and q < remaining:
                        self._finish(o, EXPIRED, Reason.FOK_UNFILLED, t)
                        return
                if q > 0:
                    px = self._taker_price(o.sym, o.side, q, t)
                    px = min(px, o.limit) if o.side > 0 else max(px, o.limit)
                    self._fill(o, q, px, TAKER, g, t)
                self._rest_after_taking(o, t)
                return
            if o.tif == IOC:
                self._finish(o, EXPIRED, Reason.IOC_UNFILLED, t)
                return
            if o.tif == FOK:
                self._finish(o, EXPIRED, Reason.FOK_UNFILLED, t)
                return
            # otherwise it rests; CHOICE A4: R3.6 applies at this same event too.
            self._join_queue(o, t)
        if self.queue:
            self._queue_step(o, g, t, kind, trade_px, trade_qty, remaining)
            return
        # R3.6: resting limits fill only at TRADE events that trade through, at limit, as maker.
        if kind == TRADE:
            if o.side > 0:
                through = trade_px <= o.limit if self.touch else trade_px < o.limit
            else:
                through = trade_px >= o.limit if self.touch else trade_px > o.limit
            if through:
                q = min(remaining, trade_qty) if self.partial else remaining  # R3.15
                self._fill(o, q, o.limit, MAKER, g, t)

    # ------------------------------------------------------------------ partial fills, queue
    def _rest_after_taking(self, o, t):
        # R3.15: what a marketable limit did not fill at arrival expires (IOC) or rests.
        if o.status != OPEN:
            return
        if o.tif == IOC:
            self._finish(o, EXPIRED, Reason.IOC_UNFILLED, t)
        else:
            self._join_queue(o, t)

    def _touch(self, o):
        m = self.mkt[o.sym]
        if o.side > 0:
            return m.bid, m.bid_qty, o.limit > m.bid
        return m.ask, m.ask_qty, o.limit < m.ask

    def _join_queue(self, o, t):
        # R3.16 / R9.8: the size ahead of a limit that starts resting.
        if not self.queue:
            return
        m = self.mkt[o.sym]
        if self.l2 and m.book.usable(-o.side):
            o.queue = self._book_queue(m, o, t)
            return
        if not m.has_quote:
            return
        touch, shown, better = self._touch(o)
        if better:
            o.queue = 0.0
        elif o.limit == touch:
            o.queue = shown

    def _book_queue(self, m, o, t):
        # R9.8: the available size of its level on the side it joins (bids for a buy) in the
        # effective book; 0 when its price improves on the level it reaches; None past them all.
        d = -o.side  # the takers that would meet it
        book = m.book
        best = book.best(m, d)
        f = book.factor(t, self.half_life_ns)
        for p, size, used in book.side(d):
            if not book.reachable(p, d, best):
                continue
            if p == o.limit:
                return max(0.0, size - used * f)
            if (o.side > 0 and o.limit > p) or (o.side < 0 and o.limit < p):
                return 0.0
        return None

    def _queue_step(self, o, g, t, kind, trade_px, trade_qty, remaining):
        # R3.16: quotes tell the queue at the touch; trades at its price eat the queue first.
        if kind == QUOTE:
            touch, shown, better = self._touch(o)
            if better:
                o.queue = 0.0
            elif o.limit == touch:
                o.queue = shown if o.queue is None else min(o.queue, shown)
            return
        if kind != TRADE:
            return
        through = trade_px < o.limit if o.side > 0 else trade_px > o.limit
        q = 0.0
        if through:
            q = min(remaining, trade_qty)
        elif trade_px == o.limit and o.queue is not None:
            ahead = o.queue
            o.queue = max(0.0, ahead - trade_qty)
            q = min(remaining, max(0.0, trade_qty - ahead))
        if q > 0:
            self._fill(o, q, o.limit, MAKER, g, t)

    # ------------------------------------------------------------------ candles (sec. 8)
    @staticmethod
    def _bar_point(o, k, bar):
        # R8.2: open, adverse extreme, favourable extreme, close; a sell's adverse one is the low.
        op, hi, lo, cl = bar
        if k == 0:
            return op
        if k == 3:
            return cl
        adverse, favourable = (lo, hi) if o.side < 0 else (hi, lo)
        return adverse if k == 1 else favourable

    def _apply_due_amends(self, o, t):
        # R3.13: queued amendments of an OPEN order that have reached the venue.
        keep = []
        for (ts, qty, limit, stop) in o.amends:
            if t < ts:
                keep.append((ts, qty, limit, stop))
                continue
            if 0 < qty <= o.filled:  # filled meanwhile up to the new quantity: the rest is canceled
                o.amends = []
                self._finish(o, CANCELED, Reason.INVALID_QTY, t)
                return
            # R3.16: a resting limit with a new price or a larger quantity queues again
            resting = o.otype == LIMIT or (o.otype in (STOP_LIMIT, TP_LIMIT) and o.triggered)
            requeue = resting and ((0 < limit != o.limit) or qty > o.qty)
            self._apply_amend(o, qty, limit, stop)
            if requeue and self.queue:
                o.queue = None
                self._join_queue(o, t)
        o.amends = keep

    def _bar_arrive(self, o, g, t):
        # R8.3 at P0: cancel, R3.1 eligibility, amends, arrival. Returns (work it, arriving).
        m = self.mkt[o.sym]
        if o.cancel_ts >= 0 and t >= o.cancel_ts:
            self._finish(o, CANCELED, Reason.USER_CANCEL, t)
            return False, False
        if o.status == WAITING_PARENT or g <= o.decision_idx or t < o.arrive_ts:
            return False, False
        self._apply_due_amends(o, t)
        if o.status not in (PENDING, OPEN):
            return False, False  # the amend canceled the rest
        if o.status != PENDING:
            return True, False
        o.status = OPEN
        if o.otype == LIMIT and o.tif == POST_ONLY and self._crosses(o):  # against the open
            self._finish(o, REJECTED, Reason.POST_ONLY_WOULD_CROSS, t)
            return False, False
        if o.otype == TRAILING:  # R3.8 at arrival: the current trigger price (last = open)
            if o.trigger == MARK_SRC:
                if m.has_mark:
                    o.trail_ref = m.mark
            else:
                o.trail_ref = m.last
        return True, True

    def _bar_work(self, o, g, t, k, px, arriving):
        m = self.mkt[o.sym]
        b = px  # R8.4: reach price
        just_triggered = False
        if o.otype in STOP_LIKE and not o.triggered:
            if o.trigger == MARK_SRC:
                return  # R8.4: mark-triggered orders wait for MARK events
            if o.otype == TRAILING:
                if o.trail_ref is None:
                    o.trail_ref = px
                elif o.side < 0:
                    o.trail_ref = max(o.trail_ref, px)
                else:
                    o.trail_ref = min(o.trail_ref, px)
                dist = o.trail if o.trail > 0 else o.trail_ref * o.trail_bps / 10000
                o.stop = o.trail_ref - dist if o.side < 0 else o.trail_ref + dist
            if o.otype in TP_TYPES:
                hit = px <= o.stop if o.side > 0 else px >= o.stop
            else:
                hit = px >= o.stop if o.side > 0 else px <= o.stop
            if not hit:
                return
            o.triggered = True
            just_triggered = True
            if k > 0:
                b = o.stop  # crossed continuously on the way to this point
        remaining = o.qty - o.filled
        if o.otype in MARKET_LIKE:
            m.last = b
            self._fill(o, remaining, m.opp(o.side), TAKER, g, t)
            m.last = px
            return
        if (arriving and o.otype == LIMIT) or just_triggered:
            m.last = b
            if just_triggered and o.tif == POST_ONLY and self._crosses(o):
                self._finish(o, REJECTED, Reason.POST_ONLY_WOULD_CROSS, t)
                m.last = px
                return
            if (b <= o.limit) if o.side > 0 else (b >= o.limit):  # R8.5
                opp = m.opp(o.side)
                price = min(opp, o.limit) if o.side > 0 else max(opp, o.limit)
                self._fill(o, remaining, price, TAKER, g, t)
                m.last = px
                return
            m.last = px
            if o.tif == IOC:
                self._finish(o, EXPIRED, Reason.IOC_UNFILLED, t)
                return
            if o.tif == FOK:
                self._finish(o, EXPIRED, Reason.FOK_UNFILLED, t)
                return
        # R8.6: strictly through (touch with touch_fills), at the limit, as maker.
        if o.side > 0:
            through = px <= o.limit if self.touch else px < o.limit
        else:
            through = px >= o.limit if self.touch else px > o.limit
        if through:
            self._fill(o, remaining, o.limit, MAKER, g, t)

    def _bar(self, g, t, s, bar):
        m = self.mkt[s]
        m.has_trade = True
        in_bar = set()  # oids that take part in this bar (R8.3): decided at P0
        for k in range(4):
            for o in list(self.orders):
                if o.sym != s or o.status not in LIVE:
                    continue
                px = self._bar_point(o, k, bar)
                m.last = px
                arriving = False
                if k == 0:
                    work, arriving = self._bar_arrive(o, g, t)
                    if not work:
                        continue
                    in_bar.add(o.oid)
                elif o.oid not in in_bar or o.status != OPEN:
                    continue
                self._bar_work(o, g, t, k, px, arriving)
        m.last = bar[3]

    # ------------------------------------------------------------------ main loop (sec. 2)
    def _run_action(self, a, g, t):
        name = a[1]
        if name == "submit":
            (_, _, sym, otype, side, qty, limit, stop, tif, reduce_only, trigger, trail,
             trail_bps, oco) = a
            return self.submit(g, t, sym, otype, side, qty, limit, stop, tif, reduce_only,
                               trigger, trail, trail_bps, oco)
        if name == "bracket":
            (_, _, sym, side, qty, limit, stop, target) = a
            return self.bracket(g, t, sym, side, qty, limit, stop, target)
        if name == "cancel":
            return self.cancel(g, t, a[2])
        if name == "amend":
            (_, _, k, qty, limit, stop) = a
            return self.amend(g, t, k, qty, limit, stop)
        if name == "close":
            return self.close(g, t, a[2])
        raise ValueError(f"unknown action {name!r}")

    def run(self):
        ev = self.ev
        ts_a, sym_a, kind_a = ev["ts_ns"], ev["sym"], ev["kind"]
        price_a, qty_a = ev["price"], ev["qty"]
        bid_a, ask_a, bq_a, aq_a = ev["bid"], ev["ask"], ev["bid_qty"], ev["ask_qty"]
        ai = 0
        na = len(self.script)
        for g in range(self.n):
            t = int(ts_a[g])
            s = int(sym_a[g])
            kind = int(kind_a[g])
            m = self.mkt[s]
            # R2.3 market state
            if kind == TRADE:
                m.trade(float(price_a[g]))
            elif kind == QUOTE:
                m.bid = float(bid_a[g])
                m.ask = float(ask_a[g])
                m.bid_qty = float(bq_a[g])
                m.ask_qty = float(aq_a[g])
                m.has_quote = True
                m.thru = False
            elif kind == MARK:
                m.mark = float(price_a[g])
                m.index = float(qty_a[g])
                m.has_mark = True
            elif kind == BOOK:  # R9.1: one level of a snapshot (`side` holds the level)
                m.book.row(t, int(ev["side"][g]), float(bid_a[g]), float(bq_a[g]), float(ask_a[g]),
                           float(aq_a[g]))
            elif kind == BAR:  # R8.1: the bar's path, then last = close
                self._bar(g, t, s, (float(bid_a[g]), float(ask_a[g]), float(bq_a[g]),
                                    float(price_a[g])))
            # Step 4: orders of symbol s in ascending oid (TRADE, QUOTE, MARK).
            if kind in (TRADE, QUOTE, MARK):
                trade_px = float(price_a[g]) if kind == TRADE else None
                trade_qty = float(qty_a[g]) if kind == TRADE else None
                for o in list(self.orders):
                    if o.sym == s and o.status in LIVE:
                        self._process_order(o, g, t, kind, trade_px, trade_qty)
            elif kind == FUNDING:
                # Step 5: R5.1 funding.
                f = float(price_a[g])
                pos = self.acct.pos[s]
                if pos != 0:
                    val = m.val()
                    payment = -(pos * val * f)
                    self.acct.balance += payment
                    self.acct.funding += payment
                    self.funding_rows.append(dict(ts_ns=t, sym=s, rate=f, position=pos,
                                                  mark_price=val, payment=payment))
            # Step 6 (mark to market) is implicit: equity is recomputed from the state.
            # Step 7: hooks -> the script's actions for this event, in list order.
            while ai < na and self.script[ai][0] < g:
                self.results[ai] = None  # scheduled before the first event; never run
                ai += 1
            while ai < na and self.script[ai][0] == g:
                self.results[ai] = self._run_action(self.script[ai], g, t)
                ai += 1
            self._track_drawdown()
        return self._output()

    def _output(self):
        orders = []
        for o in self.orders:
            live = o.status in LIVE
            orders.append(dict(
                oid=o.oid, sym=o.sym, order_type=o.otype, side=o.side, status=o.status,
                reason=int(Reason.END_OF_DATA) if live else o.reason,  # CHOICE A15
                filled_qty=o.filled,
                avg_fill_price=(o.notional / o.filled) if o.filled > 0 else 0.0,
                done_ts_ns=-1 if live else o.done_ts))
        return dict(
            fills=self.fills,
            orders=orders,
            results=self.results,
            balance=self.acct.balance,
            realized_pnl=self.acct.realized,
            fees=self.acct.fees,
            funding=self.acct.funding,
            positions=list(self.acct.pos),
            avg_prices=list(self.acct.avg),
            equity_after_fills=self.equity_after_fills,
            funding_rows=self.funding_rows,
            max_drawdown_frac=self.max_dd_frac,
        )


def simulate(events: dict, instruments: list[dict], config: dict, script: list[tuple]) -> dict:
    """Run the reference simulation; see the module docstring and docs/fill-rules.md."""
    return Simulator(events, instruments, config, script).run()
