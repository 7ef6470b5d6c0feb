"""Every enum of the engine, once, with the order-type traits (schema.py re-exports them).

Enum values are stable integers: they are persisted in result tables, so never renumber them.
The kernels use the int aliases of core/codes.py (derived from these classes); config validation,
the CLI choices, the result tables and the report derive their names from the same classes.
"""
from __future__ import annotations

from enum import IntEnum


class EventKind(IntEnum):
    """Kinds of market event. The value is also the tie-break among events with equal ts_ns:
    a trade is applied before the quote update it caused, then marks, then funding, then candles
    (data/README.md "bars"), other traders' liquidations (information only) and L2 depth snapshots."""

    TRADE = 0
    QUOTE = 1
    MARK = 2
    FUNDING = 3
    BAR = 4
    MARKET_LIQUIDATION = 5
    BOOK = 6  # one level of an L2 depth snapshot (schema.EVENT_COLUMNS); a snapshot's rows share ts_ns


class Side(IntEnum):
    """Order, fill and aggressor side: +1 buy, -1 sell."""

    BUY = 1
    SELL = -1


class InstrumentType(IntEnum):
    """Contract kind of an instrument (instruments.json `type`)."""

    SPOT = 0
    LINEAR_PERPETUAL = 1
    INVERSE_PERPETUAL = 2


class OrderType(IntEnum):
    """Order types accepted by submit() (docs/fill-rules.md)."""

    MARKET = 0
    LIMIT = 1
    STOP_MARKET = 2
    STOP_LIMIT = 3
    TAKE_PROFIT_MARKET = 4
    TAKE_PROFIT_LIMIT = 5
    TRAILING_STOP = 6


class TimeInForce(IntEnum):
    """How long a limit order lives: GTC, IOC, FOK, or POST_ONLY (maker only)."""

    GTC = 0
    IOC = 1
    FOK = 2
    POST_ONLY = 3


class TriggerSource(IntEnum):
    """The price a stop-like order watches: the last trade or the mark price."""

    LAST = 0
    MARK = 1


class OrderStatus(IntEnum):
    """Life cycle of an order (the `status` column of the orders table)."""

    FREE = 0  # empty slot
    PENDING = 1  # decided, travelling to the venue (arrives at arrive_ts)
    OPEN = 2  # at the venue: resting, or waiting for its trigger
    WAITING_PARENT = 3  # bracket child, activates when its parent fills
    FILLED = 4
    CANCELED = 5
    REJECTED = 6
    EXPIRED = 7  # IOC/FOK remainder, or a reduce-only order with nothing left to reduce


class Reason(IntEnum):
    """Why an order was rejected, cancelled or expired (0 = none). submit() returns -reason."""

    NONE = 0
    INSUFFICIENT_MARGIN = 1
    REDUCE_ONLY_WOULD_INCREASE = 2
    POST_ONLY_WOULD_CROSS = 3
    BELOW_LOT_SIZE = 4
    OFF_LOT_SIZE = 5
    OFF_TICK_SIZE = 6
    INVALID_QTY = 7
    INVALID_PRICE = 8
    TOO_MANY_OPEN_ORDERS = 9
    UNKNOWN_SYMBOL = 10
    UNKNOWN_ORDER = 11
    INSUFFICIENT_BALANCE = 12  # spot: not enough coin to sell (no shorting without margin)
    USER_CANCEL = 13
    OCO_SIBLING_FILLED = 14
    IOC_UNFILLED = 15
    FOK_UNFILLED = 16
    LIQUIDATION = 17
    PARENT_CANCELED = 18
    NOTHING_TO_REDUCE = 19
    END_OF_DATA = 20  # still open when the data ran out (status stays OPEN in the table)
    INVALID_ORDER = 21
    LEVERAGE_TOO_HIGH = 22


class Liquidity(IntEnum):
    """How a fill happened (the `liquidity` column of fills): maker, taker or liquidation."""

    MAKER = 0
    TAKER = 1
    LIQUIDATION = 2


class LoanEvent(IntEnum):
    """Events of a crypto-backed loan (the `event_code` column of the loans table)."""

    OPEN = 0
    BORROW = 1
    REPAY = 2
    ADD_COLLATERAL = 3
    MARGIN_CALL = 4  # LTV entered the warning band
    LIQUIDATION = 5
    CLOSED = 6
    INTEREST = 7  # interest accrued since the previous row (written with every other row)


class LoanHealth(IntEnum):
    """Coinbase's loan health bands, by LTV: GOOD below 60% of the LLTV (51.6% at LLTV 86%), FAIR
    below the warning LTV (90% of the LLTV, 77.4%), DANGER from there."""

    GOOD = 0
    FAIR = 1
    DANGER = 2


class MarginMode(IntEnum):
    """Margin mode of a perpetual position: cross (whole account) or isolated."""

    CROSS = 0
    ISOLATED = 1


class RunStatus(IntEnum):
    """What the kernel returns (it never raises for expected conditions)."""

    DONE = 0  # reached the end of the chunk
    BUFFER_FULL = 1  # an output buffer needs draining; resume at the returned index


class SlippageModel(IntEnum):
    """Taker price model of a symbol (`execution.slippage`, `--slippage`; core/execution.py).
    Config and CLI spell them in lowercase: none, spread, fixed_bps, sqrt_impact, l1_depth,
    l2_depth."""

    NONE = 0
    SPREAD = 1  # the default
    FIXED_BPS = 2
    SQRT_IMPACT = 3
    L1_DEPTH = 4
    L2_DEPTH = 5  # walks the L2 book (core/book.py); l1_depth where a symbol has no book yet

    @property
    def needs_estimators(self) -> bool:
        """Uses the causal sigma / volume estimates (the square-root impact)."""
        return self in (SlippageModel.SQRT_IMPACT, SlippageModel.L1_DEPTH, SlippageModel.L2_DEPTH)

    @property
    def needs_quotes(self) -> bool:
        """Reads the displayed L1 size, so the data must have quotes."""
        return self is SlippageModel.L1_DEPTH


def names_of(enum) -> tuple[str, ...]:
    """The lowercase names of an enum, in value order: config values and click choices."""
    return tuple(m.name.lower() for m in sorted(enum, key=int))


def from_name(enum, name: str):
    """The member spelled `name` (lowercase, as in configs); KeyError when there is none."""
    return enum[name.upper()]


# --------------------------------------------------------------------------------------------
# Order-type traits: declared once here; the kernels read them as folded int bit masks
# (core/codes.py), the report and the tests through the accessors below.


class TriggerKind(IntEnum):
    """What an order type waits for before it works: nothing, its stop price (a buy triggers at or
    above it), its take-profit price (a buy triggers at or below it) or its trailing distance."""

    NONE = 0
    STOP = 1
    TAKE_PROFIT = 2
    TRAILING = 3


# order type: (market_like, needs_limit, trigger_kind)
#   market_like  fills as a taker once working (R3.4); otherwise it rests as a limit
#   needs_limit  a limit price is required at submit
#   trigger_kind waits for a trigger (stop-like when not NONE)
ORDER_TRAITS: dict[OrderType, tuple[bool, bool, TriggerKind]] = {
    OrderType.MARKET: (True, False, TriggerKind.NONE),
    OrderType.LIMIT: (False, True, TriggerKind.NONE),
    OrderType.STOP_MARKET: (True, False, TriggerKind.STOP),
    OrderType.STOP_LIMIT: (False, True, TriggerKind.STOP),
    OrderType.TAKE_PROFIT_MARKET: (True, False, TriggerKind.TAKE_PROFIT),
    OrderType.TAKE_PROFIT_LIMIT: (False, True, TriggerKind.TAKE_PROFIT),
    OrderType.TRAILING_STOP: (True, False, TriggerKind.TRAILING),
}
assert set(ORDER_TRAITS) == set(OrderType), "every order type needs its traits"


def is_market_like(otype) -> bool:
    return ORDER_TRAITS[OrderType(otype)][0]


def needs_limit(otype) -> bool:
    return ORDER_TRAITS[OrderType(otype)][1]


def trigger_kind(otype) -> TriggerKind:
    return ORDER_TRAITS[OrderType(otype)][2]


def is_stop_like(otype) -> bool:
    """Waits for a trigger (stop, take-profit or trailing)."""
    return trigger_kind(otype) is not TriggerKind.NONE


def needs_stop(otype) -> bool:
    """A stop price is required at submit (stop and take-profit; a trailing stop has a distance)."""
    return trigger_kind(otype) in (TriggerKind.STOP, TriggerKind.TAKE_PROFIT)


def types_where(trait) -> tuple[OrderType, ...]:
    """The order types with a trait, e.g. types_where(is_stop_like)."""
    return tuple(t for t in OrderType if trait(t))
