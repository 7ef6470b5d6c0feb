"""The L2 book and the l2_depth model (docs/fill-rules.md section 9) against hand-computed numbers:
the walk, the penalty past the deepest level, trade-through, consumption and refill, marketable
limits, the fallback without a book, snapshots split across chunks."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import backtest as bt
from backtest.core.schema import OrderStatus, OrderType, TimeInForce
from backtest.data.instruments import Instrument, write_instruments
from backtest.data.writer import write_stream

from scripted import Scripted, load_script

T0 = 1_770_249_600_000_000_000
MS = 1_000_000
# bids 99 x 1, 98.5 x 2, 98 x 3; asks 101 x 1, 101.5 x 2, 102 x 3
BOOK = [(0, 99.0, 1.0, 101.0, 1.0), (1, 98.5, 2.0, 101.5, 2.0), (2, 98.0, 3.0, 102.0, 3.0)]


def book_rows(t_ms, levels=BOOK):
    return [(t_ms, *lv) for lv in levels]


def dataset(root, trades=(), books=(), quotes=()):
    """trades: (t_ms, price, qty); books: (t_ms, level, bid, bid_qty, ask, ask_qty) rows;
    quotes: (t_ms, bid, ask, bid_qty, ask_qty)."""
    if trades:
        t, p, q = map(np.array, zip(*trades))
        write_stream(root, "trades", "X", dict(ts_ns=T0 + t * MS, price=p.astype(float),
                                               qty=q.astype(float), side=np.ones(len(t), np.int8)))
    if books:
        t, lv, b, bq, a, aq = map(np.array, zip(*books))
        write_stream(root, "book", "X", dict(ts_ns=T0 + t * MS, level=lv.astype(np.int8),
                                             bid=b.astype(float), bid_qty=bq.astype(float),
                                             ask=a.astype(float), ask_qty=aq.astype(float)))
    if quotes:
        t, b, a, bq, aq = map(np.array, zip(*quotes))
        write_stream(root, "quotes", "X", dict(ts_ns=T0 + t * MS, bid=b.astype(float),
                                               ask=a.astype(float), bid_qty=bq.astype(float),
                                               ask_qty=aq.astype(float)))
    write_instruments(root / "instruments.json", {"X": Instrument(
        "X", "linear_perpetual", "X", "USDT", "USDT", 0.5, 0.25, maker_fee_rate=0.0,
        taker_fee_rate=0.0)})
    return root


def submit(g, otype, side, qty, limit=0.0, tif=0):
    return (g, "submit", 0, int(otype), side, qty, limit, 0.0, int(tif), False, 0, 0.0, 0.0, 0)


def run(root, script, chunk_rows=1 << 20, **execution):
    state = Scripted.new_state({}, ["X"])
    load_script(state, script)
    execution.setdefault("slippage", "l2_depth")
    return bt.run(Scripted, root, state=state, config={
        "initial_balance": 1e7, "sample_interval": "0", "execution": execution,
        "chunk_rows": chunk_rows})


# the book (g 0-2) at 0 ms, trades at 1 ms (g 3), 2 ms (g 4), 1002 ms (g 5)
TR = [(1, 100.0, 1.0), (2, 100.0, 1.0), (1002, 100.0, 1.0)]


def test_a_market_buy_walks_the_levels_at_their_vwap(tmp_path):
    res = run(dataset(tmp_path / "d", TR, book_rows(0)), [submit(3, OrderType.MARKET, 1, 2.5)])
    # 1 @ 101 + 1.5 @ 101.5
    assert res.fills["price"].to_list() == [(1.0 * 101.0 + 1.5 * 101.5) / 2.5]
    f = res.fills.row(0, named=True)
    assert f["cost_impact"] == pytest.approx((f["price"] - 100.0) * 2.5)  # no quotes: opp = last


def test_past_the_deepest_level_the_rest_pays_the_penalty(tmp_path):
    res = run(dataset(tmp_path / "d", TR, book_rows(0)), [submit(3, OrderType.MARKET, -1, 10.0)],
              book_beyond_bps=20.0)
    # 1 @ 99 + 2 @ 98.5 + 3 @ 98 + 4 @ 98 * (1 - 0.002)
    want = (((99.0 + 2.0 * 98.5) + 3.0 * 98.0) + 4.0 * (98.0 * (1.0 - 20.0 / 10000.0))) / 10.0
    assert res.fills["price"].to_list() == [want]


def test_consumed_depth_refills_with_the_half_life(tmp_path):
    script = [submit(3, OrderType.MARKET, 1, 2.5), submit(4, OrderType.MARKET, 1, 2.0)]
    res = run(dataset(tmp_path / "d", TR, book_rows(0)), script, book_resilience_half_life=1.0)
    # first fill at 2 ms takes 1 @ 101 and 1.5 @ 101.5; 1000 ms later half of it is back:
    # 0.5 @ 101, 2 - 0.75 = 1.25 @ 101.5, the last 0.25 @ 102
    assert res.fills["price"].to_list() == [(101.0 + 1.5 * 101.5) / 2.5,
                                            ((0.5 * 101.0 + 1.25 * 101.5) + 0.25 * 102.0) / 2.0]
    # a half-life of 0 refills at once: the second buy walks the full book again
    res0 = run(dataset(tmp_path / "d0", TR, book_rows(0)), script, book_resilience_half_life=0.0)
    assert res0.fills["price"][1] == (101.0 + 101.5) / 2.0


def test_a_new_snapshot_replaces_the_consumed_book(tmp_path):
    script = [submit(3, OrderType.MARKET, 1, 2.5), submit(4, OrderType.MARKET, 1, 2.0)]
    res = run(dataset(tmp_path / "d", TR, book_rows(0) + book_rows(500)), script,
              book_resilience_half_life=1e6)
    assert res.fills["price"][1] == (101.0 + 101.5) / 2.0


def test_a_trade_through_the_book_removes_the_levels_it_crossed(tmp_path):
    trades = [(1, 98.5, 1.0), (2, 98.5, 1.0)]
    res = run(dataset(tmp_path / "d", trades, book_rows(0)), [submit(3, OrderType.MARKET, -1, 2.0)])
    assert res.fills["price"].to_list() == [98.5]  # never the stale 99
    # and a quote below the snapshot's touch is the effective touch (R2.3a)
    res = run(dataset(tmp_path / "q", [(1, 100.0, 1.0), (2, 100.0, 1.0)], book_rows(0),
                      quotes=[(1, 98.0, 102.0, 1.0, 1.0)]), [submit(3, OrderType.MARKET, -1, 2.0)])
    assert res.fills["price"].to_list() == [98.0]


@pytest.mark.parametrize("tif, status, filled", [(TimeInForce.GTC, OrderStatus.FILLED, 3.0),
                                                 (TimeInForce.IOC, OrderStatus.EXPIRED, 3.0),
                                                 (TimeInForce.FOK, OrderStatus.EXPIRED, 0.0)])
def test_a_marketable_limit_takes_only_the_depth_within_its_limit(tmp_path, tif, status, filled):
    res = run(dataset(tmp_path / "d", TR, book_rows(0)),
              [submit(3, OrderType.LIMIT, 1, 5.0, limit=101.5, tif=tif)])
    taker = res.fills.filter(res.fills["liquidity"] == 1)
    assert taker["qty"].sum() == filled
    if filled:  # 1 @ 101 + 2 @ 101.5; a GTC rest of 2 rests and the next trade (100) fills it (R3.6)
        assert taker["price"].to_list() == [(101.0 + 2.0 * 101.5) / 3.0]
    assert res.orders["status"][0] == int(status)
    assert res.fills["qty"].sum() == (5.0 if tif == TimeInForce.GTC else filled)


def test_without_a_book_l2_depth_is_l1_depth(tmp_path):
    quotes = [(0, 99.0, 101.0, 3.0, 2.0)]
    trades = [(1, 100.0, 1.0), (2, 101.0, 1.0), (1002, 100.0, 1.0)]
    root = dataset(tmp_path / "d", trades, quotes=quotes)
    a = run(root, [submit(2, OrderType.MARKET, 1, 4.0)], impact_k=0.5)  # g 0 quote, 1-3 trades
    b = run(root, [submit(2, OrderType.MARKET, 1, 4.0)], impact_k=0.5, slippage="l1_depth")
    assert a.fills["price"].to_list() == b.fills["price"].to_list()
    assert a.fills["price"][0] > 101.0


@pytest.mark.parametrize("chunk_rows", [1, 2, 4])
def test_a_snapshot_split_across_chunks_is_the_same_book(tmp_path, chunk_rows):
    root = dataset(tmp_path / "d", TR, book_rows(0))
    script = [submit(3, OrderType.MARKET, 1, 2.5), submit(4, OrderType.MARKET, 1, 2.0)]
    whole = run(root, script)
    split = run(root, script, chunk_rows=chunk_rows)
    assert split.fills.to_dicts() == whole.fills.to_dicts()


def test_a_leveraged_long_liquidated_in_a_thin_book_walks_it(tmp_path):
    """End to end: a 20x long, the book thins, the mark falls to the liquidation price and the
    liquidation (settled at the market) walks four levels; its cost is attributed to impact."""
    from backtest.data.instruments import Bracket

    root = tmp_path / "d"
    thin = [(0, 92.0, 30.0, 92.5, 10.0), (1, 91.5, 30.0, 93.0, 10.0), (2, 91.0, 30.0, 93.5, 10.0),
            (3, 90.5, 50.0, 94.0, 10.0)]
    dataset(root, [(1, 100.0, 1.0), (2, 100.0, 1.0), (2500, 92.0, 1.0)],
            book_rows(0, [(0, 99.5, 500.0, 100.5, 500.0)]) + book_rows(2000, thin))
    write_stream(root, "marks", "X", dict(ts_ns=np.array([T0 + 3000 * MS]), mark_price=np.array([90.5]),
                                          index_price=np.array([90.5])))
    write_instruments(root / "instruments.json", {"X": Instrument(
        "X", "linear_perpetual", "X", "USDT", "USDT", 0.5, 0.25, maker_fee_rate=0.0,
        taker_fee_rate=0.0, brackets=(Bracket(0.0, 1e9, 125.0, 0.005, 0.0),))})
    state = Scripted.new_state({}, ["X"])
    load_script(state, [submit(1, OrderType.MARKET, 1, 100.0)])  # fills at g 2 at 100.5
    res = bt.run(Scripted, root, state=state, config={
        "initial_balance": 1000.0, "sample_interval": "0", "leverage": {"X": 20.0},
        "execution": {"slippage": "l2_depth"}, "margin": {"settle": "market"}})
    assert res.fills["price"][0] == 100.5
    liq = res.fills.filter(res.fills["liquidity"] == 2).row(0, named=True)
    # 30 @ 92 + 30 @ 91.5 + 30 @ 91 + 10 @ 90.5: below the touch (92), at the VWAP of the levels
    assert liq["qty"] == 100.0
    assert liq["price"] == (((30.0 * 92.0 + 30.0 * 91.5) + 30.0 * 91.0) + 10.0 * 90.5) / 100.0
    assert liq["price"] < 92.0
    # the benchmark is the mark at the trigger; no quotes, so the touch is the last trade (92)
    assert liq["bench_price"] == 90.5
    assert liq["cost_impact"] == pytest.approx(-1.0 * (liq["price"] - 92.0) * 100.0)
    assert liq["cost_impact"] > 0.0


class BookReader(bt.Strategy):
    """Reads the book at each trade (the SDK's book_level / book_depth)."""

    px1: ("f8", 4)
    qty1: ("f8", 4)
    depth: ("f8", 4)
    past: ("f8", 4)
    n: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if self.n < 4:
            p, q = bt.book_level(c, sym, -1, 1)  # second-best ask
            self.px1[self.n] = p
            self.qty1[self.n] = q
            self.depth[self.n] = bt.book_depth(c, sym, 1, 2)  # bids within 2 levels
            self.past[self.n] = bt.book_level(c, sym, 1, 7)[0]
            self.n += 1


def test_strategies_read_the_effective_book(tmp_path):
    root = dataset(tmp_path / "d", [(1, 100.0, 1.0), (2, 98.5, 1.0)], book_rows(0))
    res = bt.run(BookReader, root, config={"sample_interval": "0"})
    st = res.manifest["strategy"]["state"]
    assert st["px1"][:2] == [101.5, 101.5] and st["qty1"][:2] == [2.0, 2.0]
    # after the trade at 98.5 the bid at 99 is gone: 98.5 x 2 + 98 x 3
    assert st["depth"][:2] == [3.0, 5.0]
    assert np.isnan(st["past"][0])


_NO_JIT = """
import json, sys, warnings
from pathlib import Path
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[2])
import test_l2_book as t
from backtest.core.schema import OrderType
script = [t.submit(3, OrderType.MARKET, 1, 2.5), t.submit(4, OrderType.LIMIT, 1, 4.0, limit=101.5, tif=1),
          t.submit(4, OrderType.MARKET, -1, 7.0)]
res = t.run(t.dataset(Path(sys.argv[1]), t.TR, t.book_rows(0)), script, chunk_rows=2,
            book_resilience_half_life=0.5)
print(json.dumps(res.fills.select(["price", "qty"]).to_dicts()))
"""


def test_jit_off_walks_the_book_bit_for_bit(tmp_path):
    script = [submit(3, OrderType.MARKET, 1, 2.5), submit(4, OrderType.LIMIT, 1, 4.0, limit=101.5, tif=1),
              submit(4, OrderType.MARKET, -1, 7.0)]
    res = run(dataset(tmp_path / "d", TR, book_rows(0)), script, book_resilience_half_life=0.5)
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", _NO_JIT, str(tmp_path / "py"), str(Path(__file__).parent)],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == res.fills.select(["price", "qty"]).to_dicts()
    assert res.fills.height == 3


def test_a_resting_limit_queues_behind_its_book_level(tmp_path):
    """R9.8: a buy at 98.5 joins the 2.0 displayed at that level of the book (the L1 queue model
    alone would not know it: it is behind the touch); trades at 98.5 eat the queue first."""
    trades = [(1, 100.0, 1.0), (2, 98.5, 1.5), (3, 98.5, 1.0), (4, 98.5, 1.0)]
    root = dataset(tmp_path / "d", trades, book_rows(0), quotes=[(0, 99.0, 101.0, 1.0, 1.0)])
    script = [submit(4, OrderType.LIMIT, 1, 1.0, limit=98.5)]  # g 0 quote, 1-3 book, 4-7 trades
    res = run(root, script, queue_model=True)
    # arrives at g 5: queue 2.0, the trade of 1.5 leaves 0.5; g 6: 0.5 more eaten, 0.5 fills
    assert res.fills.select(["event_idx", "qty", "price", "liquidity"]).rows() == [
        (6, 0.5, 98.5, 0), (7, 0.5, 98.5, 0)]
    # l1_depth does not replay the book (engine.replayed_kinds): the same order is g 1 there
    l1 = run(root, [submit(1, OrderType.LIMIT, 1, 1.0, limit=98.5)], queue_model=True, slippage="l1_depth")
    # the L1 queue sees only the effective touch: the trade-through left 0 displayed at 98.5
    assert l1.fills.select(["event_idx", "qty"]).rows() == [(2, 1.0)]


def test_the_book_is_replayed_only_when_something_reads_it(tmp_path):
    """engine.replayed_kinds: the l2_depth model or a strategy that reads the book gets it; any
    other run skips the book's rows (they would only cost time)."""
    root = dataset(tmp_path / "d", TR, book_rows(0) + book_rows(1000))
    events = lambda res: res.manifest["timings"]["events"]  # noqa: E731
    assert events(run(root, [])) == 3 + 6
    assert events(run(root, [], slippage="spread")) == 3
    assert events(run(root, [], slippage="spread", models={"X": "l2_depth"})) == 3 + 6
    assert events(bt.run(BookReader, root, config={"sample_interval": "0"})) == 3 + 6
