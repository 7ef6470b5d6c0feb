import os
import sys
from pathlib import Path

# Tests import their helpers (oracle, scripted strategies) as top-level modules.
sys.path.insert(0, str(Path(__file__).parent))
# One numba/codegen cache for the whole test session, outside the user's home.
os.environ.setdefault("CASCADE_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "test"))
