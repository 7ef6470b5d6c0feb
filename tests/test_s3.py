"""s3:// datasets against a real S3 implementation: moto's standalone server on loopback.

moto (the `dev` extra) is started by the fixture on 127.0.0.1 with a free port; nothing here
mocks our own code. Skipped when moto is not installed.
"""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from backtest.cli import cli
from backtest.result import Result

moto_server = pytest.importorskip("moto.server")

FIX = Path(__file__).parent / "fixtures" / "exchange"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server():
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch, tmp_path):
    """Endpoint and credentials for the loopback server, a fresh bucket, a per-test read cache."""
    from backtest.data import storage

    for k, v in {"AWS_ENDPOINT_URL_S3": s3_server, "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                 "CASCADE_S3_CACHE": str(tmp_path / "s3cache")}.items():
        monkeypatch.setenv(k, v)
    bucket = f"b{_free_port()}"
    from pyarrow import fs as pafs

    pafs.S3FileSystem(endpoint_override=s3_server, allow_bucket_creation=True).create_dir(bucket)
    fs = storage.filesystem()
    return fs, bucket


@pytest.fixture(scope="module")
def crash(tmp_path_factory) -> Path:
    from backtest.data.generate import generate_dataset

    out = tmp_path_factory.mktemp("crash") / "ds"
    generate_dataset("feb-2026-crash", out, scale=0.02)
    return out


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def upload(local: Path, s3, prefix="crash") -> str:
    from backtest.data.storage import upload_dataset

    fs, bucket = s3
    uri = f"s3://{bucket}/{prefix}"
    upload_dataset(local, uri)
    return uri


def test_validate_and_inspect_read_the_bucket(crash, s3):
    uri = upload(crash, s3)
    r = invoke("data", "validate", uri)
    assert r.exit_code == 0, r.output
    summary = r.stdout.split(": ", 2)[2]  # the folder named is the read cache's copy
    assert summary == invoke("data", "validate", crash).stdout.split(": ", 2)[2]
    r = invoke("data", "inspect", uri, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == json.loads(invoke("data", "inspect", crash, "--json").stdout)


def test_run_on_s3_is_bit_identical_to_local(crash, s3, tmp_path):
    uri = upload(crash, s3)
    args = ["run", "reference", "--param", "entry=62000", "--leverage", "BTCUSDT=5", "--quiet"]
    r1 = invoke(*args, "--data", crash, "--out", tmp_path / "local")
    assert r1.exit_code == 0, r1.output
    r2 = invoke(*args, "--data", uri, "--out", tmp_path / "s3")
    assert r2.exit_code == 0, r2.output
    a, b = Result.load(tmp_path / "local"), Result.load(tmp_path / "s3")
    assert a.manifest["data"]["fingerprint"] == b.manifest["data"]["fingerprint"]
    assert a.equity.equals(b.equity) and a.trades.equals(b.trades)
    assert json.dumps(a.metrics, sort_keys=True) == json.dumps(b.metrics, sort_keys=True)


def test_cache_is_reused_and_follows_changes(crash, s3):
    from backtest.data.storage import local_dataset

    uri = upload(crash, s3)
    first = local_dataset(uri)
    f = next(first.rglob("*.parquet"))
    before = f.stat().st_mtime_ns
    assert local_dataset(uri) == first and f.stat().st_mtime_ns == before  # not downloaded again
    fs, bucket = s3
    extra = f"{bucket}/crash/kind=trades/symbol=ZZZ/date=2026-02-05/part.parquet"
    with fs.open_output_stream(extra) as out:
        out.write(f.read_bytes())
    assert (local_dataset(uri) / "kind=trades/symbol=ZZZ/date=2026-02-05/part.parquet").is_file()
    fs.delete_file(extra)
    assert not list((local_dataset(uri) / "kind=trades/symbol=ZZZ").rglob("*.parquet"))  # gone from the cache


def test_import_into_s3(s3):
    fs, bucket = s3
    uri = f"s3://{bucket}/imported"
    r = invoke("data", "import", "--format", "binance-trades", "--symbol", "BTCUSDT", "--out", uri,
               "--instruments", FIX / "instruments.json", FIX / "binance-futures-trades.csv")
    assert r.exit_code == 0, r.output
    assert "into s3://" in r.stdout
    r = invoke("data", "import", "--format", "binance-trades", "--symbol", "BTCUSDT", "--out", uri, "--json",
               FIX / "binance-futures-trades.csv", FIX / "binance-spot-trades-us.csv")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rows_added"] > 0
    r = invoke("data", "validate", uri)
    assert r.exit_code == 0 and r.stdout.startswith("OK: ") and "trades 6" in r.stdout, r.output


def test_missing_bucket_and_bad_credentials_are_one_line(s3, monkeypatch):
    r = invoke("data", "validate", "s3://no-such-bucket-here/ds")
    assert r.exit_code == 1
    assert r.output.count("\n") == 1 and "no-such-bucket-here" in r.output, r.output
    assert "Traceback" not in r.output
    fs, bucket = s3
    r = invoke("data", "inspect", f"s3://{bucket}/nothing")
    assert r.exit_code == 1 and "dataset folder not found" in r.output and r.output.count("\n") == 1, r.output
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")  # nothing listens there
    r = invoke("data", "validate", f"s3://{bucket}/x")
    assert r.exit_code == 1 and "cannot read the S3 dataset" in r.output and r.output.count("\n") == 1, r.output


@pytest.mark.slow
def test_sweep_workers_read_the_bucket(crash, s3, tmp_path):
    """Process-pool workers get the s3:// URI (not a driver path) and read it through their cache."""
    uri = upload(crash, s3)
    r = invoke("sweep", "reference", "--data", uri, "--out", tmp_path / "sw", "--quiet", "--jobs", "2",
               "--batch-size", "1", "--leverage", "BTCUSDT=5", "--grid", "entry=62000,63000")  # a worker
    assert r.exit_code == 0, r.output
    import polars as pl

    table = pl.read_parquet(tmp_path / "sw" / "results.parquet")
    assert table.height == 2 and (table["status"] == "ran").all()


def _chunks(root, **kw):
    from backtest.data.reader import open_dataset

    return [{k: a.copy() for k, a in c.items()} for c in open_dataset(root, **kw)]


def _same(a, b) -> bool:
    import numpy as np

    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(np.array_equal(x[k], y[k], equal_nan=True) and x[k].dtype == y[k].dtype
                                     for k in x) for x, y in zip(a, b))


def _manifest_is_whole(uri, s3) -> None:
    """Every file the read cache's manifest trusts is whole: the bucket's size and bytes."""
    from backtest.data.storage import cache_root

    fs, bucket = s3
    dest = cache_root() / uri[len("s3://"):]
    manifest = json.loads((dest / ".s3-cache.json").read_text())
    for rel, (size, _) in manifest.items():
        with fs.open_input_stream(f"{uri[len('s3://'):]}/{rel}") as src:
            assert (dest / rel).read_bytes() == src.read(size + 1), rel
    return manifest


def test_cold_read_streams_while_downloading_and_matches_local(crash, s3, client):
    """open_dataset on a cold cache decodes files as they arrive: chunk for chunk the local read
    (several streams, small chunks), and the cache then trusts exactly the bucket's files."""
    from backtest.data import storage

    uri = upload(crash, s3)
    local = _chunks(crash, chunk_rows=5000)
    assert _same(_chunks(uri, chunk_rows=5000), local)
    manifest = _manifest_is_whole(uri, s3)
    assert len(manifest) == sum(1 for p in crash.rglob("*") if p.is_file())
    assert not storage.pending(storage.cache_root())
    assert _same(_chunks(uri, chunk_rows=5000), local)  # warm
    one = _chunks(crash, symbols=["BTCUSDT"], kinds=("trades",), start_ns=None)
    storage_dir = storage.cache_root()
    import shutil

    shutil.rmtree(storage_dir)  # cold again, one stream: its files are fetched first, on demand
    assert _same(_chunks(uri, symbols=["BTCUSDT"], kinds=("trades",)), one)
    from backtest.data.coverage import data_time_range

    storage.local_dataset(uri)  # the other files finish downloading in the background: wait
    shutil.rmtree(storage_dir)  # a run's range check on a cold cache waits for the files it reads
    assert data_time_range(storage.local_dataset(uri, wait=False)) == data_time_range(crash)


def test_read_killed_mid_download_leaves_no_trusted_partial_file(crash, s3, tmp_path):
    """A process killed half-way through a cold read (SIGKILL: no cleanup at all) leaves a cache
    whose manifest names only whole files; the next read completes it and matches the local read."""
    import os
    import signal
    import subprocess
    import sys

    uri = upload(crash, s3)
    code = ("import sys, time\n"
            "from backtest.data.reader import open_dataset\n"
            f"it = iter(open_dataset({uri!r}, chunk_rows=1000))\n"
            "next(it)\n"
            "print('first chunk', flush=True)\n"
            "time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1])))
    try:
        assert p.stdout.readline().strip() == "first chunk"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    from backtest.data.storage import cache_root

    dest = cache_root() / uri[len("s3://"):]
    if (dest / ".s3-cache.json").exists():  # written every 0.5 s: the files that arrived whole
        _manifest_is_whole(uri, s3)
    assert _same(_chunks(uri, chunk_rows=3000), _chunks(crash, chunk_rows=3000))
    assert len(_manifest_is_whole(uri, s3)) == sum(1 for p in crash.rglob("*") if p.is_file())


@pytest.fixture(params=["obstore", "pyarrow"])
def client(request, s3, monkeypatch):
    """Downloads through obstore (a bare GET, the `s3` extra) or, without it, pyarrow's streams."""
    from backtest.data.storage import downloader

    if request.param == "pyarrow":
        monkeypatch.setitem(__import__("sys").modules, "obstore", None)  # import obstore fails
        monkeypatch.setitem(__import__("sys").modules, "obstore.store", None)
    assert downloader(None, "b").__name__ == {"obstore": "bare_get", "pyarrow": "head_then_get"}[request.param]
    return request.param


@pytest.mark.parametrize("change", ["deleted", "rewritten"])
def test_object_changed_after_the_listing_is_one_line(crash, s3, client, change):
    """A file listed, then deleted or rewritten before it is fetched (a re-import): the read stops
    with the one-line S3 error, and the cache trusts only the files that arrived whole."""
    from backtest.data import storage
    from backtest.errors import DataError

    uri = upload(crash, s3)
    fs, bucket = s3
    last = sorted(p.relative_to(crash).as_posix() for p in crash.rglob("*.parquet"))
    gone = max(last, key=storage._read_order)  # fetched last
    real = storage.filesystem

    def listing_then_change():
        s = real()
        orig = s.get_file_info

        class Fs:
            def get_file_info(self, sel):
                out = orig(sel)
                if change == "deleted":
                    fs.delete_file(f"{bucket}/crash/{gone}")
                else:
                    with fs.open_output_stream(f"{bucket}/crash/{gone}") as f:
                        f.write(b"PAR1 not the listed file PAR1")
                return out

            def __getattr__(self, name):
                return getattr(s, name)
        return Fs()
    storage.filesystem = listing_then_change
    try:
        with pytest.raises(DataError) as e:
            _chunks(uri)
    finally:
        storage.filesystem = real
    msg = str(e.value)
    assert "cannot read the S3 dataset" in msg and "\n" not in msg and uri in msg, msg
    if change == "rewritten":
        assert "changed while it was read" in msg, msg
    manifest = _manifest_is_whole(uri, s3)
    assert gone not in manifest


def test_row_checks_are_remembered_by_the_object_not_the_cache_copy(crash, s3, monkeypatch, tmp_path):
    """A file's row checks are remembered by the S3 object it copies: a read into another empty
    read cache downloads the files again but does not check their rows again; a rewritten
    object (new mtime) is checked again."""
    from backtest.data import reader

    uri = upload(crash, s3)
    calls = []
    real = reader.check_batch

    def counting(kind, path, *a, **kw):
        calls.append(Path(path).name)
        return real(kind, path, *a, **kw)
    monkeypatch.setattr(reader, "check_batch", counting)
    first = _chunks(uri)
    assert calls  # the first read checks the rows
    calls.clear()
    monkeypatch.setenv("CASCADE_S3_CACHE", str(tmp_path / "another-cache"))
    assert _same(_chunks(uri), first) and not calls
    fs, bucket = s3
    one = next(p for p in sorted(crash.rglob("*.parquet")) if "kind=trades" in p.as_posix())
    with open(one, "rb") as src, fs.open_output_stream(f"{bucket}/crash/{one.relative_to(crash).as_posix()}") as out:
        out.write(src.read())  # the same bytes, a new object (mtime)
    monkeypatch.setenv("CASCADE_S3_CACHE", str(tmp_path / "a-third-cache"))
    assert _same(_chunks(uri), first)
    assert calls and set(calls) == {one.name}, calls


def test_replay_cache_of_an_s3_dataset(crash, s3, tmp_path, monkeypatch):
    """`backtest data cache s3://...` keeps the merged events by the objects' identity: a later run
    on the URI (its read cache up to date) replays them without reading Parquet, bit-identical."""
    from backtest.data.reader import EventStream

    monkeypatch.setenv("CASCADE_REPLAY_CACHE", str(tmp_path / "replay"))
    uri = upload(crash, s3)
    args = ["run", "reference", "--param", "entry=62000", "--leverage", "BTCUSDT=5", "--quiet"]
    r = invoke(*args, "--data", crash, "--out", tmp_path / "local")
    assert r.exit_code == 0, r.output
    r = invoke("data", "cache", uri, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["built"], r.output

    def refuse(self):
        raise AssertionError("read Parquet although the selection is cached")
        yield

    monkeypatch.setattr(EventStream, "parquet_chunks", refuse)
    r = invoke(*args, "--data", uri, "--out", tmp_path / "s3")
    assert r.exit_code == 0, r.output
    a, b = Result.load(tmp_path / "local"), Result.load(tmp_path / "s3")
    assert a.equity.equals(b.equity) and a.trades.equals(b.trades) and a.fills.equals(b.fills)
