"""Argument validators: one per kind of argument, each with a message that says what to pass.

Used throughout sdekit and sdekit_score (and available to code built on them), so that the same
mistake gets the same message everywhere. They raise :class:`~sdekit.errors.InputValueError` or
:class:`~sdekit.errors.InputTypeError`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import TypeVar

from sdekit.errors import InputTypeError, InputValueError

T = TypeVar("T")


def one_of(name: str, value: T, options: Iterable) -> T:
    """``value`` if it is one of ``options`` (names of a registry, say), else an error listing them."""
    options = list(options)
    if value not in options:
        raise InputValueError(
            f"{name}={value!r}: choose one of {', '.join(str(o) for o in options)}"
        )
    return value


def flag(value, name: str) -> bool:
    """``value`` if it is a bool: ``"no"`` is truthy, and would be taken as True."""
    if not isinstance(value, bool):
        raise InputTypeError(f"{name} must be True or False, got {value!r}")
    return value


def positive_int(value, name: str, *, allow_zero: bool = False) -> int:
    """``value`` if it is an int ``> 0`` (``>= 0`` with ``allow_zero``); bools are refused."""
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        kind = "non-negative" if allow_zero else "positive"
        raise InputValueError(f"{name}={value!r}: must be a {kind} int")
    return value


def positive_float(value, name: str, *, allow_zero: bool = False) -> float:
    """``value`` as a float if it is a finite number ``> 0`` (``>= 0`` with ``allow_zero``)."""
    kind = "non-negative" if allow_zero else "positive"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # NumPy's floats too
        raise InputTypeError(f"{name} must be a {kind} float, got {type(value).__name__}")
    if not (math.isfinite(value) and (value >= 0 if allow_zero else value > 0)):
        raise InputValueError(f"{name} must be a finite {kind} number, got {value}")
    return float(value)
