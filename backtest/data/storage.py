"""The one seam between dataset paths and object storage: ``s3://bucket/prefix`` URIs.

A dataset on S3 is mirrored into a local read cache once (files keyed by bucket/key, size and
mtime) and the rest of the data code reads that folder with pathlib, so local paths keep exactly
today's behaviour and speed. The cache is ``CASCADE_S3_CACHE`` (or ``--s3-cache``); without one a
per-process temporary folder is used and removed at exit. The endpoint comes from
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (or ``--s3-endpoint``), region and credentials
from the standard AWS variables (pyarrow's S3 filesystem lists and uploads; a download is one GET
through obstore when the `s3` extra is installed, see `downloader`).
"""
from __future__ import annotations

import atexit
import json
import os
import queue
import shutil
import tempfile
import threading
import time
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


def _endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def _region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def filesystem():
    """pyarrow S3 filesystem from the standard AWS variables (endpoint override included)."""
    from pyarrow import fs

    kw = {"retry_strategy": fs.AwsStandardS3RetryStrategy(max_attempts=2)}
    if endpoint := _endpoint():
        scheme, _, host = endpoint.partition("://")
        kw.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
    if region := _region():
        kw["region"] = region
    return fs.S3FileSystem(**kw)


def downloader(s3, bucket: str):
    """`get(key, out)`: write the object `key` of `bucket` into the open file `out`.

    pyarrow's Python API opens an object by path only, so it sends a HEAD before every GET even
    though the listing already gave the size. With obstore installed (the `s3` extra: Rust's
    object_store, the client polars and DataFusion use) and the credentials in the AWS variables,
    a get is one bare GET, transferred outside the GIL while the reader decodes. Credentials from
    elsewhere (profiles, SSO, instance roles) go through pyarrow's AWS SDK chain."""
    get = _bare_get(bucket)
    if get is None:
        def head_then_get(key: str, out) -> None:
            with s3.open_input_stream(f"{bucket}/{key}") as src:
                shutil.copyfileobj(src, out, 16 << 20)
        return head_then_get
    return get


def _bare_get(bucket: str):
    """obstore's GET for `bucket`, configured from the AWS variables; None without obstore or
    without credentials in the variables."""
    env = os.environ
    if not (env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY")):
        return None
    try:
        import obstore
        from obstore.store import S3Store
    except ImportError:
        return None
    endpoint = _endpoint()
    if endpoint and "://" not in endpoint:
        endpoint = f"https://{endpoint}"  # as filesystem() reads a bare host
    region = _region()
    if not region and not endpoint:  # object_store does not follow AWS's redirect to the region
        from pyarrow import fs

        region = fs.resolve_s3_region(bucket)
    kw = {"endpoint": endpoint, "region": region, "access_key_id": env["AWS_ACCESS_KEY_ID"],
          "secret_access_key": env["AWS_SECRET_ACCESS_KEY"], "token": env.get("AWS_SESSION_TOKEN")}
    store = S3Store(bucket, client_options={"allow_http": bool(endpoint and endpoint.startswith("http:"))},
                    **{k: v for k, v in kw.items() if v})

    def bare_get(key: str, out) -> None:
        for chunk in obstore.get(store, key).stream(min_chunk_size=8 << 20):
            out.write(chunk)
    return bare_get


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


def local_dataset(path, *, wait: bool = True) -> Path:
    """A local folder holding the dataset at `path`: the path itself, or the S3 dataset's cache copy.

    wait=False (the event reader): return as soon as the bucket is listed and its small files
    (instruments) are local; the Parquet files keep downloading in the background, in the order
    the reader consumes them (date, then kind, then symbol), and `ready(file)` waits for one. The
    reader thus decodes the first files while the rest download. `pending(folder)` lists the files
    not yet local, so the folder's listing can include them."""
    if not is_s3(path):
        return Path(path)
    from pyarrow import fs as pafs

    bucket, key = _split(path)
    dest = cache_root() / bucket / key
    with _lock:
        prev = _mirrors.get(dest)
    if prev is not None:  # an earlier read of this dataset in this process is still downloading
        prev.done.wait()
    with _lock:  # failed downloads of an earlier read: this listing decides afresh
        for p in [p for p in _pending if dest in p.parents]:
            del _pending[p]
    s3 = filesystem()
    base = f"{bucket}/{key}".rstrip("/")
    try:
        infos = s3.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except (OSError, ValueError) as e:
        raise _fail(path, e) from None
    files = [i for i in infos if i.type == pafs.FileType.File]
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
        _sources[target] = (i.path, i.size, i.mtime_ns)
        if manifest.get(rel) == [i.size, i.mtime_ns] and target.is_file() and target.stat().st_size == i.size:
            continue
        todo.append((i, rel, target))
    # Drop local files the bucket no longer has (a re-import rewrote a date file), and the manifest
    # entries of files about to be replaced: the manifest only ever names whole, current files.
    live = {i.path[len(base) + 1:] for i in files}
    stale = [r for r in manifest if r not in live]
    for rel in stale:
        (dest / rel).unlink(missing_ok=True)
    for _, rel, _ in todo:
        manifest.pop(rel, None)
    if stale or todo:
        _write_manifest(manifest_path, manifest)
    if not todo:
        return dest
    # small files first (instruments.json: the reader opens it before any partition), then the
    # partitions in the reader's order: by date, then kind and symbol as the merge reads them
    todo.sort(key=lambda t: (t[1].endswith(".parquet"), _read_order(t[1])))
    try:
        get = downloader(s3, bucket)
    except (OSError, ValueError) as e:
        raise _fail(path, e) from None
    mirror = _Mirror(path, get, manifest_path, manifest, todo)
    with _lock:
        _mirrors[dest] = mirror
    mirror.start()
    small = [t[2] for t in todo if not t[1].endswith(".parquet")]
    for target in (small if not wait else [t[2] for t in todo]):
        ready(target)
    if wait:
        mirror.done.wait()
    return dest


_lock = threading.Lock()
_mirrors: dict[Path, "_Mirror"] = {}  # dataset folder -> its downloads (this process)
_pending: dict[Path, "_Job"] = {}  # file being (or to be) downloaded -> its job
_sources: dict[Path, tuple[str, int, int]] = {}  # cache copy -> its object: 'bucket/key', size, mtime_ns


def source_of(path) -> str | None:
    """The identity of the S3 object a read-cache file copies ('s3://bucket/key|size|mtime_ns'),
    or None for a local file. A download is whole and of the listed size or it fails, so the copy
    holds exactly that object's bytes: what a file's row checks are remembered by
    (validated.file_key), whichever cache folder holds the copy."""
    src = _sources.get(Path(path))
    return None if src is None else f"{PREFIX}{src[0]}|{src[1]}|{src[2]}"


WORKERS = 4  # moto serves one request at a time anyway; a few in flight hide the latency


def _read_order(rel: str):
    """'kind=trades/symbol=BTC/date=2026-02-05/part.parquet' -> (date, kind order, symbol, name)."""
    from .layout import KINDS

    parts = rel.split("/")
    if len(parts) != 4:
        return ("", 0, rel, "")
    kind = parts[0][5:]
    kind_order = list(KINDS).index(kind) if kind in KINDS else len(KINDS)
    return (parts[2], kind_order, parts[1], parts[3])


def _write_manifest(manifest_path: Path, manifest: dict) -> None:
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = manifest_path.with_name(f"{manifest_path.name}.{os.getpid()}.{threading.get_ident()}.part")
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, manifest_path)


class _Job:
    """One file's download: run once, by a background worker or by the first reader that needs it."""

    def __init__(self, mirror: "_Mirror", info, rel: str, target: Path):
        self.mirror, self.info, self.rel, self.target = mirror, info, rel, target
        self.claimed = threading.Lock()  # held by whoever runs the download
        self.finished = threading.Event()
        self.error: DataError | None = None

    def run(self) -> None:
        """Download unless someone else already is (returns at once then)."""
        if not self.claimed.acquire(blocking=False):
            return
        try:
            if self.mirror.failed is not None:  # the read fails anyway: skip the rest
                self.error = self.mirror.failed
                return
            self.target.parent.mkdir(parents=True, exist_ok=True)
            # parallel workers (processes) share the cache: a private temporary name, then a rename
            tmp = self.target.with_name(f"{self.target.name}.{os.getpid()}.part")
            try:
                with open(tmp, "wb") as out:
                    self.mirror.get(self.info.path.partition("/")[2], out)
                    size = out.tell()
                if size != self.info.size:  # rewritten since the listing: its size, mtime are stale
                    raise OSError(f"{self.rel} changed while it was read ({size:,} bytes, "
                                  f"listed {self.info.size:,}); read again")
                os.replace(tmp, self.target)  # whole or absent: a reader never sees half a file
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        except Exception as e:  # noqa: BLE001 - OSError mostly (missing object, credentials)
            self.error = self.mirror.failed = _fail(self.mirror.uri, e)
        except BaseException as e:  # Ctrl-C while the main thread downloads: never trusted
            self.error = self.mirror.failed = _fail(self.mirror.uri, OSError(
                f"download interrupted ({type(e).__name__})"))
            raise
        finally:
            self.finished.set()
            self.mirror.finished_one(self)

    def wait(self) -> None:
        self.run()  # not started yet: the reader downloads it now rather than wait its turn
        self.finished.wait()
        if self.error is not None:
            raise self.error


class _Mirror:
    """The background downloads of one local_dataset call. The manifest gains a file's entry only
    once the whole file is in place (it is written every 0.5 s and when the last download ends):
    a read stopped half-way (Ctrl-C, an error, the process killed) leaves a manifest naming only
    whole files, and a later read fetches the rest."""

    def __init__(self, uri: str, get, manifest_path: Path, manifest: dict, todo):
        self.uri, self.manifest_path, self.manifest = uri, manifest_path, manifest
        self.get = get
        self.jobs = [_Job(self, i, rel, target) for i, rel, target in todo]
        self.left = len(self.jobs)
        self.done = threading.Event()
        self.failed: DataError | None = None  # the first download error: the rest are skipped
        self.saved = time.monotonic()  # when the manifest was last written
        self.writing = threading.Lock()
        self.written: dict = {}
        self._queue: queue.SimpleQueue = queue.SimpleQueue()

    def start(self) -> None:
        with _lock:
            for j in self.jobs:
                _pending[j.target] = j
        for j in self.jobs:
            self._queue.put(j)
        for _ in range(min(WORKERS, len(self.jobs))):
            self._queue.put(None)
            # daemon threads: a process that ends (or is interrupted) mid-download is not held up;
            # the file it was writing is a private .part name nothing trusts
            threading.Thread(target=self._work, name="cascade-s3", daemon=True).start()

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            job.run()  # its errors are kept in job.error, for the reader that waits on it

    def finished_one(self, job: _Job) -> None:
        with _lock:
            if job.error is None:  # a failed one stays: a reader that opens it gets its error
                _pending.pop(job.target, None)
                self.manifest[job.rel] = [job.info.size, job.info.mtime_ns]
            self.left -= 1
            last = self.left == 0
            now = time.monotonic()
            # now and then during the download, so a read stopped half-way keeps what arrived
            save = last or now - self.saved >= 0.5
            if save:
                self.saved, snapshot = now, dict(self.manifest)
        if save:
            try:
                with self.writing:  # in completion order: a later snapshot is never overwritten
                    if snapshot.keys() >= self.written.keys():
                        _write_manifest(self.manifest_path, snapshot)
                        self.written = snapshot
            except OSError:
                pass  # the files stay untrusted: a later read downloads them again
        if last:
            with _lock:
                if _mirrors.get(self.manifest_path.parent) is self:
                    del _mirrors[self.manifest_path.parent]
            self.done.set()


def ready(path) -> None:
    """Wait until `path` (a file of a dataset opened with local_dataset(wait=False)) is local.
    A no-op for local datasets and files already there; a failed download raises its one-line
    DataError here."""
    job = _pending.get(Path(path))
    if job is not None:
        job.wait()


def pending(folder: Path) -> list[Path]:
    """The files of `folder` (an S3 dataset's cache copy) still downloading (or whose download
    failed: opening one raises its error)."""
    with _lock:
        return [p for p in _pending if folder in p.parents]


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
