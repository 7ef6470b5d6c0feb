"""#14.7: a killed `backtest sweep` takes its workers with it (backtest/core/lifeline.py).

Before: SIGKILL of the sweep left its spawned workers (and multiprocessing's resource tracker)
sleeping forever, holding the caller's stdout open, so a wrapper reading it never got EOF. Now
every worker dies with its parent: the kernel's parent-death signal on Linux, a watchdog thread
elsewhere (tested here too, by forcing it on Linux).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from engine_fixtures import make_market_dataset

REPO = Path(__file__).resolve().parents[1]
from cli_helpers import BACKTEST  # noqa: E402  ([sys.executable, "-m", "backtest"])
BOUND = 60  # seconds allowed for the orphans to go (they go at once; this only bounds a failure)


def _env():
    return {**os.environ, "CASCADE_CACHE_DIR": os.environ.get("CASCADE_CACHE_DIR",
                                                             str(REPO / ".cache" / "test"))}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("lifeline") / "ds"
    make_market_dataset(root, 300_000, nsym=1, seed=5, period=50_000)
    return root


def _workers(root: psutil.Process) -> list[psutil.Process]:
    out = []
    for q in root.children(recursive=True):
        try:
            if "spawn_main" in " ".join(q.cmdline()):
                out.append(q)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["command", "sweep process"])
def test_sigkill_of_a_sweep_ends_its_workers_and_its_stdout(dataset, tmp_path, victim):
    """`command`: the `backtest` process the caller started (the supervisor); `sweep process`: the
    process that runs the sweep and owns the worker pool."""
    grid = ",".join(str(61_000 + 100 * i) for i in range(12))
    p = subprocess.Popen([*BACKTEST, "sweep", "reference", "-p", "sym=S0", "--data", str(dataset),
                          "--out", str(tmp_path / "sw"), "--grid", f"entry={grid}", "--jobs", "2",
                          "--batch-size", "6", "--quiet", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=_env(), start_new_session=True)
    root = psutil.Process(p.pid)
    try:
        while p.poll() is None and not _workers(root):  # the pool has started
            time.sleep(0.05)
        assert p.poll() is None, p.communicate()
        tree = root.children(recursive=True)
        assert len(_workers(root)) >= 1
        target = root if victim == "command" else next(q for q in root.children() if q in tree)
        target.send_signal(signal.SIGKILL)
        gone, alive = psutil.wait_procs(tree, timeout=BOUND)
        assert not alive, [(q.pid, q.cmdline()) for q in alive]  # before: workers sleep forever
        out, err = p.communicate(timeout=BOUND)  # EOF: nobody holds the pipes any more
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
    if victim == "sweep process":  # the command outlives it and says what happened, in one line
        lines = [ln for ln in err.decode().splitlines() if ln.strip()]
        killed = [ln for ln in lines if "was killed by SIGKILL" in ln]
        assert p.returncode == 137 and len(killed) == 1, (p.returncode, err)
        # besides, multiprocessing's resource tracker may warn that it cleans up the pool's
        # semaphores (it outlives the killed process until its pipe closes), before or after it
        others = [ln for ln in lines if ln not in killed and "resource_tracker" not in ln]
        assert not others, others  # the unexpected lines first: a long stderr is cut in the report


WATCHED = textwrap.dedent("""
    import importlib.util, os, subprocess, sys, time
    spec = importlib.util.spec_from_file_location("lifeline", sys.argv[-1])  # not the whole package
    lifeline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lifeline)
    if sys.argv[1] == "middle":  # start a grandchild that watches us, print its pid, wait
        g = subprocess.Popen([sys.executable, __file__, "leaf", str(os.getpid()), sys.argv[-1]])
        print(g.pid, flush=True)
        time.sleep(600)
    else:
        lifeline._pdeathsig = lambda: False  # force the watchdog used off Linux
        lifeline.die_with_parent(int(sys.argv[2]))
        time.sleep(600)
""")


def test_watchdog_ends_the_child_when_its_parent_dies(tmp_path):
    script = tmp_path / "watched.py"
    script.write_text(WATCHED)
    module = str(REPO / "backtest" / "core" / "lifeline.py")
    middle = subprocess.Popen([sys.executable, str(script), "middle", module], stdout=subprocess.PIPE,
                              start_new_session=True)
    try:
        leaf = psutil.Process(int(middle.stdout.readline()))
        middle.kill()
        middle.wait()
        leaf.wait(timeout=BOUND)  # psutil.TimeoutExpired before the fix
    finally:
        try:
            os.killpg(middle.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
