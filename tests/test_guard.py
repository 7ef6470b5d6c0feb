"""The price guard (backtest/core/guard.py) skips per-event drawdown and margin checks only when
they provably change nothing: runs with margin.price_guard on and off must give bit-identical
Results, on random leveraged scenarios with crashes, liquidations (full and partial), margin
calls, isolated and cross margin, mark or last triggers, and one or two open positions (the box
of intervals armed over several cross positions)."""
import ast
import json
from pathlib import Path

import numpy as np
import pytest

import backtest as bt
from backtest.data.instruments import Bracket, Instrument, write_instruments
from backtest.data.writer import write_stream
from engine_fixtures import T0, frame_diff, manifest_core
from swing_strategy import Swing

# Binance-style tiers: maint_amount keeps the maintenance margin continuous across brackets
BRACKETS = tuple(Bracket(*b) for b in [(0, 50_000, 125, 0.004, 0), (50_000, 250_000, 100, 0.005, 50),
                                       (250_000, 1_000_000, 50, 0.01, 1_300),
                                       (1_000_000, 1e12, 20, 0.025, 16_300)])


def crash_dataset(root, seed: int, n: int = 20_000) -> None:
    """Two perpetuals: a random walk with a crash and a rebound, marks near last, some funding."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0, 25.0, n)
    steps[n // 3: n // 3 + 600] -= 25.0  # the crash
    steps[n // 2: n // 2 + 400] += 30.0  # the rebound
    base = 62_000.0 + np.cumsum(steps)
    ts = T0 + np.arange(n, dtype=np.int64) * 50_000_000
    for s, (name, scale) in enumerate([("S0", 1.0), ("S1", 0.03)]):
        px = np.round(base * scale * (1 + 0.002 * s * np.sin(np.arange(n) / 50)), 1)
        write_stream(root, "trades", name, dict(ts_ns=ts, price=px, qty=np.full(n, 0.5),
                                                side=rng.choice([-1, 1], n).astype(np.int8)))
        m = np.arange(0, n, 3)
        mark = np.round(px[m] + rng.normal(0, 5.0 * scale, len(m)), 2)
        write_stream(root, "marks", name, dict(ts_ns=ts[m] + 1, mark_price=mark, index_price=mark))
        f = np.arange(0, n, 2_000)
        write_stream(root, "funding", name, dict(ts_ns=ts[f] + 2, rate=np.full(len(f), -0.0005)))
    inst = {name: Instrument(name, "linear_perpetual", name, "USDT", "USDT", tick_size=0.1,
                             lot_size=0.001, maker_fee_rate=0.0002, taker_fee_rate=0.0005,
                             brackets=BRACKETS) for name in ("S0", "S1")}
    write_instruments(root / "instruments.json", inst)


def _run(data, params, margin, guard):
    lev = params["lev"]  # notional up to 80 x 1,000: within the 100x bracket
    cfg = dict(initial_balance=1_000.0, sample_interval="5m", leverage={"S0": lev, "S1": lev},
               margin={**margin, "price_guard": guard})
    return bt.run(Swing, data, params=params, config=cfg)


SCENARIOS = [  # (seed, leverage, two positions, margin settings)
    (1, 3.0, False, {}),
    (2, 40.0, False, {}),
    (3, 60.0, False, {"mode": "isolated"}),
    (4, 30.0, True, {}),
    (5, 25.0, False, {"trigger": "last", "partial": True}),
    (6, 80.0, True, {"mode": "isolated", "settle": "market"}),
    (7, 20.0, False, {"margin_call_ratio": 0.3}),
    (8, 10.0, True, {"trigger": "last"}),  # two positions: the guard's box (one interval each)
    (9, 50.0, True, {"partial": True}),
]


@pytest.mark.parametrize("seed,lev,two,margin", SCENARIOS)
def test_guard_changes_nothing(tmp_path, seed, lev, two, margin):
    data = tmp_path / "data"
    crash_dataset(data, seed)
    params = dict(seed=seed, lev=lev, two=two)
    on, off = _run(data, params, margin, True), _run(data, params, margin, False)
    for name in off.tables:
        assert frame_diff(on.tables[name], off.tables[name]) is None, name
    core_on, core_off = (json.loads(manifest_core(r.manifest)) for r in (on, off))
    for m in (core_on, core_off):
        m["config"]["margin"].pop("price_guard")
    assert core_on == core_off
    assert off.fills.height >= 6
    # the guard did skip checks (the full checks still ran where they could matter)
    checks_on, checks_off = (r.manifest["timings"]["margin_checks"] for r in (on, off))
    assert 0 < checks_on < checks_off, (checks_on, checks_off)


def test_scenarios_reach_liquidations_and_margin_calls(tmp_path):
    """The scenarios above are not vacuous: together they liquidate and fire margin calls."""
    liqs = calls = 0
    for seed, lev, two, margin in SCENARIOS[1:4]:
        data = tmp_path / f"d{seed}"
        crash_dataset(data, seed)
        r = _run(data, dict(seed=seed, lev=lev, two=two), margin, True)
        liqs += r.tables["liquidations"].height
        calls += r.manifest["strategy"]["state"]["calls"]
    assert liqs > 0 and calls > 0, (liqs, calls)


def test_guard_skips_checks_with_two_positions(tmp_path):
    """With two cross positions open the guard's box still skips most checks (the single-position
    guard skipped about a fifth of them here: 2,171 of 3,110 ran)."""
    data = tmp_path / "data"
    crash_dataset(data, 9)
    on, off = (_run(data, dict(seed=9, lev=50.0, two=True), {"partial": True}, g) for g in (True, False))
    checks_on, checks_off = (r.manifest["timings"]["margin_checks"] for r in (on, off))
    assert checks_on * 5 < checks_off, (checks_on, checks_off)


# what the guard's proof assumes fixed while it holds; whoever writes one disarms it
SEALED = {"balance", "n_fills", "peak_equity", "max_drawdown", "n_loans"}


def _acct_writes(fn: ast.FunctionDef) -> tuple[set[str], bool]:
    """The sealed fields of an account record that fn assigns, and whether it disarms the guard."""
    fields = set()
    for node in ast.walk(fn):
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AugAssign) else [])
        for t in (n for tgt in targets for n in ast.walk(tgt)):
            if isinstance(t, ast.Attribute) and t.attr in SEALED and (
                    (isinstance(t.value, ast.Attribute) and t.value.attr == "acct")
                    or (isinstance(t.value, ast.Name) and t.value.id == "acct")):
                fields.add(t.attr)
    disarms = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "disarm_guard"
                  for n in ast.walk(fn))
    return fields, disarms


def test_every_writer_of_the_sealed_account_disarms_the_guard():
    """guard_holds keeps no copy of the account: a compiled function that changes balance, fills,
    peak, max drawdown or loans without calling disarm_guard would let the guard skip a check
    it must run."""
    core = Path(bt.__file__).parent / "core"
    writers, missing = [], []
    for path in sorted(core.glob("*.py")):
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, ast.FunctionDef):
                fields, disarms = _acct_writes(fn)
                if fields:
                    writers.append(fn.name)
                    if not disarms:
                        missing.append(f"{path.name}:{fn.lineno} {fn.name} writes {sorted(fields)}")
    assert not missing, "\n".join(missing)
    # the scan sees the writers (it would pass vacuously on a renamed record otherwise)
    assert {"book_fill", "update_drawdown", "apply_funding", "loan_open", "loan_repay"} <= set(writers)
