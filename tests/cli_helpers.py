"""The CLI as a subprocess, run by whatever interpreter runs the tests (any venv, any path).

conftest.py puts the repository first on PYTHONPATH, so `python -m backtest` in a child process
imports the code under test, not whatever copy happens to be installed."""
import sys

BACKTEST = [sys.executable, "-m", "backtest"]
