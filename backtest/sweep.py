"""Parameter sweeps: grid or seeded random search, run locally in a process pool or on Ray.

Layout of a sweep folder::

    SWEEP_DIR/runs/<config-id>/   one full saved run per parameter set (written atomically)
    SWEEP_DIR/results.parquet     one row per run, ranked by the metric (rank 1 = best)
    SWEEP_DIR/heatmap.png         when exactly two parameters vary: drawn by `backtest sweep`
                                  (report/sweep_figures.py) from the table; the library draws nothing

The config id hashes the strategy (class and source), the full parameters, the RunConfig and the
data fingerprint, so rerunning a sweep skips finished runs and an interrupted sweep resumes.

Pending runs are split into batches (`BatchTask`), each run by one process in one pass over the
data (backtest/batch.py: one compiled loop, one context and strategy record per parameter set).
Locally there are as few batches as the memory budget allows (--batch-size, or batch.batch_size
from CASCADE_BATCH_MEMORY_MB), run by up to --jobs processes; a process with cores to spare shares
its sets among threads (the loop releases the GIL), which beats a second process re-reading the
data (benchmarks/README.md). With several batches the parent compiles the strategy into the
numba cache first, then runs the first batch itself while spawned workers (nothing but small
Tasks is pickled) load the loop and run the others; parameters are record fields, so no set
recompiles. Ray gets at least --jobs (default: CPUs) batches.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import os
import re
import shutil
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from .config import RunConfig
from .errors import CascadeError, ConfigError, StrategyError, shown

RESULTS = "results.parquet"
# Columns of results.parquet besides the parameters; the ranking metric is added when missing.
TABLE_METRICS = ("return", "sharpe", "sortino", "calmar", "max_drawdown", "final_equity",
                 "trades", "win_rate", "profit_factor", "fees", "liquidations")
# Ranked smaller-is-better; any name containing "drawdown" is ranked by smaller magnitude, which
# covers both the negative fractions of metrics.py and the positive amounts of the headline.
LOWER_IS_BETTER = {"fees", "trading_fees", "slippage_cost", "annual_volatility", "time_under_water",
                   "liquidations", "n_liquidations", "rejects", "max_leverage", "borrow_interest",
                   "funding_paid"}
_ALIASES = {"return": ("total_return", "return"), "trades": ("n_trades", "trades"),
            "liquidations": ("n_liquidations", "liquidations")}
# Metrics that are fractions: tables show them in percent, as the CLI prints them, in a column
# that says so (return -> return_pct); ranking and --metric still use the metric's own name.
PERCENT_METRICS = {"return", "total_return", "annual_return", "annual_volatility", "max_drawdown",
                   "max_drawdown_pct", "win_rate", "exposure", "time_under_water", "min_liq_distance"}


def column_of(metric: str) -> str:
    """The results-table column of a metric: percent metrics end in _pct."""
    return metric if metric not in PERCENT_METRICS or metric.endswith("_pct") else f"{metric}_pct"


def column_value(metric: str, value: float | None) -> float | None:
    return value * 100.0 if value is not None and metric in PERCENT_METRICS else value


# --- metrics --------------------------------------------------------------------------------
def metric_value(manifest: dict, name: str) -> float | None:
    """A run's metric: manifest['metrics'] (backtest.metrics) first, then the headline numbers."""
    metrics, headline = manifest.get("metrics") or {}, manifest.get("headline") or {}
    for key in _ALIASES.get(name, (name,)):
        for source in (metrics, headline):
            v = source.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v) if math.isfinite(v) else None
    return None


def known_metrics(manifest: dict) -> list[str]:
    names = set(_ALIASES)
    for source in (manifest.get("metrics") or {}, manifest.get("headline") or {}):
        names |= {k for k, v in source.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return sorted(names)


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


# --- tasks ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """Everything a worker needs for one run (small and picklable; data is read by the worker)."""

    strategy: str
    data: str
    params: dict
    config: dict
    run_dir: str
    config_id: str
    symbols: list | None = None
    start: str | int | None = None
    end: str | int | None = None


def strategy_ref(cls) -> str:
    """A spec that resolves to `cls` in any process (file-loaded classes by absolute path)."""
    import sys

    mod = sys.modules[cls.__module__]
    if cls.__module__.startswith("_cascade_user_"):
        return f"{Path(mod.__file__).resolve()}:{cls.__qualname__}"
    return f"{cls.__module__}:{cls.__qualname__}"


def config_id(cls, params: dict, config: dict, fingerprint: str) -> str:
    from .plugins.codegen import source_sha256

    blob = json.dumps({"strategy": f"{cls.__module__}:{cls.__qualname__}", "source": source_sha256(cls),
                       "params": params, "config": config, "data": fingerprint},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_task(task: Task) -> dict:
    """Worker entry: run (or, when its folder exists, load) one run; returns its metrics row."""
    run_dir = Path(task.run_dir)
    manifest_path = run_dir / "manifest.json"
    if manifest_path.is_file():
        return _row(json.loads(manifest_path.read_text()), "skipped")
    import multiprocessing
    import warnings

    from .engine import run
    from .errors import CascadeWarning

    try:
        with warnings.catch_warnings():
            if multiprocessing.parent_process() is not None:  # the parent's first run said it once
                warnings.simplefilter("ignore", CascadeWarning)
            res = run(task.strategy, task.data, params=task.params, symbols=task.symbols,
                      start=task.start, end=task.end, config=RunConfig.from_dict(task.config), out=run_dir)
    except CascadeError as e:
        return {"status": "failed", "error": str(e)}
    return _row(res.manifest, "ran")


@dataclass(frozen=True)
class BatchTask:
    """Runs of one sweep that one process runs together in one pass over the data."""

    tasks: tuple
    threads: int = 1  # threads sharing the sets of each chunk (backtest/batch.py)

    @property
    def strategy(self) -> str:
        return self.tasks[0].strategy


def run_batch_task(batch: BatchTask, on_row=None, on_events=None) -> list[dict]:
    """Worker entry: run (or load, when their folders exist) the runs of a batch in one pass;
    returns their metrics rows in order. A failed set is a "failed" row, as in run_task; an error
    that every set shares (data, config, compiling) fails them all. `on_row(task, row)` is called
    as each row is ready (in the parent: progress, and the metric check of the first good run);
    `on_events(events_done, label)` after each chunk of the pass."""
    rows: dict[int, dict] = {}

    def put(k: int, row: dict) -> None:
        rows[k] = row
        if on_row is not None:
            on_row(batch.tasks[k], row)

    todo = []
    for k, t in enumerate(batch.tasks):
        manifest_path = Path(t.run_dir) / "manifest.json"
        if manifest_path.is_file():
            put(k, _row(json.loads(manifest_path.read_text()), "skipped"))
        else:
            todo.append(k)
    if todo:
        import multiprocessing
        import warnings

        from .batch import iter_batch
        from .errors import CascadeWarning

        t0 = batch.tasks[todo[0]]
        with warnings.catch_warnings():
            if multiprocessing.parent_process() is not None:  # the parent's batch said it once
                warnings.simplefilter("ignore", CascadeWarning)
            it = iter_batch(t0.strategy, t0.data, [batch.tasks[k].params for k in todo],
                            symbols=t0.symbols, start=t0.start, end=t0.end,
                            config=RunConfig.from_dict(t0.config),
                            outs=[batch.tasks[k].run_dir for k in todo], threads=batch.threads,
                            progress=on_events)
            try:
                while True:
                    try:
                        j, res = next(it)
                    except StopIteration:
                        break
                    except CascadeError as e:  # shared by every set of the batch
                        for k in todo:
                            if k not in rows:
                                put(k, {"status": "failed", "error": str(e)})
                        break
                    # outside the try: an error of on_row (e.g. an unknown --metric) stops the sweep
                    put(todo[j], {"status": "failed", "error": str(res)} if isinstance(res, CascadeError)
                        else _row(res.manifest, "ran"))
            finally:
                it.close()  # releases the run folders' locks
    return [rows[k] for k in range(len(batch.tasks))]


def make_batches(tasks: list, parts: int, cap: int) -> list[BatchTask]:
    """Split `tasks` in order into at least `parts` batches of at most `cap` runs, sizes within
    one of each other."""
    if not tasks:
        return []
    n = max(1, min(len(tasks), max(parts, math.ceil(len(tasks) / max(cap, 1)))))
    size, extra = divmod(len(tasks), n)
    out, at = [], 0
    for i in range(n):
        m = size + (i < extra)
        out.append(BatchTask(tuple(tasks[at:at + m])))
        at += m
    return out


def _batch_cap(cls, cfg: RunConfig, data, symbols, start, end, n: int) -> int:
    """Sets per batch that fit the memory budget (backtest/batch.py), from the data's time span."""
    from .batch import batch_size, estimate_set_bytes
    from .config import parse_time_ns
    from .data.coverage import data_time_range
    from .data.reader import open_dataset
    from .data.storage import local_dataset

    root = local_dataset(data)
    lo, hi = data_time_range(root, symbols)
    s, e = parse_time_ns(start, "start"), parse_time_ns(end, "end")
    lo, hi = max(lo, s) if s is not None else lo, min(hi, e) if e is not None else hi
    nsym = len(open_dataset(Path(root), symbols=symbols, start_ns=s, end_ns=e).symbols)
    return batch_size(n, estimate_set_bytes(cls, cfg, max(hi - lo, 0), nsym))


def _row(manifest: dict, status: str) -> dict:
    names = set(TABLE_METRICS) | set(known_metrics(manifest))
    t = manifest.get("timings") or {}
    return {"status": status, "error": None, "metrics": {n: metric_value(manifest, n) for n in names},
            "compile_s": t.get("compile_s"), "run_s": t.get("run_s"), "events": t.get("events")}


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
    cdict, ref = cfg.to_dict(), strategy_ref(cls)
    tasks = []
    for p in points:
        full = {**base, **fixed, **cls.resolve_params(p)}
        cid = config_id(cls, full, cdict, fp)
        tasks.append(Task(ref, data if is_s3(data) else str(Path(data).resolve()), full, cdict, str(Path(out) / "runs" / cid), cid,
                          symbols, start, end))
    return cls, tasks, [k for k, v in grid.items() if len(v) > 1] or list(grid)



def run_sweep(*args, **kwargs):
    """`out` is locked meanwhile: a second writer refuses at once (the work: _run_sweep)."""
    from .atomic import output_lock

    _exit_if_worker_bootstrap()

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
            _run_batches(cls, pending, done, jobs=jobs, engine=engine, address=address,
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


def _run_batches(cls, pending: list, done, *, jobs: int, engine: str, address, batch_size: int, data,
                 symbols, start, end, config, partial=None) -> None:
    """Run the pending tasks in batches: the first in this process (it compiles the loop into
    the cache first, prints the run's warnings once and checks the metric on its first good
    run), the others meanwhile in worker processes or on Ray. `partial(runs)` shows how far a
    batch in this process is through its pass, in runs (its sets finish together at the end)."""
    cfg = config if isinstance(config, RunConfig) else RunConfig.from_dict(config or {})
    cap = batch_size or _batch_cap(cls, cfg, data, symbols, start, end, len(pending))
    procs = jobs or _cpus()
    if engine == "local":
        # as few batches as memory allows (each pays one pass over the data), run by up to
        # `procs` processes; a process with cores to spare shares its batch among threads
        batches = make_batches(pending, 1, cap)
        threads = max(1, procs // min(procs, len(batches)))
        batches = [dataclasses.replace(b, threads=threads) for b in batches]
    else:  # Ray: at least `procs` batches, spread over the cluster
        batches = make_batches(pending, procs, cap)

    def done_batch(batch: BatchTask, rows: list[dict]) -> None:
        for t, row in zip(batch.tasks, rows):
            done(t, row)

    total = None
    if partial is not None:
        from .progress import estimate_events

        total = estimate_events(data, symbols, start, end)

    def here(batch: BatchTask) -> None:
        def on_events(events: int, _label: str = "") -> None:
            partial(0.99 * len(batch.tasks) * min(events / total, 1.0))

        run_batch_task(batch, on_row=done, on_events=on_events if total else None)

    def first() -> None:
        here(batches[0])

    if len(batches) == 1 or (engine == "local" and procs <= 1):
        for b in batches:
            here(b)
        return
    if engine == "local" and len(batches) <= procs:
        # this process runs one batch while procs - 1 workers run the others
        _compile_first(cls, cfg)
        _map(batches[1:], done_batch, jobs=procs - 1, engine=engine, address=address,
             worker=run_batch_task, in_parent=first)
    else:  # the first batch here (it compiles), then the others on all processes or on Ray
        first()
        _map(batches[1:], done_batch, jobs=procs if engine == "local" else jobs, engine=engine,
             address=address, worker=run_batch_task)


def _compile_first(cls, cfg: RunConfig) -> None:
    """Compile (or load) the loop here, so that workers started next only load it from the cache."""
    from .batch import compile_loop

    try:
        compile_loop(cls)
    except CascadeError:
        pass  # every batch then reports it as its sets' error, as a run would


def _exit_if_worker_bootstrap() -> None:
    """A script without an `if __name__ == "__main__":` guard calls run_sweep again in every
    spawned worker as it re-imports the script; stop that worker quietly (the parent then sees a
    broken pool and says what to do in one line) instead of letting each print a traceback."""
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):  # set while spawning
        raise SystemExit(1)


def _broken_pool_hint(task) -> str:
    """One line for a worker that died: a script without a `__main__` guard (its workers exit at
    start, see _exit_if_worker_bootstrap), else a native crash of the compiled strategy."""
    import sys

    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if script and getattr(main, "__spec__", None) is None:
        return (f"sweep worker processes exited at start: {script} calls the sweep at import time; "
                "put the call under `if __name__ == \"__main__\":` (workers are spawned and "
                "re-import the script), or pass jobs=1")
    return (f"a sweep worker died running {_strategy_of(task)} (a native crash such as an "
            "out-of-bounds index in a hook, or out of memory); rerun with --boundscheck to find the "
            "bad index, or --no-jit (or --jobs 1) to debug it")


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


def _map(tasks: list, done, *, jobs: int, engine: str, address: str | None, worker=None,
         in_parent=None) -> None:
    """Run `worker(task)` (default: run_task) for each task, locally or on Ray, calling
    `done(task, row)` as each finishes. Also the runner of stress paths (backtest.scenarios.run).
    `in_parent()`, when given, runs in this process once the workers have their tasks."""
    worker = worker or run_task
    if not tasks:
        if in_parent is not None:
            in_parent()
        return
    if engine == "ray":
        return _map_ray(tasks, done, address, worker)
    if engine != "local":
        raise ConfigError(f"--engine: expected 'local' or 'ray', got {shown(engine)}")
    jobs = jobs or _cpus()
    if jobs <= 1 and in_parent is None:
        for t in tasks:
            done(t, worker(t))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from .core.lifeline import die_with_parent

    # spawn: a fresh interpreter per worker (fork would copy numba/polars thread state). Workers
    # die with this process, even when it is killed (SIGKILL): nothing keeps running or holds the
    # caller's stdout open.
    ex = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=die_with_parent, initargs=(os.getpid(),))
    try:
        with _sigint_ignored():  # workers start (inside submit) ignoring Ctrl-C: the parent handles it
            futures = {ex.submit(worker, t): t for t in tasks}
        if in_parent is not None:
            in_parent()
        for f in as_completed(futures):
            try:
                row = f.result()
            except BrokenProcessPool:  # a worker died: see _broken_pool_hint
                raise StrategyError(_broken_pool_hint(futures[f])) from None
            done(futures[f], row)
    except BaseException:
        # Ctrl-C or a failure: drop queued runs and stop the running ones now (their temporary
        # folders are removed by run_sweep); finished runs are already saved.
        procs = list((getattr(ex, "_processes", None) or {}).values())
        ex.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            proc.terminate()
        raise
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def _strategy_of(task) -> str:
    return getattr(task, "strategy", None) or getattr(getattr(task, "task", None), "strategy", "?")


@contextlib.contextmanager
def _sigint_ignored():
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by spawned children
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _map_ray(tasks: list, done, address: str | None, worker) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'cascade-backtest[ray]'") from None
    from . import cluster

    # Sweep runs happen in a node-local folder and come back to the driver (cluster.py: no shared
    # filesystem needed). Stress variants also write the crowd's tables beside their runs, so
    # they still need the stress folder at the same path on every node (a shared filesystem).
    # Nodes compile into their own CASCADE_CACHE_DIR; only --no-jit and --boundscheck travel.
    shipped = worker in (run_task, run_batch_task)
    env = {k: "1" for k in ("NUMBA_DISABLE_JIT", "NUMBA_BOUNDSCHECK") if os.environ.get(k) == "1"}
    # An s3:// dataset: workers read it from the bucket at the driver's endpoint and region
    # (credentials: the workers' own AWS variables or instance role; each worker its own cache).
    if tasks and str(getattr(tasks[0], "data", "")).startswith("s3://"):
        env |= {k: os.environ[k] for k in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION",
                                           "AWS_DEFAULT_REGION") if k in os.environ}
    renv = {"env_vars": env} if env else {}
    started = not ray.is_initialized()
    if started:
        # a strategy file's folder ships with the job (Ray accepts a working_dir only here); a
        # caller who started Ray itself passes its own runtime_env
        job = renv | (cluster.runtime_env(tasks[0].strategy) if shipped else {})
        ray.init(address=address, include_dashboard=False, log_to_driver=False, runtime_env=job or None)
    remote = ray.remote(cluster.run_on_node if shipped else worker)
    remote = remote.options(runtime_env=renv) if renv and not started else remote
    refs: dict = {}
    try:
        refs = {(remote.remote(worker, t) if shipped else remote.remote(t)): t for t in tasks}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for r in ready:
                row = ray.get(r)
                done(refs[r], cluster.land(refs[r], row) if shipped else row)
    except BaseException:
        for r in refs:
            ray.cancel(r, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


functools.update_wrapper(run_sweep, _run_sweep)  # its signature and docs
