"""Problems: what is solved, independent of how.

An Itô SDE ``dY = f(t, Y) dt + g(t, Y) dW`` (or its Stratonovich form ``∘dW``) is an :class:`SDE`;
the deterministic case ``dY/dt = f(t, Y)`` is an :class:`ODE`. States have shape
``(batch, *event_shape)``.

Noise kinds, by the shape of ``g`` and of the Brownian increment ``dW``:

============  ==========================  ======================  ==========================
kind          ``g(t, y)``                 ``dW``                  noise term
============  ==========================  ======================  ==========================
diagonal      ``y.shape``                 ``y.shape``             ``g * dW``
scalar        ``y.shape``                 ``(batch, 1, ..., 1)``  ``g * dW`` (one W per sample)
general       ``(*y.shape, m)``           ``(batch, m)``          ``sum_j g[..., j] dW[:, j]``
additive      as diagonal, or as general  as diagonal / general   ``g`` does not depend on ``y``
              when ``noise_dim=m`` given
============  ==========================  ======================  ==========================

Time ``t`` reaches ``f`` and ``g`` as a tensor: 0-d when the whole batch shares one time (fixed
steps, or an adaptive solve with one step size for the batch), shape ``(batch,)`` when each sample
has its own time (a per-sample adaptive solve).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from sdekit.checks import one_of
from sdekit.errors import InputTypeError, InputValueError

NOISE_KINDS = ("diagonal", "scalar", "additive", "general")
CALCULI = ("ito", "stratonovich")

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ODE:
    """The deterministic problem ``dy/dt = vector_field(t, y)``."""

    noise = None
    calculus = None
    layout = None
    additive = False

    def __init__(self, vector_field: Field):
        if not callable(vector_field):
            raise InputTypeError(
                f"ODE(vector_field): expected a callable (t, y) -> dy/dt, "
                f"got {type(vector_field).__name__}"
            )
        self.f = vector_field

    def __repr__(self) -> str:
        return f"ODE({getattr(self.f, '__name__', self.f)!r})"


class SDE:
    """The SDE ``dY = drift(t, Y) dt + diffusion(t, Y) dW`` (Itô) or ``∘dW`` (Stratonovich).

    Args:
        drift: ``f(t, y)`` with the shape of ``y``.
        diffusion: ``g(t, y)``; its shape depends on ``noise`` (see the module docstring).
        noise: ``"diagonal"``, ``"scalar"``, ``"additive"`` or ``"general"``. ``"additive"``
            is checked on a solve's first step (``g`` evaluated once more, at ``2y + 1``).
        calculus: ``"ito"`` or ``"stratonovich"``.
        noise_dim: number ``m`` of Brownian motions for ``general`` noise (and for ``additive``
            noise given as a matrix). For ``general`` noise it is read off ``g`` at the first call
            when left out.
    """

    def __init__(
        self,
        drift: Field,
        diffusion: Field,
        noise: str = "diagonal",
        calculus: str = "ito",
        noise_dim: int | None = None,
    ):
        for name, fn in (("drift", drift), ("diffusion", diffusion)):
            if not callable(fn):
                raise InputTypeError(
                    f"SDE({name}=...): expected a callable (t, y) -> tensor, got {type(fn).__name__}"
                )
        one_of("noise", noise, NOISE_KINDS)
        if calculus not in CALCULI:
            raise InputValueError(
                f"SDE(calculus={calculus!r}): calculus must be 'ito' or 'stratonovich'"
            )
        if noise_dim is not None and (not isinstance(noise_dim, int) or noise_dim < 1):
            raise InputValueError(f"SDE(noise_dim={noise_dim!r}): expected a positive int")
        if noise_dim is not None and noise in ("diagonal", "scalar"):
            raise InputValueError(
                f"SDE(noise={noise!r}, noise_dim={noise_dim}): noise_dim is for 'general' or "
                f"matrix-valued 'additive' noise; drop it, or use noise='general'"
            )
        self.f = drift
        self.g = diffusion
        self.noise = noise
        self.calculus = calculus
        self.noise_dim = noise_dim
        self.additive = noise == "additive"
        if noise == "additive":
            self.layout = "general" if noise_dim is not None else "diagonal"
        else:
            self.layout = noise

    def g_prod(self, g: torch.Tensor, dW: torch.Tensor) -> torch.Tensor:
        """The noise term ``g dW`` for this problem's noise layout."""
        if self.layout == "general":
            return torch.einsum("b...m,bm->b...", g, dW)
        return g * dW

    def noise_shape(self, y0: torch.Tensor, t0: float = 0.0) -> tuple[int, ...]:
        """Shape of a Brownian increment for states shaped like ``y0``. General noise without
        ``noise_dim`` evaluates ``g(t0, y0)`` once to find ``m`` (and remembers it)."""
        if self.layout == "diagonal":
            return tuple(y0.shape)
        if self.layout == "scalar":
            return (y0.shape[0],) + (1,) * (y0.dim() - 1)
        if self.noise_dim is None:
            g0 = self.g(torch.full((), t0, dtype=y0.dtype, device=y0.device), y0)
            if g0.shape[:-1] != y0.shape:
                raise InputValueError(
                    f"general noise: diffusion must return shape (*y.shape, m) = "
                    f"({', '.join(map(str, y0.shape))}, m), got {tuple(g0.shape)}"
                )
            self.noise_dim = g0.shape[-1]
        return (y0.shape[0], self.noise_dim)

    def __repr__(self) -> str:
        return f"SDE(noise={self.noise!r}, calculus={self.calculus!r})"


_TORCHSDE_NOISE = {
    "diagonal": "diagonal",
    "scalar": "scalar",
    "additive": "additive",
    "general": "general",
}
_TORCHSDE_CALCULUS = {"ito": "ito", "stratonovich": "stratonovich"}


def _from_torchsde(module: Any) -> SDE:
    """Adapt a torchsde-style module (``f``, ``g``, ``noise_type``, ``sde_type``).

    torchsde's scalar noise returns ``g`` of shape ``(batch, d, 1)``; it is squeezed to sdekit's
    ``(batch, d)`` layout. torchsde's additive noise is matrix-valued, ``(batch, d, m)``.
    """
    noise = _TORCHSDE_NOISE.get(getattr(module, "noise_type", None))
    calculus = _TORCHSDE_CALCULUS.get(getattr(module, "sde_type", None))
    if noise is None or calculus is None:
        raise InputValueError(
            f"torchsde-style module {type(module).__name__}: noise_type must be one of "
            f"{', '.join(_TORCHSDE_NOISE)} and sde_type 'ito' or 'stratonovich', got "
            f"noise_type={getattr(module, 'noise_type', None)!r}, "
            f"sde_type={getattr(module, 'sde_type', None)!r}"
        )
    drift, diffusion = _scalar_time(module.f, "f"), _scalar_time(module.g, "g")
    if noise == "scalar":

        def diffusion(t, y, _g=diffusion):
            return _g(t, y).squeeze(-1)

    sde = SDE(drift, diffusion, noise=noise, calculus=calculus)
    if noise == "additive":
        sde.layout = "general"
    return sde


def _scalar_time(fn: Field, name: str) -> Field:
    """A torchsde-style function, written for a 0-d ``t``; a per-sample solve's times (one per
    sample) reach it as a column ``(batch, 1)``, which ``t.expand(batch, 1)`` and products with
    ``(batch, d)`` tensors take as they take a 0-d ``t``."""

    def with_time(t, y):
        if t.dim() == 0:
            return fn(t, y)
        try:
            return fn(t[:, None], y)
        except (RuntimeError, IndexError, ValueError, TypeError) as err:
            raise InputValueError(
                f"the torchsde-style {name}(t, y) failed on a per-sample solve's times, given as a "
                f"column of shape {tuple(t.shape) + (1,)} ({type(err).__name__}: {err}); make it "
                f"accept such a t, or solve with one step size for the batch (per_sample=False)"
            ) from err

    return with_time


def as_problem(problem: Any) -> SDE | ODE:
    """Return ``problem`` as an :class:`SDE` or :class:`ODE`, adapting torchsde-style modules."""
    if isinstance(problem, SDE | ODE):
        return problem
    if hasattr(problem, "f") and hasattr(problem, "g") and hasattr(problem, "noise_type"):
        return _from_torchsde(problem)
    raise InputTypeError(
        f"expected an sdekit.SDE, an sdekit.ODE or a torchsde-style module with f, g, noise_type "
        f"and sde_type, got {type(problem).__name__}"
    )
