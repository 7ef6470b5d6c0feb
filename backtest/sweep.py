"""Parameter sweeps: the grid (or a seeded random sample of it), the plan of runs, and the ranked
results table. Where the runs happen (this process, a process pool or Ray, in batches of one pass
over the data each) is backtest/sweep_dispatch.py.

Layout of a sweep folder::

    SWEEP_DIR/runs/<config-id>/   one full saved run per parameter set (written atomically)
    SWEEP_DIR/results.parquet     one row per run, ranked by the metric (rank 1 = best)
    SWEEP_DIR/heatmap.png         when exactly two parameters vary: drawn by `backtest sweep`
                                  (report/sweep_figures.py) from the table; the library draws nothing

The config id hashes the strategy (class and source), the full parameters, the RunConfig and the
data fingerprint, so rerunning a sweep skips finished runs and an interrupted sweep resumes.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .config import RunConfig
from .errors import ConfigError, shown
from .sweep_dispatch import TABLE_METRICS, Task, exit_if_worker_bootstrap, run_batches, run_task
from .sweep_dispatch import known_metrics, metric_value  # noqa: F401  (a run's metrics, for callers)

RESULTS = "results.parquet"
# Ranked smaller-is-better; any name containing "drawdown" is ranked by smaller magnitude, which
# covers both the negative fractions of metrics.py and the positive amounts of the headline.
LOWER_IS_BETTER = {"fees", "trading_fees", "slippage_cost", "annual_volatility", "time_under_water",
                   "liquidations", "n_liquidations", "rejects", "max_leverage", "borrow_interest",
                   "funding_paid"}
# Metrics that are fractions: tables show them in percent, as the CLI prints them, in a column
# that says so (return -> return_pct); ranking and --metric still use the metric's own name.
PERCENT_METRICS = {"return", "total_return", "annual_return", "annual_volatility", "max_drawdown",
                   "max_drawdown_pct", "win_rate", "exposure", "time_under_water", "min_liq_distance"}


def column_of(metric: str) -> str:
    """The results-table column of a metric: percent metrics end in _pct."""
    return metric if metric not in PERCENT_METRICS or metric.endswith("_pct") else f"{metric}_pct"


def column_value(metric: str, value: float | None) -> float | None:
    return value * 100.0 if value is not None and metric in PERCENT_METRICS else value


# --- ranking (a run's metrics row: sweep_dispatch.metric_value) -------------------------------
def score(name: str, value: float | None) -> float | None:
    """The value oriented so that higher is better (None stays None and ranks last)."""
    if value is None:
        return None
    if "drawdown" in name:
        return -abs(value)
    return -value if name in LOWER_IS_BETTER else value


# --- grids ----------------------------------------------------------------------------------
_RANGE = re.compile(r"^\s*([-+0-9.eE]+)\s*:\s*([-+0-9.eE]+)\s*(?::\s*([-+0-9.eE]+)\s*)?$")


def _number(text: str):
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_values(raw, name: str) -> list:
    """Values of one swept parameter: a list, 'a,b,c', or an inclusive range 'start:stop[:step]'."""
    if isinstance(raw, list):
        values = raw
    elif isinstance(raw, str) and (m := _RANGE.match(raw)):
        try:
            lo, hi, step = (_number(g) for g in (m.group(1), m.group(2), m.group(3) or "1"))
        except ValueError:
            raise ConfigError(f"grid {name}: bad range {shown(raw)} (use start:stop:step)") from None
        if step <= 0 or hi < lo:
            raise ConfigError(f"grid {name}: range {shown(raw)} needs step > 0 and start <= stop")
        n = int(math.floor((hi - lo) / step + 1e-9)) + 1  # inclusive of stop, float-safe
        if n > 100_000:
            raise ConfigError(f"grid {name}: range {shown(raw)} has {n:,} values (at most 100,000)")
        values = [lo + i * step for i in range(n)]
        if any(isinstance(v, float) for v in (lo, hi, step)):
            values = [round(v, 12) for v in values]  # 0.1 + 2*0.1 -> 0.3, not 0.30000000000000004
    elif isinstance(raw, str):
        values = [_parse_scalar(v) for v in raw.split(",") if v.strip()]
    else:
        values = [raw]
    if not values:
        raise ConfigError(f"grid {name}: no values")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) and \
            any(isinstance(v, float) for v in values):
        values = [float(v) for v in values]  # one column type in results.parquet
    return list(dict.fromkeys(values))


def _parse_scalar(text: str):
    from .runconfig import parse_value

    return parse_value(text.strip())


def parse_grid_arg(text: str) -> tuple[str, list]:
    """'--grid entry=61000,62000' or '--grid stop=59000:61000:500' -> (name, values)."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise ConfigError(f"--grid: expected NAME=V1,V2 or NAME=START:STOP:STEP, got {shown(text)}")
    return name.strip(), parse_values(raw.strip(), name.strip())


def grid_points(grid: dict[str, list]) -> list[dict]:
    """The cartesian product, in a stable order (first parameter varies slowest)."""
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def random_points(grid: dict[str, list], n: int, seed: int = 0) -> list[dict]:
    """`n` distinct points of the grid drawn without replacement; the same seed gives the same
    points (all points when n >= the grid size)."""
    import numpy as np

    sizes = [len(v) for v in grid.values()]
    total = math.prod(sizes)
    if n >= total:
        return grid_points(grid)
    rng = np.random.default_rng(seed)
    flat = rng.choice(total, size=n, replace=False) if total < 2**62 else rng.integers(0, total, n)
    names = list(grid)
    out = []
    for k in (int(x) for x in flat):
        point = {}
        for name, size in zip(reversed(names), reversed(sizes)):
            k, i = divmod(k, size)
            point[name] = grid[name][i]
        out.append({name: point[name] for name in names})
    return out


# --- the plan -----------------------------------------------------------------------------------
def strategy_ref(cls) -> str:
    """A spec that resolves to `cls` in any process (file-loaded classes by absolute path)."""
    import sys

    mod = sys.modules[cls.__module__]
    if cls.__module__.startswith("_cascade_user_"):
        return f"{Path(mod.__file__).resolve()}:{cls.__qualname__}"
    return f"{cls.__module__}:{cls.__qualname__}"


def config_id(cls, params: dict, config: dict, fingerprint: str, source: str | None = None) -> str:
    """`source`: codegen.source_sha256(cls), when the caller has it (it reads the strategy's files)."""
    from .plugins.codegen import source_sha256

    source = source_sha256(cls) if source is None else source
    blob = json.dumps({"strategy": f"{cls.__module__}:{cls.__qualname__}", "source": source,
                       "params": params, "config": config, "data": fingerprint},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --- the sweep --------------------------------------------------------------------------------
@dataclass
class SweepResult:
    table: object  # polars DataFrame, ranked
    out: Path
    metric: str
    ran: int
    skipped: int
    failed: int
    swept: tuple = ()  # the parameters that vary, in grid order

    @property
    def best(self) -> dict | None:
        ok = self.table.filter(self.table["status"] != "failed")
        return ok.row(0, named=True) if ok.height else None

    @property
    def table_path(self) -> Path:
        """Where `table` is saved (SWEEP_DIR/results.parquet)."""
        return Path(self.out) / RESULTS

    @property
    def heatmap_axes(self) -> tuple[str, str, str] | None:
        """(x, y, metric) columns of the table for a heatmap: exactly two swept parameters and
        more than one run that did not fail; else None. The report layer draws it."""
        if len(self.swept) != 2 or self.ran + self.skipped <= 1:
            return None
        return f"param.{self.swept[0]}", f"param.{self.swept[1]}", column_of(self.metric)


def plan(strategy, data, grid: dict, *, out, random: int = 0, seed: int = 0, params=None,
         symbols=None, start=None, end=None, config=None):
    """(strategy class, tasks, swept names) of a sweep, without running anything."""
    from .config import parse_time_ns
    from .data.reader import open_dataset
    from .plugins.resolve import resolve_strategy

    cls = resolve_strategy(strategy) if isinstance(strategy, str) else strategy
    cfg = config if isinstance(config, RunConfig) else RunConfig.from_dict(config or {})
    grid = {k: parse_values(v, k) for k, v in grid.items()}
    if not grid:
        raise ConfigError("sweep: no parameters to sweep (give --grid NAME=VALUES)")
    base = {f.name: f.default for f in cls.params().values()}
    fixed = cls.resolve_params(params or {})
    cls.resolve_params({k: v[0] for k, v in grid.items()})  # unknown swept names fail before any run
    from .data.storage import is_s3, local_dataset

    fp = open_dataset(local_dataset(data), symbols=symbols, start_ns=parse_time_ns(start, "start"),
                      end_ns=parse_time_ns(end, "end"), chunk_rows=cfg.chunk_rows).fingerprint()
    points = random_points(grid, random, seed) if random else grid_points(grid)
    from .plugins.codegen import source_sha256

    cdict, ref, source = cfg.to_dict(), strategy_ref(cls), source_sha256(cls)
    tasks = []
    for p in points:
        full = {**base, **fixed, **cls.resolve_params(p)}
        cid = config_id(cls, full, cdict, fp, source)
        tasks.append(Task(ref, data if is_s3(data) else str(Path(data).resolve()), full, cdict, str(Path(out) / "runs" / cid), cid,
                          symbols, start, end))
    return cls, tasks, swept_names(grid)


def swept_names(grid: dict) -> list[str]:
    """The parameters a sweep varies (more than one value), in grid order; all of them when none
    does. `grid`: {name: values} as `run_sweep` takes it."""
    values = {k: parse_values(v, k) for k, v in grid.items()}
    return [k for k, v in values.items() if len(v) > 1] or list(values)


def run_sweep(*args, **kwargs):
    """`out` is locked meanwhile: a second writer refuses at once (the work: _run_sweep)."""
    from .atomic import output_lock

    exit_if_worker_bootstrap()

    with output_lock(Path(kwargs["out"])):
        return _run_sweep(*args, **kwargs)


def _run_sweep(strategy, data, grid: dict, *, out, random: int = 0, seed: int = 0, metric: str = "return",
              jobs: int = 0, engine: str = "local", address: str | None = None, params=None, symbols=None,
              start=None, end=None, config=None, progress=None,
              batch_size: int = 0) -> SweepResult:
    """Run every parameter set of `grid` (or `random` of them) and rank them by `metric`.

    `grid`: {name: [values] | 'a,b' | 'start:stop:step'}. `progress(done, total, best)` is called
    after each run. KeyboardInterrupt keeps the finished runs (and writes their results table).
    `batch_size`: most sets run in one pass over the data (0: as many as the memory budget allows;
    1: one pass per set).
    """
    out = Path(out)
    cls, tasks, swept = plan(strategy, data, grid, out=out, random=random, seed=seed, params=params,
                           symbols=symbols, start=start, end=end, config=config)
    rows: dict[str, dict] = {}
    state = {"best": None, "checked": False, "shown": 0.0}  # shown: never move the bar back

    def done(task: Task, row: dict) -> None:
        if not state["checked"] and row["status"] != "failed":  # the first good run lists the metrics
            _check_metric(metric, row)
            state["checked"] = True
        rows[task.config_id] = _flatten(task, row, swept, metric)
        s = rows[task.config_id]["score"]
        if s is not None and (state["best"] is None or s > state["best"][0]):
            state["best"] = (s, f"{column_of(metric)}={rows[task.config_id][column_of(metric)]:.4g} "
                                + " ".join(f"{k}={task.params[k]}" for k in swept))
        if progress is not None:
            state["shown"] = max(state["shown"], len(rows))
            progress(state["shown"], len(tasks), state["best"][1] if state["best"] else "")

    def partial(runs: float) -> None:  # a batch in this process, part of the way through its pass
        state["shown"] = max(state["shown"], len(rows) + runs)
        progress(state["shown"], len(tasks), state["best"][1] if state["best"] else "")

    if progress is not None:
        progress(0, len(tasks), "")
    try:
        # Finished runs first (cheap), then the pending ones in batches, one pass over the data each
        pending = []
        for t in tasks:
            if (Path(t.run_dir) / "manifest.json").is_file():
                done(t, run_task(t))
            else:
                pending.append(t)
        if pending:
            run_batches(cls, pending, done, jobs=jobs, engine=engine, address=address,
                        batch_size=batch_size, data=data, symbols=symbols, start=start, end=end,
                        config=config, partial=partial if progress is not None else None)
    except KeyboardInterrupt:
        for tmp in (out / "runs").glob(".*.tmp-*"):  # runs cut short by the interrupt
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        table = _rank(list(rows.values()), metric) if rows else None
        if table is not None:
            from .atomic import write_parquet

            out.mkdir(parents=True, exist_ok=True)
            write_parquet(table.to_arrow(), out / RESULTS)
    counts = {s: sum(r["status"] == s for r in rows.values()) for s in ("ran", "skipped", "failed")}
    return SweepResult(table, out, metric, counts["ran"], counts["skipped"], counts["failed"], tuple(swept))


def _check_metric(metric: str, row: dict) -> None:
    if metric in row["metrics"]:
        return
    import difflib

    names = sorted(row["metrics"])
    close = difflib.get_close_matches(metric, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"--metric: unknown metric '{metric}'{hint} (known: {', '.join(names)})")


def _flatten(task: Task, row: dict, swept: list[str], metric: str) -> dict:
    m = row.get("metrics") or {}
    flat = {"config_id": task.config_id, "status": row["status"]}
    flat.update({f"param.{k}": task.params[k] for k in swept})
    flat.update({column_of(n): column_value(n, m.get(n)) for n in dict.fromkeys((metric, *TABLE_METRICS))})
    flat["score"] = score(metric, m.get(metric))
    flat.update({k: row.get(k) for k in ("compile_s", "run_s", "events", "error")})
    flat["run_dir"] = task.run_dir
    flat["params"] = json.dumps(task.params, sort_keys=True)  # the full set, to rerun any row
    return flat


def _rank(rows: list[dict], metric: str):
    import polars as pl

    df = pl.DataFrame(rows, infer_schema_length=None)
    df = df.sort(["score", "config_id"], descending=[True, False], nulls_last=True)
    return df.with_columns(pl.int_range(1, df.height + 1).alias("rank")).select(
        "rank", *[c for c in df.columns])


functools.update_wrapper(run_sweep, _run_sweep)  # its signature and docs
