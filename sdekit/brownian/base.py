"""What a Brownian source hands the solve loop, and what the loop tells it back."""

from __future__ import annotations

from typing import NamedTuple

import torch


class Increment(NamedTuple):
    """Brownian increment over ``[t, t + h]``.

    ``dW = W(t + h) - W(t)``. ``H`` is the space-time Lévy area
    ``H = (1/h) ∫_t^{t+h} (W(s) - W(t) - (s - t)/h · dW) ds``, independent of ``dW`` with variance
    ``|h|/12``; it gives ``I_(1,0) = ∫_t^{t+h} (W(s) - W(t)) ds = h (dW/2 + H)``. ``H`` is ``None``
    when the solver does not need it.
    """

    dW: torch.Tensor
    H: torch.Tensor | None = None


class BrownianSource:
    """A source of Brownian increments for one solve.

    ``increment(t, h)`` returns the increment over ``[t, t + h]`` (``t`` a tensor, 0-d or
    ``(batch,)``; ``h`` a float or a tensor of ``t``'s shape; ``h < 0`` integrates backward).
    After each attempted adaptive step the loop calls ``commit(accept)``: a source that keeps one
    path (:class:`~sdekit.brownian.BrownianBridge`) uses it to keep what a rejected step drew.
    """

    levy_area: bool = False
    #: whether :meth:`select` can drop samples (the solve loop then compacts finished samples away)
    selectable: bool = False

    def increment(self, t: torch.Tensor, h: float | torch.Tensor) -> Increment:
        raise NotImplementedError

    def commit(self, accept: torch.Tensor) -> None:
        """Told after each attempted step which samples accepted it. Fresh-draw sources ignore it."""

    def select(self, rows: torch.Tensor) -> None:
        """Keep only the samples ``rows`` (a 1-D index tensor, increasing), renumbered from 0.

        Called between steps (after a ``commit``) by a solve with ``compact=True``; each kept
        sample continues exactly as it would have in the whole batch (with one generator per
        sample, the same numbers)."""
        raise NotImplementedError
