"""Throughput of the synthetic dataset generator (not a test: timings depend on the machine).

    .venv/bin/python benchmarks/bench_generate.py --scale 5

Generates the feb-2026-crash dataset into a temporary folder (deleted afterwards unless --keep) and
prints rows written per second, end to end (numpy generation + Parquet encoding + disk), plus
the generation-only rate with the parquet writer stubbed out (--no-write-split to skip that run).
With --compare-book it also generates the same dataset without the L2 book (`book=False`) in the
same process and prints both rows with the ratio of wall times (book / no book).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from unittest import mock

from backtest.data import generate as gen


def _run(scale: float, seed: int, out: Path, write: bool, book: bool = True) -> tuple[dict, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    if write:
        summary = gen.generate_dataset("feb-2026-crash", out, seed=seed, scale=scale, book=book)
    else:
        with mock.patch.object(gen, "write_stream", lambda *a, **k: None):
            summary = gen.generate_dataset("feb-2026-crash", out, seed=seed, scale=scale, book=book)
    return summary, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", type=Path, default=None, help="write here and keep the dataset")
    ap.add_argument("--no-write-split", action="store_true", help="skip the generation-only run")
    ap.add_argument("--compare-book", action="store_true",
                    help="only time the dataset with and without the L2 book (--repeat runs each, best kept)")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_generate_"))
    try:
        if a.compare_book:
            _compare_book(a, tmp)
            return
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


def _compare_book(a, tmp: Path) -> None:
    """Best-of-N wall time with and without the book, interleaved so machine load hits both."""
    best: dict[bool, tuple[float, dict]] = {}
    for _ in range(max(1, a.repeat)):
        for book in (False, True):
            s, wall, _cpu = _run(a.scale, a.seed, tmp / f"ds-{book}", write=True, book=book)
            shutil.rmtree(tmp / f"ds-{book}", ignore_errors=True)
            if book not in best or wall < best[book][0]:
                best[book] = (wall, s)
    base = best[False][0]
    print(f"| scale {a.scale:g}, seed {a.seed} | rows | book rows | wall s (best of {a.repeat}) | vs no book |")
    print("|---|---:|---:|---:|---:|")
    for book in (False, True):
        wall, s = best[book]
        print(f"| {'with book' if book else 'no book (book=False)'} | {s['ticks']:,} | {s['book_rows']:,} | "
              f"{wall:.2f} | {wall / base:.2f}x |")


if __name__ == "__main__":
    main()
