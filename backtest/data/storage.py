"""The one seam between dataset paths and object storage: ``s3://bucket/prefix`` URIs.

A dataset on S3 is mirrored into a local read cache once (files keyed by bucket/key, size and
mtime) and the rest of the data code reads that folder with pathlib, so local paths keep exactly
today's behaviour and speed. The cache is ``CASCADE_S3_CACHE`` (or ``--s3-cache``); without one a
per-process temporary folder is used and removed at exit. The endpoint comes from
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (or ``--s3-endpoint``), region and credentials
from the standard AWS variables (pyarrow's S3 filesystem).
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import DataError

PREFIX = "s3://"
# Written last on upload so a reader never sees instruments without the partitions they describe.
LAST = ("instruments.json",)
_tmp_cache: Path | None = None


def use_flags(endpoint: str | None = None, cache: str | None = None) -> None:
    """--s3-endpoint / --s3-cache: set the variables this module (and worker processes) read."""
    if endpoint:
        os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
    if cache:
        os.environ["CASCADE_S3_CACHE"] = str(Path(cache).resolve())


def is_s3(path) -> bool:
    return isinstance(path, str) and path.startswith(PREFIX)


def _split(uri: str) -> tuple[str, str]:
    """'s3://bucket/a/b/' -> ('bucket', 'a/b')."""
    rest = uri[len(PREFIX):].strip("/")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise DataError("no bucket in the S3 URI", file=uri, fix="write s3://BUCKET/PREFIX")
    return bucket, key


def filesystem():
    """pyarrow S3 filesystem from the standard AWS variables (endpoint override included)."""
    from pyarrow import fs

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    kw = {"retry_strategy": fs.AwsStandardS3RetryStrategy(max_attempts=2)}
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        kw.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kw["region"] = region
    return fs.S3FileSystem(**kw)


def _fail(uri: str, e: Exception) -> DataError:
    msg = " ".join(str(e).split())
    return DataError(f"cannot read the S3 dataset ({msg})", file=uri,
                     fix="check the bucket, AWS_ENDPOINT_URL and the AWS credentials")


def cache_root() -> Path:
    global _tmp_cache
    env = os.environ.get("CASCADE_S3_CACHE")
    if env:
        return Path(env)
    if _tmp_cache is None:
        _tmp_cache = Path(tempfile.mkdtemp(prefix="cascade-s3-"))
        atexit.register(shutil.rmtree, _tmp_cache, True)
    return _tmp_cache


def local_dataset(path) -> Path:
    """A local folder holding the dataset at `path`: the path itself, or the S3 dataset's cache copy."""
    if not is_s3(path):
        return Path(path)
    from pyarrow import fs as pafs

    bucket, key = _split(path)
    s3 = filesystem()
    base = f"{bucket}/{key}".rstrip("/")
    try:
        infos = s3.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except (OSError, ValueError) as e:
        raise _fail(path, e) from None
    files = [i for i in infos if i.type == pafs.FileType.File]
    dest = cache_root() / bucket / key
    if not files:
        raise DataError("dataset folder not found", file=path,
                        fix="upload one with `backtest data import --out s3://...` or check the URI")
    manifest_path = dest / ".s3-cache.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    todo = []
    for i in files:
        rel = i.path[len(base) + 1:]
        target = dest / rel
        if manifest.get(rel) == [i.size, i.mtime_ns] and target.is_file() and target.stat().st_size == i.size:
            continue
        todo.append((i, rel, target))

    def fetch(item):
        i, rel, target = item
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.part")  # parallel workers share the cache
        with s3.open_input_stream(i.path) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(tmp, target)

    from concurrent.futures import ThreadPoolExecutor

    try:
        with ThreadPoolExecutor(8) as pool:  # many small partition files: latency-bound
            list(pool.map(fetch, todo))
    except OSError as e:
        raise _fail(path, e) from None
    for i, rel, _ in todo:
        manifest[rel] = [i.size, i.mtime_ns]
    changed = bool(todo)
    # Drop local files the bucket no longer has (a re-import rewrote a date file).
    live = {i.path[len(base) + 1:] for i in files}
    for rel in [r for r in manifest if r not in live]:
        (dest / rel).unlink(missing_ok=True)
        del manifest[rel]
        changed = True
    if changed:
        tmp = manifest_path.with_name(f"{manifest_path.name}.{os.getpid()}.part")
        tmp.write_text(json.dumps(manifest))
        os.replace(tmp, manifest_path)
    return dest


def import_to_s3(uri: str, do_import):
    """Import into an s3:// dataset: stage a local copy, import there (the local commit protocol),
    then upload the committed files. `do_import(folder)` runs the import and returns its result."""
    stage = Path(tempfile.mkdtemp(prefix="cascade-s3-import-"))
    try:
        target = stage / "dataset"
        try:
            shutil.copytree(local_dataset(uri), target, ignore=shutil.ignore_patterns(".s3-cache.json"))
        except DataError as e:
            if e.problem != "dataset folder not found":
                raise
        res = do_import(target)
        upload_dataset(target, uri)
        res.out = uri
        return res
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def upload_dataset(local: Path, uri: str) -> int:
    """Upload a committed local dataset folder to `uri`: partitions first, instruments last.

    Returns the number of files uploaded. Each S3 object appears whole or not at all; the
    dataset as a whole is consistent once the instruments file (written last) is there.
    """
    bucket, key = _split(uri)
    s3 = filesystem()
    base = f"{bucket}/{key}".rstrip("/")
    files = sorted(p for p in Path(local).rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(local).parts))
    files.sort(key=lambda p: p.name in LAST)  # stable: partitions first, instruments last
    try:
        for p in files:
            with open(p, "rb") as src, s3.open_output_stream(f"{base}/{p.relative_to(local).as_posix()}") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    except OSError as e:
        raise DataError(f"cannot write the S3 dataset ({' '.join(str(e).split())})", file=uri,
                        fix="check the bucket, AWS_ENDPOINT_URL and the AWS credentials") from None
    return len(files)
