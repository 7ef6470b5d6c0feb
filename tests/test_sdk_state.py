"""The SDK's state functions (docs/strategies.md, "Account and market state"), read from a hook.

A strategy buys 1 BTC-like unit of symbol 0 on its first tick and, at its last tick, records what
every state function answers for symbol 0 (against values worked out by hand from the events),
for a symbol past the last one and for a negative one (nothing is read: NaN, 0, False).
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import backtest as bt
from backtest import (
    Strategy, avg_price, best_ask, best_bid, book_depth, book_level, buy, is_spot, last_price, leverage,
    liquidation_price, lot_size, mark_price, open_orders, position, taker_fee, tick_size, unrealized_pnl,
)
from engine_fixtures import run_config, write_events
from test_oracle import PERP, TK, M, Q, T, events

# what is recorded, in this order, for each of three symbols (0, nsym, -1)
NAMES = ("position", "avg_price", "unrealized_pnl", "best_bid", "best_ask", "last_price", "mark_price",
         "open_orders", "lot_size", "tick_size", "leverage", "is_spot", "taker_fee", "liquidation_price",
         "book_level_px", "book_level_qty", "book_depth")
N = len(NAMES)


class StateReader(Strategy):
    """Buys 1 of symbol 0 at the first tick; records every state function at tick `read_at`."""

    read_at: int = 3
    ticks: int = 0
    vals: ("f8", 3 * N)

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if self.ticks == 0:
            buy(c, 0, 1.0)
        if self.ticks == self.read_at:
            for j in range(3):
                s = 0 if j == 0 else (1 if j == 1 else -1)
                k = j * N
                lp, lq = book_level(c, s, 1, 0)
                v = self.vals
                v[k], v[k + 1], v[k + 2] = position(c, s), avg_price(c, s), unrealized_pnl(c, s)
                v[k + 3], v[k + 4], v[k + 5] = best_bid(c, s), best_ask(c, s), last_price(c, s)
                v[k + 6], v[k + 7] = mark_price(c, s), open_orders(c, s)
                v[k + 8], v[k + 9], v[k + 10] = lot_size(c, s), tick_size(c, s), leverage(c, s)
                v[k + 11] = 1.0 if is_spot(c, s) else 0.0
                v[k + 12], v[k + 13] = taker_fee(c, s), liquidation_price(c, s)
                v[k + 14], v[k + 15], v[k + 16] = lp, lq, book_depth(c, s, 1, 5)
        self.ticks += 1


def _read(tmp_path):
    rows = [T(1, 60_000.0), Q(2, 59_990.0, 60_010.0), M(3, 60_005.0), T(4, 60_020.0),
            Q(5, 60_100.0, 60_120.0), T(6, 60_090.0), M(7, 60_095.0), T(8, 60_130.0)]
    syms = write_events(tmp_path / "ds", events(*rows), [dict(PERP)])
    cfg = run_config([dict(PERP)], dict(initial_balance=10_000.0), syms)
    state = StateReader.new_state({}, syms)
    res = bt.run(StateReader, tmp_path / "ds", symbols=syms, config=cfg, state=state)
    vals = np.asarray(state.vals[0]).reshape(3, N)
    return res, [dict(zip(NAMES, map(float, v))) for v in vals]


def test_state_functions_of_a_symbol(tmp_path):
    res, (got, _, _) = _read(tmp_path)
    fills = res.tables["fills"]
    assert fills.height == 1  # the market buy of the first tick filled before the read
    fill_px = float(fills["price"][0])
    assert got["position"] == 1.0
    assert got["avg_price"] == fill_px
    # the effective book (R2.3): after the 60,100/60,120 quote, the trade at 60,090 printed
    # through the bid and the one at 60,130 (the read) through the ask: both moved to the trades
    assert got["best_bid"] == 60_090.0
    assert got["best_ask"] == 60_130.0
    assert got["last_price"] == 60_130.0
    assert got["mark_price"] == 60_095.0  # the valuation price is the last mark once marks exist
    assert got["unrealized_pnl"] == 1.0 * (60_095.0 - fill_px)
    assert got["open_orders"] == 0.0
    assert (got["lot_size"], got["tick_size"], got["leverage"]) == (0.001, 0.1, 10.0)
    assert got["is_spot"] == 0.0
    assert got["taker_fee"] == TK
    assert 0.0 < got["liquidation_price"] < fill_px  # a 10x long is liquidated below its entry
    assert math.isnan(got["book_level_px"]) and got["book_level_qty"] == 0.0  # no L2 book here
    assert got["book_depth"] == 0.0


def test_unknown_symbols_read_nothing(tmp_path):
    """Past the last symbol and below 0: NaN (open_orders 0, is_spot False, an empty book level),
    never a value read from outside the state."""
    _, (_, past, negative) = _read(tmp_path)
    for got in (past, negative):
        for name, v in got.items():
            if name in ("open_orders", "is_spot", "book_level_qty", "book_depth"):
                assert v == 0.0, name
            else:
                assert math.isnan(v), name


NO_JIT = """
import json, sys
from pathlib import Path
sys.path.insert(0, "tests")
import test_sdk_state as T
_, got = T._read(Path(sys.argv[1]))
print(json.dumps([[repr(v) for v in g.values()] for g in got]))
"""


@pytest.mark.slow  # a subprocess in pure Python
def test_state_functions_without_jit(tmp_path):
    """--no-jit (hooks as plain Python) answers the same, unknown symbols included."""
    _, jit = _read(tmp_path / "jit")
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    (tmp_path / "py").mkdir()
    p = subprocess.run([sys.executable, "-c", NO_JIT, str(tmp_path / "py")], capture_output=True,
                       text=True, env=env, cwd=Path(__file__).resolve().parents[1], timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == [[repr(v) for v in g.values()] for g in jit]
