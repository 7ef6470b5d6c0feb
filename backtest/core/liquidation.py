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
    accrue_borrow, book_fill, equity, is_isolated, is_isolated_inverse, iso_total, maint_of, mark_to_market,
    notional_of, record_equity, update_drawdown, val_px,
)
from .codes import LQ_LIQUIDATION, OT_MARKET, R_LIQUIDATION, ST_CANCELED, ST_FREE, T_INVERSE, T_SPOT
from .jit import kernel
from .margin_math import bracket_index, inverse_bankruptcy_price, linear_bankruptcy_price
from .execution import taker_price
from .orders import finish


@kernel
def write_liq_row(c, rows, t, s, side, q, mark, bankrupt_px, fill_px, fee, insurance, realized):
    k = c.n_liq_rows
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
    c.n_liq_rows = k + 1
    c.n_liquidations += 1


@kernel
def _margin_call(c, flag, sym, mm, mb):
    """Fire on_margin_call once when maint/margin-balance crosses the configured level."""
    ratio = mm / mb if mb > 0.0 else np.inf
    if ratio >= c.margin_call_level:
        if flag == 0:
            c.mc_pending = 1
            c.mc_sym = sym
            c.mc_ratio = ratio
            c.n_margin_calls += 1
        return 1
    return 0


@kernel
def _cancel_orders(c, s, t):
    for j in range(c.o_hwm):
        if c.o_status[j] != ST_FREE and c.o_sym[j] == s:
            finish(c, j, ST_CANCELED, R_LIQUIDATION, t)


@kernel
def _liquidate(c, members, n, wallet, t, g, fills, liq_rows):
    """Close the n positions in `members` that share `wallet` (see the module docstring)."""
    rate = c.liq_fee_rate
    xs = np.empty(n)
    realized = np.empty(n)
    clear = np.empty(n)
    total_r = 0.0
    total_clear = 0.0
    u_all = 0.0
    for i in range(n):
        u_all += c.sym_upnl[members[i]]
    for i in range(n):
        s = members[i]
        p = c.pos[s]
        d = -1 if p > 0.0 else 1
        x = val_px(c, s)
        if c.liq_settle_market:  # a market order through the execution model
            o = taker_price(c, s, d, abs(p))
            if o == o:
                x = o
        xs[i] = x
        sg = 1.0 if p > 0.0 else -1.0
        realized[i] = abs(p) * (x - c.avg_px[s]) * sg
        clear[i] = abs(p) * x * rate
        total_r += realized[i]
        total_clear += clear[i]
    left = wallet + total_r  # margin left after closing, before the fee
    fee = min(total_clear, max(left, 0.0))
    forfeit = 0.0
    if not c.liq_settle_market and left > fee:
        forfeit = left - fee
    shortfall = -left if left < 0.0 else 0.0
    charged = fee + forfeit
    for i in range(n):
        s = members[i]
        p = c.pos[s]
        q = abs(p)
        d = -1 if p > 0.0 else 1
        if n == 1:
            share = charged
            fee_i = fee
        elif total_clear > 0.0:
            share = charged * clear[i] / total_clear
            fee_i = fee * clear[i] / total_clear
        else:
            share = charged / n
            fee_i = fee / n
        sg = 1.0 if p > 0.0 else -1.0
        other = wallet + (u_all - c.sym_upnl[s])
        if is_isolated(c, s):
            other = c.iso_margin[s]
        bp = linear_bankruptcy_price(sg, q, c.avg_px[s], other)
        mark = val_px(c, s)
        if c.liq_cancel_orders:
            _cancel_orders(c, s, t)
        book_fill(c, s, d, q, xs[i], share, LQ_LIQUIDATION, t, g, 0, OT_MARKET, mark, fills)
        # fee_i is the clearance fee; share - fee_i is forfeited margin
        write_liq_row(c, liq_rows, t, s, d, q, mark, bp, xs[i], fee_i,
                      share - (shortfall if i == n - 1 else 0.0), realized[i])
    # an isolated position (n == 1): book_fill capped the loss at the isolated margin and drew the
    # shortfall from the fund (iso_gap_cover); only a cross wallet is paid the shortfall here
    paid = shortfall if n > 0 and not is_isolated(c, members[0]) else 0.0
    if paid > 0.0:
        c.balance += paid
        c.insurance_payout += paid
    c.insurance_fund += charged - paid


@kernel
def margin_breached(c, s, t):
    """After the valuation price of s (which holds a position) moved: is a liquidation due?
    Also fires margin calls (c.mc_pending). Takes no arrays, so the per-event call is cheap."""
    typ = c.i_type[s]
    if typ == T_SPOT:
        if c.pos[s] >= 0.0:
            return False
        accrue_borrow(c, s, t)
        liab = 0.0
        for k in range(c.nsym):
            if c.i_type[k] == T_SPOT and c.pos[k] < 0.0:
                liab += -c.pos[k] * val_px(c, k)
        level = (equity(c) + liab) / liab
        if level < c.spot_maint_level:
            return True
        c.mc_cross_flag = _margin_call(c, c.mc_cross_flag, -1, c.spot_maint_level, level)
        return False
    if typ == T_INVERSE or is_isolated(c, s):
        mm = maint_of(c, s)
        if is_isolated_inverse(c, s):
            mb = c.iso_margin[s] + c.coin_upnl[s]
        elif typ == T_INVERSE:
            mb = c.coin_bal[s] + c.coin_upnl[s]
        else:
            mb = c.iso_margin[s] + c.sym_upnl[s]
        if mb <= mm:
            return True
        c.mc_flag[s] = _margin_call(c, c.mc_flag[s], s, mm, mb)
        return False
    wallet = c.balance - iso_total(c)
    u = 0.0  # unrealised PnL of spot and cross positions
    mm = 0.0
    n = 0
    for k in range(c.nsym):
        if is_isolated(c, k):
            continue
        u += c.sym_upnl[k]
        if c.pos[k] != 0.0 and c.i_type[k] != T_SPOT:
            mm += maint_of(c, k)
            n += 1
    mb = wallet + u
    if n > 0 and mb <= mm:
        return True
    c.mc_cross_flag = _margin_call(c, c.mc_cross_flag, -1, mm, mb)
    return False


@kernel
def liquidate(c, s, t, g, fills, equity_rows, liq_rows):
    """Carry out the liquidation margin_breached() found due. Returns the positions closed."""
    typ = c.i_type[s]
    if typ == T_SPOT:
        return _liquidate_spot_shorts(c, t, g, fills, equity_rows, liq_rows)
    if typ == T_INVERSE:
        return _liquidate_one(c, s, t, g, fills, equity_rows, liq_rows, True)
    if c.liq_partial and _reduce_to_lower_brackets(c, s, t, g, fills, equity_rows, liq_rows):
        return 1  # the reduction restored the margin
    if is_isolated(c, s):
        return _liquidate_one(c, s, t, g, fills, equity_rows, liq_rows, False)
    wallet = c.balance - iso_total(c)
    u = 0.0
    n = 0
    for k in range(c.nsym):
        if not is_isolated(c, k):
            u += c.sym_upnl[k]
            if c.pos[k] != 0.0 and c.i_type[k] != T_SPOT:
                n += 1
    return _liquidate_cross(c, n, wallet, u, t, g, fills, equity_rows, liq_rows)


@kernel
def _reduce_to_lower_brackets(c, s, t, g, fills, equity_rows, liq_rows):
    """Tiered partial liquidation (Bybit's risk-limit steps): while the position of s sits above
    its first bracket and is under-margined, close the part above the lower bracket's floor at
    the liquidation price, paying the clearance fee on it. True when that restored the margin."""
    lot = c.i_lot[s]
    while True:
        val = val_px(c, s)
        i = bracket_index(notional_of(c, s), c.br_floor[s], c.br_cap[s], c.i_n_brackets[s])
        if i <= 0:
            return False
        keep = np.floor(c.br_cap[s, i - 1] * (1.0 - 1e-9) / val / lot) * lot
        p = c.pos[s]
        q = abs(p) - keep
        if q <= 0.0 or keep <= 0.0:
            return False
        d = -1 if p > 0.0 else 1
        x = val
        if c.liq_settle_market:
            o = taker_price(c, s, d, q)
            if o == o:
                x = o
        sg = 1.0 if p > 0.0 else -1.0
        realized = q * (x - c.avg_px[s]) * sg
        fee = q * x * c.liq_fee_rate
        book_fill(c, s, d, q, x, fee, LQ_LIQUIDATION, t, g, 0, OT_MARKET, val, fills)
        c.insurance_fund += fee
        write_liq_row(c, liq_rows, t, s, d, q, val, np.nan, x, fee, fee, realized)
        mark_to_market(c, s)
        record_equity(c, t, equity_rows)
        update_drawdown(c)
        if not margin_breached(c, s, t):
            return True


@kernel
def _liquidate_one(c, s, t, g, fills, equity_rows, liq_rows, inverse):
    if inverse:
        _liquidate_inverse(c, s, t, g, fills, liq_rows)
    else:
        members = np.empty(1, np.int64)
        members[0] = s
        _liquidate(c, members, 1, c.iso_margin[s], t, g, fills, liq_rows)
    c.mc_flag[s] = 0
    record_equity(c, t, equity_rows)
    update_drawdown(c)
    return 1


@kernel
def _liquidate_cross(c, n, wallet, u, t, g, fills, equity_rows, liq_rows):
    """Close every cross perpetual position; the wallet they share includes spot PnL."""
    members = np.empty(n, np.int64)
    u_perp = 0.0
    n = 0
    for k in range(c.nsym):
        if not is_isolated(c, k) and c.pos[k] != 0.0 and c.i_type[k] != T_SPOT:
            members[n] = k
            u_perp += c.sym_upnl[k]
            n += 1
    _liquidate(c, members, n, wallet + (u - u_perp), t, g, fills, liq_rows)
    c.mc_cross_flag = 0
    record_equity(c, t, equity_rows)
    update_drawdown(c)
    return n


@kernel
def _liquidate_spot_shorts(c, t, g, fills, equity_rows, liq_rows):
    """Spot margin below maintenance: every spot short is bought back at the market, paying the
    taker fee plus the clearance fee; a negative balance left over is covered by the fund."""
    n = 0
    for k in range(c.nsym):
        if c.i_type[k] == T_SPOT and c.pos[k] < 0.0:
            if c.liq_cancel_orders:
                _cancel_orders(c, k, t)
            q = -c.pos[k]
            px = taker_price(c, k, 1, q)
            if px != px:
                px = val_px(c, k)
            fee = q * px * (c.i_taker_fee[k] + c.liq_fee_rate)
            realized = q * (c.avg_px[k] - px)
            book_fill(c, k, 1, q, px, fee, LQ_LIQUIDATION, t, g, 0, OT_MARKET, val_px(c, k), fills)
            write_liq_row(c, liq_rows, t, k, 1, q, val_px(c, k), np.nan, px, fee, 0.0, realized)
            n += 1
    e = equity(c)
    if e < 0.0:
        c.balance -= e
        c.insurance_payout -= e
        c.insurance_fund += e
        liq_rows[c.n_liq_rows - 1].insurance_fund_change = e
    record_equity(c, t, equity_rows)
    update_drawdown(c)
    return n


@kernel
def _liquidate_inverse(c, s, t, g, fills, liq_rows):
    """Inverse perpetual: the same rules in coin, with the symbol's coin wallet as the margin (an
    isolated position: its isolated margin, which book_fill caps the loss at)."""
    p = c.pos[s]
    q = abs(p)
    d = -1 if p > 0.0 else 1
    sg = 1.0 if p > 0.0 else -1.0
    cs = c.i_contract_size[s]
    mark = val_px(c, s)
    x = mark
    if c.liq_settle_market:
        o = taker_price(c, s, d, q)
        if o == o:
            x = o
    isolated = is_isolated_inverse(c, s)
    wallet = c.iso_margin[s] if isolated else c.coin_bal[s]
    bp = inverse_bankruptcy_price(sg, q, cs, c.avg_px[s], wallet)
    realized = q * cs * (1.0 / c.avg_px[s] - 1.0 / x) * sg
    left = wallet + realized
    fee = min(q * cs / x * c.liq_fee_rate, max(left, 0.0))
    forfeit = left - fee if (not c.liq_settle_market and left > fee) else 0.0
    shortfall = -left if left < 0.0 else 0.0
    if c.liq_cancel_orders:
        _cancel_orders(c, s, t)
    book_fill(c, s, d, q, x, fee + forfeit, LQ_LIQUIDATION, t, g, 0, OT_MARKET, mark, fills)
    if shortfall > 0.0 and not isolated:  # isolated: book_fill drew it from the fund (iso_gap_cover)
        c.coin_bal[s] += shortfall
        c.insurance_payout += shortfall * x
        c.insurance_fund -= shortfall * x
    c.insurance_fund += (fee + forfeit) * x
    write_liq_row(c, liq_rows, t, s, d, q, mark, bp, x, fee, fee + forfeit - shortfall, realized)  # coin
