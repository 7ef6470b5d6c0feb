"""Streaming import: bounded batches give the same rows and the same error lines as one batch,
state carries across batches, unsorted and multi-day inputs, decompression-bomb limit, and the
staging/commit record (all or nothing)."""
from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from backtest.data import commit, csvsource
from backtest.data.importers import import_files, parse_file
from backtest.data.layout import list_streams
from backtest.data.validate import validate_dataset
from backtest.errors import DataError

FIX = Path(__file__).parent / "fixtures" / "exchange"
T0_MS = 1770249600000  # 2026-02-05 00:00 UTC
DAY_MS = 86_400_000


@pytest.fixture
def tiny_blocks(monkeypatch):
    monkeypatch.setattr(csvsource, "BLOCK_BYTES", 512)  # a few lines per batch


def binance_lines(n, t0=T0_MS, step=1000, start_id=1):
    return "".join(f"{start_id + i},{100 + (i % 7) * 0.5},{1 + i % 3},{100.0},{t0 + i * step},"
                   f"{'true' if i % 2 else 'false'}\n" for i in range(n))


def test_small_batches_give_identical_rows(tmp_path, monkeypatch):
    f = tmp_path / "t.csv"
    f.write_text("id,price,qty,quote_qty,time,is_buyer_maker\n" + binance_lines(3000))
    _, whole = parse_file(f, "binance-trades")
    monkeypatch.setattr(csvsource, "BLOCK_BYTES", 512)
    _, parts = parse_file(f, "binance-trades")
    for k in whole:
        assert np.array_equal(whole[k], parts[k])
    assert len(whole["ts_ns"]) == 3000


@pytest.mark.parametrize("bad,column,message", [
    ("2999,abc,1,100.0,1770249700000,true", "price", "not a number: 'abc'"),  # typed column: re-read
    ("2999,100,1,100.0,1770249700000,maybe", "is_buyer_maker", "unknown side 'maybe'"),
    ("2999,100,1,100.0", None, "4 fields, expected 6"),
    ("", None, "empty line"),
])
def test_error_line_numbers_across_batches(tmp_path, tiny_blocks, bad, column, message):
    f = tmp_path / "t.csv"
    f.write_text("id,price,qty,quote_qty,time,is_buyer_maker\n" + binance_lines(1500) + bad + "\n"
                 + binance_lines(10, start_id=5000, t0=T0_MS + 10**7))
    with pytest.raises(DataError) as ei:
        parse_file(f, "binance-trades")
    assert ei.value.row == 1502 and f"t.csv:1502" in str(ei.value) and message in str(ei.value)
    assert ei.value.column == column


def test_trailing_empty_lines_are_fine(tmp_path, tiny_blocks):
    f = tmp_path / "t.csv"
    f.write_text(binance_lines(400) + "\n\n")
    assert len(parse_file(f, "binance-trades")[1]["ts_ns"]) == 400


def test_tick_rule_carries_across_batches(tmp_path, monkeypatch):
    head = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
    prices = [100, 101, 101, 101, 99, 99] * 200
    rows = "".join(f"x,BTCUSDT,{(T0_MS + i) * 1000},1,{i},unknown,{p},1\n" for i, p in enumerate(prices))
    f = tmp_path / "t.csv"
    f.write_text(head + rows)
    _, whole = parse_file(f, "tardis-trades")
    monkeypatch.setattr(csvsource, "BLOCK_BYTES", 300)
    _, parts = parse_file(f, "tardis-trades")
    assert whole["side"].tolist() == parts["side"].tolist()
    assert whole["side"][:6].tolist() == [1, 1, 1, 1, -1, -1]


def test_unsorted_multiday_input_streams_into_sorted_partitions(tmp_path, tiny_blocks):
    rng = np.random.default_rng(3)
    n = 900
    ts = T0_MS + rng.integers(0, 3 * DAY_MS, n)
    lines = [f"{i},{100 + i % 5},1,100,{t},true\n" for i, t in enumerate(ts.tolist())]
    f = tmp_path / "BTCUSDT-trades.csv.gz"
    f.write_bytes(gzip.compress("".join(lines).encode()))
    out = tmp_path / "ds"
    res = import_files([f], fmt="binance-trades", symbol="BTCUSDT", out=out,
                       instruments=FIX / "instruments.json")
    assert res.rows_added == n and res.dates == ["2026-02-05", "2026-02-06", "2026-02-07"]
    files = list_streams(out)[("trades", "BTCUSDT")]
    got = np.concatenate([pq.read_table(p).column("ts_ns").to_numpy() for p in files])
    order = np.argsort(ts, kind="stable")
    assert got.tolist() == (ts[order] * 10**6).tolist()
    price = np.concatenate([pq.read_table(p).column("price").to_numpy() for p in files])
    assert price.tolist() == [100.0 + i % 5 for i in order.tolist()]  # stable: file order among ties
    validate_dataset(out)
    assert not list(out.glob(".import-*"))


def test_several_files_for_one_day_merge_like_before(tmp_path, tiny_blocks):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(binance_lines(300))
    b.write_text(binance_lines(300, start_id=1) + binance_lines(5, t0=T0_MS + 10**6, start_id=900))
    out = tmp_path / "ds"
    res = import_files([a, b], fmt="binance-trades", symbol="BTCUSDT", out=out, instruments=FIX / "instruments.json")
    assert res.rows_added == 305  # b repeats a's 300 rows: kept once


def _bomb(tmp_path, mib=4):
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.csv", binance_lines(1) * (mib * 1024 * 1024 // 40))
    return z


def test_decompression_bomb_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(csvsource, "BOMB_MIN_BYTES", 1 << 20)
    monkeypatch.setattr(csvsource, "BLOCK_BYTES", 64 << 10)
    monkeypatch.setattr(csvsource, "READ_STEP", 4096)  # scaled down with BOMB_MIN_BYTES
    z = _bomb(tmp_path, mib=64)
    out = tmp_path / "ds"
    with pytest.raises(DataError) as ei:
        import_files([z], fmt="binance-trades", symbol="BTCUSDT", out=out, instruments=FIX / "instruments.json")
    msg = str(ei.value)
    assert "bomb.zip!bomb.csv" in msg and "decompression bomb" in msg and "\n" not in msg
    text_bytes = int(msg.split("refused: ")[1].split(" bytes")[0].replace(",", ""))
    # stopped soon after BOMB_MIN_BYTES (slack: MAX_RATIO x the compressed read-ahead), not at 64 MiB
    assert text_bytes < 4 << 20
    assert not out.exists()


def test_gz_bomb_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(csvsource, "BOMB_MIN_BYTES", 1 << 20)
    g = tmp_path / "bomb.csv.gz"
    g.write_bytes(gzip.compress((binance_lines(1) * ((4 << 20) // 40)).encode()))
    with pytest.raises(DataError, match="decompression bomb"):
        parse_file(g, "binance-trades")


# ---------------------------------------------------------------------------------------------
# staging and commit record

def _snapshot(root: Path) -> dict:
    return {k: [pq.read_table(f).to_pydict() for f in files] for k, files in list_streams(root).items()}


def test_uncommitted_staging_is_invisible_and_removed(tmp_path):
    out = tmp_path / "ds"
    import_files([FIX / "binance-futures-trades.csv"], fmt="binance-trades", symbol="BTCUSDT", out=out,
                 instruments=FIX / "instruments.json")
    before = _snapshot(out)
    st = commit.Staging(out)  # a dead import: staged a file, never committed
    (st.path("kind=trades/symbol=BTCUSDT/date=2026-02-05/part-0000.parquet")).write_bytes(b"garbage")
    assert _snapshot(out) == before
    validate_dataset(out)  # recovers: the dead staging folder is dropped
    assert not list(out.glob(".import-*"))


def test_committed_but_unapplied_import_is_seen_whole_then_finished(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    import_files([FIX / "binance-futures-trades.csv"], fmt="binance-trades", symbol="BTCUSDT", out=out,
                 instruments=FIX / "instruments.json")
    f = tmp_path / "two-days.csv"
    f.write_text(binance_lines(3, t0=T0_MS + 5) + binance_lines(3, t0=T0_MS + DAY_MS, start_id=10))
    monkeypatch.setattr(commit, "apply", lambda root, stage: None)  # "killed" right after the commit point
    import_files([f], fmt="binance-trades", symbol="BTCUSDT", out=out)
    monkeypatch.undo()
    (stage,) = out.glob(".import-*")
    assert (stage / commit.RECORD).exists()
    seen = _snapshot(out)[("trades", "BTCUSDT")]
    assert [len(t["ts_ns"]) for t in seen] == [6, 3]  # both dates, from the staged files
    validate_dataset(out)  # finishes the commit
    assert not list(out.glob(".import-*"))
    assert _snapshot(out)[("trades", "BTCUSDT")] == seen
