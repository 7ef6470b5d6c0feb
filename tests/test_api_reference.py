"""The API reference: pdoc renders the public surface from its docstrings (architecture issue B).

Built into a temporary folder by this test; a public function or class without a docstring fails
it. Build it for reading with `python -m pdoc backtest backtest.sdk backtest.margin backtest.config
-o docs/api` (docs/api is not committed)."""
from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import pytest

pdoc = pytest.importorskip("pdoc", reason="pdoc is in the dev extra (pip install -e '.[dev]')")
import pdoc.doc  # noqa: E402
import pdoc.render  # noqa: E402

import backtest  # noqa: E402

# The public surface: the package (run, Result, Strategy, the SDK, the enums), the SDK module,
# the exchange formulas and the run config (its dataclasses are the config keys).
MODULES = ("backtest", "backtest.sdk", "backtest.margin", "backtest.config")


def _modules() -> dict[str, pdoc.doc.Module]:
    for name in backtest.__all__:   # resolve the lazy names so that pdoc sees them
        getattr(backtest, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a name in __all__ that does not resolve is an error
        return {m: pdoc.doc.Module(importlib.import_module(m)) for m in MODULES}


def test_api_reference_builds_and_every_public_name_has_a_docstring(tmp_path):
    mods = _modules()
    missing = []
    for modname, mod in mods.items():
        if not mod.docstring.strip():
            missing.append(modname)
        for name, member in mod.members.items():
            if name.startswith("_") or isinstance(member, pdoc.doc.Variable):
                continue
            if not member.docstring.strip():
                missing.append(f"{modname}.{name}")
    assert not missing, f"public names without a docstring: {missing}"

    for modname, mod in mods.items():
        html = pdoc.render.html_module(mod, mods)
        out = tmp_path / (modname.replace(".", "/") + ".html")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html)
        for name in mod.members:
            if not name.startswith("_"):
                assert f'id="{name}"' in html, (modname, name)
    exported = set(backtest.__all__) - {"__version__"}
    assert exported <= set(mods["backtest"].members), exported - set(mods["backtest"].members)
    config = (tmp_path / "backtest" / "config.html").read_text()
    for cls in ("RunConfig", "ExecutionConfig", "MarginConfig", "LoanConfig"):
        for key in getattr(importlib.import_module("backtest.config"), cls).__dataclass_fields__:
            assert f'id="{cls}.{key}"' in config, f"config key {cls}.{key} missing from the reference"
