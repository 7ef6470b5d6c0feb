"""Performance, risk, cost and liquidation metrics of a run, from its result tables.

Every metric is a small pure function of numpy arrays or polars frames; :func:`compute_metrics`
puts them together into one flat, JSON-friendly dict. The formulas, units and conventions are
written down in ``docs/metrics.md``; the short version:

* Crypto trades 24/7: a year is 365 days of 24 hours (``PERIODS_PER_YEAR``).
* Return statistics (volatility, Sharpe, Sortino, rolling Sharpe) use the equity series resampled
  to a fixed UTC calendar grid (last value at or before each boundary): daily for runs of at least
  ``DAILY_MIN_DAYS`` days, hourly otherwise, annualised with sqrt(365) resp. sqrt(365*24).
* Drawdown, its duration, time under water, exposure and leverage use the raw (unresampled)
  series, so that intraday extremes of a crash are not smoothed away.
* Risk-free rate 0; drawdowns are negative fractions; costs are positive numbers (a cost of 5 =
  5 units of the settlement currency lost); funding is signed as the account sees it.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import polars as pl

from .core.schema import Liquidity
from .result import Result, collect_small
from .trades import round_trips

NS_PER_S = 1_000_000_000
NS_PER_HOUR = 3600 * NS_PER_S
NS_PER_DAY = 24 * NS_PER_HOUR
DAYS_PER_YEAR = 365
PERIODS_PER_YEAR = {"1d": DAYS_PER_YEAR, "1h": DAYS_PER_YEAR * 24}
PERIOD_NS = {"1d": NS_PER_DAY, "1h": NS_PER_HOUR}
DAILY_MIN_DAYS = 30  # below this many days of data, return statistics use hourly returns

NAN = float("nan")


# --------------------------------------------------------------------------------------------
# Inputs
def unpack(result_like) -> tuple[dict, dict[str, pl.DataFrame]]:
    """(manifest, tables) from a Result, a run folder path, or a mapping.

    A mapping may be ``{"manifest": ..., "tables": ...}`` or simply ``{table_name: DataFrame}``.
    """
    if isinstance(result_like, (str, Path)):
        result_like = Result.load(Path(result_like))
    if hasattr(result_like, "tables") and hasattr(result_like, "manifest"):
        return dict(result_like.manifest or {}), dict(result_like.tables or {})
    if isinstance(result_like, Mapping):
        if "tables" in result_like:
            return dict(result_like.get("manifest") or {}), dict(result_like["tables"])
        return {}, {k: v for k, v in result_like.items() if isinstance(v, pl.DataFrame)}
    raise TypeError(f"cannot read metrics from a {type(result_like).__name__}")


def table(tables: Mapping, name: str) -> pl.DataFrame:
    """The named table, or an empty frame when it is absent or None."""
    df = tables.get(name)
    return df if isinstance(df, pl.DataFrame) else pl.DataFrame()


def by_time(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` sorted by ts_ns (stable); no copy when it already is (the engine writes it so)."""
    if df.height < 2 or df["ts_ns"].is_sorted():
        return df
    return df.with_row_index("_r").sort(["ts_ns", "_r"]).drop("_r")


def equity_arrays(equity: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(ts_ns int64, equity float64) sorted by time (stable), non-finite equity rows dropped."""
    if equity.height == 0 or "equity" not in equity.columns:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    equity = by_time(equity)
    ts = equity["ts_ns"].to_numpy().astype(np.int64, copy=False)
    eq = equity["equity"].to_numpy().astype(np.float64, copy=False)
    ok = np.isfinite(eq)
    return (ts, eq) if ok.all() else (ts[ok], eq[ok])


# --------------------------------------------------------------------------------------------
# Return series
def choose_frequency(span_ns: int) -> str:
    """'1d' when the run spans at least DAILY_MIN_DAYS days, else '1h'."""
    return "1d" if span_ns >= DAILY_MIN_DAYS * NS_PER_DAY else "1h"


def resample_last(ts: np.ndarray, values: np.ndarray, period_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample a step series on a UTC calendar grid.

    The grid is the first timestamp, every multiple of ``period_ns`` strictly inside the run, and
    the last timestamp; each point takes the last value at or before it. The first and the last
    interval can therefore be partial periods.
    """
    if len(ts) == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    t0, t1 = int(ts[0]), int(ts[-1])
    first_boundary = (t0 // period_ns + 1) * period_ns
    inner = np.arange(first_boundary, t1, period_ns, dtype=np.int64)
    grid = np.concatenate([[t0], inner, [t1]]) if t1 > t0 else np.array([t0], np.int64)
    idx = np.searchsorted(ts, grid, side="right") - 1
    return grid.astype(np.int64), values[idx]


def period_returns(ts: np.ndarray, eq: np.ndarray, freq: str,
                   start: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(start_ts_ns of each interval, simple return) on the calendar grid of ``freq``.

    ``start``: the initial equity, used as the value at ts[0] (the first grid point).
    """
    grid, vals = resample_last(ts, eq, PERIOD_NS[freq])
    if start is not None and len(vals) and np.isfinite(start):
        vals = vals.copy()
        vals[0] = start
    if len(vals) < 2:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    prev = vals[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = vals[1:] / prev - 1.0
    ok = (prev > 0) & np.isfinite(r)
    return grid[:-1][ok], r[ok]


# --------------------------------------------------------------------------------------------
# Return and risk statistics
def total_return(initial: float, final: float) -> float:
    return final / initial - 1.0 if initial and initial > 0 else NAN


def annualized_return(total: float, span_ns: int) -> float:
    """Compound annual growth rate (1 + total)^(365 days / span) - 1 (inf on overflow)."""
    if not np.isfinite(total) or span_ns <= 0:
        return NAN
    if total <= -1.0:
        return -1.0
    try:
        return math.expm1(math.log1p(total) * DAYS_PER_YEAR * NS_PER_DAY / span_ns)
    except OverflowError:
        return math.inf


def volatility(r: np.ndarray, periods_per_year: float) -> float:
    """Sample standard deviation (ddof=1) of period returns times sqrt(periods per year)."""
    return float(np.std(r, ddof=1) * math.sqrt(periods_per_year)) if len(r) >= 2 else NAN


def sharpe(r: np.ndarray, periods_per_year: float) -> float:
    """mean(r) / std(r, ddof=1) * sqrt(periods per year); risk-free rate 0."""
    if len(r) < 2:
        return NAN
    sd = float(np.std(r, ddof=1))
    return float(np.mean(r) / sd * math.sqrt(periods_per_year)) if sd > 0 else NAN


def sortino(r: np.ndarray, periods_per_year: float) -> float:
    """mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(periods per year); target 0, over all periods."""
    if len(r) < 2:
        return NAN
    dd = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if dd == 0:
        return math.inf if np.mean(r) > 0 else NAN
    return float(np.mean(r) / dd * math.sqrt(periods_per_year))


def calmar(annual_return: float, max_dd: float) -> float:
    """Annualised return / |max drawdown|."""
    return annual_return / abs(max_dd) if max_dd and np.isfinite(max_dd) else NAN


def running_peak(eq: np.ndarray, start: float | None = None) -> np.ndarray:
    """max(start, eq[0..t]) for every t (``start``: the initial equity, a peak before eq[0])."""
    peak = np.maximum.accumulate(eq)
    if start is not None and np.isfinite(start):
        np.maximum(peak, start, out=peak)
    return peak


def drawdown_series(eq: np.ndarray, start: float | None = None) -> np.ndarray:
    """eq / running peak - 1 (<= 0); 0 while the peak is not positive. One array allocated."""
    if len(eq) == 0:
        return np.empty(0, np.float64)
    dd = running_peak(np.asarray(eq, dtype=np.float64), start)
    flat = int(np.searchsorted(dd, 0.0, side="right"))  # the peak never falls: a prefix <= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(eq, dd, out=dd)
    dd -= 1.0
    dd[:flat] = 0.0
    return dd


def max_drawdown(eq: np.ndarray, start: float | None = None) -> float:
    """Most negative drawdown as a fraction (e.g. -0.35); 0.0 when the equity never fell."""
    return float(drawdown_series(eq, start).min()) if len(eq) else NAN


def max_drawdown_any_event(manifest: dict) -> float | None:
    """The deepest fall from the running equity peak at any event, as the kernel tracked it
    (`headline.max_drawdown_any_event`, a negative fraction); None for runs saved without it."""
    v = (manifest.get("headline") or {}).get("max_drawdown_any_event")
    return float(v) if v is not None and np.isfinite(v) else None


def drawdown_info(ts: np.ndarray, eq: np.ndarray, start: float | None = None, *,
                  longest: bool = True, dd: np.ndarray | None = None) -> dict:
    """Peak, trough and recovery of the deepest drawdown, and the longest time under water.

    A spell under water starts at the last running high and ends at the first sample back at (or
    above) that high, or at the last sample if the equity never recovered. ``start`` is the initial
    equity, taken as a sample at ts[0] just before eq[0]. ``dd``: drawdown_series(eq, start) if
    already computed. A sample is at a running high exactly when its drawdown is 0 (x / x == 1).
    """
    out = {"max_drawdown": NAN, "max_drawdown_peak_ts_ns": None, "max_drawdown_trough_ts_ns": None,
           "max_drawdown_recovery_ts_ns": None, "max_drawdown_duration_s": NAN,
           "longest_drawdown_s": NAN}
    n = len(eq)
    if n == 0:
        return out
    if dd is None:
        dd = drawdown_series(eq, start)
    trough = int(np.argmin(dd))
    out["max_drawdown"] = float(dd[trough])
    if out["max_drawdown"] < 0:
        back = dd[trough::-1] >= 0  # the last running high before the trough
        p_ts = int(ts[trough - int(np.argmax(back))]) if back.any() else int(ts[0])  # else: start
        after = dd[trough:] >= 0  # the first sample back at (or above) that high
        rec = trough + int(np.argmax(after)) if after.any() else None
        end_ts = int(ts[rec]) if rec is not None else int(ts[-1])
        out.update(max_drawdown_peak_ts_ns=p_ts, max_drawdown_trough_ts_ns=int(ts[trough]),
                   max_drawdown_recovery_ts_ns=end_ts if rec is not None else None,
                   max_drawdown_duration_s=(end_ts - p_ts) / NS_PER_S)
    else:
        out["max_drawdown_duration_s"] = 0.0
    if longest:
        at_peak = dd >= 0
        highs = np.flatnonzero(at_peak)
        hts = ts[highs]
        if len(highs) == 0 or highs[0] != 0:  # eq[0] below the start: the start is a high
            highs = np.concatenate([[-1], highs])
            hts = np.concatenate([[ts[0]], hts])
        ends = np.append(highs[1:], n - 1)
        under = (ends - highs > 1) | ~at_peak[ends]  # at least one sample under water
        spans = ts[ends] - hts
        out["longest_drawdown_s"] = float(spans[under].max()) / NS_PER_S if under.any() else 0.0
    return out


def time_under_water(ts: np.ndarray, eq: np.ndarray, start: float | None = None, *,
                     dd: np.ndarray | None = None) -> float:
    """Fraction of the run's time spent below the running peak (equity held until next sample)."""
    if len(ts) < 2 or ts[-1] == ts[0]:
        return 0.0 if len(ts) else NAN
    if dd is None:
        dd = drawdown_series(eq, start)
    under = np.add.reduce(np.diff(ts), where=dd[:-1] < 0)
    return float(under / (ts[-1] - ts[0]))


def time_weighted_mean(ts: np.ndarray, values: np.ndarray) -> float:
    """Mean of a step series weighted by how long each value held (plain mean if no span)."""
    if len(values) == 0:
        return NAN
    if len(ts) < 2 or ts[-1] == ts[0]:
        return float(np.mean(values))
    dt = np.diff(ts).astype(np.float64)
    return float(np.sum(values[:-1] * dt) / dt.sum())


# --------------------------------------------------------------------------------------------
# Trades, exposure, turnover
def trade_stats(trades: pl.DataFrame) -> dict:
    """Win rate, profit factor, expectancy, average win/loss over closed trades (net PnL)."""
    # a mask of the closed trades: filtering the frame costs more
    closed = ~trades["open"] if trades.height else pl.Series(dtype=pl.Boolean)
    n = int(closed.sum())
    n_open = trades.height - n
    out = {"n_trades": n, "n_open_trades": n_open, "win_rate": NAN, "profit_factor": NAN,
           "expectancy": NAN, "avg_win": NAN, "avg_loss": NAN, "best_trade": NAN,
           "worst_trade": NAN, "avg_trade_return": NAN, "n_liquidated_trades": 0}
    if n == 0:
        return out
    pnl = trades["net_pnl"].filter(closed).to_numpy().astype(np.float64)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    gw, gl = float(wins.sum()), float(-losses.sum())
    out.update(
        win_rate=len(wins) / n,
        profit_factor=(gw / gl) if gl > 0 else (math.inf if gw > 0 else NAN),
        expectancy=float(pnl.mean()),
        avg_win=float(wins.mean()) if len(wins) else NAN,
        avg_loss=float(losses.mean()) if len(losses) else NAN,
        best_trade=float(pnl.max()),
        worst_trade=float(pnl.min()),
        avg_trade_return=float(np.nanmean(trades["return_pct"].filter(closed).to_numpy())),
        n_liquidated_trades=int(trades["liquidated"].filter(closed).sum()),
    )
    return out


def open_symbols_series(fills: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(ts_ns, number of symbols with a non-zero position after each fill), in time order."""
    if fills.height == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    keys = ["ts_ns"] + (["event_idx"] if "event_idx" in fills.columns else [])
    f = collect_small(fills.lazy().select([*keys, "sym", "position_after", "qty"]).with_row_index("_r")
         .sort([*keys, "_r"])
         .with_columns(is_open=pl.col("position_after").abs()
                       > 1e-9 * pl.max_horizontal(pl.lit(1.0), pl.col("qty").abs()))
         .with_columns(was_open=pl.col("is_open").shift(1).over("sym").fill_null(False))
         .with_columns(n_open=(pl.col("is_open").cast(pl.Int64)
                               - pl.col("was_open").cast(pl.Int64)).cum_sum()))
    return f["ts_ns"].to_numpy().astype(np.int64), f["n_open"].to_numpy()


def exposure(fills: pl.DataFrame, t0: int, t1: int) -> float:
    """Fraction of [t0, t1] with at least one open position (positions from the fills)."""
    if t1 <= t0:
        return NAN
    ts, n_open = open_symbols_series(fills)
    if len(ts) == 0:
        return 0.0
    starts = np.clip(ts, t0, t1)
    ends = np.clip(np.append(ts[1:], max(t1, int(ts[-1]))), t0, t1)
    held = (ends - starts)[n_open > 0].astype(np.float64).sum()
    return float(held / (t1 - t0))


def traded_notional(fills: pl.DataFrame) -> float:
    """Sum of |qty * price| over fills (quote currency, linear-contract notional)."""
    if fills.height == 0:
        return 0.0
    return float((fills["qty"].abs() * fills["price"].abs()).sum())


def _sum(df: pl.DataFrame, col: str) -> float:
    if df.height == 0 or col not in df.columns:
        return 0.0
    return _sum_series(df[col])


def _sum_series(s: pl.Series) -> float:
    """Sum skipping NaN and null (0.0 when nothing is left). fill_nan is a polars expression,
    0.2 ms even on a few rows, so it runs only on a float column that holds a NaN (or a null,
    which to_numpy also shows as NaN)."""
    if s.dtype.is_float() and np.isnan(s.to_numpy()).any():
        s = s.fill_nan(None)
    v = s.sum()
    return float(v) if v is not None else 0.0


# --------------------------------------------------------------------------------------------
# Costs, carry, liquidations, leverage
def funding_stats(funding: pl.DataFrame) -> dict:
    """Net funding (+ received), and the paid / received legs as positive amounts."""
    if funding.height == 0 or "payment" not in funding.columns:
        return {"funding_net": 0.0, "funding_paid": 0.0, "funding_received": 0.0,
                "n_funding_payments": 0}
    p = funding["payment"].fill_nan(0.0).to_numpy()
    return {"funding_net": float(p.sum()), "funding_paid": float(-p[p < 0].sum()),
            "funding_received": float(p[p > 0].sum()), "n_funding_payments": int(len(p))}


def loan_stats(loans: pl.DataFrame) -> dict:
    """Loan interest (debt increase at 'interest' events) and liquidation penalties."""
    out = {"loan_interest": 0.0, "loan_penalties": 0.0, "n_margin_calls": 0,
           "n_loan_liquidations": 0}
    if loans.height == 0 or "event" not in loans.columns:
        return out
    keys = ["ts_ns"] if "loan_id" not in loans.columns else ["loan_id", "ts_ns"]
    l = loans.with_row_index("_r").sort([*keys, "_r"])
    if "interest" in l.columns:  # the engine writes the interest accrued since the previous row
        out["loan_interest"] = _sum(l, "interest")
    elif "debt" in l.columns:
        over = "loan_id" if "loan_id" in l.columns else None
        prev = pl.col("debt").shift(1)
        prev = prev.over(over) if over else prev
        l = l.with_columns(delta=(pl.col("debt") - prev).fill_null(0.0))
        out["loan_interest"] = float(l.filter(pl.col("event") == "interest")["delta"]
                                     .fill_nan(0.0).sum())
    out["loan_penalties"] = _sum(l, "penalty")
    out["n_margin_calls"] = int((l["event"] == "margin_call").sum())
    out["n_loan_liquidations"] = int((l["event"] == "liquidation").sum())
    return out


def liquidation_stats(liquidations: pl.DataFrame, fills: pl.DataFrame) -> dict:
    """Count of forced closes and their loss: -(realised PnL) + liquidation fee, summed.

    Uses the liquidations table; without one, the fills with liquidity LIQUIDATION.
    """
    if liquidations.height:
        return {"n_liquidations": liquidations.height,
                "liquidation_loss": -_sum(liquidations, "realized_pnl") + _sum(liquidations, "fee"),
                "liquidation_fees": _sum(liquidations, "fee")}
    if fills.height == 0:
        return {"n_liquidations": 0, "liquidation_loss": 0.0, "liquidation_fees": 0.0}
    is_liq = fills["liquidity"] == int(Liquidity.LIQUIDATION)
    fee = _sum_series(fills["fee"].filter(is_liq)) if "fee" in fills.columns else 0.0
    pnl = _sum_series(fills["realized_pnl"].filter(is_liq)) if "realized_pnl" in fills.columns else 0.0
    return {"n_liquidations": int(is_liq.sum()), "liquidation_loss": -pnl + fee, "liquidation_fees": fee}


def liq_distance(bars: pl.DataFrame) -> pl.DataFrame:
    """Per bar with a liquidation price: ts_ns, symbol, distance = |mark - liq_price| / mark."""
    cols = {"ts_ns": pl.Int64, "symbol": pl.Utf8, "distance": pl.Float64}
    if bars.height == 0 or "liq_price" not in bars.columns:
        return pl.DataFrame(schema=cols)
    sym = pl.col("symbol") if "symbol" in bars.columns else pl.col("sym").cast(pl.Utf8)
    return collect_small(bars.lazy().select(pl.col("ts_ns"), sym.alias("symbol"),
                                            ((pl.col("mark") - pl.col("liq_price")).abs()
                                             / pl.col("mark")).alias("distance"))
                         .filter(pl.col("distance").is_finite()))


def min_liq_distance(bars: pl.DataFrame) -> dict:
    d = liq_distance(bars)
    if d.height == 0:
        return {"min_liq_distance": NAN, "min_liq_distance_ts_ns": None,
                "min_liq_distance_symbol": None}
    row = d.row(int(d["distance"].arg_min()), named=True)
    return {"min_liq_distance": float(row["distance"]), "min_liq_distance_ts_ns": int(row["ts_ns"]),
            "min_liq_distance_symbol": row["symbol"]}


def leverage_series(equity: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(ts_ns, gross_exposure / equity) where equity > 0."""
    if equity.height == 0 or "gross_exposure" not in equity.columns:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    e = by_time(equity)
    ts = e["ts_ns"].to_numpy().astype(np.int64, copy=False)
    eq = e["equity"].to_numpy().astype(np.float64, copy=False)
    gross = e["gross_exposure"].to_numpy().astype(np.float64, copy=False)
    ok = eq > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        lev = gross / eq
    return (ts, lev) if ok.all() else (ts[ok], lev[ok])


def max_leverage(equity: pl.DataFrame) -> float:
    """Max over equity samples (with equity > 0) of gross_exposure / equity."""
    _, lev = leverage_series(equity)
    lev = lev[np.isfinite(lev)]
    return float(lev.max()) if len(lev) else NAN


def initial_equity(manifest: Mapping, eq: np.ndarray) -> float:
    ib = manifest.get("initial_balance")
    try:
        if ib is not None and float(ib) > 0:
            return float(ib)
    except (TypeError, ValueError):
        pass
    return float(eq[0]) if len(eq) else NAN


COST_PARTS = ("cost_drift", "cost_spread", "cost_impact")  # R4.5: slippage = their sum


def costs_by_symbol(fills: pl.DataFrame, funding: pl.DataFrame) -> pl.DataFrame:
    """Per symbol: traded notional, fees (trading and liquidation), slippage cost against each
    fill's benchmark and its parts (drift, spread, impact; R4.5), funding, and realised PnL
    (settlement currency of each symbol)."""
    cols = ["symbol", "notional", "fees", "liquidation_fees", "slippage", *COST_PARTS, "funding",
            "realized_pnl"]
    if fills.height == 0:
        return pl.DataFrame(schema={c: (pl.Utf8 if c == "symbol" else pl.Float64) for c in cols})
    liq = int(Liquidity.LIQUIDATION)
    out = fills.group_by("symbol").agg(
        (pl.col("qty") * pl.col("price")).sum().alias("notional"),
        pl.when(pl.col("liquidity") != liq).then(pl.col("fee")).otherwise(0.0).sum().alias("fees"),
        pl.when(pl.col("liquidity") == liq).then(pl.col("fee")).otherwise(0.0).sum()
        .alias("liquidation_fees"),
        pl.col("slippage").sum().alias("slippage"),
        *[(pl.col(k).sum() if k in fills.columns else pl.lit(NAN)).alias(k) for k in COST_PARTS],
        pl.col("realized_pnl").sum().alias("realized_pnl"))
    fund = (funding.group_by("symbol").agg(pl.col("payment").sum().alias("funding"))
            if funding.height else pl.DataFrame(schema={"symbol": pl.Utf8, "funding": pl.Float64}))
    return collect_small(out.lazy().join(fund.lazy(), on="symbol", how="left")
                         .with_columns(pl.col("funding").fill_null(0.0)).select(cols).sort("symbol"))


def cost_attribution(result_like) -> dict:
    """Bridge from PnL before costs to the net change of equity (settlement currency).

    ``gross = realised PnL + final unrealised PnL + slippage`` (what the trades would have made at
    the reference prices); then ``- slippage - trading fees - liquidation fees + funding -
    interest + other = net``, where ``net = final equity - initial equity`` and ``other`` is what
    the listed lines do not explain (insurance-fund transfers, loan penalties, rounding).
    """
    manifest, tables = unpack(result_like)
    fills, equity = table(tables, "fills"), table(tables, "equity")
    ts, eq = equity_arrays(equity)
    e0 = initial_equity(manifest, eq)
    net = float(eq[-1] - e0) if len(eq) else 0.0
    realized = _sum(fills, "realized_pnl")
    upnl = 0.0
    if equity.height and "upnl" in equity.columns:
        last = by_time(equity)["upnl"][-1]
        upnl = float(last) if last is not None and np.isfinite(last) else 0.0
    if fills.height and "fee" in fills.columns:
        is_liq = fills["liquidity"] == int(Liquidity.LIQUIDATION)
        liq_fees = _sum_series(fills["fee"].filter(is_liq))
        trade_fees = _sum_series(fills["fee"].filter(~is_liq))
    else:
        liq_fees = trade_fees = 0.0
    slip = _sum(fills, "slippage")
    # the parts of slippage (R4.5); drift takes the rest, so they always sum to slippage (a run
    # saved before the parts existed counts it all as drift)
    spread, impact = _sum(fills, "cost_spread"), _sum(fills, "cost_impact")
    parts = {"cost_drift": slip - spread - impact, "cost_spread": spread, "cost_impact": impact}
    fund = funding_stats(table(tables, "funding"))["funding_net"]
    interest = (loan_stats(table(tables, "loans"))["loan_interest"]
                + _sum(table(tables, "borrows"), "interest")
                + float((manifest.get("headline") or {}).get("borrow_interest") or 0.0))
    gross = realized + upnl + slip
    explained = gross - slip - trade_fees - liq_fees + fund - interest
    return {"gross": gross, "slippage": slip, **parts, "fees": trade_fees,
            "liquidation_fees": liq_fees, "funding": fund, "interest": interest,
            "other": net - explained, "net": net, "realized_pnl": realized, "unrealized_pnl": upnl}


def buy_and_hold(bars: pl.DataFrame, symbol: str | None = None,
                 fills: pl.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(ts_ns, growth factor close/first close) of one symbol's bars: `symbol` (the run's
    `benchmark`), else the first symbol the strategy traded (its first fill), else the run's
    first symbol. Never chosen by volume: the benchmark must not depend on what the strategy
    did most."""
    empty = np.empty(0, np.int64), np.empty(0, np.float64), None
    if bars.height == 0:
        return empty
    has_name = "symbol" in bars.columns
    if not symbol and fills is not None and fills.height and has_name and "symbol" in fills.columns:
        symbol = by_time(fills)["symbol"][0]
    if not symbol:
        first = bars.filter(pl.col("sym") == bars["sym"].min()).head(1).row(0, named=True)
        symbol = first["symbol"] if has_name else str(first["sym"])
    px = pl.when(pl.col("close").is_nan()).then(None).otherwise(pl.col("close")).forward_fill()
    px = pl.coalesce(px, pl.col("mark"))
    # one query; sorting (stably) before the filter keeps the same rows in the same order
    b = collect_small(by_time(bars).lazy()
                      .filter((pl.col("symbol") if has_name else pl.col("sym").cast(pl.Utf8)) == symbol)
                      .with_columns(px=px).filter(pl.col("px").is_not_null() & (pl.col("px") > 0)))
    if b.height == 0:
        return empty
    p = b["px"].to_numpy().astype(np.float64)
    return b["ts_ns"].to_numpy().astype(np.int64), p / p[0], symbol


# --------------------------------------------------------------------------------------------
def ratio_thresholds(manifest: Mapping) -> tuple[int, int]:
    """(min return periods, min span in ns) below which Sharpe, Sortino and Calmar are not
    reported: the run's config `min_ratio_periods` / `min_ratio_span`, else the defaults."""
    from .config import RunConfig, parse_duration_ns

    cfg = manifest.get("config") or {}
    periods = cfg.get("min_ratio_periods", RunConfig.min_ratio_periods)
    span = cfg.get("min_ratio_span", RunConfig.min_ratio_span)
    return int(periods), parse_duration_ns(span, "min_ratio_span")


def compute_metrics(result_like, *, freq: str = "auto", benchmark: str | None = None,
                    min_periods: int | None = None, min_span_ns: int | None = None) -> dict:
    """All metrics of a run as a flat dict (floats, ints, strings or None; NaN = undefined).

    ``result_like``: a Result, a run folder, or a mapping (see :func:`unpack`). ``freq``: "auto"
    (daily if the run spans >= DAILY_MIN_DAYS days, else hourly), "1d" or "1h". ``benchmark``:
    the buy-and-hold symbol (default: the run's config, else the first symbol traded).
    ``min_periods`` / ``min_span_ns``: below either, Sharpe, Sortino and Calmar are None and
    ``ratios_note`` says why (default: the run's config, see :func:`ratio_thresholds`).
    """
    manifest, tables = unpack(result_like)
    cfg_periods, cfg_span = ratio_thresholds(manifest)
    min_periods = cfg_periods if min_periods is None else min_periods
    min_span_ns = cfg_span if min_span_ns is None else min_span_ns
    benchmark = benchmark or (manifest.get("config") or {}).get("benchmark") or None
    equity, fills = table(tables, "equity"), table(tables, "fills")
    bars = table(tables, "bars")
    ts, eq = equity_arrays(equity)
    m: dict = {}
    if len(ts):
        t0, t1 = int(ts[0]), int(ts[-1])
    else:
        t0 = t1 = int(fills["ts_ns"].min()) if fills.height else 0
        if fills.height:
            t1 = int(fills["ts_ns"].max())
    span = t1 - t0
    e0 = initial_equity(manifest, eq)
    e1 = float(eq[-1]) if len(eq) else e0
    if freq == "auto":
        freq = choose_frequency(span)
    if freq not in PERIOD_NS:
        raise ValueError(f"freq must be 'auto', '1d' or '1h', not {freq!r}")
    ppy = PERIODS_PER_YEAR[freq]
    # the initial balance counts as a sample at the first timestamp (start=e0)
    _, r = period_returns(ts, eq, freq, start=e0)

    tot = total_return(e0, e1)
    ann = annualized_return(tot, span)
    dds = drawdown_series(eq, e0)
    dd = drawdown_info(ts, eq, start=e0, dd=dds)
    m.update(start_ts_ns=t0, end_ts_ns=t1, duration_days=span / NS_PER_DAY,
             initial_equity=e0, final_equity=e1, net_pnl=e1 - e0,
             total_return=tot, annual_return=ann, annual_volatility=volatility(r, ppy),
             sharpe=sharpe(r, ppy), sortino=sortino(r, ppy),
             return_freq=freq, periods_per_year=ppy, n_returns=int(len(r)))
    m.update(dd)
    # the samples' drawdown, deepened by what the kernel saw between samples (R6.1)
    m["max_drawdown_sampled"] = dd["max_drawdown"]
    deepest = max_drawdown_any_event(manifest)
    if deepest is not None and deepest < m["max_drawdown"]:
        m["max_drawdown"] = deepest
    m["calmar"] = calmar(ann, m["max_drawdown"])
    # too few returns or too short a run: the ratios would be noise, so they are not reported
    why = None
    if len(r) < min_periods:
        why = f"{len(r)} {freq} return periods, fewer than min_ratio_periods = {min_periods}"
    elif span < min_span_ns:
        why = (f"run of {span / NS_PER_S / 3600:.1f} h, shorter than min_ratio_span = "
               f"{min_span_ns / NS_PER_S / 3600:.1f} h")
    if why:
        m.update(sharpe=None, sortino=None, calmar=None)
    m["ratios_note"] = why
    m["time_under_water"] = time_under_water(ts, eq, start=e0, dd=dds)
    del dds

    bh_ts, bh, bh_sym = buy_and_hold(bars, benchmark, fills=fills)
    m["benchmark_symbol"] = bh_sym
    m["benchmark_return"] = float(bh[-1] - 1.0) if len(bh) else NAN

    trades = table(tables, "trades")
    if trades.height == 0 or "net_pnl" not in trades.columns:
        trades = round_trips(fills)
    m.update(trade_stats(trades))
    m["n_fills"] = fills.height
    m["n_orders"] = table(tables, "orders").height
    m["exposure"] = exposure(fills, t0, t1)
    notional = traded_notional(fills)
    avg_eq = time_weighted_mean(ts, eq)
    m["traded_notional"] = notional
    m["avg_equity"] = avg_eq
    m["turnover"] = notional / avg_eq if avg_eq and avg_eq > 0 else NAN

    costs = cost_attribution({"manifest": manifest, "tables": tables})
    m["fees"] = _sum(fills, "fee")
    m["trading_fees"] = costs["fees"]
    m["slippage_cost"] = costs["slippage"]
    for k in COST_PARTS:
        m[k] = costs[k]
    m.update(funding_stats(table(tables, "funding")))
    m["borrow_interest"] = _sum(table(tables, "borrows"), "interest") or float(
        (manifest.get("headline") or {}).get("borrow_interest") or 0.0)
    m.update(loan_stats(table(tables, "loans")))
    m.update(liquidation_stats(table(tables, "liquidations"), fills))
    m.update(min_liq_distance(bars))
    m["max_leverage"] = max_leverage(equity)
    return m
