"""Issue #16 item 5: one max-drawdown definition (headline = metrics = report, a negative
fraction), an explicit buy-and-hold benchmark (`--benchmark`), ratios withheld with a reason."""
import pytest

import backtest as bt
from backtest.core.schema import OrderType
from backtest.errors import ConfigError

from scripted import Scripted, load_script
from test_execution import dataset, submit

GAP = [(1, 62000.0, 1.0), (2, 62000.0, 1.0), (3, 59000.0, 1.0), (4, 59500.0, 1.0)]
QUOTES = [(0, 61999.9, 62000.1, 5.0, 5.0)]


def run(root, **config):
    state = Scripted.new_state({}, ["X"])
    load_script(state, [submit(0, OrderType.MARKET, 1, 1.0)])
    return bt.run(Scripted, root, state=state, config={"initial_balance": 1e5, **config})


def test_headline_drawdown_is_the_metrics_drawdown(tmp_path):
    res = run(dataset(tmp_path / "d", GAP, QUOTES), sample_interval="0")
    h, m = res.headline, res.manifest["metrics"]
    assert h["max_drawdown"] == m["max_drawdown"] < 0 and "max_drawdown_pct" not in h
    # by hand: bought at 62,000.1 from 100,000; the trade at 59,000 is not sampled
    # (sample_interval 0): the final row at 59,500 is the lowest sample, but the kernel saw the
    # equity at 59,000 (R6.1), so the one max drawdown is that deeper, unsampled trough
    assert m["max_drawdown_sampled"] == pytest.approx((1e5 + 59500.0 - 62000.1) / 1e5 - 1)
    assert h["max_drawdown"] == h["max_drawdown_any_event"] == pytest.approx((59000.0 - 62000.1) / 1e5)
    assert m["sharpe"] is None and "fewer than min_ratio_periods" in m["ratios_note"]
    assert m["benchmark_symbol"] == "X"  # the first (only) symbol traded


def test_an_unknown_benchmark_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="benchmark: symbol 'Y' not in this run"):
        run(dataset(tmp_path / "d", GAP, QUOTES), benchmark="Y")


def test_cli_has_a_benchmark_flag():
    from click.testing import CliRunner

    from backtest.cli import cli

    out = CliRunner().invoke(cli, ["run", "--help"])
    assert out.exit_code == 0 and "--benchmark SYMBOL" in out.output
