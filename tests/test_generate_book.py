"""The crash dataset's L2 book (backtest/data/gen_book.py): calibration targets of
docs/crash-dataset.md ("Book"), consistency with the quotes, cadence, determinism, --no-book and
the stress transforms on the book kind."""
from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pytest

from backtest.data import gen_book
from backtest.data.generate import T0_NS, generate_dataset
from backtest.data.layout import list_streams
from backtest.scenarios import transforms as tr

SCALE = 0.2  # dense cadence 5 s, calm 300 s: ~5,400 snapshots per symbol
H_NS = 3600 * 10**9


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("book") / "feb"
    summary = generate_dataset("feb-2026-crash", root, seed=7, scale=SCALE)
    return root, summary


def _read(root, kind, sym):
    return pl.read_parquet([str(p) for p in list_streams(root)[(kind, sym)]])


def _snap_depth(b: pl.DataFrame) -> pl.DataFrame:
    """Notional within the 10 levels (both sides) per snapshot, with its hour since the start."""
    return (b.with_columns((pl.col("bid").fill_nan(0) * pl.col("bid_qty") + pl.col("ask") * pl.col("ask_qty"))
                           .alias("usd"))
            .group_by("ts_ns", maintain_order=True).agg(pl.col("usd").sum())
            .with_columns(((pl.col("ts_ns") - T0_NS) / H_NS).alias("h")))


def test_cadence_rule():
    dense, calm = gen_book.intervals_ns(1.0)
    assert (dense, calm) == (10**9, 60 * 10**9)  # >= 1 snapshot/s around the cascade at scale 1
    t = gen_book.snapshot_times(0, 4 * 86_400, 1.0)
    assert np.all(np.diff(t) > 0)
    h = t / H_NS
    win = (h >= 42) & (h < 48)
    assert win.sum() == 6 * 3600 and np.all(np.diff(t[win]) == 10**9)
    assert (~win).sum() == 90 * 60
    assert gen_book.intervals_ns(0.01) == (100 * 10**9, 3600 * 10**9)  # scaled down, capped at 1 h
    assert gen_book.intervals_ns(100.0) == (10**9, 10**9)  # never below 1 s
    # block boundaries never duplicate or drop a snapshot
    parts = np.concatenate([gen_book.snapshot_times(a, b, 1.0) for a, b in
                            [(0, 1000), (1000, 151_200), (151_200, 151_201), (151_201, 345_600)]])
    assert np.array_equal(parts, t)


def test_snapshots_levels_and_monotone(ds):
    root, summary = ds
    total = 0
    for sym in summary["symbols"]:
        b = _read(root, "book", sym)
        total += b.height
        lv = b["level"].to_numpy()
        assert b.height % 10 == 0 and np.array_equal(lv, np.tile(np.arange(10), b.height // 10))
        ts = b["ts_ns"].to_numpy().reshape(-1, 10)
        assert np.all(ts == ts[:, :1]) and np.all(np.diff(ts[:, 0]) > 0)
        bid, ask = b["bid"].to_numpy().reshape(-1, 10), b["ask"].to_numpy().reshape(-1, 10)
        assert np.all(np.diff(bid, axis=1) < 0) and np.all(np.diff(ask, axis=1) > 0)  # strictly
        assert np.all(bid[:, 0] < ask[:, 0])
        assert np.all(b["bid_qty"].to_numpy() > 0) and np.all(b["ask_qty"].to_numpy() > 0)
        # the cadence at this scale: dense 5 s in hours 42-48, 300 s elsewhere
        h = (ts[:, 0] - T0_NS) / H_NS
        win = (h >= 42) & (h < 48)
        assert np.all(np.diff(ts[win, 0]) == 5 * 10**9) and win.sum() == 6 * 720
    assert total == summary["book_rows"]


def test_level0_is_the_quote_in_force(ds):
    root, summary = ds
    for sym in ("BTCUSDT", "ADAUSDT", "ETH-USDT"):
        b = _read(root, "book", sym).filter(pl.col("level") == 0)
        q = _read(root, "quotes", sym)
        qts = q["ts_ns"].to_numpy()
        j = np.searchsorted(qts, b["ts_ns"].to_numpy(), "right") - 1
        assert np.all(j >= 0)
        for c in ("bid", "ask", "bid_qty", "ask_qty"):
            assert np.array_equal(b[c].to_numpy(), q[c].to_numpy()[j]), (sym, c)


def test_depth_thins_in_the_crash_and_recovers(ds):
    """Calibration (docs/crash-dataset.md): median notional within 10 levels in the crash hour
    (20:00-21:00 UTC 5 Feb) <= 0.25 x calm (4 Feb); the weekend (7 Feb) back to >= 0.5 x calm and
    >= 3 x the crash hour."""
    root, summary = ds
    for sym in summary["symbols"]:
        d = _snap_depth(_read(root, "book", sym))
        h, usd = d["h"].to_numpy(), d["usd"].to_numpy()
        calm = np.median(usd[h < 24])
        crash = np.median(usd[(h >= 44) & (h < 45)])
        weekend = np.median(usd[h >= 72])
        assert crash <= 0.25 * calm, (sym, crash / calm)
        assert weekend >= 0.5 * calm and weekend >= 3 * crash, (sym, weekend / calm)


def test_book_is_deterministic_and_optional(ds, tmp_path):
    root, summary = ds

    def digest(r, kind):
        return {p.relative_to(r).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(r.glob(f"kind={kind}/**/*.parquet"))}

    off = tmp_path / "nobook"
    s = generate_dataset("feb-2026-crash", off, seed=7, scale=SCALE, book=False)
    assert s["book_rows"] == 0 and not (off / "kind=book").exists()
    for kind in ("trades", "quotes", "marks", "funding"):  # the book draws from its own seed child
        assert digest(off, kind) == digest(root, kind)
    again = tmp_path / "again"
    generate_dataset("feb-2026-crash", again, seed=7, scale=SCALE, book=True)
    assert digest(again, "book") == digest(root, "book")


def test_cli_no_book(tmp_path):
    from click.testing import CliRunner

    from backtest.cli import cli

    out = tmp_path / "ds"
    r = CliRunner().invoke(cli, ["data", "generate", "--out", str(out), "--scale", "0.01", "--no-book",
                                 "--quiet"])
    assert r.exit_code == 0, r.output
    assert not (out / "kind=book").exists() and (out / "kind=quotes").exists()


def _toy_book():
    ts = np.repeat(np.array([10, 20], np.int64), 3)
    return {("book", "X"): {"ts_ns": ts, "level": np.tile(np.arange(3, dtype=np.int8), 2),
                            "bid": np.array([99.0, 98.0, np.nan, 99.5, 99.0, 98.0]),
                            "bid_qty": np.array([1.0, 2.0, 0.0, 1.0, 1.0, 1.0]),
                            "ask": np.array([101.0, 102.0, 103.0, 100.5, 101.0, 102.0]),
                            "ask_qty": np.array([1.0, 2.0, 3.0, 1.0, 1.0, 1.0])},
            ("trades", "X"): {"ts_ns": np.array([5, 15], np.int64), "price": np.array([100.0, 100.0]),
                              "qty": np.ones(2), "side": np.ones(2, np.int8)}}


def test_transforms_move_the_book_consistently():
    s = _toy_book()
    # thin: spread x3 in [15, 25): snapshot 2 (h0 = (3-1)/2 x 1.0 = 1.0) moves, snapshot 1 does not
    t = tr.thin(s, spread=3.0, depth=0.5, start=15, end=25)[("book", "X")]
    np.testing.assert_array_equal(t["bid"][3:], [98.5, 98.0, 97.0])
    np.testing.assert_array_equal(t["ask"][3:], [101.5, 102.0, 103.0])
    np.testing.assert_array_equal(t["bid_qty"][3:], [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(t["ask"][:3], s[("book", "X")]["ask"][:3])
    # gap: every book price at or after the gap times (1 + pct/100), NaN levels stay NaN
    g = tr.gap(s, pct=-10.0, at=15)[("book", "X")]
    np.testing.assert_allclose(g["ask"][3:], np.array([100.5, 101.0, 102.0]) * 0.9)
    assert np.isnan(g["bid"][2]) and g["bid"][0] == 99.0
    # neutral parameters return the book bit for bit
    n = tr.thin(s, spread=1.0, depth=1.0)[("book", "X")]
    for c in ("bid", "ask", "bid_qty", "ask_qty"):
        np.testing.assert_array_equal(n[c], s[("book", "X")][c])
