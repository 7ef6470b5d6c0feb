"""One measurement process: `python measure.py VARIANT [--events N] [--nsym N] [--orders N]`.

Prints one JSON line: the first call's time (a compile when the cache is empty, a load when it
is warm) and numba's cache hits/misses of the loop and its kernels, the loop's events/s on N
synthetic events (best of 3, by CPU time), whether the loop's machine IR still calls a kernel (cold only:
an inlined kernel leaves no call), and whether a state with `--big-nsym` symbols and twice the
order slots reuses the compiled loop (split layouts only: the wide record fixes 64/4,096 in its
type). Run by run_all.py with a fresh CASCADE_CACHE_DIR per variant.
"""
import argparse
import importlib
import json
import re
import time

import numpy as np

from layouts import events

ap = argparse.ArgumentParser()
ap.add_argument("variant", choices=["wide", "split", "tup", "split_inl", "tup_inl", "split_rec"])
ap.add_argument("--events", type=int, default=10_000_000)
ap.add_argument("--nsym", type=int, default=16)
ap.add_argument("--orders", type=int, default=4096)
ap.add_argument("--big-nsym", type=int, default=200)
a = ap.parse_args()

t0 = time.perf_counter()
mod = importlib.import_module(a.variant)
out = {"variant": a.variant, "import_s": round(time.perf_counter() - t0, 3)}


def hits_misses():
    h = m = 0
    for d in (mod.run, *mod.KERNELS):
        h += sum(d.stats.cache_hits.values())
        m += sum(d.stats.cache_misses.values())
    return h, m


small = events(1000, a.nsym, seed=1)
st = mod.state(a.nsym, a.orders)
t0, c0 = time.perf_counter(), time.process_time()
mod.run(*small, *st)
out["first_call_s"] = round(time.perf_counter() - t0, 3)
out["first_call_cpu_s"] = round(time.process_time() - c0, 3)  # robust on a loaded machine
out["loop_cache_hits"] = sum(mod.run.stats.cache_hits.values())
out["loop_cache_misses"] = sum(mod.run.stats.cache_misses.values())
out["all_hits"], out["all_misses"] = hits_misses()

if out["loop_cache_hits"] == 0:  # compiled here: the loop's optimised IR is available
    ir = mod.run.inspect_llvm(mod.run.signatures[0])
    names = "|".join(k.py_func.__name__ for k in mod.KERNELS)
    callees = re.findall(r"call [^@\n]*@\"?(_ZN[^\s(\"]*(?:%s)[^\s(\"]*)" % names, ir)
    out["kernel_calls_in_loop_ir"] = sorted({k.py_func.__name__ for k in mod.KERNELS for x in callees
                                             if f"{len(k.py_func.__name__)}{k.py_func.__name__}B" in x})

ev = events(a.events, a.nsym, seed=2)
best = np.inf
for _ in range(3):
    st = mod.state(a.nsym, a.orders)
    t0 = time.process_time()  # CPU time of this (single-threaded) process: robust on a loaded machine
    fills = mod.run(*ev, *st)
    best = min(best, time.process_time() - t0)
out["events"] = a.events
out["fills"] = int(fills)
out["Mevents_per_s"] = round(a.events / best / 1e6, 1)

if a.variant != "wide":
    n_sig = len(mod.run.signatures)
    big = events(1000, a.big_nsym, seed=3)
    t0 = time.perf_counter()
    mod.run(*big, *mod.state(a.big_nsym, 2 * a.orders))
    out["big_state_call_s"] = round(time.perf_counter() - t0, 4)
    out["big_state_recompiled"] = len(mod.run.signatures) != n_sig or hits_misses()[1] != out["all_misses"]
print(json.dumps(out))
