"""The import formats: one table, one line per format (`FORMATS[name] = Format(...)`).

A format names the dataset kinds it produces, the column layouts it accepts (a header line, when
present, must name one of them; without a header the layout is chosen by the number of fields)
and a `parse(batch)` function turning one batch of string columns into numpy columns per kind.
Parsers see the file in bounded batches, in file order; `batch.state` carries what they must
remember across batches and files (the time unit, the symbol, the tick rule, pending funding).
Formats and rules: data/README.md ("Importers"). The parsers of Binance, Bybit and generic
candles are here; Tardis.dev's are in formats_tardis.py; `Format`, `Batch` and the helpers they
share in formats_common.py.
"""
from __future__ import annotations

import re

import numpy as np

from ..errors import DataError, shown
from .formats_common import (BUY_SELL, BUYER_MAKER, FIX_UNIT, Batch, Format, first_bad, line_error, quote_rows,
                             trade_rows)
from .formats_tardis import (DERIVATIVE_TICKER, INCREMENTAL_L2, TARDIS, snapshot_layout, snapshot_types,
                             tardis_derivative_ticker, tardis_incremental, tardis_incremental_finish,
                             tardis_liquidations, tardis_quotes, tardis_snapshot, tardis_trades)
from .layout import TS_MAX_NS, TS_MIN_NS

FORMATS: dict[str, Format] = {}


# ------------------------------------------------------------------------------------------------
# Binance (data.binance.vision)

def _binance_trades(ts_col: str, qty_col: str):
    def parse(b: Batch):
        return trade_rows(b.epoch_ns(ts_col), b.number("price", positive=True),
                          b.number(qty_col, positive=True), b.words("is_buyer_maker", BUYER_MAKER))
    return parse


def _binance_book_ticker(b: Batch):
    return quote_rows(b, "best_bid_price", b.epoch_ns("transaction_time"), b.number("best_bid_price", positive=True),
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
    return trade_rows(b.epoch_ns("timestamp"), b.number("price", positive=True),
                      b.number("size", positive=True), b.words("side", BUY_SELL))


def _bybit_spot_trades(b: Batch):
    return trade_rows(b.epoch_ns("timestamp"), b.number("price", positive=True),
                      b.number("volume", positive=True), b.words("side", BUY_SELL))


def _bybit_funding(b: Batch):
    b.single_symbol()
    return {"funding": {"ts_ns": b.epoch_ns("fundingRateTimestamp"), "rate": b.number("fundingRate")}}


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
    i = first_bad(v < 0)
    if i >= 0:
        raise b.error(i, f"volume must be a finite number >= 0, got {v[i]}", "volume")
    return {"bars": {"ts_ns": end, "open": o, "high": h, "low": lo, "close": c, "volume": v}}


def _after(b: Batch, end: np.ndarray, start: np.ndarray, col: str, start_col: str) -> np.ndarray:
    i = first_bad(end <= start)
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
    i = first_bad(ns.is_null().to_numpy())
    if i >= 0:
        raise b.error(i, f"not a time: {text[i]!r} (epoch s/ms/µs/ns or ISO-8601)", col)
    out = ns.to_numpy()
    i = first_bad((out < TS_MIN_NS) | (out >= TS_MAX_NS))
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
        k = first_bad((d > 0) & (d < known))
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
                            tardis_trades, header=True),
    "tardis-quotes": Format(("quotes",), ((*TARDIS, "ask_amount", "ask_price", "bid_price", "bid_amount"),),
                            tardis_quotes, header=True),
    "tardis-book-snapshot-5": Format(("quotes", "book"), (snapshot_layout(5),), tardis_snapshot(5),
                                     header=True, options=("book_levels",), types=snapshot_types(5)),
    "tardis-book-snapshot-25": Format(("quotes", "book"), (snapshot_layout(25),), tardis_snapshot(25),
                                      header=True, options=("book_levels",), types=snapshot_types(25)),
    "tardis-incremental-book-l2": Format(("quotes", "book"), (INCREMENTAL_L2,), tardis_incremental,
                                         header=True, finish=tardis_incremental_finish,
                                         options=("book_levels", "book_interval_ns")),
    "tardis-derivative-ticker": Format(("marks", "funding", "open_interest"), (DERIVATIVE_TICKER,),
                                       tardis_derivative_ticker, header=True),
    "binance-klines": Format(("bars",), (KLINE,), _binance_klines),
    "ohlcv": Format(("bars",), (OHLCV, (*OHLCV, "close_ts")), _ohlcv, header=True, parquet=True),
    "tardis-liquidations": Format(("liquidations",), ((*TARDIS, "id", "side", "price", "amount"),),
                                  tardis_liquidations, header=True),
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
