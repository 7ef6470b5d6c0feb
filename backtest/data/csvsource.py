"""Stream the lines of an exchange CSV file (.csv, .csv.gz, or a .zip holding one CSV) in bounded
batches of string columns, without ever holding the whole file in memory.

    with open_source(path) as src:
        for batch in src.batches(layout, skip_header=True): ...   # pyarrow RecordBatch of strings

Decompression-bomb limit: once more than ``BOMB_MIN_BYTES`` have been decompressed, an archive
whose output exceeds ``MAX_RATIO`` times the compressed bytes read so far, or any input beyond
``MAX_BYTES``, is refused with one line (data/README.md, "Streaming and limits").
"""
from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from pathlib import Path

from ..errors import DataError

BLOCK_BYTES = 8 << 20  # pyarrow parses this much CSV text per batch (~150k rows of trades)
MAX_RATIO = 200  # decompressed / compressed bytes; real exchange CSVs are 3-15x
BOMB_MIN_BYTES = 256 << 20  # the ratio is checked only past this much output
MAX_BYTES = 1 << 40  # 1 TiB of CSV text from one input, compressed or not
READ_STEP = 64 << 10  # decompressed bytes asked for at a time

FIX_DOWNLOAD = "download the file again (it looks truncated or corrupt)"


class ConversionError(DataError):
    """A value did not parse as its typed column's type (the caller re-reads as text to say where)."""


class _Counting:
    """The compressed file under a decompressor, counting the bytes the decompressor has read."""

    def __init__(self, f):
        self.f, self.count = f, 0

    def read(self, n=-1):
        data = self.f.read(n)
        self.count += len(data)
        return data

    def seek(self, *a):
        return self.f.seek(*a)

    def tell(self):
        return self.f.tell()

    def seekable(self):
        return True

    def close(self):
        self.f.close()


class _Limited(io.RawIOBase):
    """A read-only stream that counts decompressed bytes and stops a decompression bomb: past
    BOMB_MIN_BYTES, output beyond MAX_RATIO x the compressed bytes read so far is refused."""

    def __init__(self, raw, name: str, compressed: _Counting | None):
        self.raw, self.name, self.compressed = raw, name, compressed
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        # fill `buf` in small steps: the decompressor then reads little compressed input ahead, so
        # the ratio is measured closely and a bomb stops soon after BOMB_MIN_BYTES
        view, n = memoryview(buf), 0
        while n < len(view):
            data = self.raw.read(min(len(view) - n, READ_STEP))
            if not data:
                break
            view[n:n + len(data)] = data
            n += len(data)
            self.count += len(data)
            self._check()
        return n

    def _check(self) -> None:
        c = self.compressed.count if self.compressed is not None else None
        if self.count > MAX_BYTES or (c and self.count > BOMB_MIN_BYTES and self.count > MAX_RATIO * c):
            raise DataError(f"refused: {self.count:,} bytes of text from {c or self.count:,} compressed "
                            f"(limits: {MAX_RATIO}x past {BOMB_MIN_BYTES >> 20} MiB, {MAX_BYTES:,} bytes)",
                            file=self.name,
                            fix="this looks like a decompression bomb; import only genuine exchange files")


class Source:
    """One opened input; `name` is used in errors (`archive.zip!member.csv` for zip members)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.name = str(self.path)
        self._closers = []
        try:
            self._raw, compressed = self._open()
        except (zipfile.BadZipFile, gzip.BadGzipFile, OSError, EOFError) as e:
            self.close()
            if isinstance(e, FileNotFoundError):
                raise DataError("file not found", file=path, fix="check the path") from None
            raise DataError(f"cannot read archive ({e})", file=path, fix=FIX_DOWNLOAD) from None
        self.stream = _Limited(self._raw, self.name, compressed)

    def _open(self):
        suffix = self.path.suffix.lower()
        if suffix not in (".zip", ".gz"):
            f = open(self.path, "rb")
            self._closers.append(f)
            return f, None
        counting = _Counting(open(self.path, "rb"))
        self._closers.append(counting)
        if suffix == ".zip":
            z = zipfile.ZipFile(counting)
            self._closers.append(z)
            members = [m for m in z.infolist()
                       if not m.filename.endswith("/") and not m.filename.startswith("__MACOSX/")]
            if len(members) != 1:
                raise DataError(f"a .zip must hold exactly one CSV file, found {len(members)}",
                                file=self.path, fix="unzip it and import the CSV files")
            self.name = f"{self.path}!{members[0].filename}"
            f = z.open(members[0])
        else:
            f = gzip.GzipFile(fileobj=counting, mode="rb")
        self._closers.append(f)
        counting.count = 0  # count only what the decompressor reads from here on
        return f, counting

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        for c in reversed(self._closers):
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing after an error must not mask it
                pass
        self._closers = []

    def first_line(self) -> str:
        """The first line (decoded, without the line end); the stream is rewound afterwards."""
        try:
            raw = self._raw.readline(1 << 16)
            self._raw.seek(0)
        except (zipfile.BadZipFile, gzip.BadGzipFile, OSError, EOFError, zlib.error) as e:
            raise DataError(f"cannot read archive ({e})", file=self.name, fix=FIX_DOWNLOAD) from None
        try:
            return raw.decode("utf-8").rstrip("\r\n").lstrip("\ufeff")
        except UnicodeDecodeError:
            raise DataError("not UTF-8 text", file=f"{self.name}:1",
                            fix="import the CSV, not a binary file") from None

    def batches(self, layout: tuple[str, ...], skip_rows: int, on_bad_row, *,
                include: tuple[str, ...] | None = None, types: dict | None = None):
        """Yield pyarrow RecordBatches of the `include`d columns of `layout` (all by default), as
        strings unless `types` gives an Arrow type (a bad value then raises ConversionError).

        `on_bad_row(row)` gets pyarrow's InvalidRow for lines with the wrong number of fields
        and returns "skip", or sets `on_bad_row.error` (a DataError raised here) and returns "error"."""
        import pyarrow as pa
        import pyarrow.csv as pcsv

        ro = pcsv.ReadOptions(column_names=list(layout), skip_rows=skip_rows, block_size=BLOCK_BYTES,
                              use_threads=False)  # bad-row line numbers need one thread
        po = pcsv.ParseOptions(delimiter=",", quote_char=False, ignore_empty_lines=False,
                               invalid_row_handler=on_bad_row)
        co = pcsv.ConvertOptions(column_types={c: (types or {}).get(c, pa.string()) for c in layout},
                                 include_columns=list(include) if include else None,
                                 # only an empty field is null: pyarrow's default also reads
                                 # "nan", "null", "N/A" ... in typed columns as null
                                 null_values=[""], strings_can_be_null=False, check_utf8=True,
                                 true_values=["true", "True", "TRUE"], false_values=["false", "False", "FALSE"])
        try:
            reader = pcsv.open_csv(self.stream, read_options=ro, parse_options=po, convert_options=co)
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                yield batch
        except DataError:
            raise
        except pa.ArrowInvalid as e:
            if getattr(on_bad_row, "error", None) is not None:
                raise on_bad_row.error from None
            self._raise(e)
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:
            self._raise(e)

    def _raise(self, e: Exception):
        import pyarrow as pa

        msg = " ".join(str(e).split())
        if "utf8" in msg.lower():
            raise DataError("not UTF-8 text", file=self.name, fix="import the CSV, not a binary file") from None
        if isinstance(e, pa.ArrowInvalid) and "conversion error" in msg.lower():
            raise ConversionError(f"cannot read as CSV ({msg[:200]})", file=self.name, fix=FIX_DOWNLOAD)
        if isinstance(e, pa.ArrowInvalid):
            raise DataError(f"cannot read as CSV ({msg[:200]})", file=self.name,
                            fix="check that this is a CSV export of the exchange") from None
        raise DataError(f"cannot read archive ({msg[:200]})", file=self.name, fix=FIX_DOWNLOAD) from None


def open_source(path: Path) -> Source:
    return Source(path)
