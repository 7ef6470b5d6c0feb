"""A warm start loads cached kernels without first loading numba's whole compiler.

numba's `Cache.load_overload` calls `target_context.refresh()` before it reads a cache entry. That
refresh imports and registers every typing and lowering implementation numba has (numpy's array
math, linear algebra, random generators, typed containers, jitclass, ...): about a fifth of a
warm start (0.90 s against 1.13 s whole-process, benchmarks/README.md).

Loading a cached function needs only what its machine code refers to at run time: the symbols
LLVM resolves when it loads the code. numba 0.68 adds those to LLVM's symbol table in four places
(`ll.add_symbol`): when its CPU context starts (C helpers, math functions, exceptions), when the
reference-counting runtime (NRT) initialises, which only `refresh()` does, when
`numba.cpython.hashing` is imported (the hash secrets), and when a parallel function's library
reloads (numba's own `reload_init`). The load here therefore starts the NRT and imports
`hashing` itself, and runs third-party numba extensions' `init` entry points as the refresh
would (they may add symbols too), then reads the entry. Without the NRT a cached function that
allocates (a user's `@njit` helper, the strategy loop's `run_refcounted`) crashed the process.

Everything that compiles still gets the registries: numba's compiler refreshes both contexts
before it types anything (`CompilerBase.__init__`), so a kernel that misses the cache, or a
strategy loop compiled after the framework loaded, sees every implementation. A refresh is
incremental, so loading first and compiling later installs the same set.

Each loaded function also gets its environment back (`numba.core.environment._rebuild_env`): an
object holding the globals of the module that defined it, which numba gets by importing that
module. Only object-mode code reads those globals. The loop's entry holds numba's own compiled
implementations of numpy functions, defined in `numba.np.arraymath`, whose import alone was 62 ms
of a warm start's 0.8 s; a numba module not imported yet therefore gets an environment naming the
module without importing it. numba's own implementations are nopython code, which never reads
the globals; anyone else's module is imported as numba does.
"""
import sys

import numba.cpython.hashing  # noqa: F401  (its import adds the hash secrets' symbols)
from numba.core import caching, entrypoints, environment
from numba.core.runtime import rtsys


def install() -> None:
    """Replace numba's `Cache.load_overload` with one that does not refresh first, and its
    `_rebuild_env` with one that does not import numba's own modules (idempotent)."""
    if getattr(caching.Cache.load_overload, "_cascade_lazy", False):
        return
    numba_rebuild_env = environment._rebuild_env

    def _rebuild_env(modname, consts, env_name):
        # unpickling a cache entry calls this by name, so the module attribute is what it finds
        if not (modname or "").startswith("numba.") or modname in sys.modules:
            return numba_rebuild_env(modname, consts, env_name)
        env = environment.lookup_environment(env_name)
        if env is None:  # as numba's, with the module's name in place of its globals
            env = environment.Environment({"__name__": modname})  # `can_cache` needs the name
            env.consts[:] = consts
            env.env_name = env_name
            environment.Environment._memo[env_name] = env
        return env

    def load_overload(self, sig, target_context):
        # the run-time state a refresh would have set up (see above; `hashing` is imported at
        # the top); each is a no-op after the first load
        rtsys.initialize(target_context)
        entrypoints.init_all()

        with self._guard_against_spurious_io_errors():  # numba's body, without the refresh
            return self._load_overload(sig, target_context)
        # None when the guard swallowed a spurious I/O error (as numba's)

    load_overload._cascade_lazy = True
    caching.Cache.load_overload = load_overload
    environment._rebuild_env = _rebuild_env
