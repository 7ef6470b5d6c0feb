"""backtest/core/numba_speedups.py returns exactly what the numba methods it replaces return."""
import numpy as np
from numba import typeof
from numba.core import compiler

from backtest.core import numba_speedups  # noqa: F401  (installed by backtest.core.jit)
from backtest.core.jit import kernel  # noqa: F401
from backtest.core.schema import FILL_DTYPE
from backtest.core.state import new_state


def test_record_repr_is_numbas_and_computed_once():
    for rec in (typeof(new_state(1).acct), typeof(np.zeros(1, FILL_DTYPE)[0])):
        first = repr(rec)
        assert first == numba_speedups._record_repr(rec)
        assert repr(rec) is first  # the cached string
        assert str((rec,)) == f"({first},)"


def test_flag_values_equal_numbas_and_follow_changes():
    a, b = compiler.Flags(), compiler.Flags()
    assert list(a.values().items()) == list(numba_speedups._numba_values(a).items())
    a.nrt = True
    assert a.values() == numba_speedups._numba_values(a) and a.values()["nrt"] is True
    assert a != b
    b.nrt = True
    assert a == b and hash(a) == hash(b)
    b.boundscheck = True
    assert a != b and b.values()["boundscheck"] is True
    assert compiler.Flags().values()["nrt"] is False  # a default, not the last value set


def test_patches_are_verified_for_this_numba():
    """Both patches replace numba internals of one minor version. On another, numba_patches()
    switches them off (plain numba, slower cold compile) and this test fails: read
    numba_speedups.py and linkonly.py against the new numba's source, re-measure them
    (benchmarks/bench_compile.py), then update NUMBA_TESTED and the pin in pyproject.toml."""
    import numba

    from backtest.core import NUMBA_PATCHES, NUMBA_TESTED, numba_patches

    assert numba.__version__.startswith(NUMBA_TESTED), (
        f"numba {numba.__version__}: numba_speedups.py and linkonly.py were written for "
        f"{NUMBA_TESTED}x; re-verify them and update backtest.core.NUMBA_TESTED")
    if "CASCADE_NUMBA_PATCHES" not in __import__("os").environ:
        assert numba_patches() == NUMBA_PATCHES


def test_switching_a_patch_off_gets_its_own_cache(monkeypatch):
    from backtest.core import numba_cache_dir, numba_patches

    default = numba_cache_dir()
    monkeypatch.setenv("CASCADE_NUMBA_PATCHES", "speedups")
    assert numba_patches() == ("speedups",)
    assert numba_cache_dir().name == default.name + "-no-linkonly"
    monkeypatch.setenv("CASCADE_NUMBA_PATCHES", "")
    assert numba_patches() == ()
    assert numba_cache_dir().name == default.name + "-no-speedups-no-linkonly"
