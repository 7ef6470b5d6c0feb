"""Run configuration: frozen dataclasses with every realism knob a named, typed, validated field."""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields

from .core.enums import MarginMode, SlippageModel, from_name, names_of
from .errors import ConfigError, shown

_UNITS_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
             "h": 3_600_000_000_000, "d": 86_400_000_000_000}


MAX_DURATION_NS = 36_500 * _UNITS_NS["d"]


def parse_duration_ns(value, name: str) -> int:
    """'250ms', '1m', '8h', '0' or an int of nanoseconds -> int nanoseconds (>= 0)."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected a duration like '250ms' or '1m', got {shown(value)}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ConfigError(f"{name}: expected a duration like '250ms' or '1m', got {shown(value)}")
        ns = int(value)
    else:
        m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h|d)?\s*", str(value))
        if not m:
            raise ConfigError(f"{name}: expected a duration like '250ms', '1m' or '8h', got {shown(value)}")
        ns = int(round(float(m.group(1)) * _UNITS_NS[m.group(2) or "ns"]))
    if ns < 0:
        raise ConfigError(f"{name}: must not be negative, got {shown(value)}")
    if ns > MAX_DURATION_NS:  # added to int64 event times in the kernel: keep far from overflow
        raise ConfigError(f"{name}: at most 100 years ('36500d'), got {shown(value)}")
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
        raise ConfigError(f"{name}: expected an ISO date/time like 2026-02-05T12:00, got {shown(value)}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1_000


SLIPPAGE_MODELS = names_of(SlippageModel)  # config spellings, in value order
QUOTE_MODELS = tuple(n for n in SLIPPAGE_MODELS if from_name(SlippageModel, n).needs_quotes)
MARGIN_MODES = names_of(MarginMode)  # "cross", "isolated"
_MODES_TEXT = " or ".join(f"'{n}'" for n in MARGIN_MODES)


@dataclass(frozen=True)
class ExecutionConfig:
    """How orders meet the market (docs/execution.md). `ExecutionConfig.ideal()` is the
    perfect-fill baseline: no latency, no spread or impact, whole fills."""

    latency: str = "0ms"  # order entry latency (decision -> venue)
    latency_jitter: str = "0ms"  # plus a uniform random delay in [0, jitter), seeded by `seed`
    feed_latency: str = "0ms"  # market data delay: adds to the time an order reaches the venue
    cancel_latency: str = "0ms"  # cancel/amend latency
    touch_fills: bool = False  # resting limits fill when the market touches (not only trades through)
    slippage: str = "spread"  # taker price model: none | spread | fixed_bps | sqrt_impact | l1_depth | l2_depth
    models: dict = field(default_factory=dict)  # symbol -> model (overrides `slippage`)
    slippage_bps: float = 0.0  # fixed_bps: distance from the mid (or last), in basis points
    impact_k: float = 1.0  # sqrt_impact / l1_depth: k in k * sigma * sqrt(q / V)
    impact_horizon: str = "5m"  # window of the causal sigma and V estimates
    partial_fills: bool = False  # a limit fills at most the traded (or displayed) volume
    queue_model: bool = False  # resting limits wait behind the displayed size (needs quotes)
    book_resilience_half_life: float = 1.0  # l2_depth: seconds for consumed depth to half refill
    book_beyond_bps: float = 10.0  # l2_depth: past the deepest level, that level's price worse by this
    replay_book: str = "auto"  # L2 book rows replayed: auto (when l2_depth or the strategy reads it) | on | off
    fee_tiers: tuple = ()  # ({volume_30d, maker_fee_rate, taker_fee_rate}, ...) by 30-day USD volume
    initial_volume_30d: float = 0.0  # 30-day volume before the run (for the first tier)

    @classmethod
    def ideal(cls) -> "ExecutionConfig":
        return cls(slippage="none")

    @property
    def latency_ns(self) -> int:
        return parse_duration_ns(self.latency, "execution.latency")

    @property
    def cancel_latency_ns(self) -> int:
        return parse_duration_ns(self.cancel_latency, "execution.cancel_latency")

    @property
    def latency_jitter_ns(self) -> int:
        return parse_duration_ns(self.latency_jitter, "execution.latency_jitter")

    @property
    def feed_latency_ns(self) -> int:
        return parse_duration_ns(self.feed_latency, "execution.feed_latency")

    @property
    def impact_horizon_ns(self) -> int:
        return parse_duration_ns(self.impact_horizon, "execution.impact_horizon")

    def model_of(self, symbol: str) -> str:
        return self.models.get(symbol, self.slippage)

    def validate(self):
        check_field_types("execution", self)
        self.latency_ns, self.cancel_latency_ns, self.latency_jitter_ns, self.feed_latency_ns
        if self.impact_horizon_ns <= 0:
            raise ConfigError("execution.impact_horizon: must be positive, e.g. '5m'")
        for where, m in [("execution.slippage", self.slippage)] + [
                (f"execution.models.{k}", v) for k, v in self.models.items()]:
            if m not in SLIPPAGE_MODELS:
                import difflib

                close = difflib.get_close_matches(str(m), SLIPPAGE_MODELS, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ConfigError(f"{where}: unknown model {shown(m)}{hint} (one of {', '.join(SLIPPAGE_MODELS)})")
        if self.replay_book not in ("auto", "on", "off"):
            raise ConfigError(f"execution.replay_book: one of auto, on, off; got {shown(self.replay_book)}")
        for name in ("slippage_bps", "impact_k", "initial_volume_30d", "book_resilience_half_life",
                     "book_beyond_bps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and v >= 0):
                raise ConfigError(f"execution.{name}: must be a number >= 0, got {shown(v)}")
        if len(self.fee_tiers) > 8:
            raise ConfigError("execution.fee_tiers: at most 8 tiers")
        last = -1.0
        for i, t in enumerate(self.fee_tiers):
            if not isinstance(t, dict) or set(t) != {"volume_30d", "maker_fee_rate", "taker_fee_rate"}:
                raise ConfigError(f"execution.fee_tiers[{i}]: needs exactly volume_30d, maker_fee_rate, "
                                  "taker_fee_rate")
            for key in ("volume_30d", "maker_fee_rate", "taker_fee_rate"):  # TOML allows any type
                v = t[key]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise ConfigError(f"execution.fee_tiers[{i}].{key}: expected a finite number such as "
                                      f"{'1000000' if key == 'volume_30d' else '0.0004'}, got {shown(v)}")
            if not t["volume_30d"] > last:
                raise ConfigError(f"execution.fee_tiers[{i}]: volume_30d must increase from tier to tier")
            if t["taker_fee_rate"] < 0:
                raise ConfigError(f"execution.fee_tiers[{i}]: taker_fee_rate must be >= 0 "
                                  "(only maker fees can be rebates)")
            last = t["volume_30d"]


@dataclass(frozen=True)
class MarginConfig:
    """Margin, liquidation and funding settings (docs/margin.md); the `[margin]` config section."""

    mode: str = "cross"  # default margin mode of perpetuals: "cross" or "isolated"
    modes: dict = field(default_factory=dict)  # symbol -> "cross" | "isolated" (overrides `mode`)
    trigger: str = "mark"  # liquidation trigger price: "mark" (falls back to last without marks) or "last"
    settle: str = "bankruptcy"  # close liquidated positions at the "bankruptcy" price or as a "market" order
    cancel_orders: bool = True  # cancel the account's open orders of the symbol before liquidating
    liquidation_fee_rate: float = 0.0125  # clearance fee on the liquidated notional (to the insurance fund)
    partial: bool = False  # first reduce a position to the bracket below (tiered partial liquidation)
    insurance_fund: float = 1e9  # initial insurance fund balance (absorbs bankruptcy shortfalls)
    margin_call_ratio: float = 0.8  # on_margin_call fires when maint. margin / margin balance crosses it
    funding: str = "data"  # "data": the dataset's funding events; or a constant rate per interval, e.g. "0.0001"
    spot_margin: bool = False  # allow spot short selling by borrowing the coin (margin account)
    borrow_rate_hourly: float = 0.00001  # spot margin shorts: interest per hour on the borrowed coin value
    spot_margin_maintenance: float = 1.1  # spot margin level (assets / liabilities) that liquidates
    price_guard: bool = True  # skip per-event drawdown/margin checks that provably change nothing (core/guard.py)

    def validate(self):
        check_field_types("margin", self)
        if self.mode not in MARGIN_MODES:
            raise ConfigError(f"margin.mode: expected {_MODES_TEXT}, got {shown(self.mode)}")
        for sym, m in self.modes.items():
            if m not in MARGIN_MODES:
                raise ConfigError(f"margin.modes.{sym}: expected {_MODES_TEXT}, got {shown(m)}")
        if self.trigger not in ("mark", "last"):
            raise ConfigError(f"margin.trigger: expected 'mark' or 'last', got {shown(self.trigger)}")
        if self.settle not in ("bankruptcy", "market"):
            raise ConfigError(f"margin.settle: expected 'bankruptcy' or 'market', got {shown(self.settle)}")
        for name in ("liquidation_fee_rate", "insurance_fund", "borrow_rate_hourly"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and v >= 0):
                raise ConfigError(f"margin.{name}: must be a number >= 0, got {shown(v)}")
        if not (isinstance(self.margin_call_ratio, (int, float)) and 0 < self.margin_call_ratio <= 1):
            raise ConfigError(f"margin.margin_call_ratio: must be in (0, 1], got {shown(self.margin_call_ratio)}")
        if self.funding != "data":
            try:
                float(self.funding)
            except ValueError:
                raise ConfigError(f"margin.funding: expected 'data' or a rate like '0.0001', "
                                  f"got {shown(self.funding)}") from None


@dataclass(frozen=True)
class LoanConfig:
    """Crypto-backed loans, defaults from Coinbase's published terms (see docs/margin.md)."""

    lltv: float = 0.86  # liquidation loan-to-value
    warning_ltv: float = 0.774  # on_margin_call band (90% of LLTV)
    max_open_ltv: float = 0.75  # largest LTV a loan may be opened or increased to
    apr: float = 0.08  # variable rate, accrued continuously
    penalty: float | None = None  # liquidation penalty, LIF - 1; None: Morpho's LIF from lltv
    partial: bool = False  # liquidate only enough to restore max_open_ltv (else close the loan)

    def validate(self):
        check_field_types("loans", self)
        for name in ("lltv", "warning_ltv", "max_open_ltv"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 < v < 1):
                raise ConfigError(f"loans.{name}: must be in (0, 1), got {shown(v)}")
        if not self.max_open_ltv <= self.warning_ltv <= self.lltv:
            raise ConfigError("loans: need max_open_ltv <= warning_ltv <= lltv")
        for name in ("apr", "penalty"):
            v = getattr(self, name)
            if name == "penalty" and v is None:
                continue
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and v >= 0):
                raise ConfigError(f"loans.{name}: must be a number >= 0, got {shown(v)}")


@dataclass(frozen=True)
class RunConfig:
    """Everything that configures a run besides the strategy, its parameters and the data
    (the keys of a TOML run config, docs/cli.md)."""

    initial_balance: float = 100_000.0
    sample_interval: str = "1m"  # equity and bar sampling ('0' = only fills and the end)
    timer: str = "0"  # on_timer interval ('0' = off)
    leverage: dict = field(default_factory=dict)  # symbol, type, 'perp' or '*' -> leverage (default 1)
    coin_balances: dict = field(default_factory=dict)  # inverse symbol -> coin deposited in its wallet
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    margin: MarginConfig = field(default_factory=MarginConfig)
    loans: LoanConfig = field(default_factory=LoanConfig)
    chunk_rows: int = 1 << 20
    seed: int = 0
    benchmark: str = ""  # buy-and-hold symbol of the metrics and report ('' = first traded symbol)
    min_ratio_periods: int = 30  # Sharpe, Sortino and Calmar need this many return periods ...
    min_ratio_span: str = "1d"  # ... and a run at least this long (else None, with a reason)

    def __post_init__(self):
        check_field_types("run", self)
        if not (isinstance(self.initial_balance, (int, float)) and self.initial_balance > 0):
            raise ConfigError(f"initial_balance: must be a positive number, got {shown(self.initial_balance)}")
        parse_duration_ns(self.sample_interval, "sample_interval")
        parse_duration_ns(self.timer, "timer")
        self.execution.validate()
        for sym, amount in self.coin_balances.items():
            if not (isinstance(amount, (int, float)) and amount >= 0):
                raise ConfigError(f"coin_balances.{sym}: must be a number >= 0, got {shown(amount)}")
        for sym, lev in self.leverage.items():
            if not (isinstance(lev, (int, float)) and lev >= 1):
                raise ConfigError(f"leverage.{sym}: must be a number >= 1, got {shown(lev)}")
        self.margin.validate()
        self.loans.validate()
        parse_duration_ns(self.min_ratio_span, "min_ratio_span")
        if not (isinstance(self.min_ratio_periods, int) and self.min_ratio_periods >= 2):
            raise ConfigError(f"min_ratio_periods: must be an integer >= 2, got {self.min_ratio_periods!r}")
        if not (isinstance(self.chunk_rows, int) and self.chunk_rows > 0):
            raise ConfigError(f"chunk_rows: must be a positive integer, got {shown(self.chunk_rows)}")

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
        sections = {"execution": ExecutionConfig, "margin": MarginConfig, "loans": LoanConfig}
        built = {}
        for name, sub in sections.items():
            raw = d.pop(name, {}) or {}
            if isinstance(raw, sub):
                built[name] = raw
                continue
            if not isinstance(raw, dict):
                raise ConfigError(f"{name}: expected a table of settings, got {shown(raw)}")
            _reject_unknown(name, raw, sub)
            if name == "execution" and isinstance(raw.get("fee_tiers"), list):
                raw = {**raw, "fee_tiers": tuple(raw["fee_tiers"])}
            built[name] = sub(**raw)
        _reject_unknown("run", d, cls)
        return cls(**built, **d)


_TYPE_CHECKS = {
    "bool": lambda v: isinstance(v, bool),
    "dict": lambda v: isinstance(v, dict),
    "tuple": lambda v: isinstance(v, (tuple, list)),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool),  # durations, rates
}


def check_field_types(section: str, obj) -> None:
    """Every field holds a value of its annotated kind (TOML gives any type to any key)."""
    for f in fields(obj):
        check = _TYPE_CHECKS.get(f.type if isinstance(f.type, str) else f.type.__name__)
        v = getattr(obj, f.name)
        if check is not None and not check(v):
            raise ConfigError(f"{section}.{f.name}: expected a {f.type}, got {shown(v)}")


def _reject_unknown(section: str, d: dict, cls) -> None:
    import difflib

    names = [f.name for f in fields(cls)]
    for key in d:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{section}: unknown key '{key}'{hint}")


def leverage_by_symbol(leverage: dict, instruments: dict) -> dict[str, float]:
    """Each symbol's leverage from `leverage`, whose keys are a symbol, an instrument type
    ('linear_perpetual', 'spot', ...), 'perp' (every perpetual) or '*' (every perpetual; spot
    stays 1x unless named). The most specific key wins; symbols no key covers get 1x."""
    from .data.instruments import TYPE_NAMES

    groups = {"*", "perp", *TYPE_NAMES}
    unknown = sorted(k for k in leverage if k not in instruments and k not in groups)
    if unknown:
        raise ConfigError(f"leverage: {', '.join(map(shown, unknown))} is neither a symbol of this run "
                          f"nor a group ('*', 'perp', {', '.join(TYPE_NAMES)})")
    out = {}
    for sym, ins in instruments.items():
        keys = (sym, ins.type, "perp", "*") if ins.is_perpetual else (sym, ins.type)
        out[sym] = float(next((leverage[k] for k in keys if k in leverage), 1.0))
    return out
