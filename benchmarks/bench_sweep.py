"""Batched sweep benchmark (not a test: timings depend on the machine). Prints one table.

    .venv/bin/python benchmarks/bench_sweep.py --ticks 10_000_000

`backtest sweep` of 64 parameter sets of the reference strategy (entry 61000..62500 step 100 x
stop 59000..60500 step 500) against one `backtest run` of it, on the 10M-tick BTCUSDT dataset
that benchmarks/bench_engine.py builds (its builder, its cache folder), every command a new CLI
process with a warm numba cache, from a frozen copy of the source (bench_data.snapshot_source).
Rows, each the median of --reps, in the order they ran within each repetition (interleaved, so
that the shared machine's load drifts alike over all of them):

  run               backtest run reference (one parameter set)
  sweep             backtest sweep, defaults: one batch, one pass over the data, its sets shared
                    by --jobs threads (default 2)
  sweep --jobs 1    one batch, one thread
  sweep 2 procs     --batch-size 32: two batches in two processes, each reading the data
  sweep per set     --batch-size 1: one pass over the data per set, two processes (the per-run
                    path sweeps had before batching; --skip old leaves it out, it is slow)

Wall time and CPU time (user + sys of the process and its children) of each; the ratio is the
wall time over the run's wall time in the same repetition set. Target (issue 18): sweep <= 4x.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_data import snapshot_source, write_dataset  # noqa: E402

GRID = ["--grid", "entry=61000:62500:100", "--grid", "stop=59000:60500:500"]  # 16 x 4 = 64 sets


def cli(src: Path, args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of `python -m backtest ARGS` run from the frozen source."""
    env = dict(os.environ, PYTHONPATH=str(src))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "backtest", *args, "--quiet", "--json"], env=env,
                       cwd=str(src), capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        raise RuntimeError(f"backtest {' '.join(args)} failed:\n{p.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(ticks: int, reps: int = 3, jobs: int = 2, old: bool = True) -> tuple[dict, float]:
    """{mode: (median wall s, median CPU s)} of the commands above, and the run's median wall s."""
    cache_root = Path(os.environ.get("CASCADE_CACHE_DIR") or Path.home() / ".cache" / "cascade")
    src = snapshot_source(cache_root / "bench_sweep_src")
    data = cache_root / "bench" / f"btc_{ticks}"
    t = time.perf_counter()
    write_dataset(data, ticks, ["BTCUSDT"])
    print(f"# data: {data} ({ticks:,} trades; prepared in {time.perf_counter() - t:.1f} s)", flush=True)
    work = cache_root / "bench_sweep_out"
    shutil.rmtree(work, ignore_errors=True)
    j = str(jobs)
    modes = {
        "run": ["run", "reference", "--data", str(data), "--out", "{out}"],
        "sweep": ["sweep", "reference", "--data", str(data), "--out", "{out}", *GRID, "--jobs", j],
        "sweep --jobs 1": ["sweep", "reference", "--data", str(data), "--out", "{out}", *GRID, "--jobs", "1"],
        "sweep 2 procs (--batch-size 32)": ["sweep", "reference", "--data", str(data), "--out", "{out}",
                                            *GRID, "--jobs", j, "--batch-size", "32"],
    }
    if old:
        modes["sweep per set (--batch-size 1)"] = ["sweep", "reference", "--data", str(data), "--out",
                                                   "{out}", *GRID, "--jobs", j, "--batch-size", "1"]

    def once(name: str) -> tuple[float, float]:
        out = work / name.split()[0]
        shutil.rmtree(out, ignore_errors=True)  # every set runs: nothing skipped
        return cli(src, [str(x).replace("{out}", str(out)) for x in modes[name]])

    once("run")  # warm: compiles into the cache (a frozen source: no recompiles after this)
    times: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    for rep in range(reps):
        for name in modes:
            if name.startswith("sweep per set") and rep > 0:
                continue  # slow and far from the target: measured once
            times[name].append(once(name))
            print(f"# rep {rep} {name}: {times[name][-1][0]:.2f} s wall, {times[name][-1][1]:.2f} s CPU",
                  flush=True)
    shutil.rmtree(work, ignore_errors=True)
    med = {name: (statistics.median(w for w, _ in ts), statistics.median(c for _, c in ts))
           for name, ts in times.items()}
    return med, med["run"][0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=lambda s: int(s.replace("_", "")), default=10_000_000)
    ap.add_argument("--reps", type=int, default=3, help="repetitions (medians are reported)")
    ap.add_argument("--jobs", type=int, default=2, help="--jobs of the sweeps")
    ap.add_argument("--skip", default="", help="comma list of: old")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    med, run_wall = measure(a.ticks, a.reps, a.jobs, old="old" not in skip)
    rows = [("measure", "wall s", "CPU s", "x run (wall)", "target", "ok")]
    for name, (wall, cpu) in med.items():
        ratio = wall / run_wall
        target, ok = ("<= 4", "yes" if ratio <= 4 else "no") if name == "sweep" else ("-", "-")
        label = name if name == "run" else f"{name}, 64 sets"
        rows.append((label, f"{wall:.2f}", f"{cpu:.2f}", f"{ratio:.2f}", target, ok))
    print(f"\n{a.ticks:,} ticks, reference strategy, {a.reps} repetition(s) (medians), "
          f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs\n")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, r in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if k == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")

if __name__ == "__main__":
    main()
