"""Issue #16: taker fills never use a quote the market has traded through (R2.3 effective book),
and every fill's cost is measured from its benchmark (R4.5). Hand-computed numbers."""
import math

import polars as pl
import pytest

from backtest.core.schema import OrderType

from test_execution import dataset, run, submit

# long 1 at the ask, sell-stop 61,000; then a trade prints at 59,000 with no new quote
QUOTES = [(0, 61999.9, 62000.1, 5.0, 5.0)]
GAP = [(1, 62000.0, 1.0), (2, 62000.0, 1.0), (3, 59000.0, 1.0)]
SCRIPT = [submit(0, OrderType.MARKET, 1, 1.0), submit(1, OrderType.STOP_MARKET, -1, 1.0, stop=61000.0)]
MODELS = [dict(slippage="spread"), dict(slippage="fixed_bps", slippage_bps=1.0),
          dict(slippage="sqrt_impact", impact_k=0.5, impact_horizon="10s"),
          dict(slippage="l1_depth", impact_k=0.5, impact_horizon="10s")]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m["slippage"])
def test_a_gap_stop_fills_at_or_below_the_trade_that_triggered_it(tmp_path, model):
    res = run(dataset(tmp_path / "d", GAP, QUOTES), SCRIPT, **model)
    stop = res.fills.row(1, named=True)
    assert stop["price"] <= 59000.0
    assert stop["bench_price"] == 61000.0  # measured from its trigger
    assert stop["slippage"] >= 2000.0


def test_the_gap_stop_costs_exactly_the_gap_in_the_default_model(tmp_path):
    res = run(dataset(tmp_path / "d", GAP, QUOTES), SCRIPT)
    entry, stop = res.fills.rows(named=True)
    # the market buy: at the ask 62,000.1 against the decision mid 62,000: 0.1 of spread
    assert entry["price"] == 62000.1 and entry["bench_price"] == 62000.0
    assert entry["cost_spread"] == pytest.approx(0.1) and entry["cost_drift"] == 0.0
    assert entry["cost_impact"] == 0.0
    # the stop: the bid 61,999.9 was traded through at 59,000; the effective bid is 59,000 and
    # the mid is the trade; the whole 2,000 below the trigger is drift (the gap), no spread
    assert stop["price"] == 59000.0 and stop["slippage"] == 2000.0
    assert (stop["cost_drift"], stop["cost_spread"], stop["cost_impact"]) == (2000.0, 0.0, 0.0)
    assert stop["realized_pnl"] == pytest.approx(59000.0 - 62000.1)


def test_ideal_fills_at_the_trade_and_realistic_never_beats_it(tmp_path):
    ideal = run(dataset(tmp_path / "d", GAP, QUOTES), SCRIPT, slippage="none")
    assert ideal.fills["price"][1] == 59000.0
    assert ideal.fills["slippage"][1] == 2000.0  # from the trigger, not the placement mid
    for m in MODELS:
        real = run(dataset(tmp_path / m["slippage"], GAP, QUOTES), SCRIPT, **m)
        assert real.headline["final_equity"] <= ideal.headline["final_equity"]


def test_a_buy_trade_through_the_ask_moves_the_ask(tmp_path):
    quotes = [(0, 99.0, 101.0, 3.0, 3.0)]
    trades = [(1, 100.0, 1.0), (2, 104.0, 1.0)]
    res = run(dataset(tmp_path / "d", trades, quotes), [submit(1, OrderType.MARKET, 1, 1.0)])
    # decided at the trade at 100 (mid 100), filled at the trade at 104 above the ask 101
    row = res.fills.row(0, named=True)
    assert row["price"] == 104.0 and row["bench_price"] == 100.0
    assert (row["cost_drift"], row["cost_spread"], row["cost_impact"]) == (4.0, 0.0, 0.0)


def test_a_new_quote_resets_the_effective_book(tmp_path):
    quotes = [(0, 99.0, 101.0, 3.0, 3.0), (2, 95.0, 97.0, 3.0, 3.0)]
    trades = [(1, 96.0, 1.0), (3, 96.0, 1.0)]
    res = run(dataset(tmp_path / "d", trades, quotes), [submit(2, OrderType.MARKET, -1, 1.0)])
    # decided at the quote 95/97 (mid 96): sells at its bid 95, 1 of spread
    row = res.fills.row(0, named=True)
    assert row["price"] == 95.0 and row["bench_price"] == 96.0
    assert (row["cost_drift"], row["cost_spread"], row["cost_impact"]) == (0.0, 1.0, 0.0)


def test_limit_fills_are_measured_from_their_limit(tmp_path):
    quotes = [(0, 99.0, 101.0, 3.0, 3.0)]
    trades = [(1, 100.0, 1.0), (2, 97.0, 1.0)]
    script = [submit(0, OrderType.LIMIT, 1, 1.0, limit=98.0),  # rests, filled by the trade at 97
              submit(0, OrderType.LIMIT, 1, 1.0, limit=102.0)]  # marketable: takes the ask 101
    res = run(dataset(tmp_path / "d", trades, quotes), script)
    by_oid = {r["oid"]: r for r in res.fills.rows(named=True)}
    maker, taker = by_oid[1], by_oid[2]
    assert maker["price"] == 98.0 and maker["slippage"] == 0.0 and maker["cost_drift"] == 0.0
    assert taker["price"] == 101.0 and taker["bench_price"] == 102.0
    assert taker["slippage"] == -1.0  # one better than its limit
    assert taker["cost_spread"] == 1.0 and taker["cost_drift"] == -2.0


def test_take_profit_and_trailing_stop_are_measured_from_their_trigger(tmp_path):
    trades = [(0, 100.0, 1.0), (1, 100.0, 1.0), (2, 103.0, 1.0), (3, 106.0, 1.0), (4, 101.0, 1.0)]
    script = [submit(0, OrderType.MARKET, 1, 2.0),
              submit(1, OrderType.TAKE_PROFIT_MARKET, -1, 1.0, stop=102.5),
              (1, "submit", 0, int(OrderType.TRAILING_STOP), -1, 1.0, 0.0, 0.0, 0, False, 0,
               3.0, 0.0, 0)]
    res = run(dataset(tmp_path / "d", trades), script)
    tp, trail = res.fills.row(1, named=True), res.fills.row(2, named=True)
    # no quotes: takers fill at the last trade; the take-profit triggers at 103 (above 102.5)
    assert tp["price"] == 103.0 and tp["bench_price"] == 102.5 and tp["slippage"] == -0.5
    # the trail follows the high 106 to a stop at 103; the trade at 101 triggers it
    assert trail["price"] == 101.0 and trail["bench_price"] == 103.0 and trail["slippage"] == 2.0
    assert trail["cost_drift"] == 2.0 and math.isclose(trail["cost_spread"], 0.0)


def test_costs_reach_the_manifest_the_waterfall_and_compare(tmp_path):
    from click.testing import CliRunner

    import click
    from backtest import metrics as M
    from backtest.cli.report import register
    from backtest.report.figures import fig_costs

    res = run(dataset(tmp_path / "d", GAP, QUOTES), SCRIPT)
    (row,) = res.manifest["costs_by_symbol"]
    assert row["slippage"] == pytest.approx(2000.1)
    assert row["cost_drift"] == 2000.0 and row["cost_spread"] == pytest.approx(0.1)
    assert row["cost_impact"] == 0.0
    c = M.cost_attribution(res)
    assert (c["cost_drift"], c["cost_spread"]) == (row["cost_drift"], row["cost_spread"])
    labels = [t.get_text() for t in fig_costs(res).axes[0].get_xticklabels()]
    assert "Latency / gaps" in labels and "Spread" in labels and "Slippage" not in labels

    @click.group()
    def group():
        pass

    register(group)
    d = res.save(tmp_path / "run")
    out = CliRunner().invoke(group, ["compare", str(d), str(d), "--out", str(tmp_path / "c")])
    assert out.exit_code == 0, out.output
    md = (tmp_path / "c" / "compare.md").read_text()
    assert "cost_drift" in md and "cost_spread" in md and "cost_impact" in md


BUNDLED = ["reference", "buy_and_hold", "ema_cross", "btc_mean_reversion", "capitulation_fade",
           "altcoin_short_hedge", "loan_borrower"]


@pytest.fixture(scope="module")
def crash_root(tmp_path_factory):
    from backtest.data.generate import generate_dataset

    root = tmp_path_factory.mktemp("crash") / "feb"
    generate_dataset("feb-2026-crash", root, seed=7, scale=0.05)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLED)
def test_realistic_execution_never_beats_ideal_on_the_crash(crash_root, name):
    """Done criterion of issue #16: the default (spread) execution loses at least as much as
    perfect fills for every bundled strategy, and every stop is charged from its trigger."""
    import backtest as bt
    from backtest.config import ExecutionConfig

    cfg = {"initial_balance": 100_000.0}
    real = bt.run(name, crash_root, config=cfg)
    ideal = bt.run(name, crash_root, config={**cfg, "execution": vars(ExecutionConfig.ideal())})
    assert real.headline["final_equity"] <= ideal.headline["final_equity"] + 1e-6
    stops = real.fills.filter(pl.col("order_type") == int(OrderType.STOP_MARKET))
    # a triggered sell stop never fills above its trigger, a buy stop never below
    assert (stops["side"] * (stops["price"] - stops["bench_price"]) >= 0).all()
