"""Strategy plugins: a class whose annotated fields become a numpy record and whose hooks compile.

    from backtest import Strategy, param, Symbol, buy, sell, position

    class Dip(Strategy):
        '''Buy the dip.'''
        sym: Symbol = param("BTCUSDT", "symbol traded")
        entry: float = param(62_000.0, "buy at or below this price")
        size: float = param(1.0, "BTC per entry")
        waiting: bool = False                      # state (annotated, not a param)
        closes: ("f8", 64)                         # state: a fixed-size array (ring buffer)

        def on_tick(self, c, ts_ns, sym, price, qty, side):
            if sym == self.sym and position(c, sym) == 0.0 and price <= self.entry:
                buy(c, sym, self.size)

Fields: `float`, `int`, `bool`, `Symbol` (a symbol name resolved to its index for the run), and
arrays `(dtype, n)` or `(dtype, (n, m))`. Fields set with `param(...)` are parameters (settable
from the CLI, configs and sweeps); other annotated fields are state. Inside hooks `self` is the
record: only its fields are available, so helpers must be module-level `@njit` functions and
constants module-level globals.

Hooks (all optional; `c` is the run context, read it and trade through the SDK):
    on_tick(self, c, ts_ns, sym, price, qty, side)             a trade
    on_quote(self, c, ts_ns, sym, bid, ask, bid_qty, ask_qty)  an L1 quote
    on_mark(self, c, ts_ns, sym, mark_price, index_price)      a mark price update
    on_fill(self, c, ts_ns, sym, oid, price, qty, side)        one of our orders filled
    on_funding(self, c, ts_ns, sym, rate, payment)             a funding time (payment > 0: received)
    on_timer(self, c, ts_ns)                                   every `timer` interval: the run's
                                                               `timer` (--timer 1h), else the
                                                               class attribute `timer = "1h"`
    on_liquidation(self, c, ts_ns, sym, qty, price)            a position of ours was liquidated
    on_margin_call(self, c, ts_ns, sym, margin_ratio)          maint/margin balance crossed the
                                                               warning level (sym -1: cross account)
    on_bar(self, c, ts_ns, sym, open, high, low, close, volume)  a candle, at its close
    on_market_liquidation(self, c, ts_ns, sym, price, qty, side)  another trader's forced order

A method named `on_...` that is not one of these (a misspelt `on_ticks`) is refused with a
suggestion; a hook that the run can never call (on_timer without a timer, on_quote without quotes
in the data, ...) is a warning.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ConfigError, StrategyError, shown

HOOKS = ("on_tick", "on_quote", "on_mark", "on_fill", "on_funding", "on_timer", "on_liquidation",
         "on_margin_call", "on_bar", "on_market_liquidation")


class Symbol:
    """Annotation for a symbol field: give a symbol name; hooks see the symbol's index."""


@dataclass(frozen=True)
class Param:
    default: Any
    doc: str = ""


def param(default, doc: str = "") -> Any:
    """Mark a field as a parameter (settable per run) with its default and a one-line doc."""
    return Param(default, doc)


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str  # "float", "int", "bool", "symbol" or "array"
    dtype: np.dtype
    shape: tuple
    default: Any
    is_param: bool
    doc: str


_SCALARS = {float: ("float", "f8"), int: ("int", "i8"), bool: ("bool", "?"), Symbol: ("symbol", "i8"),
            "float": ("float", "f8"), "int": ("int", "i8"), "bool": ("bool", "?"),
            "Symbol": ("symbol", "i8")}


def _field_spec(cls, name, ann, raw_default) -> FieldSpec:
    is_param = isinstance(raw_default, Param)
    default = raw_default.default if is_param else raw_default
    doc = raw_default.doc if is_param else ""
    if isinstance(ann, tuple):
        base, shape = ann[0], ann[1] if isinstance(ann[1], tuple) else (ann[1],)
        dt = np.dtype(_SCALARS[base][1] if base in _SCALARS else base)
        if dt == np.bool_:
            dt = np.dtype("u1")  # numba cannot type nested bool arrays
        return FieldSpec(name, "array", dt, tuple(int(n) for n in shape),
                         0 if default is None else default, is_param, doc)
    if ann not in _SCALARS:
        raise TypeError(f"{cls.__name__}.{name}: unsupported annotation {shown(ann)} "
                        "(use float, int, bool, Symbol or (dtype, n))")
    kind, code = _SCALARS[ann]
    if default is None:
        default = "" if kind == "symbol" else _coerce(kind, 0, name)
    return FieldSpec(name, kind, np.dtype(code), (), default, is_param, doc)


def _coerce(kind: str, value, name: str):
    if isinstance(value, bool) and kind in ("float", "int"):  # -p size=true is a mistake, not 1.0
        raise ConfigError(f"parameter '{name}': cannot use {value!r} as {kind} (give a number)")
    if kind == "bool" and not isinstance(value, (bool, np.bool_, str)) and \
            (isinstance(value, float) or value not in (0, 1)):
        raise ConfigError(f"parameter '{name}': cannot use {shown(value)} as bool (give true or false)")
    try:
        if kind == "float":
            return float(value)
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(float(value)) if isinstance(value, str) and "." in value else int(value)
        if kind == "bool":
            if isinstance(value, str):
                v = value.strip().lower()
                if v in ("1", "true", "yes", "on"):
                    return True
                if v in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            return bool(value)
        if kind == "symbol":
            return str(value)
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"parameter '{name}': cannot use {shown(value)} as {kind}")


def _check_hook_names(cls) -> None:
    """A misspelt hook would be silently ignored: refuse any on_* method that is not a hook."""
    for name, value in cls.__dict__.items():
        if name.startswith("on_") and callable(value) and name not in HOOKS:
            close = difflib.get_close_matches(name, HOOKS, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]}? " if close else ""
            raise StrategyError(f"{cls.__name__}.{name} is not a hook: {hint}(hooks: {', '.join(HOOKS)}; "
                                "helpers must be module-level @njit functions)")


class Strategy:
    """Base class of strategy plugins (see the module docstring)."""

    _fields: tuple[FieldSpec, ...] = ()
    dtype: np.dtype = np.dtype([("_unused", "u1")])
    timer: str | None = None  # on_timer interval when the run sets none, e.g. "1h"
    # most symbols the strategy's fixed-size per-symbol arrays hold (None: no limit); a run over
    # more is refused before it starts instead of writing past the arrays
    max_symbols: int | None = None

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        _check_hook_names(cls)
        if cls.timer is not None:
            from .config import parse_duration_ns

            parse_duration_ns(cls.timer, f"{cls.__name__}.timer")
        fields: dict[str, FieldSpec] = {f.name: f for f in cls._fields}
        for name, ann in cls.__dict__.get("__annotations__", {}).items():
            if name in ("timer", "max_symbols"):  # class settings, not record fields
                continue
            fields[name] = _field_spec(cls, name, ann, cls.__dict__.get(name))
        cls._fields = tuple(fields.values())
        spec = [(f.name, f.dtype, f.shape) if f.shape else (f.name, f.dtype) for f in cls._fields]
        cls.dtype = np.dtype(spec or [("_unused", "u1")], align=True)

    # --- introspection -------------------------------------------------------------------
    @classmethod
    def params(cls) -> dict[str, FieldSpec]:
        return {f.name: f for f in cls._fields if f.is_param}

    @classmethod
    def hooks(cls) -> dict[str, Any]:
        """The hooks this strategy defines (overrides of the base class)."""
        return {h: getattr(cls, h) for h in HOOKS if getattr(cls, h, None) is not None}

    @classmethod
    def timer_ns(cls) -> int:
        from .config import parse_duration_ns

        return parse_duration_ns(cls.timer, "timer") if cls.timer is not None else 0

    @classmethod
    def hook_warnings(cls, *, timer_ns: int, kinds: set[str], funding: bool) -> list[str]:
        """One line per defined hook that this run can never call. `kinds`: the event kinds in
        the data ('quotes', 'marks', 'funding'); `funding`: whether funding is charged at all."""
        hooks, name, out = cls.hooks(), cls.__name__, []
        if "on_timer" in hooks and timer_ns <= 0:
            out.append(f"{name} defines on_timer but the run has no timer, so it is never called "
                       f"(pass --timer 1h, or set timer = \"1h\" on the class)")
        for hook, kind in (("on_quote", "quotes"), ("on_mark", "marks")):
            if hook in hooks and kind not in kinds:
                out.append(f"{name} defines {hook} but the data has no {kind}, so it is never called")
        if "on_funding" in hooks and not funding:
            out.append(f"{name} defines on_funding but the run charges no funding (no funding data "
                       "and no constant margin.funding), so it is never called")
        return out

    @classmethod
    def describe(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    # --- records ---------------------------------------------------------------------------
    @classmethod
    def resolve_params(cls, params: dict | None) -> dict:
        """Validate and coerce user parameters; unknown names are errors with suggestions."""
        known = cls.params()
        out = {}
        for name, value in (params or {}).items():
            if name not in known:
                close = difflib.get_close_matches(name, list(known), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ConfigError(f"{cls.__name__} has no parameter '{name}'{hint} "
                                  f"(parameters: {', '.join(known) or 'none'})")
            out[name] = _coerce(known[name].kind, value, name)
        return out

    @classmethod
    def new_state(cls, params: dict | None = None, symbols: list[str] | None = None) -> np.recarray:
        """A one-element record holding the defaults overridden by `params`."""
        values = {f.name: f.default for f in cls._fields}
        values.update(cls.resolve_params(params))
        rec = np.zeros(1, dtype=cls.dtype).view(np.recarray)
        symbols = list(symbols or [])
        if cls.max_symbols is not None and len(symbols) > cls.max_symbols:
            raise ConfigError(f"{cls.__name__} holds at most {cls.max_symbols} symbols; this run has "
                              f"{len(symbols)}: choose fewer with --symbols")
        for f in cls._fields:
            v = values[f.name]
            if f.kind == "symbol":
                if v in ("", None):
                    v = -1
                elif v not in symbols:
                    raise ConfigError(f"parameter '{f.name}': symbol {shown(v)} is not in this run "
                                      f"(symbols: {', '.join(symbols)})")
                else:
                    v = symbols.index(v)
            rec[f.name][0] = v
        return rec

    def __getattr__(self, name):  # pragma: no cover - only reached when misused in Python
        raise AttributeError(f"{type(self).__name__} is a record type; hooks see fields only: {name}")
