"""Kernels compiled with or without the rarely used paths, chosen by the type of the state.

Most runs trade linear contracts in cross margin on trades and quotes: no inverse or spot
instrument, isolated margin or partial liquidation, no L2 book, queue model or loans. The
kernels' code for those paths was still typed, lowered and linked into every run's loop, since
whether a run reaches them was only known at run time (`c.inst[s].type`, `c.run.queue_model`,
...): about a fifth of a cold start's compile work (benchmarks/README.md). pack.py now decides
it before the loop compiles, and says so in the state's *type*: `c.rare` is True, or None when
the run cannot reach those paths. A call to such a path goes through a gate made by
`rare_path`; numba picks the gate's body while it types the caller, from `c`'s type: the path
itself, or just its `default` result, so that in the lean variant the path's kernels are never
typed nor compiled. As `c` is in every kernel's signature, each variant has
its own compiled code and cache entries, and a run with both kinds of state simply compiles both.

The gate's default is never used at run time: pack.rare_paths_needed() keeps the paths whenever
the run's instruments, data, config or strategy could reach them (tests/test_rare_paths.py
compares each lean run with the same run on every path). Without numba's compiler
(NUMBA_DISABLE_JIT, the oracle's tests) a gate always calls its path.
"""
from numba.core import types
from numba.extending import overload

# the gate's own compile, as a kernel's (jit.py): no reference counting, no Python wrapper
_GATE_OPTIONS = dict(_nrt=False, no_cpython_wrapper=True, no_cfunc_wrapper=True)


def lean(state_type) -> bool:
    """True when numba's type of a State is the variant without the rare paths."""
    return isinstance(state_type.types[state_type.fields.index("rare")], types.NoneType)


def rare_path(fn, default, takes_c: bool = True):
    """A gate for calls `gate(c, *args)` to the kernel `fn` on a rare path: `fn(c, *args)` (or
    `fn(*args)` when it does not take the state), or `default` in the lean variant."""
    if takes_c:
        def gate(c, *args):
            return fn(c, *args)
    else:
        def gate(c, *args):
            return fn(*args)
    gate.__name__ = gate.__qualname__ = f"rare_{fn.__name__}"

    @overload(gate, jit_options=_GATE_OPTIONS)
    def _typed(c, *args):
        if lean(c):
            return lambda c, *args: default
        if takes_c:
            return lambda c, *args: fn(c, *args)
        return lambda c, *args: fn(*args)

    return gate
