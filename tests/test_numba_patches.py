"""Cascade's numba patch (backtest/core/linkonly.py) is tied to one numba minor version."""


def test_patches_are_verified_for_this_numba():
    """linkonly.py replaces numba internals of one minor version. On another, numba_patches()
    switches it off (plain numba, slower cold compile) and this test fails: read linkonly.py
    against the new numba's source, re-measure it
    (benchmarks/bench_compile.py), then update NUMBA_TESTED and the pin in pyproject.toml."""
    import numba

    from backtest.core import NUMBA_PATCHES, NUMBA_TESTED, numba_patches

    assert numba.__version__.startswith(NUMBA_TESTED), (
        f"numba {numba.__version__}: linkonly.py was written for "
        f"{NUMBA_TESTED}x; re-verify it and update backtest.core.NUMBA_TESTED")
    if "CASCADE_NUMBA_PATCHES" not in __import__("os").environ:
        assert numba_patches() == NUMBA_PATCHES


def test_switching_a_patch_off_gets_its_own_cache(monkeypatch):
    from backtest.core import numba_cache_dir, numba_patches

    default = numba_cache_dir()
    monkeypatch.setenv("CASCADE_NUMBA_PATCHES", "")
    assert numba_patches() == ()
    assert numba_cache_dir().name == default.name + "-no-linkonly"
