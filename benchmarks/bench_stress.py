"""Wall time of a Monte Carlo stress test (not a test: timings depend on the machine).

    .venv/bin/python benchmarks/bench_stress.py --paths 200 --jobs 2

Generates the feb-2026-crash sample at scale 1 (~1M ticks, all ten symbols) into a temporary
folder unless --data is given, then runs `bt.stress` with the 10x isolated BTC long of the
playbook (buy_and_hold) on the replay plus N block-bootstrap paths (each path: load the dataset,
resample, write the derived dataset, run the engine on all its events, save the run), and prints
the wall time, the CPU time (this process and its workers; on a shared machine the wall time
mostly measures the other load), the time per path and the probability of liquidation. The strategy is compiled
(or loaded from the cache) by a warm-up run first, so the figure is the stress test itself.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the worker processes)."""
    import resource

    return sum(resource.getrusage(w).ru_utime + resource.getrusage(w).ru_stime
               for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--data", type=Path, default=None, help="dataset folder (default: generate scale 1)")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--crowd", action="store_true", help="add the default crowd's cascade to every path")
    ap.add_argument("--out", type=Path, default=None, help="keep the stress folder here")
    a = ap.parse_args()

    import backtest as bt
    from backtest.data.generate import generate_dataset

    tmp = Path(tempfile.mkdtemp(prefix="bench_stress_"))
    try:
        data = a.data
        if data is None:
            data = tmp / "crash"
            t = time.perf_counter()
            s = generate_dataset("feb-2026-crash", data, seed=7, scale=a.scale)
            print(f"generated {s['ticks']:,} ticks in {time.perf_counter() - t:.1f} s")
        kw = dict(params={"leverage": 10.0, "fraction": 0.98},
                  config={"initial_balance": 10_000.0, "leverage": {"BTCUSDT": 10}, "margin": {"mode": "isolated"}})
        t = time.perf_counter()
        warm = bt.run("buy_and_hold", data, **kw)
        print(f"warm-up run: {time.perf_counter() - t:.1f} s, {warm.manifest['timings']['events']:,} events")
        out = a.out or tmp / "stress"
        t, cpu0 = time.perf_counter(), _cpu()
        res = bt.stress("buy_and_hold", data, out=out, paths=a.paths, jobs=a.jobs, crowd=True if a.crowd else None,
                        **kw)
        wall, cpu = time.perf_counter() - t, _cpu() - cpu0
        mc = res.summary.filter(res.summary["group"] == "monte carlo")
        p = mc["p_liquidation"][0] if mc.height else float("nan")
        print(f"stress: {res.table.height} runs ({res.ran} ran, {res.failed} failed) in {wall:.1f} s wall "
              f"= {wall / max(res.ran, 1):.2f} s per run with {a.jobs} job(s); P(liquidation) at 10x {p:.1%}")
        print(f"CPU time (this process + workers): {cpu:.1f} s = {cpu / max(res.ran, 1):.2f} CPU-s per run "
              f"-> {cpu / 2:.0f} s on 2 idle cores")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
