"""Reading the crash dataset from a local S3 server (moto on loopback) vs the local disk.

Target (issue #18): within 2x of the local disk. Both sides open the dataset and stream every
event chunk (backtest.data.reader.open_dataset); the S3 side starts with an empty read cache,
so it includes the download. An untimed local read warms imports and the page cache first; then
local, cold and warm reads alternate `reps` times and medians are reported.

The moto server runs either in a thread of this process (`--server thread`, the default: its
Python shares our GIL, so serving a request and decoding a file take turns) or as its own
`moto_server` process (`--server process`: like a real endpoint, it competes only for the
cores). Run:

    PYTHONPATH=. .venv/bin/python benchmarks/bench_s3.py [DATASET] [--server thread|process]
"""
from __future__ import annotations

import os
import socket
import statistics
import subprocess
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


def start_server(kind: str, port: int):
    """moto on 127.0.0.1:port, in a thread or its own process; returns its stop function."""
    if kind == "thread":
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        return server.stop
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):  # until it listens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)

    def stop():
        proc.terminate()
        proc.wait(10)
    return stop


def main(ds: str, reps: int = 3, server: str = "thread") -> None:
    from pyarrow import fs as pafs

    from backtest.data.storage import upload_dataset

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stop = start_server(server, port)
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
        print(f"| {n_local:,} events, median of {reps}, moto in a {server} | local disk | S3 cold cache | "
              f"S3 warm cache |")
        print("|---|---|---|---|")
        print(f"| read every event (s) | {med(local):.2f} | {med(cold):.2f} | {med(warm):.2f} |")
        print(f"| ratio to local (target cold <= 2) | 1.00 | {med(cold) / med(local):.2f} | "
              f"{med(warm) / med(local):.2f} |")
    finally:
        stop()


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", nargs="?", default="data/generated/feb-2026-crash")
    ap.add_argument("--server", choices=("thread", "process"), default="thread")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    main(a.dataset, a.reps, a.server)
