"""#14.2: `--no-jit` raises where compiled code raises (backtest/plugins/error_model.py).

numba's default error_model='python' raises ZeroDivisionError for `/`, `//`, `%` and divmod by
zero on integers and floats; numpy scalars in plain Python only warned. Each case runs compiled
(njit) and under `python_errors` as plain Python with numpy scalars, and must raise in both or in
neither. End to end: a hook dividing by zero stops `backtest run --no-jit` with the error and the
event that the compiled run reports.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from numba import njit

import backtest as bt
from backtest.errors import StrategyError
from backtest.plugins.error_model import python_errors
from engine_fixtures import make_market_dataset

REPO = Path(__file__).resolve().parents[1]

CASES = {  # name: (function, a, b); every case is evaluated with numpy scalars a, b
    "float / 0": (lambda a, b: a / b, 1.0, 0.0),
    "0.0 / 0.0": (lambda a, b: a / b, 0.0, 0.0),
    "-x / 0": (lambda a, b: a / b, -2.5, 0.0),
    "int / 0": (lambda a, b: a / b, 3, 0),
    "int // 0": (lambda a, b: a // b, 5, 0),
    "int % 0": (lambda a, b: a % b, 5, 0),
    "float // 0": (lambda a, b: a // b, 5.0, 0.0),
    "float % 0": (lambda a, b: a % b, 5.0, 0.0),
    "divmod(float, 0)": (lambda a, b: divmod(a, b)[0], 1.0, 0.0),
    "python float / numpy 0": (lambda a, b: float(a) / b, 1.0, 0.0),
    "float / nonzero": (lambda a, b: a / b, 1.0, 4.0),
    "log(0)": (lambda a, b: np.log(a * b), 0.0, 1.0),
    "sqrt(-1)": (lambda a, b: np.sqrt(a - b), 0.0, 1.0),
    "overflow": (lambda a, b: a * b, 1e308, 10.0),
    "int overflow": (lambda a, b: a * b, 2**62, 4),
    "array / 0": (lambda a, b: (np.ones(2) * a / b)[0], 1.0, 0.0),
}


def _outcome(f, *args):
    try:
        return ("value", f(*args))
    except ZeroDivisionError as e:
        return ("raises", str(e))


@pytest.mark.parametrize("name", list(CASES))
def test_python_loop_raises_exactly_where_numba_raises(name):
    f, a, b = CASES[name]
    compiled = _outcome(njit(f), a, b)
    a_, b_ = (np.int64(a), np.int64(b)) if isinstance(a, int) else (np.float64(a), np.float64(b))
    plain = _outcome(python_errors(f), a_, b_)
    assert plain[0] == compiled[0], (name, compiled, plain)
    if compiled[0] == "value":
        assert plain[1] == compiled[1] or (np.isnan(plain[1]) and np.isnan(compiled[1]))


def test_errstate_is_scoped_to_the_loop():
    with np.errstate(divide="ignore"):
        python_errors(lambda: None)()
        assert np.float64(1.0) / np.float64(0.0) == np.inf  # outside the loop: numpy's rules


DIV_SOURCE = '''
from backtest import Strategy


class DivZero(Strategy):
    """Divides by zero (numpy float64 arguments) at its 5th trade."""

    n: int = 0
    x: float = 0.0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        self.n += 1
        if self.n == 5:
            self.x = price / (price - price)
'''


@pytest.mark.slow
def test_no_jit_run_stops_at_the_event_where_the_compiled_run_stops(tmp_path):
    data = tmp_path / "ds"
    make_market_dataset(data, 2_000, nsym=1, seed=3)
    f = tmp_path / "div_strategy.py"
    f.write_text(textwrap.dedent(DIV_SOURCE))
    with pytest.raises(StrategyError) as compiled:
        bt.run(f"{f}:DivZero", data)
    assert "ZeroDivisionError: division by zero at event" in str(compiled.value)
    env = {**os.environ, "CASCADE_CACHE_DIR": os.environ.get("CASCADE_CACHE_DIR", str(REPO / ".cache" / "test"))}
    p = subprocess.run([sys.executable, "-m", "backtest", "run", f"{f}:DivZero", "--data", str(data),
                        "--out", str(tmp_path / "out"), "--quiet", "--no-jit"],
                       capture_output=True, text=True, env=env, timeout=600)
    # before the fix: exit 0, a RuntimeWarning, x = inf
    assert p.returncode == 1, (p.returncode, p.stdout[-1000:], p.stderr[-2000:])
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    event = str(compiled.value).split(" raised ", 1)[1]  # "ZeroDivisionError: ... at event N (time, sym)"
    assert lines[0].endswith(event), (lines[0], event)
    assert not (tmp_path / "out").exists()
