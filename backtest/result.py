"""The Result of a run: polars tables plus a JSON manifest, saved to and loaded from a run folder.

A run folder holds one Parquet file per table and ``manifest.json``. It is written to a temporary
sibling and renamed when complete, so a folder that exists is a finished run.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from .atomic import atomic_dir, write_text
from .errors import CascadeError

TABLES = ("fills", "orders", "equity", "bars", "funding", "liquidations", "trades", "loans")
MANIFEST = "manifest.json"


@dataclass
class Result:
    """Tables (polars DataFrames, see docs/results.md for their columns) and the manifest dict.

    The manifest carries: run_id, strategy {name, class, file, source_sha256, params}, symbols,
    instruments, config, data {path, fingerprint}, timings {compile_s, run_s, events,
    events_per_s}, headline {final_equity, return, max_drawdown, trades, fees}, metrics, versions.
    """

    manifest: dict
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)

    def __getattr__(self, name):
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(name)

    @property
    def symbols(self) -> list[str]:
        return list(self.manifest.get("symbols", []))

    @property
    def headline(self) -> dict:
        return dict(self.manifest.get("headline", {}))

    @property
    def metrics(self) -> dict:
        return dict(self.manifest.get("metrics", {}))

    def save(self, run_dir: Path) -> Path:
        run_dir = Path(run_dir)
        with atomic_dir(run_dir) as tmp:
            for name, df in self.tables.items():
                df.write_parquet(tmp / f"{name}.parquet")
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
