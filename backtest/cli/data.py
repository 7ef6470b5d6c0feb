"""`backtest data ...` commands (generate, import, validate, inspect, cache).

Heavy modules (polars, pyarrow, the generator) are imported inside the commands so that `--help`
stays quick. Problems are raised as DataError/ConfigError; the top-level group prints them as one
line (exit 1 for data problems, 2 for usage/config).
"""
from __future__ import annotations

import json
import sys

import click

# Kept in step with backtest.data.formats.FORMATS and the catalogue files (tests check it) so that
# --help needs no polars.
IMPORT_FORMATS = ("binance-trades", "binance-aggtrades", "binance-bookticker", "binance-mark-klines",
                  "binance-index-klines", "binance-premium-index-klines", "binance-funding", "bybit-trades", "bybit-spot-trades", "bybit-funding", "tardis-trades",
                  "tardis-quotes", "tardis-book-snapshot-5", "tardis-book-snapshot-25",
                  "tardis-incremental-book-l2", "tardis-derivative-ticker", "binance-klines", "ohlcv",
                  "tardis-liquidations")
VENUES = ("binance-coinm", "binance-usdm", "bybit-linear")


def _show_progress(quiet: bool) -> bool:
    return not quiet and sys.stdout.isatty()


class _Bar:
    """A rich progress bar fed by progress(done, total, label) callbacks (or nothing when off)."""

    def __init__(self, enabled: bool, description: str):
        self.enabled, self.description = enabled, description
        self._progress = self._task = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=None)
        return self

    def __call__(self, done, total, label=""):
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total,
                                  description=f"{self.description} {label}".strip())

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.stop()
        return False


def _print_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


@click.group()
def data():
    """Create, import, validate and inspect tick datasets.

    \b
    Examples:
      backtest data generate --out data/generated/feb-2026-crash
      backtest data import --format binance-trades --symbol BTCUSDT \\
          --out data/btc --instruments instruments.json BTCUSDT-trades-2026-02-05.zip
      backtest data validate data/btc
      backtest data inspect data/btc
    """


@data.command()
@click.option("--scenario", default="feb-2026-crash", show_default=True, help="Scenario to generate.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Dataset folder to create (replaced atomically).")
@click.option("--seed", default=7, show_default=True, type=int, help="Random seed (same seed, same data).")
@click.option("--scale", default=1.0, show_default=True, type=float,
              help="Multiplies the number of ticks (0.1 for a quick small dataset).")
@click.option("--book/--no-book", default=True, show_default=True,
              help="Write L2 depth snapshots (the `book` kind, docs/crash-dataset.md); --no-book leaves them out.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def generate(scenario, out, seed, scale, book, quiet, as_json):
    """Generate a synthetic tick dataset for a scenario.

    \b
    Example:
      backtest data generate --scenario feb-2026-crash --out data/generated/feb-2026-crash --seed 7
    """
    from ..errors import ConfigError

    try:
        from ..data.generate import generate_dataset
    except ModuleNotFoundError as e:
        if e.name != "backtest.data.generate":
            raise
        raise ConfigError("the data generator is not available in this installation") from None
    if scale <= 0:
        raise ConfigError(f"--scale must be > 0, got {scale}")
    with _Bar(_show_progress(quiet or as_json), "generating") as bar:
        summary = generate_dataset(scenario, out, seed=seed, scale=scale, progress=bar, book=book)
    if as_json:
        _print_json(summary)
        return
    if isinstance(summary, dict):
        ticks, secs = summary.get("ticks"), summary.get("seconds")
        rate = summary.get("ticks_per_s") or summary.get("ticks/s")
        if rate is None and ticks and secs:
            rate = ticks / secs
        parts = [f"generated {scenario} into {out}"]
        if ticks is not None:
            parts.append(f"{ticks:,} ticks")
        if secs is not None:
            parts.append(f"{secs:.1f} s")
        if rate:
            parts.append(f"{rate:,.0f} ticks/s")
        click.echo(": ".join(parts[:1]) + (": " + ", ".join(parts[1:]) if parts[1:] else ""))
        for k, v in summary.items():
            if k not in ("ticks", "seconds", "ticks_per_s", "ticks/s"):
                click.echo(f"  {k}: {v}")
    else:
        click.echo(f"generated {scenario} into {out}")


@data.command("import")
@click.option("--format", "fmt", required=True, type=click.Choice(IMPORT_FORMATS), help="Input file format.")
@click.option("--symbol", required=True, help="Dataset symbol the rows belong to (must be in the instruments).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Dataset folder (created if needed; existing rows are merged, not duplicated).")
@click.option("--venue", type=click.Choice(VENUES),
              help="Take the symbol's contract spec from the bundled, dated instrument catalogue.")
@click.option("--instruments", type=click.Path(exists=True, dir_okay=False),
              help="Instruments file to copy in when the dataset has none yet.")
@click.option("--levels", type=int, default=None,
              help="Order-book formats: levels kept per side in the book kind (1-25) [default: 25].")
@click.option("--book-interval", metavar="DURATION", default=None,
              help="tardis-incremental-book-l2: time between book snapshots, e.g. 1s, 250ms [default: 1s].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--s3-endpoint", metavar="URL", help="S3 endpoint for s3:// paths [default: $AWS_ENDPOINT_URL_S3/$AWS_ENDPOINT_URL].")
@click.option("--s3-cache", metavar="DIR", help="Read cache for s3:// datasets [default: $CASCADE_S3_CACHE, else a temp folder].")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def import_(fmt, symbol, out, venue, instruments, levels, book_interval, quiet, as_json, s3_endpoint,
            s3_cache, files):
    """Import exchange CSV files (.csv, .csv.gz, or .zip with one CSV) into a dataset.

    \b
    Trades: binance-trades, binance-aggtrades (spot or futures, with or
    without header), bybit-trades (with or without RPI), bybit-spot-trades,
    tardis-trades. Quotes: binance-bookticker, tardis-quotes. Quotes and L2
    book snapshots (kind book): tardis-book-snapshot-5/-25,
    tardis-incremental-book-l2 (--levels, --book-interval). Marks: binance-mark-klines (stamped
    at the kline's close; binance-index-klines then fills their index).
    Funding: binance-funding, bybit-funding. Premium index (data only, for
    backtest.data.premium.funding_estimate): binance-premium-index-klines.
    Marks and funding: tardis-derivative-ticker. Candles (bars, stamped at
    the bar's end): binance-klines, ohlcv (CSV or Parquet: ts,open,high,low,
    close,volume[,close_ts]). Other traders' liquidations: tardis-liquidations.
    Layouts and download URLs: data/README.md.

    \b
    Example:
      backtest data import --format binance-aggtrades --symbol BTCUSDT \\
          --out data/btc --venue binance-usdm \\
          BTCUSDT-aggTrades-2026-02-05.zip BTCUSDT-aggTrades-2026-02-06.zip

    Files are streamed in bounded memory; the import is committed all at once, so a bad line,
    an error or a kill leaves the dataset as it was. Re-importing a file adds nothing.
    """
    from ..config import parse_duration_ns
    from ..data.importers import import_files
    from ..data.storage import import_to_s3, is_s3, use_flags

    use_flags(s3_endpoint, s3_cache)
    options = {}
    if levels is not None:
        options["book_levels"] = levels
    if book_interval is not None:
        options["book_interval_ns"] = parse_duration_ns(book_interval, "--book-interval")
    show = _show_progress(quiet or as_json) and len(files) > 1
    with _Bar(show, "importing") as bar:
        def do(target):
            return import_files(list(files), fmt=fmt, symbol=symbol, out=target, instruments=instruments,
                                venue=venue, progress=bar, options=options)
        res = import_to_s3(out, do) if is_s3(out) else do(out)
    if as_json:
        _print_json(res.to_dict())
        return
    kinds = ", ".join(f"{n:,} {k}" for k, n in res.rows.items())
    click.echo(f"imported {kinds} rows of {res.symbol} from {res.files} file(s) "
               f"into {res.out}: {res.rows_added:,} new, {len(res.written)} of {len(res.dates)} date file(s) rewritten"
               + (" (instruments file copied in)" if res.instruments_copied else ""))


@data.command()
@click.argument("path", type=click.Path())
@click.option("--all", "all_problems", is_flag=True, help="Report the first problem of every stream, not just the first one.")
@click.option("--max-gap", "max_gap_s", default=3600.0, show_default=True, type=float,
              help="Warn about time gaps longer than this many seconds inside a trades/quotes/marks stream "
                   "(funding: 1.5 x its interval).")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too (gaps, missing days, no marks/funding).")
@click.option("--s3-endpoint", metavar="URL", help="S3 endpoint for s3:// paths [default: $AWS_ENDPOINT_URL_S3/$AWS_ENDPOINT_URL].")
@click.option("--s3-cache", metavar="DIR", help="Read cache for s3:// datasets [default: $CASCADE_S3_CACHE, else a temp folder].")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def validate(path, all_problems, max_gap_s, strict, as_json, s3_endpoint, s3_cache):
    """Check a dataset: instruments, schemas, types, sort order, values and page checksums.

    Prints a one-line OK summary, or the first problem (file, column, row and fix) and exits 1.
    Warnings (missing date partitions or long gaps inside a stream, a perpetual without marks or
    funding) go to stderr; with --strict they fail the check.

    \b
    Example:
      backtest data validate data/generated/feb-2026-crash
    """
    from ..data.storage import use_flags
    from ..data.validate import validate_dataset

    use_flags(s3_endpoint, s3_cache)
    report = validate_dataset(path, all_problems=all_problems, max_gap_s=max_gap_s)
    if as_json:
        _print_json(report.to_dict())
    elif report.ok:
        click.echo(report.summary())
    if not as_json:
        for w in report.warnings:
            click.echo(f"warning: {w}", err=True)
    if not report.ok:
        if not as_json:
            for p in report.problems:
                click.echo(f"error: {p}", err=True)
        sys.exit(1)
    if strict and report.warnings:
        sys.exit(1)


@data.command()
@click.argument("path", type=click.Path())
@click.option("--s3-endpoint", metavar="URL", help="S3 endpoint for s3:// paths [default: $AWS_ENDPOINT_URL_S3/$AWS_ENDPOINT_URL].")
@click.option("--s3-cache", metavar="DIR", help="Read cache for s3:// datasets [default: $CASCADE_S3_CACHE, else a temp folder].")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def inspect(path, as_json, s3_endpoint, s3_cache):
    """Summarise a dataset per symbol: time range, counts, prices, largest moves, funding.

    \b
    Example:
      backtest data inspect data/generated/feb-2026-crash
      backtest data inspect data/generated/feb-2026-crash --json | jq '.[0].max_drop_pct'
    """
    from ..data.inspect import format_plain, inspect_dataset, table_rows
    from ..data.storage import use_flags

    use_flags(s3_endpoint, s3_cache)

    info = inspect_dataset(path)
    if as_json:
        _print_json(info)
        return
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        from ..data.inspect import FOOTNOTE

        header, rows = table_rows(info)
        table = Table(title=f"{path}", caption=FOOTNOTE)
        for i, h in enumerate(header):
            table.add_column(h, justify="left" if i < 4 else "right")
        for r in rows:
            table.add_row(*r)
        Console().print(table)
    else:
        click.echo(format_plain(info))


@data.command()
@click.argument("path", type=click.Path())
@click.option("--symbols", metavar="A,B", help="Symbols, in the order the runs give them (default: all in the dataset).")
@click.option("--book/--no-book", default=False, show_default=True,
              help="Include the L2 book (runs replay it for the l2_depth model or a strategy that reads it).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the entry as JSON.")
@click.option("--s3-endpoint", metavar="URL", help="S3 endpoint for s3:// paths [default: $AWS_ENDPOINT_URL_S3/$AWS_ENDPOINT_URL].")
@click.option("--s3-cache", metavar="DIR", help="Read cache for s3:// datasets [default: $CASCADE_S3_CACHE, else a temp folder].")
def cache(path, symbols, book, quiet, as_json, s3_endpoint, s3_cache):
    """Keep a dataset's merged events on disk so that runs replay them without decoding.

    Reads the dataset once (checking every row, as a run does) and stores its events in time
    order as raw columns, 62 bytes an event (about 4-5x the Parquet files), under
    $CASCADE_REPLAY_CACHE (default $CASCADE_CACHE_DIR/replay/). Every later run, sweep or walk-forward window over these symbols
    and kinds reads them from there, whatever its time range: the same events, the same results,
    without decoding Parquet or merging the streams. A change to any file of the dataset makes the
    entry unused (run this again to refresh it); `backtest cache clear` removes the entries.

    \b
    Example:
      backtest data cache data/generated/feb-2026-crash
      backtest data cache data/btc --symbols BTCUSDT --book
    """
    from ..data import replay
    from ..data.layout import EVENT_KINDS
    from ..data.reader import open_dataset
    from ..data.storage import local_dataset, use_flags

    use_flags(s3_endpoint, s3_cache)
    chosen = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
    kinds = EVENT_KINDS if book else tuple(k for k in EVENT_KINDS if k != "book")
    stream = open_dataset(local_dataset(path), symbols=chosen, kinds=kinds)
    with _Bar(_show_progress(quiet), "caching events") as bar:
        entry, meta, built = replay.build(stream, progress=bar)
    if as_json:
        _print_json({"entry": str(entry), "built": built, **meta})
        return
    what = "cached" if built else "already cached"
    click.echo(f"{what}: {meta['rows']:,} events of {', '.join(meta['symbols'])} "
               f"({len(meta['streams'])} streams, {meta['bytes'] / 1e9:.2f} GB) in {entry}")


def register(cli):
    cli.add_command(data)
