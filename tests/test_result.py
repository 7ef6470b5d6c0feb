"""A Result cannot be changed by accident (#15 item 3), yet saves, loads, pickles and compares as
before; `replace` and `manifest_copy` are the ways to a changed copy."""
import copy
import json
import pickle

import polars as pl
import pytest

from backtest.result import Result


def _result():
    return Result({"run_id": "a", "strategy": {"params": {"x": 1}}, "warnings": ["w"]},
                  {"fills": pl.DataFrame({"price": [1.0]})})


@pytest.mark.parametrize("change", [
    lambda r: r.manifest.__setitem__("run_id", "b"),
    lambda r: r.manifest["strategy"]["params"].update(x=2),
    lambda r: r.manifest["warnings"].append("more"),
    lambda r: r.manifest.pop("run_id"),
    lambda r: r.tables.__setitem__("fills", pl.DataFrame()),
    lambda r: setattr(r, "manifest", {}),
])
def test_result_is_read_only(change):
    r = _result()
    with pytest.raises((TypeError, AttributeError)):
        change(r)
    assert r.manifest == {"run_id": "a", "strategy": {"params": {"x": 1}}, "warnings": ["w"]}


def test_replace_and_copy_leave_the_original_unchanged(tmp_path):
    r = _result()
    m = r.manifest_copy()
    m["strategy"]["params"]["x"] = 2
    m["warnings"].append("more")
    r2 = r.replace(manifest=m)
    assert r2.manifest["strategy"]["params"]["x"] == 2 and r.manifest["strategy"]["params"]["x"] == 1
    assert r2.fills.equals(r.fills)
    back = Result.load(r2.save(tmp_path / "r2"))
    assert back.manifest == m and json.loads(json.dumps(back.manifest)) == m


def test_pickles_and_deep_copies():
    r = _result()
    for other in (pickle.loads(pickle.dumps(r)), copy.deepcopy(r)):
        assert other.manifest == r.manifest and other.fills.equals(r.fills)
        with pytest.raises(TypeError):
            other.manifest["run_id"] = "b"
