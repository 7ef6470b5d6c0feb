"""The figures' side process (backtest/report/side_draw.py): the same PNG as drawing in this
process (a sweep's heatmap, a walk-forward's curve), a fallback when it is not ready or fails, and
no figure (and no process left) when told to stop."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl

from backtest.atomic import write_parquet
from backtest.report import side_draw, sweep_figures
from backtest.report.side_draw import SideFigure
from backtest.report.sweep_figures import HEATMAP, WALK_FORWARD_PNG, write_sweep_heatmap, write_walk_forward_figure
from backtest.sweep import SweepResult
from backtest.walkforward import WalkForwardResult


def _result(out, swept=("entry", "stop")) -> SweepResult:
    """A finished 3x2 sweep with one failed run, its table saved as `backtest sweep` saves it."""
    rows = [{"param.entry": e, "param.stop": s, "return_pct": (e - 61000) / 100 - (s - 59000) / 300,
             "status": "failed" if (e, s) == (63000, 60000) else "ran"}
            for e in (61000, 62000, 63000) for s in (59000, 60000)]
    table = pl.DataFrame(rows)
    out.mkdir(parents=True)
    res = SweepResult(table, out, "return", ran=5, skipped=0, failed=1, swept=swept)
    write_parquet(table.to_arrow(), res.table_path)
    return res


def test_side_process_draws_the_same_png_as_this_process(tmp_path):
    side, here = _result(tmp_path / "side"), _result(tmp_path / "here")
    handle = SideFigure().start()
    assert handle.wait_ready(120)  # it really runs in another process
    assert handle.heatmap(side) == side.out / HEATMAP
    assert handle._proc is None  # waited for: the file is complete when draw returns
    assert write_sweep_heatmap(here) == here.out / HEATMAP
    png = (side.out / HEATMAP).read_bytes()
    assert len(png) > 1000 and png == (here.out / HEATMAP).read_bytes()
    assert sorted(p.name for p in side.out.iterdir()) == [HEATMAP, "results.parquet"]  # no temp file


def _walk_forward(out) -> WalkForwardResult:
    """A finished two-window walk-forward, its tables saved as `backtest walk-forward` saves them."""
    day = 86_400 * 10**9
    equity = pl.DataFrame({"ts_ns": [k * day // 4 for k in range(8)],
                           "equity": [10_000.0, 10_050.0, 9_900.0, 9_950.0, 10_200.0, 10_100.0, 10_300.0, 10_250.0],
                           "window": [0] * 4 + [1] * 4})
    windows = pl.DataFrame({"window": [0, 1], "oos_start_ns": [0, day], "oos_end_ns": [day, 2 * day]})
    out.mkdir(parents=True)
    wf = WalkForwardResult(windows, equity, out)
    write_parquet(windows.to_arrow(), wf.windows_path)
    write_parquet(equity.to_arrow(), wf.equity_path)
    return wf


def test_side_process_draws_the_walk_forward_curve_as_this_process(tmp_path):
    side, here = _walk_forward(tmp_path / "side"), _walk_forward(tmp_path / "here")
    handle = SideFigure().start()
    assert handle.wait_ready(120)
    assert handle.walk_forward(side) == side.out / WALK_FORWARD_PNG and handle._proc is None
    assert write_walk_forward_figure(here) == here.out / WALK_FORWARD_PNG
    png = (side.out / WALK_FORWARD_PNG).read_bytes()
    assert len(png) > 1000 and png == (here.out / WALK_FORWARD_PNG).read_bytes()


def test_relative_folders_and_a_stray_backtest_package_where_the_command_runs(tmp_path, monkeypatch):
    """The child resolves nothing against its own folder and imports this process's package."""
    (tmp_path / "backtest").mkdir()
    (tmp_path / "backtest" / "__init__.py").write_text("raise ImportError('the wrong backtest')\n")
    monkeypatch.chdir(tmp_path)
    res = _result(tmp_path / "sw")
    res = SweepResult(res.table, Path("sw"), "return", 5, 0, 1, ("entry", "stop"))  # relative, as --out sw

    def no_fallback(_):
        raise AssertionError("drawn in this process")

    monkeypatch.setattr(sweep_figures, "write_sweep_heatmap", no_fallback)
    handle = SideFigure().start()
    assert handle.wait_ready(120)
    assert handle.heatmap(res) == Path("sw") / HEATMAP and (tmp_path / "sw" / HEATMAP).stat().st_size > 1000


def test_the_sweep_process_never_imports_matplotlib(tmp_path):
    """The point of the side process: the 0.4 s import happens there, not in the sweep."""
    res = _result(tmp_path / "sw")
    code = ("import sys, polars as pl; from backtest.report.side_draw import SideFigure; "
            "from backtest.sweep import SweepResult; h = SideFigure().start(); assert h.wait_ready(120); "
            f"r = SweepResult(pl.read_parquet({str(res.table_path)!r}), {str(res.out)!r}, 'return', 5, 0, 1, "
            "('entry', 'stop')); "
            "print(h.heatmap(r), 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [str(res.out / HEATMAP), "False"]
    assert (res.out / HEATMAP).stat().st_size > 1000


def test_a_failed_side_process_falls_back_to_this_one(tmp_path):
    res, ref = _result(tmp_path / "a"), _result(tmp_path / "b")
    res.table_path.write_bytes(b"not parquet")  # the child cannot read it; the table in memory is fine
    handle = SideFigure().start()
    assert handle.wait_ready(120)
    assert handle.heatmap(res) == res.out / HEATMAP
    write_sweep_heatmap(ref)
    assert (res.out / HEATMAP).read_bytes() == (ref.out / HEATMAP).read_bytes()
    assert not [p for p in res.out.iterdir() if p.name.startswith(".")]  # the child's temp file is gone


def test_a_child_not_ready_is_not_waited_for(tmp_path, monkeypatch):
    """A host too busy for the lowest priority: the sweep draws the heatmap itself at once."""
    monkeypatch.setattr(side_draw, "READY_WAIT_S", 0.0)
    res, ref = _result(tmp_path / "a"), _result(tmp_path / "b")
    handle = SideFigure().start()
    proc = handle._proc
    assert handle.heatmap(res) == res.out / HEATMAP  # the child is still importing: killed, drawn here
    assert proc.returncode is not None and handle._proc is None
    write_sweep_heatmap(ref)
    assert (res.out / HEATMAP).read_bytes() == (ref.out / HEATMAP).read_bytes()


def test_a_child_too_slow_is_killed_and_its_temporary_file_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(side_draw, "DRAW_WAIT_S", 0.0)  # the draw takes longer than no time at all
    res, ref = _result(tmp_path / "a"), _result(tmp_path / "b")
    handle = SideFigure().start()
    assert handle.wait_ready(120)
    proc = handle._proc
    assert handle.heatmap(res) == res.out / HEATMAP
    assert proc.returncode is not None and proc.returncode != 0  # killed
    write_sweep_heatmap(ref)
    assert (res.out / HEATMAP).read_bytes() == (ref.out / HEATMAP).read_bytes()
    assert sorted(p.name for p in res.out.iterdir()) == [HEATMAP, "results.parquet"]


def test_no_heatmap_no_figure(tmp_path):
    res = _result(tmp_path / "one", swept=("entry",))  # one swept parameter: no heatmap
    handle = SideFigure().start()
    assert handle.wait_ready(120)
    proc = handle._proc
    assert handle.heatmap(res) is None and proc.returncode == 0  # it ended without drawing
    assert not (res.out / HEATMAP).exists()
    handle.close()  # again: nothing to do
    never = SideFigure()  # never started (a sweep without two swept parameters)
    assert never.heatmap(_result(tmp_path / "two")) == tmp_path / "two" / HEATMAP  # drawn here
    never.close()
