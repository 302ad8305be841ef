"""Per-sample tensors against batched states: the one way to broadcast a ``(batch,)`` tensor.

Times, step sizes and masks are 0-d (shared) or ``(batch,)`` (per sample); states are
``(batch, *event_shape)``. Solvers, controllers, kernels and samplers all use these helpers.
"""

from __future__ import annotations

import torch


def bcast(x: float | torch.Tensor, like: torch.Tensor | int) -> float | torch.Tensor:
    """View a per-sample ``(batch,)`` tensor so it broadcasts over ``like``'s event dims.

    ``like`` is the state (or its number of dimensions). Floats and 0-d tensors pass through
    unchanged (the shared-time fast path).
    """
    if isinstance(x, torch.Tensor) and x.dim() == 1:
        ndim = like if isinstance(like, int) else like.dim()
        return x.view((-1,) + (1,) * (ndim - 1))
    return x


def tree_where(mask: torch.Tensor, new, old):
    """``torch.where(mask, new, old)`` over tensors, tuples of tensors and ``None``.

    ``mask`` is 0-d or ``(batch,)``; it broadcasts over each leaf's trailing dims.
    """
    if new is None:
        return None
    if isinstance(new, tuple):
        return tuple(tree_where(mask, n, o) for n, o in zip(new, old, strict=True))
    return torch.where(bcast(mask, new), new, old)
