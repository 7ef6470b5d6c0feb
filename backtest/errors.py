"""Errors the user can fix. The CLI prints them as one line and exits non-zero, without a traceback."""
from __future__ import annotations


class CascadeError(Exception):
    """Base class of every error caused by input, configuration or a strategy (not by a bug)."""

    exit_code = 1


class ConfigError(CascadeError):
    """A bad option, parameter or config value (CLI exit code 2)."""

    exit_code = 2


class DataError(CascadeError):
    """A problem in a data file, with where it is and how to fix it."""

    def __init__(self, problem: str, *, file=None, column=None, row=None, fix=None):
        self.problem, self.file, self.column, self.row, self.fix = problem, file, column, row, fix
        where = []
        if file is not None:
            where.append(str(file))
        if column is not None:
            where.append(f"column '{column}'")
        if row is not None:
            where.append(f"row {row}")
        text = (": ".join([", ".join(where), problem]) if where else problem)
        if fix:
            text += f" (fix: {fix})"
        super().__init__(text)


class StrategyError(CascadeError):
    """A strategy that cannot be found, loaded, typed or run."""
