"""Compile a strategy into the event loop: one generated module per strategy version (and per
combination of the loop's optional steps a run needs, LoopFeatures).

The generated module is named by a content hash of everything its compiled code depends on: the
strategy's file, the user modules it references (recursively), the framework's own source, and
the numba and Python versions, and by its LoopFeatures. It binds the strategy's hooks and the
features as globals and defines the loop with `@njit(cache=True)`. numba's cache is keyed by the
generated file, so an edited strategy or helper gets a new module (never stale code) and an
unchanged one loads from cache in a new process.
See /shared/research/numba-strategy-plugins.md (approach D) for the measurements behind this.
"""
from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import sys
import sysconfig
import textwrap
from pathlib import Path
from typing import NamedTuple

import numba

from .. import supervisor
from ..atomic import write_text
from ..cachedir import cache_dir
from ..strategy import HOOKS, Strategy
from ..core import loop as loop_template
from ..core import warm
from .error_model import python_errors

PACKAGE_DIR = Path(__file__).resolve().parents[1]
_STDLIB_DIRS = tuple(str(Path(p).resolve()) for p in {sysconfig.get_paths()["stdlib"],
                                                      sysconfig.get_paths()["purelib"],
                                                      sysconfig.get_paths()["platlib"]})


def gen_dir() -> Path:
    d = cache_dir() / "gen"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _is_user_file(path: str | None) -> bool:
    """A file of the user's own code: not the framework, the standard library or an install."""
    if not path or not path.endswith(".py"):
        return False
    p = str(Path(path).resolve())
    return not (p.startswith(str(PACKAGE_DIR)) or p.startswith(_STDLIB_DIRS)
                or "site-packages" in p or "dist-packages" in p)


def _imported_modules(mod) -> list:
    """Modules named by the import statements of a module's source (also `from m import CONST`,
    whose value carries no trace of where it came from)."""
    try:
        tree = ast.parse(Path(mod.__file__).read_text())
    except (OSError, SyntaxError, ValueError):
        return []
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the module's package
                pkg = (mod.__package__ or "").split(".")
                pkg = pkg[:len(pkg) - node.level + 1] if node.level > 1 else pkg
                base = ".".join([p for p in pkg if p] + ([base] if base else []))
            names.append(base)
            names += [f"{base}.{a.name}" for a in node.names]  # `from pkg import submodule`
    return [sys.modules[n] for n in names if n in sys.modules]


def dependency_files(cls: type) -> list[Path]:
    """The strategy's file plus every user module it references: through its globals and through
    its import statements, recursively."""
    root = sys.modules[cls.__module__]
    seen: dict[str, Path] = {}
    todo = [root]
    while todo:
        mod = todo.pop()
        f = getattr(mod, "__file__", None)
        if f in seen or not (mod is root and f or _is_user_file(f)):
            continue
        seen[f] = Path(f).resolve()
        for v in list(vars(mod).values()):
            m = v if inspect.ismodule(v) else sys.modules.get(getattr(v, "__module__", None) or "")
            if m is not None and m is not mod:
                todo.append(m)
        todo += [m for m in _imported_modules(mod) if m is not mod]
    return sorted(seen.values())


def names_in_sources(cls: type, names: tuple[str, ...]) -> bool:
    """True when the strategy's file or a user module it uses (dependency_files) contains one of
    `names`, or when a source cannot be read (then it may)."""
    try:
        sources = [f.read_text() for f in dependency_files(cls)]
    except (OSError, KeyError, UnicodeDecodeError):
        return True
    return not sources or any(n in t for t in sources for n in names)


class LoopFeatures(NamedTuple):
    """The steps of the loop a run can need beyond its hooks, fixed before the loop compiles
    (pack.loop_features). Each is a constant of the generated module: a False one is pruned
    before numba types the loop, so its per-event tests and its kernels are not in the compiled
    loop (without the three, the reference loop ran 1.35-1.42x and one without hooks 1.45-1.48x
    as fast; benchmarks/README.md). `rare` is not a constant of the module but the variant of
    the state's type the loop is called with (core/rare.py). All True is correct for any run."""

    book: bool = True  # an L2 book is replayed: book rows, and trades walk its levels (R9.1-2)
    estimators: bool = True  # an impact model's volume and volatility estimators (R4)
    loans: bool = True  # the strategy can open loans: their per-event checks (docs/margin.md)
    rare: bool = True  # the kernels' rare paths (core/rare.py: inverse, spot, isolated, L2 book, ...)

    def constants(self) -> dict[str, bool]:
        """The generated module's constants (the loop template's RUN_*)."""
        return {f"RUN_{name.upper()}": on for name, on in self._asdict().items() if name != "rare"}

    def tag(self) -> str:
        """The generated module's suffix: empty for the full loop, else `_f` and a digit each."""
        on = tuple(self.constants().values())
        return "" if all(on) else "_f" + "".join(str(int(f)) for f in on)


ALL_STEPS = LoopFeatures()


def framework_files() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def _template_source() -> str:
    """One snapshot of the loop template's file: the generated module is built from exactly the
    bytes that go into its key (an edit racing a build can then never cache a broken loop)."""
    return Path(loop_template.__file__).read_text()


def _run_source(template: str) -> str:
    """The source of the template's `run` function, cut from the snapshot."""
    tree = ast.parse(template)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "run":
            lines = template.splitlines()[node.lineno - 1:node.end_lineno]
            return textwrap.dedent("\n".join(lines)) + "\n"
    raise RuntimeError(f"{loop_template.__file__} has no run() template")


def strategy_key(cls: type, template: str | None = None) -> str:
    h = hashlib.sha256()
    for f in framework_files() + dependency_files(cls):
        h.update(str(f.name).encode())
        h.update(f.read_bytes())
    h.update((template if template is not None else _template_source()).encode())
    h.update(f"{numba.__version__}|{sys.version}|{cls.__module__}.{cls.__qualname__}".encode())
    # numba's cache does not tell bounds-checked code from unchecked code (NUMBA_BOUNDSCHECK,
    # `backtest run --boundscheck`): the loop of each is its own module
    if numba.config.BOUNDSCHECK:
        h.update(b"|boundscheck")
    return h.hexdigest()[:16]


def source_sha256(cls: type) -> str:
    h = hashlib.sha256()
    for f in dependency_files(cls):
        h.update(f.read_bytes())
    return h.hexdigest()


def _loader_args(cls: type) -> tuple[str, str, str]:
    mod = sys.modules[cls.__module__]
    return cls.__module__, cls.__qualname__, str(Path(mod.__file__).resolve())


def _module_text(cls: type, key: str, template: str, features: LoopFeatures) -> str:
    module, qualname, file = _loader_args(cls)
    hooks = cls.hooks()
    lines = [
        f"# AUTO-GENERATED by Cascade for {module}:{qualname} -- do not edit. key={key}",
        "import importlib as _il",
        "",
        "_tmpl = _il.import_module('backtest.core.loop')",
        "globals().update({k: v for k, v in vars(_tmpl).items() if not k.startswith('__')})",
        "from numba import njit as _njit",
        "from backtest.plugins.codegen import load_strategy_class as _load_cls",
        "",
        f"_S = _load_cls({module!r}, {qualname!r}, {file!r})",
    ]
    for h in HOOKS:
        if h in hooks:
            # inlined into the loop at numba IR level: no call, optimised with the loop
            lines.append(f"_{h} = _njit(_S.{h}, inline=\"always\")")
            lines.append(f"HAS_{h.upper()} = True")
    lines += [f"{name} = {on}" for name, on in features.constants().items()]
    body = _run_source(template)
    # without numba's reference counting (the framework's kernels never allocate; counting every
    # array of the state at every call cost 15x in events/s), and the same loop with it, for
    # hooks that allocate arrays (engine.first_call picks it when the first does not compile)
    lines += ["", "", "@_njit(cache=True, nogil=True, no_cfunc_wrapper=True, _nrt=False)", body,
              "", "", "@_njit(cache=True, nogil=True, no_cfunc_wrapper=True)",
              body.replace("def run(", "def run_refcounted(", 1)]
    return "\n".join(lines)


def load_strategy_class(module: str, qualname: str, file: str) -> type:
    """Used by generated modules (in any process) to find their strategy class again."""
    if module.startswith("_cascade_user_"):
        from .resolve import load_module_from_file

        mod = load_module_from_file(file)
    else:
        mod = importlib.import_module(module)
    obj = mod
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def build_loop(cls: type, refcounted: bool = False, features: LoopFeatures = ALL_STEPS):
    """The compiled (or, with NUMBA_DISABLE_JIT=1, pure-Python) loop for a strategy class;
    `refcounted`: the variant compiled with numba's reference counting (hooks that allocate);
    `features`: the steps the run needs (a module, and a cache entry, per combination)."""
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
        raise TypeError(f"{cls!r} is not a Strategy subclass")
    features = LoopFeatures(*features)
    template = _template_source()
    key = strategy_key(cls, template)
    safe_mod = "".join(ch if ch.isalnum() else "_" for ch in cls.__module__)[-40:]
    modname = f"_cascade_gen_{safe_mod}_{cls.__name__}_{key}{features.tag()}"
    directory = gen_dir()
    path = directory / f"{modname}.py"
    text = _module_text(cls, key, template, features)
    if not path.exists() or path.read_text() != text:  # also repairs a damaged file
        write_text(path, text)
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    importlib.invalidate_caches()
    if not numba.config.DISABLE_JIT:
        # cold framework cache: a second process compiles part of it meanwhile, first the steps
        # this loop calls
        unused = [n for n, on in features._asdict().items() if not on]
        warm.start(unused + (["bars"] if "on_bar" not in cls.hooks() else []))
    module = importlib.import_module(modname)
    run = module.run_refcounted if refcounted else module.run
    if not numba.config.DISABLE_JIT and not hasattr(run, "stats"):
        raise RuntimeError(f"{path} did not produce a compiled loop; remove it and retry")
    supervisor.note_strategy(f"{cls.__name__} ({_loader_args(cls)[2]})")  # named if it crashes
    if numba.config.DISABLE_JIT:
        return python_errors(run)  # raise where the compiled loop raises
    return run
