"""Draw a sweep's heatmap or a walk-forward's curve in a low-priority side process that imported
matplotlib meanwhile.

Importing matplotlib takes ~0.4 s of one core, and a sweep keeps both cores busy only part of the
time (its Results phase is mostly one thread). So `backtest sweep` and `backtest walk-forward`
start this module as a child before they run, at the lowest CPU priority: the child imports polars
and the report layer in the cores' idle moments, says "ready" and waits. When the command has
written its tables, it sends one JSON line (the figure, its tables' files and the PNG path); the
child draws the figure from the saved tables (as `write_sweep_heatmap` and
`write_walk_forward_figure` would, atomically) and exits; the parent waits for it, so the command
ends with the file complete.

The parent never waits long for the child: a child not ready within READY_WAIT_S of the end (a
host so busy that the lowest priority got no time) or not done within DRAW_WAIT_S is killed, its
temporary file removed, and the parent draws the figure itself; so it does when the child cannot
start or fails. A low priority cannot be raised again without privileges, so on such a host the
parent's own draw is the faster one. The child ends without drawing when its stdin closes (no
figure to draw; an interrupted or dead parent, whose end of the pipe closes with it). This
module is imported by the CLI before any run: no matplotlib at module level.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from ..child import start_child
from .files import HEATMAP, WALK_FORWARD_PNG

READY = b"ready\n"
READY_WAIT_S = 1.0  # the child's imports take ~0.6 s of an idle core
DRAW_WAIT_S = 5.0  # a heatmap takes ~0.4 s; beyond this the host starves the child: draw here


class SideFigure:
    """The parent's handle: `start()` before the run, then `heatmap(sweep)`,
    `walk_forward(wf)` or `close()`."""

    def __init__(self):
        self._proc: subprocess.Popen | None = None
        self._answered = threading.Event()  # the child said "ready", or ended without it
        self._ended = threading.Event()  # the child's output closed: it has ended
        self._ready = False

    def start(self) -> SideFigure:
        self._proc = start_child(__name__)
        if self._proc is None:
            return self  # the figure is drawn in this process
        threading.Thread(target=self._await_ready, args=(self._proc,), daemon=True,
                         name="cascade-side-draw").start()
        return self

    def _await_ready(self, proc: subprocess.Popen) -> None:
        with proc.stdout:
            self._ready = proc.stdout.readline() == READY
            self._answered.set()
            proc.stdout.read()  # nothing more comes: returns when the child ends
        self._ended.set()

    def wait_ready(self, timeout: float) -> bool:
        """Has the child imported everything it draws with (waiting at most `timeout` s)?"""
        return self._proc is not None and self._answered.wait(timeout) and self._ready

    def heatmap(self, sweep) -> Path | None:
        """SWEEP_DIR/heatmap.png of a finished `SweepResult` (None without heatmap axes)."""
        axes = sweep.heatmap_axes
        if axes is None:
            self.close()
            return None
        png = Path(sweep.out) / HEATMAP
        job = {"figure": "heatmap", "table": str(sweep.table_path.resolve()), "axes": list(axes),
               "png": str(png.resolve())}
        if self._draw(job, png):
            return png
        from .sweep_figures import write_sweep_heatmap

        return write_sweep_heatmap(sweep)

    def walk_forward(self, wf) -> Path:
        """WF_DIR/oos_equity.png of a finished `WalkForwardResult`."""
        png = Path(wf.out) / WALK_FORWARD_PNG
        job = {"figure": "walk_forward", "equity": str(wf.equity_path.resolve()),
               "windows": str(wf.windows_path.resolve()), "png": str(png.resolve())}
        if self._draw(job, png):
            return png
        from .sweep_figures import write_walk_forward_figure

        return write_walk_forward_figure(wf)

    def _draw(self, job: dict, png: Path) -> bool:
        """Did the side process draw `job`? (False: the caller draws it in this process.)"""
        if self.wait_ready(READY_WAIT_S) and self._finish(json.dumps(job).encode() + b"\n", png):
            return True
        self.close()
        return False

    def close(self) -> None:
        """No figure from the side process: it ends (killed if it is still importing)."""
        if self._proc is not None and not self._ready:
            self._proc.kill()
        self._finish(b"", None)

    def _finish(self, job: bytes, png: Path | None) -> bool:
        """Hand the child `job` (empty: nothing to do) and wait for it; did it draw `png`?"""
        p, self._proc = self._proc, None
        if p is None:
            return False
        try:
            with p.stdin:
                p.stdin.write(job)
            # the end of its output, at once (Popen.wait polls, up to 50 ms late), then its status
            ended = self._ended.wait(DRAW_WAIT_S if job else 1.0)
            p.wait(timeout=0.5 if ended else 0)
        except (OSError, subprocess.TimeoutExpired):
            p.kill()
            p.wait()
        if job and p.returncode != 0:  # killed mid-save: its temporary file
            from ..atomic import remove_leftovers

            remove_leftovers(png, p.pid)
        return bool(job) and p.returncode == 0


def _serve() -> int:
    if hasattr(os, "nice"):
        os.nice(19)  # only the cores' idle time: the sweep's own threads come first
    import polars as pl

    from .sweep_figures import fig_walk_forward, save_heatmap, save_png

    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()
    line = sys.stdin.readline()
    if not line.strip():
        return 0  # nothing to draw
    job = json.loads(line)
    if job["figure"] == "heatmap":
        save_heatmap(pl.read_parquet(job["table"]), job["axes"], Path(job["png"]))
    else:
        save_png(fig_walk_forward(pl.read_parquet(job["equity"]), pl.read_parquet(job["windows"])),
                 Path(job["png"]))
    return 0


def main() -> None:
    """The side process's entry (SideFigure.start)."""
    code = _serve()
    # the figure is written and closed and nothing else is buffered: skip the interpreter's
    # teardown of matplotlib (0.15 s the parent would wait for)
    os._exit(code)
