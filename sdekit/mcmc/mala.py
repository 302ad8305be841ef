"""Metropolis-adjusted Langevin algorithm (MALA), with optional step-size adaptation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sdekit.batching import bcast
from sdekit.checks import positive_float
from sdekit.errors import InputTypeError, InputValueError
from sdekit.mcmc.kernel import (
    KernelInfo,
    KernelStep,
    ScoreCache,
    StepGenerator,
    StepSize,
    begin_step,
    count,
    rows,
    sum_event,
)
from sdekit.mcmc.target import Target
from sdekit.random import rand, randn


@dataclass(frozen=True)
class MALAState:
    """What MALA carries between steps.

    Attributes:
        cache: the score and log density at the current chains.
        log_scale: ``(batch,)`` log of the adapted multiplier of the given step size (zeros at the
            start); ``None`` when the kernel does not adapt.
        adapted_steps: how many adaptation updates have been made.
    """

    cache: ScoreCache
    log_scale: torch.Tensor | None = None
    adapted_steps: int = 0


@dataclass(frozen=True)
class MALA:
    r"""Metropolis-adjusted Langevin step (Roberts & Tweedie 1996).

    Proposal ``y = x + h·s(x) + √(2h)·z``, so ``log q(y | x) = −‖y − x − h·s(x)‖²/(4h)`` + const;
    accept with probability ``α = min(1, π(y) q(x | y) / (π(x) q(y | x)))``, else stay at ``x``.
    The chain leaves π exactly invariant for every step size: the step only trades acceptance for
    move length, never bias. A proposal with a NaN log ratio is rejected.

    Needs ``target.log_prob``. Costs one score and one log-density evaluation per step (the values
    at the current point come from the state; two each on the first call).

    Args:
        target_acceptance: when set (in (0, 1); 0.574 is optimal for smooth targets in high
            dimension), each chain adapts its own step: the given step size is multiplied by
            ``exp(log_scale)``, updated after step ``k`` (from 0) by the Robbins–Monro rule
            ``log_scale ← log_scale + rate/√(k+1) · (α − target_acceptance)``. Adaptation changes
            the kernel from step to step, so use it for warm-up, then sample with a non-adapting
            ``MALA`` at the adapted ``info.step_size``.
        adaptation_rate: ``rate`` above.
    """

    target_acceptance: float | None = None
    adaptation_rate: float = 1.0

    def __post_init__(self) -> None:
        if self.target_acceptance is not None:
            a = self.target_acceptance
            if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 < a < 1:
                raise InputValueError(
                    f"target_acceptance must be a number in (0, 1) such as 0.574, or None "
                    f"for no adaptation; got {a!r}"
                )
        positive_float(self.adaptation_rate, "adaptation_rate")

    def __call__(
        self,
        x: torch.Tensor,
        target: Target,
        step_size: StepSize,
        generator: StepGenerator = None,
        state: MALAState | None = None,
    ) -> KernelStep:
        h, generator = begin_step(x, target, step_size, generator)
        if target.log_prob is None:
            raise InputValueError(
                "MALA needs a log density: pass Target(score=..., log_prob=...); with a score "
                "only, use ULA or UnderdampedLangevin"
            )
        if state is not None and not isinstance(state, MALAState):
            raise InputTypeError(f"state must be a MALAState or None, got {type(state).__name__}")

        log_scale = None
        if self.target_acceptance is not None:
            log_scale = torch.zeros_like(h)
            if state is not None and state.log_scale is not None:
                if state.log_scale.shape != h.shape:
                    raise InputValueError(
                        f"the state adapts {state.log_scale.shape[0]} chains but x has "
                        f"{h.shape[0]}: start with state=None"
                    )
                log_scale = state.log_scale
            h = h * torch.exp(log_scale)
        hb = bcast(h, x)

        if state is not None and state.cache.holds(x, target):
            s_x, lp_x, evaluations = state.cache.score, state.cache.log_prob, count(x, 1)
        else:
            s_x, lp_x, evaluations = target.eval_score(x), target.eval_log_prob(x), count(x, 2)
            if state is None:  # a chain's start: NaN there would reject every move, silently
                _refuse_nan(s_x, lp_x)

        z = randn(x.shape, generator, x.dtype, x.device)
        y = x + hb * s_x + torch.sqrt(2 * hb) * z
        s_y, lp_y = target.eval_score(y), target.eval_log_prob(y)
        log_q_forward = -0.5 * sum_event(z * z)
        log_q_backward = -sum_event((x - y - hb * s_y) ** 2) / (4 * h)
        log_ratio = lp_y - lp_x + log_q_backward - log_q_forward
        log_ratio = torch.where(log_ratio.isnan(), -math.inf, log_ratio)
        acceptance = torch.exp(log_ratio.clamp(max=0))
        accepted = rand(x.shape[:1], generator, x.dtype, x.device) < acceptance

        keep = bcast(accepted, x)
        x_new = torch.where(keep, y, x)
        s_new, lp_new = torch.where(keep, s_y, s_x), torch.where(accepted, lp_y, lp_x)
        adapted_steps = 0
        if log_scale is not None:
            adapted_steps = state.adapted_steps if state is not None else 0
            rate = self.adaptation_rate / math.sqrt(adapted_steps + 1)
            log_scale = log_scale + rate * (acceptance - self.target_acceptance)
            adapted_steps += 1
        info = KernelInfo(evaluations, h, acceptance=acceptance, accepted=accepted)
        cache = ScoreCache(x_new, target, s_new, lp_new)
        return KernelStep(x_new, info, MALAState(cache, log_scale, adapted_steps))


def _refuse_nan(score: torch.Tensor, log_prob: torch.Tensor) -> None:
    """Raise for chains whose log density is NaN at their start, or whose score is NaN where
    the density is finite (outside the support, ``-inf`` with any score, they stay put)."""
    bad = log_prob.isnan() | (rows(score).isnan().any(1) & torch.isfinite(log_prob))
    if bool(bad.any()):
        chains = bad.nonzero().flatten().tolist()
        raise InputValueError(
            f"the target's log density or score is NaN at the start of chains "
            f"{chains[:10]}{'...' if len(chains) > 10 else ''}: every proposal from there would "
            f"be rejected and the chains would not move; check log_prob and score there (-inf "
            f"marks points outside the support)"
        )
