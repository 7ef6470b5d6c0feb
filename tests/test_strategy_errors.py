"""Errors in user strategies reach the user as one line naming the file (and a hint), not as a
numba or Python traceback: typing errors when the loop compiles, exceptions raised by hooks under
--no-jit (naming the event: index, time and symbol), and files that fail to import.

All cases run the real `backtest` command in a subprocess (a typing error must be reported
by the same code path a user hits, and --no-jit must be set before numba loads).
"""
from __future__ import annotations

import os
import re
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from backtest.data.instruments import Instrument, write_instruments
from backtest.data.writer import write_stream

from cli_helpers import BACKTEST

REPO = Path(__file__).resolve().parents[1]
T0 = 1_770_249_600_000_000_000

BAD = {
    "string_into_float": '''
        from backtest import Strategy

        class Bad(Strategy):
            x: float = 0.0

            def on_tick(self, c, ts_ns, sym, price, qty, side):
                self.x = "a string"
        ''',
    "undefined_function": '''
        from backtest import Strategy

        class Bad(Strategy):
            x: float = 0.0

            def on_tick(self, c, ts_ns, sym, price, qty, side):
                self.x = undefined_helper(price)
        ''',
    "unknown_field": '''
        from backtest import Strategy

        class Bad(Strategy):
            x: float = 0.0

            def on_tick(self, c, ts_ns, sym, price, qty, side):
                self.y = price
        ''',
}

RAISER = '''
from backtest import Strategy


class Raiser(Strategy):
    n: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        self.n += 1
        if self.n == 7:
            raise ValueError("boom at the seventh trade")
'''

IMPORT_FAIL = '''
import numpy_that_does_not_exist
from backtest import Strategy


class Never(Strategy):
    pass
'''


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("strat_err") / "ds"
    n = 50
    ts = T0 + np.arange(n, dtype=np.int64) * 1_000_000_000
    write_stream(root, "trades", "BTCUSDT", dict(ts_ns=ts, price=np.full(n, 62_000.0),
                                                 qty=np.full(n, 0.01), side=np.ones(n, np.int8)))
    write_instruments(root / "instruments.json", {"BTCUSDT": Instrument(
        "BTCUSDT", "linear_perpetual", "BTC", "USDT", "USDT", tick_size=0.1, lot_size=0.001)})
    return root


def _run(spec, data, out, *extra):
    env = {**os.environ,
           "CASCADE_CACHE_DIR": os.environ.get("CASCADE_CACHE_DIR", str(REPO / ".cache" / "test"))}
    env.pop("NUMBA_DISABLE_JIT", None)
    p = subprocess.run([*BACKTEST, "run", spec, "--data", str(data), "--out", str(out), "--quiet",
                        *extra], capture_output=True, text=True, env=env, timeout=900)
    print(f"\n$ backtest run {Path(spec).name} {' '.join(extra)}\nexit {p.returncode}\n"
          f"stderr: {p.stderr.strip()[-1500:]}")
    return p


def _one_line(p):
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    return lines[0] if len(lines) == 1 and lines[0].startswith("error: ") else None


XFAIL_CASES: dict[str, str] = {}  # case -> known engine gap (none now)


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=XFAIL_CASES[c]))
                                  if c in XFAIL_CASES else c for c in sorted(BAD)])
def test_typing_error_is_one_line_naming_the_file(tmp_path, dataset, case):
    f = tmp_path / f"bad_{case}.py"
    f.write_text(textwrap.dedent(BAD[case]))
    p = _run(f"{f}:Bad", dataset, tmp_path / "out")
    assert p.returncode != 0
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    line = _one_line(p)
    assert line is not None, p.stderr[-3000:]
    assert f.name in line, line
    assert "hint" in line.lower() or "--no-jit" in line, line
    assert p.returncode == 1
    assert not (tmp_path / "out").exists()


def test_hook_exception_under_no_jit_names_the_event(tmp_path, dataset):
    f = tmp_path / "raiser.py"
    f.write_text(RAISER)
    p = _run(f"{f}:Raiser", dataset, tmp_path / "out", "--no-jit")
    assert p.returncode == 1, p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    line = _one_line(p)
    assert line is not None, p.stderr[-3000:]
    assert "ValueError" in line and "boom at the seventh trade" in line
    assert f.name in line  # the file (and line) of the raise
    assert re.search(r"\bevent 6\b", line), line  # event index of the 7th trade
    assert "BTCUSDT" in line
    assert "2026-02-05T00:00:06" in line, line  # its time
    assert not (tmp_path / "out").exists()


def test_hook_exception_with_debug_shows_traceback(tmp_path, dataset):
    f = tmp_path / "raiser.py"
    f.write_text(RAISER)
    p = _run(f"{f}:Raiser", dataset, tmp_path / "out", "--no-jit", "--debug")
    assert p.returncode != 0
    assert "Traceback" in p.stderr and "boom at the seventh trade" in p.stderr


def test_strategy_file_that_fails_to_import(tmp_path, dataset):
    f = tmp_path / "import_fail.py"
    f.write_text(IMPORT_FAIL)
    p = _run(f"{f}:Never", dataset, tmp_path / "out")
    assert p.returncode == 1
    line = _one_line(p)
    assert line is not None and f.name in line and "numpy_that_does_not_exist" in line, p.stderr


def test_missing_strategy_file_and_class(tmp_path, dataset):
    p = _run(str(tmp_path / "nope.py"), dataset, tmp_path / "out")
    assert p.returncode == 1 and _one_line(p) and "nope.py" in p.stderr
    f = tmp_path / "raiser.py"
    f.write_text(RAISER)
    p = _run(f"{f}:Missing", dataset, tmp_path / "out")
    assert p.returncode == 1 and _one_line(p) and "Raiser" in p.stderr  # lists what it found
