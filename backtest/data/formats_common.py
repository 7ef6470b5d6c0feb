"""What every import format's parser uses (backtest/data/formats.py holds the table of formats).

`Format` is a format's row in the table; `Batch` is one bounded batch of a file's rows as string
columns, with the conversions (`number`, `epoch_ns`, `words`) whose errors name the file, line,
column and the fix (`line_error`); `trade_rows`, `quote_rows` and `tick_rule` are shared by the
exchanges' parsers.
"""
from __future__ import annotations

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


def line_error(file, line: int | None, problem: str, *, column=None, fix=FIX_LINE) -> DataError:
    """A DataError pointing at `file:line` (line is 1-based and counts the header line)."""
    e = DataError(problem, file=f"{file}:{line}" if line is not None else file, column=column, fix=fix)
    e.file, e.row = str(file), line
    return e


def first_bad(mask) -> int:
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
        i = first_bad(v.is_null().to_numpy() & ~empty)
        if i >= 0:
            problem = f"not a number: {shown(raw[i])}" if raw[i] else "empty value, expected a number"
            raise self.error(i, problem, col)
        arr = v.fill_null(np.nan).to_numpy() if optional else v.to_numpy()
        with np.errstate(invalid="ignore"):
            i = first_bad(~np.isfinite(arr) & ~empty)
        if i >= 0:
            raise self.error(i, f"must be a finite number, got {shown(raw[i])}", col)
        if positive:
            with np.errstate(invalid="ignore"):
                badp = ~(np.isfinite(arr) & (arr > 0))
                if optional:
                    badp &= ~np.isnan(arr)
            i = first_bad(badp)
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
            i = first_bad(nulls & ~fr)
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
            i = first_bad(too_long)
            if i >= 0:
                raise self.error(i, f"timestamp {shown(raw[i])} has more decimals than {unit} allow", col, FIX_UNIT)
            if digits:
                frac = np.where(fr, fstr.str.pad_end(digits, "0").cast(pl.Int64, strict=False)
                                .fill_null(0).to_numpy(), 0)
        lo, hi = TS_MIN_NS // mult, TS_MAX_NS // mult
        bad = ((ints < lo) | (ints >= hi)) & ~empty
        i = first_bad(bad)
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
            i = first_bad(v.is_null().to_numpy())
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
        i = first_bad(~seen)
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

def trade_rows(ts, price, qty, side):
    return {"trades": {"ts_ns": ts, "price": price, "qty": qty, "side": side}}


def quote_rows(b: Batch, bid_col: str, ts, bid, ask, bq, aq):
    i = first_bad(bid > ask)
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
