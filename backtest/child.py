"""Start one of this package's modules as a helper child process (report/side_draw.py,
batch_helper.py): isolated (`python -I`: no current folder or PYTHONPATH on its path), with this
process's own `backtest` package first, so that a `backtest` folder where the command runs cannot
stand in for it. Its stdin and stdout are pipes to this process; its stderr is discarded."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])  # the folder holding this `backtest` package


def start_child(module: str) -> subprocess.Popen | None:
    """A child running `module`'s main(); None if it cannot start."""
    code = f"import sys; sys.path.insert(0, {_ROOT!r}); from {module} import main; main()"
    try:
        return subprocess.Popen([sys.executable, "-I", "-c", code], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return None
