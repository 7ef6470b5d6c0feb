import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Tests import their helpers (oracle, scripted strategies) as top-level modules.
sys.path.insert(0, str(Path(__file__).parent))
# Child processes (`python -m backtest`, tests/cli_helpers.py) import the code under test, whichever
# environment runs pytest and whatever copy of backtest it has installed.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
# One numba/codegen cache for the whole test session, apart from the user's cache, so tests never
# depend on (or disturb) what `make demo` and the user's runs compiled.
os.environ.setdefault("CASCADE_CACHE_DIR", str(REPO / ".cache" / "test"))
# No cold-start compile helper processes (backtest/core/warm.py): the test workers already use both
# cores, and cache-content assertions need no second writer; tests/test_jit_cache.py tests it.
os.environ.setdefault("CASCADE_PARALLEL_COMPILE", "0")
