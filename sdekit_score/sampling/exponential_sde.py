r"""Exponential integrators for the reverse-time SDE, in data-prediction form.

With the forward marginal ``x_t = alpha_t x0 + sigma_t z`` and the half log signal-to-noise ratio
:math:`\lambda_t = \log(\alpha_t/\sigma_t)`, the forward coefficients are
:math:`f = \mathrm d\log\alpha/\mathrm dt` and :math:`g^2 = -2\sigma^2\,\mathrm d\lambda/\mathrm dt`.
Writing the score through Tweedie's denoiser, :math:`s(x, t) = (\alpha_t D(t, x) - x)/\sigma_t^2`,
the reverse SDE :math:`\mathrm dx = [f x - g^2 s]\,\mathrm dt + g\,\mathrm d\bar W` becomes

.. math::
    \mathrm dx = \big[(f - 2\lambda')\,x + 2\lambda'\alpha\,D(t, x)\big]\,\mathrm dt
                 + g\,\mathrm d\bar W,

linear in :math:`x` except through :math:`D`, whose Jacobian stays bounded where the score's
(about :math:`-1/\sigma^2`) is stiff. Over a step from :math:`s` down to :math:`t < s`, with
:math:`h = \lambda_t - \lambda_s > 0` and :math:`u = \lambda_t - \lambda`, variation of constants
gives exactly

.. math::
    x_t = \frac{\sigma_t}{\sigma_s}e^{-h}\,x_s
          + 2\alpha_t\int_0^h e^{-2u}\,D\,\mathrm du
          + \sigma_t\sqrt{1 - e^{-2h}}\;\xi,

where the last term is the step's stochastic integral, a Gaussian of exactly that variance. The
schemes take :math:`\xi = \Delta W/\sqrt{|t - s|}` from the step's Brownian increment, so that an
adaptive solve under the one-path bridge keeps one Brownian path per sample; only the
polynomial in :math:`\lambda` that stands in for :math:`D` is approximated:

- :class:`ExponentialEuler` (SDE-DPM-Solver++ of first order, Lu et al. 2022): :math:`D` constant,

  .. math:: \hat x_t = \frac{\sigma_t}{\sigma_s}e^{-h}x_s + \alpha_t(1 - e^{-2h})\,D(s, x_s)
            + \sigma_t\sqrt{1 - e^{-2h}}\,\xi .

- :class:`ExponentialHeun`: :math:`D` linear in :math:`\lambda` between :math:`D_s = D(s, x_s)`
  and :math:`\hat D_t = D(t, \hat x_t)` at the exponential Euler prediction (same :math:`\xi`),
  integrated exactly: :math:`2\int_0^h e^{-2u}(h - u)/h\,\mathrm du = 1 - (1 - e^{-2h})/(2h) =:
  w(h)`, so

  .. math:: x_t = \hat x_t + \alpha_t\,w(h)\,(\hat D_t - D_s),

  and the embedded error estimate is the difference :math:`\alpha_t w(h)(\hat D_t - D_s)`.

- :class:`ExponentialMultistep` (SDE-DPM-Solver++(2M)): :math:`\hat D_t - D_s` replaced by the
  previous step's change of :math:`D` extrapolated in :math:`\lambda`: one evaluation per step,
  fixed steps.

- :class:`ExponentialMultistepFSAL`: the same steps with :math:`D` evaluated at each step's end
  (the next step's :math:`D_s`, first same as last), which gives an error estimate: that
  evaluation against the extrapolation. One evaluation per attempted step, adaptive steps.

When :math:`D` does not depend on :math:`x` (a mode of zero width) the schemes are exact in
law at any step size, and for a mode much narrower than the noise nearly so (tested: one step
from ``T`` to ``eps`` keeps its variance to 1e-3): the contraction :math:`-x/\sigma^2` that makes
the reverse SDE stiff is integrated exactly, so large steps do not over-sharpen or widen the mode
the way stochastic Heun (about 2/3 of the variance at rate times step 1) and Euler–Maruyama (twice
it) do. A mode wider than the noise is where :math:`D` varies, and coarse steps there lose
variance through its approximation (what the error estimate measures).
The noise enters the error estimate only through :math:`D`'s Jacobian, not the score's: where
improved Euler's estimate carries :math:`g^2\nabla s\,g\,\Delta W \sim \Delta W/\sigma^2`, this one
carries :math:`\nabla D\,\sigma\xi` with :math:`\nabla D = \alpha\,\mathrm{Cov}[x_0 \mid x_t]/\sigma^2`,
small where the data are sharp (at most :math:`1/\alpha` for Gaussian data).

Orders (additive noise, measured on Gaussian data with an exact score): both are of strong order
1 (the stochastic integral is represented through :math:`\Delta W` alone); exponential Euler has
weak order 1, exponential Heun weak order 2 (its predictor-corrector form is Platen's explicit
weak order 2 scheme for additive noise, with the linear part exact).

References:
    Lu, Zhou, Bao, Chen, Li, Zhu. "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
    Probabilistic Models", 2022 (data prediction, SDE-DPM-Solver++).
    Gonzalez, Iserte, Maher, Ozair. "SEEDS: Exponential SDE Solvers for Fast High-Quality
    Sampling from Diffusion Models", NeurIPS 2023.
    Kloeden & Platen, *Numerical Solution of Stochastic Differential Equations*, 1992, §15.1.
"""

from __future__ import annotations

import torch

from sdekit.batching import bcast
from sdekit.errors import InputValueError
from sdekit.solvers import AbstractSolver

__all__ = [
    "ExponentialEuler",
    "ExponentialHeun",
    "ExponentialMultistep",
    "ExponentialMultistepFSAL",
    "EXPONENTIAL_SDE_SOLVERS",
]

# Below this x = 2ch the corrector's weight 1 - (1 - e^{-x})/x cancels: its series is used.
_SERIES_BELOW = 1e-2


class _StepCoefficients:
    """The exact linear part of one step from ``t`` to ``t + h`` (``h < 0``), broadcast to ``y``.

    Computed in float64 (except on devices without it) so that ``h = lambda_t - lambda_s`` keeps
    its digits when the step is short, then cast to ``y``'s dtype. With ``noise_until``, a step
    that starts after it (where ``eta = 0``) takes the probability flow's coefficients (module
    docstring): the decay ``sigma_t/sigma_s``, ``alpha_t (1 - e^{-h})`` on ``D``, no noise.
    """

    def __init__(self, process, t, h, y: torch.Tensor, noise_until: float | None = None):
        t = torch.as_tensor(t, device=y.device)
        wide = torch.float32 if y.device.type == "mps" else torch.float64
        s, end = t.to(wide), (t + h).to(wide)
        alpha_s, sigma_s = process.alpha(s), process.sigma(s)
        alpha_t, sigma_t = process.alpha(end), process.sigma(end)
        self.t_end = t + h
        self.sigma_end = self._cast(sigma_t, y)
        dl = (torch.log(alpha_t / sigma_t) - torch.log(alpha_s / sigma_s)).clamp(min=0)
        self.h_lambda = dl  # in float64, t's shape
        # eta² and c = (1 + eta²)/2 of the step (eta in {0, 1}); x = 2 c h
        eta2 = 1.0 if noise_until is None else (s <= noise_until).to(wide)
        x = dl * (1 + eta2)
        one_minus = -torch.expm1(-x)  # 1 - e^{-2ch}
        step = (end - s).abs()
        self.decay = self._cast(sigma_t / sigma_s * torch.exp(-eta2 * dl), y)
        self.denoised = self._cast(alpha_t * one_minus, y)
        noise = sigma_t * (-torch.expm1(-2 * eta2 * dl)).sqrt()  # sigma_t sqrt(1 - e^{-2 eta² h})
        self.noise = self._cast(noise / step.sqrt().clamp(min=torch.finfo(wide).tiny), y)
        # the corrector's weight 1 - (1 - e^{-x})/x, by its series where it cancels
        series = x / 2 - x**2 / 6 + x**3 / 24
        ratio = one_minus / x.clamp(min=_SERIES_BELOW)
        self.corrector = self._cast(alpha_t * torch.where(x < _SERIES_BELOW, series, 1 - ratio), y)

    @staticmethod
    def _cast(c: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return bcast(c.to(y.dtype), y)


class _Exponential(AbstractSolver):
    """What both schemes share: the problem they accept and the exponential Euler prediction."""

    strong_order = 1.0
    calculus = frozenset({"ito", "stratonovich"})
    noise = frozenset({"additive"})
    nfe_diffusion = 0

    def check(self, problem) -> None:
        super().check(problem)
        if not (hasattr(problem, "process") and hasattr(problem, "denoiser")):
            raise InputValueError(
                f"{self.name} steps the reverse-time SDE of a diffusion model through its "
                "denoiser; build the problem with sdekit_score.sampling.processes.reverse_sde("
                "process, score_fn), which carries process and denoiser, or use 'euler'"
            )

    def predict(self, problem, t, y, h, inc, denoised=None):
        """``(coefficients, D(t, y), exponential Euler prediction)``; ``D(t, y)`` evaluated
        unless given."""
        c = _StepCoefficients(problem.process, t, h, y, getattr(problem, "noise_until", None))
        if denoised is None:
            denoised = problem.denoiser(t, y)
        y_pred = c.decay * y + c.denoised * denoised + c.noise * inc.dW
        return c, denoised, y_pred


def _extrapolation(c: _StepCoefficients, h_prev: torch.Tensor, y: torch.Tensor):
    """``(h/h_prev broadcast to y, h)``: the factor that extrapolates the previous step's change
    of the denoiser over this step's ``h`` in lambda (0 without a previous step)."""
    h_lambda = c.h_lambda.to(h_prev.dtype)
    ratio = torch.where(
        h_prev > 0, h_lambda / h_prev.clamp(min=torch.finfo(h_prev.dtype).tiny), 0.0
    )
    return bcast(ratio.to(y.dtype), y), h_lambda


class ExponentialEuler(_Exponential):
    r"""Exponential Euler–Maruyama in data-prediction form (SDE-DPM-Solver++ of first order).

    :math:`x_t = \frac{\sigma_t}{\sigma_s}e^{-h}x_s + \alpha_t(1 - e^{-2h})D(s, x_s)
    + \sigma_t\sqrt{1 - e^{-2h}}\,\Delta W/\sqrt{|t - s|}` with :math:`h = \lambda_t - \lambda_s`
    (module docstring). One denoiser (score) evaluation per step; fixed steps only.
    """

    weak_order = 1.0
    nfe_drift = 1

    def step(self, problem, t, y, h, inc, state):
        return self.predict(problem, t, y, h, inc)[2], None, state


class ExponentialHeun(_Exponential):
    r"""Exponential Heun with its exponential Euler embedding, one noise draw for both.

    .. math::
        \hat x_t = \tfrac{\sigma_t}{\sigma_s}e^{-h}x_s + \alpha_t(1 - e^{-2h})D_s
                   + \sigma_t\sqrt{1 - e^{-2h}}\,\xi,\qquad
        x_t = \hat x_t + \alpha_t\Big(1 - \frac{1 - e^{-2h}}{2h}\Big)\big(D(t, \hat x_t) - D_s\big)

    (module docstring for the derivation). Returns :math:`x_t` and the error estimate
    :math:`x_t - \hat x_t`, which scales as :math:`|h|^{3/2}` (the noise reaches it through
    :math:`\nabla D`), as :math:`|h|^2` where :math:`D` is flat. Two denoiser (score) evaluations
    per attempted step.

    Args:
        error_in_noise_units: return the estimate divided by :math:`\sigma_t`, the noise level
            at the end of the step, so that a controller with ``rtol=0, atol=tol`` accepts local
            errors up to ``tol`` times the noise still to be removed (a control of the law rather
            than of the path; ``sampler="adaptive"``). The estimate is then no longer
            ``y_next - y_embedded``: use it with the controller's default ``candidate``.
    """

    weak_order = 2.0
    error_order = 1.5
    nfe_drift = 2

    def __init__(self, error_in_noise_units: bool = False):
        self.error_in_noise_units = error_in_noise_units

    def step(self, problem, t, y, h, inc, state):
        c, denoised, y_pred = self.predict(problem, t, y, h, inc)
        correction = c.corrector * (problem.denoiser(c.t_end, y_pred) - denoised)
        error = correction / c.sigma_end if self.error_in_noise_units else correction
        return y_pred + correction, error, state


class ExponentialMultistep(_Exponential):
    r"""Exponential two-step scheme in data prediction (SDE-DPM-Solver++(2M)); fixed steps.

    .. math::
        x_t = \hat x_t + \alpha_t\Big(1 - \frac{1 - e^{-2h}}{2h}\Big)\,
              \frac{h}{h_{\mathrm{prev}}}\,(D_s - D_{\mathrm{prev}})

    with :math:`\hat x_t` the exponential Euler prediction: :class:`ExponentialHeun`'s step with
    :math:`D(t, \hat x_t) - D_s` replaced by the previous step's change of :math:`D`,
    extrapolated linearly in :math:`\lambda` (Lu et al. 2022; k-diffusion's
    ``sample_dpmpp_2m_sde`` with ``solver_type="heun"``). One denoiser evaluation per step. The
    state carries the previous step's :math:`D` and its :math:`\lambda`-step; without them (the
    first step, or after a restart) the step is exponential Euler's.

    Measured against exponential Heun on fixed grids of the benchmark's 2-D mixtures at about 50
    evaluations (``docs/benchmarks.md``; noise below level 0.3, from the plain prior draw): it moves
    less of the light modes' mass to the heavy ones, 4.8 per mille against 6.2 (VE, of which about 2
    is the prior's missing mean; 1.6 with noise everywhere) and 0.7 against 2.8 (VP), exponential
    Heun's correction coupling the step's own noise through :math:`\nabla D`. It has no error
    estimate: an extrapolation from the past misses the step where a sample settles on a mode, and
    under adaptive control it moved far more mass; :class:`ExponentialMultistepFSAL` takes the same
    steps with an estimate.
    """

    weak_order = 2.0
    nfe_drift = 1

    def init(self, problem, t0, y0):
        return torch.zeros_like(y0), torch.zeros_like(
            torch.as_tensor(t0, dtype=y0.dtype, device=y0.device)
        )

    def step(self, problem, t, y, h, inc, state):
        denoised_prev, h_prev = state
        c, denoised, y_pred = self.predict(problem, t, y, h, inc)
        ratio, h_lambda = _extrapolation(c, h_prev, y)
        correction = c.corrector * ratio * (denoised - denoised_prev)
        return y_pred + correction, None, (denoised, h_lambda)


class ExponentialMultistepFSAL(_Exponential):
    r""":class:`ExponentialMultistep`'s steps with an error estimate, for adaptive steps.

    The denoiser is evaluated at the end of each step, :math:`D_t = D(t, x_t)`, which is the
    next step's :math:`D_s` (first same as last), and the step's error estimate is that
    evaluation against the extrapolation the step assumed,

    .. math::
        x_t - \tilde x_t = \alpha_t\Big(1 - \frac{1 - e^{-2h}}{2h}\Big)
        \Big(\frac{h}{h_{\mathrm{prev}}}(D_s - D_{\mathrm{prev}}) - (D_t - D_s)\Big),

    :math:`\tilde x_t` being exponential Heun's step with :math:`D_t` at the end (module
    docstring), so the estimate sees where the step went, noise included, where
    :class:`ExponentialMultistep`'s extrapolation sees only the past. One denoiser evaluation
    per attempted step, one more at the start (and after a jump time). The first step (no
    previous one) is exponential Euler's, estimated against exponential Heun's. On a fixed
    grid the steps are :class:`ExponentialMultistep`'s, which a fixed-step solve runs instead
    (:meth:`for_fixed_steps`: no evaluation at the end).

    Measured on the benchmark's mixtures under ``sampler="adaptive"``'s control
    (``docs/benchmarks.md``): fewer evaluations than exponential Heun at about equal error (2-D:
    104 against 148 at ``tol = 0.02``; 3072-D VP: 104 against 124), and with the sampler's
    log-SNR grid it keeps, at coarse tolerances, the light modes' weights that exponential
    Heun's steps lose.

    Args:
        error_in_noise_units: the estimate divided by :math:`\sigma_t`, as
            :class:`ExponentialHeun`'s.
    """

    weak_order = 2.0
    error_order = 1.5
    nfe_drift = 1
    nfe_init = 1

    def __init__(self, error_in_noise_units: bool = False):
        self.error_in_noise_units = error_in_noise_units

    def for_fixed_steps(self) -> ExponentialMultistep:
        return ExponentialMultistep()

    def init(self, problem, t0, y0):
        t0 = torch.as_tensor(t0, dtype=y0.dtype, device=y0.device)
        return problem.denoiser(t0, y0), torch.zeros_like(y0), torch.zeros_like(t0)

    def step(self, problem, t, y, h, inc, state):
        denoised, denoised_prev, h_prev = state
        c, _, y_pred = self.predict(problem, t, y, h, inc, denoised)
        ratio, h_lambda = _extrapolation(c, h_prev, y)
        extrapolated = ratio * (denoised - denoised_prev)
        y_next = y_pred + c.corrector * extrapolated
        denoised_next = problem.denoiser(c.t_end, y_next)
        error = c.corrector * (extrapolated - (denoised_next - denoised))
        if self.error_in_noise_units:
            error = error / c.sigma_end
        return y_next, error, (denoised_next, denoised, h_lambda)


EXPONENTIAL_SDE_SOLVERS = {
    "exp_euler": ExponentialEuler,
    "exp_heun": ExponentialHeun,
    "exp_multistep": ExponentialMultistep,
    "exp_multistep_fsal": ExponentialMultistepFSAL,
}
