"""Running kernels along a sequence of targets: annealed Langevin and consistent annealed sampling.

A schedule is a sequence of levels (noise levels σ for score-based models; sdekit attaches no
meaning to them) and a level-conditional score ``score(x, level)``, where ``level`` is a tensor of
shape ``(batch,)`` in ``x``'s dtype and device holding the current level for every chain.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
from tqdm.auto import tqdm

from sdekit.checks import positive_float, positive_int
from sdekit.errors import InputTypeError, InputValueError
from sdekit.mcmc.kernel import Kernel, KernelInfo, check_chains, count
from sdekit.mcmc.target import Target
from sdekit.mcmc.ula import ULA
from sdekit.random import GeneratorLike, as_generator, randn

LevelScore = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LevelLogProb = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, torch.Tensor, KernelInfo], None]
Levels = Sequence[float] | torch.Tensor
StepSizes = float | Sequence[float] | torch.Tensor


def geometric_sigmas(
    sigma_max: float,
    sigma_min: float,
    n: int,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``n`` noise levels from ``sigma_max`` down to ``sigma_min`` with a constant ratio.

    ``σ_i = σ_max (σ_min/σ_max)^(i/(n−1))`` for ``i = 0, …, n−1``; the endpoints are exact.
    Computed in float64, then cast to ``dtype``.
    """
    sigma_max = positive_float(sigma_max, "sigma_max")
    sigma_min = positive_float(sigma_min, "sigma_min")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise InputValueError(
            f"n must be an int >= 2 (the number of levels, ends included), got {n!r}"
        )
    if not sigma_min < sigma_max:
        raise InputValueError(
            f"need sigma_min < sigma_max (levels run from large to small noise), "
            f"got sigma_max={sigma_max}, sigma_min={sigma_min}"
        )
    sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64).exp()
    sigmas[0], sigmas[-1] = sigma_max, sigma_min
    return sigmas.to(dtype=dtype, device=device)


@dataclass(frozen=True)
class ScheduleResult:
    """The outcome of a schedule.

    Attributes:
        x: the final chains.
        score: a score evaluation at the last level: at ``x`` itself where the kernel keeps it
            (MALA, underdamped Langevin; MALA's last evaluation is at a proposal that some chains
            rejected), else the last evaluation.
        score_x: the point where ``score`` was evaluated. Denoising à la Tweedie is
            ``score_x + σ_L² · score`` (what the reference implementations of ALS and CAS do) at
            no extra evaluation; schedules never apply it themselves.
        level: the last level, ``σ_L``.
        evaluations: score evaluations per chain, int64 of shape ``(batch,)``.
        acceptance: mean Metropolis acceptance probability per chain over all steps, for
            kernels that report one (MALA); else ``None``.
        state: the kernel's final state (``None`` for CAS and stateless kernels).
    """

    x: torch.Tensor
    score: torch.Tensor
    score_x: torch.Tensor
    level: float
    evaluations: torch.Tensor
    acceptance: torch.Tensor | None = None
    state: Any = None


class _Recorded:
    """``score(·, level)`` as a one-argument score that remembers its last evaluation."""

    def __init__(self, score: LevelScore, level: torch.Tensor) -> None:
        self.score, self.level = score, level
        self.x: torch.Tensor | None = None
        self.value: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.x, self.value = x, self.score(x, self.level)
        return self.value


def run_schedule(
    kernel: Kernel,
    x: torch.Tensor,
    score: LevelScore,
    levels: Levels,
    step_sizes: StepSizes,
    n_steps: int = 1,
    *,
    log_prob: LevelLogProb | None = None,
    generator: GeneratorLike = None,
    state: Any = None,
    callback: Callback | None = None,
    progress: bool = False,
    grad: bool = False,
) -> ScheduleResult:
    """Run ``kernel`` for ``n_steps`` steps at each level in turn.

    At level ``i`` the target is ``Target(score=score(·, level_i), log_prob=log_prob(·, level_i))``
    and the step size is ``step_sizes[i]``. The kernel state flows from step to step and level to
    level (so underdamped Langevin keeps its velocity and MALA its adaptation); a plain MCMC run
    is a schedule with one level.

    Args:
        kernel: any :class:`~sdekit.mcmc.kernel.Kernel` (ULA, MALA, UnderdampedLangevin,
            LangevinCorrector, ...).
        x: initial chains, shape ``(batch, *event)``.
        score: ``score(x, level) -> tensor shaped like x``; ``level`` has shape ``(batch,)``.
        levels: ``L`` finite levels, a sequence of floats or a 1-D tensor.
        step_sizes: one float for every level, ``L`` floats (a sequence or a tensor of shape
            ``(L,)``), or a tensor of shape ``(L, batch)`` for per-chain step sizes.
        n_steps: kernel steps per level.
        log_prob: ``log_prob(x, level) -> (batch,)``, for kernels that need a log density.
        generator: an ``int`` seed, a ``torch.Generator`` or one generator per chain; a seed
            becomes one generator for the whole run, which every step draws from in turn.
        state: initial kernel state (``None`` to let the kernel start afresh).
        callback: ``callback(level_index, x, info)`` after every step, with the step's
            :class:`~sdekit.mcmc.kernel.KernelInfo`.
        progress: show a tqdm bar that advances once per level.
        grad: keep the autograd graph through the chains (to differentiate the result with
            respect to ``x`` or the score's parameters). Off by default: every evaluation of
            ``score`` and ``log_prob`` is detached, so a network's graph lives for one step and
            memory does not grow with the steps. They still run in the caller's grad mode, so a
            score that differentiates a log density (``torch.autograd.grad``) works either way.
    """
    if not callable(kernel):
        raise InputTypeError(f"kernel must be a callable MCMC kernel, got {type(kernel).__name__}")
    _check_callables(x, score, log_prob, callback)
    values = _levels(levels)
    n_steps = positive_int(n_steps, "n_steps")
    per_level = _step_sizes(step_sizes, len(values), x)
    generator = as_generator(generator, x.device)
    if not grad:
        x, score = x.detach(), _detached(score)
        log_prob = None if log_prob is None else _detached(log_prob)

    evaluations = count(x, 0)
    acceptance_sum: torch.Tensor | None = None
    recorded: _Recorded | None = None
    for i, value in enumerate(tqdm(values, disable=not progress, desc="levels")):
        recorded = _Recorded(score, torch.full(x.shape[:1], value, dtype=x.dtype, device=x.device))
        level_log_prob = None if log_prob is None else _at_level(log_prob, recorded.level)
        target = Target(score=recorded, log_prob=level_log_prob)
        for _ in range(n_steps):
            x, info, state = kernel(x, target, per_level[i], generator, state)
            evaluations = evaluations + info.evaluations
            if info.acceptance is not None:
                acceptance_sum = (
                    info.acceptance if acceptance_sum is None else acceptance_sum + info.acceptance
                )
            if callback is not None:
                callback(i, x, info)
    acceptance = None if acceptance_sum is None else acceptance_sum / (len(values) * n_steps)
    cache = getattr(state, "cache", None)
    if cache is not None and cache.holds(x, target):  # the score at x, not at a proposal
        return ScheduleResult(x, cache.score, x, values[-1], evaluations, acceptance, state)
    return ScheduleResult(x, recorded.value, recorded.x, values[-1], evaluations, acceptance, state)


def annealed_langevin(
    score: LevelScore,
    x: torch.Tensor,
    sigmas: Levels,
    step_size: float,
    n_steps: int = 1,
    *,
    generator: GeneratorLike = None,
    callback: Callback | None = None,
    progress: bool = False,
    grad: bool = False,
) -> ScheduleResult:
    """Annealed Langevin sampling (ALS; Song & Ermon 2019).

    For each level ``i`` (``σ_1 > … > σ_L``), ``n_steps`` times:
    ``x ← x + α_i s(x, σ_i) + √(2α_i) z`` with ``α_i = ε σ_i²/σ_L²`` and ``ε = step_size``,
    i.e. :func:`run_schedule` with :class:`~sdekit.mcmc.ula.ULA`. ``L · n_steps`` evaluations.

    Unlike CAS, the noise in ``x`` does not track the levels: from ``x = x* + σ_i z`` a step with
    the exact score of the smoothed point mass leaves standard deviation
    ``√((1 − ε/σ_L²)² σ_i² + 2ε σ_i²/σ_L²)``, not ``σ_{i+1}``.

    ``generator``, ``callback``, ``progress`` and ``grad`` are :func:`run_schedule`'s. Returns a
    :class:`ScheduleResult`; its ``score``/``score_x`` give the final denoising
    ``score_x + σ_L² score`` for free.
    """
    sigmas = _levels(sigmas, positive=True)
    if any(a <= b for a, b in pairwise(sigmas)):  # α_i = ε σ_i²/σ_L² assumes σ_L the smallest
        raise InputValueError(
            f"annealed Langevin needs strictly decreasing sigmas (σ_1 > … > σ_L), got {sigmas}"
        )
    epsilon = positive_float(step_size, "step_size")
    alphas = [epsilon * (s / sigmas[-1]) ** 2 for s in sigmas]
    return run_schedule(
        ULA(),
        x,
        score,
        sigmas,
        alphas,
        n_steps,
        generator=generator,
        callback=callback,
        progress=progress,
        grad=grad,
    )


def consistent_annealed_sampling(
    score: LevelScore,
    x: torch.Tensor,
    sigmas: Levels,
    step_size: float,
    n_steps: int = 1,
    *,
    generator: GeneratorLike = None,
    callback: Callback | None = None,
    progress: bool = False,
    grad: bool = False,
) -> ScheduleResult:
    r"""Consistent annealed sampling (CAS; Jolicoeur-Martineau et al., ICLR 2021).

    With ``η = ε/σ_L²`` (``ε = step_size``), ``γ_i = σ_{i+1}/σ_i`` and
    ``β_i = √(1 − ((1 − η)/γ_i)²)``, for each level ``i``:
    ``x ← x + η σ_i² s(x, σ_i) + β_i σ_{i+1} z``, with no noise after the last level.

    The step keeps the noise consistent with the levels: if ``x = x* + σ_i z`` and ``s`` is the
    score of the σ_i-smoothed point mass at ``x*``, then ``x − x* = (1 − η) σ_i z + β_i σ_{i+1} z'``
    has standard deviation exactly ``σ_{i+1}``. That needs ``β_i`` real and positive, i.e.
    ``1 − γ_i < η < 1 + γ_i`` for every ``i``; ``η = 1`` (``ε = σ_L²``) is always valid.

    With ``n_steps > 1`` every interval ``[σ_i, σ_{i+1}]`` is split geometrically into ``n_steps``
    (``σ_i^(1−k/n) σ_{i+1}^(k/n)``), giving ``(L − 1)·n_steps + 1`` levels with one step each (for
    geometric ``sigmas``, the finer geometric schedule). The callback's ``level_index`` is that of
    the given ``sigmas`` the step belongs to (fine level ``j`` belongs to ``j // n_steps``).

    Args:
        sigmas: strictly decreasing positive levels ``σ_1 > … > σ_L``, ``L ≥ 2``.
        generator, callback, progress, grad: as :func:`run_schedule`'s.

    Raises:
        ValueError: when ``step_size`` is outside the valid interval; the message gives it.

    Returns a :class:`ScheduleResult`; its ``score``/``score_x`` give the final denoising
    ``score_x + σ_L² score`` for free.
    """
    _check_callables(x, score, None, callback)
    sigmas = _levels(sigmas, positive=True)
    epsilon = positive_float(step_size, "step_size")
    n_steps = positive_int(n_steps, "n_steps")
    if len(sigmas) < 2 or any(a <= b for a, b in pairwise(sigmas)):
        raise InputValueError(
            f"consistent annealed sampling needs at least two strictly decreasing sigmas, "
            f"got {sigmas}"
        )
    fine = [
        a ** (1 - k / n_steps) * b ** (k / n_steps)
        for a, b in pairwise(sigmas)
        for k in range(n_steps)
    ] + [sigmas[-1]]
    gammas = [b / a for a, b in pairwise(fine)]
    eta = epsilon / fine[-1] ** 2
    gamma = min(gammas)
    if not 1 - gamma < eta < 1 + gamma:
        low, high = (1 - gamma) * fine[-1] ** 2, (1 + gamma) * fine[-1] ** 2
        raise InputValueError(
            f"consistent annealed sampling needs 1 - γ < η < 1 + γ with η = step_size/σ_L² and "
            f"γ = σ_(i+1)/σ_i (smallest γ here: {gamma:.6g}, with n_steps={n_steps}), i.e. "
            f"{low:.6g} < step_size < {high:.6g}; got step_size={epsilon:.6g} (η = {eta:.6g}). "
            f"Pick step_size in that interval; step_size = σ_L² = {fine[-1] ** 2:.6g} (η = 1) "
            f"always works."
        )
    betas = [math.sqrt(1 - ((1 - eta) / g) ** 2) for g in gammas]
    generator = as_generator(generator, x.device)
    if not grad:
        x, score = x.detach(), _detached(score)

    ones = count(x, 1)
    bar = tqdm(total=len(sigmas), disable=not progress, desc="levels")
    for j, sigma in enumerate(fine):
        level = torch.full(x.shape[:1], sigma, dtype=x.dtype, device=x.device)
        score_x, s = x, Target(score=_at_level(score, level)).eval_score(x)
        x = x + (eta * sigma**2) * s
        if j + 1 < len(fine):
            x = x + (betas[j] * fine[j + 1]) * randn(x.shape, generator, x.dtype, x.device)
        if callback is not None:
            callback(j // n_steps, x, KernelInfo(ones, torch.full_like(level, eta * sigma**2)))
        if j % n_steps == 0:
            bar.update()
    bar.close()
    return ScheduleResult(x, s, score_x, fine[-1], ones * len(fine))


def _detached(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """``fn`` with its result detached from the autograd graph (non-tensors pass through, for
    the shape checks to name)."""

    def detached(*args):
        value = fn(*args)
        return value.detach() if isinstance(value, torch.Tensor) else value

    return detached


def _at_level(fn: LevelScore, level: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``fn(·, level)``."""
    return lambda x: fn(x, level)


def _check_callables(
    x: torch.Tensor,
    score: LevelScore,
    log_prob: LevelLogProb | None,
    callback: Callback | None,
) -> None:
    """Check the chains and that the user's functions are callables, before any work."""
    if not callable(score):
        raise InputTypeError(
            f"score must be a callable score(x, level), got {type(score).__name__}"
        )
    check_chains(x, Target(score=score))
    if log_prob is not None and not callable(log_prob):
        raise InputTypeError(
            f"log_prob must be None or a callable log_prob(x, level), got {log_prob!r}"
        )
    if callback is not None and not callable(callback):
        raise InputTypeError(
            f"callback must be None or a callable(level_index, x, info), got {callback!r}"
        )


def _levels(levels: Levels, positive: bool = False) -> list[float]:
    """The levels as a non-empty list of finite (positive) floats; one host transfer."""
    if isinstance(levels, torch.Tensor):
        if levels.dim() != 1:
            raise InputValueError(f"levels must be 1-D, got shape {tuple(levels.shape)}")
        values = levels.tolist()
    elif isinstance(levels, Sequence) and not isinstance(levels, str):
        values = [float(v) for v in levels]
    else:
        raise InputTypeError(f"levels must be a 1-D tensor or a sequence of floats, got {levels!r}")
    if not values or not all(math.isfinite(v) for v in values):
        raise InputValueError(
            f"levels must be a non-empty sequence of finite numbers, got {values}"
        )
    if positive and min(values) <= 0:
        raise InputValueError(f"noise levels must be positive, got {values}")
    return values


def _step_sizes(
    step_sizes: StepSizes, n_levels: int, x: torch.Tensor
) -> list[float] | torch.Tensor:
    """One step size per level: floats, or the rows of an ``(L, batch)`` tensor on x's device."""
    shape = f"a float, {n_levels} floats, or a tensor of shape ({n_levels},) or ({n_levels}, batch)"
    if isinstance(step_sizes, torch.Tensor) and step_sizes.dim() == 2:
        if step_sizes.shape != (n_levels, x.shape[0]):
            raise InputValueError(
                f"step_sizes must be {shape}, got shape {tuple(step_sizes.shape)}"
            )
        if not bool((torch.isfinite(step_sizes) & (step_sizes > 0)).all()):
            raise InputValueError("step_sizes must be finite and positive")
        return step_sizes.to(dtype=x.dtype, device=x.device)
    if isinstance(step_sizes, (int, float)) and not isinstance(step_sizes, bool):
        values = [step_sizes] * n_levels
    elif isinstance(step_sizes, torch.Tensor) and step_sizes.dim() == 1:
        values = step_sizes.tolist()
    elif isinstance(step_sizes, Sequence):
        values = list(step_sizes)
    else:
        raise InputTypeError(f"step_sizes must be {shape}, got {type(step_sizes).__name__}")
    if len(values) != n_levels:
        raise InputValueError(f"step_sizes must be {shape}, got {len(values)} values")
    return [positive_float(v, "every step size") for v in values]
