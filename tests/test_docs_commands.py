"""Every documented command runs (issue #14 item 17).

The commands are read from the documents themselves: each ```sh block of README.md and docs/*.md
and each `#   backtest ...` line in the header of an examples/*.toml config. A fast test checks that
every command-looking line of the docs is in such a block (or is a ```text synopsis with
placeholders), so a new command cannot escape; the slow test runs them all, document by document
in its own folder, against the sample crash dataset generated at a small scale.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cli_helpers import BACKTEST

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "notebooks" / "README.md"]
EXAMPLES = sorted((REPO / "examples").glob("*.toml"))
DATASET = "data/generated/feb-2026-crash"   # the one dataset path of the docs and examples
SCALE = "0.02"                              # ~21k events: every documented command in minutes

# Shell commands the docs show that this test does not run, and why.
NOT_RUN = {
    "make demo": "sets up .venv and the full-size dataset; the Makefile is checked by tests/test_setup.py",
    "make test": "is this test suite",
    "make test-fast": "is this test suite",
    ". .venv/bin/activate": "shell set-up (the test runs `python -m backtest`)",
    "backtest cache clear": "would empty the compile cache the rest of the suite shares",
    "pytest": "is this test suite",
}
FENCE = re.compile(r"^```(\S*)\s*$")
COMMAND = re.compile(r"^\s*(backtest(\s|$)|make\s|pytest\b|\.venv/bin/|\. \.venv)")


def _blocks(path: Path):
    """(info string, first line number, lines) of each fenced block of a Markdown file."""
    info, start, body = None, 0, []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        m = FENCE.match(line)
        if m and info is None:
            info, start, body = m.group(1), i + 1, []
        elif m:
            yield info, start, body
            info = None
        elif info is not None:
            body.append(line)


def _commands(lines):
    """Shell lines with continuations joined and comments dropped."""
    joined, buf = [], ""
    for line in lines:
        buf += line.rstrip()
        if buf.endswith("\\"):
            buf = buf[:-1] + " "
            continue
        cmd = " ".join(shlex.split(buf, comments=True))
        if cmd:
            joined.append(cmd)
        buf = ""
    return joined


def documented_commands() -> dict[str, list[str]]:
    """Document (path relative to the repo) -> its shell commands, in order."""
    out = {}
    for doc in DOCS:
        cmds = [c for info, _, body in _blocks(doc) if info in ("sh", "bash", "shell")
                for c in _commands(body)]
        if cmds:
            out[str(doc.relative_to(REPO))] = cmds
    for ex in EXAMPLES:
        cmds = [m.group(1).strip() for m in re.finditer(r"^#\s+(backtest .*)$", ex.read_text(), re.M)]
        out[str(ex.relative_to(REPO))] = cmds
    return out


def _not_run(cmd: str) -> bool:
    return any(cmd == k or cmd.startswith(k + " ") for k in NOT_RUN)


def test_every_documented_command_is_covered():
    """A command-looking line outside an ```sh block (indented, in a bare ``` block, ...) is a
    command nobody runs; ```text is for synopses, which must contain placeholders."""
    problems = []
    for doc in DOCS:
        fenced = set()
        for info, start, body in _blocks(doc):
            fenced.update(range(start, start + len(body)))
            for k, line in enumerate(body):
                if not COMMAND.match(line):
                    continue
                where = f"{doc.relative_to(REPO)}:{start + k}"
                if info == "text":
                    if not re.search(r"\b[A-Z][A-Z_]{2,}\b|\[", line):
                        problems.append(f"{where}: a synopsis without placeholders; make the block ```sh")
                elif info not in ("sh", "bash", "shell"):
                    problems.append(f"{where}: command in a ```{info} block; use ```sh (run by this test)"
                                    " or ```text (a synopsis)")
        for i, line in enumerate(doc.read_text().splitlines(), 1):
            if i not in fenced and re.match(r"^(    |\t)\s*backtest ", line):
                problems.append(f"{doc.relative_to(REPO)}:{i}: indented command; put it in a ```sh block")
    for doc, cmds in documented_commands().items():
        for c in cmds:
            if not (c.startswith("backtest ") or c == "backtest" or _not_run(c)):
                problems.append(f"{doc}: `{c}` is neither a backtest command nor in NOT_RUN")
    assert not problems, "\n".join(problems)


def test_examples_use_the_one_dataset_path():
    """#14.17: `make demo`, the docs and every example config name the same dataset folder."""
    assert f"SAMPLE := {DATASET}" in (REPO / "Makefile").read_text()
    for ex in EXAMPLES:
        text = ex.read_text()
        assert f'data = "{DATASET}"' in text, ex.name
        assert re.search(r"^#\s+backtest (run|sweep|walk-forward) --config " + re.escape(
            str(ex.relative_to(REPO))), text, re.M), f"{ex.name}: its header shows no command that runs it"
    paths = set()
    for doc in [*DOCS, *EXAMPLES]:
        paths.update(re.findall(r"data/generated/[\w.-]+", doc.read_text()))
    # The notebooks keep their own smaller sample (notebooks/README.md).
    assert paths - {DATASET, "data/generated/feb-2026-crash-s0.2"} == set(), paths


STRESS_PATHS = "3"


def _small_cmd(cmd: str) -> list[str]:
    """The command as argv for `python -m backtest`; dataset generation at a small scale and a
    stress test with a few paths (each path is a whole run)."""
    args = shlex.split(cmd)[1:]
    if args[:2] == ["data", "generate"]:
        if "--scale" in args:
            args[args.index("--scale") + 1] = SCALE
        else:
            args += ["--scale", SCALE]
    if args[:1] == ["stress"] and "--paths" in args:
        args[args.index("--paths") + 1] = STRESS_PATHS
    return [*BACKTEST, *args]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    p = subprocess.run([*BACKTEST, "data", "generate", "--out", str(root / DATASET), "--scale", SCALE,
                        "--quiet"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    # The README's import example names Binance's published daily file; a fixture stands in for it.
    with zipfile.ZipFile(root / "BTCUSDT-aggTrades-2026-02-05.zip", "w") as z:
        z.write(REPO / "tests" / "fixtures" / "exchange" / "binance-futures-aggtrades.csv",
                "BTCUSDT-aggTrades-2026-02-05.csv")
    return root


@pytest.mark.slow  # every documented command (runs, reports, sweeps, walk-forwards): minutes
@pytest.mark.parametrize("doc", sorted(documented_commands()))
def test_documented_commands_run(doc, sample, tmp_path):
    shutil.copytree(sample, tmp_path, dirs_exist_ok=True)
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    ran = 0
    for cmd in documented_commands()[doc]:
        if _not_run(cmd):
            continue
        p = subprocess.run(_small_cmd(cmd), capture_output=True, text=True, cwd=tmp_path, timeout=1200)
        assert p.returncode == 0, f"{doc}: `{cmd}` exited {p.returncode}:\n{p.stderr[-3000:]}"
        assert "Traceback" not in p.stderr, f"{doc}: `{cmd}`:\n{p.stderr[-3000:]}"
        ran += 1
    assert ran, doc


@pytest.mark.slow
def test_readme_python_example_runs(sample, tmp_path):
    """The README's `import backtest as bt` example, as written, on the small sample."""
    shutil.copytree(sample, tmp_path, dirs_exist_ok=True)
    blocks = [body for info, _, body in _blocks(REPO / "README.md") if info == "python"]
    code = next("\n".join(b) for b in blocks if any("import backtest as bt" in line for line in b))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=1200)
    assert p.returncode == 0, p.stderr[-3000:]


def test_referenced_files_exist():
    """#14.20: a doc or docstring that points at a file (docs/results.md, tests/test_fill_rules.py
    did not exist) points at a real one."""
    ref = re.compile(r"(?<![\w/.])((?:tests|docs|examples|notebooks|benchmarks|strategies|backtest|data)/"
                     r"[\w/.-]*\w\.(?:py|md|toml|ipynb|json))\b")
    sources = [*DOCS, REPO / "data" / "README.md", REPO / "benchmarks" / "README.md",
               *sorted((REPO / "backtest").rglob("*.py"))]
    missing = []
    for src in sources:
        if not src.is_file():
            continue
        for m in ref.finditer(src.read_text()):
            path = m.group(1)
            if "<" in path or "*" in path or path.startswith("data/generated/"):
                continue
            if not (REPO / path).exists():
                missing.append(f"{src.relative_to(REPO)}: {path}")
    assert not missing, "\n".join(missing)
