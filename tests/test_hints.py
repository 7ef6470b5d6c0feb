"""core/hints.py: `unlikely` never changes a value, and its hint reaches LLVM's branch weights."""
import numpy as np
from numba import njit

from backtest.core.hints import unlikely


@njit
def _mark_over(a, out, limit, gate):
    for i in range(len(a)):
        if unlikely(gate and a[i] > limit):  # a compound condition, as the loop's are
            out[i] = 1.0


def test_unlikely_is_its_condition_compiled_and_in_python():
    a = np.array([3.0, 7.0, -1.0, 9.5, 7.0])
    for limit in (-2.0, 0.0, 7.0, 10.0):
        for gate in (True, False):
            expected = np.array([1.0 if gate and x > limit else 0.0 for x in a])
            for fn in (_mark_over, _mark_over.py_func):
                out = np.zeros(len(a))
                fn(a, out, limit, gate)
                assert out.tolist() == expected.tolist()
    assert unlikely(True) is True and unlikely(False) is False


def test_the_hint_becomes_branch_weights():
    # llvm.expect is lowered to "expected" branch weights on the branch it decides; if a numba
    # upgrade dropped it (e.g. by not inlining the overload) the loop would silently lose its layout
    _mark_over(np.zeros(2), np.zeros(2), 0.0, True)
    ir = _mark_over.inspect_llvm(_mark_over.signatures[0])
    assert '!"branch_weights", !"expected", i32 1, i32 2000' in ir
