"""Hand-computed scenarios for the reference simulator tests/oracle.py (docs/fill-rules.md).

Fee rates are powers of two (maker 2**-12, taker 2**-10) and funding rates 2**-13, so most expected
numbers are exact binary fractions and are compared with ==.
"""
from __future__ import annotations

import math
import os
import random
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from oracle import (  # noqa: E402
    FOK, GTC, IOC, LAST_SRC, MARK_SRC, POST_ONLY, Liquidity, OrderStatus, OrderType, Reason,
    simulate)

MK = 2.0**-12  # maker fee rate
TK = 2.0**-10  # taker fee rate
FR = 2.0**-13  # a funding rate

BUY, SELL = 1, -1
MKT, LMT = int(OrderType.MARKET), int(OrderType.LIMIT)
STP, STPL = int(OrderType.STOP_MARKET), int(OrderType.STOP_LIMIT)
TPM, TPL = int(OrderType.TAKE_PROFIT_MARKET), int(OrderType.TAKE_PROFIT_LIMIT)
TRL = int(OrderType.TRAILING_STOP)
MAKER, TAKER = int(Liquidity.MAKER), int(Liquidity.TAKER)
S = OrderStatus
R = Reason

PERP = dict(type=1, tick_size=0.1, lot_size=0.001, maker_fee_rate=MK, taker_fee_rate=TK,
            leverage=10.0)
SPOT = dict(type=0, tick_size=0.01, lot_size=0.001, maker_fee_rate=MK, taker_fee_rate=TK,
            leverage=1.0)


# ------------------------------------------------------------------------------ builders
def T(ts, price, qty=1.0, side=1, sym=0):
    return dict(ts_ns=ts, sym=sym, kind=0, side=side, price=price, qty=qty)


def Q(ts, bid, ask, sym=0, bq=1.0, aq=1.0):
    return dict(ts_ns=ts, sym=sym, kind=1, bid=bid, ask=ask, bid_qty=bq, ask_qty=aq)


def M(ts, mark, index=float("nan"), sym=0):
    return dict(ts_ns=ts, sym=sym, kind=2, price=mark, qty=index)


def F(ts, rate, sym=0):
    return dict(ts_ns=ts, sym=sym, kind=3, price=rate)


def events(*rows):
    cols = dict(ts_ns=("i8", 0), sym=("i4", 0), kind=("i1", 0), side=("i1", 0),
                price=("f8", np.nan), qty=("f8", np.nan), bid=("f8", np.nan),
                ask=("f8", np.nan), bid_qty=("f8", np.nan), ask_qty=("f8", np.nan))
    return {k: np.array([r.get(k, dflt) for r in rows], dtype=dt)
            for k, (dt, dflt) in cols.items()}


def sub(g, otype, side, qty, limit=0.0, stop=0.0, tif=GTC, ro=False, trig=LAST_SRC, trail=0.0,
        bps=0.0, oco=0, sym=0):
    return (g, "submit", sym, otype, side, qty, limit, stop, tif, ro, trig, trail, bps, oco)


def run(rows, script, inst=(PERP,), balance=10000.0, latency=0, cancel_latency=0, touch=False,
        **execution):
    cfg = dict(initial_balance=balance, latency_ns=latency, cancel_latency_ns=cancel_latency,
               touch_fills=touch, **execution)
    return simulate(events(*rows), [dict(i) for i in inst], cfg, list(script))


def check(d, **kw):
    for k, v in kw.items():
        assert d[k] == v, (k, d[k], v)


def order(res, oid):
    (o,) = [o for o in res["orders"] if o["oid"] == oid]
    return o


# ------------------------------------------------------------------------------ R3.3 / R3.4
def test_market_buy_fills_at_ask_next_event():
    res = run([Q(0, 99.0, 101.0), T(1, 100.0)], [sub(0, MKT, BUY, 1.0)])
    assert res["results"] == [1]
    (f,) = res["fills"]
    check(f, event_idx=1, ts_ns=1, oid=1, sym=0, side=1, liquidity=TAKER, qty=1.0, price=101.0,
          fee=101 * TK, realized_pnl=0.0, position_after=1.0, avg_price_after=101.0)
    check(order(res, 1), status=S.FILLED, reason=R.NONE, filled_qty=1.0, avg_fill_price=101.0,
          done_ts_ns=1)
    assert res["balance"] == 10000.0 - 101 * TK
    assert res["positions"] == [1.0] and res["avg_prices"] == [101.0]
    # equity after the fill: balance + 1 * (last 100 - 101)
    assert res["equity_after_fills"] == [10000.0 - 101 * TK - 1.0]


def test_trades_through_the_quote_move_the_effective_book():
    # R2.3: a trade above the ask 100 makes the effective ask 100.5 until the next quote
    res = run([Q(0, 99.0, 100.0), T(1, 100.5)], [sub(0, LMT, BUY, 1.0, limit=101.0)])
    check(res["fills"][0], event_idx=1, price=100.5, liquidity=TAKER, bench_price=101.0,
          slippage=-0.5)
    # the gap of issue #16: long 1, sell-stop 61,000, a trade at 59,000 with no new quote
    rows = [Q(0, 61999.9, 62000.1), T(1, 62000.0), T(2, 62000.0), T(3, 59000.0)]
    res = run(rows, [sub(0, MKT, BUY, 1.0), sub(1, STP, SELL, 1.0, stop=61000.0)],
              balance=1e6)
    check(res["fills"][0], price=62000.1, bench_price=62000.0)
    check(res["fills"][1], event_idx=3, price=59000.0, bench_price=61000.0, slippage=2000.0)
    # a new quote resets it
    res = run([Q(0, 99.0, 100.0), T(1, 100.5), Q(2, 99.0, 100.0)], [sub(1, MKT, BUY, 1.0)])
    check(res["fills"][0], event_idx=2, price=100.0, bench_price=100.5, slippage=-0.5)


def test_market_sell_fills_at_bid():
    res = run([Q(0, 99.0, 101.0), Q(1, 99.0, 101.0)], [sub(0, MKT, SELL, 2.0)])
    (f,) = res["fills"]
    check(f, event_idx=1, price=99.0, qty=2.0, side=-1, fee=198 * TK, position_after=-2.0,
          avg_price_after=99.0)


def test_market_fills_at_last_without_quotes_at_any_event_kind():
    # no quote ever: opp = last; the order is OPEN at the MARK event and fills there (R3.4)
    res = run([T(0, 100.0), M(1, 105.0)], [sub(0, MKT, BUY, 1.0)])
    (f,) = res["fills"]
    check(f, event_idx=1, price=100.0, liquidity=TAKER)
    res = run([T(0, 100.0), T(1, 102.0)], [sub(0, MKT, BUY, 1.0)])
    check(res["fills"][0], event_idx=1, price=102.0)  # last is updated before orders (R2.3)


def test_nothing_fills_without_quote_or_trade():
    rows = [T(0, 50.0, sym=1), F(1, FR), M(2, 100.0), T(3, 103.0)]
    res = run(rows, [sub(0, MKT, BUY, 1.0)], inst=(PERP, PERP))
    (f,) = res["fills"]
    check(f, event_idx=3, price=103.0)


def test_orders_only_at_events_of_their_symbol():
    rows = [T(0, 100.0), T(1, 50.0, sym=1), T(2, 101.0)]
    res = run(rows, [sub(0, MKT, BUY, 1.0)], inst=(PERP, PERP))
    check(res["fills"][0], event_idx=2, price=101.0)


# ------------------------------------------------------------------------------ R3.1 latency
def test_decided_at_g_never_fills_at_g_even_with_same_timestamp():
    res = run([T(0, 100.0), T(0, 101.0)], [sub(0, MKT, BUY, 1.0)])
    check(res["fills"][0], event_idx=1, ts_ns=0, price=101.0)


def test_latency_delays_until_ts_ge_arrive():
    rows = [T(0, 100.0), T(5, 101.0), T(9, 101.5), T(10, 102.0), T(11, 103.0)]
    res = run(rows, [sub(0, MKT, BUY, 1.0)], latency=10)
    (f,) = res["fills"]
    check(f, event_idx=3, ts_ns=10, price=102.0)


def test_arrival_not_at_funding_event():
    # IOC limit that cannot fill: it expires when it arrives, which is not at the FUNDING event.
    rows = [T(0, 100.0), F(5, FR), Q(6, 99.0, 100.0)]
    res = run(rows, [sub(0, LMT, BUY, 1.0, limit=90.0, tif=IOC)])
    check(order(res, 1), status=S.EXPIRED, reason=R.IOC_UNFILLED, done_ts_ns=6)


# ------------------------------------------------------------------------------ R3.5 / R3.6
def test_resting_limit_maker_fill_strict():
    rows = [T(0, 100.0), T(1, 99.5), Q(2, 98.0, 98.5), T(3, 99.0), T(4, 98.9)]
    res = run(rows, [sub(0, LMT, BUY, 1.0, limit=99.0)])
    (f,) = res["fills"]  # not at the quote (g2), not at a touch (g3)
    check(f, event_idx=4, price=99.0, liquidity=MAKER, fee=99 * MK, position_after=1.0)
    check(order(res, 1), status=S.FILLED, avg_fill_price=99.0, done_ts_ns=4)


def test_resting_limit_maker_fill_touch():
    rows = [T(0, 100.0), T(1, 99.5), Q(2, 98.0, 98.5), T(3, 99.0), T(4, 98.9)]
    res = run(rows, [sub(0, LMT, BUY, 1.0, limit=99.0)], touch=True)
    (f,) = res["fills"]
    check(f, event_idx=3, price=99.0, liquidity=MAKER)


def test_resting_sell_limit():
    rows = [T(0, 100.0), T(1, 100.5), T(2, 101.0), T(3, 101.5)]
    res = run(rows, [sub(0, LMT, SELL, 1.0, limit=101.0)])
    check(res["fills"][0], event_idx=3, price=101.0, liquidity=MAKER, position_after=-1.0)


def test_marketable_limit_fills_at_opp_as_taker():
    res = run([Q(0, 99.0, 100.0), T(1, 99.5)], [sub(0, LMT, BUY, 1.0, limit=101.0)])
    check(res["fills"][0], event_idx=1, price=100.0, liquidity=TAKER, fee=100 * TK)
    res = run([Q(0, 99.0, 100.0), Q(1, 99.0, 100.0)], [sub(0, LMT, SELL, 1.0, limit=98.0)])
    check(res["fills"][0], event_idx=1, price=99.0, liquidity=TAKER)


def test_limit_rests_at_arrival_then_trades_through_same_event():
    # CHOICE A4: R3.5 (not marketable against ask 101) then R3.6 at the same TRADE event.
    res = run([Q(0, 99.0, 101.0), T(1, 99.5)], [sub(0, LMT, BUY, 1.0, limit=100.0)])
    check(res["fills"][0], event_idx=1, price=100.0, liquidity=MAKER)


def test_ioc_fok_expire_gtc_rests():
    script = [sub(0, LMT, BUY, 1.0, limit=100.0, tif=IOC),
              sub(0, LMT, BUY, 1.0, limit=100.0, tif=FOK),
              sub(0, LMT, BUY, 1.0, limit=100.0, tif=GTC),
              sub(0, LMT, BUY, 1.0, limit=101.0, tif=IOC)]
    res = run([Q(0, 99.0, 101.0), Q(1, 99.0, 101.0)], script)
    assert res["results"] == [1, 2, 3, 4]
    check(order(res, 1), status=S.EXPIRED, reason=R.IOC_UNFILLED, done_ts_ns=1, filled_qty=0.0)
    check(order(res, 2), status=S.EXPIRED, reason=R.FOK_UNFILLED, done_ts_ns=1)
    check(order(res, 3), status=S.OPEN, reason=R.END_OF_DATA, done_ts_ns=-1)
    check(order(res, 4), status=S.FILLED, filled_qty=1.0, avg_fill_price=101.0)
    assert len(res["fills"]) == 1


def test_post_only():
    script = [sub(0, LMT, BUY, 1.0, limit=100.0, tif=POST_ONLY),
              sub(0, LMT, BUY, 1.0, limit=99.5, tif=POST_ONLY)]
    rows = [Q(0, 99.0, 100.0), Q(1, 99.0, 100.0), T(2, 99.4)]
    res = run(rows, script)
    assert res["results"] == [1, 2]  # post-only is checked at arrival, not at submit
    check(order(res, 1), status=S.REJECTED, reason=R.POST_ONLY_WOULD_CROSS, done_ts_ns=1)
    check(res["fills"][0], oid=2, event_idx=2, price=99.5, liquidity=MAKER)
    # without a quote, against last
    res = run([T(0, 100.0), T(1, 100.0)], [sub(0, LMT, SELL, 1.0, limit=100.0, tif=POST_ONLY)])
    check(order(res, 1), status=S.REJECTED, reason=R.POST_ONLY_WOULD_CROSS)


# ------------------------------------------------------------------------------ R3.7 triggers
def test_stop_market_on_last():
    rows = [T(0, 100.0), T(1, 100.0), T(2, 96.0), T(3, 95.0)]
    res = run(rows, [sub(0, MKT, BUY, 1.0), sub(0, STP, SELL, 1.0, stop=95.0)])
    f0, f1 = res["fills"]
    check(f0, event_idx=1, price=100.0)
    check(f1, event_idx=3, oid=2, price=95.0, liquidity=TAKER, realized_pnl=-5.0,
          position_after=0.0, avg_price_after=0.0, fee=95 * TK)
    assert res["balance"] == 10000.0 - 5.0 - 195 * TK


def test_buy_stop_triggers_at_or_above():
    res = run([T(0, 100.0), T(1, 104.0), T(2, 105.5)], [sub(0, STP, BUY, 1.0, stop=105.0)])
    check(res["fills"][0], event_idx=2, price=105.5, position_after=1.0)


def test_take_profit_on_last():
    rows = [T(0, 100.0), T(1, 100.0), T(2, 104.9), T(3, 105.0)]
    res = run(rows, [sub(0, MKT, BUY, 1.0), sub(0, TPM, SELL, 1.0, stop=105.0)])
    check(res["fills"][1], event_idx=3, price=105.0, realized_pnl=5.0)
    # buy take-profit triggers at or below
    res = run([T(0, 100.0), T(1, 95.5), T(2, 95.0)], [sub(0, TPM, BUY, 1.0, stop=95.0)])
    check(res["fills"][0], event_idx=2, price=95.0)


def test_stop_on_mark_fills_at_opp_at_the_mark_event():
    rows = [Q(0, 99.0, 100.0), T(1, 100.0), T(2, 94.0), M(3, 96.0), Q(4, 93.5, 94.0),
            M(5, 95.0)]
    res = run(rows, [sub(0, MKT, BUY, 1.0), sub(0, STP, SELL, 1.0, stop=95.0, trig=MARK_SRC)])
    f0, f1 = res["fills"]
    check(f0, event_idx=1, price=100.0)
    check(f1, event_idx=5, price=93.5, liquidity=TAKER, realized_pnl=-6.5)


def test_stop_limit_marketable_after_trigger():
    rows = [T(0, 100.0), T(1, 100.0), T(2, 95.0)]
    res = run(rows, [sub(0, MKT, BUY, 1.0), sub(0, STPL, SELL, 1.0, limit=94.5, stop=95.0)])
    check(res["fills"][1], event_idx=2, price=95.0, liquidity=TAKER)


def test_stop_limit_rests_after_trigger_then_r36_same_event():
    rows = [T(0, 100.0), T(1, 100.0), Q(2, 94.0, 94.2), T(3, 95.0)]
    res = run(rows, [sub(0, MKT, BUY, 1.0), sub(0, STPL, SELL, 1.0, limit=94.5, stop=95.0)])
    check(res["fills"][1], event_idx=3, price=94.5, liquidity=MAKER, fee=94.5 * MK)


def test_stop_limit_ioc_expires_after_trigger():
    rows = [T(0, 100.0), Q(1, 94.0, 94.2), T(2, 95.0)]
    res = run(rows, [sub(0, STPL, SELL, 1.0, limit=94.5, stop=95.0, tif=IOC)])
    check(order(res, 1), status=S.EXPIRED, reason=R.IOC_UNFILLED, done_ts_ns=2)


def test_take_profit_limit_on_mark():
    rows = [T(0, 100.0), M(1, 104.0), M(2, 105.0), T(3, 106.0)]
    res = run(rows, [sub(0, TPL, SELL, 1.0, limit=105.5, stop=105.0, trig=MARK_SRC)])
    # triggers at g2 (mark 105 >= 105); opp = last 100 < 105.5 rests; g3 trade 106 > 105.5
    check(res["fills"][0], event_idx=3, price=105.5, liquidity=MAKER)


# ------------------------------------------------------------------------------ R3.8 trailing
def test_trailing_stop_distance():
    rows = [T(0, 100.0), T(1, 100.0), T(2, 103.0), T(3, 102.0), T(4, 101.0)]
    res = run(rows, [sub(0, MKT, BUY, 1.0), sub(0, TRL, SELL, 1.0, trail=2.0)])
    check(res["fills"][1], event_idx=4, oid=2, price=101.0, realized_pnl=1.0)


def test_trailing_stop_bps():
    # ref 100 -> 104, dist = 104 * 100 / 10000 = 1.04, stop = 102.96
    rows = [T(0, 100.0), T(1, 100.0), T(2, 104.0), T(3, 103.0), T(4, 102.9)]
    res = run(rows, [sub(0, MKT, BUY, 1.0), sub(0, TRL, SELL, 1.0, bps=100.0)])
    check(res["fills"][1], event_idx=4, price=102.9)
    assert res["fills"][1]["realized_pnl"] == pytest.approx(2.9, rel=1e-12)


def test_trailing_buy_stop():
    # short at 100; ref 100 -> 97, stop 99; 98 no, 99 triggers
    rows = [T(0, 100.0), T(1, 100.0), T(2, 97.0), T(3, 98.0), T(4, 99.0)]
    res = run(rows, [sub(0, MKT, SELL, 1.0), sub(0, TRL, BUY, 1.0, trail=2.0)])
    check(res["fills"][1], event_idx=4, price=99.0, realized_pnl=1.0, position_after=0.0)


# ------------------------------------------------------------------------------ R3.9 reduce-only
def test_reduce_only_reject_clip_expire():
    rows = [T(0, 100.0), T(1, 100.0), T(2, 101.0)]
    script = [sub(0, MKT, SELL, 1.0, ro=True),  # flat: would increase
              sub(0, MKT, BUY, 1.0),
              sub(1, MKT, SELL, 2.0, ro=True),  # clipped to 1
              sub(1, MKT, SELL, 1.0, ro=True)]  # nothing left
    res = run(rows, script)
    assert res["results"] == [-R.REDUCE_ONLY_WOULD_INCREASE, 2, 3, 4]
    check(order(res, 1), status=S.REJECTED, reason=R.REDUCE_ONLY_WOULD_INCREASE, done_ts_ns=0)
    f = res["fills"][1]
    check(f, oid=3, event_idx=2, qty=1.0, price=101.0, realized_pnl=1.0, position_after=0.0)
    check(order(res, 3), status=S.FILLED, filled_qty=1.0)
    check(order(res, 4), status=S.EXPIRED, reason=R.NOTHING_TO_REDUCE, done_ts_ns=2)


def test_close_action():
    rows = [T(0, 100.0), T(1, 100.0), T(2, 102.0)]
    script = [(0, "close", 0), sub(0, MKT, SELL, 3.0), (1, "close", 0)]
    res = run(rows, script)
    assert res["results"] == [0, 1, 2]
    check(res["fills"][1], oid=2, side=1, qty=3.0, price=102.0, realized_pnl=-6.0,
          position_after=0.0)
    assert [o["order_type"] for o in res["orders"]] == [MKT, MKT]


# ------------------------------------------------------------------------------ R3.10 OCO
def test_oco_sibling_cancelled():
    rows = [T(0, 100.0), T(1, 100.0), T(2, 98.5)]
    script = [sub(0, LMT, BUY, 1.0, limit=99.0, oco=7), sub(0, LMT, SELL, 1.0, limit=101.0, oco=7)]
    res = run(rows, script)
    (f,) = res["fills"]
    check(f, oid=1, event_idx=2, price=99.0, liquidity=MAKER)
    check(order(res, 2), status=S.CANCELED, reason=R.OCO_SIBLING_FILLED, done_ts_ns=2)


# ------------------------------------------------------------------------------ R3.11 brackets
def test_bracket_children_activate_on_fill_from_next_event():
    rows = [T(0, 100.0), T(1, 106.0), T(2, 106.0)]
    res = run(rows, [(0, "bracket", 0, BUY, 2.0, 0.0, 95.0, 105.0)])
    assert res["results"] == [1]
    assert [(o["oid"], o["order_type"], o["side"]) for o in res["orders"]] == [
        (1, MKT, 1), (2, STP, -1), (3, TPM, -1)]
    f0, f1 = res["fills"]
    check(f0, oid=1, event_idx=1, price=106.0, qty=2.0)
    check(f1, oid=3, event_idx=2, price=106.0, qty=2.0, side=-1, position_after=0.0)
    check(order(res, 2), status=S.CANCELED, reason=R.OCO_SIBLING_FILLED, done_ts_ns=2)


def test_bracket_stop_child():
    rows = [T(0, 100.0), T(1, 100.0), T(2, 96.0), T(3, 94.0)]
    res = run(rows, [(0, "bracket", 0, BUY, 1.0, 0.0, 95.0, 105.0)])
    check(res["fills"][1], oid=2, event_idx=3, price=94.0, realized_pnl=-6.0)
    check(order(res, 3), status=S.CANCELED, reason=R.OCO_SIBLING_FILLED, done_ts_ns=3)


def test_bracket_waiting_and_parent_cancel():
    rows = [T(0, 100.0), T(1, 100.0), T(2, 100.0)]
    res = run(rows, [(0, "bracket", 0, BUY, 1.0, 90.0, 85.0, 95.0)])
    check(order(res, 1), order_type=LMT, status=S.OPEN, reason=R.END_OF_DATA, done_ts_ns=-1)
    check(order(res, 2), status=S.WAITING_PARENT, reason=R.END_OF_DATA, done_ts_ns=-1)
    res = run(rows, [(0, "bracket", 0, BUY, 1.0, 90.0, 85.0, 95.0), (1, "cancel", 0)])
    assert res["results"] == [1, 0]
    check(order(res, 1), status=S.CANCELED, reason=R.USER_CANCEL, done_ts_ns=2)
    for oid in (2, 3):
        check(order(res, oid), status=S.CANCELED, reason=R.PARENT_CANCELED, done_ts_ns=2)


def test_bracket_rejected_entry_creates_no_children():
    res = run([T(0, 100.0), T(1, 100.0)],
              [(0, "bracket", 0, BUY, 0.0, 0.0, 95.0, 105.0), sub(0, MKT, BUY, 1.0)])
    assert res["results"] == [-R.INVALID_QTY, 2]
    assert [o["oid"] for o in res["orders"]] == [1, 2]


# ------------------------------------------------------------------------------ R3.12 cancel
def test_cancel_race_fill_before_cancel_arrives():
    rows = [T(0, 100.0), T(10, 100.0), T(50, 98.0), T(60, 98.0)]
    script = [sub(0, LMT, BUY, 1.0, limit=99.0), (1, "cancel", 0), (2, "cancel", 0)]
    res = run(rows, script, cancel_latency=100)
    assert res["results"] == [1, 0, -R.UNKNOWN_ORDER]
    check(order(res, 1), status=S.FILLED, done_ts_ns=50)
    check(res["fills"][0], event_idx=2, price=99.0)


def test_cancel_arriving_at_event_is_applied_before_fill_check():
    rows = [T(0, 100.0), T(10, 100.0), T(109, 100.0), T(110, 98.0)]
    res = run(rows, [sub(0, LMT, BUY, 1.0, limit=99.0), (1, "cancel", 0)], cancel_latency=100)
    assert res["fills"] == []
    check(order(res, 1), status=S.CANCELED, reason=R.USER_CANCEL, done_ts_ns=110)


def test_cancel_unknown():
    res = run([T(0, 100.0), T(1, 100.0)], [sub(0, MKT, BUY, 0.0), (0, "cancel", 0),
                                           (0, "cancel", 99)])
    assert res["results"] == [-R.INVALID_QTY, -R.UNKNOWN_ORDER, -R.UNKNOWN_ORDER]


# ------------------------------------------------------------------------------ R3.13 amend
def test_amend_pending_is_immediate():
    rows = [T(0, 100.0), T(10, 100.0), T(100, 96.0), T(101, 94.5)]
    script = [sub(0, LMT, BUY, 1.0, limit=90.0), (1, "amend", 0, 2.0, 95.0, 0.0)]
    res = run(rows, script, latency=100, cancel_latency=1000)
    assert res["results"] == [1, 0]
    (f,) = res["fills"]
    check(f, event_idx=3, price=95.0, qty=2.0, liquidity=MAKER)


def test_amend_open_after_cancel_latency():
    rows = [T(0, 100.0), T(1, 100.0), T(20, 98.5), T(51, 98.5)]
    script = [sub(0, LMT, BUY, 1.0, limit=95.0), (1, "amend", 0, 0.0, 99.0, 0.0)]
    res = run(rows, script, cancel_latency=50)
    (f,) = res["fills"]
    check(f, event_idx=3, price=99.0, qty=1.0, liquidity=MAKER)


def test_amend_too_late_old_order_fills():
    rows = [T(0, 100.0), T(1, 100.0), T(20, 94.0), T(51, 98.5)]
    script = [sub(0, LMT, BUY, 1.0, limit=95.0), (1, "amend", 0, 0.0, 99.0, 0.0),
              (2, "amend", 0, 0.0, 99.0, 0.0)]
    res = run(rows, script, cancel_latency=50)
    assert res["results"] == [1, 0, -R.UNKNOWN_ORDER]
    (f,) = res["fills"]
    check(f, event_idx=2, price=95.0)


# ------------------------------------------------------------------------------ R3.14 validation
def test_validation_rejects_and_oids():
    nan = float("nan")
    script = [sub(0, MKT, BUY, 0.0),
              sub(0, MKT, BUY, nan),
              sub(0, MKT, BUY, -1.0),
              sub(0, MKT, BUY, 0.0005),
              sub(0, MKT, BUY, 0.0015),
              sub(0, LMT, BUY, 1.0, limit=0.0),
              sub(0, LMT, BUY, 1.0, limit=100.05),
              sub(0, STP, SELL, 1.0, stop=-5.0),
              sub(0, STPL, SELL, 1.0, stop=95.0, limit=0.0),
              sub(0, STP, SELL, 1.0, stop=95.01),
              sub(0, TRL, SELL, 1.0),
              sub(0, MKT, BUY, 1.0, sym=3),
              sub(0, MKT, BUY, 0.3),  # 0.3 / 0.001 is not an exact integer: within tolerance
              sub(0, LMT, BUY, 1.0, limit=99.3)]
    res = run([T(0, 100.0), T(1, 100.0)], script)
    assert res["results"] == [
        -R.INVALID_QTY, -R.INVALID_QTY, -R.INVALID_QTY, -R.BELOW_LOT_SIZE, -R.OFF_LOT_SIZE,
        -R.INVALID_PRICE, -R.OFF_TICK_SIZE, -R.INVALID_PRICE, -R.INVALID_PRICE,
        -R.OFF_TICK_SIZE, -R.INVALID_PRICE, -R.UNKNOWN_SYMBOL, 13, 14]
    assert [o["oid"] for o in res["orders"]] == list(range(1, 15))
    for o in res["orders"][:12]:
        assert o["status"] == S.REJECTED and o["done_ts_ns"] == 0 and o["filled_qty"] == 0.0
        assert o["reason"] == -res["results"][o["oid"] - 1]
    check(res["fills"][0], oid=13, qty=0.3)


def test_margin_reject_at_submit():
    # perp, leverage 10, balance 1000, opp = last 100
    # 99.9: 99.9*100/10 + 99.9*100*TK = 999 + 9.755... > 1000
    # 98:   980 + 9.5703125 = 989.5703125 <= 1000
    # buy limit 110 (higher than opp): 91 -> 1001 + ... rejected; 90 -> 990 + 9.66796875 ok
    script = [sub(0, MKT, BUY, 99.9), sub(0, MKT, BUY, 98.0),
              sub(0, LMT, BUY, 91.0, limit=110.0), sub(0, LMT, BUY, 90.0, limit=110.0),
              sub(0, LMT, SELL, 99.0, limit=110.0)]  # sell: px = opp 100 -> 990 + 9.66.. ok
    res = run([T(0, 100.0)], script, balance=1000.0)
    assert res["results"] == [-R.INSUFFICIENT_MARGIN, 2, -R.INSUFFICIENT_MARGIN, 4, 5]
    check(order(res, 1), status=S.REJECTED, reason=R.INSUFFICIENT_MARGIN)


def test_margin_reject_at_fill():
    # accepted at 100 (989.57), fills at 103: 98*103/10 + 98*103*TK = 1009.4 + ... > 1000
    rows = [T(0, 100.0), T(1, 103.0), T(2, 100.0)]
    res = run(rows, [(0, "bracket", 0, BUY, 98.0, 0.0, 90.0, 110.0)], balance=1000.0)
    assert res["fills"] == []
    check(order(res, 1), status=S.REJECTED, reason=R.INSUFFICIENT_MARGIN, done_ts_ns=1)
    check(order(res, 2), status=S.CANCELED, reason=R.PARENT_CANCELED, done_ts_ns=1)
    check(order(res, 3), status=S.CANCELED, reason=R.PARENT_CANCELED, done_ts_ns=1)
    assert res["balance"] == 1000.0


def test_reducing_order_skips_margin_check():
    # long 9 at 100 with balance 100: free = 100 - 90 = 10 - fee; a reducing sell needs nothing
    rows = [T(0, 100.0), T(1, 100.0), T(2, 100.0)]
    res = run(rows, [sub(0, MKT, BUY, 9.0), sub(1, MKT, SELL, 9.0), sub(1, MKT, BUY, 1.0)],
              balance=100.0)
    assert res["results"] == [1, 2, -R.INSUFFICIENT_MARGIN]
    check(res["fills"][1], oid=2, position_after=0.0)


# ------------------------------------------------------------------------------ R4.3 spot
def test_spot_no_short_and_cash():
    rows = [T(0, 100.0), T(1, 100.0), T(2, 110.0)]
    script = [sub(0, MKT, SELL, 1.0),  # nothing held
              sub(0, MKT, BUY, 10.0),  # 1000 + 1000*TK > 1000
              sub(0, MKT, BUY, 5.0),  # 500 + 0.48828125 ok
              sub(1, MKT, SELL, 6.0),  # above held 5
              sub(1, MKT, BUY, 5.0),  # cash = 1000 - 500*TK - 5*100 = 499.51.. < 500.48..
              sub(1, MKT, SELL, 5.0),
              sub(1, MKT, SELL, 5.0)]  # accepted at submit, rejected at fill
    res = run(rows, script, inst=(SPOT,), balance=1000.0)
    assert res["results"] == [-R.INSUFFICIENT_BALANCE, -R.INSUFFICIENT_MARGIN, 3,
                              -R.INSUFFICIENT_BALANCE, -R.INSUFFICIENT_MARGIN, 6, 7]
    f0, f1 = res["fills"]
    check(f0, oid=3, qty=5.0, price=100.0, fee=500 * TK, position_after=5.0)
    check(f1, oid=6, qty=5.0, price=110.0, fee=550 * TK, realized_pnl=50.0, position_after=0.0,
          avg_price_after=0.0)
    check(order(res, 7), status=S.REJECTED, reason=R.INSUFFICIENT_BALANCE, done_ts_ns=2)
    assert res["balance"] == 1000.0 - 500 * TK + (50.0 - 550 * TK)
    assert res["positions"] == [0.0]


# ------------------------------------------------------------------------------ R4.1 / R4.2
def test_flip_through_zero():
    rows = [T(0, 100.0), T(1, 100.0), T(2, 110.0), T(3, 105.0)]
    script = [sub(0, MKT, BUY, 1.0), sub(1, MKT, SELL, 3.0), sub(2, MKT, BUY, 2.0)]
    res = run(rows, script)
    f0, f1, f2 = res["fills"]
    check(f0, realized_pnl=0.0, position_after=1.0, avg_price_after=100.0, fee=100 * TK)
    check(f1, realized_pnl=10.0, position_after=-2.0, avg_price_after=110.0, fee=330 * TK)
    check(f2, realized_pnl=10.0, position_after=0.0, avg_price_after=0.0, fee=210 * TK)
    assert res["realized_pnl"] == 20.0
    assert res["fees"] == 640 * TK
    assert res["balance"] == 10020.0 - 640 * TK
    assert res["equity_after_fills"] == [10000.0 - 100 * TK, 10010.0 - 430 * TK,
                                         10020.0 - 640 * TK]


def test_average_price_when_adding():
    rows = [T(0, 100.0), T(1, 100.0), T(2, 106.0)]
    res = run(rows, [sub(0, MKT, BUY, 1.0), sub(1, MKT, BUY, 2.0)])
    # avg = (1 * 100 + 2 * 106) / 3 = 104
    check(res["fills"][1], position_after=3.0, avg_price_after=104.0, realized_pnl=0.0)
    check(order(res, 2), avg_fill_price=106.0)


# ------------------------------------------------------------------------------ R5.1 funding
def test_funding_sign_and_valuation_price():
    rows = [T(0, 100.0), T(1, 100.0), F(2, FR), M(3, 102.0), F(4, -FR), F(5, FR, sym=1)]
    res = run(rows, [sub(0, MKT, BUY, 2.0)], inst=(PERP, PERP))
    r0, r1 = res["funding_rows"]  # no row for the flat symbol 1
    # long pays when rate > 0; valued at last (no mark yet) then at mark
    assert r0 == dict(ts_ns=2, sym=0, rate=FR, position=2.0, mark_price=100.0,
                      payment=-(200 * FR))
    assert r1 == dict(ts_ns=4, sym=0, rate=-FR, position=2.0, mark_price=102.0,
                      payment=204 * FR)
    assert res["funding"] == 4 * FR
    assert res["balance"] == 10000.0 - 200 * TK - 200 * FR + 204 * FR


def test_short_receives_positive_funding():
    rows = [T(0, 100.0), T(1, 100.0), F(2, FR)]
    res = run(rows, [sub(0, MKT, SELL, 1.0)])
    assert res["funding_rows"][0]["payment"] == 100 * FR


# ------------------------------------------------------------------------------ identity
def _random_case(seed):
    rng = random.Random(seed)
    rows, script = [], []
    ts = 0
    px = [100.0, 50.0]
    for g in range(400):
        ts += rng.choice([0, 1, 3])
        s = rng.randrange(2)
        k = rng.choices([0, 1, 2, 3], weights=[5, 4, 2, 1])[0]
        px[s] = round(max(1.0, px[s] + rng.choice([-0.3, -0.1, 0.0, 0.1, 0.2])), 2)
        if k == 0:
            rows.append(T(ts, px[s], sym=s))
        elif k == 1:
            rows.append(Q(ts, round(px[s] - 0.05, 2), round(px[s] + 0.05, 2), sym=s))
        elif k == 2:
            rows.append(M(ts, round(px[s] + 0.01, 2), sym=s))
        else:
            rows.append(F(ts, rng.choice([FR, -FR]), sym=s))
            continue
        if rng.random() < 0.3:
            side = rng.choice([BUY, SELL])
            q = rng.choice([0.5, 1.0, 2.0])
            r = rng.random()
            p = round(px[s] + rng.choice([-0.5, -0.2, 0.2, 0.5]), 1) if s == 0 else round(
                px[s] + rng.choice([-0.5, -0.2, 0.2, 0.5]), 2)
            if r < 0.3:
                script.append(sub(g, MKT, side, q, sym=s))
            elif r < 0.55:
                script.append(sub(g, LMT, side, q, limit=p, sym=s,
                                  tif=rng.choice([GTC, IOC, POST_ONLY])))
            elif r < 0.65:
                script.append(sub(g, STP, side, q, stop=p, sym=s,
                                  trig=rng.choice([LAST_SRC, MARK_SRC])))
            elif r < 0.72:
                script.append(sub(g, TRL, side, q, trail=0.3, sym=s))
            elif r < 0.8:
                lo, hi = round(px[s] - 1.0, 1), round(px[s] + 1.0, 1)
                st, tg = (lo, hi) if side == BUY else (hi, lo)
                script.append((g, "bracket", s, side, q, 0.0, st, tg))
            elif r < 0.9 and script:
                script.append((g, "cancel", rng.randrange(len(script))))
            else:
                script.append((g, "close", s))
    return rows, script


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_equity_identity_and_fill_ledger(seed):
    rows, script = _random_case(seed)
    res = run(rows, script, inst=(PERP, SPOT), latency=1, cancel_latency=2, balance=10000.0)
    assert len(res["fills"]) > 5
    lhs = res["balance"] - 10000.0
    rhs = res["realized_pnl"] - res["fees"] + res["funding"]
    assert lhs == pytest.approx(rhs, abs=1e-9)
    assert res["realized_pnl"] == pytest.approx(sum(f["realized_pnl"] for f in res["fills"]))
    assert res["fees"] == pytest.approx(sum(f["fee"] for f in res["fills"]))
    assert res["funding"] == pytest.approx(sum(r["payment"] for r in res["funding_rows"]))
    # positions replay from the fills; spot never short
    pos = [0.0, 0.0]
    for f in res["fills"]:
        pos[f["sym"]] += f["side"] * f["qty"]
        assert f["position_after"] == pytest.approx(pos[f["sym"]], abs=1e-9)
        if f["sym"] == 1:
            assert f["position_after"] >= 0.0
    assert len(res["equity_after_fills"]) == len(res["fills"])
    # every fill belongs to a filled order with a matching filled quantity
    filled = {}
    for f in res["fills"]:
        filled[f["oid"]] = filled.get(f["oid"], 0.0) + f["qty"]
    for o in res["orders"]:
        assert o["filled_qty"] == filled.get(o["oid"], 0.0)
        assert (o["status"] == S.FILLED) == (o["oid"] in filled)
    assert [o["oid"] for o in res["orders"]] == list(range(1, len(res["orders"]) + 1))
    assert len(res["results"]) == len(script)
    assert all(isinstance(x, int) for x in res["results"])
    assert not any(math.isnan(x) for x in res["equity_after_fills"])


# ------------------------------------------------------------------------------ R3.13 validation
def test_amend_validates_quantity_and_prices_like_a_submit():
    rows = [Q(0, 99.0, 101.0), T(1, 100.0)]
    amend = lambda qty, limit=0.0, stop=0.0: (0, "amend", 0, qty, limit, stop)  # noqa: E731
    res = run(rows, [sub(0, LMT, BUY, 1.0, limit=90.0), amend(0.0005), amend(0.0, limit=90.05),
                     amend(0.0, stop=80.01), amend(2.0, limit=91.0)])
    assert res["results"] == [1, -int(R.OFF_LOT_SIZE), -int(R.OFF_TICK_SIZE), -int(R.OFF_TICK_SIZE), 0]


def test_amend_to_no_more_than_filled_is_refused():
    # partial fills: 0.4 of 1.0 fills at t=1 (the trade's size); amending to 0.4 leaves nothing
    res = run([Q(0, 99.0, 101.0), T(1, 99.5, qty=0.4), T(2, 99.6)],
              [sub(0, LMT, BUY, 1.0, limit=100.0), (1, "amend", 0, 0.4, 0.0, 0.0),
               (1, "amend", 0, 0.5, 0.0, 0.0)], partial_fills=True)
    assert res["results"] == [1, -int(R.INVALID_QTY), 0]


def test_amend_reaching_the_venue_after_fills_up_to_its_quantity_cancels_the_rest():
    # partial fills, cancel latency 100: 0.4 of 1.0 fills at t=1; an amend to 0.5 (valid then)
    # reaches the venue at t=101, after 0.3 more filled at t=50: the rest is canceled (Binance's
    # modify-order rule), nothing fills after it
    res = run([Q(0, 99.0, 101.0), T(1, 99.5, qty=0.4), T(50, 99.6, qty=0.3), T(200, 99.7)],
              [sub(0, LMT, BUY, 1.0, limit=100.0), (1, "amend", 0, 0.5, 0.0, 0.0)],
              cancel_latency=100, partial_fills=True)
    assert res["results"] == [1, 0]
    assert [f["qty"] for f in res["fills"]] == [0.4, 0.3]
    check(order(res, 1), status=S.CANCELED, reason=R.INVALID_QTY, done_ts_ns=200)


# ------------------------------------------------------------------------------ R3.15 partial fills
def test_partial_fills_marketable_limit_takes_the_shown_size_and_rests():
    # buy 3 @ 101 limit arrives at a quote showing 1 at 101: 1 fills at 101 as taker, 2 rest;
    # a trade at 100.5 (through the limit) of size 1.5 fills 1.5 at the limit as maker
    res = run([Q(0, 99.0, 101.0, aq=1.0), Q(1, 99.0, 101.0, aq=1.0), T(2, 100.5, qty=1.5)],
              [sub(0, LMT, BUY, 3.0, limit=101.0)], partial_fills=True)
    f1, f2 = res["fills"]
    check(f1, event_idx=1, qty=1.0, price=101.0, liquidity=TAKER)
    check(f2, event_idx=2, qty=1.5, price=101.0, liquidity=MAKER)
    check(order(res, 1), status=S.OPEN, filled_qty=2.5)


def test_partial_fills_ioc_and_fok_at_arrival():
    rows = [Q(0, 99.0, 101.0, aq=1.0), T(1, 100.0)]
    res = run(rows, [sub(0, LMT, BUY, 3.0, limit=101.0, tif=IOC)], partial_fills=True)
    (f,) = res["fills"]
    check(f, qty=1.0, price=101.0)
    check(order(res, 1), status=S.EXPIRED, reason=R.IOC_UNFILLED, filled_qty=1.0)
    res = run(rows, [sub(0, LMT, BUY, 3.0, limit=101.0, tif=FOK)], partial_fills=True)
    assert res["fills"] == []
    check(order(res, 1), status=S.EXPIRED, reason=R.FOK_UNFILLED, filled_qty=0.0)


# ------------------------------------------------------------------------------ R3.16 the queue
def test_queue_at_the_touch_is_eaten_by_trades_at_the_price_first():
    # buy 1 @ 99 joins a bid of 99 showing 2: queue 2; a sell trade of 1.5 at 99 leaves 0.5 ahead;
    # a quote showing 0.2 at 99 shrinks it to 0.2 (cancels ahead); a trade of 1 at 99 eats the 0.2
    # and fills 0.8 as maker; a trade at 98.5 (through) fills the last 0.2
    res = run([Q(0, 99.0, 101.0, bq=2.0), T(1, 99.0, qty=1.5, side=-1), Q(2, 99.0, 101.0, bq=0.2),
               T(3, 99.0, qty=1.0, side=-1), T(4, 98.5, qty=5.0, side=-1)],
              [sub(0, LMT, BUY, 1.0, limit=99.0)], queue_model=True)
    f1, f2 = res["fills"]
    check(f1, event_idx=3, qty=0.8, price=99.0, liquidity=MAKER)
    assert abs(f2["qty"] - 0.2) < 1e-12 and f2["event_idx"] == 4
    check(order(res, 1), status=S.FILLED)


def test_queue_an_amend_to_a_new_price_or_a_larger_size_queues_again():
    # buy 1 @ 99 joins a bid of 99 showing 0.5; a trade of 0.5 at 99 leaves nothing ahead. An amend
    # to 98.5 loses that place: at the quote showing 3 at 98.5 it queues behind the 3, so a trade
    # of 1 at 98.5 fills nothing and a trade of 3 fills the 1 (keeping its place: filled at t=4)
    rows = [Q(0, 99.0, 101.0, bq=0.5), Q(1, 99.0, 101.0, bq=0.5), T(2, 99.0, qty=0.5, side=-1),
            Q(3, 98.5, 101.0, bq=3.0), T(4, 98.5, qty=1.0, side=-1), T(5, 98.5, qty=3.0, side=-1)]
    res = run(rows, [sub(0, LMT, BUY, 1.0, limit=99.0), (2, "amend", 0, 0.0, 98.5, 0.0)],
              queue_model=True)
    (f,) = res["fills"]
    check(f, event_idx=5, qty=1.0, price=98.5)
    # a larger size also queues again: behind the 0.5 shown again at 99, the 0.5 traded fills nothing
    rows = [Q(0, 99.0, 101.0, bq=0.5), Q(1, 99.0, 101.0, bq=0.5), T(2, 99.0, qty=0.5, side=-1),
            Q(3, 99.0, 101.0, bq=0.5), T(4, 99.0, qty=0.5, side=-1), T(5, 99.0, qty=2.0, side=-1)]
    res = run(rows, [sub(0, LMT, BUY, 1.0, limit=99.0), (2, "amend", 0, 2.0, 0.0, 0.0)],
              queue_model=True)
    (f,) = res["fills"]
    check(f, event_idx=5, qty=2.0, price=99.0)
    # a smaller size keeps its place: the first 0.5 traded at 99 after the amend fills it
    res = run(rows, [sub(0, LMT, BUY, 1.0, limit=99.0), (2, "amend", 0, 0.5, 0.0, 0.0)],
              queue_model=True)
    (f,) = res["fills"]
    check(f, event_idx=4, qty=0.5, price=99.0)


def test_queue_better_than_the_touch_is_first_and_behind_it_is_learned_later():
    # buy @ 99.5 above the 99 bid: nothing ahead, a trade at 99.5 fills it (up to its size)
    res = run([Q(0, 99.0, 101.0), T(1, 99.5, qty=0.3, side=-1)],
              [sub(0, LMT, BUY, 1.0, limit=99.5)], queue_model=True)
    (f,) = res["fills"]
    check(f, qty=0.3, price=99.5)
    # buy @ 98 behind the touch: no queue known, trades at 98 do not fill it; once the bid is 98
    # showing 1.0 the queue is 1.0, and a trade of 1.5 at 98 fills 0.5
    res = run([Q(0, 99.0, 101.0), Q(1, 99.0, 101.0), T(2, 98.0, qty=3.0, side=-1),
               Q(3, 98.0, 101.0, bq=1.0), T(4, 98.0, qty=1.5, side=-1)],
              [sub(0, LMT, BUY, 1.0, limit=98.0)], queue_model=True)
    (f,) = res["fills"]
    check(f, event_idx=4, qty=0.5, price=98.0)
