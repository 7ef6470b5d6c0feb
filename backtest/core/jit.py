"""`kernel`: the decorator of every compiled framework function (engine helpers and the SDK).

numba compiles a dispatcher once per distinct tuple of argument types, and a constant argument
types as its own Literal: `finish(c, j, ST_FILLED, R_OCO, t)` and `finish(c, j, ST_EXPIRED,
R_IOC, t)` were two compilations, as were calls with an int32 symbol index from the data and an
int64 one from a loop counter. A cold start compiled 151 functions for 85 distinct ones.

A kernel widens the argument types before numba picks or compiles an overload: literals lose
their value, integers become int64, float32 becomes float64, and omitted arguments take their
default's type. Each kernel therefore compiles once (tests/test_jit_cache.py checks it), and every
call site converts its arguments to that one signature the way numba converts arguments for a
function with an explicit signature. Widening never changes a result: values are the same, and
int64 arithmetic cannot overflow where the narrower type could.

A cold start is also split across processes (warm.py): a kernel compiles under a file lock next
to the numba cache, so that when two processes reach the same kernel, one compiles and saves it
and the other then loads it from the cache instead of compiling it a second time. Locks are taken
in call order on an acyclic call graph (kernels never recurse), so two processes cannot deadlock.
The main process waits for its own cold-start helper at most HELPER_WAIT_S (once: after that it
never waits for the helper again), then compiles the kernel itself: the helper runs at a lower
priority and may be descheduled on a busy machine, and waiting for it made cold starts slower
than one process alone. Two ordinary
processes (e.g. two runs started together) still wait for each other, so nothing compiles twice.
"""
import contextlib
import os
import time

import numba
from numba import typeof
from numba.core import types
from numba.core.dispatcher import Dispatcher

from . import NUMBA_CACHE, cache_repair, lazyload, numba_patches, short_names
from .linkonly import LinkOnlyCompiler

try:
    import fcntl
except ImportError:  # Windows: no lock, a kernel may then compile in both processes
    fcntl = None

_PATCHES = numba_patches()
if "lazyload" in _PATCHES:
    lazyload.install()  # before cache_repair, which wraps whatever load_overload is then
if "shortnames" in _PATCHES:
    short_names.install()
cache_repair.install()  # a corrupt cache entry recompiles instead of failing every run


def _widen(t):
    t = types.unliteral(t)
    if isinstance(t, types.Boolean):
        return t
    if isinstance(t, types.Integer) and (t.signed or t.bitwidth < 64):
        return types.int64
    if t == types.float32:
        return types.float64
    return t


def widening(dispatcher):
    """Make calls from compiled code to this dispatcher use widened argument types."""
    if not isinstance(dispatcher, Dispatcher):  # NUMBA_DISABLE_JIT: a plain function
        return dispatcher
    resolve = dispatcher.get_call_template

    def get_call_template(args, kws):
        # keywords folded into positions, and an omitted argument typed as its default's type:
        # call sites then pass the default as a constant instead of compiling a variant per
        # combination of omitted arguments
        _, folded = dispatcher.fold_argument_types(args, kws)
        return resolve(tuple(_widen(typeof(a.value) if isinstance(a, types.Omitted) else a)
                             for a in folded), {})

    dispatcher.get_call_template = get_call_template
    return dispatcher


HELPER_WAIT_S = 0.5


def helper_running() -> bool:
    """True while this process's cold-start helper (warm.py) runs; warm.start() replaces it."""
    return False


_helper_slow = False  # our helper once kept us waiting HELPER_WAIT_S: never wait for it again


def _acquire(fd: int) -> bool:
    """Take the lock; while our own helper runs, give up after HELPER_WAIT_S (False), once per
    process: afterwards a kernel the helper holds is compiled here at once (no wait adds up)."""
    global _helper_slow
    if not helper_running():
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True
    deadline = time.monotonic() + (0.0 if _helper_slow else HELPER_WAIT_S)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                _helper_slow = True
                return False
            time.sleep(0.01)


@contextlib.contextmanager
def _compile_lock(dispatcher):
    fd = None
    if fcntl is not None:
        fn = dispatcher.py_func
        folder = NUMBA_CACHE / ".compile-locks"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder / f"{fn.__module__}.{fn.__qualname__}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:  # a read-only cache folder: compile unlocked (numba will not cache either)
            fd = None
    try:
        if fd is not None and not _acquire(fd):  # released when the file closes, or the process dies
            os.close(fd)
            fd = None  # the helper is slow on this kernel: compile it here too
        yield
    finally:
        if fd is not None:
            os.close(fd)


def locked(dispatcher):
    """Compile (or load from the cache) under a lock shared with other processes."""
    if not isinstance(dispatcher, Dispatcher):
        return dispatcher
    compile_ = dispatcher.compile

    def compile(sig):
        if dispatcher.overloads:  # each kernel has one signature (above): already compiled
            return compile_(sig)
        with _compile_lock(dispatcher):
            return compile_(sig)  # numba looks in its cache first

    dispatcher.compile = compile
    return dispatcher


def kernel(fn=None, *, python=False, cold=False, hot=False, **options):
    """`@kernel`, or `@kernel(python=True, error_model="numpy")`: njit(cache=True), widened.
    `cold=True`: called rarely (a liquidation), kept out of line in its callers (linkonly.py).
    `hot=True`: on the per-event path, inlined into its callers by LLVM (linkonly.py; numba's
    `inline="always"` when that patch is off).

    Kernels compile without numba's reference counting (`_nrt=False`, a numba option of the
    version `backtest.core.NUMBA_TESTED` pins): they receive the run's state (core/state.py), a
    namedtuple of arrays, and counting every array in it at every call made the loop 15x slower
    (benchmarks/README.md). The price: a kernel never allocates an array (liquidation.py works in
    the state's `liq` rows instead).

    Only `python=True` kernels get numba's CPython wrapper, the code that lets Python call them;
    the others are called from compiled code only, and skipping the wrapper (and the C-callback
    wrapper nobody uses) saves two of the three LLVM modules numba builds, optimizes and caches
    per function. Those are also compiled to linkable IR only (linkonly.py).
    """
    if fn is None:
        return lambda f: kernel(f, python=python, cold=cold, hot=hot, **options)
    fn._cascade_inline = "noinline" if cold else "alwaysinline" if hot else None  # linkonly.LinkOnlyCompiler
    options.setdefault("no_cfunc_wrapper", True)
    options.setdefault("_nrt", False)
    options.setdefault("no_cpython_wrapper", not python)
    if not python and "linkonly" in _PATCHES:
        options.setdefault("pipeline_class", LinkOnlyCompiler)
    elif hot:
        options.setdefault("inline", "always")
    return locked(widening(numba.njit(cache=True, **options)(fn)))
