"""Training objectives: denoising score matching and the hybrid DSM + adversarial objective.

Denoising score matching (Vincent 2011; Song et al. 2021). With ``x~ = alpha(t) x0 + sigma(t) z``,
the conditional score is ``grad log p(x~ | x0) = -z / sigma(t)``, and

    L_DSM = E_{t, x0, z} [ 1/2 lambda(t) || s(x~, t) + z / sigma(t) ||^2 ]

is minimised by the true score of ``p_t``. Two weightings:

- ``"sigma2"``: ``lambda = sigma^2``, i.e. ``1/2 || sigma s + z ||^2`` (NCSN, DDPM's "simple" loss);
- ``"likelihood"``: ``lambda = g(t)^2``, which makes the objective a bound on the negative
  log-likelihood (Song, Durkan, Murray, Ermon 2021): its time average is uniform over ``[eps,
  T]``, so times drawn in another time (EDM's log noise level) are weighted by the density
  ratio, ``dt/du (U - U_eps)/(T - eps)``.

Each sample's loss is summed over its dimensions; the batch is averaged.

Times ``t`` are drawn uniformly on ``[eps, T]`` (for EDM, in log noise level:
:func:`sample_times`). For a discrete set of noise levels
``sigma_1 > ... > sigma_L`` (annealed Langevin, Jolicoeur-Martineau et al. 2021) pass ``levels``:
the time is then uniform over ``process.sigma_to_t(levels)``, so the score function keeps its
``score_fn(x, t)`` signature and a network conditioned on ``sigma`` (``ScoreModel(...,
conditioning="sigma")``) sees exactly the level ``sigma_i`` (for VE, where ``alpha = 1``).

Hybrid objective (adversarial score matching, Jolicoeur-Martineau et al. 2021): a critic ``D`` sees
real data ``x0`` against the denoised ``x^ = (x~ + sigma^2 s(x~, t)) / alpha(t)`` (Tweedie's
formula; ``x~ + sigma^2 s`` for VE), clamped to the data range. Least-squares GAN losses
(Mao et al. 2017):

    L_D = E (D(x0) - 1)^2 + E (D(x^) + 1)^2,     L_G = E (D(x^) - 1)^2,

and the score network minimises ``L_DSM + adv_weight * L_G``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from sdekit.batching import bcast
from sdekit.errors import InputValueError
from sdekit.random import GeneratorLike, as_generator, rand, randn
from sdekit_score.sampling.processes import ForwardProcess, ScoreFn, batch_time

__all__ = [
    "HybridLoss",
    "WEIGHTINGS",
    "discriminator_loss",
    "dsm_loss",
    "generator_loss",
    "hybrid_loss",
    "sample_times",
]

WEIGHTINGS = ("sigma2", "likelihood")

Critic = Callable[[torch.Tensor], torch.Tensor]


def sample_times(
    process: ForwardProcess,
    batch: int,
    *,
    generator: GeneratorLike = None,
    levels: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Training times of shape ``(batch,)``: uniform on ``[eps, T]`` in the time of the
    process's :meth:`~ForwardProcess.sampling_view`, where the samplers step, or uniform over
    ``sigma_to_t(levels)``.

    The view is the process itself but for :class:`EDMProcess`, whose time is the noise level:
    there the levels are log-uniform (as VE's), where uniform ``σ`` on ``[0.002, 80]`` put 1.3%
    of the draws below ``σ = 1``. ``levels`` is a 1-D tensor of noise levels ``sigma(t)`` of
    ``process``.
    """
    gen = as_generator(generator, device)
    u = rand((batch,), gen, torch.get_default_dtype(), torch.device(device))
    if levels is None:
        view = process.sampling_view()
        t = view.eps + (view.T - view.eps) * u
        return t if view is process else process.noise_level_to_t(view.noise_level(t)).to(u)
    levels = torch.as_tensor(levels, device=device)
    if levels.ndim != 1 or levels.numel() == 0:
        raise InputValueError(
            f"levels must be a non-empty 1-D tensor of sigmas, got shape {tuple(levels.shape)}"
        )
    times = process.sigma_to_t(levels)
    if not torch.isfinite(times).all():
        raise InputValueError(
            f"some levels are not noise levels sigma(t) of the {process.kind} process "
            f"(sigma_to_t gave non-finite times): got levels {levels.tolist()}"
        )
    index = (u * levels.numel()).long().clamp_max(levels.numel() - 1)
    return times.to(u.dtype)[index]


class _Noisy(NamedTuple):
    """``x = alpha x0 + sigma noise`` at times ``t``; ``alpha``, ``sigma`` broadcast over ``x0``."""

    t: torch.Tensor
    x: torch.Tensor
    noise: torch.Tensor
    alpha: torch.Tensor
    sigma: torch.Tensor
    drawn: bool = False  # t drawn uniformly in the sampling view's time (see _uniform_time_weight)


def _perturb(
    process: ForwardProcess,
    x0: torch.Tensor,
    t: torch.Tensor | None,
    generator: GeneratorLike,
    levels: torch.Tensor | None,
) -> _Noisy:
    if x0.ndim < 2:
        raise InputValueError(f"x0 must have shape (batch, *event), got {tuple(x0.shape)}")
    gen = as_generator(generator, x0.device)
    drawn = t is None and levels is None
    if t is None:
        t = sample_times(process, x0.shape[0], generator=gen, levels=levels, device=x0.device)
    t = batch_time(t, x0)
    noise = randn(x0.shape, gen, x0.dtype, x0.device)
    alpha = bcast(process.alpha(t), x0)
    sigma = bcast(process.sigma(t), x0)
    return _Noisy(t, alpha * x0 + sigma * noise, noise, alpha, sigma, drawn)


def _uniform_time_weight(process: ForwardProcess, t: torch.Tensor) -> torch.Tensor | float:
    """``dt/du · (U − U_eps)/(T − eps)`` for times ``t`` drawn uniformly in the sampling view's
    time ``u`` (EDM's log σ): the weight that makes their average the uniform average over the
    process's own time, which the likelihood bound integrates. 1 where the view is the process."""
    view = process.sampling_view()
    if view is process:
        return 1.0
    u = view.noise_level_to_t(process.noise_level(t.detach()))
    # forward mode, elementwise: it runs under torch.inference_mode() too (autograd.grad does not)
    _, dt_du = torch.func.jvp(
        lambda v: process.noise_level_to_t(view.noise_level(v)), (u,), (torch.ones_like(u),)
    )
    return dt_du.to(t.dtype) * ((view.T - view.eps) / (process.T - process.eps))


def _dsm(
    score: torch.Tensor, noisy: _Noisy, process: ForwardProcess, weighting: str
) -> torch.Tensor:
    """``mean_batch 1/2 (lambda / sigma^2) || sigma s + z ||^2`` with the weighting's ``lambda``."""
    residual = (noisy.sigma * score + noisy.noise).flatten(1)
    per_sample = 0.5 * residual.pow(2).sum(dim=1)
    if weighting == "likelihood":
        weight = (process.diffusion(noisy.t) / noisy.sigma.flatten()) ** 2
        if noisy.drawn:
            weight = weight * _uniform_time_weight(process, noisy.t)
        per_sample = per_sample * weight
    elif weighting != "sigma2":
        raise InputValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    return per_sample.mean()


def dsm_loss(
    score_fn: ScoreFn,
    process: ForwardProcess,
    x0: torch.Tensor,
    *,
    generator: GeneratorLike = None,
    weighting: str = "sigma2",
    t: torch.Tensor | None = None,
    levels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Denoising score matching loss of ``score_fn`` on clean data ``x0`` ``(batch, *event)``.

    Args:
        score_fn: ``score_fn(x, t) -> score`` with ``t`` of shape ``(batch,)``.
        process: the forward process giving ``alpha(t)``, ``sigma(t)`` and ``g(t)``.
        x0: a batch of clean data.
        generator: seed or ``torch.Generator`` for the times and the noise.
        weighting: ``"sigma2"`` (``lambda = sigma^2``) or ``"likelihood"`` (``lambda = g^2``).
        t: times to use, shape ``(batch,)`` or ``()``, instead of drawing them.
        levels: discrete noise levels ``sigma_i`` to draw the times from (see the module docstring).

    Returns the scalar loss (see the module docstring for the formula).
    """
    noisy = _perturb(process, x0, t, generator, levels)
    return _dsm(score_fn(noisy.x, noisy.t), noisy, process, weighting)


def discriminator_loss(
    discriminator: Critic, real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    """Least-squares critic loss ``E (D(real) - 1)^2 + E (D(fake) + 1)^2``."""
    return (discriminator(real) - 1).pow(2).mean() + (discriminator(fake) + 1).pow(2).mean()


def generator_loss(discriminator: Critic, fake: torch.Tensor) -> torch.Tensor:
    """Least-squares generator loss ``E (D(fake) - 1)^2``."""
    return (discriminator(fake) - 1).pow(2).mean()


class HybridLoss(NamedTuple):
    """The terms of the hybrid objective, from one score evaluation.

    ``score`` (= ``dsm + adv_weight * generator``) is minimised over the score network, and
    ``discriminator`` over the critic. ``discriminator`` sees the denoised data detached, so its
    gradient reaches only the critic; ``score``'s gradient also reaches the critic's parameters
    (through ``generator``), so step the score network with
    ``loss.score.backward(inputs=score_parameters)``.
    """

    score: torch.Tensor
    discriminator: torch.Tensor
    dsm: torch.Tensor
    generator: torch.Tensor


def hybrid_loss(
    score_fn: ScoreFn,
    process: ForwardProcess,
    x0: torch.Tensor,
    discriminator: Critic,
    *,
    adv_weight: float = 1.0,
    generator: GeneratorLike = None,
    weighting: str = "sigma2",
    t: torch.Tensor | None = None,
    levels: torch.Tensor | None = None,
) -> HybridLoss:
    """DSM plus a least-squares adversarial loss on the denoised data (see the module docstring).

    The arguments are those of :func:`dsm_loss`, plus the critic ``discriminator(x) -> (batch,)``
    and the weight ``adv_weight`` of the generator loss. The denoised data are clamped to
    ``process.data_range``.
    """
    noisy = _perturb(process, x0, t, generator, levels)
    score = score_fn(noisy.x, noisy.t)
    dsm = _dsm(score, noisy, process, weighting)
    denoised = ((noisy.x + noisy.sigma**2 * score) / noisy.alpha).clamp(*process.data_range)
    adversarial = generator_loss(discriminator, denoised)
    return HybridLoss(
        score=dsm + adv_weight * adversarial,
        discriminator=discriminator_loss(discriminator, x0, denoised.detach()),
        dsm=dsm,
        generator=adversarial,
    )
