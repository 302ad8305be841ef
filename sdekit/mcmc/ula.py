"""Unadjusted Langevin algorithm (ULA): Euler–Maruyama for the overdamped Langevin diffusion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sdekit.batching import bcast
from sdekit.mcmc.kernel import KernelInfo, KernelStep, StepGenerator, StepSize, begin_step, count
from sdekit.mcmc.target import Target
from sdekit.random import randn


@dataclass(frozen=True)
class ULA:
    r"""Unadjusted Langevin step: ``x ← x + h·s(x) + √(2h)·z``, ``z ~ N(0, I)``.

    The Euler–Maruyama discretisation of ``dX = ∇log π(X) dt + √2 dW``, whose stationary law is π.
    Without a Metropolis correction the chain's stationary law is biased by O(h): for
    π = N(μ, Σ) it is N(μ, (Σ⁻¹ − h Σ⁻²/2)⁻¹), e.g. variance 1/(1 − h/2) for N(0, 1), and the
    chain diverges for h ≥ 2λ_min(Σ). Use :class:`~sdekit.mcmc.mala.MALA` to remove the bias.

    One score evaluation per step; no state. With ``h = ε σ_i²/σ_L²`` and ``s = s(·, σ_i)`` this is
    the step of annealed Langevin sampling (Song & Ermon 2019).
    """

    def __call__(
        self,
        x: torch.Tensor,
        target: Target,
        step_size: StepSize,
        generator: StepGenerator = None,
        state: Any = None,
    ) -> KernelStep:
        h, generator = begin_step(x, target, step_size, generator)
        hb = bcast(h, x)
        s = target.eval_score(x)
        z = randn(x.shape, generator, x.dtype, x.device)
        x_new = x + hb * s + torch.sqrt(2 * hb) * z
        return KernelStep(x_new, KernelInfo(evaluations=count(x, 1), step_size=h), None)
