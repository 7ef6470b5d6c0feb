"""Sweeps on a Ray cluster whose nodes share no filesystem with the driver.

On Ray (`--engine ray`, `--address`) every sweep run goes through `run_on_node`: the node runs it into a
node-local temporary folder and returns the finished run folder's files (Parquet and JSON, a few MB)
with its metrics row; the driver writes them to the run's folder atomically (`land`). So the sweep
folder only ever exists on the driver, and a run folder appears whole or not at all.

What the nodes need, and where they get it:
- **data**: an ``s3://`` dataset, which each node reads from the bucket into its own read cache
  (`backtest/data/storage.py`; the driver passes its endpoint and region). A local dataset path
  works only when every node sees it at the same path (a shared filesystem).
- **the strategy**: bundled and installed strategies (`name`, `module:Class`) are imported on the
  node. A strategy file is shipped by Ray with the job (`runtime_env` working_dir = the file's
  folder, sibling modules included) and loaded on the node under the driver's module name, so its
  runs (run ids, manifests) are the same as the driver's.
- **compiled code**: each node compiles the strategy into its own numba cache once.
"""
from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

from .atomic import atomic_dir

RUN_FILES = "run_files"  # key of a row that carries a run folder's files back to the driver


def strategy_file(spec: str) -> Path | None:
    """The strategy file of a `path/to/file.py:Class` spec, else None."""
    path, _, _ = spec.partition(":")
    return Path(path) if path.endswith(".py") else None


def runtime_env(spec: str) -> dict:
    """What Ray ships with the job for this strategy: a file strategy's folder."""
    f = strategy_file(spec)
    return {"working_dir": str(f.resolve().parent)} if f is not None else {}


def run_on_node(worker, task):
    """`worker(task)` on a cluster node, for a sweep Task or a BatchTask (several runs in one pass):
    each run into a node-local folder; the runs' files come back in their rows (under RUN_FILES)
    for `land` to write on the driver."""
    batch = hasattr(task, "tasks")
    runs = task.tasks if batch else (task,)
    with tempfile.TemporaryDirectory(prefix="cascade-node-") as tmp:
        local = tuple(dataclasses.replace(t, run_dir=str(Path(tmp) / f"run{k}"), strategy=_node_spec(t.strategy))
                      for k, t in enumerate(runs))
        out = worker(dataclasses.replace(task, tasks=local) if batch else local[0])
        rows = [_with_files(row, Path(t.run_dir)) for t, row in zip(local, out if batch else [out])]
    return rows if batch else rows[0]


def _with_files(row: dict, run_dir: Path) -> dict:
    if not (run_dir / "manifest.json").is_file():
        return row
    return {**row, RUN_FILES: {p.relative_to(run_dir).as_posix(): p.read_bytes()
                               for p in sorted(run_dir.rglob("*")) if p.is_file()}}


def _node_spec(spec: str) -> str:
    """The spec that resolves, on this node, to the driver's strategy class."""
    f = strategy_file(spec)
    if f is None or f.is_file():  # not a file, or the node sees the driver's path
        return spec
    from .plugins.resolve import load_module_from_file, user_module_name

    # Ray unpacked the file's folder as this worker's working directory
    name = user_module_name(f)
    load_module_from_file(Path.cwd() / f.name, name=name)
    return f"{name}:{spec.partition(':')[2]}"


def land(task, result):
    """Write the run folders a node sent back (for a Task its row, for a BatchTask its rows) to
    their `run_dir` on the driver, atomically; returns the row(s) without the files."""
    if hasattr(task, "tasks"):
        return [_land(t, row) for t, row in zip(task.tasks, result)]
    return _land(task, result)


def _land(task, row: dict) -> dict:
    files = row.get(RUN_FILES)
    if files is None:
        return row
    with atomic_dir(Path(task.run_dir)) as tmp:
        for rel, data in files.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        json.loads((tmp / "manifest.json").read_text())  # whole, or the run is not landed
    return {k: v for k, v in row.items() if k != RUN_FILES}
