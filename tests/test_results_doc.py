"""docs/results.md against a real run: every table column (name and type) and every manifest field
is documented, and nothing documented is missing (issue #14 item 20)."""
from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

import backtest as bt
from backtest.data.generate import generate_dataset
from backtest.result import TABLES

DOC = Path(__file__).resolve().parents[1] / "docs" / "results.md"
# Manifest fields whose sub-keys are fixed by the code (documented one by one); other dicts are
# keyed by data (symbols, parameter names, config sections) and documented as a whole.
FIXED = ("strategy", "data", "timings", "headline", "metrics", "versions", "config")
SECTIONS = ("execution", "margin", "loans")   # config sections, documented as dicts


@pytest.fixture(scope="module")
def res(tmp_path_factory):
    root = tmp_path_factory.mktemp("results_doc")
    generate_dataset("feb-2026-crash", root / "ds", seed=7, scale=0.02)
    return bt.run("reference", root / "ds", symbols=["BTCUSDT"], out=root / "run")


def _rows(section: str):
    """First cells (backticked names) and second cells of the Markdown table rows of a section."""
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and "`" in cells[0]:
            yield re.findall(r"`([^`]+)`", cells[0]), cells[1], line


def documented_tables() -> dict[str, dict[str, str]]:
    text = DOC.read_text()
    tables_part = text[text.index("## Tables"):text.index("## The manifest")]
    out = {}
    for chunk in re.split(r"^### ", tables_part, flags=re.M)[1:]:
        name = re.match(r"`(\w+)`", chunk).group(1)
        out[name] = {col: typ for cols, typ, _ in _rows(chunk) for col in cols}
    return out


def documented_manifest() -> tuple[set[str], str]:
    text = DOC.read_text()
    part = text[text.index("## The manifest"):]
    return {f for fields, _, _ in _rows(part) for f in fields}, part


def _flatten(manifest: dict) -> set[str]:
    out = set()
    for k, v in manifest.items():
        if k in FIXED and isinstance(v, dict):
            out.update(f"{k}.{sub}" for sub in v)
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            out.add(f"{k}[]")
        else:
            out.add(k)
    return out


def test_every_table_column_is_documented_with_its_type(res, tmp_path):
    loaded = bt.Result.load(Path(res.manifest["data"]["path"]).parent / "run")
    doc = documented_tables()
    assert set(doc) == set(TABLES) == set(res.tables) == set(loaded.tables)
    for name in TABLES:
        # a readable enum column is documented as Enum (its categories are the enum's names)
        actual = {col: "Enum" if isinstance(dtype, pl.Enum) else str(dtype)
                  for col, dtype in loaded.tables[name].schema.items()}
        assert doc[name] == actual, f"docs/results.md, table {name}: documented {doc[name]}, actual {actual}"


def test_every_manifest_field_is_documented(res):
    documented, part = documented_manifest()
    actual = _flatten(res.manifest)
    assert documented == actual, (f"undocumented: {sorted(actual - documented)}; "
                                  f"documented but absent: {sorted(documented - actual)}")
    # costs_by_symbol's columns are named in its row; config sections are dicts
    row = next(line for fields, _, line in _rows(part) if "costs_by_symbol[]" in fields)
    for col in res.manifest["costs_by_symbol"][0]:
        assert f"`{col}`" in row, col
    for sec in SECTIONS:
        assert isinstance(res.manifest["config"][sec], dict)
    assert res.manifest["strategy"]["state"]["entries"] >= 1   # the final state, as documented
