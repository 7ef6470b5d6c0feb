"""Tardis order books -> quotes + the `book` kind: book_snapshot_5/25 (every level in the file, up
to --levels) and incremental_book_L2 (the book rebuilt while streaming, snapshots on a fixed grid
with no look-ahead, quotes when the top changes), hand-computed from the fixtures."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backtest.data import csvsource
from backtest.data.importers import import_files, parse_file_kinds
from backtest.data.l2book import L2Book
from backtest.data.validate import validate_dataset
from backtest.errors import ConfigError, DataError

FIX = Path(__file__).parent / "fixtures" / "exchange"
INSTR = FIX / "instruments.json"
T0 = 1770249600 * 10**9  # 2026-02-05 00:00 UTC
MS = 10**6
S = 10**9
NAN = float("nan")


def _rows(book):
    """Book columns as a list of (ts offset in ms, level, bid, bid_qty, ask, ask_qty), NaN as None."""
    def v(x):
        return None if np.isnan(x) else float(x)
    return [(int((t - T0) // MS), int(lv), v(b), float(bq), v(a), float(aq)) for t, lv, b, bq, a, aq in
            zip(book["ts_ns"], book["level"], book["bid"], book["bid_qty"], book["ask"], book["ask_qty"])]


@pytest.mark.parametrize("levels", [5, 25])
def test_snapshot_files_give_every_level(levels):
    out = parse_file_kinds(FIX / f"tardis-book-snapshot-{levels}.csv", f"tardis-book-snapshot-{levels}")
    q, b = out["quotes"], out["book"]
    assert q["bid"].tolist() == [96990.1, 96990.0, 96991.2]
    assert len(b["ts_ns"]) == 3 * levels
    assert b["level"].tolist() == list(range(levels)) * 3
    assert b["ts_ns"].tolist() == [T0 + t * MS for t in (5, 11, 1000) for _ in range(levels)]
    # level 0 is the quote; the deeper levels are the file's, in order
    assert b["bid"][::levels].tolist() == q["bid"].tolist() and b["ask_qty"][::levels].tolist() == q["ask_qty"].tolist()
    assert b["bid"][:5].tolist() == [96990.1, 96990.0, 96989.9, 96989.8, 96989.7]
    assert b["ask"][:5].tolist() == [96990.2, 96990.3, 96990.4, 96990.5, 96990.6]
    assert b["bid_qty"][:5].tolist() == [0.8, 1.3, 1.8, 2.3, 2.8]


def _snapshot5(tmp_path, rows):
    head = (FIX / "tardis-book-snapshot-5.csv").read_text().splitlines()[0]
    p = tmp_path / "BTCUSDT.csv"
    p.write_text("\n".join([head, *rows]) + "\n")
    return p


ROW = "binance-futures,BTCUSDT,1770249600005000,1770249600007113,"


def test_snapshot_with_missing_levels_and_levels_option(tmp_path):
    # 2 ask levels and 3 bid levels present; empty cells are missing levels
    cells = ["96990.2,1.5,96990.1,0.8", "96990.3,1.75,96990.0,1.3", ",,96989.9,1.8", ",,,", ",,,"]
    p = _snapshot5(tmp_path, [ROW + ",".join(cells)])
    b = parse_file_kinds(p, "tardis-book-snapshot-5")["book"]
    assert _rows(b) == [(5, 0, 96990.1, 0.8, 96990.2, 1.5), (5, 1, 96990.0, 1.3, 96990.3, 1.75),
                        (5, 2, 96989.9, 1.8, None, 0.0)]
    out = tmp_path / "ds"
    res = import_files([p], fmt="tardis-book-snapshot-5", symbol="BTCUSDT", out=out, instruments=INSTR,
                       options={"book_levels": 2})
    assert res.rows == {"quotes": 1, "book": 2}
    assert validate_dataset(out).rows == {"quotes": 1, "book": 2}


@pytest.mark.parametrize("cells, column, words", [
    (["96990.2,1.5,96990.1,0.8", "96990.3,1.75,96990.1,1.3"] + [",,,"] * 3, "bids[1].price", "strictly decreasing"),
    (["96990.2,1.5,96990.1,0.8", ",,96990.0,1.3", "96990.4,1,96989.9,1.8"] + [",,,"] * 2, "asks[2].price",
     "empty level"),
    (["96990.2,1.5,96990.1,0.8", "96990.3,,96990.0,1.3"] + [",,,"] * 3, "asks[1].amount", "no amount"),
    (["96990.2,1.5,96990.1,0.8", "96990.3,1,abc,1.3"] + [",,,"] * 3, "bids[1].price", "not a number"),
])
def test_snapshot_bad_rows_name_the_line(tmp_path, cells, column, words):
    p = _snapshot5(tmp_path, [ROW + ",".join(["96990.2,1.5,96990.1,0.8"] + [",,,"] * 4), ROW + ",".join(cells)])
    with pytest.raises(DataError) as e:
        parse_file_kinds(p, "tardis-book-snapshot-5")
    assert e.value.column == column and e.value.file.endswith("BTCUSDT.csv") and e.value.row == 3
    assert words in str(e.value) and "\n" not in str(e.value)


# The incremental fixture, by hand (times in ms after 2026-02-05 00:00 UTC):
#   -100  bid 96980.0 before any snapshot: skipped
#    100  snapshot: bids 96990.0 x1, 96989.5 x2, 96989.0 x3; asks 96990.5 x1.5, 96991.0 x2.5, 96991.5 x3.5
#    600  ask 96990.5 removed, ask 96990.8 x0.7 added (one message)
#   1000  bid 96990.2 x0.4 (the grid time 1 s: included in that snapshot, ts <= T)
#   1500  bid 96989.5 removed; 96980.0 removed (unknown level: ignored); the top is unchanged
#   2500  bid 96990.2 -> x0.9
#   3200  a new snapshot (true after false): the book is cleared; bid 96995.0 x1, ask 96995.5 x1
#   4000  ask 96996.0 x2 (below the top)
QUOTES = [(100, 96990.0, 96990.5, 1.0, 1.5), (600, 96990.0, 96990.8, 1.0, 0.7),
          (1000, 96990.2, 96990.8, 0.4, 0.7), (2500, 96990.2, 96990.8, 0.9, 0.7),
          (3200, 96995.0, 96995.5, 1.0, 1.0)]
BOOK = [(1000, 0, 96990.2, 0.4, 96990.8, 0.7), (1000, 1, 96990.0, 1.0, 96991.0, 2.5),
        (1000, 2, 96989.5, 2.0, 96991.5, 3.5), (1000, 3, 96989.0, 3.0, None, 0.0),
        (2000, 0, 96990.2, 0.4, 96990.8, 0.7), (2000, 1, 96990.0, 1.0, 96991.0, 2.5),
        (2000, 2, 96989.0, 3.0, 96991.5, 3.5),
        (3000, 0, 96990.2, 0.9, 96990.8, 0.7), (3000, 1, 96990.0, 1.0, 96991.0, 2.5),
        (3000, 2, 96989.0, 3.0, 96991.5, 3.5),
        (4000, 0, 96995.0, 1.0, 96995.5, 1.0), (4000, 1, None, 0.0, 96996.0, 2.0)]


def _quotes(q):
    return [(int((t - T0) // MS), b, a, bq, aq) for t, b, a, bq, aq in
            zip(q["ts_ns"], q["bid"], q["ask"], q["bid_qty"], q["ask_qty"])]


def test_incremental_book_by_hand():
    out = parse_file_kinds(FIX / "tardis-incremental-book-l2.csv", "tardis-incremental-book-l2")
    assert _quotes(out["quotes"]) == QUOTES
    assert _rows(out["book"]) == BOOK


def test_incremental_snapshot_split_across_batches(monkeypatch):
    """Tiny CSV blocks: the 100 ms snapshot message and later messages straddle batches; the
    book state carries across them and the result is the same."""
    monkeypatch.setattr(csvsource, "BLOCK_BYTES", 160)  # about two lines per batch
    out = parse_file_kinds(FIX / "tardis-incremental-book-l2.csv", "tardis-incremental-book-l2")
    assert _quotes(out["quotes"]) == QUOTES
    assert _rows(out["book"]) == BOOK


def test_l2book_any_split_same_output():
    """Row by row, or in one call: the emitted rows are identical (the state is the object)."""
    ts = [T0 + t * MS for t in (100, 100, 100, 100, 600, 600, 1000, 2500, 2500)]
    args = (ts, [1, 1, 1, 1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 1, 1, 0],
            [10.0, 9.0, 11.0, 12.0, 11.0, 11.5, 10.5, 9.0, 13.0], [1.0, 2.0, 1.0, 2.0, 0.0, 3.0, 1.0, 0.0, 1.0])
    whole = L2Book(2, S)
    whole.apply(*args)
    whole.finish()
    a = whole.drain()
    parts = L2Book(2, S)
    drained = []
    for i in range(len(ts)):
        parts.apply(*(col[i:i + 1] for col in args))
        drained.append(parts.drain())
    parts.finish()
    drained.append(parts.drain())
    for kind in ("quotes", "book"):
        for c in a[kind]:
            joined = np.concatenate([d[kind][c] for d in drained])
            np.testing.assert_array_equal(joined, a[kind][c])
    # top 2 levels at 1 s: bids 10.5, 10.0; asks 11.5 (12.0 is the second)
    assert a["book"]["bid"][:2].tolist() == [10.5, 10.0] and a["book"]["ask"][:2].tolist() == [11.5, 12.0]


def test_incremental_import_end_to_end(tmp_path):
    out = tmp_path / "ds"
    res = import_files([FIX / "tardis-incremental-book-l2.csv"], fmt="tardis-incremental-book-l2",
                       symbol="BTCUSDT", out=out, instruments=INSTR,
                       options={"book_levels": 2, "book_interval_ns": 2 * S})
    assert res.rows == {"quotes": 5, "book": 4}  # grid 2 s, 4 s; 2 levels
    rep = validate_dataset(out)
    assert rep.ok and rep.rows["book"] == 4
    with pytest.raises(ConfigError, match="--levels"):
        import_files([FIX / "tardis-incremental-book-l2.csv"], fmt="tardis-incremental-book-l2",
                     symbol="BTCUSDT", out=tmp_path / "x", instruments=INSTR, options={"book_levels": 26})
    with pytest.raises(ConfigError, match="takes no --book-interval"):
        import_files([FIX / "tardis-trades.csv"], fmt="tardis-trades", symbol="BTCUSDT",
                     out=tmp_path / "y", instruments=INSTR, options={"book_interval_ns": S})


def test_incremental_bad_amount_names_the_line(tmp_path):
    lines = (FIX / "tardis-incremental-book-l2.csv").read_text().splitlines()
    lines[4] = lines[4].replace(",3.0", ",-3.0")
    p = tmp_path / "BTCUSDT.csv"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        parse_file_kinds(p, "tardis-incremental-book-l2")
    assert e.value.column == "amount" and e.value.row == 5
