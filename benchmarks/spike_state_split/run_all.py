"""Run every measurement of the spike in fresh processes and print the table of README.md.

    cd <repo> && PYTHONPATH=. .venv/bin/python benchmarks/spike_state_split/run_all.py [--events N]

Per variant and style: a fresh empty cache (CASCADE_CACHE_DIR in a temporary folder), a cold
process, then a warm process on the same cache. Styles: project (backtest.core.jit.kernel), plain
(njit(cache=True), SPIKE_PLAIN=1), nrt_off (project with _nrt=False, SPIKE_NRT=0). The temporary
caches are removed at the end.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

ap = argparse.ArgumentParser()
ap.add_argument("--events", type=int, default=10_000_000)
ap.add_argument("--variants", default="wide,split,tup,split_inl,tup_inl,split_rec")
ap.add_argument("--styles", default="project,nrt_off")
a = ap.parse_args()


def measure(variant, cache, style):
    env = {**os.environ, "CASCADE_CACHE_DIR": str(cache), "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}",
           "SPIKE_PLAIN": "1" if style == "plain" else "0", "SPIKE_NRT": "0" if style == "nrt_off" else "1"}
    env.pop("NUMBA_CACHE_DIR", None)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, str(HERE / "measure.py"), variant, "--events", str(a.events)],
                       env=env, capture_output=True, text=True, check=True)
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["process_s"] = round(time.perf_counter() - t0, 1)
    return r


rows = []
for v in a.variants.split(","):
    for style in a.styles.split(","):
        cache = Path(tempfile.mkdtemp(prefix=f"spike-{v}-"))
        try:
            cold = measure(v, cache, style)
            warm = measure(v, cache, style)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        rows.append((v, style, cold, warm))
        print(json.dumps({"cold": cold, "warm": warm}), flush=True)

print()
print("| layout | decorators | cold first call (compile) s wall / CPU | warm first call (cache load) s wall / CPU | warm loop cache hits / misses "
      "| kernel calls left in loop IR | M events/s cold / warm | fills | 200 symbols, 8,192 orders recompiles? |")
print("|---|---|---|---|---|---|---|---|---|")
for v, style, c, w in rows:
    calls = ", ".join(c.get("kernel_calls_in_loop_ir", [])) or "none"
    big = "n/a (64/4,096 fixed in the type)" if v == "wide" else (
        "yes" if c["big_state_recompiled"] or w["big_state_recompiled"] else "no")
    print(f"| {v} | {style} | {c['first_call_s']} / {c['first_call_cpu_s']} | {w['first_call_s']} / {w['first_call_cpu_s']} | {w['loop_cache_hits']} / "
          f"{w['loop_cache_misses']} | {calls} | {c['Mevents_per_s']} / {w['Mevents_per_s']} | {c['fills']} | {big} |")
