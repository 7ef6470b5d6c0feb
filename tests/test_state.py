"""The engine's state split by owner (backtest/core/state.py, issue 15): capacities are array
lengths chosen at run time, finished orders drain as a slice, hooks that allocate still run."""
from pathlib import Path

import numpy as np
import pytest

import backtest as bt
from backtest import Strategy, buy, position
from backtest.core.schema import ORDER_DTYPE
from backtest.core.state import State, new_state
from backtest.data.instruments import Instrument, write_instruments
from backtest.data.writer import write_stream

T0 = 1_770_249_600_000_000_000


class OneLotEach(Strategy):
    """Buys one lot of every symbol at its first trade."""

    entries: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if position(c, sym) == 0.0 and buy(c, sym, 1.0) > 0:
            self.entries += 1


class Allocates(Strategy):
    """A hook that allocates an array: compiled into the loop with reference counting."""

    seen: float = 0.0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        a = np.zeros(2)
        a[0] = price
        self.seen += a.sum()


def _dataset(root: Path, nsym: int, per_sym: int = 3) -> list[str]:
    names = [f"X{i:03d}" for i in range(nsym)]
    for i, name in enumerate(names):
        ts = T0 + np.arange(per_sym, dtype=np.int64) * 1_000_000_000 + i
        write_stream(root, "trades", name, dict(ts_ns=ts, price=np.full(per_sym, 100.0 + i),
                                                qty=np.ones(per_sym), side=np.ones(per_sym, np.int8)))
    write_instruments(root / "instruments.json", {
        n: Instrument(n, "linear_perpetual", n, "USDT", "USDT", tick_size=0.1, lot_size=1.0)
        for n in names})
    return names


def test_the_state_is_split_by_owner_and_sized_at_run_time():
    st = new_state(3, orders=10, loans=2, loan_ring=5)
    assert isinstance(st, State)
    assert (len(st.mkt), len(st.pos), len(st.inst), len(st.book)) == (3, 3, 3, 3)
    assert (len(st.orders), len(st.done), len(st.loans), len(st.loan_ring)) == (10, 20, 2, 5)
    assert st.done.dtype == ORDER_DTYPE  # draining finished orders is a slice copy
    assert (st.orders.cancel_ts == -1).all() and st.guard.sym == -1


@pytest.mark.slow
def test_a_run_with_more_symbols_than_the_old_ceiling_reuses_the_compiled_loop(tmp_path):
    from backtest.engine import run_features
    from backtest.plugins.codegen import build_loop

    small = _dataset(tmp_path / "small", 2)
    big = _dataset(tmp_path / "big", 70)  # the context record held at most 64
    cfg = {"initial_balance": 1e6, "margin": {"funding": "0"}}
    a = bt.run(OneLotEach, tmp_path / "small", config=cfg)
    b = bt.run(OneLotEach, tmp_path / "big", config=cfg)
    assert a.manifest["strategy"]["state"]["entries"] == len(small)
    assert b.manifest["strategy"]["state"]["entries"] == len(big)
    assert b.manifest["headline"]["positions"] == {n: 1.0 for n in big}
    assert sorted(b.tables["orders"]["symbol"].to_list()) == big
    loop = build_loop(OneLotEach, features=run_features(OneLotEach, tmp_path / "big", config=cfg))
    assert len(loop.signatures) == 1  # one compile for 2 and 70 symbols


@pytest.mark.slow
def test_a_hook_that_allocates_runs_on_the_refcounted_loop(tmp_path):
    _dataset(tmp_path / "d", 2)
    res = bt.run(Allocates, tmp_path / "d", config={"margin": {"funding": "0"}})
    assert res.manifest["strategy"]["state"]["seen"] == 3 * 100.0 + 3 * 101.0


def test_a_strategy_with_fixed_per_symbol_arrays_refuses_more_symbols():
    """max_symbols: a run over more symbols than the strategy's arrays hold is refused in one line
    before it starts (numba would write past the arrays)."""
    from backtest.errors import ConfigError
    from strategies.altcoin_short_hedge import AltcoinShortHedge

    syms = [f"S{i}" for i in range(65)]
    AltcoinShortHedge.new_state({"btc": "S0"}, syms[:64])
    with pytest.raises(ConfigError, match="at most 64 symbols; this run has 65"):
        AltcoinShortHedge.new_state({"btc": "S0"}, syms)


def test_draining_moves_each_tables_rows_and_resets_only_their_counters():
    """engine._Buffers.drain reads the row counters through one view of the account record: the
    same rows and counters as field by field, for a state, a batch set's copy and --no-jit's mirror."""
    from backtest import engine as E
    from backtest.core.state import copy_state

    assert E._counters_at(E.ACCOUNT_DTYPE) is not None  # the six counters are consecutive int64s
    for make in (lambda: new_state(2), lambda: copy_state(new_state(2)),
                 lambda: E.python_state(new_state(2))):
        c = make()
        bufs = E._Buffers.new(8, True)
        bufs.fills["price"][:3] = [1.0, 2.0, 3.0]
        bufs.equity["ts_ns"][:2] = [10, 20]
        c.acct.n_fill_rows, c.acct.n_equity_rows, c.acct.n_loan_rows = 3, 2, 0
        c.acct.n_fills, c.acct.n_done = 7, 0  # not a row counter: kept
        bufs.drain(c)
        assert [a["price"].tolist() for a in bufs.out["fills"]] == [[1.0, 2.0, 3.0]]
        assert [a["ts_ns"].tolist() for a in bufs.out["equity"]] == [[10, 20]]
        assert all(not bufs.out[k] for k in ("bars", "funding", "liquidations", "loans", "orders"))
        counters = [c.acct.n_fill_rows, c.acct.n_equity_rows, c.acct.n_bar_rows, c.acct.n_funding_rows,
                    c.acct.n_liq_rows, c.acct.n_loan_rows]
        assert counters == [0] * 6 and c.acct.n_fills == 7
        bufs.drain(c)  # nothing new: nothing appended
        assert len(bufs.out["fills"]) == 1 and len(bufs.out["equity"]) == 1
