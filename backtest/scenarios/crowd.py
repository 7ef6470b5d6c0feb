"""An endogenous liquidation cascade: a synthetic crowd of leveraged positions on one perpetual.

The crowd's open interest is split into buckets by side, leverage and entry price. A compiled
pre-pass walks the symbol's trades in time order with the price moved by the crowd's own forced
flow; when the moved price crosses a bucket's liquidation price, the bucket's whole notional is
sold (longs) or bought (shorts) and moves the price of the rest of the path, which can cross
further buckets. The strategy then runs, in the engine, on the moved path. Rules, calibration and
the figures they reproduce: docs/stress.md.

  liquidation price   long  entry * (1 - 1/L + mmr)      short  entry * (1 + 1/L - mmr)
  forced flow         bucket b crossed at t_b has executed Q_b * (1 - exp(-(t - t_b) / tau)) by t
  price offset        D(t) = y * (sqrt(B(t)) - sqrt(S(t))),  p'(t) = p(t) * exp(D(t))
                      S, B = executed forced sells, buys;  y = k * sigma_day / sqrt(V_day)
This is the engine's square-root impact k * sigma * sqrt(q / V) (backtest/core/execution.py) of the
cumulative forced flow as one metaorder, with sigma and V per day (the ratio sigma / sqrt(V) does
not depend on the horizon): sigma_day from the dataset's reference returns, V_day the market-wide
daily volume (the dataset holds a sample of the market's trades). Impact is permanent and the
forced flow decays (executes) with time constant tau: a transient impact would let an earlier
liquidation wear off before the low, so more leverage could give a shallower low.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np
from numba import njit

from ..config import parse_duration_ns
from ..errors import ConfigError
from .transforms import Streams, multiply, reference

DAY_NS = 86_400_000_000_000


@dataclass(frozen=True)
class Crowd:
    """The crowd. Defaults: the calibration of docs/stress.md (market-wide, on BTC)."""

    symbol: str = "BTCUSDT"
    open_interest: float = 8e9  # USD, both sides: the liquidatable leveraged book
    long_share: float = 0.65  # of the open interest
    leverages: tuple = (2.0, 3.0, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0)
    weights: tuple = (0.16, 0.16, 0.22, 0.22, 0.12, 0.06, 0.04, 0.02)  # of each side's OI
    entry_spread: float = 0.10  # entries spread over this log distance from the start price
    entries: int = 21  # entry levels per (side, leverage)
    mmr: float = 0.005  # maintenance margin rate
    impact: float = 1.0  # k of the square-root law (the engine's default impact_k)
    market_volume: float = 60e9  # USD per day, market-wide
    half_life: str = "5m"  # of the forced flow's execution (tau = half_life / ln 2)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Crowd":
        d = dict(d or {})
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"crowd: unknown option(s) {sorted(unknown)} (known: {', '.join(sorted(names))})")
        for k in ("leverages", "weights"):
            if isinstance(d.get(k), str):
                d[k] = tuple(float(x) for x in d[k].replace("+", " ").replace(";", " ").split())
            elif k in d:
                d[k] = tuple(float(x) for x in d[k])
        for k in ("open_interest", "long_share", "entry_spread", "mmr", "impact", "market_volume"):
            if k in d:
                d[k] = float(d[k])
        if "entries" in d:
            d["entries"] = int(float(d["entries"]))
        crowd = replace(cls(), **d)
        crowd.check()
        return crowd

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def check(self) -> None:
        if len(self.leverages) != len(self.weights) or not self.leverages:
            raise ConfigError("crowd: leverages and weights need the same (non-zero) length")
        if min(self.leverages) <= 1.0 or min(self.weights) < 0 or sum(self.weights) <= 0:
            raise ConfigError("crowd: leverages must be above 1 and weights non-negative")
        if self.open_interest < 0 or not 0 <= self.long_share <= 1 or self.entries < 1:
            raise ConfigError("crowd: open_interest >= 0, 0 <= long_share <= 1, entries >= 1")
        if not 0 <= self.mmr < 1 / max(self.leverages) or self.impact < 0 or self.market_volume <= 0:
            raise ConfigError("crowd: mmr below 1/max leverage, impact >= 0, market_volume > 0")
        parse_duration_ns(self.half_life, "crowd.half_life")


def buckets(crowd: Crowd, p0: float) -> dict[str, np.ndarray]:
    """The crowd's buckets at start price p0: longs entered at p0 * exp(-u), shorts at p0 * exp(u),
    u evenly spaced in [0, entry_spread] (both sides in profit at the start, as at the week's high
    before the crash). So no bucket starts beyond its liquidation price, and a bucket keeps its
    notional whatever its leverage."""
    w = np.asarray(crowd.weights, float) / sum(crowd.weights)
    u = np.linspace(0.0, crowd.entry_spread, crowd.entries)
    rows = []
    for side, share in ((1, crowd.long_share), (-1, 1.0 - crowd.long_share)):
        entry = p0 * np.exp(-side * u)
        for L, wl in zip(crowd.leverages, w):
            q = crowd.open_interest * share * wl / len(u)
            if q <= 0:
                continue
            for e in entry:
                rows.append((side, float(L), e, e * (1.0 - side / L + side * crowd.mmr), q))
    a = np.array(rows, dtype=float).reshape(-1, 5)
    return {"side": a[:, 0].astype(np.int8), "leverage": a[:, 1], "entry": a[:, 2],
            "liq_price": a[:, 3], "notional": a[:, 4]}


@njit(cache=True)
def _cascade(ts, price, long_liq, long_q, short_liq, short_q, y, tau):  # pragma: no cover (numba)
    """The pre-pass. Longs sorted by liquidation price descending, shorts ascending, so the
    crossed buckets of each side are a prefix. Returns the log offset at each event and each
    bucket's crossing event (-1: never). A bucket crossed at event i moves prices from i + 1 on."""
    n = ts.shape[0]
    off = np.zeros(n)
    long_ev = np.full(long_liq.shape[0], -1, np.int64)
    short_ev = np.full(short_liq.shape[0], -1, np.int64)
    a_sell = r_sell = a_buy = r_buy = 0.0
    pl = ps = 0
    for i in range(n):
        if i > 0 and (r_sell > 0.0 or r_buy > 0.0):
            decay = np.exp(-(ts[i] - ts[i - 1]) / tau) if tau > 0.0 else 0.0
            r_sell *= decay
            r_buy *= decay
        d = y * (np.sqrt(max(a_buy - r_buy, 0.0)) - np.sqrt(max(a_sell - r_sell, 0.0)))
        off[i] = d
        p = price[i] * np.exp(d)
        while pl < long_liq.shape[0] and long_liq[pl] >= p:
            long_ev[pl] = i
            a_sell += long_q[pl]
            r_sell += long_q[pl]
            pl += 1
        while ps < short_liq.shape[0] and short_liq[ps] <= p:
            short_ev[ps] = i
            a_buy += short_q[ps]
            r_buy += short_q[ps]
            ps += 1
    return off, long_ev, short_ev


def sigma_day(ts: np.ndarray, price: np.ndarray) -> float:
    """Daily volatility of the reference series: sqrt(sum of squared log returns per day)."""
    if len(ts) < 2 or ts[-1] <= ts[0]:
        return 0.0
    r = np.diff(np.log(price))
    return float(np.sqrt(np.sum(r * r) * DAY_NS / (ts[-1] - ts[0])))


@dataclass
class Cascade:
    """The pre-pass output: the moved streams, the bucket table (with when each was crossed) and
    the offset at each reference event."""

    streams: Streams
    buckets: object  # polars DataFrame
    ts: np.ndarray
    offset: np.ndarray

    @property
    def liquidations(self):
        import polars as pl

        return self.buckets.filter(pl.col("ts_ns").is_not_null()).sort("ts_ns")


def run_crowd(streams: Streams, crowd: Crowd | None) -> Cascade:
    """Move the crowd's symbol by its liquidation cascade (an empty crowd moves nothing)."""
    import polars as pl

    crowd = crowd or Crowd(open_interest=0.0)
    ts, px = reference(streams, crowd.symbol)
    if not len(ts):
        raise ConfigError(f"crowd: no trades or marks of {crowd.symbol} in the data")
    b = buckets(crowd, float(px[0]))
    longs = np.flatnonzero(b["side"] > 0)
    longs = longs[np.argsort(-b["liq_price"][longs], kind="stable")]
    shorts = np.flatnonzero(b["side"] < 0)
    shorts = shorts[np.argsort(b["liq_price"][shorts], kind="stable")]
    y = crowd.impact * sigma_day(ts, px) / np.sqrt(crowd.market_volume)
    tau = parse_duration_ns(crowd.half_life, "crowd.half_life") / np.log(2.0)
    off, lev, sev = _cascade(ts, px, b["liq_price"][longs], b["notional"][longs],
                             b["liq_price"][shorts], b["notional"][shorts], float(y), float(tau))
    event = np.full(len(b["side"]), -1, np.int64)
    event[longs], event[shorts] = lev, sev
    hit = event >= 0
    k = np.maximum(event, 0)
    table = pl.DataFrame({**b, "event": pl.Series([int(e) if h else None for e, h in zip(event, hit)], dtype=pl.Int64),
                          "ts_ns": pl.Series([int(ts[i]) if h else None for i, h in zip(k, hit)], dtype=pl.Int64),
                          "price": pl.Series([float(px[i] * np.exp(off[i])) if h else None
                                              for i, h in zip(k, hit)], dtype=pl.Float64)})
    moved = streams if not np.any(off) else multiply(streams, crowd.symbol, ts, np.exp(off))
    return Cascade(moved, table, ts, off)

