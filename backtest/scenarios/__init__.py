"""Stress testing (docs/stress.md): scenario transforms of a dataset (transforms.py), Monte Carlo
paths (bootstrap.py), an endogenous liquidation cascade (crowd.py), the runs (run.py) and their
table and summary (table.py). The public entry is `bt.stress(...)` (run.stress); the package is
not named `stress` so that importing it never hides that function on `backtest`.
"""
