"""Branch hints for the compiled loop: `unlikely(cond)` is `cond`, marked as rarely true.

Without a hint LLVM weighs both sides of a branch alike. The loop's rare paths (samples, order
matching, margin checks, what a hook's orders set off) then sit between the per-event steps, and
the values every event uses (array pointers, the event index) are kept on the stack instead of in
registers. Marked rare, they are laid out apart and the spills move into them: the loop with no
hooks went from 6.6 to 5.0 ns per event (benchmarks/README.md, seventeenth session). A hint
changes code layout and register allocation only, never a result.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload


def unlikely(cond):
    """`cond`, hinted to the compiler as rarely true (plain Python: `cond` itself)."""
    return cond


@intrinsic
def _expect_false(typingctx, cond):
    """LLVM's `llvm.expect.i1(cond, false)`: lowered to branch weights on the branch it decides."""
    if not isinstance(cond, types.Boolean):
        return None

    def codegen(context, builder, sig, args):
        bit = args[0]
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(bit.type, [bit.type, bit.type]),
                                            "llvm.expect.i1")
        return builder.call(fn, [bit, bit.type(0)])

    return types.boolean(cond), codegen


# inlined at numba's IR level: the expect must sit in the function whose branch it decides (a
# called function's expect, with no branch of its own, would be optimised away first)
@overload(unlikely, inline="always")
def _unlikely(cond):
    if isinstance(cond, types.Boolean):
        return lambda cond: _expect_false(cond)
    return None
