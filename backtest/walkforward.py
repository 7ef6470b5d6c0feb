"""Walk-forward analysis: optimise on a rolling in-sample window, trade the next window.

For each window the grid is swept on [a, a+train) and ranked by the metric; the best parameters
then run on [a+train, a+train+test). Windows advance by `step` (default `test`). Each
out-of-sample run starts flat at the initial balance; the stitched curve scales each window's
equity so that it continues from where the previous window ended (compounding).

Layout::

    WF_DIR/is/<nnn>/          the in-sample sweep of window nnn (a sweep folder)
    WF_DIR/oos/<nnn>-<id>/    the out-of-sample run of window nnn (a run folder)
    WF_DIR/windows.parquet    one row per window: times, chosen params, IS and OOS metrics
    WF_DIR/oos_equity.parquet the stitched out-of-sample equity (ts_ns, equity, window)
    WF_DIR/oos_equity.png     drawn by `backtest walk-forward` (report/sweep_figures.py); the
                              library returns data only
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from .config import RunConfig, parse_duration_ns, parse_time_ns
from .data.coverage import data_time_range
from .errors import ConfigError


WINDOWS = "windows.parquet"
OOS_EQUITY = "oos_equity.parquet"


@dataclass
class WalkForwardResult:
    windows: object  # polars DataFrame
    equity: object  # polars DataFrame
    out: Path

    @property
    def windows_path(self) -> Path:
        """Where `windows` is saved (WF_DIR/windows.parquet)."""
        return Path(self.out) / WINDOWS

    @property
    def equity_path(self) -> Path:
        """Where `equity` is saved (WF_DIR/oos_equity.parquet)."""
        return Path(self.out) / OOS_EQUITY


def make_windows(lo: int, hi: int, train_ns: int, test_ns: int, step_ns: int) -> list[tuple[int, int, int]]:
    """[(is_start, oos_start, oos_end)]: full training windows; the last test window may be short."""
    if train_ns <= 0 or test_ns <= 0 or step_ns <= 0:
        raise ConfigError("walk-forward: --train, --test and --step must be positive durations")
    if step_ns < test_ns:
        raise ConfigError("walk-forward: --step must be >= --test so out-of-sample windows do not overlap")
    out, a = [], lo
    while a + train_ns < hi:
        out.append((a, a + train_ns, min(a + train_ns + test_ns, hi)))
        a += step_ns
    if not out:
        raise ConfigError(f"walk-forward: the data spans {(hi - lo) / 3.6e12:.1f} h, "
                          "not more than one --train window")
    return out


def stitch(curves: list[tuple[int, object, float]], initial: float):
    """Chain per-window equity curves: [(window, polars equity df, oos_start_ns)] -> one frame.

    Each window is prefixed with (oos_start, initial) and scaled by (previous end / initial), so
    window k starts exactly at the value where window k-1 ended."""
    import polars as pl

    level, parts = float(initial), []
    for k, eq, t0 in curves:
        ts = [int(t0)] + eq["ts_ns"].to_list()
        vals = [float(initial)] + eq["equity"].to_list()
        scale = level / float(initial)
        part = pl.DataFrame({"ts_ns": ts, "equity": [v * scale for v in vals], "window": [k] * len(ts)},
                            schema={"ts_ns": pl.Int64, "equity": pl.Float64, "window": pl.Int32})
        level = part["equity"][-1]
        parts.append(part)
    return pl.concat(parts) if parts else pl.DataFrame(schema={"ts_ns": pl.Int64, "equity": pl.Float64,
                                                               "window": pl.Int32})



def run_walk_forward(*args, **kwargs):
    """`out` is locked meanwhile: a second writer refuses at once (the work: _run_walk_forward)."""
    from .atomic import output_lock

    with output_lock(Path(kwargs["out"])):
        return _run_walk_forward(*args, **kwargs)


def _run_walk_forward(strategy, data, grid: dict, *, out, train, test, step=None, metric: str = "return",
                     random: int = 0, seed: int = 0, jobs: int = 0, engine: str = "local", address=None,
                     params=None, symbols=None, start=None, end=None, config=None,
                     progress=None, batch_size: int = 0) -> WalkForwardResult:
    """Run a walk-forward; `progress(done, total, label)` is called after each window. Each
    window's in-sample sweep runs its parameter sets in batches (one pass over the window's data
    per batch, backtest/batch.py); `batch_size` caps a batch as in run_sweep."""
    import polars as pl

    from .data.storage import local_dataset

    data = local_dataset(data)  # an s3:// dataset: every window reads the local read cache

    from .atomic import write_parquet
    from .engine import run
    from .plugins.resolve import resolve_strategy
    from .result import Result
    from .data.reader import open_dataset
    from .sweep import column_of, column_value, config_id, metric_value, run_sweep

    out = Path(out)
    cls = resolve_strategy(strategy) if isinstance(strategy, str) else strategy
    cfg = config if isinstance(config, RunConfig) else RunConfig.from_dict(config or {})
    train_ns = parse_duration_ns(train, "--train")
    test_ns = parse_duration_ns(test, "--test")
    step_ns = parse_duration_ns(step, "--step") if step else test_ns
    lo, hi = data_time_range(data, symbols)
    s, e = parse_time_ns(start, "start"), parse_time_ns(end, "end")
    lo, hi = max(lo, s) if s is not None else lo, min(hi, e) if e is not None else hi
    wins = make_windows(lo, hi, train_ns, test_ns, step_ns)
    fixed = dict(params or {})
    rows, curves = [], []
    if progress is not None:
        progress(0, len(wins), "")
    for k, (a, b, c) in enumerate(wins):
        sw = run_sweep(cls, data, grid, out=out / "is" / f"{k:03d}", random=random, seed=seed, metric=metric,
                       jobs=jobs, engine=engine, address=address, params=fixed, symbols=symbols, start=a,
                       end=b, config=cfg, batch_size=batch_size)
        best = sw.best
        if best is None:
            raise ConfigError(f"walk-forward window {k}: every in-sample run failed "
                              f"(see {sw.out / 'results.parquet'})")
        chosen = json.loads(best["params"])
        # named by config id like sweep runs, so a rerun reuses it only when nothing changed
        fp = open_dataset(Path(data), symbols=symbols, start_ns=b, end_ns=c).fingerprint()
        oos_dir = out / "oos" / f"{k:03d}-{config_id(cls, chosen, cfg.to_dict(), fp)}"
        res = Result.load(oos_dir) if (oos_dir / "manifest.json").is_file() else \
            run(cls, data, params=chosen, symbols=symbols, start=b, end=c, config=cfg, out=oos_dir)
        curves.append((k, res.tables["equity"], b))
        swept = {col.removeprefix("param."): best[col] for col in best if col.startswith("param.")}
        rows.append({"window": k, "is_start_ns": a, "is_end_ns": b, "oos_start_ns": b, "oos_end_ns": c,
                     **{f"param.{n}": v for n, v in swept.items()},
                     f"is_{column_of(metric)}": best[column_of(metric)],
                     f"oos_{column_of(metric)}": column_value(metric, metric_value(res.manifest, metric)),
                     "oos_return_pct": column_value("return", metric_value(res.manifest, "return")),
                     "oos_final_equity": metric_value(res.manifest, "final_equity"),
                     "oos_trades": metric_value(res.manifest, "trades"),
                     "is_runs": sw.table.height, "params": json.dumps(chosen, sort_keys=True),
                     "oos_run_dir": str(oos_dir)})
        if progress is not None:
            progress(k + 1, len(wins), f"window {k}: " + " ".join(f"{n}={v}" for n, v in swept.items()))
    windows = pl.DataFrame(rows, infer_schema_length=None)
    equity = stitch(curves, cfg.initial_balance)
    wf = WalkForwardResult(windows, equity, out)
    write_parquet(windows.to_arrow(), wf.windows_path)
    write_parquet(equity.to_arrow(), wf.equity_path)
    return wf


functools.update_wrapper(run_walk_forward, _run_walk_forward)  # its signature and docs
