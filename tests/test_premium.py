"""Binance premium index klines -> the data-only `premium` kind (never replayed), and the funding
estimate derived from it (backtest.data.premium), against hand-computed examples."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backtest.data.importers import import_files, parse_file
from backtest.data.layout import DATA_ONLY_KINDS, EVENT_KINDS
from backtest.data.premium import funding_estimate, load_premium
from backtest.data.reader import open_dataset
from backtest.data.validate import validate_dataset
from backtest.errors import ConfigError, DataError

FIX = Path(__file__).parent / "fixtures" / "exchange"
INSTR = FIX / "instruments.json"
T0 = 1770249600 * 10**9  # 2026-02-05 00:00 UTC
MIN = 60 * 10**9
H = 60 * MIN
CLOSES = [0.0001, -0.0002, -0.0005, -0.0003, 0.0]


@pytest.mark.parametrize("name", ["binance-premium-index-klines.csv", "binance-premium-index-klines-noheader.csv"])
def test_klines_stamped_at_close(name):
    kind, c = parse_file(FIX / name, "binance-premium-index-klines")
    assert kind == "premium"
    # a kline's close is known at close_time + 1 ms (the next kline's open), never at open_time
    assert c["ts_ns"].tolist() == [T0 + (i + 1) * MIN for i in range(5)]
    assert c["close"].tolist() == CLOSES and c["low"][1] == -0.00025


def test_premium_is_data_only(tmp_path):
    assert "premium" in DATA_ONLY_KINDS and "premium" not in EVENT_KINDS
    out = tmp_path / "ds"
    import_files([FIX / "binance-premium-index-klines.csv"], fmt="binance-premium-index-klines",
                 symbol="BTCUSDT", out=out, instruments=INSTR)
    import_files([FIX / "tardis-trades.csv"], fmt="tardis-trades", symbol="BTCUSDT", out=out)
    assert validate_dataset(out).rows["premium"] == 5
    kinds = np.concatenate([c["kind"] for c in open_dataset(out)])
    assert len(kinds) and set(kinds.tolist()) == {0}  # trades only: premium rows are no events
    assert "premium" not in open_dataset(out, kinds=("trades", "premium")).kinds
    ts, close = load_premium(out, "BTCUSDT")
    assert close.tolist() == CLOSES
    # at 00:05 over the last hour: P = (1x0.0001 + 2x-0.0002 + 3x-0.0005 + 4x-0.0003 + 5x0) / 15
    # = -0.0002; I - P = 0.0003 is inside +-0.05 %, so the rate is the interest, 0.01 %
    times, rates = funding_estimate(ts, close, [T0 + 5 * MIN], interval_h=1.0)
    assert rates[0] == pytest.approx(0.0001, abs=1e-15)


def test_funding_by_hand():
    T = T0 + 8 * H
    ts = np.array([T - 9 * H, T - 3 * H, T - 2 * H, T - H, T, T + MIN])
    p = np.array([0.5, 0.0002, -0.0020, -0.0010, 0.0, 0.5])  # the first is before the window, the last after T
    # weighted: P = (1x0.0002 + 2x-0.0020 + 3x-0.0010 + 4x0) / 10 = -0.00068; I - P = 0.00078 clamps
    # to 0.0005: rate = -0.00068 + 0.0005 = -0.00018
    _, r = funding_estimate(ts, p, [T])
    assert r[0] == pytest.approx(-0.00018, abs=1e-15)
    # plain mean: P = -0.0028 / 4 = -0.0007 -> -0.0002
    _, r = funding_estimate(ts, p, [T], weighted=False)
    assert r[0] == pytest.approx(-0.0002, abs=1e-15)
    # a calm premium inside the dampener gives exactly the interest; the cap bounds a wild one
    _, r = funding_estimate(ts, np.full(6, 0.00005), [T])
    assert r[0] == pytest.approx(0.0001, abs=1e-15)
    _, r = funding_estimate(ts, np.full(6, -0.02), [T], cap=0.0075)
    assert r[0] == -0.0075
    # no samples in the interval: NaN. Just before T the sample stamped T is not known yet:
    # P = (1x0.0002 + 2x-0.0020 + 3x-0.0010) / 6 = -0.0068 / 6; rate = P + 0.0005
    _, r = funding_estimate(ts, p, [T - 12 * H, T - 1])
    assert np.isnan(r[0]) and r[1] == pytest.approx(-0.0068 / 6 + 0.0005, abs=1e-15)


def test_default_times_every_8h_with_a_full_interval():
    ts = T0 + np.arange(1, 24 * 60 + 1, dtype=np.int64) * MIN  # one day of 1m klines, stamped 00:01 .. 24:00
    times, rates = funding_estimate(ts, np.zeros(len(ts)))
    assert times.tolist() == [T0 + 8 * H, T0 + 16 * H, T0 + 24 * H]
    assert np.allclose(rates, 0.0001)


def test_bad_inputs():
    with pytest.raises(ConfigError):
        funding_estimate([2, 1], [0.0, 0.0])
    with pytest.raises(DataError, match="no premium index"):
        load_premium(FIX, "BTCUSDT")
