"""Draw a sweep's heatmap in a low-priority side process that imported matplotlib meanwhile.

Importing matplotlib takes ~0.4 s of one core, and a sweep's pass keeps both cores busy only part
of the time (its Results phase is mostly one thread). So `backtest sweep` starts this module as a
child before the pass, at the lowest CPU priority: the child imports polars and the report layer
in the cores' idle moments, then waits. When the sweep has written results.parquet, the parent
sends one JSON line (the table, the PNG path and the axes); the child draws the heatmap from the
saved table (as `write_sweep_heatmap` would) and exits. The parent waits for it: the command ends
with the file written, atomically, or with the child's one-line error.

The child ends without drawing when its stdin closes (a sweep with no heatmap, an interrupted or
dead parent: its end of the pipe closes with it). If the child cannot start or fails, the parent
draws in its own process instead (`draw`), so the figure never depends on the side process.
This module is imported by the CLI before any run: it must not import matplotlib at module level.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEATMAP = "heatmap.png"  # in a sweep folder


class SideHeatmap:
    """The parent's handle: `start()` before the sweep, then `draw(result)` or `close()`."""

    def __init__(self):
        self._proc: subprocess.Popen | None = None

    def start(self) -> SideHeatmap:
        root = str(Path(__file__).resolve().parents[2])  # this checkout's backtest package
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        try:
            self._proc = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        except OSError:
            self._proc = None  # draw() falls back to this process
        return self

    def draw(self, sweep) -> Path | None:
        """SWEEP_DIR/heatmap.png of a finished `SweepResult` (None without heatmap axes), drawn
        by the side process; in this process when that is not running or fails."""
        axes = sweep.heatmap_axes
        if axes is None:
            self.close()
            return None
        png = Path(sweep.out) / HEATMAP
        job = {"table": str(sweep.table_path), "png": str(png), "axes": list(axes)}
        if self._send(json.dumps(job) + "\n"):
            return png
        from .sweep_figures import write_sweep_heatmap

        return write_sweep_heatmap(sweep)

    def close(self) -> None:
        """No figure: the side process ends without drawing."""
        self._send("")

    def _send(self, line: str) -> bool:
        """Hand the child `line` (empty: nothing), wait for it; did it draw?"""
        p, self._proc = self._proc, None
        if p is None:
            return False
        try:
            p.communicate(line.encode(), timeout=300)
        except (OSError, subprocess.SubprocessError):
            p.kill()
            p.wait()
            return False
        return bool(line) and p.returncode == 0


def _serve() -> int:
    if hasattr(os, "nice"):
        os.nice(19)  # only the cores' idle time: the sweep's own threads come first
    import polars as pl

    from .sweep_figures import fig_sweep_heatmap, save_png

    line = sys.stdin.readline()
    if not line.strip():
        return 0  # nothing to draw
    job = json.loads(line)
    table = pl.read_parquet(job["table"])
    save_png(fig_sweep_heatmap(table.filter(table["status"] != "failed"), *job["axes"]), Path(job["png"]))
    return 0


if __name__ == "__main__":
    code = _serve()
    # the figure is written and closed and nothing else is buffered: skip the interpreter's
    # teardown of matplotlib (0.15 s the parent would wait for)
    os._exit(code)
