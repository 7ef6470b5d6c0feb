"""Walk-forward: window arithmetic, stitched out-of-sample curve continuity, the command."""
from __future__ import annotations

import dataclasses
import json

import polars as pl
import pytest
from click.testing import CliRunner

from backtest.cli import cli
from backtest.errors import ConfigError
from backtest.walkforward import data_time_range, make_windows, stitch
from test_cli_run import DAY, T0, build_dataset, sh

H = 3_600 * 10**9
WF = ["--grid", "entry=61000,62000", "--train", "1d", "--test", "12h", "--jobs", "1"]


@pytest.fixture(scope="session")
def ds(tmp_path_factory):
    return build_dataset(tmp_path_factory.mktemp("ds") / "btc")


def test_windows():
    w = make_windows(0, 48 * H, 24 * H, 12 * H, 12 * H)
    assert w == [(0, 24 * H, 36 * H), (12 * H, 36 * H, 48 * H)]
    assert make_windows(0, 50 * H, 24 * H, 12 * H, 24 * H) == [(0, 24 * H, 36 * H), (24 * H, 48 * H, 50 * H)]
    with pytest.raises(ConfigError, match="overlap"):
        make_windows(0, 48 * H, 24 * H, 12 * H, 6 * H)
    with pytest.raises(ConfigError, match="spans"):
        make_windows(0, 20 * H, 24 * H, 12 * H, 12 * H)


def test_stitch_continues_from_previous_end():
    w0 = pl.DataFrame({"ts_ns": [2, 3], "equity": [110.0, 120.0]})
    w1 = pl.DataFrame({"ts_ns": [5, 6], "equity": [90.0, 150.0]})
    eq = stitch([(0, w0, 1), (1, w1, 4)], initial=100.0)
    assert eq["ts_ns"].to_list() == [1, 2, 3, 4, 5, 6]
    assert eq["equity"].to_list() == pytest.approx([100, 110, 120, 120, 108, 180])  # compounding


def test_data_time_range(ds):
    assert data_time_range(ds) == (T0, T0 + 2 * DAY - 10**9 + 1)


def test_walk_forward_command(ds, tmp_path):
    out = tmp_path / "wf"
    r = CliRunner().invoke(cli, ["walk-forward", "reference", "--data", str(ds), "--out", str(out), *WF])
    assert r.exit_code == 0, r.output
    assert "2 window(s)" in r.output
    win = pl.read_parquet(out / "windows.parquet")
    assert win["window"].to_list() == [0, 1]
    assert win["oos_start_ns"].to_list() == [T0 + 24 * H, T0 + 36 * H]
    assert win["is_end_ns"].to_list() == win["oos_start_ns"].to_list()
    assert set(win["param.entry"]) <= {61000, 62000} and "is_return_pct" in win.columns and "oos_return_pct" in win.columns
    for row in win.iter_rows(named=True):  # the chosen params are the in-sample winner's
        assert json.loads(row["params"])["entry"] == row["param.entry"]
    eq = pl.read_parquet(out / "oos_equity.parquet")
    assert eq["equity"][0] == 100_000.0
    ends = eq.group_by("window", maintain_order=True).agg(pl.col("equity").first().alias("first"),
                                                          pl.col("equity").last().alias("last"))
    assert ends["first"][1] == pytest.approx(ends["last"][0])  # window 1 starts where window 0 ended
    assert eq["ts_ns"].is_sorted()
    final = win["oos_final_equity"].to_list()
    assert eq["equity"][-1] == pytest.approx(final[0] * final[1] / 100_000.0)
    assert (out / "oos_equity.png").stat().st_size > 1000  # drawn by the CLI (report layer)
    # a rerun reuses every in-sample and out-of-sample run
    again = CliRunner().invoke(cli, ["walk-forward", "reference", "--data", str(ds), "--out", str(out), *WF,
                                     "--json"])
    assert json.loads(again.output)["windows"] == json.loads(json.dumps(win.to_dicts()))
    # the library returns the tables only: no figure field, no PNG written
    from backtest.walkforward import WalkForwardResult, run_walk_forward

    assert [f.name for f in dataclasses.fields(WalkForwardResult)] == ["windows", "equity", "out"]
    (out / "oos_equity.png").unlink()
    res = run_walk_forward("reference", ds, {"entry": [61000, 62000]}, out=out, train="1d", test="12h", jobs=1)
    assert res.windows.equals(win) and not (out / "oos_equity.png").exists()


def test_walk_forward_needs_windows(ds, tmp_path):
    r = CliRunner().invoke(cli, ["walk-forward", "reference", "--data", str(ds), "--out", str(tmp_path / "x"),
                                 "--grid", "entry=61000", "--train", "3d", "--test", "1d"])
    assert r.exit_code == 2 and "spans" in r.output
    r = CliRunner().invoke(cli, ["walk-forward", "reference", "--data", str(ds), "--out", str(tmp_path / "x"),
                                 "--grid", "entry=61000"])
    assert r.exit_code == 2 and "--train" in r.output


@pytest.mark.slow
def test_subprocess_walk_forward(ds, tmp_path):
    r = sh("walk-forward", "reference", "--data", ds, "--out", tmp_path / "wf", *WF, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["windows"]) == 2 and doc["oos_final_equity"] > 0
