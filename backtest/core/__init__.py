"""The compiled engine: numpy records and `@kernel` functions (jit.py) only.

numba keys a cached function by its own file's content, not by the files it calls, so a cached
helper could run stale code after another framework file changes (an upgrade, an edit). The
numba cache therefore lives in a folder named by a hash of the whole framework package, set here
before any kernel is decorated.
"""
import hashlib
import os
import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]


def framework_hash() -> str:
    h = hashlib.sha256()
    for p in sorted(_PACKAGE.rglob("*.py")):
        if "__pycache__" not in p.parts:
            h.update(p.relative_to(_PACKAGE).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def numba_cache_dir() -> Path:
    root = os.environ.get("CASCADE_CACHE_DIR")  # as backtest/cachedir.py (core imports only core)
    base = Path(root) if root else Path.home() / ".cache" / "cascade"
    # bounds-checked kernels (NUMBA_BOUNDSCHECK, `--boundscheck`) are cached apart: numba's cache
    # key does not tell them from unchecked ones
    checked = os.environ.get("NUMBA_BOUNDSCHECK", "0") not in ("", "0")
    # so are kernels compiled without one of our numba patches that change the compiled code (a
    # diagnostic: numba_patches())
    patches = numba_patches()
    off = "".join(f"-no-{name}" for name in CODE_PATCHES if name not in patches)
    return base / "numba" / (framework_hash() + ("-boundscheck" if checked else "") + off)


NUMBA_PATCHES = ("linkonly", "lazyload", "shortnames")  # linkonly.py, lazyload.py, short_names.py
CODE_PATCHES = ("linkonly", "shortnames")  # those that change what is compiled and cached (lazyload only loads)
NUMBA_TESTED = "0.68."  # the numba minor version the patches were written and verified against


def numba_patches() -> tuple[str, ...]:
    """The numba patches in force: all of NUMBA_PATCHES on the numba minor version they were written
    for, none on another (numba's plain, slower compile and warm start;
    tests/test_numba_patches.py fails there so that they are re-verified). `CASCADE_NUMBA_PATCHES=`
    (a comma-separated subset, empty for none) switches some off to measure what each saves
    (benchmarks/bench_compile.py, bench_engine.py's warm start)."""
    from importlib.metadata import version

    if not version("numba").startswith(NUMBA_TESTED):
        return ()
    chosen = os.environ.get("CASCADE_NUMBA_PATCHES")
    if chosen is None:
        return NUMBA_PATCHES
    return tuple(name for name in NUMBA_PATCHES if name in chosen.split(","))


def _point_numba_cache() -> Path:
    path = numba_cache_dir()
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    if "numba" in sys.modules:  # imported before us: numba reads this when a kernel is decorated
        sys.modules["numba"].config.CACHE_DIR = str(path)
    return path


NUMBA_CACHE = _point_numba_cache()  # the folder this process's kernels are cached in
