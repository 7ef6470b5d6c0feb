"""`--no-jit` raises where compiled code raises: numba's error model for numpy scalars.

Compiled hooks use numba's default error_model='python': `/`, `//`, `%` and divmod by zero raise
ZeroDivisionError, on integers and floats alike. As plain Python, a division of numpy scalars
(a price argument, an element of an array field, a numpy function's result) only warned and gave
inf/nan, so `--no-jit` went on where the compiled run stopped. `python_errors(run)` runs the
pure-Python loop under numpy's error callback: a division by zero of numpy scalars raises
ZeroDivisionError with numba's message; every other floating-point condition (log(0), sqrt(-1),
overflow, division of whole arrays) stays silent, as it is in compiled code.

numpy reports 0/0 and inf/inf alike as "invalid value in divide" without the operands, so inf/inf
and inf % x raise here (compiled: nan); nan/0 raises no floating-point error at all, so it gives
nan here (compiled: ZeroDivisionError). Python's own int and float division already raised.
"""
from __future__ import annotations

import functools

import numpy as np

# numpy's name of the scalar operation -> numba's message
_RAISING = {"scalar divide": "division by zero", "scalar floor_divide": "division by zero",
            "scalar remainder": "modulo by zero", "scalar divmod": "modulo by zero"}


class _NumbaErrors:
    """numpy's 'log' error handler: called as write("Warning: <what> encountered in <op>\\n")."""

    def write(self, message: str) -> None:
        what, _, op = message.strip().removeprefix("Warning: ").partition(" encountered in ")
        text = _RAISING.get(op)
        if text and what in ("divide by zero", "invalid value"):
            raise ZeroDivisionError(text)


_HANDLER = _NumbaErrors()


def python_errors(run):
    """`run` (the loop as plain Python) raising where its compiled version raises."""
    @functools.wraps(run)
    def checked(*args):
        with np.errstate(all="log", call=_HANDLER):
            return run(*args)

    return checked
