"""The Langevin corrector of predictor–corrector samplers, with its signal-to-noise step rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sdekit.batching import bcast
from sdekit.checks import positive_float
from sdekit.errors import InputTypeError
from sdekit.mcmc.kernel import (
    KernelInfo,
    KernelStep,
    StepGenerator,
    StepSize,
    begin_step,
    count,
    rows,
)
from sdekit.mcmc.target import Target
from sdekit.random import randn


@dataclass(frozen=True)
class LangevinCorrector:
    r"""Langevin step whose size is set by a signal-to-noise ratio (Song et al. 2021, Alg. 4–5).

    With ``s = s(x)`` and ``z ~ N(0, I)`` drawn for this step, chain ``i`` takes

    ``h_i = 2 α_i (snr · ‖z_i‖ / ‖s_i‖)²``,  ``x_i ← x_i + h_i s_i + √(2 h_i) z_i``,

    norms over the event dims, so that the noise-to-drift ratio ‖√(2h) z‖ / ‖h s‖ is
    ``1/(snr·√α)`` for every chain (``1/snr`` at ``α = 1``). The kernel's ``step_size``
    argument is ``α`` (1 for variance-exploding processes; the reference passes
    ``α_t = 1 − β_t`` for variance-preserving ones).

    Args:
        snr: the target signal-to-noise ratio (0.16 in the reference configurations).
        batch_mean_norms: replace ``‖s_i‖`` and ``‖z_i‖`` by their means over the batch, as the
            reference implementation does (``torch.norm(g.reshape(B, -1), dim=-1).mean()``). This
            couples the chains (one chain's step depends on the others), so it is only for
            reproducing published numbers; the per-chain rule is the default.

    A chain whose score is exactly zero gets an infinite step (its state becomes NaN); one
    score evaluation per step; no state.
    """

    snr: float = 0.16
    batch_mean_norms: bool = False

    def __post_init__(self) -> None:
        positive_float(self.snr, "snr")
        if not isinstance(self.batch_mean_norms, bool):
            raise InputTypeError(
                f"batch_mean_norms must be a bool, got {type(self.batch_mean_norms).__name__}"
            )

    def __call__(
        self,
        x: torch.Tensor,
        target: Target,
        step_size: StepSize,
        generator: StepGenerator = None,
        state: Any = None,
    ) -> KernelStep:
        alpha, generator = begin_step(
            x, target, step_size, generator, name="step_size (the corrector's alpha)"
        )
        s = target.eval_score(x)
        z = randn(x.shape, generator, x.dtype, x.device)
        s_norm = torch.linalg.vector_norm(rows(s), dim=1)
        z_norm = torch.linalg.vector_norm(rows(z), dim=1)
        if self.batch_mean_norms:
            s_norm, z_norm = s_norm.mean(), z_norm.mean()
        h = 2 * alpha * (self.snr * z_norm / s_norm) ** 2
        hb = bcast(h, x)
        x_new = x + hb * s + torch.sqrt(2 * hb) * z
        return KernelStep(x_new, KernelInfo(evaluations=count(x, 1), step_size=h), None)
