"""Where Cascade keeps its caches: $CASCADE_CACHE_DIR, else ~/.cache/cascade (generated loops and
numba's cache, the validated-file markers, the replay cache). One definition, without numba."""
import os
from pathlib import Path


def cache_dir() -> Path:
    root = os.environ.get("CASCADE_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "cascade"
