"""`backtest stress`: the replay, scenarios and Monte Carlo paths of a strategy (docs/stress.md)."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import ConfigError
from .run import _echo_json, _pct, _run_options, _spec


def _crowd(items) -> dict | bool | None:
    """--crowd on | --crowd KEY=VALUE (repeatable) -> None, True or {key: value}."""
    if not items:
        return None
    opts = {}
    for item in items:
        if item.strip().lower() in ("on", "default", "true"):
            continue
        k, sep, v = item.partition("=")
        if not sep:
            raise ConfigError(f"--crowd: expected 'on' or KEY=VALUE, got {item!r}")
        opts[k.strip()] = v.strip()
    return opts or True


@click.command("stress")
@_run_options
@click.option("--out", metavar="STRESS_DIR", help="Stress folder (reruns skip finished runs).")
@click.option("--scenario", "scenarios", multiple=True, metavar="KIND:K=V,...",
              help="A transform (repeatable, each its own run): deepen, accelerate, thin, funding, "
                   "gap, outage, e.g. deepen:factor=1.4,start=2026-02-05,end=2026-02-05T21:00.")
@click.option("--scenario-file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML file of combinations: [[scenario]] name=..., transforms=[...].")
@click.option("--paths", type=click.IntRange(min=0), default=0, show_default=True,
              help="Monte Carlo paths.")
@click.option("--method", type=click.Choice(["bootstrap", "seeds"]), default="bootstrap", show_default=True,
              help="Paths from a block bootstrap of the data, or from the crash generator's seeds.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the paths.")
@click.option("--block", default="1h", show_default=True, help="Bootstrap: mean block length.")
@click.option("--step", default="1m", show_default=True, help="Bootstrap: return grid step.")
@click.option("--gen-scale", type=float, default=1.0, show_default=True,
              help="Seeds: scale of the generated datasets.")
@click.option("--crowd", "crowd_items", multiple=True, metavar="on|K=V",
              help="Add the leveraged crowd's liquidation cascade: 'on' for the default calibration, "
                   "or options (repeatable), e.g. open_interest=12e9, impact=3, leverages=5+10+20.")
@click.option("--leverages", metavar="2,5,10", help="Run every variant at each of these leverages.")
@click.option("--leverage-symbol", metavar="SYM", help="Symbol of --leverages (default: the crowd's "
              "symbol or the only one of --symbols).")
@click.option("--jobs", "-j", type=int, default=0, help="Worker processes (default: all CPUs).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", metavar="ADDR", help="Ray cluster address (with --engine ray).")
@click.option("--report", "make_report", is_flag=True, help="Also draw the figures into STRESS_DIR/report.")
def stress_cmd(**o):
    """Stress a strategy: the replay, transformed scenarios, Monte Carlo paths, a liquidation cascade.

    \b
    Examples:
      backtest stress buy_and_hold --data data/generated/feb-2026-crash --symbols BTCUSDT \\
          --param leverage=10 --leverage BTCUSDT=10 --margin-mode isolated --out runs/stress \\
          --scenario deepen:factor=1.4,start=2026-02-05,end=2026-02-05T21:00 \\
          --scenario thin:spread=3,depth=0.3 --paths 200 --crowd on --report
      backtest stress buy_and_hold --data data/generated/feb-2026-crash --symbols BTCUSDT --out runs/lev \\
          --paths 100 --leverages 2,3,5,10,20
      backtest stress reference --data data/generated/feb-2026-crash --scenario-file combos.toml --out runs/c

    Writes STRESS_DIR/table.parquet (one row per run: final equity, max drawdown, liquidated,
    time of liquidation, worst margin ratio) and summary.json (probability of liquidation,
    quantiles of return and drawdown, expected shortfall 95 %). Rerunning skips finished runs.
    """
    spec = _spec(o)
    spec.require("strategy", "data", "out")
    from .. import progress as prog
    from ..scenarios.run import stress

    leverages = None
    if o["leverages"]:
        try:
            leverages = [float(x) for x in o["leverages"].split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"--leverages: expected numbers like 2,5,10, got {o['leverages']!r}") from None
    show = prog.enabled(o["quiet"] or o["as_json"])
    with prog.Bars(show) as bars:
        res = stress(spec.strategy, spec.data, out=Path(spec.out), scenarios=o["scenarios"],
                     scenario_file=o["scenario_file"], paths=o["paths"], method=o["method"],
                     seed=o["seed"], block=o["block"], step=o["step"], scale=o["gen_scale"],
                     crowd=_crowd(o["crowd_items"]), leverages=leverages,
                     leverage_symbol=o["leverage_symbol"], params=spec.params, symbols=spec.symbols,
                     config=spec.config, jobs=o["jobs"], engine=o["engine"], address=o["address"],
                     progress=bars.sweep_callback(0, "stress"))
    report = None
    if o["make_report"]:
        from ..report.stress_figures import write_stress_report

        report = {k: str(v) for k, v in write_stress_report(res.out).items()}
    if o["as_json"]:
        _echo_json({"out": str(res.out), "ran": res.ran, "skipped": res.skipped, "failed": res.failed,
                    "summary": res.summary.to_dicts(), "report": report})
        return
    for r in res.summary.iter_rows(named=True):
        lev = "" if r["leverage"] is None else f" @ {r['leverage']:g}x"
        click.echo(f"{r['group'][:60]}{lev}: n={r['n']}  P(liquidation) {r['p_liquidation']:.1%}  "
                   f"median return {_pct(r['return_q50'])}  5% return {_pct(r['return_q05'])}  "
                   f"median max drawdown {_pct(-r['drawdown_q50'])}  ES95 {_pct(-r['es95'])}")
    failed = res.table.filter(res.table["status"] == "failed")
    for r in failed.head(5).iter_rows(named=True):
        click.echo(f"failed {r['variant']}: {r['error']}", err=True)
    click.echo(f"stress {res.out}: {res.table.height} run(s): {res.ran} ran, {res.skipped} skipped, "
               f"{res.failed} failed")
    if report:
        click.echo(f"report {res.out / 'report'} ({len(report)} file(s))")
    if res.failed and not (res.ran + res.skipped):
        raise SystemExit(1)


def register(cli):
    cli.add_command(stress_cmd)
