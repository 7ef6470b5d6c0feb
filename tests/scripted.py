"""A strategy that replays a script of actions, for checking the engine against tests/oracle.py.

The script lives in the strategy's record (fixed-size arrays), so the same compiled loop serves
every random scenario: only parameters (data) change, never code.
"""
import numpy as np
from numba import njit

from backtest import Strategy, amend, bracket, cancel, close_position, submit

MAXA = 512
A_SUBMIT, A_BRACKET, A_CANCEL, A_AMEND, A_CLOSE = 0, 1, 2, 3, 4
ACTION_CODES = {"submit": A_SUBMIT, "bracket": A_BRACKET, "cancel": A_CANCEL, "amend": A_AMEND,
                "close": A_CLOSE}


@njit
def run_actions(self, c):
    while self.next < self.n and self.g[self.next] == c.clock.idx_base + c.clock.cur_i:
        a = self.next
        kind = self.kind[a]
        r = 0
        if kind == A_SUBMIT:
            r = submit(c, self.sym[a], self.otype[a], self.side[a], self.qty[a], self.limit[a],
                       self.stop[a], self.tif[a], self.reduce[a] != 0, self.trigger[a], self.trail[a],
                       self.trail_bps[a], self.oco[a])
        elif kind == A_BRACKET:
            r = bracket(c, self.sym[a], self.side[a], self.qty[a], self.limit[a], self.stop[a],
                        self.target[a])
        elif kind == A_CANCEL or kind == A_AMEND:
            ref = self.result[self.k[a]]
            if ref <= 0:
                r = -11  # UNKNOWN_ORDER
            elif kind == A_CANCEL:
                r = cancel(c, ref)
            else:
                r = amend(c, ref, self.qty[a], self.limit[a], self.stop[a])
        else:
            r = close_position(c, self.sym[a])
        self.result[a] = r
        self.next += 1


class Scripted(Strategy):
    """Replays a script (see tests/test_oracle_equivalence.py)."""

    n: int = 0
    next: int = 0
    g: ("i8", MAXA)
    kind: ("i8", MAXA)
    sym: ("i8", MAXA)
    otype: ("i8", MAXA)
    side: ("i8", MAXA)
    qty: ("f8", MAXA)
    limit: ("f8", MAXA)
    stop: ("f8", MAXA)
    target: ("f8", MAXA)
    tif: ("i8", MAXA)
    reduce: ("i8", MAXA)
    trigger: ("i8", MAXA)
    trail: ("f8", MAXA)
    trail_bps: ("f8", MAXA)
    oco: ("i8", MAXA)
    k: ("i8", MAXA)
    result: ("i8", MAXA)

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        run_actions(self, c)

    def on_quote(self, c, ts_ns, sym, bid, ask, bid_qty, ask_qty):
        run_actions(self, c)

    def on_mark(self, c, ts_ns, sym, mark_price, index_price):
        run_actions(self, c)


def load_script(state: np.recarray, script: list[tuple]) -> None:
    """Write an oracle-format script into a Scripted state record."""
    assert len(script) <= MAXA
    r = state
    r.n[0] = len(script)
    for a, act in enumerate(script):
        g, name = act[0], act[1]
        r.g[0][a] = g
        r.kind[0][a] = ACTION_CODES[name]
        if name == "submit":
            (_, _, sym, otype, side, qty, limit, stop, tif, reduce, trigger, trail, bps, oco) = act
            r.sym[0][a], r.otype[0][a], r.side[0][a], r.qty[0][a] = sym, otype, side, qty
            r.limit[0][a], r.stop[0][a], r.tif[0][a], r.reduce[0][a] = limit, stop, tif, int(reduce)
            r.trigger[0][a], r.trail[0][a], r.trail_bps[0][a], r.oco[0][a] = trigger, trail, bps, oco
        elif name == "bracket":
            (_, _, sym, side, qty, limit, stop, target) = act
            r.sym[0][a], r.side[0][a], r.qty[0][a] = sym, side, qty
            r.limit[0][a], r.stop[0][a], r.target[0][a] = limit, stop, target
        elif name == "cancel":
            r.k[0][a] = act[2]
        elif name == "amend":
            (_, _, k, qty, limit, stop) = act
            r.k[0][a], r.qty[0][a], r.limit[0][a], r.stop[0][a] = k, qty, limit, stop
        else:
            r.sym[0][a] = act[2]
