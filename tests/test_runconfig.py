"""TOML run configs: loading, flag overrides, unknown keys with suggestions, exit code 2."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from backtest.cli import cli
from backtest.errors import ConfigError
from backtest.runconfig import build_spec, load_toml, parse_assignments, parse_value, to_toml

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "run.toml"
    p.write_text(text)
    return p


BASE = """
strategy = "reference"
data = "data/x"
symbols = ["BTCUSDT"]
start = 2026-02-05
out = "runs/a"
seed = 3
leverage = { BTCUSDT = 20, ETHUSDT = 5 }
[params]
entry = 61000
[execution]
latency = "5ms"
[margin]
mode = "isolated"
"""


def test_examples_load():
    spec = build_spec(EXAMPLES / "crash_long_20x.toml")
    assert spec.strategy == "reference" and spec.config.leverage == {"BTCUSDT": 20}
    assert spec.config.margin.mode == "isolated" and spec.config.execution.latency == "5ms"
    sweep = build_spec(EXAMPLES / "sweep_reference.toml")
    assert set(sweep.sweep["grid"]) == {"entry", "stop"} and sweep.walk_forward["train"] == "1d"


def test_load_and_flag_overrides(tmp_path):
    path = write(tmp_path, BASE)
    spec = build_spec(path)
    assert spec.start == "2026-02-05" and spec.config.seed == 3 and spec.params == {"entry": 61000}
    spec = build_spec(path, {"out": "runs/b", "params": {"stop": 59000}, "leverage": {"BTCUSDT": 10},
                             "execution": {"latency": None}, "margin": {"mode": "cross"}},
                      {"execution.touch_fills": True, "sample_interval": "5m"})
    assert spec.out == "runs/b"
    assert spec.params == {"entry": 61000, "stop": 59000}  # tables merge key by key
    assert spec.config.leverage == {"BTCUSDT": 10, "ETHUSDT": 5}
    assert spec.config.execution.latency == "5ms"  # None = flag not given: the file value stays
    assert spec.config.execution.touch_fills is True and spec.config.margin.mode == "cross"
    assert spec.config.sample_interval == "5m"


@pytest.mark.parametrize("text, message", [
    ('leverge = { BTCUSDT = 2 }', "unknown key 'leverge'; did you mean 'leverage'?"),
    ('[execution]\nlatncy = "1ms"', "execution: unknown key 'latncy'; did you mean 'latency'?"),
    ('[sweep]\nmetrc = "sharpe"', "sweep: unknown key 'metrc'; did you mean 'metric'?"),
    ('sample_interval = "5 parsecs"', "sample_interval"),
    ('[margin]\nmode = "portfolio"', "margin.mode"),
    ('start = "yesterday"', "start"),
    ('[walk_forward]\ntrain = "a day"', "walk_forward.train"),
    ('[sweep]\nengine = "dask"', "sweep.engine"),
    ('symbols = 3', "symbols"),
    # TOML gives any type to any key: a tier's rate that is not a number (was a TypeError traceback)
    ('[[execution.fee_tiers]]\nvolume_30d = 4748\nmaker_fee_rate = 0.0001\ntaker_fee_rate = "spread"',
     "execution.fee_tiers[0].taker_fee_rate: expected a finite number such as 0.0004, got 'spread'"),
    ('[[execution.fee_tiers]]\nvolume_30d = [1]\nmaker_fee_rate = 0.0001\ntaker_fee_rate = 0.0004',
     "execution.fee_tiers[0].volume_30d: expected a finite number"),
    ('[[execution.fee_tiers]]\nvolume_30d = 0\nmaker_fee_rate = nan\ntaker_fee_rate = 0.0004',
     "execution.fee_tiers[0].maker_fee_rate"),
    # a duration past int64 event times (was an OverflowError traceback in the engine)
    ('timer = 1e308', "timer: at most 100 years ('36500d')"),
    ('[execution]\nlatency = "36501d"', "execution.latency: at most 100 years"),
])
def test_bad_keys_and_values(tmp_path, text, message):
    with pytest.raises(ConfigError) as e:
        build_spec(write(tmp_path, text))
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_longest_duration_is_accepted():
    from backtest.config import RunConfig

    assert RunConfig.from_dict({"timer": "36500d"}).timer_ns == 36_500 * 86_400 * 10**9


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="invalid TOML"):
        build_spec(write(tmp_path, "strategy = "))
    with pytest.raises(ConfigError, match="not found"):
        load_toml(tmp_path / "nope.toml")


def test_values_and_assignments():
    assert parse_value("5") == 5 and parse_value("0.5") == 0.5 and parse_value("true") is True
    assert parse_value("BTCUSDT") == "BTCUSDT" and parse_value("5ms") == "5ms"
    assert parse_assignments(["a=1", "b = x"], "--param") == {"a": 1, "b": "x"}
    with pytest.raises(ConfigError, match="--param: expected KEY=VALUE"):
        parse_assignments(["novalue"], "--param")


def test_effective_config_round_trips(tmp_path):
    pytest.importorskip("tomli_w")
    spec = build_spec(write(tmp_path, BASE))
    again = build_spec(write(tmp_path, to_toml(spec.to_dict())))
    assert again.config == spec.config and again.params == spec.params and again.symbols == spec.symbols


def test_cli_config_errors_exit_2(tmp_path):
    bad = write(tmp_path, 'strategy = "reference"\ndata = "x"\nout = "y"\nleverge = { BTCUSDT = 2 }\n')
    r = CliRunner().invoke(cli, ["run", "--config", str(bad)])
    assert r.exit_code == 2
    assert r.output.strip() == "error: unknown key 'leverge'; did you mean 'leverage'?"
    r = CliRunner().invoke(cli, ["run", "reference", "--out", "x"])  # no --data, no config
    assert r.exit_code == 2 and "missing data" in r.output
    r = CliRunner().invoke(cli, ["run", "reference", "--data", "x", "--out", "y", "--set", "execution.latncy=1ms"])
    assert r.exit_code == 2 and "did you mean 'latency'" in r.output
