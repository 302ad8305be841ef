"""Validation of tableau coefficients, shared by Butcher and stochastic Runge–Kutta tableaux.

Any real number (``int``, ``float``, ``fractions.Fraction``, a NumPy or 0-d torch scalar) is
stored as a Python ``float``, the value the solvers step with and the order-condition checkers
read exactly; text and non-finite values are refused, naming the entry.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from sdekit.errors import InputTypeError, InputValueError

Rows = tuple[tuple[float, ...], ...]
Vector = tuple[float, ...]

CONSISTENCY_TOL = 1e-12


def number(x: Any, what: str) -> float:
    """``x`` as a finite float; text is refused (``"1/3"`` is not a number)."""
    if isinstance(x, str | bytes):
        raise InputTypeError(f"{what}: expected a number, got {x!r}")
    try:
        value = float(x)
    except (TypeError, ValueError) as err:
        raise InputTypeError(f"{what}: expected a number, got {x!r}") from err
    if not math.isfinite(value):
        raise InputValueError(f"{what}: coefficients must be finite, got {value}")
    return value


def sequence(values: Any, what: str) -> list:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InputTypeError(f"{what}: expected a sequence of numbers, got {values!r}")
    return list(values)


def matrix(rows: Any, what: str) -> list[list]:
    return [sequence(row, f"{what}[{i}]") for i, row in enumerate(sequence(rows, what))]


def _and(names: Iterable[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def stage_count(
    cls: str, vectors: Mapping[str, list | None], matrices: Mapping[str, list | None]
) -> int:
    """The number of stages: every vector has one entry per stage, every matrix one row.

    The fields given (``None`` is left out) vote: a field whose length differs from most others'
    is named, with the fields it disagrees with, so the message blames the odd one out rather
    than whichever field was read first; a tie names every field's length.
    """
    sizes = {n: len(v) for n, v in (*vectors.items(), *matrices.items()) if v is not None}
    (s, votes), *others = Counter(sizes.values()).most_common()

    def have(size: int) -> str:
        names = [name for name, n in sizes.items() if n == size]
        return f"{_and(names)} {'has' if len(names) == 1 else 'have'} {size}"

    if others and others[0][1] == votes:
        raise InputValueError(
            f"{cls}: the fields disagree on the number of stages "
            f"({', '.join(have(size) for size in sorted(set(sizes.values())))}); give "
            f"{_and(vectors)} one entry and {_and(matrices)} one row per stage"
        )
    odd = [name for name, n in sizes.items() if n != s]
    if odd:
        wrong = "; ".join(
            f"{cls}.{name}: expected {s} {'rows' if name in matrices else 'entries'}, "
            f"got {sizes[name]}"
            for name in odd
        )
        raise InputValueError(
            f"{wrong}; {have(s)}, and {_and(vectors)} must have {s} entries and "
            f"{_and(matrices)} must have {s} rows (one per stage)"
        )
    if s < 1:
        raise InputValueError(f"{cls}: a tableau needs at least one stage")
    return s


def vector(values: list, what: str) -> Vector:
    return tuple(number(v, f"{what}[{i}]") for i, v in enumerate(values))


def lower_rows(rows: list[list], s: int, what: str) -> Rows:
    """Strictly lower-triangular rows from either rows of length ``i`` or a full ``s × s`` matrix."""
    lengths = [len(r) for r in rows]
    if all(n == s for n in lengths):
        upper = [(i, j) for i in range(s) for j in range(i, s) if number(rows[i][j], what) != 0]
        if upper:
            raise InputValueError(
                f"{what}: explicit methods need a strictly lower-triangular matrix, but "
                f"entries {upper} on or above the diagonal are nonzero"
            )
        rows = [r[:i] for i, r in enumerate(rows)]
    elif lengths != list(range(s)):
        raise InputValueError(
            f"{what}: give {s} rows with 0, 1, ..., {s - 1} entries (strictly lower "
            f"triangular) or a full {s}x{s} matrix; got row lengths {lengths}"
        )
    return tuple(vector(r, f"{what}[{i}]") for i, r in enumerate(rows))


def nodes(c: list | None, rows: Rows, cls: str, c_name: str, a_name: str) -> Vector:
    """The stage times: ``c``, which must be the row sums of ``rows``, or those sums if ``None``."""
    sums = tuple(math.fsum(r) for r in rows)
    if c is None:
        return sums
    c = vector(c, f"{cls}.{c_name}")
    for i, (ci, si) in enumerate(zip(c, sums, strict=True)):
        if not math.isclose(ci, si, rel_tol=CONSISTENCY_TOL, abs_tol=CONSISTENCY_TOL):
            raise InputValueError(
                f"{cls}.{c_name}[{i}] is not a row sum: row {i} of {a_name} sums to {si!r} but "
                f"{c_name}[{i}] = {ci!r}; the stage times must be the row sums of {a_name}: pass "
                f"{c_name}=None to have them computed (with dataclasses.replace too, which "
                f"otherwise keeps the old {c_name})"
            )
    return c


def weights(values: list, what: str) -> Vector:
    """Weights of a method's stages: they must sum to one (the method's consistency)."""
    out = vector(values, what)
    total = math.fsum(out)
    if not math.isclose(total, 1.0, rel_tol=CONSISTENCY_TOL):
        raise InputValueError(
            f"{what} sums to {total!r}; weights must sum to 1 (the method must be consistent)"
        )
    return out
