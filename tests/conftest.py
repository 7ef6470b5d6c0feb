import os
import sys
from pathlib import Path

# Tests import their helpers (oracle, scripted strategies) as top-level modules.
sys.path.insert(0, str(Path(__file__).parent))
# One numba/codegen cache for the whole test session, outside the user's home.
os.environ.setdefault("CASCADE_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "test"))
# No cold-start compile helper processes (backtest/core/warm.py): the test workers already use both
# cores, and cache-content assertions need no second writer; tests/test_jit_cache.py tests it.
os.environ.setdefault("CASCADE_PARALLEL_COMPILE", "0")
