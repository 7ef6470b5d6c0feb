"""Bar rows (backtest/bars.py): open/high/low/volume of the trades in each bar, filled in after
each chunk, against a brute-force computation from the dataset, with chunk carry-over, gaps
(bars without trades) and several symbols; and bit-identical across chunk sizes."""
import numpy as np
import polars as pl
import pytest

import backtest as bt
from backtest.data.reader import open_dataset
from engine_fixtures import frame_diff, make_market_dataset
from swing_strategy import Swing  # any strategy will do; this one trades on every symbol


def expected_bars(data, bars: pl.DataFrame) -> dict:
    """(symbol, j) -> (open, high, low, volume) of the trades in the symbol's j-th bar row."""
    st = open_dataset(data, chunk_rows=1 << 20)
    ev = {k: np.concatenate([c[k] for c in st]) for k in ("ts_ns", "sym", "kind", "price", "qty")}
    want = {}
    for s, rows in bars.group_by("sym"):
        m = (ev["kind"] == 0) & (ev["sym"] == s[0])
        tts, px, q = ev["ts_ns"][m], ev["price"][m].tolist(), ev["qty"][m].tolist()
        ts = rows["ts_ns"].to_list()
        lo = 0
        for j, r in enumerate(ts):
            hi = len(tts) if j == len(ts) - 1 else int(np.searchsorted(tts, r, side="left"))
            p, v = px[lo:hi], q[lo:hi]
            want[(s[0], j)] = ((p[0], max(p), min(p), sum(v)) if p else
                               (float("nan"), float("nan"), float("nan"), 0.0))
            lo = hi
    return want


@pytest.mark.parametrize("step_ns,interval,chunk_rows", [(1_000_000, "1s", 997),
                                                          (40_000_000, "100ms", 1 << 20)])
def test_bars_match_the_trades(tmp_path, step_ns, interval, chunk_rows):
    make_market_dataset(tmp_path / "d", 30_000, nsym=3, step_ns=step_ns)
    res = bt.run(Swing, tmp_path / "d",
                 params=dict(lev=2.0, two=True),
                 config=dict(sample_interval=interval, chunk_rows=chunk_rows,
                             leverage={"S0": 2, "S1": 2, "S2": 2}))
    bars = res.bars.sort("ts_ns", "sym", maintain_order=True)
    want = expected_bars(tmp_path / "d", bars)
    n_empty = 0
    for s, rows in bars.group_by("sym", maintain_order=True):
        for j, r in enumerate(rows.iter_rows(named=True)):
            o, h, lo, v = want[(s[0], j)]
            got = (r["open"], r["high"], r["low"], r["volume"])
            if o != o:
                n_empty += 1
                assert all(x != x for x in got[:3]) and got[3] == 0.0, (s, j, got)
            else:
                assert got == (o, h, lo, v), (s, j, got, (o, h, lo, v))
    assert bars.height >= 45
    if step_ns > 1_000_000:
        assert n_empty > 0  # gaps: intervals without trades of a symbol


def test_bars_do_not_depend_on_chunking(tmp_path):
    make_market_dataset(tmp_path / "d", 20_000, nsym=2)
    runs = [bt.run(Swing, tmp_path / "d", params=dict(lev=2.0),
                   config=dict(sample_interval="1s", chunk_rows=k)) for k in (101, 4_096, 1 << 20)]
    for r in runs[1:]:
        assert frame_diff(runs[0].bars, r.bars) is None
