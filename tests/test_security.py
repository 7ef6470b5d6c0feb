"""Security properties: run configs and result manifests are data only (TOML, JSON, Parquet; no
pickle, eval or exec in the package), paths in configs are plain paths resolved against the
current directory, and loading a strategy file executes it (documented in docs/reliability.md).
"""
from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from backtest.cli import cli
from backtest.result import Result
from backtest.runconfig import build_spec

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "backtest"
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
FORBIDDEN_CALLS = {"eval", "exec", "__import__", "compile", "execfile", "input"}
# The one sanctioned way to run user code: importing a strategy file (plugins/resolve.py).
ALLOWED_ATTR_CALLS = {("plugins/resolve.py", "exec_module")}


def _package_files():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _findings(path: Path):
    rel = path.relative_to(PACKAGE).as_posix()
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in FORBIDDEN_MODULES:
                    out.append(f"{rel}:{node.lineno}: import {a.name}")
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
                out.append(f"{rel}:{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in FORBIDDEN_CALLS:
                out.append(f"{rel}:{node.lineno}: {f.id}(...)")
            if isinstance(f, ast.Attribute):
                if f.attr in ("exec_module", "run_path", "run_module") and (rel, f.attr) not in ALLOWED_ATTR_CALLS:
                    out.append(f"{rel}:{node.lineno}: .{f.attr}(...)")
                if f.attr in ("load", "loads", "unsafe_load", "full_load") and isinstance(f.value, ast.Name) \
                        and f.value.id in ("yaml", "pickle", "marshal", "dill", "torch", "joblib"):
                    out.append(f"{rel}:{node.lineno}: {f.value.id}.{f.attr}(...)")
                if f.attr in ("read_pickle", "to_pickle"):
                    out.append(f"{rel}:{node.lineno}: .{f.attr}(...)")
            for kw in node.keywords:
                if kw.arg == "allow_pickle" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    out.append(f"{rel}:{node.lineno}: allow_pickle=...")
    return out


def test_package_has_no_pickle_eval_or_exec():
    files = _package_files()
    assert len(files) > 20
    found = [f for p in files for f in _findings(p)]
    assert not found, "\n".join(found)


def test_textual_grep_agrees():
    """A plain grep (comments and docstrings included) finds only the sanctioned uses."""
    hits = []
    for p in _package_files():
        for i, line in enumerate(p.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if "exec_module" in code and p.name == "resolve.py":
                continue
            if any(tok in code for tok in ("eval(", "exec(", "import pickle", "pickle.load")):
                hits.append(f"{p.relative_to(REPO)}:{i}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_strategy_file_loading_is_the_only_exec(tmp_path):
    """Loading a strategy file executes it (module-level code runs): documented, not a bug."""
    marker = tmp_path / "executed.txt"
    f = tmp_path / "side_effect.py"
    f.write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
                 "from backtest import Strategy\n\nclass S(Strategy):\n    pass\n")
    from backtest.plugins.resolve import resolve_strategy

    cls = resolve_strategy(f"{f}:S")
    assert cls.__name__ == "S" and marker.read_text() == "ran"


# ----------------------------------------------------------------------------- data-only files
def test_config_is_data_only(tmp_path):
    """TOML values that look like code stay strings; nothing is evaluated."""
    marker = tmp_path / "pwned"
    f = tmp_path / "c.toml"
    payload = f"__import__('pathlib').Path({str(marker)!r}).write_text('x')"
    f.write_text(f'strategy = "reference"\n[params]\nsym = "{payload}"\n'
                 f'[execution]\nlatency = "{payload}"\n')
    r = CliRunner().invoke(cli, ["run", "--config", str(f), "--data", str(tmp_path / "nodata"),
                                 "--out", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output  # a config error naming the key, nothing executed
    assert "execution.latency" in r.stderr
    assert not marker.exists()


def test_manifest_is_data_only(tmp_path):
    """Result.load reads JSON and Parquet only; code-looking strings stay strings."""
    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "pwned"
    manifest = {"version": 1, "strategy": {"name": f"__import__('os').system('touch {marker}')",
                                           "class": "os:system"},
                "py/object": "subprocess.Popen", "__reduce__": ["os.system", ["touch x"]]}
    (run / "manifest.json").write_text(json.dumps(manifest))
    res = Result.load(run)
    assert res.manifest == manifest and res.tables == {}
    assert not marker.exists()


def test_result_load_refuses_non_run_folder(tmp_path):
    from backtest.errors import CascadeError

    with pytest.raises(CascadeError, match="not a run folder"):
        Result.load(tmp_path)


# -------------------------------------------------------------------------------------- paths
def test_config_paths_are_plain_paths_relative_to_cwd(tmp_path, monkeypatch):
    """`data`/`out` in a config are not sandboxed: '../..' segments are kept and resolved
    against the current directory (not the config file's folder) when used."""
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    f = sub / "c.toml"
    f.write_text('data = "../../etc"\nout = "../../tmp/run"\nstrategy = "reference"\n')
    monkeypatch.chdir(sub)
    spec = build_spec(f)
    assert spec.data == "../../etc" and spec.out == "../../tmp/run"
    assert (Path.cwd() / spec.data).resolve() == (tmp_path / "etc").resolve()


@pytest.mark.parametrize("data", ["../../etc", "/etc", "/dev/null", "/proc/self"])
def test_config_paths_outside_the_project_fail_cleanly(tmp_path, monkeypatch, data):
    """Pointing `data` at system folders is a one-line data error, not a traceback."""
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "c.toml"
    f.write_text(f'strategy = "reference"\ndata = "{data}"\nout = "o"\n')
    r = CliRunner().invoke(cli, ["run", "--config", str(f), "--quiet"])
    assert r.exit_code == 1, (r.output, r.exception)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert not (tmp_path / "o").exists()
