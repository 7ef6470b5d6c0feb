"""Set-up: the Makefile, the package metadata and how tests start the CLI (issue #14 items 16, 18, 19)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backtest.cachedir import cache_dir
from cli_helpers import BACKTEST

REPO = Path(__file__).resolve().parents[1]


def _make_database(target: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "CASCADE_CACHE_DIR"}
    p = subprocess.run(["make", "-pnq", "-C", str(REPO), target], capture_output=True, text=True,
                       env=env, timeout=60)
    return p.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_uses_the_clis_default_cache():
    """#14.16: `make demo` compiles into the cache the CLI reads by default; a Makefile that set its
    own CASCADE_CACHE_DIR made the first `backtest run` after `make demo` compile everything again."""
    db = _make_database("demo")
    assert not re.search(r"^(export )?CASCADE_CACHE_DIR\b", db, re.M), "the Makefile sets its own cache"
    env = {k: v for k, v in os.environ.items() if k != "CASCADE_CACHE_DIR"}
    p = subprocess.run([sys.executable, "-c", "from backtest.cachedir import cache_dir; "
                        "from backtest.core import numba_cache_dir; print(cache_dir()); print(numba_cache_dir())"],
                       capture_output=True, text=True, env=env, check=True)
    default, numba_dir = p.stdout.split()
    assert Path(default) == Path.home() / ".cache" / "cascade"
    assert Path(numba_dir).parent.parent == Path(default)   # <cache>/numba/<framework hash>


def test_tests_never_use_the_users_cache():
    assert Path(os.environ["CASCADE_CACHE_DIR"]) != Path.home() / ".cache" / "cascade"
    assert cache_dir() == Path(os.environ["CASCADE_CACHE_DIR"])


@pytest.mark.slow  # builds the package in an isolated environment (~6 s)
def test_package_builds_without_setuptools_warnings(tmp_path):
    """#14.18: `project.license` as a TOML table made every install print screens of deprecation
    warnings; the SPDX string (setuptools>=77) builds quietly."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("backtest", "strategies"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--no-deps", "--target", str(tmp_path / "t"), "-e", str(src)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout + p.stderr
    assert "license" not in out.lower(), out[-3000:]
    assert "deprecat" not in out.lower(), out[-3000:]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_silences_pip():
    """#14.18: the Makefile's pip installs print errors only (the demo's output is the product's)."""
    db = _make_database("demo")
    pipq = re.search(r"^PIPQ := (.*)$", db, re.M)
    assert pipq and "-qq" in pipq.group(1) and "--disable-pip-version-check" in db
    recipes = (REPO / "Makefile").read_text()
    assert "pip install" not in recipes.replace("$(PIP) install", "")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_can_run_again():
    """`backtest run` refuses to replace a finished run without --overwrite (#14.10), so the demo's
    run passes it: `make demo` twice must work."""
    p = subprocess.run(["make", "-n", "-W", "pyproject.toml", "demo"], cwd=REPO, capture_output=True, text=True)
    runs = [ln for ln in p.stdout.splitlines() if "backtest run " in ln]
    assert runs and all("--overwrite" in ln for ln in runs), p.stdout[-2000:]


def test_no_test_hardcodes_an_interpreter_or_venv():
    """#14.19: tests start the CLI as [sys.executable, "-m", "backtest"] (tests/cli_helpers.py), so
    pytest from any environment works; a path into REPO/.venv failed 15 tests elsewhere."""
    bad = []
    pattern = re.compile(r"""["']\.venv["']|\.venv/bin/(backtest|python)|with_name\(["']backtest|parent / ["']backtest""")
    for f in sorted((REPO / "tests").glob("*.py")):
        if f.name == Path(__file__).name:
            continue
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if pattern.search(line):
                bad.append(f"{f.name}:{i}: {line.strip()}")
    assert not bad, "\n".join(bad)


def test_cli_subprocess_runs_the_code_under_test(tmp_path):
    """From a foreign working directory, `python -m backtest` imports this checkout."""
    p = subprocess.run([*BACKTEST, "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    q = subprocess.run([sys.executable, "-c", "import backtest; print(backtest.__file__)"],
                       capture_output=True, text=True, cwd=tmp_path, check=True)
    assert Path(q.stdout.strip()).resolve() == (REPO / "backtest" / "__init__.py").resolve()
