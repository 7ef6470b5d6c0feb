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
