"""Plot-scale reduction of long series that keeps every extreme and every marker.

A figure is ~2,000 pixels wide, so a line with 100M points is drawn through at most a few points
per pixel column anyway. :func:`minmax` cuts the series into ``n_buckets`` consecutive buckets of
equal count and keeps, per bucket, the first, last, minimum and maximum sample (in time order), so
the drawn envelope is exactly that of the full series: the global minimum and maximum, every
spike and every gap (NaN) at a bucket edge survive. Indices passed as ``keep`` (e.g. where fills
are) are kept too, so markers sit on the line. Work is O(N) in NumPy, in blocks of buckets to keep
extra memory small: 100M float64 points reduce in about a second.
"""
from __future__ import annotations

import numpy as np

DEFAULT_BUCKETS = 2000
_BLOCK = 64  # buckets per vectorised block (bounds temporary memory to ~64 buckets of data)


def minmax_indices(y: np.ndarray, n_buckets: int = DEFAULT_BUCKETS, keep=None) -> np.ndarray:
    """Sorted unique indices of the samples to draw: first/last/min/max of each bucket + ``keep``.

    NaNs never win a min/max (a bucket of only NaNs keeps its first and last sample, so a gap
    stays a gap). Series shorter than 4 * n_buckets are returned whole.
    """
    y = np.asarray(y)
    n = len(y)
    if n <= 4 * n_buckets or n_buckets < 1:
        return np.arange(n, dtype=np.int64)
    k = -(-n // n_buckets)  # samples per bucket (ceil)
    m = n // k  # full buckets
    parts = [np.array([0, n - 1], dtype=np.int64)]
    has_nan = y.dtype.kind == "f" and bool(np.isnan(y).any())
    for b0 in range(0, m, _BLOCK):
        b1 = min(m, b0 + _BLOCK)
        blk = y[b0 * k: b1 * k].reshape(b1 - b0, k)
        if has_nan:
            lo = np.where(np.isnan(blk), np.inf, blk).argmin(axis=1)
            hi = np.where(np.isnan(blk), -np.inf, blk).argmax(axis=1)
        else:
            lo, hi = blk.argmin(axis=1), blk.argmax(axis=1)
        base = np.arange(b0, b1, dtype=np.int64) * k
        parts += [base, base + k - 1, base + lo, base + hi]
    if m * k < n:  # the short last bucket
        tail = y[m * k:]
        finite = ~np.isnan(tail) if has_nan else np.ones(len(tail), bool)
        parts.append(np.array([m * k, n - 1], dtype=np.int64))
        if finite.any():
            idx = np.flatnonzero(finite)
            parts.append(m * k + idx[[np.argmin(tail[idx]), np.argmax(tail[idx])]])
    if keep is not None:
        keep = np.asarray(keep, dtype=np.int64)
        parts.append(keep[(keep >= 0) & (keep < n)])
    return np.unique(np.concatenate(parts))


def minmax(x: np.ndarray, y: np.ndarray, n_buckets: int = DEFAULT_BUCKETS, keep=None):
    """(x, y) reduced with :func:`minmax_indices` (x must be sorted, e.g. ts_ns)."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError("x and y must have the same length")
    idx = minmax_indices(y, n_buckets, keep)
    if len(idx) == len(y):
        return x, y
    return x[idx], y[idx]


def ohlc(ts: np.ndarray, open_, high, low, close, n_buckets: int = DEFAULT_BUCKETS):
    """Merge consecutive bars into at most ~n_buckets bars: first open, max high, min low, last
    close (NaN-aware), timestamp of the last bar. Returns (ts, open, high, low, close)."""
    ts = np.asarray(ts)
    arrays = [np.asarray(a, dtype=np.float64) for a in (open_, high, low, close)]
    n = len(ts)
    if n <= 2 * n_buckets:
        return (ts, *arrays)
    k = -(-n // n_buckets)
    starts = np.arange(0, n, k)
    ends = np.minimum(starts + k, n) - 1
    o, h, lo, c = arrays
    with np.errstate(invalid="ignore"):
        hh = np.fmax.reduceat(h, starts)
        ll = np.fmin.reduceat(lo, starts)
    return ts[ends], o[starts], hh, ll, c[ends]
