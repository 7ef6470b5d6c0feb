"""Every record dtype of the engine, in one place, and the enums (defined in core/enums.py).

Nobody else defines a dtype: the data layer, the engine, the result and the tests import them here.
"""
from __future__ import annotations

import numpy as np

from .enums import (  # noqa: F401  (re-exported: schema is where the engine's types are imported from)
    ORDER_TRAITS, EventKind, InstrumentType, Liquidity, LoanEvent, LoanHealth, MarginMode, OrderStatus,
    OrderType, Reason, RunStatus, Side, SlippageModel, TimeInForce, TriggerKind, TriggerSource,
    is_market_like, is_stop_like, needs_limit, needs_stop, trigger_kind,
)

# Capacities fixed in the types: the bracket table and the L2 depth of a symbol's row (core/state.py),
# and the default number of open-order slots (a run-time array length, core/state.py).
MAX_BRACKETS = 16
MAX_ORDERS = 4096  # open-order slots; a venue-like limit (submit rejects TOO_MANY_OPEN_ORDERS)
MAX_BOOK_LEVELS = 25  # L2 depth kept per symbol and side (Tardis book_snapshot_25)


# --------------------------------------------------------------------------------------------
# Event stream: the columns a chunk of merged market data arrives in (exact dtypes, C order).
# Per kind, the generic value columns mean:
#   TRADE   price = trade price, qty = quantity, side = aggressor (+1 buy, -1 sell)
#   QUOTE   bid, ask, bid_qty, ask_qty
#   MARK    price = mark price, qty = index price (NaN when the data has none)
#   FUNDING price = funding rate applied at ts_ns (fraction, e.g. -0.0003)
#   BAR     a candle at its close time: bid = open, ask = high, bid_qty = low, price = close,
#           qty = volume (docs/fill-rules.md section 8)
#   MARKET_LIQUIDATION  another trader's forced order: price, qty, side (+1 buy, -1 sell)
#   BOOK    one level of an L2 depth snapshot: side = level (0 = the touch), bid, bid_qty, ask,
#           ask_qty = that level's prices and sizes (NaN/0 where a side has fewer levels). The rows
#           of one snapshot share ts_ns and arrive in level order; level 0 starts a new snapshot
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ts_ns", "i8"),
    ("sym", "i4"),
    ("kind", "i1"),
    ("side", "i1"),
    ("price", "f8"),
    ("qty", "f8"),
    ("bid", "f8"),
    ("ask", "f8"),
    ("bid_qty", "f8"),
    ("ask_qty", "f8"),
)

# --------------------------------------------------------------------------------------------
# Output records, written by the kernel into preallocated buffers.
FILL_DTYPE = np.dtype(
    [
        ("ts_ns", "i8"),
        ("event_idx", "i8"),
        ("oid", "i8"),
        ("sym", "i4"),
        ("side", "i1"),
        ("liquidity", "i1"),
        ("order_type", "i1"),
        ("qty", "f8"),
        ("price", "f8"),
        ("fee", "f8"),  # in the settlement currency; negative = maker rebate
        ("realized_pnl", "f8"),  # realised by this fill, before fees
        ("slippage", "f8"),  # cost against bench_price, d * (price - bench) * qty (>0 = worse)
        ("position_after", "f8"),
        ("avg_price_after", "f8"),
        # R4.5 cost attribution: benchmark (arrival mid, trigger, limit or liquidation mark) and
        # slippage = cost_drift + cost_spread + cost_impact (up to rounding); fees are in `fee`
        ("bench_price", "f8"),
        ("cost_spread", "f8"),  # mid to the touch at the fill
        ("cost_impact", "f8"),  # touch to the fill price (impact, depth)
        ("cost_drift", "f8"),  # benchmark to the mid at the fill (latency, gaps)
    ],
    align=True,
)

ORDER_DTYPE = np.dtype(
    [
        ("oid", "i8"),
        ("sym", "i4"),
        ("order_type", "i1"),
        ("side", "i1"),
        ("tif", "i1"),
        ("status", "i1"),
        ("reason", "i2"),
        ("reduce_only", "u1"),
        ("trigger_source", "i1"),
        ("created_ts_ns", "i8"),
        ("done_ts_ns", "i8"),
        ("qty", "f8"),
        ("filled_qty", "f8"),
        ("avg_fill_price", "f8"),
        ("limit_price", "f8"),
        ("stop_price", "f8"),
        ("oco_group", "i8"),
        ("parent_oid", "i8"),
    ],
    align=True,
)

EQUITY_DTYPE = np.dtype(
    [
        ("ts_ns", "i8"),
        ("equity", "f8"),
        ("balance", "f8"),
        ("upnl", "f8"),
        ("gross_exposure", "f8"),  # sum of |position notional| at the valuation price
        ("margin_used", "f8"),  # initial margin of open positions
        ("maint_margin", "f8"),
        ("margin_ratio", "f8"),  # max(cross_margin_ratio, iso_margin_ratio): 1.0 = liquidation
        # the ratios margin_breached() tests: maintenance margin / margin balance of each pool
        ("cross_margin_ratio", "f8"),  # the cross pool (cross wallet + its unrealised PnL)
        ("iso_margin_ratio", "f8"),  # the isolated (or inverse) position closest to liquidation
        ("iso_margin_sym", "i4"),  # its symbol index (-1: none open)
    ],
    align=True,
)

FUNDING_DTYPE = np.dtype(
    [
        ("ts_ns", "i8"),
        ("sym", "i4"),
        ("rate", "f8"),
        ("position", "f8"),
        ("mark_price", "f8"),
        ("payment", "f8"),  # received (+) or paid (-) by the account, settlement currency
    ],
    align=True,
)

LIQUIDATION_DTYPE = np.dtype(
    [
        ("ts_ns", "i8"),
        ("sym", "i4"),
        ("side", "i1"),  # side of the closing trade (-1 closes a long)
        ("qty", "f8"),
        ("mark_price", "f8"),
        ("bankruptcy_price", "f8"),
        ("fill_price", "f8"),
        ("fee", "f8"),  # clearance fee (to the insurance fund)
        ("insurance_fund_change", "f8"),  # fee + forfeited margin - shortfall paid by the fund
        ("realized_pnl", "f8"),
    ],
    align=True,
)


BAR_DTYPE = np.dtype(
    [
        ("ts_ns", "i8"),  # end of the sampling interval
        ("sym", "i4"),
        ("open", "f8"),  # last-trade open/high/low over the interval (NaN when no trade in it)
        ("high", "f8"),
        ("low", "f8"),
        ("close", "f8"),  # the last trade so far (carried through intervals without trades)
        ("volume", "f8"),
        ("mark", "f8"),  # valuation price at the end of the interval
        ("position", "f8"),
        ("liq_price", "f8"),  # liquidation price of the position (NaN when flat or none)
    ],
    align=True,
)


LOAN_DTYPE = np.dtype(
    [
        ("ts_ns", "i8"),
        ("loan_id", "i8"),
        ("sym", "i4"),  # the collateral's symbol (its price values the collateral)
        ("event", "i1"),  # LoanEvent
        ("amount", "f8"),  # USD borrowed/repaid, collateral added, or debt repaid by a liquidation
        ("debt", "f8"),  # after the event
        ("collateral_qty", "f8"),  # after the event
        ("price", "f8"),
        ("ltv", "f8"),  # after the event
        ("interest", "f8"),  # interest accrued since the previous row of this loan
        ("penalty", "f8"),  # liquidation penalty (USD)
        ("seized_qty", "f8"),  # collateral taken by a liquidation
        ("bad_debt", "f8"),  # debt the seized collateral could not cover: the lenders' loss (USD)
        ("health", "i1"),  # LoanHealth after the event
    ],
    align=True,
)


ORDER_FIELDS = tuple(ORDER_DTYPE.names)
