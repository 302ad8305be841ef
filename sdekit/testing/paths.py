r"""Brownian paths that every solve of a measurement shares, and wrappers around sources.

A convergence measurement compares solves at several step sizes with the exact solution *on the
same Brownian path*: :func:`brownian_path` is one such path per sample (a
``torchsde.BrownianInterval`` with space-time Lévy area, so schemes that need it can use it too),
passed to :func:`sdekit.solve` as ``brownian=path``. :func:`mirrored` is the path of the
time-reversed problem, and :class:`RecordingSource` passes any
:class:`~sdekit.brownian.BrownianSource` through while summing what was accepted.
"""

from __future__ import annotations

import torch
import torchsde

from sdekit.batching import bcast
from sdekit.brownian import BrownianSource, Increment


def brownian_path(
    shape: tuple[int, ...],
    t0: float = 0.0,
    t1: float = 1.0,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    dt: float | None = None,
) -> torchsde.BrownianInterval:
    """One Brownian path of increments shaped ``shape`` on ``[min(t0, t1), max(t0, t1)]``.

    Queried as ``path(ta, tb)`` (the increment ``W(tb) − W(ta)``) or
    ``path(ta, tb, return_U=True)`` (also ``U = ∫_ta^tb (W(s) − W(ta)) ds``); every query is
    consistent with every other, whatever the order. ``dt`` is a hint of the finest query
    spacing (it sizes torchsde's cache).
    """
    lo, hi = min(t0, t1), max(t0, t1)
    return torchsde.BrownianInterval(
        t0=lo,
        t1=hi,
        size=tuple(shape),
        dtype=dtype,
        device=device,
        entropy=seed,
        dt=dt,
        levy_area_approximation="space-time",
    )


def mirrored(path):
    r"""The path ``W̃(s) = W(−s)`` of the time-reversed problem, queried like ``path``.

    A backward solve from ``t0`` to ``t1 < t0`` is the forward solve of ``s = −t`` with drift
    ``−f(−s, y)`` on ``W̃``: over ``[a, b]``, ``ΔW̃ = −(W(−a) − W(−b))``, and the bridge of
    ``W̃`` is that of ``W`` run backwards, so its space-time Lévy area is unchanged and
    ``Ũ = L(ΔW̃/2 + H) = U − LΔW`` with ``L = b − a``.
    """

    def query(ta, tb, return_U=False, return_A=False):
        if not return_U:
            return -path(-tb, -ta)
        dW, U = path(-tb, -ta, return_U=True)
        return -dW, U - (tb - ta) * dW

    return query


class RecordingSource(BrownianSource):
    """Passes ``source`` through and sums the accepted increments: ``total = W(t) − W(t0)``.

    ``total`` (shaped like an increment) is what a source that keeps one path must deliver as
    ``N(0, |t − t0|)`` whatever the solver rejects; ``steps`` and ``accepted`` count calls.
    """

    def __init__(self, source: BrownianSource, shape: tuple[int, ...], dtype=torch.float64):
        self.source = source
        self.levy_area = source.levy_area
        self.total = torch.zeros(shape, dtype=dtype)
        self.steps = 0
        self._last: torch.Tensor | None = None

    def increment(self, t, h) -> Increment:
        if self._last is not None:  # no commit in between: the step was accepted
            self.commit(torch.ones((), dtype=torch.bool))
        inc = self.source.increment(t, h)
        self._last = inc.dW
        self.steps += 1
        return inc

    def commit(self, accept) -> None:
        self.source.commit(accept)
        accept = torch.as_tensor(accept, dtype=torch.bool, device=self._last.device)
        mask = bcast(accept, self._last) if accept.dim() else accept
        self.total = self.total + torch.where(mask, self._last, 0.0).to(self.total)
        self._last = None
