"""Determinism: chunking never changes a result (R1.1), equal inputs give bit-identical Results,
and a saved run loads back equal to the in-memory one.

The dataset has ~100k events of every kind with timestamp ties, and the sample interval is short
enough that the engine's output buffers fill up and are drained mid-chunk (the BUFFER_FULL
resumption path), so chunk boundaries and buffer boundaries both fall everywhere.
"""
import json

import numpy as np
import pytest

import backtest as bt
from backtest.data.reader import open_dataset
from backtest.result import Result
from engine_fixtures import assert_results_identical, frame_diff, make_market_dataset
from scripted import Scripted, load_script
from strategies.reference import Reference
from test_oracle_equivalence import make_script

N_EVENTS = 100_000
CHUNKS = [1_000, 1_000_000, 1 << 40]  # small, default-like, everything at once


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("det") / "ds"
    symbols = make_market_dataset(root, N_EVENTS, nsym=2, seed=11)
    return root, symbols


def _ref_run(dataset, chunk_rows, out=None):
    root, symbols = dataset
    cfg = dict(initial_balance=100_000.0, sample_interval="1ms", chunk_rows=chunk_rows,
               leverage={"S0": 5.0}, execution=dict(latency="3ms"))
    return bt.run(Reference, root, params={"sym": "S0"}, symbols=symbols, config=cfg, out=out)


def _comparable(res):
    """Everything a run determines, except the config (chunk_rows differs on purpose)."""
    m = {k: v for k, v in res.manifest.items() if k not in ("timings", "config")}
    return json.dumps(m, sort_keys=True, default=str)


@pytest.fixture(scope="module")
def ref_runs(dataset):
    return {c: _ref_run(dataset, c) for c in CHUNKS}


def test_reference_actually_trades(ref_runs):
    res = ref_runs[CHUNKS[1]]
    assert res.fills.height >= 8  # several entries, stops and targets
    assert set(res.fills["side"].to_list()) == {-1, 1}
    assert res.equity.height > 40_000
    assert res.bars.height > 65_536  # more rows than one output buffer: drained mid-chunk
    assert res.funding.height > 0
    assert res.manifest["timings"]["events"] == N_EVENTS


@pytest.mark.parametrize("chunk_rows", [CHUNKS[0], CHUNKS[2]])
def test_chunking_is_bit_identical(ref_runs, chunk_rows):
    a, b = ref_runs[CHUNKS[1]], ref_runs[chunk_rows]
    for name in a.tables:
        d = frame_diff(a.tables[name], b.tables[name])
        assert d is None, f"chunk_rows={chunk_rows}, table {name}: {d}"
    assert a.headline == b.headline
    assert _comparable(a) == _comparable(b)


def test_reader_chunks_match(dataset):
    """The chunks themselves: every size cuts the same stream."""
    root, symbols = dataset
    cat = {}
    for c in CHUNKS:
        parts = list(open_dataset(root, symbols=symbols, chunk_rows=c))
        assert all(len(p["ts_ns"]) <= c for p in parts)
        cat[c] = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    for c in CHUNKS[1:]:
        for k in cat[c]:
            assert cat[c][k].tobytes() == cat[CHUNKS[0]][k].tobytes(), (c, k)


def test_same_inputs_twice_bit_identical(dataset, ref_runs):
    again = _ref_run(dataset, CHUNKS[1])
    assert_results_identical(ref_runs[CHUNKS[1]], again)


def test_saved_and_loaded_equals_in_memory(dataset, tmp_path):
    res = _ref_run(dataset, CHUNKS[0], out=tmp_path / "run")
    loaded = Result.load(tmp_path / "run")
    assert sorted(loaded.tables) == sorted(res.tables)
    for name in res.tables:
        d = frame_diff(res.tables[name], loaded.tables[name])
        assert d is None, f"table {name}: {d}"
    assert json.dumps(loaded.manifest, sort_keys=True) == json.dumps(
        res.manifest, sort_keys=True, default=str)


@pytest.mark.parametrize("seed", [5, 6])
def test_scripted_orders_chunking_bit_identical(tmp_path, seed):
    """Limit/stop/trailing/bracket/cancel/amend traffic (a random script) across chunk sizes."""
    root = tmp_path / "ds"
    symbols = make_market_dataset(root, 20_000, nsym=3, seed=seed, period=4_000)
    parts = list(open_dataset(root, symbols=symbols))
    ev = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    rng = np.random.default_rng(seed)
    script = make_script(rng, ev, len(symbols))
    results = []
    for c in (7, 1_000, 1 << 40):
        state = Scripted.new_state({}, symbols)
        load_script(state, script)
        cfg = dict(initial_balance=1e9, sample_interval="50ms", chunk_rows=c,
                   execution=dict(latency="1ms", cancel_latency="2ms"))
        res = bt.run(Scripted, root, symbols=symbols, config=cfg, state=state)
        results.append((res, state.result[0][: len(script)].tolist()))
    (a, ra), *rest = results
    assert a.orders.height > 0
    for b, rb in rest:
        assert ra == rb
        for name in a.tables:
            d = frame_diff(a.tables[name], b.tables[name])
            assert d is None, f"table {name}: {d}"
        assert _comparable(a) == _comparable(b)
