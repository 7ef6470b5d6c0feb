"""#14.9: a corrupt numba cache entry (truncated, zero-length or garbled `.nbc`/`.nbi`) is
quarantined and recompiled once, with one line on stderr (backtest/core/cache_repair.py).

A tiny cached function in a temporary module, with numba's cache folder pointed at tmp_path: each
import of the module makes a new dispatcher, which loads the function from the cache files.
"""
from __future__ import annotations

import importlib.util
import itertools
import textwrap

import numba
import pytest

import backtest.core.jit  # noqa: F401  (installs the repair)
from backtest.core import cache_repair
from cli_helpers import BACKTEST

SOURCE = textwrap.dedent("""
    from numba import njit

    @njit(cache=True)
    def f(x):
        return x * 2.0 + 1.0
""")
_n = itertools.count()


def _load(path):
    spec = importlib.util.spec_from_file_location(f"_cache_repair_mod_{next(_n)}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.f


@pytest.fixture
def cached(tmp_path, monkeypatch):
    """(folder of the function's cache files, a loader of a fresh dispatcher)."""
    # numba rereads its config from the environment now and then: set both
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "numba"))
    src = tmp_path / "src" / "mod.py"
    src.parent.mkdir()
    src.write_text(SOURCE)
    f = _load(src)
    assert f(1.0) == 3.0  # compiles and saves
    (folder,) = (tmp_path / "numba").iterdir()
    assert sorted(p.suffix for p in folder.iterdir()) == [".nbc", ".nbi"]
    loaded = _load(src)
    assert loaded(1.0) == 3.0 and sum(loaded.stats.cache_hits.values()) == 1  # a hit when intact
    return folder, lambda: _load(src)


def _truncate(p):
    p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 3])


def _empty(p):
    p.write_bytes(b"")


def _garble(p):
    b = bytearray(p.read_bytes())
    for i in range(len(b) // 4, len(b), 7):
        b[i] ^= 0x5A
    p.write_bytes(bytes(b))


@pytest.mark.parametrize("suffix", [".nbc", ".nbi"])
@pytest.mark.parametrize("damage", [_truncate, _empty, _garble])
def test_corrupt_entry_is_quarantined_and_recompiled_once(cached, capfd, suffix, damage):
    folder, load = cached
    (victim,) = folder.glob(f"*{suffix}")
    damage(victim)
    damaged = victim.read_bytes()
    capfd.readouterr()
    f = load()
    assert f(2.0) == 5.0  # before the fix: UnpicklingError/EOFError/... from numba's cache
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("note: the numba cache of _cache_repair_mod_") and ".f was corrupt" in lines[0], err
    assert "recompiling" in lines[0] and len(lines[0]) < 400
    assert sum(f.stats.cache_misses.values()) == 1
    moved = list((folder.parent / cache_repair.QUARANTINE).rglob(victim.name))
    assert len(moved) == 1 and moved[0].read_bytes() == damaged  # kept aside, as it was
    # the recompiled entry was saved: the next process loads it without a note
    again = load()
    assert again(3.0) == 7.0 and sum(again.stats.cache_hits.values()) == 1
    assert capfd.readouterr().err == ""


STRATEGY = '''
from backtest import Strategy


class Counter(Strategy):
    n: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        self.n += 1
'''


@pytest.mark.slow
def test_backtest_run_repairs_a_garbled_loop_cache(tmp_path):
    """End to end: the strategy's compiled loop garbled on disk; the next `backtest run` says so
    in one line, recompiles, and gives the same result (before: "Counter does not compile:
    UnpicklingError ..." on every run)."""
    import json
    import os
    import subprocess
    from pathlib import Path

    from backtest.core import numba_cache_dir
    from engine_fixtures import make_market_dataset

    repo = Path(__file__).resolve().parents[1]
    data = tmp_path / "ds"
    make_market_dataset(data, 2_000, nsym=1, seed=6)
    f = tmp_path / "counter_strategy.py"
    f.write_text(STRATEGY)
    env = {**os.environ, "CASCADE_CACHE_DIR": os.environ.get("CASCADE_CACHE_DIR", str(repo / ".cache" / "test"))}

    def run(out):
        return subprocess.run([*BACKTEST, "run", f"{f}:Counter", "--data", str(data),
                               "--out", str(tmp_path / out), "--quiet", "--json"],
                              capture_output=True, text=True, env=env, timeout=900)

    first = run("a")
    assert first.returncode == 0, first.stderr[-2000:]
    env_dir = Path(env["CASCADE_CACHE_DIR"]) / "numba" / numba_cache_dir().name
    loop = max(env_dir.rglob("*Counter*.nbc"), key=lambda p: p.stat().st_mtime)  # this test's loop
    _garble(loop)
    second = run("b")
    assert second.returncode == 0, second.stderr[-2000:]
    lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "was corrupt" in lines[0] and "recompiling" in lines[0], second.stderr
    assert json.loads(second.stdout)["headline"] == json.loads(first.stdout)["headline"]
    third = run("c")
    assert third.returncode == 0 and third.stderr.strip() == "", third.stderr
