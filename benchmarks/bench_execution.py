"""Execution-model benchmark (not a test): events/s of each taker model on one dataset with
quotes and L2 book snapshots, ratios against `spread` measured in the same run.

    .venv/bin/python benchmarks/bench_execution.py --trades 200_000
    .venv/bin/python benchmarks/bench_execution.py --crash DIR      # DIR: a crash dataset with a book
    .venv/bin/python benchmarks/bench_execution.py --crash tiny     # a built-in crash-like dataset

Data: one symbol, a random walk of trades, a quote after every trade and a 10-level book
snapshot every 10 trades (written into --data, default a temporary folder). Strategy:
benchmarks/taker_strategy.py `Taker` (a market order every 20 trades). Each model runs once to
compile, then best of --repeat end-to-end `backtest.run` calls (warm cache).

--crash runs `LevLong` (a 20x long, margin.settle = "market") with l1_depth and with l2_depth
and prints each liquidation fill with its cost attribution (R4.5).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
T0 = 1_770_249_600_000_000_000
MODELS = ["none", "spread", "sqrt_impact", "l1_depth", "l2_depth"]
LEVELS = 10


def write_dataset(root: Path, trades: int, *, start=62_000.0, drift=0.0, thin=False, seed=1):
    """Trades, a quote per trade and a LEVELS-level snapshot every 10 trades. `drift`: mean
    move per trade; `thin`: the book's sizes shrink along the run (a crash's evaporating depth)."""
    from backtest.data.instruments import Bracket, Instrument, write_instruments
    from backtest.data.writer import write_stream

    rng = np.random.default_rng(seed)
    ts = T0 + np.cumsum(rng.integers(1, 200, trades)) * 1_000_000
    px = np.maximum(1.0, np.round((start + np.cumsum(rng.normal(drift, 0.3, trades))) * 10) / 10)
    qty = rng.integers(1, 50, trades) * 0.01
    write_stream(root, "trades", "X", dict(ts_ns=ts, price=px, qty=qty,
                                           side=rng.choice([-1, 1], trades).astype(np.int8)))
    size = np.linspace(3.0, 0.05, trades) if thin else np.full(trades, 3.0)
    write_stream(root, "quotes", "X", dict(ts_ns=ts, bid=px - 0.1, ask=px + 0.1, bid_qty=size, ask_qty=size))
    snap = np.arange(0, trades, 10)
    k = np.tile(np.arange(LEVELS), len(snap))
    at = np.repeat(snap, LEVELS)
    step = 0.5 * (k + 1)
    write_stream(root, "book", "X", dict(
        ts_ns=ts[at], level=k.astype(np.int8), bid=px[at] - 0.1 - step + 0.5, ask=px[at] + 0.1 + step - 0.5,
        bid_qty=size[at] * (1 + k), ask_qty=size[at] * (1 + k)))
    write_instruments(root / "instruments.json", {"X": Instrument(
        "X", "linear_perpetual", "X", "USDT", "USDT", 0.1, 0.01, maker_fee_rate=0.0002,
        taker_fee_rate=0.0005, brackets=(Bracket(0.0, 1e12, 125.0, 0.005, 0.0),))})
    return root


def bench(data: Path, repeat: int) -> None:
    import backtest as bt
    from taker_strategy import Taker

    rows = []
    for model in MODELS:
        cfg = {"sample_interval": "0", "initial_balance": 1e9, "execution": {"slippage": model}}
        res = bt.run(Taker, data, config=cfg)  # compile / warm
        best = min(_timed(bt.run, Taker, data, cfg) for _ in range(repeat))
        rows.append((model, best, res.fills.height, float(res.fills["slippage"].sum())))
    n = _count_events(data)
    base = dict((m, t) for m, t, *_ in rows)["spread"]
    print(f"{n:,} events (trades, quotes, {LEVELS}-level book rows), best of {repeat}")
    print(f"{'model':<12}{'events/s':>14}{'vs spread':>11}{'fills':>8}{'slippage':>14}")
    for model, t, fills, slip in rows:
        print(f"{model:<12}{n / t:>14,.0f}{base / t:>10.2f}x{fills:>8}{slip:>14,.2f}")


def _timed(run, strategy, data, cfg):
    t = time.perf_counter()
    run(strategy, data, config=cfg)
    return time.perf_counter() - t


def _count_events(data: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in data.rglob("*.parquet"))


def crash(data: Path, symbol: str | None) -> None:
    import json

    import backtest as bt
    from taker_strategy import LevLong

    import polars as pl

    raw = json.loads((data / "instruments.json").read_text())
    symbol = symbol or sorted(raw.get("instruments", raw))[0]
    # sized to use 95 % of the balance at 20x at the first trade's price (100 units on `tiny`)
    files = sorted((data / "kind=trades").glob(f"symbol={symbol}/**/*.parquet"))
    first = pl.read_parquet(files[0], columns=["price"])["price"][0] if files else 3_200.0
    balance = 320_000.0
    size = round(0.95 * balance * 20.0 / first, 3)
    print(f"{data} {symbol}: LevLong, {size} units at 20x (first price {first:,.1f}), "
          "margin.settle = market, trigger = last")
    cols = ["price", "qty", "bench_price", "cost_drift", "cost_spread", "cost_impact", "fee"]
    for model in ("l1_depth", "l2_depth"):
        cfg = {"sample_interval": "0", "initial_balance": balance, "leverage": {symbol: 20.0},
               "execution": {"slippage": model}, "margin": {"settle": "market", "trigger": "last"}}
        res = bt.run(LevLong, data, symbols=[symbol], params={"size": size}, config=cfg)
        liq = res.fills.filter(res.fills["liquidity"] == 2)
        print(f"{model}: {liq.height} liquidation fill(s)")
        for r in liq.select(cols).iter_rows(named=True):
            print("  " + "  ".join(f"{k}={v:,.2f}" for k, v in r.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trades", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--crash", default=None, help="a crash dataset folder, or 'tiny' for a built-in one")
    ap.add_argument("--symbol", default=None, help="--crash: the symbol (default: the first)")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        if a.crash is not None:
            data = Path(a.crash) if a.crash != "tiny" else write_dataset(
                Path(tmp) / "crash", 12_000, start=62_000.0, drift=-0.3, thin=True)
            crash(data, a.symbol)
            return
        data = a.data or write_dataset(Path(tmp) / "bench", a.trades)
        if not (data / "instruments.json").exists():
            write_dataset(data, a.trades)
        bench(data, a.repeat)


if __name__ == "__main__":
    main()
