"""Batched runs (backtest/batch.py): many parameter sets in one pass over the data give, set by
set, the Result that running each alone gives, bit for bit (tables and manifest, timings aside),
whatever the chunk and buffer sizes; a failing set is reported without losing the others; sweeps
run their sets in batches."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import backtest as bt
import backtest.engine as engine
from backtest.batch import batch_size, run_batch, set_bytes
from backtest.errors import CascadeError, ConfigError, StrategyError
from backtest.sweep import run_sweep
from backtest.sweep_dispatch import make_batches
from engine_fixtures import frame_diff, make_market_dataset
from strategies.reference import Reference

N_EVENTS = 30_000
FRAGILE = f"{Path(__file__).parent / 'batch_strategies.py'}:Fragile"
CFG = dict(initial_balance=100_000.0, sample_interval="1ms", leverage={"S0": 5.0},
           execution=dict(latency="3ms"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch") / "ds"
    symbols = make_market_dataset(root, N_EVENTS, nsym=2, seed=5, period=5_000)
    return root, symbols


def random_grid(seed: int, n: int) -> list[dict]:
    """Reference parameters around the dataset's 59.5k-65.5k cycle: each set trades differently."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        entry = float(np.round(rng.uniform(60_500, 63_500), 1))
        out.append({"sym": "S0", "entry": entry, "stop": float(np.round(entry - rng.uniform(300, 2500), 1)),
                    "target": float(np.round(entry + rng.uniform(800, 3500), 1)),
                    "rearm": float(np.round(entry + rng.uniform(100, 1500), 1)),
                    "size": float(rng.choice([0.5, 1.0, 2.0]))})
    return out


def assert_same_run(a, b) -> None:
    """Bit-identical tables and manifest, except timings and chunk_rows (they never change results)."""
    assert sorted(a.tables) == sorted(b.tables)
    for name in a.tables:
        d = frame_diff(a.tables[name], b.tables[name])
        assert d is None, f"table {name}: {d}"

    def core(m):
        m = {k: v for k, v in m.items() if k != "timings"}
        m["config"] = {k: v for k, v in m["config"].items() if k != "chunk_rows"}
        return json.dumps(m, sort_keys=True, default=str)

    assert core(a.manifest) == core(b.manifest)


@pytest.mark.parametrize("seed, chunk_rows, buffer_rows, threads",
                         [(1, 4_999, 8_192, 2), (2, 1 << 20, 1 << 16, 1)])
def test_batch_equals_each_set_alone(dataset, monkeypatch, seed, chunk_rows, buffer_rows, threads):
    root, symbols = dataset
    grid = random_grid(seed, 5)
    alone = [bt.run(Reference, root, params=p, symbols=symbols, config=CFG) for p in grid]
    assert len({r.headline["final_equity"] for r in alone}) > 1  # the sets differ
    assert sum(r.fills.height for r in alone) > 10
    # other chunk and buffer boundaries than the runs alone: buffers drain mid-chunk
    monkeypatch.setattr(engine, "BUFFER_ROWS", buffer_rows)
    batch = run_batch(Reference, root, grid, symbols=symbols, config={**CFG, "chunk_rows": chunk_rows},
                      threads=threads)
    for a, b in zip(alone, batch):
        assert_same_run(a, b)
    assert all(r.bars.height > 8_192 for r in batch)  # more rows than the small buffer holds


def test_failing_set_keeps_the_others(dataset, tmp_path):
    root, symbols = dataset
    grid = [{"every": 400}, {"every": 300, "fail_at": 2_000}, {"every": 700}, {"evry": 3},
            {"every": 250}]
    outs = [tmp_path / f"r{k}" for k in range(len(grid))]
    batch = run_batch(FRAGILE, root, grid, symbols=symbols, config={**CFG, "chunk_rows": 7_000}, outs=outs,
                      threads=2)  # the hook raises in a thread that runs other sets too
    assert isinstance(batch[1], StrategyError) and "fails on purpose" in str(batch[1])
    assert "batch_strategies.py" in str(batch[1]) and "event" in str(batch[1])
    assert isinstance(batch[3], ConfigError) and "every" in str(batch[3])  # did you mean
    assert not outs[1].exists() and not outs[3].exists()
    for k in (0, 2, 4):
        alone = bt.run(FRAGILE, root, params=grid[k], symbols=symbols, config=CFG)
        assert alone.fills.height > 0
        assert_same_run(alone, batch[k])
        assert_same_run(alone, bt.Result.load(outs[k]))
    # alone, the failing set raises the same one-line error
    with pytest.raises(StrategyError) as e:
        bt.run(FRAGILE, root, params=grid[1], symbols=symbols, config=CFG)
    assert str(e.value) == str(batch[1])


def test_errors_every_set_shares_raise(dataset):
    root, symbols = dataset
    with pytest.raises(ConfigError, match="benchmark"):
        run_batch(Reference, root, random_grid(3, 2), symbols=symbols, config={**CFG, "benchmark": "XYZ"})
    with pytest.raises(CascadeError, match="no events from 2030"):
        run_batch(Reference, root, random_grid(3, 2), symbols=symbols, config=CFG, start="2030-01-01")


def test_batch_size_rule_and_split():
    per = set_bytes(1_548_736, 100, samples=10_000, nsym=1)
    assert batch_size(64, per, budget_bytes=1 << 30) == 64
    assert batch_size(1000, per, budget_bytes=1 << 30) == (1 << 30) // per
    assert batch_size(5, 10**12, budget_bytes=1 << 30) == 1  # never zero
    tasks = list(range(10))
    assert [len(b.tasks) for b in make_batches(tasks, 3, 100)] == [4, 3, 3]
    assert [len(b.tasks) for b in make_batches(tasks, 1, 4)] == [4, 3, 3]  # the cap wins
    assert [len(b.tasks) for b in make_batches(tasks[:2], 4, 100)] == [1, 1]
    assert sum((list(b.tasks) for b in make_batches(tasks, 2, 3)), []) == tasks  # order kept


def test_sweep_in_batches_reports_a_failed_set(dataset, tmp_path):
    """A sweep whose second set raises: that row is 'failed' with the hook's error, the others ran
    and equal their runs alone; the batch (batch_size 3) ran 3 sets in one pass."""
    root, symbols = dataset
    shown, cfg = [], {**CFG, "chunk_rows": 5_000}
    res = run_sweep(FRAGILE, root, {"every": [300, 400], "fail_at": [0, 1_500]}, out=tmp_path / "sw",
                    jobs=1, symbols=symbols, config=cfg, batch_size=3,
                    progress=lambda done, total, best: shown.append(done))
    assert (res.ran, res.failed) == (2, 2)
    # the bar moves during a batch's pass (chunk by chunk), never backwards, and ends full
    assert shown == sorted(shown) and shown[-1] == 4 and any(0 < x < 1 for x in shown)
    failed = res.table.filter(pl.col("status") == "failed")
    assert all("fails on purpose" in e for e in failed["error"])
    for row in res.table.filter(pl.col("status") == "ran").iter_rows(named=True):
        alone = bt.run(FRAGILE, root, params=json.loads(row["params"]), symbols=symbols, config=CFG)
        assert_same_run(alone, bt.Result.load(row["run_dir"]))
    again = run_sweep(FRAGILE, root, {"every": [300, 400], "fail_at": [0, 1_500]}, out=tmp_path / "sw",
                      jobs=1, symbols=symbols, config=cfg)
    assert (again.ran, again.skipped, again.failed) == (0, 2, 2)  # failed sets are retried, fail again


NO_JIT = r"""
import json, sys
import backtest as bt
from backtest.batch import run_batch
from strategies.reference import Reference
root, syms = sys.argv[1], ["S0", "S1"]
grid = [{"sym": "S0", "entry": 62000.0}, {"sym": "S0", "entry": 63000.0, "stop": 61500.0}]
cfg = dict(sample_interval="10ms", leverage={"S0": 5.0})
alone = [bt.run(Reference, root, params=p, symbols=syms, config=cfg) for p in grid]
batch = run_batch(Reference, root, grid, symbols=syms, config={**cfg, "chunk_rows": 333})
def core(r):
    m = {k: v for k, v in r.manifest_copy().items() if k != "timings"}
    m["config"].pop("chunk_rows")
    return json.dumps([m, {k: t.to_dicts() for k, t in r.tables.items()}], sort_keys=True, default=str)
print(json.dumps({"same": [core(a) == core(b) for a, b in zip(alone, batch)],
                  "fills": [a.fills.height for a in alone], "jit": alone[0].manifest["timings"]["jit"]}))
"""


@pytest.mark.slow  # a subprocess in pure Python
def test_batch_equals_alone_without_jit(tmp_path):
    root = tmp_path / "small"
    make_market_dataset(root, 3_000, nsym=2, seed=9, period=1_000)
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    p = subprocess.run([sys.executable, "-c", NO_JIT, str(root)], capture_output=True, text=True, env=env,
                       cwd=Path(__file__).resolve().parents[1], timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads(p.stdout.strip().splitlines()[-1])
    assert doc["jit"] is False and doc["same"] == [True, True] and sum(doc["fills"]) > 0


@pytest.mark.slow  # spawns a worker process
def test_sweep_batches_across_processes_equal_one_process(dataset, tmp_path):
    """jobs=2 with two batches: one in this process, one in a worker; the same table and runs as
    one process running one batch."""
    root, symbols = dataset
    grid = {"entry": [61000.0, 62000.0, 63000.0], "stop": [59500.0, 60500.0]}
    one = run_sweep(Reference, root, grid, out=tmp_path / "one", jobs=1, symbols=symbols,
                    params={"sym": "S0"}, config=CFG)
    two = run_sweep(Reference, root, grid, out=tmp_path / "two", jobs=2, symbols=symbols,
                    params={"sym": "S0"}, config=CFG, batch_size=3)  # two batches: two processes
    assert (two.ran, two.failed) == (6, 0)
    cols = ["config_id", "rank", "return_pct", "final_equity", "trades"]
    assert one.table.select(cols).equals(two.table.select(cols))
    for cid in one.table["config_id"]:
        assert_same_run(bt.Result.load(tmp_path / "one" / "runs" / cid), bt.Result.load(tmp_path / "two" / "runs" / cid))


def test_batch_with_an_l2_book_equals_each_set_alone(tmp_path):
    """A batch starts from the context a run alone starts from (pack.pack): when a
    strategy reads the book (here under the default model), trades also move the book (R9.2) in
    every set of the batch."""
    from test_l2_book import BookReader, book_rows, dataset

    # a quote after the trade at 98.5 shows the 99 bid again; the book still lacks it (R9.2)
    root = dataset(tmp_path / "d", [(1, 100.0, 1.0), (2, 98.5, 1.0), (4, 100.0, 1.0)], book_rows(0),
                   quotes=[(0, 99.0, 101.0, 1.0, 1.0), (3, 99.0, 101.0, 1.0, 1.0)])
    cfg = {"sample_interval": "0"}
    alone = bt.run(BookReader, root, config=cfg)
    assert alone.manifest["strategy"]["state"]["depth"][:3] == [3.0, 5.0, 5.0]
    for b in run_batch(BookReader, root, [{}, {}], config={**cfg, "chunk_rows": 2}):
        assert_same_run(alone, b)
