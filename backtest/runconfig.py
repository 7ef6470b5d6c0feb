"""Run configs in TOML: what to run (strategy, data, params, ...) plus the RunConfig sections.

    strategy = "reference"
    data = "data/generated/feb-2026-crash"   # paths are relative to the current directory
    symbols = ["BTCUSDT"]
    start = "2026-02-05"
    out = "runs/crash_long_20x"
    seed = 0
    leverage = { BTCUSDT = 20 }
    [params]        entry = 62000
    [execution]     latency = "5ms"
    [margin]        mode = "isolated"
    [sweep]         metric = "return", random = 0, seed = 0, jobs = 2, engine = "local", batch_size = 0
    [sweep.grid]    entry = [61000, 62000], stop = "59000:61000:500"
    [walk_forward]  train = "1d", test = "12h", step = "12h"

Command-line flags override file values key by key (dotted keys: `execution.latency`). Unknown
keys and bad values are ConfigErrors naming the key, with a "did you mean" suggestion.
"""
from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from .config import RunConfig, parse_duration_ns, parse_time_ns
from .errors import ConfigError, shown

# Top-level keys that say *what* to run; everything else belongs to RunConfig.
SPEC_KEYS = ("strategy", "data", "symbols", "start", "end", "out", "params", "sweep", "walk_forward")
SWEEP_KEYS = {"grid": {}, "random": 0, "seed": 0, "metric": "return", "jobs": 0, "engine": "local",
              "address": None, "batch_size": 0}
WALK_FORWARD_KEYS = {"train": None, "test": None, "step": None}


@dataclass(frozen=True)
class RunSpec:
    """A fully merged and validated run description (file values, then flag overrides)."""

    strategy: str | None = None
    data: str | None = None
    symbols: list[str] | None = None
    start: str | int | None = None
    end: str | int | None = None
    out: str | None = None
    params: dict = field(default_factory=dict)
    config: RunConfig = field(default_factory=RunConfig)
    sweep: dict = field(default_factory=lambda: dict(SWEEP_KEYS))
    walk_forward: dict = field(default_factory=lambda: dict(WALK_FORWARD_KEYS))

    def require(self, *names: str) -> None:
        """Usage error for a missing required value (a flag or a config-file key)."""
        for n in names:
            if getattr(self, n) in (None, ""):
                raise ConfigError(f"missing {n}: pass --{n.replace('_', '-')} or set `{n}` in the config file")

    def to_dict(self) -> dict:
        """The effective config as a TOML-ready dict (None values dropped: TOML has no null)."""
        d = {"strategy": self.strategy, "data": self.data, "symbols": self.symbols,
             "start": self.start, "end": self.end, "out": self.out, "params": dict(self.params)}
        d.update(self.config.to_dict())
        return _drop_none(d)


def load_toml(path: str | Path) -> dict:
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None


def parse_value(text: str):
    """A command-line value as TOML would read it (numbers, booleans, lists), else the string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignments(items, what: str) -> dict:
    """['k=v', ...] -> {k: value}; a missing '=' is a usage error naming the flag."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what}: expected KEY=VALUE, got {shown(item)}")
        out[key.strip()] = parse_value(value.strip())
    return out


def set_dotted(d: dict, key: str, value) -> None:
    """d['a.b.c'] = v as nested tables (execution.latency -> d['execution']['latency'])."""
    *parents, last = key.split(".")
    for p in parents:
        nxt = d.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{key}: '{p}' is not a table")
        d = nxt
    d[last] = value


def merge(base: dict, over: dict) -> dict:
    """Recursive merge: tables merge key by key, other values are replaced."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and not v and k in out:
            continue  # an empty table of flags gives nothing: keep the file's value
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_spec(file: str | Path | None = None, overrides: dict | None = None,
               sets: dict | None = None) -> RunSpec:
    """Load `file` (optional), merge nested `overrides` (flag values; None = not given), then the
    dotted `sets` (--set execution.latency=5ms), and validate the result."""
    raw = load_toml(file) if file else {}
    over = _drop_none(overrides or {})
    for key, value in (sets or {}).items():
        set_dotted(over, key, value)
    return spec_from_dict(merge(raw, over))


def spec_from_dict(d: dict) -> RunSpec:
    d = dict(d)
    run_keys = [f.name for f in fields(RunConfig)]
    for key in d:
        if key not in SPEC_KEYS and key not in run_keys:
            raise ConfigError(f"unknown key '{key}'{_hint(key, list(SPEC_KEYS) + run_keys)}")
    spec = {k: d.pop(k) for k in SPEC_KEYS if k in d}
    for k in ("strategy", "data", "out"):
        if k in spec and not isinstance(spec[k], str):
            raise ConfigError(f"{k}: expected a string, got {shown(spec[k])}")
    if "symbols" in spec:
        spec["symbols"] = _symbols(spec["symbols"])
    for k in ("start", "end"):
        if k in spec:
            if hasattr(spec[k], "isoformat"):  # TOML dates/datetimes arrive as objects
                spec[k] = spec[k].isoformat()
            parse_time_ns(spec[k], k)  # validate now: one-line error naming the key
    params = spec.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError(f"params: expected a table of parameter values, got {shown(params)}")
    spec["sweep"] = _section("sweep", spec.get("sweep", {}), SWEEP_KEYS)
    _check_sweep(spec["sweep"])
    spec["walk_forward"] = _section("walk_forward", spec.get("walk_forward", {}), WALK_FORWARD_KEYS)
    for k, v in spec["walk_forward"].items():
        if v is not None:
            parse_duration_ns(v, f"walk_forward.{k}")
    return RunSpec(**spec, config=RunConfig.from_dict(d))


def _symbols(v) -> list[str]:
    if isinstance(v, str):
        v = [s for s in (p.strip() for p in v.split(",")) if s]
    if not (isinstance(v, list) and all(isinstance(s, str) for s in v)):
        raise ConfigError(f"symbols: expected a list of symbol names or 'A,B', got {shown(v)}")
    return v


def _section(name: str, raw, defaults: dict) -> dict:
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: expected a table of settings, got {shown(raw)}")
    for key in raw:
        if key not in defaults:
            raise ConfigError(f"{name}: unknown key '{key}'{_hint(key, list(defaults))}")
    return {**{k: (dict(v) if isinstance(v, dict) else v) for k, v in defaults.items()}, **raw}


def _check_sweep(s: dict) -> None:
    if not isinstance(s["grid"], dict):
        raise ConfigError(f"sweep.grid: expected a table of parameter values, got {shown(s['grid'])}")
    for k in ("random", "seed", "jobs", "batch_size"):
        if isinstance(s[k], bool) or not isinstance(s[k], int) or s[k] < 0:
            raise ConfigError(f"sweep.{k}: expected an integer >= 0, got {shown(s[k])}")
    if s["engine"] not in ("local", "ray"):
        raise ConfigError(f"sweep.engine: expected 'local' or 'ray', got {shown(s['engine'])}")


def _hint(key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1)
    return f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(names)})"


def _drop_none(v):
    if isinstance(v, dict):
        return {k: _drop_none(x) for k, x in v.items() if x is not None}
    return v


def to_toml(d: dict) -> str | None:
    """TOML text of a config dict, or None when tomli-w is not installed (it is optional)."""
    try:
        import tomli_w
    except ImportError:
        return None
    return tomli_w.dumps(_drop_none(d))
