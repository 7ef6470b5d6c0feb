"""Where a sweep's runs happen: in this process, a local process pool, or on Ray.

`backtest/sweep.py` plans the runs (one `Task` each: small and picklable, the data is read by
the worker) and ranks their rows; this module runs them. Pending runs are split into batches
(`BatchTask`, `make_batches`), each run by one process in one pass over the data
(backtest/batch.py: one compiled loop, one context and strategy record per parameter set).
Locally there are as few batches as the memory budget allows (--batch-size, or
batch.batch_size from CASCADE_BATCH_MEMORY_MB), run by up to --jobs processes; a process with
cores to spare shares its sets among threads (the loop releases the GIL), which beats a second
process re-reading the data (benchmarks/README.md). With several batches the parent compiles the
strategy into the numba cache first, then runs the first batch itself while spawned workers
(nothing but small Tasks is pickled) load the loop and run the others; parameters are record
fields, so no set recompiles. Ray gets at least --jobs (default: CPUs) batches, each run on a
node into a node-local folder and sent home (backtest/cluster.py).

A worker returns a metrics row per run (`_row`: status, error, every metric of the manifest,
timings). `map_tasks` is also the runner of stress variants (backtest/scenarios/run.py).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from .config import RunConfig
from .errors import CascadeError, ConfigError, StrategyError, shown

# --- a run's metrics row ---------------------------------------------------------------------
# Columns of results.parquet besides the parameters; the ranking metric is added when missing.
TABLE_METRICS = ("return", "sharpe", "sortino", "calmar", "max_drawdown", "final_equity",
                 "trades", "win_rate", "profit_factor", "fees", "liquidations")
_ALIASES = {"return": ("total_return", "return"), "trades": ("n_trades", "trades"),
            "liquidations": ("n_liquidations", "liquidations")}


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


# --- tasks and batches ------------------------------------------------------------------------
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
                            progress=on_events, manifests=True)
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
                        else _row(res, "ran"))
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


# --- running them ----------------------------------------------------------------------------
def run_batches(cls, pending: list, done, *, jobs: int, engine: str, address, batch_size: int, data,
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
        _compile_first(cls, data, symbols, start, end, cfg)
        map_tasks(batches[1:], done_batch, jobs=procs - 1, engine=engine, address=address,
             worker=run_batch_task, in_parent=first)
    else:  # the first batch here (it compiles), then the others on all processes or on Ray
        first()
        map_tasks(batches[1:], done_batch, jobs=procs if engine == "local" else jobs, engine=engine,
             address=address, worker=run_batch_task)


def _compile_first(cls, data, symbols, start, end, cfg: RunConfig) -> None:
    """Compile (or load) the loop here, for the steps the run needs (pack.loop_features), so that
    workers started next only load it from the cache."""
    from .batch import compile_loop
    from .engine import run_features

    try:
        compile_loop(cls, run_features(cls, data, symbols, start, end, cfg))
    except CascadeError:
        pass  # every batch then reports it as its sets' error, as a run would


def exit_if_worker_bootstrap() -> None:
    """A script without an `if __name__ == "__main__":` guard calls run_sweep again in every
    spawned worker as it re-imports the script; stop that worker quietly (the parent then sees a
    broken pool and says what to do in one line) instead of letting each print a traceback."""
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):  # set while spawning
        raise SystemExit(1)


def _broken_pool_hint(task) -> str:
    """One line for a worker that died: a script without a `__main__` guard (its workers exit at
    start, see exit_if_worker_bootstrap), else a native crash of the compiled strategy."""
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


def map_tasks(tasks: list, done, *, jobs: int, engine: str, address: str | None, worker=None,
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
