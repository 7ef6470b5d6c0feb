"""Round-trip trades rebuilt from the fills table.

A trade of one symbol opens when its position leaves 0 and closes when the position returns to 0.
A fill that flips the position (long -> short or short -> long) closes the running trade with the
part of its quantity that brings the position to 0 and opens a new trade with the remainder; its
fee is split between the two trades in proportion to those quantities, and all of its realised PnL
belongs to the closing trade (an opening quantity realises nothing).

Only the fills are needed: ``position_after`` tells, fill by fill, where the position went.
Quantities are in the instrument's units (``qty``), prices in quote currency, PnL and fees in the
settlement currency. ``return_pct`` is ``net_pnl / (entry_price * qty)``: the return on the peak
notional of the trade for a linear contract (for an inverse contract the denominator is a contract
count times a price and the ratio is only indicative).
"""
from __future__ import annotations

import numpy as np
import polars as pl

from .core.schema import Liquidity
from .result import collect_small

TRADE_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.Utf8,
    "direction": pl.Int8,
    "entry_ts_ns": pl.Int64,
    "exit_ts_ns": pl.Int64,
    "qty": pl.Float64,
    "entry_price": pl.Float64,
    "exit_price": pl.Float64,
    "gross_pnl": pl.Float64,
    "fees": pl.Float64,
    "net_pnl": pl.Float64,
    "return_pct": pl.Float64,
    "n_fills": pl.Int64,
    "liquidated": pl.Boolean,
    "open": pl.Boolean,
}

_REQUIRED = ("ts_ns", "sym", "qty", "price", "fee", "realized_pnl", "position_after", "liquidity")


def empty_trades() -> pl.DataFrame:
    """A trades table with no rows and the exact columns of :func:`round_trips`."""
    return pl.DataFrame(schema=TRADE_SCHEMA)


def _is_zero(pos: float, qty: float) -> bool:
    # Positions are sums of float quantities: treat dust far below a lot as flat.
    return abs(pos) <= 1e-9 * max(1.0, abs(qty))


class _Open:
    __slots__ = ("direction", "entry_ts", "entry_qty", "entry_notional", "exit_qty",
                 "exit_notional", "max_abs", "gross", "fees", "n_fills", "liquidated")

    def __init__(self, direction: int, ts: int):
        self.direction = direction
        self.entry_ts = ts
        self.entry_qty = 0.0
        self.entry_notional = 0.0
        self.exit_qty = 0.0
        self.exit_notional = 0.0
        self.max_abs = 0.0
        self.gross = 0.0
        self.fees = 0.0
        self.n_fills = 0
        self.liquidated = False


def _row(symbol: str, t: _Open, exit_ts) -> dict:
    entry_price = t.entry_notional / t.entry_qty if t.entry_qty > 0 else float("nan")
    exit_price = t.exit_notional / t.exit_qty if t.exit_qty > 0 else None
    net = t.gross - t.fees
    denom = entry_price * t.max_abs
    return {
        "symbol": symbol,
        "direction": t.direction,
        "entry_ts_ns": t.entry_ts,
        "exit_ts_ns": exit_ts,
        "qty": t.max_abs,
        "entry_price": entry_price,
        "exit_price": exit_price,
        "gross_pnl": t.gross,
        "fees": t.fees,
        "net_pnl": net,
        "return_pct": net / denom if denom and np.isfinite(denom) else float("nan"),
        "n_fills": t.n_fills,
        "liquidated": t.liquidated,
        "open": exit_ts is None,
    }


def round_trips(fills: pl.DataFrame) -> pl.DataFrame:
    """Round-trip trades per symbol from a fills table (FILL_DTYPE columns, plus ``symbol``).

    Returns one row per trade with the columns of ``TRADE_SCHEMA``, sorted by entry time then
    symbol. A trade still open at the end of the fills has ``exit_ts_ns`` null and ``open`` true;
    its ``gross_pnl`` holds only what its partial closes realised.
    """
    if fills is None or fills.height == 0:
        return empty_trades()
    missing = [c for c in _REQUIRED if c not in fills.columns]
    if missing:
        raise ValueError(f"fills table lacks column(s) {missing}")
    if "symbol" not in fills.columns:
        fills = fills.with_columns(pl.col("sym").cast(pl.Utf8).alias("symbol"))
    order = ["sym", "ts_ns"] + (["event_idx"] if "event_idx" in fills.columns else [])
    f = collect_small(fills.lazy().with_row_index("_row").sort([*order, "_row"]))

    sym = f["sym"].to_numpy()
    symbol = f["symbol"].to_list()
    ts = f["ts_ns"].to_numpy()
    qty = np.abs(f["qty"].to_numpy().astype(np.float64))
    price = f["price"].to_numpy().astype(np.float64)
    fee = f["fee"].to_numpy().astype(np.float64)
    rpnl = np.nan_to_num(f["realized_pnl"].to_numpy().astype(np.float64))
    pos_after = f["position_after"].to_numpy().astype(np.float64)
    liq = f["liquidity"].to_numpy() == int(Liquidity.LIQUIDATION)

    rows: list[dict] = []
    cur_sym = None
    pos = 0.0
    trade: _Open | None = None
    for i in range(len(sym)):
        if sym[i] != cur_sym:
            if trade is not None:
                rows.append(_row(symbol[i - 1], trade, None))
            cur_sym, pos, trade = sym[i], 0.0, None
        p1 = 0.0 if _is_zero(pos_after[i], qty[i]) else pos_after[i]
        p0 = pos
        pos = p1
        if p0 == 0.0 and p1 == 0.0:
            continue  # a fill that moved nothing (should not happen); belongs to no trade
        if p0 == 0.0 or trade is None:  # opens
            trade = _Open(1 if p1 > 0 else -1, int(ts[i]))
            _add_entry(trade, abs(p1), price[i], fee[i], rpnl[i])
            continue
        same_side = (p1 > 0) == (p0 > 0) and p1 != 0.0
        if same_side and abs(p1) >= abs(p0):  # adds to the position
            _add_entry(trade, abs(p1) - abs(p0), price[i], fee[i], rpnl[i])
            trade.max_abs = max(trade.max_abs, abs(p1))
            continue
        close_qty = abs(p0) - abs(p1) if same_side else abs(p0)
        open_qty = 0.0 if (same_side or p1 == 0.0) else abs(p1)
        share = close_qty / (close_qty + open_qty) if open_qty > 0 else 1.0
        trade.exit_qty += close_qty
        trade.exit_notional += close_qty * price[i]
        trade.gross += rpnl[i]
        trade.fees += fee[i] * share
        trade.n_fills += 1
        trade.liquidated |= bool(liq[i])
        if same_side:  # partial close
            continue
        rows.append(_row(symbol[i], trade, int(ts[i])))
        trade = None
        if open_qty > 0:  # the flip's remainder opens the next trade
            trade = _Open(1 if p1 > 0 else -1, int(ts[i]))
            _add_entry(trade, open_qty, price[i], fee[i] * (1.0 - share), 0.0)
    if trade is not None:
        rows.append(_row(symbol[-1], trade, None))
    if not rows:
        return empty_trades()
    return pl.DataFrame(rows, schema=TRADE_SCHEMA).sort(["entry_ts_ns", "symbol"])


def _add_entry(t: _Open, q: float, px: float, fee: float, rpnl: float) -> None:
    t.entry_qty += q
    t.entry_notional += q * px
    t.max_abs = max(t.max_abs, t.entry_qty - t.exit_qty)
    t.fees += fee
    t.gross += rpnl
    t.n_fills += 1
