"""The chunked k-way merge reader (backtest/data/reader.py, chunks.py): order, filters, chunks, dtypes, memory."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.core.schema import EVENT_COLUMNS
from backtest.data.layout import partition_dir, schema_of
from backtest.data.reader import _Stream, open_dataset
from backtest.errors import DataError
from engine_fixtures import T0, canonical_order, make_market_dataset, write_events

PERP = dict(type=1, tick_size=0.1, lot_size=0.001, maker_fee_rate=0.0002, taker_fee_rate=0.0005)
DTYPES = dict(EVENT_COLUMNS)


def read_all(root, **kw):
    chunks = list(open_dataset(root, **kw))
    if not chunks:
        return {n: np.zeros(0, dt) for n, dt in EVENT_COLUMNS}, chunks
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}, chunks


def _events(rng, n, nsym, n_ts):
    """Random events of every kind with many equal timestamps (n_ts distinct values)."""
    ts = np.sort(T0 + rng.integers(0, n_ts, n)).astype(np.int64)
    sym = rng.integers(0, nsym, n).astype(np.int32)
    kind = rng.integers(0, 4, n).astype(np.int8)
    uid = np.arange(1, n + 1, dtype=np.float64)  # a unique positive tag per row, in every column
    return dict(ts_ns=ts, sym=sym, kind=kind, side=np.where(kind == 0, 1, 0).astype(np.int8),
                price=uid, qty=uid + 0.5, bid=uid, ask=uid + 0.25, bid_qty=uid, ask_qty=uid)


# ------------------------------------------------------------------------------ merged order
@pytest.mark.parametrize("chunk_rows", [1, 5, 64, 1 << 20])
def test_merged_order_and_tie_break(tmp_path, chunk_rows):
    rng = np.random.default_rng(1)
    ev = _events(rng, 600, nsym=3, n_ts=40)  # ~15 events per timestamp: ties everywhere
    syms = write_events(tmp_path / "ds", ev, [PERP] * 3)
    assert syms == ["S0", "S1", "S2"]
    got, _ = read_all(tmp_path / "ds", chunk_rows=chunk_rows)
    perm = canonical_order(ev)  # ts, kind, symbol index, row order
    want_tag = ev["price"][perm]
    tag = np.where(got["kind"] == 1, got["bid"], got["price"])
    tag = np.where(got["kind"] == 3, np.nan, tag)
    np.testing.assert_array_equal(got["ts_ns"], ev["ts_ns"][perm])
    np.testing.assert_array_equal(got["kind"], ev["kind"][perm])
    np.testing.assert_array_equal(got["sym"], ev["sym"][perm])
    nf = got["kind"] != 3  # funding rows carry the rate in price; compare the others by tag
    np.testing.assert_array_equal(tag[nf], want_tag[nf])
    # column mapping per kind, and NaN / 0 where a kind has no value
    k = got["kind"]
    np.testing.assert_array_equal(got["qty"][k == 0], got["price"][k == 0] + 0.5)  # trades
    np.testing.assert_array_equal(got["ask"][k == 1], got["bid"][k == 1] + 0.25)  # quotes
    np.testing.assert_array_equal(got["qty"][k == 2], got["price"][k == 2] + 0.5)  # marks: index
    assert np.isnan(got["bid"][k != 1]).all() and np.isnan(got["qty"][k == 3]).all()
    assert (got["side"][k != 0] == 0).all() and (got["side"][k == 0] == 1).all()


def test_symbol_index_is_the_requested_order_and_selection(tmp_path):
    rng = np.random.default_rng(2)
    ev = _events(rng, 300, nsym=3, n_ts=20)
    write_events(tmp_path / "ds", ev, [PERP] * 3)
    st = open_dataset(tmp_path / "ds")
    assert st.symbols == ["S0", "S1", "S2"]  # default: sorted names
    got, _ = read_all(tmp_path / "ds", symbols=["S2", "S0"])
    m = ev["sym"] != 1
    sub = {k: v[m] for k, v in ev.items()}
    sub["sym"] = np.where(sub["sym"] == 2, 0, 1).astype(np.int32)  # S2 -> 0, S0 -> 1
    perm = canonical_order(sub)
    np.testing.assert_array_equal(got["sym"], sub["sym"][perm])
    np.testing.assert_array_equal(got["ts_ns"], sub["ts_ns"][perm])
    assert open_dataset(tmp_path / "ds", symbols=["S2", "S0"]).symbols == ["S2", "S0"]


def test_unknown_symbol_error(tmp_path):
    rng = np.random.default_rng(3)
    write_events(tmp_path / "ds", _events(rng, 50, 2, 10), [PERP] * 2)
    with pytest.raises(DataError, match="unknown symbol.*NOPE") as e:
        open_dataset(tmp_path / "ds", symbols=["S0", "NOPE"])
    assert "S0, S1" in str(e.value)  # the fix lists the choices


# ------------------------------------------------------------------------------ time range
def _write_small_groups(root, symbol, ts, rows_per_group, part="part-0000", date="2026-02-05"):
    d = partition_dir(root, "trades", symbol, date)
    d.mkdir(parents=True, exist_ok=True)
    n = len(ts)
    t = pa.Table.from_arrays([pa.array(ts, pa.int64()), pa.array(np.arange(1, n + 1, dtype=np.float64)),
                              pa.array(np.ones(n)), pa.array(np.ones(n, np.int8))],
                             schema=schema_of("trades"))
    pq.write_table(t, d / f"{part}.parquet", row_group_size=rows_per_group)
    return d / f"{part}.parquet"


@pytest.mark.parametrize("chunk_rows", [3, 1 << 20])
def test_time_range_start_inclusive_end_exclusive_with_pruning(tmp_path, chunk_rows):
    root = tmp_path / "ds"
    ts = T0 + np.repeat(np.arange(50), 2) * 10  # 100 rows, pairs of equal ts, 10 ns apart
    path = _write_small_groups(root, "S0", ts, rows_per_group=8)
    write_events(root, dict(ts_ns=np.array([T0], np.int64), sym=np.array([1], np.int32),
                            kind=np.array([1], np.int8), side=np.zeros(1, np.int8),
                            price=np.ones(1), qty=np.ones(1), bid=np.ones(1), ask=np.ones(1),
                            bid_qty=np.ones(1), ask_qty=np.ones(1)), [PERP, PERP])
    start, end = T0 + 200, T0 + 350  # rows with 200 <= ts - T0 < 350: ts 200..340 -> 30 rows
    got, chunks = read_all(root, symbols=["S0"], start_ns=start, end_ns=end, chunk_rows=chunk_rows)
    want = np.flatnonzero((ts >= start) & (ts < end))
    np.testing.assert_array_equal(got["ts_ns"], ts[want])
    np.testing.assert_array_equal(got["price"], want.astype(float) + 1.0)  # exactly these rows (price = row + 1)
    assert got["ts_ns"][0] == start and got["ts_ns"][-1] == end - 10
    # pruning: only the row groups overlapping [start, end) are read (8 rows = 40 ns per group)
    stream = _Stream("trades", 0, [path], start, end, 4096)
    groups = stream._row_groups(path, pq.ParquetFile(path))
    md = pq.ParquetFile(path).metadata
    assert 0 < len(groups) < md.num_row_groups
    for rg in range(md.num_row_groups):
        st = md.row_group(rg).column(0).statistics
        overlaps = st.max >= start and st.min < end
        assert (rg in groups) == overlaps
    # empty range and a range before the data
    assert read_all(root, symbols=["S0"], start_ns=start, end_ns=start)[0]["ts_ns"].size == 0
    assert read_all(root, symbols=["S0"], end_ns=T0)[0]["ts_ns"].size == 0


def test_time_range_across_date_files(tmp_path):
    day = 86_400 * 10**9
    ev = dict(ts_ns=np.array([T0 - 5, T0 - 1, T0, T0 + day - 1, T0 + day], np.int64))
    n = len(ev["ts_ns"])
    ev.update(sym=np.zeros(n, np.int32), kind=np.zeros(n, np.int8), side=np.ones(n, np.int8),
              price=np.arange(1, n + 1, dtype=float), qty=np.ones(n), bid=np.ones(n), ask=np.ones(n),
              bid_qty=np.ones(n), ask_qty=np.ones(n))
    root = tmp_path / "ds"
    write_events(root, ev, [PERP])
    assert len(list((root / "kind=trades" / "symbol=S0").iterdir())) == 3  # three UTC dates
    got, _ = read_all(root, start_ns=T0 - 1, end_ns=T0 + day)
    assert got["price"].tolist() == [2.0, 3.0, 4.0]


# ------------------------------------------------------------------------------ chunks and dtypes
@pytest.mark.parametrize("chunk_rows", [1, 7, 1000, 4096, 10**12])
def test_chunk_sizes_dtypes_contiguity(tmp_path_factory, chunk_rows):
    root = tmp_path_factory.getbasetemp() / "chunks_ds"
    if not root.exists():
        make_market_dataset(root, 12_345, nsym=3, seed=4)
    whole, one = read_all(root, chunk_rows=10**12)
    assert len(one) == 1
    got, chunks = read_all(root, chunk_rows=chunk_rows)
    sizes = [len(c["ts_ns"]) for c in chunks]
    assert all(s <= chunk_rows for s in sizes)
    assert all(s == chunk_rows for s in sizes[:-1])  # only the last chunk is short
    assert sum(sizes) == 12_345
    for c in chunks:
        assert list(c) == [n for n, _ in EVENT_COLUMNS]
        for name, arr in c.items():
            assert arr.dtype == np.dtype(DTYPES[name]), name
            assert arr.flags.c_contiguous, name
            assert arr.ndim == 1
    for k in whole:
        assert got[k].tobytes() == whole[k].tobytes(), k
    assert np.all(np.diff(whole["ts_ns"]) >= 0)


def test_chunks_are_writeable_single_stream(tmp_path):
    from backtest.data.writer import write_stream

    root = tmp_path / "ds"
    n = 20_000
    write_stream(root, "trades", "S0", dict(ts_ns=T0 + np.arange(n, dtype=np.int64),
                                            price=np.ones(n), qty=np.ones(n),
                                            side=np.ones(n, np.int8)))
    write_events(root, dict(ts_ns=np.array([T0], np.int64), sym=np.array([1], np.int32),
                            kind=np.array([1], np.int8), side=np.zeros(1, np.int8),
                            price=np.ones(1), qty=np.ones(1), bid=np.ones(1), ask=np.ones(1),
                            bid_qty=np.ones(1), ask_qty=np.ones(1)), [PERP, PERP])
    for chunk in open_dataset(root, symbols=["S0"], chunk_rows=1000):
        for name, arr in chunk.items():
            assert arr.flags.writeable, name


# ------------------------------------------------------------------------------ bad data
def test_unsorted_timestamps_error_names_file_column_row(tmp_path):
    root = tmp_path / "ds"
    ts = T0 + np.arange(20, dtype=np.int64)
    ts[13] = T0 + 2  # row 13 goes back in time
    path = _write_small_groups(root, "S0", ts, rows_per_group=5)
    write_events(root, dict(ts_ns=np.array([T0], np.int64), sym=np.array([0], np.int32),
                            kind=np.array([1], np.int8), side=np.zeros(1, np.int8),
                            price=np.ones(1), qty=np.ones(1), bid=np.ones(1), ask=np.ones(1),
                            bid_qty=np.ones(1), ask_qty=np.ones(1)), [PERP])
    with pytest.raises(DataError) as e:
        read_all(root)
    err = e.value
    assert Path(err.file) == path and err.column == "ts_ns" and err.row == 13
    assert str(path) in str(err) and "ts_ns" in str(err) and "row 13" in str(err)


def test_timestamps_going_back_across_files(tmp_path):
    root = tmp_path / "ds"
    _write_small_groups(root, "S0", T0 + np.arange(10, dtype=np.int64), 4, part="part-0000")
    bad = _write_small_groups(root, "S0", T0 + np.arange(5, 15, dtype=np.int64), 4,
                              part="part-0001")
    (root / "instruments.json").write_text(json.dumps({"version": 1, "instruments": {"S0": dict(
        type="linear_perpetual", base="S0", quote="USDT", settle="USDT", tick_size=0.1,
        lot_size=0.001)}}))
    with pytest.raises(DataError) as e:
        read_all(root)
    assert Path(e.value.file) == bad and e.value.column == "ts_ns" and e.value.row == 0


# ------------------------------------------------------------------------------ bounded memory
MEM_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import psutil
    from backtest.data.reader import open_dataset
    from backtest.core.merge import gather_pieces  # the merge's kernel loaded, as in a run
    from backtest.core.schema import EVENT_COLUMNS
    none = np.zeros(0, np.uint64)  # no rows: loads the kernel, reads nothing
    gather_pieces(none, np.uint64(1), np.zeros(1, np.int64), none, np.zeros(1, np.int64),
                  np.zeros(1, np.int64), 0, *[np.zeros(0, dt) for _, dt in EVENT_COLUMNS])
    st = open_dataset(sys.argv[1], chunk_rows=int(sys.argv[2]))
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak_sampled = base
    n = 0
    acc = 0
    for c in st:
        n += len(c["ts_ns"])
        acc += int(c["ts_ns"][-1] % 1000) + int(c["sym"].sum())
        peak_sampled = max(peak_sampled, proc.memory_info().rss)
    # VmHWM (peak RSS of this program since exec); ru_maxrss is NOT usable here: on Linux a
    # child keeps the high-water mark of the (large) pytest process it was forked from.
    hwm = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    print(json.dumps(dict(n=n, base=base, peak_sampled=peak_sampled, hwm=hwm)))
""")


def test_bounded_memory_streaming(tmp_path):
    n_rows = 5_000_000
    root = tmp_path / "big"
    rng = np.random.default_rng(0)
    half = n_rows // 2
    inst = {}
    for s in ("S0", "S1"):
        from backtest.data.writer import write_stream

        write_stream(root, "trades", s, dict(
            ts_ns=T0 + np.sort(rng.integers(0, 3_600 * 10**9, half)).astype(np.int64),
            price=np.round(62_000 + rng.normal(0, 100, half), 1), qty=np.full(half, 0.001),
            side=rng.choice(np.array([-1, 1], np.int8), half)))
        inst[s] = dict(type="linear_perpetual", base=s, quote="USDT", settle="USDT",
                       tick_size=0.1, lot_size=0.001)
    (root / "instruments.json").write_text(json.dumps({"version": 1, "instruments": inst}))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, "-c", MEM_SCRIPT, str(root), "100000"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["n"] == n_rows
    in_memory = n_rows * sum(np.dtype(dt).itemsize for _, dt in EVENT_COLUMNS)  # ~310 MB
    extra = max(r["peak_sampled"], r["hwm"]) - r["base"]
    assert extra < in_memory / 3, (r, extra / 2**20, in_memory / 2**20)


# ------------------------------------------------------------------------------ validated once
def test_files_are_validated_once_and_rechecked_when_changed(tmp_path, monkeypatch):
    """A file that passed the row checks is remembered by its fingerprint; a changed file (here
    rewritten with a row going back in time) is checked again and refused with the one-line error."""
    import backtest.data.reader as reader

    monkeypatch.setenv("CASCADE_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "ds"
    path = _write_small_groups(root, "S0", T0 + np.arange(20, dtype=np.int64), rows_per_group=5)
    (root / "instruments.json").write_text(json.dumps({"version": 1, "instruments": {"S0": dict(
        type="linear_perpetual", base="S0", quote="USDT", settle="USDT", tick_size=0.1,
        lot_size=0.001)}}))
    first, _ = read_all(root, chunk_rows=7)
    calls = []
    real = reader.check_batch
    monkeypatch.setattr(reader, "check_batch", lambda *a, **k: calls.append(1) or real(*a, **k))
    again, _ = read_all(root, chunk_rows=7)
    assert calls == [] and all(first[k].tobytes() == again[k].tobytes() for k in first)
    ts = T0 + np.arange(20, dtype=np.int64)
    ts[13] = T0 + 2
    _write_small_groups(root, "S0", ts, rows_per_group=5)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1))
    with pytest.raises(DataError) as e:
        read_all(root)
    assert Path(e.value.file) == path and e.value.column == "ts_ns" and e.value.row == 13
    assert calls


def test_read_ahead_keeps_order_and_errors(tmp_path):
    """The background decode changes nothing: same chunks with and without it, same error."""
    root = tmp_path / "ds"
    make_market_dataset(root, 5_000, nsym=2, seed=3)
    st = open_dataset(root, chunk_rows=333)
    with_thread = list(st)
    st.read_ahead = False
    without = list(st)
    assert len(with_thread) == len(without)
    for a, b in zip(with_thread, without):
        assert all(a[k].tobytes() == b[k].tobytes() for k in a)


# ------------------------------------------------------------------------------ the merge kernel
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 12), splits=st.integers(1, 5),
       far=st.booleans())
def test_merge_kernel_equals_stable_sort_of_the_pieces(seed, k, splits, far):
    """core/merge.py reads the pieces in place through their addresses: every event column equals
    a stable sort of the pieces' concatenation (ties in piece order), a kind's missing columns
    are its constants, whatever the rows written per call; and --no-jit's numpy path agrees.
    far: the last piece's rows lie 2**61 ns later, too far for the sort key (the argsort path)."""
    from backtest.data import chunks
    from backtest.data.layout import EVENT_KINDS, KINDS

    rng = np.random.default_rng(seed)
    pieces = []
    for j in range(k):
        kind = EVENT_KINDS[rng.integers(len(EVENT_KINDS))]
        n = int(rng.integers(1, 40))
        cols = {"ts_ns": np.sort(T0 + rng.integers(0, 15, n)).astype(np.int64)}  # many ties
        if far and j == k - 1:
            cols["ts_ns"] += 2**61
        for name, typ in KINDS[kind][1].items():
            if name != "ts_ns":
                cols[name] = rng.integers(-5, 100, n).astype(typ.to_pandas_dtype())
        stream = _Stream.__new__(_Stream)
        stream.kind, stream.sym = kind, int(rng.integers(0, 5))
        pieces.append((stream, cols))
    m = sum(len(c["ts_ns"]) for _, c in pieces)
    # the reference: each piece's event columns concatenated, then a stable sort by time
    want = {}
    for name, dt in EVENT_COLUMNS:
        parts = []
        for stream, cols in pieces:
            src = {d: s for s, d in chunks._COLUMN_MAP[stream.kind].items()} | {"ts_ns": "ts_ns"}
            n = len(cols["ts_ns"])
            value = {"sym": stream.sym, "kind": int(KINDS[stream.kind][0]), "side": 0}.get(name, np.nan)
            parts.append(cols[src[name]].astype(dt) if name in src else np.full(n, value, dt))
        want[name] = np.concatenate(parts)
    order = np.argsort(want["ts_ns"], kind="stable")
    cuts = np.sort(rng.integers(0, m + 1, splits - 1))
    for jit in (True, False):
        merge = chunks.Merge(pieces)
        at = 3  # written past a chunk's first rows
        out = {n: np.full(m + at, 7, dt) for n, dt in EVENT_COLUMNS}
        lo = 0
        for hi in [*cuts, m]:
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(chunks, "_jit", lambda: jit)
                merge.write(int(hi - lo), at + lo, out)
            lo = hi
        for name, _ in EVENT_COLUMNS:
            np.testing.assert_array_equal(out[name][at:], want[name][order], err_msg=f"{name} jit={jit}")
            assert (out[name][:at] == 7).all()  # nothing written before `at`


def test_datasets_are_written_lz4_and_zstd_ones_still_read(tmp_path):
    """Our writers use LZ4 (Parquet's LZ4_RAW: decodes twice as fast as zstd); datasets written
    before that (zstd) or by other tools read the same."""
    make_market_dataset(tmp_path / "lz4", 5_000, nsym=2, seed=9)
    files = sorted((tmp_path / "lz4").rglob("*.parquet"))
    assert files and {pq.ParquetFile(f).metadata.row_group(0).column(0).compression for f in files} == {"LZ4"}
    zstd = tmp_path / "zstd"
    for f in (tmp_path / "lz4").rglob("*"):
        g = zstd / f.relative_to(tmp_path / "lz4")
        if f.is_dir():
            continue
        g.parent.mkdir(parents=True, exist_ok=True)
        if f.suffix == ".parquet":
            pq.write_table(pq.read_table(f), g, compression="zstd")
        else:
            g.write_bytes(f.read_bytes())
    a, _ = read_all(tmp_path / "lz4", chunk_rows=1_000)
    b, _ = read_all(zstd, chunk_rows=1_000)
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
