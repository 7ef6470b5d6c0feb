"""Gather the merged order of a step of the reader's k-way merge into its output chunk, all
event columns in one compiled pass (backtest/data/reader.py): numpy's take read the order once
per column, and was most of the merge's time."""
import numpy as np

from .jit import kernel


@kernel(python=True)
def gather_events(idx, ts, sym, kind, side, price, qty, bid, ask, bid_qty, ask_qty, at, o_ts, o_sym,
                  o_kind, o_side, o_price, o_qty, o_bid, o_ask, o_bid_qty, o_ask_qty):
    """Row `at + r` of the outputs = row `idx[r]` of the inputs, for every event column."""
    for r in range(len(idx)):
        # unsigned indexes: no negative-index fix-up on each of the twenty accesses
        j = np.uint64(idx[r])
        o = np.uint64(at + r)
        o_ts[o] = ts[j]
        o_sym[o] = sym[j]
        o_kind[o] = kind[j]
        o_side[o] = side[j]
        o_price[o] = price[j]
        o_qty[o] = qty[j]
        o_bid[o] = bid[j]
        o_ask[o] = ask[j]
        o_bid_qty[o] = bid_qty[j]
        o_ask_qty[o] = ask_qty[j]
