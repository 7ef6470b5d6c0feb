"""docs/strategies.md documents every exported name of the public API (issue #14 item 20)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import backtest
import backtest.sdk
from backtest.strategy import HOOKS

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "strategies.md"


def _reference() -> tuple[str, str]:
    """(prose, python code) of the guide's "## API reference" section."""
    text = GUIDE.read_text()
    start = text.index("## API reference")
    end = text.find("\n## ", start + 1)
    section = text[start:] if end < 0 else text[start:end]
    code = "\n".join(re.findall(r"```python\n(.*?)```", section, re.S))
    prose = re.sub(r"```.*?```", "", section, flags=re.S)
    return prose, code


def exported() -> set[str]:
    return (set(backtest.__all__) | set(backtest.sdk.__all__)) - {"__version__"}


def test_every_exported_name_is_documented_with_an_example():
    prose, code = _reference()
    undocumented = sorted(n for n in exported() if not re.search(rf"`{n}[(`]", prose))
    no_example = sorted(n for n in exported() if not re.search(rf"\b{n}\b", code))
    assert not undocumented, f"not described in docs/strategies.md's API reference: {undocumented}"
    assert not no_example, f"no example in docs/strategies.md's API reference: {no_example}"


def test_hook_signatures_match_the_engine():
    """Each documented hook takes as many arguments as the event loop passes it."""
    prose, _ = _reference()
    documented = {h: [a.strip() for a in args.split(",")]
                  for h, args in re.findall(r"`(on_\w+)\(([^)]*)\)`", prose)}
    assert set(documented) == set(HOOKS)
    calls = {}
    for node in ast.walk(ast.parse((REPO / "backtest" / "core" / "loop.py").read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("_on_"):
            calls.setdefault(node.func.id[1:], set()).add(len(node.args))
    for hook, args in documented.items():
        assert args[:2] == ["self", "c"], hook
        assert calls.get(hook) == {len(args)}, (hook, args, calls.get(hook))


def test_python_examples_compile():
    for block in re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S):
        compile(block, str(GUIDE), "exec")


def test_guide_names_the_final_state_and_every_bundled_strategy():
    from backtest.plugins.resolve import list_strategy_names

    text = GUIDE.read_text()
    assert 'manifest["strategy"]["state"]' in text
    for name in set(list_strategy_names()):
        assert f"## {name}" in text or f"`{name}` |" in text, name
        assert f"| `{name}` |" in text, f"{name} missing from the strategies table"
