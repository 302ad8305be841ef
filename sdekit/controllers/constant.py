"""Controllers whose steps are known in advance: a constant step, or a given time grid."""

from __future__ import annotations

import math

import numpy as np
import torch

from sdekit.errors import InputValueError

from .base import AbstractStepSizeController, check_times, merge_grid, snap


class ConstantStepSize(AbstractStepSizeController):
    """Steps of ``solve(dt=...)`` from ``t0`` towards ``t1``: times ``t0 + k·dt``, merged with the
    save times and shortened at ``t1``. What ``solve`` uses when given ``dt`` and no controller."""

    adaptive = False

    def __repr__(self) -> str:
        return "ConstantStepSize()"

    def grid(self, t0: float, t1: float, dt0: float | None, stops: list[float]) -> list[float]:
        if dt0 is None:
            raise InputValueError("ConstantStepSize needs solve(..., dt=...): the step size")
        direction = 1.0 if t1 > t0 else -1.0
        n = math.ceil(abs(t1 - t0) / dt0 - 1e-9)
        grid = np.append(t0 + direction * np.arange(n) * dt0, t1)  # the same floats as t0 + k·dt0
        return merge_grid(grid, stops, t1, 1e-9 * dt0)


class StepTo(AbstractStepSizeController):
    """Steps between consecutive entries of ``ts``, which run from ``t0`` to ``t1``.

    The schedules of diffusion samplers (a Karras σ grid mapped to times, log-SNR-uniform
    times, ...) become one argument: ``solve(..., controller=StepTo(ts))`` with no ``dt``.
    """

    adaptive = False

    def __init__(self, ts):
        self.dtype = ts.dtype if isinstance(ts, torch.Tensor) else None  # its ends may round t0, t1
        ts = check_times(ts, "StepTo(ts)")
        if len(ts) < 2:
            raise InputValueError(f"StepTo(ts) needs at least two times (t0 and t1), got {ts}")
        direction = 1.0 if ts[-1] > ts[0] else -1.0
        if any(direction * (b - a) <= 0 for a, b in zip(ts, ts[1:], strict=False)):
            raise InputValueError(f"StepTo(ts) must be strictly monotonic, got {list(ts)}")
        self.ts = ts

    def __repr__(self) -> str:
        return f"StepTo({len(self.ts)} times from {self.ts[0]:g} to {self.ts[-1]:g})"

    def grid(self, t0: float, t1: float, dt0: float | None, stops: list[float]) -> list[float]:
        if dt0 is not None:
            raise InputValueError(
                "StepTo(ts) sets every step: do not also pass dt to solve (it would be ignored)"
            )
        ts = [snap(self.ts[0], t0, self.dtype), *self.ts[1:-1], snap(self.ts[-1], t1, self.dtype)]
        if (ts[0], ts[-1]) != (t0, t1):
            raise InputValueError(
                f"StepTo(ts) runs from {ts[0]!r} to {ts[-1]!r} but the solve runs from {t0!r} to "
                f"{t1!r}: its first and last times must be t0 and t1"
            )
        scale = min(abs(b - a) for a, b in zip(ts, ts[1:], strict=False))
        return merge_grid(ts, stops, t1, 1e-9 * scale)
