"""core/hints.py: `unlikely` never changes a value, and its hint reaches LLVM's branch weights."""
import os
import subprocess
import sys

import numpy as np
from numba import njit

from backtest.core.hints import unlikely

CHECK = """
import numpy as np
from numba import njit
from backtest.core.hints import unlikely

@njit
def mark_over(a, out, limit, gate):
    for i in range(len(a)):
        if unlikely(gate and a[i] > limit):  # a compound condition, as the loop's are
            out[i] = 1.0

a = np.array([3.0, 7.0, -1.0, 9.5, 7.0])
for limit in (-2.0, 0.0, 7.0, 10.0):
    for gate in (True, False):
        out = np.zeros(len(a))
        mark_over(a, out, limit, gate)
        assert out.tolist() == [1.0 if gate and x > limit else 0.0 for x in a], (limit, gate, out)
print("ok")
"""


def test_unlikely_is_its_condition_compiled_and_as_plain_python():
    for jit_off in ("0", "1"):  # compiled, and NUMBA_DISABLE_JIT=1 (--no-jit)
        p = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                           env=dict(os.environ, NUMBA_DISABLE_JIT=jit_off), timeout=300)
        assert (p.returncode, p.stdout.strip()) == (0, "ok"), p.stderr[-2000:]


@njit
def _mark_over(a, out, limit):
    for i in range(len(a)):
        if unlikely(a[i] > limit):
            out[i] = 1.0


def test_the_hint_becomes_branch_weights():
    # llvm.expect is lowered to "expected" branch weights on the branch it decides; if a numba
    # upgrade dropped them the loop would silently lose its layout
    _mark_over(np.zeros(2), np.zeros(2), 0.0)
    ir = _mark_over.inspect_llvm(_mark_over.signatures[0])
    assert '!"branch_weights", !"expected", i32 1, i32 2000' in ir
