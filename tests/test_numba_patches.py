"""Cascade's numba patches (backtest/core/linkonly.py, lazyload.py) are tied to one numba minor
version."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def test_patches_are_verified_for_this_numba():
    """linkonly.py and lazyload.py replace numba internals of one minor version. On another,
    numba_patches() switches them off (plain numba: a slower cold compile and warm start) and this
    test fails: read them against the new numba's source, re-measure them
    (benchmarks/bench_compile.py, bench_engine.py's warm start), then update NUMBA_TESTED and the
    pin in pyproject.toml."""
    import numba

    from backtest.core import NUMBA_PATCHES, NUMBA_TESTED, numba_patches

    assert numba.__version__.startswith(NUMBA_TESTED), (
        f"numba {numba.__version__}: linkonly.py and lazyload.py were written for "
        f"{NUMBA_TESTED}x; re-verify them and update backtest.core.NUMBA_TESTED")
    if "CASCADE_NUMBA_PATCHES" not in os.environ:
        assert numba_patches() == NUMBA_PATCHES


def test_switching_a_patch_off_gets_its_own_cache(monkeypatch):
    from backtest.core import numba_cache_dir, numba_patches

    default = numba_cache_dir()
    monkeypatch.setenv("CASCADE_NUMBA_PATCHES", "")
    assert numba_patches() == ()
    assert numba_cache_dir().name == default.name + "-no-linkonly-no-shortnames"
    # lazyload changes only how cached kernels load, not what is compiled: the same cache
    monkeypatch.setenv("CASCADE_NUMBA_PATCHES", "linkonly,shortnames")
    assert numba_patches() == ("linkonly", "shortnames")
    assert numba_cache_dir() == default


USER_MODULE = '''
import numpy as np
from numba import njit


@njit(cache=True)
def allocates_and_hashes(n, key):
    a = np.arange(n) * 2  # numba's reference-counting runtime (NRT) allocates it
    return a.sum(), hash(key)  # the hash secrets' symbols; a.sum() is numba.np.arraymath's


@njit(cache=True)
def compiled_later(a):
    return np.sort(a)[-1] + a.sum()  # numba.np.arraymath's too
'''

LOAD_ONLY = '''
import json, sys
import numpy as np
import backtest.core.jit  # noqa: F401  (installs Cascade's numba patches in this process)
from user_helper import allocates_and_hashes, compiled_later
total, h = allocates_and_hashes(5, "abc")
stats = allocates_and_hashes.stats
out = dict(total=int(total), hash_ok=h == hash("abc"), hits=sum(stats.cache_hits.values()),
           registries="numba.typed.typeddict" in sys.modules,
           arraymath="numba.np.arraymath" in sys.modules)
if sys.argv[1] != "first":  # a compile and cache save after the loads above
    out["later"] = float(compiled_later(np.array([3.0, 1.0, 2.0])))
    out["later_hits"] = sum(compiled_later.stats.cache_hits.values())
print(json.dumps(out))
'''


@pytest.mark.skipif("CASCADE_NUMBA_PATCHES" in os.environ, reason="tests the patches as shipped")
def test_a_cached_function_that_allocates_loads_in_a_process_that_compiled_nothing(tmp_path):
    """lazyload.py skips numba's context refresh on a cache load, and with it the start of the
    NRT: a user's cached @njit function that allocates then crashed a warm process natively. The
    second process here compiles nothing before it loads and calls such a function."""
    (tmp_path / "user_helper.py").write_text(USER_MODULE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(Path(__file__).parents[1])]),
               CASCADE_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("NUMBA_CACHE_DIR", None)
    runs = []
    for which in ("first", "second", "third"):  # compiles and saves, loads, loads
        p = subprocess.run([sys.executable, "-c", LOAD_ONLY, which], env=env, cwd=str(tmp_path),
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
        assert "NumbaWarning" not in p.stderr, p.stderr[-2000:]  # e.g. "cannot cache"
        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    cold, warm, third = runs
    assert cold["hits"] == 0 and warm["hits"] == third["hits"] == 1
    assert cold["total"] == warm["total"] == 20 and cold["hash_ok"] and warm["hash_ok"]
    # loaded without numba's refresh, and without importing numba's array math for the
    # environment of its a.sum(), as the patch intends
    assert not warm["registries"] and not warm["arraymath"]
    # a function compiled after those loads is cached and loads as any other
    assert warm["later"] == third["later"] == 9.0
    assert warm["later_hits"] == 0 and third["later_hits"] == 1


@pytest.mark.skipif("CASCADE_NUMBA_PATCHES" in os.environ, reason="tests the patches as shipped")
def test_a_function_taking_the_state_gets_a_short_symbol_name():
    """short_names.py: numba's name of a function is made from its argument types, and the State's
    type spelled out every field of its records (11 KB a name). A long type is named by a hash of
    its full mangled form; short types are mangled exactly as numba does."""
    from numba import typeof
    from numba.core import funcdesc, itanium_mangler, types

    import backtest.core.jit  # noqa: F401  (installs the patches)
    from backtest.core import short_names
    from backtest.core.state import new_state

    full, lean = typeof(new_state(2)), typeof(new_state(2, rare=False))
    long_form = short_names._full(full)
    assert len(long_form) > 5000  # what numba alone would name every kernel taking `c`
    name = funcdesc.default_mangler("backtest.core.account.equity", [full])
    assert len(name) < 200 and long_form not in name
    assert name == funcdesc.default_mangler("backtest.core.account.equity", [full])  # stable
    assert name != funcdesc.default_mangler("backtest.core.account.equity", [lean])  # distinct types
    for t in (types.float64, types.int64, types.boolean, typeof(np.zeros(3)), types.none):
        assert itanium_mangler.mangle_type_or_value(t) == short_names._full(t)
    assert itanium_mangler.mangle_type_or_value(7) == "Li7E"  # values in templates: numba's own


def _hot_add(a, b):
    return a + 2.0 * b


def _plain_add(a, b):  # not _hot_add again: one function compiled twice shares its cache entries
    return a + 2.0 * b


def _calls_hot(x):
    return _HOT(x, 1.5)


_HOT = None


@pytest.mark.skipif("CASCADE_NUMBA_PATCHES" in os.environ, reason="tests the patches as shipped")
def test_a_hot_kernel_is_inlined_by_llvm():
    """`@kernel(hot=True)` (linkonly.py): the kernel's own functions carry LLVM's `alwaysinline` in
    the IR its callers link in, whether it was just compiled or loaded from the cache, and its
    callers get its result; a plain kernel carries no such attribute."""
    global _HOT
    from numba.core import types

    from backtest.core.jit import kernel

    _HOT = kernel(hot=True)(_hot_add)
    caller = kernel(python=True)(_calls_hot)
    assert caller(1.0) == 4.0
    _HOT.compile((types.float64, types.float64))  # or loaded: the caller may come from the cache
    (hot,) = _HOT.overloads.values()
    assert "alwaysinline" in str(hot.library._get_module_for_linking())  # the IR callers link in
    plain = kernel(python=True)(_plain_add)
    assert plain(1.0, 1.5) == 4.0
    (cres,) = plain.overloads.values()
    assert "alwaysinline" not in str(cres.library._get_module_for_linking())
