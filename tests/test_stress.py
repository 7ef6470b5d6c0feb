"""Stress testing (#19): scenario transforms, block bootstrap, the crowd's liquidation cascade and
the summary statistics; hand-computed examples, consistency, identity at neutral parameters."""
import math

import numpy as np
import polars as pl
import pytest

from backtest.errors import ConfigError
from backtest.scenarios import transforms as T
from backtest.scenarios.bootstrap import block_indices, bootstrap
from backtest.scenarios.crowd import Crowd, _cascade, buckets, run_crowd, sigma_day
from backtest.scenarios.table import expected_shortfall, summarize

S = 1_000_000_000


def toy(n=200, seed=0, start=100.0):
    """One symbol, all four kinds: a random walk of trades, quotes around it, marks, funding."""
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 1000, n)).astype(np.int64) * S
    px = start * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    half = px * 0.0005
    return {
        ("trades", "X"): {"ts_ns": ts, "price": px, "qty": rng.uniform(0.1, 2, n), "side": np.where(rng.random(n) < .5, 1, -1).astype(np.int8)},
        ("quotes", "X"): {"ts_ns": ts, "bid": px - half, "ask": px + half, "bid_qty": np.full(n, 3.0), "ask_qty": np.full(n, 4.0)},
        ("marks", "X"): {"ts_ns": ts[::5], "mark_price": px[::5] * 1.0001, "index_price": px[::5] * 0.9999},
        ("funding", "X"): {"ts_ns": np.array([0, 400, 800], np.int64) * S, "rate": np.array([1e-4, 1e-4, 1e-4])},
    }


def same(a, b) -> bool:
    return a.keys() == b.keys() and all(
        a[k].keys() == b[k].keys() and all(a[k][c].dtype == b[k][c].dtype and
                                           np.array_equal(a[k][c], b[k][c]) for c in a[k]) for k in a)


NEUTRAL = ["deepen:factor=1,start=100,end=600", "accelerate:factor=1,start=100,end=600",
           "thin:spread=1,depth=1", "funding:rate=0,mode=add", "gap:pct=0,at=300",
           "outage:start=2000,end=3000"]


def parsed(spec: str) -> T.Scenario:
    kind = spec.split(":")[0]
    sc = T.parse_scenario(spec)
    params = {k: (int(v) * S if k in ("start", "end", "at") else v) for k, v in sc.params.items()}
    return T.Scenario(kind, params)


@pytest.mark.parametrize("spec", NEUTRAL)
def test_neutral_transform_is_bit_identical(spec):
    data = toy()
    assert same(T.apply(data, [parsed(spec)]), data)


def test_deepen_hand_example():
    # 100 -> 80 inside the window; factor 1.5 makes it 100 * 0.8 ** 1.5 = 71.5542; after the window
    # the extra move persists (a later 90 becomes 90 * 0.8 ** 0.5)
    ts = np.array([0, 10, 20, 30], np.int64) * S
    data = {("trades", "X"): {"ts_ns": ts, "price": np.array([100.0, 100.0, 80.0, 90.0]),
                              "qty": np.ones(4), "side": np.ones(4, np.int8)},
            ("quotes", "X"): {"ts_ns": ts + 1, "bid": np.array([99.0, 99, 79, 89]), "ask": np.array([101.0, 101, 81, 91]),
                              "bid_qty": np.ones(4), "ask_qty": np.ones(4)}}
    out = T.deepen(data, factor=1.5, start=10 * S, end=25 * S)
    p = out[("trades", "X")]["price"]
    assert p[0] == 100.0 and p[1] == pytest.approx(100.0, rel=1e-15)
    assert p[2] == pytest.approx(100 * 0.8 ** 1.5, rel=1e-12)
    assert p[3] == pytest.approx(90 * 0.8 ** 0.5, rel=1e-12)
    q = out[("quotes", "X")]
    assert q["bid"][2] == pytest.approx(79 * 0.8 ** 0.5, rel=1e-12)  # the trade's factor, at its time
    # 73k -> 60k reaching 55k: factor = log(55/73) / log(60/73)
    f = math.log(55 / 73) / math.log(60 / 73)
    d = {("trades", "X"): {"ts_ns": ts[:3], "price": np.array([73e3, 66e3, 60e3]), "qty": np.ones(3),
                           "side": np.ones(3, np.int8)}}
    assert T.deepen(d, factor=f, start=0, end=20 * S)[("trades", "X")]["price"][-1] == pytest.approx(55e3)


def test_accelerate_hand_example():
    ts = np.array([0, 10, 20, 30, 40], np.int64) * S
    data = {("trades", "X"): {"ts_ns": ts, "price": np.ones(5), "qty": np.ones(5), "side": np.ones(5, np.int8)}}
    out = T.accelerate(data, factor=2, start=10 * S, end=30 * S)
    assert out[("trades", "X")]["ts_ns"].tolist() == [0, 10 * S, 15 * S, 20 * S, 30 * S]


def test_thin_funding_gap_outage_hand_examples():
    ts = np.array([0, 10, 20], np.int64) * S
    q = {("quotes", "X"): {"ts_ns": ts, "bid": np.array([99.0] * 3), "ask": np.array([101.0] * 3),
                           "bid_qty": np.array([2.0] * 3), "ask_qty": np.array([4.0] * 3)},
         ("trades", "X"): {"ts_ns": ts, "price": np.array([100.0] * 3), "qty": np.array([1.0] * 3),
                           "side": np.ones(3, np.int8)},
         ("funding", "X"): {"ts_ns": ts, "rate": np.array([1e-4] * 3)}}
    th = T.thin(q, spread=3, depth=0.25, start=10 * S, end=20 * S)
    assert th[("quotes", "X")]["bid"].tolist() == [99.0, 97.0, 99.0]
    assert th[("quotes", "X")]["ask"].tolist() == [101.0, 103.0, 101.0]
    assert th[("quotes", "X")]["bid_qty"].tolist() == [2.0, 0.5, 2.0]
    assert th[("trades", "X")]["qty"].tolist() == [1.0, 0.25, 1.0]
    assert T.funding(q, rate=-0.002, mode="set", start=10 * S)[("funding", "X")]["rate"].tolist() == [1e-4, -0.002, -0.002]
    assert T.funding(q, rate=1e-4, start=0, end=10 * S)[("funding", "X")]["rate"].tolist() == [2e-4, 1e-4, 1e-4]
    g = T.gap(q, pct=-5, at=10 * S)
    assert g[("trades", "X")]["price"].tolist() == [100.0, 95.0, 95.0]
    assert g[("quotes", "X")]["ask"].tolist() == [101.0, 101 * 0.95, 101 * 0.95]
    o = T.outage(q, start=5 * S, end=15 * S)
    assert all(v["ts_ns"].tolist() == [0, 20 * S] for v in o.values())


@pytest.mark.parametrize("spec", ["deepen:factor=1.6,start=100,end=600", "accelerate:factor=3,start=100,end=600",
                                  "thin:spread=4,depth=0.2", "funding:rate=-0.002,mode=set,start=0,end=500",
                                  "gap:pct=-12,at=300", "outage:start=200,end=400"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_transforms_keep_streams_consistent(spec, seed):
    data = toy(seed=seed)
    out = T.apply(data, [parsed(spec)])
    for cols in out.values():
        assert np.all(np.diff(cols["ts_ns"]) >= 0), "time order"
    q = out[("quotes", "X")]
    assert np.all(q["bid"] <= q["ask"]) and np.all(q["bid"] > 0)
    # marks follow trades: a mark keeps its ratio to the trade at its time
    tr, mk = out[("trades", "X")], out[("marks", "X")]
    k = np.searchsorted(tr["ts_ns"], mk["ts_ns"], side="right") - 1
    k0 = np.searchsorted(data[("trades", "X")]["ts_ns"], data[("marks", "X")]["ts_ns"], side="right") - 1
    if spec.startswith("outage"):
        return
    np.testing.assert_allclose(mk["mark_price"] / tr["price"][k],
                               data[("marks", "X")]["mark_price"] / data[("trades", "X")]["price"][k0], rtol=1e-12)


def test_every_dataset_kind_has_its_price_columns():
    from backtest.data.layout import KINDS

    assert set(T.PRICE_COLUMNS) == set(KINDS)  # a kind missing here was a KeyError in multiply
    for kind, cols in T.PRICE_COLUMNS.items():
        assert set(cols) <= set(KINDS[kind][1]), kind


def bars_and_liquidations():
    """Candles (stamped at their close) and other traders' liquidations, no trades or marks."""
    ts = np.array([10, 20, 30], np.int64) * S
    return {("bars", "X"): {"ts_ns": ts, "open": np.array([100.0, 98.0, 80.0]), "high": np.array([101.0, 99.0, 92.0]),
                            "low": np.array([97.0, 79.0, 78.0]), "close": np.array([98.0, 80.0, 90.0]),
                            "volume": np.array([5.0, 7.0, 2.0])},
            ("liquidations", "X"): {"ts_ns": np.array([15, 25], np.int64) * S, "price": np.array([97.5, 79.5]),
                                    "qty": np.array([0.5, 1.5]), "side": np.array([-1, 1], np.int8)}}


def test_price_transforms_move_bars_and_liquidations():
    """`backtest stress` on a dataset of bars or liquidations raised KeyError: 'bars'."""
    data = bars_and_liquidations()
    # gap -10 % at t = 20: the bar stamped at 20 (its close) and everything after move whole
    out = T.gap(data, pct=-10.0, at=20 * S)
    b, q = out[("bars", "X")], out[("liquidations", "X")]
    assert b["open"].tolist() == [100.0, 98.0 * 0.9, 80.0 * 0.9]
    assert b["high"].tolist() == [101.0, 99.0 * 0.9, 92.0 * 0.9]
    assert b["low"].tolist() == [97.0, 79.0 * 0.9, 78.0 * 0.9]
    assert b["close"].tolist() == [98.0, 80.0 * 0.9, 90.0 * 0.9]
    assert q["price"].tolist() == [97.5, 79.5 * 0.9]
    # quantities and times are untouched by a price transform
    assert b["volume"] is data[("bars", "X")]["volume"] and q["qty"] is data[("liquidations", "X")]["qty"]
    assert q["ts_ns"] is data[("liquidations", "X")]["ts_ns"]
    # deepen on candles only: the reference is the bars' closes (98 at 10, 80 at 20, 90 at 30);
    # window [10, 25], factor 1.5: m(20) = (80/98) ** 0.5, which persists after the window
    out = T.deepen(data, factor=1.5, start=10 * S, end=25 * S)
    m = (80 / 98) ** 0.5
    b, q = out[("bars", "X")], out[("liquidations", "X")]
    assert b["close"][0] == 98.0 and b["close"][1] == pytest.approx(98 * (80 / 98) ** 1.5, rel=1e-12)
    assert b["low"][1] == pytest.approx(79 * m, rel=1e-12) and b["high"][2] == pytest.approx(92 * m, rel=1e-12)
    assert q["price"][0] == pytest.approx(97.5, rel=1e-15)  # at 15 the factor of t = 10: 1
    assert q["price"][1] == pytest.approx(79.5 * m, rel=1e-12)
    assert np.all(b["low"] <= np.minimum(b["open"], b["close"])) and np.all(b["high"] >= np.maximum(b["open"], b["close"]))
    # thin scales traded volume (bar volumes) by depth in its window, not liquidated sizes
    out = T.thin(data, spread=2.0, depth=0.5, start=15 * S, end=35 * S)
    assert out[("bars", "X")]["volume"].tolist() == [5.0, 3.5, 1.0]
    assert out[("liquidations", "X")]["qty"] is data[("liquidations", "X")]["qty"]
    for spec in NEUTRAL:
        assert same(T.apply(data, [parsed(spec)]), data)
    # times in integer nanoseconds from the command line (were refused as not ISO)
    assert T.parse_scenario("gap:pct=-10,at=20000000000").params["at"] == 20 * S
    assert same(T.apply(data, [T.parse_scenario("gap:pct=-10,at=20000000000")]), T.gap(data, pct=-10.0, at=20 * S))


def test_scenario_parsing_errors():
    with pytest.raises(ConfigError, match="unknown kind 'deeper'"):
        T.parse_scenario("deeper:factor=2")
    with pytest.raises(ConfigError, match="unknown parameter"):
        T.parse_scenario("deepen:fator=2")
    with pytest.raises(ConfigError, match="factor must be a number"):
        T.parse_scenario("deepen:factor=abc")
    with pytest.raises(ConfigError, match="end must be after start"):
        T.apply(toy(), [T.parse_scenario("deepen:factor=2,start=2026-02-05,end=2026-02-04")])
    with pytest.raises(ConfigError, match="give start and end"):
        T.apply(toy(), [T.parse_scenario("accelerate:factor=2")])
    sc = T.parse_scenario("funding:rate=-0.002,mode=set,start=2026-02-05,end=2026-02-06,symbols=X")
    assert sc.params == {"rate": -0.002, "mode": "set", "start": "2026-02-05", "end": "2026-02-06", "symbols": ["X"]}


# --- bootstrap ----------------------------------------------------------------------------------
def test_block_indices_deterministic_with_the_mean_block_length():
    a = block_indices(200_000, 30, np.random.default_rng(1))
    assert np.array_equal(a, block_indices(200_000, 30, np.random.default_rng(1)))
    assert a.min() >= 0 and a.max() < 200_000
    breaks = np.count_nonzero(np.diff(a) != 1)  # a block continues with the next index (mod n)
    assert 200_000 / (breaks + 1) == pytest.approx(30, rel=0.05)
    one = block_indices(50, 1e9, np.random.default_rng(3))  # one block: consecutive, wrapping
    assert np.array_equal((one - one[0]) % 50, np.arange(50))


def test_bootstrap_paths_are_resamples_and_deterministic():
    data = toy(n=400)
    for cols in data.values():  # a trade every second: every grid step shows its own factor
        cols["ts_ns"] = np.arange(len(cols["ts_ns"]), dtype=np.int64) * S
    p1 = bootstrap(data, seed=3, path=1, block="60s", step="10s")
    assert same(p1, bootstrap(data, seed=3, path=1, block="60s", step="10s"))
    assert not same(p1, bootstrap(data, seed=3, path=2, block="60s", step="10s"))
    q = p1[("quotes", "X")]
    assert np.all(q["bid"] <= q["ask"])
    for key in data:
        assert np.array_equal(p1[key]["ts_ns"], data[key]["ts_ns"])  # times unchanged
    # the grid returns of the path are drawn from the original's
    t0, t1 = data[("trades", "X")]["ts_ns"][[0, -1]]
    grid = np.arange(t0, t1 + 1, 10 * S)

    def grid_returns(d):
        ts, px = d[("trades", "X")]["ts_ns"], d[("trades", "X")]["price"]
        k = np.maximum(np.searchsorted(ts, grid, side="right") - 1, 0)
        return np.diff(np.log(px[k]))

    orig = grid_returns(data)
    for r in grid_returns(p1):
        assert np.min(np.abs(orig - r)) < 1e-9


# --- the crowd ----------------------------------------------------------------------------------
def test_liquidation_prices_hand_computed():
    b = buckets(Crowd(open_interest=1e9, long_share=0.5, leverages=(10.0,), weights=(1.0,), entries=1,
                      mmr=0.005), 100.0)
    assert sorted(b["liq_price"].tolist()) == pytest.approx([90.5, 109.5])
    assert b["notional"].tolist() == [5e8, 5e8]


def test_empty_crowd_moves_nothing():
    data = toy()
    c = run_crowd(data, Crowd(symbol="X", open_interest=0.0))
    assert c.streams is data and not np.any(c.offset) and c.liquidations.height == 0


def test_impact_is_the_square_root_law_of_the_forced_flow():
    # one long bucket of Q crossed at event 1, tau = 0: from event 2 on the price is moved by
    # -k * sigma_day * sqrt(Q / V_day)
    ts = np.array([0, 1, 2, 3], np.int64) * S
    px = np.array([100.0, 89.0, 95.0, 96.0])
    y = 2.0 * 0.05 / math.sqrt(1e9)
    off, lev, _ = _cascade(ts, px, np.array([90.5]), np.array([4e8]), np.zeros(0), np.zeros(0), y, 0.0)
    assert lev.tolist() == [1]
    assert off[:2].tolist() == [0.0, 0.0]
    assert off[2] == pytest.approx(-2.0 * 0.05 * math.sqrt(4e8 / 1e9), rel=1e-15)
    # with tau > 0 the flow executes gradually: Q * (1 - exp(-dt / tau)) after dt
    off, _, _ = _cascade(ts, px, np.array([90.5]), np.array([4e8]), np.zeros(0), np.zeros(0), y, float(S))
    assert off[2] == pytest.approx(-y * math.sqrt(4e8 * (1 - math.exp(-1))), rel=1e-12)
    assert off[3] == pytest.approx(-y * math.sqrt(4e8 * (1 - math.exp(-2))), rel=1e-12)


def crash_path(seed, n=3000):
    """A falling random walk in seconds (a crash), for property tests of the cascade."""
    rng = np.random.default_rng(seed)
    ts = np.arange(n, dtype=np.int64) * S
    px = 100.0 * np.exp(np.cumsum(rng.normal(-0.0001, 0.002, n)))
    return {("trades", "X"): {"ts_ns": ts, "price": px, "qty": np.ones(n), "side": np.ones(n, np.int8)}}


@pytest.mark.parametrize("seed", range(8))
def test_more_crowd_leverage_never_gives_a_shallower_low(seed):
    # the long side's leverage: forced sells (more short leverage means more forced buys, the other way)
    data = crash_path(seed)
    base = dict(symbol="X", open_interest=5e9, long_share=1.0, impact=0.3, market_volume=2e9,
                half_life="2m", entries=15)
    lows = []
    for scale in (1.0, 1.3, 1.7, 2.5):
        crowd = Crowd(**base, leverages=tuple(l * scale for l in (3.0, 5.0, 10.0, 20.0)), weights=(1, 1, 1, 1))
        c = run_crowd(data, crowd)
        lows.append(float(np.min(c.streams[("trades", "X")]["price"])))
    assert all(b <= a * (1 + 1e-12) for a, b in zip(lows, lows[1:])), lows
    assert lows[-1] < lows[0]  # and the cascade does deepen it here


@pytest.mark.parametrize("seed", range(4))
def test_liquidated_notional_equals_the_buckets_crossed(seed):
    data = crash_path(seed)
    data[("trades", "X")]["price"][200:260] *= 1.25  # a squeeze: shorts are crossed too
    crowd = Crowd(symbol="X", open_interest=5e9, impact=0.1, market_volume=2e9, entries=11, long_share=0.5)
    c = run_crowd(data, crowd)
    moved = c.streams[("trades", "X")]["price"]
    b = c.buckets
    crossed = np.array([np.any(moved <= lp) if s > 0 else np.any(moved >= lp)
                        for s, lp in zip(b["side"], b["liq_price"])])
    assert c.liquidations["notional"].sum() == pytest.approx(b.filter(pl.Series(crossed))["notional"].sum(), rel=1e-12)
    assert set(c.liquidations["side"].to_list()) == {-1, 1}
    # each bucket at its first crossing of the moved price
    for row in c.liquidations.iter_rows(named=True):
        hit = moved <= row["liq_price"] if row["side"] > 0 else moved >= row["liq_price"]
        assert row["event"] == int(np.argmax(hit))


def test_cascade_is_deterministic():
    data = crash_path(5)
    crowd = Crowd(symbol="X", open_interest=5e9, impact=3.0, market_volume=2e9)
    a, b = run_crowd(data, crowd), run_crowd(data, crowd)
    assert np.array_equal(a.offset, b.offset) and a.buckets.equals(b.buckets)


def test_sigma_day():
    ts = np.array([0, 43_200, 86_400], np.int64) * S
    px = np.array([100.0, 101.0, 100.0])
    assert sigma_day(ts, px) == pytest.approx(math.sqrt(math.log(1.01) ** 2 * 2), rel=1e-12)


def test_crowd_options_are_checked():
    with pytest.raises(ConfigError, match="unknown option"):
        Crowd.from_dict({"open_intrest": 1})
    with pytest.raises(ConfigError, match="same"):
        Crowd.from_dict({"leverages": "5+10", "weights": "1"})
    assert Crowd.from_dict({"leverages": "5+10", "weights": "1+1"}).leverages == (5.0, 10.0)


# --- summary statistics -----------------------------------------------------------------------
def test_expected_shortfall_and_summary_hand_computed():
    r = np.linspace(-0.39, 0.6, 100)  # -0.39, -0.38, ...
    assert expected_shortfall(r) == pytest.approx(-np.mean(r[:5]))  # ceil(5 % of 100) = 5 worst
    assert expected_shortfall([0.1, -0.2, 0.3]) == pytest.approx(0.2)  # ceil(0.15) = 1
    table = pl.DataFrame({"variant": ["replay", "path-0", "path-1", "path-2", "path-3"],
                          "kind": ["replay", "path", "path", "path", "path"], "leverage": [None] * 5,
                          "status": ["ran"] * 5, "return": [-0.5, -1.0, 0.0, 0.1, 0.2],
                          "max_drawdown": [0.6, 1.0, 0.1, 0.05, 0.0],
                          "liquidated": [False, True, False, False, False]},
                         schema_overrides={"leverage": pl.Float64})
    s = summarize(table).filter(pl.col("group") == "monte carlo").row(0, named=True)
    assert s["n"] == 4 and s["p_liquidation"] == 0.25
    assert s["return_q50"] == pytest.approx(0.05) and s["es95"] == pytest.approx(1.0)
    assert s["drawdown_q25"] == pytest.approx(np.quantile([1.0, 0.1, 0.05, 0.0], 0.25))


# --- stress plans ------------------------------------------------------------------------------
def test_scenario_file_combinations_and_variants(tmp_path):
    from backtest.scenarios.run import load_scenario_file, parse_scenarios, variants

    f = tmp_path / "combos.toml"
    f.write_text('[[scenario]]\nname = "deeper and faster"\ntransforms = ["deepen:factor=1.4,start=2026-02-04,'
                 'end=2026-02-05T21:00", "accelerate:factor=2,start=2026-02-05,end=2026-02-06"]\n'
                 '[[scenario]]\ntransforms = [{kind = "gap", pct = -5, at = "2026-02-05T20:00"}]\n')
    named = parse_scenarios(load_scenario_file(f))
    assert [n for n, _ in named] == ["deeper and faster", "gap,pct=-5.0,at=2026-02-05T20:00"]
    assert [s.kind for s in named[0][1]] == ["deepen", "accelerate"]
    vs = variants(load_scenario_file(f), paths=3, leverages=[2, 10], crowd=True)
    # (replay, crowd, 2 scenarios, 3 paths) x 2 leverages
    assert len(vs) == 14 and {v.leverage for v in vs} == {2.0, 10.0}
    assert all(v.crowd for v in vs if v.kind != "replay") and not any(v.crowd for v in vs if v.kind == "replay")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 1\n")
    with pytest.raises(ConfigError, match="expected \\[\\[scenario\\]\\]"):
        load_scenario_file(bad)


def test_cascade_kernel_is_bit_identical_without_jit():
    data = crash_path(2)
    ts, px = data[("trades", "X")]["ts_ns"], data[("trades", "X")]["price"]
    b = buckets(Crowd(symbol="X", open_interest=5e9, long_share=0.6, entries=9), float(px[0]))
    longs = np.flatnonzero(b["side"] > 0)
    longs = longs[np.argsort(-b["liq_price"][longs], kind="stable")]
    shorts = np.flatnonzero(b["side"] < 0)
    shorts = shorts[np.argsort(b["liq_price"][shorts], kind="stable")]
    args = (ts, px, b["liq_price"][longs], b["notional"][longs], b["liq_price"][shorts], b["notional"][shorts],
            0.3 * sigma_day(ts, px) / math.sqrt(2e9), 120e9 / math.log(2))
    jit, py = _cascade(*args), _cascade.py_func(*args)
    assert np.any(jit[0]) and all(np.array_equal(a, b) for a, b in zip(jit, py))


def test_wilson_interval_hand_computed():
    from backtest.report.stress_figures import wilson

    lo, hi = wilson(0, 6)  # k = 0: [0, z^2 / (n + z^2)]
    assert lo == 0.0 and hi == pytest.approx(1.96 ** 2 / (6 + 1.96 ** 2), rel=1e-12)
    lo, hi = wilson(3, 6)  # symmetric around 1/2
    assert lo + hi == pytest.approx(1.0, rel=1e-12)
