"""A strategy with no hooks: its kernel rate is the loop's own per-event work (bench_engine.py).

The reference strategy's rate is this work plus its `on_tick`; splitting the two tells whether a
slow loop on some machine is the framework's or the hook's (benchmarks/README.md, thirteenth
session).
"""
from backtest import Strategy, Symbol, param


class Idle(Strategy):
    """Never trades: only the loop runs."""

    sym: Symbol = param("BTCUSDT", "symbol (unused)")
