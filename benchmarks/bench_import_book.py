"""Import throughput of Tardis order books (not a test: timings depend on the machine).

    .venv/bin/python benchmarks/bench_import_book.py --rows 2000000

Writes synthetic files in the published Tardis layouts into a temporary folder and imports each
with `import_files` (best of --repeat, wall time):

* `incremental_book_L2`: one 1000-level snapshot per side, then --rows updates within 30 ticks
  of the touch (sizes set, 20 % removals), 1 ms apart in messages of 4 rows, book every 1 s, 25 levels;
* `book_snapshot_25`: --rows / 10 rows (each becomes a quote and 25 book rows);
* the baseline, `trades` (Tardis trades) with --rows rows: the plain CSV -> Parquet path.

Prints one table with input rows/s and the ratio against the trades baseline.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

HEAD = "exchange,symbol,timestamp,local_timestamp"
T0_US = 1770249600 * 10**6


def _incremental(path: Path, n: int, rng: np.random.Generator) -> int:
    lines = [f"{HEAD},is_snapshot,side,price,amount"]
    for k in range(1000):
        lines.append(f"binance-futures,BTCUSDT,{T0_US},{T0_US},true,bid,{60000 - 0.1 * k:.1f},{1 + k % 7}")
        lines.append(f"binance-futures,BTCUSDT,{T0_US},{T0_US},true,ask,{60000.1 + 0.1 * k:.1f},{1 + k % 5}")
    ts = T0_US + 1000 * (1 + np.arange(n) // 4)
    bid = rng.random(n) < 0.5
    off = rng.integers(0, 30, n)  # ticks from the touch: the top changes often, never crosses
    price = np.where(bid, 600_000 - off, 600_001 + off) / 10.0
    amt = np.where(rng.random(n) < 0.2, 0.0, rng.integers(1, 50, n) / 10.0)
    side = np.where(bid, "bid", "ask")
    lines += [f"binance-futures,BTCUSDT,{t},{t},false,{s},{p:.1f},{a:g}" for t, s, p, a in zip(ts, side, price, amt)]
    path.write_text("\n".join(lines) + "\n")
    return len(lines) - 1


def _snapshots(path: Path, n: int) -> int:
    cols = [HEAD] + [f"asks[{i}].price,asks[{i}].amount,bids[{i}].price,bids[{i}].amount" for i in range(25)]
    lines = [",".join(cols)]
    cells = ",".join(f"{60000.1 + 0.1 * i:.1f},{1 + i},{60000 - 0.1 * i:.1f},{2 + i}" for i in range(25))
    lines += [f"binance-futures,BTCUSDT,{T0_US + 1000 * k},{T0_US + 1000 * k},{cells}" for k in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return n


def _trades(path: Path, n: int) -> int:
    lines = [f"{HEAD},id,side,price,amount"]
    lines += [f"binance-futures,BTCUSDT,{T0_US + 1000 * k},{T0_US + 1000 * k},{k},buy,60000.{k % 10},0.01"
              for k in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()

    from backtest.data.importers import import_files

    instr = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "exchange" / "instruments.json"
    tmp = Path(tempfile.mkdtemp(prefix="bench_import_book_"))
    try:
        rng = np.random.default_rng(7)
        cases = [("tardis-trades (baseline)", "tardis-trades", _trades(tmp / "t.csv", a.rows), tmp / "t.csv"),
                 ("tardis-incremental-book-l2", "tardis-incremental-book-l2",
                  _incremental(tmp / "i.csv", a.rows, rng), tmp / "i.csv"),
                 ("tardis-book-snapshot-25", "tardis-book-snapshot-25", _snapshots(tmp / "s.csv", a.rows // 10),
                  tmp / "s.csv")]
        results = []
        for label, fmt, n, path in cases:
            best, rows = None, None
            for r in range(max(1, a.repeat)):
                out = tmp / f"ds-{fmt}-{r}"
                t = time.perf_counter()
                res = import_files([path], fmt=fmt, symbol="BTCUSDT", out=out, instruments=instr)
                wall = time.perf_counter() - t
                shutil.rmtree(out, ignore_errors=True)
                if best is None or wall < best:
                    best, rows = wall, res.rows
            results.append((label, n, rows, best))
        base = results[0][1] / results[0][3]
        print(f"| format (--rows {a.rows:,}) | input rows | rows written | wall s (best of {a.repeat}) "
              "| input rows/s | vs trades |")
        print("|---|---:|---|---:|---:|---:|")
        for label, n, rows, wall in results:
            written = ", ".join(f"{k} {v:,}" for k, v in rows.items())
            print(f"| {label} | {n:,} | {written} | {wall:.2f} | {n / wall / 1e6:.2f} M | {n / wall / base:.2f}x |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
