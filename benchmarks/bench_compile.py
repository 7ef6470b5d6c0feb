"""Cold compile with and without each of Cascade's numba patches that change the compiled code
(backtest/core/linkonly.py, short_names.py): what each saves, in a new process
on an empty cache.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_compile.py --runs 3
    PYTHONPATH=. .venv/bin/python benchmarks/bench_compile.py --runs 8 --variants "no shortnames"

Each round starts one cold process per variant (`CASCADE_NUMBA_PATCHES`: both, each one left out,
none, or with `--variants` a subset of those beside "all"; `CASCADE_PARALLEL_COMPILE=0` so that
no compile helper shares the work), in a rotating order so that a slow phase of the machine is
spread over the variants. Reported: median wall and CPU seconds from process start to the first
loop call returning (the cold start of bench_engine.py), and the CPU ratio of each variant to
"all" measured in the same rounds. A patch is kept while leaving it out costs CPU in that ratio,
consistently over the rounds (issue #15 item 4, issue #18 item 5).

The other patch, lazyload.py, changes only how cached kernels load (a cold start's compile
refreshes numba's contexts anyway), so it is off in every variant here; bench_engine.py times the
warm start with and without it.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import snapshot_source  # noqa: E402
from bench_engine import START_CHILD  # noqa: E402

VARIANTS = {"all": "linkonly,shortnames", "no linkonly": "shortnames", "no shortnames": "linkonly", "none": ""}


def cold_start(src: Path, cache: Path, patches: str) -> tuple[float, float]:
    shutil.rmtree(cache, ignore_errors=True)
    env = dict(os.environ, CASCADE_CACHE_DIR=str(cache / "cascade"), NUMBA_CACHE_DIR=str(cache / "numba"),
               CASCADE_PARALLEL_COMPILE="0", CASCADE_NUMBA_PATCHES=patches)
    t = time.time()
    p = subprocess.run([sys.executable, "-c", START_CHILD, "x", str(src)], env=env, capture_output=True,
                       text=True, cwd=str(src))
    if p.returncode:
        raise RuntimeError(p.stderr[-2000:])
    r = json.loads(p.stdout.strip().splitlines()[-1])
    return r["t"] - t, r["cpu"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="rounds (one cold start per variant each)")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="comma-separated subset of: " + ", ".join(VARIANTS) + " (\"all\" is always measured)")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_compile_"))
    try:
        src = snapshot_source(root / "src")
        names = ["all"] + [n for n in a.variants.split(",") if n in VARIANTS and n != "all"]
        got = {n: [] for n in names}
        for r in range(a.runs):
            for n in names[r % len(names):] + names[:r % len(names)]:
                wall, cpu = cold_start(src, root / "cache", VARIANTS[n])
                got[n].append((wall, cpu))
                print(f"# round {r + 1}: {n}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = statistics.median(c for _, c in got["all"])
    print(f"\n| patches in force | cold wall (s, median of {a.runs}) | cold CPU (s) | CPU vs all | "
          "CPU saved by the missing patch(es) (s) |")
    print("|---|---|---|---|---|")
    for n in names:
        wall = statistics.median(w for w, _ in got[n])
        cpu = statistics.median(c for _, c in got[n])
        print(f"| {n} | {wall:.2f} | {cpu:.2f} | {cpu / base:.2f} | {cpu - base:+.2f} |")


if __name__ == "__main__":
    main()
