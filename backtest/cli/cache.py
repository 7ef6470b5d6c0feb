"""`backtest cache info | warm | clear`: the compiled-code and replay caches."""
from __future__ import annotations

import shutil
import time

import click

from ..errors import ConfigError
from .run import _echo_json


@click.group("cache")
def cache():
    """Inspect, warm or clear the compiled-strategy cache.

    \b
    Examples:
      backtest cache info
      backtest cache warm
      backtest cache clear

    The cache lives in $CASCADE_CACHE_DIR (default ~/.cache/cascade): gen/ holds one
    generated module per strategy version, numba/ the compiled framework and loops, one
    folder per framework version; replay/ (or $CASCADE_REPLAY_CACHE) the datasets' merged
    events kept by `backtest data cache`.
    """


def _cache_files():
    from ..cachedir import cache_dir

    root = cache_dir()
    gen = root / "gen"
    modules = sorted(gen.glob("*.py")) if gen.is_dir() else []
    # numba's cache: numba/<framework hash>/ (backtest/core/__init__.py), one folder per framework
    # version; generated loops cached before that lived in gen/__pycache__
    numba_files = sorted(p for folder in (root / "numba", gen / "__pycache__") if folder.is_dir()
                         for p in folder.rglob("*") if p.suffix in (".nbi", ".nbc"))
    pyc = sorted((gen / "__pycache__").glob("*.pyc")) if (gen / "__pycache__").is_dir() else []
    return root, gen, modules, numba_files, pyc


@cache.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def cache_info(as_json):
    """Show the cache paths and the number and size of cached files.

    \b
    Example:
      backtest cache info --json
    """
    root, gen, modules, numba_files, _ = _cache_files()
    info = {"cache_dir": str(root), "gen_dir": str(gen),
            "generated_modules": len(modules), "generated_bytes": sum(p.stat().st_size for p in modules),
            "numba_files": len(numba_files), "numba_bytes": sum(p.stat().st_size for p in numba_files)}
    from ..core import warm
    from ..data import replay

    # this Cascade version's kernels are all in the cache (`backtest cache warm`, or a helper)
    info["framework_compiled"] = warm.ready()
    kept = replay.entries()
    info.update(replay_dir=str(replay.folder()), replay_entries=[
        {"dataset": m["dataset"], "symbols": m["symbols"], "events": m["rows"], "bytes": m["bytes"],
         "path": str(p)} for p, m in kept])
    if as_json:
        _echo_json(info)
        return
    click.echo(f"cache dir          {root}")
    click.echo(f"generated modules  {info['generated_modules']} ({_size(info['generated_bytes'])}) in {gen}")
    click.echo(f"numba cache files  {info['numba_files']} ({_size(info['numba_bytes'])}) in {root / 'numba'}")
    click.echo(f"framework compiled {'yes' if info['framework_compiled'] else 'no (backtest cache warm compiles it)'}")
    click.echo(f"replayed datasets  {len(kept)} ({_size(sum(m['bytes'] for _, m in kept))}) in {replay.folder()}")
    for _, m in kept:
        click.echo(f"  {m['dataset']}: {m['rows']:,} events of {len(m['symbols'])} symbol(s)")


@cache.command("warm")
def cache_warm():
    """Compile the framework's kernels now, so that the next run compiles only its strategy's loop.

    \b
    Example:
      backtest cache warm

    A run compiles what the cache lacks; the framework once per Cascade version, machine and
    variant of its kernels (with every path, or lean: without those only inverse or spot
    instruments, isolated margin, partial liquidation, an L2 book, the queue model or loans
    need), a strategy's loop (about 3 s) once per version of the strategy. Warming compiles both
    variants at a moment you choose: an install script, an image build, a CI job's set-up. Does
    nothing when both are compiled.
    """
    import numba

    from ..core import NUMBA_CACHE, warm

    if numba.config.DISABLE_JIT:
        raise ConfigError("nothing to compile: NUMBA_DISABLE_JIT is set (unset it to warm the cache)")
    if warm.ready():
        click.echo(f"the framework is already compiled in {NUMBA_CACHE}")
        return
    t = time.perf_counter()
    for rare in warm.VARIANTS:  # the kernels with every path, and without the rare ones (core/rare.py)
        if not warm.ready(rare):
            warm.compile_framework(typed_only=True, rare=rare)
    click.echo(f"compiled the framework into {NUMBA_CACHE} in {time.perf_counter() - t:.1f} s")


@cache.command("clear")
def cache_clear():
    """Delete the generated modules and their numba cache (they are rebuilt on the next run), and
    the datasets' replay entries (`backtest data cache` builds them again).

    \b
    Example:
      backtest cache clear
    """
    root, gen, modules, numba_files, pyc = _cache_files()
    size = sum(p.stat().st_size for p in modules + numba_files + pyc)
    for p in modules + numba_files + pyc:
        p.unlink(missing_ok=True)
    shutil.rmtree(root / "numba", ignore_errors=True)  # with its compile locks and markers
    click.echo(f"removed {len(modules)} generated module(s) and {len(numba_files)} numba cache file(s) "
               f"({_size(size)}) from {root}")
    from ..data import replay

    kept = replay.entries()
    shutil.rmtree(replay.folder(), ignore_errors=True)
    click.echo(f"removed {len(kept)} replay entr{'y' if len(kept) == 1 else 'ies'} "
               f"({_size(sum(m['bytes'] for _, m in kept))}) from {replay.folder()}")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def register(cli):
    cli.add_command(cache)
