"""All-or-nothing changes to a dataset folder: a staging folder plus a commit record.

An import writes every new file under ``DIR/.import-<id>/data/<same relative path>``. When all
are written (and fsynced) it writes ``DIR/.import-<id>/COMMIT.json`` atomically: that rename is
the commit point. Applying the commit moves each staged file over its target and deletes the
superseded files, then removes the staging folder.

* Before the commit record exists, the staging folder is invisible (readers list only
  ``kind=*`` folders) and is deleted by the next `recover`.
* After it exists, readers honour it even while it is being applied (`overlay`): a staged file
  stands in for its target, deleted files are hidden. `recover` finishes applying it.

So a kill at any moment leaves the dataset as before the import or with all of it.
One writer at a time: `lock(DIR)` (an flock on ``DIR/.import.lock``).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import uuid
from pathlib import Path

from ..errors import DataError

STAGE_PREFIX = ".import-"
RECORD = "COMMIT.json"
LOCK = ".import.lock"


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def lock(root: Path, *, wait: bool = True):
    """Exclusive writer lock on a dataset folder; yields False (without waiting) when another
    process holds it and wait=False."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


class Staging:
    """A staging folder for one change; `path(rel)` is where the new version of `rel` goes."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.dir = self.root / f"{STAGE_PREFIX}{uuid.uuid4().hex[:12]}"
        (self.dir / "data").mkdir(parents=True)

    def path(self, rel: str | Path) -> Path:
        p = self.dir / "data" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def commit(self, moves: list[str], deletes: list[str]) -> None:
        """Write the commit record (the commit point), then apply it."""
        for rel in moves:
            fd = os.open(self.dir / "data" / rel, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        tmp = self.dir / (RECORD + ".tmp")
        tmp.write_text(json.dumps({"moves": moves, "deletes": deletes}))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / RECORD)
        _fsync_dir(self.dir)
        apply(self.root, self.dir)

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _record(stage: Path) -> dict | None:
    try:
        return json.loads((stage / RECORD).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise DataError(f"unreadable import commit record ({e})", file=stage / RECORD,
                        fix="restore the dataset from a backup, or delete the folder and re-import") from None


def apply(root: Path, stage: Path) -> None:
    """Finish a committed change (idempotent: safe to repeat after a kill)."""
    rec = _record(stage)
    assert rec is not None
    kill_after = int(os.environ.get("CASCADE_TEST_KILL_AFTER_MOVES", "-1"))  # crash tests only
    for j, rel in enumerate(rec["moves"]):
        if j == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        src = stage / "data" / rel
        if src.exists():
            dst = root / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
    for rel in rec["deletes"]:
        (root / rel).unlink(missing_ok=True)
    _fsync_dir(root)
    (stage / RECORD).unlink(missing_ok=True)
    shutil.rmtree(stage, ignore_errors=True)


def recover(root: Path) -> None:
    """Finish committed changes and drop uncommitted ones, unless another writer is running
    (or the folder is read-only: then readers rely on `overlay`)."""
    root = Path(root)
    stages = [p for p in root.glob(STAGE_PREFIX + "*") if p.is_dir()] if root.is_dir() else []
    if not stages:
        return
    try:
        with lock(root, wait=False) as got:
            if got:
                recover_locked(root)
    except OSError:
        pass


def recover_locked(root: Path) -> None:
    for stage in sorted(p for p in Path(root).glob(STAGE_PREFIX + "*") if p.is_dir()):
        if (stage / RECORD).exists():
            apply(root, stage)
        else:
            shutil.rmtree(stage, ignore_errors=True)


def overlay(root: Path) -> tuple[dict[str, Path], set[str]]:
    """Committed but not yet applied changes: ({rel: staged file standing in for it}, {deleted rel})."""
    staged: dict[str, Path] = {}
    deleted: set[str] = set()
    for stage in sorted(p for p in Path(root).glob(STAGE_PREFIX + "*") if p.is_dir()):
        try:
            rec = _record(stage)
        except DataError:
            raise
        if rec is None:
            continue
        for rel in rec["moves"]:
            if (stage / "data" / rel).exists():
                staged[rel] = stage / "data" / rel
        deleted.update(rec["deletes"])
    return staged, deleted
