"""The kernels' two variants (core/rare.py): pack keeps the rare paths exactly when a run can
reach them, the lean variant compiles none of their kernels, and a lean run's results are the
same run's on every path, bit for bit."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import backtest as bt
from backtest import engine, pack
from backtest.core.enums import InstrumentType, MarginMode
from backtest.core.state import copy_state, new_state
from engine_fixtures import assert_results_identical, make_market_dataset
from swing_strategy import Swing
from strategies.reference import Reference

ROOT = Path(__file__).resolve().parents[1]


class _Loans(Reference):
    """A strategy whose sources name loan_open (this file does: pack scans it)."""


def _state(*kinds, queue=0, book=0, isolated=0, partial=0):
    c = new_state(len(kinds))
    c.inst.type[:] = [int(k) for k in kinds]
    c.inst.margin_mode[-1] = int(MarginMode.ISOLATED if isolated else MarginMode.CROSS)
    c.run.queue_model, c.run.book_replayed, c.run.liq_partial = queue, book, partial
    return c


LINEAR = InstrumentType.LINEAR_PERPETUAL


@pytest.mark.parametrize("kinds, extra, want", [
    ((LINEAR,), {}, False),
    ((LINEAR, LINEAR), {}, False),
    ((LINEAR, InstrumentType.INVERSE_PERPETUAL), {}, True),  # coin wallets, inverse liquidation
    ((InstrumentType.SPOT, LINEAR), {}, True),  # spot margin shorts
    ((LINEAR, LINEAR), {"isolated": 1}, True),  # isolated margin of one symbol
    ((LINEAR,), {"partial": 1}, True),  # partial liquidation (margin.partial)
    ((LINEAR,), {"queue": 1}, True),  # the queue model
    ((LINEAR,), {"book": 1}, True),  # an L2 book
])
def test_pack_keeps_the_rare_paths_exactly_when_a_run_can_reach_them(kinds, extra, want):
    c = _state(*kinds, **extra)
    assert pack.rare_paths_needed(Reference, c) is want
    lean = pack.with_variant(Reference, c)
    assert (lean.rare is None) is (not want) and lean.inst is c.inst  # the same arrays
    assert copy_state(lean).rare is lean.rare


def test_a_strategy_that_names_loan_open_keeps_the_rare_paths():
    assert pack.rare_paths_needed(_Loans, _state(LINEAR))  # this file names loan_open


LEAN_CHILD = textwrap.dedent("""
    import json
    import numpy as np
    from backtest.core import account, margin_math
    from backtest.core.state import new_state
    from backtest.core.enums import InstrumentType

    def state(rare):
        c = new_state(1, rare=rare)
        c.run.nsym, c.inst.type[0], c.run.n_inverse, c.acct.n_loans = 1, int(InstrumentType.LINEAR_PERPETUAL), 0, 0
        return c

    def compiled():
        return {f.__name__: len(f.signatures) for f in (account.coin_wallets_value, account.loan_value_total,
                                                        account.upnl_total)}

    out = {"lean": (account.equity(state(False)), compiled())}
    out["full"] = (account.equity(state(True)), compiled())
    print(json.dumps(out))
""")


@pytest.mark.slow  # compiles a few kernels into an empty cache
def test_the_lean_variant_compiles_none_of_the_rare_kernels(tmp_path):
    """equity() calls the inverse wallets' and the loans' kernels through gates: compiled for a
    lean state, it never types them (so they are not compiled); for a full state it does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "CASCADE_"))}
    env.update(CASCADE_CACHE_DIR=str(tmp_path / "cache"), CASCADE_PARALLEL_COMPILE="0",
               PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-c", LEAN_CHILD], env=env, capture_output=True, text=True,
                       cwd=str(tmp_path), timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["lean"] == [0.0, {"coin_wallets_value": 0, "loan_value_total": 0, "upnl_total": 1}]
    # every kernel that takes the state compiles once per variant
    assert out["full"] == [0.0, {"coin_wallets_value": 1, "loan_value_total": 1, "upnl_total": 2}]


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    root = tmp_path_factory.mktemp("rare") / "market"
    make_market_dataset(root, 40_000, nsym=2, period=8_000)
    return root


CASES = {  # lean runs through cross liquidations, funding, touch fills
    "swing two symbols": (Swing, {"seed": 3, "lev": 25.0, "two": True},
                          {"initial_balance": 5_000.0, "leverage": {"S0": 25.0, "S1": 25.0},
                           "margin": {"funding": "0.0003"}}),
    "swing one symbol": (Swing, {"seed": 5, "lev": 40.0},
                         {"initial_balance": 5_000.0, "leverage": {"S0": 40.0, "S1": 40.0},
                          "margin": {"funding": "0.0001", "settle": "market"}}),
    "reference limits": ("reference", {"sym": "S0"},
                         {"initial_balance": 20_000.0, "leverage": {"S0": 10.0, "S1": 10.0},
                          "margin": {"funding": "0.0001"}, "execution": {"touch_fills": True}}),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_a_lean_run_equals_the_same_run_on_every_path(market, case, monkeypatch):
    strategy, params, cfg = CASES[case]
    lean = bt.run(strategy, market, params=params, config=cfg)
    assert lean.manifest["headline"]["fills"] > 0
    assert engine.run_features(strategy, market, config=cfg).rare is False
    monkeypatch.setattr(pack, "rare_paths_needed", lambda cls, c: True)
    full = bt.run(strategy, market, params=params, config=cfg)
    assert_results_identical(lean, full)


def test_without_the_compiler_a_gate_calls_its_path():
    from backtest.core.rare import rare_path

    gate = rare_path(lambda c, x: x + 1.0, np.nan)
    assert gate(None, 1.0) == 2.0 and gate.__name__ == "rare_<lambda>"

