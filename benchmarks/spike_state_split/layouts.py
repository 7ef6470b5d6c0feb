"""State layouts of the spike (issue #15): one wide record as today, or split arrays by owner.

(a) wide:  the engine's real context record `CTX_DTYPE` (196 fields, capacities fixed in the type).
(b) split: one structured array per owner, passed separately; capacities are array lengths.
(c) tuple: the same arrays bundled in a namedtuple `State` (numba: a heterogeneous NamedTuple),
    so a kernel keeps the `fn(c, ...)` shape and reads `c.mkt[s].last_px`.
Only the fields the two spike kernels touch are in the split dtypes; the rest of each owner would
join them unchanged.
"""
from collections import namedtuple

import numpy as np

from backtest.core.schema import CTX_DTYPE

f8, i8 = "f8", "i8"
CONFIG_DTYPE = np.dtype([("idx_base", i8), ("sample_interval_ns", i8)], align=True)  # one row
INSTRUMENT_DTYPE = np.dtype([("taker_fee", f8), ("tick", f8), ("lot", f8)], align=True)  # per symbol
MARKET_DTYPE = np.dtype([("last_px", f8), ("bid", f8), ("ask", f8), ("bid_qty", f8), ("ask_qty", f8),
                         ("mark_px", f8), ("index_px", f8), ("has_trade", "u1"), ("has_quote", "u1"),
                         ("has_mark", "u1")], align=True)  # per symbol
ACCOUNT_DTYPE = np.dtype([("balance", f8), ("fees", f8), ("realized_pnl", f8), ("n_fills", i8),
                          ("o_hwm", i8)], align=True)  # one row
POSITION_DTYPE = np.dtype([("pos", f8), ("avg_px", f8), ("sym_upnl", f8), ("n_open", i8)],
                          align=True)  # per symbol
ORDER_DTYPE = np.dtype([("status", "i1"), ("side", "i1"), ("type", "i1"), ("sym", "i4"), ("oid", i8),
                        ("qty", f8), ("stop", f8), ("limit", f8), ("filled", f8)],
                       align=True)  # per open order; finished orders would use the same dtype

State = namedtuple("State", "cfg inst mkt acct pos orders")

K_TRADE, K_QUOTE, K_MARK = 0, 1, 2
ST_FREE, ST_OPEN = 0, 1
OT_STOP = 2
STOP_GAP = 0.001  # re-armed stops sit 0.1 % from the trade that triggered them


def events(n, nsym, seed=0):
    """n synthetic events: 70 % trades, 20 % quotes, 10 % marks, a random walk per symbol."""
    rng = np.random.default_rng(seed)
    sym = rng.integers(0, nsym, n).astype(np.int32)
    kind = np.searchsorted(np.array([0.7, 0.9]), rng.random(n), side="right").astype(np.int8)
    price = 50_000.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-4, n)))
    qty = rng.random(n)
    return np.arange(n, dtype=np.int64), sym, kind, price, qty


def _orders(nsym, n_orders, px):
    """Two stops per symbol (a buy above, a sell below); the rest of the table free."""
    o = np.zeros(n_orders, ORDER_DTYPE)
    for s in range(nsym):
        for k, side in enumerate((1, -1)):
            j = 2 * s + k
            o[j] = (ST_OPEN, side, OT_STOP, s, j + 1, 0.01, px * (1.0 + side * STOP_GAP), np.nan, 0.0)
    return o


def split_state(nsym, n_orders, px=50_000.0):
    cfg = np.zeros(1, CONFIG_DTYPE)
    inst = np.zeros(nsym, INSTRUMENT_DTYPE)
    inst["taker_fee"] = 0.0005
    mkt = np.zeros(nsym, MARKET_DTYPE)
    acct = np.zeros(1, ACCOUNT_DTYPE)
    acct[0]["balance"] = 1e6
    acct[0]["o_hwm"] = 2 * nsym
    pos = np.zeros(nsym, POSITION_DTYPE)
    pos["n_open"] = 2
    return cfg, inst, mkt, acct, pos, _orders(nsym, n_orders, px)


def tuple_state(nsym, n_orders, px=50_000.0):
    return State(*split_state(nsym, n_orders, px))


def wide_state(nsym, px=50_000.0):
    """The engine's context record (capacities fixed at 64 symbols / 4,096 orders by the type)."""
    c = np.zeros(1, CTX_DTYPE)[0]
    c["i_taker_fee"][:nsym] = 0.0005
    c["balance"] = 1e6
    o = _orders(nsym, c["o_status"].shape[0], px)
    for name in ("status", "side", "type", "sym", "oid", "qty", "stop", "limit", "filled"):
        c[f"o_{name}"][:] = o[name]
    c["o_hwm"] = 2 * nsym
    c["n_open"][:nsym] = 2
    return c
