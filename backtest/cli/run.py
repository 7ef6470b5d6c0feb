"""`backtest run | sweep | walk-forward | list-strategies | cache`: thin shells over the library.

Every command takes its settings from an optional TOML file (--config) overridden by flags; see
backtest/runconfig.py. Heavy modules are imported inside the commands so `--help` is quick and
`--no-jit` (handled by backtest.cli.main before numba loads) takes effect.
"""
from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from pathlib import Path

import click

from ..config import MARGIN_MODES, SLIPPAGE_MODELS
from ..errors import ConfigError
from . import exit_interrupted, ignore_interrupts, take_interrupts


# --- shared options ------------------------------------------------------------------------
def _run_options(f):
    """Options shared by run, sweep and walk-forward (what to run and the RunConfig knobs)."""
    opts = [
        click.argument("strategy", required=False),
        click.option("--data", metavar="DIR", help="Dataset folder or s3://BUCKET/PREFIX (data/README.md)."),
        click.option("--s3-endpoint", metavar="URL", help="S3 endpoint [default: $AWS_ENDPOINT_URL_S3/$AWS_ENDPOINT_URL]."),
        click.option("--s3-cache", metavar="DIR", help="Keep s3:// datasets in this read cache [default: $CASCADE_S3_CACHE, else a temp folder]."),
        click.option("--config", "config_file", type=click.Path(dir_okay=False),
                     help="TOML run config; flags override its values."),
        click.option("--param", "-p", "param_items", multiple=True, metavar="K=V",
                     help="Strategy parameter (repeatable)."),
        click.option("--symbols", metavar="A,B", help="Symbols to load (default: all in the dataset)."),
        click.option("--start", metavar="ISO", help="First time, UTC (2026-02-05 or 2026-02-05T12:00)."),
        click.option("--end", metavar="ISO", help="End time, UTC, exclusive."),
        click.option("--latency", metavar="DURATION", help="Order entry latency, e.g. 5ms."),
        click.option("--slippage", type=click.Choice(SLIPPAGE_MODELS),
            help="Taker price model (docs/execution.md)."),
        click.option("--execution", "execution_preset", type=click.Choice(["configured", "ideal"]),
                     default="configured", show_default=True,
                     help="'ideal' replays with perfect fills (no latency, spread, impact or partial "
                          "fills) to show how much of the edge is execution."),
        click.option("--benchmark", metavar="SYMBOL",
                     help="Buy-and-hold benchmark symbol [default: the first symbol traded]."),
        click.option("--leverage", "leverage_items", multiple=True, metavar="KEY=X",
                     help="Leverage (repeatable): a symbol BTCUSDT=20, a type linear_perpetual=10, "
                          "perp=5 or '*=5' (every perpetual); the most specific wins."),
        click.option("--margin-mode", type=click.Choice(MARGIN_MODES), help="Default margin mode."),
        click.option("--timer", metavar="DURATION",
                     help="on_timer interval, e.g. 1h [default: the strategy's `timer`, else none]."),
        click.option("--set", "set_items", multiple=True, metavar="KEY=VALUE",
                     help="Any config key, dotted (repeatable): --set execution.touch_fills=true."),
        click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON only."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
        click.option("--no-jit", is_flag=True, help="Run as plain Python (for debuggers; slow)."),
        click.option("--boundscheck", is_flag=True,
                     help="Compile with bounds checks: an out-of-range index in a hook is an "
                          "IndexError naming the event, not a crash (slower; handled by backtest.cli.main)."),
        click.option("--debug", is_flag=True, help="Show tracebacks of errors."),
    ]
    return functools.reduce(lambda g, o: o(g), reversed(opts), f)


def _spec(o: dict, **extra):
    """RunSpec from --config and the flags in `o` (a command's keyword arguments)."""
    from ..runconfig import build_spec, parse_assignments

    _check_no_jit(o.get("no_jit"))
    from ..data.storage import use_flags

    use_flags(o.get("s3_endpoint"), o.get("s3_cache"))
    _one_line_warnings(json_only=bool(o.get("as_json")))
    over = {"strategy": o.get("strategy"), "data": o.get("data"), "symbols": o.get("symbols"),
            "start": o.get("start"), "end": o.get("end"), "out": o.get("out"), "timer": o.get("timer"),
            "params": parse_assignments(o.get("param_items"), "--param"),
            "leverage": parse_assignments(o.get("leverage_items"), "--leverage"),
            "execution": {"latency": o.get("latency"), "slippage": o.get("slippage")},
            "margin": {"mode": o.get("margin_mode")}, "benchmark": o.get("benchmark"), **extra}
    spec = build_spec(o.get("config_file"), over, parse_assignments(o.get("set_items"), "--set"))
    if o.get("execution_preset") == "ideal":  # same fees, perfect fills
        import dataclasses

        from ..config import ExecutionConfig

        x = spec.config.execution
        ideal = dataclasses.replace(ExecutionConfig.ideal(), fee_tiers=x.fee_tiers,
                                    initial_volume_30d=x.initial_volume_30d)
        spec = dataclasses.replace(spec, config=dataclasses.replace(spec.config, execution=ideal))
    return spec


_WARNINGS: dict = {"json_only": False, "pending": []}


def _one_line_warnings(json_only: bool) -> None:
    """Collect CascadeWarnings, each time they occur, for `_print_warnings`: one line each after
    the summary, so that a failing run still ends in exactly one `error:` line. With --json they
    are left to the JSON (the manifest's "warnings")."""
    import warnings

    from ..errors import CascadeWarning

    _WARNINGS.update(json_only=json_only, pending=[])
    warnings.filterwarnings("always", category=CascadeWarning)
    if getattr(warnings.showwarning, "_cascade", False):
        return
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, CascadeWarning):
            default(message, category, filename, lineno, file, line)
        elif not _WARNINGS["json_only"] and str(message) not in _WARNINGS["pending"]:
            _WARNINGS["pending"].append(str(message))

    show._cascade = True
    warnings.showwarning = show


def _print_warnings() -> None:
    for text in _WARNINGS["pending"]:
        click.echo(f"warning: {text}", err=True)
    _WARNINGS["pending"] = []


def _check_no_jit(no_jit) -> None:
    if not no_jit or os.environ.get("NUMBA_DISABLE_JIT") == "1":
        return
    if "numba" in sys.modules:  # only reachable when called in-process (backtest.cli.main sets it early)
        raise ConfigError("--no-jit must take effect before numba loads: use the `backtest` command "
                          "or set NUMBA_DISABLE_JIT=1")
    os.environ["NUMBA_DISABLE_JIT"] = "1"


def _echo_json(obj) -> None:
    click.echo(json.dumps(_finite(obj), indent=2, default=str))


def _finite(v):
    """NaN/inf -> null: strict JSON for jq and friends."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _pct(v) -> str:
    return "n/a" if v is None else f"{v * 100:+.2f}%"


def _num(v, dec: int = 2) -> str:
    return "n/a" if v is None else f"{v:,.{dec}f}"


# --- run -------------------------------------------------------------------------------------
@click.command("run")
@_run_options
@click.option("--out", metavar="RUN_DIR", help="Run folder to write (locked while running).")
@click.option("--overwrite", is_flag=True, help="Replace RUN_DIR when it already holds a run.")
@click.option("--seed", type=int, help="Run seed (stochastic models).")
@click.option("--report", "make_report", is_flag=True, help="Also draw the tear sheet into RUN_DIR/report.")
def run_cmd(**o):
    """Run a backtest and save it to a run folder.

    \b
    Examples:
      backtest run reference --data data/generated/feb-2026-crash --out runs/ref
      backtest run reference --data data/generated/feb-2026-crash --out runs/ref-20x \\
          --param entry=61500 --leverage BTCUSDT=20 --latency 5ms --report
      backtest run --config examples/crash_long_20x.toml --margin-mode cross
      backtest run my_strats.py:Breakout --data data/btc --out runs/b --json | jq .headline

    STRATEGY is a bundled name (see `backtest list-strategies`), module:Class or
    path/to/file.py[:Class]. Prints headline numbers and timings; exit code 1 when
    the run fails, 2 for usage or config errors.
    """
    spec = _spec(o, seed=o["seed"])
    spec.require("strategy", "data", "out")
    from .. import progress as prog
    from ..engine import run

    from ..atomic import output_lock

    show = prog.enabled(o["quiet"] or o["as_json"])
    out = Path(spec.out)
    with output_lock(out):  # held through config.toml and the report, not just the run
        _check_out(out, o["overwrite"])
        total = prog.estimate_events(spec.data, spec.symbols, spec.start, spec.end) if show else None
        with prog.Bars(show) as bars:
            res = run(spec.strategy, spec.data, params=spec.params, symbols=spec.symbols, start=spec.start,
                      end=spec.end, config=spec.config, progress=bars.run_callback(total))
        # the run folder and its config.toml in one rename; from just before it, a Ctrl-C is too
        # late to undo the run (exit 130 always means nothing was saved)
        text = _config_toml(spec)
        res.save(out, extra={"config.toml": text} if text is not None else None,
                 before_commit=ignore_interrupts)
        report = None
        if o["make_report"]:
            take_interrupts()  # the report can take a while: Ctrl-C stops it, the run stays saved
            try:
                report = _report(out, quiet=o["as_json"])
            except KeyboardInterrupt:
                exit_interrupted(f"interrupted: the run is saved in {out} without its report "
                                 f"(draw it with: backtest report {out})")
    m = res.manifest
    if o["as_json"]:
        _echo_json({"run_dir": str(spec.out), "strategy": m["strategy"]["class"],
                    "params": m["strategy"]["params"], "symbols": m["symbols"], "headline": m["headline"],
                    "metrics": m.get("metrics"), "timings": m["timings"], "config": m["config"],
                    "rejects": res.rejects, "warnings": m.get("warnings", []), "report": report})
        return
    h, t = m["headline"], m["timings"]
    click.echo(f"{m['strategy']['name']} on {', '.join(m['symbols'])}")
    click.echo(f"  final equity {_num(h['final_equity'])} {m.get('settle_currency', '')}   "
               f"return {_pct(h['return'])}   max drawdown {_pct(h['max_drawdown'])}   "
               f"trades {h.get('trades')}   fees {_num(h['fees'])}   liquidations {h['liquidations']}")
    from ..result import rejects_text

    click.echo(f"  rejected orders {rejects_text(res.rejects)}")
    sharpe = (m.get("metrics") or {}).get("sharpe")
    if sharpe is not None:
        click.echo(f"  sharpe {_num(sharpe)}")
    elif (m.get("metrics") or {}).get("ratios_note"):
        click.echo(f"  sharpe, sortino, calmar not reported: {m['metrics']['ratios_note']}")
    rate = t.get("events_per_s")
    click.echo(f"  compile {t['compile_s']:.2f} s   run {t['run_s']:.2f} s   {t['events']:,} events   "
               f"{_num(rate, 0)} events/s{'' if t.get('jit', True) else '   (no JIT)'}")
    click.echo(f"saved {spec.out}")
    if report:
        click.echo(f"report {Path(spec.out) / 'report'} ({len(report)} file(s))")
    _print_warnings()


def _check_out(out: Path, overwrite: bool) -> None:
    """Never replace a finished run by surprise, nor a folder that is not a run at all."""
    if not out.exists():
        return
    if (out / "manifest.json").is_file():
        if not overwrite:
            raise ConfigError(f"{out} already holds a run: pass --overwrite to replace it, or choose "
                              "another --out")
    elif not out.is_dir() or any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not a run folder: choose another --out "
                          "(a run replaces its whole folder)")


def _config_toml(spec) -> str | None:
    """RUN_DIR/config.toml: the effective config, so `backtest run --config` reproduces the run."""
    from ..runconfig import to_toml

    return to_toml(resolved_paths(spec.to_dict()))


def resolved_paths(d: dict) -> dict:
    """data, out and a strategy file as absolute paths, so the saved config reruns from anywhere."""
    d = dict(d)
    for key in ("data", "out"):
        if d.get(key) and not str(d[key]).startswith("s3://"):
            d[key] = str(Path(d[key]).resolve())
    strategy = d.get("strategy")
    if strategy:
        path, sep, cls = strategy.rpartition(":") if strategy.count(":") == 1 else (strategy, "", "")
        if path.endswith(".py") and Path(path).is_file():
            d["strategy"] = str(Path(path).resolve()) + sep + cls
    return d


def _report(run_dir: Path, quiet: bool) -> dict | None:
    try:
        from ..report.tearsheet import write_report
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("backtest.report"):
            raise
        click.echo("note: --report skipped (backtest.report.tearsheet is not available)", err=True)
        return None
    return {k: str(v) for k, v in write_report(run_dir).items()}


# --- sweep -----------------------------------------------------------------------------------
def _sweep_options(f):
    opts = [
        click.option("--grid", "grid_items", multiple=True, metavar="NAME=VALUES",
                     help="Swept parameter (repeatable): a list 61000,62000 or an inclusive range 59000:61000:500."),
        click.option("--random", "n_random", type=click.IntRange(min=0),
                     help="Random search: run N distinct grid points instead of all."),
        click.option("--seed", type=click.IntRange(min=0), help="Seed of --random (same seed, same points)."),
        click.option("--metric", help="Ranking metric: return, sharpe, sortino, calmar, max_drawdown, ... "
                                      "[default: return]"),
        click.option("--jobs", "-j", type=click.IntRange(min=0), help="Parallel runs [default: all CPUs]."),
        click.option("--engine", type=click.Choice(["local", "ray"]), help="Where runs execute [default: local]."),
        click.option("--address", help="Ray cluster address, e.g. ray://head:10001 (implies --engine ray; "
                                        "docs/cluster.md)."),
        click.option("--batch-size", type=click.IntRange(min=0),
                     help="Most parameter sets one process runs in one pass over the data "
                          "[default: as many as $CASCADE_BATCH_MEMORY_MB (1024) allows; 1: a pass per set]."),
    ]
    return functools.reduce(lambda g, o: o(g), reversed(opts), f)


def _sweep_spec(o: dict, **extra):
    from ..sweep import parse_grid_arg

    grid = dict(parse_grid_arg(g) for g in o["grid_items"])
    sweep = {"grid": grid, "random": o["n_random"], "seed": o["seed"], "metric": o["metric"],
             "jobs": o["jobs"], "engine": o["engine"] or ("ray" if o["address"] else None),
             "address": o["address"], "batch_size": o["batch_size"]}
    spec = _spec(o, sweep=sweep, **extra)
    spec.require("strategy", "data", "out")
    if not spec.sweep["grid"]:
        raise ConfigError("nothing to sweep: give --grid NAME=VALUES (or [sweep.grid] in the config)")
    return spec


def _sweep_kwargs(spec) -> dict:
    s = spec.sweep
    return dict(grid=s["grid"], random=s["random"], seed=s["seed"], metric=s["metric"], jobs=s["jobs"],
                engine=s["engine"], address=s["address"], batch_size=s["batch_size"],
                params=spec.params, symbols=spec.symbols,
                start=spec.start, end=spec.end, config=spec.config)


def _interrupted(out: Path, what: str):
    n = len(list((out / "runs").glob("*/manifest.json"))) if (out / "runs").is_dir() else 0
    click.echo(f"interrupted: {n} finished run(s) kept in {out}; rerun the same {what} to resume", err=True)
    sys.exit(130)


@click.command("sweep")
@_run_options
@_sweep_options
@click.option("--out", metavar="SWEEP_DIR", help="Sweep folder (runs/, results.parquet, heatmap.png).")
@click.option("--top", default=10, show_default=True, type=click.IntRange(min=0), help="Rows printed.")
def sweep_cmd(**o):
    """Run a parameter grid (or a random sample of it) and rank the runs.

    \b
    Examples:
      backtest sweep reference --data data/generated/feb-2026-crash --out sweeps/ref \\
          --grid entry=61000,62000 --grid stop=59000:61000:500 --metric return
      backtest sweep reference --data data/generated/feb-2026-crash --out sweeps/rnd \\
          --grid entry=60000:63000:100 --grid target=64000:68000:250 --random 50 --seed 1
      backtest sweep --config examples/sweep_reference.toml --jobs 4
      backtest sweep reference ... --engine ray --address ray://head:10001

    \b
    Writes SWEEP_DIR/runs/<config-id>/ (one saved run each), results.parquet
    (ranked by --metric, best first) and, for two swept parameters, heatmap.png.
    Rerunning the same sweep skips finished runs; Ctrl-C keeps them.
    """
    spec = _sweep_spec(o)
    from .. import progress as prog
    from ..atomic import output_lock
    from ..sweep import run_sweep

    out, t0 = Path(spec.out), time.perf_counter()
    side = _side_figure(spec.sweep["grid"])
    try:
        # the figure belongs to the sweep folder: drawn under its lock
        with output_lock(out), _result_helper(spec):
            with prog.Bars(prog.enabled(o["quiet"] or o["as_json"])) as bars:
                res = run_sweep(spec.strategy, spec.data, out=out, progress=bars.sweep_callback(0, "sweep"),
                                **_sweep_kwargs(spec))
            heatmap = side.heatmap(res)
    except KeyboardInterrupt:
        _interrupted(out, "sweep")
    finally:
        side.close()  # a failed sweep: the side process ends without drawing
    secs = time.perf_counter() - t0
    metric, df = res.metric, res.table
    if o["as_json"]:
        _echo_json({"out": str(out), "results": str(out / "results.parquet"),
                    "heatmap": str(heatmap) if heatmap else None, "metric": metric, "runs": df.height,
                    "ran": res.ran, "skipped": res.skipped, "failed": res.failed, "seconds": round(secs, 2),
                    "best": res.best, "top": df.head(o["top"]).to_dicts()})
        return
    click.echo(f"sweep {out}: {df.height} run(s): {res.ran} ran, {res.skipped} skipped, "
               f"{res.failed} failed in {secs:.1f} s")
    _print_rows(df.head(o["top"]), metric)
    click.echo(f"results {out / 'results.parquet'}")
    if heatmap:
        click.echo(f"heatmap {heatmap}")
    for r in df.filter(df["status"] == "failed").head(3).iter_rows(named=True):
        click.echo(f"failed {r['config_id']}: {r['error']}", err=True)
    _print_warnings()


def _side_figure(grid: dict | None = None):
    """The figure's side process (report/side_draw.py), started now so that it imports matplotlib
    while the command runs; for a sweep, only when it will draw a heatmap (two swept parameters)."""
    from ..report.side_draw import SideFigure

    side = SideFigure()
    if grid is not None:
        from ..sweep import swept_names

        if len(swept_names(grid)) != 2:  # SweepResult.heatmap_axes' rule
            return side
    return side.start()


def _result_helper(spec):
    """The batches' result helper (batch_helper.py), started now so that it imports while the
    command plans; not with --jobs 1 (one core asked for)."""
    from ..batch_helper import started

    return started(spec.sweep["jobs"] != 1)


def _print_rows(df, metric: str) -> None:
    params = [c for c in df.columns if c.startswith("param.")]
    from ..sweep import column_of

    cols = ["rank", *params, column_of(metric)]
    cols += [c for c in ("return_pct", "max_drawdown_pct", "trades") if c not in cols]
    header = [c.removeprefix("param.") for c in cols]
    rows = [[_cell(r.get(c)) for c in cols] for r in df.iter_rows(named=True)]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    click.echo("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for r in rows:
        click.echo("  ".join(v.rjust(w) for v, w in zip(r, widths)))


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.6g}" if abs(v) >= 1 else f"{v:.4g}"
    return str(v)


# --- walk-forward -----------------------------------------------------------------------------
@click.command("walk-forward")
@_run_options
@_sweep_options
@click.option("--train", metavar="DURATION", help="In-sample window, e.g. 1d.")
@click.option("--test", metavar="DURATION", help="Out-of-sample window, e.g. 12h.")
@click.option("--step", metavar="DURATION", help="Window advance [default: --test].")
@click.option("--out", metavar="WF_DIR", help="Output folder.")
def walk_forward_cmd(**o):
    """Optimise on rolling in-sample windows, trade each next window out of sample.

    \b
    Example:
      backtest walk-forward reference --data data/generated/feb-2026-crash --out wf/ref \\
          --grid entry=61000:63000:500 --grid stop=59000,60000 \\
          --train 1d --test 12h --metric sharpe

    \b
    Writes WF_DIR/windows.parquet (per window: times, chosen params, in- and
    out-of-sample metrics), oos_equity.parquet (the out-of-sample equity,
    each window continuing from the previous end) and oos_equity.png; the
    in-sample sweeps and out-of-sample runs are kept under is/ and oos/.
    """
    wf = {"train": o["train"], "test": o["test"], "step": o["step"]}
    spec = _sweep_spec(o, walk_forward=wf)
    w = spec.walk_forward
    if not (w["train"] and w["test"]):
        raise ConfigError("walk-forward needs --train and --test (or [walk_forward] in the config)")
    from .. import progress as prog
    from ..atomic import output_lock
    from ..walkforward import run_walk_forward

    out, t0 = Path(spec.out), time.perf_counter()
    side = _side_figure()
    try:
        # the figure belongs to the walk-forward folder: drawn under its lock
        with output_lock(out), _result_helper(spec):
            with prog.Bars(prog.enabled(o["quiet"] or o["as_json"])) as bars:
                res = run_walk_forward(spec.strategy, spec.data, out=out, train=w["train"], test=w["test"],
                                       step=w["step"], progress=bars.sweep_callback(0, "windows"),
                                       **_sweep_kwargs(spec))
            png = side.walk_forward(res)
    except KeyboardInterrupt:
        _interrupted(out, "walk-forward")
    finally:
        side.close()  # a failed walk-forward: the side process ends without drawing
    eq = res.equity
    initial = spec.config.initial_balance
    final = float(eq["equity"][-1]) if eq.height else initial
    if o["as_json"]:
        _echo_json({"out": str(out), "windows": res.windows.to_dicts(), "oos_final_equity": final,
                    "oos_return_pct": (final / initial - 1) * 100, "seconds": round(time.perf_counter() - t0, 2),
                    "files": {**{p.name: str(p) for p in (res.windows_path, res.equity_path)},
                              png.name: str(png)}})
        return
    from ..sweep import column_of

    metric = column_of(spec.sweep["metric"])
    click.echo(f"walk-forward {out}: {res.windows.height} window(s) in {time.perf_counter() - t0:.1f} s")
    params = [c for c in res.windows.columns if c.startswith("param.")]
    for r in res.windows.iter_rows(named=True):
        chosen = " ".join(f"{p.removeprefix('param.')}={_cell(r[p])}" for p in params)
        click.echo(f"  {r['window']:>3}  OOS {_iso(r['oos_start_ns'])} → {_iso(r['oos_end_ns'])}  {chosen}  "
                   f"IS {metric} {_cell(r[f'is_{metric}'])}  OOS {metric} {_cell(r[f'oos_{metric}'])}")
    click.echo(f"out-of-sample: final equity {_num(final)}  return {_pct(final / initial - 1)}")
    click.echo(f"files {res.windows_path}, {res.equity_path}, {png}")
    _print_warnings()


def _iso(ns: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


# --- list-strategies ---------------------------------------------------------------------------
@click.command("list-strategies")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def list_strategies_cmd(as_json):
    """List bundled and installed (entry-point) strategies with their parameters.

    \b
    Example:
      backtest list-strategies
      backtest list-strategies --json | jq '.[0].params'
    """
    from ..plugins.resolve import list_strategies

    items = []
    for name, cls in list_strategies():
        params = {p.name: {"type": p.kind, "default": p.default, "doc": p.doc} for p in cls.params().values()}
        items.append({"name": name, "class": f"{cls.__module__}:{cls.__qualname__}",
                      "description": cls.describe(), "params": params})
    if as_json:
        _echo_json(items)
        return
    for it in items:
        click.echo(f"{it['name']}: {it['description']}")
        pairs = [(f"{k}={v['default']}", v) for k, v in it["params"].items()]
        width = max((len(kv) for kv, _ in pairs), default=0)
        for kv, v in pairs:
            click.echo(f"    {kv:<{width}}  {v['type']:<6}  {v['doc']}")
    if not items:
        click.echo("no strategies found")


def register(cli):
    cli.add_command(run_cmd)
    cli.add_command(sweep_cmd)
    cli.add_command(walk_forward_cmd)
    cli.add_command(list_strategies_cmd)
