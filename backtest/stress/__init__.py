"""Stress testing (docs/stress.md): scenario transforms of a dataset (transforms.py), Monte Carlo
paths (bootstrap.py), an endogenous liquidation cascade (crowd.py), the runs (run.py) and their
table and summary (table.py).

`bt.stress(...)` is backtest.stress.run.stress. This package is callable as that function too, so
`bt.stress(...)` works whether or not a submodule was imported first (importing one binds the
package, not the function, to `backtest.stress`).
"""
import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from .run import stress

        return stress(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
