"""Engine benchmark (not a test: timings depend on the machine). Prints one table.

    .venv/bin/python benchmarks/bench_engine.py --ticks 10_000_000
    .venv/bin/python benchmarks/bench_engine.py --ticks 100_000_000 --skip busy,raw,start
    .venv/bin/python benchmarks/bench_engine.py --skip kernel,e2e,start --crash DIR
    # every target of issue 18 in one table (about 15 minutes on 2 cores):
    .venv/bin/python benchmarks/bench_engine.py --crash DIR --sweep-reps 3 --s3 data/generated/feb-2026-crash \
        --cold-under-load 3

Data: synthetic BTCUSDT trades (a random walk pulled back to 62.5k that crosses 62k/60k/65k many
times), plus a second dataset with 8 symbols for the busy strategy, written with `write_stream` in
blocks (bounded memory) into --data (default: a cached folder under $CASCADE_CACHE_DIR/bench).

Measured:
  kernel   events/s of the compiled loop alone on in-memory chunks (like engine._call), best of 5
           (the shared 2-vCPU machine is noisy): the reference strategy, the busy strategy
           (benchmarks/busy_strategy.py), a strategy with no hooks (benchmarks/idle_strategy.py:
           the loop's own work per event), and a raw hand-written numba loop doing the reference
           logic on the same arrays (upper bound); the target's ratio (reference / raw) is
           measured alternating the two over 7 rounds (median of the rounds' ratios): this VM's
           speed changes in phases of seconds (one loop: 145-300 M events/s over 30 runs), and
           two best-of-5 blocks one after the other can fall in different phases
  e2e      wall time of backtest.run(..., out=...) from Parquet to a saved run, warm cache, and
           the baseline measured in the same run: polars reads the same trade columns, then the
           reference logic hand-written in one numba loop (best of 3); ratio = baseline / e2e
  start    cold compile (fresh CASCADE_CACHE_DIR and NUMBA_CACHE_DIR, new process) under each
           CASCADE_PARALLEL_COMPILE policy of backtest/core/warm.py (auto, 1, 0; interleaved;
           median and range of --cold-runs each), warm start (new process, caches present; also
           without the lazyload patch, right after it), and the start of an edited strategy
           (framework cached, loop not): process start -> first loop call returned; with
           --cold-under-load N, N more cold starts (auto) while another process spins on a core
  rss      peak RSS (VmHWM) of the end-to-end run in a fresh subprocess
  crash    (--crash DIR) the whole dataset from Parquet and from the replay cache, new processes
  sweep    (--sweep-reps N) `backtest sweep` of 64 sets against one `backtest run`, CLI processes
           (benchmarks/bench_sweep.py's measure, its "sweep" and "run" rows)
  s3       (--s3 DIR) reading DIR from a local moto S3 server against the disk
           (benchmarks/bench_s3.py's measure, its two rows with a target)
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_data import OTHERS, REPO, T0, snapshot_source, write_dataset  # noqa: E402

SRC: Path = REPO  # replaced by the frozen source snapshot in main()


# ------------------------------------------------------------------------------------ kernel
def load_chunks(root: Path, symbols: list[str]):
    from backtest.data.reader import open_dataset

    st = open_dataset(root, symbols=symbols, chunk_rows=1 << 20)
    chunks = [{k: np.require(a, requirements="CW") for k, a in c.items()} for c in st]
    return st, chunks


def kernel_rate(cls, params, st, chunks, cfg_dict, reps=5, features=None):
    """Best-of-reps events/s of the compiled loop on in-memory chunks (engine.run's inner loop);
    `features`: the loop's steps (codegen.LoopFeatures), by default those a run would compile."""
    from backtest import engine
    from backtest.pack import loop_features, pack_settings, with_variant
    from backtest.config import RunConfig
    from backtest.core.schema import RunStatus
    from backtest.core.state import new_state
    from backtest.plugins.codegen import build_loop

    cfg = RunConfig.from_dict(cfg_dict)
    c = new_state(len(st.symbols))
    pack_settings(c, st.symbols, st.instruments, cfg)
    if features is None:
        features = loop_features(cls, with_variant(cls, c))  # as a run builds it (engine._run)
    loop = build_loop(cls, features=features)
    n = sum(len(c["ts_ns"]) for c in chunks)
    best, state = None, None
    for _ in range(reps):
        c = new_state(len(st.symbols), rare=features.rare)  # the kernels' variant the loop is built for
        pack_settings(c, st.symbols, st.instruments, cfg)
        s_arr = cls.new_state(cls.resolve_params(params), st.symbols)
        bufs = engine._Buffers.new(engine.BUFFER_ROWS, True)
        s = s_arr[0]
        empty = {k: np.zeros(0, dtype=d) for k, d in engine.EVENT_COLUMNS}
        engine._call(loop, empty, 0, c, s, bufs)  # compile / load outside the timing
        engine._align_first(c, int(chunks[0]["ts_ns"][0]))
        base = 0
        t = time.perf_counter()
        for ch in chunks:
            c.clock.idx_base = base
            i = 0
            while True:
                status, i = engine._call(loop, ch, i, c, s, bufs)
                if status == RunStatus.BUFFER_FULL:
                    bufs.drain(c)
                    continue
                break
            base += len(ch["ts_ns"])
        el = time.perf_counter() - t
        best = el if best is None else min(best, el)
        state = {f.name: s_arr[f.name][0].tolist() for f in cls._fields if not f.shape}
        state["fills"] = int(c.acct.n_fills)
    return n / best, state


def steps_ratio(cls, params, st, chunks, cfg_dict, rounds=7):
    """The loop as a run compiles it against the loop with every optional step (ALL_STEPS: the
    L2 book, the impact estimators, loans), alternated round by round in this process so that
    the host's slow and fast phases fall on both: (median events/s each, median of the ratios)."""
    from backtest.plugins.codegen import ALL_STEPS

    run, full, ratios = [], [], []
    for _ in range(rounds):
        a, _ = kernel_rate(cls, params, st, chunks, cfg_dict, reps=2)
        b, _ = kernel_rate(cls, params, st, chunks, cfg_dict, reps=2, features=ALL_STEPS)
        run.append(a)
        full.append(b)
        ratios.append(a / b)
    return float(np.median(run)), float(np.median(full)), float(np.median(ratios))


def raw_rate(chunks, reps=5):
    """The reference logic hand-written in one numba loop over the same arrays (upper bound)."""
    from numba import njit

    @njit(cache=True, nogil=True)
    def raw(price, kind, sym, target_sym, entry, stop, target, rearm, size, fee):
        cash = 0.0
        pos = 0.0
        avg = 0.0
        armed = True
        pending = 0.0  # signed qty of a market order waiting for the next tick
        fills = 0
        peak = 0.0
        mdd = 0.0
        for i in range(len(price)):
            if kind[i] != 0 or sym[i] != target_sym:
                continue
            p = price[i]
            if pending != 0.0:
                q = pending
                cash -= abs(q) * p * fee
                if pos == 0.0:
                    avg = p
                else:
                    cash += pos * (p - avg)
                    avg = 0.0
                pos += q
                pending = 0.0
                fills += 1
            eq = cash + pos * (p - avg)
            if eq > peak:
                peak = eq
            if peak - eq > mdd:
                mdd = peak - eq
            if pos == 0.0:
                if armed and p <= entry:
                    pending = size
                    armed = False
                elif not armed and p > rearm:
                    armed = True
            elif p <= stop or p >= target:
                pending = -pos
        return fills, cash, mdd

    best, out = None, None
    n = sum(len(c["ts_ns"]) for c in chunks)
    price = np.concatenate([c["price"] for c in chunks])
    kind = np.concatenate([c["kind"] for c in chunks])
    sym = np.concatenate([c["sym"] for c in chunks])
    raw(price[:10], kind[:10], sym[:10], 0, 62_000.0, 60_000.0, 65_000.0, 63_000.0, 1.0, 5e-4)
    for _ in range(reps):
        t = time.perf_counter()
        out = raw(price, kind, sym, 0, 62_000.0, 60_000.0, 65_000.0, 63_000.0, 1.0, 5e-4)
        el = time.perf_counter() - t
        best = el if best is None else min(best, el)
    return n / best, out


def loop_ratio(st, chunks, rounds=7):
    """The reference loop against the hand-written one, alternated round by round in this
    process (best of 2 each per round) so that the host's slow and fast phases fall on both:
    (median events/s each, median of the rounds' ratios)."""
    from strategies.reference import Reference

    ref, raw, ratios = [], [], []
    for _ in range(rounds):
        a, _ = kernel_rate(Reference, {}, st, chunks, dict(sample_interval="1m"), reps=2)
        b, _ = raw_rate(chunks, reps=2)
        ref.append(a)
        raw.append(b)
        ratios.append(a / b)
    return float(np.median(ref)), float(np.median(raw)), float(np.median(ratios))


def polars_raw_time(root: Path, reps=3):
    """The e2e baseline: polars reads the trade columns of the same files, then the reference
    logic hand-written in one numba loop over the prices (no engine, no output): best of reps."""
    import polars as pl
    from numba import njit

    @njit(cache=True, nogil=True)
    def loop(price, entry, stop, target, rearm, size, fee):
        cash = 0.0
        pos = 0.0
        avg = 0.0
        armed = True
        pending = 0.0
        fills = 0
        for i in range(len(price)):
            p = price[i]
            if pending != 0.0:
                cash -= abs(pending) * p * fee
                if pos == 0.0:
                    avg = p
                else:
                    cash += pos * (p - avg)
                    avg = 0.0
                pos += pending
                pending = 0.0
                fills += 1
            if pos == 0.0:
                if armed and p <= entry:
                    pending = size
                    armed = False
                elif not armed and p > rearm:
                    armed = True
            elif p <= stop or p >= target:
                pending = -pos
        return fills, cash

    loop(np.full(4, 62_500.0), 62_000.0, 60_000.0, 65_000.0, 63_000.0, 1.0, 5e-4)  # compile
    files = sorted(str(f) for f in root.rglob("*.parquet"))
    best, fills = None, None
    for _ in range(reps):
        t = time.perf_counter()
        df = pl.read_parquet(files, columns=["ts_ns", "price", "qty", "side"])
        fills, _ = loop(df["price"].to_numpy(), 62_000.0, 60_000.0, 65_000.0, 63_000.0, 1.0, 5e-4)
        el = time.perf_counter() - t
        best = el if best is None else min(best, el)
    return best, fills


# ------------------------------------------------------------------------------------ subprocesses
START_CHILD = r"""
import os, sys, time, json
sys.path.insert(0, sys.argv[2])
import numpy as np
from backtest import engine
from backtest.pack import loop_features, pack_settings, with_variant
from backtest.plugins.codegen import build_loop
from strategies.reference import Reference
from backtest.config import RunConfig
from backtest.core.schema import EVENT_COLUMNS
from backtest.core.state import new_state
from backtest.data.instruments import Instrument
c = new_state(1)
ins = {"BTCUSDT": Instrument("BTCUSDT", "linear_perpetual", "BTC", "USDT", "USDT", 0.1, 0.001)}
pack_settings(c, ["BTCUSDT"], ins, RunConfig())
c = with_variant(Reference, c)
loop = build_loop(Reference, features=loop_features(Reference, c))  # as engine._run builds it
s = Reference.new_state({}, ["BTCUSDT"])
bufs = engine._Buffers.new(1 << 16, True)
n = 1000
ch = {k: np.zeros(n, dtype=d) for k, d in EVENT_COLUMNS}
ch["ts_ns"][:] = 1_770_249_600_000_000_000 + np.arange(n) * 1_000_000
ch["price"][:] = 62_500.0 - np.arange(n)
ch["qty"][:] = 0.01
engine._align_first(c, int(ch["ts_ns"][0]))
engine._call(loop, ch, 0, c, s[0], bufs)
from backtest.core import warm
print(json.dumps(dict(t=time.time(), cpu=time.process_time(), helper=warm._helper is not None,
                      hits=sum(loop.stats.cache_hits.values()),
                      misses=sum(loop.stats.cache_misses.values()))))
"""

E2E_CHILD = r"""
import sys, time, json
sys.path.insert(0, sys.argv[1])
import backtest as bt
from strategies.reference import Reference
# warm-up on the first second of data (loads the loop from cache, or compiles it if the live
# framework changed since the parent's warm-up), then the timed full run
bt.run(Reference, sys.argv[2], config=dict(sample_interval="1m"), start=1_770_249_600_000_000_000,
       end=1_770_249_601_000_000_000, symbols=["BTCUSDT"])
t = time.perf_counter()
res = bt.run(Reference, sys.argv[2], config=dict(sample_interval="1m"), out=sys.argv[3])
wall = time.perf_counter() - t
hwm = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1]) * 1024
print(json.dumps(dict(wall=wall, hwm=hwm, cpu=time.process_time(), timings=res.manifest["timings"],
                      fills=res.headline["fills"])))
"""


def start_times(cache_root: Path, mode: str = "auto", cold_only: bool = False) -> list[tuple[float, dict]]:
    """(wall s, the child's report) of four new processes: a cold start on empty caches, a warm
    start, the same warm start without the lazyload patch (backtest/core/lazyload.py: numba's
    context refresh before each cache load), and the start of an edited strategy (the
    framework's kernels cached, its loop not); `cold_only`: the first alone."""
    env = dict(os.environ, CASCADE_CACHE_DIR=str(cache_root / "cascade"),
               NUMBA_CACHE_DIR=str(cache_root / "numba"), CASCADE_PARALLEL_COMPILE=mode)
    # Python caches the framework's bytecode, as it does for a user; PYTHONDONTWRITEBYTECODE=1 (set
    # on some CI and sandbox hosts) would recompile its ~50 modules at every start (~0.1 s)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    shutil.rmtree(cache_root, ignore_errors=True)
    src = snapshot_source(cache_root.parent / "src")  # fresh copy: cold numba cache too
    from backtest.core import NUMBA_PATCHES

    unlazy = dict(CASCADE_NUMBA_PATCHES=",".join(p for p in NUMBA_PATCHES if p != "lazyload"))
    out = []
    for k in range(1 if cold_only else 4):  # cold, warm, warm with numba's refresh, edited
        if k == 3:  # a user's edit: a new strategy key, so a new loop to compile
            with open(src / "strategies" / "reference.py", "a") as f:
                f.write("\n# edited\n")
        t = time.time()
        p = subprocess.run([sys.executable, "-c", START_CHILD, "x", str(src)],
                           env=dict(env, **unlazy) if k == 2 else env,
                           capture_output=True, text=True, cwd=str(cache_root.parent))
        if p.returncode:
            raise RuntimeError(p.stderr[-2000:])
        r = json.loads(p.stdout.strip().splitlines()[-1])
        out.append((r["t"] - t, r))
        if k == 0:  # let the cold start's compile helper (backtest/core/warm.py) finish first
            deadline = time.time() + 300  # it marks its variant's cache complete (framework-ready*)
            while r["helper"] and not list(cache_root.rglob("framework-ready*")) and time.time() < deadline:
                time.sleep(0.5)
    return out


def e2e_subprocess(src: Path, root: Path, out: Path, replay_cache: Path | None = None) -> dict:
    """A new process runs the reference strategy on `root`; with `replay_cache` (a folder for
    $CASCADE_REPLAY_CACHE) it uses the entries there, else an empty folder (Parquet is read)."""
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, CASCADE_REPLAY_CACHE=str(replay_cache or out.parent / "no-replay-cache"))
    p = subprocess.run([sys.executable, "-c", E2E_CHILD, str(src), str(root), str(out)],
                       capture_output=True, text=True, env=env)
    if p.returncode:
        raise RuntimeError(p.stderr[-2000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ main
class _Rows(list):
    def append(self, row):
        print(f"# {row[0]}: {row[1]}", flush=True)
        super().append(row)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=lambda s: int(s.replace("_", "")), default=10_000_000)
    ap.add_argument("--data", type=Path, default=None, help="dataset cache folder")
    ap.add_argument("--skip", default="", help="comma list of: busy,idle,steps,raw,start,kernel,e2e")
    ap.add_argument("--cold-runs", type=int, default=3, help="cold starts measured (median reported)")
    ap.add_argument("--cold-under-load", type=int, default=0,
                    help="also this many cold starts (default policy) while another process keeps "
                         "one core busy (0: not measured)")
    ap.add_argument("--crash", type=Path, default=None,
                    help="also time e2e on this dataset, all symbols (e.g. the crash scenario of "
                         "`backtest data generate --scale 79`: ~100M trades, quotes, marks, funding)")
    ap.add_argument("--sweep-reps", type=int, default=0,
                    help="also time `backtest sweep` of 64 sets against `backtest run` (bench_sweep.py), "
                         "this many interleaved repetitions (0: not measured)")
    ap.add_argument("--s3", type=Path, default=None,
                    help="also time reading this dataset from a local S3 server against the disk "
                         "(bench_s3.py; e.g. the crash sample data/generated/feb-2026-crash)")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    global SRC
    cache_root = Path(os.environ.get("CASCADE_CACHE_DIR") or Path.home() / ".cache" / "cascade")
    SRC = snapshot_source(cache_root / "bench_src")
    sys.path.insert(0, str(SRC))
    from backtest.cachedir import cache_dir

    assert Path(sys.modules["backtest"].__file__).is_relative_to(SRC)

    data = a.data or cache_dir() / "bench"
    ref_root = data / f"btc_{a.ticks}"
    busy_root = data / f"busy8_{a.ticks}"
    rows = _Rows()  # (measure, value, target, ok)

    t = time.perf_counter()
    write_dataset(ref_root, a.ticks, ["BTCUSDT"])
    gen_s = time.perf_counter() - t
    print(f"# data: {ref_root} ({a.ticks:,} trades; prepared in {gen_s:.1f} s)", flush=True)

    import numba
    from benchmarks.busy_strategy import Busy
    from strategies.reference import Reference

    ref_rate = None
    if "kernel" not in skip:
        st, chunks = load_chunks(ref_root, ["BTCUSDT"])
        ref_rate, ref_state = kernel_rate(Reference, {}, st, chunks,
                                          dict(sample_interval="1m"))
        rows.append(("kernel, reference (M events/s)", f"{ref_rate / 1e6:.1f}", ">= 100",
                     ref_rate >= 100e6))
        if "raw" not in skip:
            rr, (raw_fills, _, _) = raw_rate(chunks)
            rows.append(("kernel, raw numba baseline (M events/s)", f"{rr / 1e6:.1f}", "-", None))
            rows.append(("engine / raw (best of 5 each, one after the other)", f"{ref_rate / rr:.3f}", "-", None))
            mine, theirs, r = loop_ratio(st, chunks)
            rows.append(("engine / raw, alternated (M events/s, median of 7 rounds; median ratio)",
                         f"{mine / 1e6:.1f} / {theirs / 1e6:.1f}; {r:.3f}", ">= 0.3", r >= 0.3))
            if raw_fills != ref_state["fills"]:
                print(f"# note: raw fills {raw_fills} != engine fills {ref_state['fills']}")
        rows.append(("reference fills", str(ref_state["fills"]), "-", None))
        if "idle" not in skip:  # the loop's own work per event, without the reference's hook
            from benchmarks.idle_strategy import Idle

            ir, _ = kernel_rate(Idle, {}, st, chunks, dict(sample_interval="1m"))
            rows.append(("kernel, no hooks (M events/s; ns per event: no hooks / reference)",
                         f"{ir / 1e6:.1f}; {1e9 / ir:.2f} / {1e9 / ref_rate:.2f}", "-", None))
        if "steps" not in skip:  # what compiling only the run's steps gains (codegen.LoopFeatures)
            for name, cls_, cfg_ in (("reference", Reference, dict(sample_interval="1m")),
                                     ("no hooks", None, dict(sample_interval="1m"))):
                if cls_ is None:
                    from benchmarks.idle_strategy import Idle as cls_
                mine, full, r = steps_ratio(cls_, {}, st, chunks, cfg_)
                rows.append((f"kernel, {name}: the run's steps / every step (M events/s, median of 7 "
                             "alternated; median ratio)", f"{mine / 1e6:.1f} / {full / 1e6:.1f}; {r:.3f}", "-", None))
        del chunks
        if "busy" not in skip:
            write_dataset(busy_root, a.ticks, ["BTCUSDT"] + OTHERS, seed=2)
            st, chunks = load_chunks(busy_root, None)
            br, bstate = kernel_rate(Busy, {}, st, chunks, dict(sample_interval="1m",
                                                                 initial_balance=1e9))
            rows.append(("kernel, busy 8 symbols (M events/s; issue 18 measured 22.5)", f"{br / 1e6:.1f}",
                         ">= 45 (2x)", br >= 45e6))
            rows.append(("busy: entries / cancels / exits / fills",
                         f"{bstate['entries']}/{bstate['cancels']}/{bstate['exits']}/"
                         f"{bstate['fills']}", "-", None))
            del chunks
    if "e2e" not in skip:
        import backtest as bt

        tmp = Path(tempfile.mkdtemp(prefix="bench_e2e_"))
        try:
            bt.run(Reference, ref_root, config=dict(sample_interval="1m"), end=T0 + 10**9,
                   out=tmp / "warmup")  # make sure the cache is warm
            walls = []
            for k in range(2):
                t = time.perf_counter()
                res = bt.run(Reference, ref_root, config=dict(sample_interval="1m"),
                             out=tmp / f"run{k}")
                walls.append(time.perf_counter() - t)
            w = min(walls)
            base, base_fills = polars_raw_time(ref_root)
            target = 3.0 * a.ticks / 10_000_000
            rows.append((f"e2e warm, parquet -> saved run (s, {a.ticks / 1e6:g}M)", f"{w:.2f}",
                         f"<= {target:g}" if a.ticks <= 10_000_000 else "-",
                         w <= target if a.ticks <= 10_000_000 else None))
            rows.append(("e2e events/s (M)", f"{a.ticks / w / 1e6:.1f}", "-", None))
            rows.append(("e2e baseline: polars read + hand-written numba loop (s)", f"{base:.2f}",
                         "-", None))
            rows.append(("e2e speed / baseline speed", f"{base / w:.2f}", ">= 0.4", base / w >= 0.4))
            if base_fills != res.headline["fills"]:
                print(f"# note: baseline fills {base_fills} != engine fills {res.headline['fills']}")
            rows.append(("e2e manifest run_s / compile_s",
                         f"{res.manifest['timings']['run_s']:.2f} / "
                         f"{res.manifest['timings']['compile_s']:.2f}", "-", None))
            r = e2e_subprocess(SRC, ref_root, tmp / "sub")
            gb = r["hwm"] / 2**30
            rows.append((f"peak RSS e2e subprocess (GB, {a.ticks / 1e6:g}M)", f"{gb:.2f}",
                         "< 1.5" if a.ticks >= 100_000_000 else "-",
                         gb < 1.5 if a.ticks >= 100_000_000 else None))
            rows.append(("e2e subprocess (after warm-up): run() wall / compile_s / run_s (s)",
                         f"{r['wall']:.2f} / {r['timings']['compile_s']:.2f} / "
                         f"{r['timings']['run_s']:.2f}", "-", None))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if a.crash is not None:
        tmp = Path(tempfile.mkdtemp(prefix="bench_crash_"))
        try:
            e2e_subprocess(SRC, a.crash, tmp / "first")  # validates the files once (validated.py)
            r = e2e_subprocess(SRC, a.crash, tmp / "run")
            rows.append((f"e2e crash dataset, all symbols (s wall, {r['timings']['events'] / 1e6:.0f}M "
                         f"events; new process after warm-up)", f"{r['wall']:.2f}", "<= 2",
                         r["wall"] <= 2))
            rows.append(("e2e crash dataset: peak RSS (GB) / CPU s of the process",
                         f"{r['hwm'] / 2**30:.2f} / {r['cpu']:.1f}", "<= 1 GB", r["hwm"] <= 2**30))
            # the same run from the replay cache (`backtest data cache`, built once and timed here)
            kept = cache_root / "replay"
            t = time.perf_counter()
            p = subprocess.run([sys.executable, "-m", "backtest", "data", "cache", str(a.crash), "--json"],
                               check=True, capture_output=True, text=True,
                               env=dict(os.environ, CASCADE_REPLAY_CACHE=str(kept), PYTHONPATH=str(SRC)))
            entry = json.loads(p.stdout)
            built = (f"built in {time.perf_counter() - t:.1f} s" if entry["built"]
                     else "built by an earlier run")
            e2e_subprocess(SRC, a.crash, tmp / "first", kept)
            r = e2e_subprocess(SRC, a.crash, tmp / "run", kept)
            rows.append((f"e2e crash dataset from the replay cache (s wall; entry of "
                         f"{entry['bytes'] / 1e9:.1f} GB {built})", f"{r['wall']:.2f}", "<= 2",
                         r["wall"] <= 2))
            rows.append(("e2e crash dataset from the replay cache: peak RSS (GB) / CPU s",
                         f"{r['hwm'] / 2**30:.2f} / {r['cpu']:.1f}", "<= 1 GB", r["hwm"] <= 2**30))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if a.sweep_reps > 0 or a.s3 is not None:
        sys.path.append(str(REPO))  # the sibling benchmarks (SRC's copy holds only their strategies)
    if a.sweep_reps > 0:
        from benchmarks.bench_sweep import measure as sweep_measure

        med, run_wall = sweep_measure(a.ticks, a.sweep_reps, old=False)
        ratio = med["sweep"][0] / run_wall
        rows.append((f"sweep of 64 sets / one run, CLI processes, warm (x wall; medians of "
                     f"{a.sweep_reps}: {med['sweep'][0]:.2f} / {run_wall:.2f} s)", f"{ratio:.2f}", "<= 4",
                     ratio <= 4))
    if a.s3 is not None:
        from benchmarks.bench_s3 import measure as s3_measure

        events, med = s3_measure(str(a.s3), reps=3, server="process")
        for name, base in (("cold", "local"), ("cold, new objects", "local, first read")):
            r = med[name] / med[base]
            rows.append((f"S3 read ({name}) / local disk ({base}), {events / 1e6:.1f}M events, moto process",
                         f"{r:.2f}", "<= 2", r <= 2))
    if "start" not in skip:
        # the VM's speed varies between identical runs: cold starts are repeated, median reported
        def spread(xs):
            return f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})" if len(xs) > 1 else f"{xs[0]:.2f}"

        # the three CASCADE_PARALLEL_COMPILE policies of backtest/core/warm.py, interleaved so
        # that the machine's drift hits them alike
        runs = {"auto": [], "1": [], "0": []}
        for _ in range(a.cold_runs):
            for mode in runs:
                runs[mode].append(start_times(Path(tempfile.mkdtemp(prefix="bench_start_")) / "c", mode))
        auto = runs["auto"]
        COLD, WARM, WARM_REFRESH, EDITED = range(4)  # start_times' starts: (wall s, report) each
        colds = [r[COLD][0] for r in auto]
        cold, worst = statistics.median(colds), max(colds)
        rows.append((f"cold compile, new process, default policy (auto) (s wall; median (range) of "
                     f"{a.cold_runs})", spread(colds), "median <= 10, max <= 15",
                     cold <= 10 and worst <= 15))
        rows.append(("cold compile (auto): CPU time of that process (s)",
                     spread([r[COLD][1]["cpu"] for r in auto]), "-", None))
        rows.append(("cold compile (auto): runs that started the helper",
                     f"{sum(r[COLD][1]['helper'] for r in auto)} of {len(auto)}", "-", None))
        rows.append(("cold compile, helper always (CASCADE_PARALLEL_COMPILE=1) (s wall)",
                     spread([r[COLD][0] for r in runs["1"]]), "-", None))
        rows.append(("cold compile, one process (CASCADE_PARALLEL_COMPILE=0) (s wall)",
                     spread([r[COLD][0] for r in runs["0"]]), "-", None))
        warms = [r[WARM][0] for rs in runs.values() for r in rs]
        rw = auto[0][WARM][1]
        rows.append(("warm start, new process (s wall; median (range))", spread(warms), "<= 0.8",
                     statistics.median(warms) <= 0.8))
        rows.append(("warm start, CPU time (s)", f"{rw['cpu']:.2f}", "-", None))
        unpatched = [r[WARM_REFRESH][0] for rs in runs.values() for r in rs]
        rows.append(("warm start without lazyload (numba refreshes its context first) (s wall); "
                     "lazyload / that, median of the pairs", f"{spread(unpatched)}; "
                     f"{statistics.median(w / u for w, u in zip(warms, unpatched)):.2f}", "-", None))
        rows.append(("warm start cache hits / misses", f"{rw['hits']} / {rw['misses']}",
                     ">=1 / 0", rw["hits"] >= 1 and rw["misses"] == 0))
        rows.append(("edited strategy, new process: its loop compiles, the framework loads (s wall)",
                     spread([r[EDITED][0] for rs in runs.values() for r in rs]), "-", None))
        if a.cold_under_load:
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            try:
                time.sleep(2.0)  # busy before the cold start samples the load (warm.wanted)
                loaded = [start_times(Path(tempfile.mkdtemp(prefix="bench_start_")) / "c", "auto",
                                      cold_only=True)[0] for _ in range(a.cold_under_load)]
            finally:
                spinner.kill()
            walls = [w for w, _ in loaded]
            rows.append((f"cold compile (auto) while another process keeps a core busy (s wall; median "
                         f"(range) of {len(walls)}; helper started in {sum(r['helper'] for _, r in loaded)})",
                         spread(walls), "max <= 15", max(walls) <= 15))

    print(f"\nCascade engine benchmark, {dt.date.today()}, {a.ticks:,} ticks, numba "
          f"{numba.__version__}, {os.cpu_count()} cpu, load average at the end "
          f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    w0 = max(len(r[0]) for r in rows)
    print(f"| {'measure':<{w0}} | value | target | ok |")
    print(f"|{'-' * (w0 + 2)}|-------|--------|----|")
    for name, v, tgt, ok in rows:  # (also printed as measured, see `note`)
        print(f"| {name:<{w0}} | {v} | {tgt} | {'-' if ok is None else ('yes' if ok else 'NO')} |")


if __name__ == "__main__":
    main()
