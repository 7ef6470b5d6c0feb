"""Sweeps: grid parsing, seeded random search, ranking, skip-on-rerun, heatmap (drawn by the CLI
through the report layer, never by the library), Ray."""
from __future__ import annotations

import json
import sys
import time

import polars as pl
import pytest
from click.testing import CliRunner

from backtest.cli import cli
from backtest.errors import ConfigError
from backtest.sweep import (grid_points, metric_value, parse_grid_arg, parse_values, random_points, run_sweep,
                            score)
from test_cli_run import build_dataset, sh

GRID = ["--grid", "entry=61000,62000", "--grid", "stop=59000:60000:1000"]


@pytest.fixture(scope="session")
def ds(tmp_path_factory):
    return build_dataset(tmp_path_factory.mktemp("ds") / "btc")


def sweep(*args):
    return CliRunner().invoke(cli, ["sweep", *map(str, args)])


def test_grid_parsing():
    assert parse_grid_arg("a=1,2") == ("a", [1, 2])
    assert parse_grid_arg("b=1:3:1") == ("b", [1, 2, 3])  # inclusive
    assert parse_grid_arg("b=1:3") == ("b", [1, 2, 3])
    assert parse_grid_arg("c=0.1:0.3:0.1") == ("c", [0.1, 0.2, 0.3])
    assert parse_grid_arg("stop=59000:61000:500")[1] == [59000, 59500, 60000, 60500, 61000]
    assert parse_grid_arg("mix=1,2.5")[1] == [1.0, 2.5]  # one column type
    assert parse_grid_arg("s=BTCUSDT,ETHUSDT")[1] == ["BTCUSDT", "ETHUSDT"]
    assert parse_values([61000, 62000, 61000], "x") == [61000, 62000]  # duplicates dropped
    for bad in ("novalues", "b=3:1:1", "b=1:3:0", "=1,2"):
        with pytest.raises(ConfigError):
            parse_grid_arg(bad)


def test_grid_and_random_points():
    grid = {"a": [1, 2, 3], "b": [10, 20]}
    pts = grid_points(grid)
    assert len(pts) == 6 and pts[0] == {"a": 1, "b": 10} and pts[1] == {"a": 1, "b": 20}
    big = {"a": list(range(50)), "b": list(range(40))}
    r1, r2 = random_points(big, 20, seed=7), random_points(big, 20, seed=7)
    assert r1 == r2 and len({tuple(p.values()) for p in r1}) == 20  # deterministic and distinct
    assert random_points(big, 20, seed=8) != r1
    assert random_points(grid, 100, seed=1) == pts  # asking for more than the grid gives all


def test_metric_lookup_and_orientation():
    manifest = {"headline": {"return": 0.1, "max_drawdown_pct": 0.2, "trades": 3}}
    assert metric_value(manifest, "return") == 0.1 and metric_value(manifest, "sharpe") is None
    manifest["metrics"] = {"total_return": 0.12, "sharpe": 1.5, "max_drawdown": -0.25}
    assert metric_value(manifest, "return") == 0.12 and metric_value(manifest, "sharpe") == 1.5
    assert score("return", 0.1) > score("return", -0.1)
    assert score("max_drawdown", -0.1) > score("max_drawdown", -0.3)  # metrics: negative fractions
    assert score("max_drawdown_pct", 0.1) > score("max_drawdown_pct", 0.3)  # headline: positive
    assert score("fees", 10.0) > score("fees", 20.0) and score("sharpe", None) is None


def test_sweep_ranks_skips_on_rerun_and_draws_heatmap(ds, tmp_path):
    out = tmp_path / "sw"
    r = sweep("reference", "--data", ds, "--out", out, *GRID, "--jobs", "1", "--leverage", "BTCUSDT=3")
    assert r.exit_code == 0, r.output
    assert "4 run(s): 4 ran, 0 skipped, 0 failed" in r.output
    df = pl.read_parquet(out / "results.parquet")
    assert df.height == 4 and df["rank"].to_list() == [1, 2, 3, 4]
    scores = df["score"].to_list()
    assert all(a >= b for a, b in zip(scores, scores[1:]))  # best first
    assert set(df["param.entry"]) == {61000, 62000} and set(df["param.stop"]) == {59000, 60000}
    assert (out / "heatmap.png").stat().st_size > 1000
    for row in df.iter_rows(named=True):  # every row is a full saved run with its parameters
        manifest = json.loads((out / "runs" / row["config_id"] / "manifest.json").read_text())
        assert manifest["strategy"]["params"]["entry"] == row["param.entry"]
        assert manifest["config"]["leverage"] == {"BTCUSDT": 3}
    again = sweep("reference", "--data", ds, "--out", out, *GRID, "--jobs", "1", "--leverage", "BTCUSDT=3",
                  "--json")
    doc = json.loads(again.output)
    assert (doc["ran"], doc["skipped"]) == (0, 4) and doc["best"]["config_id"] == df["config_id"][0]
    # the library returns data only; the report layer draws the CLI's heatmap from it
    (out / "heatmap.png").unlink()
    res = run_sweep("reference", ds, {"entry": [61000, 62000], "stop": [59000, 60000]}, out=out, jobs=1,
                    config={"leverage": {"BTCUSDT": 3}})
    assert (res.skipped, res.swept) == (4, ("entry", "stop")) and not (out / "heatmap.png").exists()
    assert res.heatmap_axes == ("param.entry", "param.stop", "return_pct")
    from backtest.report.sweep_figures import write_sweep_heatmap

    assert write_sweep_heatmap(res) == out / "heatmap.png" and (out / "heatmap.png").stat().st_size > 1000
    # a different config is a different run id: nothing skipped
    third = sweep("reference", "--data", ds, "--out", out, "--grid", "entry=61000", "--jobs", "1", "--json")
    assert json.loads(third.output)["ran"] == 1


def test_sweep_random_and_metric(ds, tmp_path):
    r = sweep("reference", "--data", ds, "--out", tmp_path / "rnd", "--grid", "entry=60000:63000:500",
              "--random", "2", "--seed", "4", "--metric", "max_drawdown", "--jobs", "1", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["runs"] == 2 and doc["heatmap"] is None  # one swept parameter: no heatmap
    picked = sorted(row["param.entry"] for row in doc["top"])
    assert picked == sorted(p["entry"] for p in random_points({"entry": parse_values("60000:63000:500", "e")},
                                                              2, seed=4))
    dd = [row["max_drawdown_pct"] for row in doc["top"]]
    assert dd == sorted(dd, key=abs)  # drawdown (a negative percent, as the CLI prints it): smaller is better
    # percent, as `backtest run` prints it (#14.21): the table says so in its column names
    from backtest.result import Result

    runs = {Result.load(row["run_dir"]).headline["max_drawdown"] * 100 for row in doc["top"]}
    assert set(dd) == runs and "return_pct" in doc["top"][0] and "return" not in doc["top"][0]


def test_sweep_usage_errors(ds, tmp_path):
    r = sweep("reference", "--data", ds, "--out", tmp_path / "e", "--grid", "entri=1,2", "--jobs", "1")
    assert r.exit_code == 2 and "did you mean entry" in r.output
    r = sweep("reference", "--data", ds, "--out", tmp_path / "e", "--grid", "entry=1:0", "--jobs", "1")
    assert r.exit_code == 2
    r = sweep("reference", "--data", ds, "--out", tmp_path / "e", "--jobs", "1")
    assert r.exit_code == 2 and "nothing to sweep" in r.output
    r = sweep("reference", "--data", ds, "--out", tmp_path / "e", "--grid", "entry=61000", "--metric", "retrun",
              "--jobs", "1")
    assert r.exit_code == 2 and "did you mean return" in r.output


def test_ray_missing_is_one_line(ds, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'cascade-backtest\[ray\]'"):
        run_sweep("reference", ds, {"entry": [61000, 62000]}, out=tmp_path / "r", engine="ray")


@pytest.mark.slow
def test_subprocess_sweep_process_pool(ds, tmp_path):
    r = sh("sweep", "reference", "--data", ds, "--out", tmp_path / "sw", *GRID, "--jobs", "2", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["ran"], doc["failed"], doc["runs"]) == (4, 0, 4) and doc["heatmap"]
