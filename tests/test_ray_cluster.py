"""Sweeps on Ray: a local Ray instance, and a two-node cluster whose nodes read the data from a real
S3 server and send their runs back to the driver (backtest/cluster.py, docs/cluster.md).

The cluster is started as users start one (`ray start --head`, then `ray start --address` for a
second node) in a private temp dir, and only its own processes are stopped afterwards. All Ray
tests live in this one file: pytest-xdist (--dist loadfile) then runs them one after the other.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import pytest

from backtest.cluster import RUN_FILES, land
from backtest.result import Result
from backtest.sweep import run_sweep
from backtest.sweep_dispatch import Task, run_task
from test_cli_run import build_dataset
from test_s3 import _free_port, s3, s3_server, upload  # noqa: F401  (fixtures)

ray = pytest.importorskip("ray", reason="ray not installed (pip install 'cascade-backtest[ray]')")
REPO = Path(__file__).resolve().parents[1]
GRID = {"entry": [61000, 62000], "stop": [59000, 60000]}


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return build_dataset(tmp_path_factory.mktemp("ds") / "btc")


@pytest.fixture
def strategy_file(tmp_path) -> Path:
    """A user's strategy file (the reference strategy under another name) in its own folder."""
    folder = tmp_path / "mine"
    folder.mkdir()
    f = folder / "my_reference.py"
    f.write_text((REPO / "strategies" / "reference.py").read_text().replace("class Reference", "class MyReference"))
    return f


def _same_run(a: Path, b: Path) -> None:
    ra, rb = Result.load(a), Result.load(b)
    assert sorted(ra.tables) == sorted(rb.tables)
    for name in ra.tables:
        assert ra.tables[name].equals(rb.tables[name]), name
    ma, mb = ra.manifest_copy(), rb.manifest_copy()
    for m in (ma, mb):
        m.pop("timings")
        m["data"].pop("path")
    assert ma == mb


NODE = r"""
import pickle, sys
from backtest.cluster import run_on_node
from backtest.sweep_dispatch import run_task
task = pickle.load(open(sys.argv[1], "rb"))
pickle.dump(run_on_node(run_task, task), open(sys.argv[2], "wb"))
"""


@pytest.mark.slow  # a child process loads the strategy (compiled once per test session)
def test_a_node_runs_without_the_drivers_files(ds, strategy_file, tmp_path):
    """A node that has neither the strategy file's path nor the run folder (the folder Ray ships
    with the job is its working directory) produces the run the driver would have."""
    spec = f"{strategy_file}:MyReference"
    task = Task(spec, str(ds), {"entry": 61500.0}, {}, str(tmp_path / "driver" / "runs" / "x"), "x")
    expected = run_task(Task(**{**task.__dict__, "run_dir": str(tmp_path / "local")}))
    assert expected["status"] == "ran"

    node = tmp_path / "node"
    shutil.copytree(strategy_file.parent, node)  # what Ray's working_dir ships
    moved = strategy_file.parent.rename(tmp_path / "elsewhere")  # the node cannot see the driver's file
    (tmp_path / "task.pkl").write_bytes(pickle.dumps(task))
    p = subprocess.run([sys.executable, "-c", NODE, str(tmp_path / "task.pkl"), str(tmp_path / "row.pkl")],
                       cwd=node, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    row = pickle.loads((tmp_path / "row.pkl").read_bytes())
    assert row["status"] == "ran" and "manifest.json" in row[RUN_FILES]
    assert not (tmp_path / "driver").exists()  # nothing written on the driver's side by the node
    moved.rename(strategy_file.parent)
    landed = land(task, row)
    assert RUN_FILES not in landed and landed["metrics"] == expected["metrics"]
    _same_run(Path(task.run_dir), tmp_path / "local")  # same class name, run id and tables


@pytest.mark.slow  # starts a local Ray instance (~10 s)
def test_ray_engine(ds, tmp_path):
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        res = run_sweep("reference", ds, {"entry": [61000, 62000]}, out=tmp_path / "ray", engine="ray")
    finally:
        ray.shutdown()
    assert (res.ran, res.failed) == (2, 0)
    assert all((tmp_path / "ray" / "runs" / cid / "manifest.json").is_file() for cid in res.table["config_id"])
    print(f"ray test: {time.perf_counter() - t0:.1f} s")


class Cluster:
    """`ray start --head` plus one `ray start --address` node, each with its own S3 read cache."""

    def __init__(self, env: dict):
        self.tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.caches = [self.tmp / "cache-head", self.tmp / "cache-node"]
        common = ["--num-cpus=1", "--disable-usage-stats"]
        self._start(env, self.caches[0], ["--head", f"--port={self.port}", f"--temp-dir={self.tmp}",
                                          "--include-dashboard=false", *common])
        self._start(env, self.caches[1], [f"--address={self.address}", *common])

    def _start(self, env, cache, args):
        p = subprocess.run([str(Path(sys.executable).with_name("ray")), "start", *args],
                           env={**env, "CASCADE_S3_CACHE": str(cache)}, capture_output=True, text=True)
        if p.returncode:
            self.stop()
            raise RuntimeError(p.stdout[-2000:] + p.stderr[-2000:])

    def stop(self):
        """Stop this cluster's processes only (`ray stop` would stop every Ray on the machine)."""
        import psutil

        mine = []
        for proc in psutil.process_iter(["cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if str(self.tmp) in cmd or f":{self.port}" in cmd:
                mine.append(proc)
        for proc in mine:
            proc.kill()
        psutil.wait_procs(mine, timeout=10)
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.mark.slow  # two Ray nodes and an S3 server (~60 s)
def test_cluster_sweep_reads_the_bucket_and_sends_runs_home(ds, strategy_file, s3, tmp_path):
    uri = upload(ds, s3, prefix="btc")
    spec = f"{strategy_file}:MyReference"
    local = run_sweep(spec, str(ds), GRID, out=tmp_path / "local", jobs=1)
    # Ray clusters authenticate their nodes and drivers with a shared token
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {
        "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(16).hex()}
    cluster = Cluster(env)
    try:
        grid = [a for k, v in GRID.items() for a in ("--grid", f"{k}={','.join(map(str, v))}")]
        p = subprocess.run([sys.executable, "-m", "backtest", "sweep", spec, "--data", uri, "--out",
                            str(tmp_path / "cluster"), *grid, "--address", cluster.address, "--json"],
                           env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
        doc = json.loads(p.stdout)
        assert (doc["ran"], doc["failed"]) == (4, 0)
        # the nodes read the dataset from the bucket into their own caches
        assert any(any(c.rglob("*.parquet")) for c in cluster.caches if c.exists())
    finally:
        cluster.stop()
    a = pl.read_parquet(local.out / "results.parquet").sort("config_id")
    b = pl.read_parquet(tmp_path / "cluster" / "results.parquet").sort("config_id")
    assert a["config_id"].to_list() == b["config_id"].to_list()  # same ids: same runs
    cols = [c for c in a.columns if c.startswith(("param.", "return", "final_equity", "trades", "fees"))]
    assert a.select(cols).equals(b.select(cols))
    for cid in a["config_id"]:
        _same_run(local.out / "runs" / cid, tmp_path / "cluster" / "runs" / cid)
