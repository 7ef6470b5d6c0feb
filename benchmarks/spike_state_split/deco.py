"""The decorators of the spike: the project's (`backtest.core.jit.kernel` for kernels, the loop as
plugins/codegen.py declares it), or plain `numba.njit(cache=True)` with SPIKE_PLAIN=1 (no
numba_speedups, no link-only libraries) to see what those still buy with each layout.
SPIKE_NRT=0 compiles everything with numba's `_nrt=False`: arrays are then not reference-counted
(no NRT_incref/decref around each kernel call that takes arrays); only valid for code that
allocates no arrays."""
import os

import numba

PLAIN = os.environ.get("SPIKE_PLAIN") == "1"
NRT = {"_nrt": False} if os.environ.get("SPIKE_NRT") == "0" else {}

if PLAIN:
    def kernel(fn=None, **options):
        if fn is None:
            return lambda f: kernel(f, **options)
        return numba.njit(cache=True, **NRT, **options)(fn)
else:
    from backtest.core.jit import kernel as _kernel

    def kernel(fn=None, **options):
        return _kernel(fn, **NRT, **options)


def loop(fn):
    return numba.njit(cache=True, nogil=True, no_cfunc_wrapper=True, **NRT)(fn)
