"""`backtest data ...` via click's CliRunner, inspect_dataset, and one real subprocess."""
from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from backtest.cli import cli
from backtest.cli.data import IMPORT_FORMATS
from backtest.data.importers import FORMATS
from backtest.data.inspect import format_plain, inspect_dataset
from backtest.data.instruments import load_instruments, write_instruments
from backtest.data.layout import partition_dir
from backtest.data.writer import write_stream

from cli_helpers import BACKTEST

FIX = Path(__file__).parent / "fixtures" / "exchange"
INSTR = FIX / "instruments.json"
T0 = 1770249600 * 10**9  # 2026-02-05 00:00 UTC
MIN = 60 * 10**9


def run(*args):
    return CliRunner().invoke(cli, ["data", *map(str, args)])


def make_dataset(root: Path) -> Path:
    """BTCUSDT: trades with 1-minute closes 100, 110, 88, 99, plus funding; ETHUSDT: quotes only."""
    root.mkdir(parents=True, exist_ok=True)
    write_instruments(root / "instruments.json", load_instruments(INSTR))
    ts = np.array([T0, T0 + 30 * 10**9, T0 + MIN + 1, T0 + 2 * MIN + 5, T0 + 2 * MIN + 6, T0 + 3 * MIN + 7])
    px = np.array([105.0, 100.0, 110.0, 90.0, 88.0, 99.0])
    write_stream(root, "trades", "BTCUSDT", {"ts_ns": ts, "price": px, "qty": np.ones(6),
                                             "side": np.ones(6, np.int8)})
    write_stream(root, "funding", "BTCUSDT", {"ts_ns": np.array([T0, T0 + 8 * 3600 * 10**9]),
                                              "rate": np.array([-0.0003, 0.0001])})
    write_stream(root, "quotes", "ETHUSDT", {"ts_ns": np.array([T0, T0 + 5 * MIN]), "bid": np.array([3000.0, 2990.0]),
                                             "ask": np.array([3001.0, 2991.0]), "bid_qty": np.ones(2),
                                             "ask_qty": np.ones(2)})
    return root


@pytest.fixture
def ds(tmp_path):
    return make_dataset(tmp_path / "ds")


def test_help_has_examples():
    for args in ([], ["generate"], ["import"], ["validate"], ["inspect"]):
        r = run(*args, "--help")
        assert r.exit_code == 0, r.output
        assert "Example" in r.output


def test_import_formats_match_library():
    from backtest.cli.data import VENUES
    from backtest.data.catalogue import venues

    assert IMPORT_FORMATS == tuple(FORMATS)
    assert list(VENUES) == venues()


def test_import_command(tmp_path):
    out = tmp_path / "ds"
    r = run("import", "--format", "binance-trades", "--symbol", "BTCUSDT", "--out", out, "--instruments", INSTR,
            FIX / "binance-futures-trades.csv", FIX / "binance-spot-trades-us.csv")
    assert r.exit_code == 0, r.output
    assert "6 new" in r.stdout and "instruments file copied in" in r.stdout
    r = run("import", "--format", "binance-trades", "--symbol", "BTCUSDT", "--out", out, "--json",
            FIX / "binance-futures-trades.csv")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rows_added"] == 0
    r = run("validate", out)
    assert r.exit_code == 0 and r.stdout.startswith("OK: ") and "trades 6" in r.stdout


def test_import_bad_line_exit_1_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,10,1,10,1770249600000,true,true\n2,10,1,10,nope,true,true\n")
    out = tmp_path / "ds"
    r = run("import", "--format", "binance-trades", "--symbol", "BTCUSDT", "--out", out, "--instruments", INSTR, bad)
    assert r.exit_code == 1
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and "bad.csv:2" in r.stderr
    assert "column 'time'" in r.stderr and not out.exists()


def test_usage_errors_exit_2(tmp_path):
    r = run("import", "--symbol", "BTCUSDT", "--out", tmp_path, FIX / "bybit-trades.csv")
    assert r.exit_code == 2  # --format missing
    r = run("import", "--format", "bybit-trades", "--symbol", "BTC/USDT", "--out", tmp_path / "x",
            "--instruments", INSTR, FIX / "bybit-trades.csv")
    assert r.exit_code == 2 and "error:" in r.stderr


def test_validate_command(ds):
    r = run("validate", ds)
    assert r.exit_code == 0 and r.stdout.startswith("OK: ") and "3 files, 10 rows" in r.stdout
    r = run("validate", ds, "--json")
    assert json.loads(r.stdout)["rows"] == {"trades": 6, "quotes": 2, "funding": 2}
    f = partition_dir(ds, "trades", "BTCUSDT", "2026-02-05") / "part-0000.parquet"
    f.write_bytes(f.read_bytes()[:100])
    r = run("validate", ds)
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "unreadable Parquet file" in r.stderr
    r = run("validate", ds, "--all")
    assert r.exit_code == 1 and "unreadable Parquet file" in r.stderr


def test_inspect_dataset_values(ds):
    info = inspect_dataset(ds)
    assert [d["symbol"] for d in info] == ["BTCUSDT", "ETHUSDT"]
    btc, eth = info
    assert btc["kinds"] == ["trades", "funding"]
    assert btc["counts"] == {"trades": 6, "funding": 2}
    assert btc["start"] == "2026-02-05T00:00:00.000Z" and btc["end"] == "2026-02-05T08:00:00.000Z"
    assert btc["price_source"] == "trades"
    assert (btc["price_min"], btc["price_max"], btc["last_price"]) == (88.0, 110.0, 99.0)
    assert btc["max_drop_pct"] == -20.0  # minute closes 100, 110, 88, 99: 110 -> 88
    assert btc["max_drop_peak"] == "2026-02-05T00:01:00.000Z"
    assert btc["max_drop_trough"] == "2026-02-05T00:02:00.000Z"
    assert btc["max_1m_move_pct"] == -20.0 and btc["max_1m_move_at"] == "2026-02-05T00:02:00.000Z"
    assert (btc["funding_min"], btc["funding_max"]) == (-0.0003, 0.0001)
    assert eth["price_source"] == "quotes" and eth["last_price"] == 2990.5
    assert eth["funding_min"] is None and eth["counts"] == {"quotes": 2}
    text = format_plain(info)
    assert text.splitlines()[0].split()[:2] == ["symbol", "kinds"]
    assert "BTCUSDT" in text and "-20" in text


def test_inspect_command(ds, tmp_path):
    r = run("inspect", ds)
    assert r.exit_code == 0, r.output
    assert "BTCUSDT" in r.stdout and "ETHUSDT" in r.stdout and "max drop" in r.stdout
    r = run("inspect", ds, "--json")
    assert json.loads(r.stdout)[0]["last_price"] == 99.0
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run("inspect", empty)
    assert r.exit_code == 1 and "empty dataset" in r.stderr


def test_generate_command_with_fake_generator(monkeypatch, tmp_path):
    calls = []

    def generate_dataset(scenario, out, *, seed, scale, progress, book):
        calls.append((scenario, out, seed, scale))
        progress(1, 2, "BTCUSDT")
        progress(2, 2, "done")
        return {"ticks": 1000, "seconds": 0.5, "ticks_per_s": 2000.0}

    fake = types.ModuleType("backtest.data.generate")
    fake.generate_dataset = generate_dataset
    monkeypatch.setitem(sys.modules, "backtest.data.generate", fake)
    r = run("generate", "--out", tmp_path / "g", "--scale", "0.1")
    assert r.exit_code == 0, r.output
    assert calls == [("feb-2026-crash", str(tmp_path / "g"), 7, 0.1)]
    assert "1,000 ticks" in r.stdout and "2,000 ticks/s" in r.stdout
    r = run("generate", "--out", tmp_path / "g", "--seed", "3", "--json")
    assert json.loads(r.stdout)["ticks"] == 1000 and calls[-1][2] == 3
    r = run("generate", "--out", tmp_path / "g", "--scale", "0")
    assert r.exit_code == 2 and "--scale" in r.stderr


def test_real_process_validate_bad_dataset(ds):
    f = partition_dir(ds, "trades", "BTCUSDT", "2026-02-05") / "part-0000.parquet"
    f.write_bytes(f.read_bytes()[:-20])
    p = subprocess.run([*BACKTEST, "data", "validate", str(ds)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("error: ")
    assert "Traceback" not in p.stderr and str(f) in p.stderr
