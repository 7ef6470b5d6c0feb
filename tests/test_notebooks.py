"""The notebooks in notebooks/: committed stripped, public API only, and they run end to end.

The slow tests execute each notebook with nbclient in a fresh kernel of *this* interpreter (the
venv's ipykernel), in a temporary working directory, with CASCADE_CACHE_DIR set (compiled
strategies are shared with the rest of the test session) and CASCADE_SAMPLE_DIR pointing at one
temporary folder, so the sample dataset is generated once for all notebooks.
"""
import os
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
EXPECTED = ["01_quick_start.ipynb", "02_writing_a_strategy.ipynb", "03_crash_leveraged.ipynb",
            "04_sweep_and_walk_forward.ipynb", "05_borrowing_against_btc.ipynb", "06_stress_testing.ipynb"]
CACHE_DIR = os.environ.get("CASCADE_CACHE_DIR",
                           str(Path(__file__).resolve().parents[1] / ".cache" / "test"))


def code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


# --------------------------------------------------------------------------------------------
# fast checks
def test_every_notebook_is_listed_in_the_readme():
    assert [p.name for p in NOTEBOOKS] == EXPECTED
    readme = (NB_DIR / "README.md").read_text()
    for name in EXPECTED:
        assert name in readme


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a code cell has outputs (strip them)"
            assert cell.execution_count is None, f"{path.name}: a code cell has an execution count"
        assert "attachments" not in cell or not cell.attachments
    assert book.metadata.get("kernelspec", {}).get("name") == "python3"
    assert "widgets" not in book.metadata


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_uses_the_public_api_only(path):
    src = "\n".join(c.source for c in code_cells(path))
    assert "import backtest as bt" in src
    assert not re.search(r"backtest\.core|from backtest import core|from \.core", src), \
        f"{path.name}: notebooks use the public API, not backtest.core"


# --------------------------------------------------------------------------------------------
# end to end
def _client(book, cwd):
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    class ThisPythonKernel(AsyncKernelManager):
        """The `python3` kernel spec, started with this interpreter (the venv's ipykernel)."""

        def format_kernel_cmd(self, extra_arguments=None):
            cmd = super().format_kernel_cmd(extra_arguments)
            if cmd and Path(cmd[0]).name.startswith("python"):
                cmd[0] = sys.executable
            return cmd

    return NotebookClient(book, kernel_name="python3", timeout=600, allow_errors=False,
                          kernel_manager_class=ThisPythonKernel,
                          resources={"metadata": {"path": str(cwd)}})


@pytest.fixture(scope="module")
def nb_env(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    sample = tmp_path_factory.mktemp("nb-sample")
    mp.setenv("CASCADE_CACHE_DIR", CACHE_DIR)
    mp.setenv("CASCADE_SAMPLE_DIR", str(sample))
    mp.setenv("CASCADE_STRESS_PATHS", "8")  # notebook 06: 8 Monte Carlo paths instead of 200
    mp.delenv("NUMBA_DISABLE_JIT", raising=False)
    yield sample
    mp.undo()


def _outputs(book, kind):
    return [o for c in book.cells if c.cell_type == "code" for o in c.outputs
            if o.get("output_type") in kind]


@pytest.mark.slow
def test_kernel_runs_this_interpreter(nb_env, tmp_path):
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(
        "import os, sys; print(sys.executable); print(os.environ['CASCADE_CACHE_DIR']); "
        "print(os.getcwd())")]
    _client(book, tmp_path).execute()
    out = book.cells[0].outputs[0]["text"].split("\n")
    assert out[0] == sys.executable
    assert out[1] == CACHE_DIR
    assert Path(out[2]).resolve() == tmp_path.resolve()


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(nb_env, tmp_path, path):
    book = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    _client(book, tmp_path).execute()
    elapsed = time.perf_counter() - t0
    print(f"{path.name}: executed in {elapsed:.1f} s")
    errors = _outputs(book, {"error"})
    assert not errors
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is not None
    # the figures were drawn (PNG outputs), and the sample dataset is shared
    images = [o for o in _outputs(book, {"display_data", "execute_result"}) if "image/png" in o.get("data", {})]
    assert images, f"{path.name}: no figure was displayed"
    assert (nb_env / "feb-2026-crash-s0.2" / "instruments.json").is_file()
    # the committed file is untouched (executed in memory only)
    assert all(not c.outputs for c in code_cells(path))
