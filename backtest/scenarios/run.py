"""Stress runs: the replay, scenarios and Monte Carlo paths of one strategy, through the sweep's
runner (backtest/sweep_dispatch.py: a saved, resumable run per variant; local processes or Ray).

Layout of a stress folder::

    STRESS_DIR/stress.json          what was asked (strategy, data, scenarios, paths, crowd)
    STRESS_DIR/runs/<id>/           one full saved run per variant (written atomically)
    STRESS_DIR/crowd/<id>.parquet   the crowd's buckets and when each was liquidated, per variant
    STRESS_DIR/table.parquet        one row per run (table.py)
    STRESS_DIR/summary.json         probability of liquidation, quantiles, expected shortfall

A variant is a recipe (scenario transforms, a bootstrap path or a generator seed, the crowd) that
a worker turns into a derived dataset in a temporary folder, runs, and deletes; the id hashes the
recipe with the strategy, its parameters, the config and the source data, so a rerun skips
finished runs and an interrupted stress test resumes.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..config import RunConfig
from ..errors import CascadeError, ConfigError
from .. import sweep, sweep_dispatch
from .transforms import Scenario, check_scenario, parse_scenario

SPEC = "stress.json"


@dataclass(frozen=True)
class Variant:
    """One run of a stress test: a name, how its data is made, and its leverage (or None)."""

    name: str
    kind: str  # replay | scenario | path
    scenarios: tuple = ()  # Scenario, applied in order
    path: int | None = None  # Monte Carlo path number
    leverage: float | None = None
    crowd: bool = False

    def recipe(self, mc: dict, crowd: dict | None) -> dict:
        return {"scenarios": [[s.kind, s.params] for s in self.scenarios],
                "path": None if self.path is None else {"n": self.path, **mc},
                "crowd": crowd if self.crowd else None}


@dataclass(frozen=True)
class StressTask:
    """What a worker needs for one variant (small and picklable)."""

    task: sweep_dispatch.Task  # the engine run; task.data is the source dataset
    recipe: dict
    crowd_table: str
    variant: dict = field(default_factory=dict)


def parse_scenarios(items) -> list[tuple[str, tuple[Scenario, ...]]]:
    """[(name, transforms)] from --scenario strings and TOML entries ({'name', 'transforms'})."""
    out = []
    for item in items or ():
        if isinstance(item, str):
            sc = parse_scenario(item)
            out.append((sc.label, (sc,)))
        elif isinstance(item, Scenario):
            out.append((item.label, (check_scenario(item),)))
        elif isinstance(item, dict):
            raw = item.get("transforms") or item.get("transform") or []
            scs = tuple(parse_scenario(t) if isinstance(t, str) else
                        check_scenario(Scenario(t["kind"], {k: v for k, v in t.items() if k != "kind"}))
                        for t in raw)
            if not scs:
                raise ConfigError(f"scenario {item.get('name', '?')!r}: no transforms")
            out.append((str(item.get("name") or " + ".join(s.label for s in scs)), scs))
        else:
            raise ConfigError(f"scenario: expected a string or a table, got {item!r}")
    return out


def load_scenario_file(path: Path) -> list[dict]:
    """A TOML file of combinations: [[scenario]] name = '...', transforms = ['deepen:...', ...]."""
    import tomllib

    try:
        doc = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the scenario file: {e}") from None
    items = doc.get("scenario", [])
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: expected [[scenario]] tables with name and transforms")
    return items


def variants(scenarios, paths: int, leverages, crowd: bool) -> list[Variant]:
    named = parse_scenarios(scenarios)
    base = [Variant("replay", "replay")]
    if crowd:
        base.append(Variant("crowd", "scenario", crowd=True))
    base += [Variant(name, "scenario", scs, crowd=crowd) for name, scs in named]
    base += [Variant(f"path-{k:04d}", "path", path=k, crowd=crowd) for k in range(paths)]
    if not leverages:
        return base
    return [Variant(v.name, v.kind, v.scenarios, v.path, float(lev), v.crowd) for lev in leverages for v in base]


# --- the worker --------------------------------------------------------------------------------
def build_data(source: Path, recipe: dict, out: Path, crowd_table: Path | None = None,
               symbols: list[str] | None = None) -> Path:
    """Materialise a variant's dataset into `out` (the crowd's table to `crowd_table`); only the
    run's `symbols` when given (all by default)."""
    from .bootstrap import bootstrap
    from .crowd import Crowd, run_crowd
    from .transforms import apply, load_streams, write_streams

    mc = recipe.get("path")
    if mc and mc["method"] == "seeds":
        from ..data.generate import generate_dataset

        # a seed path has an L2 book when the source dataset has one (generated with --no-book: none)
        generate_dataset(mc["scenario"], out.with_name(out.name + "-gen"), seed=int(mc["seed"]) + int(mc["n"]),
                         scale=float(mc["scale"]), book=(Path(source) / "kind=book").is_dir())
        source = out.with_name(out.name + "-gen")
    try:
        streams = load_streams(source, symbols)
        if mc and mc["method"] == "bootstrap":
            streams = bootstrap(streams, int(mc["seed"]), int(mc["n"]), block=mc["block"], step=mc["step"])
        streams = apply(streams, [Scenario(k, p) for k, p in recipe["scenarios"]])
        if recipe.get("crowd") is not None:
            cascade = run_crowd(streams, Crowd.from_dict(recipe["crowd"]))
            streams = cascade.streams
            if crowd_table is not None:
                from ..atomic import write_parquet

                crowd_table.parent.mkdir(parents=True, exist_ok=True)
                write_parquet(cascade.buckets.to_arrow(), crowd_table)
        return write_streams(streams, source, out)
    finally:
        if mc and mc["method"] == "seeds":
            shutil.rmtree(out.with_name(out.name + "-gen"), ignore_errors=True)


def run_stress_task(st: StressTask) -> dict:
    """Worker entry: build the variant's data, run it (or load the finished run), clean up."""
    from .table import run_row

    run_dir = Path(st.task.run_dir)
    if (run_dir / "manifest.json").is_file():
        return run_row(run_dir, "skipped")
    plain = not st.recipe["scenarios"] and not st.recipe["path"] and st.recipe["crowd"] is None
    tmp = run_dir.parent / f".data-{st.task.config_id}"
    try:
        data = st.task.data
        if not plain:
            shutil.rmtree(tmp, ignore_errors=True)
            data = str(build_data(Path(st.task.data), st.recipe, tmp, Path(st.crowd_table), st.task.symbols))
        row = sweep_dispatch.run_task(sweep_dispatch.Task(st.task.strategy, data, st.task.params, st.task.config,
                                        st.task.run_dir, st.task.config_id, st.task.symbols))
    except CascadeError as e:
        return {"status": "failed", "error": str(e)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if row.get("status") == "failed":
        return row
    return run_row(run_dir, row["status"])


# --- the stress test ----------------------------------------------------------------------------
@dataclass
class StressResult:
    table: object  # polars DataFrame, one row per run
    summary: object  # polars DataFrame, one row per group
    out: Path
    ran: int
    skipped: int
    failed: int

    def __repr__(self):
        return f"StressResult({self.out}, {self.table.height} runs: {self.ran} ran, {self.skipped} skipped, {self.failed} failed)"


def stress(strategy, data, *, out, scenarios=(), scenario_file=None, paths: int = 0,
           method: str = "bootstrap", seed: int = 0, block: str = "1h", step: str = "1m",
           scenario: str = "feb-2026-crash", scale: float = 1.0, crowd=None, leverages=None,
           leverage_symbol: str | None = None, params=None, symbols=None, config=None, jobs: int = 0,
           engine: str = "local", address: str | None = None, progress=None) -> StressResult:
    """Run `strategy` on the replay of `data`, on each scenario and on `paths` Monte Carlo paths.

    `scenarios`: strings like 'deepen:factor=1.4,start=...,end=...' or {'name', 'transforms'}
    tables (combinations); `scenario_file`: a TOML file of them. `method`: 'bootstrap' (of `data`,
    mean block length `block` on a grid of `step`) or 'seeds' (the crash generator `scenario` at
    `scale` with seeds seed, seed+1, ...). `crowd`: None (off), True (the default crowd) or a dict
    of Crowd options. `leverages`: a list of leverages for `leverage_symbol` (default: the crowd's
    or the only symbol), each run with every variant; the strategy's `leverage` parameter, if it
    has one, is set too. `progress(done, total, info)` after each run.
    """
    from ..plugins.resolve import resolve_strategy
    from .crowd import Crowd
    from .table import summarize, write_table

    out = Path(out)
    cls = resolve_strategy(strategy) if isinstance(strategy, str) else strategy
    cfg = config if isinstance(config, RunConfig) else RunConfig.from_dict(config or {})
    if method not in ("bootstrap", "seeds"):
        raise ConfigError(f"--method: expected 'bootstrap' or 'seeds', got {method!r}")
    if paths < 0:
        raise ConfigError("--paths must not be negative")
    if engine not in ("local", "ray"):
        raise ConfigError(f"--engine: expected 'local' or 'ray', got {engine!r}")
    items = list(scenarios or ()) + (load_scenario_file(scenario_file) if scenario_file else [])
    crowd_d = None if crowd in (None, False) else Crowd.from_dict({} if crowd is True else crowd).to_dict()
    vs = variants(items, paths, leverages, crowd_d is not None)
    if leverages:
        leverage_symbol = leverage_symbol or (crowd_d or {}).get("symbol") or (symbols[0] if symbols and len(symbols) == 1 else None)
        if not leverage_symbol:
            raise ConfigError("leverages: name the symbol they apply to (--leverage-symbol)")
    # only what makes the paths enter their ids
    mc = {"method": method, "seed": int(seed), **({"block": block, "step": step} if method == "bootstrap"
                                                  else {"scenario": scenario, "scale": float(scale)})}
    # the source fingerprint ties every id to the data it derives from
    from ..data.reader import open_dataset

    fp = open_dataset(Path(data), symbols=symbols, chunk_rows=cfg.chunk_rows).fingerprint()
    base = {f.name: f.default for f in cls.params().values()}
    fixed = {**base, **cls.resolve_params(params or {})}
    ref, tasks = sweep.strategy_ref(cls), []
    for v in vs:
        p, c = dict(fixed), cfg.to_dict()
        if v.leverage is not None:
            c = {**c, "leverage": {**c.get("leverage", {}), leverage_symbol: v.leverage}}
            if "leverage" in p:
                p["leverage"] = type(p["leverage"])(v.leverage)
        recipe = v.recipe(mc, crowd_d)
        vfp = hashlib.sha256(json.dumps([fp, recipe], sort_keys=True, default=str).encode()).hexdigest()
        cid = sweep.config_id(cls, p, c, vfp)
        t = sweep_dispatch.Task(ref, str(Path(data).resolve()), p, c, str(out / "runs" / cid), cid, symbols)
        info = {"variant": v.name, "kind": v.kind, "path": v.path, "leverage": v.leverage}
        tasks.append(StressTask(t, recipe, str(out / "crowd" / f"{cid}.parquet"), info))
    out.mkdir(parents=True, exist_ok=True)
    from ..atomic import write_text

    write_text(out / SPEC, json.dumps({
        "strategy": ref, "data": str(Path(data).resolve()), "params": fixed, "config": cfg.to_dict(),
        "symbols": symbols, "scenarios": [[n, [s.label for s in scs]] for n, scs in parse_scenarios(items)],
        "paths": paths, "monte_carlo": mc, "crowd": crowd_d, "leverages": leverages,
        "leverage_symbol": leverage_symbol}, indent=2, sort_keys=True, default=str))

    rows: dict[str, dict] = {}

    def done(st: StressTask, row: dict) -> None:
        rows[st.task.config_id] = {**st.variant, "config_id": st.task.config_id, **row,
                                   "run_dir": st.task.run_dir,
                                   "crowd_table": st.crowd_table if st.recipe["crowd"] is not None else None}
        if progress is not None:
            liq = sum(bool(r.get("liquidated")) for r in rows.values())
            progress(len(rows), len(tasks), f"liquidated {liq}/{len(rows)}")

    if progress is not None:
        progress(0, len(tasks), "")
    try:
        pending = []
        for st in tasks:
            if (Path(st.task.run_dir) / "manifest.json").is_file():
                done(st, run_stress_task(st))
            else:
                pending.append(st)
        if pending:  # the first pending run compiles the strategy into the cache the workers load
            done(pending[0], run_stress_task(pending[0]))
        sweep_dispatch.map_tasks(pending[1:], done, jobs=jobs, engine=engine, address=address, worker=run_stress_task)
    except KeyboardInterrupt:
        # runs and derived datasets cut short by the interrupt; finished runs are kept
        for tmp in [*(out / "runs").glob(".*.tmp-*"), *(out / "runs").glob(".data-*")]:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        table = write_table(out, [rows[t.task.config_id] for t in tasks if t.task.config_id in rows])
    summary = summarize(table, out)
    counts = {s: sum(r["status"] == s for r in rows.values()) for s in ("ran", "skipped", "failed")}
    return StressResult(table, summary, out, counts["ran"], counts["skipped"], counts["failed"])
