"""Report figures, tear sheet and CLI, on synthetic run folders built with the exact table columns.

`make_crash_result()` is a tiny self-consistent account simulator (not the engine): a 7x long of
BTC bought on 5 Feb 2026 at ~73k, topped up, partly taken off with a take-profit, then liquidated
as BTC falls to ~60k on 6 Feb; an ETH short that a market buy flips long, closed by a stop. It
writes fills, orders, equity (every minute and at every fill), bars with liq_price, funding every
8 h and one liquidation, so the figures can be tested against known events.
"""
from __future__ import annotations

import base64
import re

import numpy as np
import polars as pl
import pytest

from backtest.core.schema import (BAR_DTYPE, EQUITY_DTYPE, FILL_DTYPE, FUNDING_DTYPE,
                                  LIQUIDATION_DTYPE, ORDER_DTYPE, Liquidity, OrderStatus,
                                  OrderType, Reason, Side)
from backtest.result import Result

NS_MIN = 60 * 1_000_000_000
T0 = 1_770_249_600 * 1_000_000_000  # 2026-02-05 00:00:00 UTC
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
MMR = 0.005  # maintenance margin rate
LIQ_FEE = 0.0125
TAKER, MAKER = 0.0005, 0.0002


# ------------------------------------------------------------------------------------------------
# Synthetic run folders
def _frame(dtype: np.dtype, rows: list[dict], symbols=SYMBOLS) -> pl.DataFrame:
    """A polars frame with exactly the columns of `dtype` (+ `symbol` after `sym` when present)."""
    arr = np.zeros(len(rows), dtype=dtype)
    for i, r in enumerate(rows):
        for k, v in r.items():
            arr[k][i] = v
    df = pl.DataFrame({name: arr[name] for name in dtype.names})
    if "sym" in dtype.names:
        pos = list(dtype.names).index("sym") + 1
        df = df.insert_column(pos, pl.Series("symbol", [symbols[s] for s in arr["sym"]], pl.Utf8))
    return df


def _price_paths(n_min: int, seed: int = 7) -> np.ndarray:
    """Minute closes per symbol: BTC 73k -> ~60k low on 6 Feb early morning, partial rebound."""
    rng = np.random.default_rng(seed)
    knots_t = np.array([0, 10, 20, 26, 30, 38, 48]) * 60
    knots_p = np.array([73_000, 73_400, 68_500, 64_000, 60_200, 62_500, 63_200.0])
    base = np.interp(np.arange(n_min), knots_t, knots_p)
    noise = np.cumsum(rng.normal(0, 18, n_min))
    noise -= np.interp(np.arange(n_min), [0, n_min - 1], [noise[0], noise[-1]])
    btc = base + noise
    eth = btc / 34.0 * (1 + 0.002 * np.sin(np.arange(n_min) / 50.0))
    return np.vstack([btc, eth])


def make_crash_result(hours: int = 48, seed: int = 7) -> Result:
    """Isolated 10x margin per symbol; a position is liquidated when its margin plus unrealised PnL
    falls to the maintenance margin, losing exactly its margin (fee included)."""
    n_min = hours * 60
    px = _price_paths(n_min, seed)
    rng = np.random.default_rng(seed + 1)
    # Intended orders: minute -> (sym, side, qty, order_type, liquidity)
    plan = {
        120: (0, Side.BUY, 0.8, OrderType.MARKET, Liquidity.TAKER),
        150: (1, Side.SELL, 5.0, OrderType.MARKET, Liquidity.TAKER),
        360: (0, Side.BUY, 0.3, OrderType.LIMIT, Liquidity.MAKER),
        600: (0, Side.SELL, 0.3, OrderType.TAKE_PROFIT_LIMIT, Liquidity.MAKER),
        720: (1, Side.BUY, 10.0, OrderType.MARKET, Liquidity.TAKER),
        840: (1, Side.SELL, 5.0, OrderType.STOP_MARKET, Liquidity.TAKER),
        1800: (0, Side.BUY, 0.1, OrderType.MARKET, Liquidity.TAKER),  # buys the dip, still open
    }
    if hours * 60 <= 1800:
        plan.pop(1800)
    balance = 10_000.0
    pos, avg, margin = np.zeros(2), np.zeros(2), np.zeros(2)
    fills, orders, equity, bars, funding, liqs = [], [], [], [], [], []
    counters = {"oid": 0, "event_idx": 0}

    def fill(t, s, side, qty, price, otype, liq, ref, fee=None):
        nonlocal balance
        signed = int(side) * qty
        p0 = pos[s]
        realized = 0.0
        if p0 != 0 and np.sign(signed) != np.sign(p0):
            realized = min(abs(signed), abs(p0)) * (price - avg[s]) * np.sign(p0)
        p1 = p0 + signed
        if p1 == 0:
            avg[s], margin[s] = 0.0, 0.0
        elif p0 == 0 or np.sign(p1) != np.sign(p0):
            avg[s], margin[s] = price, abs(p1) * price / 10
        elif abs(p1) > abs(p0):
            avg[s] = (abs(p0) * avg[s] + qty * price) / abs(p1)
            margin[s] += qty * price / 10
        else:
            margin[s] *= abs(p1) / abs(p0)
        if fee is None:
            fee = qty * price * (MAKER if liq == Liquidity.MAKER else TAKER)
        pos[s] = p1
        balance += realized - fee
        counters["oid"] += 1
        counters["event_idx"] += 1
        oid = counters["oid"]
        fills.append(dict(ts_ns=t, event_idx=counters["event_idx"], oid=oid, sym=s, side=int(side),
                          liquidity=int(liq), order_type=int(otype), qty=qty, price=price, fee=fee,
                          realized_pnl=realized, slippage=qty * abs(price - ref),
                          position_after=p1, avg_price_after=avg[s]))
        orders.append(dict(oid=oid, sym=s, order_type=int(otype), side=int(side), tif=0,
                           status=int(OrderStatus.FILLED),
                           reason=int(Reason.LIQUIDATION if liq == Liquidity.LIQUIDATION else Reason.NONE),
                           reduce_only=int(liq == Liquidity.LIQUIDATION), trigger_source=0,
                           created_ts_ns=t - NS_MIN, done_ts_ns=t, qty=qty, filled_qty=qty,
                           avg_fill_price=price, limit_price=np.nan, stop_price=np.nan,
                           oco_group=-1, parent_oid=-1))
        return realized, fee

    def snapshot(t, mark):
        u = pos * (mark - avg)
        eq = balance + float(u.sum())
        gross = float(np.sum(np.abs(pos) * mark))
        mm = MMR * np.abs(pos) * mark
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(pos != 0, mm / (margin + u), 0.0)
        equity.append(dict(ts_ns=t, equity=eq, balance=balance, upnl=float(u.sum()),
                           gross_exposure=gross, margin_used=float(margin.sum()),
                           maint_margin=float(mm.sum()), margin_ratio=float(ratio.max())))

    for m in range(n_min):
        t = T0 + (m + 1) * NS_MIN  # bar end
        mark = px[:, m].copy()
        sub = mark[:, None] * (1 + rng.normal(0, 0.0006, (2, 6)))
        if m in plan:
            s, side, qty, otype, liq = plan[m]
            ref = mark[s]
            price = ref * (1 + int(side) * 0.0002) if liq == Liquidity.TAKER else ref
            fill(t - NS_MIN // 2, s, side, qty, price, otype, liq, ref)
            snapshot(t - NS_MIN // 2, mark)
        if (m + 1) % 480 == 0:  # funding at 08:00, 16:00, 00:00 UTC
            for s in range(2):
                if pos[s] != 0:
                    rate = 0.0001 if m < 1000 else -0.0003
                    pay = -rate * pos[s] * mark[s]
                    balance += pay
                    funding.append(dict(ts_ns=t, sym=s, rate=rate, position=pos[s],
                                        mark_price=mark[s], payment=pay))
        for s in range(2):
            if pos[s] == 0:
                continue
            remaining = margin[s] + pos[s] * (mark[s] - avg[s])
            if remaining > MMR * abs(pos[s]) * mark[s]:
                continue
            q, p_signed, m_s = abs(pos[s]), pos[s], margin[s]
            side = Side.SELL if p_signed > 0 else Side.BUY
            fee = min(LIQ_FEE * q * mark[s], max(remaining, 0.0))
            bankrupt = avg[s] - m_s / p_signed
            close_px = avg[s] - (m_s - fee) / p_signed  # loses exactly the margin, fee included
            r, fee = fill(t, s, side, q, close_px, OrderType.MARKET, Liquidity.LIQUIDATION,
                          mark[s], fee=fee)
            liqs.append(dict(ts_ns=t, sym=s, side=int(side), qty=q, mark_price=mark[s],
                             bankruptcy_price=bankrupt, fill_price=close_px, fee=fee,
                             insurance_fund_change=remaining - fee, realized_pnl=r))
        snapshot(t, mark)
        for s in range(2):
            p = pos[s]
            liq_price = np.nan
            if p != 0:
                liq_price = (p * avg[s] - margin[s]) / (p - MMR * abs(p))
            bars.append(dict(ts_ns=t, sym=s, open=sub[s, 0], high=max(sub[s].max(), mark[s]),
                             low=min(sub[s].min(), mark[s]), close=mark[s],
                             volume=abs(rng.normal(50, 10)), mark=mark[s], position=p,
                             liq_price=liq_price))
    # one cancelled order (the BTC stop that the liquidation cancelled)
    orders.append(dict(oid=counters["oid"] + 1, sym=0, order_type=int(OrderType.STOP_MARKET),
                       side=-1, tif=0, status=int(OrderStatus.CANCELED),
                       reason=int(Reason.LIQUIDATION), reduce_only=1, trigger_source=1,
                       created_ts_ns=T0 + 130 * NS_MIN, done_ts_ns=liqs[0]["ts_ns"] if liqs else 0,
                       qty=0.8, filled_qty=0.0, avg_fill_price=np.nan, limit_price=np.nan,
                       stop_price=58_000.0, oco_group=-1, parent_oid=-1))
    tables = {
        "fills": _frame(FILL_DTYPE, fills),
        "orders": _frame(ORDER_DTYPE, orders),
        "equity": _frame(EQUITY_DTYPE, equity),
        "bars": _frame(BAR_DTYPE, bars),
        "funding": _frame(FUNDING_DTYPE, funding),
        "liquidations": _frame(LIQUIDATION_DTYPE, liqs),
    }
    manifest = {
        "run_id": "feb2026-crash-synthetic",
        "strategy": {"name": "crash-long", "params": {"leverage": 10, "margin": "isolated"}},
        "symbols": SYMBOLS,
        "initial_balance": 10_000.0,
        "settle_currency": "USDT",
        "config": {"sample_interval": "1m"},
        "timings": {"run_s": 0.01},
        "headline": {},
        "metrics": {},
    }
    return Result(manifest, tables)


def make_empty_result(with_equity: bool = True) -> Result:
    """A run that never traded: flat equity (or no rows at all), no fills, bars without liq_price."""
    equity = []
    if with_equity:
        equity = [dict(ts_ns=T0 + i * 15 * NS_MIN, equity=10_000.0, balance=10_000.0, upnl=0.0,
                       gross_exposure=0.0, margin_used=0.0, maint_margin=0.0, margin_ratio=0.0)
                  for i in range(400)]
    tables = {
        "fills": _frame(FILL_DTYPE, []),
        "orders": _frame(ORDER_DTYPE, []),
        "equity": _frame(EQUITY_DTYPE, equity),
        "bars": _frame(BAR_DTYPE, []),
        "funding": _frame(FUNDING_DTYPE, []),
        "liquidations": _frame(LIQUIDATION_DTYPE, []),
    }
    manifest = {"run_id": "flat", "strategy": {"name": "do-nothing", "params": {}},
                "symbols": SYMBOLS, "initial_balance": 10_000.0, "settle_currency": "USDT",
                "config": {}, "timings": {}, "headline": {}, "metrics": {}}
    return Result(manifest, tables)


# ------------------------------------------------------------------------------------------------
# Fixtures
@pytest.fixture(scope="module")
def crash() -> Result:
    return make_crash_result()


@pytest.fixture(scope="module")
def crash_dir(tmp_path_factory, crash):
    return crash.save(tmp_path_factory.mktemp("runs") / "crash")


@pytest.fixture(scope="module")
def written(crash_dir):
    from backtest.report.tearsheet import write_report

    return write_report(crash_dir)


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def _by_gid(fig, gid: str) -> list:
    return fig.findobj(lambda a: a.get_gid() == gid)


def _title(ax) -> str:
    return ax.get_title(loc="left") or ax.get_title()


def _ax_with_title(fig, title: str):
    axes = [ax for ax in fig.axes if _title(ax) == title]
    assert axes, [_title(ax) for ax in fig.axes]
    return axes[0]


# ------------------------------------------------------------------------------------------------
# Figures
def test_every_figure_is_an_agg_figure_with_titles(crash):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from backtest.report.figures import FIGURES

    assert len(FIGURES) == 9
    for name, fn in FIGURES.items():
        fig = fn(crash)
        assert isinstance(fig, Figure), name
        assert isinstance(fig.canvas, FigureCanvasAgg), name
        assert fig.axes, name
        titled = [_title(ax) for ax in fig.axes if _title(ax)]
        assert titled or fig.get_suptitle(), name
        for ax in fig.axes:
            if ax.get_xlabel() == "Time (UTC)":
                assert ax.get_ylabel(), (name, _title(ax))


def test_equity_figure_has_strategy_benchmark_and_liquidation(crash):
    from backtest.report.figures import fig_equity

    fig = fig_equity(crash)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert any(lab.startswith("Strategy (") for lab in labels)
    assert any(lab.startswith("Buy & hold BTCUSDT") for lab in labels)
    liq = _by_gid(fig, "liquidations")
    assert len(liq) == 1 and len(liq[0].get_offsets()) == 1
    assert ax.get_ylabel() == "Equity (USDT)" and ax.get_xlabel() == "Time (UTC)"
    fmt = ax.yaxis.get_major_formatter()
    assert fmt.format_ticks([8000, 9000, 10000]) == ["8,000", "9,000", "10,000"]
    assert fmt.format_ticks([0.5, 1.0, 1.5]) == ["0.5", "1.0", "1.5"]
    # the benchmark starts at the initial balance
    bench = _by_gid(fig, "benchmark")[0]
    assert bench.get_ydata()[0] == pytest.approx(10_000.0)


def test_price_figure_marks_every_fill_and_the_liquidation(crash):
    from backtest.report.figures import fig_prices

    fig = fig_prices(crash)
    btc = _ax_with_title(fig, "BTCUSDT")
    eth = _ax_with_title(fig, "ETHUSDT")
    n_markers = sum(len(c.get_offsets()) for c in fig.findobj(
        lambda a: str(a.get_gid()).startswith("fills-")))
    assert n_markers == crash.fills.height
    liq = [c for c in btc.collections if c.get_gid() == "fills-liquidation"]
    assert len(liq) == 1
    liq_px = crash.liquidations["fill_price"][0]
    assert liq[0].get_offsets()[0][1] == pytest.approx(liq_px)
    assert [c for c in eth.collections if c.get_gid() == "fills-stop"]
    assert [c for c in btc.collections if c.get_gid() == "fills-take_profit"]
    assert [line for line in btc.get_lines() if line.get_gid() == "liq-price"]
    assert btc.get_ylabel() == "Price (USDT)"
    assert any("liquidated" in t for t in _texts(fig))


def test_price_figure_keeps_prices_readable_and_says_what_is_left_out(crash):
    """#14.21: a far liquidation price is clipped (marked on the edge), symbols beyond the limit
    are named in a note."""
    from backtest.report.figures import fig_prices

    bars = crash.bars
    far = bars.with_columns(pl.when(pl.col("symbol") == "BTCUSDT").then(pl.lit(1.0))
                            .otherwise(pl.col("liq_price")).alias("liq_price"))
    res = Result(manifest=crash.manifest, tables={**crash.tables, "bars": far})
    btc = _ax_with_title(fig_prices(res), "BTCUSDT")
    lo = bars.filter(pl.col("symbol") == "BTCUSDT")["low"].min()
    assert btc.get_ylim()[0] > 0.8 * lo  # the price axis is not squashed down to 1.0
    off = [c for c in btc.collections if c.get_gid() == "liq-offscale"]
    assert len(off) == 1 and "off the scale (1)" in off[0].get_label()
    fig = fig_prices(crash, max_symbols=1)
    note = [t.get_text() for t in fig.texts if t.get_gid() == "prices-left-out"]
    assert note == ["Showing 1 of 2 traded symbols; not shown: ETHUSDT "
                    "(fig_prices(result, symbols=[...]) draws them)"]
    assert not [t for t in fig_prices(crash).texts if t.get_gid() == "prices-left-out"]


def test_position_and_margin_figures(crash):
    from backtest.report.figures import fig_margin, fig_position

    fig = fig_position(crash)
    assert {"position-BTCUSDT", "position-ETHUSDT", "leverage"} <= {
        a.get_gid() for a in fig.findobj(lambda a: a.get_gid() is not None)}
    assert any(t.startswith("max ") and t.endswith("×") for t in _texts(fig))
    assert len(_by_gid(fig, "liquidation-line")) == 2  # one per panel
    fig = fig_margin(crash)
    ratio = _by_gid(fig, "margin-ratio")[0]
    assert np.nanmax(ratio.get_ydata()) == pytest.approx(crash.equity["margin_ratio"].max(), rel=1e-9)
    ax = fig.axes[0]
    assert any(line.get_label().startswith("Liquidation threshold") for line in ax.get_lines())
    assert _by_gid(fig, "liq-distance-BTCUSDT") and _by_gid(fig, "liq-distance-ETHUSDT")
    assert any(t.startswith("min ") for t in _texts(fig))


def test_cost_waterfall_goes_from_gross_to_net(crash):
    from backtest import metrics as M
    from backtest.report.figures import fig_costs

    fig = fig_costs(crash)
    ax = fig.axes[0]
    c = M.cost_attribution(crash)
    bars = ax.patches
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "PnL before costs" and labels[-1] == "Net PnL"
    assert {"Trading fees", "Liquidation fees", "Funding"} <= set(labels)
    assert {"Latency / gaps", "Spread", "Impact"} & set(labels)  # slippage in its parts (R4.5)
    assert "Interest" not in labels  # no loans in this run
    assert bars[0].get_height() == pytest.approx(c["gross"])
    assert bars[-1].get_height() == pytest.approx(c["net"])
    # the steps chain: each floating bar starts where the previous ended
    level = c["gross"]
    for rect in bars[1:-1]:
        assert rect.get_y() == pytest.approx(level)
        level += rect.get_height()
    assert level == pytest.approx(c["net"], abs=1e-6)
    assert ax.get_ylabel() == "PnL (USDT)"


def test_trade_distribution_heatmap_and_rolling_sharpe(crash):
    from backtest.report.figures import fig_return_heatmap, fig_rolling_sharpe, fig_trade_returns

    fig = fig_trade_returns(crash)
    star = _by_gid(fig, "liquidated-trades")
    assert len(star) == 1 and len(star[0].get_offsets()) == 1
    assert fig.axes[0].get_xlabel().startswith("Trade return")
    fig = fig_return_heatmap(crash)
    im = _by_gid(fig, "heatmap")[0]
    data = im.get_array()
    assert data.shape == (7, 24)
    assert int((~np.ma.getmaskarray(data)).sum()) == 48  # 48 hours: Thu and Fri, every hour
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][3] == "Thu"
    fig = fig_rolling_sharpe(crash)
    line = _by_gid(fig, "rolling-sharpe")[0]
    assert np.isfinite(line.get_ydata()).sum() >= 20
    assert "24 hours window" in _title(fig.axes[0])


@pytest.mark.parametrize("with_equity", [True, False])
def test_figures_survive_empty_tables(with_equity, tmp_path):
    import io

    from backtest.report.figures import FIGURES, fig_summary

    r = make_empty_result(with_equity)
    for name, fn in {**FIGURES, "summary": fig_summary}.items():
        fig = fn(r)
        fig.savefig(io.BytesIO(), format="png", dpi=40)
        if name in ("prices", "margin", "trade_returns", "costs") or not with_equity:
            if name != "summary":
                assert _by_gid(fig, "empty-note"), name
    # a run folder with no tables at all, not even a manifest beyond the basics
    bare = Result({"run_id": "bare"}, {})
    for name, fn in FIGURES.items():
        fn(bare).savefig(io.BytesIO(), format="png", dpi=40)


def test_half_empty_panels_keep_the_shared_time_axis(crash):
    """Margin ratio but no liquidation prices, leverage but no position column: one panel is an
    empty note, the other keeps its dates (an empty panel must not strip a shared axis' ticks)."""
    import io

    from backtest.report.figures import fig_margin, fig_position

    bars = crash.bars.with_columns(liq_price=pl.lit(float("nan"))).drop("position")
    r = Result(crash.manifest, {**crash.tables, "bars": bars, "fills": crash.fills.head(0)})
    for fn in (fig_margin, fig_position):
        fig = fn(r)
        fig.savefig(io.BytesIO(), format="png", dpi=40)
        assert len(_by_gid(fig, "empty-note")) == 1, fn.__name__
        live = [ax for ax in fig.axes if not _by_gid(ax, "empty-note")][0]
        assert any(t.get_text() for t in live.get_xticklabels()), fn.__name__


def test_figures_accept_a_run_folder(crash_dir):
    from backtest.report.figures import fig_equity

    assert _by_gid(fig_equity(crash_dir), "equity")


# ------------------------------------------------------------------------------------------------
# Decimation
def test_decimation_keeps_global_extremes_markers_and_gaps():
    from backtest.report import decimate

    rng = np.random.default_rng(0)
    n = 1_000_003
    y = np.cumsum(rng.normal(size=n))
    y[123_457] = y.max() + 50  # a spike
    y[654_321] = y.min() - 50  # a crash wick
    y[400_000:400_050] = np.nan  # a gap
    x = np.arange(n, dtype=np.int64) * 1_000_000
    keep = np.array([5, 77_777, 999_999])
    xd, yd = decimate.minmax(x, y, 2000, keep=keep)
    assert len(xd) <= 4 * 2000 + 10
    assert np.nanmax(yd) == np.nanmax(y) and np.nanmin(yd) == np.nanmin(y)
    assert set(x[keep]) <= set(xd) and xd[0] == x[0] and xd[-1] == x[-1]
    assert np.all(np.diff(xd) > 0)  # still in time order
    idx = decimate.minmax_indices(y, 2000)
    # every bucket's extremes survive: the envelope of any bucket-aligned window is exact
    k = -(-n // 2000)
    for b in (0, 61, 399, 1999):
        seg = y[b * k:(b + 1) * k]
        sel = y[idx[(idx >= b * k) & (idx < (b + 1) * k)]]
        if np.isfinite(seg).any():
            assert np.nanmax(sel) == np.nanmax(seg) and np.nanmin(sel) == np.nanmin(seg)
    # short series are untouched
    xs, ys = decimate.minmax(x[:100], y[:100])
    assert len(xs) == 100


def test_decimation_of_ohlc_and_all_nan_buckets():
    from backtest.report import decimate

    n = 50_000
    ts = np.arange(n, dtype=np.int64)
    close = np.sin(np.arange(n) / 500.0) * 100 + 1000
    high, low = close + 1, close - 1
    high[31_337], low[4_242] = 5_000.0, -5.0
    low[10_000:10_200] = np.nan
    t2, o2, h2, l2, c2 = decimate.ohlc(ts, close, high, low, close, 2000)
    assert len(t2) <= 2000 + 1
    assert h2.max() == 5_000.0 and np.nanmin(l2) == -5.0
    assert c2[-1] == close[-1] and o2[0] == close[0] and t2[-1] == ts[-1]
    y = np.full(100_000, np.nan)
    y[500] = 1.0
    idx = decimate.minmax_indices(y, 100)
    assert 500 in idx and np.isnan(y[idx]).any()


def test_decimation_is_fast_on_long_series():
    import time

    from backtest.report import decimate

    n = 10_000_000
    y = np.cumsum(np.random.default_rng(1).normal(size=n))
    t = time.perf_counter()
    x2, y2 = decimate.minmax(np.arange(n, dtype=np.int64), y)
    assert time.perf_counter() - t < 5.0  # ~0.1 s here; 100M rows scale linearly
    assert y2.max() == y.max() and y2.min() == y.min() and len(x2) <= 8002


def test_a_long_run_draws_a_bounded_number_of_points():
    import time

    from backtest.report.figures import fig_drawdown, fig_equity

    n = 2_000_000
    ts = T0 + np.arange(n, dtype=np.int64) * 100_000_000  # 10 samples/s over 2.3 days
    eq = 10_000 + np.cumsum(np.random.default_rng(2).normal(size=n))
    eq[1_234_567] = eq.min() - 500
    r = Result({"initial_balance": 10_000.0, "settle_currency": "USDT"},
               {"equity": pl.DataFrame({"ts_ns": ts, "equity": eq})})
    t = time.perf_counter()
    fig = fig_equity(r)
    fig.savefig(__import__("io").BytesIO(), format="png", dpi=60)
    fig_drawdown(r)
    assert time.perf_counter() - t < 10.0
    line = _by_gid(fig, "equity")[0]
    assert len(line.get_ydata()) <= 8002 and line.get_ydata().min() == eq.min()


# ------------------------------------------------------------------------------------------------
# Tear sheet
def test_write_report_writes_png_pdf_html(crash_dir, written):
    from backtest.report.figures import FIGURES

    out = crash_dir / "report"
    assert set(written) == {f"png:{n}" for n in ["summary", *FIGURES]} | {"pdf", "html"}
    for name in ["summary", *FIGURES]:
        png = (out / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    pdf = (out / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) == 1 + len(FIGURES)
    page = (out / "report.html").read_text()
    imgs = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(imgs) == len(FIGURES)
    assert base64.b64decode(imgs[0])[:4] == b"\x89PNG"
    assert "<caption>Risk</caption>" in page and "Max drawdown" in page
    assert "Sharpe / Sortino" in page and "feb2026-crash-synthetic" in page
    assert "<th>Liquidated</th>" in page and "class='liq'" in page
    assert "http://" not in page and "https://" not in page  # self-contained
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_write_report_subset_and_bad_format(crash, tmp_path):
    from backtest.errors import ConfigError
    from backtest.report.tearsheet import write_report

    d = crash.save(tmp_path / "r")
    w = write_report(d, formats="html")
    assert list(w) == ["html"] and sorted(p.name for p in (d / "report").iterdir()) == ["report.html"]
    with pytest.raises(ConfigError, match="gif"):
        write_report(d, formats=("png", "gif"))


def test_write_report_on_an_empty_run(tmp_path):
    from backtest.report.tearsheet import write_report

    d = make_empty_result(with_equity=False).save(tmp_path / "void")
    w = write_report(d, formats=("pdf", "html"))
    assert w["pdf"].stat().st_size > 1000
    assert "No trades in this run" in w["html"].read_text()


def test_compare_runs(crash_dir, tmp_path):
    from backtest.report.tearsheet import compare_runs

    other = make_crash_result(hours=30, seed=11)
    manifest = other.manifest_copy()
    manifest["run_id"] = "shorter"
    manifest["strategy"]["params"]["leverage"] = 5
    d2 = other.replace(manifest=manifest).save(tmp_path / "shorter")
    d3 = make_empty_result().save(tmp_path / "flat")
    res = compare_runs([crash_dir, d2, d3], tmp_path / "cmp")
    table = res["table"]
    assert isinstance(table, pl.DataFrame)
    # strategy name and the parameters that differ (#14.21), not run ids
    assert table.columns == ["metric", "crash-long leverage=10", "crash-long leverage=5", "do-nothing"]
    row = table.filter(pl.col("metric") == "n_liquidations").row(0)
    assert row[1] == 1.0 and row[3] == 0.0
    lines = [line for line in res["figure"].axes[0].get_lines()
             if str(line.get_gid()).startswith("compare-")]
    assert len(lines) == 3 and all(line.get_ydata()[0] == 1.0 for line in lines)
    assert res["png"].read_bytes()[:4] == b"\x89PNG"
    md = res["md"].read_text()
    assert md.startswith("| metric | crash-long leverage=10 | crash-long leverage=5 | do-nothing |")
    assert "| max_drawdown |" in md
    assert "data:image/png;base64," in res["html"].read_text()


def test_labels_of_runs_with_the_same_run_id_stay_unique(tmp_path):
    from backtest.errors import ConfigError
    from backtest.report.tearsheet import compare_runs

    a = make_empty_result().save(tmp_path / "a")
    b = make_empty_result().save(tmp_path / "b")
    res = compare_runs([a, b], tmp_path / "cmp")
    assert res["table"].columns == ["metric", "do-nothing (a)", "do-nothing (b)"]
    res = compare_runs([a, b], tmp_path / "cmp", labels=["base", "alt"])
    assert res["table"].columns == ["metric", "base", "alt"]
    with pytest.raises(ConfigError, match="--label: 1 label"):
        compare_runs([a, b], tmp_path / "cmp", labels=["base"])


# ------------------------------------------------------------------------------------------------
# CLI
@pytest.fixture
def cli_group():
    import click

    from backtest.cli.report import register

    @click.group()
    def group():
        pass

    register(group)
    return group


def test_cli_report_and_compare(cli_group, crash, tmp_path):
    from click.testing import CliRunner

    d = crash.save(tmp_path / "r1")
    runner = CliRunner()
    res = runner.invoke(cli_group, ["report", str(d), "--format", "png,pdf"])
    assert res.exit_code == 0, res.output
    assert "report.pdf" in res.output and "equity.png" in res.output
    assert (d / "report" / "report.pdf").is_file() and not (d / "report" / "report.html").exists()
    res = runner.invoke(cli_group, ["compare", str(d), str(d), "--out", str(tmp_path / "c"), "-l", "x",
                                    "-l", "y"])
    assert res.exit_code == 0, res.output
    assert "compare.png" in res.output and (tmp_path / "c" / "compare.md").is_file()
    assert "compared 2 run(s): x, y" in res.output
    res = runner.invoke(cli_group, ["report", "--help"])
    assert res.exit_code == 0 and "Examples" in res.output and "--format" in res.output
    res = runner.invoke(cli_group, ["compare", "--help"])
    assert res.exit_code == 0 and "--out" in res.output


def test_cli_errors_are_one_line(tmp_path):
    from click.testing import CliRunner

    from backtest.cli import cli

    runner = CliRunner()
    res = runner.invoke(cli, ["report", str(tmp_path / "missing")])
    assert res.exit_code == 1
    assert res.output.strip().startswith("error:") and "Traceback" not in res.output
    d = make_empty_result().save(tmp_path / "r")
    res = runner.invoke(cli, ["report", str(d), "--format", "gif"])
    assert res.exit_code == 2 and "gif" in res.output


# ------------------------------------------------------------------------------------------------
# Layering: report/ draws from a saved result, never through pyplot or the engine
def test_report_layer_imports():
    import ast
    from pathlib import Path

    import backtest.report as pkg

    for path in Path(pkg.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            for name in names:
                assert "pyplot" not in name and "numba" not in name, (path.name, name)
                assert "click" not in name, (path.name, name)
                if "core" in name:
                    assert name.endswith("core.schema"), (path.name, name)  # enums only


def test_report_does_not_load_pyplot_or_numba(crash_dir):
    import subprocess
    import sys

    code = ("import sys; from backtest.report.tearsheet import write_report; "
            f"write_report({str(crash_dir)!r}, formats=('png',)); "
            "print('matplotlib.pyplot' in sys.modules, 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
