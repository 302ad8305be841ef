"""Forward noising processes and the reverse-time problems built from them.

A forward process is a linear SDE ``dx = f(t) x dt + g(t) dW`` on ``t in [eps, T]`` whose marginal
given clean data ``x0`` is Gaussian,

    x_t = alpha(t) x0 + sigma(t) z,    z ~ N(0, I),

with ``alpha`` and ``sigma`` the solutions of the moment equations ``d alpha/dt = f(t) alpha`` and
``d sigma^2/dt = 2 f(t) sigma^2 + g(t)^2``. Four processes are provided: the variance-preserving
(VP), sub-variance-preserving (subVP) and variance-exploding (VE) SDEs of Song et al. (2021), and
the EDM parameterisation of Karras et al. (2022), where time *is* the noise level.

A score function ``score_fn(x, t)`` approximates ``grad_x log p_t(x)``; from it
:func:`reverse_sde` and :func:`probability_flow` build the sdekit problems a sampler solves from
``T`` down to ``eps``.

References:
    Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole. "Score-Based Generative Modeling through
    Stochastic Differential Equations", ICLR 2021 (VP/subVP/VE, reverse SDE, probability flow).
    Karras, Aittala, Aila, Laine. "Elucidating the Design Space of Diffusion-Based Generative
    Models", NeurIPS 2022 (sigma(t) = t).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import ClassVar

import torch

import sdekit
from sdekit.batching import bcast
from sdekit.checks import positive_float
from sdekit.errors import InputTypeError, InputValueError
from sdekit.random import GeneratorLike, as_generator, randn

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = [
    "EDMLogTime",
    "EDMProcess",
    "ForwardProcess",
    "PROCESSES",
    "ScoreFn",
    "SubVPSDE",
    "VESDE",
    "VPSDE",
    "batch_time",
    "make_process",
    "probability_flow",
    "reverse_sde",
]


def _as_time(t) -> torch.Tensor:
    """``t`` as a floating tensor (Python numbers and integer tensors get the default dtype)."""
    t = torch.as_tensor(t)
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())


def batch_time(t, x: torch.Tensor) -> torch.Tensor:
    """Time as a ``(batch,)`` tensor on ``x``'s dtype and device.

    A 0-d ``t`` (a shared-time solve) is expanded to the batch; a ``(batch,)`` ``t`` (a per-sample
    solve) is checked against ``x``'s batch size.
    """
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        return t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise InputValueError(
            f"t has shape {tuple(t.shape)} but x has batch size {x.shape[0]}: "
            "pass a 0-d t or one time per sample, shape (batch,)"
        )
    return t


class ForwardProcess(abc.ABC):
    """A linear forward SDE ``dx = f(t) x dt + g(t) dW`` with Gaussian marginals.

    Time-dependent methods take ``t`` as a tensor of shape ``(batch,)`` or ``()`` and return
    ``t``'s shape. Subclasses define ``alpha``, ``sigma``, ``drift_coefficient``, ``diffusion``,
    ``sigma_to_t``, ``prior_std``, ``eps`` and ``T``.
    """

    kind: ClassVar[str]
    eps: float
    data_range: tuple[float, float]

    @property
    @abc.abstractmethod
    def T(self) -> float:
        """The end of the forward time interval, where the prior is used."""

    @property
    @abc.abstractmethod
    def prior_std(self) -> float:
        """Standard deviation of the prior ``N(0, prior_std^2 I)`` that approximates ``p_T``."""

    @abc.abstractmethod
    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        """Marginal mean coefficient: ``E[x_t | x0] = alpha(t) x0``."""

    @abc.abstractmethod
    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Marginal standard deviation: ``Cov[x_t | x0] = sigma(t)^2 I``."""

    @abc.abstractmethod
    def drift_coefficient(self, t: torch.Tensor) -> torch.Tensor:
        """``f(t)`` in the linear drift ``f(x, t) = f(t) x``."""

    @abc.abstractmethod
    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        """The diffusion coefficient ``g(t)``."""

    @abc.abstractmethod
    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """The time at which the marginal std is ``sigma`` (inverse of :meth:`sigma`)."""

    def _check_interval(self) -> None:
        if not 0.0 < self.eps < self.T:
            raise InputValueError(f"need 0 < eps < T, got eps={self.eps} and T={self.T}")
        low, high = self.data_range
        if not low < high:
            raise InputValueError(
                f"data_range must be (low, high) with low < high, got {self.data_range}"
            )

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The forward drift ``f(x, t) = f(t) x`` for ``x`` of shape ``(batch, *event)``."""
        return bcast(self.drift_coefficient(t), x) * x

    def noise_level(self, t: torch.Tensor) -> torch.Tensor:
        """``sigma(t) / alpha(t)``, the noise level of ``x_t / alpha(t) = x0 + (sigma / alpha) z``.

        This is what an EDM-style denoiser is conditioned on; it equals ``sigma`` when alpha = 1.
        """
        t = _as_time(t)
        return self.sigma(t) / self.alpha(t)

    def noise_level_to_t(self, level: torch.Tensor) -> torch.Tensor:
        """The time at which :meth:`noise_level` is ``level``; with ``alpha = 1``, ``sigma_to_t``."""
        return self.sigma_to_t(level)

    def diffusion_jumps(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(times, jumps)``: the times in ``(eps, T)`` where ``g`` is discontinuous and the
        jump ``g(t⁺) − g(t⁻)`` at each (float64). Empty here; a process through a discrete
        schedule (:class:`~sdekit_score.adapters.DiscreteVPProcess`) has them at its knots."""
        empty = torch.zeros(0, dtype=torch.float64)
        return empty, empty

    def sampling_view(self) -> ForwardProcess:
        """The process the samplers step in: the same marginals on a time in which equal steps
        suit a sampler. This process itself, except where its own time is badly scaled for steps
        (:class:`EDMProcess`)."""
        return self

    def noise_level_range(self) -> tuple[float, float]:
        """``(noise_level(eps), noise_level(T))``: the levels the score was trained on."""
        low, high = self.noise_level(torch.tensor([self.eps, self.T], dtype=torch.float64))
        return float(low), float(high)

    def perturb(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """A draw of ``x_t`` given ``x0``: ``alpha(t) x0 + sigma(t) noise`` (noise ~ N(0, I))."""
        t = _as_time(t)
        return bcast(self.alpha(t), x0) * x0 + bcast(self.sigma(t), x0) * noise

    def prior_sample(
        self,
        shape: tuple[int, ...],
        *,
        generator: GeneratorLike = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Draws from the prior ``N(0, prior_std^2 I)`` of shape ``(batch, *event)``.

        ``generator`` is a seed, a ``torch.Generator`` or one generator per sample; without
        ``device`` the draws are on the generators' device (CPU for a seed).
        """
        if device is None:
            first = generator[0] if isinstance(generator, list | tuple) and generator else generator
            device = first.device if isinstance(first, torch.Generator) else "cpu"
        device = torch.device(device)
        dtype = dtype if dtype is not None else torch.get_default_dtype()
        z = randn(tuple(shape), as_generator(generator, device), dtype, device)
        return self.prior_std * z


@dataclass(frozen=True)
class _LinearBeta(ForwardProcess):
    """Shared by VP and subVP: ``beta(t) = beta_min + t (beta_max - beta_min)``, ``f(t) = -beta/2``.

    ``log alpha(t) = -1/2 int_0^t beta = -1/4 t^2 (beta_max - beta_min) - 1/2 t beta_min``.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    eps: float = 1e-3
    data_range: tuple[float, float] = (-1.0, 1.0)

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta_min <= self.beta_max or self.beta_max <= 0.0:
            raise InputValueError(
                f"need 0 <= beta_min <= beta_max and beta_max > 0, "
                f"got beta_min={self.beta_min}, beta_max={self.beta_max}"
            )
        self._check_interval()

    @property
    def T(self) -> float:
        return 1.0

    @property
    def prior_std(self) -> float:
        return 1.0

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """The noise rate ``beta(t) = beta_min + t (beta_max - beta_min)``."""
        return self.beta_min + _as_time(t) * (self.beta_max - self.beta_min)

    def _integral_beta(self, t: torch.Tensor) -> torch.Tensor:
        """``B(t) = int_0^t beta = beta_min t + 1/2 t^2 (beta_max - beta_min)``, so
        ``log alpha(t) = -B(t) / 2``."""
        t = _as_time(t)
        return t * (self.beta_min + 0.5 * t * (self.beta_max - self.beta_min))

    def _integral_beta_to_t(self, b: torch.Tensor) -> torch.Tensor:
        """Solve ``1/2 (beta_max - beta_min) t^2 + beta_min t = b`` for ``t >= 0``.

        The root is written as ``2b / (beta_min + sqrt(beta_min^2 + 2 (beta_max - beta_min) b))``,
        which has no cancellation for small ``b`` and holds for ``beta_max = beta_min``.
        """
        root = torch.sqrt(self.beta_min**2 + 2.0 * (self.beta_max - self.beta_min) * b)
        return 2.0 * b / (self.beta_min + root)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * self._integral_beta(t))

    def drift_coefficient(self, t: torch.Tensor) -> torch.Tensor:
        return -0.5 * self.beta(t)


@dataclass(frozen=True)
class VPSDE(_LinearBeta):
    """Variance-preserving SDE (Song et al. 2021; continuous DDPM).

        dx = -1/2 beta(t) x dt + sqrt(beta(t)) dW,     beta(t) = beta_min + t (beta_max - beta_min)

    Marginal: ``alpha(t) = exp(-1/2 int_0^t beta)``, ``sigma(t) = sqrt(1 - alpha(t)^2)``
    (computed as ``sqrt(-expm1(-int beta))``, accurate for small ``t``). Prior ``N(0, I)``,
    ``t in [eps, 1]``, data in ``[-1, 1]``.
    """

    kind: ClassVar[str] = "vp"

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(-torch.expm1(-self._integral_beta(t)))

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(self.beta(t))

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """``int_0^t beta = -log(1 - sigma^2)``, a quadratic in ``t`` solved in closed form."""
        sigma = _as_time(sigma)
        return self._integral_beta_to_t(-torch.log1p(-(sigma**2)))

    def noise_level_to_t(self, level: torch.Tensor) -> torch.Tensor:
        """``alpha^2 = 1 / (1 + level^2)``, so ``int_0^t beta = log(1 + level^2)``."""
        return self._integral_beta_to_t(torch.log1p(_as_time(level) ** 2))


@dataclass(frozen=True)
class SubVPSDE(_LinearBeta):
    """Sub-variance-preserving SDE (Song et al. 2021).

        dx = -1/2 beta(t) x dt + sqrt(beta(t) (1 - exp(-2 int_0^t beta))) dW

    Same mean as VP, ``alpha(t) = exp(-1/2 int_0^t beta)``, but a smaller variance:
    ``sigma(t) = 1 - alpha(t)^2`` (so ``sigma^2`` is the square of VP's variance). Prior
    ``N(0, I)``, ``t in [eps, 1]``, data in ``[-1, 1]``.
    """

    kind: ClassVar[str] = "subvp"

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.expm1(-self._integral_beta(t))

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(self.beta(t) * -torch.expm1(-2.0 * self._integral_beta(t)))

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """``int_0^t beta = -log(1 - sigma)``, a quadratic in ``t`` solved in closed form."""
        return self._integral_beta_to_t(-torch.log1p(-_as_time(sigma)))

    def noise_level_to_t(self, level: torch.Tensor) -> torch.Tensor:
        """``level = (1 - a) / sqrt(a)`` with ``a = alpha^2``: the root ``a < 1`` of
        ``a^2 - (2 + level^2) a + 1 = 0`` is ``1 / (1 + (level^2 + level sqrt(level^2 + 4)) / 2)``,
        so ``int_0^t beta = -log a = log1p((level^2 + level sqrt(level^2 + 4)) / 2)``."""
        level = _as_time(level)
        return self._integral_beta_to_t(torch.log1p(0.5 * level * (level + (level**2 + 4).sqrt())))


def _check_levels(sigma_min: float, sigma_max: float) -> None:
    if not 0.0 < sigma_min < sigma_max:
        raise InputValueError(
            f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}"
        )


@dataclass(frozen=True)
class VESDE(ForwardProcess):
    """Variance-exploding SDE (Song et al. 2021; continuous NCSN).

        dx = g(t) dW,    sigma(t) = sigma_min (sigma_max / sigma_min)^t,
        g(t) = sigma(t) sqrt(2 log(sigma_max / sigma_min))

    ``alpha = 1``; ``sigma(t)`` is the marginal std taking ``sigma(0) = sigma_min`` as the noise
    already present at ``t = 0`` (the papers' convention). Prior ``N(0, sigma_max^2 I)``,
    ``t in [eps, 1]``, data in ``[0, 1]``.
    """

    kind: ClassVar[str] = "ve"
    sigma_min: float = 0.01
    sigma_max: float = 50.0
    eps: float = 1e-5
    data_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        _check_levels(self.sigma_min, self.sigma_max)
        self._check_interval()

    @property
    def T(self) -> float:
        return 1.0

    @property
    def prior_std(self) -> float:
        return self.sigma_max

    @property
    def _log_ratio(self) -> float:
        return math.log(self.sigma_max / self.sigma_min)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(_as_time(t))

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min * torch.exp(self._log_ratio * _as_time(t))

    def drift_coefficient(self, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(_as_time(t))

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma(t) * math.sqrt(2.0 * self._log_ratio)

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """``t = log(sigma / sigma_min) / log(sigma_max / sigma_min)``."""
        return torch.log(_as_time(sigma) / self.sigma_min) / self._log_ratio

    def noise_level_range(self) -> tuple[float, float]:
        """``(sigma_min, sigma_max)``: the papers' ladder ends (``sigma(eps)`` is within 1e-4)."""
        return self.sigma_min, self.sigma_max


@dataclass(frozen=True)
class EDMProcess(ForwardProcess):
    """The EDM process of Karras et al. (2022): time is the noise level.

        dx = sqrt(2t) dW,    alpha = 1,    sigma(t) = t,    t in [sigma_min, sigma_max]

    So ``eps = sigma_min`` and ``T = sigma_max``. Prior ``N(0, sigma_max^2 I)``, data in
    ``[-1, 1]``. Samplers step it in log noise level (:meth:`sampling_view`).
    """

    kind: ClassVar[str] = "edm"
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    data_range: tuple[float, float] = (-1.0, 1.0)

    def __post_init__(self) -> None:
        _check_levels(self.sigma_min, self.sigma_max)
        self._check_interval()

    @property
    def eps(self) -> float:
        return self.sigma_min

    @property
    def T(self) -> float:
        return self.sigma_max

    @property
    def prior_std(self) -> float:
        return self.sigma_max

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(_as_time(t))

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return _as_time(t).clone()

    def drift_coefficient(self, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(_as_time(t))

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(2.0 * _as_time(t))

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        return _as_time(sigma).clone()

    def sampling_view(self) -> EDMLogTime:
        return EDMLogTime(self.sigma_min, self.sigma_max, data_range=self.data_range)


@dataclass(frozen=True)
class EDMLogTime(VESDE):
    """:class:`EDMProcess` on the time the samplers step in, ``u = log(σ/σ_min)/log(σ_max/σ_min)``.

    Its marginals are EDM's (``α = 1``, ``σ(u) = σ_min (σ_max/σ_min)^u`` from ``σ_min`` at
    ``u = eps = 0`` to ``σ_max`` at ``u = T = 1``), on a time in which equal steps are equal
    ratios of noise level. EDM's own time is the noise level, which runs linearly over five
    decades: adaptive steps in it went from ``σ = 42`` to ``0.002`` in one step (the data's variance
    0.69 of the exact on narrow data) and equal steps left ``σ`` from 0.08 to 0.002 to a single
    one (a variance 78 times the exact). It is ``EDMProcess``'s :meth:`sampling_view`:
    :func:`~sdekit_score.sampling.samplers.sample` steps in it, calling the score at ``σ(u)``.
    """

    eps: float = 0.0
    data_range: tuple[float, float] = (-1.0, 1.0)

    def __post_init__(self) -> None:
        _check_levels(self.sigma_min, self.sigma_max)


# The processes by name: the one list that the CLI's ``--process`` and ``TrainConfig.process`` use.
PROCESSES: dict[str, type[ForwardProcess]] = {
    "vp": VPSDE,
    "subvp": SubVPSDE,
    "ve": VESDE,
    "edm": EDMProcess,
}


def make_process(name: str, **kwargs) -> ForwardProcess:
    """The process ``name`` (a key of :data:`PROCESSES`) built with ``kwargs``."""
    if name not in PROCESSES:
        raise InputValueError(f"unknown process {name!r}: choose one of {', '.join(PROCESSES)}")
    known = [f.name for f in fields(PROCESSES[name])]
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise InputTypeError(
            f"unknown parameter(s) {', '.join(unknown)} for process {name!r}; its parameters are "
            f"{', '.join(known)}"
        )
    return PROCESSES[name](**kwargs)


def denoiser(process: ForwardProcess, score_fn: ScoreFn) -> Callable:
    """Tweedie's estimate of the clean sample, ``D(t, x) = (x + sigma(t)^2 s(x, t)) / alpha(t)``.

    One score evaluation per call; ``t`` is a scalar or of shape ``(batch,)``. Exponential
    integrators step in this variable: with ``lambda = log(alpha/sigma)`` the reverse dynamics are
    linear in ``x`` except through ``D``.
    """

    def denoised(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=y.dtype, device=y.device)
        sigma, alpha = bcast(process.sigma(t), y), bcast(process.alpha(t), y)
        return (y + sigma**2 * score_fn(y, batch_time(t, y))) / alpha

    return denoised


def _with_model(problem, process: ForwardProcess, score_fn: ScoreFn):
    """Attach ``process`` and ``denoiser`` (the semilinear structure exponential schemes use)."""
    problem.process = process
    problem.denoiser = denoiser(process, score_fn)
    return problem


def reverse_sde(
    process: ForwardProcess, score_fn: ScoreFn, *, noise_below: float | None = None
) -> sdekit.SDE:
    """The reverse-time SDE of ``process`` as an sdekit problem, to be solved from ``T`` to ``eps``.

    Written in forward-time notation and integrated backward (``dt < 0``), it is

        dx = [f(x, t) - g(t)^2 s(x, t)] dt + g(t) dW,

    (Anderson 1982; Song et al. 2021, eq. 6). The noise ``g(t)`` on every element does not depend
    on ``x``, so the problem is declared additive: additive-noise schemes (improved Euler, SRA)
    apply, and Itô and Stratonovich readings coincide.
    ``score_fn`` always receives ``t`` of shape ``(batch,)``, also in a shared-time solve.
    The problem also carries ``process``, ``denoiser(t, x)`` (:func:`denoiser`) and
    ``noise_until``, the time below which noise is injected (``None``: everywhere).

    With ``noise_below``, a noise level ``sigma/alpha`` (:meth:`ForwardProcess.noise_level`, the
    ``sigma`` of EDM and k-diffusion), noise is injected only where the level is at most
    ``noise_below``, i.e. at times ``t <= noise_until = noise_level_to_t(noise_below)``; above,
    the problem is the probability-flow ODE. Every member of the family

        dx = [f(x, t) - (1 + eta(t)^2)/2 g(t)^2 s(x, t)] dt + eta(t) g(t) dW

    has the marginals ``p_t`` of the forward process (Song et al. 2021, App. D.1; Karras et al.
    2022, eq. 6); here ``eta(t) = 1`` below the level and ``0`` above it, like the noise window
    ``s_tmax`` of Karras et al.'s stochastic sampler. Solves should land on ``noise_until``
    (``saveat``), so that no step straddles the switch.
    """
    noise_until = None
    if noise_below is not None:
        level = torch.tensor(positive_float(noise_below, "noise_below"), dtype=torch.float64)
        noise_until = float(process.noise_level_to_t(level))

    def eta(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor | float:
        return 1.0 if noise_until is None else bcast((t <= noise_until).to(like.dtype), like)

    def drift(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=y.dtype, device=y.device)
        g2 = bcast(process.diffusion(t) ** 2, y)
        weight = g2 if noise_until is None else g2 * (1 + eta(t, y)) / 2  # eta² = eta
        return process.drift(y, t) - weight * score_fn(y, batch_time(t, y))

    def diffusion(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=y.dtype, device=y.device)
        return (bcast(process.diffusion(t), y) * eta(t, y)).expand_as(y)

    problem = _with_model(
        sdekit.SDE(drift, diffusion, noise="additive", calculus="ito"), process, score_fn
    )
    problem.noise_until = noise_until
    return problem


def probability_flow(process: ForwardProcess, score_fn: ScoreFn) -> sdekit.ODE:
    """The probability-flow ODE of ``process`` as an sdekit problem, solved from ``T`` to ``eps``.

        dx/dt = f(x, t) - 1/2 g(t)^2 s(x, t)

    (Song et al. 2021, eq. 13): its solutions have the same marginals ``p_t`` as the forward SDE.
    ``score_fn`` always receives ``t`` of shape ``(batch,)``, also in a shared-time solve.
    The problem also carries ``process`` and ``denoiser(t, x)`` (:func:`denoiser`).
    """

    def vector_field(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=y.dtype, device=y.device)
        half_g2 = bcast(0.5 * process.diffusion(t) ** 2, y)
        return process.drift(y, t) - half_g2 * score_fn(y, batch_time(t, y))

    return _with_model(sdekit.ODE(vector_field), process, score_fn)
