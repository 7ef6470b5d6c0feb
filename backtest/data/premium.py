"""Binance funding estimates from the premium index (the data-only `premium` kind).

    from backtest.data.premium import funding_estimate, load_premium
    ts, close = load_premium("data/btc", "BTCUSDT")
    times, rates = funding_estimate(ts, close)            # every 8 h from 00:00 UTC

Binance's rule (USDⓈ-M; data/README.md, "Premium index"): at a funding time T,

    P    = time-weighted average of the premium index over the interval (T - 8 h, T],
           weights 1, 2, ..., n in time order (later samples count more)
    rate = P + clamp(I - P, -0.05 %, +0.05 %),  I = 0.01 % per interval (the interest rate)

optionally capped to +-cap. Binance samples the premium every 5 s; the published 1m klines give
one sample per minute (the close), so this is an estimate. No look-ahead: a kline is stamped at
its close (the importer's rule), and the rate at T uses only samples stamped at or before T.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError

INTEREST = 0.0001  # per funding interval (Binance: 0.03 %/day = 0.01 % per 8 h)
CLAMP = 0.0005
HOUR_NS = 3600 * 10**9


def funding_estimate(ts_ns, premium, times_ns=None, *, interval_h: float = 8.0, interest: float = INTEREST,
                     clamp: float = CLAMP, cap: float | None = None, weighted: bool = True,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(funding times, rates) from premium samples (ts_ns sorted, the time each became known).

    `times_ns` defaults to every `interval_h` hours from 00:00 UTC that has a full interval of
    samples behind it (counting the first sample as covering the step before it). An interval
    without samples gives NaN. `weighted=False` takes the plain mean instead of Binance's 1..n
    weights."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    p = np.asarray(premium, dtype=np.float64)
    if ts.shape != p.shape or ts.ndim != 1:
        raise ConfigError("funding_estimate: ts_ns and premium must be 1-D arrays of one length")
    if len(ts) and np.any(np.diff(ts) < 0):
        raise ConfigError("funding_estimate: ts_ns must be sorted")
    if not (interval_h > 0 and np.isfinite(interval_h)):
        raise ConfigError(f"funding_estimate: interval_h must be > 0, got {interval_h!r}")
    iv = int(round(interval_h * HOUR_NS))
    if times_ns is None:
        if not len(ts):
            return np.zeros(0, np.int64), np.zeros(0)
        # the first T whose interval (T - iv, T] the samples cover: from one sample step before
        # the first sample (a 1m kline stamped 00:01 covers 00:00 .. 00:01)
        step = int(ts[1] - ts[0]) if len(ts) > 1 else 0
        first = -(-(int(ts[0]) + iv - step) // iv) * iv
        times = np.arange(first, int(ts[-1]) + 1, iv, dtype=np.int64)
    else:
        times = np.asarray(times_ns, dtype=np.int64)
    rates = np.full(len(times), np.nan)
    lo = np.searchsorted(ts, times - iv, "right")  # samples in (T - iv, T]
    hi = np.searchsorted(ts, times, "right")
    for j, (a, b) in enumerate(zip(lo, hi)):
        if b <= a:
            continue
        w = np.arange(1, b - a + 1, dtype=np.float64) if weighted else np.ones(b - a)
        avg = float(np.dot(w, p[a:b]) / w.sum())
        r = avg + min(max(interest - avg, -clamp), clamp)
        if cap is not None:
            r = min(max(r, -cap), cap)
        rates[j] = r
    return times, rates


def load_premium(root: Path | str, symbol: str) -> tuple[np.ndarray, np.ndarray]:
    """(ts_ns, close) of a dataset's premium stream for one symbol."""
    import pyarrow.parquet as pq

    from .layout import list_streams
    from .storage import pending, ready

    files = list_streams(Path(root), pending(Path(root))).get(("premium", symbol))
    for f in files or ():
        ready(f)  # an S3 dataset's cache copy may still be downloading
    if not files:
        raise DataError(f"no premium index for {symbol}", file=root,
                        fix="import it with --format binance-premium-index-klines (data/README.md)")
    t = pq.read_table(files, columns=["ts_ns", "close"]) if len(files) > 1 else \
        pq.read_table(files[0], columns=["ts_ns", "close"])
    return t.column("ts_ns").to_numpy(), t.column("close").to_numpy()
