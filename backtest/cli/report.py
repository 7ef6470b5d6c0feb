"""`backtest report` and `backtest compare`: tear sheets and comparisons of saved run folders."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--format", "-f", "formats", default="png,pdf,html", show_default=True,
              metavar="LIST", help="Comma-separated output formats: png, pdf, html.")
@click.option("--max-trades", default=50, show_default=True, type=click.IntRange(min=0),
              help="Trades listed in the HTML page.")
def report(run_dir: Path, formats: str, max_trades: int):
    """Draw the tear sheet of a saved run into RUN_DIR/report/.

    \b
    Writes one PNG per figure, a multi-page PDF (summary page + one page per
    figure) and a self-contained HTML page (figures embedded, metrics, trades).

    \b
    Examples:
      backtest report runs/ref
      backtest report runs/ref --format png
      backtest report runs/ref -f pdf,html --max-trades 200
    """
    from ..report.tearsheet import write_report

    if (run_dir / "stress.json").is_file():  # a `backtest stress` folder: its risk figures
        from ..report.stress_figures import write_stress_report

        written = write_stress_report(run_dir, formats=formats)
    else:
        written = write_report(run_dir, formats=formats, max_trades=max_trades)
    for key, path in written.items():
        click.echo(f"{key:<22} {path}")
    click.echo(f"wrote {len(written)} file(s) to {run_dir / 'report'}")


@click.command("compare")
@click.argument("run_dirs", nargs=-1, required=True,
                type=click.Path(path_type=Path, file_okay=False))
@click.option("--out", "-o", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="Output folder [default: compare/ next to the first run].")
@click.option("--label", "-l", "labels", multiple=True, metavar="TEXT",
              help="Label of each run, in order (repeat once per run) [default: strategy name and "
                   "the parameters that differ].")
def compare(run_dirs: tuple[Path, ...], out_dir: Path | None, labels: tuple[str, ...]):
    """Overlay the equity curves of runs and tabulate their metrics side by side.

    \b
    Writes compare.png (normalised equity and drawdowns), compare.md and
    compare.html (the metrics table) into the output folder.

    \b
    Examples:
      backtest compare runs/ref runs/ref-5x
      backtest compare runs/sweep/* --out runs/sweep-compare
      backtest compare runs/a runs/b -l baseline -l "5x leverage"
    """
    from ..metrics import COST_PARTS
    from ..report.tearsheet import COMPARE_METRICS, compare_runs

    # slippage followed by its parts (R4.5), so realistic and ideal runs compare cost by cost
    at = COMPARE_METRICS.index("slippage_cost") + 1
    metrics = COMPARE_METRICS[:at] + COST_PARTS + COMPARE_METRICS[at:]
    out_dir = out_dir or (run_dirs[0].parent / "compare")
    res = compare_runs(run_dirs, out_dir, metrics=metrics, labels=labels or None)
    for key in ("png", "md", "html"):
        click.echo(f"{key:<5} {res[key]}")
    click.echo(f"compared {len(run_dirs)} run(s): {', '.join(res['table'].columns[1:])}")


def register(cli):
    cli.add_command(report)
    cli.add_command(compare)
