"""What a battery returns: one result per property, and a report that can raise."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass(frozen=True)
class PropertyResult:
    """One property: ``status`` is ``"passed"``, ``"failed"`` or ``"skipped"``; ``detail`` says
    what was measured (and, on failure, by how much it missed) or why it was skipped."""

    name: str
    status: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.status.upper():7s} {self.name}: {self.detail}"


@dataclass(frozen=True)
class Report:
    """The results of a battery, in order."""

    subject: str
    results: tuple[PropertyResult, ...]

    @property
    def failures(self) -> tuple[PropertyResult, ...]:
        return tuple(r for r in self.results if r.status == FAILED)

    @property
    def passed(self) -> bool:
        """No property failed and at least one ran: a report that checked nothing (every
        property skipped) has not passed."""
        return not self.failures and any(r.status == PASSED for r in self.results)

    def __getitem__(self, name: str) -> PropertyResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def raise_if_failed(self) -> Report:
        """``self``, or an ``AssertionError`` listing every failed property and by how much (or,
        where every property was skipped, why each was)."""
        if self.failures:
            lines = "\n".join(f"  {r.name}: {r.detail}" for r in self.failures)
            raise AssertionError(f"{self.subject} fails {len(self.failures)} properties:\n{lines}")
        if not self.passed:
            lines = "\n".join(f"  {r.name}: {r.detail}" for r in self.results)
            raise AssertionError(
                f"{self.subject}: nothing was checked, every property skipped:\n{lines}"
            )
        return self

    def __str__(self) -> str:
        return "\n".join([self.subject, *(f"  {r}" for r in self.results)])


def run_property(name: str, check: Callable[[], str | None | PropertyResult]) -> PropertyResult:
    """Run ``check()``: ``None`` or a message of success passes, a raised ``AssertionError`` (its
    message says by how much) or any other exception fails, a returned result is kept."""
    try:
        out = check()
    except AssertionError as err:
        return PropertyResult(name, FAILED, str(err))
    except Exception as err:  # a crash is a failure of the property, reported with its cause
        where = traceback.extract_tb(err.__traceback__)[-1]
        return PropertyResult(
            name,
            FAILED,
            f"raised {type(err).__name__}: {err} (at {where.filename}:{where.lineno})",
        )
    if isinstance(out, PropertyResult):
        return out
    return PropertyResult(name, PASSED, out or "")


def skipped(name: str, why: str) -> PropertyResult:
    return PropertyResult(name, SKIPPED, why)


def select(names: tuple[str, ...], only, skip) -> list[str]:
    """The property names to run: ``only`` (default all) minus ``skip``; unknown names refused."""
    from sdekit.errors import InputValueError

    only = names if only is None else ((only,) if isinstance(only, str) else tuple(only))
    skip = (skip,) if isinstance(skip, str) else tuple(skip)
    unknown = [n for n in (*only, *skip) if n not in names]
    if unknown:
        raise InputValueError(f"unknown properties {unknown}: choose from {', '.join(names)}")
    return [n for n in names if n in only and n not in skip]
