"""Time grids for fixed-step samplers, from ``T`` down to ``eps``.

A schedule says where the steps of a fixed-step sampler go. Three are provided, each uniform in a
different quantity and mapped back to the process's time:

- ``"linear"``: uniform in ``t`` (Song et al. 2021; the default of ``em`` and ``pc``).
- ``"karras"``: uniform in ``σ̃^(1/ρ)`` with ``ρ = 7``, where ``σ̃ = σ(t)/α(t)`` is the noise level
  (Karras et al. 2022, eq. 5): steps crowd towards small noise, where the data's detail forms.
- ``"logsnr"``: uniform in ``λ = log(α/σ)``, the half log signal-to-noise ratio (Lu et al. 2022):
  the variable exponential integrators step in, so each step has the same ``h = Δλ``.
- ``"logsnr_power"``: ``λ = λ(T) + (λ(eps) − λ(T))·u^γ`` for ``u`` uniform on ``[0, 1]``, with
  ``γ = LOGSNR_POWER = 0.4``: log-SNR steps that shrink towards small noise (of ``N`` steps the
  first is ``N^(1−γ)/γ`` times the last, 26 at 50 steps). Measured against the converged
  probability flow from the same prior draws (``bench/flow_paired.py``, ``docs/benchmarks.md``):
  on the exact-score Gaussian mixtures, whose modes separate at small noise, it cuts the error
  of ``dpmpp_2m`` and ``dpmpp_3m`` 1.5–20 fold at 25–100 NFE (2-D and 3072-D, VP and VE; γ = 0.3
  and 0.5 were worse in 3072-D); on a single Gaussian and on the digits model, where the uniform
  grid is already close to the flow, its large first steps make the error larger (digits,
  ``dpmpp_3m`` at 25 NFE: FD 5.8 worse than the converged flow, the uniform grid 0.3). Hence an
  option, not the default.

The grid's ends are exactly ``T`` and ``eps``; it decreases strictly. It is computed in float64
and returned in the dtype asked for (float64 unless told). With a grid, a solve steps through ``sdekit.StepTo(grid)``.

References:
    Karras, Aittala, Aila, Laine. "Elucidating the Design Space of Diffusion-Based Generative
    Models", NeurIPS 2022.
    Lu, Zhou, Bao, Chen, Li, Zhu. "DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic
    Model Sampling in Around 10 Steps", NeurIPS 2022.
"""

from __future__ import annotations

import torch

from sdekit.checks import one_of, positive_int
from sdekit.errors import InputTypeError
from sdekit_score.sampling.processes import ForwardProcess

SCHEDULES = ("linear", "karras", "logsnr", "logsnr_power")
KARRAS_RHO = 7.0
LOGSNR_POWER = 0.4

__all__ = ["KARRAS_RHO", "LOGSNR_POWER", "SCHEDULES", "time_grid"]


def time_grid(
    process: ForwardProcess,
    steps: int,
    schedule: str = "linear",
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``steps + 1`` times from ``process.T`` down to ``process.eps`` on ``schedule``.

    Args:
        process: the forward process (its ``alpha``, ``sigma`` and ``noise_level_to_t``).
        steps: the number of steps (positive).
        schedule: ``"linear"``, ``"karras"``, ``"logsnr"`` or ``"logsnr_power"`` (see the
            module docstring).
        device, dtype: of the returned grid (default CPU, float64; float32 on MPS, which has
            no float64).
    """
    if not isinstance(process, ForwardProcess):
        raise InputTypeError(
            f"process must be a sdekit_score process (VPSDE, VESDE, ...), got {type(process).__name__}"
        )
    steps = positive_int(steps, "steps")
    one_of("schedule", schedule, SCHEDULES)
    T, eps = process.T, process.eps
    if schedule == "linear":
        # The floats of solve(dt=...): T - k·dt, so that the default grid is today's exactly.
        dt = (T - eps) / steps
        times = torch.tensor([T - k * dt for k in range(steps)] + [eps], dtype=torch.float64)
    else:
        ends = torch.tensor([T, eps], dtype=torch.float64)
        level_max, level_min = process.noise_level(ends).tolist()
        u = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
        if schedule == "karras":
            top, bottom = level_max ** (1 / KARRAS_RHO), level_min ** (1 / KARRAS_RHO)
            levels = (top + u * (bottom - top)) ** KARRAS_RHO
        else:  # lambda = -log(noise level), uniform in u or in u^LOGSNR_POWER
            if schedule == "logsnr_power":
                u = u**LOGSNR_POWER
            levels = level_max ** (1 - u) * level_min**u
        times = process.noise_level_to_t(levels).to(torch.float64)
        times[0], times[-1] = T, eps
    if dtype is None:
        mps = device is not None and torch.device(device).type == "mps"
        dtype = torch.float32 if mps else torch.float64
    return times.to(device=device, dtype=dtype)
