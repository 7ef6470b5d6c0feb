"""The one-way layer rule of DESIGN.md, for every package, from the imports themselves (`ast`).

* `backtest/core` imports only numpy, numba (llvmlite, its backend), the standard library and
  other `backtest.core` modules: never polars, matplotlib, click or a Python-layer module.
* `backtest/data` never imports the engine, the plugins, the report, sweeps or the CLI.
* `backtest/report` never imports the engine: a saved run alone is enough to draw it again
  (from `core` only the enums of `core.schema`).
* only `backtest/cli` imports click; only `backtest/report` imports matplotlib.
* the library (everything but `backtest/report` and `backtest/cli`) never imports the report: it
  returns data, and the CLI asks the report layer to draw (sweep heatmaps, walk-forward curves).
* strategies (`strategies/`) import only the public `backtest` API, never `backtest.<module>`.
* the result builder and the result helper (`result_build.py`, `batch_helper.py`) never import
  numba or the engine: the helper process builds Results without loading either.

Every import statement counts, including those inside functions (lazy imports)."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STDLIB = set(sys.stdlib_module_names)
ENGINE = ("backtest.engine", "backtest.batch", "backtest.plugins", "backtest.sweep", "backtest.sweep_dispatch",
          "backtest.walkforward")
NUMBA_FREE = ("backtest/result_build.py", "backtest/batch_helper.py")


def imports_of(source: str, module: str) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in `source`, the text of module `module`."""
    package = module.split(".")[:-1]   # a.b.c and a.b.__init__ both live in package a.b
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            if node.module is None:   # from . import x: x may be a module
                out += [(f"{name}.{a.name}", node.lineno) for a in node.names]
            else:
                out.append((name, node.lineno))
    return out


def _under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(rel: str, source: str) -> list[str]:
    """The layer rules broken by the file at `rel` (a path relative to the repo) with `source`."""
    module = rel[:-3].replace("/", ".")
    bad = []
    for name, line in imports_of(source, module):
        top = name.split(".")[0]
        where = f"{rel}:{line}: imports {name}"
        if rel.startswith("backtest/core/"):
            if not (_under(name, "backtest.core", "numpy", "numba", "llvmlite") or top in STDLIB):
                bad.append(f"{where} (core imports only numpy, numba and core)")
        if rel.startswith("backtest/data/") and _under(name, *ENGINE, "backtest.report", "backtest.cli"):
            bad.append(f"{where} (data never imports the engine, report or cli)")
        if rel.startswith("backtest/report/") and (_under(name, *ENGINE, "backtest.cli") or (
                _under(name, "backtest.core") and name != "backtest.core.schema")):
            bad.append(f"{where} (report never imports the engine)")
        if top == "click" and not rel.startswith("backtest/cli/"):
            bad.append(f"{where} (only cli imports click)")
        if top == "matplotlib" and not rel.startswith("backtest/report/"):
            bad.append(f"{where} (only report imports matplotlib)")
        if (rel.startswith("backtest/") and _under(name, "backtest.report")
                and not rel.startswith(("backtest/report/", "backtest/cli/"))):
            bad.append(f"{where} (library code returns data; only report and cli draw)")
        if rel in NUMBA_FREE and (top in ("numba", "llvmlite") or _under(name, *ENGINE) or (
                _under(name, "backtest.core") and name not in ("backtest.core.schema", "backtest.core.enums"))):
            bad.append(f"{where} (the result helper's modules never load numba or the engine)")
        if rel.startswith("strategies/") and top == "backtest" and name != "backtest":
            bad.append(f"{where} (strategies import only the public `backtest` API)")
    return bad


def test_layers_point_one_way():
    bad = []
    for path in sorted([*(REPO / "backtest").rglob("*.py"), *(REPO / "strategies").rglob("*.py")]):
        bad += violations(str(path.relative_to(REPO)), path.read_text())
    assert not bad, "\n".join(bad)


def test_the_checker_catches_each_rule():
    cases = {
        "backtest/core/x.py": "import polars",
        "backtest/core/y.py": "from ..config import RunConfig",
        "backtest/data/x.py": "def f():\n    from ..engine import run",
        "backtest/report/x.py": "from ..core.loop import make_loop",
        "backtest/sweep.py": "import matplotlib.pyplot as plt",
        "backtest/walkforward.py": "def f():\n    from .report.sweep_figures import fig_walk_forward",
        "backtest/scenarios/x.py": "from ..report import stress_figures",
        "backtest/data/y.py": "import backtest.report.style",
        "backtest/z.py": "from matplotlib.figure import Figure",
        "backtest/engine.py": "import click",
        "strategies/x.py": "from backtest.core.orders import submit",
        "backtest/result_build.py": "def f():\n    from .core.account import equity",
        "backtest/batch_helper.py": "from . import engine",
    }
    for rel, src in cases.items():
        assert violations(rel, src), (rel, src)
    fine = {
        "backtest/core/x.py": "from . import schema\nimport numpy as np\nimport os",
        "backtest/report/x.py": "from ..core.schema import Liquidity\nimport matplotlib",
        "strategies/x.py": "from backtest import buy\nfrom ._lib import floor_lot",
        "backtest/cli/x.py": "import click",
        "backtest/cli/y.py": "from ..report.sweep_figures import write_sweep_heatmap",
        "backtest/report/y.py": "from .sweep_figures import fig_walk_forward\nfrom ..atomic import tmp_name",
    }
    for rel, src in fine.items():
        assert not violations(rel, src), (rel, src)
