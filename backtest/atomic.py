"""Crash-safe outputs: everything is written to a temporary name and renamed into place.

A reader therefore sees either nothing or a complete file/folder, whatever kills the writer.
`output_lock` keeps two writers (two runs or sweeps with the same --out) from racing: the second
refuses at once instead of silently replacing the first one's output.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import CascadeError

try:
    import fcntl
except ImportError:  # not POSIX (Windows): see output_lock
    fcntl = None


def tmp_name(path: Path) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def remove_leftovers(path: Path, pid: int) -> None:
    """Remove the temporary siblings of `path` (files or folders, tmp_name's) that process `pid`
    left when it was killed mid-write."""
    path = Path(path)
    for tmp in path.parent.glob(f".{path.name}.tmp-{pid}-*"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_parquet(table: pa.Table, path: Path, **kwargs) -> None:
    """Write atomically, with page checksums (the reader verifies them: corruption is an error)."""
    path = Path(path)
    tmp = tmp_name(path)
    kwargs.setdefault("write_page_checksum", True)
    try:
        pq.write_table(table, tmp, **kwargs)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    path = Path(path)
    tmp = tmp_name(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(final: Path, *, overwrite: bool = True, before_commit=None):
    """Yield a temporary sibling folder; on success it replaces `final`, on error it is removed.

    `before_commit()` runs once everything is written, just before the rename that publishes it:
    the CLI stops taking Ctrl-C there (cli/run.py), so that an interrupt either lands before the
    rename (nothing is published, exit 130) or is ignored (the run is saved, exit 0)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(final)
    old = tmp_name(final)  # where a replaced output waits until the new one is in place
    # every step inside the try: a Ctrl-C is raised as the call before it returns, and must leave
    # neither a temporary folder (as one did when it came right after mkdir) nor a lost output
    try:
        tmp.mkdir()
        yield tmp
        if before_commit is not None:
            before_commit()
        if final.exists():
            if not overwrite:
                raise FileExistsError(final)
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        if old.exists():
            if tmp.exists():  # the new output never went in: the replaced one goes back
                os.replace(old, final)
            else:
                shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        raise


_held: dict[str, int] = {}  # locks this process holds: path -> nesting depth (the lock is reentrant)


@contextlib.contextmanager
def output_lock(path: Path):
    """Hold an exclusive lock on the output folder `path` while writing it; another process that
    asks for it meanwhile gets a one-line CascadeError naming the holder's pid.

    POSIX: flock on the sibling file `.NAME.lock` (released by the kernel when the holder dies,
    so a crash never leaves a stale lock; the file is removed on release). Elsewhere: the lock
    file is created exclusively and removed on release; after a hard crash delete it by hand.
    """
    path = Path(path).absolute()
    key = str(path)
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            # a Ctrl-C can leave this inner generator to the garbage collector, which closes it
            # after the outer lock was released: then there is nothing left to count down
            if key in _held:
                _held[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    fd = _acquire(lock, path)
    _held[key] = 1
    try:
        yield
    finally:
        del _held[key]
        lock.unlink(missing_ok=True)  # before closing: a waiter then retries on a fresh file
        os.close(fd)


def _acquire(lock: Path, path: Path) -> int:
    while True:
        if fcntl is None:
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                raise _busy(lock, path, "; if no run is writing it, delete the lock file") from None
        else:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise _busy(lock, path, "") from None
            try:  # the holder may have removed the file as we opened it: then lock the new one
                if os.fstat(fd).st_ino != os.stat(lock).st_ino:
                    os.close(fd)
                    continue
            except FileNotFoundError:
                os.close(fd)
                continue
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return fd


def _busy(lock: Path, path: Path, extra: str) -> CascadeError:
    try:
        pid = lock.read_text().strip() or "?"
    except OSError:
        pid = "?"
    return CascadeError(f"{path} is being written by another process (pid {pid}): wait for it to "
                        f"finish or choose another output folder{extra} ({lock})")
