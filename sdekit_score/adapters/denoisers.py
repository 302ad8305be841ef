"""k-diffusion / EDM denoisers ``D(x, sigma)`` as scores on the EDM process."""

from __future__ import annotations

from collections.abc import Callable

import torch

from sdekit.batching import bcast
from sdekit.errors import InputTypeError, InputValueError
from sdekit_score.sampling.precision import in_network_dtype
from sdekit_score.sampling.processes import EDMProcess, batch_time

__all__ = ["DenoiserScore", "from_denoiser"]


def from_denoiser(
    denoiser: Callable,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    *,
    extra_args: dict | None = None,
) -> tuple[DenoiserScore, EDMProcess]:
    """The score of a denoiser ``D(x, sigma) ≈ E[x0 | x]`` on :class:`EDMProcess`.

    Args:
        denoiser: called as ``denoiser(x, sigma, **extra_args)`` with ``sigma`` of shape
            ``(batch,)``, as k-diffusion's ``Denoiser`` wrappers and EDM's preconditioned
            networks are; returns the denoised ``x``.
        sigma_min, sigma_max: the noise levels the denoiser was trained on; default: the
            denoiser's ``sigma_min`` / ``sigma_max`` attributes (k-diffusion's wrappers have them).
        extra_args: keyword arguments for every call (k-diffusion's ``extra_args``, e.g. a
            class label).

    Returns:
        ``(score_fn, process)``: ``process = EDMProcess(sigma_min, sigma_max)``, where time is the
        noise level, and ``score(x, sigma) = (D(x, sigma) - x) / sigma²`` (Tweedie).
    """
    sigma_min = _level(denoiser, "sigma_min", sigma_min)
    sigma_max = _level(denoiser, "sigma_max", sigma_max)
    return DenoiserScore(denoiser, extra_args), EDMProcess(sigma_min=sigma_min, sigma_max=sigma_max)


class DenoiserScore(torch.nn.Module):
    """``score(x, sigma) = (denoiser(x, sigma, **extra_args) - x) / sigma²``."""

    wraps = "denoiser"  # the network, for the samplers (see sampling.samplers._layers)

    def __init__(self, denoiser: Callable, extra_args: dict | None = None):
        super().__init__()
        if not callable(denoiser):
            raise InputTypeError(f"denoiser must be callable as D(x, sigma), got {denoiser!r}")
        self.denoiser, self.extra_args = denoiser, dict(extra_args or {})

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = batch_time(sigma, x)
        # A float16/bfloat16 network runs in its own dtype; the state and σ stay in x's.
        denoised = self.denoiser(in_network_dtype(self.denoiser, x), sigma, **self.extra_args)
        if not isinstance(denoised, torch.Tensor) or denoised.shape != x.shape:
            raise InputValueError(
                f"the denoiser returned {getattr(denoised, 'shape', type(denoised).__name__)} "
                f"for x of shape {tuple(x.shape)}: it must return the denoised x"
            )
        return (denoised.to(x.dtype) - x) / bcast(sigma, x) ** 2

    @property
    def network_call(self) -> str:
        """How the denoiser is called, for error messages."""
        extra = f", **{sorted(self.extra_args)}" if self.extra_args else ""
        return f"denoiser(x, sigma{extra}) with sigma of shape (batch,)"


def _level(denoiser, name: str, value: float | None) -> float:
    if value is None:
        value = getattr(denoiser, name, None)
        if value is None:
            raise InputValueError(
                f"from_denoiser: pass {name}= (the denoiser has no {name} attribute to read)"
            )
    return float(value)
