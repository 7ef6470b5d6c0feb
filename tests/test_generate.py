"""The synthetic Feb-2026 crash dataset: layout, invariants, calibration targets, determinism.

The calibration targets checked here are the ones written down in docs/crash-dataset.md.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backtest.data.generate import SCENARIOS, SPECS, generate_dataset
from backtest.data.instruments import load_instruments
from backtest.data.layout import KINDS, date_of_file, list_streams, schema_of
from backtest.errors import ConfigError

SCALE = 0.1
SEED = 7
T0 = 1_770_163_200 * 10**9  # 2026-02-04 00:00 UTC
H = 3600 * 10**9
END = T0 + 96 * H
CRASH_HOUR = 44  # 2026-02-05 20:00-21:00 UTC
PERPS = [s.symbol for s in SPECS if s.type != "spot"]
SPOTS = [s.symbol for s in SPECS if s.type == "spot"]
ALTS = ["SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "AVAXUSDT", "LINKUSDT"]


class Data:
    def __init__(self, root: Path, summary: dict):
        self.root, self.summary = root, summary
        self.streams = list_streams(root)
        self._cache: dict = {}

    def load(self, kind: str, sym: str) -> dict[str, np.ndarray]:
        key = (kind, sym)
        if key not in self._cache:
            t = pa.concat_tables([pq.read_table(f) for f in self.streams[key]])
            self._cache[key] = {c: t.column(c).to_numpy() for c in t.column_names}
        return self._cache[key]

    def trades(self, sym):
        return self.load("trades", sym)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _last_before(ts, values, t):
    return values[np.searchsorted(ts, t, side="right") - 1]


def _mdd(p):
    return float((p / np.maximum.accumulate(p)).min() - 1.0)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Data:
    root = tmp_path_factory.mktemp("gen") / "feb"
    calls = []
    summary = generate_dataset("feb-2026-crash", root, seed=SEED, scale=SCALE,
                               progress=lambda d, t, label: calls.append((d, t, label)))
    summary["_progress"] = calls
    return Data(root, summary)


# ------------------------------------------------------------------------------------------------
# Layout, summary, instruments
def test_layout_and_summary(data):
    s = data.summary
    assert s["symbols"] == [sp.symbol for sp in SPECS]
    assert s["path"] == str(data.root)
    assert s["seconds"] > 0
    expected = {("trades", x) for x in s["symbols"]} | {("quotes", x) for x in s["symbols"]}
    expected |= {("marks", x) for x in PERPS} | {("funding", x) for x in PERPS}
    expected |= {("book", x) for x in s["symbols"]}  # L2 snapshots (tests/test_generate_book.py)
    assert set(data.streams) == expected
    rows = {k: 0 for k in KINDS}
    for (kind, _), files in data.streams.items():
        for f in files:
            t = pq.read_table(f)
            assert t.schema.equals(schema_of(kind), check_metadata=False)
            rows[kind] += t.num_rows
    assert s["trades"] == rows["trades"]
    assert s["ticks"] == sum(rows.values())
    assert 60_000 < s["trades"] < 64_000  # 620k trades per unit of scale
    assert s["book_rows"] == rows["book"]
    assert 1.15e5 < s["ticks"] - s["book_rows"] < 1.4e5  # ~1.27M rows per unit of scale (quotes follow trades)
    # No temporary siblings left behind by the atomic build.
    assert [p.name for p in data.root.parent.iterdir()] == ["feb"]


def test_progress_reported(data):
    calls = data.summary["_progress"]
    assert calls and calls[-1][0] == calls[-1][1]
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


def test_instruments(data):
    inst = load_instruments(data.root)
    assert set(inst) == set(data.summary["symbols"])
    for sym in PERPS:
        i = inst[sym]
        assert i.type == "linear_perpetual" and i.settle == "USDT"
        assert (i.maker_fee_rate, i.taker_fee_rate) == (0.0002, 0.0005)
        b = i.brackets
        assert len(b) >= 8 and b[0].notional_floor == 0 and b[0].maint_amount == 0
        for prev, cur in zip(b, b[1:]):
            assert cur.notional_floor == prev.notional_cap
            assert cur.max_leverage < prev.max_leverage and cur.mmr > prev.mmr
            assert cur.maint_amount == pytest.approx(
                cur.notional_floor * (cur.mmr - prev.mmr) + prev.maint_amount)
        assert all(x.mmr < 1.0 / x.max_leverage for x in b)  # maintenance below initial margin
    btc = inst["BTCUSDT"].brackets
    assert [(x.notional_cap, x.max_leverage, x.mmr, x.maint_amount) for x in btc[:4]] == [
        (50_000, 125, 0.004, 0), (600_000, 100, 0.005, 50), (3_000_000, 75, 0.0065, 950),
        (12_000_000, 50, 0.01, 11_450)]
    assert all(inst[s].brackets[0].max_leverage <= 75 for s in ALTS)
    for sym in SPOTS:
        assert inst[sym].type == "spot" and inst[sym].brackets == ()
        assert (inst[sym].maker_fee_rate, inst[sym].taker_fee_rate) == (0.001, 0.001)


# ------------------------------------------------------------------------------------------------
# Invariants
def test_streams_sorted_and_dated(data):
    for (kind, sym), files in data.streams.items():
        last = None
        for f in files:
            ts = pq.read_table(f, columns=["ts_ns"]).column(0).to_numpy()
            assert len(ts) > 0
            assert np.all(np.diff(ts) >= 0), f
            if last is not None:
                assert ts[0] >= last, f  # file order (date, part) is time order
            last = ts[-1]
            days = np.unique(ts // (86_400 * 10**9))
            assert len(days) == 1
            assert str(np.datetime64(int(days[0]), "D")) == date_of_file(f)
            assert ts[0] >= T0 and ts[-1] < END


def test_prices_and_quantities_on_grid(data):
    inst = load_instruments(data.root)
    for sym in data.summary["symbols"]:
        tick, lot = inst[sym].tick_size, inst[sym].lot_size
        tr, q = data.trades(sym), data.load("quotes", sym)
        for p in (tr["price"], q["bid"], q["ask"]):
            assert np.all(p > 0)
            assert np.allclose(p / tick, np.rint(p / tick), atol=1e-6, rtol=0)
        for x in (tr["qty"], q["bid_qty"], q["ask_qty"]):
            assert np.all(x > 0)
            assert np.allclose(x / lot, np.rint(x / lot), atol=1e-6, rtol=0)
        assert np.all(q["bid"] < q["ask"])
        assert set(np.unique(tr["side"])) == {-1, 1}
        if sym in PERPS:
            m = data.load("marks", sym)
            for p in (m["mark_price"], m["index_price"]):
                assert np.all(p > 0) and np.allclose(p / tick, np.rint(p / tick), atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------------
# Calibration (targets: docs/crash-dataset.md)
def test_btc_path(data):
    tr = data.trades("BTCUSDT")
    ts, p = tr["ts_ns"], tr["price"]
    assert p[0] == pytest.approx(73_000, rel=0.02)
    assert 57_500 <= p.min() <= 60_500
    assert CRASH_HOUR <= (ts[np.argmin(p)] - T0) // H <= CRASH_HOUR + 6  # the low comes after the break
    # The 62k support holds until the crash hour.
    assert p[ts < T0 + CRASH_HOUR * H].min() > 61_500
    day = _last_before(ts, p, T0 + 48 * H) / _last_before(ts, p, T0 + 24 * H) - 1.0
    assert -0.20 <= day <= -0.13  # 5 Feb, close to close
    assert 62_000 <= p[-1] <= 66_000  # the bounce
    assert -0.25 <= _mdd(p) <= -0.17
    spot = data.trades("BTC-USDT")["price"]
    assert abs(spot[-1] / p[-1] - 1) < 0.005


def test_eth_path(data):
    p = data.trades("ETHUSDT")["price"]
    assert p[0] == pytest.approx(2_650, rel=0.02)
    assert p.min() == pytest.approx(1_850, rel=0.08)
    assert -0.35 <= _mdd(p) <= -0.25


def test_alt_drawdowns(data):
    btc = _mdd(data.trades("BTCUSDT")["price"])
    dds = {s: _mdd(data.trades(s)["price"]) for s in ALTS}
    for s, dd in dds.items():
        assert -0.60 <= dd <= -0.20, (s, dd)
        assert dd < btc, (s, dd, btc)  # higher beta than BTC
    assert min(dds.values()) <= -0.50  # the weakest coin loses about half
    assert len({round(d, 3) for d in dds.values()}) == len(dds)  # each coin its own beta


def test_crash_hour_volume(data):
    for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BTC-USDT"):
        tr = data.trades(sym)
        hourly = np.bincount((tr["ts_ns"] - T0) // H, weights=tr["price"] * tr["qty"], minlength=96)
        assert hourly[CRASH_HOUR] >= 3 * np.median(hourly), sym
        assert np.argmax(hourly) in (CRASH_HOUR - 1, CRASH_HOUR, CRASH_HOUR + 1), sym


def test_heavy_tails_and_sell_pressure(data):
    tr = data.trades("BTCUSDT")
    notional = tr["price"] * tr["qty"]
    assert np.quantile(notional, 0.999) > 30 * np.median(notional)
    crash = (tr["ts_ns"] - T0) // H == CRASH_HOUR
    assert (tr["side"][crash] == -1).mean() > 0.55  # liquidations are market sells
    calm = (tr["ts_ns"] - T0) // H < 24
    assert 0.4 < (tr["side"][calm] == -1).mean() < 0.6


def test_volatility_clustering(data):
    tr = data.trades("BTCUSDT")
    ts, p = tr["ts_ns"], tr["price"]
    grid = T0 + np.arange(1, 96 * 60) * 60 * 10**9
    r = np.diff(np.log(_last_before(ts, p, grid)))
    a = np.abs(r - r.mean())
    ac = np.corrcoef(a[:-1], a[1:])[0, 1]
    assert ac > 0.1  # |returns| are autocorrelated
    hourly = np.sqrt(np.bincount(np.arange(len(r)) // 60, weights=r * r))
    assert hourly[CRASH_HOUR] > 3 * np.median(hourly[:24])


def test_spreads_widen_in_crash(data):
    for sym in data.summary["symbols"]:
        q = data.load("quotes", sym)
        h = (q["ts_ns"] - T0) // H
        bps = (q["ask"] - q["bid"]) / (q["ask"] + q["bid"]) * 2e4
        assert bps[h == CRASH_HOUR].mean() > 1.5 * bps[h < 24].mean(), sym


def test_no_trade_prints_outside_the_quote_it_follows(data):
    """Quotes consistent with trades (issue #16): a trade is inside the last quote before it
    (events at one timestamp: trades first) unless a quote at its own timestamp updates it."""
    for sym in data.summary["symbols"]:
        tr, q = data.trades(sym), data.load("quotes", sym)
        j = np.searchsorted(q["ts_ns"], tr["ts_ns"], side="left")  # first quote at or after
        prev = j - 1
        has_prev = prev >= 0
        updated = (j < len(q["ts_ns"])) & (q["ts_ns"][np.minimum(j, len(q["ts_ns"]) - 1)] == tr["ts_ns"])
        p = np.maximum(prev, 0)
        inside = (q["bid"][p] <= tr["price"]) & (tr["price"] <= q["ask"][p])
        assert (inside | updated | ~has_prev).all(), sym
        assert updated[~inside & has_prev].all()


def test_quotes_at_least_as_frequent_as_trades_around_the_cascade(data):
    lo, hi = T0 + 42 * H, T0 + 48 * H  # QUOTE_ALL_HOURS
    for sym in data.summary["symbols"]:
        tr, q = data.trades(sym), data.load("quotes", sym)
        n_tr = ((tr["ts_ns"] >= lo) & (tr["ts_ns"] < hi)).sum()
        n_q = ((q["ts_ns"] >= lo) & (q["ts_ns"] < hi)).sum()
        assert n_q >= n_tr > 0, sym


def test_marks_close_to_but_distinct_from_last(data):
    for sym in PERPS:
        m, tr = data.load("marks", sym), data.trades(sym)
        ok = m["ts_ns"] >= tr["ts_ns"][0]
        j = np.searchsorted(tr["ts_ns"], m["ts_ns"][ok], side="right") - 1
        last, age = tr["price"][j], m["ts_ns"][ok] - tr["ts_ns"][j]
        mark, index = m["mark_price"][ok], m["index_price"][ok]
        dev = np.abs(mark / last - 1)
        assert np.mean(mark == last) < 0.5, sym
        assert np.median(dev) < 0.002, sym
        # Against a fresh last trade (<= 10 s old: the sample is sparse) the mark stays close; the
        # tail is the crash, when alt spreads are tens of bps and sweeps walk the book.
        fresh = age <= 10 * 10**9
        assert fresh.sum() >= 20
        assert np.quantile(dev[fresh], 0.99) < (0.005 if sym in ("BTCUSDT", "ETHUSDT") else 0.01), sym
        assert np.max(np.abs(mark / index - 1)) < 0.01, sym
        assert np.mean(mark != index) > 0.2, sym  # coarse-tick alts round a 1 bp premium away


def test_funding(data):
    for sym in PERPS:
        f = data.load("funding", sym)
        ts, rate = f["ts_ns"], f["rate"]
        assert list((ts - T0) // H) == [d * 24 + h for d in range(4) for h in (0, 8, 16)]
        assert np.all(ts % (8 * H) == 0)
        assert np.all(rate[:3] > 0) and np.all(rate[:3] <= 0.0003)  # calm: slightly positive
        crash = rate[6]  # 2026-02-06 00:00, the 8 h window holding the crash
        if sym == "BTCUSDT":
            assert -0.001 <= crash <= -0.0002
        else:
            assert -0.003 <= crash <= -0.0005, (sym, crash)
        assert crash == rate.min()


# ------------------------------------------------------------------------------------------------
# Determinism, scaling, errors
def test_deterministic_bytes(data, tmp_path):
    again = tmp_path / "again"
    generate_dataset("feb-2026-crash", again, seed=SEED, scale=SCALE)
    assert _hashes(again) == _hashes(data.root)
    other = tmp_path / "other"
    generate_dataset("feb-2026-crash", other, seed=SEED + 1, scale=SCALE)
    h_other = _hashes(other)
    assert h_other.keys() == _hashes(data.root).keys()
    assert h_other != _hashes(data.root)


def test_rows_proportional_to_scale(data, tmp_path):
    half = generate_dataset("feb-2026-crash", tmp_path / "half", seed=SEED, scale=SCALE / 2)
    assert half["trades"] / data.summary["trades"] == pytest.approx(0.5, rel=0.05)
    assert half["ticks"] / data.summary["ticks"] == pytest.approx(0.5, rel=0.05)


def test_overwrites_existing_folder(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    generate_dataset("feb-2026-crash", out, scale=0.01)
    assert not (out / "stale.txt").exists()
    assert (out / "instruments.json").is_file()


@pytest.mark.parametrize("scenario", ["nope", "", "FEB-2026-CRASH"])
def test_unknown_scenario(tmp_path, scenario):
    with pytest.raises(ConfigError) as e:
        generate_dataset(scenario, tmp_path / "x")
    assert all(s in str(e.value) for s in SCENARIOS)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("scale", [0, -1.0, float("nan"), float("inf")])
def test_bad_scale(tmp_path, scale):
    with pytest.raises(ConfigError):
        generate_dataset("feb-2026-crash", tmp_path / "x", scale=scale)
    assert not (tmp_path / "x").exists()


def test_bad_seed(tmp_path):
    with pytest.raises(ConfigError):
        generate_dataset("feb-2026-crash", tmp_path / "x", seed=-1)
