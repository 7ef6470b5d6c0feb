"""Throughput of the synthetic dataset generator (not a test: timings depend on the machine).

    .venv/bin/python benchmarks/bench_generate.py --scale 5

Generates the feb-2026-crash dataset into a temporary folder (deleted afterwards unless --keep) and
prints rows written per second, end to end (numpy generation + parquet/zstd encoding + disk), plus
the generation-only rate with the parquet writer stubbed out (--no-write-split to skip that run).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from unittest import mock

from backtest.data import generate as gen


def _run(scale: float, seed: int, out: Path, write: bool) -> tuple[dict, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    if write:
        summary = gen.generate_dataset("feb-2026-crash", out, seed=seed, scale=scale)
    else:
        with mock.patch.object(gen, "write_stream", lambda *a, **k: None):
            summary = gen.generate_dataset("feb-2026-crash", out, seed=seed, scale=scale)
    return summary, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", type=Path, default=None, help="write here and keep the dataset")
    ap.add_argument("--no-write-split", action="store_true", help="skip the generation-only run")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_generate_"))
    try:
        out = a.keep or tmp / "ds"
        s, wall, cpu = _run(a.scale, a.seed, out, write=True)
        size = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
        print(f"scale {a.scale:g}: {s['ticks']:,} rows ({s['trades']:,} trades), {size / 2**20:.1f} MiB, "
              f"{wall:.2f} s wall, {cpu:.2f} s cpu -> {s['ticks'] / wall / 1e6:.2f} M ticks/s end to end")
        if not a.no_write_split:
            s, wall, cpu = _run(a.scale, a.seed, tmp / "nowrite", write=False)
            print(f"generation only (writer stubbed): {wall:.2f} s wall -> "
                  f"{s['ticks'] / wall / 1e6:.2f} M ticks/s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
