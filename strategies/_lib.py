"""Shared compiled helpers of the bundled strategies (module-level `@njit`, callable from hooks).

Hooks see `self` as a numba record, so everything reusable lives here as plain functions:

    Instrument facts     lot_size, tick_size, n_symbols, is_spot, config_leverage, taker_fee
    Rounding             floor_step, ceil_step, round_step, floor_lot
    Sizing               size_for_fraction (equity x leverage x fraction / price, on the lot grid,
                         capped by what the free margin can pay for), affordable_qty,
                         margin_budget / margin_per_unit (several orders from one budget)
    Indicators           ema_alpha, ema_update, ema_time_update (time-decayed EMA),
                         ring_push / rsi_from_ring (RSI over the last n price changes),
                         bucket_add / bucket_window (rolling max/min/sum over time buckets),
                         rate_update (exponentially weighted event rate, e.g. volume per second)

The instrument facts come from the SDK (lot_size, tick_size, n_symbols, is_spot, taker_fee);
`config_leverage` adds the 1x rule of spot to the SDK's `leverage`.
"""
import numpy as np
from numba import njit

from backtest import equity, free_margin, is_spot, leverage, lot_size, n_symbols, taker_fee, tick_size

SPOT = 0  # InstrumentType.SPOT
MARGIN_BUFFER = 0.995  # use at most this share of the free margin (price moves during latency)
STEP_EPS = 1e-9  # relative tolerance when snapping to a lot or tick grid

MODE_SUM = 0
MODE_MAX = 1
MODE_MIN = 2


# --- instrument facts -------------------------------------------------------------------------
@njit(cache=True)
def config_leverage(c, sym):
    """The margin leverage of the run (config `leverage`), 1 for spot."""
    if is_spot(c, sym):
        return 1.0
    return leverage(c, sym)


# --- rounding -------------------------------------------------------------------------------------
@njit(cache=True)
def steps_to_value(k, step):
    """k x step, computed as k / (1 / step) when 1 / step is a whole number, so that a decimal step
    (0.1, 0.001) gives the nearest double to the decimal value (639000 x 0.1 != 63900.0)."""
    inv = np.round(1.0 / step)
    if inv >= 1.0 and abs(inv * step - 1.0) < 1e-12:
        return k / inv
    return k * step


@njit(cache=True)
def floor_step(x, step):
    """The largest multiple of step <= x (tolerant to float noise just below a multiple)."""
    if not (step > 0.0) or not np.isfinite(x):
        return 0.0
    return steps_to_value(np.floor(x / step + STEP_EPS), step)


@njit(cache=True)
def ceil_step(x, step):
    """The smallest multiple of step >= x (tolerant to float noise just above a multiple)."""
    if not (step > 0.0) or not np.isfinite(x):
        return 0.0
    return steps_to_value(np.ceil(x / step - STEP_EPS), step)


@njit(cache=True)
def round_step(x, step):
    """The nearest multiple of step."""
    if not (step > 0.0) or not np.isfinite(x):
        return 0.0
    return steps_to_value(np.round(x / step), step)


@njit(cache=True)
def floor_lot(c, sym, qty):
    """qty rounded down to the symbol's lot size (0.0 when below one lot)."""
    if not (qty > 0.0):
        return 0.0
    return floor_step(qty, lot_size(c, sym))


# --- sizing ---------------------------------------------------------------------------------------
@njit(cache=True)
def margin_budget(c):
    """The free margin new orders may use (MARGIN_BUFFER of it; never negative)."""
    fm = free_margin(c) * MARGIN_BUFFER
    return fm if fm > 0.0 else 0.0


@njit(cache=True)
def margin_per_unit(c, sym, price):
    """Initial margin plus taker fee of one unit of sym at price (the engine's R4.4 check)."""
    return price / config_leverage(c, sym) + price * taker_fee(c, sym)


@njit(cache=True)
def affordable_qty(c, sym, price):
    """The largest quantity (unrounded) whose margin plus taker fee fits the free margin.

    Orders still in flight do not count against the free margin: when placing several orders at
    once, spend a margin_budget(c) with margin_per_unit instead.
    """
    if not (price > 0.0):
        return 0.0
    return margin_budget(c) / margin_per_unit(c, sym, price)


@njit(cache=True)
def size_for_fraction(c, sym, fraction, leverage, price):
    """equity x leverage x fraction / price, capped by affordable_qty, rounded down to the lot."""
    if not (price > 0.0) or not (fraction > 0.0) or not (leverage > 0.0):
        return 0.0
    q = equity(c) * leverage * fraction / price
    cap = affordable_qty(c, sym, price)
    if q > cap:
        q = cap
    return floor_lot(c, sym, q)


# --- indicators -----------------------------------------------------------------------------------
@njit(cache=True)
def ema_alpha(n):
    """Smoothing factor of an n-sample EMA (2 / (n + 1))."""
    if n <= 1.0:
        return 1.0
    return 2.0 / (n + 1.0)


@njit(cache=True)
def ema_update(prev, x, alpha, count):
    """One EMA step; the first sample (count == 0) seeds the average."""
    if count == 0:
        return x
    return prev + alpha * (x - prev)


@njit(cache=True)
def ema_time_update(prev, x, dt_ns, tau_ns, count):
    """A continuous-time EMA with time constant tau_ns: weight 1 - exp(-dt / tau) on x."""
    if count == 0 or tau_ns <= 0:
        return x
    a = 1.0 - np.exp(-float(dt_ns) / float(tau_ns))
    return prev + a * (x - prev)


@njit(cache=True)
def ring_push(buf, head, count, x):
    """Write x at buf[head]; returns (new head, new count) with count capped at len(buf)."""
    n = buf.shape[0]
    buf[head] = x
    head += 1
    if head >= n:
        head = 0
    if count < n:
        count += 1
    return head, count


@njit(cache=True)
def rsi_from_ring(changes, head, count, n):
    """RSI (0..100) of the last n price changes in a ring buffer; NaN until n changes are known.

    Cutler's RSI: 100 x sum(gains) / (sum(gains) + sum(losses)); 50 when nothing moved.
    """
    size = changes.shape[0]
    if n > size:
        n = size
    if n <= 0 or count < n:
        return np.nan
    up = 0.0
    down = 0.0
    k = head
    for _ in range(n):
        k -= 1
        if k < 0:
            k = size - 1
        d = changes[k]
        if d > 0.0:
            up += d
        else:
            down -= d
    if up + down <= 0.0:
        return 50.0
    return 100.0 * up / (up + down)


@njit(cache=True)
def bucket_add(ids, vals, t_ns, width_ns, x, mode):
    """Fold x into the time bucket t_ns // width_ns of a ring (ids: bucket numbers, vals: values).

    mode: MODE_SUM adds, MODE_MAX / MODE_MIN keep the extreme. A slot holding an older bucket is
    overwritten, so the ring remembers the last len(ids) buckets.
    """
    b = t_ns // width_ns
    k = b % ids.shape[0]
    if ids[k] != b:
        ids[k] = b
        vals[k] = x
    elif mode == MODE_SUM:
        vals[k] += x
    elif mode == MODE_MAX:
        if x > vals[k]:
            vals[k] = x
    elif x < vals[k]:
        vals[k] = x


@njit(cache=True)
def bucket_window(ids, vals, t_ns, width_ns, nb, mode):
    """Sum / max / min over the nb most recent buckets up to t_ns (the current one included).

    Missing buckets are skipped; returns 0.0 (sum) or NaN (max/min) when none is present.
    """
    size = ids.shape[0]
    if nb > size:
        nb = size
    b = t_ns // width_ns
    if mode == MODE_SUM:
        acc = 0.0
    else:
        acc = np.nan
    for i in range(nb):
        bi = b - i
        k = bi % size
        if ids[k] != bi:
            continue
        v = vals[k]
        if mode == MODE_SUM:
            acc += v
        elif acc != acc:
            acc = v
        elif mode == MODE_MAX:
            if v > acc:
                acc = v
        elif v < acc:
            acc = v
    return acc


@njit(cache=True)
def rate_update(rate, last_ts, t_ns, x, tau_ns):
    """Exponentially weighted rate of x per nanosecond (e.g. traded volume), decayed to t_ns.

    rate <- rate * exp(-dt / tau) + x / tau. Multiply by a window length for the expected amount.
    """
    if tau_ns <= 0:
        return 0.0
    if last_ts > 0 and t_ns > last_ts:
        rate *= np.exp(-float(t_ns - last_ts) / float(tau_ns))
    return rate + x / float(tau_ns)
