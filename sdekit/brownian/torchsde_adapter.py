"""torchsde-style Brownian objects (``bm(ta, tb, return_U=..., return_A=...)``) as a source."""

from __future__ import annotations

import torch

from sdekit.errors import InputTypeError, InputValueError

from .base import BrownianSource, Increment

_FLOAT32_EPS = torch.finfo(torch.float32).eps


class CallableBrownian(BrownianSource):
    """Wraps an object with torchsde's call convention, e.g. ``torchsde.BrownianInterval``.

    One Brownian path is shared by every call, so solves at different step sizes see the same path.
    torchsde returns ``U = ∫_ta^tb (W(s) - W(ta)) ds``; the space-time Lévy area is
    ``H = U/h - dW/2``. Time is shared by the whole batch: ``t`` and ``h`` must be scalars.
    Backward steps use ``W(t + h) - W(t) = -(W(t) - W(t + h))``; ``H`` is unchanged by reversal.

    A query outside the path's span (torchsde's ``BrownianInterval``, ``BrownianTree`` and
    ``BrownianPath`` know theirs) raises: torchsde itself only warns and extrapolates. Given
    ``like`` (the noise's shape, dtype and device, as a tensor), the first increment is checked
    against it: a path of another size would broadcast silently (one path for every sample, or
    one Brownian motion for every channel).
    """

    def __init__(self, bm, *, levy_area: bool = False, like: torch.Tensor | None = None):
        if not callable(bm):
            raise InputTypeError(
                f"brownian= must be callable as bm(ta, tb), got {type(bm).__name__}"
            )
        self.bm = bm
        self.levy_area = levy_area
        self.span = _span(bm)
        self.like = like  # checked against the first increment, then dropped

    def increment(self, t: torch.Tensor, h: float | torch.Tensor) -> Increment:
        if (
            isinstance(t, torch.Tensor)
            and t.dim() > 0
            or isinstance(h, torch.Tensor)
            and h.dim() > 0
        ):
            raise InputValueError(
                "a torchsde-style Brownian object gives one path for the whole batch and cannot "
                "serve per-sample step sizes; use brownian='bridge' with a per-sample controller"
            )
        ta = float(t)
        tb = ta + float(h)
        lo, hi = min(ta, tb), max(ta, tb)
        if self.span is not None:
            start, end = self.span
            # float32 times (torch's default dtype) round past a span given as Python floats:
            # float32(0.3) is 1.2e-8 above 0.3. Four float32 ulps are rounding, and clamped.
            slack = max(1e-9 * (end - start), 4 * _FLOAT32_EPS * max(abs(start), abs(end)))
            if lo < start - slack or hi > end + slack:
                raise InputValueError(
                    f"a step over [{lo:.9g}, {hi:.9g}] leaves the Brownian path's span "
                    f"[{start:.9g}, {end:.9g}]: create the path over the whole solve (t0 to t1)"
                )
            lo, hi = max(lo, start), min(hi, end)
        if not self.levy_area:
            dW = self.bm(lo, hi)
            self._check(dW)
            return Increment(dW if tb >= ta else -dW)
        dW, U = self.bm(lo, hi, return_U=True)
        self._check(dW)
        if U is None:
            raise InputValueError(
                "this scheme needs the space-time Lévy area, which the Brownian object does not "
                "give: create it with levy_area_approximation='space-time'"
            )
        H = U / (hi - lo) - dW / 2
        return Increment(dW if tb >= ta else -dW, H)

    def _check(self, dW: torch.Tensor) -> None:
        like, self.like = self.like, None
        if like is None:
            return
        if dW.shape != like.shape:
            raise InputValueError(
                f"the Brownian object's increments have shape {tuple(dW.shape)}, but the "
                f"problem's noise has shape {tuple(like.shape)} (batch, then its Brownian "
                f"motions): create it with size={tuple(like.shape)}; a smaller one would "
                f"broadcast, one path shared by samples or channels"
            )
        if dW.dtype != like.dtype or dW.device != like.device:
            raise InputValueError(
                f"the Brownian object's increments are {dW.dtype} on {dW.device}, but y0 is "
                f"{like.dtype} on {like.device}: create it with dtype= and device= of y0"
            )


def _span(bm) -> tuple[float, float] | None:
    """``(start, end)`` of a torchsde Brownian object (or of the interval it wraps), else ``None``."""
    for holder in (bm, getattr(bm, "_interval", None)):
        start, end = getattr(holder, "_start", None), getattr(holder, "_end", None)
        if start is not None and end is not None:
            return float(start), float(end)
    return None
