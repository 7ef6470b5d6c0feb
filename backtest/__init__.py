"""Cascade: an event-driven, numba-compiled backtester for leveraged crypto trading.

Public API (imported lazily, so that `backtest --no-jit` can switch numba off before it loads):
    run, Result, RunConfig, ExecutionConfig          running and reading backtests
    Strategy, param, Symbol                          writing strategy plugins
    buy, sell, submit, bracket, cancel, ...          the compiled SDK used inside hooks
    OrderType, Side, TimeInForce, TriggerSource, Reason, OrderStatus, ...   enums
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "run": "backtest.engine",
    "Result": "backtest.result",
    "RunConfig": "backtest.config",
    "ExecutionConfig": "backtest.config",
    "Strategy": "backtest.strategy",
    "param": "backtest.strategy",
    "Symbol": "backtest.strategy",
    "resolve_strategy": "backtest.plugins.resolve",
    "list_strategies": "backtest.plugins.resolve",
    "stress": "backtest.scenarios.run",
}
for _name in ("EventKind", "Side", "InstrumentType", "OrderType", "TimeInForce", "TriggerSource",
              "OrderStatus", "Reason", "Liquidity", "MarginMode", "LoanEvent", "LoanHealth"):
    _LAZY[_name] = "backtest.core.schema"
_SDK = ("submit", "bracket", "cancel", "cancel_all", "amend", "close_position", "buy", "sell",
        "buy_limit", "sell_limit", "position", "avg_price", "equity", "balance", "free_margin",
        "unrealized_pnl", "best_bid", "best_ask", "last_price", "mark_price", "open_orders", "now",
        "loan_open", "loan_borrow", "loan_repay", "loan_add_collateral", "loan_ltv", "loan_debt",
        "loan_collateral", "loan_health", "stop_market", "take_profit", "lot_size", "tick_size", "n_symbols",
        "leverage", "is_spot", "liquidation_price", "taker_fee", "book_level", "book_depth")
for _name in _SDK:
    _LAZY[_name] = "backtest.sdk"

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'backtest' has no attribute {name!r}")
