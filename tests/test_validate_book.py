"""The `book` kind in `backtest data validate`, the reader and `backtest data inspect`: snapshot
structure (levels contiguous from 0 at one ts_ns), monotone level prices, bid < ask at level 0,
sizes, one-line errors naming file, column, row and fix; a snapshot split across batches."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backtest.data.inspect import format_plain, inspect_dataset
from backtest.data.instruments import load_instruments, write_instruments
from backtest.data.layout import partition_dir
from backtest.data.reader import open_dataset
from backtest.data.validate import check_batch, check_file, validate_dataset
from backtest.data.writer import write_stream
from backtest.errors import DataError

INSTR = Path(__file__).parent / "fixtures" / "exchange" / "instruments.json"
T0 = 1770249600 * 10**9  # 2026-02-05 00:00 UTC


def book(n_snap=3, levels=3):
    """n_snap snapshots 1 s apart, `levels` levels: bids 100, 99.9, ...; asks 100.1, 100.2, ..."""
    k = np.tile(np.arange(levels), n_snap)
    return {"ts_ns": np.repeat(T0 + np.arange(n_snap, dtype=np.int64) * 10**9, levels),
            "level": k.astype(np.int8), "bid": 100.0 - 0.1 * k, "bid_qty": 1.0 + k,
            "ask": 100.1 + 0.1 * k, "ask_qty": 2.0 + k}


def dataset(root: Path, cols) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_instruments(root / "instruments.json", load_instruments(INSTR))
    write_stream(root, "book", "BTCUSDT", cols)
    return root


def err(cols, **kw) -> DataError:
    with pytest.raises(DataError) as e:
        check_batch("book", "f.parquet", cols, 0, None, **kw)
    return e.value


def test_valid_book_and_missing_levels(tmp_path):
    b = book()
    # a side with fewer levels: NaN price, size 0 in the rest
    b["bid"][2], b["bid_qty"][2] = np.nan, 0.0
    rep = validate_dataset(dataset(tmp_path / "ds", b))
    assert rep.ok and rep.rows == {"book": 9}


@pytest.mark.parametrize("edit, column, row, words", [
    (lambda b: b["level"].__setitem__(0, 1), "level", 0, "levels must be contiguous from 0"),
    (lambda b: b["level"].__setitem__(4, 2), "level", 4, "does not follow level 1"),
    (lambda b: b["ts_ns"].__setitem__(slice(4, 6), T0 + 2 * 10**9 - 1), "level", 4, "same snapshot"),
    (lambda b: b["level"].__setitem__(3, 25), "level", 3, "outside 0 .. 24"),
    (lambda b: b["bid"].__setitem__(4, 100.0), "bid", 4, "strictly decreasing"),
    (lambda b: b["ask"].__setitem__(5, 100.15), "ask", 5, "strictly increasing"),
    (lambda b: b["ask"].__setitem__(3, 100.0), "bid", 3, "crossed book"),
    (lambda b: b["bid"].__setitem__(0, np.nan), "bid", 0, "NaN only for a missing level above 0"),
    (lambda b: b["ask"].__setitem__(7, np.inf), "ask", 7, "finite price"),
    (lambda b: b["bid_qty"].__setitem__(2, 0.0), "bid_qty", 2, "> 0 where the level has a price"),
    (lambda b: (b["bid"].__setitem__(1, np.nan), b["bid_qty"].__setitem__(1, 0.0)), "bid", 2,
     "follows an empty level"),
    (lambda b: b["ask"].__setitem__(8, np.nan), "ask_qty", 8, "must be 0 on a missing level"),
])
def test_each_rule_one_line(tmp_path, edit, column, row, words):
    b = book()
    edit(b)
    e = err(b)
    assert (e.column, e.row) == (column, row) and words in str(e), str(e)
    assert "\n" not in str(e) and e.fix and "level" in e.fix
    # the same problem through `backtest data validate`, naming the file
    b2 = {k: v for k, v in b.items()}
    order = np.argsort(b2["ts_ns"], kind="stable")
    b2 = {k: v[order] for k, v in b2.items()}
    with pytest.raises(DataError) as v:
        validate_dataset(dataset(tmp_path / "ds", b2))
    assert "part-0000.parquet" in str(v.value) and v.value.column == column


def test_snapshot_split_across_batches(tmp_path):
    root = dataset(tmp_path / "ds", book(n_snap=4, levels=5))
    f = partition_dir(root, "book", "BTCUSDT", "2026-02-05") / "part-0000.parquet"
    rows, _ = check_file("book", f, batch_rows=3)  # every snapshot straddles a batch boundary
    assert rows == 20
    b = book(n_snap=4, levels=5)
    b["level"][13] = 4  # level 3 -> 4: the gap sits right after a batch boundary (rows 12 | 13)
    bad = dataset(tmp_path / "bad", b)
    f = partition_dir(bad, "book", "BTCUSDT", "2026-02-05") / "part-0000.parquet"
    with pytest.raises(DataError) as e:
        check_file("book", f, batch_rows=13)
    assert (e.value.column, e.value.row) == ("level", 13)


def test_reader_replays_book_and_starts_mid_stream(tmp_path):
    from backtest.core.schema import EventKind

    root = dataset(tmp_path / "ds", book(n_snap=4, levels=3))
    ev = list(open_dataset(root, chunk_rows=4))
    kind = np.concatenate([c["kind"] for c in ev])
    side = np.concatenate([c["side"] for c in ev])
    assert np.all(kind == int(EventKind.BOOK)) and list(side[:4]) == [0, 1, 2, 0]
    # a start inside the data skips earlier rows (row groups) and still reads whole snapshots
    ev = list(open_dataset(root, start_ns=T0 + 2 * 10**9))
    assert len(np.concatenate([c["ts_ns"] for c in ev])) == 6


def test_inspect_reports_book_coverage(tmp_path):
    root = dataset(tmp_path / "ds", book(n_snap=5, levels=4))
    (row,) = inspect_dataset(root)
    assert row["counts"]["book"] == 20
    assert (row["book_snapshots"], row["book_levels"], row["book_interval_s"]) == (5, 4, 1.0)
    assert "5 x 4" in format_plain([row])


def test_reader_resumes_mid_snapshot_after_skipped_row_groups(tmp_path, monkeypatch):
    """Row groups of 4 rows split the 3-level snapshots; a start time that skips the first group
    makes the reader begin at level 1 of a snapshot that started unread: not an error."""
    from backtest.data import writer

    monkeypatch.setattr(writer, "ROW_GROUP_ROWS", 4)
    root = dataset(tmp_path / "ds", book(n_snap=4, levels=3))
    f = partition_dir(root, "book", "BTCUSDT", "2026-02-05") / "part-0000.parquet"
    import pyarrow.parquet as pq

    assert pq.ParquetFile(f).metadata.num_row_groups == 3
    ev = list(open_dataset(root, start_ns=T0 + 2 * 10**9))
    assert np.concatenate([c["side"] for c in ev]).tolist() == [0, 1, 2, 0, 1, 2]
    assert validate_dataset(root).ok  # and a full read checks the split snapshots whole
