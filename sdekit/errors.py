"""Errors a caller can act on.

Argument validation everywhere in sdekit and sdekit_score raises :class:`InputValueError` or
:class:`InputTypeError`: they are ``ValueError``/``TypeError`` (so ordinary ``except`` clauses and
``pytest.raises`` keep working) and also :class:`InputError`, which tells a front end such as the
``sdekit-score`` CLI that the caller passed something invalid, as opposed to a defect inside the
library. A solve that cannot finish raises :class:`~sdekit.SolveError`.
"""

from __future__ import annotations


class InputError(Exception):
    """Marker base: the input was invalid (the message says what to pass instead)."""


class InputValueError(InputError, ValueError):
    """An argument has the right type but an invalid value or shape."""


class InputTypeError(InputError, TypeError):
    """An argument has the wrong type."""
