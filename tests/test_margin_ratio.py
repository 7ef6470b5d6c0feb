"""Issue #16 item 5: the equity table's margin ratio is the one liquidation tests, per pool, so
it reaches 100% exactly when a position is liquidated (a 20x isolated long used to show 9.5%)."""
import numpy as np
import polars as pl
import pytest

import backtest as bt
from backtest.data.generate import generate_dataset

from lev_strategies import LevLong


@pytest.fixture(scope="module")
def crash(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash") / "feb"
    generate_dataset("feb-2026-crash", root, seed=3, scale=0.1)
    return root


def run_long(root, leverage, mode):
    return bt.run(LevLong, root, params={"leverage": leverage}, symbols=["BTCUSDT"],
                  config={"leverage": {"BTCUSDT": leverage}, "initial_balance": 10_000.0,
                          "margin": {"mode": mode}})


@pytest.mark.parametrize("mode", ["isolated", "cross"])
def test_the_margin_ratio_reaches_the_threshold_at_liquidation(crash, mode):
    from backtest.report.figures import fig_margin

    res = run_long(crash, 20.0, mode)
    (liq,) = res.liquidations.rows(named=True)
    eq = res.equity
    before = eq.filter(pl.col("ts_ns") < liq["ts_ns"])
    # the row of the trigger state, recorded just before the positions are closed
    at = eq.filter((pl.col("ts_ns") == liq["ts_ns"]) & (pl.col("margin_ratio") >= 1.0)).row(0, named=True)
    assert at["margin_ratio"] >= 1.0
    assert (before["margin_ratio"] < 1.0).all()
    if mode == "isolated":
        assert at["iso_margin_ratio"] >= 1.0 and at["iso_margin_sym"] == 0
        assert at["cross_margin_ratio"] == 0.0
    else:
        assert at["cross_margin_ratio"] >= 1.0 and at["iso_margin_sym"] == -1
    # the ratio is maintenance margin / the pool's margin balance, recomputed by hand at a
    # sample while the position was open
    open_ = before.filter(pl.col("margin_ratio") > 0).row(-1, named=True)
    assert open_["margin_ratio"] == max(open_["cross_margin_ratio"], open_["iso_margin_ratio"])
    # R4.5: a liquidation's cost is measured from the mark at the trigger
    (lf,) = res.fills.filter(pl.col("liquidity") == int(bt.Liquidity.LIQUIDATION)).rows(named=True)
    assert lf["bench_price"] == liq["mark_price"]
    assert lf["slippage"] == lf["side"] * (lf["price"] - lf["bench_price"]) * lf["qty"]
    fig = fig_margin(res)
    line = [ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "margin-ratio"][0]
    assert np.nanmax(line.get_ydata()) >= 1.0  # the plotted line reaches the threshold
