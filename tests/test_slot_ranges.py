"""Matching scans only the slots that can hold a symbol's live orders (`pos.o_first`/`o_last`,
core/state.py). The random engine == oracle scenarios (test_oracle_equivalence.py) exercise the
ranges through cancels, amends, brackets, OCO groups and partial fills on several symbols; this
file covers what those scenarios never reach: the order table compacting (a full table moves live
orders to lower slots), after which each symbol's range must be rebuilt."""
import numpy as np

import backtest as bt
from backtest import Strategy, buy_limit, cancel
from backtest.core.schema import MAX_ORDERS
from backtest.data.instruments import Instrument, write_instruments
from backtest.data.writer import write_stream

T0 = 1_770_249_600_000_000_000
N1 = MAX_ORDERS + 600  # churned orders of S1: the table fills and compacts once


class Churn(Strategy):
    """S1: every tick, cancel the previous far-away limit and place a new one. S0: at its 10th
    tick one buy limit at 95, which only the last S0 trade (at 90) crosses."""

    n0: int = 0
    last: int = 0
    s0_oid: int = 0
    placed: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if sym == 0:
            self.n0 += 1
            if self.n0 == 10:
                self.s0_oid = buy_limit(c, 0, 1.0, 95.0)
            return
        if self.last > 0:
            cancel(c, self.last)
        self.last = buy_limit(c, 1, 1.0, 10.0)
        if self.last > 0:
            self.placed += 1


def test_a_resting_order_moved_by_compaction_still_fills(tmp_path):
    n = N1 + N1 // 10 + 1
    sym = np.ones(n, np.int32)
    sym[::10] = 0  # every 10th event is S0's: its order rests at a slot above ~9 S1 orders
    sym[-1] = 0
    ts = T0 + np.arange(n, dtype=np.int64) * 1_000_000
    price = np.where(sym == 0, 100.0, 50.0)
    price[-1] = 90.0  # S0 trades through its limit (R3.5: fills at the limit, maker)
    for s, name in enumerate(("S0", "S1")):
        m = sym == s
        write_stream(tmp_path, "trades", name, dict(ts_ns=ts[m], price=price[m], qty=np.full(m.sum(), 2.0),
                                                    side=np.ones(m.sum(), np.int8)))
    write_instruments(tmp_path / "instruments.json", {name: Instrument(
        name, "linear_perpetual", name, "USDT", "USDT", tick_size=0.5, lot_size=0.5) for name in ("S0", "S1")})
    r = bt.run(Churn, tmp_path, config=dict(initial_balance=1e6, sample_interval="0"))
    st = r.manifest["strategy"]["state"]
    assert st["placed"] > MAX_ORDERS  # the table filled: compact() ran while S0's order was live
    f = r.fills.to_dicts()
    assert len(f) == 1, f
    assert (f[0]["oid"], f[0]["sym"], f[0]["price"], f[0]["qty"], f[0]["ts_ns"]) == (
        st["s0_oid"], 0, 95.0, 1.0, int(ts[-1]))
