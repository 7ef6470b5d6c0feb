"""Importers: exact parsed output per exchange format, archives, merging/dedupe, atomicity, errors."""
from __future__ import annotations

import gzip
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from backtest.data.importers import FORMATS, import_files, parse_file
from backtest.data.layout import list_streams
from backtest.data.validate import validate_dataset
from backtest.errors import ConfigError, DataError

FIX = Path(__file__).parent / "fixtures" / "exchange"
INSTR = FIX / "instruments.json"
T0 = 1770249600 * 10**9  # 2026-02-05 00:00:00 UTC in ns
MS = 10**6
US = 10**3


def _check(cols, ts, price, qty, side):
    assert cols["ts_ns"].dtype == np.int64 and cols["price"].dtype == np.float64
    assert cols["qty"].dtype == np.float64 and cols["side"].dtype == np.int8
    assert cols["ts_ns"].tolist() == ts
    assert cols["price"].tolist() == price
    assert cols["qty"].tolist() == qty
    assert cols["side"].tolist() == side


def test_binance_spot_trades_ms_no_header():
    kind, c = parse_file(FIX / "binance-spot-trades-ms.csv", "binance-trades")
    assert kind == "trades"
    _check(c, [T0, T0 + 1 * MS, T0 + 250 * MS], [97000.01, 97000.02, 96999.5], [0.001, 0.02, 0.5], [-1, 1, -1])


def test_binance_spot_trades_microseconds():
    _, c = parse_file(FIX / "binance-spot-trades-us.csv", "binance-trades")
    _check(c, [T0 + 123 * US, T0 + 1456 * US, T0 + 250 * MS], [97000.01, 97000.02, 96999.5],
           [0.001, 0.02, 0.5], [-1, 1, -1])


def test_binance_futures_trades_with_header():
    _, c = parse_file(FIX / "binance-futures-trades.csv", "binance-trades")
    _check(c, [T0 + 10 * MS, T0 + 10 * MS, T0 + 60_000 * MS], [96990.1, 96990.0, 96991.2],
           [0.015, 0.2, 1.0], [1, -1, 1])


def test_binance_aggtrades_spot_and_futures():
    _, c = parse_file(FIX / "binance-spot-aggtrades.csv", "binance-aggtrades")
    _check(c, [T0, T0 + 1 * MS, T0 + 250 * MS], [97000.01, 97000.02, 96999.5], [0.001, 0.02, 0.5], [-1, 1, -1])
    _, c = parse_file(FIX / "binance-futures-aggtrades.csv", "binance-aggtrades")
    _check(c, [T0 + 10 * MS, T0 + 10 * MS, T0 + 60_000 * MS], [96990.1, 96990.0, 96991.2],
           [0.015, 0.2, 1.0], [1, -1, 1])


def test_bybit_trades_exact_seconds():
    _, c = parse_file(FIX / "bybit-trades.csv", "bybit-trades")
    _check(c, [T0 + 55_300_000, T0 + 100_000_000, T0 + 1_000_000_000], [97010.5, 97010.4, 97009.0],
           [0.001, 0.25, 1.5], [1, -1, -1])


def test_tardis_trades_unknown_side_by_tick_rule():
    _, c = parse_file(FIX / "tardis-trades.csv", "tardis-trades")
    # buy, sell, then unknown: up-tick +1, zero-tick keeps +1, down-tick -1, zero-tick keeps -1
    _check(c, [T0 + 10 * MS, T0 + 10 * MS, T0 + 500 * MS, T0 + 600 * MS, T0 + 700 * MS, T0 + 800 * MS],
           [96990.1, 96990.0, 96991.2, 96991.2, 96980.0, 96980.0], [0.015, 0.2, 1.0, 0.5, 0.3, 0.1],
           [1, -1, 1, 1, -1, -1])


def test_tardis_first_unknown_is_buy(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
                 "x,BTCUSDT,1770249600000000,1770249600000001,1,unknown,100,1\n"
                 "x,BTCUSDT,1770249600000002,1770249600000003,2,unknown,99,1\n")
    _, c = parse_file(f, "tardis-trades")
    assert c["side"].tolist() == [1, -1]


def test_tardis_quotes():
    kind, c = parse_file(FIX / "tardis-quotes.csv", "tardis-quotes")
    assert kind == "quotes"
    assert list(c) == ["ts_ns", "bid", "ask", "bid_qty", "ask_qty"]
    assert c["ts_ns"].tolist() == [T0 + 5 * MS, T0 + 11 * MS, T0 + 1000 * MS]
    assert c["bid"].tolist() == [96990.1, 96990.0, 96991.2]
    assert c["ask"].tolist() == [96990.2, 96990.3, 96991.3]
    assert c["bid_qty"].tolist() == [1.5, 0.8, 12.0]
    assert c["ask_qty"].tolist() == [3.2, 2.9, 0.4]


def test_gz_and_zip_inputs(tmp_path):
    src = FIX / "binance-futures-trades.csv"
    gz = tmp_path / "BTCUSDT-trades-2026-02-05.csv.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    zp = tmp_path / "BTCUSDT-trades-2026-02-05.zip"
    with zipfile.ZipFile(zp, "w") as z:
        z.write(src, "BTCUSDT-trades-2026-02-05.csv")
    _, plain = parse_file(src, "binance-trades")
    for f in (gz, zp):
        _, c = parse_file(f, "binance-trades")
        for k in plain:
            assert np.array_equal(c[k], plain[k])


def test_zip_with_two_members_is_an_error(tmp_path):
    zp = tmp_path / "two.zip"
    with zipfile.ZipFile(zp, "w") as z:
        z.writestr("a.csv", "1,2\n")
        z.writestr("b.csv", "1,2\n")
    with pytest.raises(DataError, match="exactly one CSV"):
        parse_file(zp, "binance-trades")


def test_corrupt_gz_is_a_data_error(tmp_path):
    gz = tmp_path / "x.csv.gz"
    gz.write_bytes(gzip.compress(b"1,2,3\n" * 1000)[:30])
    with pytest.raises(DataError, match="download the file again"):
        parse_file(gz, "binance-trades")


def test_unsorted_input_is_sorted_stably(tmp_path):
    f = tmp_path / "u.csv"
    f.write_text("3,10.0,1,10,1770249600002,true,true\n"
                 "1,11.0,1,11,1770249600001,true,true\n"
                 "2,12.0,1,12,1770249600001,false,true\n")
    _, c = parse_file(f, "binance-trades")
    assert c["price"].tolist() == [11.0, 12.0, 10.0]


# ---------------------------------------------------------------------------------------------
# malformed lines: file, 1-based line (header counted) and column

BAD_CASES = [
    # (format, text, line, column, message)
    ("binance-trades", "id,price,qty,quote_qty,time,is_buyer_maker\n1,10,1,10,1770249600000,true\n"
     "2,abc,1,10,1770249600001,true\n", 3, "price", "not a number"),
    ("binance-trades", "1,10,1,10,1770249600000,true,true\n2,10,1,10,1770249600001\n", 2, None, "5 fields"),
    ("binance-trades", "1,10,1,10,1770249600000,true,true\n2,10,0,10,1770249600001,true,true\n", 2, "qty", "> 0"),
    ("binance-trades", "1,-10,1,10,1770249600000,true,true\n", 1, "price", "> 0"),
    ("binance-trades", "1,10,1,10,1770249600000,maybe,true\n", 1, "is_buyer_maker", "unknown side"),
    ("binance-trades", "1,10,1,10,17702496x0000,true,true\n", 1, "time", "not a timestamp"),
    ("binance-trades", "1,10,1,10,1770249600000,true,true\n\n2,10,1,10,1770249600000,true,true\n", 2, None,
     "empty line"),
    ("binance-aggtrades", "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,"
     "is_buyer_maker\n1,10,,1,1,1770249600000,true\n", 2, "quantity", "empty value"),
    ("bybit-trades", "timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,"
     "foreignNotional\n1770249600.1,BTCUSDT,Hold,1,10,PlusTick,x,1,1,1\n", 2, "side", "unknown side"),
    ("bybit-trades", "timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,"
     "foreignNotional\n1770249600.1,BTCUSDT,Buy,1,10,PlusTick,x,1,1,1\n17702x,BTCUSDT,Buy,1,10,PlusTick,x,1,1,1\n",
     3, "timestamp", "not a timestamp"),
    ("tardis-trades", "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
     "x,BTCUSDT,1770249600000000,1,1,sideways,10,1\n", 2, "side", "unknown side"),
    ("tardis-quotes", "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\n"
     "x,BTCUSDT,1770249600000000,1,1,10,11,1\n", 2, "bid_price", "crossed"),
    ("tardis-quotes", "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\n"
     "x,BTCUSDT,1770249600000000,1,1,,11,1\n", 2, "ask_price", "empty value"),
]


@pytest.mark.parametrize("fmt,text,line,column,message", BAD_CASES)
def test_malformed_lines(tmp_path, fmt, text, line, column, message):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(DataError) as ei:
        parse_file(f, fmt)
    e = ei.value
    assert e.row == line and e.column == column
    assert str(f) in str(e) and f"bad.csv:{line}" in str(e)
    assert message in str(e) and "fix:" in str(e)


def test_wrong_format_is_explained(tmp_path):
    with pytest.raises(DataError, match="check --format"):
        parse_file(FIX / "bybit-trades.csv", "binance-trades")


def test_several_symbols_in_one_file(tmp_path):
    f = tmp_path / "two.csv"
    f.write_text("exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
                 "x,BTCUSDT,1770249600000000,1,1,buy,10,1\nx,ETHUSDT,1770249600000001,1,1,buy,10,1\n")
    with pytest.raises(DataError, match="several symbols"):
        parse_file(f, "tardis-trades")


# ---------------------------------------------------------------------------------------------
# import into a dataset

def _rows(out, kind="trades", symbol="BTCUSDT"):
    files = list_streams(out)[(kind, symbol)]
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files), files


def test_import_creates_valid_dataset_and_reimport_adds_nothing(tmp_path):
    out = tmp_path / "ds"
    res = import_files([FIX / "binance-futures-trades.csv"], fmt="binance-trades", symbol="BTCUSDT", out=out,
                       instruments=INSTR)
    assert res.rows_read == 3 and res.rows_added == 3 and res.instruments_copied
    assert (out / "instruments.json").is_file()
    n, files = _rows(out)
    assert n == 3 and [f.name for f in files] == ["part-0000.parquet"]
    t = pq.read_table(files[0])
    assert t.column("ts_ns").to_pylist() == [T0 + 10 * MS, T0 + 10 * MS, T0 + 60_000 * MS]
    assert t.column("side").to_pylist() == [1, -1, 1]
    mtime = files[0].stat().st_mtime_ns
    # the same file again (also from a zip): nothing new, the file is left alone
    zp = tmp_path / "same.zip"
    with zipfile.ZipFile(zp, "w") as z:
        z.write(FIX / "binance-futures-trades.csv", "x.csv")
    for f in (FIX / "binance-futures-trades.csv", zp):
        res = import_files([f], fmt="binance-trades", symbol="BTCUSDT", out=out)
        assert res.rows_added == 0 and res.written == []
    assert _rows(out)[0] == 3 and files[0].stat().st_mtime_ns == mtime
    validate_dataset(out)


def test_import_merges_overlapping_files_in_time_order(tmp_path):
    out = tmp_path / "ds"
    import_files([FIX / "binance-spot-trades-ms.csv"], fmt="binance-trades", symbol="BTCUSDT", out=out,
                 instruments=INSTR)
    # the futures rows are new; the spot aggTrades repeat the spot trades exactly (deduped)
    res = import_files([FIX / "binance-futures-trades.csv"], fmt="binance-trades", symbol="BTCUSDT", out=out)
    assert res.rows_added == 3
    res = import_files([FIX / "binance-spot-aggtrades.csv"], fmt="binance-aggtrades", symbol="BTCUSDT", out=out)
    assert res.rows_added == 0  # same trades as the spot trades file
    n, files = _rows(out)
    ts = pq.read_table(files[0]).column("ts_ns").to_numpy()
    assert n == 6 and np.all(np.diff(ts) >= 0)
    validate_dataset(out)


def test_identical_trades_within_a_file_are_kept(tmp_path):
    f = tmp_path / "dup.csv"
    f.write_text("1,10,1,10,1770249600000,true,true\n2,10,1,10,1770249600000,true,true\n")
    out = tmp_path / "ds"
    assert import_files([f], fmt="binance-trades", symbol="BTCUSDT", out=out, instruments=INSTR).rows_added == 2
    assert import_files([f], fmt="binance-trades", symbol="BTCUSDT", out=out).rows_added == 0
    assert _rows(out)[0] == 2


def test_import_splits_dates_and_merges_extra_part_files(tmp_path):
    from backtest.data.writer import write_stream

    out = tmp_path / "ds"
    shutil.copy(INSTR, out.mkdir() or out / "instruments.json")
    # an existing second part file on 2026-02-05 with one other row
    write_stream(out, "trades", "BTCUSDT", {"ts_ns": np.array([T0 + 5 * MS]), "price": np.array([1.0]),
                                            "qty": np.array([1.0]), "side": np.array([1], np.int8)},
                 part="part-0007")
    f = tmp_path / "two-days.csv"
    f.write_text("1,10,1,10,1770249600000,true,true\n2,11,1,11,1770336000000,false,true\n")
    res = import_files([f], fmt="binance-trades", symbol="BTCUSDT", out=out)
    assert res.dates == ["2026-02-05", "2026-02-06"] and res.rows_added == 2
    n, files = _rows(out)
    assert n == 3
    assert [(f.parent.name, f.name) for f in files] == [("date=2026-02-05", "part-0000.parquet"),
                                                      ("date=2026-02-06", "part-0000.parquet")]
    assert pq.read_table(files[0]).column("price").to_pylist() == [10.0, 1.0]
    validate_dataset(out)


def test_failed_import_writes_nothing(tmp_path):
    good = FIX / "binance-futures-trades.csv"
    bad = tmp_path / "bad.csv"
    text = good.read_text()
    bad.write_text(text + "7004,96991.30,0.5,48495.65,1770249720000,false\n7005,96991.30,0.5,48495.65,17702497\n")
    out = tmp_path / "ds"
    with pytest.raises(DataError) as ei:
        import_files([good, bad], fmt="binance-trades", symbol="BTCUSDT", out=out, instruments=INSTR)
    assert ei.value.row == 6 and "bad.csv:6" in str(ei.value)
    assert not out.exists()
    # also into an existing dataset: the existing file is untouched
    import_files([good], fmt="binance-trades", symbol="BTCUSDT", out=out, instruments=INSTR)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(DataError):
        import_files([good, bad], fmt="binance-trades", symbol="BTCUSDT", out=out)
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert before == after


def test_instruments_rules(tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(DataError, match="--instruments"):
        import_files([FIX / "bybit-trades.csv"], fmt="bybit-trades", symbol="BTCUSDT", out=out)
    with pytest.raises(DataError, match="not in the instruments file"):
        import_files([FIX / "bybit-trades.csv"], fmt="bybit-trades", symbol="SOLUSDT", out=out, instruments=INSTR)
    assert not out.exists()
    import_files([FIX / "bybit-trades.csv"], fmt="bybit-trades", symbol="BTCUSDT", out=out, instruments=INSTR)
    with pytest.raises(DataError, match="not in the dataset's instruments"):
        import_files([FIX / "bybit-trades.csv"], fmt="bybit-trades", symbol="XRPUSDT", out=out)
    with pytest.raises(ConfigError):
        import_files([FIX / "bybit-trades.csv"], fmt="bybit-trades", symbol="BTC/USDT", out=out)
    with pytest.raises(ConfigError):
        import_files([FIX / "bybit-trades.csv"], fmt="nope", symbol="BTCUSDT", out=out)


def test_quotes_import(tmp_path):
    out = tmp_path / "ds"
    res = import_files([FIX / "tardis-quotes.csv"], fmt="tardis-quotes", symbol="BTCUSDT", out=out,
                       instruments=INSTR)
    assert res.kind == "quotes" and res.rows_added == 3
    t = pq.read_table(_rows(out, "quotes")[1][0])
    assert t.schema.names == ["ts_ns", "bid", "ask", "bid_qty", "ask_qty"]
    validate_dataset(out)


def test_every_format_has_a_fixture():
    names = {p.name for p in FIX.glob("*.csv")}
    for fmt in FORMATS:
        stem, _, rest = fmt.partition("-")  # "ohlcv" has no "-"
        assert any(n.startswith(stem) and rest in n for n in names), fmt
