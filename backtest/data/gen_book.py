"""L2 depth snapshots for the synthetic crash dataset (the `book` kind), built from its quotes.

A snapshot at time T has BOOK_LEVELS levels per side, one row per level (layout.py):

* level 0 is the L1 quote in force at T (the last quote with ts <= T, so the book never
  contradicts the quotes or the trades they follow);
* deeper levels step away from it by whole ticks: 1 + Exp(1) x gap ticks each, with gap growing
  with the symbol's mean spread at that second (the book spreads out when the spread widens);
* deeper sizes come from the generator's depth model (`depth`, which thins as 1/sqrt(activity)),
  thinned once more by the same factor (activity^-1 in all: market makers pull the deep book
  harder than the touch in a crash), times a profile rising with the level and lognormal noise;
  rounded to lots (>= 1 lot).

Cadence (docs/crash-dataset.md, "Book"): one snapshot per DENSE_INTERVAL_S in the cascade window
DENSE_HOURS, one per CALM_INTERVAL_S elsewhere, both divided by the scale like the marks (never
below 1 s, never above 1 h), on a fixed grid: the times depend only on the scale.
All numpy; one generator per symbol (its own seed child), so turning the book off leaves every
other file byte-identical.
"""
from __future__ import annotations

import numpy as np

BOOK_LEVELS = 10
DENSE_HOURS = (42.0, 48.0)  # 4 Feb 18:00 .. 6 Feb 00:00 UTC, as the quote-after-every-trade window
DENSE_INTERVAL_S = 1.0  # at scale 1: >= 1 snapshot per second per symbol around the cascade
CALM_INTERVAL_S = 60.0
DEEP_THIN_EXP = 1.0  # deep sizes x (depth / calm depth)^1: activity^-1 in all
_NS = 1_000_000_000


def intervals_ns(scale: float) -> tuple[int, int]:
    """(dense, calm) snapshot intervals in ns for a scale: base / scale within [1 s, 1 h]."""
    def one(base: float) -> int:
        return int(round(min(3600.0, max(1.0, base / scale)) * _NS))
    return one(DENSE_INTERVAL_S), one(CALM_INTERVAL_S)


def snapshot_times(s0: int, s1: int, scale: float) -> np.ndarray:
    """Snapshot times (ns since the dataset start) in seconds [s0, s1): the dense grid inside
    DENSE_HOURS, the calm grid outside it."""
    dense, calm = intervals_ns(scale)
    w0, w1 = (int(h * 3600) * _NS for h in DENSE_HOURS)
    a, b = s0 * _NS, s1 * _NS

    def grid(lo: int, hi: int, step: int) -> np.ndarray:
        lo, hi = max(lo, a), min(hi, b)
        if hi <= lo:
            return np.zeros(0, np.int64)
        k0, k1 = -(-lo // step), -(-hi // step)
        return np.arange(k0, k1, dtype=np.int64) * step

    return np.concatenate((grid(0, w0, calm), grid(w0, w1, dense), grid(w1, b, calm)))


def book_block(times: np.ndarray, t0_ns: int, quotes: dict | None, carry: dict, tb_spread: np.ndarray,
               tb_depth: np.ndarray, depth_usd: float, tick: float, lot: float,
               rng: np.random.Generator, to_price) -> dict | None:
    """Book rows for the snapshot `times` (ns since t0_ns) of one block.

    `quotes` are the block's quotes (absolute ts_ns); `carry` holds the last quote of the previous
    blocks (updated here). Snapshots before the first quote of the symbol are skipped."""
    if quotes is not None and len(quotes["ts_ns"]):
        q_ts = np.concatenate(([np.iinfo(np.int64).min], quotes["ts_ns"]))
        cols = {c: np.concatenate(([carry.get(c, np.nan)], quotes[c])) for c in ("bid", "ask", "bid_qty", "ask_qty")}
        for c in cols:
            carry[c] = float(quotes[c][-1])
    else:
        q_ts = np.array([np.iinfo(np.int64).min])
        cols = {c: np.array([carry.get(c, np.nan)]) for c in ("bid", "ask", "bid_qty", "ask_qty")}
    j = np.searchsorted(q_ts, t0_ns + times, "right") - 1  # the quote in force (index 0 = carried)
    ok = ~np.isnan(cols["bid"][j])
    times, j = times[ok], j[ok]
    n = len(times)
    if n == 0:
        return None
    sec = times // _NS
    inv = round(1.0 / tick)
    bid0 = np.rint(cols["bid"][j] * inv).astype(np.int64)
    ask0 = np.rint(cols["ask"][j] * inv).astype(np.int64)
    mid = 0.5 * (cols["bid"][j] + cols["ask"][j])
    L = BOOK_LEVELS
    # level gaps in ticks: 1 + floor(Exp(1) x gap), gap = half the mean spread beyond one tick
    gap = np.maximum(0.0, 0.5 * (tb_spread[sec].astype(np.float64) - 1.0))
    steps = 1 + np.floor(rng.standard_exponential((2, n, L - 1)) * gap[None, :, None]).astype(np.int64)
    bid_t = np.empty((n, L), np.int64)
    ask_t = np.empty((n, L), np.int64)
    bid_t[:, 0], ask_t[:, 0] = bid0, ask0
    bid_t[:, 1:] = bid0[:, None] - np.cumsum(steps[0], axis=1)
    ask_t[:, 1:] = ask0[:, None] + np.cumsum(steps[1], axis=1)
    # deep sizes: the depth model, thinned harder, a rising profile, lognormal noise (mean 1)
    dep = tb_depth[sec].astype(np.float64)
    deep = dep * (dep / depth_usd) ** DEEP_THIN_EXP
    profile = 1.0 + 0.15 * np.arange(1, L)
    noise = np.exp(0.6 * rng.standard_normal((2, n, L - 1)) - 0.18)
    lots = np.rint((deep / (mid * lot))[None, :, None] * profile[None, None, :] * noise)
    np.maximum(lots, 1.0, out=lots)
    bid_q = np.empty((n, L))
    ask_q = np.empty((n, L))
    bid_q[:, 0], ask_q[:, 0] = cols["bid_qty"][j], cols["ask_qty"][j]
    bid_q[:, 1:] = to_price(lots[0], lot)
    ask_q[:, 1:] = to_price(lots[1], lot)
    # a bid level at or below zero ticks cannot exist: that side simply has fewer levels
    bid_p = np.where(bid_t > 0, to_price(np.maximum(bid_t, 1), tick), np.nan)
    bid_q = np.where(bid_t > 0, bid_q, 0.0)
    return {"ts_ns": np.repeat(t0_ns + times, L), "level": np.tile(np.arange(L, dtype=np.int8), n),
            "bid": bid_p.ravel(), "bid_qty": bid_q.ravel(),
            "ask": to_price(ask_t, tick).ravel(), "ask_qty": ask_q.ravel()}
