"""Behaviour of the bundled strategies (strategies/*.py) on small crafted datasets.

Each dataset is a few hundred to a few thousand events written with the real writer, and each
test asserts what the strategy did through the Result tables (fills, orders, trades, headline).
"""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import backtest as bt
from backtest.core.schema import OrderStatus, OrderType, Reason
from backtest.data.instruments import Instrument, write_instruments
from backtest.data.writer import write_stream
from backtest.plugins.resolve import resolve_strategy

T0 = 1_770_249_600_000_000_000  # 2026-02-05 00:00 UTC
SEC = 1_000_000_000
MIN = 60 * SEC

SPECS = {  # symbol -> (type, tick, lot)
    "BTCUSDT": ("linear_perpetual", 0.1, 0.001),
    "ETHUSDT": ("linear_perpetual", 0.01, 0.001),
    "SOLUSDT": ("linear_perpetual", 0.01, 0.01),
    "XRPUSDT": ("linear_perpetual", 0.0001, 0.1),
    "DOGEUSDT": ("linear_perpetual", 0.00001, 1.0),
    "ADAUSDT": ("linear_perpetual", 0.0001, 1.0),
    "BTC-USDT": ("spot", 0.01, 0.00001),
}


def write_dataset(root, trades, funding=None):
    """trades: {symbol: (ts_ns, price[, qty])}; funding: {symbol: (ts_ns, rate)}."""
    inst = {}
    for sym, cols in trades.items():
        ts, px = np.asarray(cols[0], dtype=np.int64), np.asarray(cols[1], dtype=float)
        qty = np.asarray(cols[2], dtype=float) if len(cols) > 2 else np.ones(len(ts))
        kind, tick, lot = SPECS[sym]
        px = np.round(px / tick) * tick
        write_stream(root, "trades", sym, dict(ts_ns=ts, price=px, qty=qty,
                                               side=np.where(np.diff(px, prepend=px[0]) < 0, -1, 1)
                                               .astype(np.int8)))
        inst[sym] = Instrument(sym, kind, sym[:3], "USDT", "USDT", tick_size=tick, lot_size=lot)
    for sym, (ts, rate) in (funding or {}).items():
        write_stream(root, "funding", sym, dict(ts_ns=np.asarray(ts, dtype=np.int64),
                                                rate=np.asarray(rate, dtype=float)))
    write_instruments(root / "instruments.json", inst)
    return root


def orders(res):
    """The orders table sorted by oid, with `symbol` derived from `sym` here (independent of the
    engine's own name column)."""
    names = res.symbols
    return res.orders.sort("oid").with_columns(
        pl.col("sym").map_elements(lambda i: names[i], return_dtype=pl.Utf8).alias("symbol"))


def by_type(res, otype):
    return orders(res).filter(pl.col("order_type") == int(otype))


def fills_of(res, oids):
    return res.fills.filter(pl.col("oid").is_in(list(oids)))


def state(res):
    return res.manifest["strategy"]["state"]


def lot_floor(x, lot):
    return np.floor(x / lot + 1e-9) * lot


def run(tmp_path, name, trades, params=None, funding=None, **kw):
    root = tmp_path / "ds"
    if not root.exists():
        write_dataset(root, trades, funding)
    config = {"sample_interval": "0", **kw.pop("config", {})}
    return bt.run(name, root, params=params or {}, config=config, **kw)


# --------------------------------------------------------------------------------------------
# discovery
EXPECTED_PARAMS = {
    "buy_and_hold": {"sym", "fraction", "leverage", "attempts"},
    "ema_cross": {"sym", "fast", "slow", "bar_sec", "band_bps", "allow_short", "fraction",
                  "leverage", "warmup"},
    "btc_mean_reversion": {"sym", "stop", "use_fib_stop", "fib_stop", "band", "use_rsi", "rsi_n",
                           "rsi_sec", "rsi_max", "use_drop", "drop_pct", "drop_min", "tp1", "tp2",
                           "tp3", "tp1_frac", "tp2_frac", "trail_bps", "stop_on_mark", "fraction",
                           "leverage", "max_trades", "cooldown_min"},
    "altcoin_short_hedge": {"btc", "exclude", "n_short", "lookback_min", "min_rel_pct", "leverage",
                            "max_leverage", "stop_pct", "hedge", "hedge_ratio", "max_alts",
                            "cooldown_min", "rebalance_every", "close_unselected", "keep_extra"},
    "capitulation_fade": {"sym", "use_volume", "burst_sec", "vol_mult", "slow_min", "warmup_min",
                          "drop_pct", "drop_min", "use_funding", "funding_max", "low_min",
                          "reclaim", "reclaim_pct", "min_depth_pct", "stop_pct", "target", "fraction", "leverage",
                          "expiry_h", "max_trades"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_resolves_by_short_name_with_documented_params(name):
    cls = resolve_strategy(name)
    assert issubclass(cls, bt.Strategy)
    params = cls.params()
    assert set(params) == EXPECTED_PARAMS[name]
    doc = cls.__doc__ + (__import__(cls.__module__, fromlist=["x"]).__doc__ or "")
    for p, spec in params.items():
        assert spec.doc, f"{name}.{p} has no doc"
        assert p in doc, f"{name}: parameter {p} missing from the docstrings"
    assert cls.describe()


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_resolves_as_a_file(name):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "strategies" / f"{name}.py"
    cls = resolve_strategy(str(path))  # loaded outside the package: `_lib` imported as a sibling
    assert set(cls.params()) == EXPECTED_PARAMS[name]


def test_listed_by_list_strategies():
    names = {n for n, _ in bt.list_strategies()}
    assert set(EXPECTED_PARAMS) <= names
    assert "_lib" not in names


# --------------------------------------------------------------------------------------------
# buy_and_hold
def test_buy_and_hold_buys_once_and_holds(tmp_path):
    px = np.concatenate([np.linspace(70_000, 60_000, 300), np.linspace(60_000, 64_000, 300)]).round(1)
    ts = T0 + np.arange(len(px)) * SEC
    res = run(tmp_path, "buy_and_hold", {"BTCUSDT": (ts, px)},
              params=dict(fraction=0.5, leverage=2.0), config={"leverage": {"BTCUSDT": 2}})
    assert len(res.orders) == 1 and len(res.fills) == 1
    f = res.fills.row(0, named=True)
    assert f["side"] == 1 and f["ts_ns"] == ts[1] and f["price"] == px[1]
    assert f["qty"] == pytest.approx(lot_floor(100_000 * 0.5 * 2.0 / 70_000, 0.001))
    assert res.headline["positions"]["BTCUSDT"] == pytest.approx(f["qty"])
    assert res.headline["rejects"] == 0


def test_buy_and_hold_size_capped_by_margin(tmp_path):
    px = np.full(50, 65_000.0)
    ts = T0 + np.arange(len(px)) * SEC
    # asks for 5x notional with the account at 1x: buys what the margin pays for, once
    res = run(tmp_path, "buy_and_hold", {"BTCUSDT": (ts, px)}, params=dict(leverage=5.0))
    assert len(res.fills) == 1 and res.headline["rejects"] == 0
    q = res.fills["qty"][0]
    assert 0.99 * 100_000 / 65_000 / 1.0005 < q * 1.0 <= 100_000 / 65_000


# --------------------------------------------------------------------------------------------
# ema_cross
def ema_signals(px, fast, slow):
    af, as_ = 2 / (fast + 1), 2 / (slow + 1)
    f = s = px[0]
    sig = []
    for i, p in enumerate(px):
        if i:
            f += af * (p - f)
            s += as_ * (p - s)
        sig.append(1 if f > s else (-1 if f < s else 0))
    return np.array(sig)


def zigzag():
    return np.concatenate([np.linspace(64_000, 60_000, 150), np.linspace(60_000, 66_000, 150)[1:],
                           np.linspace(66_000, 61_000, 150)[1:]]).round(1)


@pytest.mark.parametrize("allow_short", [False, True])
def test_ema_cross_flips_on_crossings(tmp_path, allow_short):
    px = zigzag()
    ts = T0 + np.arange(len(px)) * SEC
    res = run(tmp_path, "ema_cross", {"BTCUSDT": (ts, px)},
              params=dict(bar_sec=0, fast=5, slow=20, allow_short=allow_short),
              config={"leverage": {"BTCUSDT": 2}})
    sig = ema_signals(px, 5, 20)
    changes = [i for i in range(20, len(px)) if sig[i] != sig[i - 1]]
    assert len(changes) == 2  # down -> up at the bottom, up -> down at the top
    fills = res.fills.sort("oid")
    if not allow_short:
        # flat during the down leg, long from the up-cross to the down-cross, flat after
        assert fills["side"].to_list() == [1, -1]
        assert fills["ts_ns"].to_list() == [ts[changes[0] + 1], ts[changes[1] + 1]]
        assert fills["position_after"][-1] == 0.0
    else:
        # short from warm-up, cover + long at the up-cross, sell + short at the down-cross
        assert fills["side"].to_list() == [-1, 1, 1, -1, -1]
        pos = fills["position_after"].to_list()
        assert pos[0] < 0 and pos[1] == 0 and pos[2] > 0 and pos[3] == 0 and pos[4] < 0
        assert fills["ts_ns"][1] == ts[changes[0] + 1] and fills["ts_ns"][3] == ts[changes[1] + 1]
    assert state(res)["crosses"] == 2 + (0 if sig[19] == sig[20] else 1)


def test_ema_cross_time_bars(tmp_path):
    px = zigzag()
    ts = T0 + np.arange(len(px)) * 10 * SEC  # a trade every 10 s: 6 per 1-minute bar
    res = run(tmp_path, "ema_cross", {"BTCUSDT": (ts, px)},
              params=dict(bar_sec=60, fast=3, slow=8), config={"leverage": {"BTCUSDT": 2}})
    closes = px[5::6][: len(px) // 6]  # last trade of each full minute (T0 is on a minute)
    st = state(res)
    assert st["samples"] == len(px) // 6 if len(px) % 6 else len(px) // 6 - 1
    sig = ema_signals(closes, 3, 8)
    ups = [i for i in range(8, len(sig)) if sig[i] > 0 and sig[i - 1] < 0]
    buys = res.fills.filter(pl.col("side") == 1)
    assert len(buys) == len(ups) == 1
    # the sample of bar k is taken at the first trade of bar k + 1; the order fills at the next trade
    assert buys["ts_ns"][0] == T0 + (ups[0] + 1) * MIN + 10 * SEC


# --------------------------------------------------------------------------------------------
# btc_mean_reversion
def rsi_last(px, n):
    d = np.diff(px)[-n:]
    if len(d) < n:
        return np.nan
    up, down = d[d > 0].sum(), -d[d < 0].sum()
    return 50.0 if up + down == 0 else 100 * up / (up + down)


def mr_path(tail):
    """In the band (61,500 +- 10: RSI 50, no signal) for 300 s, a 40-trade slide, then `tail`."""
    a = 61_500 + np.tile([10.0, -10.0], 150)
    b = 61_500 - 40.0 * np.arange(1, 41)  # 61,460 -> 59,900
    return np.concatenate([a, b, tail]).round(1)


MR = dict(use_drop=False, rsi_sec=0, rsi_n=14, rsi_max=25.0)
MR_CFG = {"leverage": {"BTCUSDT": 5}}


def first_signal(px, band_lo=59_800.0, band_hi=61_800.0):
    for i in range(len(px)):
        if band_lo < px[i] <= band_hi and rsi_last(px[: i + 1], 14) < 25:
            return i
    raise AssertionError("no signal")


def test_mean_reversion_enters_on_signal_and_scales_out(tmp_path):
    px = mr_path(np.linspace(60_000, 68_200, 300))
    ts = T0 + np.arange(len(px)) * SEC
    res = run(tmp_path, "btc_mean_reversion", {"BTCUSDT": (ts, px)}, params=MR, config=MR_CFG)
    i = first_signal(px)
    assert i > 300  # the 300 s in the band without an oversold reading did not trigger
    o = orders(res)
    entry = o.row(0, named=True)
    assert entry["order_type"] == OrderType.MARKET and entry["side"] == 1
    assert entry["created_ts_ns"] == ts[i]  # the tick the signal fired, not before
    fills = res.fills.sort("ts_ns")
    q = fills["qty"][0]
    assert fills["ts_ns"][0] == ts[i + 1] and fills["price"][0] == px[i + 1]
    assert q == pytest.approx(lot_floor(100_000 * 3.0 * 0.5 / px[i], 0.001))
    # the protective stop: a reduce-only STOP_MARKET sell of the whole position at 59,800
    stop = by_type(res, OrderType.STOP_MARKET).row(0, named=True)
    assert stop["side"] == -1 and stop["reduce_only"] == 1 and stop["stop_price"] == 59_800.0
    assert stop["qty"] == pytest.approx(q) and stop["created_ts_ns"] == ts[i + 1]
    assert stop["status"] == OrderStatus.CANCELED  # replaced by the trailing stop after tp1
    # three take-profit limit sells filled at their prices with 40 % / 30 % / the rest
    tps = by_type(res, OrderType.LIMIT).sort("oid")
    assert tps["limit_price"].to_list() == [63_500.0, 65_000.0, 68_000.0]
    assert (tps["reduce_only"] == 1).all() and (tps["status"] == OrderStatus.FILLED).all()
    q1, q2 = lot_floor(q * 0.4, 0.001), lot_floor(q * 0.3, 0.001)
    assert tps["filled_qty"].to_list() == pytest.approx([q1, q2, q - q1 - q2])
    exits = fills_of(res, tps["oid"]).sort("ts_ns")
    assert exits["price"].to_list() == [63_500.0, 65_000.0, 68_000.0]
    assert exits["position_after"][-1] == pytest.approx(0.0, abs=1e-9)
    # after tp1, a trailing stop protects the rest; it is cancelled once the last target fills
    trail = by_type(res, OrderType.TRAILING_STOP).row(0, named=True)
    assert trail["created_ts_ns"] == exits["ts_ns"][0] and trail["reduce_only"] == 1
    assert trail["status"] == OrderStatus.CANCELED
    assert state(res)["tp_hits"] == 3 and state(res)["entries"] == 1
    assert res.headline["realized_pnl"] > 0


def test_mean_reversion_stop_fills_below_60k(tmp_path):
    tail = np.concatenate([np.linspace(60_000, 60_600, 60), np.linspace(60_600, 59_500, 60),
                           np.linspace(59_500, 58_300, 60)])
    px = mr_path(tail)
    ts = T0 + np.arange(len(px)) * SEC
    res = run(tmp_path, "btc_mean_reversion", {"BTCUSDT": (ts, px)}, params=MR, config=MR_CFG)
    stop = by_type(res, OrderType.STOP_MARKET).row(0, named=True)
    assert stop["status"] == OrderStatus.FILLED and stop["stop_price"] == 59_800.0
    sf = fills_of(res, [stop["oid"]]).row(0, named=True)
    k = int(np.flatnonzero((np.arange(len(px)) > first_signal(px) + 1) & (px <= 59_800.0))[0])
    assert sf["ts_ns"] == ts[k] and sf["price"] == px[k] <= 59_800.0  # first trade through the stop
    assert sf["order_type"] == OrderType.STOP_MARKET and sf["position_after"] == 0.0
    tps = by_type(res, OrderType.LIMIT)
    assert (tps["status"] == OrderStatus.CANCELED).all() and (tps["filled_qty"] == 0).all()
    assert state(res)["stops_hit"] == 1 and res.headline["positions"]["BTCUSDT"] == 0.0
    assert len(res.fills) == 2 and res.headline["realized_pnl"] < 0

    # the 0.618 option: the stop sits at 58,200, and the dip to 58,300 does not reach it
    res = run(tmp_path, "btc_mean_reversion", {}, params=dict(MR, use_fib_stop=True), config=MR_CFG)
    stop = by_type(res, OrderType.STOP_MARKET).row(0, named=True)
    assert stop["stop_price"] == 58_200.0 and stop["reason"] == Reason.END_OF_DATA
    assert len(res.fills) == 1 and res.headline["positions"]["BTCUSDT"] > 0


def test_mean_reversion_drop_signal(tmp_path):
    px = np.concatenate([np.full(120, 63_000.0), np.linspace(63_000, 60_500, 101)[1:],
                         np.full(50, 60_500.0)]).round(1)
    ts = T0 + np.arange(len(px)) * SEC
    res = run(tmp_path, "btc_mean_reversion", {"BTCUSDT": (ts, px)},
              params=dict(use_rsi=False, drop_pct=3.0, drop_min=30.0), config=MR_CFG)
    i = int(np.flatnonzero(px <= 63_000 * 0.97)[0])  # 3 % below the 30-minute high
    assert px[i - 1] <= 61_800  # already in the band before: the drop is what triggers
    entry = orders(res).row(0, named=True)
    assert entry["side"] == 1 and entry["created_ts_ns"] == ts[i]
    assert state(res)["entries"] == 1


# --------------------------------------------------------------------------------------------
# altcoin_short_hedge
ALT_MOVES = {"BTCUSDT": (64_000.0, -0.03), "ETHUSDT": (1_900.0, -0.05), "SOLUSDT": (80.0, -0.15),
             "XRPUSDT": (1.20, -0.02), "DOGEUSDT": (0.09, -0.10)}


def alt_data(rally_sol=True):
    """One trade per minute per symbol for 6 h: flat, a slide from 1 h to 3 h, flat; SOL rallies
    10 % at 4:30."""
    t = np.arange(6 * 60)
    ts = T0 + t * MIN + 30 * SEC
    out = {}
    for sym, (p0, move) in ALT_MOVES.items():
        frac = np.clip((t - 60) / 120, 0, 1)
        px = p0 * (1 + move * frac)
        if sym == "SOLUSDT" and rally_sol:
            px = np.where(t >= 270, px * 1.10, px)
        out[sym] = (ts, px)
    return out


ALT_CFG = {"timer": "1h", "leverage": {s: 3 for s in ALT_MOVES}}


def test_altcoin_short_hedge_shorts_the_weakest_with_stops(tmp_path):
    res = run(tmp_path, "altcoin_short_hedge", alt_data(),
              params=dict(n_short=2, lookback_min=120, leverage=1.0, stop_pct=5.0, min_rel_pct=0.5),
              config=ALT_CFG)
    o = orders(res)
    entries = o.filter((pl.col("order_type") == OrderType.MARKET) & (pl.col("side") == -1))
    # first rebalance with a 2 h lookback is at 3:00 (snapshots start at 1:00): relative returns
    # ETH -2 %, SOL -12 %, XRP +1 %, DOGE -7 % -> the two weakest are SOL and DOGE; ETH also lags
    # by more than min_rel_pct but n_short is 2
    assert sorted(entries["symbol"].to_list()) == ["DOGEUSDT", "SOLUSDT"]
    assert (entries["created_ts_ns"] == T0 + 3 * 60 * MIN).all()
    assert o.filter(pl.col("symbol").is_in(["ETHUSDT", "XRPUSDT", "BTCUSDT"])).is_empty()
    # each short: notional = equity x 1.0 / 2, and a reduce-only buy stop 5 % above the entry
    for sym, tick in (("SOLUSDT", 0.01), ("DOGEUSDT", 0.00001)):
        f = res.fills.filter((pl.col("symbol") == sym) & (pl.col("side") == -1)).row(0, named=True)
        assert f["qty"] * f["price"] == pytest.approx(50_000, rel=0.02)
        st = by_type(res, OrderType.STOP_MARKET).filter(pl.col("symbol") == sym).row(0, named=True)
        assert st["side"] == 1 and st["reduce_only"] == 1 and st["qty"] == pytest.approx(f["qty"])
        assert st["stop_price"] == pytest.approx(np.ceil(f["price"] * 1.05 / tick - 1e-9) * tick)
    # SOL's 10 % rally at 4:30 triggers its stop at the first trade through it
    sol_stop = by_type(res, OrderType.STOP_MARKET).filter(pl.col("symbol") == "SOLUSDT").row(0, named=True)
    assert sol_stop["status"] == OrderStatus.FILLED
    sf = fills_of(res, [sol_stop["oid"]]).row(0, named=True)
    assert sf["ts_ns"] == T0 + 270 * MIN + 30 * SEC and sf["price"] >= sol_stop["stop_price"]
    assert sf["position_after"] == 0.0
    # 5:00: over 3:00-5:00 nothing lags BTC by 0.5 % -> DOGE is covered; SOL is not re-shorted
    doge_close = o.filter((pl.col("symbol") == "DOGEUSDT") & (pl.col("order_type") == 0)
                          & (pl.col("side") == 1)).row(0, named=True)
    assert doge_close["created_ts_ns"] == T0 + 5 * 60 * MIN and doge_close["reduce_only"] == 1
    assert res.headline["positions"] == {s: 0.0 for s in ALT_MOVES}
    st = state(res)
    assert st["stops_hit"] == 1 and st["shorts_opened"] == 2 and st["shorts_closed"] == 1


def test_altcoin_short_hedge_btc_hedge_and_leverage_cap(tmp_path):
    res = run(tmp_path, "altcoin_short_hedge", alt_data(rally_sol=False),
              params=dict(n_short=3, lookback_min=120, leverage=2.4, max_leverage=2.0, hedge=True,
                          hedge_ratio=0.5, close_unselected=False),
              config=ALT_CFG)
    shorts = res.fills.filter(pl.col("side") == -1)
    # n_short=3: SOL, DOGE, ETH; each wants 80k but the gross cap (2 x equity) stops at 200k
    assert sorted(shorts["symbol"].to_list()) == ["DOGEUSDT", "ETHUSDT", "SOLUSDT"]
    notional = (shorts["qty"] * shorts["price"]).sum()
    assert notional <= 200_000 * 1.001 and notional == pytest.approx(200_000, rel=0.01)
    hedge = res.fills.filter(pl.col("symbol") == "BTCUSDT")
    # the hedge comes after the shorts used the gross room: only the leftover fits (none here)
    assert hedge.is_empty() or (hedge["side"] == 1).all()

    res = run(tmp_path, "altcoin_short_hedge", {},
              params=dict(n_short=2, lookback_min=120, leverage=1.0, hedge=True, hedge_ratio=0.5,
                          close_unselected=False),
              config=ALT_CFG)
    shorts = res.fills.filter((pl.col("side") == -1) & (pl.col("ts_ns") < T0 + 4 * 60 * MIN))
    hedge = res.fills.filter(pl.col("symbol") == "BTCUSDT").sort("ts_ns")
    assert hedge["side"][0] == 1
    assert hedge["qty"][0] * hedge["price"][0] == pytest.approx(
        0.5 * (shorts["qty"] * shorts["price"]).sum(), rel=0.02)


# --------------------------------------------------------------------------------------------
# capitulation_fade
def flush_data():
    """2 s trades: 40 min calm at 64,500 (qty 1), a 5-minute flush to 60,000 (qty 20), a bounce to
    63,400 that fails, a dip to 61,000, then the reclaim of 63,500, then a drop through the stop."""
    calm = 64_500 + np.tile([5.0, -5.0], 600)
    flush = np.linspace(64_500, 60_000, 150)
    bounce = np.linspace(60_050, 63_400, 200)
    dip = np.linspace(63_400, 61_000, 100)
    rally = np.linspace(61_000, 64_000, 100)
    crash = np.linspace(64_000, 59_000, 150)
    px = np.concatenate([calm, flush, bounce, dip, rally, crash])
    qty = np.ones(len(px))
    qty[len(calm): len(calm) + len(flush)] = 20.0
    ts = T0 + np.arange(len(px)) * 2 * SEC
    return ts, px.round(1), qty, len(calm)


CF = dict(burst_sec=60.0, vol_mult=4.0, slow_min=20.0, drop_pct=3.0, drop_min=10.0,
          stop_pct=0.25, use_funding=False)


def test_capitulation_fade_waits_for_reclaim_stop_below_flush_low(tmp_path):
    ts, px, qty, n_calm = flush_data()
    res = run(tmp_path, "capitulation_fade", {"BTCUSDT": (ts, px, qty)}, params=CF,
              config={"leverage": {"BTCUSDT": 5}})
    st = state(res)
    assert st["flushes"] == 1 and st["flush_src"] == 1
    assert ts[n_calm] < st["flush_ts"] < ts[n_calm + 150]  # detected during the flush
    assert st["entry_flush_low"] == 60_000.0
    o = orders(res)
    entry = o.row(0, named=True)
    k = int(np.flatnonzero((ts > st["flush_ts"]) & (px >= 63_500))[0])
    assert px[:k][ts[:k] > st["flush_ts"]].max() < 63_500  # the failed bounce (63,400) did not enter
    assert entry["side"] == 1 and entry["created_ts_ns"] == ts[k]  # the reclaim trade
    fills = res.fills.sort("ts_ns")
    assert fills["ts_ns"][0] == ts[k + 1]
    stop = by_type(res, OrderType.STOP_MARKET).row(0, named=True)
    assert stop["stop_price"] == pytest.approx(59_850.0) and stop["stop_price"] < st["entry_flush_low"]
    assert stop["reduce_only"] == 1 and stop["side"] == -1 and stop["status"] == OrderStatus.FILLED
    sf = fills_of(res, [stop["oid"]]).row(0, named=True)
    assert sf["price"] <= 59_850.0 and sf["position_after"] == 0.0
    assert st["stops_hit"] == 1 and len(res.fills) == 2

    # a reclaim level relative to the flush low: 60,000 x 1.02 = 61,200, reached on the bounce
    res = run(tmp_path, "capitulation_fade", {}, params=dict(CF, reclaim_pct=2.0),
              config={"leverage": {"BTCUSDT": 5}})
    entry = orders(res).row(0, named=True)
    low_i = n_calm + 149  # the flush low (60,000); the level follows the low down until then
    k = int(np.flatnonzero((np.arange(len(px)) > low_i) & (px >= 61_200))[0])
    assert entry["created_ts_ns"] == ts[k] and px[k] < 63_500


def test_capitulation_fade_no_flush_no_trade(tmp_path):
    ts, px, qty, n_calm = flush_data()
    qty = np.ones(len(px))  # the same prices without the volume burst
    res = run(tmp_path, "capitulation_fade", {"BTCUSDT": (ts, px, qty)}, params=CF,
              config={"leverage": {"BTCUSDT": 5}})
    assert state(res)["flushes"] == 0 and res.orders.is_empty()


def test_capitulation_fade_funding_flush(tmp_path):
    ts, px, qty, n_calm = flush_data()
    qty = np.ones(len(px))
    t_f = ts[n_calm + 200]  # funding settles after the low, during the bounce
    res = run(tmp_path, "capitulation_fade", {"BTCUSDT": (ts, px, qty)},
              funding={"BTCUSDT": ([T0 + 10 * MIN, t_f], [0.0001, -0.0012])},
              params=dict(CF, use_volume=False, use_funding=True, low_min=30.0, target=63_900.0),
              config={"leverage": {"BTCUSDT": 5}})
    st = state(res)
    assert st["flushes"] == 1 and st["flush_src"] == 2 and st["flush_ts"] == t_f
    assert st["entry_flush_low"] == 60_000.0  # the low of the last 30 minutes
    entry = orders(res).row(0, named=True)
    k = int(np.flatnonzero((ts > t_f) & (px >= 63_500))[0])
    assert entry["created_ts_ns"] == ts[k]
    # stop and target in one OCO group: the target fills at 63,900 and cancels the stop
    tgt = by_type(res, OrderType.LIMIT).row(0, named=True)
    stop = by_type(res, OrderType.STOP_MARKET).row(0, named=True)
    assert tgt["oco_group"] == stop["oco_group"] == entry["oid"]
    assert tgt["status"] == OrderStatus.FILLED and tgt["limit_price"] == 63_900.0
    assert fills_of(res, [tgt["oid"]])["price"].to_list() == [63_900.0]
    assert stop["status"] == OrderStatus.CANCELED and stop["stop_price"] < 60_000.0
    assert st["targets_hit"] == 1


# --------------------------------------------------------------------------------------------
# the generated crash dataset
@pytest.fixture(scope="module")
def crash_data(tmp_path_factory):
    gen = pytest.importorskip("backtest.data.generate")
    if not hasattr(gen, "generate_dataset"):
        pytest.skip("backtest.data.generate has no generate_dataset")
    root = tmp_path_factory.mktemp("crash") / "feb-2026-crash"
    gen.generate_dataset("feb-2026-crash", root, seed=1, scale=0.05)
    return root


PERPS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "AVAXUSDT", "LINKUSDT"]
CRASH_RUNS = {
    "buy_and_hold": dict(symbols=["BTCUSDT"]),
    "ema_cross": dict(symbols=["BTCUSDT"], params=dict(allow_short=True)),
    "btc_mean_reversion": dict(symbols=["BTCUSDT"], config={"leverage": {"BTCUSDT": 5}}),
    "altcoin_short_hedge": dict(symbols=PERPS, params=dict(hedge=True),
                                config={"timer": "1h", "leverage": {s: 3 for s in PERPS}}),
    "capitulation_fade": dict(symbols=["BTCUSDT"], config={"leverage": {"BTCUSDT": 5}}),
}


@pytest.mark.parametrize("name", sorted(CRASH_RUNS))
def test_runs_on_generated_crash(crash_data, name):
    spec = CRASH_RUNS[name]
    res = bt.run(name, crash_data, symbols=spec["symbols"], params=spec.get("params", {}),
                 config=spec.get("config", {}))
    h = res.headline
    assert np.isfinite(h["final_equity"]) and h["final_equity"] > 0
    assert h["fills"] >= 1
    if name == "buy_and_hold":
        assert h["fills"] == 1 and h["return"] < 0  # bought near 73k, ends near 64k
    if name == "altcoin_short_hedge":
        assert state(res)["shorts_opened"] >= 1
