"""validate_dataset / check_batch: every problem gives a DataError naming file, column, row and fix."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backtest.data.instruments import load_instruments, write_instruments
from backtest.data.layout import partition_dir
from backtest.data.validate import check_batch, validate_dataset
from backtest.data.writer import write_stream
from backtest.errors import DataError

INSTR = Path(__file__).parent / "fixtures" / "exchange" / "instruments.json"
T0 = 1770249600 * 10**9  # 2026-02-05 00:00 UTC
DAY = 86_400 * 10**9


def trades(n=5, t0=T0, step=10**9, price=100.0):
    return {"ts_ns": t0 + np.arange(n, dtype=np.int64) * step, "price": np.full(n, price),
            "qty": np.ones(n), "side": np.where(np.arange(n) % 2, 1, -1).astype(np.int8)}


def make_dataset(root: Path) -> Path:
    """BTCUSDT trades over two days + quotes, marks and funding; ETHUSDT trades."""
    root.mkdir(parents=True, exist_ok=True)
    write_instruments(root / "instruments.json", load_instruments(INSTR))
    write_stream(root, "trades", "BTCUSDT", trades(6, step=DAY // 3))  # 2 days
    write_stream(root, "trades", "ETHUSDT", trades(3, price=3000.0))
    write_stream(root, "quotes", "BTCUSDT", {"ts_ns": np.array([T0, T0 + 1]), "bid": np.array([99.0, 99.5]),
                                             "ask": np.array([100.0, 100.5]), "bid_qty": np.array([1.0, 2.0]),
                                             "ask_qty": np.array([1.0, 0.0])})
    write_stream(root, "marks", "BTCUSDT", {"ts_ns": np.array([T0, T0 + 1]), "mark_price": np.array([99.9, 100.0]),
                                            "index_price": np.array([np.nan, 100.1])})
    write_stream(root, "funding", "BTCUSDT", {"ts_ns": np.array([T0 + 8 * 3600 * 10**9]),
                                              "rate": np.array([-0.0003])})
    return root


def trade_file(root, date="2026-02-05", symbol="BTCUSDT"):
    return partition_dir(root, "trades", symbol, date) / "part-0000.parquet"


def rewrite(path: Path, **changes):
    """Rewrite a parquet file with some columns replaced (arrays or Arrow arrays)."""
    t = pq.read_table(path)
    for name, arr in changes.items():
        i = t.schema.get_field_index(name)
        arr = arr if isinstance(arr, (pa.Array, pa.ChunkedArray)) else pa.array(arr)
        if i < 0:
            t = t.append_column(name, arr)
        else:
            t = t.set_column(i, name, arr)
    pq.write_table(t, path)


@pytest.fixture
def ds(tmp_path):
    return make_dataset(tmp_path / "ds")


def expect(root, *, file=None, column=None, row=None, match=None):
    with pytest.raises(DataError) as ei:
        validate_dataset(root)
    e = ei.value
    if file is not None:
        assert Path(e.file) == Path(file), str(e)
    assert e.column == column, str(e)
    assert e.row == row, str(e)
    if match:
        assert match in str(e), str(e)
    assert "fix:" in str(e)
    assert "\n" not in str(e)
    return e


def test_valid_dataset_report(ds):
    r = validate_dataset(ds)
    assert r.ok and r.files == 6
    assert r.rows == {"trades": 9, "quotes": 2, "marks": 2, "funding": 1}
    assert r.streams[("trades", "BTCUSDT")] == 6
    assert r.symbols == ["BTCUSDT", "ETHUSDT"]
    assert r.start_ns == T0 and r.end_ns == T0 + 5 * (DAY // 3)
    assert r.summary().startswith("OK: ") and "trades 9" in r.summary()
    json.dumps(r.to_dict())


def test_missing_column(ds):
    f = trade_file(ds)
    t = pq.read_table(f).drop_columns(["side"])
    pq.write_table(t, f)
    expect(ds, file=f, column="side", match="missing column")


@pytest.mark.parametrize("column,arr,match", [
    ("price", pa.array(["100"] * 3, pa.string()), "type string, expected double"),
    ("price", pa.array([100.0] * 3, pa.float32()), "type float, expected double"),
    ("ts_ns", pa.array([1, 2, 3], pa.uint64()), "type uint64, expected int64"),
    ("ts_ns", pa.array([T0, T0 + 1, T0 + 2], pa.timestamp("ns")), "expected int64"),
    ("side", pa.array([1, -1, 1], pa.int64()), "expected int8"),
])
def test_mistyped_columns(ds, column, arr, match):
    f = trade_file(ds)
    assert pq.read_table(f).num_rows == 3
    rewrite(f, **{column: arr})
    expect(ds, file=f, column=column, match=match)


def test_unsorted_within_a_file(ds):
    f = trade_file(ds)
    ts = pq.read_table(f).column("ts_ns").to_numpy().copy()
    ts[1], ts[2] = ts[2], ts[1]
    rewrite(f, ts_ns=ts)
    expect(ds, file=f, column="ts_ns", row=2, match="unsorted")


def test_row_outside_its_date_partition(ds):
    f2 = trade_file(ds, "2026-02-06")
    ts = pq.read_table(f2).column("ts_ns").to_numpy().copy()
    ts[0] = T0 + DAY - 1  # still after day one's last row, but on day one
    rewrite(f2, ts_ns=ts)
    expect(ds, file=f2, column="ts_ns", row=0, match="date partition 2026-02-06")


def test_unsorted_across_files(ds):
    # a second part file on day one starting before the end of part-0000
    f1b = trade_file(ds).with_name("part-0001.parquet")
    pq.write_table(pq.read_table(trade_file(ds)).slice(0, 1), f1b)
    expect(ds, file=f1b, column="ts_ns", row=0, match="unsorted, possibly across files")


@pytest.mark.parametrize("column,value,match", [
    ("price", np.nan, "finite number > 0"),
    ("price", np.inf, "finite number > 0"),
    ("price", 0.0, "finite number > 0"),
    ("price", -1.0, "finite number > 0"),
    ("qty", 0.0, "finite number > 0"),
    ("qty", -2.0, "finite number > 0"),
    ("side", 0, "+1 (buy) or -1 (sell)"),
    ("side", 2, "+1 (buy) or -1 (sell)"),
])
def test_bad_trade_values(ds, column, value, match):
    f = trade_file(ds)
    arr = pq.read_table(f).column(column).to_numpy().copy()
    arr[2] = value
    rewrite(f, **{column: pa.array(arr, pa.int8() if column == "side" else pa.float64())})
    expect(ds, file=f, column=column, row=2, match=match)


def test_null_value(ds):
    f = trade_file(ds)
    rewrite(f, qty=pa.array([1.0, None, 1.0], pa.float64()))
    expect(ds, file=f, column="qty", row=1, match="null value")


def test_crossed_quote(ds):
    f = partition_dir(ds, "quotes", "BTCUSDT", "2026-02-05") / "part-0000.parquet"
    rewrite(f, bid=np.array([99.0, 101.0]))
    expect(ds, file=f, column="bid", row=1, match="crossed quote")


def test_bad_mark_and_funding(ds):
    f = partition_dir(ds, "marks", "BTCUSDT", "2026-02-05") / "part-0000.parquet"
    rewrite(f, index_price=np.array([np.nan, -1.0]))
    expect(ds, file=f, column="index_price", row=1, match="NaN (unknown) or a finite number > 0")
    rewrite(f, index_price=np.array([np.nan, 1.0]), mark_price=np.array([np.nan, 1.0]))
    expect(ds, file=f, column="mark_price", row=0)
    rewrite(f, mark_price=np.array([1.0, 1.0]))
    g = partition_dir(ds, "funding", "BTCUSDT", "2026-02-05") / "part-0000.parquet"
    rewrite(g, rate=np.array([np.inf]))
    expect(ds, file=g, column="rate", row=0, match="finite")


def test_unknown_symbol(ds):
    write_stream(ds, "trades", "DOGEUSDT", trades(2))
    e = expect(ds, match="unknown symbol 'DOGEUSDT'")
    assert "symbol=DOGEUSDT" in str(e.file)


def test_empty_dataset(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    write_instruments(root / "instruments.json", load_instruments(INSTR))
    expect(root, match="empty dataset")


def test_missing_and_invalid_instruments(ds, tmp_path):
    (ds / "instruments.json").unlink()
    expect(ds, match="no instruments file")
    (ds / "instruments.json").write_text("{not json")
    expect(ds, match="cannot parse instruments file")
    (ds / "instruments.json").write_text(json.dumps({"instruments": {"BTCUSDT": {"type": "future"}}}))
    expect(ds, match="missing key")
    with pytest.raises(DataError, match="not found"):
        validate_dataset(tmp_path / "nope")


def test_truncated_parquet(ds):
    f = trade_file(ds)
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    e = expect(ds, file=f, match="unreadable Parquet file")
    assert "re-import or regenerate this file" in str(e)


def test_corrupt_parquet_garbage(ds):
    f = trade_file(ds, symbol="ETHUSDT")
    f.write_bytes(b"PAR1" + b"\x00garbage" * 50 + b"PAR1")
    expect(ds, file=f, match="unreadable Parquet file")


def test_streams_many_row_groups(tmp_path):
    root = tmp_path / "big"
    root.mkdir()
    write_instruments(root / "instruments.json", load_instruments(INSTR))
    n = 50_000
    cols = trades(n, step=10**6)
    f = partition_dir(root, "trades", "BTCUSDT", "2026-02-05")
    f.mkdir(parents=True)
    table = pa.table({"ts_ns": cols["ts_ns"], "price": cols["price"], "qty": cols["qty"], "side": cols["side"]})
    qty = cols["qty"].copy()
    qty[n - 3] = -1.0
    table = table.set_column(2, "qty", pa.array(qty))
    pq.write_table(table, f / "part-0000.parquet", row_group_size=4096)
    import backtest.data.validate as v

    old = v.BATCH_ROWS
    try:
        v.BATCH_ROWS = 1000  # the row number must survive batching
        with pytest.raises(DataError) as ei:
            v.check_file("trades", f / "part-0000.parquet", batch_rows=1000)
    finally:
        v.BATCH_ROWS = old
    assert ei.value.row == n - 3 and ei.value.column == "qty"


def test_all_problems_mode(ds):
    f = trade_file(ds, symbol="ETHUSDT")
    rewrite(f, side=pa.array([1, 0, 1], pa.int8()))
    g = partition_dir(ds, "quotes", "BTCUSDT", "2026-02-05") / "part-0000.parquet"
    rewrite(g, bid=np.array([99.0, 101.0]))
    r = validate_dataset(ds, all_problems=True)
    assert not r.ok and len(r.problems) == 2
    assert r.rows["trades"] == 6  # the good BTCUSDT stream still counted


def test_check_batch_api():
    c = trades(4)
    last = check_batch("trades", "mem", c, 0, None)
    assert last == int(c["ts_ns"][-1])
    assert check_batch("trades", "mem", trades(2, t0=last), 4, last) == last + 10**9
    with pytest.raises(DataError) as ei:
        check_batch("trades", "mem", trades(2, t0=last - 1), 4, last)
    assert ei.value.row == 4 and ei.value.column == "ts_ns"
    bad = trades(3)
    bad["price"] = bad["price"].astype(np.float32)
    with pytest.raises(DataError, match="dtype float32"):
        check_batch("trades", "mem", bad)
    # the first bad row wins across checks
    bad = trades(5)
    bad["side"][3] = 0
    bad["qty"][1] = np.nan
    with pytest.raises(DataError) as ei:
        check_batch("trades", "mem", bad, 100)
    assert (ei.value.row, ei.value.column) == (101, "qty")
    assert check_batch("trades", "mem", {k: v[:0] for k, v in trades(1).items()}, 0, 7) == 7
