"""Other traders' liquidations (docs/fill-rules.md R8.8): the Tardis `liquidations` importer, the
on_market_liquidation hook with the file's values, and that they never fill or move anything."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import backtest as bt
from backtest.data.importers import parse_file
from backtest.data.writer import write_stream
from backtest.errors import DataError

from bar_strategies import LiqLog

FIX = Path(__file__).parent / "fixtures" / "exchange"
from cli_helpers import BACKTEST  # noqa: E402
T0 = 1_770_249_600_000_000_000  # 2026-02-05 00:00 UTC
WANT = [(1770249605123000000, -1, 61950.5, 0.512), (1770249607004000000, -1, 61940.1, 1.2),
        (1770249611250000000, 1, 62020.0, 0.03)]


def cli_import(out: Path, fmt: str, fixture: str) -> None:
    r = subprocess.run([*BACKTEST, "data", "import", "--format", fmt, "--symbol", "BTCUSDT", "--out",
                        str(out), "--instruments", str(FIX / "instruments.json"), "--quiet",
                        str(FIX / fixture)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def logged(state) -> list[tuple]:
    r = state[0]
    return [(int(r.ts[k]), int(r.side[k]), float(r.px[k]), float(r.qty[k])) for k in range(r.n)]


def test_parse_tardis_liquidations():
    kind, cols = parse_file(FIX / "tardis-liquidations.csv", "tardis-liquidations")
    assert kind == "liquidations"
    got = list(zip(cols["ts_ns"].tolist(), cols["side"].tolist(), cols["price"].tolist(),
                   cols["qty"].tolist()))
    assert got == WANT
    assert cols["side"].dtype == np.int8


@pytest.mark.parametrize("line, col", [("binance-futures,BTCUSDT,1770249605123000,1,,short,1.0,1", "side"),
                                       ("binance-futures,BTCUSDT,1770249605123000,1,,buy,-1,1", "price"),
                                       ("binance-futures,BTCUSDT,x,1,,buy,1,1", "timestamp")])
def test_bad_liquidation_line_names_file_line_column(tmp_path, line, col):
    f = tmp_path / "liq.csv"
    f.write_text("exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n" + line + "\n")
    with pytest.raises(DataError) as e:
        parse_file(f, "tardis-liquidations")
    assert f"{f}:2" in str(e.value) and col in str(e.value)


def test_cli_import_then_hook_gets_the_values(tmp_path):
    # import through the CLI, then on_market_liquidation sees exactly the file's rows
    ds = tmp_path / "ds"
    cli_import(ds, "tardis-liquidations", "tardis-liquidations.csv")
    assert (ds / "kind=liquidations" / "symbol=BTCUSDT" / "date=2026-02-05" / "part-0000.parquet").is_file()
    st = LiqLog.new_state({}, ["BTCUSDT"])
    res = bt.run(LiqLog, ds, symbols=["BTCUSDT"], config=dict(sample_interval="0"), state=st)
    assert logged(st) == WANT
    assert int(st[0].sy[0]) == 0
    assert res.headline["market_liquidations"] == 3


def _trades(root: Path, ts, px) -> None:
    write_stream(root, "trades", "BTCUSDT", dict(ts_ns=np.asarray(ts, np.int64), price=np.asarray(px),
                                                 qty=np.full(len(px), 0.1), side=np.ones(len(px), np.int8)))


def test_market_liquidations_never_fill_or_move_anything(tmp_path):
    # a buy limit at 61960 rests from the first trade (62000); liquidations at 61950.5 and
    # 61940.1 pass through it but are information only: no fill, and the equity curve is that
    # of the same run without them. Control: the same prices as trades do fill it.
    ds = tmp_path / "ds"
    cli_import(ds, "tardis-liquidations", "tardis-liquidations.csv")
    n = 20
    ts = T0 + np.arange(n, dtype=np.int64) * 1_000_000_000
    _trades(ds, ts, np.full(n, 62000.0))
    cfg = dict(sample_interval="1s")
    st = LiqLog.new_state({"limit": 61960.0}, ["BTCUSDT"])
    with_liq = bt.run(LiqLog, ds, symbols=["BTCUSDT"], config=cfg, state=st)
    assert logged(st) == WANT
    assert with_liq.fills.height == 0
    assert with_liq.orders["status"].to_list() == [int(bt.OrderStatus.OPEN)]  # still resting

    plain = tmp_path / "plain"
    shutil.copytree(ds, plain)
    shutil.rmtree(plain / "kind=liquidations")
    base = bt.run(LiqLog, plain, symbols=["BTCUSDT"], config=cfg,
                  state=LiqLog.new_state({"limit": 61960.0}, ["BTCUSDT"]))
    assert base.equity.equals(with_liq.equity)
    assert base.orders.equals(with_liq.orders)

    ctl = tmp_path / "ctl"
    shutil.copytree(plain, ctl)
    shutil.rmtree(ctl / "kind=trades")
    all_ts = np.concatenate([ts, [w[0] for w in WANT]])
    all_px = np.concatenate([np.full(n, 62000.0), [w[2] for w in WANT]])
    order = np.argsort(all_ts, kind="stable")
    _trades(ctl, all_ts[order], all_px[order])
    as_trades = bt.run(LiqLog, ctl, symbols=["BTCUSDT"], config=cfg,
                       state=LiqLog.new_state({"limit": 61960.0}, ["BTCUSDT"]))
    assert as_trades.fills["price"].to_list() == [61960.0]


def test_engine_equals_oracle_with_market_liquidations(tmp_path):
    # R8.8 on both backends: a scripted buy limit, trades above it, liquidations through it
    from test_bars_input import BUY, LMT, engine, events, sub
    from oracle import simulate
    T = lambda i, p: dict(ts_ns=T0 + i, kind=0, price=p, qty=1.0, side=1)  # noqa: E731
    L = lambda i, p, s: dict(ts_ns=T0 + i, kind=5, price=p, qty=2.0, side=s)  # noqa: E731
    ev = events(T(0, 100.0), L(1, 98.0, -1), T(2, 100.0), L(2, 97.5, -1), L(3, 103.0, 1),
                T(4, 99.5), T(5, 98.5))
    script = [sub(0, LMT, BUY, 1.0, limit=99.0), sub(1, LMT, BUY, 1.0, limit=98.0)]
    inst = [dict(type=1, tick_size=0.5, lot_size=0.25, maker_fee_rate=0.0, taker_fee_rate=0.0,
                 leverage=10.0)]
    want = simulate(ev, inst, dict(initial_balance=10_000.0), script)
    got = engine(tmp_path / "ds", ev, script)
    assert [(f["event_idx"], f["price"]) for f in want["fills"]] == [(6, 99.0)]
    assert [(f["event_idx"], f["price"]) for f in got["fills"]] == [(6, 99.0)]
    assert got["results"] == [int(x) for x in want["results"]] == [1, 2]
    assert got["balance"] == want["balance"]
