"""Execution realism (docs/execution.md): each model against hand-computed numbers."""
import math

import numpy as np
import polars as pl
import pytest

import backtest as bt
from backtest.config import RunConfig
from backtest.core.schema import EventKind, OrderType, TimeInForce
from backtest.data.instruments import Instrument, write_instruments
from backtest.data.writer import write_stream
from backtest.errors import ConfigError

from scripted import Scripted, load_script

T0 = 1_770_249_600_000_000_000
MS = 1_000_000


def dataset(root, trades=(), quotes=(), fees=(0.0, 0.0)):
    """trades: (t_ms, price, qty); quotes: (t_ms, bid, ask, bid_qty, ask_qty)."""
    if trades:
        t, p, q = map(np.array, zip(*trades))
        write_stream(root, "trades", "X", dict(ts_ns=T0 + t * MS, price=p.astype(float),
                                               qty=q.astype(float), side=np.ones(len(t), np.int8)))
    if quotes:
        t, b, a, bq, aq = map(np.array, zip(*quotes))
        write_stream(root, "quotes", "X", dict(ts_ns=T0 + t * MS, bid=b.astype(float),
                                               ask=a.astype(float), bid_qty=bq.astype(float),
                                               ask_qty=aq.astype(float)))
    write_instruments(root / "instruments.json", {"X": Instrument(
        "X", "linear_perpetual", "X", "USDT", "USDT", 0.5, 0.25, maker_fee_rate=fees[0],
        taker_fee_rate=fees[1])})
    return root


def submit(g, otype, side, qty, limit=0.0, stop=0.0, tif=0):
    return (g, "submit", 0, int(otype), side, qty, limit, stop, int(tif), False, 0, 0.0, 0.0, 0)


def run(root, script, **execution):
    state = Scripted.new_state({}, ["X"])
    load_script(state, script)
    seed = execution.pop("seed", 0)
    return bt.run(Scripted, root, state=state, config={
        "initial_balance": 1e7, "sample_interval": "0", "execution": execution, "seed": seed})


Q = [(0, 99.0, 101.0, 3.0, 2.0)]  # bid 99 x 3, ask 101 x 2 (mid 100)
TR = [(1, 100.0, 1.0), (2, 100.0, 1.0), (3, 100.0, 1.0)]


@pytest.mark.parametrize("model, bps, want", [("none", 0.0, 100.0), ("spread", 0.0, 101.0),
                                              ("fixed_bps", 150.0, 100.0 * (1 + 150 / 10000)),
                                              ("fixed_bps", 25.0, 101.0)])
def test_simple_models_price_a_market_buy(tmp_path, model, bps, want):
    # fixed_bps never fills inside the spread: 25 bps from the mid 100 is below the ask 101
    res = run(dataset(tmp_path / "d", TR, Q), [submit(1, OrderType.MARKET, 1, 1.0)],
              slippage=model, slippage_bps=bps)
    assert res.fills["price"][0] == pytest.approx(want)


def test_sqrt_impact_uses_causal_sigma_and_volume(tmp_path):
    trades = [(0, 100.0, 2.0), (1000, 101.0, 4.0), (2000, 100.0, 1.0), (3000, 100.0, 1.0)]
    res = run(dataset(tmp_path / "d", trades), [submit(2, OrderType.MARKET, 1, 4.0)],
              slippage="sqrt_impact", impact_k=0.5, impact_horizon="10s")
    # estimates after the trade at 3000 ms (the order arrives there): decay per second e^-0.1
    d = math.exp(-0.1)
    s2 = 0.0
    v = 2.0
    for prev, (p, q) in zip([100.0, 101.0, 100.0], [(101.0, 4.0), (100.0, 1.0), (100.0, 1.0)]):
        s2 = s2 * d + math.log(p / prev) ** 2
        v = v * d + q
    want = 100.0 * (1 + 0.5 * math.sqrt(s2) * math.sqrt(4.0 / v))
    assert res.fills["price"][0] == pytest.approx(want, rel=1e-12)


def test_l1_depth_fills_the_touch_then_the_rest_with_impact(tmp_path):
    trades = [(0, 100.0, 2.0), (1000, 101.0, 4.0), (2000, 100.0, 1.0)]
    quotes = [(1500, 99.5, 100.5, 1.0, 1.0)]
    res = run(dataset(tmp_path / "d", trades, quotes), [submit(2, OrderType.MARKET, 1, 3.0)],
              slippage="l1_depth", impact_k=0.5, impact_horizon="10s")
    d = math.exp(-0.1)
    s2 = math.log(101 / 100) ** 2 * d + math.log(100 / 101) ** 2
    v = (2.0 * d + 4.0) * d + 1.0
    worse = 100.5 * (1 + 0.5 * math.sqrt(s2) * math.sqrt(2.0 / v))
    assert res.fills["price"][0] == pytest.approx((1.0 * 100.5 + 2.0 * worse) / 3.0, rel=1e-12)


def test_slippage_applies_to_stops(tmp_path):
    trades = [(0, 100.0, 1.0), (1, 100.0, 1.0), (2, 98.0, 1.0), (3, 97.0, 1.0)]
    script = [submit(0, OrderType.MARKET, 1, 1.0), submit(1, OrderType.STOP_MARKET, -1, 1.0, stop=98.5)]
    res = run(dataset(tmp_path / "d", trades), script, slippage="fixed_bps", slippage_bps=100.0)
    assert res.fills["price"][1] == pytest.approx(98.0 * (1 - 0.01))


def test_partial_fills_cap_a_resting_limit_at_the_traded_volume(tmp_path):
    trades = [(0, 100.0, 1.0), (1, 99.0, 2.0), (2, 98.5, 4.0), (3, 98.0, 9.0)]
    res = run(dataset(tmp_path / "d", trades), [submit(0, OrderType.LIMIT, 1, 5.0, limit=99.5)],
              partial_fills=True)
    # at arrival (trade at 99) it is marketable: 2 taken at 99 (taker, R3.5); then it rests and
    # the trade through at 98.5 fills the other 3 at its limit (maker, R3.6)
    assert res.fills["qty"].to_list() == [2.0, 3.0]
    assert res.fills["price"].to_list() == [99.0, 99.5]
    assert res.fills["liquidity"].to_list() == [int(bt.Liquidity.TAKER), int(bt.Liquidity.MAKER)]
    assert res.orders["filled_qty"][0] == 5.0


def test_ioc_fills_what_is_shown_and_expires_the_rest(tmp_path):
    res = run(dataset(tmp_path / "d", TR, Q),
              [submit(1, OrderType.LIMIT, 1, 5.0, limit=101.0, tif=TimeInForce.IOC)], partial_fills=True)
    assert res.fills["qty"].to_list() == [2.0]  # ask size 2
    o = res.orders.row(0, named=True)
    assert o["status"] == int(bt.OrderStatus.EXPIRED) and o["filled_qty"] == 2.0


def test_queue_model_waits_behind_the_displayed_size(tmp_path):
    quotes = [(0, 99.0, 101.0, 10.0, 1.0)]
    trades = [(1, 100.0, 1.0), (2, 99.0, 4.0), (3, 99.0, 8.0), (4, 99.0, 8.0)]
    res = run(dataset(tmp_path / "d", trades, quotes), [submit(1, OrderType.LIMIT, 1, 5.0, limit=99.0)],
              queue_model=True)
    # 10 ahead: 4 traded (6 ahead), then 8 traded: 2 reach us; then 8 more: 3 left to fill
    assert res.fills["qty"].to_list() == [2.0, 3.0]


def test_fee_tiers_follow_the_previous_30_days_volume(tmp_path):
    day = 86_400_000
    trades = [(0, 100.0, 1.0), (1, 100.0, 1.0), (day + 1, 100.0, 1.0), (day + 2, 100.0, 1.0)]
    tiers = [{"volume_30d": 0.0, "maker_fee_rate": 0.0002, "taker_fee_rate": 0.0005},
             {"volume_30d": 1_000.0, "maker_fee_rate": 0.0, "taker_fee_rate": 0.0003}]
    script = [submit(0, OrderType.MARKET, 1, 10.0), submit(2, OrderType.MARKET, -1, 10.0)]
    res = run(dataset(tmp_path / "d", trades), script, fee_tiers=tiers)
    # day 1: no history -> tier 0 (5 bp); day 2: 1,000 USD traded yesterday -> tier 1 (3 bp)
    assert res.fills["fee"].to_list() == pytest.approx([10 * 100 * 0.0005, 10 * 100 * 0.0003])


def test_latency_jitter_is_seeded_and_bounded(tmp_path):
    trades = [(t, 100.0, 1.0) for t in range(0, 40)]
    root = dataset(tmp_path / "d", trades)
    script = [submit(g, OrderType.MARKET, 1, 0.25) for g in range(0, 20, 2)]
    a = run(root, script, latency="2ms", latency_jitter="10ms", seed=1)
    b = run(root, script, latency="2ms", latency_jitter="10ms", seed=1)
    c = run(root, script, latency="2ms", latency_jitter="10ms", seed=2)
    assert a.fills["event_idx"].to_list() == b.fills["event_idx"].to_list()
    assert a.fills["event_idx"].to_list() != c.fills["event_idx"].to_list()
    delay = (a.fills["ts_ns"] - (T0 + pl.Series(list(range(0, 20, 2))) * MS)) / MS
    assert delay.min() >= 2 and delay.max() < 12 + 1


def test_impossible_settings_are_config_errors_before_the_run(tmp_path):
    for bad in ({"latency": "-5ms"}, {"slippage_bps": -1.0}, {"impact_k": -0.1},
                {"slippage": "magic"}, {"fee_tiers": [{"volume_30d": 0}]}):
        with pytest.raises(ConfigError):
            RunConfig.from_dict({"execution": bad})
    root = dataset(tmp_path / "d", TR)  # trades only
    with pytest.raises(ConfigError, match="quote"):
        run(root, [], slippage="l1_depth")
    with pytest.raises(ConfigError, match="quote"):
        run(root, [], queue_model=True)


def test_realistic_execution_costs_measurably_more_than_ideal_on_the_crash(tmp_path):
    from backtest.data.generate import generate_dataset

    root = tmp_path / "feb"
    generate_dataset("feb-2026-crash", root, seed=5, scale=0.05)
    common = {"initial_balance": 100_000.0}
    ideal = bt.run("reference", root, symbols=["BTCUSDT"],
                   config={**common, "execution": {"slippage": "none"}})
    real = bt.run("reference", root, symbols=["BTCUSDT"],
                  config={**common, "execution": {"latency": "50ms", "latency_jitter": "50ms",
                                                  "slippage": "sqrt_impact", "impact_k": 1.0}})
    assert len(ideal.fills) > 0 and len(real.fills) > 0
    assert real.fills["slippage"].sum() > ideal.fills["slippage"].sum()
    assert real.headline["final_equity"] < ideal.headline["final_equity"]


def test_costs_are_summed_per_symbol_in_the_result(tmp_path):
    script = [submit(1, OrderType.MARKET, 1, 1.0), submit(2, OrderType.MARKET, -1, 1.0)]
    res = run(dataset(tmp_path / "d", TR, Q, fees=(0.0, 0.001)), script)
    (row,) = res.manifest["costs_by_symbol"]
    # bought at the ask 101, sold at the bid 99, against a mid of 100: 1 + 1 of slippage
    assert row["symbol"] == "X" and row["slippage"] == pytest.approx(2.0)
    assert row["fees"] == pytest.approx(101 * 0.001 + 99 * 0.001)
    assert row["notional"] == pytest.approx(200.0)
