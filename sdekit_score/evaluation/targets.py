"""Analytic targets: data distributions whose perturbed densities and scores are exact.

A Gaussian mixture with diagonal covariances stays one under every forward process of
:mod:`sdekit_score.sampling.processes`: if ``x0 ~ sum_k w_k N(m_k, S_k)`` then

    x_t = alpha(t) x0 + sigma(t) z  ~  sum_k w_k N(alpha(t) m_k, alpha(t)^2 S_k + sigma(t)^2 I),

so ``log p_t`` and its score ``grad_x log p_t(x) = sum_k r_k(x) (alpha m_k - x) / v_k`` (with
responsibilities ``r_k = softmax_k log(w_k N(x; alpha m_k, v_k))``) are available in closed form.
Samplers can then be measured against the exact score, without any training.
"""

from __future__ import annotations

import math

import torch

from sdekit.errors import InputTypeError, InputValueError
from sdekit.random import GeneratorLike, as_generator, rand, randn
from sdekit_score.sampling.processes import ForwardProcess, ScoreFn

__all__ = ["GaussianMixture"]


class GaussianMixture:
    """A mixture of ``K`` Gaussians in ``D`` dimensions with diagonal covariances.

    Args:
        means: component means, shape ``(K, D)``.
        stds: component standard deviations, anything that broadcasts to ``(K, D)``: a scalar,
            ``(K, 1)`` (isotropic per component), ``(D,)`` or ``(K, D)``. Must be positive.
        weights: mixture weights, shape ``(K,)``, non-negative (normalised here); ``None`` for
            equal weights.

    Points ``x`` have shape ``(batch, *event)`` with ``prod(event) = D`` (e.g. images flattened
    to ``D``); results follow ``x``'s device and dtype. Times ``t`` have shape ``(batch,)`` or
    ``()``.

    When every component is isotropic (``stds`` broadcasts from ``(K, 1)``), densities and scores
    are computed with matrix products, without a ``(batch, K, D)`` intermediate.
    """

    def __init__(
        self,
        means: torch.Tensor,
        stds: torch.Tensor | float,
        weights: torch.Tensor | None = None,
    ) -> None:
        means = torch.as_tensor(means, dtype=torch.float64)
        if means.ndim != 2:
            raise InputValueError(f"means must have shape (K, D), got {tuple(means.shape)}")
        k, d = means.shape
        stds = torch.as_tensor(stds, dtype=torch.float64, device=means.device)
        try:
            stds_kd = torch.broadcast_to(stds, (k, d))
        except RuntimeError:
            raise InputValueError(
                f"stds of shape {tuple(stds.shape)} do not broadcast to (K, D) = {(k, d)}: pass a "
                "scalar, (K, 1), (D,) or (K, D)"
            ) from None
        if not bool((stds_kd > 0).all()):
            raise InputValueError("stds must be positive")
        if weights is None:
            weights = torch.ones(k, dtype=torch.float64, device=means.device)
        weights = torch.as_tensor(weights, dtype=torch.float64, device=means.device)
        if weights.shape != (k,):
            raise InputValueError(
                f"weights must have shape (K,) = ({k},), got {tuple(weights.shape)}"
            )
        if bool((weights < 0).any()) or not float(weights.sum()) > 0:
            raise InputValueError("weights must be non-negative with a positive sum")
        self.means = means
        self.weights = weights / weights.sum()
        self.isotropic = stds.ndim == 0 or stds.shape[-1] == 1
        # (K, 1) when isotropic, else (K, D)
        self.variances = (stds_kd[:, :1] if self.isotropic else stds_kd).square().contiguous()
        self._cache: dict[tuple[torch.dtype, torch.device], tuple[torch.Tensor, ...]] = {}

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @classmethod
    def ring2d(
        cls, k: int = 8, radius: float = 0.8, std: float = 0.05, weights=None
    ) -> GaussianMixture:
        """``k`` equal Gaussians with std ``std`` evenly spaced on a circle of ``radius``.

        The defaults keep the data within ``[-1, 1]^2`` (mode centres at 0.8, 3 std at 0.95).
        """
        angles = 2.0 * math.pi * torch.arange(k, dtype=torch.float64) / k
        means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
        return cls(means, std, weights)

    @classmethod
    def random(
        cls,
        dim: int,
        n_components: int = 10,
        seed: int = 0,
        data_range: tuple[float, float] = (-1.0, 1.0),
    ) -> GaussianMixture:
        """A random isotropic mixture for high-dimensional tests (e.g. ``dim`` 256 or 3072).

        With ``c`` the centre and ``w`` the half-width of ``data_range``: means uniform in
        ``c +- w/2`` per coordinate, stds uniform in ``[0.05 w, 0.15 w]`` per component, weights
        proportional to ``1 + U[0, 1)``. Two means are about ``0.4 w sqrt(dim)`` apart, so two
        components overlap with probability about ``Phi(-distance / (2 std)) < Phi(-sqrt(dim))``:
        the modes are well separated, and the data (within 3 std of a mean) stays inside the range.
        """
        gen = torch.Generator().manual_seed(seed)
        low, high = data_range
        centre, half = 0.5 * (low + high), 0.5 * (high - low)
        u = torch.rand(n_components, dim, generator=gen, dtype=torch.float64)
        means = centre + half * (u - 0.5)
        stds = half * (0.05 + 0.1 * torch.rand(n_components, 1, generator=gen, dtype=torch.float64))
        weights = 1.0 + torch.rand(n_components, generator=gen, dtype=torch.float64)
        return cls(means, stds, weights)

    def _params(self, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(means, variances, log weights) on ``like``'s dtype and device, cached."""
        key = (like.dtype, like.device)
        if key not in self._cache:
            to = {"dtype": like.dtype, "device": like.device}
            self._cache[key] = (
                self.means.to(**to),
                self.variances.to(**to),
                self.weights.log().to(**to),
            )
        return self._cache[key]

    def _flatten(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            raise InputTypeError(f"x must be a floating-point tensor, got {x.dtype}")
        if x.ndim < 2 or x[0].numel() != self.dim:
            raise InputValueError(
                f"x must have shape (batch, *event) with {self.dim} elements per sample, "
                f"got {tuple(x.shape)}"
            )
        return x.reshape(x.shape[0], self.dim)

    def _logits_and_score(
        self, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, with_score: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-component ``log(w_k N(x; alpha m_k, alpha^2 S_k + sigma^2 I))``, shape ``(n, K)``,
        and (optionally) the score of the mixture at ``x`` of shape ``(n, D)``.

        ``alpha`` and ``sigma`` are ``()`` or ``(n,)``.
        """
        means, variances, log_w = self._params(x)
        a = alpha.to(x.dtype).reshape(-1, 1)  # (n or 1, 1)
        s2 = sigma.to(x.dtype).reshape(-1, 1).square()
        log_2pi = math.log(2.0 * math.pi)
        if self.isotropic:
            var = a.square() * variances.T + s2  # (n or 1, K)
            # |x - a m|^2 expanded into matrix products: no (n, K, D) intermediate. In float32 at
            # D = 3072 and t = eps this costs up to 0.04 nats of absolute error in log p_t for VP
            # and 0.7 for VE with data in [0, 1], whose uncentred means cancel more (|x|^2 / v is
            # large); the score keeps a relative error ~1e-6 (separated modes make the
            # responsibilities one-hot). The broadcast form below was ~2.5x slower there; log
            # densities to compare are taken in float64 (bench/samplers.py does).
            sq = (
                torch.linalg.vector_norm(x, dim=-1, keepdim=True).square()
                - 2.0 * a * (x @ means.T)
                + a.square() * means.square().sum(-1)
            )
            logits = log_w - 0.5 * (sq / var + self.dim * (var.log() + log_2pi))
            if not with_score:
                return logits, None
            r_over_var = torch.softmax(logits, dim=-1) / var  # (n, K)
            # sum_k r_k (a m_k - x) / v_k in one matrix product and one fused pass over x
            score = torch.addcmul(
                (a * r_over_var) @ means, r_over_var.sum(-1, keepdim=True), x, value=-1.0
            )
            return logits, score
        var = a.unsqueeze(-1).square() * variances + s2.unsqueeze(-1)  # (n or 1, K, D)
        diff = x.unsqueeze(1) - a.unsqueeze(-1) * means  # (n, K, D)
        logits = log_w - 0.5 * (diff.square() / var + var.log() + log_2pi).sum(-1)
        if not with_score:
            return logits, None
        r = torch.softmax(logits, dim=-1)
        return logits, -(r.unsqueeze(-1) * diff / var).sum(1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p_0(x)`` of the clean data, shape ``(batch,)``."""
        xf = self._flatten(x)
        one = torch.ones((), dtype=x.dtype, device=x.device)
        logits, _ = self._logits_and_score(xf, one, torch.zeros_like(one), with_score=False)
        return torch.logsumexp(logits, dim=-1)

    def perturbed_log_prob(
        self, x: torch.Tensor, t: torch.Tensor, process: ForwardProcess
    ) -> torch.Tensor:
        """``log p_t(x)`` under ``process``, shape ``(batch,)``."""
        xf = self._flatten(x)
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        logits, _ = self._logits_and_score(xf, process.alpha(t), process.sigma(t), with_score=False)
        return torch.logsumexp(logits, dim=-1)

    def score(self, process: ForwardProcess) -> ScoreFn:
        """The exact score function ``score_fn(x, t) = grad_x log p_t(x)`` under ``process``: an
        ``nn.Module`` (without parameters) that treats samples independently, so the adaptive
        samplers evaluate it on the samples not yet finished only."""
        return _MixtureScore(self, process)

    def sample(
        self,
        n: int,
        generator: GeneratorLike = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """``n`` draws of clean data, shape ``(n, D)``.

        ``generator`` is a seed, a ``torch.Generator`` or one generator per sample. ``device``
        defaults to the mixture's, ``dtype`` to torch's default.
        """
        device = torch.device(device) if device is not None else self.means.device
        dtype = dtype if dtype is not None else torch.get_default_dtype()
        gen = as_generator(generator, device)
        u = rand((n,), gen, torch.float64, device)
        cumulative = self.weights.cumsum(0).to(device)
        k = torch.searchsorted(cumulative, u, right=True).clamp_(max=self.n_components - 1)
        z = randn((n, self.dim), gen, torch.float64, device)
        std = self.variances.to(device).sqrt()[k]
        return (self.means.to(device)[k] + std * z).to(dtype)

    def sample_perturbed(
        self,
        n: int,
        t: torch.Tensor,
        process: ForwardProcess,
        generator: GeneratorLike = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """``n`` exact draws of ``x_t ~ p_t``, shape ``(n, D)``; ``t`` is ``()`` or ``(n,)``."""
        device = torch.device(device) if device is not None else self.means.device
        gen = as_generator(generator, device)
        x0 = self.sample(n, gen, device=device, dtype=dtype)
        noise = randn(x0.shape, gen, x0.dtype, device)
        t = torch.as_tensor(t, dtype=x0.dtype, device=device)
        return process.perturb(x0, t, noise)

    def __repr__(self) -> str:
        return (
            f"GaussianMixture(n_components={self.n_components}, dim={self.dim}, "
            f"isotropic={self.isotropic})"
        )


class _MixtureScore(torch.nn.Module):
    """:meth:`GaussianMixture.score`."""

    def __init__(self, mixture: GaussianMixture, process: ForwardProcess):
        super().__init__()
        self.mixture, self.process = mixture, process

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        mixture, process = self.mixture, self.process
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        _, score = mixture._logits_and_score(
            mixture._flatten(x), process.alpha(t), process.sigma(t), True
        )
        return score.reshape(x.shape)
