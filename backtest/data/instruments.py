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
    for k in ("tick_size", "lot_size", "contract_size", "funding_interval_h"):
        if k in spec and not (isinstance(spec[k], (int, float)) and spec[k] > 0):
            raise DataError(f"{where}.{k} must be a positive number, got {shown(spec[k])}", file=path)
    brackets = []
    for j, b in enumerate(spec.get("brackets", [])):
        if not isinstance(b, dict) or set(b) != _BRACKET_KEYS:
            raise DataError(f"{where}.brackets[{j}] must have exactly the keys {sorted(_BRACKET_KEYS)}",
                            file=path)
        brackets.append(Bracket(**{k: float(v) for k, v in b.items()}))
    if len(brackets) > MAX_BRACKETS:
        raise DataError(f"{where}: {len(brackets)} brackets, at most {MAX_BRACKETS} supported", file=path)
    for j in range(1, len(brackets)):
        if brackets[j].notional_floor != brackets[j - 1].notional_cap:
            raise DataError(f"{where}.brackets[{j}].notional_floor must equal the previous cap", file=path,
                            fix="list brackets in order, each starting where the previous one ends")
    fields = {k: v for k, v in spec.items() if k != "brackets"}
    for k in ("tick_size", "lot_size", "contract_size", "maker_fee_rate", "taker_fee_rate",
              "funding_interval_h"):
        if k in fields:
            fields[k] = float(fields[k])
    return Instrument(symbol=sym, brackets=tuple(brackets), **fields)


def write_instruments(path: Path, instruments: dict[str, Instrument]) -> None:
    """Write an instruments JSON file atomically."""
    path = Path(path)
    data = {"version": 1, "instruments": {s: i.to_dict() for s, i in sorted(instruments.items())}}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
