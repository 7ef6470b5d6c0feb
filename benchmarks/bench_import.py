"""Import throughput and peak memory on a large Binance USDⓈ-M trades file (not a timed test).

    python benchmarks/bench_import.py --rows 20000000            # ~1.3 GB of CSV in a .zip
    python benchmarks/bench_import.py --rows 20000000 --format csv
    python benchmarks/bench_import.py --bomb                      # the decompression-bomb limit

Writes a synthetic file in the exact published layout (header
`id,price,qty,quote_qty,time,is_buyer_maker`, one month of ms timestamps), then runs
`backtest data import` in a child process and reports rows/s (wall and per CPU second: the
machine may be shared) and the child's peak RSS (ru_maxrss). Figures are recorded in benchmarks/README.md ("Import").
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
T0_MS = 1_769_904_000_000  # 2026-02-01 00:00 UTC
CHUNK = 1_000_000


def write_trades_csv(f, rows: int, seed: int = 1) -> None:
    """A month of trades, sorted by time, in Binance's USDⓈ-M `trades` layout."""
    rng = np.random.default_rng(seed)
    f.write(b"id,price,qty,quote_qty,time,is_buyer_maker\n")
    span_ms = 28 * 86_400_000
    price = 97_000.0
    for a in range(0, rows, CHUNK):
        n = min(CHUNK, rows - a)
        ids = np.arange(a, a + n) + 5_000_000_000
        t = T0_MS + (np.arange(a, a + n) * span_ms) // rows
        p = np.round(price + np.cumsum(rng.normal(0, 2, n)), 1)
        price = float(p[-1])
        q = np.round(rng.exponential(0.05, n) + 0.001, 3)
        side = np.where(rng.random(n) < 0.5, "true", "false")
        lines = [f"{i},{pp:.1f},{qq:.3f},{pp * qq:.5f},{tt},{s}\n"
                 for i, pp, qq, tt, s in zip(ids.tolist(), p.tolist(), q.tolist(), t.tolist(), side.tolist())]
        f.write("".join(lines).encode())


def make_input(tmp: Path, rows: int, fmt: str) -> Path:
    csv = tmp / "BTCUSDT-trades-2026-02.csv"
    with open(csv, "wb") as f:
        write_trades_csv(f, rows)
    if fmt == "csv":
        return csv
    z = tmp / "BTCUSDT-trades-2026-02.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.write(csv, csv.name)
    csv.unlink()
    return z


def make_bomb(tmp: Path, gib: float) -> Path:
    """A zip whose one member expands to `gib` GiB of the same trade line (ratio ~ 1000:1)."""
    z = tmp / "bomb.zip"
    line = b"1,97000.0,0.001,97.0,1770249600000,true\n"
    block = line * ((16 << 20) // len(line))  # 16 MiB per write
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("bomb.csv", "w", force_zip64=True) as w:
            w.write(b"id,price,qty,quote_qty,time,is_buyer_maker\n")
            for _ in range(int(gib * (1 << 30) / len(block))):
                w.write(block)
    return z


def run_import(path: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "backtest", "data", "import", "--format", "binance-trades",
           "--symbol", "BTCUSDT", "--venue", "binance-usdm", "--out", str(out), "--quiet", "--json", str(path)]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    secs = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    res = {"exit": p.returncode, "seconds": round(secs, 2), "cpu_seconds": round(cpu, 2),
           "peak_rss_mib": round(r1.ru_maxrss / 1024), "load_avg_1m": os.getloadavg()[0],
           "stderr": p.stderr.strip()[-400:]}
    if p.returncode == 0:
        rows = json.loads(p.stdout)["rows_read"]
        res.update(rows=rows, rows_per_s=round(rows / secs), rows_per_cpu_s=round(rows / cpu))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--format", choices=["zip", "csv"], default="zip")
    ap.add_argument("--bomb", action="store_true", help="measure the decompression-bomb refusal instead")
    ap.add_argument("--bomb-gib", type=float, default=4.0)
    ap.add_argument("--dir", default=None, help="scratch folder (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        tmp = Path(d)
        if args.bomb:
            src = make_bomb(tmp, args.bomb_gib)
        else:
            src = make_input(tmp, args.rows, args.format)
        size = src.stat().st_size
        res = run_import(src, tmp / "ds")
        res.update(input=src.name, input_bytes=size)
        print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
