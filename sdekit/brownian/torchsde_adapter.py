"""torchsde-style Brownian objects (``bm(ta, tb, return_U=..., return_A=...)``) as a source."""

from __future__ import annotations

import torch

from sdekit.errors import InputTypeError, InputValueError

from .base import BrownianSource, Increment


class CallableBrownian(BrownianSource):
    """Wraps an object with torchsde's call convention, e.g. ``torchsde.BrownianInterval``.

    One Brownian path is shared by every call, so solves at different step sizes see the same path.
    torchsde returns ``U = ∫_ta^tb (W(s) - W(ta)) ds``; the space-time Lévy area is
    ``H = U/h - dW/2``. Time is shared by the whole batch: ``t`` and ``h`` must be scalars.
    Backward steps use ``W(t + h) - W(t) = -(W(t) - W(t + h))``; ``H`` is unchanged by reversal.
    """

    def __init__(self, bm, *, levy_area: bool = False):
        if not callable(bm):
            raise InputTypeError(
                f"brownian= must be callable as bm(ta, tb), got {type(bm).__name__}"
            )
        self.bm = bm
        self.levy_area = levy_area

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
        ta, tb = float(t), float(t) + float(h)
        lo, hi = min(ta, tb), max(ta, tb)
        if not self.levy_area:
            dW = self.bm(lo, hi)
            return Increment(dW if tb >= ta else -dW)
        dW, U = self.bm(lo, hi, return_U=True)
        H = U / (hi - lo) - dW / 2
        return Increment(dW if tb >= ta else -dW, H)
