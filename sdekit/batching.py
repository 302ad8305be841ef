"""Per-sample tensors against batched states: the one way to broadcast a ``(batch,)`` tensor.

Times, step sizes and masks are 0-d (shared) or ``(batch,)`` (per sample); states are
``(batch, *event_shape)``. Solvers, controllers, kernels and samplers all use these helpers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

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


def tree_take(tree, index: torch.Tensor, dim: int = 0):
    """The entries ``index`` along ``dim`` of every per-sample tensor in ``tree``.

    ``tree`` is a tensor, a tuple, list or dataclass of them, or ``None``; 0-d tensors (values
    shared by the batch) pass through unchanged.
    """
    if tree is None:
        return None
    if isinstance(tree, torch.Tensor):
        return tree.index_select(dim, index) if tree.dim() else tree
    if isinstance(tree, tuple | list):
        return type(tree)(tree_take(x, index, dim) for x in tree)
    if dataclasses.is_dataclass(tree):
        values = {
            f.name: tree_take(getattr(tree, f.name), index, dim) for f in dataclasses.fields(tree)
        }
        return dataclasses.replace(tree, **values)
    raise TypeError(f"cannot select samples of a {type(tree).__name__}")


def tree_flatten(tree) -> tuple[list[torch.Tensor], tuple]:
    """The tensors of ``tree`` (as :func:`tree_take` reads it) in order, and its structure as
    nested tuples of constants, for :func:`tree_unflatten` (a compiled function that takes the
    structure as an argument compiles once for every tree of that structure)."""
    if tree is None:
        return [], ()
    if isinstance(tree, torch.Tensor):
        return [tree], (torch.Tensor,)
    if isinstance(tree, tuple | list):
        parts = [tree_flatten(x) for x in tree]
        return [x for leaves, _ in parts for x in leaves], (type(tree), (), *(s for _, s in parts))
    if dataclasses.is_dataclass(tree):
        names = tuple(f.name for f in dataclasses.fields(tree))
        parts = [tree_flatten(getattr(tree, name)) for name in names]
        return [x for leaves, _ in parts for x in leaves], (
            type(tree),
            names,
            *(s for _, s in parts),
        )
    raise TypeError(f"cannot flatten a {type(tree).__name__}")


def tree_unflatten(structure: tuple, leaves: Iterator[torch.Tensor]):
    """The tree of ``structure`` (from :func:`tree_flatten`) with the next tensors of ``leaves``."""
    if not structure:
        return None
    kind, *rest = structure
    if kind is torch.Tensor:
        return next(leaves)
    names, *parts = rest
    values = [tree_unflatten(part, leaves) for part in parts]
    if dataclasses.is_dataclass(kind):
        return kind(**dict(zip(names, values, strict=True)))
    return kind(*values) if hasattr(kind, "_fields") else kind(values)  # named tuples take fields
