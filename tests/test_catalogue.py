"""The bundled instrument catalogue: dated, sourced, sane, and used by `data import --venue`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from backtest.data.catalogue import HERE, catalogue_instrument, load_venue, venues
from backtest.data.generate import SPECS
from backtest.data.importers import import_files
from backtest.data.instruments import instrument_problems
from backtest.data.instruments import load_instruments
from backtest.errors import ConfigError, DataError

FIX = Path(__file__).parent / "fixtures" / "exchange"
CRASH_PERPS = [s.symbol for s in SPECS if s.type == "linear_perpetual"]


def test_venues_are_dated_and_sourced():
    assert venues() == ["binance-coinm", "binance-usdm", "bybit-linear"]
    for v in venues():
        t = load_venue(v)
        assert t["venue"] == v and t["as_of"].startswith("2026-02") and t["sources"] and t["approximations"]
        for sym, spec in t["instruments"].items():
            assert spec["source"] and isinstance(spec["approximate"], list), (v, sym)


@pytest.mark.parametrize("venue", ["binance-usdm", "bybit-linear"])
def test_linear_venues_cover_the_crash_dataset(venue):
    assert set(CRASH_PERPS) <= set(load_venue(venue)["instruments"])


def test_every_entry_parses_and_passes_the_sanity_checks():
    for v in venues():
        for sym in load_venue(v)["instruments"]:
            ins = catalogue_instrument(v, sym)
            assert instrument_problems(ins) == [], (v, sym)
            assert ins.brackets and ins.funding_interval_h == 8


def test_published_values():
    btc = catalogue_instrument("binance-usdm", "BTCUSDT")
    assert (btc.tick_size, btc.lot_size, btc.maker_fee_rate, btc.taker_fee_rate) == (0.1, 0.001, 0.0002, 0.0005)
    assert [(b.notional_cap, b.max_leverage, b.mmr, b.maint_amount) for b in btc.brackets[:4]] == [
        (300e3, 150, 0.004, 0), (800e3, 100, 0.005, 300), (3e6, 75, 0.0065, 1500), (12e6, 50, 0.01, 12000)]
    eth = catalogue_instrument("binance-usdm", "ETHUSDT")
    assert eth.brackets[-1].maint_amount == 280_506_450  # freqtrade 2024-10-24, tier 12
    cm = catalogue_instrument("binance-coinm", "BTCUSD_PERP")
    assert cm.type == "inverse_perpetual" and cm.contract_size == 100.0 and cm.settle == "BTC"


def test_unknown_venue_and_symbol():
    with pytest.raises(ConfigError, match="unknown venue"):
        catalogue_instrument("okx", "BTCUSDT")
    with pytest.raises(DataError, match="not in the binance-usdm catalogue"):
        catalogue_instrument("binance-usdm", "PEPEUSDT")


def test_import_with_venue_writes_and_extends_the_instruments_file(tmp_path):
    out = tmp_path / "ds"
    res = import_files([FIX / "binance-futures-trades.csv"], fmt="binance-trades", symbol="BTCUSDT", out=out,
                       venue="binance-usdm")
    assert res.instruments_copied
    raw = json.loads((out / "instruments.json").read_text())
    assert "source" not in raw["instruments"]["BTCUSDT"]  # catalogue metadata is not copied
    assert load_instruments(out)["BTCUSDT"] == catalogue_instrument("binance-usdm", "BTCUSDT")
    # a second symbol from the catalogue is added to the existing file
    import_files([FIX / "binance-futures-trades.csv"], fmt="binance-trades", symbol="ETHUSDT", out=out,
                 venue="binance-usdm")
    assert sorted(load_instruments(out)) == ["BTCUSDT", "ETHUSDT"]
    # a different spec for a symbol already in the dataset is refused
    with pytest.raises(DataError, match="differs from the dataset's"):
        import_files([FIX / "bybit-trades.csv"], fmt="bybit-trades", symbol="BTCUSDT", out=out, venue="bybit-linear")
    assert HERE.is_dir()
