"""Stationary block bootstrap of a dataset's returns (Politis & Romano 1994); see docs/stress.md.

The returns are taken on a time grid of step `step` (default 1 minute) from each symbol's
reference series (trades, else marks, else bar closes). One sequence of grid indices, shared by all symbols so
that their co-movement is kept, is drawn block by block: a block starts at a uniform random
index and continues step by step; after each step a new block starts with probability
step / block (so blocks have a geometric length of mean `block`, default 1 hour), and the index
wraps around at the end. Path k's log price on the grid is the original first price plus the
cumulated resampled returns; every event of the symbol in (grid[j-1], grid[j]] is multiplied by
exp(new - original log price) at grid[j], so quotes keep their spread, marks their basis, and the ticks within a
step their original micro-structure. Funding rates and times are unchanged.
"""
from __future__ import annotations

import numpy as np

from ..config import parse_duration_ns
from ..errors import ConfigError
from .transforms import Streams, multiply, reference, symbols_of


def block_indices(n: int, mean_block: float, rng: np.random.Generator) -> np.ndarray:
    """n indices into 0..n-1: the stationary bootstrap's resampling order (mean block length
    `mean_block` in steps, at least 1)."""
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    p = 1.0 / max(float(mean_block), 1.0)
    starts = rng.random(n) < p
    starts[0] = True
    fresh = rng.integers(0, n, size=n)
    # index = the last block start's fresh index + steps since that start, modulo n
    pos = np.arange(n)
    last_start = np.maximum.accumulate(np.where(starts, pos, 0))
    return (fresh[last_start] + (pos - last_start)) % n


def bootstrap(streams: Streams, seed: int, path: int, *, block="1h", step="1m", symbols=None) -> Streams:
    """Path number `path` of the bootstrap seeded by `seed` (the same pair gives the same path)."""
    step_ns = parse_duration_ns(step, "bootstrap.step")
    block_ns = parse_duration_ns(block, "bootstrap.block")
    if step_ns <= 0 or block_ns < step_ns:
        raise ConfigError("bootstrap: step must be positive and block at least one step")
    syms = [s for s in (symbols or symbols_of(streams)) if len(reference(streams, s)[0])]
    if not syms:
        return streams
    t0 = min(int(reference(streams, s)[0][0]) for s in syms)
    t1 = max(int(reference(streams, s)[0][-1]) for s in syms)
    grid = t0 + step_ns * np.arange((t1 - t0) // step_ns + 1, dtype=np.int64)
    rng = np.random.default_rng([int(seed), int(path)])
    idx = block_indices(len(grid) - 1, block_ns / step_ns, rng)
    for sym in syms:
        ts, px = reference(streams, sym)
        k = np.searchsorted(ts, grid, side="right") - 1
        logp = np.log(px[np.maximum(k, 0)])  # before the first event: its first price
        r = np.diff(logp)
        new = logp[0] + np.concatenate(([0.0], np.cumsum(r[idx])))
        # an event in (grid[j-1], grid[j]] takes step j's factor, so that the last price at or
        # before grid[j] is exp(new[j]) exactly (the first grid point keeps factor 1)
        streams = multiply(streams, sym, grid[1:] - (step_ns - 1), np.exp(new - logp)[1:])
    return streams
