"""The result helper (backtest/batch_helper.py): a batch whose Results a second process builds in
part writes the same run folders, byte for byte, as one that builds them all itself; a helper that
fails, ends, stalls or is killed costs time, never a run; and it never leaves a temporary folder."""
from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest

from backtest import batch_helper
from backtest.batch import iter_batch
from backtest.batch_helper import ResultHelper
from backtest.errors import CascadeError
from backtest.result_build import build_result
from engine_fixtures import make_market_dataset

N_SETS = 8
CFG = dict(initial_balance=100_000.0, sample_interval="1ms", leverage={"S0": 5.0})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("helper") / "ds"
    make_market_dataset(root, 20_000, nsym=2, seed=3, period=4_000)
    return root


def grid() -> list[dict]:
    rng = np.random.default_rng(11)
    return [{"sym": "S0", "entry": float(np.round(rng.uniform(60_500, 63_500), 1)),
             "stop": 59_000.0 + k * 100, "size": float(rng.choice([0.5, 1.0]))} for k in range(N_SETS)]


def run(dataset, out: Path) -> dict:
    """{k: manifest or CascadeError} of the batch, its folders under `out`."""
    outs = [out / f"r{k}" for k in range(N_SETS)]
    return dict(iter_batch("reference", dataset, grid(), config=CFG, outs=outs, manifests=True))


def folder(path: Path) -> dict:
    """A run folder's files as bytes, the manifest without its timings (they are measured)."""
    files = {p.name: p.read_bytes() for p in sorted(path.iterdir())}
    m = json.loads(files.pop("manifest.json"))
    m.pop("timings")
    return {**files, "manifest": m}


def assert_same_folders(a: Path, b: Path) -> None:
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    for run_dir in sorted(a.iterdir()):
        assert folder(run_dir) == folder(b / run_dir.name), run_dir.name
    assert not list(b.glob(".*")), "a temporary folder was left"


@pytest.fixture(scope="module")
def alone(dataset, tmp_path_factory):
    """The batch with every Result built in this process."""
    out = tmp_path_factory.mktemp("alone")
    got = run(dataset, out)
    assert all(isinstance(m, dict) for m in got.values())
    return out, got


def test_helper_writes_the_same_folders(dataset, alone, tmp_path, monkeypatch):
    sent = []
    send = ResultHelper.send
    monkeypatch.setattr(ResultHelper, "send", lambda self, k, *a: sent.append(k) or send(self, k, *a))
    with batch_helper.started() as helper:
        assert helper.wait_ready(60)
        got = run(dataset, tmp_path)
    assert sent, "the helper built no set"
    assert sent[0] == N_SETS - 1  # taken from the back
    assert_same_folders(alone[0], tmp_path)
    for k, m in got.items():
        assert {**m, "timings": None} == {**alone[1][k], "timings": None}


def test_no_helper_with_one_core_asked_for():
    with batch_helper.started(False) as helper:
        assert helper is None and batch_helper.current() is None


class FakeHelper:
    """A helper in this process that answers as told: "ok" (builds the set), "failed" (an
    unexpected exception), "error" (a CascadeError), "silent" (never answers) or "gone"."""

    def __init__(self, answer: str):
        self.answer, self.stopped, self.replies, self.sent = answer, None, [], []

    def send(self, k, rows, manifest, out):
        if self.answer == "gone":
            return False
        self.sent.append(k)
        if self.answer == "ok":
            res = build_result(rows, dict(manifest))
            res.save(out)
            self.replies.append((k, "ok", res.manifest))
        elif self.answer == "failed":
            self.replies.append((k, "failed", "Traceback ..."))
        elif self.answer == "error":
            self.replies.append((k, "error", f"set {k}: the disk is full"))
        else:  # silent: leaves a temporary folder, as a helper killed mid-save does
            (Path(out).parent / f".{Path(out).name}.tmp-1-abc").mkdir()
        return True

    def reply(self, timeout):
        return self.replies.pop(0) if self.replies else None

    def stop(self, outs=()):
        self.stopped = list(outs)
        for out in map(Path, outs):  # as ResultHelper.stop removes the helper's temporary folders
            for tmp in out.parent.glob(f".{out.name}.tmp-*"):
                tmp.rmdir()


@pytest.mark.parametrize("answer", ["ok", "failed", "silent", "gone"])
def test_a_failing_helper_costs_no_run(dataset, alone, tmp_path, monkeypatch, answer):
    fake = FakeHelper(answer)
    monkeypatch.setattr(batch_helper, "current", lambda: fake)
    monkeypatch.setattr(batch_helper, "REPLY_WAIT_S", 0.01)
    got = run(dataset, tmp_path)
    assert all(isinstance(m, dict) for m in got.values())
    assert_same_folders(alone[0], tmp_path)
    if answer in ("ok", "failed", "silent"):
        assert fake.sent and fake.sent[0] == N_SETS - 1
    if answer == "silent":  # stopped once the parent is done with its own sets
        assert sorted(Path(p).name for p in fake.stopped) == sorted(f"r{k}" for k in fake.sent)


def test_the_helpers_cascade_error_is_the_sets(dataset, tmp_path, monkeypatch):
    fake = FakeHelper("error")
    monkeypatch.setattr(batch_helper, "current", lambda: fake)
    got = run(dataset, tmp_path)
    assert fake.sent
    for k, m in got.items():
        if k in fake.sent:
            assert isinstance(m, CascadeError) and str(m) == f"set {k}: the disk is full"
        else:
            assert isinstance(m, dict) and (tmp_path / f"r{k}" / "manifest.json").is_file()


def test_a_killed_helper_costs_no_run(dataset, alone, tmp_path):
    with batch_helper.started() as helper:
        assert helper.wait_ready(60)
        helper._proc.kill()  # noqa: SLF001 - a helper that died before the batch's end
        helper._proc.wait()  # noqa: SLF001
        got = run(dataset, tmp_path)
    assert all(isinstance(m, dict) for m in got.values())
    assert_same_folders(alone[0], tmp_path)


def test_helper_answers_in_order_of_work_and_ends_with_its_input(dataset, alone, tmp_path):
    """The protocol itself: sets sent, each answered with its manifest, the process gone after close."""
    helper = ResultHelper().start()
    try:
        assert helper.wait_ready(60)
        for k in range(3):
            (tmp_path / f"r{k}").mkdir()  # a folder that exists is replaced, as Result.save does
        got = []
        rows = {name: [] for name in ("fills", "orders", "equity", "bars", "funding", "liquidations", "loans")}
        manifest = json.loads((alone[0] / "r0" / "manifest.json").read_text())
        for k in range(3):
            assert helper.send(k, rows, manifest, tmp_path / f"r{k}")
        while len(got) < 3:
            reply = helper.reply(30)
            assert reply is not None
            got.append(reply)
        assert [(k, status) for k, status, _ in got] == [(0, "ok"), (1, "ok"), (2, "ok")]
        assert got[0][2]["headline"]["trades"] == 0  # built from the (empty) rows it was sent
        assert (tmp_path / "r2" / "fills.parquet").is_file()
        proc = helper._proc  # noqa: SLF001
    finally:
        helper.close()
    assert proc.poll() is not None


def test_the_helpers_imports_load_no_numba():
    """What the helper process imports (batch_helper._serve) leaves numba unloaded: its start-up
    is polars' alone (tests/test_layers.py checks the modules' own imports)."""
    import subprocess
    import sys

    code = ("import sys; import backtest.batch_helper, backtest.errors, backtest.result_build, "
            "backtest.metrics, backtest.trades; print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_helper_still_importing_is_not_waited_for():
    helper = ResultHelper().start()
    proc = helper._proc  # noqa: SLF001
    helper.close()  # at once: the helper has not had time to import polars
    assert proc.poll() == -signal.SIGKILL  # killed, not waited for
