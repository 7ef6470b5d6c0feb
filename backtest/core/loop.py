"""The event loop template (docs/fill-rules.md §2). Never compiled here.

`backtest.plugins.codegen` copies the source of `run` into a generated module per strategy
version, where the `_on_*` hooks and `HAS_*` flags are bound as globals before numba compiles it:
the hooks inline into the loop and the flags fold away unused calls. The `RUN_*` flags
(codegen.LoopFeatures) do the same for steps a run's data and config cannot need: an L2 book,
the impact estimators, loans. Everything that never calls
a hook lives in the cached helpers imported below. `unlikely` marks the branches most events do
not take (core/hints.py): the compiler then keeps the per-event path compact and in registers.
"""
import numpy as np
from numba import njit  # noqa: F401  (used by the generated module)

from .account import apply_constant_funding, apply_funding, mark_to_market, record_bars, record_equity, update_drawdown
from .bars_match import check_bar_extreme, match_bar
from .book import apply_book_row, book_trade
from .codes import K_BAR, K_BOOK, K_FUNDING, K_MARK, K_MARKET_LIQ, K_QUOTE, K_TRADE, RS_BUFFER_FULL, RS_DONE
from .execution import trade_through, update_estimators
from .guard import arm_guard, guard_holds
from .hints import unlikely
from .liquidation import liquidate, margin_breached
from .loans import check_loans, flush_loan_ring
from .matching import process_orders

ST_DONE, ST_BUFFER_FULL = RS_DONE, RS_BUFFER_FULL  # what run returns (enums.RunStatus)


def _noop(*args):
    pass


_on_tick = _on_quote = _on_mark = _on_fill = _on_funding = _on_timer = _noop
_on_liquidation = _on_margin_call = _on_bar = _on_market_liquidation = _noop
HAS_ON_TICK = HAS_ON_QUOTE = HAS_ON_MARK = HAS_ON_FILL = HAS_ON_FUNDING = HAS_ON_TIMER = False
HAS_ON_LIQUIDATION = HAS_ON_MARGIN_CALL = HAS_ON_BAR = HAS_ON_MARKET_LIQUIDATION = False
RUN_BOOK = RUN_ESTIMATORS = RUN_LOANS = True


def run(ts, sym, kind, side, price, qty, bid, ask, bid_qty, ask_qty, start, c, s,
        fills, equity_rows, bar_rows, funding_rows, liq_rows, loan_rows):
    n = len(ts)
    # the headroom each output buffer keeps so that one event can never overflow it, from the
    # run's capacities: every order slot and symbol may write a fill and an equity row, ...
    n_orders = len(c.orders)
    nsym = len(c.mkt)
    n_loans = len(c.loans)
    fill_limit = len(fills) - (n_orders + nsym + 8)
    equity_limit = len(equity_rows) - (n_orders + nsym + 8)
    bar_limit = len(bar_rows) - (2 * nsym + 8)
    funding_limit = len(funding_rows) - (nsym + n_loans + 8)
    liq_limit = len(liq_rows) - (nsym + n_loans + 8)
    loan_limit = len(loan_rows) - (3 * n_loans + len(c.loan_ring) + 8)
    done_drain = n_orders // 2
    base = c.clock.idx_base
    # the next sample, timer or funding time: one compare per event instead of three
    special = min(c.clock.next_sample_ts, min(c.clock.next_timer_ts, c.clock.next_funding_ts))
    # per-run settings (pack.py), read once into locals the loop keeps in registers
    need_estimators = c.run.need_estimators
    liq_use_last = c.run.liq_use_last
    for i in range(start, n):
        # an unsigned index: numba adds a negative-index fix-up to every ts[i], price[i] otherwise
        u = np.uint64(i)
        t = ts[u]
        sy = sym[u]
        us = np.uint64(sy)  # unsigned: no negative-index fix-up at each c.mkt[us], c.pos[us]
        k = kind[u]
        g = base + i
        p = price[u]
        wrote = False  # did this event write rows that may need draining?
        if unlikely(t >= special):
            # 1. samples at interval boundaries, with the state before this event (R2.1)
            if t >= c.clock.next_sample_ts:
                iv = c.run.sample_interval_ns
                tb = t - t % iv
                record_equity(c, tb, equity_rows)
                record_bars(c, tb, bar_rows)
                c.clock.next_sample_ts = tb + iv
                wrote = True
            # 2. timer: decided before this event (R2.2)
            if t >= c.clock.next_timer_ts:
                iv = c.run.timer_interval_ns
                tb = t - t % iv
                c.clock.now_ts = tb
                c.clock.cur_i = i - 1
                if HAS_ON_TIMER:
                    _on_timer(s, c, tb)
                c.clock.next_timer_ts = tb + iv
            # constant-rate funding at funding times (margin.funding = a rate)
            if t >= c.clock.next_funding_ts:
                iv = c.run.funding_interval_ns
                apply_constant_funding(c, t - t % iv, funding_rows)
                c.clock.next_funding_ts = t - t % iv + iv
                wrote = True
            special = min(c.clock.next_sample_ts, min(c.clock.next_timer_ts, c.clock.next_funding_ts))
        f0 = c.acct.n_fill_rows
        l0 = c.acct.n_liq_rows
        # 3. market state (R2.3)
        if k == K_TRADE:
            c.mkt[us].last_px = p
            c.mkt[us].has_trade = 1
            trade_through(c.mkt[us], p)  # the effective book (R2.3)
            if RUN_ESTIMATORS:
                if unlikely(need_estimators != 0):
                    update_estimators(c.run, c.mkt[us], t, p, qty[u])
            if RUN_BOOK:
                if unlikely(c.book[us].has_book != 0):
                    book_trade(c.book[us], p)  # and the L2 levels it printed through (R9.2)
        elif k == K_QUOTE:
            c.mkt[us].bid = bid[u]
            c.mkt[us].ask = ask[u]
            c.mkt[us].bid_qty = bid_qty[u]
            c.mkt[us].ask_qty = ask_qty[u]
            c.mkt[us].has_quote = 1
            c.mkt[us].book_thru = 0
        elif k == K_MARK:
            c.mkt[us].mark_px = p
            c.mkt[us].index_px = qty[u]
            c.mkt[us].has_mark = 1
        elif k == K_BOOK:  # one level of an L2 snapshot (R9.1); orders and hooks skip it
            if RUN_BOOK:  # a run without a book has no such rows
                apply_book_row(c.book[us], t, side[u], bid[u], bid_qty[u], ask[u], ask_qty[u])
        elif k == K_BAR:
            # a candle at its close: orders walk its path (section 8), then last = close. Only
            # strategies with on_bar compile this (engine.run refuses bars data without it).
            if HAS_ON_BAR:
                c.clock.ev_ts = t
                if c.pos[us].n_open != 0:
                    match_bar(c, g, t, sy, bid[u], ask[u], bid_qty[u], p, fills, equity_rows)
                if c.pos[us].qty != 0.0 and check_bar_extreme(c, g, t, sy, bid_qty[u], ask[u], fills,
                                                          equity_rows, liq_rows):
                    wrote = True
            c.mkt[us].last_px = p
            c.mkt[us].has_trade = 1
        # 4. orders of this symbol (section 3; a no-op for funding, bars and market liquidations)
        if c.pos[us].n_open != 0:
            c.clock.ev_ts = t  # the L2 book's refill clock (R9.3), set only where takers can fill
            # skipped when none of them can do anything at this event (state.py: o_wake, ...)
            if unlikely(t >= c.pos[us].o_wake or (k == K_TRADE and (p <= c.pos[us].o_buy_max or p >= c.pos[us].o_sell_min))):
                process_orders(c, g, t, sy, k, p, qty[u], fills, equity_rows)
        # 5. funding from the data (R5.1)
        payment = 0.0
        if unlikely(k == K_FUNDING):
            payment = apply_funding(c, sy, t, p, funding_rows)
            if payment != 0.0:
                update_drawdown(c)
            wrote = True
        # 6. mark to market (R6.1), then the margin check and liquidation (docs/margin.md), when
        # the valuation price moved: at a mark, or at a trade when positions are valued at last;
        # the checks are skipped while the price guard shows they cannot change anything
        if c.pos[us].qty != 0.0 and (k == K_MARK or ((k == K_TRADE or k == K_BAR) and (
                liq_use_last or not c.mkt[us].has_mark))):
            mark_to_market(c.run, c.inst[us], c.mkt[us], c.pos[us])
            if unlikely(not guard_holds(c.run, c.guard, c.mkt[us], c.pos[us], sy)):
                c.acct.n_margin_checks += 1
                update_drawdown(c)
                if unlikely(margin_breached(c, sy, t)):
                    c.clock.ev_ts = t
                    record_equity(c, t, equity_rows)  # the state that triggered it (ratio >= 1)
                    liquidate(c, sy, t, g, fills, equity_rows, liq_rows)
                    wrote = True
                arm_guard(c, sy)
        if RUN_LOANS:
            if unlikely(c.pos[us].loans_on > 0 and (k == K_TRADE or k == K_MARK or k == K_BAR)):
                check_loans(c, sy, t, loan_rows, liq_rows)
                wrote = True
        # 7. hooks (R2.4)
        c.clock.now_ts = t
        c.clock.cur_i = i  # the chunk index: readers add idx_base (state.py)
        if unlikely(c.acct.n_fill_rows != f0):
            wrote = True
            if HAS_ON_FILL:
                for f in range(f0, c.acct.n_fill_rows):
                    _on_fill(s, c, fills[f].ts_ns, fills[f].sym, fills[f].oid, fills[f].price,
                             fills[f].qty, fills[f].side)
        if unlikely(c.acct.n_liq_rows != l0):
            if HAS_ON_LIQUIDATION:
                for f in range(l0, c.acct.n_liq_rows):
                    _on_liquidation(s, c, t, liq_rows[f].sym, liq_rows[f].qty, liq_rows[f].fill_price)
        if unlikely(c.acct.mc_pending != 0):
            c.acct.mc_pending = 0
            if HAS_ON_MARGIN_CALL:
                _on_margin_call(s, c, t, c.acct.mc_sym, c.acct.mc_ratio)
        if k == K_TRADE:
            if HAS_ON_TICK:
                _on_tick(s, c, t, sy, p, qty[u], side[u])
        elif k == K_QUOTE:
            if HAS_ON_QUOTE:
                _on_quote(s, c, t, sy, bid[u], ask[u], bid_qty[u], ask_qty[u])
        elif k == K_MARK:
            if HAS_ON_MARK:
                _on_mark(s, c, t, sy, p, qty[u])
        elif k == K_FUNDING:
            if HAS_ON_FUNDING:
                _on_funding(s, c, t, sy, p, payment)
        elif k == K_BAR:
            if HAS_ON_BAR:
                _on_bar(s, c, t, sy, bid[u], ask[u], bid_qty[u], p, qty[u])
        elif k == K_MARKET_LIQ:  # another trader's liquidation: information only (R8.8)
            c.acct.n_market_liquidations += 1
            if HAS_ON_MARKET_LIQUIDATION:
                _on_market_liquidation(s, c, t, sy, p, qty[u], side[u])
        if RUN_LOANS:
            if unlikely(c.acct.n_loan_ring > 0):
                flush_loan_ring(c, loan_rows)
                wrote = True
        # hand back to Python to drain an output buffer before it can overflow; hooks only add
        # finished orders (rejects), so the other counters are checked only when rows were written
        if unlikely(c.acct.n_done > done_drain):
            return ST_BUFFER_FULL, i + 1
        if unlikely(wrote and (c.acct.n_loan_rows > loan_limit or c.acct.n_fill_rows > fill_limit
                               or c.acct.n_equity_rows > equity_limit or c.acct.n_bar_rows > bar_limit
                               or c.acct.n_funding_rows > funding_limit or c.acct.n_liq_rows > liq_limit)):
            return ST_BUFFER_FULL, i + 1
    return ST_DONE, n
