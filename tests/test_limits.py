"""Resource limits: order floods, the open-order slot limit, output-buffer draining, and
out-of-bounds indexing in user hooks (NUMBA_BOUNDSCHECK=1, in a subprocess).

One strategy class (`Flood`, behaviour chosen by a parameter) serves every in-process run, so the
loop compiles once.
"""
from __future__ import annotations

import os
import re
import resource
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import psutil
import pytest

from cli_helpers import BACKTEST
from engine_fixtures import build_loop_memo
from numba import njit

import backtest as bt
import backtest.engine as _engine
from backtest import Strategy, cancel, param, submit, tick_size
from backtest.core.schema import MAX_ORDERS, Reason
from backtest.data.instruments import Instrument, write_instruments
from backtest.data.writer import write_stream

REPO = Path(__file__).resolve().parents[1]
T0 = 1_770_249_600_000_000_000
N_TRADES = 150_000
TOO_MANY = -int(Reason.TOO_MANY_OPEN_ORDERS)


@pytest.fixture(scope="module", autouse=True)
def _compile_once():
    with build_loop_memo():
        yield


@njit
def _far_below(c, sym, price):
    t = tick_size(c, sym)
    return np.floor(price * 0.5 / t) * t


class Flood(Strategy):
    """mode 0: a market order on every tick (alternating sides);
    mode 1: `per_tick` far-away resting limits per tick until `target` submissions;
    mode 2: every tick, cancel the previous resting limit and place a new one (churn)."""

    mode: int = param(0)
    qty: float = param(0.001)
    per_tick: int = param(10)
    target: int = param(100_000)
    submitted: int = 0
    accepted: int = 0
    too_many: int = 0
    other: int = 0
    last_oid: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if self.mode == 0:
            d = 1 if self.submitted % 2 == 0 else -1
            r = submit(c, sym, 0, d, self.qty)
            self.submitted += 1
            if r > 0:
                self.accepted += 1
            else:
                self.other += 1
        elif self.mode == 1:
            for _ in range(self.per_tick):
                if self.submitted >= self.target:
                    return
                r = submit(c, sym, 1, 1, self.qty, _far_below(c, sym, price))
                self.submitted += 1
                if r > 0:
                    self.accepted += 1
                elif r == -9:
                    self.too_many += 1
                else:
                    self.other += 1
        else:
            if self.last_oid > 0:
                cancel(c, self.last_oid)
            r = submit(c, sym, 1, 1, self.qty, _far_below(c, sym, price))
            self.submitted += 1
            if r > 0:
                self.accepted += 1
                self.last_oid = r
            else:
                self.other += 1


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("limits") / "ds"
    rng = np.random.default_rng(3)
    ts = T0 + np.arange(N_TRADES, dtype=np.int64) * 1_000_000
    price = np.round(62_000 + np.cumsum(rng.normal(0, 5, N_TRADES)), 1)
    write_stream(root, "trades", "BTCUSDT", dict(ts_ns=ts, price=price, qty=np.full(N_TRADES, 0.01),
                                                 side=rng.choice([-1, 1], N_TRADES).astype(np.int8)))
    write_instruments(root / "instruments.json", {"BTCUSDT": Instrument(
        "BTCUSDT", "linear_perpetual", "BTC", "USDT", "USDT", tick_size=0.1, lot_size=0.001)})
    return root


CFG = dict(initial_balance=10_000_000.0, sample_interval="0", leverage={"BTCUSDT": 5.0})


def _rss():
    return psutil.Process().memory_info().rss


def _peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _run(dataset, **params):
    return bt.run(Flood, dataset, params=params, config=CFG)


@pytest.fixture(scope="module")
def warm(dataset):
    _run(dataset, mode=0, target=1)  # compile (or load) once before measuring memory
    return dataset


def test_order_every_tick_drains_buffers_in_bounded_memory(warm):
    rss0, peak0 = _rss(), _peak()
    res = _run(warm, mode=0)
    st = res.manifest["strategy"]["state"]
    assert st["submitted"] == N_TRADES and st["other"] == 0
    # every market order fills at the next trade: far more than one 65,536-row buffer of fills
    assert res.fills.height == N_TRADES - 1 > _engine.BUFFER_ROWS
    assert res.orders.height == N_TRADES
    assert res.fills["oid"].is_unique().all() and res.fills["oid"].is_sorted()
    assert (res.fills["event_idx"].diff().drop_nulls() == 1).all()
    grow, peak_grow = _rss() - rss0, _peak() - peak0
    print(f"\norder-every-tick: {res.fills.height:,} fills, RSS +{grow / 2**20:.0f} MiB, "
          f"peak +{peak_grow / 2**20:.0f} MiB")
    assert grow < 400 * 2 ** 20 and peak_grow < 600 * 2 ** 20


def test_100k_open_orders_hit_the_slot_limit_without_crashing(warm):
    rss0, peak0 = _rss(), _peak()
    res = _run(warm, mode=1, target=100_000, per_tick=10)
    st = res.manifest["strategy"]["state"]
    assert st["submitted"] == 100_000
    assert st["other"] == 0
    assert st["accepted"] <= MAX_ORDERS and st["accepted"] > 0
    assert st["accepted"] + st["too_many"] == 100_000
    assert st["too_many"] >= 100_000 - MAX_ORDERS
    o = res.orders
    assert o.filter(o["reason"] == int(Reason.END_OF_DATA)).height == st["accepted"]
    assert res.fills.height == 0
    grow, peak_grow = _rss() - rss0, _peak() - peak0
    print(f"\n100k open orders: {st['accepted']} accepted, {st['too_many']} TOO_MANY_OPEN_ORDERS, "
          f"RSS +{grow / 2**20:.0f} MiB, peak +{peak_grow / 2**20:.0f} MiB")
    assert grow < 400 * 2 ** 20 and peak_grow < 600 * 2 ** 20


def test_too_many_open_orders_rejections_are_recorded(warm):
    res = _run(warm, mode=1, target=10_000, per_tick=10)
    o = res.orders
    assert o.height == 10_000
    assert o.filter(o["reason"] == int(Reason.TOO_MANY_OPEN_ORDERS)).height == 10_000 - MAX_ORDERS


def test_cancel_replace_churn_recycles_slots(warm):
    res = _run(warm, mode=2)
    st = res.manifest["strategy"]["state"]
    assert st["submitted"] == N_TRADES and st["other"] == 0 and st["accepted"] == N_TRADES
    o = res.orders
    assert o.height == N_TRADES
    # the last order is still travelling and the cancel of the one before is still in flight
    assert o.filter(o["status"] == 5).height == N_TRADES - 2  # canceled
    assert o.filter(o["reason"] == int(Reason.END_OF_DATA)).height == 2


# ------------------------------------------------------------------------------ bounds checking
OOB_SOURCE = '''
from backtest import Strategy


class OutOfBounds(Strategy):
    """Writes past the end of a 4-element array at the 5th trade."""

    n: int = 0
    pad: ("f8", 64)
    buf: ("f8", 4)

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        self.buf[self.n] = price  # the 5th trade (event 4) writes buf[4]
        self.n += 1
'''


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("oob") / "ds"
    n = 100
    ts = T0 + np.arange(n, dtype=np.int64) * 1_000_000
    write_stream(root, "trades", "BTCUSDT", dict(ts_ns=ts, price=np.full(n, 62_000.0),
                                                 qty=np.full(n, 0.01), side=np.ones(n, np.int8)))
    write_instruments(root / "instruments.json", {"BTCUSDT": Instrument(
        "BTCUSDT", "linear_perpetual", "BTC", "USDT", "USDT", tick_size=0.1, lot_size=0.001)})
    return root


@pytest.mark.slow  # --boundscheck: a cold compile of the whole framework
def test_boundscheck_reports_index_error_with_event(tmp_path, small_dataset):
    """`backtest run --boundscheck`: an out-of-bounds index in a hook is an IndexError that the
    CLI reports as one line naming the strategy, the error and the event (index 4 = the 5th
    trade). The first such run compiles the framework with bounds checks (its own cache folder)."""
    f = tmp_path / "oob_strategy.py"
    f.write_text(textwrap.dedent(OOB_SOURCE))
    env = {**os.environ, "CASCADE_CACHE_DIR": os.environ.get("CASCADE_CACHE_DIR", str(REPO / ".cache" / "test"))}
    env.pop("NUMBA_BOUNDSCHECK", None)
    p = subprocess.run([*BACKTEST, "run", f"{f}:OutOfBounds", "--data",
                        str(small_dataset), "--out", str(tmp_path / "out"), "--quiet", "--boundscheck"],
                       capture_output=True, text=True, env=env, timeout=1500)
    print("\nboundscheck output:", p.returncode, p.stderr.strip()[-600:])
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr[-2000:]
    assert "IndexError" in lines[0] and "OutOfBounds" in lines[0]
    assert re.search(r"\bevent 4\b", lines[0]), lines[0]
    assert "BTCUSDT" in lines[0]
    assert not (tmp_path / "out").exists()


def test_boundscheck_is_part_of_the_loop_key_and_the_framework_cache(monkeypatch):
    """numba's cache key does not tell bounds-checked code from unchecked code: a run with
    --boundscheck must neither load an unchecked loop or kernel nor leave checked ones behind
    for runs without it."""
    import numba

    from backtest.core import numba_cache_dir
    from backtest.plugins.codegen import strategy_key

    monkeypatch.delenv("NUMBA_BOUNDSCHECK", raising=False)
    monkeypatch.setattr(numba.config, "BOUNDSCHECK", None)
    key, folder = strategy_key(Flood), numba_cache_dir()
    monkeypatch.setenv("NUMBA_BOUNDSCHECK", "1")
    monkeypatch.setattr(numba.config, "BOUNDSCHECK", 1)
    assert strategy_key(Flood) != key
    assert numba_cache_dir() != folder and numba_cache_dir().name == folder.name + "-boundscheck"
