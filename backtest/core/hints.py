"""Branch hints for the compiled loop: `unlikely(cond)` is `cond`, marked as rarely true.

Without a hint LLVM weighs both sides of a branch alike. The loop's rare paths (samples, order
matching, margin checks, what a hook's orders set off) then sit between the per-event steps, and
the values every event uses (array pointers, the event index) are kept on the stack instead of in
registers. Marked rare, they are laid out apart and the spills move into them: the loop with no
hooks went from 6.6 to 5.3 ns per event (benchmarks/README.md, seventeenth session). A hint
changes code layout and register allocation only, never a result.
"""
import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def _expect_false(typingctx, cond):
    """LLVM's `llvm.expect.i1(cond, false)`, which becomes branch weights on the branch that
    tests its result. An intrinsic, not an inlined overload: each overload call site cost ~30 ms
    of the loop's compile."""
    if not isinstance(cond, types.Boolean):
        return None

    def codegen(context, builder, sig, args):
        bit = args[0]
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(bit.type, [bit.type, bit.type]),
                                            "llvm.expect.i1")
        return builder.call(fn, [bit, bit.type(0)])

    return types.boolean(cond), codegen


def _as_is(cond):
    return cond


# NUMBA_DISABLE_JIT (--no-jit, set before numba loads) runs the loop as plain Python, where an
# intrinsic cannot be called
unlikely = _as_is if numba.config.DISABLE_JIT else _expect_false
