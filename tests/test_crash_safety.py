"""Crash safety: `backtest run` and `backtest sweep` killed with SIGINT, SIGTERM and SIGKILL at
several moments never leave a folder that looks complete but is not.

Checked after every kill:
* a run folder exists only with manifest.json and every table, and loads with Result.load;
* no visible temporary folder; hidden `.NAME.tmp-*` siblings are allowed only after SIGTERM and
  SIGKILL (the process dies without running its cleanup; see docs/reliability.md);
* after an interrupted sweep, the finished runs survive and a rerun skips them.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from backtest.result import TABLES, Result

from cli_helpers import BACKTEST
from engine_fixtures import make_market_dataset

REPO = Path(__file__).resolve().parents[1]
N_EVENTS = 2_000_000
pytestmark = pytest.mark.slow  # real processes over 2M events, killed and rerun
KILL_POINTS: list[tuple] = []  # (command, signal, seconds after start, outcome)
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]


def _env():
    return {**os.environ, "CASCADE_CACHE_DIR": os.environ.get("CASCADE_CACHE_DIR",
                                                             str(REPO / ".cache" / "test"))}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash") / "ds"
    make_market_dataset(root, N_EVENTS, nsym=1, seed=2, period=200_000)
    return root


RUN_ARGS = ["reference", "-p", "sym=S0", "--quiet", "--set", "sample_interval=1s"]


def _start(args):
    return subprocess.Popen([*BACKTEST, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=_env(), start_new_session=True)


def _timed(args, timeout=900):
    t0 = time.perf_counter()
    p = subprocess.run([*BACKTEST, *args], capture_output=True, text=True, env=_env(), timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    return time.perf_counter() - t0


@pytest.fixture(scope="module")
def run_seconds(dataset, tmp_path_factory):
    """Wall time of one complete cached run (the first call compiles or loads the loop)."""
    d = tmp_path_factory.mktemp("warm")
    _timed(["run", *RUN_ARGS, "--data", str(dataset), "--out", str(d / "w1")])
    return _timed(["run", *RUN_ARGS, "--data", str(dataset), "--out", str(d / "w2")])


def assert_complete_or_absent(folder: Path):
    """The folder is absent, or a finished run: manifest.json, every table, loads."""
    if not folder.exists():
        return False
    names = {p.name for p in folder.iterdir()}
    assert "manifest.json" in names, f"{folder} exists without a manifest: {sorted(names)}"
    missing = [t for t in TABLES if f"{t}.parquet" not in names]
    assert not missing, f"{folder}: manifest present but tables missing {missing}"
    res = Result.load(folder)
    assert res.manifest["headline"]["final_equity"] is not None
    assert res.equity.height > 0
    return True


def leftovers(parent: Path):
    """(visible incomplete entries, hidden temporary entries) in a folder."""
    hidden = [p.name for p in parent.iterdir() if p.name.startswith(".") and ".tmp-" in p.name]
    visible_tmp = [p.name for p in parent.iterdir() if not p.name.startswith(".") and ".tmp" in p.name]
    return visible_tmp, hidden


def _kill_after(args, sig, delay):
    p = _start(args)
    time.sleep(delay)
    alive = p.poll() is None
    if alive:
        os.killpg(p.pid, sig)  # the whole session: the command and any worker processes
    try:
        out, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
    return p.returncode, err.decode(errors="replace"), alive


def test_run_killed_at_random_moments(dataset, run_seconds, tmp_path):
    rnd = random.Random(7)
    fractions = [0.1, 0.35, 0.6, 0.85, 0.97]
    for sig in SIGNALS:
        for k, frac in enumerate(fractions):
            delay = run_seconds * (frac + rnd.uniform(-0.05, 0.05))
            parent = tmp_path / f"{sig.name}-{k}"
            parent.mkdir()
            out = parent / "run"
            code, err, alive = _kill_after(["run", *RUN_ARGS, "--data", str(dataset), "--out", str(out)],
                                           sig, delay)
            complete = assert_complete_or_absent(out)
            visible, hidden = leftovers(parent)
            assert not visible, visible
            if sig == signal.SIGINT:
                assert not hidden, f"SIGINT left temporary folders {hidden}"
                assert "Traceback" not in err, err[-2000:]
                if alive and not complete:  # #14.8: one line and 130
                    assert code == 130 and err.strip() == "interrupted", (code, err[-2000:])
            if alive and not complete:
                assert code != 0
            KILL_POINTS.append(("run", sig.name, round(delay, 2), "complete" if complete else
                                ("absent+tmp" if hidden else "absent"), code))
    print(f"\nrun: one complete run takes {run_seconds:.2f} s; kill points:")
    for kp in KILL_POINTS:
        print("  ", kp)


SWEEP_GRID = ["--grid", "entry=61000,61500,62000,62500"]


def _sweep_args(dataset, out, jobs=1):
    return ["sweep", *RUN_ARGS, "--data", str(dataset), "--out", str(out), *SWEEP_GRID,
            "--jobs", str(jobs), "--json"]


def _check_sweep_folder(out: Path):
    runs = out / "runs"
    done = 0
    if runs.is_dir():
        for d in runs.iterdir():
            if d.name.startswith("."):
                continue
            assert assert_complete_or_absent(d)
            done += 1
        visible, hidden = leftovers(runs)
        assert not visible
    else:
        hidden = []
    if (out / "results.parquet").exists():
        import polars as pl

        pl.read_parquet(out / "results.parquet")
    return done, hidden


def test_sweep_interrupted_then_resumed(dataset, run_seconds, tmp_path):
    import json

    # one complete sweep, to place the kill points inside it; timed the second time, when its batch
    # loop is in the cache as in the runs below (a first, compiling sweep once put 0.5 past the end)
    for attempt in ("cold", "warm"):
        t0 = time.perf_counter()
        p = subprocess.run([*BACKTEST, *_sweep_args(dataset, tmp_path / attempt, 1)], capture_output=True,
                           text=True, env=_env(), timeout=900)
        assert p.returncode == 0, p.stderr[-3000:]
        total = time.perf_counter() - t0
    cases = [(signal.SIGINT, 0.5, 1), (signal.SIGINT, 0.7, 2), (signal.SIGTERM, 0.6, 1),
             (signal.SIGKILL, 0.45, 1), (signal.SIGKILL, 0.8, 1)]
    for i, (sig, frac, jobs) in enumerate(cases):
        out = tmp_path / f"sw{i}"
        delay = total * frac
        code, err, alive = _kill_after(_sweep_args(dataset, out, jobs), sig, delay)
        done, hidden = _check_sweep_folder(out)
        if sig == signal.SIGINT and alive and code == 0:
            # on a loaded machine the signal can land once the last run and the table are written:
            # nothing was left to interrupt, and the resume below must find every run done
            assert "Traceback" not in err, err[-2000:]
            assert done == 4, (done, err[-2000:])
        elif sig == signal.SIGINT and alive:
            # 130 + 'interrupted: N finished run(s) kept', always (#14.8; -2 with no message was
            # observed before the command ran under backtest/supervisor.py)
            assert code == 130, (code, err[-2000:])
            assert "Traceback" not in err, err[-2000:]
            assert "interrupted:" in err, err[-2000:]
            assert not hidden, hidden
        # resume: the finished runs are skipped, the rest run
        p = subprocess.run([*BACKTEST, *_sweep_args(dataset, out, 1)], capture_output=True, text=True,
                           env=_env(), timeout=900)
        assert p.returncode == 0, p.stderr[-3000:]
        summary = json.loads(p.stdout)
        assert summary["skipped"] == done, (summary, done)
        assert summary["ran"] == 4 - done and summary["failed"] == 0
        done_after, _ = _check_sweep_folder(out)
        assert done_after == 4
        KILL_POINTS.append(("sweep", sig.name, round(delay, 2), f"{done}/4 kept, jobs={jobs}",
                            code, f"hidden tmp: {len(hidden)}"))
    print(f"\nsweep kill points (a complete sweep takes {total:.2f} s):")
    for kp in KILL_POINTS:
        if kp[0] == "sweep":
            print("  ", kp)
