"""The Tardis.dev CSV import formats (https://docs.tardis.dev/downloadable-csv-files): trades,
quotes, book snapshots (5 and 25 levels), incremental L2 books (rebuilt by l2book.py), the
derivative ticker (marks, funding, open interest) and liquidations. Their rows in the table of
formats are in backtest/data/formats.py; data/README.md ("Importers") gives the rules.
"""
from __future__ import annotations

import numpy as np

from .formats_common import BUY_SELL, Batch, first_bad, quote_rows, tick_rule, trade_rows

TARDIS = ("exchange", "symbol", "timestamp", "local_timestamp")


def tardis_trades(b: Batch):
    b.single_symbol()
    price = b.number("price", positive=True)
    side = b.words("side", {**BUY_SELL, "unknown": 0})
    unknown = side == 0
    if unknown.any() or "tick_price" in b.state:
        side = np.where(unknown, tick_rule(price, b.state), side).astype(np.int8)
    return trade_rows(b.epoch_ns("timestamp"), price, b.number("amount", positive=True), side)


def tardis_quotes(b: Batch):
    b.single_symbol()
    return quote_rows(b, "bid_price", b.epoch_ns("timestamp"), b.number("bid_price", positive=True),
                      b.number("ask_price", positive=True), b.number("bid_amount", positive=True),
                      b.number("ask_amount", positive=True))


def snapshot_layout(levels: int) -> tuple[str, ...]:
    cols = list(TARDIS)
    for i in range(levels):
        cols += [f"asks[{i}].price", f"asks[{i}].amount", f"bids[{i}].price", f"bids[{i}].amount"]
    return tuple(cols)


BOOK_LEVELS_DEFAULT = 25  # --levels: the book kind keeps at most MAX_BOOK_LEVELS per side
BOOK_INTERVAL_DEFAULT_NS = 10**9  # --book-interval of tardis-incremental-book-l2


def _levels(b: Batch, available: int) -> int:
    from ..core.schema import MAX_BOOK_LEVELS

    return min(available, int(b.state.get("book_levels", BOOK_LEVELS_DEFAULT)), MAX_BOOK_LEVELS)


def snapshot_types(levels: int) -> dict[str, str]:
    """Level columns parsed by pyarrow as floats (speed: 100 numbers per book_snapshot_25 row)."""
    return {c: "f8" for c in snapshot_layout(levels)[len(TARDIS):]}


def tardis_snapshot(levels: int):
    """Level 0 of a book snapshot is the quote; every level present (up to --levels) is a `book`
    row. An empty cell is a missing level; a side's levels must be contiguous from 0 and
    strictly ordered (bids down, asks up)."""
    def parse(b: Batch):
        b.single_symbol()
        ts = b.epoch_ns("timestamp")
        n_lv = _levels(b, levels)
        px, qty = {}, {}
        for side in ("bids", "asks"):
            px[side] = np.column_stack([b.number(f"{side}[{i}].price", positive=True, optional=i > 0)
                                        for i in range(n_lv)])
            qty[side] = np.column_stack([b.number(f"{side}[{i}].amount", positive=True, optional=i > 0)
                                         for i in range(n_lv)])
            have = ~np.isnan(px[side])
            for what, bad in (("amount", have & np.isnan(qty[side])), ("price", ~have & ~np.isnan(qty[side]))):
                r, c = np.nonzero(bad)
                if len(r):
                    k = int(np.argmin(r))
                    raise b.error(int(r[k]), f"{side}[{c[k]}] has an amount but no price" if what == "price"
                                  else f"{side}[{c[k]}] has a price but no amount", f"{side}[{c[k]}].{what}")
            gap = have[:, 1:] & ~have[:, :-1]
            step = np.diff(px[side], axis=1)
            with np.errstate(invalid="ignore"):
                wrong = have[:, 1:] & have[:, :-1] & ((step >= 0) if side == "bids" else (step <= 0))
            for bad, problem in ((gap, "a level after an empty level"),
                                 (wrong, "prices not strictly " + ("decreasing" if side == "bids" else "increasing"))):
                r, c = np.nonzero(bad)
                if len(r):
                    k = int(np.argmin(r))
                    raise b.error(int(r[k]), f"{side}[{c[k] + 1}]: {problem}", f"{side}[{c[k] + 1}].price")
        out = quote_rows(b, "bids[0].price", ts, px["bids"][:, 0], px["asks"][:, 0], qty["bids"][:, 0],
                         qty["asks"][:, 0])
        # rows: each snapshot's levels 0 .. deepest priced level of either side; a locked top
        # (bid = ask) is a valid quote but not a valid book snapshot, so it gives no book rows
        depth = np.maximum((~np.isnan(px["bids"])).sum(1), (~np.isnan(px["asks"])).sum(1))
        depth[px["bids"][:, 0] >= px["asks"][:, 0]] = 0
        keep = np.arange(n_lv)[None, :] < depth[:, None]
        lv = np.broadcast_to(np.arange(n_lv, dtype=np.int8), keep.shape)
        out["book"] = {"ts_ns": np.broadcast_to(ts[:, None], keep.shape)[keep], "level": lv[keep],
                       "bid": px["bids"][keep], "bid_qty": np.nan_to_num(qty["bids"], nan=0.0)[keep],
                       "ask": px["asks"][keep], "ask_qty": np.nan_to_num(qty["asks"], nan=0.0)[keep]}
        return out
    return parse


INCREMENTAL_L2 = (*TARDIS, "is_snapshot", "side", "price", "amount")


def tardis_incremental(b: Batch):
    """Rebuild the book from incremental L2 updates (backtest/data/l2book.py): book snapshots of
    the top --levels at every --book-interval, quotes when the top changes."""
    from .l2book import L2Book

    b.single_symbol()
    book = b.state.get("l2")
    if book is None:
        book = b.state["l2"] = L2Book(_levels(b, 10**6), int(b.state.get("book_interval_ns",
                                                                          BOOK_INTERVAL_DEFAULT_NS)))
    ts = b.epoch_ns("timestamp")
    snap = b.words("is_snapshot", {"true": 1, "false": 0})
    is_bid = b.words("side", {"bid": 1, "ask": 0})
    price = b.number("price", positive=True)
    amount = b.number("amount")
    i = first_bad(amount < 0)
    if i >= 0:
        raise b.error(i, f"amount must be >= 0 (0 removes the level), got {amount[i]}", "amount")
    book.apply(ts.tolist(), snap.tolist(), is_bid.tolist(), price.tolist(), amount.tolist())
    return book.drain()


def tardis_incremental_finish(state: dict):
    book = state.get("l2")
    if book is None:
        return {}
    book.finish()
    return book.drain()


DERIVATIVE_TICKER = (*TARDIS, "funding_timestamp", "funding_rate", "predicted_funding_rate",
                     "open_interest", "last_price", "index_price", "mark_price")


def tardis_derivative_ticker(b: Batch):
    """Marks from every row with a mark price; open interest (data only) from every row with it.
    Funding: the rate for the settlement at
    funding_timestamp T is the last funding_rate quoted for T strictly before T; the event is
    stamped at T and emitted only once the file has passed T (a row at or after T, or a row for a
    later T), so funding is never applied early and never from a later quote."""
    b.single_symbol()
    ts = b.epoch_ns("timestamp")
    mark = b.number("mark_price", positive=True, optional=True)
    index = b.number("index_price", positive=True, optional=True)
    has = ~np.isnan(mark)
    out = {"marks": {"ts_ns": ts[has], "mark_price": mark[has], "index_price": index[has]}}
    oi = b.number("open_interest", optional=True)
    known = np.isfinite(oi) & (oi >= 0)  # a partial message without it is skipped
    out["open_interest"] = {"ts_ns": ts[known], "open_interest": oi[known]}
    ft = b.epoch_ns("funding_timestamp", optional=True)
    rate = b.number("funding_rate", optional=True)
    st = b.state.setdefault("funding", {"T": None, "rate": np.nan, "done": False})
    f_ts, f_rate = [], []

    def settle():
        if st["T"] is not None and not st["done"] and np.isfinite(st["rate"]):
            f_ts.append(st["T"])
            f_rate.append(st["rate"])
        st["done"] = True

    for i in np.flatnonzero(ft > 0):  # rows with a funding time (a Python loop: cheap per row)
        t = int(ft[i])
        if st["T"] != t:
            if st["T"] is not None and t < st["T"]:
                continue  # a stale message for an earlier period
            settle()
            st.update(T=t, rate=np.nan, done=False)
        if ts[i] < t and np.isfinite(rate[i]):
            st["rate"] = float(rate[i])
        if ts[i] >= t:
            settle()
    if st["T"] is not None and len(ts) and ts[-1] >= st["T"]:
        settle()
    out["funding"] = {"ts_ns": np.array(f_ts, np.int64), "rate": np.array(f_rate, np.float64)}
    return out


def tardis_liquidations(b: Batch):
    b.single_symbol()
    return {"liquidations": {"ts_ns": b.epoch_ns("timestamp"), "price": b.number("price", positive=True),
                             "qty": b.number("amount", positive=True), "side": b.words("side", BUY_SELL)}}
