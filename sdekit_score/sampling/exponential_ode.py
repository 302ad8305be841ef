r"""Exponential integrators for the probability-flow ODE, in data-prediction form (DPM-Solver++).

With the marginal ``x_t = α(t) x0 + σ(t) z``, the half log-SNR ``λ = log(α/σ)`` and Tweedie's
denoiser ``D(t, x) = (x + σ² s(x, t))/α`` (``problem.denoiser``), the probability flow is
semilinear, and its solution over ``[s, t]`` (with ``h = λ_t − λ_s > 0`` when going towards data)
is exactly

.. math::
    x_t = \frac{\sigma_t}{\sigma_s} x_s + \sigma_t \int_{\lambda_s}^{\lambda_t} e^{\lambda}
          D(x_\lambda, \lambda)\, d\lambda
        = \frac{\sigma_t}{\sigma_s} x_s + \alpha_t \int_0^h e^{\tau - h} D(\lambda_s + \tau)\,d\tau.

The linear part is integrated exactly and only ``D`` is approximated, by a polynomial in ``λ``.
With ``φ₁ = e^{−h} − 1``, ``φ₂ = φ₁/h + 1`` and ``φ₃ = φ₂/h − 1/2`` the Taylor terms are
``−α_t φ₁ D``, ``α_t h φ₂ D'`` and ``−α_t h² φ₃ D''``:

- :class:`DPMSolverPP1`: ``D`` constant: ``x_t = (σ_t/σ_s) x_s − α_t φ₁ D_s``, i.e. DDIM. Order 1.
- :class:`DPMSolverPP2M`: ``D'`` from the previous step's denoised value (multistep; the first
  step is first order). Order 2, one evaluation per step.
- :class:`DPMSolverPP3M`: ``D'`` and ``D''`` from the two previous steps' denoised values. Order
  3, one evaluation per step (first order, then second, on its first two steps).
- :class:`UniPC`: the 3M predictor's family with a corrector that reuses the next step's
  evaluation (Zhao et al. 2023): order 4 from one evaluation per step.
- :class:`SinglestepDPMSolverPP`: ``D'`` (and ``D''``) from stages inside the step, with the
  next lower order as embedded estimate: a 2(1) pair (two evaluations per step) or a 3(2) pair
  (three; the pair of k-diffusion's ``dpm_adaptive``, here in data prediction), for
  :func:`sdekit.solve` with an adaptive controller, per-sample steps included.

The solvers step in the problem's own time ``t`` (a controller sees ``h`` in ``t``) and work for
any process with Gaussian marginals (VP, sub-VP, VE, EDM): ``α = 1`` needs nothing special. A
problem must carry ``process`` and ``denoiser``, as those of
:func:`~sdekit_score.sampling.processes.probability_flow` do.

References:
    Lu, Zhou, Bao, Chen, Li, Zhu. "DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic
    Model Sampling in Around 10 Steps", NeurIPS 2022 (single-step solvers, the adaptive pair).
    Lu, Zhou, Bao, Chen, Li, Zhu. "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
    Probabilistic Models", 2022 (data prediction, Algorithm 2: the 2M multistep).
    Zhao, Bai, Rao, Zhou, Lu. "UniPC: A Unified Predictor-Corrector Framework for Fast Sampling
    of Diffusion Models", NeurIPS 2023 (UniP and UniC with ``B(h) = e^h − 1``).
    Song, Meng, Ermon. "Denoising Diffusion Implicit Models", ICLR 2021.
"""

from __future__ import annotations

import torch

from sdekit.batching import bcast
from sdekit.errors import InputValueError
from sdekit.solvers import AbstractSolver

__all__ = ["DPMSolverPP1", "DPMSolverPP2M", "DPMSolverPP3M", "SinglestepDPMSolverPP", "UniPC"]


class _ExponentialODESolver(AbstractSolver):
    """Shared by the exponential integrators: the problem check and the coefficients."""

    nfe_diffusion = 0

    def check(self, problem) -> None:
        if problem.noise is not None:
            raise InputValueError(
                f"{self.name} steps the probability-flow ODE but the problem is an SDE; build it "
                f"with sdekit_score.probability_flow(process, score_fn)"
            )
        if not (hasattr(problem, "process") and hasattr(problem, "denoiser")):
            raise InputValueError(
                f"{self.name} needs a problem that carries `process` and `denoiser` (the forward "
                f"process and Tweedie's estimate of the clean sample); build it with "
                f"sdekit_score.probability_flow(process, score_fn)"
            )

    @staticmethod
    def _at(process, t, y, dtype=None):
        """``(λ, α, σ)`` at ``t``: ``λ`` in ``t``'s shape (and ``dtype``, by default ``y``'s),
        ``α`` and ``σ`` in ``y``'s dtype, broadcast to ``y``."""
        t = torch.as_tensor(t, dtype=dtype or y.dtype, device=y.device)
        alpha, sigma = process.alpha(t), process.sigma(t)
        lam = torch.log(alpha) - torch.log(sigma)
        return lam, bcast(alpha.to(y.dtype), y), bcast(sigma.to(y.dtype), y)

    @staticmethod
    def _time_at(process, lam: torch.Tensor) -> torch.Tensor:
        """The time whose half log-SNR is ``lam`` (noise level ``e^{-λ}``)."""
        return process.noise_level_to_t(torch.exp(-lam)).to(lam.dtype)


class DPMSolverPP1(_ExponentialODESolver):
    r"""First-order exponential integrator, ``x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) D(s, x_s)``.

    DDIM's deterministic update (Song, Meng, Ermon 2021), DPM-Solver++'s first order. One
    evaluation per step, no error estimate.
    """

    order = 1

    def step(self, problem, t, y, h, inc, state):
        process = problem.process
        lam_s, _, sigma_s = self._at(process, t, y)
        lam_t, alpha_t, sigma_t = self._at(process, t + h, y)
        phi_1 = bcast(torch.expm1(lam_s - lam_t), y)
        return sigma_t / sigma_s * y - alpha_t * phi_1 * problem.denoiser(t, y), None, state


class DPMSolverPP2M(_ExponentialODESolver):
    r"""DPM-Solver++(2M): the second-order multistep exponential integrator (Lu et al. 2022b).

    With the previous step's denoised value ``D_prev`` and step ``h_prev`` (both in ``λ``),
    ``D_s`` is extrapolated linearly, ``D = D_s + (D_s − D_prev) h / (2 h_prev)``, and stepped as in
    :class:`DPMSolverPP1`. The state carries ``(D_prev, h_prev)``; ``h_prev = 0`` (the first
    step, or after a restart) gives the first-order step. One evaluation per step.
    """

    order = 2

    def init(self, problem, t0, y0):
        return torch.zeros_like(y0), torch.zeros_like(
            torch.as_tensor(t0, dtype=y0.dtype, device=y0.device)
        )

    def step(self, problem, t, y, h, inc, state):
        process = problem.process
        denoised_prev, h_prev = state
        lam_s, _, sigma_s = self._at(process, t, y)
        lam_t, alpha_t, sigma_t = self._at(process, t + h, y)
        h_lam = lam_t - lam_s
        half_ratio = torch.where(h_prev > 0, h_lam / (2 * h_prev.clamp(min=1e-30)), 0.0)
        denoised = problem.denoiser(t, y)
        extrapolated = denoised + bcast(half_ratio, y) * (denoised - denoised_prev)
        phi_1 = bcast(torch.expm1(-h_lam), y)
        y_next = sigma_t / sigma_s * y - alpha_t * phi_1 * extrapolated
        return y_next, None, (denoised, h_lam)


class DPMSolverPP3M(_ExponentialODESolver):
    r"""DPM-Solver++(3M): the third-order multistep exponential integrator.

    With the denoised values ``D_1``, ``D_2`` of the two previous steps, ``λ``-steps ``h_1``,
    ``h_2`` before this one (``r_i = h_i/h``), divided differences
    ``δ₀ = (D_s − D_1)/r_1`` and ``δ₁ = (D_1 − D_2)/r_2`` give ``hD' ≈ δ₀ + (δ₀ − δ₁) r_1/(r_1 + r_2)``
    and ``h²D'' ≈ 2(δ₀ − δ₁)/(r_1 + r_2)``, stepped with the Taylor terms of the module docstring:

    .. math::
        x_t = \frac{\sigma_t}{\sigma_s} x_s - \alpha_t φ_1 D_s + \alpha_t φ_2\, hD'
              - \alpha_t φ_3\, h^2 D''.

    The first step is first order, the second uses ``hD' ≈ δ₀`` (second order). The state carries
    ``(D_1, D_2, h_1, h_2)``, zero steps meaning no history. One evaluation per step.
    """

    order = 3

    def init(self, problem, t0, y0):
        zero = torch.zeros_like(torch.as_tensor(t0, dtype=y0.dtype, device=y0.device))
        return torch.zeros_like(y0), torch.zeros_like(y0), zero, zero

    def step(self, problem, t, y, h, inc, state):
        process = problem.process
        denoised_1, denoised_2, h_1, h_2 = state
        lam_s, _, sigma_s = self._at(process, t, y)
        lam_t, alpha_t, sigma_t = self._at(process, t + h, y)
        h_lam = lam_t - lam_s
        denoised = problem.denoiser(t, y)
        # Without history the divided differences are 0/0: finite stand-ins for the ratios keep
        # them (and their gradients) finite, and where() keeps what is defined.
        has_1, has_2 = bcast(h_1 > 0, y), bcast(h_2 > 0, y)
        r_1 = torch.where(has_1, bcast(h_1 / h_lam, y), 1.0)
        r_2 = torch.where(has_2, bcast(h_2 / h_lam, y), 1.0)
        delta_0 = (denoised - denoised_1) / r_1
        delta_1 = (denoised_1 - denoised_2) / r_2
        first_derivative = delta_0 + (delta_0 - delta_1) * r_1 / (r_1 + r_2)
        second_derivative = 2 * (delta_0 - delta_1) / (r_1 + r_2)
        first_derivative = torch.where(has_2, first_derivative, torch.where(has_1, delta_0, 0.0))
        second_derivative = torch.where(has_2, second_derivative, 0.0)
        phi_1 = torch.expm1(-h_lam)
        phi_2 = phi_1 / h_lam + 1
        phi_3 = bcast(phi_2 / h_lam - 0.5, y)
        y_next = (
            sigma_t / sigma_s * y
            - alpha_t * bcast(phi_1, y) * denoised
            + alpha_t * bcast(phi_2, y) * first_derivative
            - alpha_t * phi_3 * second_derivative
        )
        return y_next, None, (denoised, denoised_1, h_lam, h_1)


class UniPC(_ExponentialODESolver):
    r"""UniPC (Zhao et al. 2023): a multistep predictor and a corrector at no extra evaluation.

    Each step evaluates ``D_t = D(t, x_t)`` at the point the previous step predicted, first uses
    it to *correct* that point (UniC: the previous step taken again with ``D_t`` among its
    nodes), then predicts the next point from the corrected one (UniP); ``D_t`` is not evaluated
    again at the corrected point, so a step still costs one evaluation. With ``B = e^{-h} − 1``
    (``B(h) = e^h − 1`` of the paper, data prediction) both are

    .. math::
        x_t = \frac{\sigma_t}{\sigma_s} x_s - \alpha_t B\,D_s
              - \alpha_t B \sum_k \rho_k \frac{D_k - D_s}{r_k},

    over nodes ``r_k = (λ_k − λ_s)/h`` (earlier points for the predictor, ``r = 1`` for ``D_t``
    in the corrector), where the weights solve ``Σ_k ρ_k r_k^{i−1} = b_i`` with
    ``b_i = (−1)^i i!\,φ_{i+1}/B`` (the module's ``φ``, continued by ``φ₄ = φ₃/h + 1/6``;
    ``b_i → 1/(i + 1)`` as ``h → 0``), and a single node takes ``ρ = 1/2``. With ``order = p``, UniP-p uses the ``p − 1`` previous evaluations
    (UniP-2 is :class:`DPMSolverPP2M`), and UniC corrects with the nodes its predictor used plus
    ``D_t``: order ``p + 1``. The first steps use what history exists; the last point is not
    corrected (that would need one more evaluation). The state carries the corrected previous
    point, its time, and the last three denoised values with their ``λ``-steps.

    Args:
        order: of the predictor, 1 to 3 (the corrected scheme has one more).
    """

    nfe_drift = 1

    def __init__(self, order: int = 3):
        if order not in (1, 2, 3):
            raise InputValueError(f"order={order!r}: UniPC's predictor has orders 1, 2 and 3")
        self.order = order

    @property
    def name(self) -> str:
        return f"UniPC(order {self.order})"

    def init(self, problem, t0, y0):
        t0 = torch.as_tensor(t0, dtype=y0.dtype, device=y0.device)
        zero = torch.zeros_like(t0)
        none = torch.zeros_like(y0)
        return y0, none, none, none, t0, zero, zero

    def step(self, problem, t, y, h, inc, state):
        process = problem.process
        x_prev, d_0, d_1, d_2, t_prev, k_1, k_2 = state
        lam_p, _, sigma_p = self._at(process, t_prev, y)
        lam_s, alpha_s, sigma_s = self._at(process, t, y)
        lam_t, alpha_t, sigma_t = self._at(process, t + h, y)
        denoised = problem.denoiser(t, y)
        # Coefficients in float64: the b_i cancel like h^i (except on devices without it).
        wide = torch.float32 if y.device.type == "mps" else torch.float64
        k_0, k_1, k_2 = (lam_s - lam_p).to(wide), k_1.to(wide), k_2.to(wide)
        h_lam = (lam_t - lam_s).to(wide)
        absent = torch.zeros_like(k_0, dtype=torch.bool)
        has_0, has_1, has_2 = k_0 > 0, k_1 > 0, k_2 > 0
        # UniC: the previous step again, from x_prev with D_0 (its start), D_1, D_2 (the nodes
        # its predictor used) and D_t.
        k_safe = torch.where(has_0, k_0, 1.0)
        B, b = self._b(k_safe)
        w_1, w_2, w_t = self._weights(
            b,
            -k_1 / k_safe,
            -(k_1 + k_2) / k_safe,
            has_1 if self.order >= 2 else absent,
            has_2 if self.order >= 3 else absent,
            with_t=True,
        )
        cast = (B, w_1, w_2, w_t)
        B, w_1, w_2, w_t = (bcast(c.to(y.dtype), y) for c in cast)
        corrected = sigma_s / sigma_p * x_prev - alpha_s * B * (
            d_0 + w_1 * (d_1 - d_0) + w_2 * (d_2 - d_0) + w_t * (denoised - d_0)
        )
        y = torch.where(bcast(has_0, y), corrected, y)
        # UniP: from the corrected point with D_t and the previous D_0, D_1 as nodes.
        h_safe = torch.where(h_lam > 0, h_lam, 1.0)
        B, b = self._b(h_safe)
        w_1, w_2, _ = self._weights(
            b,
            -k_0 / h_safe,
            -(k_0 + k_1) / h_safe,
            has_0 if self.order >= 2 else absent,
            has_0 & has_1 if self.order >= 3 else absent,
            with_t=False,
        )
        B, w_1, w_2 = (bcast(c.to(y.dtype), y) for c in (B, w_1, w_2))
        y_next = sigma_t / sigma_s * y - alpha_t * B * (
            denoised + w_1 * (d_0 - denoised) + w_2 * (d_1 - denoised)
        )
        k_0, k_1 = k_0.to(lam_s.dtype), k_1.to(lam_s.dtype)
        return y_next, None, (y, denoised, d_0, d_1, torch.as_tensor(t).to(t_prev), k_0, k_1)

    @staticmethod
    def _b(h):
        """``B = e^{−h} − 1`` and ``(b_1, b_2, b_3)`` for a step ``h > 0`` in ``λ`` (``g_i`` is
        ``(−1)^i φ_{i+1}``)."""
        x = -h
        B = torch.expm1(x)
        g_1 = B / x - 1
        g_2 = g_1 / x - 0.5
        g_3 = g_2 / x - 1 / 6
        return B, (g_1 / B, 2 * g_2 / B, 6 * g_3 / B)

    @staticmethod
    def _weights(b, r_1, r_2, has_1, has_2, with_t):
        """Coefficients of ``D_k − D_s`` (each ``ρ_k/r_k``): nodes ``r_1`` (where ``has_1``),
        ``r_2`` (where ``has_2``) and, ``with_t``, ``1`` (the corrector's ``D_t``); the solution
        of the Vandermonde system by Lagrange's formula, ``1/2`` for a single node."""
        b_1, b_2, b_3 = b
        r_1 = torch.where(has_1, r_1, -1.0)  # finite stand-ins where a node is absent
        r_2 = torch.where(has_2, r_2, -2.0)
        zero = torch.zeros_like(b_1)
        if not with_t:  # nodes r_1, r_2 with b_1, b_2; r_1 alone: 1/2
            two_1 = (b_2 - r_2 * b_1) / (r_1 - r_2)
            two_2 = (r_1 * b_1 - b_2) / (r_1 - r_2)
            w_1 = torch.where(has_2, two_1, torch.where(has_1, 0.5, zero)) / r_1
            w_2 = torch.where(has_2, two_2, zero) / r_2
            return w_1, w_2, zero
        # nodes (r_1, r_2, 1) with b_1..b_3; (r_1, 1) with b_1, b_2; 1 alone: 1/2
        three_1 = (b_3 - (r_2 + 1) * b_2 + r_2 * b_1) / ((r_1 - r_2) * (r_1 - 1))
        three_2 = (b_3 - (r_1 + 1) * b_2 + r_1 * b_1) / ((r_2 - r_1) * (r_2 - 1))
        three_t = (b_3 - (r_1 + r_2) * b_2 + r_1 * r_2 * b_1) / ((1 - r_1) * (1 - r_2))
        two_1 = (b_2 - b_1) / (r_1 - 1)
        two_t = (b_2 - r_1 * b_1) / (1 - r_1)
        w_1 = torch.where(has_2, three_1, torch.where(has_1, two_1, zero)) / r_1
        w_2 = torch.where(has_2, three_2, zero) / r_2
        w_t = torch.where(has_2, three_t, torch.where(has_1, two_t, 0.5 + zero))
        return w_1, w_2, w_t


class SinglestepDPMSolverPP(_ExponentialODESolver):
    r"""Single-step DPM-Solver++ pairs with an embedded lower-order estimate.

    ``order=2`` (DPM-Solver++(2S), a 2(1) pair): a first-order stage to ``λ_s + h/2`` gives
    ``D_1``, and with ``D' h ≈ 2(D_1 − D_s)``

    .. math::
        x_t = \frac{\sigma_t}{\sigma_s} x_s - \alpha_t φ_1 D_s - \alpha_t φ_1 (D_1 - D_s),

    embedded: :class:`DPMSolverPP1`'s step. ``order=3`` (a 3(2) pair): stages at ``λ_s + h/3``
    (first order) and ``λ_s + 2h/3`` (second order) give ``D_1``, ``D_2``; with
    ``Δ₁ = 3(D_1 − D_s)``, ``Δ₂ = (3/2)(D_2 − D_s)``, ``hD' ≈ 2Δ₁ − Δ₂`` and
    ``h²D'' ≈ 6(Δ₂ − Δ₁)``,

    .. math::
        x_t = \frac{\sigma_t}{\sigma_s} x_s - \alpha_t φ_1 D_s + \alpha_t φ_2 (2Δ₁ − Δ₂)
              - 6 \alpha_t φ_3 (Δ₂ − Δ₁),

    embedded: the 2S step with its stage at ``h/3``, ``x_s σ_t/σ_s − α_t φ₁ (D_s + (3/2)(D_1 −
    D_s))`` (Lu et al. 2022a, Algorithms 4–5 in data prediction). The error estimate is the
    difference of the two (local error of the lower order, ``O(h^order)``); the higher-order
    solution is kept. ``order`` evaluations per attempted step.
    """

    def __init__(self, order: int = 3):
        if order not in (2, 3):
            raise InputValueError(f"order={order!r}: SinglestepDPMSolverPP has orders 2 and 3")
        self.order = order
        self.error_order = order
        self.nfe_drift = order

    @property
    def name(self) -> str:
        return f"SinglestepDPMSolverPP(order {self.order})"

    def step(self, problem, t, y, h, inc, state):
        process, denoiser = problem.process, problem.denoiser
        # Times and coefficients in float64 (except on devices without it): short λ-steps keep
        # their digits and φ₃ = φ₂/h − 1/2 its cancellation.
        wide = torch.float32 if y.device.type == "mps" else torch.float64
        t = torch.as_tensor(t, dtype=wide, device=y.device)
        lam_s, _, sigma_s = self._at(process, t, y, wide)
        lam_t, alpha_t, sigma_t = self._at(process, t + torch.as_tensor(h, dtype=wide), y, wide)
        h_lam = lam_t - lam_s
        # Samples that do not move (h = 0 in a per-sample solve: finished) get finite, unused
        # coefficients and stages a hair before their time, not beyond the end (below the
        # smallest time the network was trained at).
        h_safe = torch.where(h_lam == 0, -1e-4, h_lam)
        denoised = denoiser(t, y)
        first = self._stage(process, y, sigma_s, lam_s, h_safe / self.order, denoised)
        d_1 = denoiser(first[0], first[1])
        phi_1 = bcast(torch.expm1(-h_lam).to(y.dtype), y)
        base = sigma_t / sigma_s * y - alpha_t * phi_1 * denoised
        # The estimates are formed from the corrections, not as y_next - y_low: a difference of
        # two states rounds to one ulp of y, and a PI controller fed errors of 0 then one ulp
        # kept the steps tiny (float32: 1.7x the evaluations, up to 10x for some samples).
        if self.order == 2:
            error = -alpha_t * phi_1 * (d_1 - denoised)
            return base + error, error, state
        delta_1 = 3 * (d_1 - denoised)
        r_2 = 2 / 3
        lam_2 = lam_s + r_2 * h_safe
        _, alpha_2, sigma_2 = self._at(process, self._time_at(process, lam_2), y, wide)
        phi_12 = torch.expm1(-r_2 * h_safe)
        phi_22 = bcast((phi_12 / (r_2 * h_safe) + 1).to(y.dtype), y)
        x_2 = (
            sigma_2 / sigma_s * y
            - alpha_2 * bcast(phi_12.to(y.dtype), y) * denoised
            + alpha_2 * phi_22 * r_2 * delta_1
        )
        delta_2 = 1.5 * (denoiser(self._time_at(process, lam_2), x_2) - denoised)
        phi_2 = torch.expm1(-h_safe) / h_safe + 1
        phi_3 = bcast((phi_2 / h_safe - 0.5).to(y.dtype), y)
        phi_2 = bcast(phi_2.to(y.dtype), y)
        correction = alpha_t * phi_2 * (2 * delta_1 - delta_2) - 6 * alpha_t * phi_3 * (
            delta_2 - delta_1
        )
        error = correction + alpha_t * phi_1 * 0.5 * delta_1  # y_next - y_low
        return base + correction, error, state

    def _stage(self, process, y, sigma_s, lam_s, h_stage, denoised):
        """``(t_1, x_1)``: the first-order step from ``λ_s`` to ``λ_s + h_stage``."""
        t_1 = self._time_at(process, lam_s + h_stage)
        _, alpha_1, sigma_1 = self._at(process, t_1, y, lam_s.dtype)
        phi = bcast(torch.expm1(-h_stage).to(y.dtype), y)
        return t_1, sigma_1 / sigma_s * y - alpha_1 * phi * denoised
