"""The enums of schema.py as plain module-level ints: numba folds them into constants."""
from .schema import (
    EventKind, InstrumentType, Liquidity, LoanHealth, OrderStatus, OrderType, Reason, TimeInForce,
)

K_TRADE, K_QUOTE, K_MARK, K_FUNDING, K_BAR, K_MARKET_LIQ = (int(k) for k in EventKind)

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
