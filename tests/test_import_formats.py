"""Import formats added for issue #17: exact parsed output from fixtures in the published layouts,
header/no-header variants, unknown headers, and the per-file time-unit detection and range checks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backtest.data.importers import iter_file, parse_file, parse_file_kinds
from backtest.errors import DataError

FIX = Path(__file__).parent / "fixtures" / "exchange"
T0 = 1770249600 * 10**9  # 2026-02-05 00:00:00 UTC in ns
MS, US, S, H = 10**6, 10**3, 10**9, 3600 * 10**9


def test_binance_bookticker_with_and_without_header():
    kind, c = parse_file(FIX / "binance-bookticker.csv", "binance-bookticker")
    assert kind == "quotes"
    assert c["ts_ns"].tolist() == [T0 + 4 * MS, T0 + 11 * MS, T0 + 1000 * MS]  # transaction_time
    assert c["bid"].tolist() == [96990.10, 96990.00, 96991.20]
    assert c["ask"].tolist() == [96990.20, 96990.30, 96991.30]
    assert c["bid_qty"].tolist() == [4.512, 0.830, 12.0]
    assert c["ask_qty"].tolist() == [1.203, 2.907, 0.4]
    _, c2 = parse_file(FIX / "binance-bookticker-noheader.csv", "binance-bookticker")
    assert c2["bid"].tolist() == c["bid"].tolist()[:2]


def test_binance_mark_klines_are_stamped_at_close_not_open():
    kind, c = parse_file(FIX / "binance-mark-klines.csv", "binance-mark-klines")
    assert kind == "marks"
    # close_time 1770249659999 ms + 1 ms = the next kline's open: no look-ahead
    assert c["ts_ns"].tolist() == [T0 + 60_000 * MS, T0 + 120_000 * MS, T0 + 180_000 * MS]
    assert c["mark_price"].tolist() == [96990.52, 96971.30, 96962.87]
    assert np.isnan(c["index_price"]).all()
    _, c2 = parse_file(FIX / "binance-mark-klines-noheader.csv", "binance-mark-klines")
    assert c2["ts_ns"].tolist() == c["ts_ns"].tolist()[:2]


def test_binance_funding_rate_file():
    kind, c = parse_file(FIX / "binance-funding.csv", "binance-funding")
    assert kind == "funding"
    assert c["ts_ns"].tolist() == [T0, T0 + 8 * H + 1 * MS, T0 + 16 * H]  # calc_time kept exactly
    assert c["rate"].tolist() == [0.0001, -0.00003512, 0.00005]


def test_bybit_trades_with_rpi_column():
    kind, c = parse_file(FIX / "bybit-trades-rpi.csv", "bybit-trades")
    assert kind == "trades"
    assert c["ts_ns"].tolist() == [T0 + 55_300_000, T0 + 100_000_000, T0 + 1_000_000_000]
    assert c["price"].tolist() == [97010.5, 97010.4, 97009.0]
    assert c["qty"].tolist() == [0.001, 0.25, 1.5]
    assert c["side"].tolist() == [1, -1, -1]


def test_bybit_spot_trades():
    _, c = parse_file(FIX / "bybit-spot-trades.csv", "bybit-spot-trades")
    assert c["ts_ns"].tolist() == [T0 + 74 * MS, T0 + 75 * MS, T0 + 512 * MS]
    assert c["price"].tolist() == [97011.8, 97011.9, 97012.0]
    assert c["qty"].tolist() == [0.003718, 0.12, 0.00015]
    assert c["side"].tolist() == [-1, 1, 1]


def test_bybit_spot_trades_without_rpi(tmp_path):
    f = tmp_path / "BTCUSDT-2022-11.csv"
    f.write_text("id,timestamp,price,volume,side\n1,1770249600074,97011.8,0.003718,sell\n")
    _, c = parse_file(f, "bybit-spot-trades")
    assert c["side"].tolist() == [-1] and c["ts_ns"].tolist() == [T0 + 74 * MS]


def test_bybit_funding_history():
    kind, c = parse_file(FIX / "bybit-funding.csv", "bybit-funding")
    assert kind == "funding"
    assert c["ts_ns"].tolist() == [T0, T0 + 8 * H, T0 + 16 * H]
    assert c["rate"].tolist() == [0.0001, -0.00002145, 0.00005]


@pytest.mark.parametrize("levels", [5, 25])
def test_tardis_book_snapshots_give_level_0_quotes(levels):
    kind, c = parse_file(FIX / f"tardis-book-snapshot-{levels}.csv", f"tardis-book-snapshot-{levels}")
    assert kind == "quotes"
    assert c["ts_ns"].tolist() == [T0 + 5 * MS, T0 + 11 * MS, T0 + 1000 * MS]
    assert c["bid"].tolist() == [96990.1, 96990.0, 96991.2]
    assert c["ask"].tolist() == [96990.2, 96990.1, 96991.3]
    assert c["ask_qty"].tolist() == [1.5, 2.5, 3.5]
    assert c["bid_qty"].tolist() == [0.8, 1.8, 2.8]


def test_tardis_derivative_ticker_marks_and_funding():
    out = parse_file_kinds(FIX / "tardis-derivative-ticker.csv", "tardis-derivative-ticker")
    m, f = out["marks"], out["funding"]
    t8 = T0 + 8 * H
    # the row without a mark price (a partial message) gives no mark; an empty index is NaN
    assert m["ts_ns"].tolist() == [t8 - 2 * S, t8 - S, t8 + 500 * MS, t8 + S]
    assert m["mark_price"].tolist() == [96991.02, 96990.55, 96989.87, 96989.60]
    assert m["index_price"][:3].tolist() == [96985.41, 96984.80, 96983.00] and np.isnan(m["index_price"][3])
    # settlement at 08:00 with the last rate quoted before 08:00 (0.00012, not the later 0.00013);
    # the 16:00 period has not passed in this file, so it is not emitted (no look-ahead)
    assert f["ts_ns"].tolist() == [t8] and f["rate"].tolist() == [0.00012]
    # open interest, stored as reported (data only: never replayed)
    oi = out["open_interest"]
    assert oi["open_interest"][:3].tolist() == [81234.512, 81234.512, 81240.001]
    assert oi["ts_ns"][:3].tolist() == [t8 - 2 * S, t8 - S, t8 - S // 2]


def test_derivative_ticker_funding_carries_across_batches_and_files(tmp_path):
    """A settlement seen only in the next day's file is still emitted, once, at its time."""
    head = ("exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,"
            "predicted_funding_rate,open_interest,last_price,index_price,mark_price\n")
    t = T0 + 24 * H  # 2026-02-06 00:00
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(head + f"x,BTCUSDT,{(t - 2 * S) // US},1,{t // US},0.0003,,1,1,1,100\n")
    b.write_text(head + f"x,BTCUSDT,{(t + S) // US},1,{(t + 8 * H) // US},0.0001,,1,1,1,101\n")
    state: dict = {}
    funding = [p["funding"] for f in (a, b) for p in iter_file(f, "tardis-derivative-ticker", state)]
    ts = np.concatenate([x["ts_ns"] for x in funding]).tolist()
    rate = np.concatenate([x["rate"] for x in funding]).tolist()
    assert ts == [t] and rate == [0.0003]


# ---------------------------------------------------------------------------------------------
# headers

def test_unknown_header_is_refused_with_matching_formats(tmp_path):
    with pytest.raises(DataError) as ei:
        parse_file(FIX / "tardis-quotes.csv", "binance-bookticker")
    msg = str(ei.value)
    assert "unknown header" in msg and "exchange,symbol" in msg and "tardis-quotes" in msg
    f = tmp_path / "h.csv"
    f.write_text("time,px,size\n1770249600000,1,1\n")
    with pytest.raises(DataError, match="unknown header.*expected a header naming"):
        parse_file(f, "binance-funding")


def test_tardis_file_without_header_is_refused_not_read_as_data(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("binance-futures,BTCUSDT,1770249600005000,1770249600007000,3.2,96990.2,96990.1,1.5\n")
    with pytest.raises(DataError, match="unknown header"):
        parse_file(f, "tardis-quotes")


# ---------------------------------------------------------------------------------------------
# timestamps: unit per file by magnitude, 2009-01-01 .. 2100-01-01, no overflow

def _tardis_trades(tmp_path, ts_values):
    f = tmp_path / "t.csv"
    f.write_text("exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n" + "".join(
        f"x,BTCUSDT,{v},1,1,buy,10,1\n" for v in ts_values))
    return f


@pytest.mark.parametrize("scale,unit", [(1, "s"), (10**3, "ms"), (10**6, "µs"), (10**9, "ns")])
def test_time_unit_detected_per_file(tmp_path, scale, unit):
    _, c = parse_file(_tardis_trades(tmp_path, [1770249600 * scale, 1770249601 * scale]), "tardis-trades")
    assert c["ts_ns"].tolist() == [T0, T0 + S]


def test_nanosecond_tardis_file_is_not_stored_in_1862(tmp_path):
    _, c = parse_file(_tardis_trades(tmp_path, [1770249600123456789]), "tardis-trades")
    assert c["ts_ns"].tolist() == [1770249600123456789]


@pytest.mark.parametrize("values,row,value,unit", [
    ([1770249600000, 9_300_000_000_000], 3, "9300000000000", "ms"),  # year 2264 in ms
    ([1770249600000000, 1770249600000], 3, "1770249600000", "µs"),  # a ms value in a µs file
    ([1230767999999], 2, "1230767999999", "ms"),  # 2008-12-31
    ([4102444800000], 2, "4102444800000", "ms"),  # 2100-01-01 itself
    ([9223372036854775807], 2, "9223372036854775807", "ns"),  # INT64_MAX
    ([-1770249600000], 2, "-1770249600000", "ms"),
])
def test_timestamps_out_of_range_are_refused(tmp_path, values, row, value, unit):
    with pytest.raises(DataError) as ei:
        parse_file(_tardis_trades(tmp_path, values), "tardis-trades")
    msg = str(ei.value)
    assert ei.value.row == row and f"t.csv:{row}" in msg and value in msg and f"read as {unit}" in msg
    assert "2009-01-01" in msg and "column 'timestamp'" in msg


def test_binance_transact_time_overflow_refused(tmp_path):
    f = tmp_path / "agg.csv"
    f.write_text("agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
                 "1,10,1,1,1,9300000000000,true\n")
    with pytest.raises(DataError, match="agg.csv:2.*read as ms is outside"):
        parse_file(f, "binance-aggtrades")


def test_index_klines_fill_the_index_of_imported_marks(tmp_path):
    import pyarrow.parquet as pq

    from backtest.data.importers import import_files
    from backtest.data.layout import list_streams

    out = tmp_path / "ds"
    with pytest.raises(DataError, match="import the mark prices first"):
        import_files([FIX / "binance-index-klines.csv"], fmt="binance-index-klines", symbol="BTCUSDT",
                     out=out, venue="binance-usdm")
    import_files([FIX / "binance-mark-klines.csv"], fmt="binance-mark-klines", symbol="BTCUSDT", out=out,
                 venue="binance-usdm")
    res = import_files([FIX / "binance-mark-klines.csv"], fmt="binance-mark-klines", symbol="BTCUSDT", out=out)
    assert res.rows_added == 0 and res.written == []  # NaN index rows compare equal: nothing new
    res = import_files([FIX / "binance-index-klines.csv"], fmt="binance-index-klines", symbol="BTCUSDT", out=out)
    (f,) = list_streams(out)[("marks", "BTCUSDT")]
    t = pq.read_table(f).to_pydict()
    assert t["ts_ns"] == [T0 + 60_000 * MS, T0 + 120_000 * MS, T0 + 180_000 * MS]
    assert t["mark_price"] == [96990.52, 96971.30, 96962.87]
    assert t["index_price"] == [96984.31, 96965.02, 96955.48]
    assert res.rows_added == 0 and len(res.written) == 1
    again = import_files([FIX / "binance-index-klines.csv"], fmt="binance-index-klines", symbol="BTCUSDT", out=out)
    assert again.written == []


def test_binance_coinm_trades_quantity_in_contracts(tmp_path):
    f = tmp_path / "BTCUSD_PERP-trades-2026-02-05.csv"
    f.write_text("id,price,qty,base_qty,time,is_buyer_maker\n28457,96350.0,1,0.00103788,1770249600508,true\n")
    _, c = parse_file(f, "binance-trades")
    assert c["qty"].tolist() == [1.0] and c["price"].tolist() == [96350.0] and c["side"].tolist() == [-1]
    assert c["ts_ns"].tolist() == [T0 + 508 * MS]
