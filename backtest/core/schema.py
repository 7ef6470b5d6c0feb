"""Every record dtype of the engine, in one place, and the enums (defined in core/enums.py).

Nobody else defines a dtype: the data layer, the engine, the result and the tests import them here.
"""
from __future__ import annotations

import numpy as np

from .enums import (  # noqa: F401  (re-exported: schema is where the engine's types are imported from)
    ORDER_TRAITS, EventKind, InstrumentType, Liquidity, LoanEvent, LoanHealth, MarginMode, OrderStatus,
    OrderType, Reason, RunStatus, Side, SlippageModel, TimeInForce, TriggerKind, TriggerSource,
    is_market_like, is_stop_like, needs_limit, needs_stop, trigger_kind,
)

# Fixed capacities of the context record. They are compile-time constants so that every strategy
# has exactly one compiled signature (a changing record layout would mean a new compile).
MAX_SYMBOLS = 64
MAX_BRACKETS = 16
MAX_ORDERS = 4096  # open-order slots; a venue-like limit (submit rejects TOO_MANY_OPEN_ORDERS)
MAX_LOANS = 16
MAX_BOOK_LEVELS = 25  # L2 depth kept per symbol and side (Tardis book_snapshot_25)
LOAN_RING = 64  # loan rows strategy calls can write in one event
DONE_CAPACITY = 2 * MAX_ORDERS  # finished-order ring; submit refuses when it cannot hold every live order


# --------------------------------------------------------------------------------------------
# Event stream: the columns a chunk of merged market data arrives in (exact dtypes, C order).
# Per kind, the generic value columns mean:
#   TRADE   price = trade price, qty = quantity, side = aggressor (+1 buy, -1 sell)
#   QUOTE   bid, ask, bid_qty, ask_qty
#   MARK    price = mark price, qty = index price (NaN when the data has none)
#   FUNDING price = funding rate applied at ts_ns (fraction, e.g. -0.0003)
#   BAR     a candle at its close time: bid = open, ask = high, bid_qty = low, price = close,
#           qty = volume (docs/fill-rules.md section 8)
#   MARKET_LIQUIDATION  another trader's forced order: price, qty, side (+1 buy, -1 sell)
#   BOOK    one level of an L2 depth snapshot: side = level (0 = the touch), bid, bid_qty, ask,
#           ask_qty = that level's prices and sizes (NaN/0 where a side has fewer levels). The rows
#           of one snapshot share ts_ns and arrive in level order; level 0 starts a new snapshot
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ts_ns", "i8"),
    ("sym", "i4"),
    ("kind", "i1"),
    ("side", "i1"),
    ("price", "f8"),
    ("qty", "f8"),
    ("bid", "f8"),
    ("ask", "f8"),
    ("bid_qty", "f8"),
    ("ask_qty", "f8"),
)

# --------------------------------------------------------------------------------------------
# Output records, written by the kernel into preallocated buffers.
FILL_DTYPE = np.dtype(
    [
        ("ts_ns", "i8"),
        ("event_idx", "i8"),
        ("oid", "i8"),
        ("sym", "i4"),
        ("side", "i1"),
        ("liquidity", "i1"),
        ("order_type", "i1"),
        ("qty", "f8"),
        ("price", "f8"),
        ("fee", "f8"),  # in the settlement currency; negative = maker rebate
        ("realized_pnl", "f8"),  # realised by this fill, before fees
        ("slippage", "f8"),  # cost against bench_price, d * (price - bench) * qty (>0 = worse)
        ("position_after", "f8"),
        ("avg_price_after", "f8"),
        # R4.5 cost attribution: benchmark (arrival mid, trigger, limit or liquidation mark) and
        # slippage = cost_drift + cost_spread + cost_impact (up to rounding); fees are in `fee`
        ("bench_price", "f8"),
        ("cost_spread", "f8"),  # mid to the touch at the fill
        ("cost_impact", "f8"),  # touch to the fill price (impact, depth)
        ("cost_drift", "f8"),  # benchmark to the mid at the fill (latency, gaps)
    ],
    align=True,
)

ORDER_DTYPE = np.dtype(
    [
        ("oid", "i8"),
        ("sym", "i4"),
        ("order_type", "i1"),
        ("side", "i1"),
        ("tif", "i1"),
        ("status", "i1"),
        ("reason", "i2"),
        ("reduce_only", "u1"),
        ("trigger_source", "i1"),
        ("created_ts_ns", "i8"),
        ("done_ts_ns", "i8"),
        ("qty", "f8"),
        ("filled_qty", "f8"),
        ("avg_fill_price", "f8"),
        ("limit_price", "f8"),
        ("stop_price", "f8"),
        ("oco_group", "i8"),
        ("parent_oid", "i8"),
    ],
    align=True,
)

EQUITY_DTYPE = np.dtype(
    [
        ("ts_ns", "i8"),
        ("equity", "f8"),
        ("balance", "f8"),
        ("upnl", "f8"),
        ("gross_exposure", "f8"),  # sum of |position notional| at the valuation price
        ("margin_used", "f8"),  # initial margin of open positions
        ("maint_margin", "f8"),
        ("margin_ratio", "f8"),  # max(cross_margin_ratio, iso_margin_ratio): 1.0 = liquidation
        # the ratios margin_breached() tests: maintenance margin / margin balance of each pool
        ("cross_margin_ratio", "f8"),  # the cross pool (cross wallet + its unrealised PnL)
        ("iso_margin_ratio", "f8"),  # the isolated (or inverse) position closest to liquidation
        ("iso_margin_sym", "i4"),  # its symbol index (-1: none open)
    ],
    align=True,
)

FUNDING_DTYPE = np.dtype(
    [
        ("ts_ns", "i8"),
        ("sym", "i4"),
        ("rate", "f8"),
        ("position", "f8"),
        ("mark_price", "f8"),
        ("payment", "f8"),  # received (+) or paid (-) by the account, settlement currency
    ],
    align=True,
)

LIQUIDATION_DTYPE = np.dtype(
    [
        ("ts_ns", "i8"),
        ("sym", "i4"),
        ("side", "i1"),  # side of the closing trade (-1 closes a long)
        ("qty", "f8"),
        ("mark_price", "f8"),
        ("bankruptcy_price", "f8"),
        ("fill_price", "f8"),
        ("fee", "f8"),  # clearance fee (to the insurance fund)
        ("insurance_fund_change", "f8"),  # fee + forfeited margin - shortfall paid by the fund
        ("realized_pnl", "f8"),
    ],
    align=True,
)


BAR_DTYPE = np.dtype(
    [
        ("ts_ns", "i8"),  # end of the sampling interval
        ("sym", "i4"),
        ("open", "f8"),  # last-trade open/high/low over the interval (NaN when no trade in it)
        ("high", "f8"),
        ("low", "f8"),
        ("close", "f8"),  # the last trade so far (carried through intervals without trades)
        ("volume", "f8"),
        ("mark", "f8"),  # valuation price at the end of the interval
        ("position", "f8"),
        ("liq_price", "f8"),  # liquidation price of the position (NaN when flat or none)
    ],
    align=True,
)


LOAN_DTYPE = np.dtype(
    [
        ("ts_ns", "i8"),
        ("loan_id", "i8"),
        ("sym", "i4"),  # the collateral's symbol (its price values the collateral)
        ("event", "i1"),  # LoanEvent
        ("amount", "f8"),  # USD borrowed/repaid, collateral added, or debt repaid by a liquidation
        ("debt", "f8"),  # after the event
        ("collateral_qty", "f8"),  # after the event
        ("price", "f8"),
        ("ltv", "f8"),  # after the event
        ("interest", "f8"),  # interest accrued since the previous row of this loan
        ("penalty", "f8"),  # liquidation penalty (USD)
        ("seized_qty", "f8"),  # collateral taken by a liquidation
        ("bad_debt", "f8"),  # debt the seized collateral could not cover: the lenders' loss (USD)
        ("health", "i1"),  # LoanHealth after the event
    ],
    align=True,
)


# --------------------------------------------------------------------------------------------
# The context record: the whole mutable state of a run. Hooks receive it as `c`.
def _ctx_fields() -> list:
    S, B, O, D, L, R = MAX_SYMBOLS, MAX_BRACKETS, MAX_ORDERS, DONE_CAPACITY, MAX_LOANS, LOAN_RING
    K = MAX_BOOK_LEVELS
    f8, i8 = "f8", "i8"
    return [
        # clock and sequencing
        ("now_ts", i8),
        ("cur_idx", i8),  # global index of the event being processed (decision index of orders)
        ("idx_base", i8),  # global index of element 0 of the current chunk
        ("nsym", i8),
        ("n_inverse", i8),  # inverse symbols in the run (their coin wallets count in equity)
        # configuration (execution)
        ("latency_ns", i8),
        ("cancel_latency_ns", i8),
        ("touch_fills", "u1"),
        ("feed_latency_ns", i8),
        ("latency_jitter_ns", i8),
        ("rng_state", i8),  # the run's seeded generator (Park-Miller), for latency jitter
        ("partial_fills", "u1"),  # limit fills capped by the traded / displayed volume
        ("queue_model", "u1"),  # resting limits wait behind the displayed size at their price
        ("need_estimators", "u1"),  # some symbol uses an impact model
        ("trade_extras", "u1"),  # trades update the estimators or an L2 book (the loop's one test)
        ("impact_horizon_ns", f8),
        ("n_fee_tiers", i8),
        ("fee_tier", i8),
        ("ft_volume", f8, (8,)),
        ("ft_maker", f8, (8,)),
        ("ft_taker", f8, (8,)),
        ("initial_volume_30d", f8),
        ("vol_day", i8),
        ("vol_start_day", i8),
        ("vol_ring", f8, (31,)),
        ("sample_interval_ns", i8),
        ("next_sample_ts", i8),
        ("timer_interval_ns", i8),
        ("next_timer_ts", i8),
        ("liq_use_last", "u1"),  # margin.trigger = "last": value positions at the last trade
        ("liq_settle_market", "u1"),  # margin.settle = "market" (else at the bankruptcy price)
        ("liq_cancel_orders", "u1"),
        ("liq_partial", "u1"),  # margin.partial: reduce to a lower bracket before liquidating
        ("liq_fee_rate", f8),
        ("margin_call_level", f8),
        ("spot_margin", "u1"),  # spot symbols may be sold short by borrowing the coin
        ("borrow_rate_hourly", f8),
        ("spot_maint_level", f8),  # liquidate spot shorts when assets / liabilities falls below
        ("borrow_interest", f8),
        ("const_funding_rate", f8),  # margin.funding = a constant rate (instead of data events)
        ("funding_interval_ns", i8),
        ("next_funding_ts", i8),
        # account (settlement currency of the account: quote, e.g. USDT)
        ("initial_balance", f8),
        ("balance", f8),  # wallet: initial + realised - fees + funding - interest
        ("realized_pnl", f8),
        ("fees", f8),
        ("funding", f8),
        ("peak_equity", f8),
        ("max_drawdown", f8),  # deepest peak - equity seen at any event (currency; the guard's)
        ("max_drawdown_frac", f8),  # deepest (peak - equity) / peak seen at any event (R6.1)
        # the price guard (guard.py): on, symbol (-1: none), price interval, account when armed
        ("guard_on", "u1"),
        ("g_sym", i8),
        ("g_lo", f8),
        ("g_hi", f8),
        ("g_fills", i8),
        ("g_balance", f8),
        ("g_peak", f8),
        ("g_max_drawdown", f8),
        ("n_margin_checks", i8),  # revaluations that ran the full drawdown and margin checks
        ("insurance_fund", f8),
        ("insurance_payout", f8),  # shortfalls the insurance fund paid to this account
        ("iso_gap_cover", f8),  # loss beyond the isolated margin of exits past the bankruptcy price
        ("mc_pending", "u1"),  # a margin call to deliver to on_margin_call after this event
        ("mc_sym", i8),  # its symbol (-1: the cross-margin account)
        ("mc_ratio", f8),
        ("mc_cross_flag", "u1"),  # above the margin-call level (fires once per crossing)
        ("n_margin_calls", i8),
        ("n_fills", i8),
        ("n_rejects", i8),
        ("n_liquidations", i8),
        ("n_market_liquidations", i8),  # other traders' liquidations seen (kind liquidations)
        ("n_table_full", i8),  # refused orders that found no room in the done ring
        ("seq", i8),  # orders ever created (oid sequence)
        # market state per symbol
        ("last_px", f8, (S,)),
        ("bid", f8, (S,)),
        ("ask", f8, (S,)),
        ("bid_qty", f8, (S,)),
        ("ask_qty", f8, (S,)),
        ("mark_px", f8, (S,)),
        ("index_px", f8, (S,)),
        ("has_quote", "u1", (S,)),
        ("has_mark", "u1", (S,)),
        ("has_trade", "u1", (S,)),
        ("book_thru", "u1", (S,)),  # a trade printed through the quote since it was seen (R2.3)
        # instruments per symbol
        ("i_type", "i1", (S,)),
        ("i_contract_size", f8, (S,)),
        ("i_tick", f8, (S,)),
        ("i_lot", f8, (S,)),
        ("i_maker_fee", f8, (S,)),
        ("i_taker_fee", f8, (S,)),
        ("i_n_brackets", i8, (S,)),
        ("br_idx", i8, (S,)),  # the bracket the position was in last time (searched from here)
        ("slip_model", "i1", (S,)),  # execution model of taker fills (core/execution.py)
        ("slip_bps", f8, (S,)),
        ("impact_k", f8, (S,)),
        ("est_var", f8, (S,)),  # time-decayed sum of squared log returns over the horizon
        ("est_vol", f8, (S,)),  # time-decayed traded volume over the horizon
        ("est_last_px", f8, (S,)),
        ("est_last_ts", i8, (S,)),
        ("br_floor", f8, (S, B)),
        ("br_cap", f8, (S, B)),
        ("br_max_lev", f8, (S, B)),
        ("br_mmr", f8, (S, B)),
        ("br_maint_amount", f8, (S, B)),
        ("leverage", f8, (S,)),
        ("margin_mode", "i1", (S,)),
        ("coin_bal", f8, (S,)),  # inverse perpetuals: the symbol's coin wallet (settlement currency)
        ("coin_upnl", f8, (S,)),  # inverse perpetuals: unrealised PnL in coin
        ("iso_margin", f8, (S,)),
        ("borrow_ts", i8, (S,)),  # borrow interest of a spot short accrued up to here  # isolated margin allocated to the position (isolated mode)
        ("mc_flag", "u1", (S,)),
        # positions per symbol
        ("pos", f8, (S,)),
        ("avg_px", f8, (S,)),
        ("sym_upnl", f8, (S,)),
        ("n_open", i8, (S,)),  # live orders (pending, open or waiting) per symbol
        # crypto-backed loans (USD debt against spot collateral)
        ("loan_lltv", f8),
        ("loan_warning_ltv", f8),
        ("loan_max_open_ltv", f8),
        ("loan_apr", f8),
        ("loan_lif", f8),  # liquidation incentive factor: 1 + penalty
        ("loan_partial", "u1"),
        ("n_loans", i8),
        ("loans_on", i8, (S,)),  # active loans collateralised by each symbol
        ("ln_active", "u1", (L,)),
        ("ln_sym", i8, (L,)),
        ("ln_coll", f8, (L,)),
        ("ln_cost", f8, (L,)),  # cost basis of the collateral (from the spot position)
        ("ln_debt", f8, (L,)),
        ("ln_ts", i8, (L,)),  # interest accrued up to here
        ("ln_interest", f8, (L,)),  # accrued since the last loan row
        ("ln_warn", "u1", (L,)),
        ("interest", f8),  # total interest accrued
        ("loan_penalties", f8),
        ("loan_cash_in", f8),  # borrowed cash credited to the balance
        ("loan_cash_out", f8),  # cash repaid from the balance
        ("loan_seized_cost", f8),  # cost basis of collateral seized by liquidations
        ("n_loan_liquidations", i8),
        ("n_loan_ring", i8),
        ("lr_loan", i8, (R,)),
        ("lr_event", "i1", (R,)),
        ("lr_amount", f8, (R,)),
        ("lr_price", f8, (R,)),
        ("lr_debt", f8, (R,)),
        ("lr_coll", f8, (R,)),
        ("lr_interest", f8, (R,)),
        # order table (slots)
        ("o_status", "i1", (O,)),
        ("o_oid", i8, (O,)),
        ("o_sym", "i4", (O,)),
        ("o_type", "i1", (O,)),
        ("o_side", "i1", (O,)),
        ("o_tif", "i1", (O,)),
        ("o_reduce", "u1", (O,)),
        ("o_trigger_src", "i1", (O,)),
        ("o_triggered", "u1", (O,)),
        ("o_qty", f8, (O,)),
        ("o_filled", f8, (O,)),
        ("o_notional", f8, (O,)),  # sum of fill qty * price, for the average fill price
        ("o_limit", f8, (O,)),
        ("o_stop", f8, (O,)),
        ("o_trail_dist", f8, (O,)),
        ("o_trail_bps", f8, (O,)),
        ("o_trail_ref", f8, (O,)),
        ("o_ref_px", f8, (O,)),  # reference price at decision time (slippage attribution)
        ("o_created_ts", i8, (O,)),
        ("o_arrive_ts", i8, (O,)),
        ("o_decision_idx", i8, (O,)),
        ("o_cancel_ts", i8, (O,)),  # when a requested cancel reaches the venue (-1: none)
        ("o_amend_ts", i8, (O,)),  # when a requested amend reaches the venue (-1: none)
        ("o_new_qty", f8, (O,)),
        ("o_new_limit", f8, (O,)),
        ("o_new_stop", f8, (O,)),
        ("o_oco", i8, (O,)),
        ("o_parent", i8, (O,)),
        ("o_queue", f8, (O,)),  # displayed size ahead of a resting limit (NaN: not yet known)
        ("o_hwm", i8),  # slots [0, o_hwm) are in use, in ascending oid order
        # finished orders waiting to be drained into the orders table (same fields as ORDER_DTYPE)
        ("n_done", i8),
        ("dn_oid", "i8", (D,)),
        ("dn_sym", "i4", (D,)),
        ("dn_order_type", "i1", (D,)),
        ("dn_side", "i1", (D,)),
        ("dn_tif", "i1", (D,)),
        ("dn_status", "i1", (D,)),
        ("dn_reason", "i2", (D,)),
        ("dn_reduce_only", "u1", (D,)),
        ("dn_trigger_source", "i1", (D,)),
        ("dn_created_ts_ns", "i8", (D,)),
        ("dn_done_ts_ns", "i8", (D,)),
        ("dn_qty", "f8", (D,)),
        ("dn_filled_qty", "f8", (D,)),
        ("dn_avg_fill_price", "f8", (D,)),
        ("dn_limit_price", "f8", (D,)),
        ("dn_stop_price", "f8", (D,)),
        ("dn_oco_group", "i8", (D,)),
        ("dn_parent_oid", "i8", (D,)),
        # counters of rows in the output buffers (reset when the Python side drains them)
        ("n_fill_rows", i8),
        ("n_equity_rows", i8),
        ("n_bar_rows", i8),
        ("n_funding_rows", i8),
        ("n_liq_rows", i8),
        ("n_loan_rows", i8),
        # the L2 book per symbol (core/book.py, docs/fill-rules.md section 9): the latest snapshot
        # (built in place, row by row: a level-0 row starts a new one), the depth takers consumed
        # from it (refilling with the half-life) and the trades printed since it (R9.2)
        # (last in the record: the fields every event reads keep their places and cache lines)
        ("ev_ts", i8),  # time of the event whose orders or liquidations are being worked (R9.3)
        ("book_half_life_ns", f8),  # execution.book_resilience_half_life (0: instant refill)
        ("book_beyond_frac", f8),  # execution.book_beyond_bps / 10000: past the deepest level
        ("has_book", "u1", (S,)),  # a snapshot has started for the symbol
        ("bk_ts", i8, (S,)),  # time of the latest snapshot
        ("bk_nb", i8, (S,)),  # bid levels in it
        ("bk_na", i8, (S,)),  # ask levels in it
        ("bk_bid_px", f8, (S, K)),
        ("bk_bid_qty", f8, (S, K)),
        ("bk_ask_px", f8, (S, K)),
        ("bk_ask_qty", f8, (S, K)),
        ("bk_bid_take", f8, (S, K)),  # depth consumed from each level, refilling (R9.3)
        ("bk_ask_take", f8, (S, K)),
        ("bk_dirty", "u1", (S,)),  # some depth was consumed since the snapshot
        ("bk_take_ts", i8, (S,)),  # the consumption was refilled up to here
        ("bk_lo", f8, (S,)),  # lowest trade since the snapshot (+inf: none): bids above are gone
        ("bk_hi", f8, (S,)),  # highest trade since the snapshot (-inf: none): asks below are gone
    ]


CTX_DTYPE = np.dtype(_ctx_fields(), align=True)


ORDER_FIELDS = tuple(ORDER_DTYPE.names)  # ctx.dn_<name> holds finished orders


def new_context() -> np.recarray:
    """A zeroed one-element context recarray."""
    c = np.zeros(1, dtype=CTX_DTYPE).view(np.recarray)
    c.o_cancel_ts[0][:] = -1
    c.o_amend_ts[0][:] = -1
    c.vol_day[0] = -1
    c.g_sym[0] = -1
    c.slip_model[0][:] = int(SlippageModel.SPREAD)
    return c
