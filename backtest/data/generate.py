"""Synthetic tick datasets. One scenario: the leveraged-long liquidation cascade of 4-7 Feb 2026.

How it works (details and calibration targets in docs/crash-dataset.md):

1. A coarse 1-second grid (4 days = 345,600 points, cheap) carries everything that is smooth:
   * BTC's log price = a deterministic piecewise path through anchor prices (73k -> 62k support
     -> break -> wick to 58.9k -> ~60k low -> bounce to ~64k) + stochastic noise pinned to zero at
     the anchors (a Brownian bridge), so every seed hits the calibration levels;
   * the noise has a volatility regime (calm, sell-off, crash hour, aftershock), a two-timescale
     stochastic log-volatility (clustering) and Student-t shocks (fat tails);
   * a market-wide burst process (shot noise with exponential decay) that is more likely when the
     regime is hot: a vectorised stand-in for a self-exciting Hawkes intensity;
   * per asset: start x exp(beta x BTC log-return + pinned idiosyncratic noise);
   * per perpetual: a basis (premium) path that turns negative in the crash; mark = index x
     (1 + smoothed basis), funding = Binance formula on the 8 h average premium.
2. Ticks are drawn block by block (per symbol, per UTC day, split further when large) and written
   at once, so memory is bounded whatever the scale. Trade times are an inhomogeneous Poisson
   process with the grid intensity, drawn already sorted (uniform order statistics mapped through
   the inverse cumulative intensity), so no sort is needed.

Everything is numpy; polars/pyarrow are only used by the writer. Determinism: one SeedSequence per
dataset, one child per symbol (plus one for the market), and the block layout depends only on the
scale, so the same (seed, scale) gives byte-identical files.
"""
from __future__ import annotations

import datetime as dt
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_dir
from ..errors import ConfigError
from . import gen_book
from .instruments import Bracket, Instrument, write_instruments
from .writer import write_stream

SCENARIOS = ("feb-2026-crash",)

# ------------------------------------------------------------------------------------------------
# Scenario constants
START = dt.datetime(2026, 2, 4, tzinfo=dt.timezone.utc)
DAYS = 4
NSEC = DAYS * 86_400  # grid points are seconds 0..NSEC (NSEC + 1 of them)
T0_NS = int(START.timestamp()) * 1_000_000_000
NS = 1_000_000_000

TRADES_PER_SCALE = 620_000  # trades at scale 1; quotes ~555k, marks ~92k -> ~1.27M rows
QUOTE_EVERY = 2  # one L1 update per two trades (the book update a trade caused, thinned) ...
# ... plus one after every trade that printed outside the quote before it, and one after every
# trade around the cascade: a trade never prints outside the quote it follows unless that quote
# is then updated (docs/crash-dataset.md), so the quotes are never staler than the trades.
QUOTE_ALL_HOURS = gen_book.DENSE_HOURS  # hours since 4 Feb 00:00 UTC with a quote after every trade
MARK_INTERVAL_S = 30.0  # mark/index every 30 s at scale 1, denser with scale (>= 1 s, Binance's)
BLOCK_TRADES = 1_000_000  # max expected trades per generated block (bounds memory)
_CHUNK = 1 << 15  # per-tick work runs over chunks this size: temporaries stay in the CPU cache
ACTIVITY_EXP = 0.75  # trade intensity ~ activity^0.75: the crash hour gets ~15-20 % of the day
PARETO_ALPHA = 1.4  # tail index of trade notionals (finite mean, infinite variance)
FUNDING_HOURS = (0, 8, 16)
CRASH_HOUR = 44  # 2026-02-05 20:00 UTC: the hour the 62k support broke
SUPPORT, SUPPORT_UNTIL_H = 62_000.0, 44.0

# BTC anchor path: (hours since 2026-02-04 00:00 UTC, price). Log-linear in between; the noise is
# pinned to zero here. Dense around the break so the wick stays brief.
BTC_ANCHORS = (
    (0.0, 73_000), (5.0, 73_350), (11.0, 73_900), (17.0, 73_300),  # quiet Wednesday, week high
    (24.0, 72_300), (30.0, 71_400), (35.0, 69_200), (38.0, 67_600),  # Thursday sell-off
    (41.0, 64_900), (43.0, 62_700), (44.0, 62_150),  # 62k support tested
    (44.30, 61_500), (44.50, 60_300), (44.60, 59_500), (44.66, 58_900),  # break, wick to ~0.618
    (44.72, 59_600), (44.85, 60_400), (45.0, 60_800), (46.0, 61_100), (47.0, 60_700),
    (48.0, 60_750), (50.0, 60_150), (52.0, 60_600),  # Friday: ~60k low retested
    (56.0, 61_900), (60.0, 62_800), (66.0, 63_600), (72.0, 64_300),  # bounce
    (78.0, 64_900), (84.0, 64_000), (90.0, 64_400), (96.0, 64_200),  # weekend drift
)
# Volatility regime multiplier (hours, x calm volatility), linear in between.
REGIME = ((0, 1.0), (24, 1.0), (30, 1.3), (38, 1.9), (42, 2.6), (43.5, 3.5), (44.5, 6.5),
          (45, 5.5), (46, 3.8), (48, 3.0), (54, 2.2), (60, 1.8), (72, 1.4), (84, 1.2), (96, 1.1))
# Crash intensity 0..1 driving the (negative) perp premium and the sell pressure.
CRASH_SHAPE = ((0, 0.0), (30, 0.0), (40, 0.4), (44.6, 1.0), (48, 0.85), (52, 0.45), (56, 0.2),
               (64, 0.05), (72, 0.0), (96, 0.0))
SIGMA_BTC = 0.018 / math.sqrt(86_400)  # calm BTC volatility per second (1.8 %/day)
BASIS_PRE = 0.00012  # perp premium before the crash: funding sits at the 0.01 % interest rate
BASIS_CRASH = -0.0012  # BTC premium at the crash peak; alts scale it by beta


@dataclass(frozen=True)
class _Spec:
    symbol: str
    type: str
    asset: str
    start: float  # price at 2026-02-04 00:00 UTC
    beta: float  # to BTC log-returns
    tick: float
    lot: float
    share: float  # fraction of all trades
    spread_bps: float  # calm L1 spread
    size_usd: float  # median trade notional (calm)
    depth_usd: float  # median L1 size per side (calm)
    tier: str  # bracket table


SPECS = (
    _Spec("BTCUSDT", "linear_perpetual", "BTC", 73_000, 1.00, 0.1, 0.001, .25, .015, 2_000, 400_000, "btc"),
    _Spec("ETHUSDT", "linear_perpetual", "ETH", 2_650, 1.65, 0.01, 0.001, .17, .05, 1_500, 250_000, "eth"),
    _Spec("SOLUSDT", "linear_perpetual", "SOL", 104.5, 2.20, 0.01, 1.0, .09, 1.2, 700, 60_000, "alt75"),
    _Spec("XRPUSDT", "linear_perpetual", "XRP", 1.62, 1.35, 0.0001, 0.1, .08, .8, 600, 50_000, "alt75"),
    _Spec("DOGEUSDT", "linear_perpetual", "DOGE", 0.1052, 2.60, 0.00001, 1.0, .07, 1.2, 500, 40_000, "alt75"),
    _Spec("ADAUSDT", "linear_perpetual", "ADA", 0.3040, 2.90, 0.0001, 1.0, .05, 3.5, 400, 30_000, "alt50"),
    _Spec("AVAXUSDT", "linear_perpetual", "AVAX", 10.62, 3.45, 0.001, 1.0, .045, 1.5, 400, 25_000, "alt50"),
    _Spec("LINKUSDT", "linear_perpetual", "LINK", 10.85, 2.35, 0.001, 0.01, .045, 1.2, 400, 25_000, "alt50"),
    _Spec("BTC-USDT", "spot", "BTC", 73_000, 1.00, 0.01, 0.00001, .10, .02, 800, 150_000, ""),
    _Spec("ETH-USDT", "spot", "ETH", 2_650, 1.65, 0.01, 0.0001, .10, .06, 600, 100_000, ""),
)

# (notional floor, max leverage, maintenance margin rate); caps are the next floor / the last cap.
_TIERS = {
    "btc": ([0, 50e3, 600e3, 3e6, 12e6, 70e6, 100e6, 230e6, 480e6, 600e6, 800e6, 1.2e9], 1.8e9,
            [125, 100, 75, 50, 25, 20, 10, 5, 4, 3, 2, 1],
            [.004, .005, .0065, .01, .02, .025, .05, .1, .125, .15, .25, .5]),
    "eth": ([0, 50e3, 500e3, 2e6, 10e6, 50e6, 100e6, 200e6, 300e6, 500e6, 800e6], 1.2e9,
            [100, 75, 50, 25, 20, 10, 5, 4, 3, 2, 1],
            [.005, .0065, .01, .02, .025, .05, .1, .125, .15, .25, .5]),
    "alt75": ([0, 5e3, 50e3, 250e3, 1e6, 5e6, 10e6, 15e6, 25e6, 50e6], 100e6,
              [75, 50, 25, 20, 10, 5, 4, 3, 2, 1],
              [.005, .01, .02, .025, .05, .1, .125, .15, .25, .5]),
    "alt50": ([0, 5e3, 25e3, 100e3, 500e3, 1e6, 2e6, 5e6, 10e6], 20e6,
              [50, 25, 20, 10, 5, 4, 3, 2, 1],
              [.01, .02, .025, .05, .1, .125, .15, .25, .5]),
}


def brackets_for(tier: str) -> tuple[Bracket, ...]:
    """Binance-style leverage brackets; maint_amount follows cum_n = floor_n*(mmr_n-mmr_{n-1}) + cum_{n-1}
    so that the maintenance margin is continuous at every bracket boundary."""
    floors, last_cap, levs, mmrs = _TIERS[tier]
    caps = floors[1:] + [last_cap]
    out, cum = [], 0.0
    for j, (f, c, lev, mmr) in enumerate(zip(floors, caps, levs, mmrs)):
        if j:
            cum = f * (mmr - mmrs[j - 1]) + cum
        out.append(Bracket(float(f), float(c), float(lev), float(mmr), round(cum, 6)))
    return tuple(out)


def instruments() -> dict[str, Instrument]:
    out = {}
    for s in SPECS:
        perp = s.type != "spot"
        out[s.symbol] = Instrument(
            symbol=s.symbol, type=s.type, base=s.asset, quote="USDT", settle="USDT",
            tick_size=s.tick, lot_size=s.lot, contract_size=1.0,
            maker_fee_rate=0.0002 if perp else 0.001, taker_fee_rate=0.0005 if perp else 0.001,
            funding_interval_h=8.0, brackets=brackets_for(s.tier) if perp else ())
    return out


# ------------------------------------------------------------------------------------------------
# Vectorised linear recursions (no Python loop per element; a short loop per block of elements)
def _ar1(x: np.ndarray, phi: float, y0: float = 0.0) -> np.ndarray:
    """y[t] = phi*y[t-1] + x[t], y[-1] = y0. Solved per block as y = phi^k (phi*y_prev + cumsum(x phi^-k));
    the block length keeps phi^-k below e^40, so no overflow and only rounding-level error."""
    n = len(x)
    y = np.empty(n)
    blk = n if phi >= 1.0 else int(max(1, min(n, 40.0 / -math.log(phi))))
    k = np.arange(blk, dtype=np.float64)
    pw, ipw = phi ** k, phi ** -k
    prev = y0
    for a in range(0, n, blk):
        m = min(blk, n - a)
        y[a:a + m] = pw[:m] * (phi * prev + np.cumsum(x[a:a + m] * ipw[:m]))
        prev = y[a + m - 1]
    return y


def _ewma(x: np.ndarray, halflife: float, y0: float | None = None) -> np.ndarray:
    alpha = 1.0 - 0.5 ** (1.0 / halflife)
    return _ar1(alpha * x, 1.0 - alpha, x[0] if y0 is None else y0)


def _ou(rng: np.random.Generator, n: int, tau: float, std: float) -> np.ndarray:
    """Stationary Ornstein-Uhlenbeck sampled each second (time constant tau seconds, stationary std)."""
    phi = math.exp(-1.0 / tau)
    shocks = rng.standard_normal(n, dtype=np.float32) * (std * math.sqrt(1 - phi * phi))
    return _ar1(shocks, phi, rng.standard_normal() * std)


def _knots(knots, hours: np.ndarray) -> np.ndarray:
    h, v = zip(*knots)
    return np.interp(hours, h, v)


# ------------------------------------------------------------------------------------------------
@dataclass
class _Market:
    hours: np.ndarray  # grid time in hours (NSEC + 1)
    f_btc: np.ndarray  # BTC fundamental log price (NSEC + 1)
    vol: np.ndarray  # volatility multiplier per second: regime x stochastic vol x bursts (NSEC)
    burst: np.ndarray  # trade-burst multiplier per second (NSEC)
    crash: np.ndarray  # crash shape 0..1 per grid point (NSEC + 1)
    log_base: np.ndarray  # log of the activity-free trade intensity: diurnal x weekend x bursts (NSEC)
    buy_bias: np.ndarray  # baseline probability that a trade is a buy (NSEC)
    anchor_idx: np.ndarray


def _bridge(w: np.ndarray, anchor_idx: np.ndarray) -> np.ndarray:
    """Pin a random walk to zero at the anchors (W minus its linear interpolation between them)."""
    grid = np.arange(len(w), dtype=np.float64)
    return w - np.interp(grid, anchor_idx, w[anchor_idx])


def _market(rng: np.random.Generator) -> _Market:
    hours = np.arange(NSEC + 1, dtype=np.float64) / 3600.0
    hs = hours[:-1]
    regime = _knots(REGIME, hs)
    # Two-timescale log-volatility (30 min and 6 h): clustering at both scales.
    logv = _ou(rng, NSEC, 1800.0, 0.30) + _ou(rng, NSEC, 6 * 3600.0, 0.25)
    # Burst shot noise: shocks arrive more often in a hot regime (self-excitation) and decay in ~20 s.
    p_shock = np.minimum(1.0, regime / 400.0)
    shocks = (rng.random(NSEC) < p_shock) * rng.standard_exponential(NSEC) * 2.0
    burst = 1.0 + _ar1(shocks, math.exp(-1.0 / 20.0))
    # Bursts move prices too (trades are what move them), but damped and capped so a single
    # shock cannot carry the path far past the calibrated levels between two anchors.
    vol = np.minimum(regime * np.exp(logv - 0.5 * (0.30 ** 2 + 0.25 ** 2)) * burst ** 0.25, 12.0)
    shocks_t = rng.standard_t(4, NSEC) / math.sqrt(2.0)  # unit variance, fat tails
    w = np.concatenate(([0.0], np.cumsum(SIGMA_BTC * vol * shocks_t)))
    ah = np.array([a[0] for a in BTC_ANCHORS])
    anchor_idx = np.rint(ah * 3600).astype(np.int64)
    target = np.interp(hours, ah, np.log([a[1] for a in BTC_ANCHORS]))
    f_btc = target + _bridge(w, anchor_idx)
    # The 62k support holds until the crash hour: excursions below it are reflected (resting bids
    # absorb the selling); the break comes in the 20:00 UTC hour.
    ls = math.log(SUPPORT)
    held = (hours < SUPPORT_UNTIL_H) & (f_btc < ls)
    f_btc[held] = 2 * ls - f_btc[held]
    # US-hours peak (15:00 UTC), quieter Saturday.
    diurnal = (1.0 + 0.35 * np.cos(2 * np.pi * (hs % 24 - 15.0) / 24.0)) * np.where(hs >= 72, 0.75, 1.0)
    # Lognormal dispersion of mean 1 is exp(0.5 N - 0.125): the -0.125 is folded in here.
    log_base = (np.log(diurnal * burst) - 0.125).astype(np.float32)
    crash = _knots(CRASH_SHAPE, hours)
    buy_bias = (0.5 - 0.12 * crash[:-1]).astype(np.float32)  # forced selling while the cascade runs
    return _Market(hours, f_btc, vol, burst, crash, log_base, buy_bias, anchor_idx)


def _asset_path(mkt: _Market, spec: _Spec, rng: np.random.Generator) -> np.ndarray:
    """Log fundamental (index) price of the spec's asset: start x exp(beta x BTC log-return + idio)."""
    if spec.asset == "BTC":
        return mkt.f_btc
    idio = np.concatenate(([0.0], np.cumsum(0.8 * SIGMA_BTC * mkt.vol * rng.standard_normal(NSEC))))
    return math.log(spec.start) + spec.beta * (mkt.f_btc - mkt.f_btc[0]) + _bridge(idio, mkt.anchor_idx)


@dataclass
class _Tables:
    """Per-symbol per-second tables the tick generator looks up (index = whole second)."""
    x: np.ndarray  # log mid (NSEC + 1)
    cum: np.ndarray  # cumulative trade intensity (NSEC + 1), cum[0] = 0
    p_buy: np.ndarray
    spread: np.ndarray  # mean spread in ticks
    log_size: np.ndarray  # log of the typical trade notional (float32)
    depth: np.ndarray  # median L1 notional per side (float32)
    x_index: np.ndarray | None = None  # perps: log index and log mark (NSEC + 1)
    x_mark: np.ndarray | None = None
    basis: np.ndarray | None = None


def _tables(mkt: _Market, spec: _Spec, f: np.ndarray, rng: np.random.Generator,
            n_trades: float) -> _Tables:
    perp = spec.type != "spot"
    if perp:
        depth = BASIS_CRASH * spec.beta ** 0.8  # higher beta, deeper discount (more forced selling)
        noise = _ou(rng, NSEC + 1, 600.0, 0.00004) * (1.0 + 2.0 * mkt.crash)
        basis = BASIS_PRE + depth * mkt.crash + noise
        x = f + basis
    else:
        basis = None
        x = f + _ou(rng, NSEC + 1, 120.0, 0.00005)  # spot venue vs composite index
    r = np.diff(x)
    sd = np.sqrt(_ewma(r * r, 120.0, (SIGMA_BTC * spec.beta) ** 2))
    # Log activity: realized volatility (2 min half-life) against its weekly median. It drives the
    # trade intensity (the self-exciting part: volatility begets trading), spreads, sizes, depth.
    # Everything below is smooth or a probability: float32 halves the cost and is plenty.
    f4 = np.float32
    la = np.log(sd.astype(f4))
    la -= np.median(la[::16])  # a strided sample is plenty for the median, and 20x cheaper
    np.clip(la, f4(math.log(0.25)), f4(math.log(40.0)), out=la)
    # Per-second dispersion on top (lognormal, mean 1): counts are over-dispersed like real flow.
    lam = rng.standard_normal(NSEC, dtype=f4)
    lam *= f4(0.5)
    lam += la * f4(ACTIVITY_EXP)
    lam += mkt.log_base
    np.exp(lam, out=lam)
    cum = np.empty(NSEC + 1)
    cum[0] = 0.0
    np.cumsum(lam, dtype=np.float64, out=cum[1:])
    cum *= n_trades / cum[-1]
    z = (r / sd).astype(f4)  # the second's move in local standard deviations
    p_buy = np.tanh(z)
    p_buy *= f4(0.3)
    p_buy += mkt.buy_bias
    np.clip(p_buy, f4(0.03), f4(0.97), out=p_buy)
    # Mean spread in ticks: spread_bps of the mid, times activity^0.8.
    lm = (x[:-1] - x[0]).astype(f4)
    lm += la * f4(0.8)
    spread = np.exp(lm)
    spread *= f4(spec.spread_bps * 1e-4 / spec.tick * math.exp(x[0]))
    # -0.5 centres the body so the median notional stays near size_usd (see _trade_block).
    log_size = la * f4(0.3)
    log_size += f4(math.log(spec.size_usd) - 0.5)
    depth_usd = np.exp(la * f4(-0.5))  # the book thins out as volatility rises
    depth_usd *= f4(spec.depth_usd)
    t = _Tables(x, cum, p_buy, spread, log_size, depth_usd)
    if perp:
        t.x_index = f
        t.x_mark = f + _ewma(basis, 60.0)  # mark = index x (1 + smoothed premium)
        t.basis = basis
    return t


# ------------------------------------------------------------------------------------------------
def _to_price(ticks: np.ndarray, tick: float) -> np.ndarray:
    """Integer ticks -> float price; dividing by an integer 1/tick gives the correctly rounded decimal."""
    inv = round(1.0 / tick)
    if tick < 1.0 and abs(inv * tick - 1.0) < 1e-9:
        return ticks / float(inv)
    return ticks * tick


def _trade_block(spec: _Spec, tb: _Tables, s0: int, s1: int, rng: np.random.Generator):
    """Trades and quotes of seconds [s0, s1): an inhomogeneous Poisson process drawn sorted.

    Arrival times are uniform order statistics (normalised cumsum of exponentials) in
    cumulative-intensity space, mapped back to time through the piecewise-linear inverse. The
    per-tick work runs over cache-sized chunks into preallocated outputs (no big temporaries)."""
    c0, c1 = tb.cum[s0], tb.cum[s1]
    n = int(rng.poisson(c1 - c0))
    if n == 0:
        return None, None
    u = np.cumsum(rng.standard_exponential(n + 1, dtype=np.float32), dtype=np.float64)
    u_tot = u[-1]
    u = u[:-1]
    u *= (c1 - c0) / u_tot
    u += c0
    cum_b = tb.cum[s0:s1 + 1]
    grid = np.arange(s0, s1 + 1, dtype=np.float64)
    ts, price, qty = np.empty(n, np.int64), np.empty(n), np.empty(n)
    side = np.empty(n, np.int8)
    # the book after each trade (integer ticks) and whether a quote shows it
    qbid, qask, emit = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.bool_)
    bidq, askq = np.empty(n), np.empty(n)
    hot0, hot1 = (h * 3600.0 for h in QUOTE_ALL_HOURS)
    tick, lot = spec.tick, spec.lot
    inv_tick = 1.0 / tick
    t_max = s1 - 1e-6  # keep the block inside its second range (and so inside its UTC date)
    for a in range(0, n, _CHUNK):
        b = min(n, a + _CHUNK)
        m = b - a
        t = np.interp(u[a:b], cum_b, grid)
        np.minimum(t, t_max, out=t)
        i = t.astype(np.int64)
        x0 = tb.x[i]
        mid = np.exp(x0 + (t - i) * (tb.x[i + 1] - x0))
        ts[a:b] = T0_NS + (t * NS).astype(np.int64)
        sp = (tb.spread[i] + rng.random(m, dtype=np.float32)).astype(np.int64)  # stochastic rounding
        np.maximum(sp, 1, out=sp)
        bid = np.floor(mid * inv_tick - 0.5 * sp).astype(np.int64)
        np.maximum(bid, 1, out=bid)
        # a trade between two quotes within the same second meets the book the previous quote
        # showed (chunks start on an even index, so the pairs never straddle a chunk)
        same = i[1::2] == i[0:m - 1:2]
        bid[1::2] = np.where(same, bid[0:m - 1:2], bid[1::2])
        sp[1::2] = np.where(same, sp[0:m - 1:2], sp[1::2])
        buy = rng.random(m, dtype=np.float32) < tb.p_buy[i]
        # Heavy tails: lognormal body x Pareto(alpha) tail, as exp(0.9 N + E / alpha).
        z = rng.standard_normal(m, dtype=np.float32)
        z *= 0.9
        z += rng.standard_exponential(m, dtype=np.float32) * np.float32(1.0 / PARETO_ALPHA)
        z += tb.log_size[i]
        notional = np.exp(z)
        np.minimum(notional, np.float32(spec.size_usd * 2000.0), out=notional)  # no absurd prints
        # Aggressive orders larger than the touch walk the book a few ticks.
        sweep = np.minimum(notional // tb.depth[i], 4).astype(np.int64)
        px = bid + np.where(buy, sp + sweep, -sweep)
        np.maximum(px, 1, out=px)
        price[a:b] = _to_price(px, tick)
        lots = np.rint(notional / (mid * lot))
        np.maximum(lots, 1.0, out=lots)
        qty[a:b] = _to_price(lots, lot)
        side[a:b] = np.where(buy, 1, -1)
        # The book after the trade: a sweep leaves the touch at the trade's price.
        ask = bid + sp
        qb_, qa_ = qbid[a:b], qask[a:b]
        np.minimum(bid, px, out=qb_)
        np.maximum(ask, px, out=qa_)
        # L1 after every QUOTE_EVERY-th trade, after every trade in the cascade window, and after
        # every trade outside the book the previous trade left (that book was quoted when the
        # previous index is a multiple of QUOTE_EVERY = 2; _CHUNK is even, so chunks start on one).
        e = emit[a:b]
        e[:] = False
        e[::QUOTE_EVERY] = True
        e |= (t >= hot0) & (t < hot1)
        e[1:] |= (px[1:] < qb_[:-1]) | (px[1:] > qa_[:-1])
        # displayed sizes, drawn per pair of trades (an extra quote shows its pair's sizes)
        q = slice(0, m, QUOTE_EVERY)
        dl = tb.depth[i[q]] / (mid[q] * lot)
        for out in (bidq, askq):
            g = rng.standard_normal(len(dl), dtype=np.float32)
            g *= 0.7
            g -= 0.25
            v = np.rint(dl * np.exp(g))
            np.maximum(v, 1.0, out=v)
            out[a:b:QUOTE_EVERY] = _to_price(v, lot)
            out[a + 1:b:QUOTE_EVERY] = out[a:b - 1:QUOTE_EVERY]
    q = np.flatnonzero(emit)
    trades = {"ts_ns": ts, "price": price, "qty": qty, "side": side}
    quotes = {"ts_ns": ts[q], "bid": _to_price(qbid[q], tick), "ask": _to_price(qask[q], tick),
              "bid_qty": bidq[q], "ask_qty": askq[q]}
    return trades, quotes


def _mark_block(spec: _Spec, tb: _Tables, s0: int, s1: int, interval_ns: int):
    k0 = -(-s0 * NS // interval_ns)
    k1 = -(-s1 * NS // interval_ns)
    if k1 <= k0:
        return None
    rel = np.arange(k0, k1, dtype=np.int64) * interval_ns
    t = rel / NS
    grid = np.arange(s0, s1 + 1, dtype=np.float64)
    xi = np.interp(t, grid, tb.x_index[s0:s1 + 1])
    xm = np.interp(t, grid, tb.x_mark[s0:s1 + 1])
    inv = 1.0 / spec.tick
    return {"ts_ns": T0_NS + rel,
            "mark_price": _to_price(np.rint(np.exp(xm) * inv), spec.tick),
            "index_price": _to_price(np.rint(np.exp(xi) * inv), spec.tick)}


def _funding(spec: _Spec, tb: _Tables, rng: np.random.Generator):
    """Binance: rate = P + clamp(I - P, +-0.05 %), I = 0.01 %/8 h, P = premium averaged over the
    previous 8 h (the first event, at the start, uses the calm premium)."""
    ts, rates = [], []
    for d in range(DAYS):
        for h in FUNDING_HOURS:
            s = d * 86_400 + h * 3600
            p = tb.basis[s - 8 * 3600:s].mean() if s >= 8 * 3600 else BASIS_PRE + 2e-5 * rng.standard_normal()
            rate = float(np.clip(p + np.clip(0.0001 - p, -0.0005, 0.0005), -0.0075, 0.0075))
            ts.append(T0_NS + s * NS)
            rates.append(round(rate, 8))
    return {"ts_ns": np.array(ts, dtype=np.int64), "rate": np.array(rates)}


# ------------------------------------------------------------------------------------------------
def _check(scenario: str, seed: int, scale: float) -> None:
    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown scenario {scenario!r}; known scenarios: {', '.join(SCENARIOS)}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise ConfigError(f"scale must be a positive finite number, got {scale!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")


def mark_interval_ns(scale: float) -> int:
    return int(round(min(3600.0, max(1.0, MARK_INTERVAL_S / scale)) * NS))


def generate_dataset(scenario: str, out: Path, *, seed: int = 7, scale: float = 1.0, progress=None,
                     book: bool = True) -> dict:
    """Write a complete dataset folder (all kinds, all symbols, instruments.json) atomically:
    build it in a temp sibling folder and rename into place.
    `progress`, if given, is a callable progress(done_units, total_units, label) called now and then.
    `book=False` leaves out the L2 snapshots (`book` kind); every other file is the same either way.
    Returns {"symbols", "ticks" (rows over all kinds), "trades", "book_rows", "seconds", "path"}."""
    _check(scenario, seed, scale)
    t_start = time.perf_counter()
    out = Path(out)
    root_ss = np.random.SeedSequence(int(seed))
    children = root_ss.spawn(len(SPECS) + 1)
    mkt = _market(np.random.Generator(np.random.PCG64(children[0])))
    mark_ns = mark_interval_ns(scale)
    total_units = len(SPECS) * DAYS
    done = 0
    counts = {"trades": 0, "quotes": 0, "marks": 0, "funding": 0, "book": 0}
    paths: dict[str, np.ndarray] = {}  # asset -> log fundamental, shared by its perp and spot
    if progress:
        progress(0, total_units, "market path")
    # Parquet encoding releases the GIL: write on a small pool while the next block is generated.
    # Each file's content depends only on its block, so the output stays deterministic.
    with atomic_dir(out) as tmp, ThreadPoolExecutor(max_workers=2) as pool:
        pending: list[Future] = []

        def submit(kind, sym, cols, part):
            counts[kind] += len(cols["ts_ns"])
            pending.append(pool.submit(write_stream, tmp, kind, sym, cols, part=part))
            while len(pending) > 4:  # bound memory: at most a few blocks in flight
                pending.pop(0).result()

        write_instruments(tmp / "instruments.json", instruments())
        for spec, child in zip(SPECS, children[1:]):
            path_ss, tick_ss, book_ss = child.spawn(3)  # the first two as without a book
            prng = np.random.Generator(np.random.PCG64(path_ss))
            trng = np.random.Generator(np.random.PCG64(tick_ss))
            brng = np.random.Generator(np.random.PCG64(book_ss))
            carry: dict = {}  # the last quote of the previous blocks (level 0 of the next book)
            if spec.asset not in paths:
                paths[spec.asset] = _asset_path(mkt, spec, prng)
            tb = _tables(mkt, spec, paths[spec.asset], prng, TRADES_PER_SCALE * scale * spec.share)
            perp = spec.type != "spot"
            part = 0
            for d in range(DAYS):
                a, b = d * 86_400, (d + 1) * 86_400
                nblk = max(1, math.ceil((tb.cum[b] - tb.cum[a]) / BLOCK_TRADES))
                # Split the day at equal cumulative intensity so blocks carry similar row counts.
                cuts = np.searchsorted(tb.cum[a:b + 1], np.linspace(tb.cum[a], tb.cum[b], nblk + 1)[1:-1])
                edges = [a] + [a + int(c) for c in cuts] + [b]
                for s0, s1 in zip(edges[:-1], edges[1:]):
                    if s1 <= s0:
                        continue
                    name = f"part-{part:04d}"
                    part += 1
                    trades, quotes = _trade_block(spec, tb, s0, s1, trng)
                    if trades is not None:
                        submit("trades", spec.symbol, trades, name)
                        submit("quotes", spec.symbol, quotes, name)
                    if book:
                        rows = gen_book.book_block(gen_book.snapshot_times(s0, s1, scale), T0_NS, quotes, carry,
                                                   tb.spread, tb.depth, spec.depth_usd, spec.tick, spec.lot,
                                                   brng, _to_price)
                        if rows is not None:
                            submit("book", spec.symbol, rows, name)
                    if perp:
                        marks = _mark_block(spec, tb, s0, s1, mark_ns)
                        if marks is not None:
                            submit("marks", spec.symbol, marks, name)
                done += 1
                if progress:
                    progress(done, total_units, f"{spec.symbol} {(START + dt.timedelta(days=d)).date()}")
            if perp:
                submit("funding", spec.symbol, _funding(spec, tb, prng), "part-0000")
            del tb
        for f in pending:
            f.result()
    return {"symbols": [s.symbol for s in SPECS], "ticks": sum(counts.values()), "trades": counts["trades"],
            "book_rows": counts["book"], "seconds": time.perf_counter() - t_start, "path": str(out)}
