"""Reading the crash dataset from a local S3 server (moto on loopback) vs the local disk.

Target (issue #18): within 2x of the local disk. Both sides open the dataset and stream every
event chunk (backtest.data.reader.open_dataset); an S3 "cold" read starts with an empty read
cache, so it includes the download. Untimed reads warm imports, the page cache and the rows'
checks first (a file's checks are remembered: by path for a local file, by the S3 object for a
downloaded one). Each round then times, in an order rotating from round to round: local; S3 cold
then S3 warm; S3 cold through pyarrow's client alone (obstore hidden: a HEAD before each GET);
and, as a pair, a fresh local copy's first read against a cold read of freshly uploaded objects
(both check every row; all rounds' copies and uploads are made before the first timed read).
Medians of `reps` rounds.

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


def _timed(root) -> tuple[int, float]:
    t = time.perf_counter()
    n = read_all(root)
    return n, time.perf_counter() - t


# (read, the read it is compared with, target): the rows of the table
ROWS = [("local", "local", ""), ("cold", "local", "<= 2"), ("warm", "local", ""),
        ("cold, pyarrow client", "local", ""), ("local, first read", "local, first read", ""),
        ("cold, new objects", "local, first read", "<= 2")]


def main(ds: str, reps: int = 3, server: str = "thread") -> None:
    events, med = measure(ds, reps, server)
    print(f"{events:,} events, median of {reps}, moto in a {server}:\n")
    print("| read | s | ratio to its local read | target |")
    print("|---|---|---|---|")
    for name, base, target in ROWS:
        print(f"| {name} | {med[name]:.2f} | {med[name] / med[base]:.2f} | {target} |")


def measure(ds: str, reps: int = 3, server: str = "thread") -> tuple[int, dict[str, float]]:
    """The dataset's event count and the median seconds of each read of ROWS."""
    import shutil

    from pyarrow import fs as pafs

    from backtest.data.storage import upload_dataset

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stop = start_server(server, port)
    scratch = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    try:
        endpoint = f"http://127.0.0.1:{port}"
        os.environ.update(AWS_ENDPOINT_URL_S3=endpoint, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
                          AWS_REGION="us-east-1")
        pafs.S3FileSystem(endpoint_override=endpoint, allow_bucket_creation=True).create_dir("bench")
        upload_dataset(Path(ds), "s3://bench/crash")

        def empty_cache():
            os.environ["CASCADE_S3_CACHE"] = tempfile.mkdtemp(dir=scratch)

        empty_cache()
        read_all(ds)  # warm-up: imports, the OS page cache, the rows' checks (not timed)
        read_all("s3://bench/crash")
        # every round's never-read copies first: an upload still busy in the server would
        # slow whichever read came right after it
        for rep in range(reps):
            shutil.copytree(ds, scratch / f"copy{rep}")  # a local dataset never read: its rows are checked
            upload_dataset(Path(ds), f"s3://bench/new{rep}")  # objects never read: the same
        times: dict[str, list[float]] = {}
        counts = set()
        for rep in range(reps):  # interleaved, in a rotating order, medians: the VM's speed drifts
            groups = [[("local", ds)], [("cold", "s3://bench/crash"), ("warm", "s3://bench/crash")],
                      [("local, first read", scratch / f"copy{rep}")],
                      [("cold, new objects", f"s3://bench/new{rep}")], [("cold, pyarrow client", "s3://bench/crash")]]
            k = rep % len(groups)  # "warm" always reads the cache its "cold" just filled
            for name, root in [run for group in groups[k:] + groups[:k] for run in group]:
                if name.startswith("cold"):
                    empty_cache()
                hide = name == "cold, pyarrow client"  # no obstore: pyarrow's HEAD + GET per file
                saved = {m: sys.modules.pop(m, None) for m in ("obstore", "obstore.store")} if hide else {}
                sys.modules.update(dict.fromkeys(saved))  # None: `import obstore` fails
                n, dt = _timed(root)
                for m, v in saved.items():  # as before: loaded, or not imported yet
                    if v is None:
                        del sys.modules[m]
                    else:
                        sys.modules[m] = v
                counts.add(n)
                times.setdefault(name, []).append(dt)
        assert len(counts) == 1, counts
        return counts.pop(), {k: statistics.median(v) for k, v in times.items()}
    finally:
        stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", nargs="?", default="data/generated/feb-2026-crash")
    ap.add_argument("--server", choices=("thread", "process"), default="thread")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    main(a.dataset, a.reps, a.server)
