"""Remember which Parquet files passed the reader's row checks, so a dataset is validated once.

The reader checks every row it reads (order, dates, finite prices, ...: validate.check_batch).
Those checks depend only on the file's bytes and on the rules, so a file that passed them whole
is remembered by a key of its path, size, mtime_ns, the bytes of its Parquet footer (row counts
and column statistics) and the source of the rules (validate.py, layout.py); a read-cache copy of
an S3 object by that object (bucket, key, size and mtime: storage.source_of) instead of its path.
A later read of the same file skips the per-row checks; any change to the file or the rules
gives a new key and the file is checked again. Order across batches and files is still checked
on every read (one compare per batch). A key is an empty marker file under
$CASCADE_CACHE_DIR/validated/ (default ~/.cache/cascade): concurrent runs only ever create the
same empty file.
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from ..cachedir import cache_dir
from .storage import source_of

_FOOTER_MAX = 16 << 20  # a footer larger than this is not fingerprinted (the file is re-checked)


def _folder() -> Path:
    return cache_dir() / "validated"


@lru_cache(maxsize=1)
def _rules_hash() -> bytes:
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in ("validate.py", "layout.py"):
        h.update((here / name).read_bytes())
    return h.digest()


def footer(path: Path) -> tuple[os.stat_result, bytes] | None:
    """The file's stat and its Parquet footer, as stored (None if it has none or is unreadable):
    the schema, the row groups' sizes and statistics, bound to the content, in two reads."""
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            f.seek(-8, os.SEEK_END)
            tail = f.read(8)
            size = int.from_bytes(tail[:4], "little")
            if tail[4:] != b"PAR1" or not 0 < size <= min(_FOOTER_MAX, st.st_size - 12):
                return None
            f.seek(-8 - size, os.SEEK_END)
            return st, f.read(size)
    except OSError:
        return None


def file_key(path: Path, kind: str) -> str | None:
    """The key of the file's current content under the current rules (None if unreadable)."""
    if (read := footer(path)) is None:
        return None
    st, foot = read
    h = hashlib.sha256(_rules_hash())
    source = source_of(path)  # a read-cache copy of an S3 object: that object, in any cache folder
    h.update(f"{source or Path(path).resolve()}|{kind}|{st.st_size}|{'' if source else st.st_mtime_ns}|".encode())
    h.update(foot)
    return h.hexdigest()[:32]


def is_valid(key: str | None) -> bool:
    return key is not None and (_folder() / key).exists()


def remember(key: str | None) -> None:
    """Mark the file as checked (best effort: a read-only cache only means re-checking)."""
    if key is None:
        return
    try:
        folder = _folder()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / key).touch()
    except OSError:
        pass
