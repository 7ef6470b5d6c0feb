"""`backtest run | list-strategies | cache` via click's CliRunner, plus a few real subprocesses."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from backtest.cli import cli
from backtest.data.instruments import Bracket, Instrument, write_instruments
from backtest.data.writer import write_stream
from backtest.result import Result
from backtest.runconfig import build_spec

from cli_helpers import BACKTEST

T0 = 1770249600 * 10**9  # 2026-02-05 00:00 UTC
DAY = 86_400 * 10**9
ENV = {**os.environ, "CASCADE_CACHE_DIR": os.environ["CASCADE_CACHE_DIR"]}


def build_dataset(root: Path, n: int = 4000) -> Path:
    """BTCUSDT linear perpetual, 2 days of trades through 62k (entry), 60k (stop), 63k (re-arm)
    and 65k (target), so the reference strategy enters, stops out, re-enters and takes profit."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ins = Instrument(symbol="BTCUSDT", type="linear_perpetual", base="BTC", quote="USDT", settle="USDT",
                     tick_size=0.1, lot_size=0.001, brackets=(Bracket(0.0, 1e12, 125.0, 0.004, 0.0),))
    write_instruments(root / "instruments.json", {"BTCUSDT": ins})
    knots = [63000, 61500, 59500, 64000, 61800, 65500, 63000, 61000, 64500]
    x = np.linspace(0, len(knots) - 1, n)
    px = np.interp(x, np.arange(len(knots)), knots) + np.random.default_rng(1).normal(0, 20, n)
    ts = T0 + np.linspace(0, 2 * DAY - 10**9, n).astype(np.int64)
    write_stream(root, "trades", "BTCUSDT", {"ts_ns": ts, "price": np.round(px, 1), "qty": np.full(n, 0.01),
                                             "side": np.where(np.arange(n) % 2, 1, -1).astype(np.int8)})
    return root


@pytest.fixture(scope="session")
def ds(tmp_path_factory):
    return build_dataset(tmp_path_factory.mktemp("ds") / "btc")


def invoke(*args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)


def sh(*args, timeout=300):
    return subprocess.run([*BACKTEST, *map(str, args)], capture_output=True, text=True, env=ENV, timeout=timeout)


@pytest.mark.parametrize("cmd", [["run"], ["sweep"], ["walk-forward"], ["list-strategies"], ["cache"],
                                 ["cache", "info"], ["cache", "warm"], ["cache", "clear"]])
def test_help_has_examples(cmd):
    r = invoke(*cmd, "--help")
    assert r.exit_code == 0, r.output
    assert "Example" in r.output


def test_run_saves_loadable_folder(ds, tmp_path):
    out = tmp_path / "run"
    r = invoke("run", "reference", "--data", ds, "--out", out, "--param", "entry=62000",
               "--leverage", "BTCUSDT=5", "--latency", "1ms")
    assert r.exit_code == 0, r.output
    assert "compile" in r.output and "events/s" in r.output and f"saved {out}" in r.output
    res = Result.load(out)
    assert res.manifest["config"]["leverage"] == {"BTCUSDT": 5}
    assert res.manifest["config"]["execution"]["latency"] == "1ms"
    assert res.manifest["strategy"]["params"]["entry"] == 62000.0
    assert res.manifest["timings"]["events"] == 4000
    if (out / "config.toml").exists():  # written when tomli-w is installed: reproduces the run
        spec = build_spec(out / "config.toml")
        assert spec.strategy == "reference" and spec.config.leverage == {"BTCUSDT": 5}


def test_run_json_and_config_file(ds, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'strategy = "reference"\ndata = "{ds}"\nout = "{tmp_path / "ignored"}"\n'
                   '[params]\nentry = 61000\n[margin]\nmode = "isolated"\n')
    out = tmp_path / "run"
    r = invoke("run", "--config", cfg, "--out", out, "--json", "--param", "stop=59000")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)  # JSON only: nothing else on stdout
    assert doc["run_dir"] == str(out) and not (tmp_path / "ignored").exists()
    assert doc["params"]["entry"] == 61000.0 and doc["params"]["stop"] == 59000.0
    assert doc["config"]["margin"]["mode"] == "isolated"
    assert {"final_equity", "return", "max_drawdown"} <= set(doc["headline"])
    assert doc["headline"]["max_drawdown"] == doc["metrics"]["max_drawdown"]  # one definition
    assert {"compile_s", "run_s", "events", "events_per_s"} <= set(doc["timings"])


@pytest.mark.slow  # the tear sheet draws every figure (~10 s)
def test_run_report_flag(ds, tmp_path):
    pytest.importorskip("backtest.report.tearsheet")
    out = tmp_path / "run"
    r = invoke("run", "reference", "--data", ds, "--out", out, "--report")
    assert r.exit_code == 0, r.output
    assert (out / "report").is_dir() and "report" in r.output


def test_errors_are_one_line(ds, tmp_path):
    r = invoke("run", "referense", "--data", ds, "--out", tmp_path / "x")
    assert r.exit_code in (1, 2)
    assert r.output.count("\n") == 1 and "did you mean reference" in r.output
    r = invoke("run", "reference", "--data", ds, "--out", tmp_path / "x", "--param", "entri=1")
    assert r.exit_code == 2 and "did you mean entry" in r.output
    r = invoke("run", "reference", "--data", tmp_path / "nodata", "--out", tmp_path / "x")
    assert r.exit_code == 1 and r.output.startswith("error:") and r.output.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_list_strategies():
    r = invoke("list-strategies")
    assert r.exit_code == 0, r.output
    assert "reference: Buy BTC at 62k" in r.output and "entry=62000.0" in r.output
    items = {d["name"]: d for d in json.loads(invoke("list-strategies", "--json").output)}
    ref = items["reference"]["params"]
    assert ref["entry"] == {"type": "float", "default": 62000.0, "doc": "buy at or below this price when flat"}
    assert ref["sym"]["default"] == "BTCUSDT"


def test_cache_info_and_clear(tmp_path):
    gen = tmp_path / "gen"
    (gen / "__pycache__").mkdir(parents=True)
    (gen / "_cascade_gen_x_X_0123.py").write_text("# generated\n")
    for name in ("m.run-10.py311.nbi", "m.run-10.py311.1.nbc"):
        (gen / "__pycache__" / name).write_bytes(b"x" * 100)
    # the numba cache of two framework versions (backtest/core/__init__.py), with a compile lock
    # and the cold-start helper's marker (backtest/core/jit.py, warm.py)
    for version in ("0123456789abcdef", "fedcba9876543210"):
        folder = tmp_path / "numba" / version / "backtest_abc" / "core"
        folder.mkdir(parents=True)
        for name in ("orders.submit-262.py311.nbi", "orders.submit-262.py311.1.nbc"):
            (folder / name).write_bytes(b"x" * 50)
        (tmp_path / "numba" / version / "framework-ready").touch()
        (tmp_path / "numba" / version / ".compile-locks").mkdir()
        (tmp_path / "numba" / version / ".compile-locks" / "orders.submit.lock").touch()
    env = {"CASCADE_CACHE_DIR": str(tmp_path)}
    info = json.loads(invoke("cache", "info", "--json", env=env).output)
    assert info["cache_dir"] == str(tmp_path)
    assert (info["generated_modules"], info["numba_files"], info["numba_bytes"]) == (1, 6, 400)
    r = invoke("cache", "clear", env=env)
    assert r.exit_code == 0 and "removed 1 generated module(s) and 6 numba cache file(s)" in r.output
    assert not (tmp_path / "numba").exists()
    info = json.loads(invoke("cache", "info", "--json", env=env).output)
    assert (info["generated_modules"], info["numba_files"]) == (0, 0)
    assert "generated modules  0" in invoke("cache", "info", env=env).output


@pytest.mark.slow
def test_cache_warm_leaves_a_run_only_its_strategy_to_compile(ds, tmp_path):
    """`backtest cache warm` compiles every framework kernel a run needs (core/warm.py): a run
    after it compiles only its strategy's loop and the SDK calls its hooks make."""
    env = {**ENV, "CASCADE_CACHE_DIR": str(tmp_path / "cache")}

    def backtest(*args):
        r = subprocess.run([*BACKTEST, *map(str, args)], capture_output=True, text=True, env=env, timeout=900)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout

    assert json.loads(backtest("cache", "info", "--json"))["framework_compiled"] is False
    assert backtest("cache", "warm").startswith("compiled the framework into ")
    assert json.loads(backtest("cache", "info", "--json"))["framework_compiled"] is True
    assert backtest("cache", "warm").startswith("the framework is already compiled in ")
    r = subprocess.run([*BACKTEST, "cache", "warm"], capture_output=True, text=True,
                       env={**env, "NUMBA_DISABLE_JIT": "1"}, timeout=300)
    assert (r.returncode, r.stderr) == (2, "error: nothing to compile: NUMBA_DISABLE_JIT is set "
                                           "(unset it to warm the cache)\n")
    before = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in (tmp_path / "cache").rglob("*.nbi")}
    backtest("run", "reference", "--data", ds, "--out", tmp_path / "run", "--quiet")
    compiled = sorted(p.name for p in set((tmp_path / "cache").rglob("*.nbi")) - set(before))
    assert compiled and all(n.startswith(("_cascade_gen_", "sdk.")) for n in compiled), compiled
    # and no warmed kernel compiled again for other argument types (its index would be rewritten):
    # the warm (which only types its steps) gave each kernel the signature the loop calls it with
    assert {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in before} == before


@pytest.mark.slow
def test_subprocess_run_jit_and_no_jit_agree(ds, tmp_path):
    a = sh("run", "reference", "--data", ds, "--out", tmp_path / "jit", "--json")
    assert a.returncode == 0, a.stderr
    b = sh("run", "reference", "--data", ds, "--out", tmp_path / "py", "--json", "--no-jit")
    assert b.returncode == 0, b.stderr
    ja, jb = json.loads(a.stdout), json.loads(b.stdout)
    assert ja["timings"]["jit"] is True and jb["timings"]["jit"] is False
    keys = ("final_equity", "trades", "fills", "fees", "liquidations")
    assert {k: ja["headline"][k] for k in keys} == pytest.approx({k: jb["headline"][k] for k in keys})


@pytest.mark.slow
def test_subprocess_errors_have_no_traceback(tmp_path):
    r = sh("run", "nosuchstrategy", "--data", tmp_path, "--out", tmp_path / "x")
    assert r.returncode in (1, 2)
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1 and r.stderr.startswith("error:")
    r = sh("list-strategies")
    assert r.returncode == 0 and "reference:" in r.stdout
    r = sh("cache", "info")
    assert r.returncode == 0 and "cache dir" in r.stdout
