"""Scenario transforms of a dataset: pure functions on its streams (formulas in docs/stress.md).

A dataset in memory is `{(kind, symbol): {column: numpy array}}` (`load_streams`), each stream
sorted by ts_ns. Every transform takes such a dict and returns a new one; the inputs are never
modified. Price transforms compute one multiplier per symbol as a step function of time from a
reference series (the symbol's trades, else its marks, else its bars' closes) and multiply
*every* price column of that symbol by it (trade price, bid, ask, mark, index, book levels, bar
open/high/low/close, other traders' liquidation prices; `PRICE_COLUMNS`): bid <= ask and
low <= open, close <= high are kept (same positive factor), marks follow trades, and times and
quantities are untouched. Time transforms map every timestamp of every stream
through one non-decreasing function, so each stream stays sorted. At neutral parameters every
transform returns the data bit for bit (x * 1.0 == x, t + 0 == t), so a neutral scenario replays
exactly the original.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ..config import parse_time_ns
from ..data.layout import INSTRUMENT_FILES, KINDS, list_streams
from ..errors import ConfigError

# Every dataset kind (layout.KINDS; a test checks none is missing) -> its price columns. A bar is
# one event at its close stamp, so all four of its prices take the factor at that time.
PRICE_COLUMNS = {"trades": ("price",), "quotes": ("bid", "ask"), "marks": ("mark_price", "index_price"),
                 "funding": (), "bars": ("open", "high", "low", "close"), "liquidations": ("price",),
                 "book": ("bid", "ask"),
                 "premium": (), "open_interest": ()}  # premium: a rate; open interest: a quantity
NEVER_LO, NEVER_HI = np.iinfo(np.int64).min, np.iinfo(np.int64).max

Streams = dict  # {(kind, symbol): {column: np.ndarray}}


# --- reading and writing ------------------------------------------------------------------------
def load_streams(root: Path, symbols: list[str] | None = None) -> Streams:
    """Every stream of a dataset folder, whole, as numpy columns (files in date order)."""
    out = {}
    for (kind, sym), files in list_streams(Path(root)).items():
        if symbols and sym not in symbols:
            continue
        table = pq.read_table(files, columns=list(KINDS[kind][1])) if len(files) > 1 else \
            pq.read_table(files[0], columns=list(KINDS[kind][1]))
        out[(kind, sym)] = {c: table.column(c).to_numpy() for c in KINDS[kind][1]}
    if not out:
        raise ConfigError(f"stress: no data streams under {root}")
    return out


def write_streams(streams: Streams, source_root: Path, out: Path) -> Path:
    """A derived dataset folder (written atomically): the streams plus the source's instruments."""
    from ..atomic import atomic_dir
    from ..data.writer import write_stream

    with atomic_dir(Path(out)) as tmp:
        for name in INSTRUMENT_FILES:
            if (Path(source_root) / name).is_file():
                shutil.copyfile(Path(source_root) / name, tmp / name)
                break
        for (kind, sym), cols in streams.items():
            if len(cols["ts_ns"]):
                write_stream(tmp, kind, sym, cols)
    return Path(out)


def symbols_of(streams: Streams) -> list[str]:
    return sorted({sym for _, sym in streams})


# --- scenario specs -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    """One transform and its parameters, e.g. Scenario('deepen', {'factor': 1.4, ...})."""

    kind: str
    params: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.kind + "".join(f",{k}={v}" for k, v in self.params.items())


_SPEC = re.compile(r"^\s*([a-z_]+)\s*(?::(.*))?$")


def parse_scenario(text: str) -> Scenario:
    """'deepen:factor=1.4,start=2026-02-05T12:00,end=2026-02-06' -> Scenario (checked)."""
    m = _SPEC.match(text)
    if not m:
        raise ConfigError(f"--scenario: expected KIND:NAME=VALUE,..., got {text!r}")
    kind, rest = m.group(1), m.group(2) or ""
    params = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        k, sep, v = item.partition("=")
        if not sep:
            raise ConfigError(f"--scenario {kind}: expected NAME=VALUE, got {item!r}")
        params[k.strip()] = v.strip()
    return check_scenario(Scenario(kind, params))


def check_scenario(sc: Scenario) -> Scenario:
    """Known kind and parameter names, numbers parsed; times left as given (parsed when applied)."""
    if sc.kind not in TRANSFORMS:
        raise ConfigError(f"scenario: unknown kind {sc.kind!r} (known: {', '.join(TRANSFORMS)})")
    fn, numeric, allowed = TRANSFORMS[sc.kind]
    unknown = set(sc.params) - set(allowed)
    if unknown:
        raise ConfigError(f"scenario {sc.kind}: unknown parameter(s) {sorted(unknown)} "
                          f"(known: {', '.join(allowed)})")
    params = {}
    for k, v in sc.params.items():
        if k in numeric:
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise ConfigError(f"scenario {sc.kind}: {k} must be a number, got {v!r}") from None
            if not np.isfinite(v):
                raise ConfigError(f"scenario {sc.kind}: {k} must be finite, got {v!r}")
        elif k == "symbols" and isinstance(v, str):
            v = [s for s in v.replace("+", " ").replace(";", " ").split() if s]
        elif k in ("start", "end", "at") and isinstance(v, str) and re.fullmatch(r"\s*-?\d+\s*", v):
            v = int(v)  # integer nanoseconds, as documented ('--scenario gap:at=1770249720000000000')
        params[k] = v
    return Scenario(sc.kind, params)


def apply(streams: Streams, scenarios) -> Streams:
    """Apply scenarios in order (each one sees the output of the previous)."""
    for sc in scenarios:
        sc = check_scenario(sc)
        fn = TRANSFORMS[sc.kind][0]
        streams = fn(streams, **sc.params)
    return streams


def _window(start, end, what: str) -> tuple[int, int]:
    lo = parse_time_ns(start, f"{what}.start")
    hi = parse_time_ns(end, f"{what}.end")
    lo = NEVER_LO if lo is None else lo
    hi = NEVER_HI if hi is None else hi
    if hi <= lo:
        raise ConfigError(f"{what}: end must be after start")
    return lo, hi


def _pick(streams: Streams, symbols) -> list[str]:
    have = symbols_of(streams)
    if not symbols:
        return have
    missing = sorted(set(symbols) - set(have))
    if missing:
        raise ConfigError(f"scenario: symbol(s) {missing} not in the dataset")
    return list(symbols)


# --- price multipliers ------------------------------------------------------------------------
def reference(streams: Streams, sym: str) -> tuple[np.ndarray, np.ndarray]:
    """(ts_ns, price) of the symbol's reference series: its trades, else its marks, else its
    bars' closes (a dataset of candles only)."""
    for kind, column in (("trades", "price"), ("marks", "mark_price"), ("bars", "close")):
        if (kind, sym) in streams and len(streams[(kind, sym)]["ts_ns"]):
            s = streams[(kind, sym)]
            return s["ts_ns"], s[column]
    return np.zeros(0, np.int64), np.zeros(0)


def multiply(streams: Streams, sym: str, ref_ts: np.ndarray, mult: np.ndarray) -> Streams:
    """Multiply every price column of `sym` by the step function mult (value of the last
    reference event at or before each row; 1.0 before the first)."""
    out = dict(streams)
    for (kind, s), cols in streams.items():
        if s != sym or not PRICE_COLUMNS[kind]:
            continue
        k = np.searchsorted(ref_ts, cols["ts_ns"], side="right") - 1
        m = np.where(k >= 0, mult[np.maximum(k, 0)], 1.0)
        new = dict(cols)
        for c in PRICE_COLUMNS[kind]:
            new[c] = cols[c] * m
        out[(kind, s)] = new
    return out


def _log_at(ts: np.ndarray, logp: np.ndarray, t: int) -> float | None:
    """Log price of the last reference event at or before t (the first one if t is earlier)."""
    if not len(ts):
        return None
    k = int(np.searchsorted(ts, t, side="right")) - 1
    return float(logp[max(k, 0)])


# --- the transforms -------------------------------------------------------------------------------
def deepen(streams: Streams, factor: float = 1.0, start=None, end=None, symbols=None) -> Streams:
    """Scale log-moves inside [start, end] around the pivot (the price at start) by `factor`:
    log p' = log p + (factor - 1) * (log p(min(t, end)) - log p(start)) for t >= start; the extra
    move of the window persists after it."""
    lo, hi = _window(start, end, "deepen")
    for sym in _pick(streams, symbols):
        ts, px = reference(streams, sym)
        if not len(ts):
            continue
        logp = np.log(px)
        pivot = _log_at(ts, logp, lo)
        clip = np.where(ts <= hi, logp, _log_at(ts, logp, hi))
        mult = np.where(ts >= lo, np.exp((factor - 1.0) * (clip - pivot)), 1.0)
        streams = multiply(streams, sym, ts, mult)
    return streams


def gap(streams: Streams, pct: float = 0.0, at=None, symbols=None) -> Streams:
    """A jump of pct % at time `at`: every price at or after `at` times (1 + pct / 100)."""
    t = parse_time_ns(at, "gap.at")
    if t is None:
        raise ConfigError("gap: give at=TIME")
    if pct <= -100:
        raise ConfigError("gap: pct must be above -100")
    for sym in _pick(streams, symbols):
        grid = np.array([NEVER_LO, t], dtype=np.int64)
        streams = multiply(streams, sym, grid, np.array([1.0, 1.0 + pct / 100.0]))
    return streams


def accelerate(streams: Streams, factor: float = 1.0, start=None, end=None) -> Streams:
    """Compress the time of [start, end) by `factor` (> 0) for every stream:
    t' = start + floor((t - start) / factor) inside, t' = t - (D - floor(D / factor)) after it
    (D = end - start); the rest of the data follows the window without a hole."""
    lo, hi = _window(start, end, "accelerate")
    if factor <= 0:
        raise ConfigError("accelerate: factor must be positive")
    if lo == NEVER_LO or hi == NEVER_HI:
        raise ConfigError("accelerate: give start and end")
    span = hi - lo
    shift = span - int(np.floor(span / factor))
    out = {}
    for key, cols in streams.items():
        ts = cols["ts_ns"]
        inside = (ts >= lo) & (ts < hi)
        new_ts = ts.copy()
        new_ts[inside] = lo + np.floor((ts[inside] - lo) / factor).astype(np.int64)
        new_ts[ts >= hi] -= shift
        out[key] = {**cols, "ts_ns": new_ts}
    return out


def thin(streams: Streams, spread: float = 1.0, depth: float = 1.0, start=None, end=None,
         symbols=None) -> Streams:
    """A thinner book in [start, end): the spread times `spread` around the same mid
    (bid' = bid - (spread - 1) * h, ask' = ask + (spread - 1) * h, h = (ask - bid) / 2), quote
    sizes, trade sizes and bar volumes times `depth` (the sqrt-impact volume V follows the trade
    sizes; a bar is stamped at its close). An L2 book snapshot moves every level of a side by its
    level-0 h (the levels keep their order and level 0 stays the thinned quote) and scales every
    level's size by `depth`. Other traders' liquidations keep their sizes (what was forced, not
    what the book showed)."""
    lo, hi = _window(start, end, "thin")
    if spread < 1.0 or not 0.0 < depth:
        raise ConfigError("thin: spread must be >= 1 and depth > 0")
    out = dict(streams)
    for sym in _pick(streams, symbols):
        if ("quotes", sym) in streams:
            q = streams[("quotes", sym)]
            w = (q["ts_ns"] >= lo) & (q["ts_ns"] < hi)
            h = np.where(w, (spread - 1.0) * 0.5 * (q["ask"] - q["bid"]), 0.0)
            d = np.where(w, depth, 1.0)
            out[("quotes", sym)] = {**q, "bid": q["bid"] - h, "ask": q["ask"] + h,
                                    "bid_qty": q["bid_qty"] * d, "ask_qty": q["ask_qty"] * d}
        if ("trades", sym) in streams:
            t = streams[("trades", sym)]
            w = (t["ts_ns"] >= lo) & (t["ts_ns"] < hi)
            out[("trades", sym)] = {**t, "qty": t["qty"] * np.where(w, depth, 1.0)}
        if ("bars", sym) in streams:
            b = streams[("bars", sym)]
            w = (b["ts_ns"] >= lo) & (b["ts_ns"] < hi)
            out[("bars", sym)] = {**b, "volume": b["volume"] * np.where(w, depth, 1.0)}
        if ("book", sym) in streams and len(streams[("book", sym)]["ts_ns"]):
            b = streams[("book", sym)]
            w = (b["ts_ns"] >= lo) & (b["ts_ns"] < hi)
            snap = np.maximum(np.cumsum(b["level"] == 0) - 1, 0)  # each row's snapshot (level 0 starts one)
            top = np.flatnonzero(b["level"] == 0)
            h0 = (spread - 1.0) * 0.5 * (b["ask"][top] - b["bid"][top]) if len(top) else np.zeros(1)
            h = np.where(w, h0[np.minimum(snap, len(h0) - 1)], 0.0)
            d = np.where(w, depth, 1.0)
            out[("book", sym)] = {**b, "bid": b["bid"] - h, "ask": b["ask"] + h,
                                  "bid_qty": b["bid_qty"] * d, "ask_qty": b["ask_qty"] * d}
    return out


def funding(streams: Streams, rate: float = 0.0, mode: str = "add", start=None, end=None,
            symbols=None) -> Streams:
    """Funding rates of the events in [start, end): rate' = rate_old + rate (mode add) or rate
    (mode set). Rates are fractions per interval: -0.002 is -0.2 %."""
    lo, hi = _window(start, end, "funding")
    if mode not in ("add", "set"):
        raise ConfigError(f"funding: mode must be 'add' or 'set', got {mode!r}")
    out = dict(streams)
    for sym in _pick(streams, symbols):
        if ("funding", sym) not in streams:
            continue
        f = streams[("funding", sym)]
        w = (f["ts_ns"] >= lo) & (f["ts_ns"] < hi)
        new = np.where(w, rate, f["rate"]) if mode == "set" else np.where(w, f["rate"] + rate, f["rate"])
        out[("funding", sym)] = {**f, "rate": new}
    return out


def outage(streams: Streams, start=None, end=None) -> Streams:
    """An exchange outage in [start, end): no event of any stream, so no order is handled (the
    engine matches, triggers and liquidates only at events)."""
    lo, hi = _window(start, end, "outage")
    out = {}
    for key, cols in streams.items():
        keep = ~((cols["ts_ns"] >= lo) & (cols["ts_ns"] < hi))
        out[key] = cols if keep.all() else {c: v[keep] for c, v in cols.items()}
    return out


# kind -> (function, numeric parameters, all parameters)
TRANSFORMS = {
    "deepen": (deepen, ("factor",), ("factor", "start", "end", "symbols")),
    "accelerate": (accelerate, ("factor",), ("factor", "start", "end")),
    "thin": (thin, ("spread", "depth"), ("spread", "depth", "start", "end", "symbols")),
    "funding": (funding, ("rate",), ("rate", "mode", "start", "end", "symbols")),
    "gap": (gap, ("pct",), ("pct", "at", "symbols")),
    "outage": (outage, (), ("start", "end")),
}
