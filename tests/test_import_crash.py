"""All-or-nothing imports: `backtest data import` killed with SIGKILL at random moments (and at
chosen moves while the commit is applied) never leaves a dataset that shows part of the import.

After every kill the dataset, as listed by readers (which honour a committed import still being
applied), equals the dataset before the import or after the whole import; `data validate`
finishes or drops the interrupted import and passes.
"""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from backtest.data.layout import list_streams
from backtest.data.validate import validate_dataset

REPO = Path(__file__).resolve().parents[1]
T0_MS = 1770249600000  # 2026-02-05
DAY_MS = 86_400_000
ROWS_PER_DAY = 150_000

pytestmark = pytest.mark.slow


def _day_file(path: Path, day: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    n = ROWS_PER_DAY
    t = T0_MS + day * DAY_MS + np.sort(rng.integers(0, DAY_MS, n))
    p = np.round(97_000 + np.cumsum(rng.normal(0, 1, n)), 1)
    side = np.where(rng.random(n) < 0.5, "true", "false")
    with open(path, "w") as f:
        f.write("id,price,qty,quote_qty,time,is_buyer_maker\n")
        f.writelines(f"{seed * 10**7 + i},{pp},0.01,{pp / 100},{tt},{s}\n"
                     for i, (pp, tt, s) in enumerate(zip(p.tolist(), t.tolist(), side.tolist())))
    return path


def _import(out: Path, files, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    cmd = [sys.executable, "-m", "backtest", "data", "import", "--format", "binance-trades", "--symbol",
           "BTCUSDT", "--venue", "binance-usdm", "--out", str(out), "--quiet", *map(str, files)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for (kind, sym), files in sorted(list_streams(root).items()):
        h.update(f"{kind}/{sym}".encode())
        for f in files:
            t = pq.read_table(f)
            for c in t.columns:
                h.update(c.to_numpy().tobytes())
    ins = root / "instruments.json"
    h.update(ins.read_bytes() if ins.exists() else b"-")
    return h.hexdigest()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("import-crash")
    base = tmp / "base"
    old = [_day_file(tmp / f"old{d}.csv", d, 100 + d) for d in (0, 1)]
    p = _import(base, old)
    assert p.wait() == 0, p.stderr.read()
    # the import under test: rewrites an existing date (merge) and adds four new ones
    new = [_day_file(tmp / f"new{d}.csv", d, 200 + d) for d in (1, 2, 3, 4, 5)]
    full = tmp / "full"
    shutil.copytree(base, full)
    t = time.perf_counter()
    p = _import(full, new)
    assert p.wait() == 0, p.stderr.read()
    seconds = time.perf_counter() - t
    return tmp, base, new, _digest(base), _digest(full), seconds


def _check_after_kill(ds: Path, before: str, after: str) -> str:
    seen = _digest(ds)
    assert seen in (before, after), "a reader sees part of the import"
    validate_dataset(ds)  # recovers (finishes a committed import or drops a dead one), then passes
    assert _digest(ds) == seen
    assert not list(ds.glob(".import-*"))
    return "after" if seen == after else "before"


def test_sigkill_at_random_moments_leaves_before_or_after(setup):
    tmp, base, new, before, after, seconds = setup
    rng = random.Random(17)
    outcomes = []
    for k in range(8):
        ds = tmp / f"kill{k}"
        shutil.copytree(base, ds)
        p = _import(ds, new)
        time.sleep(rng.uniform(0.1, 1.1) * seconds)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        outcomes.append(_check_after_kill(ds, before, after))
        shutil.rmtree(ds)
    assert "before" in outcomes  # most kills land before the commit point


@pytest.mark.parametrize("moves", [0, 1, 3])
def test_sigkill_while_applying_the_commit_gives_the_whole_import(setup, moves):
    tmp, base, new, before, after, _ = setup
    ds = tmp / f"apply{moves}"
    shutil.copytree(base, ds)
    p = _import(ds, new, {"CASCADE_TEST_KILL_AFTER_MOVES": str(moves)})
    assert p.wait() == -signal.SIGKILL
    assert list(ds.glob(".import-*"))  # the commit record is there, half applied
    assert _check_after_kill(ds, before, after) == "after"
    shutil.rmtree(ds)
