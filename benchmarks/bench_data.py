"""What the benchmarks share (bench_engine.py, bench_sweep.py, bench_compile.py): the synthetic
tick datasets they build and the frozen copy of the source they run on."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

T0 = 1_770_249_600_000_000_000  # 2026-02-05 UTC
BLOCK = 5_000_000
OTHERS = ["ADAUSDT", "BNBUSDT", "DOGEUSDT", "ETHUSDT", "LTCUSDT", "SOLUSDT", "XRPUSDT"]
SCALE = {"BTCUSDT": 1.0, "ADAUSDT": 1e-5, "BNBUSDT": 0.01, "DOGEUSDT": 3e-6, "ETHUSDT": 0.05,
         "LTCUSDT": 0.0015, "SOLUSDT": 0.003, "XRPUSDT": 4e-5}


def write_dataset(root: Path, ticks: int, symbols: list[str], seed: int = 1) -> None:
    from backtest.data.instruments import Instrument, write_instruments
    from backtest.data.writer import write_stream

    if (root / "instruments.json").exists():
        return
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    period = 400_000  # ticks per cycle of the level
    drift = 0.0
    written = 0
    b = 0
    while written < ticks:
        n = min(BLOCK, ticks - written)
        i = written + np.arange(n)
        sym = (rng.integers(0, len(symbols), n) if len(symbols) > 1 else np.zeros(n, np.int64))
        noise = drift + np.cumsum(rng.normal(0.0, 6.0, n))
        noise -= np.linspace(0.0, noise[-1], n) * 0.9  # keep the noise bounded across blocks
        drift = float(noise[-1])
        level = 62_500.0 + 3_200.0 * np.sin(2 * np.pi * i / period) + noise
        ts = T0 + i * 1_000_000  # 1 ms apart
        for s, name in enumerate(symbols):
            m = sym == s
            k = int(m.sum())
            if not k:
                continue
            px = np.round(level[m] * SCALE[name], 6 if SCALE[name] < 1e-3 else 1)
            write_stream(tmp, "trades", name, dict(
                ts_ns=ts[m].astype(np.int64), price=px,
                qty=np.round(rng.exponential(0.05, k), 3) + 0.001,
                side=np.where(rng.random(k) < 0.5, -1, 1).astype(np.int8)), part=f"part-{b:04d}")
        written += n
        b += 1
    inst = {s: Instrument(s, "linear_perpetual", s[:-4], "USDT", "USDT",
                          tick_size=0.1 if SCALE[s] >= 1e-3 else 1e-6, lot_size=0.001,
                          maker_fee_rate=0.0002, taker_fee_rate=0.0005) for s in symbols}
    write_instruments(tmp / "instruments.json", inst)
    tmp.replace(root)


def snapshot_source(dest: Path) -> Path:
    """A frozen copy of the framework, strategies and the benchmarks' strategies. Every
    measurement runs on it: edits made to the live tree while the benchmark runs would otherwise
    change the strategy key (it hashes the framework) and force recompiles in the middle of a
    timing."""
    for name in ("backtest", "strategies"):
        shutil.copytree(REPO / name, dest / name, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    (dest / "benchmarks").mkdir(parents=True, exist_ok=True)
    for name in ("busy_strategy.py", "idle_strategy.py"):
        shutil.copy2(REPO / "benchmarks" / name, dest / "benchmarks" / name)
    return dest
