"""Cascade's numba patches (backtest/core/linkonly.py, lazyload.py) are tied to one numba minor
version."""


def test_patches_are_verified_for_this_numba():
    """linkonly.py and lazyload.py replace numba internals of one minor version. On another,
    numba_patches() switches them off (plain numba: a slower cold compile and warm start) and this
    test fails: read them against the new numba's source, re-measure them
    (benchmarks/bench_compile.py, bench_engine.py's warm start), then update NUMBA_TESTED and the
    pin in pyproject.toml."""
    import numba

    from backtest.core import NUMBA_PATCHES, NUMBA_TESTED, numba_patches

    assert numba.__version__.startswith(NUMBA_TESTED), (
        f"numba {numba.__version__}: linkonly.py and lazyload.py were written for "
        f"{NUMBA_TESTED}x; re-verify it and update backtest.core.NUMBA_TESTED")
    if "CASCADE_NUMBA_PATCHES" not in __import__("os").environ:
        assert numba_patches() == NUMBA_PATCHES


def test_switching_a_patch_off_gets_its_own_cache(monkeypatch):
    from backtest.core import numba_cache_dir, numba_patches

    default = numba_cache_dir()
    monkeypatch.setenv("CASCADE_NUMBA_PATCHES", "")
    assert numba_patches() == ()
    assert numba_cache_dir().name == default.name + "-no-linkonly"
    # lazyload changes only how cached kernels load, not what is compiled: the same cache
    monkeypatch.setenv("CASCADE_NUMBA_PATCHES", "linkonly")
    assert numba_patches() == ("linkonly",)
    assert numba_cache_dir() == default
