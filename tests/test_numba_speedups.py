"""backtest/core/numba_speedups.py returns exactly what the numba methods it replaces return."""
import numpy as np
from numba import typeof
from numba.core import compiler

from backtest.core import numba_speedups  # noqa: F401  (installed by backtest.core.jit)
from backtest.core.jit import kernel  # noqa: F401
from backtest.core.schema import FILL_DTYPE, new_context


def test_record_repr_is_numbas_and_computed_once():
    for rec in (typeof(new_context()[0]), typeof(np.zeros(1, FILL_DTYPE)[0])):
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
