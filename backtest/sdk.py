"""The strategy SDK: compiled functions that hooks call with the run context `c`.

Orders (return an oid > 0, or -reason when rejected, see `Reason`):
    buy(c, sym, qty) / sell(c, sym, qty)                      market orders
    buy_limit(c, sym, qty, price, tif=GTC) / sell_limit(...)  limit orders
    submit(c, sym, order_type, side, qty, limit=0.0, stop=0.0, tif=GTC, reduce_only=False,
           trigger=LAST, trail=0.0, trail_bps=0.0, oco=0)     any order type
    bracket(c, sym, side, qty, limit, stop, target)           entry + stop + target (OCO)
    cancel(c, oid), cancel_all(c, sym), amend(c, oid, qty, limit, stop), close_position(c, sym)
Loans (USD borrowed against spot collateral; ids >= 1, or -reason):
    loan_open(c, sym, collateral_qty, borrow), loan_borrow(c, id, usd), loan_repay(c, id, usd),
    loan_add_collateral(c, id, qty), loan_ltv(c, id), loan_debt(c, id), loan_collateral(c, id),
    loan_health(c, id) (a LoanHealth: GOOD, FAIR, DANGER; -1 if not open)
    stop_market(c, sym, side, qty, stop, trigger=LAST), take_profit(c, sym, side, qty, price, ...)
                                          reduce-only exits
State:
    lot_size, tick_size, n_symbols, leverage, is_spot, taker_fee, liquidation_price,
    position, avg_price, equity, balance, free_margin, unrealized_pnl, best_bid, best_ask,
    last_price, mark_price, open_orders, now, book_level, book_depth (the L2 book)
"""
import numpy as np

from .core import account, book
from .core.codes import OT_LIMIT, OT_MARKET, OT_STOP_MARKET, OT_TP_MARKET
from .core.jit import kernel
from .core.loans import (
    loan_add_collateral, loan_borrow, loan_collateral, loan_debt, loan_health, loan_ltv, loan_open,
    loan_repay,
)
from .core.orders import amend, bracket, cancel, cancel_all, close_position, submit

__all__ = [
    "submit", "bracket", "cancel", "cancel_all", "amend", "close_position", "buy", "sell",
    "buy_limit", "sell_limit", "position", "avg_price", "equity", "balance", "free_margin",
    "unrealized_pnl", "best_bid", "best_ask", "last_price", "mark_price", "open_orders", "now",
    "loan_open", "loan_borrow", "loan_repay", "loan_add_collateral", "loan_ltv", "loan_debt",
    "loan_collateral", "loan_health", "stop_market", "take_profit", "lot_size", "tick_size", "n_symbols",
    "leverage", "is_spot", "liquidation_price", "taker_fee", "book_level", "book_depth",
]


@kernel
def buy(c, sym, qty):
    """Market buy of qty on sym."""
    return submit(c, sym, OT_MARKET, 1, qty)


@kernel
def sell(c, sym, qty):
    """Market sell of qty on sym."""
    return submit(c, sym, OT_MARKET, -1, qty)


@kernel
def buy_limit(c, sym, qty, price, tif=0):
    """Limit buy of qty on sym at price (tif: a TimeInForce value, default GTC)."""
    return submit(c, sym, OT_LIMIT, 1, qty, price, 0.0, tif)


@kernel
def sell_limit(c, sym, qty, price, tif=0):
    """Limit sell of qty on sym at price (tif: a TimeInForce value, default GTC)."""
    return submit(c, sym, OT_LIMIT, -1, qty, price, 0.0, tif)


@kernel
def _known(c, sym):
    """Is sym one of the run's symbols? Accessors answer NaN (or 0, False) for any other index
    instead of reading outside the state. One unsigned compare (a negative index wraps to a huge
    one; through int64 so that plain Python wraps it too): 6-8% of the reference loop against two
    signed compares. The accessors then read with the unsigned index, which spares numba's
    negative-index fix-up."""
    return np.uint64(np.int64(sym)) < np.uint64(len(c.pos))


@kernel
def position(c, sym):
    """Signed position of sym (base units; negative = short)."""
    return c.pos[np.uint64(sym)].qty if _known(c, sym) else np.nan


@kernel
def avg_price(c, sym):
    """Average entry price of the position of sym (0 when flat)."""
    return c.pos[np.uint64(sym)].avg_px if _known(c, sym) else np.nan


@kernel
def equity(c):
    """Balance plus unrealised PnL, in the account currency."""
    return account.equity(c)


@kernel
def balance(c):
    """Cash balance of the account (realised PnL, fees and funding included)."""
    return c.acct.balance


@kernel
def free_margin(c):
    """Margin available for new orders, in the account currency."""
    return account.free_margin(c)


@kernel
def unrealized_pnl(c, sym):
    """Unrealised PnL of the position of sym at the valuation price."""
    return c.pos[np.uint64(sym)].upnl if _known(c, sym) else np.nan


@kernel
def best_bid(c, sym):
    """Best bid of the last L1 quote of sym (NaN without quotes)."""
    return c.mkt[np.uint64(sym)].bid if _known(c, sym) else np.nan


@kernel
def best_ask(c, sym):
    """Best ask of the last L1 quote of sym (NaN without quotes)."""
    return c.mkt[np.uint64(sym)].ask if _known(c, sym) else np.nan


@kernel
def last_price(c, sym):
    """Price of the last trade of sym."""
    return c.mkt[np.uint64(sym)].last_px if _known(c, sym) else np.nan


@kernel
def mark_price(c, sym):
    """The valuation price: the mark when the data has marks, else the last trade."""
    return account.val_px(c.run, c.mkt[np.uint64(sym)]) if _known(c, sym) else np.nan


@kernel
def open_orders(c, sym):
    """Live orders of sym (pending, open or waiting for a parent)."""
    return c.pos[np.uint64(sym)].n_open if _known(c, sym) else 0


@kernel
def now(c):
    """Time of the current event, ns since the epoch (UTC)."""
    return c.clock.now_ts


@kernel
def stop_market(c, sym, side, qty, stop, trigger=0):
    """Reduce-only stop-market exit (side -1 closes a long) triggered at `stop`."""
    return submit(c, sym, OT_STOP_MARKET, side, qty, 0.0, stop, 0, True, trigger)


@kernel
def take_profit(c, sym, side, qty, price, trigger=0):
    """Reduce-only take-profit-market exit (side -1 closes a long) triggered at `price`."""
    return submit(c, sym, OT_TP_MARKET, side, qty, 0.0, price, 0, True, trigger)


@kernel
def lot_size(c, sym):
    """Quantity step of sym: order quantities must be multiples of it."""
    return c.inst[np.uint64(sym)].lot if _known(c, sym) else np.nan


@kernel
def tick_size(c, sym):
    """Price step of sym: order prices must be multiples of it."""
    return c.inst[np.uint64(sym)].tick if _known(c, sym) else np.nan


@kernel
def n_symbols(c):
    """Symbols in the run; hooks see them as indices 0 .. n_symbols - 1."""
    return c.run.nsym


@kernel
def leverage(c, sym):
    """The run's leverage setting for sym (config `leverage`, default 1)."""
    return c.inst[np.uint64(sym)].leverage if _known(c, sym) else np.nan


@kernel
def is_spot(c, sym):
    """True if sym is a spot instrument."""
    return c.inst[np.uint64(sym)].type == 0 if _known(c, sym) else False


@kernel
def taker_fee(c, sym):
    """Taker fee rate of sym (a fraction of the notional)."""
    return c.inst[np.uint64(sym)].taker_fee if _known(c, sym) else np.nan


@kernel
def liquidation_price(c, sym):
    """The mark price at which the position of sym would be liquidated now (NaN: none)."""
    return account.liq_price_of(c, sym) if _known(c, sym) else np.nan


@kernel
def book_level(c, sym, side, i):
    """Level i (0 = best) of the L2 book of sym on `side` (Side.BUY = +1: the bids, Side.SELL =
    -1: the asks) as (price, size): the latest snapshot minus the levels traded through since and
    the depth our taker fills consumed (refilling, docs/execution.md). (NaN, 0.0) past the last
    level or without a book."""
    if not _known(c, sym):
        return np.nan, 0.0
    return book.level_of(c, sym, side, i, c.clock.now_ts)


@kernel
def book_depth(c, sym, side, n):
    """Size available within the best n levels of the L2 book of sym on `side` (+1 bids, -1
    asks), as book_level shows them (0.0 without a book)."""
    if not _known(c, sym):
        return 0.0
    return book.depth_of(c, sym, side, n, c.clock.now_ts)
