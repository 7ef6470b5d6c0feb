"""Margin checks, margin calls and forced liquidation of perpetual positions (docs/margin.md).

An isolated position is liquidated when its margin balance (isolated margin + unrealised PnL)
falls to its tiered maintenance margin; the cross account when its margin balance (cross wallet +
unrealised PnL of spot and cross positions) falls to the maintenance margin of its cross
positions, which are then all closed. Prices are the valuation prices (mark, or last trade when
margin.trigger = last). A liquidation cancels the symbols' open orders, closes the positions at
the trigger price (settle = bankruptcy: the account forfeits all the margin left, so it is
settled as if closed at the bankruptcy price) or at the market (settle = market: it keeps what is
left after the clearance fee), charges the clearance fee, and moves the forfeited margin into the
insurance fund, or draws a shortfall from it: the isolated margin is the most a position loses.
"""
import numpy as np

from .account import (
    accrue_borrow, book_fill, disarm_guard, equity, is_isolated, is_isolated_inverse, iso_total, maint_of, mark_to_market,
    notional_of, record_equity, update_drawdown, val_px,
)
from .codes import LQ_LIQUIDATION, OT_MARKET, R_LIQUIDATION, ST_CANCELED, ST_FREE, T_INVERSE, T_SPOT
from .jit import kernel
from .margin_math import bracket_index, inverse_bankruptcy_price, linear_bankruptcy_price
from .execution import taker_price
from .orders import finish
from .rare import rare_path


@kernel
def write_liq_row(acct, rows, t, s, side, q, mark, bankrupt_px, fill_px, fee, insurance, realized):
    k = acct.n_liq_rows
    rows[k].ts_ns = t
    rows[k].sym = s
    rows[k].side = side
    rows[k].qty = q
    rows[k].mark_price = mark
    rows[k].bankruptcy_price = bankrupt_px
    rows[k].fill_price = fill_px
    rows[k].fee = fee
    rows[k].insurance_fund_change = insurance
    rows[k].realized_pnl = realized
    acct.n_liq_rows = k + 1
    acct.n_liquidations += 1


@kernel
def _margin_call(run, acct, flag, sym, mm, mb):
    """Fire on_margin_call once when maint/margin-balance crosses the configured level."""
    ratio = mm / mb if mb > 0.0 else np.inf
    if ratio >= run.margin_call_level:
        if flag == 0:
            acct.mc_pending = 1
            acct.mc_sym = sym
            acct.mc_ratio = ratio
            acct.n_margin_calls += 1
        return 1
    return 0


@kernel
def _cancel_orders(c, s, t):
    for j in range(c.acct.o_hwm):
        if c.orders[j].status != ST_FREE and c.orders[j].sym == s:
            finish(c, j, ST_CANCELED, R_LIQUIDATION, t)


@kernel
def _liquidate(c, n, wallet, t, g, fills, liq_rows):
    """Close the n positions listed in `c.liq[:n].sym` that share `wallet` (see the module
    docstring); `c.liq` is the kernel's own work area (no allocation in compiled code)."""
    rate = c.run.liq_fee_rate
    w = c.liq
    total_r = 0.0
    total_clear = 0.0
    u_all = 0.0
    for i in range(n):
        u_all += c.pos[w[i].sym].upnl
    for i in range(n):
        s = w[i].sym
        p = c.pos[s].qty
        d = -1 if p > 0.0 else 1
        x = val_px(c.run, c.mkt[s])
        if c.run.liq_settle_market:  # a market order through the execution model
            o = taker_price(c, s, d, abs(p))
            if o == o:
                x = o
        w[i].x = x
        sg = 1.0 if p > 0.0 else -1.0
        w[i].realized = abs(p) * (x - c.pos[s].avg_px) * sg
        w[i].clear = abs(p) * x * rate
        total_r += w[i].realized
        total_clear += w[i].clear
    left = wallet + total_r  # margin left after closing, before the fee
    fee = min(total_clear, max(left, 0.0))
    forfeit = 0.0
    if not c.run.liq_settle_market and left > fee:
        forfeit = left - fee
    shortfall = -left if left < 0.0 else 0.0
    charged = fee + forfeit
    for i in range(n):
        s = w[i].sym
        p = c.pos[s].qty
        q = abs(p)
        d = -1 if p > 0.0 else 1
        if n == 1:
            share = charged
            fee_i = fee
        elif total_clear > 0.0:
            share = charged * w[i].clear / total_clear
            fee_i = fee * w[i].clear / total_clear
        else:
            share = charged / n
            fee_i = fee / n
        sg = 1.0 if p > 0.0 else -1.0
        other = wallet + (u_all - c.pos[s].upnl)
        if is_isolated(c.inst[s]):
            other = c.pos[s].iso_margin
        bp = linear_bankruptcy_price(sg, q, c.pos[s].avg_px, other)
        mark = val_px(c.run, c.mkt[s])
        if c.run.liq_cancel_orders:
            _cancel_orders(c, s, t)
        book_fill(c, s, d, q, w[i].x, share, LQ_LIQUIDATION, t, g, 0, OT_MARKET, mark, fills)
        # fee_i is the clearance fee; share - fee_i is forfeited margin
        write_liq_row(c.acct, liq_rows, t, s, d, q, mark, bp, w[i].x, fee_i, share - (shortfall if i == n - 1 else 0.0), w[i].realized)
    # an isolated position (n == 1): book_fill capped the loss at the isolated margin and drew the
    # shortfall from the fund (iso_gap_cover); only a cross wallet is paid the shortfall here
    paid = shortfall if n > 0 and not is_isolated(c.inst[w[0].sym]) else 0.0
    if paid > 0.0:
        c.acct.balance += paid
        c.acct.insurance_payout += paid
        disarm_guard(c)
    c.acct.insurance_fund += charged - paid


@kernel
def margin_breached(c, s, t):
    """After the valuation price of s (which holds a position) moved: is a liquidation due?
    Also fires margin calls (c.acct.mc_pending). Takes no arrays, so the per-event call is cheap."""
    typ = c.inst[s].type
    if typ == T_SPOT:
        return rare_spot_short_breached(c, s, t)
    if typ == T_INVERSE or is_isolated(c.inst[s]):
        mm = maint_of(c.run, c.inst[s], c.mkt[s], c.pos[s])
        if is_isolated_inverse(c.inst[s]):
            mb = c.pos[s].iso_margin + c.pos[s].coin_upnl
        elif typ == T_INVERSE:
            mb = c.pos[s].coin_bal + c.pos[s].coin_upnl
        else:
            mb = c.pos[s].iso_margin + c.pos[s].upnl
        if mb <= mm:
            return True
        c.pos[s].mc_flag = _margin_call(c.run, c.acct, c.pos[s].mc_flag, s, mm, mb)
        return False
    wallet = c.acct.balance - iso_total(c)
    u = 0.0  # unrealised PnL of spot and cross positions
    mm = 0.0
    n = 0
    for k in range(c.run.nsym):
        if is_isolated(c.inst[k]):
            continue
        u += c.pos[k].upnl
        if c.pos[k].qty != 0.0 and c.inst[k].type != T_SPOT:
            mm += maint_of(c.run, c.inst[k], c.mkt[k], c.pos[k])
            n += 1
    mb = wallet + u
    if n > 0 and mb <= mm:
        return True
    c.acct.mc_cross_flag = _margin_call(c.run, c.acct, c.acct.mc_cross_flag, -1, mm, mb)
    return False


@kernel
def _spot_short_breached(c, s, t):
    """margin_breached() of a spot symbol: margin shorts against the account's spot margin level."""
    if c.pos[s].qty >= 0.0:
        return False
    accrue_borrow(c, s, t)
    liab = 0.0
    for k in range(c.run.nsym):
        if c.inst[k].type == T_SPOT and c.pos[k].qty < 0.0:
            liab += -c.pos[k].qty * val_px(c.run, c.mkt[k])
    level = (equity(c) + liab) / liab
    if level < c.run.spot_maint_level:
        return True
    c.acct.mc_cross_flag = _margin_call(c.run, c.acct, c.acct.mc_cross_flag, -1, c.run.spot_maint_level, level)
    return False


rare_spot_short_breached = rare_path(_spot_short_breached, False)


@kernel(cold=True)  # once per liquidation
def liquidate(c, s, t, g, fills, equity_rows, liq_rows):
    """Carry out the liquidation margin_breached() found due. Returns the positions closed."""
    typ = c.inst[s].type
    if typ == T_SPOT:
        return rare_liquidate_spot_shorts(c, t, g, fills, equity_rows, liq_rows)
    if typ == T_INVERSE:
        return _liquidate_one(c, s, t, g, fills, equity_rows, liq_rows, True)
    if c.run.liq_partial and rare_reduce_to_lower_brackets(c, s, t, g, fills, equity_rows, liq_rows):
        return 1  # the reduction restored the margin
    if is_isolated(c.inst[s]):
        return rare_liquidate_one(c, s, t, g, fills, equity_rows, liq_rows, False)
    wallet = c.acct.balance - iso_total(c)
    u = 0.0
    n = 0
    for k in range(c.run.nsym):
        if not is_isolated(c.inst[k]):
            u += c.pos[k].upnl
            if c.pos[k].qty != 0.0 and c.inst[k].type != T_SPOT:
                n += 1
    return _liquidate_cross(c, n, wallet, u, t, g, fills, equity_rows, liq_rows)


@kernel
def _reduce_to_lower_brackets(c, s, t, g, fills, equity_rows, liq_rows):
    """Tiered partial liquidation (Bybit's risk-limit steps): while the position of s sits above
    its first bracket and is under-margined, close the part above the lower bracket's floor at
    the liquidation price, paying the clearance fee on it. True when that restored the margin."""
    lot = c.inst[s].lot
    while True:
        val = val_px(c.run, c.mkt[s])
        i = bracket_index(notional_of(c.run, c.inst[s], c.mkt[s], c.pos[s]), c.inst[s].br_floor, c.inst[s].br_cap, c.inst[s].n_brackets)
        if i <= 0:
            return False
        keep = np.floor(c.inst[s].br_cap[i - 1] * (1.0 - 1e-9) / val / lot) * lot
        p = c.pos[s].qty
        q = abs(p) - keep
        if q <= 0.0 or keep <= 0.0:
            return False
        d = -1 if p > 0.0 else 1
        x = val
        if c.run.liq_settle_market:
            o = taker_price(c, s, d, q)
            if o == o:
                x = o
        sg = 1.0 if p > 0.0 else -1.0
        realized = q * (x - c.pos[s].avg_px) * sg
        fee = q * x * c.run.liq_fee_rate
        book_fill(c, s, d, q, x, fee, LQ_LIQUIDATION, t, g, 0, OT_MARKET, val, fills)
        c.acct.insurance_fund += fee
        write_liq_row(c.acct, liq_rows, t, s, d, q, val, np.nan, x, fee, fee, realized)
        mark_to_market(c.run, c.inst[s], c.mkt[s], c.pos[s])
        record_equity(c, t, equity_rows)
        update_drawdown(c)
        if not margin_breached(c, s, t):
            return True


rare_reduce_to_lower_brackets = rare_path(_reduce_to_lower_brackets, False)


@kernel
def _liquidate_one(c, s, t, g, fills, equity_rows, liq_rows, inverse):
    if inverse:
        rare_liquidate_inverse(c, s, t, g, fills, liq_rows)
    else:
        c.liq[0].sym = s
        _liquidate(c, 1, c.pos[s].iso_margin, t, g, fills, liq_rows)
    c.pos[s].mc_flag = 0
    record_equity(c, t, equity_rows)
    update_drawdown(c)
    return 1


rare_liquidate_one = rare_path(_liquidate_one, 0)


@kernel
def _liquidate_cross(c, n, wallet, u, t, g, fills, equity_rows, liq_rows):
    """Close every cross perpetual position; the wallet they share includes spot PnL."""
    u_perp = 0.0
    n = 0
    for k in range(c.run.nsym):
        if not is_isolated(c.inst[k]) and c.pos[k].qty != 0.0 and c.inst[k].type != T_SPOT:
            c.liq[n].sym = k
            u_perp += c.pos[k].upnl
            n += 1
    _liquidate(c, n, wallet + (u - u_perp), t, g, fills, liq_rows)
    c.acct.mc_cross_flag = 0
    record_equity(c, t, equity_rows)
    update_drawdown(c)
    return n


@kernel
def _liquidate_spot_shorts(c, t, g, fills, equity_rows, liq_rows):
    """Spot margin below maintenance: every spot short is bought back at the market, paying the
    taker fee plus the clearance fee; a negative balance left over is covered by the fund."""
    n = 0
    for k in range(c.run.nsym):
        if c.inst[k].type == T_SPOT and c.pos[k].qty < 0.0:
            if c.run.liq_cancel_orders:
                _cancel_orders(c, k, t)
            q = -c.pos[k].qty
            px = taker_price(c, k, 1, q)
            if px != px:
                px = val_px(c.run, c.mkt[k])
            fee = q * px * (c.inst[k].taker_fee + c.run.liq_fee_rate)
            realized = q * (c.pos[k].avg_px - px)
            book_fill(c, k, 1, q, px, fee, LQ_LIQUIDATION, t, g, 0, OT_MARKET, val_px(c.run, c.mkt[k]), fills)
            write_liq_row(c.acct, liq_rows, t, k, 1, q, val_px(c.run, c.mkt[k]), np.nan, px, fee, 0.0, realized)
            n += 1
    e = equity(c)
    if e < 0.0:
        c.acct.balance -= e
        c.acct.insurance_payout -= e
        disarm_guard(c)
        c.acct.insurance_fund += e
        liq_rows[c.acct.n_liq_rows - 1].insurance_fund_change = e
    record_equity(c, t, equity_rows)
    update_drawdown(c)
    return n


rare_liquidate_spot_shorts = rare_path(_liquidate_spot_shorts, 0)


@kernel
def _liquidate_inverse(c, s, t, g, fills, liq_rows):
    """Inverse perpetual: the same rules in coin, with the symbol's coin wallet as the margin (an
    isolated position: its isolated margin, which book_fill caps the loss at)."""
    p = c.pos[s].qty
    q = abs(p)
    d = -1 if p > 0.0 else 1
    sg = 1.0 if p > 0.0 else -1.0
    cs = c.inst[s].contract_size
    mark = val_px(c.run, c.mkt[s])
    x = mark
    if c.run.liq_settle_market:
        o = taker_price(c, s, d, q)
        if o == o:
            x = o
    isolated = is_isolated_inverse(c.inst[s])
    wallet = c.pos[s].iso_margin if isolated else c.pos[s].coin_bal
    bp = inverse_bankruptcy_price(sg, q, cs, c.pos[s].avg_px, wallet)
    realized = q * cs * (1.0 / c.pos[s].avg_px - 1.0 / x) * sg
    left = wallet + realized
    fee = min(q * cs / x * c.run.liq_fee_rate, max(left, 0.0))
    forfeit = left - fee if (not c.run.liq_settle_market and left > fee) else 0.0
    shortfall = -left if left < 0.0 else 0.0
    if c.run.liq_cancel_orders:
        _cancel_orders(c, s, t)
    book_fill(c, s, d, q, x, fee + forfeit, LQ_LIQUIDATION, t, g, 0, OT_MARKET, mark, fills)
    if shortfall > 0.0 and not isolated:  # isolated: book_fill drew it from the fund (iso_gap_cover)
        c.pos[s].coin_bal += shortfall
        c.acct.insurance_payout += shortfall * x
        c.acct.insurance_fund -= shortfall * x
    c.acct.insurance_fund += (fee + forfeit) * x
    write_liq_row(c.acct, liq_rows, t, s, d, q, mark, bp, x, fee, fee + forfeit - shortfall, realized)  # coin


rare_liquidate_inverse = rare_path(_liquidate_inverse, None)
