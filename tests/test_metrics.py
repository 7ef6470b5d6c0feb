"""Metrics on tiny hand-computed series (see docs/metrics.md for the formulas)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from backtest import metrics as M
from backtest.result import Result

sys.path.insert(0, str(Path(__file__).parent))
from test_report import make_crash_result, make_empty_result  # noqa: E402

H = M.NS_PER_HOUR
D = M.NS_PER_DAY
T = 1_770_249_600 * 1_000_000_000  # 2026-02-05 00:00 UTC (a Thursday)


def equity_frame(ts, eq, gross=None) -> pl.DataFrame:
    n = len(ts)
    gross = np.zeros(n) if gross is None else np.asarray(gross, float)
    return pl.DataFrame({"ts_ns": np.asarray(ts, np.int64), "equity": np.asarray(eq, float),
                         "balance": np.asarray(eq, float), "upnl": np.zeros(n),
                         "gross_exposure": gross, "margin_used": np.zeros(n),
                         "maint_margin": np.zeros(n), "margin_ratio": np.zeros(n)})


def run(ts, eq, initial=None, **tables) -> dict:
    manifest = {"initial_balance": initial if initial is not None else eq[0]}
    return {"manifest": manifest, "tables": {"equity": equity_frame(ts, eq), **tables}}


# ---------------------------------------------------------------------------------------------
def test_hourly_sharpe_sortino_volatility_by_hand():
    # equity 100 -> 110 -> 99 -> 108.9 on the hour: returns +10%, -10%, +10%
    ts = [T, T + H, T + 2 * H, T + 3 * H]
    m = M.compute_metrics(run(ts, [100, 110, 99, 108.9]), min_periods=2, min_span_ns=0)
    assert m["return_freq"] == "1h" and m["periods_per_year"] == 8760 and m["n_returns"] == 3
    # mean = 1/30, sample sd = sqrt(((2/30)^2 * 2 + (4/30)^2) / 2) = 0.1/sqrt(3/4)... = 0.11547
    mean, sd = 1 / 30, math.sqrt((2 * (2 / 30) ** 2 + (4 / 30) ** 2) / 2)
    assert sd == pytest.approx(0.1154700538)
    assert m["sharpe"] == pytest.approx(mean / sd * math.sqrt(8760))
    assert m["sharpe"] == pytest.approx(0.2886751346 * 93.5948717)  # = 27.0185
    # downside deviation over all periods: sqrt((0 + 0.01 + 0) / 3)
    assert m["sortino"] == pytest.approx(mean / math.sqrt(0.01 / 3) * math.sqrt(8760))
    assert m["annual_volatility"] == pytest.approx(sd * math.sqrt(8760))
    assert m["total_return"] == pytest.approx(0.089)
    assert m["annual_return"] == pytest.approx(math.expm1(math.log(1.089) * 365 * 24 / 3))
    assert m["calmar"] == pytest.approx(m["annual_return"] / 0.1)


def test_drawdown_depth_duration_and_time_under_water_by_hand():
    # peak 110 at 1h, trough 99 at 2h, never back to 110 by the end at 3h
    ts = [T, T + H, T + 2 * H, T + 3 * H]
    m = M.compute_metrics(run(ts, [100, 110, 99, 108.9]))
    assert m["max_drawdown"] == pytest.approx(-0.1)
    assert m["max_drawdown_peak_ts_ns"] == T + H
    assert m["max_drawdown_trough_ts_ns"] == T + 2 * H
    assert m["max_drawdown_recovery_ts_ns"] is None
    assert m["max_drawdown_duration_s"] == 2 * 3600  # peak to the end (not recovered)
    assert m["time_under_water"] == pytest.approx(1 / 3)  # only [2h, 3h) starts under water


def test_drawdown_with_recovery_and_a_second_spell():
    ts = [T + i * H for i in range(6)]
    eq = [100, 120, 90, 120, 130, 125]
    info = M.drawdown_info(np.array(ts), np.array(eq, float))
    assert info["max_drawdown"] == pytest.approx(-0.25)
    assert info["max_drawdown_peak_ts_ns"] == T + H
    assert info["max_drawdown_trough_ts_ns"] == T + 2 * H
    assert info["max_drawdown_recovery_ts_ns"] == T + 3 * H
    assert info["max_drawdown_duration_s"] == 2 * 3600
    assert info["longest_drawdown_s"] == 2 * 3600  # the last spell (4h -> 5h) is shorter
    assert M.time_under_water(np.array(ts), np.array(eq, float)) == pytest.approx(1 / 5)
    np.testing.assert_allclose(M.drawdown_series(np.array(eq, float)),
                               [0, 0, -0.25, 0, 0, 125 / 130 - 1])


def test_no_drawdown():
    ts = np.array([T, T + H, T + 2 * H])
    info = M.drawdown_info(ts, np.array([1.0, 2.0, 3.0]))
    assert info["max_drawdown"] == 0.0 and info["max_drawdown_duration_s"] == 0.0
    assert info["longest_drawdown_s"] == 0.0 and info["max_drawdown_peak_ts_ns"] is None


def test_resampling_grid_uses_last_value_at_or_before_each_boundary():
    ts = np.array([T + 10 * 60 * 10**9, T + 50 * 60 * 10**9, T + 70 * 60 * 10**9, T + 130 * 60 * 10**9])
    grid, vals = M.resample_last(ts, np.array([1.0, 2.0, 3.0, 4.0]), H)
    assert grid.tolist() == [ts[0], T + H, T + 2 * H, ts[3]]
    assert vals.tolist() == [1.0, 2.0, 3.0, 4.0]
    start, r = M.period_returns(ts, np.array([1.0, 2.0, 3.0, 4.0]), "1h")
    np.testing.assert_allclose(r, [1.0, 0.5, 1 / 3])
    assert start.tolist() == [ts[0], T + H, T + 2 * H]


def test_daily_frequency_for_long_runs():
    assert M.choose_frequency(29 * D) == "1h"
    assert M.choose_frequency(30 * D) == "1d"
    ts = [T + i * D for i in range(41)]
    eq = [100 * (1.01 if i % 2 else 1.0) for i in range(41)]  # +1%, -0.99%, ...
    m = M.compute_metrics(run(ts, eq))
    assert m["return_freq"] == "1d" and m["periods_per_year"] == 365 and m["n_returns"] == 40
    r = np.array([0.01, 1 / 1.01 - 1] * 20)
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(365))
    assert m["duration_days"] == pytest.approx(40.0)


def test_initial_balance_counts_as_the_first_point():
    # the first sample is already after a loss: the drawdown and the return start from 1000
    ts = [T, T + H]
    m = M.compute_metrics(run(ts, [900.0, 950.0], initial=1000.0))
    assert m["total_return"] == pytest.approx(-0.05)
    assert m["max_drawdown"] == pytest.approx(-0.1)


def test_trade_stats_by_hand():
    trades = pl.DataFrame({"net_pnl": [10.0, -5.0, 20.0, -15.0, 0.0, 99.0],
                           "return_pct": [0.1, -0.05, 0.2, -0.15, 0.0, 0.5],
                           "liquidated": [False, False, False, True, False, False],
                           "open": [False] * 5 + [True]})
    s = M.trade_stats(trades)
    assert s["n_trades"] == 5 and s["n_open_trades"] == 1
    assert s["win_rate"] == pytest.approx(2 / 5)
    assert s["profit_factor"] == pytest.approx(30 / 20)
    assert s["expectancy"] == pytest.approx(2.0)
    assert s["avg_win"] == pytest.approx(15.0) and s["avg_loss"] == pytest.approx(-10.0)
    assert s["n_liquidated_trades"] == 1
    assert M.trade_stats(trades.head(0))["win_rate"] != M.trade_stats(trades.head(0))["win_rate"]


def _fills(rows):
    """rows: (ts, sym, qty, price, fee, realized, slippage, position_after, liquidity)."""
    cols = ["ts_ns", "sym", "qty", "price", "fee", "realized_pnl", "slippage", "position_after",
            "liquidity"]
    df = pl.DataFrame([dict(zip(cols, r)) for r in rows])
    return df.with_columns(pl.col("ts_ns").cast(pl.Int64), pl.col("sym").cast(pl.Int32),
                           pl.col("liquidity").cast(pl.Int8), order_type=pl.lit(0, pl.Int8),
                           side=pl.lit(1, pl.Int8), symbol=pl.col("sym").cast(pl.Utf8))


def test_exposure_turnover_and_costs_by_hand():
    fills = _fills([
        (10, 0, 1.0, 100.0, 0.10, 0.0, 0.05, 1.0, 1),
        (20, 1, 2.0, 50.0, 0.10, 0.0, 0.00, 2.0, 0),
        (30, 0, 1.0, 110.0, 0.11, 10.0, 0.05, 0.0, 1),
        (50, 1, 2.0, 40.0, 1.00, -20.0, 0.40, 0.0, 2),
    ])
    ts = np.array([0, 100])
    assert M.exposure(fills, 0, 100) == pytest.approx(0.4)  # any position from 10 to 50
    assert M.traded_notional(fills) == pytest.approx(100 + 100 + 110 + 80)
    m = M.compute_metrics({"manifest": {"initial_balance": 1000.0},
                           "tables": {"equity": equity_frame(ts, [1000.0, 1000.0]),
                                      "fills": fills}})
    assert m["turnover"] == pytest.approx(390 / 1000)
    assert m["fees"] == pytest.approx(1.31)
    assert m["trading_fees"] == pytest.approx(0.31)
    assert m["liquidation_fees"] == pytest.approx(1.0)
    assert m["slippage_cost"] == pytest.approx(0.5)
    assert m["n_liquidations"] == 1  # from the fills when there is no liquidations table
    assert m["liquidation_loss"] == pytest.approx(21.0)  # -(-20) + 1 fee
    assert m["n_trades"] == 2 and m["win_rate"] == pytest.approx(0.5)


def test_funding_loans_liquidations_distance_leverage_by_hand():
    funding = pl.DataFrame({"ts_ns": [1, 2, 3], "sym": [0, 0, 1], "payment": [-1.0, 2.0, -3.0]})
    assert M.funding_stats(funding) == {"funding_net": -2.0, "funding_paid": 4.0,
                                        "funding_received": 2.0, "n_funding_payments": 3}
    loans = pl.DataFrame({
        "ts_ns": [1, 2, 3, 4, 2, 5], "loan_id": [1, 1, 1, 1, 2, 2],
        "event": ["open", "interest", "interest", "repay", "open", "liquidation"],
        "debt": [1000.0, 1001.5, 1003.0, 0.0, 500.0, 0.0],
        "collateral_qty": [0.1] * 6, "price": [60_000.0] * 6, "ltv": [0.5] * 6,
        "penalty": [0.0, 0.0, 0.0, 0.0, 0.0, 12.5]})
    ls = M.loan_stats(loans)
    assert ls["loan_interest"] == pytest.approx(3.0)
    assert ls["loan_penalties"] == pytest.approx(12.5) and ls["n_loan_liquidations"] == 1
    liqs = pl.DataFrame({"ts_ns": [5], "sym": [0], "realized_pnl": [-100.0], "fee": [5.0]})
    assert M.liquidation_stats(liqs, pl.DataFrame()) == {
        "n_liquidations": 1, "liquidation_loss": 105.0, "liquidation_fees": 5.0}
    bars = pl.DataFrame({"ts_ns": [1, 2, 3], "sym": [0, 0, 0], "symbol": ["BTC"] * 3,
                         "mark": [100.0, 50.0, 40.0], "liq_price": [90.0, 48.0, float("nan")]})
    d = M.min_liq_distance(bars)
    assert d["min_liq_distance"] == pytest.approx(0.04) and d["min_liq_distance_ts_ns"] == 2
    eqf = equity_frame([1, 2, 3, 4], [1000.0, 1000.0, 800.0, -5.0], gross=[0, 500, 2000, 900])
    assert M.max_leverage(eqf) == pytest.approx(2.5)  # the bankrupt sample is ignored


def test_compute_metrics_on_synthetic_crash_run(tmp_path):
    r = make_crash_result()
    m = M.compute_metrics(r)
    assert m["n_liquidations"] == 1 and m["n_liquidated_trades"] == 1
    assert m["funding_net"] == pytest.approx(r.funding["payment"].sum())
    assert m["final_equity"] == pytest.approx(r.equity["equity"][-1])
    assert -1 < m["max_drawdown"] < -0.5
    assert 10 < m["max_leverage"] < 20
    assert 0 < m["min_liq_distance"] < 0.001 and m["min_liq_distance_symbol"] == "BTCUSDT"
    assert 0 < m["exposure"] < 1
    assert m["benchmark_symbol"] == "BTCUSDT" and m["benchmark_return"] < -0.1
    # the account identity of the simulator: nothing is left unexplained
    c = M.cost_attribution(r)
    assert c["other"] == pytest.approx(0.0, abs=1e-6)
    assert c["net"] == pytest.approx(m["net_pnl"])
    # a saved run folder gives the same numbers
    r.save(tmp_path / "run")
    m2 = M.compute_metrics(tmp_path / "run")
    assert m2["sharpe"] == m["sharpe"] and m2["n_trades"] == m["n_trades"]


@pytest.mark.parametrize("with_equity", [True, False])
def test_empty_runs_give_defined_or_nan_metrics(with_equity):
    m = M.compute_metrics(make_empty_result(with_equity))
    assert m["n_trades"] == 0 and m["n_liquidations"] == 0 and m["fees"] == 0.0
    assert (m["sharpe"] is None or math.isnan(m["sharpe"])) and math.isnan(m["min_liq_distance"])
    if with_equity:
        assert m["total_return"] == 0.0 and m["max_drawdown"] == 0.0 and m["exposure"] == 0.0
    assert M.compute_metrics(Result({}, {}))["n_fills"] == 0


def test_ratios_are_not_reported_for_too_few_periods_or_too_short_a_run():
    ts = [T, T + H, T + 2 * H, T + 3 * H]
    m = M.compute_metrics(run(ts, [100, 110, 99, 108.9]))  # 3 hourly returns < 30 (default)
    assert m["sharpe"] is None and m["sortino"] is None and m["calmar"] is None
    assert "3 1h return periods, fewer than min_ratio_periods = 30" in m["ratios_note"]
    assert m["max_drawdown"] == pytest.approx(-0.1)  # the rest is still reported
    m = M.compute_metrics(run(ts, [100, 110, 99, 108.9]), min_periods=2, min_span_ns=4 * H)
    assert m["sharpe"] is None and "shorter than min_ratio_span" in m["ratios_note"]
    # the thresholds come from the run's config
    r = run(ts, [100, 110, 99, 108.9])
    r["manifest"]["config"] = {"min_ratio_periods": 3, "min_ratio_span": "2h"}
    m = M.compute_metrics(r)
    assert m["sharpe"] == pytest.approx(27.0185, rel=1e-5) and m["ratios_note"] is None


def test_benchmark_is_explicit_or_the_first_traded_symbol():
    bars = pl.DataFrame({"ts_ns": [1, 1, 2, 2], "sym": [0, 1, 0, 1], "symbol": ["A", "B", "A", "B"],
                         "close": [100.0, 10.0, 110.0, 5.0], "mark": [100.0, 10.0, 110.0, 5.0]})
    # B is traded first; A later with far more notional: B is still the benchmark
    fills = pl.DataFrame({"ts_ns": [1, 2], "symbol": ["B", "A"], "qty": [1.0, 100.0],
                          "price": [10.0, 110.0]})
    _, g, sym = M.buy_and_hold(bars, fills=fills)
    assert sym == "B" and g[-1] == pytest.approx(0.5)
    _, g, sym = M.buy_and_hold(bars, "A", fills=fills)
    assert sym == "A" and g[-1] == pytest.approx(1.1)
    _, _, sym = M.buy_and_hold(bars)  # nothing traded: the run's first symbol
    assert sym == "A"
    r = run([T, T + H], [100.0, 100.0], bars=bars)
    r["manifest"]["config"] = {"benchmark": "B"}  # the run's --benchmark
    m = M.compute_metrics(r)
    assert m["benchmark_symbol"] == "B" and m["benchmark_return"] == pytest.approx(-0.5)


def test_cost_and_liquidation_sums_skip_nan_and_null():
    """A NaN or null fee or PnL (a gap in a hand-made table) counts as nothing, in every sum."""
    fills = _fills([
        (10, 0, 1.0, 100.0, 0.10, 0.0, 0.05, 1.0, 1),
        (30, 0, 1.0, 90.0, float("nan"), -10.0, 0.05, 0.0, 2),
        (40, 0, 1.0, 95.0, 0.20, 0.0, float("nan"), 1.0, 1),
        (50, 0, 1.0, 80.0, 2.0, -15.0, 0.10, 0.0, 2),
    ]).with_columns(pl.when(pl.col("ts_ns") == 50).then(None).otherwise(pl.col("realized_pnl"))
                    .alias("realized_pnl"))
    assert M.liquidation_stats(pl.DataFrame(), fills) == {
        "n_liquidations": 2, "liquidation_loss": 10.0 + 2.0, "liquidation_fees": 2.0}
    c = M.cost_attribution({"manifest": {"initial_balance": 1000.0},
                            "tables": {"equity": equity_frame([0, 100], [1000.0, 980.0]), "fills": fills}})
    assert c["fees"] == pytest.approx(0.30) and c["liquidation_fees"] == 2.0
    assert c["slippage"] == pytest.approx(0.20) and c["realized_pnl"] == -10.0
    assert M._sum(pl.DataFrame({"x": [float("nan"), None]}, schema={"x": pl.Float64}), "x") == 0.0
