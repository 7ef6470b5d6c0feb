"""Errors the user can fix. The CLI prints them as one line and exits non-zero, without a traceback."""
from __future__ import annotations


class CascadeError(Exception):
    """Base class of every error caused by input, configuration or a strategy (not by a bug)."""

    exit_code = 1

    def __str__(self) -> str:
        return _capped(super().__str__())


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


class CascadeWarning(UserWarning):
    """Something a run silently lacks (mark prices, funding, a hook's events); the CLI prints it
    as one line `warning: ...` on stderr."""


SHOWN_CHARS = 60  # longest quoted input value in a message (a CSV field can be megabytes)
MAX_MESSAGE_CHARS = 2000


def shown(value, limit: int = SHOWN_CHARS) -> str:
    """repr(value) for a message, capped: 'aaaa…' (10,000,000 chars). Use it wherever a message
    quotes a value the user gave (a field, a parameter, a config value)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    n = len(value) if isinstance(value, (str, bytes, list, tuple, dict)) else len(text)
    return f"{text[:limit]}… ({n:,} {'chars' if isinstance(value, (str, bytes)) else 'long'})"


def _capped(text: str) -> str:
    """Last resort for a message built from something not passed through shown(): keep its head
    and its tail (where the fix is)."""
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    half = MAX_MESSAGE_CHARS // 2
    return f"{text[:half]} …[{len(text) - 2 * half:,} chars cut]… {text[-half:]}"
