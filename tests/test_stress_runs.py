"""Stress runs through the engine (#19): a neutral scenario and an empty crowd replay the data bit
for bit; bt.stress and `backtest stress` write the table, the summary and the figures, resume,
and give the same results for the same seed."""
import json
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

import backtest as bt
from backtest.data.generate import generate_dataset
from backtest.scenarios.run import build_data

SYM = "BTCUSDT"
CONFIG = {"initial_balance": 10_000.0, "leverage": {SYM: 10}, "margin": {"mode": "isolated"}}
PARAMS = {"leverage": 10.0, "fraction": 0.98}
NEUTRAL = [["deepen", {"factor": 1.0, "start": "2026-02-05", "end": "2026-02-06"}],
           ["accelerate", {"factor": 1.0, "start": "2026-02-05", "end": "2026-02-06"}],
           ["thin", {"spread": 1.0, "depth": 1.0}], ["funding", {"rate": 0.0}],
           ["gap", {"pct": 0.0, "at": "2026-02-05T20:00"}],
           ["outage", {"start": "2030-01-01", "end": "2030-01-02"}]]


@pytest.fixture(scope="module")
def crash(tmp_path_factory):
    root = tmp_path_factory.mktemp("stress") / "crash"
    generate_dataset("feb-2026-crash", root, seed=7, scale=0.05)
    return root


def _tables(res):
    return {k: res.tables[k] for k in ("fills", "orders", "equity", "liquidations", "funding", "bars")}


def test_neutral_scenarios_and_empty_crowd_replay_bit_for_bit(crash, tmp_path):
    plain = bt.run("buy_and_hold", crash, symbols=[SYM], params=PARAMS, config=CONFIG)
    recipe = {"scenarios": NEUTRAL, "path": None, "crowd": {"open_interest": 0.0}}
    derived = build_data(crash, recipe, tmp_path / "derived", tmp_path / "crowd.parquet")
    res = bt.run("buy_and_hold", derived, symbols=[SYM], params=PARAMS, config=CONFIG)
    assert plain.liquidations.height == 1  # the 10x long is liquidated in the replay
    for name, table in _tables(plain).items():
        assert table.equals(_tables(res)[name]), name
    assert res.headline == plain.headline


def test_deepen_reaches_the_target_low_in_the_engine(crash, tmp_path):
    # the replay's low times (target / low) ** ... : factor = log(55k / p0) / log(low / p0)
    from backtest.scenarios.transforms import load_streams

    px = load_streams(crash, [SYM])[("trades", SYM)]["price"]
    p0, low = px[0], px.min()
    f = np.log(55_000 / p0) / np.log(low / p0)
    recipe = {"scenarios": [["deepen", {"factor": f, "start": 0, "end": "2026-02-05T21:00"}]], "path": None,
              "crowd": None}
    derived = build_data(crash, recipe, tmp_path / "deep")
    deep = load_streams(derived, [SYM])
    assert deep[("trades", SYM)]["price"].min() == pytest.approx(55_000, rel=1e-9)
    q = deep[("quotes", SYM)]
    assert np.all(q["bid"] <= q["ask"])


@pytest.mark.slow
def test_stress_api_cli_report_and_resume(crash, tmp_path):
    out = tmp_path / "st"
    kw = dict(symbols=[SYM], params=PARAMS, config=CONFIG, paths=3, seed=4, crowd={"impact": 2.0},
              scenarios=["deepen:factor=1.4,start=2026-02-05,end=2026-02-05T21:00", "thin:spread=3,depth=0.3"],
              leverages=[2, 10], jobs=1)
    res = bt.stress("buy_and_hold", crash, out=out, **kw)
    # replay, crowd, 2 scenarios, 3 paths; at two leverages
    assert res.table.height == 14 and res.failed == 0 and res.ran == 14
    t = res.table
    for col in ("final_equity", "max_drawdown", "liquidated", "liquidation_time", "worst_margin_ratio"):
        assert col in t.columns
    rep10 = t.filter((pl.col("variant") == "replay") & (pl.col("leverage") == 10)).row(0, named=True)
    rep2 = t.filter((pl.col("variant") == "replay") & (pl.col("leverage") == 2)).row(0, named=True)
    assert rep10["liquidated"] and not rep2["liquidated"]
    s = res.summary.filter(pl.col("group") == "monte carlo")
    assert s.height == 2 and {"p_liquidation", "return_q05", "drawdown_q95", "es95"} <= set(s.columns)
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary) == res.summary.height
    crowd = pl.read_parquet(t.filter(pl.col("variant") == "crowd")["crowd_table"][0])
    assert crowd.filter(pl.col("ts_ns").is_not_null()).height > 0

    # resumable: the same call skips every run and gives the same table
    again = bt.stress("buy_and_hold", crash, out=out, **kw)
    assert again.ran == 0 and again.skipped == 14
    assert again.table.drop("status").equals(res.table.drop("status"))

    from backtest.cli import cli

    runner = CliRunner()
    r = runner.invoke(cli, ["report", str(out), "--format", "png"])
    assert r.exit_code == 0, r.output
    for name in ("fan", "liquidation_vs_leverage", "crowd", "scenarios"):
        assert (out / "report" / f"{name}.png").is_file()
    r = runner.invoke(cli, ["stress", "buy_and_hold", "--data", str(crash), "--symbols", SYM,
                            "--param", "leverage=10", "--leverage", f"{SYM}=10", "--margin-mode", "isolated",
                            "--set", "initial_balance=10000", "--out", str(tmp_path / "cli"),
                            "--scenario", "gap:pct=-8,at=2026-02-05T20:00", "--paths", "2", "--jobs", "1",
                            "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["ran"] == 4 and {row["group"] for row in doc["summary"]} == {"replay", "gap,pct=-8.0,at=2026-02-05T20:00", "monte carlo"}


def test_cli_errors_are_one_line(crash, tmp_path):
    from backtest.cli import cli

    r = CliRunner().invoke(cli, ["stress", "buy_and_hold", "--data", str(crash), "--out", str(tmp_path / "x"),
                                 "--scenario", "deepen:factr=2"])
    assert r.exit_code != 0 and "unknown parameter" in r.output and "Traceback" not in r.output


def test_same_seed_same_paths(crash, tmp_path):
    recipe = {"scenarios": [], "path": {"n": 1, "method": "bootstrap", "seed": 9, "block": "1h", "step": "1m"},
              "crowd": {}}
    a = build_data(crash, recipe, tmp_path / "a", tmp_path / "a.parquet")
    b = build_data(crash, recipe, tmp_path / "b", tmp_path / "b.parquet")
    from backtest.scenarios.transforms import load_streams

    sa, sb = load_streams(a), load_streams(b)
    assert sa.keys() == sb.keys()
    assert all(np.array_equal(sa[k][c], sb[k][c]) for k in sa for c in sa[k])
    assert pl.read_parquet(tmp_path / "a.parquet").equals(pl.read_parquet(tmp_path / "b.parquet"))


def test_bt_stress_is_the_function_after_importing_the_package():
    code = ("import backtest.scenarios.transforms, backtest as bt; import backtest.scenarios.run as r; "
            "assert bt.stress is r.stress")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_seed_paths_are_the_generator_with_the_next_seeds(crash, tmp_path):
    from backtest.scenarios.transforms import load_streams

    recipe = {"scenarios": [], "crowd": None,
              "path": {"n": 1, "method": "seeds", "seed": 6, "scale": 0.05, "scenario": "feb-2026-crash"}}
    path = load_streams(build_data(crash, recipe, tmp_path / ".data-x", symbols=[SYM]))
    ref = load_streams(crash, [SYM])  # generated with seed 7 = 6 + 1
    assert path.keys() == ref.keys()
    assert all(np.array_equal(path[k][c], ref[k][c]) for k in ref for c in ref[k])
    assert not any(p.name.startswith(".data-x") for p in tmp_path.iterdir() if p.name != ".data-x")


def test_stress_on_bars_and_liquidations(tmp_path):
    """`backtest stress` on a dataset of candles and other traders' liquidations (was KeyError:
    'bars' in the price transform). The gap at minute 2 moves the bars stamped at or after it, as
    the strategy's on_bar sees them, and the liquidation prices; volumes stay."""
    from pathlib import Path

    from backtest.cli import cli
    from backtest.scenarios.transforms import load_streams, write_streams

    here = Path(__file__).parent
    t0, minute = 1_770_249_600_000_000_000, 60_000_000_000  # 2026-02-05 00:00 UTC
    ts = t0 + minute * np.arange(1, 5, dtype=np.int64)
    ohlcv = np.array([[62000.0, 62050.0, 61950.0, 62000.0, 120.5], [62010.0, 62100.0, 61990.0, 62050.0, 98.0],
                      [62050.0, 62400.0, 61700.0, 62100.0, 310.25], [62100.0, 62200.0, 62000.0, 62150.0, 50.0]])
    streams = {("bars", SYM): {"ts_ns": ts, **{c: ohlcv[:, k] for k, c in enumerate(("open", "high", "low", "close",
                                                                                    "volume"))}},
               ("liquidations", SYM): {"ts_ns": ts - minute // 2, "price": np.array([61990.0, 62020.0, 62080.0, 62120.0]),
                                       "qty": np.full(4, 0.25), "side": np.array([1, -1, 1, -1], np.int8)}}
    src = tmp_path / "src"
    (tmp_path / "i").mkdir()
    (tmp_path / "i" / "instruments.json").write_bytes((here / "fixtures" / "exchange" / "instruments.json").read_bytes())
    write_streams(streams, tmp_path / "i", src)
    out = tmp_path / "st"
    r = CliRunner().invoke(cli, ["stress", f"{here / 'bar_strategies.py'}:BarBracket", "--data", str(src),
                                 "--symbols", SYM, "--out", str(out), "--jobs", "1", "--json",
                                 "--scenario", f"gap:pct=-10,at={int(ts[1])}"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert (doc["ran"], doc["failed"]) == (2, 0), pl.read_parquet(out / "table.parquet")["error"].to_list()
    table = pl.read_parquet(out / "table.parquet")
    state = {v: bt.Result.load(d).manifest["strategy"]["state"]
             for v, d in zip(table["variant"], table["run_dir"])}
    seen = {v: np.array(s["ohlcv"])[:4] for v, s in state.items()}
    assert seen["replay"].tolist() == ohlcv.tolist()
    gapped = ohlcv.copy()
    gapped[1:, :4] *= 0.9  # the bars stamped at or after the gap; volumes unchanged
    assert seen[next(v for v in seen if v != "replay")].tolist() == gapped.tolist()
    # the derived dataset is transient; the same transform on the source shows the liquidations
    from backtest.scenarios.transforms import apply, parse_scenario

    moved = apply(load_streams(src), [parse_scenario(f"gap:pct=-10,at={int(ts[1])}")])[("liquidations", SYM)]
    assert moved["price"].tolist() == [61990.0, 62020.0, 62080.0 * 0.9, 62120.0 * 0.9]
    assert moved["qty"].tolist() == [0.25] * 4
