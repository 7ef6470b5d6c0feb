"""`data validate` for issue #17 / #14 item 12: page checksums, missing days and gaps, perpetuals
without marks or funding, instrument sanity, and timestamps the reader would otherwise drop."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from backtest.cli.data import data as data_cli
from backtest.data.instruments import load_instruments, write_instruments
from backtest.data.layout import partition_dir, schema_of
from backtest.data.reader import open_dataset
from backtest.data.validate import validate_dataset
from backtest.data.writer import write_stream
from backtest.errors import DataError

INSTR = Path(__file__).parent / "fixtures" / "exchange" / "instruments.json"
T0 = 1770249600 * 10**9  # 2026-02-05 00:00 UTC
DAY, H = 86_400 * 10**9, 3600 * 10**9
INT64_MAX = np.iinfo(np.int64).max


def trades(ts, price=100.0):
    ts = np.asarray(ts, np.int64)
    return {"ts_ns": ts, "price": np.full(len(ts), price), "qty": np.ones(len(ts)),
            "side": np.ones(len(ts), np.int8)}


def base(root: Path, *, marks=True, funding=True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_instruments(root / "instruments.json", {"BTCUSDT": load_instruments(INSTR)["BTCUSDT"]})
    write_stream(root, "trades", "BTCUSDT", trades([T0, T0 + 30 * 60 * 10**9]))
    if marks:
        write_stream(root, "marks", "BTCUSDT", {"ts_ns": np.array([T0]), "mark_price": np.array([100.0]),
                                                "index_price": np.array([np.nan])})
    if funding:
        write_stream(root, "funding", "BTCUSDT", {"ts_ns": np.array([T0 + 8 * H]), "rate": np.array([1e-4])})
    return root


def test_clean_dataset_has_no_warnings(tmp_path):
    r = validate_dataset(base(tmp_path / "ds"))
    assert r.ok and r.warnings == []


def test_missing_date_partition_inside_a_stream_is_flagged(tmp_path):
    root = base(tmp_path / "ds")
    write_stream(root, "trades", "BTCUSDT", trades([T0 + 2 * DAY]), part="part-0001")  # 02-06 missing
    r = validate_dataset(root)
    assert r.ok
    (w,) = [w for w in r.warnings if "missing date" in w]
    assert "trades/BTCUSDT" in w and "2026-02-06" in w and "1 missing" in w


def test_gap_longer_than_threshold_is_flagged(tmp_path):
    root = base(tmp_path / "ds")
    assert validate_dataset(root, max_gap_s=3600).warnings == []
    r = validate_dataset(root, max_gap_s=600)  # the trades are 30 min apart
    (w,) = r.warnings
    assert "trades/BTCUSDT: 1 gap(s) longer than 600 s" in w and "1,800 s" in w and "2026-02-05T00:00" in w


def test_funding_gap_uses_the_funding_interval(tmp_path):
    root = base(tmp_path / "ds", funding=False)
    write_stream(root, "funding", "BTCUSDT", {"ts_ns": np.array([T0, T0 + 8 * H, T0 + 24 * H]),
                                              "rate": np.array([1e-4, 1e-4, 1e-4])})  # 16:00 missing
    (w,) = validate_dataset(root).warnings
    assert "funding/BTCUSDT: 1 gap(s) longer than 43200 s" in w


def test_perpetual_without_marks_or_funding_is_warned(tmp_path):
    r = validate_dataset(base(tmp_path / "ds", marks=False, funding=False))
    assert r.ok and len(r.warnings) == 2
    assert "no marks: liquidation and unrealised PnL fall back to the last price" in r.warnings[0]
    assert "no funding rows" in r.warnings[1]


def test_cli_prints_warnings_and_strict_fails(tmp_path):
    root = base(tmp_path / "ds", marks=False)
    r = CliRunner().invoke(data_cli, ["validate", str(root)])
    assert r.exit_code == 0 and "warning: BTCUSDT: a perpetual with trades/quotes but no marks" in r.stderr
    assert CliRunner().invoke(data_cli, ["validate", "--strict", str(root)]).exit_code == 1
    r = CliRunner().invoke(data_cli, ["validate", "--json", str(root)])
    assert len(json.loads(r.stdout)["warnings"]) == 1


def test_inconsistent_brackets_are_a_problem(tmp_path):
    root = base(tmp_path / "ds")
    raw = json.loads((root / "instruments.json").read_text())
    raw["instruments"]["BTCUSDT"]["brackets"][1]["maint_amount"] = 70.0  # continuity needs 50
    (root / "instruments.json").write_text(json.dumps(raw))
    with pytest.raises(DataError, match=r"brackets\[1\]\.maint_amount = 70.0 is out of range; allowed: 50 "):
        validate_dataset(root)
    raw["instruments"]["BTCUSDT"]["brackets"][1]["maint_amount"] = 50.0
    raw["instruments"]["BTCUSDT"]["taker_fee_rate"] = 0.05  # 5 %: meant 0.05 %
    (root / "instruments.json").write_text(json.dumps(raw))
    with pytest.raises(DataError, match=r"taker_fee_rate = 0.05 is out of range; allowed: \[0, 0.01\]"):
        validate_dataset(root)


def test_page_checksum_mismatch_is_caught_like_the_reader(tmp_path):
    root = base(tmp_path / "ds")
    path = partition_dir(root, "trades", "BTCUSDT", "2026-02-05") / "part-0000.parquet"
    t = pa.Table.from_pydict(trades([T0, T0 + 1]), schema=schema_of("trades"))
    pq.write_table(t, path, compression="none", use_dictionary=False, write_page_checksum=True,
                   write_statistics=False)
    raw = path.read_bytes()
    hundred = np.array([100.0]).tobytes()
    assert raw.count(hundred) == 2
    path.write_bytes(raw.replace(hundred, np.array([101.0]).tobytes(), 1))  # still a valid price
    with pytest.raises(DataError, match="part-0000.parquet.*CRC checksum verification failed"):
        validate_dataset(root)


def _write_at(root: Path, ts: int, date: str) -> None:
    path = partition_dir(root, "trades", "BTCUSDT", date) / "part-0000.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pydict(trades([ts]), schema=schema_of("trades")), path)


def test_row_at_int64_max_is_refused_not_dropped(tmp_path):
    root = base(tmp_path / "ds")
    _write_at(root, INT64_MAX, "2262-04-11")
    with pytest.raises(DataError, match="outside 1970-01-01 .. 2100-01-01"):
        validate_dataset(root)
    with pytest.raises(DataError, match="outside 1970-01-01 .. 2100-01-01"):
        for _ in open_dataset(root):
            pass


def test_row_in_1862_is_refused(tmp_path):
    root = base(tmp_path / "ds")
    ts = -3_400_000_000 * 10**9  # a ns value read as µs and multiplied: 1862
    _write_at(root, ts, str(np.datetime64(ts, "ns").astype("datetime64[D]")))
    with pytest.raises(DataError, match="outside 1970-01-01"):
        validate_dataset(root)
