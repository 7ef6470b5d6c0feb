"""Why a layout runs slower: reference-count calls in the loop's IR and the size of the type reprs.

    cd <repo> && CASCADE_CACHE_DIR=$(mktemp -d) PYTHONPATH=.:benchmarks/spike_state_split \
        .venv/bin/python benchmarks/spike_state_split/probe_ir.py

For each layout (one process, fresh cache): NRT_incref/NRT_decref calls in the compiled loop (each
an atomic add on an array's meminfo; a Record argument has none), and the time numba's own
`Record.__repr__` takes for the state's types (numba formats argument types for every compiler
pass: why core/numba_speedups.py caches the repr of the wide record).
"""
import importlib
import re
import time

from numba import typeof
from numba.core.types import npytypes

from backtest.core.numba_speedups import _cached_record_repr, _record_repr
from layouts import events

print("| layout | NRT_incref / NRT_decref call sites in the loop IR | state type repr chars | numba repr ms (uncached) |")
print("|---|---|---|---|")
for name in ("wide", "split", "tup", "split_inl", "tup_inl", "split_rec"):
    mod = importlib.import_module(name)
    st = mod.state(16, 4096)
    mod.run(*events(1000, 16), *st)
    ir = mod.run.inspect_llvm(mod.run.signatures[0])
    body = next(f for f in ir.split("\ndefine ")[1:]  # the loop itself, not its CPython wrapper
                if re.match(r"[^@\n]*@_ZN%d%s3run" % (len(name), name), f))
    inc = len(re.findall(r"call void @NRT_incref", body))
    dec = len(re.findall(r"call void @NRT_decref", body))
    tys = [typeof(x) for x in st]
    npytypes.Record.__repr__ = _record_repr  # numba's own repr, not the cached one
    t0 = time.perf_counter()
    chars = sum(len(repr(t)) for t in tys)
    ms = (time.perf_counter() - t0) * 1e3
    npytypes.Record.__repr__ = _cached_record_repr
    print(f"| {name} | {inc} / {dec} | {chars:,} | {ms:.2f} |")
