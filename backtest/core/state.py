"""The engine's state, split by owner and lifetime: one dtype per part, and `State`, the bundle.

A run's state is a few one-row records (run config, clock, account, guard) and arrays of
records whose lengths are chosen when the run starts (symbols, order slots, finished orders,
loans, loan events): the compiled code sees an array's length, not a capacity in its type, so a
run with more symbols or order slots needs no new compile. Only the bracket table (B) and the
L2 depth (K) are fixed subarrays of a symbol's row.

Who writes each part:
    run        engine.py before the run (settings, as numbers); read-only in the kernel
    clock      the loop (time, event index, next sample/timer/funding times); engine.py the
               chunk's first index
    acct       account.py, orders.py, matching.py, liquidation.py, loans.py (balance, fees,
               counters, the order-table high-water mark); engine.py resets the buffer counters
               when it drains
    guard      guard.py
    inst       engine.py before the run (instrument, brackets, leverage, margin mode, slippage)
    mkt        the loop (prices, flags), execution.py (`book_thru`, the estimators)
    pos        account.py, liquidation.py, loans.py (positions, isolated margin, coin wallets),
               orders.py (`n_open`, `o_first`, `o_last`, `o_wake`: WAKE_NOW when it places,
               cancels or amends), matching.py and bars_match.py (narrow or recompute the `o_*`),
               guard.py (`g_lo`, `g_hi`)
    book       book.py
    orders     orders.py, matching.py, bars_match.py, liquidation.py (one record per slot)
    done       orders.py (finished orders: exactly ORDER_DTYPE, drained by a slice copy)
    loans      loans.py (one record per loan slot)
    loan_ring  loans.py (loan rows written by strategy calls, flushed by the loop)
    liq        liquidation.py (its work area while it closes positions)
    rare       pack.py: True, or None when the run cannot reach the rarely used paths (inverse
               and spot instruments, isolated margin, partial liquidation, an L2 book, the queue
               model, loans); not an array but a marker in the state's type, which compiles the
               kernels without those paths (core/rare.py)
Hooks receive `State` as `c` and reach it through the SDK (backtest/sdk.py) only.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from .enums import SlippageModel
from .schema import MAX_BOOK_LEVELS, MAX_BRACKETS, MAX_ORDERS, ORDER_DTYPE

FEE_TIERS = 8
VOL_DAYS = 31  # days of traded volume kept for the 30-day fee tier
# default run-time capacities (array lengths; engine.py may choose others)
ORDER_SLOTS = MAX_ORDERS
LOAN_SLOTS = 16
LOAN_RING = 64  # loan rows strategy calls can write in one event

f8, i8, u1, i1 = "f8", "i8", "u1", "i1"

# run configuration (one row): the execution, margin, funding and loan settings, as numbers
RUN_DTYPE = np.dtype([
    ("nsym", i8),
    ("n_inverse", i8),  # inverse symbols in the run (their coin wallets count in equity)
    ("latency_ns", i8),
    ("cancel_latency_ns", i8),
    ("touch_fills", u1),
    ("feed_latency_ns", i8),
    ("latency_jitter_ns", i8),
    ("partial_fills", u1),  # limit fills capped by the traded / displayed volume
    ("queue_model", u1),  # resting limits wait behind the displayed size at their price
    ("need_estimators", u1),  # some symbol uses an impact model
    ("book_replayed", u1),  # the run replays an L2 book (its loop is compiled with the book step)
    ("impact_horizon_ns", f8),
    ("n_fee_tiers", i8),
    ("ft_volume", f8, (FEE_TIERS,)),
    ("ft_maker", f8, (FEE_TIERS,)),
    ("ft_taker", f8, (FEE_TIERS,)),
    ("initial_volume_30d", f8),
    ("sample_interval_ns", i8),
    ("timer_interval_ns", i8),
    ("liq_use_last", u1),  # margin.trigger = "last": value positions at the last trade
    ("liq_settle_market", u1),  # margin.settle = "market" (else at the bankruptcy price)
    ("liq_cancel_orders", u1),
    ("liq_partial", u1),  # margin.partial: reduce to a lower bracket before liquidating
    ("liq_fee_rate", f8),
    ("margin_call_level", f8),
    ("spot_margin", u1),  # spot symbols may be sold short by borrowing the coin
    ("borrow_rate_hourly", f8),
    ("spot_maint_level", f8),  # liquidate spot shorts when assets / liabilities falls below
    ("const_funding_rate", f8),  # margin.funding = a constant rate (instead of data events)
    ("funding_interval_ns", i8),
    ("initial_balance", f8),
    ("guard_on", u1),  # margin.price_guard (guard.py)
    ("loan_lltv", f8),
    ("loan_warning_ltv", f8),
    ("loan_max_open_ltv", f8),
    ("loan_apr", f8),
    ("loan_lif", f8),  # liquidation incentive factor: 1 + penalty
    ("loan_partial", u1),
    ("book_half_life_ns", f8),  # execution.book_resilience_half_life (0: instant refill)
    ("book_beyond_frac", f8),  # execution.book_beyond_bps / 10000: past the deepest level
], align=True)

# clock and sequencing (one row)
CLOCK_DTYPE = np.dtype([
    ("now_ts", i8),
    # index of the event being processed within the chunk being run (its global index, the
    # decision index of orders, is idx_base + cur_i: the loop stores i, not the sum, at every event)
    ("cur_i", i8),
    ("idx_base", i8),  # global index of element 0 of the current chunk
    ("rng_state", i8),  # the run's seeded generator (Park-Miller), for latency jitter
    ("next_sample_ts", i8),
    ("next_timer_ts", i8),
    ("next_funding_ts", i8),
    ("ev_ts", i8),  # time of the event whose orders or liquidations are being worked (R9.3)
], align=True)

# the account (one row): wallet, totals, margin-call state and counters
ACCOUNT_DTYPE = np.dtype([
    ("balance", f8),  # wallet: initial + realised - fees + funding - interest
    ("realized_pnl", f8),
    ("fees", f8),
    ("funding", f8),
    ("peak_equity", f8),
    ("max_drawdown", f8),  # deepest peak - equity seen at any event (currency; the guard's)
    ("max_drawdown_frac", f8),  # deepest (peak - equity) / peak seen at any event (R6.1)
    ("fee_tier", i8),
    ("vol_day", i8),
    ("vol_start_day", i8),
    ("vol_ring", f8, (VOL_DAYS,)),
    ("borrow_interest", f8),
    ("insurance_fund", f8),
    ("insurance_payout", f8),  # shortfalls the insurance fund paid to this account
    ("iso_gap_cover", f8),  # loss beyond the isolated margin of exits past the bankruptcy price
    ("mc_pending", u1),  # a margin call to deliver to on_margin_call after this event
    ("mc_sym", i8),  # its symbol (-1: the cross-margin account)
    ("mc_ratio", f8),
    ("mc_cross_flag", u1),  # above the margin-call level (fires once per crossing)
    ("interest", f8),  # total loan interest accrued
    ("loan_penalties", f8),
    ("loan_cash_in", f8),  # borrowed cash credited to the balance
    ("loan_cash_out", f8),  # cash repaid from the balance
    ("loan_seized_cost", f8),  # cost basis of collateral seized by liquidations
    ("seq", i8),  # orders ever created (oid sequence)
    ("o_hwm", i8),  # order slots [0, o_hwm) are in use, in ascending oid order
    ("n_done", i8),  # finished orders waiting in `done`
    ("n_loans", i8),
    ("n_loan_ring", i8),
    ("n_margin_checks", i8),  # revaluations that ran the full drawdown and margin checks
    ("n_margin_calls", i8),
    ("n_fills", i8),
    ("n_rejects", i8),
    ("n_liquidations", i8),
    ("n_market_liquidations", i8),  # other traders' liquidations seen (kind liquidations)
    ("n_table_full", i8),  # refused orders that found no room in the done ring
    ("n_loan_liquidations", i8),
    # rows in the output buffers since the last drain (engine.py resets them)
    ("n_fill_rows", i8),
    ("n_equity_rows", i8),
    ("n_bar_rows", i8),
    ("n_funding_rows", i8),
    ("n_liq_rows", i8),
    ("n_loan_rows", i8),
], align=True)

# the price guard (guard.py, one row): what is armed (-1: none, s: the one position of s,
# guard.GUARD_ALL: several positions); the price intervals are the positions' g_lo, g_hi. Any
# change of the account disarms it (account.disarm_guard)
GUARD_DTYPE = np.dtype([
    ("sym", i8),
], align=True)

# instruments per symbol, with the run's per-symbol settings and the maintenance brackets
INSTRUMENT_DTYPE = np.dtype([
    ("type", i1),  # InstrumentType
    ("contract_size", f8),
    ("tick", f8),
    ("lot", f8),
    ("maker_fee", f8),
    ("taker_fee", f8),
    ("leverage", f8),
    ("margin_mode", i1),
    ("slip_model", i1),  # execution model of taker fills (core/execution.py)
    ("slip_bps", f8),
    ("impact_k", f8),
    ("n_brackets", i8),
    ("br_floor", f8, (MAX_BRACKETS,)),
    ("br_cap", f8, (MAX_BRACKETS,)),
    ("br_max_lev", f8, (MAX_BRACKETS,)),
    ("br_mmr", f8, (MAX_BRACKETS,)),
    ("br_maint_amount", f8, (MAX_BRACKETS,)),
], align=True)

# market state per symbol: the latest prices and flags, and the causal impact estimators
MARKET_DTYPE = np.dtype([
    ("last_px", f8),
    ("bid", f8),
    ("ask", f8),
    ("bid_qty", f8),
    ("ask_qty", f8),
    ("mark_px", f8),
    ("index_px", f8),
    ("has_quote", u1),
    ("has_mark", u1),
    ("has_trade", u1),
    ("book_thru", u1),  # a trade printed through the quote since it was seen (R2.3)
    ("est_var", f8),  # time-decayed sum of squared log returns over the horizon
    ("est_vol", f8),  # time-decayed traded volume over the horizon
    ("est_last_px", f8),
    ("est_last_ts", i8),
], align=True)

# positions per symbol, with what the account keeps per position
POSITION_DTYPE = np.dtype([
    ("qty", f8),  # signed position (base units or contracts)
    ("avg_px", f8),
    ("upnl", f8),
    ("n_open", i8),  # live orders (pending, open or waiting)
    # while n_open > 0 the slots of those orders lie in [o_first, o_last] (orders.py keeps a
    # superset, process_orders narrows it), so matching scans a few slots instead of o_hwm
    ("o_first", i8),
    ("o_last", i8),
    # ... and they can do something at an event of the symbol only from o_wake on (a due arrival,
    # cancel or amend; WAKE_NOW: any event) or at a trade at or below o_buy_max (the highest
    # resting buy limit) or at or above o_sell_min: the loop skips matching at the others
    ("o_wake", i8),
    ("o_buy_max", f8),
    ("o_sell_min", f8),
    ("br_idx", i8),  # the bracket the position was in last time (searched from here)
    ("coin_bal", f8),  # inverse perpetuals: the symbol's coin wallet (settlement currency)
    ("coin_upnl", f8),  # inverse perpetuals: unrealised PnL in coin
    ("iso_margin", f8),  # isolated margin allocated to the position (isolated mode)
    ("borrow_ts", i8),  # borrow interest of a spot short accrued up to here
    ("mc_flag", u1),  # above the margin-call level (fires once per crossing)
    ("loans_on", i8),  # active loans collateralised by the symbol
    ("g_lo", f8),  # the price guard's interval of the valuation price (guard.py)
    ("g_hi", f8),
], align=True)

# the L2 book per symbol (core/book.py, docs/fill-rules.md section 9): the latest snapshot
# (built in place, row by row: a level-0 row starts a new one), the depth takers consumed from it
# (refilling with the half-life) and the trades printed since it (R9.2)
BOOK_DTYPE = np.dtype([
    ("has_book", u1),  # a snapshot has started for the symbol
    ("dirty", u1),  # some depth was consumed since the snapshot
    ("ts", i8),  # time of the latest snapshot
    ("nb", i8),  # bid levels in it
    ("na", i8),  # ask levels in it
    ("take_ts", i8),  # the consumption was refilled up to here
    ("lo", f8),  # lowest trade since the snapshot (+inf: none): bids above are gone
    ("hi", f8),  # highest trade since the snapshot (-inf: none): asks below are gone
    ("bid_px", f8, (MAX_BOOK_LEVELS,)),
    ("bid_qty", f8, (MAX_BOOK_LEVELS,)),
    ("ask_px", f8, (MAX_BOOK_LEVELS,)),
    ("ask_qty", f8, (MAX_BOOK_LEVELS,)),
    ("bid_take", f8, (MAX_BOOK_LEVELS,)),  # depth consumed from each level, refilling (R9.3)
    ("ask_take", f8, (MAX_BOOK_LEVELS,)),
], align=True)

# one open-order slot; slots are kept in ascending oid order up to acct.o_hwm
ORDER_SLOT_DTYPE = np.dtype([
    ("oid", i8),
    ("sym", "i4"),
    ("status", i1),  # OrderStatus (FREE: an empty slot)
    ("type", i1),  # OrderType
    ("side", i1),
    ("tif", i1),
    ("reduce", u1),
    ("trigger_src", i1),
    ("triggered", u1),
    ("qty", f8),
    ("filled", f8),
    ("notional", f8),  # sum of fill qty * price, for the average fill price
    ("limit", f8),
    ("stop", f8),
    ("trail_dist", f8),
    ("trail_bps", f8),
    ("trail_ref", f8),
    ("ref_px", f8),  # reference price at decision time (slippage attribution)
    ("created_ts", i8),
    ("arrive_ts", i8),
    ("decision_idx", i8),
    ("cancel_ts", i8),  # when a requested cancel reaches the venue (-1: none)
    ("amend_ts", i8),  # when a requested amend reaches the venue (-1: none)
    ("new_qty", f8),
    ("new_limit", f8),
    ("new_stop", f8),
    ("oco", i8),
    ("parent", i8),
    ("queue", f8),  # displayed size ahead of a resting limit (NaN: not yet known)
], align=True)

# one crypto-backed loan slot (USD debt against spot collateral)
LOAN_SLOT_DTYPE = np.dtype([
    ("active", u1),
    ("warn", u1),
    ("sym", i8),
    ("coll", f8),
    ("cost", f8),  # cost basis of the collateral (from the spot position)
    ("debt", f8),
    ("ts", i8),  # interest accrued up to here
    ("interest", f8),  # accrued since the last loan row
], align=True)

# a loan event written by a strategy call, waiting for the loop to write its loan row
LOAN_EVENT_DTYPE = np.dtype([
    ("loan", i8),
    ("event", i1),  # LoanEvent
    ("amount", f8),
    ("price", f8),
    ("debt", f8),
    ("coll", f8),
    ("interest", f8),
], align=True)

# the liquidation kernel's work area, one row per position it closes at once (liquidation.py):
# compiled code never allocates
LIQ_WORK_DTYPE = np.dtype([
    ("sym", i8),
    ("x", f8),  # exit price
    ("realized", f8),
    ("clear", f8),  # clearance fee
], align=True)

# `c`: the parts of a run's state. Records (run, clock, acct, guard) are one row each; the rest
# are arrays of records (module level, so that numba's cache can name the type), and `rare` the
# kernels' variant (True or None, core/rare.py).
State = namedtuple("State", "run clock acct guard inst mkt pos book orders done loans loan_ring liq rare")

_ONE_ROW = ("run", "clock", "acct", "guard")


def new_state(nsym: int, orders: int = ORDER_SLOTS, loans: int = LOAN_SLOTS,
              loan_ring: int = LOAN_RING, rare: bool = True) -> State:
    """A zeroed state for nsym symbols and the given capacities (recarray views, for Python; the
    finished-order ring holds twice the order slots: submit refuses when it cannot hold every
    live order). `rare=False`: the kernels' variant without the rare paths (core/rare.py)."""
    def arr(n, dt):
        return np.zeros(n, dt).view(np.recarray)

    st = State(run=arr(1, RUN_DTYPE)[0], clock=arr(1, CLOCK_DTYPE)[0], acct=arr(1, ACCOUNT_DTYPE)[0],
               guard=arr(1, GUARD_DTYPE)[0], inst=arr(nsym, INSTRUMENT_DTYPE),
               mkt=arr(nsym, MARKET_DTYPE), pos=arr(nsym, POSITION_DTYPE), book=arr(nsym, BOOK_DTYPE),
               orders=arr(orders, ORDER_SLOT_DTYPE), done=arr(2 * orders, ORDER_DTYPE),
               loans=arr(loans, LOAN_SLOT_DTYPE), loan_ring=arr(loan_ring, LOAN_EVENT_DTYPE),
               liq=arr(nsym, LIQ_WORK_DTYPE), rare=True if rare else None)
    st.run.nsym = nsym
    st.orders.cancel_ts[:] = -1
    st.orders.amend_ts[:] = -1
    st.acct.vol_day = -1
    st.guard.sym = -1
    st.inst.slip_model[:] = int(SlippageModel.SPREAD)
    return st


def copy_state(st: State) -> State:
    """An independent copy (a batch starts each parameter set from one set-up template)."""
    return State(*(p.copy() if isinstance(p, np.ndarray) else _copy_row(p) for p in st[:-1]), st.rare)


def _copy_row(rec):
    return np.array([rec], dtype=rec.dtype).view(np.recarray)[0]



# a finished order's fields (ORDER_DTYPE) taken from its slot's, by name (engine.py's end of data)
SLOT_TO_DONE = {"oid": "oid", "sym": "sym", "order_type": "type", "side": "side", "tif": "tif",
                "status": "status", "reduce_only": "reduce", "trigger_source": "trigger_src",
                "created_ts_ns": "created_ts", "qty": "qty", "filled_qty": "filled", "limit_price": "limit",
                "stop_price": "stop", "oco_group": "oco", "parent_oid": "parent"}


def state_bytes(nsym: int, orders: int = ORDER_SLOTS, loans: int = LOAN_SLOTS, loan_ring: int = LOAN_RING) -> int:
    """Memory of one run's state (batch.py sizes its batches by it)."""
    return (RUN_DTYPE.itemsize + CLOCK_DTYPE.itemsize + ACCOUNT_DTYPE.itemsize + GUARD_DTYPE.itemsize
            + nsym * (INSTRUMENT_DTYPE.itemsize + MARKET_DTYPE.itemsize + POSITION_DTYPE.itemsize
                      + BOOK_DTYPE.itemsize)
            + orders * (ORDER_SLOT_DTYPE.itemsize + 2 * ORDER_DTYPE.itemsize)
            + nsym * LIQ_WORK_DTYPE.itemsize + loans * LOAN_SLOT_DTYPE.itemsize + loan_ring * LOAN_EVENT_DTYPE.itemsize)
