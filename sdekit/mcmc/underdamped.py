"""Underdamped (kinetic) Langevin dynamics, integrated by a BAOAB or OBABO splitting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from sdekit.batching import bcast
from sdekit.checks import one_of, positive_float
from sdekit.errors import InputTypeError, InputValueError
from sdekit.mcmc.kernel import (
    KernelInfo,
    KernelStep,
    ScoreCache,
    StepGenerator,
    StepSize,
    begin_step,
    count,
)
from sdekit.mcmc.target import Target
from sdekit.random import randn

_SCHEMES = ("baoab", "obabo")


@dataclass(frozen=True)
class UnderdampedState:
    """What underdamped Langevin carries between steps.

    Attributes:
        velocity: ``v = M⁻¹p``, shaped like the chains.
        cache: the score at the current chains (``None`` before the first step).
    """

    velocity: torch.Tensor
    cache: ScoreCache | None = None


@dataclass(frozen=True, eq=False)
class UnderdampedLangevin:
    r"""One step of underdamped Langevin dynamics with friction γ and (diagonal) mass M:

    ``dx = v dt``,  ``dv = (M⁻¹ s(x) − γ v) dt + √(2γ M⁻¹) dW``,

    whose stationary law is ``π(x) · N(v; 0, M⁻¹)``. The step of size h splits it into
    ``B(τ): v ← v + τ M⁻¹ s(x)`` (kick), ``A(τ): x ← x + τ v`` (drift) and the exact
    Ornstein–Uhlenbeck solve ``O(τ): v ← e^{−γτ} v + √((1 − e^{−2γτ}) M⁻¹) z``:

    - ``"baoab"``: B(h/2) A(h/2) O(h) A(h/2) B(h/2) (Leimkuhler & Matthews 2013). Its position
      marginal has O(h²) bias, and is exact for Gaussian targets (for h below the stability limit).
    - ``"obabo"``: O(h/2) B(h/2) A(h) B(h/2) O(h/2), velocity Verlet between two half OU steps.

    Both are symmetric splittings that cost one score evaluation per step (the score at the new
    point is kept in the state for the next step's first kick). The velocity is part of the kernel
    state; with ``state=None`` it is drawn from ``N(0, M⁻¹)``. It is kept across changes of target,
    so an annealed schedule carries momentum from one level to the next.

    Args:
        friction: γ > 0. Small γ moves far between velocity refreshes; large γ approaches
            overdamped Langevin (with time rescaled by γ).
        mass: M > 0, a float or a positive tensor that broadcasts to the event shape (a diagonal
            mass matrix, one entry per coordinate).
        scheme: ``"baoab"`` or ``"obabo"``.
    """

    friction: float = 1.0
    mass: float | torch.Tensor = 1.0
    scheme: Literal["baoab", "obabo"] = "baoab"
    # a tensor mass in each (dtype, device) it has been used in
    _mass_like: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        positive_float(self.friction, "friction")
        if isinstance(self.mass, torch.Tensor):
            if not self.mass.is_floating_point() or not bool((self.mass > 0).all()):
                raise InputValueError(
                    "mass must be a positive float or a tensor of positive floats"
                )
        else:
            positive_float(self.mass, "mass")
        one_of("scheme", self.scheme, _SCHEMES)

    def __call__(
        self,
        x: torch.Tensor,
        target: Target,
        step_size: StepSize,
        generator: StepGenerator = None,
        state: UnderdampedState | None = None,
    ) -> KernelStep:
        h, generator = begin_step(x, target, step_size, generator)
        if state is not None and not isinstance(state, UnderdampedState):
            raise InputTypeError(
                f"state must be an UnderdampedState or None, got {type(state).__name__}"
            )
        inv_mass = self._inverse_mass(x)
        hb = bcast(h, x)

        if state is None:
            v = randn(x.shape, generator, x.dtype, x.device) * inv_mass**0.5
        elif state.velocity.shape != x.shape:
            raise InputValueError(
                f"the state's velocity has shape {tuple(state.velocity.shape)} but x has "
                f"{tuple(x.shape)}: start with state=None"
            )
        else:
            v = state.velocity
        if state is not None and state.cache is not None and state.cache.holds(x, target):
            s, evaluations = state.cache.score, count(x, 1)
        else:
            s, evaluations = target.eval_score(x), count(x, 2)

        def kick(v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            return v + 0.5 * hb * inv_mass * s

        def refresh(v: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
            c = torch.exp(-self.friction * tau)
            z = randn(x.shape, generator, x.dtype, x.device)
            return c * v + torch.sqrt((1 - c * c) * inv_mass) * z

        if self.scheme == "baoab":
            v = kick(v, s)
            x_mid = x + 0.5 * hb * v
            v = refresh(v, hb)
            x_new = x_mid + 0.5 * hb * v
            s_new = target.eval_score(x_new)
            v = kick(v, s_new)
        else:
            v = kick(refresh(v, 0.5 * hb), s)
            x_new = x + hb * v
            s_new = target.eval_score(x_new)
            v = refresh(kick(v, s_new), 0.5 * hb)

        info = KernelInfo(evaluations=evaluations, step_size=h)
        return KernelStep(x_new, info, UnderdampedState(v, ScoreCache(x_new, target, s_new)))

    def _inverse_mass(self, x: torch.Tensor) -> torch.Tensor | float:
        """``M⁻¹``: a float for a float mass (no tensor made per step), else in ``x``'s dtype and
        device, shaped to broadcast over ``x``."""
        if not isinstance(self.mass, torch.Tensor):
            return 1 / self.mass
        mass = self._mass_like.get((x.dtype, x.device))
        if mass is None:  # converted once per dtype and device, not copied at every step
            mass = self._mass_like[(x.dtype, x.device)] = self.mass.to(x.device, x.dtype)
        event = x.shape[1:]
        try:
            fits = mass.dim() <= len(event) and torch.broadcast_shapes(mass.shape, event) == event
        except RuntimeError:
            fits = False
        if not fits:
            raise InputValueError(
                f"mass of shape {tuple(mass.shape)} does not broadcast to the event shape "
                f"{tuple(event)} of x"
            )
        return 1 / mass
