"""The enums of core/enums.py as plain module-level ints: numba folds them into constants.

Only aliases, never hand-written numbers. The order-type traits are int bit masks (bit `otype`
set when the type has the trait) and a packed trigger kind (2 bits per type), so a trait test in a
kernel is a shift and a mask of folded constants (ot_* below), never a Python object.
"""
from .enums import (
    ORDER_TRAITS, EventKind, InstrumentType, Liquidity, LoanHealth, OrderStatus, OrderType, Reason,
    RunStatus, TimeInForce, TriggerKind, TriggerSource, is_market_like, needs_limit,
    trigger_kind,
)
from .jit import kernel

K_TRADE, K_QUOTE, K_MARK, K_FUNDING, K_BAR, K_MARKET_LIQ, K_BOOK = (int(k) for k in EventKind)

T_SPOT = int(InstrumentType.SPOT)
T_LINEAR = int(InstrumentType.LINEAR_PERPETUAL)
T_INVERSE = int(InstrumentType.INVERSE_PERPETUAL)

OT_MARKET = int(OrderType.MARKET)
OT_LIMIT = int(OrderType.LIMIT)
OT_STOP_MARKET = int(OrderType.STOP_MARKET)
OT_STOP_LIMIT = int(OrderType.STOP_LIMIT)
OT_TP_MARKET = int(OrderType.TAKE_PROFIT_MARKET)
OT_TP_LIMIT = int(OrderType.TAKE_PROFIT_LIMIT)
OT_TRAILING = int(OrderType.TRAILING_STOP)

TIF_GTC, TIF_IOC, TIF_FOK, TIF_POST_ONLY = (int(t) for t in TimeInForce)

ST_FREE = int(OrderStatus.FREE)
ST_PENDING = int(OrderStatus.PENDING)
ST_OPEN = int(OrderStatus.OPEN)
ST_WAITING = int(OrderStatus.WAITING_PARENT)
ST_FILLED = int(OrderStatus.FILLED)
ST_CANCELED = int(OrderStatus.CANCELED)
ST_REJECTED = int(OrderStatus.REJECTED)
ST_EXPIRED = int(OrderStatus.EXPIRED)

LQ_MAKER = int(Liquidity.MAKER)
LQ_TAKER = int(Liquidity.TAKER)

H_GOOD, H_FAIR, H_DANGER = (int(h) for h in LoanHealth)
LQ_LIQUIDATION = int(Liquidity.LIQUIDATION)

R_NONE = int(Reason.NONE)
R_INSUFFICIENT_MARGIN = int(Reason.INSUFFICIENT_MARGIN)
R_REDUCE_ONLY = int(Reason.REDUCE_ONLY_WOULD_INCREASE)
R_POST_ONLY = int(Reason.POST_ONLY_WOULD_CROSS)
R_BELOW_LOT = int(Reason.BELOW_LOT_SIZE)
R_OFF_LOT = int(Reason.OFF_LOT_SIZE)
R_OFF_TICK = int(Reason.OFF_TICK_SIZE)
R_INVALID_QTY = int(Reason.INVALID_QTY)
R_INVALID_PRICE = int(Reason.INVALID_PRICE)
R_TOO_MANY = int(Reason.TOO_MANY_OPEN_ORDERS)
R_UNKNOWN_SYMBOL = int(Reason.UNKNOWN_SYMBOL)
R_UNKNOWN_ORDER = int(Reason.UNKNOWN_ORDER)
R_INSUFFICIENT_BALANCE = int(Reason.INSUFFICIENT_BALANCE)
R_USER_CANCEL = int(Reason.USER_CANCEL)
R_OCO = int(Reason.OCO_SIBLING_FILLED)
R_IOC = int(Reason.IOC_UNFILLED)
R_FOK = int(Reason.FOK_UNFILLED)
R_LIQUIDATION = int(Reason.LIQUIDATION)
R_PARENT_CANCELED = int(Reason.PARENT_CANCELED)
R_NOTHING_TO_REDUCE = int(Reason.NOTHING_TO_REDUCE)
R_END_OF_DATA = int(Reason.END_OF_DATA)
R_INVALID_ORDER = int(Reason.INVALID_ORDER)
R_LEVERAGE_TOO_HIGH = int(Reason.LEVERAGE_TOO_HIGH)

RS_DONE = int(RunStatus.DONE)
RS_BUFFER_FULL = int(RunStatus.BUFFER_FULL)

TS_LAST = int(TriggerSource.LAST)
TS_MARK = int(TriggerSource.MARK)

N_ORDER_TYPES = len(OrderType)
TK_NONE = int(TriggerKind.NONE)
TK_STOP = int(TriggerKind.STOP)
TK_TAKE_PROFIT = int(TriggerKind.TAKE_PROFIT)
TK_TRAILING = int(TriggerKind.TRAILING)
_MARKET_LIKE_MASK = sum(1 << int(t) for t in ORDER_TRAITS if is_market_like(t))
_NEEDS_LIMIT_MASK = sum(1 << int(t) for t in ORDER_TRAITS if needs_limit(t))
_TRIGGER_KINDS = sum(int(trigger_kind(t)) << (2 * int(t)) for t in ORDER_TRAITS)
assert max(int(k) for k in TriggerKind) < 4 and N_ORDER_TYPES <= 31


# The kernel accessors of the traits (the Python ones are in core/enums.py). `otype` must be a
# valid order type (orders.validate checks the range first); int() keeps numpy int8 from overflowing.
@kernel
def ot_market_like(otype):
    """Fills as a taker once working (R3.4)."""
    return (_MARKET_LIKE_MASK >> int(otype)) & 1 != 0


@kernel
def ot_needs_limit(otype):
    return (_NEEDS_LIMIT_MASK >> int(otype)) & 1 != 0


@kernel
def ot_trigger_kind(otype):
    return (_TRIGGER_KINDS >> (2 * int(otype))) & 3


@kernel
def ot_stop_like(otype):
    """Waits for a trigger (stop, take-profit or trailing)."""
    return ot_trigger_kind(otype) != TK_NONE


@kernel
def ot_needs_stop(otype):
    """Needs a stop price at submit (a trailing stop has a distance instead)."""
    k = ot_trigger_kind(otype)
    return k == TK_STOP or k == TK_TAKE_PROFIT
