"""The replay cache (backtest/data/replay.py, `backtest data cache`): a cached selection replays
the very chunks of the Parquet merge, for every chunk size and time range, so runs are
bit-identical; an entry whose dataset changed, or that is damaged, is never used; an interrupted
build leaves nothing behind."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import backtest as bt
from backtest.cli import cli
from backtest.data import replay
from backtest.data.reader import EventStream, open_dataset
from backtest.errors import DataError
from engine_fixtures import T0, assert_results_identical, make_market_dataset
from strategies.reference import Reference

N_EVENTS = 60_000


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "replay"
    monkeypatch.setenv("CASCADE_REPLAY_CACHE", str(folder))
    return folder


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "ds"
    symbols = make_market_dataset(root, N_EVENTS, nsym=3, seed=4)
    return root, symbols


def _events(root, symbols, use, **kw):
    stream = open_dataset(root, symbols=symbols, **kw)
    stream.use_replay_cache = use
    parts = list(stream)
    return [len(p["ts_ns"]) for p in parts], parts


def _forbid_parquet(monkeypatch):
    def refuse(self):
        raise AssertionError("read Parquet although the selection is cached")
        yield

    monkeypatch.setattr(EventStream, "parquet_chunks", refuse)


@pytest.mark.parametrize("chunk_rows", [997, 1 << 20])
@pytest.mark.parametrize("window", [(None, None), (T0 + 3_000_000_000, T0 + 17_000_000_003), (T0 - 5, T0)])
def test_cached_chunks_are_the_merge_chunks(cache, dataset, monkeypatch, chunk_rows, window):
    root, symbols = dataset
    _, meta, built = replay.build(open_dataset(root, symbols=symbols))
    assert built and meta["rows"] == N_EVENTS
    start, end = window
    want_sizes, want = _events(root, symbols, False, chunk_rows=chunk_rows, start_ns=start, end_ns=end)
    _forbid_parquet(monkeypatch)
    sizes, got = _events(root, symbols, True, chunk_rows=chunk_rows, start_ns=start, end_ns=end)
    assert sizes == want_sizes  # the same cuts
    for a, b in zip(want, got):
        assert list(a) == list(b)
        for name in a:
            assert a[name].dtype == b[name].dtype and a[name].tobytes() == b[name].tobytes(), name
            # mapped from the entry's files at any offset, typed as the loop is compiled for
            assert b[name].flags.c_contiguous and b[name].flags.writeable, name


@pytest.mark.parametrize("chunk_rows", [400, 997, 3_000])
def test_chunks_are_the_same_whatever_the_mapped_window(cache, dataset, monkeypatch, chunk_rows):
    """Chunks are views of windows mapped WINDOW_ROWS rows at a time (more when a chunk is
    larger); a chunk that does not fit the current window starts a new one. Small windows, not
    multiples of the chunk size, give the very same chunks."""
    root, symbols = dataset
    entry, meta, _ = replay.build(open_dataset(root, symbols=symbols))
    whole = list(replay.chunks(entry, T0 - 1, T0 + 10**12, chunk_rows))
    monkeypatch.setattr(replay, "WINDOW_ROWS", 1_500)
    windowed = list(replay.chunks(entry, T0 - 1, T0 + 10**12, chunk_rows))
    assert meta["rows"] > 3 * 1_500 and len(windowed) == len(whole) > 1
    for a, b in zip(whole, windowed):
        for name in a:
            assert a[name].tobytes() == b[name].tobytes() and b[name].flags.writeable, name


def test_an_entry_cut_short_after_it_was_found_is_a_one_line_error(cache, dataset):
    """Chunks are mapped from the entry's files: a file cut short under a run (by hand; Cascade
    replaces entries whole) is refused before it is mapped, where reading past its end would
    have crashed the process."""
    root, symbols = dataset
    entry, _, _ = replay.build(open_dataset(root, symbols=symbols))
    chunks = replay.chunks(entry, T0 - 1, T0 + 10**12, 1_000)
    next(chunks)
    with open(entry / "price.bin", "r+b") as f:
        f.truncate(8 * 1_500)
    with pytest.raises(DataError, match="shorter than its description") as e:
        next(chunks)
    assert "price.bin" in str(e.value) and "backtest cache clear" in str(e.value)


def test_a_run_from_the_cache_is_bit_identical(cache, dataset, monkeypatch):
    root, symbols = dataset
    cfg = dict(initial_balance=100_000.0, sample_interval="1ms", chunk_rows=5_000,
               leverage={"S0": 5.0}, execution=dict(latency="3ms"))

    def go():
        return bt.run(Reference, root, params={"sym": "S0"}, symbols=symbols, config=cfg)

    before = go()
    assert before.fills.height > 0 and before.manifest["timings"]["replay_cache"] is False
    replay.build(open_dataset(root, symbols=symbols))
    _forbid_parquet(monkeypatch)
    after = go()
    assert after.manifest["timings"]["replay_cache"] is True
    assert_results_identical(before, after)


def test_symbols_in_another_order_are_another_selection(cache, dataset, monkeypatch):
    root, symbols = dataset
    replay.build(open_dataset(root, symbols=symbols))
    assert replay.find(open_dataset(root, symbols=symbols[::-1])) is None  # the symbol index differs
    assert replay.find(open_dataset(root, symbols=symbols[:2])) is None
    assert replay.find(open_dataset(root, symbols=symbols)) is not None


def test_a_changed_file_is_read_from_parquet_and_recaching_replaces_the_entry(cache, dataset):
    root, symbols = dataset
    first, _, _ = replay.build(open_dataset(root, symbols=symbols))
    # rewrite one trades file with other prices (same rows, same size class)
    path = sorted(root.glob("kind=trades/**/*.parquet"))[0]
    table = pq.read_table(path)
    price = table.column("price").to_numpy() + 1.0
    table = table.set_column(table.schema.get_field_index("price"), "price", [price])
    pq.write_table(table, path, compression="zstd", write_page_checksum=True)
    stream = open_dataset(root, symbols=symbols)
    assert replay.find(stream) is None
    _, parts = _events(root, symbols, True)
    assert np.isin(price, np.concatenate([p["price"] for p in parts])).all()  # the new prices
    second, _, built = replay.build(stream)
    assert built and second != first and not first.exists()  # the stale entry is gone
    assert replay.find(open_dataset(root, symbols=symbols)) == second


def test_a_damaged_entry_is_ignored_then_replaced(cache, dataset):
    root, symbols = dataset
    entry, _, _ = replay.build(open_dataset(root, symbols=symbols))
    with open(entry / "price.bin", "r+b") as f:
        f.truncate(100)
    assert replay.find(open_dataset(root, symbols=symbols)) is None
    _, got = _events(root, symbols, True)
    assert sum(len(p["ts_ns"]) for p in got) == N_EVENTS
    (cache / "0123").mkdir()  # an entry of an older format, say: no description
    again, _, built = replay.build(open_dataset(root, symbols=symbols))
    assert built and again == entry and replay.find(open_dataset(root, symbols=symbols)) == entry
    assert sorted(p.name for p in cache.iterdir()) == [entry.name]


def test_an_interrupted_build_leaves_nothing(cache, dataset, monkeypatch):
    root, symbols = dataset
    original = EventStream.parquet_chunks

    def fails_midway(self):
        for i, chunk in enumerate(original(self)):
            if i == 2:
                raise DataError("a bad row", file="x.parquet", row=3)
            yield chunk

    monkeypatch.setattr(EventStream, "parquet_chunks", fails_midway)
    with pytest.raises(DataError, match="a bad row"):
        replay.build(open_dataset(root, symbols=symbols, chunk_rows=1000))
    assert list(cache.iterdir()) == []  # no entry, no temporary folder
    assert replay.find(open_dataset(root, symbols=symbols)) is None


def test_no_room_is_one_line_and_writes_nothing(cache, dataset, monkeypatch):
    root, symbols = dataset
    monkeypatch.setattr(replay.shutil, "disk_usage", lambda p: type("U", (), {"free": 1000})())
    r = CliRunner().invoke(cli, ["data", "cache", str(root)])
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert "needs 0.0" in r.output and "GB are free" in r.output and "fix:" in r.output
    assert not any(cache.glob("*/entry.json"))


def test_cli_caches_once_and_cache_commands_list_and_clear(cache, dataset):
    root, symbols = dataset
    r = CliRunner().invoke(cli, ["data", "cache", str(root)])
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"cached: {N_EVENTS:,} events of {', '.join(symbols)}")
    r = CliRunner().invoke(cli, ["data", "cache", str(root), "--json"])
    out = json.loads(r.output)
    assert r.exit_code == 0 and out["built"] is False and out["rows"] == N_EVENTS
    assert out["bytes"] == N_EVENTS * 62
    r = CliRunner().invoke(cli, ["cache", "info", "--json"])
    info = json.loads(r.output)
    assert [e["events"] for e in info["replay_entries"]] == [N_EVENTS]
    r = CliRunner().invoke(cli, ["cache", "clear"], env={"CASCADE_CACHE_DIR": str(cache.parent / "other")})
    assert r.exit_code == 0 and "removed 1 replay entry" in r.output
    assert replay.entries() == []


def test_book_is_cached_only_when_asked(cache, tmp_path):
    from backtest.data.generate import generate_dataset

    root = tmp_path / "crash"
    generate_dataset("feb-2026-crash", root, seed=3, scale=0.02)
    r = CliRunner().invoke(cli, ["data", "cache", str(root), "--symbols", "BTCUSDT", "--json"])
    without = json.loads(r.output)
    assert r.exit_code == 0 and not any(s.startswith("book/") for s in without["streams"])
    r = CliRunner().invoke(cli, ["data", "cache", str(root), "--symbols", "BTCUSDT", "--book", "--json"])
    with_book = json.loads(r.output)
    assert any(s.startswith("book/") for s in with_book["streams"])
    assert with_book["rows"] > without["rows"] and len(replay.entries()) == 2


def test_one_stream_replays_the_same_events(cache, tmp_path, monkeypatch):
    """One stream is read in place from Parquet (its row groups are the chunks); from the cache it
    comes in chunks of chunk_rows: other cuts, the same events and the same run."""
    import shutil

    from backtest.data.generate import generate_dataset

    full = tmp_path / "crash"
    generate_dataset("feb-2026-crash", full, seed=5, scale=0.02, book=False)
    root = tmp_path / "btc-trades"  # one stream: BTCUSDT's trades
    shutil.copytree(full / "kind=trades" / "symbol=BTCUSDT", root / "kind=trades" / "symbol=BTCUSDT")
    shutil.copy(full / "instruments.json", root)
    want = list(open_dataset(root, chunk_rows=3_000))
    cfg = dict(chunk_rows=3_000, margin=dict(funding="0", trigger="last"))
    before = bt.run(Reference, root, config=cfg)
    assert before.manifest["timings"]["events"] == sum(len(p["ts_ns"]) for p in want)
    replay.build(open_dataset(root))
    _forbid_parquet(monkeypatch)
    got = list(open_dataset(root, chunk_rows=3_000))
    for name in want[0]:
        assert np.concatenate([p[name] for p in want]).tobytes() == np.concatenate([p[name] for p in got]).tobytes()
    assert_results_identical(before, bt.run(Reference, root, config=cfg))


def test_constant_columns_are_stored_as_their_value(cache, tmp_path):
    """Trades and marks of one symbol: sym, and the quote columns, hold one value throughout
    (NaN bit for bit); they get no file, and the chunks carry them exactly. A column that changes
    only late is written whole from that point with the rows before it."""
    from backtest.data.generate import generate_dataset

    full = tmp_path / "crash"
    generate_dataset("feb-2026-crash", full, seed=6, scale=0.02, book=False)
    pick = dict(symbols=["ETHUSDT"], kinds=("trades", "marks"), chunk_rows=2_000)
    want = list(open_dataset(full, **pick))
    entry, meta, _ = replay.build(open_dataset(full, **pick))
    assert set(meta["constant"]) == {"sym", "bid", "ask", "bid_qty", "ask_qty"}
    assert not any((entry / f"{n}.bin").exists() for n in meta["constant"])
    assert meta["bytes"] == meta["rows"] * (8 + 1 + 1 + 8 + 8)
    got = list(open_dataset(full, **pick))
    assert [len(p["ts_ns"]) for p in got] == [len(p["ts_ns"]) for p in want]
    for a, b in zip(want, got):
        for name in a:
            assert a[name].dtype == b[name].dtype and a[name].tobytes() == b[name].tobytes(), name


def test_a_column_that_varies_late_is_backfilled(tmp_path):
    w = replay._ColumnWriter(tmp_path / "x.bin", "f8")
    w.write(np.full(5, np.nan))
    w.write(np.array([np.nan, -0.0, 2.0]))
    w.write(np.array([3.0]))
    assert w.close() is None
    got = np.fromfile(tmp_path / "x.bin", "f8")
    assert got[:6].tobytes() == np.full(6, np.nan).tobytes() and got[6:].tobytes() == np.array([-0.0, 2.0, 3.0]).tobytes()
    w = replay._ColumnWriter(tmp_path / "y.bin", "i1")
    w.write(np.zeros(4, "i1"))
    assert w.close() == 0 and not (tmp_path / "y.bin").exists()
