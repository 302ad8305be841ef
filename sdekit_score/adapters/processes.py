"""The continuous VP process of a discrete-time (DDPM) noise schedule, exact at its timesteps."""

from __future__ import annotations

from typing import ClassVar

import torch

from sdekit.errors import InputValueError
from sdekit_score.sampling.processes import ForwardProcess

__all__ = ["DiscreteVPProcess"]


class DiscreteVPProcess(ForwardProcess):
    r"""A variance-preserving process through a discrete schedule ``alphas_cumprod``.

    A DDPM-style model is trained at timesteps ``n = 0, ..., N-1`` on
    ``x_n = sqrt(abar_n) x0 + sqrt(1 - abar_n) z`` (``abar = alphas_cumprod``, as diffusers'
    schedulers hold it; any β schedule: linear, scaled-linear, squaredcos_cap_v2, ...).

    **Time.** Timestep ``n`` is the continuous time

    .. math::
        t_n = \frac{n + 1}{N}, \qquad n(t) = N t - 1,

    so ``t`` runs over ``[0, 1]``: ``t = 0`` is clean data (``abar_{-1} = 1``, DDIM's
    ``final_alpha_cumprod``) and ``t = 1`` the last training timestep ``N - 1``.

    **Schedule between timesteps.** ``log abar(t)`` is linear in ``t`` on each
    ``[k/N, (k+1)/N]``, i.e. the rate :math:`\beta(t) = -\frac{d}{dt}\log\bar\alpha(t)` is
    constant there, :math:`\beta(t) = -N \log(1 - \beta_n)` on ``(n/N, (n+1)/N]``. That makes
    the process the VP SDE ``dx = -β(t)/2 x dt + sqrt(β(t)) dW`` whose transition over each such
    interval is DDPM's forward step ``x_n = sqrt(1 - β_n) x_{n-1} + sqrt(β_n) z`` exactly; and
    ``alpha(t_n)² = abar_n``, ``sigma(t_n)² = 1 - abar_n`` at every timestep (to the rounding of
    ``t_n``). The model is evaluated at the fractional timestep ``n(t)`` between them.

    A last ``abar`` of exactly 0 (a zero terminal SNR, ``rescale_betas_zero_snr=True``; or the
    ``2**-24`` diffusers' Euler scheduler clips it to, where that is not below the value before)
    is taken as ``min(2**-24, abar_{N-2}/2)``, so that ``sigma/alpha`` stays finite and the
    schedule decreases; the prior ``N(0, I)`` is then exact to that value.

    Defaults: ``eps = 1/N`` (timestep 0, the smallest the model saw), ``T = 1``, prior
    ``N(0, I)`` (``abar_{N-1}`` is about 4e-5 for DDPM's linear schedule), data in ``[-1, 1]``.
    ``kind = "vp"``: :meth:`beta` is the rate above, which the predictor–corrector sampler uses.
    Computations run in float64 (float32 on MPS) and return ``t``'s dtype.
    """

    kind: ClassVar[str] = "vp"

    def __init__(
        self,
        alphas_cumprod,
        *,
        eps: float | None = None,
        data_range: tuple[float, float] = (-1.0, 1.0),
    ):
        abar = torch.as_tensor(alphas_cumprod).detach().to("cpu", torch.float64).flatten()
        zero_snr = len(abar) >= 2 and (abar[-1] == 0 or (abar[-1] == 2**-24 >= abar[-2] > 0))
        if zero_snr and abar[-2] > 0:
            # A terminal SNR of 0 (rescale_betas_zero_snr; diffusers' Euler scheduler holds it
            # as 2**-24): sigma/alpha must stay finite and the schedule decrease, so the last
            # value becomes 2**-24 or half the one before.
            abar = torch.cat(
                [abar[:-1], torch.minimum(abar[-2] / 2, abar.new_tensor(2**-24))[None]]
            )
        if len(abar) < 2 or not bool(((abar > 0) & (abar <= 1)).all()):
            raise InputValueError(
                "alphas_cumprod must hold at least two values in (0, 1] (a zero only as the "
                "last one, a terminal SNR of 0, which is taken as 2**-24)"
            )
        if not bool((abar[1:] < abar[:-1]).all()):
            raise InputValueError("alphas_cumprod must decrease strictly (every beta_n > 0)")
        self.num_timesteps = len(abar)
        # log abar at the knots t_k = k/N, k = 0..N; knot 0 is clean data.
        self._log_abar = torch.cat([abar.new_zeros(1), abar.log()])
        self._knots_on: dict[torch.device, torch.Tensor] = {}  # per device: one copy, not per call
        self.eps = 1.0 / self.num_timesteps if eps is None else float(eps)
        self.data_range = tuple(data_range)
        self._check_interval()

    def __repr__(self) -> str:
        return f"DiscreteVPProcess(num_timesteps={self.num_timesteps}, eps={self.eps:g})"

    @property
    def T(self) -> float:
        return 1.0

    @property
    def prior_std(self) -> float:
        return 1.0

    # ------------------------------------------------------------------------- time

    def timestep_to_t(self, n: torch.Tensor) -> torch.Tensor:
        """``t = (n + 1) / N``: the continuous time of (possibly fractional) timestep ``n``."""
        n = _as_float(n)
        return (n + 1) / self.num_timesteps

    def t_to_timestep(self, t: torch.Tensor) -> torch.Tensor:
        """``n = N t - 1``: the (fractional) timestep the model is evaluated at for time ``t``."""
        t = _as_float(t)
        return t * self.num_timesteps - 1

    # ------------------------------------------------------------------------- the schedule

    def _knots(self, device: torch.device) -> torch.Tensor:
        knots = self._knots_on.get(device)
        if knots is None:
            dtype = torch.float32 if device.type == "mps" else torch.float64
            knots = self._knots_on[device] = self._log_abar.to(device, dtype)
        return knots

    def _position(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``N t`` in ``dtype``; exactly ``k`` where ``t`` is the knot ``k/N`` in its own dtype.

        ``float32(999/1000)`` lies 1.3e-8 above the knot: without the snap it would take the
        rate of the interval above, and a step down from it would see a jump of ``g`` that the
        float32 time cannot step past.
        """
        u = t.to(dtype) * self.num_timesteps
        knot = u.round()
        return torch.where((knot / self.num_timesteps).to(t.dtype) == t, knot, u)

    def log_alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """``log abar(t)``, linear between the knots ``k/N`` (extrapolated linearly beyond 1)."""
        t = _as_float(t)
        knots = self._knots(t.device)
        u = self._position(t, knots.dtype)
        k = u.floor().clamp(0, self.num_timesteps - 1)
        w = u - k
        k = k.long()
        return ((1 - w) * knots[k] + w * knots[k + 1]).to(t.dtype)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        """The rate ``β(t) = -d log abar/dt``, ``-N log(1 - β_n)`` on ``(n/N, (n+1)/N]``."""
        t = _as_float(t)
        knots = self._knots(t.device)
        u = self._position(t, knots.dtype)
        k = (u.ceil() - 1).clamp(0, self.num_timesteps - 1).long()
        return (self.num_timesteps * (knots[k] - knots[k + 1])).to(t.dtype)

    def diffusion_jumps(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The knots ``k/N`` inside ``(eps, T)`` where the rate changes, and the jump of
        ``g = sqrt(β)`` there: ``sqrt(β_k) − sqrt(β_{k-1})`` (float64)."""
        n = self.num_timesteps
        g = (n * (self._log_abar[:-1] - self._log_abar[1:])).sqrt()  # on (k/N, (k+1)/N]
        times = torch.arange(1, n, dtype=torch.float64) / n  # knot k/N, between g[k-1] and g[k]
        jumps = g[1:] - g[:-1]
        inside = (times > self.eps) & (times < self.T) & (jumps != 0)
        return times[inside], jumps[inside]

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(0.5 * self.log_alpha_bar(t))

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(-torch.expm1(self.log_alpha_bar(t)))

    def drift_coefficient(self, t: torch.Tensor) -> torch.Tensor:
        return -0.5 * self.beta(t)

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(self.beta(t))

    def noise_level(self, t: torch.Tensor) -> torch.Tensor:
        """``sigma/alpha = sqrt(1/abar - 1)``."""
        return torch.sqrt(torch.expm1(-self.log_alpha_bar(t)))

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """The time with ``1 - abar(t) = sigma²``: the inverse of the piecewise-linear ``log abar``."""
        sigma = _as_float(sigma)
        work = sigma.to(self._knots(sigma.device).dtype)
        return self._log_alpha_bar_to_t(torch.log1p(-(work**2))).to(sigma.dtype)

    def noise_level_to_t(self, level: torch.Tensor) -> torch.Tensor:
        """The time with ``1/abar(t) - 1 = level²``."""
        level = _as_float(level)
        work = level.to(self._knots(level.device).dtype)
        return self._log_alpha_bar_to_t(-torch.log1p(work**2)).to(level.dtype)

    def _log_alpha_bar_to_t(self, log_abar: torch.Tensor) -> torch.Tensor:
        knots = self._knots(log_abar.device)
        depth = -knots  # increasing in k
        target = -log_abar
        right = torch.searchsorted(depth, target.contiguous()).clamp(1, self.num_timesteps)
        left = right - 1
        w = (target - depth[left]) / (depth[right] - depth[left])
        return (left + w) / self.num_timesteps


def _as_float(t) -> torch.Tensor:
    t = torch.as_tensor(t)
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())
