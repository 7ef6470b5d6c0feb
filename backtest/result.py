"""The Result of a run: polars tables plus a JSON manifest, saved to and loaded from a run folder.

A run folder holds one Parquet file per table and ``manifest.json``. It is written to a temporary
sibling and renamed when complete, so a folder that exists is a finished run.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from .atomic import atomic_dir, write_text
from .core.enums import (
    Liquidity, OrderStatus, OrderType, Reason, TimeInForce, TriggerSource, names_of,
)
from .errors import CascadeError

TABLES = ("fills", "orders", "equity", "bars", "funding", "liquidations", "trades", "loans")
MANIFEST = "manifest.json"
# int code column -> its enum: every table with the column also gets `<column>_name`, the member's
# lowercase name as a polars Enum (categories in value order), right after the code. The int codes
# stay: the oracle, the metrics and the figures compute with them.
ENUM_COLUMNS = {"order_type": OrderType, "tif": TimeInForce, "status": OrderStatus, "reason": Reason,
                "liquidity": Liquidity, "trigger_source": TriggerSource}


def collect_small(query: pl.LazyFrame) -> pl.DataFrame:
    """Run a lazy query over a Result's small tables. A chain of frame steps runs as one query,
    on polars' in-memory engine: every eager step costs a fixed 0.15-0.5 ms, and the default
    engine's start-up costs more than these frames' whole work (benchmarks/README.md)."""
    return query.collect(engine="in-memory")


def enum_dtype(enum) -> pl.Enum:
    return pl.Enum(list(names_of(enum)))


def with_enum_names(df: pl.DataFrame) -> pl.DataFrame:
    """`df` with a readable `<column>_name` after each int code column of ENUM_COLUMNS (idempotent;
    a code no member has gives null)."""
    cols = df.get_columns()
    names = set(df.columns)
    out = []
    for s in cols:
        out.append(s)
        enum = ENUM_COLUMNS.get(s.name)
        if enum is not None and f"{s.name}_name" not in names:
            out.append(_names(s, enum))
    return pl.DataFrame(out) if len(out) > len(cols) else df


@functools.cache
def _lookup(enum) -> tuple[np.ndarray, pa.Array, pl.Enum]:
    """(position of each code in value order, -1 for none; the names; the Enum dtype) of `enum`."""
    values = sorted(int(m) for m in enum)
    pos = np.full(values[-1] + 1, -1, dtype=np.int32)
    pos[values] = np.arange(len(values), dtype=np.int32)
    return pos, pa.array(names_of(enum)), enum_dtype(enum)


def _names(codes: pl.Series, enum) -> pl.Series:
    """`<codes>_name`: each code's member name as an Enum value, null for a code no member has.
    Built as an Arrow dictionary array over the codes' positions (a polars `replace_strict` costs
    0.4 ms on any frame, and Results hold many small ones)."""
    pos, names, dtype = _lookup(enum)
    c = codes.to_numpy()  # floats with NaN where a code is null
    known = (c >= 0) & (c < len(pos))  # NaN compares False
    idx = np.where(known, pos[np.where(known, c, 0).astype(np.intp)], -1)
    indices = pa.array(idx, mask=idx < 0, type=pa.int32())
    return pl.Series(f"{codes.name}_name", pa.DictionaryArray.from_arrays(indices, names)).cast(dtype)


_READ_ONLY = ("a Result is read-only: build a changed copy with result.replace(manifest=..., tables=...) "
              "(result.manifest_copy() gives a mutable copy of the manifest)")


def _refuse(self, *args, **kwargs):
    raise TypeError(_READ_ONLY)


class FrozenDict(dict):
    """A dict that refuses changes (the manifest and the tables of a Result). A dict subclass, so
    json, equality with plain dicts and `isinstance(x, dict)` keep working; pickles and deep-copies
    as itself."""

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse

    def __reduce__(self):
        return (FrozenDict, (dict(self),))

    def __reduce_ex__(self, protocol):
        return self.__reduce__()


class FrozenList(list):
    """A list that refuses changes (lists inside a manifest); equal to the plain list it holds."""

    __setitem__ = __delitem__ = append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __iadd__ = __imul__ = _refuse

    def __reduce__(self):
        return (FrozenList, (list(self),))

    def __reduce_ex__(self, protocol):
        return self.__reduce__()


def frozen(v):
    """`v` with every dict and list inside it made read-only."""
    if isinstance(v, dict):
        return FrozenDict({k: frozen(x) for k, x in v.items()})
    if isinstance(v, (list, tuple)) and not isinstance(v, FrozenList):
        return FrozenList(frozen(x) for x in v)
    return v


def thawed(v):
    """A mutable deep copy of `v` (plain dicts and lists)."""
    if isinstance(v, dict):
        return {k: thawed(x) for k, x in v.items()}
    if isinstance(v, list):
        return [thawed(x) for x in v]
    return v


@dataclass(frozen=True)
class Result:
    """Tables (polars DataFrames, see docs/results.md for their columns) and the manifest dict.

    The manifest carries: run_id, strategy {name, class, file, source_sha256, params}, symbols,
    instruments, config, data {path, fingerprint}, timings {compile_s, run_s, events,
    events_per_s}, headline {final_equity, return, max_drawdown, trades, fees}, metrics, versions
    (every field is described in docs/results.md).

    A Result cannot be changed by accident: its manifest and table mapping are read-only (polars
    frames are immutable values already). `result.replace(manifest=...)` builds a changed copy.
    """

    manifest: dict
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "manifest", frozen(self.manifest))
        object.__setattr__(self, "tables", FrozenDict({k: with_enum_names(v) for k, v in self.tables.items()}))

    def __getattr__(self, name):
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(name)

    def replace(self, **changes) -> "Result":
        """A new Result with `manifest` and/or `tables` replaced (this one is unchanged)."""
        return dataclasses.replace(self, **changes)

    def manifest_copy(self) -> dict:
        """A mutable deep copy of the manifest (plain dicts and lists)."""
        return thawed(self.manifest)

    @property
    def symbols(self) -> list[str]:
        return list(self.manifest.get("symbols", []))

    @property
    def headline(self) -> dict:
        return dict(self.manifest.get("headline", {}))

    @property
    def metrics(self) -> dict:
        return dict(self.manifest.get("metrics", {}))

    @property
    def rejects(self) -> dict[str, int]:
        """Rejected orders by reason, most frequent first: {'insufficient_margin': 60, ...}."""
        return rejects_by_reason(self.tables.get("orders"),
                                 int((self.manifest.get("headline") or {}).get("rejects") or 0))

    def save(self, run_dir: Path, *, extra: dict[str, str] | None = None, before_commit=None) -> Path:
        """Write the run folder in one atomic step, with `extra` text files beside the tables
        (the CLI's config.toml); `before_commit` as atomic.atomic_dir."""
        run_dir = Path(run_dir)
        with atomic_dir(run_dir, before_commit=before_commit) as tmp:
            for name, df in self.tables.items():
                df.write_parquet(tmp / f"{name}.parquet")
            for name, text in (extra or {}).items():
                write_text(tmp / name, text)
            write_text(tmp / MANIFEST, json.dumps(self.manifest, indent=2, sort_keys=True, default=str))
        return run_dir

    @classmethod
    def load(cls, run_dir: Path) -> "Result":
        run_dir = Path(run_dir)
        mpath = run_dir / MANIFEST
        if not mpath.is_file():
            raise CascadeError(f"{run_dir}: not a run folder (no {MANIFEST}); "
                               "pass the --out folder of a finished `backtest run`")
        manifest = json.loads(mpath.read_text())
        tables = {p.stem: pl.read_parquet(p) for p in sorted(run_dir.glob("*.parquet"))}
        return cls(manifest=manifest, tables=tables)


def rejects_by_reason(orders: pl.DataFrame | None, total: int = 0) -> dict[str, int]:
    """Rejected orders counted by reason; `total` (the engine's count, which includes rejects the
    full orders table could not record) adds an 'unrecorded' entry for the difference."""
    from .core.schema import OrderStatus, Reason

    out: dict[str, int] = {}
    if orders is not None and orders.height and {"status", "reason"} <= set(orders.columns):
        rej = orders.filter(pl.col("status") == int(OrderStatus.REJECTED))
        counts = rej.group_by("reason").len().sort(["len", "reason"], descending=[True, False])
        for code, n in counts.iter_rows():
            name = Reason(code).name.lower() if code in Reason._value2member_map_ else f"reason_{code}"
            out[name] = int(n)
    if total > sum(out.values()):
        out["unrecorded"] = total - sum(out.values())
    return out


def rejects_text(rejects: dict[str, int]) -> str:
    """'65 (insufficient_margin 60, below_lot_size 5)' or '0'."""
    n = sum(rejects.values())
    return f"{n:,} ({', '.join(f'{k} {v:,}' for k, v in rejects.items())})" if n else "0"
