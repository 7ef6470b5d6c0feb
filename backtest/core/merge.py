"""The reader's k-way merge (backtest/data/chunks.py) writes each event once, reading every
piece where it lies.

The pieces are Arrow buffers of different streams and kinds: a list numba cannot take as arrays
without copying them into one, and that concatenation of every column cost 1.9 of the 11.6 CPU-s
of reading the 100M-event crash dataset (benchmarks/README.md). The kernel gets a table of their
addresses instead and reads them through typed pointers.

The merged order is a sort of one uint64 key per row, (ts - first ts) << b | piece index (b bits
hold the piece index): keys are equal only for rows of one piece at one time, and a piece's rows
are taken in row order (cur[j]), so the order is that of a stable sort of the concatenation (ties:
piece order, then row order). numpy sorts plain integers with SIMD: 6.4 ns a row against 23.7 for
a stable argsort of the timestamps. The crash dataset's streams interleave row by row (runs of
1.05 rows), where a compiled heap merge measured slower still (41 ns a row). A step whose times
span too much for the key falls back to the argsort (chunks.Merge).
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .jit import kernel


def _pointer(nbtype):
    """An intrinsic turning an address into a typed pointer (indexable like an array)."""
    ptr = types.CPointer(nbtype)

    @intrinsic
    def as_pointer(typingctx, addr):
        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(ptr))

        return ptr(types.uint64), codegen

    return as_pointer


@intrinsic
def _prefetch(typingctx, addr):
    """llvm.prefetch of the cache line at an address (for reading, kept in all cache levels)."""
    def codegen(context, builder, signature, args):
        ptr_t = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr_t, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [ptr_t], fnty)
        builder.call(fn, [builder.inttoptr(args[0], ptr_t), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(types.uint64), codegen


_i8, _i1, _f8 = _pointer(types.int64), _pointer(types.int8), _pointer(types.float64)

# A piece's row of the address table (16 uint64): the addresses of its columns in this order,
# then as many index masks: all ones for a column the piece has, 0 for a column its kind lacks,
# whose address is then that of a one-element constant (side 0, NaN), so every read is
# branch-free.
ADDRESSED = ("ts_ns", "side", "price", "qty", "bid", "ask", "bid_qty", "ask_qty")
AHEAD = 64  # rows a piece's columns are prefetched ahead of its reads


@kernel(python=True, nogil=True)  # the merge's next step is prepared meanwhile (chunks.ahead)
def gather_pieces(order, mask, cur, table, sym, kind, at, o_ts, o_sym, o_kind, o_side, o_price,
                  o_qty, o_bid, o_ask, o_bid_qty, o_ask_qty):
    """Output row at + o = the next row cur[j] of piece j = order[o] & mask, read in place: its
    columns are at table[16 j:16 j + 16]. cur (int64, one per piece) is advanced here."""
    for o in range(len(order)):
        j = order[o] & mask
        r = np.uint64(cur[j])
        cur[j] += 1
        # unsigned indexes: no negative-index fix-up on each of the twenty accesses
        w = np.uint64(at + o)
        b = j * np.uint64(16)
        if r & np.uint64(7) == 0:  # every 8 rows: the piece's columns AHEAD rows on
            ahead = r + np.uint64(AHEAD)
            for c in range(8):  # (prefetching never faults, past a column's end neither)
                size = np.uint64(0 if c == 1 else 3)  # log2 of the item size: side is 1 byte
                _prefetch(table[b + np.uint64(c)] + ((ahead & table[b + np.uint64(c + 8)]) << size))
        o_ts[w] = _i8(table[b])[r]
        o_sym[w] = sym[j]
        o_kind[w] = kind[j]
        o_side[w] = _i1(table[b + np.uint64(1)])[r & table[b + np.uint64(9)]]
        o_price[w] = _f8(table[b + np.uint64(2)])[r & table[b + np.uint64(10)]]
        o_qty[w] = _f8(table[b + np.uint64(3)])[r & table[b + np.uint64(11)]]
        o_bid[w] = _f8(table[b + np.uint64(4)])[r & table[b + np.uint64(12)]]
        o_ask[w] = _f8(table[b + np.uint64(5)])[r & table[b + np.uint64(13)]]
        o_bid_qty[w] = _f8(table[b + np.uint64(6)])[r & table[b + np.uint64(14)]]
        o_ask_qty[w] = _f8(table[b + np.uint64(7)])[r & table[b + np.uint64(15)]]


@kernel(python=True, nogil=True)
def make_keys(table, sizes, lo, bits, keys):
    """keys = (ts - lo) << bits | piece for every row of the pieces (their times read in place
    through the address table), in piece then row order; the caller sorts them."""
    o = 0
    for j in range(len(sizes)):
        ts = _i8(table[np.uint64(j * 16)])
        for r in range(sizes[j]):
            keys[o] = (np.uint64(ts[r] - lo) << np.uint64(bits)) | np.uint64(j)
            o += 1
