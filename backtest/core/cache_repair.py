"""A corrupt numba cache entry is quarantined and recompiled, never blamed on the strategy.

numba trusts its cache files: a truncated, zero-length or garbled `.nbi` index or `.nbc` data file
(a full disk, a killed writer, a bad copy) makes loading raise (a pickle error, an LLVM parse
error with the module's whole IR in the message) on every later run, and the run reports it as
"<Strategy> does not compile". `install()` wraps numba's `Cache.load_overload`: when loading an
entry fails, the function's index and data files move to `<cache>/quarantine/` (kept to look at,
never loaded again), one line on stderr says so, and the load counts as a miss, so numba compiles
the function once more and saves a fresh entry.
"""
import os
import sys
import time

from numba.core import caching

QUARANTINE = "quarantine"


def _entry_files(cache_file) -> list[str]:
    """The index and every data file of one function's cache entry."""
    folder = cache_file._cache_path
    prefix, suffix = cache_file._data_name_pattern.split("{number:d}")
    data = [n for n in os.listdir(folder) if n.startswith(prefix) and n.endswith(suffix)
            and n[len(prefix):-len(suffix)].isdigit()]
    return [cache_file._index_path] + [os.path.join(folder, n) for n in sorted(data)]


def quarantine(cache_file) -> str:
    """Move one function's cache files aside; returns the folder they went to."""
    folder = os.path.join(os.path.dirname(cache_file._cache_path), QUARANTINE,
                          time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}")
    os.makedirs(folder, exist_ok=True)
    for path in _entry_files(cache_file):
        try:
            os.replace(path, os.path.join(folder, os.path.basename(path)))
        except FileNotFoundError:  # another process moved it first
            pass
    return folder


def _short(e: BaseException, limit: int = 120) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


def install() -> None:
    """Make every numba cache load in this process repair a corrupt entry (idempotent)."""
    load = caching.Cache.load_overload
    if getattr(load, "_cascade_repairs", False):
        return

    def load_overload(self, sig, target_context):
        try:
            return load(self, sig, target_context)
        except Exception as e:  # anything a damaged file can raise; a miss recompiles it
            try:
                where = quarantine(self._cache_file)
            except OSError as move_error:  # read-only cache: recompile anyway, in memory
                where = f"nowhere ({_short(move_error, 60)})"
            fn = self._py_func
            sys.stderr.write(f"note: the numba cache of {fn.__module__}.{fn.__qualname__} was corrupt "
                             f"({_short(e)}); moved it to {where} and recompiling\n")
            return None

    load_overload._cascade_repairs = True
    caching.Cache.load_overload = load_overload
