"""Run configuration: frozen dataclasses with every realism knob a named, typed, validated field."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields

from .errors import ConfigError

_UNITS_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
             "h": 3_600_000_000_000, "d": 86_400_000_000_000}


def parse_duration_ns(value, name: str) -> int:
    """'250ms', '1m', '8h', '0' or an int of nanoseconds -> int nanoseconds (>= 0)."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected a duration like '250ms' or '1m', got {value!r}")
    if isinstance(value, (int, float)):
        ns = int(value)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h|d)?\s*", str(value))
        if not m:
            raise ConfigError(f"{name}: expected a duration like '250ms', '1m' or '8h', got {value!r}")
        ns = int(round(float(m.group(1)) * _UNITS_NS[m.group(2) or "ns"]))
    if ns < 0:
        raise ConfigError(f"{name}: must not be negative, got {value!r}")
    return ns


def parse_time_ns(value, name: str) -> int | None:
    """An ISO time ('2026-02-05', '2026-02-05T12:00') in UTC, or int ns, -> int ns."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    import datetime as dt

    try:
        t = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{name}: expected an ISO date/time like 2026-02-05T12:00, got {value!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1_000


@dataclass(frozen=True)
class ExecutionConfig:
    latency: str = "0ms"  # order entry latency (decision -> venue)
    cancel_latency: str = "0ms"  # cancel/amend latency
    touch_fills: bool = False  # resting limits fill when the market touches (not only trades through)

    @property
    def latency_ns(self) -> int:
        return parse_duration_ns(self.latency, "execution.latency")

    @property
    def cancel_latency_ns(self) -> int:
        return parse_duration_ns(self.cancel_latency, "execution.cancel_latency")


@dataclass(frozen=True)
class RunConfig:
    initial_balance: float = 100_000.0
    sample_interval: str = "1m"  # equity and bar sampling ('0' = only fills and the end)
    timer: str = "0"  # on_timer interval ('0' = off)
    leverage: dict = field(default_factory=dict)  # symbol -> leverage (perpetuals; default 1)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    chunk_rows: int = 1 << 20
    seed: int = 0

    def __post_init__(self):
        if not (isinstance(self.initial_balance, (int, float)) and self.initial_balance > 0):
            raise ConfigError(f"initial_balance: must be a positive number, got {self.initial_balance!r}")
        parse_duration_ns(self.sample_interval, "sample_interval")
        parse_duration_ns(self.timer, "timer")
        self.execution.latency_ns, self.execution.cancel_latency_ns  # validate now
        for sym, lev in self.leverage.items():
            if not (isinstance(lev, (int, float)) and lev >= 1):
                raise ConfigError(f"leverage.{sym}: must be a number >= 1, got {lev!r}")
        if not (isinstance(self.chunk_rows, int) and self.chunk_rows > 0):
            raise ConfigError(f"chunk_rows: must be a positive integer, got {self.chunk_rows!r}")

    @property
    def sample_interval_ns(self) -> int:
        return parse_duration_ns(self.sample_interval, "sample_interval")

    @property
    def timer_ns(self) -> int:
        return parse_duration_ns(self.timer, "timer")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        d = dict(d)
        exe = d.pop("execution", {}) or {}
        _reject_unknown("execution", exe, ExecutionConfig)
        _reject_unknown("run", d, cls)
        return cls(execution=ExecutionConfig(**exe), **d)


def _reject_unknown(section: str, d: dict, cls) -> None:
    import difflib

    names = [f.name for f in fields(cls)]
    for key in d:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{section}: unknown key '{key}'{hint}")
