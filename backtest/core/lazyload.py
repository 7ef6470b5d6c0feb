"""A warm start loads cached kernels without first loading numba's whole compiler.

numba's `Cache.load_overload` calls `target_context.refresh()` before it reads a cache entry. That
refresh imports and registers every typing and lowering implementation numba has (numpy's array
math, linear algebra, random generators, typed containers, jitclass, ...): about a quarter of a
warm start's CPU (0.85 s against 1.12 s whole-process, benchmarks/README.md), and 17 MB.

Loading a cached function needs none of it: the entry is machine code and the environment it
references, rebuilt by the code generator, and the loaded function is then called through its
native CPython wrapper. Everything that compiles still gets the registries: numba's compiler
refreshes both contexts itself before it types anything (`CompilerBase.__init__`), so a kernel that
misses the cache, or a strategy loop compiled after the framework loaded, sees every implementation
as before. A refresh is incremental, so loading first and compiling later installs the same set.
"""
from numba.core import caching


def install() -> None:
    """Replace numba's `Cache.load_overload` with one that does not refresh first (idempotent)."""
    if getattr(caching.Cache.load_overload, "_cascade_lazy", False):
        return

    def load_overload(self, sig, target_context):
        with self._guard_against_spurious_io_errors():  # numba's body, without the refresh
            return self._load_overload(sig, target_context)
        # None when the guard swallowed a spurious I/O error (as numba's)

    load_overload._cascade_lazy = True
    caching.Cache.load_overload = load_overload
