"""End to end on imported real-format files: Binance USDⓈ-M trades, mark-price klines and the
fundingRate file, imported with --venue (no hand-written instruments file), validate, then a 20x
long is liquidated by the imported MARK price (trades never reach the liquidation price) and pays
the imported funding at its settlement time."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

import backtest as bt
from backtest import margin
from backtest.cli.data import data as data_cli
from backtest.data.instruments import load_instruments

from lev_strategies import LevLong

pytestmark = pytest.mark.slow  # compiles a strategy

T0_MS = 1770249600000  # 2026-02-05 00:00 UTC
MIN_MS, H_MS = 60_000, 3_600_000


def _files(tmp: Path):
    trades = tmp / "BTCUSDT-trades-2026-02-05.csv"
    lines = ["id,price,qty,quote_qty,time,is_buyer_maker"]
    for i in range(12 * 60):  # one trade a minute, 00:00:30 .. 11:59:30, never below 68,000
        p = 69_990.0 - i * 2.5
        lines.append(f"{1000 + i},{p:.1f},0.010,{p * 0.01:.5f},{T0_MS + i * MIN_MS + 30_000},{'true' if i % 2 else 'false'}")
    trades.write_text("\n".join(lines) + "\n")
    marks = tmp / "BTCUSDT-1m-2026-02-05.csv"  # markPriceKlines/BTCUSDT/1m, headerless (old era)
    rows = []
    for i in range(12 * 60):
        close = 69_985.0 - i * 2.5 if i < 600 else 66_000.0  # the mark gaps down at 10:00
        o = T0_MS + i * MIN_MS
        rows.append(f"{o},{close + 1:.1f},{close + 3:.1f},{close - 3:.1f},{close:.1f},0,{o + MIN_MS - 1},0,60,0,0,0")
    marks.write_text("\n".join(rows) + "\n")
    funding = tmp / "BTCUSDT-fundingRate-2026-02.csv"
    funding.write_text("calc_time,funding_interval_hours,last_funding_rate\n"
                       f"{T0_MS + 8 * H_MS},8,0.00050000\n{T0_MS + 16 * H_MS},8,0.00010000\n")
    return trades, marks, funding


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    trades, marks, funding = _files(tmp)
    out = tmp / "ds"
    r = CliRunner()
    for fmt, f in (("binance-trades", trades), ("binance-mark-klines", marks), ("binance-funding", funding)):
        res = r.invoke(data_cli, ["import", "--format", fmt, "--symbol", "BTCUSDT", "--venue", "binance-usdm",
                                  "--out", str(out), "--quiet", str(f)])
        assert res.exit_code == 0, res.output
    return out


def test_imported_dataset_validates_without_warnings(imported):
    r = CliRunner().invoke(data_cli, ["validate", "--strict", str(imported)])
    assert r.exit_code == 0, r.output
    assert "trades 720" in r.stdout and "marks 720" in r.stdout and "funding 2" in r.stdout
    ins = load_instruments(imported)["BTCUSDT"]
    assert ins.brackets[0].max_leverage == 150 and ins.taker_fee_rate == 0.0005  # from the catalogue


def test_marks_liquidate_and_funding_is_paid_on_imported_data(imported):
    res = bt.run(LevLong, imported, params={"leverage": 20.0}, symbols=["BTCUSDT"],
                 config={"leverage": {"BTCUSDT": 20.0}, "initial_balance": 10_000.0,
                         "margin": {"mode": "isolated"}})
    entry = res.fills.row(0, named=True)
    assert entry["price"] == 69_990.0
    # funding at 08:00 exactly (the calc_time), paid by the long at the imported rate
    fund = res.funding
    assert len(fund) == 1
    f = fund.row(0, named=True)
    assert f["ts_ns"] == (T0_MS + 8 * H_MS) * 10**6
    assert f["rate"] == 0.0005
    # liquidation by the mark: the first mark event at or below the liquidation price is the
    # 10:00 kline's close, stamped at its close time + 1 ms; no trade ever went that low
    (liq,) = res.liquidations.iter_rows(named=True)
    assert liq["ts_ns"] == (T0_MS + 601 * MIN_MS) * 10**6 and liq["mark_price"] == 66_000.0
    brackets = load_instruments(imported)["BTCUSDT"].brackets
    lp = margin.liquidation_price(1, entry["qty"], entry["price"], entry["qty"] * entry["price"] / 20.0, brackets)
    assert 66_000.0 <= lp < min(pl.read_parquet(p)["price"].min() for p in imported.rglob("kind=trades/**/*.parquet"))


FIX = Path(__file__).parent / "fixtures" / "exchange"
SAMPLES = {  # every format's fixture files (published layouts, with and without header)
    "binance-trades": ["binance-futures-trades.csv", "binance-spot-trades-ms.csv", "binance-spot-trades-us.csv"],
    "binance-aggtrades": ["binance-futures-aggtrades.csv", "binance-spot-aggtrades.csv"],
    "binance-bookticker": ["binance-bookticker.csv", "binance-bookticker-noheader.csv"],
    "binance-mark-klines": ["binance-mark-klines.csv", "binance-mark-klines-noheader.csv"],
    "binance-index-klines": ["binance-index-klines.csv"],  # fills the marks above
    "binance-funding": ["binance-funding.csv"],
    "bybit-trades": ["bybit-trades.csv", "bybit-trades-rpi.csv"],
    "bybit-spot-trades": ["bybit-spot-trades.csv"],
    "bybit-funding": ["bybit-funding.csv"],
    "tardis-trades": ["tardis-trades.csv"],
    "tardis-quotes": ["tardis-quotes.csv"],
    "tardis-book-snapshot-5": ["tardis-book-snapshot-5.csv"],
    "tardis-book-snapshot-25": ["tardis-book-snapshot-25.csv"],
    "tardis-incremental-book-l2": ["tardis-incremental-book-l2.csv"],
    "tardis-derivative-ticker": ["tardis-derivative-ticker.csv"],
}
KIND_SAMPLES = {  # candles and others' liquidations: imported and validated alone (a run on them
    # needs on_bar / on_market_liquidation: tests/test_bars_input.py, test_market_liquidations.py)
    "binance-klines": ["binance-futures-klines-1m.csv", "binance-spot-klines-1m-us.csv"],
    "ohlcv": ["ohlcv-1m.csv"],
    "tardis-liquidations": ["tardis-liquidations.csv"],
    "binance-premium-index-klines": ["binance-premium-index-klines.csv",  # data only (tests/test_premium.py)
                                     "binance-premium-index-klines-noheader.csv"],
}


def test_samples_cover_every_format():
    from backtest.data.formats import FORMATS

    assert set(SAMPLES) | set(KIND_SAMPLES) == set(FORMATS)


def test_every_kind_sample_imports_and_validates(tmp_path):
    r = CliRunner()
    for fmt, names in KIND_SAMPLES.items():
        for name in names:
            res = r.invoke(data_cli, ["import", "--format", fmt, "--symbol", "BTCUSDT", "--venue",
                                      "binance-usdm", "--out", str(tmp_path / name), "--quiet", str(FIX / name)])
            assert res.exit_code == 0, (fmt, name, res.output)
            res = r.invoke(data_cli, ["validate", str(tmp_path / name)])
            assert res.exit_code == 0, (fmt, name, res.output)


def test_every_sample_imports_validates_and_runs(tmp_path):
    out = tmp_path / "all"
    r = CliRunner()
    for fmt, names in SAMPLES.items():
        for name in names:  # each alone into its own dataset, then all together
            if fmt == "binance-index-klines":  # fills existing marks: give it some
                r.invoke(data_cli, ["import", "--format", "binance-mark-klines", "--symbol", "BTCUSDT", "--venue",
                                    "binance-usdm", "--out", str(tmp_path / name), str(FIX / "binance-mark-klines.csv")])
            for ds in (tmp_path / name, out):
                res = r.invoke(data_cli, ["import", "--format", fmt, "--symbol", "BTCUSDT", "--venue",
                                          "binance-usdm", "--out", str(ds), "--quiet", str(FIX / name)])
                assert res.exit_code == 0, (fmt, name, res.output)
            res = r.invoke(data_cli, ["validate", str(tmp_path / name)])
            assert res.exit_code == 0, (fmt, name, res.output)
    res = r.invoke(data_cli, ["validate", "--json", str(out)])
    assert res.exit_code == 0, res.output
    import json

    rep = json.loads(res.stdout)
    assert set(rep["rows"]) == {"trades", "quotes", "marks", "funding", "book", "open_interest"}
    result = bt.run(LevLong, out, params={"entry": 1.0}, symbols=["BTCUSDT"])  # never enters: just runs
    assert len(result.fills) == 0 and len(result.funding) == 0  # flat all along: nothing to pay
