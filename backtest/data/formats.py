"""The import formats: one table, one line per format (`FORMATS[name] = Format(...)`).

A format names the dataset kinds it produces, the column layouts it accepts (a header line, when
present, must name one of them; without a header the layout is chosen by the number of fields)
and a `parse(batch)` function turning one batch of string columns into numpy columns per kind.
Parsers see the file in bounded batches, in file order; `batch.state` carries what they must
remember across batches and files (the time unit, the symbol, the tick rule, pending funding).
Formats and rules: data/README.md ("Importers").
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import DataError, shown
from .layout import TS_MAX_NS, TS_MIN_NS

FIX_LINE = "correct or delete this line; if the download was cut short, fetch the file again"
FIX_UNIT = ("the time unit (s, ms, µs or ns) is detected per file from the first row's magnitude; "
            "check the column and fix or drop the row")


@dataclass(frozen=True)
class Format:
    kinds: tuple[str, ...]  # dataset kinds produced
    layouts: tuple[tuple[str, ...], ...]
    parse: Callable[["Batch"], dict[str, dict[str, np.ndarray]]]
    header: bool | None = None  # True: the files always start with a header line
    # speed only: the columns parse() reads (None: all) and those pyarrow may parse directly
    # ("i8"/"f8"/"b1": required integer/float/true-false columns; a bad value makes the importer
    # re-read the file as text to report its line). The first layout column is always text.
    columns: tuple[str, ...] | None = None
    types: dict[str, str] | None = None
    # set for formats that fill one column of existing rows (matched on ts_ns) instead of adding rows
    fills: str | None = None
    parquet: bool = False  # also reads .parquet files (columns named as a layout, any order)
    # called once at the end of each file with its state: the last rows a streaming parser held
    # back (e.g. the quote of an order book's last message), as parse() returns them
    finish: Callable[[dict], dict[str, dict[str, np.ndarray]]] | None = None
    options: tuple[str, ...] = ()  # import options the parser reads from state (book_levels, ...)


FORMATS: dict[str, Format] = {}


def line_error(file, line: int | None, problem: str, *, column=None, fix=FIX_LINE) -> DataError:
    """A DataError pointing at `file:line` (line is 1-based and counts the header line)."""
    e = DataError(problem, file=f"{file}:{line}" if line is not None else file, column=column, fix=fix)
    e.file, e.row = str(file), line
    return e


def _first_bad(mask) -> int:
    idx = np.flatnonzero(np.asarray(mask))
    return int(idx[0]) if len(idx) else -1


_UNITS = ((10**11, 10**9, "s"), (10**14, 10**6, "ms"), (10**17, 10**3, "µs"), (None, 1, "ns"))


class Batch:
    """One batch of a file's rows as string columns, with the checks parsers share."""

    def __init__(self, df, name: str, first_line: int, state: dict):
        self.df, self.name, self.first_line, self.state = df, name, first_line, state

    def __len__(self) -> int:
        return self.df.height

    def error(self, i: int, problem: str, column=None, fix=FIX_LINE) -> DataError:
        return line_error(self.name, self.first_line + i, problem, column=column, fix=fix)

    def _cast(self, col: str, dtype):
        raw = self.df[col]
        if raw.dtype == dtype:
            return raw, raw
        v = raw.cast(dtype, strict=False)
        if v.null_count():  # retry with surrounding blanks removed before calling a value bad
            raw = raw.str.strip_chars()
            v = raw.cast(dtype, strict=False)
        return raw, v

    def number(self, col: str, *, positive: bool = False, optional: bool = False) -> np.ndarray:
        """Float64 column; bad or empty values raise (empty is NaN with optional=True)."""
        import polars as pl

        raw, v = self._cast(col, pl.Float64)
        if not optional:
            empty = np.zeros(len(raw), bool)
        else:  # a typed column (Format.types) reads an empty field as null
            empty = (raw == "" if raw.dtype == pl.String else raw.is_null()).to_numpy()
        i = _first_bad(v.is_null().to_numpy() & ~empty)
        if i >= 0:
            problem = f"not a number: {shown(raw[i])}" if raw[i] else "empty value, expected a number"
            raise self.error(i, problem, col)
        arr = v.fill_null(np.nan).to_numpy() if optional else v.to_numpy()
        with np.errstate(invalid="ignore"):
            i = _first_bad(~np.isfinite(arr) & ~empty)
        if i >= 0:
            raise self.error(i, f"must be a finite number, got {shown(raw[i])}", col)
        if positive:
            with np.errstate(invalid="ignore"):
                badp = ~(np.isfinite(arr) & (arr > 0))
                if optional:
                    badp &= ~np.isnan(arr)
            i = _first_bad(badp)
            if i >= 0:
                raise self.error(i, f"must be a finite number > 0, got {shown(raw[i])}", col)
        return arr

    def epoch_ns(self, col: str, *, optional: bool = False) -> np.ndarray:
        """Epoch timestamps -> int64 ns. The unit (s, ms, µs, ns) is detected once per file from
        the magnitude of the first value; every value must then fall in 2009-01-01 .. 2100-01-01
        (checked in the source unit, so nothing can overflow). Decimal fractions are exact.
        With optional=True empty values give -1."""
        import polars as pl

        raw, v = self._cast(col, pl.Int64)
        frac = np.zeros(len(raw), np.int64)
        empty = (raw == "").to_numpy() if optional else np.zeros(len(raw), bool)
        nulls = v.is_null().to_numpy() & ~empty
        if nulls.any():  # decimal seconds (Bybit) or bad values
            fr = raw.str.contains(r"^\d+\.\d*$").fill_null(False).to_numpy() & nulls
            i = _first_bad(nulls & ~fr)
            if i >= 0:
                problem = f"not a timestamp: {shown(raw[i])}" if raw[i] else "empty value, expected a timestamp"
                raise self.error(i, problem, col)
            parts = raw.str.split_exact(".", 1).struct.unnest()
            ints = parts["field_0"].cast(pl.Int64, strict=False)
            v = pl.Series(np.where(fr, ints.fill_null(-1).to_numpy(), v.fill_null(0).to_numpy()))
            fstr = parts["field_1"].fill_null("")
        ints = v.fill_null(-1).to_numpy().astype(np.int64)
        key = "unit:" + col
        if key not in self.state:
            ok = np.flatnonzero(~empty)
            if not len(ok):
                return np.full(len(raw), -1, np.int64)
            first = abs(int(ints[ok[0]]))
            self.state[key] = next(u for u in _UNITS if u[0] is None or first < u[0])
        _, mult, unit = self.state[key]
        if nulls.any():
            digits = len(str(mult)) - 1
            too_long = (fstr.str.len_chars() > digits).to_numpy() & fr
            i = _first_bad(too_long)
            if i >= 0:
                raise self.error(i, f"timestamp {shown(raw[i])} has more decimals than {unit} allow", col, FIX_UNIT)
            if digits:
                frac = np.where(fr, fstr.str.pad_end(digits, "0").cast(pl.Int64, strict=False)
                                .fill_null(0).to_numpy(), 0)
        lo, hi = TS_MIN_NS // mult, TS_MAX_NS // mult
        bad = ((ints < lo) | (ints >= hi)) & ~empty
        i = _first_bad(bad)
        if i >= 0:
            raise self.error(i, f"timestamp {shown(raw[i])} read as {unit} is outside 2009-01-01 .. "
                             "2100-01-01 UTC", col, FIX_UNIT)
        out = ints * mult + frac
        if optional:
            out[empty] = -1
        return out

    def words(self, col: str, mapping: dict[str, int]) -> np.ndarray:
        """Map case-insensitive words (e.g. buy/sell) to int8 values; anything else raises."""
        import polars as pl

        if self.df[col].dtype == pl.Boolean:  # typed by pyarrow (true/false in any case)
            v = self.df[col]
            i = _first_bad(v.is_null().to_numpy())
            if i >= 0:
                raise self.error(i, f"unknown side '' (expected {', '.join(mapping)})", col)
            return np.where(v.to_numpy(), mapping["true"], mapping["false"]).astype(np.int8)
        low = self.df[col].str.strip_chars().str.to_lowercase()
        out = np.zeros(len(low), np.int8)
        seen = np.zeros(len(low), bool)
        for word, val in mapping.items():
            m = (low == word).to_numpy()
            out[m] = val
            seen |= m
        i = _first_bad(~seen)
        if i >= 0:
            raise self.error(i, f"unknown side {shown(self.df[col][i])} (expected {', '.join(mapping)})", col)
        return out

    def single_symbol(self, col: str = "symbol") -> None:
        syms = self.df[col].unique(maintain_order=True).to_list()
        first = self.state.setdefault("symbol", syms[0] if syms else None)
        others = [s for s in syms if s != first]
        if others:
            raise DataError(f"file holds several symbols ({', '.join(map(str, [first, *others][:5]))})",
                            file=self.name, column=col,
                            fix="split the file by symbol and import each with its --symbol")


# ------------------------------------------------------------------------------------------------
# Shared pieces

def _trades(ts, price, qty, side):
    return {"trades": {"ts_ns": ts, "price": price, "qty": qty, "side": side}}


def _quotes(b: Batch, bid_col: str, ts, bid, ask, bq, aq):
    i = _first_bad(bid > ask)
    if i >= 0:
        raise b.error(i, f"crossed quote: bid {bid[i]} > ask {ask[i]}", bid_col)
    return {"quotes": {"ts_ns": ts, "bid": bid, "ask": ask, "bid_qty": bq, "ask_qty": aq}}


def tick_rule(price: np.ndarray, state: dict) -> np.ndarray:
    """Aggressor side by the tick rule: up-tick +1, down-tick -1, zero-tick repeats the last
    non-zero tick's sign; +1 before the first price change. Carries on across batches."""
    prev_price = state.get("tick_price", price[0] if len(price) else 0.0)
    d = np.sign(np.diff(price, prepend=prev_price))
    idx = np.where(d != 0, np.arange(len(d)), -1)
    np.maximum.accumulate(idx, out=idx)
    out = np.where(idx >= 0, d[np.maximum(idx, 0)], state.get("tick_sign", 1.0))
    if len(price):
        state["tick_price"], state["tick_sign"] = price[-1], out[-1]
    return out.astype(np.int8)


BUYER_MAKER = {"true": -1, "false": 1}  # buyer was the maker -> the seller was the aggressor
BUY_SELL = {"buy": 1, "sell": -1}


# ------------------------------------------------------------------------------------------------
# Binance (data.binance.vision)

def _binance_trades(ts_col: str, qty_col: str):
    def parse(b: Batch):
        return _trades(b.epoch_ns(ts_col), b.number("price", positive=True),
                       b.number(qty_col, positive=True), b.words("is_buyer_maker", BUYER_MAKER))
    return parse


def _binance_book_ticker(b: Batch):
    return _quotes(b, "best_bid_price", b.epoch_ns("transaction_time"), b.number("best_bid_price", positive=True),
                   b.number("best_ask_price", positive=True), b.number("best_bid_qty", positive=True),
                   b.number("best_ask_qty", positive=True))


def _kline_close_ns(b: Batch) -> np.ndarray:
    """A kline's close is known only when the kline closes: stamp it at close_time + 1 unit of the
    file (close_time ends in ...999, so this is the next kline's open), never at open_time."""
    close_ns = b.epoch_ns("close_time")
    return close_ns + b.state["unit:close_time"][1]


def _binance_mark_klines(b: Batch):
    price = b.number("close", positive=True)
    return {"marks": {"ts_ns": _kline_close_ns(b), "mark_price": price,
                      "index_price": np.full(len(price), np.nan)}}


def _binance_index_klines(b: Batch):
    """Index klines fill `index_price` of the marks already imported at the same time."""
    price = b.number("close", positive=True)
    return {"marks": {"ts_ns": _kline_close_ns(b), "mark_price": np.full(len(price), np.nan),
                      "index_price": price}}


def _binance_premium_klines(b: Batch):
    """premiumIndexKlines: the premium index (a fraction, may be <= 0) as OHLC, stamped at the
    kline's close like the mark klines (its close is known only then)."""
    o, h, lo, c = (b.number(k) for k in ("open", "high", "low", "close"))
    from .validate import FIX_CANDLE, candle_problem

    bad = candle_problem(o, h, lo, c)
    if bad:
        i, col, problem = bad
        raise b.error(i, problem, col, FIX_CANDLE)
    return {"premium": {"ts_ns": _kline_close_ns(b), "open": o, "high": h, "low": lo, "close": c}}


def _binance_funding(b: Batch):
    return {"funding": {"ts_ns": b.epoch_ns("calc_time"), "rate": b.number("last_funding_rate")}}


KLINE = ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
         "taker_buy_volume", "taker_buy_quote_volume", "ignore")

# ------------------------------------------------------------------------------------------------
# Bybit (public.bybit.com)

BYBIT_TRADES = ("timestamp", "symbol", "side", "size", "price", "tickDirection", "trdMatchID",
                "grossValue", "homeNotional", "foreignNotional")


def _bybit_trades(b: Batch):
    b.single_symbol()
    return _trades(b.epoch_ns("timestamp"), b.number("price", positive=True),
                   b.number("size", positive=True), b.words("side", BUY_SELL))


def _bybit_spot_trades(b: Batch):
    return _trades(b.epoch_ns("timestamp"), b.number("price", positive=True),
                   b.number("volume", positive=True), b.words("side", BUY_SELL))


def _bybit_funding(b: Batch):
    b.single_symbol()
    return {"funding": {"ts_ns": b.epoch_ns("fundingRateTimestamp"), "rate": b.number("fundingRate")}}


# ------------------------------------------------------------------------------------------------
# Tardis.dev CSV datasets

TARDIS = ("exchange", "symbol", "timestamp", "local_timestamp")


def _tardis_trades(b: Batch):
    b.single_symbol()
    price = b.number("price", positive=True)
    side = b.words("side", {**BUY_SELL, "unknown": 0})
    unknown = side == 0
    if unknown.any() or "tick_price" in b.state:
        side = np.where(unknown, tick_rule(price, b.state), side).astype(np.int8)
    return _trades(b.epoch_ns("timestamp"), price, b.number("amount", positive=True), side)


def _tardis_quotes(b: Batch):
    b.single_symbol()
    return _quotes(b, "bid_price", b.epoch_ns("timestamp"), b.number("bid_price", positive=True),
                   b.number("ask_price", positive=True), b.number("bid_amount", positive=True),
                   b.number("ask_amount", positive=True))


def _snapshot_layout(levels: int) -> tuple[str, ...]:
    cols = list(TARDIS)
    for i in range(levels):
        cols += [f"asks[{i}].price", f"asks[{i}].amount", f"bids[{i}].price", f"bids[{i}].amount"]
    return tuple(cols)


BOOK_LEVELS_DEFAULT = 25  # --levels: the book kind keeps at most MAX_BOOK_LEVELS per side
BOOK_INTERVAL_DEFAULT_NS = 10**9  # --book-interval of tardis-incremental-book-l2


def _levels(b: Batch, available: int) -> int:
    from ..core.schema import MAX_BOOK_LEVELS

    return min(available, int(b.state.get("book_levels", BOOK_LEVELS_DEFAULT)), MAX_BOOK_LEVELS)


def _snapshot_types(levels: int) -> dict[str, str]:
    """Level columns parsed by pyarrow as floats (speed: 100 numbers per book_snapshot_25 row)."""
    return {c: "f8" for c in _snapshot_layout(levels)[len(TARDIS):]}


def _tardis_snapshot(levels: int):
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
        out = _quotes(b, "bids[0].price", ts, px["bids"][:, 0], px["asks"][:, 0], qty["bids"][:, 0],
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


def _tardis_incremental(b: Batch):
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
    i = _first_bad(amount < 0)
    if i >= 0:
        raise b.error(i, f"amount must be >= 0 (0 removes the level), got {amount[i]}", "amount")
    book.apply(ts.tolist(), snap.tolist(), is_bid.tolist(), price.tolist(), amount.tolist())
    return book.drain()


def _tardis_incremental_finish(state: dict):
    book = state.get("l2")
    if book is None:
        return {}
    book.finish()
    return book.drain()


DERIVATIVE_TICKER = (*TARDIS, "funding_timestamp", "funding_rate", "predicted_funding_rate",
                     "open_interest", "last_price", "index_price", "mark_price")


def _tardis_derivative_ticker(b: Batch):
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


# ------------------------------------------------------------------------------------------------
# Candles (`bars`) and other traders' liquidations (`liquidations`)
# A bar is stamped with the end of its interval, when its OHLC is known (data/README.md, "Candles").

OHLCV = ("ts", "open", "high", "low", "close", "volume")


def _bars(b: Batch, end: np.ndarray):
    """The checked OHLCV columns of a batch, stamped at `end`."""
    from .validate import FIX_CANDLE, candle_problem  # the rule dataset validation applies too

    o, h, lo, c = (b.number(k, positive=True) for k in ("open", "high", "low", "close"))
    v = b.number("volume")
    bad = candle_problem(o, h, lo, c)
    if bad:
        i, col, problem = bad
        raise b.error(i, problem, col, FIX_CANDLE)
    i = _first_bad(v < 0)
    if i >= 0:
        raise b.error(i, f"volume must be a finite number >= 0, got {v[i]}", "volume")
    return {"bars": {"ts_ns": end, "open": o, "high": h, "low": lo, "close": c, "volume": v}}


def _after(b: Batch, end: np.ndarray, start: np.ndarray, col: str, start_col: str) -> np.ndarray:
    i = _first_bad(end <= start)
    if i >= 0:
        raise b.error(i, f"{col} {b.df[col][i]!r} is not after {start_col}", col)
    return end


def _binance_klines(b: Batch):
    return _bars(b, _after(b, _kline_close_ns(b), b.epoch_ns("open_time"), "close_time", "open_time"))


def _bar_time(b: Batch, col: str) -> np.ndarray:
    """Epoch s/ms/µs/ns (Batch.epoch_ns), ISO-8601 text (UTC unless it carries an offset) or a
    Parquet datetime, in ns; epoch or ISO is decided by the file's first value."""
    import polars as pl

    raw = b.df[col]
    if raw.dtype.is_temporal():
        if getattr(raw.dtype, "time_zone", None):
            raw = raw.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        ns, text = raw.dt.cast_time_unit("ns").cast(pl.Int64), raw.cast(pl.String)
    else:
        key = "iso:" + col
        if key not in b.state:
            b.state[key] = not re.match(r"^\s*\d+(\.\d*)?\s*$", raw[0] or "")
        if not b.state[key]:
            return b.epoch_ns(col)
        text = raw.str.strip_chars()
        ns = text.str.to_datetime(time_unit="ns", time_zone="UTC", strict=False) \
            .dt.replace_time_zone(None).cast(pl.Int64)
    i = _first_bad(ns.is_null().to_numpy())
    if i >= 0:
        raise b.error(i, f"not a time: {text[i]!r} (epoch s/ms/µs/ns or ISO-8601)", col)
    out = ns.to_numpy()
    i = _first_bad((out < TS_MIN_NS) | (out >= TS_MAX_NS))
    if i >= 0:
        raise b.error(i, f"time {text[i]!r} is outside 2009-01-01 .. 2100-01-01 UTC", col, FIX_UNIT)
    return out


def _bar_interval(b: Batch, start: np.ndarray) -> int:
    """The smallest step between consecutive bar times of the file. Taken from the first batch
    (thousands of bars); a later batch with a smaller step is refused, never stamped differently."""
    prev = b.state.get("bar_last")
    times = start if prev is None else np.concatenate(([prev], start))
    steps = np.diff(np.unique(times))
    step = int(steps.min()) if len(steps) else None
    fix = "add a close_ts column (the end of each bar)"
    known = b.state.setdefault("bar_step", step)
    if known is None:
        raise DataError("cannot tell the bar interval from a single bar time", file=b.name, column="ts", fix=fix)
    if step is not None and step < known:
        d = np.abs(np.diff(times))
        k = _first_bad((d > 0) & (d < known))
        problem = f"bars {step} ns apart, but the first bars of the file are {known} ns apart"
        if k < 0:
            raise DataError(problem, file=b.name, column="ts", fix=fix)
        raise b.error(k + (prev is None), problem, "ts", fix)
    if len(start):
        b.state["bar_last"] = int(start[-1])
    return known


def _ohlcv(b: Batch):
    start = _bar_time(b, "ts")
    if "close_ts" in b.df.columns:
        end = _after(b, _bar_time(b, "close_ts"), start, "close_ts", "ts")
    else:
        end = start + _bar_interval(b, start)
    return _bars(b, end)


def _tardis_liquidations(b: Batch):
    b.single_symbol()
    return {"liquidations": {"ts_ns": b.epoch_ns("timestamp"), "price": b.number("price", positive=True),
                             "qty": b.number("amount", positive=True), "side": b.words("side", BUY_SELL)}}


# ------------------------------------------------------------------------------------------------
# The table (another module may add its own formats with one line each)

FORMATS.update({
    "binance-trades": Format(("trades",), (
        ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match"),  # spot
        ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker"),  # USDⓈ-M futures
        ("id", "price", "qty", "base_qty", "time", "is_buyer_maker"),  # COIN-M: qty in contracts
    ), _binance_trades("time", "qty"), columns=("id", "price", "qty", "time", "is_buyer_maker"),
        types={"price": "f8", "qty": "f8", "time": "i8", "is_buyer_maker": "b1"}),
    "binance-aggtrades": Format(("trades",), (
        ("agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time",
         "is_buyer_maker", "is_best_match"),  # spot
        ("agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time",
         "is_buyer_maker"),  # USDⓈ-M futures
    ), _binance_trades("transact_time", "quantity"),
        columns=("agg_trade_id", "price", "quantity", "transact_time", "is_buyer_maker"),
        types={"price": "f8", "quantity": "f8", "transact_time": "i8", "is_buyer_maker": "b1"}),
    "binance-bookticker": Format(("quotes",), (
        ("update_id", "best_bid_price", "best_bid_qty", "best_ask_price", "best_ask_qty",
         "transaction_time", "event_time"),), _binance_book_ticker),
    "binance-mark-klines": Format(("marks",), (KLINE,), _binance_mark_klines),
    "binance-index-klines": Format(("marks",), (KLINE,), _binance_index_klines, fills="index_price"),
    "binance-premium-index-klines": Format(("premium",), (KLINE,), _binance_premium_klines),
    "binance-funding": Format(("funding",), (
        ("calc_time", "funding_interval_hours", "last_funding_rate"),), _binance_funding),
    "bybit-trades": Format(("trades",), (BYBIT_TRADES, (*BYBIT_TRADES, "RPI")), _bybit_trades),
    "bybit-spot-trades": Format(("trades",), (
        ("id", "timestamp", "price", "volume", "side", "rpi"),
        ("id", "timestamp", "price", "volume", "side")), _bybit_spot_trades),
    "bybit-funding": Format(("funding",), (("symbol", "fundingRate", "fundingRateTimestamp"),),
                            _bybit_funding, header=True),
    "tardis-trades": Format(("trades",), ((*TARDIS, "id", "side", "price", "amount"),),
                            _tardis_trades, header=True),
    "tardis-quotes": Format(("quotes",), ((*TARDIS, "ask_amount", "ask_price", "bid_price", "bid_amount"),),
                            _tardis_quotes, header=True),
    "tardis-book-snapshot-5": Format(("quotes", "book"), (_snapshot_layout(5),), _tardis_snapshot(5),
                                     header=True, options=("book_levels",), types=_snapshot_types(5)),
    "tardis-book-snapshot-25": Format(("quotes", "book"), (_snapshot_layout(25),), _tardis_snapshot(25),
                                      header=True, options=("book_levels",), types=_snapshot_types(25)),
    "tardis-incremental-book-l2": Format(("quotes", "book"), (INCREMENTAL_L2,), _tardis_incremental,
                                         header=True, finish=_tardis_incremental_finish,
                                         options=("book_levels", "book_interval_ns")),
    "tardis-derivative-ticker": Format(("marks", "funding", "open_interest"), (DERIVATIVE_TICKER,),
                                       _tardis_derivative_ticker, header=True),
    "binance-klines": Format(("bars",), (KLINE,), _binance_klines),
    "ohlcv": Format(("bars",), (OHLCV, (*OHLCV, "close_ts")), _ohlcv, header=True, parquet=True),
    "tardis-liquidations": Format(("liquidations",), ((*TARDIS, "id", "side", "price", "amount"),),
                                  _tardis_liquidations, header=True),
})


def matching_formats(fields: list[str]) -> list[str]:
    """Formats with a layout equal to these header fields (case-insensitive)."""
    low = [f.lower() for f in fields]
    return [name for name, f in FORMATS.items() if any([c.lower() for c in lay] == low for lay in f.layouts)]


_NUMERIC = re.compile(r"^[-+]?[0-9.eE+-]+$")


def choose_layout(fmt: str, first_line: str, name: str) -> tuple[tuple[str, ...], int]:
    """(layout, header lines to skip) from the first line; unknown headers are refused, never
    read as data."""
    spec = FORMATS[fmt]
    if not first_line.strip():
        raise line_error(name, 1, "empty line")
    fields = [f.strip() for f in first_line.split(",")]
    low = [f.lower() for f in fields]
    for lay in spec.layouts:
        if low == [c.lower() for c in lay]:
            return lay, 1
    if not _NUMERIC.match(fields[0]) or spec.header:
        others = [m for m in matching_formats(fields) if m != fmt]
        hint = (f"this header matches --format {' or '.join(others)}" if others else
                "expected a header naming " + " or ".join(",".join(lay) for lay in spec.layouts))
        raise line_error(name, 1, f"unknown header for {fmt}: {shown(first_line)}",
                         fix=f"check --format ({hint})")
    by_count = [lay for lay in spec.layouts if len(lay) == len(fields)]
    if not by_count:
        want = " or ".join(str(len(lay)) for lay in spec.layouts)
        raise line_error(name, 1, f"{len(fields)} fields, expected {want} for {fmt} "
                         f"(header {','.join(spec.layouts[0])})", fix=f"check --format (is this a {fmt} file?)")
    return by_count[0], 0
