"""The ledger: fills, balances, unrealised PnL, margin, funding, and the sampled records.

Rules R4.x, R5.1, R6.1 and section 7 of docs/fill-rules.md. Every formula keeps the evaluation
order written there, so the pure-Python oracle can match it bit for bit. No fastmath.
"""
import numpy as np

from .codes import LQ_MAKER, T_INVERSE, T_LINEAR, T_SPOT
from .execution import add_volume, fee_rate, rare_consume_depth, record_costs
from .jit import kernel
from .margin_math import linear_liq_price, rare_inverse_liq_price
from .rare import rare_path

EPS_QTY = 1e-12  # a position below this is flat
ISOLATED = 1  # MarginMode.ISOLATED
GUARD_OFF = -1  # guard.sym while the price guard is not armed (guard.py)


@kernel
def disarm_guard(c):
    """The account changed (balance, fills, peak, max drawdown or loans): the price guard's proof
    no longer holds until the next full checks re-arm it (guard.py). Every writer of those calls
    this (tests/test_guard.py finds them all), so the guard needs no copy of them to compare."""
    c.guard.sym = GUARD_OFF


@kernel
def val_px(run, mkt):
    """Valuation price: the mark once a mark was seen (unless margin.trigger = last), else last."""
    if mkt.has_mark and not run.liq_use_last:
        return mkt.mark_px
    return mkt.last_px


@kernel
def is_isolated(ins):
    """Isolated linear perpetual: its margin (quote) is set aside from the cross wallet."""
    return ins.margin_mode == ISOLATED and ins.type == T_LINEAR


@kernel
def is_isolated_inverse(ins):
    """Isolated inverse perpetual: its margin (coin, iso_margin[s]) is set aside from the symbol's
    coin wallet, and only that margin backs the position."""
    return ins.margin_mode == ISOLATED and ins.type == T_INVERSE


@kernel
def iso_total(c):
    """Isolated margin of the linear positions (quote); inverse isolated margin is coin."""
    m = 0.0
    for s in range(c.run.nsym):
        if c.inst[s].type != T_INVERSE:
            m += c.pos[s].iso_margin
    return m


@kernel
def notional_of(run, ins, mkt, pos):
    """Bracket notional of the position: quote for linear, coin (contracts * size / price) for inverse."""
    p = abs(pos.qty)
    if ins.type == T_INVERSE:
        return p * ins.contract_size / val_px(run, mkt)
    return p * val_px(run, mkt)


@kernel
def maint_of(run, ins, mkt, pos):
    """Tiered maintenance margin of the position of s at its valuation price (0 for spot), in the
    settlement currency (coin for inverse): notional * mmr - maint_amount of its bracket, never
    below 0 (as margin_math.maint_margin). The bracket is looked up from the one used last time,
    so a position that stays in its bracket costs two compares instead of a table scan."""
    if pos.qty == 0.0 or ins.type == T_SPOT:
        return 0.0
    n = ins.n_brackets
    if n <= 0:
        return 0.0
    x = notional_of(run, ins, mkt, pos)
    i = pos.br_idx
    while i > 0 and x < ins.br_cap[i - 1]:
        i -= 1
    while i < n - 1 and x >= ins.br_cap[i]:
        i += 1
    pos.br_idx = i
    mm = x * ins.br_mmr[i] - ins.br_maint_amount[i]
    return mm if mm > 0.0 else 0.0


@kernel
def upnl_total(c):
    u = 0.0
    for s in range(c.run.nsym):
        u += c.pos[s].upnl
    return u


@kernel
def loan_value_total(c):
    """Σ over open loans of collateral * price - collateral cost basis - debt."""
    v = 0.0
    for j in range(c.acct.n_loans):
        if c.loans[j].active:
            v += c.loans[j].coll * val_px(c.run, c.mkt[c.loans[j].sym]) - c.loans[j].cost - c.loans[j].debt
    return v


rare_loan_value_total = rare_path(loan_value_total, 0.0)


@kernel
def coin_wallets_value(c):
    """USD value of the inverse symbols' coin wallets (their unrealised PnL is in pos.upnl)."""
    v = 0.0
    for s in range(c.run.nsym):
        if c.inst[s].type == T_INVERSE:
            v += c.pos[s].coin_bal * val_px(c.run, c.mkt[s])
    return v


rare_coin_wallets_value = rare_path(coin_wallets_value, 0.0)


@kernel(python=True)
def equity(c):
    e = c.acct.balance + upnl_total(c)
    if c.run.n_inverse:
        e += rare_coin_wallets_value(c)
    if c.acct.n_loans:
        e += rare_loan_value_total(c)
    return e


@kernel
def lev_of(run, ins, pos):
    """Leverage of the position of s: spot longs 1x; spot margin shorts and perps as configured."""
    if ins.type == T_SPOT and not (run.spot_margin and pos.qty < 0.0):
        return 1.0
    return ins.leverage


@kernel
def margin_used(c):
    """Initial margin: abs(pos) * val / leverage of cross positions (spot: leverage 1), plus the
    isolated margin of isolated positions."""
    im = 0.0
    for s in range(c.run.nsym):
        p = c.pos[s].qty
        if p != 0.0 and c.inst[s].type != T_INVERSE:
            if is_isolated(c.inst[s]):
                im += c.pos[s].iso_margin
            else:
                im += abs(p) * val_px(c.run, c.mkt[s]) / lev_of(c.run, c.inst[s], c.pos[s])
    return im


@kernel
def free_margin(c):
    """What new orders may use: the cross wallet plus cross unrealised PnL minus initial margin.

    Isolated positions keep their PnL to themselves. Without isolated positions this is
    equity - margin_used (R4.4)."""
    u = 0.0
    for s in range(c.run.nsym):
        if not is_isolated(c.inst[s]) and c.inst[s].type != T_INVERSE:
            u += c.pos[s].upnl
    return (c.acct.balance - iso_total(c)) + u - margin_used(c)


@kernel
def coin_free(c, s):
    """Free margin of an inverse symbol's coin wallet, in coin: isolated, what the position's
    isolated margin leaves of the wallet (the position keeps its PnL to itself)."""
    if is_isolated_inverse(c.inst[s]):
        return c.pos[s].coin_bal - c.pos[s].iso_margin
    im = 0.0
    if c.pos[s].qty != 0.0:
        im = abs(c.pos[s].qty) * c.inst[s].contract_size / val_px(c.run, c.mkt[s]) / c.inst[s].leverage
    return c.pos[s].coin_bal + c.pos[s].coin_upnl - im


rare_coin_free = rare_path(coin_free, 0.0)


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
    inc = exposure_increase(c.pos[s].qty, d, q)
    if inc == 0.0:
        return True  # reducing never needs margin
    lev = lev_of(c.run, c.inst[s], c.pos[s])
    if c.inst[s].type == T_INVERSE:  # contracts of contract_size USD, margined in coin
        cs = c.inst[s].contract_size
        need = inc * cs / px / lev + q * cs / px * c.inst[s].taker_fee
        return need <= rare_coin_free(c, s)
    if c.inst[s].type == T_SPOT and c.run.spot_margin and d < 0:
        lev = c.inst[s].leverage  # a margin short borrows the coin
    need = inc * px / lev + q * px * c.inst[s].taker_fee
    return need <= free_margin(c)


@kernel
def update_drawdown(c):
    """R6.1: the running equity peak and the deepest fall from it, in currency and as a fraction
    of the peak. Called wherever equity may have changed, so the fraction sees every event, not
    only the equity samples. While the price guard holds neither can change: peak - e <= the
    currency maximum implies (peak - e) / peak <= that maximum / its (lower or equal) peak."""
    e = equity(c)
    if e > c.acct.peak_equity:
        c.acct.peak_equity = e
        disarm_guard(c)
    dd = c.acct.peak_equity - e
    if dd > c.acct.max_drawdown:
        c.acct.max_drawdown = dd
        disarm_guard(c)
    if c.acct.peak_equity > 0.0:
        fr = dd / c.acct.peak_equity
        if fr > c.acct.max_drawdown_frac:
            c.acct.max_drawdown_frac = fr


@kernel
def mark_to_market(run, ins, mkt, pos):
    """R6.1: refresh the symbol's unrealised PnL from its valuation price (inverse: the coin PnL
    pos * size * (1/avg - 1/price), and its USD value in pos.upnl)."""
    if ins.type == T_INVERSE:
        v = val_px(run, mkt)
        p = pos.qty
        cu = 0.0
        if p != 0.0:
            cu = p * ins.contract_size * (1.0 / pos.avg_px - 1.0 / v)
        pos.coin_upnl = cu
        pos.upnl = cu * v
        return
    pos.upnl = pos.qty * (val_px(run, mkt) - pos.avg_px)


@kernel
def apply_fill(c, s, d, q, price, liquidity, t, g, oid, order_type, ref_px, fills):
    """R4.1/R4.2: book a fill of q at price on side d with the maker or taker fee."""
    rate = fee_rate(c.run, c.acct, c.inst[s], liquidity == LQ_MAKER, t)
    if c.inst[s].type == T_INVERSE:
        n = q * c.inst[s].contract_size / price  # coin value of the contracts
    else:
        n = q * price
    fee = n * rate
    book_fill(c, s, d, q, price, fee, liquidity, t, g, oid, order_type, ref_px, fills)
    add_volume(c.run, c.acct, c.inst[s], t, q, price)
    return fee


@kernel
def _isolated_margin_after(c, s, pos, newpos, q, price, cq):
    """Isolated margin follows the position: added at entry notional / leverage (inverse: the
    coin notional contracts * size / price), released pro rata."""
    lev = lev_of(c.run, c.inst[s], c.pos[s])
    if newpos == 0.0:
        return 0.0
    unit = price
    if c.inst[s].type == T_INVERSE:
        unit = c.inst[s].contract_size / price
    if pos == 0.0 or (pos > 0.0) == (newpos > 0.0) and abs(newpos) > abs(pos):
        return c.pos[s].iso_margin + q * unit / lev
    if (newpos > 0.0) != (pos > 0.0):
        return abs(newpos) * unit / lev  # flipped: the remainder opens at this price
    return c.pos[s].iso_margin - c.pos[s].iso_margin * cq / abs(pos)


rare_isolated_margin_after = rare_path(_isolated_margin_after, 0.0)


@kernel
def accrue_borrow(c, s, t):
    """Spot margin short: interest on the borrowed coins' value, per hour, since borrow_ts."""
    p = c.pos[s].qty
    if p < 0.0 and t > c.pos[s].borrow_ts:
        interest = -p * val_px(c.run, c.mkt[s]) * c.run.borrow_rate_hourly * ((t - c.pos[s].borrow_ts) / 3.6e12)
        c.acct.balance -= interest
        c.acct.borrow_interest += interest
        disarm_guard(c)
    c.pos[s].borrow_ts = t


rare_accrue_borrow = rare_path(accrue_borrow, None)


@kernel
def book_fill(c, s, d, q, price, fee, liquidity, t, g, oid, order_type, ref_px, fills):
    """Book a fill with a given fee; write its fill row."""
    if c.inst[s].type == T_SPOT and (c.pos[s].qty < 0.0 or d < 0):
        rare_accrue_borrow(c, s, t)
    pos = c.pos[s].qty
    avg = c.pos[s].avg_px
    realized = 0.0
    cq = 0.0
    inverse = c.inst[s].type == T_INVERSE
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
            realized = cq * c.inst[s].contract_size * (1.0 / avg - 1.0 / price) * sg
        else:
            realized = cq * (price - avg) * sg
        newpos = pos + d * q
        if abs(newpos) < EPS_QTY:
            newpos = 0.0
            avg = 0.0
        elif (newpos > 0.0) != (pos > 0.0):
            avg = price
    if c.inst[s].margin_mode == ISOLATED and c.inst[s].type != T_SPOT:
        if realized < 0.0:
            # the isolated margin is the most a position can lose: a close beyond the bankruptcy
            # price (a gap) realises only the margin it releases; the insurance fund takes the rest
            released = c.pos[s].iso_margin * (cq / abs(pos))
            if -realized > released:
                cover = -realized - released
                realized = -released
                if inverse:  # coin; the fund is kept in USD at the fill price
                    cover *= price
                c.acct.iso_gap_cover += cover
                c.acct.insurance_fund -= cover
        c.pos[s].iso_margin = rare_isolated_margin_after(c, s, pos, newpos, q, price, cq)
    c.pos[s].qty = newpos
    c.pos[s].avg_px = avg
    if inverse:  # coin settlement; the account totals are kept in USD at the fill price
        c.pos[s].coin_bal += realized - fee
        c.acct.realized_pnl += realized * price
        c.acct.fees += fee * price
    else:
        c.acct.balance += realized - fee
        c.acct.realized_pnl += realized
        c.acct.fees += fee
    mark_to_market(c.run, c.inst[s], c.mkt[s], c.pos[s])
    c.acct.n_fills += 1
    disarm_guard(c)

    k = c.acct.n_fill_rows
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
    record_costs(c.run, c.inst[s], c.mkt[s], fills[k], d, q, price, liquidity, ref_px)
    rare_consume_depth(c, s, d, q, liquidity, t)
    fills[k].position_after = newpos
    fills[k].avg_price_after = avg
    c.acct.n_fill_rows = k + 1


@kernel(cold=True)  # a funding time, every few hours
def apply_funding(c, s, t, rate, funding_rows):
    """R5.1: pay or receive funding on the symbol's position. Returns the payment."""
    pos = c.pos[s].qty
    if pos == 0.0:
        return 0.0
    mark = val_px(c.run, c.mkt[s])
    if c.inst[s].type == T_INVERSE:  # paid in coin on the contracts' coin value
        payment = -(pos * c.inst[s].contract_size / mark * rate)
        c.pos[s].coin_bal += payment
        c.acct.funding += payment * mark
    else:
        payment = -(pos * mark * rate)
        c.acct.balance += payment
        c.acct.funding += payment
        disarm_guard(c)
    if c.inst[s].margin_mode == ISOLATED and c.inst[s].type != T_SPOT:
        c.pos[s].iso_margin += payment
    k = c.acct.n_funding_rows
    funding_rows[k].ts_ns = t
    funding_rows[k].sym = s
    funding_rows[k].rate = rate
    funding_rows[k].position = pos
    funding_rows[k].mark_price = mark
    funding_rows[k].payment = payment
    c.acct.n_funding_rows = k + 1
    return payment


@kernel(python=True)
def record_equity(c, t, rows):
    k = c.acct.n_equity_rows
    u = upnl_total(c)
    e = equity(c)
    gross = 0.0
    im = margin_used(c)
    mm = 0.0
    for s in range(c.run.nsym):
        if c.inst[s].type == T_INVERSE:  # USD values of the coin-margined figures
            v = val_px(c.run, c.mkt[s])
            gross += abs(c.pos[s].qty) * c.inst[s].contract_size
            im += abs(c.pos[s].qty) * c.inst[s].contract_size / c.inst[s].leverage
            mm += maint_of(c.run, c.inst[s], c.mkt[s], c.pos[s]) * v
        else:
            gross += abs(c.pos[s].qty) * val_px(c.run, c.mkt[s])
            mm += maint_of(c.run, c.inst[s], c.mkt[s], c.pos[s])
    rows[k].ts_ns = t
    rows[k].equity = e
    rows[k].balance = c.acct.balance
    rows[k].upnl = u
    rows[k].gross_exposure = gross
    rows[k].margin_used = im
    rows[k].maint_margin = mm
    cross, iso, iso_sym = _pool_ratios(c)
    rows[k].margin_ratio = max(cross, iso)
    rows[k].cross_margin_ratio = cross
    rows[k].iso_margin_ratio = iso
    rows[k].iso_margin_sym = iso_sym
    c.acct.n_equity_rows = k + 1


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
    for s in range(c.run.nsym):
        typ = c.inst[s].type
        if typ == T_INVERSE or is_isolated(c.inst[s]):
            if c.pos[s].qty != 0.0:
                if is_isolated_inverse(c.inst[s]):
                    r = _ratio(maint_of(c.run, c.inst[s], c.mkt[s], c.pos[s]), c.pos[s].iso_margin + c.pos[s].coin_upnl)
                elif typ == T_INVERSE:
                    r = _ratio(maint_of(c.run, c.inst[s], c.mkt[s], c.pos[s]), c.pos[s].coin_bal + c.pos[s].coin_upnl)
                else:
                    r = _ratio(maint_of(c.run, c.inst[s], c.mkt[s], c.pos[s]), c.pos[s].iso_margin + c.pos[s].upnl)
                if iso_sym < 0 or r > iso:
                    iso = r
                    iso_sym = s
            continue
        u += c.pos[s].upnl
        if c.pos[s].qty != 0.0 and typ != T_SPOT:
            mm += maint_of(c.run, c.inst[s], c.mkt[s], c.pos[s])
            n += 1
    cross = _ratio(mm, c.acct.balance - iso_total(c) + u) if n > 0 else 0.0
    return cross, iso, iso_sym


@kernel(python=True)
def record_bars(c, t, rows):
    """One bar row per symbol for the interval ending at t, with the state of now; its open, high,
    low and volume are aggregates of the trades that backtest/bars.py fills in after the chunk."""
    k = c.acct.n_bar_rows
    for s in range(c.run.nsym):
        rows[k].ts_ns = t
        rows[k].sym = s
        rows[k].open = np.nan
        rows[k].high = np.nan
        rows[k].low = np.nan
        rows[k].close = c.mkt[s].last_px if c.mkt[s].has_trade else np.nan
        rows[k].volume = 0.0
        rows[k].mark = val_px(c.run, c.mkt[s])
        rows[k].position = c.pos[s].qty
        rows[k].liq_price = liq_price_of(c, s)
        k += 1
    c.acct.n_bar_rows = k


@kernel
def liq_price_of(c, s):
    """Liquidation (mark) price of the position of s now; NaN when flat, spot or never."""
    p = c.pos[s].qty
    if p == 0.0 or c.inst[s].type == T_SPOT:
        return np.nan
    side = 1.0 if p > 0.0 else -1.0
    if c.inst[s].type == T_INVERSE:
        wallet = c.pos[s].iso_margin if is_isolated_inverse(c.inst[s]) else c.pos[s].coin_bal
        lp = rare_inverse_liq_price(c, side, abs(p), c.inst[s].contract_size, c.pos[s].avg_px, wallet, 0.0,
                               0.0, c.inst[s].br_floor, c.inst[s].br_cap, c.inst[s].br_mmr, c.inst[s].br_maint_amount,
                               c.inst[s].n_brackets)
        if lp <= 0.0 or not np.isfinite(lp):
            return np.nan
        return lp
    if is_isolated(c.inst[s]):
        wallet = c.pos[s].iso_margin
        other_mm = 0.0
        other_u = 0.0
    else:
        wallet = c.acct.balance - iso_total(c)
        other_mm = 0.0
        other_u = 0.0
        for k in range(c.run.nsym):
            if k != s and not is_isolated(c.inst[k]):
                other_mm += maint_of(c.run, c.inst[k], c.mkt[k], c.pos[k])
                other_u += c.pos[k].upnl
    lp = linear_liq_price(side, abs(p), c.pos[s].avg_px, wallet, other_mm, other_u, c.inst[s].br_floor,
                          c.inst[s].br_cap, c.inst[s].br_mmr, c.inst[s].br_maint_amount, c.inst[s].n_brackets)
    if lp <= 0.0 or not np.isfinite(lp):
        return np.nan
    return lp


@kernel
def apply_constant_funding(c, t, funding_rows):
    """margin.funding = constant rate: every funding interval, each perpetual position pays."""
    for s in range(c.run.nsym):
        if c.inst[s].type != T_SPOT and c.pos[s].qty != 0.0:
            apply_funding(c, s, t, c.run.const_funding_rate, funding_rows)
