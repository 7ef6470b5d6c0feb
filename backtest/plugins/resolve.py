"""Find a strategy class from what the user typed.

Accepted forms, tried in this order:
  `path/to/file.py:Class` or `path/to/file.py`   a file (loading it executes it)
  `package.module:Class`                         an importable module
  `name`                                         a module `strategies/<name>.py` of the bundled
                                                 package, or an entry point of the group
                                                 `backtest.strategies`
A module or file without `:Class` must define exactly one Strategy subclass (or `STRATEGY = Cls`).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import pkgutil
import sys
from pathlib import Path

from ..errors import StrategyError
from ..strategy import Strategy

ENTRY_POINT_GROUP = "backtest.strategies"


def user_module_name(path: str | Path) -> str:
    """The stable module name a strategy file is imported under (from its absolute path)."""
    path = Path(path).resolve()
    return f"_cascade_user_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:10]}"


def load_module_from_file(path: str | Path, name: str | None = None):
    """Import a .py file under a stable module name derived from its absolute path (or `name`: a
    cluster node loads the driver's file under the driver's name, so runs are identical)."""
    path = Path(path).resolve()
    name = name or user_module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise StrategyError(f"{path}: cannot load as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # let the file import its sibling modules
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise StrategyError(f"{path}: error while loading the strategy file: "
                            f"{type(e).__name__}: {e}") from e
    return module


def _pick_class(module, cls_name: str | None, where: str):
    if cls_name:
        cls = getattr(module, cls_name, None)
        if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
            found = ", ".join(c.__name__ for c in strategy_classes(module)) or "none"
            raise StrategyError(f"{where}: no Strategy subclass named {cls_name!r} (found: {found})")
        return cls
    explicit = getattr(module, "STRATEGY", None)
    if inspect.isclass(explicit) and issubclass(explicit, Strategy):
        return explicit
    classes = strategy_classes(module)
    if len(classes) != 1:
        names = ", ".join(c.__name__ for c in classes) or "none"
        raise StrategyError(f"{where}: expected one Strategy subclass, found {names}; "
                            f"name one as {where}:Class")
    return classes[0]


def strategy_classes(module) -> list[type]:
    """Strategy subclasses defined in (not imported into) a module."""
    return [v for v in vars(module).values()
            if inspect.isclass(v) and issubclass(v, Strategy) and v is not Strategy
            and v.__module__ == module.__name__]


def _entry_points():
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def resolve_strategy(spec: str) -> type:
    """The Strategy subclass named by `spec` (see the module docstring)."""
    path_part, _, cls_name = spec.partition(":")
    if path_part.endswith(".py"):
        p = Path(path_part)
        if not p.is_file():
            raise StrategyError(f"strategy file not found: {p}")
        return _pick_class(load_module_from_file(p), cls_name or None, path_part)
    if ":" in spec:
        try:
            module = importlib.import_module(path_part)
        except ImportError as e:
            raise StrategyError(f"cannot import strategy module {path_part!r}: {e}") from e
        return _pick_class(module, cls_name, path_part)
    short = f"strategies.{spec}"
    if importlib.util.find_spec("strategies") and importlib.util.find_spec(short):
        return _pick_class(importlib.import_module(short), None, spec)
    eps = _entry_points()
    if spec in eps:
        obj = eps[spec].load()
        if inspect.isclass(obj) and issubclass(obj, Strategy):
            return obj
        return _pick_class(obj, None, spec)
    import difflib

    names = sorted(set(list_strategy_names()))
    close = difflib.get_close_matches(spec, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise StrategyError(f"unknown strategy {spec!r}{hint} (known: {', '.join(names)}; "
                        "or give module:Class or path/to/file.py:Class)")


def list_strategy_names() -> list[str]:
    names = []
    try:
        import strategies

        names += [m.name for m in pkgutil.iter_modules(strategies.__path__) if not m.name.startswith("_")]
    except ImportError:
        pass
    names += list(_entry_points())
    return names


def list_strategies() -> list[tuple[str, type]]:
    """(short name, class) of every bundled and entry-point strategy that loads."""
    out = []
    for name in sorted(set(list_strategy_names())):
        try:
            out.append((name, resolve_strategy(name)))
        except StrategyError:
            continue
    return out
