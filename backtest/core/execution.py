"""Execution realism: taker prices (slippage and impact), causal liquidity estimates, latency
jitter, fee tiers. Formulas in docs/execution.md; every one has a hand-computed test.

Taker price models (per symbol; enums.SlippageModel), for a taker on side d (+1 buy) of quantity q:
  NONE        the mid (the last trade without quotes or once traded through): no spread, no
              impact ("ideal"); never worse than the touch, so no model beats it
  SPREAD      the opposite quote (the last trade without quotes)                     [default]
  FIXED_BPS   the mid (or last) moved against the taker by `slippage_bps`, never better than
              the opposite quote
  SQRT_IMPACT the SPREAD price moved by k * sigma * sqrt(q / V)
  L1_DEPTH    up to the displayed size at the opposite quote, the rest at that quote moved by
              the square-root impact of the remainder; the fill is at the size-weighted price
  L2_DEPTH    the VWAP of a walk through the L2 book (core/book.py, R9.4); L1_DEPTH where the
              symbol has no book side yet (R9.6)
sigma and V come from time-decayed sums over the impact horizon H, updated at every trade:
  decay = exp(-dt / H);  S2 = S2 * decay + r^2 (r = log return);  V = V * decay + qty
so sigma = sqrt(S2) and V estimate the volatility and the traded volume of the last H.

The book a taker meets is the effective book (R2.3): a trade that prints through the quote moves
that side to the trade price until the next quote, so no taker fill uses a quote the market has
already traded through. Each fill's cost is split against its benchmark (R4.5, record_costs).
"""
import numpy as np

from .book import consume, has_side, rare_l2_price
from .codes import LQ_LIQUIDATION, LQ_MAKER, T_INVERSE
from .enums import SlippageModel
from .jit import kernel
from .rare import rare_path

# the model codes as folded ints (here, their only user: a new model touches enums.py and this file)
M_NONE = int(SlippageModel.NONE)
M_SPREAD = int(SlippageModel.SPREAD)
M_FIXED_BPS = int(SlippageModel.FIXED_BPS)
M_SQRT_IMPACT = int(SlippageModel.SQRT_IMPACT)
M_L2_DEPTH = int(SlippageModel.L2_DEPTH)
RNG_MOD = 2147483647  # Park-Miller "minimal standard" generator: exact in int64 and in Python


@kernel
def next_uniform(clock):
    """Deterministic uniform in (0, 1) from the run's seeded generator (chunk-proof: in the clock)."""
    clock.rng_state = (clock.rng_state * 48271) % RNG_MOD
    return clock.rng_state / RNG_MOD


@kernel
def order_latency(run, clock):
    """Entry latency of a new order: feed latency + latency + uniform jitter in [0, jitter)."""
    lat = run.feed_latency_ns + run.latency_ns
    if run.latency_jitter_ns > 0:
        lat += np.int64(next_uniform(clock) * run.latency_jitter_ns)
    return lat


@kernel
def update_estimators(run, mkt, t, price, qty):
    """Time-decayed volatility and volume of the last impact horizon (called at each trade)."""
    if mkt.est_last_px > 0.0:
        dt = t - mkt.est_last_ts
        decay = np.exp(-dt / run.impact_horizon_ns) if dt > 0 else 1.0
        r = np.log(price / mkt.est_last_px)
        mkt.est_var = mkt.est_var * decay + r * r
        mkt.est_vol = mkt.est_vol * decay + qty
    else:
        mkt.est_vol = qty
    mkt.est_last_px = price
    mkt.est_last_ts = t


@kernel
def impact_frac(ins, mkt, q):
    """k * sigma * sqrt(q / V): the fractional price impact of q (0 without estimates)."""
    v = mkt.est_vol
    if not (v > 0.0):
        return 0.0
    return ins.impact_k * np.sqrt(mkt.est_var) * np.sqrt(q / v)


@kernel
def trade_through(mkt, p):
    """R2.3 effective book: a trade at p below the bid (above the ask) moves the bid (ask) to p,
    with no displayed size, until the next quote; the mid is then the trade price."""
    if not mkt.has_quote:
        return
    if p < mkt.bid:
        mkt.bid = p
        mkt.bid_qty = 0.0
        mkt.book_thru = 1
    elif p > mkt.ask:
        mkt.ask = p
        mkt.ask_qty = 0.0
        mkt.book_thru = 1


@kernel
def mid_or_last(mkt):
    """The mid of the quote, else the last trade (also when a trade printed through the quote
    since it was seen); NaN before either. The arrival price of market orders (R4.5)."""
    if mkt.has_quote and not mkt.book_thru:
        return 0.5 * (mkt.bid + mkt.ask)
    if mkt.has_trade:
        return mkt.last_px
    if mkt.has_quote:
        return 0.5 * (mkt.bid + mkt.ask)
    return np.nan


@kernel
def opp_price(mkt, d):
    """R3.3: the price a taker on side d gets at the touch (NaN when nothing is known yet)."""
    if mkt.has_quote:
        return mkt.ask if d > 0 else mkt.bid
    if mkt.has_trade:
        return mkt.last_px
    return np.nan


@kernel
def taker_price(c, s, d, q):
    """Price a taker of q on side d gets now under the symbol's model (NaN: no price yet)."""
    m = c.inst[s].slip_model
    if m == M_SPREAD:
        return opp_price(c.mkt[s], d)
    if m == M_NONE:  # the effective mid: never worse than the touch (R2.3a)
        return mid_or_last(c.mkt[s])
    opp = opp_price(c.mkt[s], d)
    if m == M_FIXED_BPS:  # never inside the spread: no better than the touch
        x = mid_or_last(c.mkt[s]) * (1.0 + d * c.inst[s].slip_bps / 10000.0)
        return max(x, opp) if d > 0 else min(x, opp)
    if m == M_SQRT_IMPACT:
        return opp * (1.0 + d * impact_frac(c.inst[s], c.mkt[s], q))
    if m == M_L2_DEPTH and has_side(c.book[s], d):
        return rare_l2_price(c, s, d, q, c.clock.ev_ts)
    # L1_DEPTH (and L2_DEPTH without a book, R9.6): the displayed size at the touch, the
    # remainder with impact
    shown = c.mkt[s].ask_qty if d > 0 else c.mkt[s].bid_qty
    if not c.mkt[s].has_quote or q <= shown:
        return opp
    rest = q - shown
    worse = opp * (1.0 + d * impact_frac(c.inst[s], c.mkt[s], rest))
    return (shown * opp + rest * worse) / q


@kernel
def uses_book(ins, bk, d):
    """The symbol's taker fills on side d walk its L2 book (l2_depth with a snapshot side)."""
    return ins.slip_model == M_L2_DEPTH and has_side(bk, d)


@kernel
def consume_depth(c, s, d, q, liquidity, t):
    """R9.3: a taker fill (or a liquidation settled at the market) under l2_depth takes its
    depth from the book."""
    if liquidity == LQ_MAKER or (liquidity == LQ_LIQUIDATION and not c.run.liq_settle_market):
        return
    if uses_book(c.inst[s], c.book[s], d):
        consume(c, s, d, q, t)


rare_consume_depth = rare_path(consume_depth, None)


@kernel
def record_costs(run, ins, mkt, row, d, q, price, liquidity, bench):
    """R4.5: the fill's cost against its benchmark, split into latency drift (benchmark to the
    mid at the fill), spread (mid to the touch) and impact (touch to the fill price). Maker fills
    and liquidations settled at a computed price put it all in the drift."""
    if bench != bench:  # no benchmark known: no cost
        bench = price
    total = d * (price - bench) * q
    row.bench_price = bench
    row.slippage = total
    row.cost_spread = 0.0
    row.cost_impact = 0.0
    row.cost_drift = total
    if liquidity == LQ_MAKER or (liquidity == LQ_LIQUIDATION and not run.liq_settle_market):
        return
    mid = mid_or_last(mkt)
    if mid != mid:
        return
    row.cost_drift = d * (mid - bench) * q
    if ins.slip_model == M_NONE:
        row.cost_impact = d * (price - mid) * q
    else:
        opp = opp_price(mkt, d)
        row.cost_spread = d * (opp - mid) * q
        row.cost_impact = d * (price - opp) * q


DAY_NS = 86_400_000_000_000


@kernel
def _roll_day(run, acct, t):
    """At a new UTC day, choose the fee tier from the previous 30 complete days' volume (plus
    the configured volume before the run, during the run's first 30 days)."""
    day = t // DAY_NS
    if day == acct.vol_day:
        return
    if acct.vol_day < 0:
        acct.vol_start_day = day
    else:
        for k in range(min(day - acct.vol_day, 31)):  # clear the skipped days and today
            acct.vol_ring[(acct.vol_day + 1 + k) % 31] = 0.0
    acct.vol_day = day
    total = run.initial_volume_30d if day - acct.vol_start_day < 30 else 0.0
    for k in range(31):
        total += acct.vol_ring[k]
    tier = 0
    for k in range(run.n_fee_tiers):
        if total >= run.ft_volume[k]:
            tier = k
    acct.fee_tier = tier


@kernel
def fee_rate(run, acct, ins, maker, t):
    """Maker or taker rate: the account's 30-day volume tier when tiers are set, else the
    instrument's rates."""
    if run.n_fee_tiers > 0:
        _roll_day(run, acct, t)
        k = acct.fee_tier
        return run.ft_maker[k] if maker else run.ft_taker[k]
    return ins.maker_fee if maker else ins.taker_fee


@kernel
def add_volume(run, acct, ins, t, q, price):
    """Count a fill's USD notional in today's volume bucket (for fee tiers)."""
    if run.n_fee_tiers == 0:
        return
    _roll_day(run, acct, t)
    usd = q * ins.contract_size if ins.type == T_INVERSE else q * price
    acct.vol_ring[(t // DAY_NS) % 31] += usd
