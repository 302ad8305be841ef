"""Score-function conventions: from what a network outputs to ``grad_x log p_t(x)``.

A *score function* is ``score_fn(x, t) -> score`` with ``x`` of shape ``(batch, *event)``, ``t`` of
shape ``(batch,)`` and a score shaped like ``x``. Networks are trained to output one of several
equivalent quantities; with the forward marginal ``x = alpha(t) x0 + sigma(t) z`` and the
denoising-score-matching identity ``E[z | x] = -sigma(t) grad_x log p_t(x)``:

=================  ===========================  =========================================
``output``         the network predicts         score
=================  ===========================  =========================================
``"noise"``        ``z`` (DDPM epsilon)         ``-out / sigma(t)``
``"sigma_score"``  ``sigma * score = -z``       ``out / sigma(t)``  (NCSN)
``"score"``        the score itself             ``out``
``"denoiser"``     ``x0`` (EDM ``D(x, sigma)``)  ``(alpha(t) out - x) / sigma(t)^2``
=================  ===========================  =========================================

The denoiser line is Tweedie's formula ``E[x0 | x] = (x + sigma^2 score) / alpha``; for VE and
EDM (``alpha = 1``) it is the familiar ``(D - x) / sigma^2``.

References:
    Ho, Jain, Abbeel. "Denoising Diffusion Probabilistic Models", NeurIPS 2020 (noise prediction).
    Song, Ermon. "Generative Modeling by Estimating Gradients of the Data Distribution", NeurIPS
    2019 (sigma-scaled score). Karras et al. "Elucidating the Design Space of Diffusion-Based
    Generative Models", NeurIPS 2022 (denoiser, log-sigma conditioning).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sdekit.batching import bcast
from sdekit.checks import one_of
from sdekit.errors import InputTypeError, InputValueError
from sdekit_score.sampling.precision import in_network_dtype
from sdekit_score.sampling.processes import ForwardProcess, batch_time

__all__ = ["ScoreModel", "check_score_output"]

Net = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _from_noise(out, x, t, process: ForwardProcess) -> torch.Tensor:
    return -out / bcast(process.sigma(t), x)


def _from_sigma_score(out, x, t, process: ForwardProcess) -> torch.Tensor:
    return out / bcast(process.sigma(t), x)


def _from_score(out, x, t, process: ForwardProcess) -> torch.Tensor:
    return out


def _from_denoiser(out, x, t, process: ForwardProcess) -> torch.Tensor:
    alpha = bcast(process.alpha(t), x)
    return (alpha * out - x) / bcast(process.sigma(t), x) ** 2


_OUTPUTS = {
    "noise": _from_noise,
    "sigma_score": _from_sigma_score,
    "score": _from_score,
    "denoiser": _from_denoiser,
}

_CONDITIONINGS = {
    "t": lambda t, process: t,
    "999t": lambda t, process: 999.0 * t,
    "sigma": lambda t, process: process.noise_level(t),
    "log_sigma": lambda t, process: torch.log(process.noise_level(t)),
}


class ScoreModel(torch.nn.Module):
    """Wrap a network ``net(x, c)`` into a score function ``model(x, t) -> grad_x log p_t(x)``.

    Args:
        net: a callable (usually a ``torch.nn.Module``) taking ``x`` of shape ``(batch, *event)``
            and a conditioning ``c`` of shape ``(batch,)``, returning a tensor shaped like ``x``.
            It sees ``x`` as given (no input scaling).
        process: the forward process the network was trained for.
        output: what the network predicts: ``"noise"``, ``"sigma_score"``, ``"score"`` or
            ``"denoiser"`` (see the module docstring for the conversions).
        conditioning: what ``c`` is: ``"t"``, ``"999t"`` (DDPM-style discrete-time labels),
            ``"sigma"`` (the noise level ``sigma(t) / alpha(t)``, i.e. the marginal std for VE and
            EDM) or ``"log_sigma"`` (its logarithm).

    ``t`` may also be 0-d, in which case it is expanded to the batch.
    """

    wraps = "net"  # the network, for the samplers (see sampling.samplers._layers)

    def __init__(
        self,
        net: Net,
        process: ForwardProcess,
        output: str = "noise",
        conditioning: str = "t",
    ) -> None:
        super().__init__()
        self._convert = _OUTPUTS[one_of("output", output, _OUTPUTS)]
        self._condition = _CONDITIONINGS[one_of("conditioning", conditioning, _CONDITIONINGS)]
        self.net = net
        self.process = process
        self.output = output
        self.conditioning = conditioning

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = batch_time(t, x)
        out = self.net(in_network_dtype(self.net, x), self._condition(t, self.process))
        if not isinstance(out, torch.Tensor):
            raise InputTypeError(
                f"net returned {type(out).__name__}, not a tensor: ScoreModel needs net(x, c) to "
                f"return a tensor shaped like x (wrap it, e.g. lambda x, c: net(x, c)[0]; for a "
                f"diffusers model use sdekit_score.adapters.from_diffusers(model, scheduler))"
            )
        if out.shape != x.shape:
            raise InputValueError(
                f"net returned shape {tuple(out.shape)} for x of shape {tuple(x.shape)}: "
                f"with output={self.output!r} it must return one value per element of x"
            )
        return self._convert(out.to(x.dtype), x, t, self.process)

    @property
    def network_call(self) -> str:
        """How the network is called, for error messages."""
        return f"net(x, c) with c of shape (batch,), a float: {self.conditioning}"

    def extra_repr(self) -> str:
        return f"process={self.process}, output={self.output!r}, conditioning={self.conditioning!r}"


def check_score_output(
    score: torch.Tensor, x: torch.Tensor, t: torch.Tensor | None = None
) -> torch.Tensor:
    """Raise a clear error unless ``score`` is a finite tensor shaped like ``x``, of its dtype;
    return it.

    ``t`` (shape ``(batch,)`` or ``()``), when given, is quoted in the message to locate the
    failure. The finiteness check synchronises with the device.
    """
    if not isinstance(score, torch.Tensor):
        hint = (
            " (a diffusers model: sdekit_score.adapters.from_diffusers(model, scheduler) "
            "gives its score)"
            if hasattr(score, "sample")
            else ""
        )
        raise InputTypeError(
            f"the score function returned {type(score).__name__}; it must return a tensor "
            f"shaped like x, {tuple(x.shape)}{hint}"
        )
    if score.shape != x.shape:
        raise InputValueError(
            f"the score function returned shape {tuple(score.shape)} for x of shape "
            f"{tuple(x.shape)}: it must return one score per element of x"
        )
    if score.dtype != x.dtype:
        raise InputValueError(
            f"the score function returned {score.dtype} for x of dtype {x.dtype}: return x's "
            f"dtype (out.to(x.dtype)), or sample in the network's dtype (sample(..., dtype=...))"
        )
    bad = ~torch.isfinite(score)
    if bad.any():
        bad_samples = bad.reshape(bad.shape[0], -1).any(dim=1).nonzero().flatten()
        where = (
            f"in {bad_samples.numel()} of {x.shape[0]} samples (first: {bad_samples[:5].tolist()})"
        )
        if t is not None:
            times = torch.as_tensor(t).expand(x.shape[0])[bad_samples]
            where += f", at t in [{times.min().item():.6g}, {times.max().item():.6g}]"
        raise InputValueError(
            f"the score contains {int(bad.sum())} non-finite values (NaN/Inf) {where}; check the "
            "network and the times or noise levels it is evaluated at"
        )
    return score
