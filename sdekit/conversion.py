r"""Itô and Stratonovich forms of one SDE.

The same process solves ``dY = f dt + g dW`` (Itô) and ``dY = f̃ dt + g ∘dW`` (Stratonovich) with

.. math::
    \tilde f = f - \tfrac12 \sum_j (J_{g_j}\, g_j),

where ``g_j`` is the column of ``g`` for Brownian motion ``j`` and ``J_{g_j}`` its Jacobian in
``y``: one directional derivative of each column along itself, by autograd (as
:class:`~sdekit.Milstein` takes it). By noise kind: additive noise needs no correction; scalar
noise one product ``J_g g``; general noise one per Brownian motion; diagonal noise ``g_i ∂g_i/∂y_i``
for component ``i``, taken as ``J_g g`` under the diagonal-noise assumption that ``g_i`` depends
on ``y_i`` only (the one Milstein's scheme for diagonal noise makes).

Each drift evaluation of the converted problem evaluates ``g`` once more and differentiates it
(twice more per Brownian motion for general noise), so a scheme of the problem's own calculus is
cheaper where one exists; converting serves a scheme only the other calculus has (an SRK scheme
for an Itô problem given in Stratonovich form), or a model written in the other form.
"""

from __future__ import annotations

from typing import Any

import torch

from sdekit.errors import InputTypeError
from sdekit.problems import SDE, as_problem
from sdekit.solvers.milstein import _jvp

__all__ = ["to_ito", "to_stratonovich"]


def to_ito(problem: Any) -> SDE:
    """The Itô form of ``problem`` (an :class:`SDE` or a torchsde-style module): the same
    diffusion, the drift ``f + ½ Σ_j J_{g_j} g_j`` of a Stratonovich one (module docstring); an
    Itô problem is returned as it is."""
    return _converted(problem, "ito")


def to_stratonovich(problem: Any) -> SDE:
    """The Stratonovich form of ``problem``: the drift ``f − ½ Σ_j J_{g_j} g_j`` of an Itô one
    (module docstring); a Stratonovich problem is returned as it is."""
    return _converted(problem, "stratonovich")


def _converted(problem: Any, calculus: str) -> SDE:
    sde = as_problem(problem)
    if not isinstance(sde, SDE):
        raise InputTypeError(
            f"to_{calculus}: {type(problem).__name__} is an ODE, which has no calculus to convert"
        )
    if sde.calculus == calculus:
        return sde
    if sde.additive:  # g does not depend on y: the forms coincide
        drift = sde.f
    else:
        sign = 0.5 if calculus == "ito" else -0.5

        def drift(t, y, _f=sde.f, _g=sde.g, _general=sde.layout == "general"):
            return _f(t, y) + sign * _correction(_g, t, y, _general)

    converted = SDE(drift, sde.g, noise=sde.noise, calculus=calculus, noise_dim=sde.noise_dim)
    converted.layout = sde.layout  # a torchsde module's additive noise is matrix-valued
    return converted


def _correction(g, t: torch.Tensor, y: torch.Tensor, general: bool) -> torch.Tensor:
    """``Σ_j J_{g_j} g_j`` at ``(t, y)``: one column for diagonal and scalar noise."""
    if not general:
        return _jvp(lambda z: g(t, z), y)[1]
    m = g(t, y).shape[-1]
    return sum(_jvp(lambda z, j=j: g(t, z)[..., j], y)[1] for j in range(m))
