"""Reading the crash dataset from a local S3 server (moto on loopback) vs the local disk.

Target (issue #18): within 2x of the local disk. Both sides open the dataset and stream every
event chunk (backtest.data.reader.open_dataset); the S3 side starts with an empty read cache,
so it includes the download. Run:

    PYTHONPATH=. .venv/bin/python benchmarks/bench_s3.py [DATASET]
"""
from __future__ import annotations

import os
import socket
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


def main(ds: str) -> None:
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
        t = time.perf_counter()
        n_local = read_all(ds)
        local = time.perf_counter() - t
        t = time.perf_counter()
        n_s3 = read_all("s3://bench/crash")
        cold = time.perf_counter() - t
        t = time.perf_counter()
        read_all("s3://bench/crash")
        warm = time.perf_counter() - t
        assert n_local == n_s3
        print(f"{n_local:,} events: local {local:.2f}s, s3 cold cache {cold:.2f}s ({cold / local:.2f}x), "
              f"s3 warm cache {warm:.2f}s ({warm / local:.2f}x)")
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/generated/feb-2026-crash")
