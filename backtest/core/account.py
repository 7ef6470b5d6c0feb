"""The ledger: fills, balances, unrealised PnL, margin, funding, and the sampled records.

Rules R4.x, R5.1, R6.1 and section 7 of docs/fill-rules.md. Every formula keeps the evaluation
order written there, so the pure-Python oracle can match it bit for bit. No fastmath.
"""
import numpy as np

from .codes import LQ_MAKER, T_INVERSE, T_LINEAR, T_SPOT
from .execution import add_volume, consume_depth, fee_rate, record_costs
from .jit import kernel
from .margin_math import inverse_liq_price, linear_liq_price

EPS_QTY = 1e-12  # a position below this is flat
ISOLATED = 1  # MarginMode.ISOLATED


@kernel
def val_px(c, s):
    """Valuation price: the mark once a mark was seen (unless margin.trigger = last), else last."""
    if c.has_mark[s] and not c.liq_use_last:
        return c.mark_px[s]
    return c.last_px[s]


@kernel
def is_isolated(c, s):
    """Isolated linear perpetual: its margin (quote) is set aside from the cross wallet."""
    return c.margin_mode[s] == ISOLATED and c.i_type[s] == T_LINEAR


@kernel
def is_isolated_inverse(c, s):
    """Isolated inverse perpetual: its margin (coin, iso_margin[s]) is set aside from the symbol's
    coin wallet, and only that margin backs the position."""
    return c.margin_mode[s] == ISOLATED and c.i_type[s] == T_INVERSE


@kernel
def iso_total(c):
    """Isolated margin of the linear positions (quote); inverse isolated margin is coin."""
    m = 0.0
    for s in range(c.nsym):
        if c.i_type[s] != T_INVERSE:
            m += c.iso_margin[s]
    return m


@kernel
def notional_of(c, s):
    """Bracket notional of the position: quote for linear, coin (contracts * size / price) for inverse."""
    p = abs(c.pos[s])
    if c.i_type[s] == T_INVERSE:
        return p * c.i_contract_size[s] / val_px(c, s)
    return p * val_px(c, s)


@kernel
def maint_of(c, s):
    """Tiered maintenance margin of the position of s at its valuation price (0 for spot), in the
    settlement currency (coin for inverse): notional * mmr - maint_amount of its bracket, never
    below 0 (as margin_math.maint_margin). The bracket is looked up from the one used last time,
    so a position that stays in its bracket costs two compares instead of a table scan."""
    if c.pos[s] == 0.0 or c.i_type[s] == T_SPOT:
        return 0.0
    n = c.i_n_brackets[s]
    if n <= 0:
        return 0.0
    x = notional_of(c, s)
    i = c.br_idx[s]
    while i > 0 and x < c.br_cap[s, i - 1]:
        i -= 1
    while i < n - 1 and x >= c.br_cap[s, i]:
        i += 1
    c.br_idx[s] = i
    mm = x * c.br_mmr[s, i] - c.br_maint_amount[s, i]
    return mm if mm > 0.0 else 0.0


@kernel
def upnl_total(c):
    u = 0.0
    for s in range(c.nsym):
        u += c.sym_upnl[s]
    return u


@kernel
def loan_value_total(c):
    """Σ over open loans of collateral * price - collateral cost basis - debt."""
    v = 0.0
    for j in range(c.n_loans):
        if c.ln_active[j]:
            v += c.ln_coll[j] * val_px(c, c.ln_sym[j]) - c.ln_cost[j] - c.ln_debt[j]
    return v


@kernel
def coin_wallets_value(c):
    """USD value of the inverse symbols' coin wallets (their unrealised PnL is in sym_upnl)."""
    v = 0.0
    for s in range(c.nsym):
        if c.i_type[s] == T_INVERSE:
            v += c.coin_bal[s] * val_px(c, s)
    return v


@kernel(python=True)
def equity(c):
    e = c.balance + upnl_total(c)
    if c.n_inverse:
        e += coin_wallets_value(c)
    if c.n_loans:
        e += loan_value_total(c)
    return e


@kernel
def lev_of(c, s):
    """Leverage of the position of s: spot longs 1x; spot margin shorts and perps as configured."""
    if c.i_type[s] == T_SPOT and not (c.spot_margin and c.pos[s] < 0.0):
        return 1.0
    return c.leverage[s]


@kernel
def margin_used(c):
    """Initial margin: abs(pos) * val / leverage of cross positions (spot: leverage 1), plus the
    isolated margin of isolated positions."""
    im = 0.0
    for s in range(c.nsym):
        p = c.pos[s]
        if p != 0.0 and c.i_type[s] != T_INVERSE:
            if is_isolated(c, s):
                im += c.iso_margin[s]
            else:
                im += abs(p) * val_px(c, s) / lev_of(c, s)
    return im


@kernel
def free_margin(c):
    """What new orders may use: the cross wallet plus cross unrealised PnL minus initial margin.

    Isolated positions keep their PnL to themselves. Without isolated positions this is
    equity - margin_used (R4.4)."""
    u = 0.0
    for s in range(c.nsym):
        if not is_isolated(c, s) and c.i_type[s] != T_INVERSE:
            u += c.sym_upnl[s]
    return (c.balance - iso_total(c)) + u - margin_used(c)


@kernel
def coin_free(c, s):
    """Free margin of an inverse symbol's coin wallet, in coin: isolated, what the position's
    isolated margin leaves of the wallet (the position keeps its PnL to itself)."""
    if is_isolated_inverse(c, s):
        return c.coin_bal[s] - c.iso_margin[s]
    im = 0.0
    if c.pos[s] != 0.0:
        im = abs(c.pos[s]) * c.i_contract_size[s] / val_px(c, s) / c.leverage[s]
    return c.coin_bal[s] + c.coin_upnl[s] - im


@kernel
def exposure_increase(pos, d, q):
    """The part of a fill of q on side d that opens or adds exposure (0 for a pure reduction)."""
    if pos == 0.0 or (pos > 0.0) == (d > 0):
        return q
    inc = q - abs(pos)
    if inc < 0.0:
        return 0.0
    return inc


@kernel
def margin_ok(c, s, d, q, px):
    """R4.4: can the account afford an order of q at px on side d of symbol s?"""
    inc = exposure_increase(c.pos[s], d, q)
    if inc == 0.0:
        return True  # reducing never needs margin
    lev = lev_of(c, s)
    if c.i_type[s] == T_INVERSE:  # contracts of contract_size USD, margined in coin
        cs = c.i_contract_size[s]
        need = inc * cs / px / lev + q * cs / px * c.i_taker_fee[s]
        return need <= coin_free(c, s)
    if c.i_type[s] == T_SPOT and c.spot_margin and d < 0:
        lev = c.leverage[s]  # a margin short borrows the coin
    need = inc * px / lev + q * px * c.i_taker_fee[s]
    return need <= free_margin(c)


@kernel
def update_drawdown(c):
    """R6.1: the running equity peak and the deepest fall from it, in currency and as a fraction
    of the peak. Called wherever equity may have changed, so the fraction sees every event, not
    only the equity samples. While the price guard holds neither can change: peak - e <= the
    currency maximum implies (peak - e) / peak <= that maximum / its (lower or equal) peak."""
    e = equity(c)
    if e > c.peak_equity:
        c.peak_equity = e
    dd = c.peak_equity - e
    if dd > c.max_drawdown:
        c.max_drawdown = dd
    if c.peak_equity > 0.0:
        fr = dd / c.peak_equity
        if fr > c.max_drawdown_frac:
            c.max_drawdown_frac = fr


@kernel
def mark_to_market(c, s):
    """R6.1: refresh the symbol's unrealised PnL from its valuation price (inverse: the coin PnL
    pos * size * (1/avg - 1/price), and its USD value in sym_upnl)."""
    if c.i_type[s] == T_INVERSE:
        v = val_px(c, s)
        p = c.pos[s]
        cu = 0.0
        if p != 0.0:
            cu = p * c.i_contract_size[s] * (1.0 / c.avg_px[s] - 1.0 / v)
        c.coin_upnl[s] = cu
        c.sym_upnl[s] = cu * v
        return
    c.sym_upnl[s] = c.pos[s] * (val_px(c, s) - c.avg_px[s])


@kernel
def apply_fill(c, s, d, q, price, liquidity, t, g, oid, order_type, ref_px, fills):
    """R4.1/R4.2: book a fill of q at price on side d with the maker or taker fee."""
    rate = fee_rate(c, s, liquidity == LQ_MAKER, t)
    if c.i_type[s] == T_INVERSE:
        n = q * c.i_contract_size[s] / price  # coin value of the contracts
    else:
        n = q * price
    fee = n * rate
    book_fill(c, s, d, q, price, fee, liquidity, t, g, oid, order_type, ref_px, fills)
    add_volume(c, s, t, q, price)
    return fee


@kernel
def _isolated_margin_after(c, s, pos, newpos, q, price, cq):
    """Isolated margin follows the position: added at entry notional / leverage (inverse: the
    coin notional contracts * size / price), released pro rata."""
    lev = lev_of(c, s)
    if newpos == 0.0:
        return 0.0
    unit = price
    if c.i_type[s] == T_INVERSE:
        unit = c.i_contract_size[s] / price
    if pos == 0.0 or (pos > 0.0) == (newpos > 0.0) and abs(newpos) > abs(pos):
        return c.iso_margin[s] + q * unit / lev
    if (newpos > 0.0) != (pos > 0.0):
        return abs(newpos) * unit / lev  # flipped: the remainder opens at this price
    return c.iso_margin[s] - c.iso_margin[s] * cq / abs(pos)


@kernel
def accrue_borrow(c, s, t):
    """Spot margin short: interest on the borrowed coins' value, per hour, since borrow_ts."""
    p = c.pos[s]
    if p < 0.0 and t > c.borrow_ts[s]:
        interest = -p * val_px(c, s) * c.borrow_rate_hourly * ((t - c.borrow_ts[s]) / 3.6e12)
        c.balance -= interest
        c.borrow_interest += interest
    c.borrow_ts[s] = t


@kernel
def book_fill(c, s, d, q, price, fee, liquidity, t, g, oid, order_type, ref_px, fills):
    """Book a fill with a given fee; write its fill row."""
    if c.i_type[s] == T_SPOT and (c.pos[s] < 0.0 or d < 0):
        accrue_borrow(c, s, t)
    pos = c.pos[s]
    avg = c.avg_px[s]
    realized = 0.0
    cq = 0.0
    inverse = c.i_type[s] == T_INVERSE
    if pos == 0.0 or (pos > 0.0) == (d > 0):
        if inverse:  # the average entry of inverse contracts is harmonic
            avg = price if pos == 0.0 else (abs(pos) + q) / (abs(pos) / avg + q / price)
        else:
            avg = (abs(pos) * avg + q * price) / (abs(pos) + q)
        newpos = pos + d * q
    else:
        cq = min(q, abs(pos))
        sg = 1.0 if pos > 0.0 else -1.0
        if inverse:
            realized = cq * c.i_contract_size[s] * (1.0 / avg - 1.0 / price) * sg
        else:
            realized = cq * (price - avg) * sg
        newpos = pos + d * q
        if abs(newpos) < EPS_QTY:
            newpos = 0.0
            avg = 0.0
        elif (newpos > 0.0) != (pos > 0.0):
            avg = price
    if c.margin_mode[s] == ISOLATED and c.i_type[s] != T_SPOT:
        if realized < 0.0:
            # the isolated margin is the most a position can lose: a close beyond the bankruptcy
            # price (a gap) realises only the margin it releases; the insurance fund takes the rest
            released = c.iso_margin[s] * (cq / abs(pos))
            if -realized > released:
                cover = -realized - released
                realized = -released
                if inverse:  # coin; the fund is kept in USD at the fill price
                    cover *= price
                c.iso_gap_cover += cover
                c.insurance_fund -= cover
        c.iso_margin[s] = _isolated_margin_after(c, s, pos, newpos, q, price, cq)
    c.pos[s] = newpos
    c.avg_px[s] = avg
    if inverse:  # coin settlement; the account totals are kept in USD at the fill price
        c.coin_bal[s] += realized - fee
        c.realized_pnl += realized * price
        c.fees += fee * price
    else:
        c.balance += realized - fee
        c.realized_pnl += realized
        c.fees += fee
    mark_to_market(c, s)
    c.n_fills += 1

    k = c.n_fill_rows
    fills[k].ts_ns = t
    fills[k].event_idx = g
    fills[k].oid = oid
    fills[k].sym = s
    fills[k].side = d
    fills[k].liquidity = liquidity
    fills[k].order_type = order_type
    fills[k].qty = q
    fills[k].price = price
    fills[k].fee = fee
    fills[k].realized_pnl = realized
    record_costs(c, fills[k], s, d, q, price, liquidity, ref_px)
    consume_depth(c, s, d, q, liquidity, t)
    fills[k].position_after = newpos
    fills[k].avg_price_after = avg
    c.n_fill_rows = k + 1


@kernel
def apply_funding(c, s, t, rate, funding_rows):
    """R5.1: pay or receive funding on the symbol's position. Returns the payment."""
    pos = c.pos[s]
    if pos == 0.0:
        return 0.0
    mark = val_px(c, s)
    if c.i_type[s] == T_INVERSE:  # paid in coin on the contracts' coin value
        payment = -(pos * c.i_contract_size[s] / mark * rate)
        c.coin_bal[s] += payment
        c.funding += payment * mark
    else:
        payment = -(pos * mark * rate)
        c.balance += payment
        c.funding += payment
    if c.margin_mode[s] == ISOLATED and c.i_type[s] != T_SPOT:
        c.iso_margin[s] += payment
    k = c.n_funding_rows
    funding_rows[k].ts_ns = t
    funding_rows[k].sym = s
    funding_rows[k].rate = rate
    funding_rows[k].position = pos
    funding_rows[k].mark_price = mark
    funding_rows[k].payment = payment
    c.n_funding_rows = k + 1
    return payment


@kernel(python=True)
def record_equity(c, t, rows):
    k = c.n_equity_rows
    u = upnl_total(c)
    e = equity(c)
    gross = 0.0
    im = margin_used(c)
    mm = 0.0
    for s in range(c.nsym):
        if c.i_type[s] == T_INVERSE:  # USD values of the coin-margined figures
            v = val_px(c, s)
            gross += abs(c.pos[s]) * c.i_contract_size[s]
            im += abs(c.pos[s]) * c.i_contract_size[s] / c.leverage[s]
            mm += maint_of(c, s) * v
        else:
            gross += abs(c.pos[s]) * val_px(c, s)
            mm += maint_of(c, s)
    rows[k].ts_ns = t
    rows[k].equity = e
    rows[k].balance = c.balance
    rows[k].upnl = u
    rows[k].gross_exposure = gross
    rows[k].margin_used = im
    rows[k].maint_margin = mm
    cross, iso, iso_sym = _pool_ratios(c)
    rows[k].margin_ratio = max(cross, iso)
    rows[k].cross_margin_ratio = cross
    rows[k].iso_margin_ratio = iso
    rows[k].iso_margin_sym = iso_sym
    c.n_equity_rows = k + 1


@kernel
def _ratio(mm, mb):
    return mm / mb if mb > 0.0 else np.inf


@kernel
def _pool_ratios(c):
    """Maintenance margin / margin balance of the cross pool and of the isolated (or inverse)
    position nearest liquidation: the quantities liquidation.margin_breached() compares, so a
    ratio reaches 1.0 exactly when that pool is liquidated (0.0 without positions)."""
    iso = 0.0
    iso_sym = -1
    u = 0.0
    mm = 0.0
    n = 0
    for s in range(c.nsym):
        typ = c.i_type[s]
        if typ == T_INVERSE or is_isolated(c, s):
            if c.pos[s] != 0.0:
                if is_isolated_inverse(c, s):
                    r = _ratio(maint_of(c, s), c.iso_margin[s] + c.coin_upnl[s])
                elif typ == T_INVERSE:
                    r = _ratio(maint_of(c, s), c.coin_bal[s] + c.coin_upnl[s])
                else:
                    r = _ratio(maint_of(c, s), c.iso_margin[s] + c.sym_upnl[s])
                if iso_sym < 0 or r > iso:
                    iso = r
                    iso_sym = s
            continue
        u += c.sym_upnl[s]
        if c.pos[s] != 0.0 and typ != T_SPOT:
            mm += maint_of(c, s)
            n += 1
    cross = _ratio(mm, c.balance - iso_total(c) + u) if n > 0 else 0.0
    return cross, iso, iso_sym


@kernel(python=True)
def record_bars(c, t, rows):
    """One bar row per symbol for the interval ending at t, with the state of now; its open, high,
    low and volume are aggregates of the trades that backtest/bars.py fills in after the chunk."""
    k = c.n_bar_rows
    for s in range(c.nsym):
        rows[k].ts_ns = t
        rows[k].sym = s
        rows[k].open = np.nan
        rows[k].high = np.nan
        rows[k].low = np.nan
        rows[k].close = c.last_px[s] if c.has_trade[s] else np.nan
        rows[k].volume = 0.0
        rows[k].mark = val_px(c, s)
        rows[k].position = c.pos[s]
        rows[k].liq_price = liq_price_of(c, s)
        k += 1
    c.n_bar_rows = k


@kernel
def liq_price_of(c, s):
    """Liquidation (mark) price of the position of s now; NaN when flat, spot or never."""
    p = c.pos[s]
    if p == 0.0 or c.i_type[s] == T_SPOT:
        return np.nan
    side = 1.0 if p > 0.0 else -1.0
    if c.i_type[s] == T_INVERSE:
        wallet = c.iso_margin[s] if is_isolated_inverse(c, s) else c.coin_bal[s]
        lp = inverse_liq_price(side, abs(p), c.i_contract_size[s], c.avg_px[s], wallet, 0.0,
                               0.0, c.br_floor[s], c.br_cap[s], c.br_mmr[s], c.br_maint_amount[s],
                               c.i_n_brackets[s])
        if lp <= 0.0 or not np.isfinite(lp):
            return np.nan
        return lp
    if is_isolated(c, s):
        wallet = c.iso_margin[s]
        other_mm = 0.0
        other_u = 0.0
    else:
        wallet = c.balance - iso_total(c)
        other_mm = 0.0
        other_u = 0.0
        for k in range(c.nsym):
            if k != s and not is_isolated(c, k):
                other_mm += maint_of(c, k)
                other_u += c.sym_upnl[k]
    lp = linear_liq_price(side, abs(p), c.avg_px[s], wallet, other_mm, other_u, c.br_floor[s],
                          c.br_cap[s], c.br_mmr[s], c.br_maint_amount[s], c.i_n_brackets[s])
    if lp <= 0.0 or not np.isfinite(lp):
        return np.nan
    return lp


@kernel
def apply_constant_funding(c, t, funding_rows):
    """margin.funding = constant rate: every funding interval, each perpetual position pays."""
    for s in range(c.nsym):
        if c.i_type[s] != T_SPOT and c.pos[s] != 0.0:
            apply_funding(c, s, t, c.const_funding_rate, funding_rows)
