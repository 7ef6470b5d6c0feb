"""backtest/atomic.py: an interrupted or failed atomic_dir leaves nothing, at every step.

A KeyboardInterrupt is raised just after each filesystem call atomic_dir makes (as a Ctrl-C
handled when the call returns would be): the temporary folder must be gone and the target either
untouched or complete. Before: an interrupt as `mkdir` returned left `.NAME.tmp-*` behind (a CI
failure of tests/test_crash_safety.py::test_run_killed_at_random_moments)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from backtest import atomic


def _hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name)


def _interrupt_after(monkeypatch, module, name, nth=1):
    real = getattr(module, name)
    calls = {"n": 0}

    def wrapped(*args, **kwargs):
        out = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == nth:
            raise KeyboardInterrupt
        return out

    monkeypatch.setattr(module, name, wrapped)


@pytest.mark.parametrize("existing, step, nth", [
    (False, "mkdir", 2), (False, "replace", 1), (False, "rmtree", 1),
    (True, "mkdir", 2), (True, "replace", 1), (True, "replace", 2), (True, "rmtree", 1)])
def test_an_interrupt_after_any_step_leaves_no_temporary_folder(tmp_path, monkeypatch, step, nth, existing):
    """With an output in place (`existing`), the replaces are: the old output aside, the new one
    in; without, the new one in. Whatever step the interrupt follows, there is no temporary
    folder left, and the target holds the old output (the new one never went in) or the new one."""
    final = tmp_path / "run"
    if existing:
        final.mkdir()
        (final / "old.txt").write_text("old")
    if step == "mkdir":  # the second: the first makes sure the parent folder exists
        _interrupt_after(monkeypatch, Path, "mkdir", nth)
    elif step == "replace":
        _interrupt_after(monkeypatch, os, "replace", nth)
    else:
        _interrupt_after(monkeypatch, atomic.shutil, "rmtree", nth)
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_dir(final) as tmp:
            (tmp / "new.txt").write_text("new")
    monkeypatch.undo()
    names = sorted(p.name for p in final.iterdir()) if final.exists() else None
    published = (step == "replace" and nth == (2 if existing else 1)) or step == "rmtree"
    if published:
        assert names == ["new.txt"]
    else:
        assert names == (["old.txt"] if existing else None)
    assert _hidden(tmp_path) == []


def test_before_commit_runs_once_after_the_writes(tmp_path):
    seen = []
    with atomic.atomic_dir(tmp_path / "run", before_commit=lambda: seen.append(
            sorted(p.name for p in (tmp_path).iterdir()))) as tmp:
        (tmp / "a.txt").write_text("a")
    assert len(seen) == 1 and seen[0][0].startswith(".run.tmp-")  # not yet published
    assert (tmp_path / "run" / "a.txt").read_text() == "a" and _hidden(tmp_path) == []


def test_an_error_in_before_commit_publishes_nothing(tmp_path):
    def boom():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_dir(tmp_path / "run", before_commit=boom) as tmp:
            (tmp / "a.txt").write_text("a")
    assert list(tmp_path.iterdir()) == []
