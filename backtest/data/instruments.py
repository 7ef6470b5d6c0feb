"""Contract specifications: the instruments file of a dataset (JSON or TOML).

Format (JSON shown; TOML uses the same keys, with ``[instruments.BTCUSDT]`` tables)::

    {"version": 1,
     "instruments": {
        "BTCUSDT": {"type": "linear_perpetual", "base": "BTC", "quote": "USDT", "settle": "USDT",
                    "tick_size": 0.1, "lot_size": 0.001, "contract_size": 1.0,
                    "maker_fee_rate": 0.0002, "taker_fee_rate": 0.0005,
                    "funding_interval_h": 8,
                    "brackets": [{"notional_floor": 0, "notional_cap": 50000, "max_leverage": 125,
                                  "mmr": 0.004, "maint_amount": 0}, ...]}}}

Inverse perpetuals quote ``contract_size`` in USD per contract and their bracket notionals in coin.
"""
from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core.schema import MAX_BRACKETS, InstrumentType
from ..errors import DataError, shown
from .layout import INSTRUMENT_FILES

TYPE_NAMES = {
    "spot": InstrumentType.SPOT,
    "linear_perpetual": InstrumentType.LINEAR_PERPETUAL,
    "inverse_perpetual": InstrumentType.INVERSE_PERPETUAL,
}


@dataclass(frozen=True)
class Bracket:
    notional_floor: float
    notional_cap: float
    max_leverage: float
    mmr: float  # maintenance margin rate
    maint_amount: float  # maintenance amount ("cum"), subtracted from notional * mmr


@dataclass(frozen=True)
class Instrument:
    symbol: str
    type: str
    base: str
    quote: str
    settle: str
    tick_size: float
    lot_size: float
    contract_size: float = 1.0
    maker_fee_rate: float = 0.0002
    taker_fee_rate: float = 0.0005
    funding_interval_h: float = 8.0
    brackets: tuple[Bracket, ...] = field(default_factory=tuple)

    @property
    def kind(self) -> InstrumentType:
        return TYPE_NAMES[self.type]

    @property
    def is_perpetual(self) -> bool:
        return self.kind != InstrumentType.SPOT

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("symbol")
        d["brackets"] = [asdict(b) for b in self.brackets]
        return d


_REQUIRED = ("type", "base", "quote", "settle", "tick_size", "lot_size")
_KNOWN = set(Instrument.__dataclass_fields__) - {"symbol"}
_BRACKET_KEYS = set(Bracket.__dataclass_fields__)


def find_instruments_file(root: Path) -> Path:
    for name in INSTRUMENT_FILES:
        p = Path(root) / name
        if p.is_file():
            return p
    raise DataError(
        "no instruments file",
        file=Path(root),
        fix=f"add {INSTRUMENT_FILES[0]} with each symbol's contract spec (see data/README.md)",
    )


def load_instruments(path: Path) -> dict[str, Instrument]:
    """Read and validate an instruments file (or the one inside a dataset folder)."""
    path = Path(path)
    if path.is_dir():
        path = find_instruments_file(path)
    try:
        raw = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"cannot parse instruments file: {e}", file=path, fix="fix the syntax") from None
    table = raw.get("instruments") if isinstance(raw, dict) else None
    if not isinstance(table, dict) or not table:
        raise DataError("missing or empty 'instruments' table", file=path,
                        fix="map each symbol to its spec under 'instruments'")
    return {sym: _parse_one(path, sym, spec) for sym, spec in table.items()}


def _parse_one(path: Path, sym: str, spec) -> Instrument:
    where = f"instruments.{sym}"
    if not isinstance(spec, dict):
        raise DataError(f"{where} must be a table", file=path)
    unknown = set(spec) - _KNOWN
    if unknown:
        raise DataError(f"{where}: unknown key(s) {sorted(unknown)}", file=path,
                        fix=f"use only {sorted(_KNOWN)}")
    missing = [k for k in _REQUIRED if k not in spec]
    if missing:
        raise DataError(f"{where}: missing key(s) {missing}", file=path)
    if spec["type"] not in TYPE_NAMES:
        raise DataError(f"{where}.type: unknown type {shown(spec['type'])}", file=path,
                        fix=f"use one of {sorted(TYPE_NAMES)}")
    for k in _NUMBERS:
        if k in spec and not _is_number(spec[k]):
            raise DataError(f"{where}.{k} must be a number, got {shown(spec[k])}", file=path)
    brackets = []
    for j, b in enumerate(spec.get("brackets", [])):
        if not isinstance(b, dict) or set(b) != _BRACKET_KEYS:
            raise DataError(f"{where}.brackets[{j}] must have exactly the keys {sorted(_BRACKET_KEYS)}",
                            file=path)
        for k, v in b.items():
            if not _is_number(v):
                raise DataError(f"{where}.brackets[{j}].{k} must be a number, got {v!r}", file=path)
        brackets.append(Bracket(**{k: float(v) for k, v in b.items()}))
    if len(brackets) > MAX_BRACKETS:
        raise DataError(f"{where}: {len(brackets)} brackets, at most {MAX_BRACKETS} supported", file=path)
    fields = {k: v for k, v in spec.items() if k != "brackets"}
    for k in _NUMBERS:
        if k in fields:
            fields[k] = float(fields[k])
    inst = Instrument(symbol=sym, brackets=tuple(brackets), **fields)
    validate_instrument(inst, path)
    return inst


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_NUMBERS = ("tick_size", "lot_size", "contract_size", "maker_fee_rate", "taker_fee_rate",
            "funding_interval_h")

#: Plausible ranges of the scalar fields: (low, high, low inclusive, high inclusive). Fees beyond
#: these are typing errors (a taker fee of -0.5 pays the trader half of every notional).
RANGES = {
    "tick_size": (0.0, math.inf, False, False),
    "lot_size": (0.0, math.inf, False, False),
    "contract_size": (0.0, math.inf, False, False),
    "maker_fee_rate": (-0.01, 0.01, True, True),  # down to a 1% rebate
    "taker_fee_rate": (0.0, 0.01, True, True),
    "funding_interval_h": (0.0, 24.0 * 7, False, True),
}
MAX_LEVERAGE = (1.0, 200.0)
CUM_REL_TOL = 1e-6  # maint_amount rounding allowed (published tables round to 6 decimals)


def _span(lo, hi, lo_in, hi_in) -> str:
    return f"{'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"


def instrument_problems(inst: Instrument) -> list[tuple[str, float, str]]:
    """Every out-of-range field of ``inst`` as ``(field, value, allowed)``; empty when valid.

    Checks: every number finite; tick, lot and contract size > 0; maker fee in [-0.01, 0.01],
    taker fee in [0, 0.01]; brackets (perpetuals) starting at 0, each cap above its floor and the
    next floor equal to it, mmr in (0, 1) and never decreasing, max_leverage in [1, 200] and never
    increasing, and maintenance amounts continuous at every boundary:
    ``cum_b = cum_{b-1} + floor_b * (mmr_b - mmr_{b-1})`` (``cum_0 = 0``), so the maintenance
    margin has no jump where a position crosses a bracket.
    """
    out = []
    for k, (lo, hi, lo_in, hi_in) in RANGES.items():
        v = getattr(inst, k)
        ok = math.isfinite(v) and (v >= lo if lo_in else v > lo) and (v <= hi if hi_in else v < hi)
        if not ok:
            out.append((k, v, _span(lo, hi, lo_in, hi_in)))
    if inst.taker_fee_rate < inst.maker_fee_rate:
        out.append(("taker_fee_rate", inst.taker_fee_rate,
                    f">= maker_fee_rate ({inst.maker_fee_rate:g}); were the two swapped?"))
    prev = None
    for j, b in enumerate(inst.brackets):
        f = f"brackets[{j}]."
        for k in Bracket.__dataclass_fields__:
            if not math.isfinite(getattr(b, k)):
                out.append((f + k, getattr(b, k), "a finite number"))
        want_floor = 0.0 if prev is None else prev.notional_cap
        if b.notional_floor != want_floor:
            out.append((f + "notional_floor", b.notional_floor,
                        "0" if prev is None else f"{want_floor:g} (the previous notional_cap)"))
        if not b.notional_cap > b.notional_floor:
            out.append((f + "notional_cap", b.notional_cap, f"> notional_floor ({b.notional_floor:g})"))
        lo_lev, hi_lev = MAX_LEVERAGE
        if prev is not None:
            hi_lev = min(hi_lev, prev.max_leverage)
        if not lo_lev <= b.max_leverage <= hi_lev:
            out.append((f + "max_leverage", b.max_leverage, f"[{lo_lev:g}, {hi_lev:g}]"))
        lo_mmr = 0.0 if prev is None else prev.mmr
        if not (b.mmr > 0.0 and b.mmr >= lo_mmr and b.mmr < 1.0):
            out.append((f + "mmr", b.mmr, f"[{lo_mmr:g}, 1)" if prev is not None else "(0, 1)"))
        cum = 0.0 if prev is None else prev.maint_amount + b.notional_floor * (b.mmr - prev.mmr)
        if not abs(b.maint_amount - cum) <= CUM_REL_TOL * max(1.0, abs(cum)):
            out.append((f + "maint_amount", b.maint_amount,
                        f"{cum:.10g} (= previous maint_amount + notional_floor * (mmr - previous mmr))"))
        prev = b
    return out


def instrument_warnings(inst: Instrument) -> list[str]:
    """Legal but probably unintended specs, for `data validate`."""
    if inst.is_perpetual and not inst.brackets:
        return [f"instruments.{inst.symbol}: a perpetual without leverage brackets "
                "(the engine's defaults apply; pass --venue on import for the venue's tiers)"]
    return []


def validate_instrument(inst: Instrument, file=None) -> None:
    """Raise :class:`DataError` naming the file, symbol, field, value and allowed range of the
    first out-of-range field of ``inst`` (see :func:`instrument_problems`)."""
    problems = instrument_problems(inst)
    if problems:
        k, v, allowed = problems[0]
        raise DataError(f"instruments.{inst.symbol}.{k} = {v!r} is out of range; allowed: {allowed}",
                        file=file, fix="correct the contract spec (see data/README.md)")




def write_instruments(path: Path, instruments: dict[str, Instrument]) -> None:
    """Write an instruments JSON file atomically."""
    path = Path(path)
    data = {"version": 1, "instruments": {s: i.to_dict() for s, i in sorted(instruments.items())}}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
