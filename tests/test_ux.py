"""Issue #14, what a user sees: refusals, warnings and summaries instead of silent surprises."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from backtest import engine
from backtest.cli import cli
from backtest.errors import CascadeError, ConfigError, DataError
from test_cli_run import T0, build_dataset


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    return build_dataset(tmp_path_factory.mktemp("ux") / "btc", n=600)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


# --- #14.4: empty date ranges -------------------------------------------------------------------
@pytest.mark.parametrize("start,end,what", [
    ("2026-02-06", "2026-02-05", "is not before end"),
    ("2026-02-06", "2026-02-06", "is not before end"),
    ("2026-03-01", None, "no events from 2026-03-01"),
    (None, "2026-01-01", "no events from the start"),
])
def test_empty_range_refused(ds, tmp_path, start, end, what):
    with pytest.raises(CascadeError, match=what):
        engine.run("reference", ds, start=start, end=end, out=tmp_path / "r")
    assert not (tmp_path / "r").exists()
    args = ["run", "reference", "--data", ds, "--out", tmp_path / "c", "-q"]
    args += ["--start", start] if start else []
    args += ["--end", end] if end else []
    r = invoke(*args)
    assert r.exit_code != 0 and what in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "c").exists()


def test_gap_inside_the_data_refused(ds, tmp_path):
    # inside the data's span, between two trades (they are minutes apart)
    with pytest.raises(DataError, match="no events from .* the data covers"):
        engine.run("reference", ds, start=T0 + 1, end=T0 + 2, out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


# --- #14.11: quoted values are capped in every message --------------------------------------------
def test_shown_caps_long_values():
    from backtest.errors import shown

    assert shown("abc") == "'abc'"
    s = shown("x" * 10_000_000)
    assert len(s) < 100 and "10,000,000 chars" in s


def test_importer_error_with_a_huge_field_is_short(tmp_path):
    from backtest.data.importers import parse_file

    f = tmp_path / "t.csv"
    f.write_text("1,62000.5,0.01,620.0,1770249600000,true\n2," + "9" * 5 + "x" * 10_000_000
                 + ",0.01,620.0,1770249600001,false\n")
    with pytest.raises(DataError) as e:
        parse_file(f, "binance-trades")
    assert len(str(e.value)) < 400 and "t.csv:2, column 'price'" in str(e.value), str(e.value)[:500]


def test_param_and_config_errors_are_short():
    from backtest.config import RunConfig

    huge = "y" * 1_000_000
    with pytest.raises(ConfigError) as e:
        RunConfig.from_dict({"margin": {"mode": huge}})
    assert len(str(e.value)) < 300
    from backtest.plugins.resolve import resolve_strategy

    with pytest.raises(ConfigError) as e:
        resolve_strategy("reference").resolve_params({"entry": huge})
    assert len(str(e.value)) < 300


def test_any_cascade_error_is_capped():
    e = CascadeError("bad " + "z" * 100_000 + " (fix: do this)")
    assert len(str(e)) < 2100 and str(e).endswith("(fix: do this)")


# --- #14.10: output folders are locked ----------------------------------------------------------
def test_output_lock_refuses_a_second_writer(tmp_path):
    import subprocess
    import sys

    from backtest.atomic import output_lock

    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from backtest.atomic import output_lock\n"
        f"with output_lock({str(out)!r}):\n    print('held', flush=True); sys.stdin.read()")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CascadeError, match=r"being written by another process \(pid \d+\)"):
            with output_lock(out):
                pass
        r = invoke("run", "reference", "--data", "nowhere", "--out", out, "-q")
        assert r.exit_code == 1 and "being written by another process" in r.output, r.output
        with pytest.raises(CascadeError, match="being written"):
            engine.run("reference", "nowhere", out=out)
    finally:
        holder.communicate("")
    with output_lock(out):  # released (and the lock file removed) when the holder ends
        with output_lock(out):  # reentrant within a process
            pass
    assert not list(tmp_path.glob(".*"))


def test_run_refuses_to_replace_a_finished_run(ds, tmp_path):
    out = tmp_path / "r"
    assert invoke("run", "reference", "--data", ds, "--out", out, "-q").exit_code == 0
    r = invoke("run", "reference", "--data", ds, "--out", out, "-q")
    assert r.exit_code == 2 and "already holds a run: pass --overwrite" in r.output, r.output
    r = invoke("run", "reference", "--data", ds, "--out", out, "-q", "--overwrite")
    assert r.exit_code == 0, r.output
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    r = invoke("run", "reference", "--data", ds, "--out", other, "-q", "--overwrite")
    assert r.exit_code == 2 and "is not a run folder" in r.output
    assert (other / "notes.txt").read_text() == "keep me"


# --- #14.5: rejected orders in the summary and the report ----------------------------------------
REJECTER = '''
from backtest import Strategy, buy


class Rejecter(Strategy):
    """Three orders too big for the account, two below the lot size, then nothing."""
    n: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if self.n < 3:
            buy(c, sym, 1000.0)
        elif self.n < 5:
            buy(c, sym, 0.0001)
        self.n += 1
'''


@pytest.mark.slow  # compiles a strategy
def test_rejects_by_reason_in_summary_and_report(ds, tmp_path):
    from backtest.report.tearsheet import rejects_html
    from backtest.result import Result

    f = tmp_path / "rejecter.py"
    f.write_text(REJECTER)
    out = tmp_path / "r"
    r = invoke("run", f, "--data", ds, "--out", out, "-q")
    assert r.exit_code == 0, r.output
    assert "rejected orders 5 (insufficient_margin 3, below_lot_size 2)" in r.output, r.output
    res = Result.load(out)
    assert res.rejects == {"insufficient_margin": 3, "below_lot_size": 2}
    html = rejects_html(res.rejects)
    assert "Rejected orders (5)" in html and "<td>insufficient_margin</td><td class='num'>3</td>" in html
    r = invoke("run", f, "--data", ds, "--out", tmp_path / "j", "-q", "--json")
    assert json.loads(r.output)["rejects"] == {"insufficient_margin": 3, "below_lot_size": 2}


def test_rejects_unrecorded_are_counted():
    import polars as pl

    from backtest.result import rejects_by_reason, rejects_text

    orders = pl.DataFrame({"status": [6, 6, 4], "reason": [1, 4, 0]})
    got = rejects_by_reason(orders, total=5)
    assert got == {"below_lot_size": 1, "insufficient_margin": 1, "unrecorded": 3}
    assert rejects_text({}) == "0"


# --- #14.3 and #14.6: hooks the run can never call, timers, missing marks/funding ------------------
def test_misspelt_hook_refused_with_suggestion():
    from backtest import Strategy
    from backtest.errors import StrategyError

    with pytest.raises(StrategyError, match=r"Bad\.on_ticks is not a hook: did you mean on_tick\?"):
        class Bad(Strategy):
            def on_ticks(self, c, ts_ns, sym, price, qty, side):
                pass


def test_bad_class_timer_refused():
    from backtest import Strategy

    with pytest.raises(ConfigError, match="T.timer: expected a duration"):
        class T(Strategy):
            timer = "hourly"


def test_hook_warnings():
    from backtest import Strategy

    class AllHooks(Strategy):
        timer = None

        def on_timer(self, c, ts_ns):
            pass

        def on_quote(self, c, ts_ns, sym, bid, ask, bid_qty, ask_qty):
            pass

        def on_mark(self, c, ts_ns, sym, mark_price, index_price):
            pass

        def on_funding(self, c, ts_ns, sym, rate, payment):
            pass

    got = AllHooks.hook_warnings(timer_ns=0, kinds={"trades"}, funding=False)
    assert [w.split(" defines ")[1].split(" ")[0] for w in got] == ["on_timer", "on_quote", "on_mark",
                                                                     "on_funding"]
    assert "--timer 1h" in got[0]
    assert AllHooks.hook_warnings(timer_ns=1, kinds={"trades", "quotes", "marks"}, funding=True) == []

    class Hourly(AllHooks):
        timer = "1h"

    assert Hourly.timer_ns() == 3_600_000_000_000


def test_perp_data_warnings():
    from backtest.data.coverage import perp_data_warnings
    from backtest.data.instruments import Instrument

    perp = Instrument("BTCUSDT", "linear_perpetual", "BTC", "USDT", "USDT", 0.1, 0.001)
    spot = Instrument("ETHUSDT", "spot", "ETH", "USDT", "USDT", 0.01, 0.001)
    ins = {"BTCUSDT": perp, "ETHUSDT": spot}
    got = perp_data_warnings(ins, {("trades", "BTCUSDT"), ("trades", "ETHUSDT")})
    assert len(got) == 2 and "no mark prices" in got[0] and "last trade price" in got[0]
    assert "no funding rates" in got[1] and "no funding is charged" in got[1]
    assert perp_data_warnings(ins, {("trades", "BTCUSDT")}, trigger="last", funding="0.0001") == []
    assert perp_data_warnings(ins, {("marks", "BTCUSDT"), ("funding", "BTCUSDT")}) == []


TIMED = '''
from backtest import Strategy


class Timed(Strategy):
    """Counts timer calls."""
    timer = "6h"
    calls: int = 0

    def on_timer(self, c, ts_ns):
        self.calls += 1
'''


@pytest.mark.slow  # compiles a strategy
def test_class_timer_and_timer_flag_and_warnings(ds, tmp_path):
    from backtest.errors import CascadeWarning
    from backtest.result import Result

    f = tmp_path / "timed.py"
    f.write_text(TIMED)
    with pytest.warns(CascadeWarning) as rec:
        res = engine.run(str(f), ds)
    msgs = [str(w.message) for w in rec]
    assert any("no mark prices" in m for m in msgs) and any("no funding rates" in m for m in msgs)
    assert res.manifest["warnings"] == msgs
    assert res.manifest["strategy"]["state"]["calls"] == 7  # 6h timers in 2 days of data (after t0)
    r = invoke("run", f, "--data", ds, "--out", tmp_path / "r", "-q", "--timer", "12h")
    assert r.exit_code == 0, r.output
    assert "warning: BTCUSDT: no mark prices in the data" in r.output
    assert Result.load(tmp_path / "r").manifest["strategy"]["state"]["calls"] == 3
    assert "warning:" not in invoke("run", f, "--data", ds, "--out", tmp_path / "s", "-q", "--set",
                                    "margin.trigger=last", "--set", "margin.funding=0").output


# --- #14.21: CLI conveniences -----------------------------------------------------------------------
def test_bool_for_number_params_and_vice_versa_refused(ds, tmp_path):
    from backtest import Strategy, param

    class P(Strategy):
        size: float = param(1.0)
        n: int = param(2)
        on: bool = param(False)

    for name, value in (("size", True), ("n", False), ("on", 2.5), ("on", 1.0), ("on", 3)):
        with pytest.raises(ConfigError, match=f"parameter '{name}': cannot use"):
            P.resolve_params({name: value})
    assert P.resolve_params({"size": 2, "n": 3.0, "on": 1}) == {"size": 2.0, "n": 3, "on": True}
    assert P.resolve_params({"on": "true"}) == {"on": True}
    r = invoke("run", "reference", "--data", ds, "--out", tmp_path / "r", "-p", "size=true")
    assert r.exit_code == 2 and "cannot use True as float" in r.output, r.output


@pytest.mark.slow  # compiles a strategy
def test_saved_config_has_absolute_paths(ds, tmp_path, monkeypatch):
    import tomllib

    monkeypatch.chdir(ds.parent)
    (ds.parent / "s.py").write_text(TIMED)
    r = invoke("run", "s.py:Timed", "--data", ds.name, "--out", "runs/a", "-q")
    assert r.exit_code == 0, r.output
    cfg = tomllib.loads((ds.parent / "runs/a/config.toml").read_text())
    assert cfg["data"] == str(ds.resolve()) and cfg["out"] == str((ds.parent / "runs/a").resolve())
    assert cfg["strategy"] == f"{(ds.parent / 's.py').resolve()}:Timed"
    monkeypatch.chdir(tmp_path)  # rerun the saved config from another folder
    r = invoke("run", "--config", ds.parent / "runs/a/config.toml", "--out", "b", "-q")
    assert r.exit_code == 0, r.output


def test_leverage_groups():
    from backtest.config import leverage_by_symbol
    from backtest.data.instruments import Instrument

    lin = Instrument("BTCUSDT", "linear_perpetual", "BTC", "USDT", "USDT", 0.1, 0.001)
    inv = Instrument("BTCUSD", "inverse_perpetual", "BTC", "USD", "BTC", 0.1, 1.0)
    spot = Instrument("ETHUSDT", "spot", "ETH", "USDT", "USDT", 0.01, 0.001)
    ins = {"BTCUSDT": lin, "BTCUSD": inv, "ETHUSDT": spot}
    assert leverage_by_symbol({"*": 5}, ins) == {"BTCUSDT": 5.0, "BTCUSD": 5.0, "ETHUSDT": 1.0}
    assert leverage_by_symbol({"*": 5, "perp": 4, "inverse_perpetual": 3, "BTCUSDT": 20}, ins) == \
        {"BTCUSDT": 20.0, "BTCUSD": 3.0, "ETHUSDT": 1.0}
    assert leverage_by_symbol({}, ins) == {"BTCUSDT": 1.0, "BTCUSD": 1.0, "ETHUSDT": 1.0}
    with pytest.raises(ConfigError, match="'SOLUSDT' is neither a symbol of this run nor a group"):
        leverage_by_symbol({"SOLUSDT": 2}, ins)


def test_leverage_star_on_the_command_line(ds, tmp_path):
    r = invoke("run", "reference", "--data", ds, "--out", tmp_path / "r", "-q", "--json", "--leverage", "*=5")
    assert r.exit_code == 0, r.output
    from backtest.result import Result

    assert Result.load(tmp_path / "r").manifest["config"]["leverage"] == {"*": 5}
    r = invoke("run", "reference", "--data", ds, "--out", tmp_path / "s", "-q", "--leverage", "*=500")
    assert r.exit_code == 2 and "leverage.BTCUSDT: 500x is above the instrument's maximum" in r.output


@pytest.mark.slow  # spawns worker processes
def test_sweep_from_a_script_without_main_guard_says_what_to_do(ds, tmp_path):
    import os
    import subprocess
    import sys

    # batch_size=1: one batch per set, so worker processes are spawned (one batch of all three
    # would run in the script's own process, which needs no guard)
    script = tmp_path / "sweep_script.py"
    script.write_text("from backtest.sweep import run_sweep\n"
                      f"run_sweep('reference', {str(ds)!r}, {{'entry': [61000, 61500, 62000]}}, "
                      f"out={str(tmp_path / 'sw')!r}, jobs=2, batch_size=1)\n")
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert p.returncode != 0
    assert 'put the call under `if __name__ == "__main__":`' in p.stderr, p.stderr[-3000:]
    assert "BrokenProcessPool" not in p.stderr and p.stderr.count("Traceback") == 1, p.stderr[-3000:]


def test_a_failing_run_still_ends_in_one_error_line(ds, tmp_path):
    """Warnings come after the summary; a run that fails after warning shows only its error."""
    r = invoke("run", "reference", "--data", ds, "--out", tmp_path / "r", "-q",
               "--start", "2026-02-05T00:00:00.000001", "--end", "2026-02-05T00:00:00.000002")
    lines = r.output.strip().splitlines()
    assert r.exit_code == 1 and len(lines) == 1 and "no events from 2026-02-05T00:00:00.000001 to" in lines[0], r.output
    r = invoke("run", "reference", "--data", ds, "--out", tmp_path / "s", "-q")
    lines = r.output.strip().splitlines()
    assert r.exit_code == 0 and lines[-2].startswith("warning: BTCUSDT: no mark prices"), r.output
    assert lines[-1].startswith("warning: BTCUSDT: no funding rates") and lines[-3].startswith("saved ")
