"""The numba cache of generated strategy loops (backtest/plugins/codegen.py): hits in a new
process, never stale after an edit of the strategy or of a user module it uses, keys, and
NUMBA_DISABLE_JIT giving bit-identical Results.

Every run happens in a fresh subprocess with its own CASCADE_CACHE_DIR. The subprocesses import a
snapshot of the `backtest` package copied to a temporary folder at the start of this module, so
that concurrent edits of the framework (which change every strategy key) cannot make a "second
run" miss; the framework helpers' own numba cache then lives in the snapshot and is shared by all
subprocesses of this module.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from backtest.plugins import codegen
from backtest.result import Result
from engine_fixtures import T0, assert_results_identical, make_market_dataset

REPO = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    spec, data, out = sys.argv[1], sys.argv[2], sys.argv[3]
    cfg = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    import numba
    import backtest as bt
    from backtest.engine import run_features
    from backtest.plugins.codegen import build_loop, strategy_key
    from backtest.plugins.resolve import resolve_strategy
    cls = resolve_strategy(spec)
    res = bt.run(cls, data, config=cfg, out=out if out != "-" else None)
    loop = build_loop(cls, features=run_features(cls, data, config=cfg))  # the run's loop
    stats = getattr(loop, "stats", None)
    print(json.dumps(dict(
        backtest=bt.__file__, module=loop.__module__, key=strategy_key(cls),
        hits=sum(stats.cache_hits.values()) if stats else None,
        misses=sum(stats.cache_misses.values()) if stats else None,
        jit=not numba.config.DISABLE_JIT, fills=res.fills["price"].to_list(),
        state=res.manifest["strategy"]["state"], seconds=time.perf_counter() - t0,
        # numba's registries (core/lazyload.py): only a compile loads them (typeddict: one of
        # the modules only numba's context refresh imports; arraymath: the module of numba's
        # compiled numpy functions, which only a refresh or an environment's rebuild imports)
        registries="numba.typed.typeddict" in sys.modules,
        arraymath="numba.np.arraymath" in sys.modules)))
""")

STRATEGY = textwrap.dedent('''
    """A threshold strategy used by the cache tests; ENTRY_IMPORT is replaced per test."""
    from backtest import Strategy, buy, position, sell
    ENTRY_IMPORT


    class Dip(Strategy):
        entries: int = 0
        pending: bool = False

        def on_tick(self, c, ts_ns, sym, price, qty, side):
            if self.pending:
                return
            if position(c, sym) == 0.0:
                if ENTRY_EXPR:
                    if buy(c, sym, 1.0) > 0:
                        self.pending = True
                        self.entries += 1
            elif price >= 65_000.0:
                if sell(c, sym, position(c, sym)) > 0:
                    self.pending = True

        def on_fill(self, c, ts_ns, sym, oid, price, qty, side):
            self.pending = False
''')

VARIANTS = {  # how the strategy gets its entry threshold: (import line, condition, helper module)
    "inline": ("ENTRY = {v}", "price <= ENTRY", None),
    "module_attr": ("import mylib", "price <= mylib.ENTRY", "ENTRY = {v}\n"),
    "njit_helper": ("from mylib import is_entry", "is_entry(price)",
                    "from numba import njit\n\n\n@njit\ndef is_entry(p):\n    return p <= {v}\n"),
    "constant": ("from mylib import ENTRY", "price <= ENTRY", "ENTRY = {v}\n"),
}


@pytest.fixture(scope="module")
def fw(tmp_path_factory):
    """A frozen copy of the framework, plus a tiny dataset (S0 trades between 59k and 66k)."""
    root = tmp_path_factory.mktemp("fw")
    shutil.copytree(REPO / "backtest", root / "pkg" / "backtest",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    shutil.copytree(REPO / "strategies", root / "pkg" / "strategies",
                    ignore=shutil.ignore_patterns("__pycache__"))
    data = root / "data"
    from backtest.data.instruments import Instrument, write_instruments
    from backtest.data.writer import write_stream

    n = 400
    px = np.round(62_500 + 3_500 * np.sin(np.arange(n) / 20.0), 1)
    write_stream(data, "trades", "S0", dict(ts_ns=T0 + np.arange(n, dtype=np.int64) * 1000,
                                            price=px, qty=np.ones(n), side=np.ones(n, np.int8)))
    write_instruments(data / "instruments.json", {"S0": Instrument(
        "S0", "linear_perpetual", "S", "USDT", "USDT", tick_size=0.1, lot_size=0.001)})
    return dict(root=root, pkg=root / "pkg", data=data, prices=px)


def child(fw, cache: Path, spec: str, data=None, out="-", cfg=None, disable_jit=False, cwd=None,
          parallel=False):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "CASCADE_"))}
    env.update(PYTHONPATH=str(fw["pkg"]), CASCADE_CACHE_DIR=str(cache),
               NUMBA_DISABLE_JIT="1" if disable_jit else "0",
               CASCADE_PARALLEL_COMPILE="1" if parallel else "0")
    p = subprocess.run([sys.executable, "-c", CHILD, spec, str(data or fw["data"]), str(out),
                        json.dumps(cfg or {"initial_balance": 1e6, "sample_interval": "0"})],
                       env=env, cwd=str(cwd or fw["root"]), capture_output=True, text=True,
                       timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert Path(r["backtest"]).is_relative_to(fw["pkg"])  # the snapshot, not the live tree
    return r


def cache_files(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.suffix in (".nbi", ".nbc"))


def write_strategy(folder: Path, variant: str, value: float) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    imp, cond, lib = VARIANTS[variant]
    (folder / "dip.py").write_text(STRATEGY.replace("ENTRY_IMPORT", imp.format(v=value))
                                   .replace("ENTRY_EXPR", cond))
    if lib is not None:
        (folder / "mylib.py").write_text(lib.format(v=value))
    return f"{folder / 'dip.py'}:Dip"


def expected_first_fill(prices, entry):
    """Market buy decided at the first tick <= entry fills at the next tick's price."""
    i = int(np.flatnonzero(prices <= entry)[0])
    return float(prices[i + 1])


# ------------------------------------------------------------------------------ cache hits
@pytest.mark.slow  # cold compile of a copied framework
def test_second_process_hits_the_cache_and_the_index_does_not_grow(fw, tmp_path):
    cache = tmp_path / "cache"
    spec = write_strategy(tmp_path / "user", "inline", 62_000.0)
    first = child(fw, cache, spec)
    assert first["misses"] >= 1 and first["hits"] == 0
    files = cache_files(cache)
    assert any(f.endswith(".nbi") for f in files) and any(f.endswith(".nbc") for f in files)
    second = child(fw, cache, spec)
    assert second["module"] == first["module"] and second["key"] == first["key"]
    assert second["hits"] >= 1 and second["misses"] == 0, second
    assert cache_files(cache) == files  # nothing appended by the second process
    assert second["fills"] == first["fills"] and first["fills"]
    assert first["fills"][0] == expected_first_fill(fw["prices"], 62_000.0)
    # the compile loaded numba's typing and lowering registries; the warm run never needed them,
    # nor the array math module its loop's environments name
    assert first["registries"] and not second["registries"]
    assert first["arraymath"] and not second["arraymath"]


# ------------------------------------------------------------------------------ cold-start helper
@pytest.mark.slow  # cold compile of a copied framework
def test_cold_start_helper_process(fw, tmp_path):
    """core/warm.py: on a cold cache a helper process compiles the framework into the shared
    cache from the other end and marks it complete; the result equals a run without the helper,
    and a later process hits the cache (and starts no helper)."""
    import time

    spec = write_strategy(tmp_path / "user", "inline", 62_000.0)
    with_helper = child(fw, tmp_path / "c1", spec, parallel=True)
    deadline = time.time() + 600
    # the strategy trades a linear contract: the helper compiles the lean kernels (core/rare.py)
    while not list((tmp_path / "c1").rglob("framework-ready-lean")) and time.time() < deadline:
        time.sleep(1)
    assert list((tmp_path / "c1").rglob("framework-ready-lean"))
    index = [p.name for p in (tmp_path / "c1").rglob("*.nbi")]
    assert any(n.startswith("liquidation.liquidate") for n in index)
    assert any(n.startswith("orders.submit") for n in index)
    alone = child(fw, tmp_path / "c2", spec)
    assert with_helper["fills"] == alone["fills"] and with_helper["state"] == alone["state"]
    again = child(fw, tmp_path / "c1", spec, parallel=True)
    assert again["hits"] >= 1 and again["misses"] == 0
    assert again["fills"] == alone["fills"]


COMPILE_STEPS = textwrap.dedent("""
    import json, sys
    from numba.core.dispatcher import Dispatcher
    from backtest.core import account, execution, guard, liquidation, loans, margin_math, matching, orders, warm
    warm.compile_steps(warm.STEPS[::-1] if sys.argv[1] == "reverse" else warm.STEPS)
    stats = {f"{m.__name__}.{k}": (sum(v.stats.cache_misses.values()), sum(v.stats.cache_hits.values()))
             for m in (account, execution, guard, liquidation, loans, margin_math, matching, orders)
             for k, v in vars(m).items() if isinstance(v, Dispatcher) and v.signatures}
    print(json.dumps(stats))
""")


@pytest.mark.slow  # cold compile of a copied framework
def test_concurrent_cold_compiles_share_the_work(fw, tmp_path):
    """core/jit.py compiles each kernel under a lock shared by processes: two processes compiling
    the framework into one cold cache at once, in opposite orders (as the cold-start helper and
    the main process do), compile every kernel exactly once between them: whichever comes second
    loads it from the cache. Nothing deadlocks although each holds locks the other needs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "CASCADE_"))}
    env.update(PYTHONPATH=str(fw["pkg"]), CASCADE_CACHE_DIR=str(tmp_path / "cache"))
    procs = [subprocess.Popen([sys.executable, "-c", COMPILE_STEPS, order], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(tmp_path))
             for order in ("forward", "reverse")]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    fwd, rev = (json.loads(out.strip().splitlines()[-1]) for out, _ in outs)
    # a process that loads a kernel from the cache never touches that kernel's callees
    kernels = fwd.keys() | rev.keys()
    assert len(kernels) >= 60
    compiled_by = {k: [name for name, r in (("forward", fwd), ("reverse", rev)) if r.get(k, (0,))[0]]
                   for k in kernels}
    assert {k: v for k, v in compiled_by.items() if len(v) != 1} == {}
    # not vacuous: the two really ran at once, each compiled a share
    assert 5 <= sum(v == ["reverse"] for v in compiled_by.values()) <= len(kernels) - 5


# ------------------------------------------------------------------------------ never stale
@pytest.mark.slow  # cold compile of a copied framework
@pytest.mark.parametrize("variant", ["inline", "module_attr", "njit_helper", "constant"])
def test_edit_never_runs_stale_code(fw, tmp_path, variant):
    cache = tmp_path / "cache"
    user = tmp_path / "user"
    spec = write_strategy(user, variant, 62_000.0)
    a = child(fw, cache, spec)
    # edit (the helper module where there is one, else the strategy file): entry 62k -> 61k
    write_strategy(user, variant, 61_000.0) if VARIANTS[variant][2] is None else \
        (user / "mylib.py").write_text(VARIANTS[variant][2].format(v=61_000.0))
    b = child(fw, cache, spec)
    assert b["fills"][0] == expected_first_fill(fw["prices"], 61_000.0), (a, b)
    assert b["fills"][0] != a["fills"][0]
    assert b["key"] != a["key"] and b["module"] != a["module"]
    assert b["misses"] >= 1  # compiled anew, not loaded
    if variant != "inline":
        return
    # and going back to the original content hits the original cache entry again
    write_strategy(user, variant, 62_000.0)
    c = child(fw, cache, spec)
    assert c["module"] == a["module"] and c["fills"] == a["fills"]
    assert c["hits"] >= 1 and c["misses"] == 0


# ------------------------------------------------------------------------------ keys
def test_strategy_key_stable_and_framework_sensitive(tmp_path, monkeypatch):
    from strategies.reference import Reference

    k1, k2 = codegen.strategy_key(Reference), codegen.strategy_key(Reference)
    assert k1 == k2 and len(k1) == 16
    extra = tmp_path / "fw_extra.py"
    extra.write_text("X = 1\n")
    real = codegen.framework_files
    monkeypatch.setattr(codegen, "framework_files", lambda: real() + [extra])
    k3 = codegen.strategy_key(Reference)
    assert k3 == codegen.strategy_key(Reference)
    extra.write_text("X = 2\n")
    k4 = codegen.strategy_key(Reference)
    assert k4 != k3
    extra.write_text("X = 1\n")
    assert codegen.strategy_key(Reference) == k3  # content, not mtime


def test_dependency_files_follow_user_modules(tmp_path):
    from backtest.plugins.resolve import resolve_strategy

    spec = write_strategy(tmp_path / "u", "njit_helper", 62_000.0)
    cls = resolve_strategy(spec)
    names = {p.name for p in codegen.dependency_files(cls)}
    assert names == {"dip.py", "mylib.py"}


# ------------------------------------------------------------------------------ no-JIT == JIT
@pytest.mark.slow  # cold compile of a copied framework
def test_disable_jit_is_bit_identical(fw, tmp_path):
    data = tmp_path / "data20k"
    make_market_dataset(data, 20_000, nsym=2, seed=3, period=4_000)
    cfg = {"initial_balance": 1e6, "sample_interval": "100ms", "leverage": {"S0": 3.0},
           "execution": {"latency": "1ms"}}
    cache = tmp_path / "cache"
    # Reference trades BTCUSDT by default: give it S0 through a tiny wrapper strategy file
    user = tmp_path / "user"
    user.mkdir()
    (user / "ref_s0.py").write_text(textwrap.dedent("""
        from strategies.reference import Reference
        from backtest import Symbol, param


        class RefS0(Reference):
            sym: Symbol = param("S0", "symbol traded")
    """))
    spec = f"{user / 'ref_s0.py'}:RefS0"
    jit = child(fw, cache, spec, data=data, out=tmp_path / "jit", cfg=cfg)
    nojit = child(fw, cache, spec, data=data, out=tmp_path / "nojit", cfg=cfg, disable_jit=True)
    assert jit["jit"] and not nojit["jit"]
    a, b = Result.load(tmp_path / "jit"), Result.load(tmp_path / "nojit")
    assert a.fills.height >= 4 and a.equity.height > 100
    assert a.manifest["timings"]["jit"] and not b.manifest["timings"]["jit"]
    assert_results_identical(a, b)  # every table bit for bit, headline, metrics, state


# ------------------------------------------------------------------------------ one compile each
MANY_CALLS = textwrap.dedent('''
    """Calls SDK functions with constants, int8/int32 values, int64 counters and defaults."""
    import numpy as np
    from backtest import (
        Strategy, amend, bracket, buy, buy_limit, cancel, cancel_all, close_position, equity,
        position, sell, stop_market, take_profit,
    )


    class ManyCalls(Strategy):
        n: int = 0

        def on_tick(self, c, ts_ns, sym, price, qty, side):
            self.n += 1
            k = self.n % 7
            if k == 0:
                buy(c, sym, 0.001)
            elif k == 1:
                sell(c, 0, 0.001)
            elif k == 2:
                oid = buy_limit(c, sym, 0.002, price - 50.0)
                if oid > 0:
                    amend(c, oid, 0.003, price - 60.0)
                    cancel(c, oid)
            elif k == 3:
                bracket(c, sym, side, 0.001, 0.0, price - 500.0, price + 500.0)
            elif k == 4:
                stop_market(c, sym, -1, 0.001, price - 300.0, 1)
            elif k == 5:
                take_profit(c, np.int64(sym), 1, 0.001, price + 300.0)
            else:
                close_position(c, sym)
                cancel_all(c, sym)
            if position(c, sym) != 0.0 and equity(c) < 0.0:
                sell(c, sym, position(c, sym))
''')

KERNEL_SIGNATURES = textwrap.dedent("""
    import json, sys
    from numba.core.dispatcher import Dispatcher
    import backtest as bt
    from backtest import sdk
    from backtest.core import account, execution, liquidation, loans, matching, orders
    res = bt.run(sys.argv[1], sys.argv[2],
                 config={"initial_balance": 1e6, "leverage": {"S0": 5, "S1": 3}})
    sigs = {f"{m.__name__}.{k}": [", ".join("ctx" if "Record" in str(a) else str(a) for a in s)
                                  for s in v.signatures]
            for m in (sdk, account, execution, liquidation, loans, matching, orders)
            for k, v in vars(m).items()
            if isinstance(v, Dispatcher) and v.targetoptions.get("no_cpython_wrapper")}
    print(json.dumps(dict(fills=res.headline["fills"], sigs=sigs)))
""")


@pytest.mark.slow  # cold compile of a copied framework
def test_each_framework_kernel_compiles_once(fw, tmp_path):
    """core/jit.py widens kernel arguments: a kernel called from compiled code with constants,
    narrow or wide integers and omitted defaults compiles once (before: up to 11 times, 151
    compilations for 85 kernels). Needs a cold cache: a cached loop links kernels untyped."""
    (tmp_path / "many_calls.py").write_text(MANY_CALLS)
    make_market_dataset(tmp_path / "d", 6_000, nsym=2)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "CASCADE_"))}
    env.update(PYTHONPATH=str(fw["pkg"]), CASCADE_CACHE_DIR=str(tmp_path / "cache"),
               CASCADE_PARALLEL_COMPILE="0")
    p = subprocess.run([sys.executable, "-c", KERNEL_SIGNATURES,
                        f"{tmp_path / 'many_calls.py'}:ManyCalls", str(tmp_path / "d")],
                       env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["fills"] > 100
    compiled = {k: v for k, v in r["sigs"].items() if v}
    assert len(compiled) >= 60, sorted(compiled)
    assert {k: v for k, v in compiled.items() if len(v) > 1} == {}


# ------------------------------------------------------------------------------ helper policy
def test_parallel_compile_policy(monkeypatch, tmp_path):
    """CASCADE_PARALLEL_COMPILE: 0 never, 1 always (2+ cores), auto only with a core idle now: by
    the threads running (Linux's /proc/loadavg, this one included), else by the load average."""
    import io

    from backtest.core import warm

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    loadavg = tmp_path / "loadavg"
    monkeypatch.setattr(warm, "LOADAVG", str(loadavg))
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))  # must not be read on Linux
    for mode, line, want in (
            ("0", "0.00 0.00 0.00 1/85 6127", False), ("1", "5.00 5.00 5.00 9/85 6127", True),
            # the 1-minute average lags (a compile just ended): 1.9, yet only this thread runs
            ("auto", "1.94 1.70 1.40 1/85 6127", True),
            ("auto", "0.10 0.10 0.10 2/85 6127", False),  # another thread took the other core
            ("auto", "3.00 3.00 3.00 4/85 6127", False)):
        loadavg.write_text(line + "\n")
        monkeypatch.setenv("CASCADE_PARALLEL_COMPILE", mode)
        assert warm.wanted() is want, (mode, line)
    monkeypatch.delenv("CASCADE_PARALLEL_COMPILE")
    loadavg.write_text("0.00 0.00 0.00 1/85 6127\n")
    assert warm.wanted()  # auto is the default

    # the least of the samples: a shell caught running in one read is not load
    reads = iter(["3/85", "2/85", "1/85", "2/85", "3/85"])
    monkeypatch.setattr(warm, "open", lambda path: io.StringIO(f"0 0 0 {next(reads)} 1"), raising=False)
    assert warm._load_now() == 1.0
    monkeypatch.delattr(warm, "open")

    # no /proc/loadavg (macOS): the 1-minute load average, with half a core idle
    monkeypatch.setattr(warm, "LOADAVG", str(tmp_path / "absent"))
    for load, want in ((0.0, True), (1.2, True), (1.7, False), (3.0, False)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        assert warm.wanted() is want, load
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    monkeypatch.setenv("CASCADE_PARALLEL_COMPILE", "1")
    assert not warm.wanted()


def test_main_process_waits_for_its_helper_only_briefly(tmp_path, monkeypatch):
    """A kernel lock held by our own cold-start helper is waited for at most HELPER_WAIT_S (then
    the main process compiles the kernel itself); without a helper the wait has no bound."""
    import fcntl
    import time

    from backtest.core import jit

    path = tmp_path / "k.lock"
    held = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)  # the helper compiling the kernel
    mine = os.open(path, os.O_RDWR)
    monkeypatch.setattr(jit, "helper_running", lambda: True)
    monkeypatch.setattr(jit, "_helper_slow", False)
    t = time.monotonic()
    assert jit._acquire(mine) is False
    assert jit.HELPER_WAIT_S <= time.monotonic() - t < jit.HELPER_WAIT_S + 2
    t = time.monotonic()
    assert jit._acquire(mine) is False  # once slow, never waited for again
    assert time.monotonic() - t < jit.HELPER_WAIT_S
    os.close(held)
    assert jit._acquire(mine) is True  # free: taken at once
    os.close(mine)
