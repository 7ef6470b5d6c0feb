"""Reading the crash dataset from a local S3 server (moto on loopback) vs the local disk.

Target (issue #18): within 2x of the local disk. Both sides open the dataset and stream every
event chunk (backtest.data.reader.open_dataset); the S3 side starts with an empty read cache,
so it includes the download. An untimed local read warms imports and the page cache first; then
local, cold and warm reads alternate `reps` times and medians are reported. The moto server runs
in a thread of the same process (its CPU counts against S3). Run:

    PYTHONPATH=. .venv/bin/python benchmarks/bench_s3.py [DATASET]
"""
from __future__ import annotations

import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path


def read_all(root) -> int:
    from backtest.data.reader import open_dataset

    n = 0
    for chunk in open_dataset(root):
        n += len(chunk["ts_ns"])
    return n


def main(ds: str, reps: int = 3) -> None:
    import logging

    from moto.server import ThreadedMotoServer
    from pyarrow import fs as pafs

    from backtest.data.storage import upload_dataset

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        os.environ.update(AWS_ENDPOINT_URL_S3=endpoint, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
                          AWS_REGION="us-east-1", CASCADE_S3_CACHE=tempfile.mkdtemp(prefix="bench-s3-"))
        pafs.S3FileSystem(endpoint_override=endpoint, allow_bucket_creation=True).create_dir("bench")
        upload_dataset(Path(ds), "s3://bench/crash")
        read_all(ds)  # warm-up: imports, the OS page cache (not timed)
        local, cold, warm = [], [], []
        for _ in range(reps):  # interleaved, medians: the VM's speed drifts
            t = time.perf_counter()
            n_local = read_all(ds)
            local.append(time.perf_counter() - t)
            os.environ["CASCADE_S3_CACHE"] = tempfile.mkdtemp(prefix="bench-s3-")  # empty cache
            t = time.perf_counter()
            n_s3 = read_all("s3://bench/crash")
            cold.append(time.perf_counter() - t)
            t = time.perf_counter()
            read_all("s3://bench/crash")
            warm.append(time.perf_counter() - t)
            assert n_local == n_s3
        med = statistics.median
        print(f"| {n_local:,} events, median of {reps} | local disk | S3 cold cache | S3 warm cache |")
        print("|---|---|---|---|")
        print(f"| read every event (s) | {med(local):.2f} | {med(cold):.2f} | {med(warm):.2f} |")
        print(f"| ratio to local (target cold <= 2) | 1.00 | {med(cold) / med(local):.2f} | "
              f"{med(warm) / med(local):.2f} |")
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/generated/feb-2026-crash")
