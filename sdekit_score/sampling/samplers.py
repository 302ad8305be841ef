"""The samplers of Song et al. (2021) and of the two Jolicoeur-Martineau et al. papers.

Each sampler is a short composition of sdekit parts: it builds a problem from the process and the
score (:func:`~sdekit_score.sampling.processes.reverse_sde`, :func:`~sdekit_score.sampling.processes.probability_flow`
or a ladder of noise levels), picks a scheme, a controller or MCMC kernels from ``sdekit``, and
runs :func:`sdekit.solve` or an :mod:`sdekit.mcmc` schedule. None of them steps by itself.

Every sampler has the signature ``sampler(score_fn, process, x, *, generator, progress, **options)
-> (x, stats, last)`` where ``x`` enters as the initial state, ``stats["nfe"]`` counts score
evaluations per sample, and ``last`` is ``(x_eval, score, sigma)`` when the sampler's last score
evaluation can serve the final denoising (else ``None``). :func:`sample` draws the initial state
(and centres it, ``init="centred"``), dispatches by name and applies the final denoising.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable

import torch

import sdekit
from sdekit import mcmc
from sdekit.batching import bcast
from sdekit.checks import flag, one_of, positive_float, positive_int
from sdekit.errors import InputTypeError, InputValueError
from sdekit.random import GeneratorLike, as_generator, rand, randn
from sdekit_score.sampling.exponential_ode import (
    DPMSolverPP2M,
    DPMSolverPP3M,
    SinglestepDPMSolverPP,
    UniPC,
)
from sdekit_score.sampling.exponential_sde import ExponentialMultistep, ExponentialMultistepFSAL
from sdekit_score.sampling.precision import AutocastScore, module_of, weights_of
from sdekit_score.sampling.processes import (
    ForwardProcess,
    batch_time,
    probability_flow,
    reverse_sde,
)
from sdekit_score.sampling.schedules import time_grid
from sdekit_score.sampling.scores import check_score_output

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sample(
    score_fn: ScoreFn,
    process: ForwardProcess,
    shape: tuple[int, ...],
    *,
    sampler: str,
    generator: GeneratorLike = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    denoise: bool = True,
    grad: bool = False,
    callback: Callable[[dict], None] | None = None,
    progress: bool = False,
    amp: str | None = None,
    channels_last: bool = False,
    **options,
) -> tuple[torch.Tensor, dict]:
    """Draw ``shape[0]`` samples of event shape ``shape[1:]`` with the named sampler.

    Args:
        score_fn: ``score_fn(x, t) -> score`` with ``t`` of shape ``(batch,)``.
        process: the forward process the score belongs to (``VPSDE``, ``VESDE``, ...).
        shape: ``(batch, *event_shape)``.
        sampler: one of ``adaptive`` (recommended), ``unipc`` (deterministic, a fixed number of
            steps), ``em``, ``pc``, ``ode``, ``ggf``, ``als``, ``cas`` and the others of
            ``SAMPLERS``.
        generator: ``None``, an int seed, a ``torch.Generator`` or one per sample.
        device, dtype: of the samples. Default: those of the score model's parameters when
            ``score_fn`` is an ``nn.Module`` (or a bound method of one; float32 for a float16 or
            bfloat16 network, which :class:`ScoreModel` and ``from_diffusers`` run in its own
            dtype), else CPU and the default dtype. 16-bit samples are refused (biased).
        denoise: apply the final denoising step ``(x + σ² s(x))/α`` (Tweedie's estimate; ``α = 1``
            for VE and EDM).
        grad: record the autograd graph (to differentiate through sampling). Off by default:
            sampling a network then keeps no graph, so memory does not grow with the steps.
        callback: called after every step with a dict: ``i`` (step or level index), ``t`` (time
            or noise level), ``x`` (the state), ``denoised`` (the estimate of the clean sample
            from the latest score evaluation), as in k-diffusion, and ``accept`` (whether an
            adaptive sampler's step was accepted, per sample; ``True`` for fixed steps).
        progress: show a progress bar.
        amp: evaluate the score network under ``torch.autocast``: ``"bf16"``, or ``"fp16"`` on
            a GPU; the state, times and noise stay in ``dtype``
            (:class:`~sdekit_score.sampling.precision.AutocastScore`). Default: the network's
            own precision.
        channels_last: convert the score network's 4-D parameters to ``torch.channels_last``
            (in place) and feed it images ``(batch, C, H, W)`` in that layout.
        **options: the sampler's own options; the defaults are the papers'. ``init``, the
            starting state, is every sampler's: ``"prior"``, the process's prior draw
            ``N(0, σ_T² I)`` (``N(0, I)`` for VP and sub-VP; the papers'); ``"centred"``, that
            draw moved by ``α_T (3 D(T, x) + D(T, −x))/4`` to match the mean and covariance of
            ``p_T`` to first order, which the prior does not (two evaluations; the default of
            ``adaptive``, ``unipc``, ``dpmpp_2m_sde`` and ``dpm_adaptive``: for VE on data in
            [0, 1] a probability flow from the plain draw moved 2–3 per mille of mass between
            the modes of the benchmark's 2-D mixture, ``docs/benchmarks.md``); ``"uniform"`` on
            the data range (``als`` and ``cas``, their default as in their papers). The adaptive
            samplers (``ode``, ``dpm_adaptive``, ``adaptive``, ``ggf``) also take ``compact``:
            evaluate the score only on the samples not yet finished. Default ``None``: for an
            ``nn.Module`` score (or one wrapping a module: ``ScoreModel``, ``from_diffusers``),
            not for a plain function, which may hold inputs per sample (class labels) for the
            whole batch; ``compact=True`` for a function that treats rows independently. Never
            with ``callback``, whose ``denoised`` needs every row. With one generator for the
            batch, compaction draws the later noise for fewer rows: same law, other numbers, so
            a callback, or a module against the same function unwrapped, changes the samples of
            a seed; one generator per sample keeps each sample's path either way.

    Returns:
        ``(x, stats)``; ``stats["nfe"]`` is a ``(batch,)`` tensor of score evaluations per sample,
        rejected attempts, the centring's two (``init="centred"``) and the denoising evaluation
        included. ``stats["nfe_batch"]`` counts
        the calls of the score (each on the whole batch, or on the samples still being stepped)
        and ``stats["nfe_rows"]`` the rows they evaluated: the network's work, which exceeds
        ``nfe.sum()`` where adaptive samplers evaluate finished samples (ints). Adaptive
        samplers add ``accepted`` and ``rejected`` steps per sample, and with ``throw=False``
        ``status`` (:class:`sdekit.Status` per sample; the samples not finished are NaN).
    """
    one_of("sampler", sampler, SAMPLERS)
    if not isinstance(process, ForwardProcess):
        raise InputTypeError(
            f"process must be a sdekit_score process (VPSDE, VESDE, ...), got {type(process).__name__}"
        )
    if callback is not None and not callable(callback):
        raise InputTypeError(f"callback must be None or callable(info: dict), got {callback!r}")
    shape = _check_shape(shape)
    flags = dict(denoise=denoise, grad=grad, progress=progress, channels_last=channels_last)
    for name, value in flags.items():
        flag(value, name)
    _check_process(score_fn, process)
    _warn_if_training(score_fn)
    device, dtype = _placement(score_fn, device, dtype)
    if amp not in (None, "none") or channels_last:
        score_fn = AutocastScore(score_fn, amp, channels_last=channels_last, device=device)
    user_time, view = None, process.sampling_view()
    if view is not process:  # same marginals, on a time suited to steps (EDM's log σ)
        score_fn = _AtOwnTime(score_fn, process, view)
        user_time, process = score_fn.time, view
    generator = as_generator(generator, device)
    run = SAMPLERS[sampler]
    init = options.pop("init", DEFAULT_INIT.get(sampler, "prior"))
    _check_options(run, sampler, options)
    checked = _Checked(score_fn, process, user_time)
    sigma_max = options.get("sigma_max")
    x = _initial_state(sampler, process, shape, init, generator, dtype, device, sigma_max)
    with torch.set_grad_enabled(grad):
        try:
            centring = init == "centred"
            if centring:
                x = _centred(checked, process, x)
            x, stats, last = run(
                checked,
                process,
                x,
                generator=generator,
                callback=checked.reporter(callback),
                progress=progress,
                **options,
            )
            stats["nfe"] = stats["nfe"] + 2 * centring
            if denoise:
                x, extra = _denoise(checked, process, x, last)
                stats["nfe"] = stats["nfe"] + extra
            stats.update(checked.counts())
        except sdekit.SolveError as err:
            checked.raise_if_nonfinite(sampler, err)
            if err.status == sdekit.Status.MAX_STEPS:
                where = str(err).split(";")[0]  # max_steps=N reached at t=... (sample ...)
                raise sdekit.SolveError(
                    f"sampler {sampler!r} spent its step budget before reaching the end: {where}. "
                    f"A score that does not fit the process (another noise schedule or output "
                    f"convention) makes the steps tiny: check it, or pass a larger max_steps "
                    f"(None: no limit) or a looser tolerance",
                    err.status,
                    sample=err.sample,
                ) from err
            raise
    stopped = stats["status"] != 0 if "status" in stats else None  # NaN by request (throw)
    finite = _finite_rows(x) if stopped is None else _finite_rows(x) | stopped
    if not bool(finite.all()):
        checked.raise_if_nonfinite(sampler)
        raise sdekit.SolveError(
            f"sampler {sampler!r} produced non-finite samples (NaN/Inf) from finite score values; "
            f"its step sizes are too large for this score (see the sampler's options)"
        )
    return x, stats


# --------------------------------------------------------------------------- the samplers

# The adaptive samplers' default budget of attempted steps per sample: far above what they take
# on a score that fits its process (a few hundred at most on the benchmarks), so that one that
# does not fit (its steps shrinking without end) stops with an error instead of running for hours.
MAX_STEPS = 10_000


def em(
    score_fn,
    process,
    x,
    *,
    generator,
    callback=None,
    progress=False,
    steps: int = 1000,
    schedule: str = "linear",
    brownian=None,
):
    """Euler–Maruyama on the reverse-time SDE, ``steps`` steps from ``T`` to ``eps`` placed by
    ``schedule`` (:func:`~sdekit_score.sampling.schedules.time_grid`; default equal steps)."""
    sol = sdekit.solve(
        reverse_sde(process, score_fn),
        x,
        process.T,
        process.eps,
        solver="euler",
        controller=sdekit.StepTo(time_grid(process, steps, schedule)),
        brownian=brownian,
        generator=generator,
        callback=callback,
        progress=progress,
    )
    return sol.ys[-1], {"nfe": _per_sample(sol.stats["nfe_drift"], x)}, None


def pc(
    score_fn,
    process,
    x,
    *,
    generator,
    callback=None,
    progress=False,
    steps: int = 1000,
    schedule: str = "linear",
    snr: float = 0.16,
    corrector_steps: int = 1,
    batch_mean_norms: bool = True,
):
    """Reverse-diffusion predictor + Langevin corrector (Song et al. 2021, Algorithms 2–3).

    One solve: Euler–Maruyama on :func:`reverse_diffusion_problem`, whose coefficients are those
    of the forward process's own discretisation (so one step is exactly Song et al.'s
    ``ReverseDiffusionPredictor``), wrapped in :class:`sdekit.solvers.Corrected` so that each
    step is followed by ``corrector_steps`` moves of :class:`sdekit.mcmc.LangevinCorrector` at
    the new time, with ``α = 1`` (VE) or ``α = 1 − β_i`` (VP).

    The corrector's step ``2α(snr·‖z‖/‖s‖)²`` uses batch-mean norms by default, as Song et al.'s
    code does: per sample (``batch_mean_norms=False``) the step blows up wherever ``‖s‖`` nearly
    vanishes, which in low dimensions (near a mode) is common.

    ``schedule`` places the ``steps`` (:func:`~sdekit_score.sampling.schedules.time_grid`); on a
    non-uniform grid ``β_i`` and the predictor's coefficients use each step's own length.
    """
    corrector_steps = positive_int(corrector_steps, "corrector_steps", allow_zero=True)
    grid = time_grid(process, steps, schedule, device=x.device)
    # Equal steps keep the one float step of the discretisation (Song et al.'s coefficients).
    dt = (process.T - process.eps) / steps if schedule == "linear" else grid
    if process.kind == "vp":
        _check_discrete_betas(process, grid, steps)
    langevin = mcmc.LangevinCorrector(snr=snr, batch_mean_norms=batch_mean_norms)

    def correct(t, y):
        t = batch_time(t, y)
        target = mcmc.Target(score=lambda z: score_fn(z, t))
        return langevin(y, target, _corrector_alpha(process, t, _step_to(dt, t)), generator).x

    sol = sdekit.solve(
        reverse_diffusion_problem(process, score_fn, dt),
        x,
        process.T,
        process.eps,
        solver=sdekit.solvers.Corrected(sdekit.Euler(), correct, corrector_steps),
        controller=sdekit.StepTo(grid),
        generator=generator,
        callback=callback,
        progress=progress,
    )
    return sol.ys[-1], {"nfe": _per_sample(sol.stats["nfe_drift"], x)}, None


def ode(
    score_fn,
    process,
    x,
    *,
    generator,
    callback=None,
    progress=False,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    solver: str = "dopri5",
    per_sample: bool = True,
    max_steps: int | None = MAX_STEPS,
    throw: bool = True,
    compact: bool | None = None,
    compile: bool = False,
):
    """The probability-flow ODE with an adaptive Runge–Kutta pair (Dormand–Prince 5(4)).

    Song et al. use scipy's RK45 (the same pair and controller) with ``rtol = atol = 1e-5`` on
    the whole batch; here each sample has its own step sizes unless ``per_sample=False``.
    ``compile``: each attempted step one compiled call, as :func:`adaptive`'s. ``max_steps``:
    attempted steps per sample before a :class:`sdekit.SolveError` (None: no limit), as for
    every adaptive sampler.
    """
    resolved = sdekit.solvers.resolve_solver(solver, sdekit.ODE(lambda t, y: y))
    if resolved.error_order is None:
        raise InputValueError(
            f"sampler 'ode' steps adaptively, and solver={solver!r} has no error estimate: "
            f"choose a Runge–Kutta pair (dopri5, bosh3, ...), or for fixed steps on the "
            f"probability flow use sampler='unipc', 'dpmpp_3m' or 'dpmpp_2m' (steps=...)"
        )
    sol = sdekit.solve(
        probability_flow(process, score_fn),
        x,
        process.T,
        process.eps,
        solver=solver,
        controller=sdekit.IController(rtol=rtol, atol=atol, per_sample=per_sample),
        compact=_compacts(score_fn, callback, compact),
        max_steps=max_steps,
        throw=flag(throw, "throw"),
        callback=callback,
        progress=progress,
        compile=compile,
    )
    return *_finish(sol, x, throw), None


def dpmpp_2m(
    score_fn,
    process,
    x,
    *,
    generator,
    callback=None,
    progress=False,
    steps: int = 50,
    schedule: str = "logsnr",
):
    """DPM-Solver++(2M) on the probability-flow ODE, ``steps`` steps placed by ``schedule``.

    The second-order multistep exponential integrator in data prediction
    (:class:`~sdekit_score.sampling.exponential_ode.DPMSolverPP2M`; Lu et al. 2022), one score
    evaluation per step. The log-SNR grid measured best on the exact-score mixtures: in 3072-D
    VP at 60 steps it is 4.4 nats from exact samples where the Karras grid is 19 (noise 1.5).
    On those mixtures ``schedule="logsnr_power"`` is better still (at 50 NFE, 0.30 nats from the
    converged flow in 3072-D VP against 6.2), but not on a Gaussian or on the digits model
    (:mod:`~sdekit_score.sampling.schedules`).
    """
    return _multistep(DPMSolverPP2M(), score_fn, process, x, steps, schedule, callback, progress)


def dpmpp_3m(
    score_fn,
    process,
    x,
    *,
    generator,
    callback=None,
    progress=False,
    steps: int = 50,
    schedule: str = "logsnr",
):
    """DPM-Solver++(3M) on the probability-flow ODE, ``steps`` steps placed by ``schedule``.

    The third-order multistep exponential integrator in data prediction
    (:class:`~sdekit_score.sampling.exponential_ode.DPMSolverPP3M`), one score evaluation per
    step, on a log-SNR-uniform grid. Measured on the exact-score mixtures (3072-D, noise about
    1.5 nats): from 45 steps within noise of exact samples on VP and VE, where Dormand–Prince
    needs about 120 evaluations. ``schedule="logsnr_power"`` cuts the error on those mixtures
    2–7 fold but raises it on a Gaussian and on the digits model
    (:mod:`~sdekit_score.sampling.schedules`).
    """
    return _multistep(DPMSolverPP3M(), score_fn, process, x, steps, schedule, callback, progress)


def unipc(
    score_fn,
    process,
    x,
    *,
    generator,
    callback=None,
    progress=False,
    steps: int = 50,
    schedule: str = "logsnr",
    order: int = 3,
):
    """UniPC on the probability-flow ODE, ``steps`` steps placed by ``schedule``.

    :class:`~sdekit_score.sampling.exponential_ode.UniPC` (Zhao et al. 2023): each step's one
    evaluation also corrects the point it is taken at, which lifts the ``order``-th order
    multistep predictor (UniP-3 is DPM-Solver++(3M)'s family) to order ``order + 1``. Measured
    against the converged flow on the benchmark's exact-score mixtures (``bench/flow_paired.py``):
    at 50 steps within a tenth of one run's noise in 3072-D (VP and VE) and 2–3x closer than
    ``dpmpp_3m`` in 2-D. With few, long steps the third-order extrapolation overshoots:
    ``order=2`` is the better choice below about 20 steps in 2-D (at 15 NFE, VP: 0.08 nats
    against 0.43) and below about 10 in 3072-D.
    """
    return _multistep(UniPC(order), score_fn, process, x, steps, schedule, callback, progress)


def dpmpp_2m_sde(
    score_fn,
    process,
    x,
    *,
    generator,
    callback=None,
    progress=False,
    steps: int = 50,
    schedule: str = "logsnr",
    noise_below: float | None = 0.3,
):
    """SDE-DPM-Solver++(2M), ``steps`` steps placed by ``schedule``: the probability flow above
    the noise level ``noise_below`` and the reverse SDE below it, as ``adaptive``.

    :class:`~sdekit_score.sampling.exponential_sde.ExponentialMultistep` (the linear part
    integrated exactly, the denoiser extrapolated from the previous step; one score evaluation
    per step), the scheme of k-diffusion's ``sample_dpmpp_2m_sde``, which injects noise
    everywhere (``noise_below=None`` here). A step lands on the switch (one more step).

    Measured (``docs/benchmarks.md``): on the digits model of the main job, FD 20.4 at 51 NFE
    from the plain prior draw (seeds 0 and 1; from the centred start, its default since, about 2
    better at 53) where noise everywhere plateaus at 35 (k-diffusion's too), as the reverse SDE
    does on that model at every step count; on the benchmark's 2-D mixtures at 50 steps within
    the noise of exact samples in the modes' weights (VE: −0.6 ± 0.6 per mille of the light
    modes' mass over 64 seeds, −2.7 from the plain prior draw, ``init``), ΔNLL off by 0.014
    nats (VP) and at the floor (VE); in 3072-D it needs about 200 steps.
    """
    problem = reverse_sde(process, score_fn, noise_below=noise_below)
    sol = sdekit.solve(
        problem,
        x,
        process.T,
        process.eps,
        saveat=_on_the_switch(problem, process),  # saved times are grid points
        solver=ExponentialMultistep(),
        controller=sdekit.StepTo(time_grid(process, steps, schedule)),
        generator=generator,
        callback=callback,
        progress=progress,
    )
    return sol.ys[-1], {"nfe": _per_sample(sol.stats["nfe_drift"], x)}, None


def _on_the_switch(problem, process) -> list[float] | None:
    """Save times that make a reverse-SDE solve land on its noise switch (strictly inside the
    solve), and on its end; ``None`` where there is no switch to land on."""
    switch = problem.noise_until
    inside = switch is not None and process.eps < switch < process.T
    return [switch, process.eps] if inside else None


def _multistep(solver, score_fn, process, x, steps, schedule, callback, progress):
    """A multistep exponential integrator through the ``schedule`` grid of ``steps`` steps."""
    sol = sdekit.solve(
        probability_flow(process, score_fn),
        x,
        process.T,
        process.eps,
        solver=solver,
        controller=sdekit.StepTo(time_grid(process, steps, schedule)),
        callback=callback,
        progress=progress,
    )
    return sol.ys[-1], {"nfe": _per_sample(sol.stats["nfe_drift"], x)}, None


def dpm_adaptive(
    score_fn,
    process,
    x,
    *,
    generator,
    callback=None,
    progress=False,
    rtol: float = 1e-3,
    atol: float = 1e-4,
    order: int = 3,
    h_init: float = 0.05,
    per_sample: bool = True,
    max_steps: int | None = MAX_STEPS,
    throw: bool = True,
    compact: bool | None = None,
    compile: bool = False,
):
    """Adaptive single-step DPM-Solver++ on the probability-flow ODE, per-sample steps.

    The 3(2) pair (or with ``order=2`` the 2(1) pair) of
    :class:`~sdekit_score.sampling.exponential_ode.SinglestepDPMSolverPP` under a PI controller,
    as k-diffusion's ``dpm_adaptive`` but in data prediction and with each sample's own step
    sizes unless ``per_sample=False``. The first step is ``h_init`` in ``λ = log(α/σ)``, and a
    step grows at most 2.5-fold: in ``t`` the pair's error estimate is only asymptotic, and on
    VE (``λ`` linear in ``t``, so a step of 0.9 in ``t`` is 7.6 in ``λ``) steps allowed to grow
    tenfold left the estimate's range of validity (measured on the 2-D mixture: ΔNLL 45 nats at
    rtol 0.05 with an integral controller, 0.06 with this one). The default tolerances are the
    loosest measured to reach the noise of exact samples on the 3072-D mixtures (VP: 2.0 nats
    at 98 evaluations, VE: 1.0 at 72, from the plain prior draw; noise 1.5); at
    ``rtol=1e-2, atol=1e-3`` VP is 6.3 nats too sharp at 50. ``compile``: each attempted step
    one compiled call, as :func:`adaptive`'s. ``max_steps``: attempted steps per sample before a
    :class:`sdekit.SolveError` (None: no limit), as for every adaptive sampler.
    """
    sol = sdekit.solve(
        probability_flow(process, score_fn),
        x,
        process.T,
        process.eps,
        solver=SinglestepDPMSolverPP(order),
        dt=_first_step(process, h_init),
        controller=sdekit.PIController(rtol=rtol, atol=atol, factor_max=2.5, per_sample=per_sample),
        compact=_compacts(score_fn, callback, compact),
        max_steps=max_steps,
        throw=flag(throw, "throw"),
        callback=callback,
        progress=progress,
        compile=compile,
    )
    return *_finish(sol, x, throw), None


def adaptive(
    score_fn,
    process,
    x,
    *,
    generator,
    callback=None,
    progress=False,
    tol: float = 0.02,
    pcoeff: float = 0.2,
    icoeff: float = 0.5,
    safety: float = 0.8,
    h_init: float | None = None,
    grid_steps: int | None = 30,
    noise_below: float | None = 0.3,
    max_steps: int | None = MAX_STEPS,
    throw: bool = True,
    compact: bool | None = None,
    compile: bool = False,
):
    """Adaptive reverse-SDE solve: exponential multistep, per-sample steps, one Brownian path.

    :class:`~sdekit_score.sampling.exponential_sde.ExponentialMultistepFSAL` (SDE-DPM-Solver++(2M):
    the linear part of the reverse SDE integrated exactly, the denoiser extrapolated in log-SNR
    from the previous step; its error estimate the denoiser at the step's end, which the next
    step reuses) under a per-sample :class:`sdekit.PIController` and the one-path Brownian
    bridge, so that rejections do not bias the samples. NFE is one per attempted step, plus one
    at the start and two that centre the prior draw (``init``, :func:`sample`).

    The error is measured in units of the noise level at the end of the step,
    ``RMS((x − x̂)/σ(t)) ≤ tol``: what a step may get wrong is a fraction of the noise still to
    be removed, which is what decides the samples' law (the usual ``atol + rtol·|x|`` scale
    lets the last, data-dominated steps jump across a mode, and measured on the benchmark's
    2-D mixture it needed about three times the evaluations at equal error).

    ``grid_steps``: every step lands on the points of a ``grid_steps``-step log-SNR grid
    (:func:`~sdekit_score.sampling.schedules.time_grid`), so no step is longer than the grid's;
    ``None``: steps as long as the error allows. Step sizes set by each sample's own error are
    long where that sample's path is smooth, and the estimate, made of one evaluation at the
    step's end, sees late what a long step got wrong: the modes' weights are decided by the
    samples near a boundary between modes, at the noise levels where it forms. Measured on the
    benchmark's mixtures (``docs/benchmarks.md``): without the grid, at the default tolerance,
    2.5–5 per mille of mass moved from light modes to heavy ones in 2-D (at ``tol=0.1``, 8–9)
    and 3072-D samples came out 4–41 nats too sharp, for 16–26% fewer evaluations; with it (and
    the centred start) the weights stayed within the noise of exact samples, and 3072-D within
    about 3 nats. A 20-step grid lost weights in VE, a 40-step one cost more evaluations for
    none gained.

    Defaults, chosen on the benchmark's exact-score mixtures (``bench/samplers.py``, 2-D and
    3072-D, VP and VE) and the digits model of the main job: at ``tol = 0.02`` (93–107 NFE, the
    two of the centred start included) the 2-D samples sat within the noise of exact ones in
    ΔNLL and the modes' weights, the 3072-D ones 2–3 nats sharper (exponential Heun, the
    previous scheme, as much at 14–19% more evaluations); looser tolerances are faster and in
    2-D and on the digits model as good (``tol=0.1``: about 57 NFE in 2-D, 63 on the digits),
    but ``tol=0.05`` leaves 3072-D VE samples 4 nats too sharp (``docs/benchmarks.md``). The PI
    coefficients ``(0.2, 0.5)`` with ``safety = 0.8`` reject 4–5% of the attempted steps in
    3072-D (chosen with exponential Heun, where the standard ``(0.4, 0.3)`` with 0.9 rejected
    20–50%); a step grows at most twofold. ``h_init`` defaults to the grid's first step (without a grid, 1% of the time
    interval).

    ``noise_below``: inject noise only at noise levels ``σ/α ≤ noise_below`` (the ``σ`` of EDM
    and k-diffusion; :meth:`~sdekit_score.sampling.processes.ForwardProcess.noise_level`) and
    follow the probability flow above (same marginals;
    :func:`~sdekit_score.sampling.processes.reverse_sde`); steps land on the switch. ``None``:
    noise everywhere, the plain reverse SDE. The default 0.3 was chosen by measurement: with a
    learned score (the digits model of the main job) the reverse SDE's noise at middle levels
    carries the samples towards the model's own erroneous marginals (digits FD 37–40 with noise
    everywhere, 20–23 with it below 0.3, better than the probability-flow ODE's 22–24 at more
    NFE; ``docs/demo.md``), while on the exact-score mixtures it stays at the noise floor with
    fewer evaluations than noise everywhere (``docs/benchmarks.md``).

    ``compile``: run each attempted step (the score evaluation, the bridge, the controller and
    the bookkeeping) as one ``torch.compile``d call (:func:`sdekit.solve`'s ``compile``): the
    same steps per sample in float64 (in float32 rounding may turn a decision at the
    tolerance's edge), for a first call that compiles the score network with the step. It
    pays where the sampler's own work is a large part of an attempt (small networks; on a GPU,
    the launches of the many small kernels of an attempt). Not with ``callback``.

    ``max_steps``: attempted steps per sample before a :class:`sdekit.SolveError` (None: no
    limit); the default stops a score that does not fit the process instead of running on.
    ``throw=False``: a sample that spends its budget (or whose step falls below the minimum)
    comes back NaN, with ``stats["status"]`` per sample (:class:`sdekit.Status`, 0: finished),
    instead of the error costing the whole batch; as for every adaptive sampler.
    """
    tol = positive_float(tol, "tol")
    controller = sdekit.PIController(
        rtol=0.0,
        atol=tol,
        pcoeff=pcoeff,
        icoeff=icoeff,
        safety=safety,
        factor_max=2.0,
        per_sample=True,
    )
    first_step = (process.T - process.eps) / 100
    if grid_steps is not None:
        grid = time_grid(process, positive_int(grid_steps, "grid_steps"), "logsnr")
        controller = sdekit.ClipStepSize(controller, step_ts=grid[1:-1])
        first_step = float(grid[0] - grid[1])  # a shorter one leaves a sliver before grid[1]
    problem = reverse_sde(process, score_fn, noise_below=noise_below)
    sol = sdekit.solve(
        problem,
        x,
        process.T,
        process.eps,
        saveat=_on_the_switch(problem, process),
        solver=ExponentialMultistepFSAL(error_in_noise_units=True),
        controller=controller,
        dt=first_step if h_init is None else positive_float(h_init, "h_init"),
        brownian="bridge",
        compact=_compacts(score_fn, callback, compact),
        generator=generator,
        max_steps=max_steps,
        throw=flag(throw, "throw"),
        callback=callback,
        progress=progress,
        compile=compile,
    )
    return *_finish(sol, x, throw), None


def ggf(
    score_fn,
    process,
    x,
    *,
    generator,
    callback=None,
    progress=False,
    eps_rel: float = 0.01,
    eps_abs: float | None = None,
    h_init: float = 0.01,
    safety: float = 0.9,
    exponent: float = 0.9,
    norm: str = "rms",
    tolerance: str = "current",
    extrapolate: bool = True,
    drift_only: bool = False,
    brownian: str = "bridge",
    max_steps: int | None = MAX_STEPS,
    throw: bool = True,
    compact: bool | None = None,
):
    """Gotta Go Fast (Jolicoeur-Martineau et al. 2021): adaptive per-sample reverse-SDE solve.

    The improved-Euler pair with its Euler–Maruyama embedding (:class:`sdekit.ImprovedEuler`)
    under a per-sample integral controller configured as the paper: tolerance
    ``δ = max(eps_abs, eps_rel·max(|x|, |x'|))`` with ``x'`` the EM proposal, scaled L2 norm,
    ``h ← min(t − eps, θ h E^(−r))`` with ``θ = safety`` and ``r = exponent``. NFE is two per
    attempted step, rejections included.

    Noise: ``brownian="bridge"`` (the default, as for every adaptive solve of ``sdekit``) keeps
    one Brownian path per sample under rejection. ``brownian="redraw"`` draws new noise for the
    retry of a rejected step, as the paper's code does; it is **biased** wherever rejection
    depends on the noise (measured at ``eps_rel = 0.02``: on the 2-D VE mixture mode TV 0.10
    against the bridge's 0.011 and the floor's 0.009; on the demo's digits model FD 40.7 and 35.6
    against 38.6 and 32.7 on two seeds, at 299 against 286 NFE).

    Options (ablations of the paper): ``eps_abs`` defaults to one grey level of the process's data
    range (0.0078 on [−1, 1], 0.0039 on [0, 1]); ``tolerance="previous_proposal"`` uses the
    previous EM proposal instead of ``x``; ``extrapolate=False`` keeps ``x'``; ``norm="max"``;
    ``drift_only=True`` (a Lamba-like pair). ``max_steps``: attempted steps per sample before a
    :class:`sdekit.SolveError` (None: no limit), as for every adaptive sampler.

    Where ``g`` jumps by more than a step as short as the time's dtype allows could resolve (the
    clipped last β of a cosine DDPM schedule, at ``t = 0.999``, in float32), steps land on the
    jump instead of straddling it.
    """
    if eps_abs is None:
        low, high = process.data_range
        eps_abs = (high - low) / 256
    eps_rel = positive_float(eps_rel, "eps_rel", allow_zero=True)
    eps_abs = positive_float(eps_abs, "eps_abs", allow_zero=True)
    controller = sdekit.IController(
        rtol=eps_rel,
        atol=eps_abs,
        exponent=exponent,
        safety=safety,
        norm=norm,
        combine="max",
        reference=tolerance,
        candidate="embedded" if extrapolate else "solution",
        factor_min=0.0,
        factor_max=math.inf,
        per_sample=True,
    )
    sol = sdekit.solve(
        reverse_sde(process, score_fn),
        x,
        process.T,
        process.eps,
        solver=sdekit.ImprovedEuler(extrapolate=extrapolate, drift_only=drift_only),
        controller=_landing_on_jumps(
            controller, process, x.dtype, eps_abs or eps_rel * process.prior_std
        ),
        dt=positive_float(h_init, "h_init"),
        brownian=brownian,
        generator=generator,
        max_steps=max_steps,
        throw=flag(throw, "throw"),
        compact=_compacts(score_fn, callback, compact),
        callback=callback,
        progress=progress,
    )
    return *_finish(sol, x, throw), None


def _landing_on_jumps(controller, process, dtype: torch.dtype, tolerance: float):
    """``controller``, made to land on the jumps of ``g`` that improved Euler's error estimate
    could not step past in ``dtype``.

    The estimate holds ``(g(t + h) − g(t)) ΔW / 2``: across a jump of ``g`` (the knots of a
    discrete schedule, :meth:`~sdekit_score.sampling.processes.ForwardProcess.diffusion_jumps`)
    it shrinks only as ``sqrt(h)``, and no step is shorter than the time's resolution there
    (6e-8 at t ≈ 1 in float32). Steps land on a jump (``jump_ts``, evaluating ``g`` on one
    side of it per step) where a 6σ draw on that shortest step would exceed ``tolerance``.
    """
    times, jumps = process.diffusion_jumps()
    at = times.to(dtype)
    resolution = (torch.nextafter(at, torch.full_like(at, math.inf)) - at).double()
    landed = times[jumps.abs() / 2 * resolution.sqrt() * 6 >= tolerance]
    if not len(landed):
        return controller
    return sdekit.ClipStepSize(controller, jump_ts=landed.tolist())


def als(
    score_fn,
    process,
    x,
    *,
    generator,
    callback=None,
    progress=False,
    n_levels: int = 232,
    step_lr: float | None = None,
    n_steps_each: int = 1,
    sigma_max: float | None = None,
):
    """Annealed Langevin sampling on a geometric ladder of ``n_levels`` noise levels.

    ``x ← x + α_i s(x, σ_i) + √(2α_i) z`` with ``α_i = step_lr·σ_i²/σ_L²``, ``n_steps_each`` times
    per level (:func:`sdekit.mcmc.annealed_langevin`). Default ``step_lr``: the paper's CIFAR-10
    values for σ_L = 0.01, 1.8e-5 (one step per level) or 3.6e-6 (five), times (σ_L/0.01)². The
    ladder and ``sigma_max`` are those of :func:`_ladder`; any process works.
    """
    ladder = _ladder(process, n_levels, sigma_max)
    step_lr = _default_step_lr(step_lr, n_steps_each, {1: 1.8e-5, 5: 3.6e-6}, "als", ladder)
    run = (mcmc.annealed_langevin, ladder, step_lr, n_steps_each)
    return _annealed(run, score_fn, process, x, generator, callback, progress)


def cas(
    score_fn,
    process,
    x,
    *,
    generator,
    callback=None,
    progress=False,
    n_levels: int = 232,
    step_lr: float | None = None,
    n_steps_each: int = 1,
    sigma_max: float | None = None,
):
    """Consistent annealed sampling on a geometric ladder of ``n_levels`` noise levels.

    ``x ← x + η σ_i² s(x, σ_i) + β σ_{i+1} z`` (:func:`sdekit.mcmc.consistent_annealed_sampling`);
    with ``n_steps_each = n`` a finer ladder of ``(L − 1)·n + 1`` levels. ``step_lr = η σ_L²``
    must keep ``1 − γ < η < 1 + γ`` (``γ = σ_{i+1}/σ_i`` on the finer ladder). Default: the
    paper's CIFAR-10 values for σ_L = 0.01, 5.6e-6 (n = 1) or 1.1e-6 (n = 5), times (σ_L/0.01)²
    (the same η, 0.056 or 0.011); on a ladder too coarse for that η (fewer levels, or a process
    whose levels span a wider range), η sits where the paper's does relative to its ladder's
    bound, ``η = 1.55 (1 − γ)`` (at most 1). The ladder and ``sigma_max`` are those of
    :func:`_ladder`; any process works.
    """
    ladder = _ladder(process, n_levels, sigma_max)
    gamma = float((ladder[1:] / ladder[:-1]).min()) ** (1 / n_steps_each)
    level = float(ladder[-1]) ** 2
    if step_lr is None:
        step_lr = _default_step_lr(None, n_steps_each, {1: 5.6e-6, 5: 1.1e-6}, "cas", ladder)
        if not 1 - gamma < step_lr / level < 1 + gamma:
            step_lr = min(_CAS_ETA_OVER_BOUND * (1 - gamma), 1.0) * level
    if not 1 - gamma < step_lr / level < 1 + gamma:
        raise InputValueError(
            f"cas needs 1 - γ < η < 1 + γ with η = step_lr/σ_L² and γ = {gamma:.6g} the ratio "
            f"of its successive levels (n_levels={n_levels}, n_steps_each={n_steps_each}), i.e. "
            f"{(1 - gamma) * level:.6g} < step_lr < {(1 + gamma) * level:.6g}; got step_lr="
            f"{step_lr:.6g} (η = {step_lr / level:.6g}). Pick step_lr in that interval, or leave "
            f"it out for the default"
        )
    run = (mcmc.consistent_annealed_sampling, ladder, step_lr, n_steps_each)
    return _annealed(run, score_fn, process, x, generator, callback, progress)


def _annealed(run, score_fn, process, x, generator, callback, progress):
    """Run an annealed schedule ``(schedule, ladder, step_lr, n_steps_each)`` on the scaled
    state, reporting each level's ``σ`` as ``t`` to the callback."""
    schedule, ladder, step_lr, n_steps_each = run
    report = None
    if callback is not None:

        def report(i, x, info):
            callback({"i": i, "t": ladder[i], "y": x})

    result = schedule(
        _level_score(score_fn, process),
        x,
        ladder,
        step_lr,
        n_steps_each,
        generator=generator,
        callback=report,
        progress=progress,
        grad=torch.is_grad_enabled(),  # sample()'s grad
    )
    return result.x, {"nfe": result.evaluations}, (result.score_x, result.score, result.level)


SAMPLERS = {
    "em": em,
    "pc": pc,
    "ode": ode,
    "dpmpp_2m": dpmpp_2m,
    "dpmpp_3m": dpmpp_3m,
    "unipc": unipc,
    "dpm_adaptive": dpm_adaptive,
    "dpmpp_2m_sde": dpmpp_2m_sde,
    "adaptive": adaptive,
    "ggf": ggf,
    "als": als,
    "cas": cas,
}

_SONG = "Song et al., *Score-Based Generative Modeling through SDEs*, ICLR 2021"
_DPM_SOLVER_PP = (
    "Lu et al., *DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic "
    "Models*, 2022"
)
SAMPLER_INFO = {
    "em": {
        "method": "reverse-time SDE, Euler–Maruyama, equal steps",
        "nfe": "steps + 1",
        "stochastic": True,
        "adaptive": False,
        "paper": _SONG,
    },
    "pc": {
        "method": "reverse-diffusion predictor + Langevin corrector",
        "nfe": "(1 + corrector_steps) * steps + 1",
        "stochastic": True,
        "adaptive": False,
        "paper": _SONG + ", Algorithms 2–3",
    },
    "ode": {
        "method": "probability-flow ODE, Dormand–Prince 5(4), per-sample steps",
        "nfe": "6 per attempted step + 1 (first same as last) + 1 (denoising)",
        "stochastic": False,
        "adaptive": True,
        "paper": _SONG,
    },
    "dpmpp_2m": {
        "method": "probability-flow ODE, DPM-Solver++(2M) exponential integrator, log-SNR grid",
        "nfe": "steps + 1",
        "stochastic": False,
        "adaptive": False,
        "paper": _DPM_SOLVER_PP,
    },
    "dpmpp_3m": {
        "method": "probability-flow ODE, DPM-Solver++(3M) exponential integrator, log-SNR grid",
        "nfe": "steps + 1",
        "stochastic": False,
        "adaptive": False,
        "paper": _DPM_SOLVER_PP,
    },
    "unipc": {
        "method": "probability-flow ODE, UniPC predictor-corrector (3rd-order multistep "
        "predictor, corrector at no extra evaluation), log-SNR grid, from the prior draw moved "
        "to match p_T's mean and covariance (two evaluations)",
        "nfe": "steps + 3",
        "stochastic": False,
        "adaptive": False,
        "paper": "Zhao et al., *UniPC: A Unified Predictor-Corrector Framework for Fast Sampling "
        "of Diffusion Models*, NeurIPS 2023",
    },
    "dpm_adaptive": {
        "method": "probability-flow ODE, single-step DPM-Solver++ 3(2) pair, PI control, "
        "per-sample steps",
        "nfe": "3 per attempted step + 2 (centring the prior draw) + 1 (denoising)",
        "stochastic": False,
        "adaptive": True,
        "paper": "Lu et al., *DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic Model "
        "Sampling in Around 10 Steps*, NeurIPS 2022",
    },
    "dpmpp_2m_sde": {
        "method": "SDE-DPM-Solver++(2M) exponential integrator on the probability flow above "
        "noise level 0.3 and the reverse-time SDE below, log-SNR grid",
        "nfe": "steps + 4 (one step lands on the noise switch; two centre the prior draw; the "
        "denoising)",
        "stochastic": True,
        "adaptive": False,
        "paper": _DPM_SOLVER_PP,
    },
    "adaptive": {
        "method": "reverse-time SDE below noise level 0.3 (probability flow above), "
        "SDE-DPM-Solver++(2M) with the denoiser at each step's end as its error estimate (in "
        "units of the noise level), per-sample PI control, steps landing on a 30-step log-SNR "
        "grid, one Brownian path, from the prior draw moved to match p_T's mean and covariance",
        "nfe": "1 per attempted step + 2 (centring the prior draw) + 1 (the first step's) + 1 "
        "(denoising)",
        "stochastic": True,
        "adaptive": True,
        "paper": "exponential integrator in data prediction after " + _DPM_SOLVER_PP,
    },
    "ggf": {
        "method": "reverse-time SDE, improved Euler / Euler–Maruyama pair, per-sample steps",
        "nfe": "2 per attempted step + 1 (denoising)",
        "stochastic": True,
        "adaptive": True,
        "paper": "Jolicoeur-Martineau et al., *Gotta Go Fast When Generating Data with "
        "Score-Based Models*, 2021",
    },
    "als": {
        "method": "annealed Langevin dynamics on a geometric ladder of noise levels",
        "nfe": "n_levels * n_steps_each",
        "stochastic": True,
        "adaptive": False,
        "paper": "Song & Ermon, *Generative Modeling by Estimating Gradients of the Data "
        "Distribution*, NeurIPS 2019",
    },
    "cas": {
        "method": "consistent annealed sampling on a geometric ladder of noise levels",
        "nfe": "(n_levels - 1) * n_steps_each + 1",
        "stochastic": True,
        "adaptive": False,
        "paper": "Jolicoeur-Martineau et al., *Adversarial Score Matching and Improved Sampling "
        "for Image Generation*, ICLR 2021",
    },
}
"""What the documentation's sampler table says of each sampler (``docs/gen_tables.py``):
``nfe`` is score evaluations per sample, the final denoising included (an expression in the
sampler's options is evaluated at its defaults)."""


# --------------------------------------------------------------------------- problems and pieces


def reverse_diffusion_problem(
    process: ForwardProcess, score_fn: ScoreFn, dt: float | torch.Tensor
) -> sdekit.SDE:
    """The reverse SDE with the coefficients of the forward process's discretisation over ``dt``.

    ``dt`` is the step, or the grid of times (from ``T`` down) that the solve steps through:
    the step from ``t`` is then ``t`` minus the next grid time.

    For a forward step ``x_i = x_{i−1} + F_i(x_{i−1}) + G_i z`` (VE: ``F = 0``,
    ``G² = σ(t)² − σ(t − dt)²``; VP: ``F = (√(1 − β_i) − 1) x``, ``G² = β_i = β(t)·dt``; other
    processes: ``F = f·dt``, ``G = g√dt``), the reverse-diffusion step is
    ``x ← x − F + G² s + G z``. Written as an SDE solved backward with Euler–Maruyama at step
    ``dt``, its drift is ``(F − G² s)/dt`` and its diffusion ``G/√dt``.
    """

    def coefficients(t, x):
        t = batch_time(t, x)
        step = _step_from(dt, t)
        if process.kind == "ve":
            g2 = process.sigma(t) ** 2 - process.sigma((t - step).clamp(min=0)) ** 2
            return torch.zeros_like(x), bcast(g2, x), bcast(step, x)
        if process.kind == "vp":
            beta = bcast(process.beta(t) * step, x)
            return (torch.sqrt(1 - beta) - 1) * x, beta, bcast(step, x)
        g2 = bcast(process.diffusion(t) ** 2 * step, x)
        return process.drift(x, t) * bcast(step, x), g2, bcast(step, x)

    def drift(t, x):
        shift, g2, step = coefficients(t, x)
        return (shift - g2 * score_fn(x, batch_time(t, x))) / step

    def diffusion(t, x):
        _, g2, step = coefficients(t, x)
        return (g2 / step).sqrt().expand_as(x)

    return sdekit.SDE(drift, diffusion, noise="additive")


def _check_discrete_betas(process: ForwardProcess, grid: torch.Tensor, steps: int) -> None:
    """Song et al.'s VP discretisation scales by ``√(1 − β_i)`` with ``β_i = β(t)·Δt``: each step
    needs ``β_i < 1`` (a coarse grid would turn the state into NaN at its first step)."""
    t = grid.cpu().double()  # once, before sampling (and MPS has no float64)
    beta = process.beta(t[:-1]) * (t[:-1] - t[1:])
    worst = int(beta.argmax())
    if float(beta[worst]) >= 1:
        raise InputValueError(
            f"sampler 'pc' with steps={steps}: its VP predictor (Song et al.'s reverse diffusion) "
            f"scales by sqrt(1 - beta(t)·dt), and beta(t)·dt = {float(beta[worst]):.3g} >= 1 on "
            f"the step from t={float(t[worst]):.4g}. Use more steps (about "
            f"{math.floor(steps * float(beta.max())) + 1} or more on this schedule), or a sampler "
            "that integrates the linear part exactly at any step: 'dpmpp_2m_sde', 'adaptive'"
        )


def _first_step(process: ForwardProcess, h_lambda: float) -> float:
    """The step in ``t`` from ``T`` over which ``λ = log(α/σ)`` grows by ``h_lambda``."""
    h_lambda = positive_float(h_lambda, "h_init")
    level = process.noise_level(torch.tensor(process.T, dtype=torch.float64)) * math.exp(-h_lambda)
    return process.T - float(process.noise_level_to_t(level))


def _step_from(dt: float | torch.Tensor, t: torch.Tensor):
    """The step taken from ``t``: ``dt``, or on a grid of times from ``T`` down, ``t`` minus the
    next grid time (``t`` of shape ``(batch,)``, on the grid)."""
    if not isinstance(dt, torch.Tensor):
        return dt
    ascending = dt.flip(0).to(t)
    return t - ascending[(_nearest(ascending, t) - 1).clamp(min=0)]


def _nearest(ascending: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The index of the grid time nearest to each ``t``: the solve's times are the grid's up to
    rounding (an ulp above or below), so a search for ``t`` itself may land a point off."""
    return torch.searchsorted((ascending[1:] + ascending[:-1]) / 2, t.contiguous())


def _step_to(dt: float | torch.Tensor, t: torch.Tensor):
    """The step that arrived at ``t``: ``dt``, or on a grid the previous grid time minus ``t``."""
    if not isinstance(dt, torch.Tensor):
        return dt
    ascending = dt.flip(0).to(t)
    return ascending[(_nearest(ascending, t) + 1).clamp(max=len(ascending) - 1)] - t


def _corrector_alpha(process: ForwardProcess, t: torch.Tensor, dt) -> torch.Tensor:
    if process.kind == "vp":
        return 1 - process.beta(t) * dt
    return torch.ones_like(t)


def _ladder(process: ForwardProcess, n_levels: int, sigma_max: float | None) -> torch.Tensor:
    """Geometric noise levels from ``sigma_max`` down to the process's smallest level.

    The annealed samplers move the scaled state ``x/α(t) = x0 + (σ(t)/α(t)) z``, whose noise
    level is the process's :meth:`~ForwardProcess.noise_level` (``σ`` itself for VE): so a VP,
    sub-VP or EDM score serves them as well as a VE one. ``sigma_max`` defaults to the level at
    ``T`` (VE: ``sigma_max``; VP with β up to 20: about 152, far above what data in [−1, 1] need,
    where about the largest distance between two data points is the usual choice).
    """
    n_levels = positive_int(n_levels, "n_levels")
    return mcmc.geometric_sigmas(
        _top_level(process, sigma_max), process.noise_level_range()[0], n_levels
    )


def _top_level(process: ForwardProcess, sigma_max: float | None) -> float:
    """The annealed samplers' first level: ``sigma_max``, checked, or the process's level at T."""
    low, high = process.noise_level_range()
    if sigma_max is None:
        return high
    if not low < sigma_max <= high:
        raise InputValueError(
            f"sigma_max={sigma_max} is outside the noise levels the score was trained on, "
            f"({low:.4g}, {high:.4g}] for this process; pick a value in that interval"
        )
    return sigma_max


def _level_score(score_fn: ScoreFn, process: ForwardProcess):
    """``s̃(x̃, σ̃) = α s(α x̃, t)``, the score of the scaled state ``x̃ = x/α(t)`` at the time
    ``t`` where its noise level ``σ(t)/α(t)`` is ``σ̃`` (for VE, ``α = 1``: the score itself)."""

    def level_score(x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        t = process.noise_level_to_t(level).to(x.dtype)
        alpha = bcast(process.alpha(t), x)
        return alpha * score_fn(alpha * x, t)

    return level_score


# The paper's η relative to its ladder's bound 1 − γ (232 levels from 50 to 0.01): 0.056/0.036.
_CAS_ETA_OVER_BOUND = 1.55


def _default_step_lr(step_lr, n_steps_each, defaults: dict, name: str, ladder) -> float:
    if step_lr is not None:
        return step_lr
    if n_steps_each not in defaults:
        raise InputValueError(
            f"{name}: the paper gives step_lr only for n_steps_each in {sorted(defaults)}; pass "
            f"step_lr=... for n_steps_each={n_steps_each}"
        )
    return defaults[n_steps_each] * (float(ladder[-1]) / 0.01) ** 2


DEFAULT_INIT = {
    "als": "uniform",
    "cas": "uniform",
    **dict.fromkeys(("adaptive", "unipc", "dpmpp_2m_sde", "dpm_adaptive"), "centred"),
}
"""The samplers whose default ``init`` is not ``"prior"``: the annealed ones start uniform on the
data range, as their papers; the ones recommended for use (``docs/samplers.md``) from the draw
moved to match ``p_T``'s first two moments (:func:`_centred`)."""


def _initial_state(sampler, process, shape, init, generator, dtype, device, sigma_max):
    """The prior draw (to be centred by :func:`_centred` for ``init="centred"``), or for the
    annealed samplers optionally uniform on the data range, as in the paper (U[0, 1] for data in
    [0, 1]).

    The annealed samplers' prior is ``N(0, σ_1² I)`` at the top of their ladder (for VE with the
    default ladder, the process's prior)."""
    annealed = sampler in ("als", "cas")
    if init in ("prior", "centred") and not annealed:
        return process.prior_sample(shape, generator=generator, device=device, dtype=dtype)
    if init == "prior":
        return _top_level(process, sigma_max) * randn(shape, generator, dtype, device)
    if init == "uniform" and annealed:
        low, high = process.data_range
        return low + (high - low) * rand(shape, generator, dtype, device)
    valid = "'prior' or 'uniform'" if annealed else "'centred' or 'prior'"
    raise InputValueError(f"init={init!r} for sampler {sampler!r}: choose {valid}")


def _centred(checked, process, x):
    r"""The prior draw ``x`` moved to match :math:`p_T`'s mean and covariance to first order.

    The draw is first scaled to the standard deviation :math:`\sigma_T` (VP's and sub-VP's
    priors are :math:`N(0, I)`, a few in 100 000 wider; VE's and EDM's are
    :math:`N(0, \sigma_T^2 I)`).

    :math:`p_T`, the law of :math:`\alpha_T x_0 + \sigma_T z`, has mean
    :math:`\alpha_T\mathrm E[x_0]` and covariance :math:`\sigma_T^2 I + \alpha_T^2
    \mathrm{Cov}[x_0]`, the prior :math:`N(0, \sigma_T^2 I)` neither: for VE on data in [0, 1]
    the mean is the data's, a hundredth of ``sigma_max`` in 2-D, enough for a probability flow
    to move 2–3 per mille of mass between modes. Tweedie's denoiser at ``T`` is
    :math:`D(x) = \mu + K(x - \alpha_T\mu) + \dots` with :math:`\mu = \mathrm E[x_0]` and
    :math:`K = \alpha_T\mathrm{Cov}[x_0]/\sigma_T^2`, small, so its even part
    :math:`(D(x) + D(-x))/2` is :math:`(I - \alpha_T K)\mu` and its odd part :math:`Kx`, and
    :math:`x + \alpha_T(3D(x) + D(-x))/4 = (I + \tfrac12\alpha_T K)x + \alpha_T(I -
    \alpha_T K)\mu` has mean :math:`\alpha_T\mu` and covariance :math:`\sigma_T^2(I +
    \tfrac12\alpha_T K)^2 = \sigma_T^2 I + \alpha_T^2\mathrm{Cov}[x_0]` up to relative errors
    of order :math:`\alpha_T K` (a few in 100 000 on the VE benchmarks) and its square. Two
    evaluations per sample, at ``x`` and ``-x`` (draws of the prior alike). With a learned score
    :math:`\mu` and :math:`K` are the network's: the draw starts where the network's own
    :math:`p_T` has it, and a conditional score moves each draw by its own condition's."""
    t = torch.full(x.shape[:1], process.T, dtype=x.dtype, device=x.device)
    x = x * (bcast(process.sigma(t), x) / process.prior_std)  # VP's prior: σ_T² = 1 − α_T²
    at_x = checked.denoised(x, t, checked(x, t))
    at_minus_x = checked.denoised(-x, t, checked(-x, t))
    return x + bcast(process.alpha(t), x) * (3 * at_x + at_minus_x) / 4


def _check_options(run, sampler: str, options: dict) -> None:
    parameters = inspect.signature(run).parameters
    known = [p for p in parameters if p not in ("score_fn", "process", "x")]
    known = [p for p in known if p not in ("generator", "progress", "callback")]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InputValueError(
            f"unknown option(s) {', '.join(unknown)} for sampler {sampler!r}; its options are "
            f"{', '.join(known + ['init'])}"
        )
    for name, value in options.items():
        default = parameters[name].default
        if isinstance(default, bool) or (name == "compact" and value is not None):
            flag(value, f"{name} (an option of {sampler!r})")


def _denoise(checked, process, x, last):
    """Tweedie's denoising ``(x + σ² s(x))/α`` at the last time; free when ``last`` is given."""
    if last is not None:
        x_eval, score, sigma = last
        return x_eval + sigma**2 * score, 0
    t = torch.full(x.shape[:1], process.eps, dtype=x.dtype, device=x.device)
    return checked.denoised(x, t, checked(x, t)), 1


class _Checked:
    """The score function, its first output checked for shape and finiteness.

    Later outputs have their shape and dtype checked (no device read), not their values (that
    would synchronise with the device at every evaluation); instead flags accumulate on the
    device, without synchronising: whether any output held a NaN or an Inf, whether that ever
    happened at finite inputs, first at which time, and in which rows. :func:`sample` reads them once, when the samples came out
    non-finite or the solve failed, to name the cause: the score (non-finite outputs at finite
    states) or the sampler's steps (states already non-finite when the score saw them). The
    latest evaluation is kept for the callback's denoised estimate.
    """

    wraps = "score_fn"

    def __init__(self, score_fn: ScoreFn, process: ForwardProcess, user_time=None):
        if not callable(score_fn):
            raise InputTypeError(
                f"score_fn must be callable as score_fn(x, t), got {type(score_fn).__name__}"
            )
        self.score_fn, self.process = score_fn, process
        self.user_time = user_time  # the caller's time of a solve time, where they differ
        self.nonfinite: torch.Tensor | None = None  # any output held a NaN or an Inf
        self.score_failed: torch.Tensor | None = None  # non-finite output at finite input ...
        self.failed_at: torch.Tensor | None = None  # ... first at this time (-inf: never)
        self.failed_rows: torch.Tensor | None = None  # ... in these rows of full-batch calls
        self.latest: tuple | None = None
        self.batch = 0  # rows of the first evaluation: the whole batch
        # Calls and the rows they evaluated, as tensors (an int would be a constant of a
        # compiled attempt, recompiled at every new value).
        self.calls: torch.Tensor | None = None
        self.rows: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.nonfinite is None:
            self.batch = x.shape[0]
            out = self._first(x, t)
            check_score_output(out, x, t)  # before anything reads it as a tensor
        else:
            out = self._on_rows(x, t) if x.shape[0] < self.batch else self.score_fn(x, t)
            if not isinstance(out, torch.Tensor) or out.shape != x.shape or out.dtype != x.dtype:
                check_score_output(out, x, t)  # no device read: a (B, 1) output broadcast
        out_finite, x_finite = _finite_rows(out), _finite_rows(x)
        # non-finite output at finite input, per row, and the latest time at which it happened
        bad = ~out_finite & x_finite
        t_rows = t.detach().reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t.detach()
        t_bad = torch.where(bad, t_rows, -math.inf).max()
        failed, nonfinite, full = bad.any(), ~out_finite.all(), x.shape[0] == self.batch
        if self.nonfinite is None:
            self.nonfinite, self.score_failed, self.failed_at = nonfinite, failed, t_bad
            self.failed_rows = bad
            self.calls = torch.ones((), dtype=torch.int64, device=x.device)
            self.rows = torch.full((), x.shape[0], dtype=torch.int64, device=x.device)
        else:
            self.failed_at = torch.where(self.score_failed, self.failed_at, t_bad)
            self.nonfinite, self.score_failed = (
                self.nonfinite | nonfinite,
                self.score_failed | failed,
            )
            if full:  # rows of a compacted call are not the batch's: their samples are unnamed
                self.failed_rows = self.failed_rows | bad
            self.calls, self.rows = self.calls + 1, self.rows + x.shape[0]
        self.latest = (x, t, out)
        return out

    def counts(self) -> dict[str, int]:
        """``nfe_batch`` (calls of the score) and ``nfe_rows`` (the rows they evaluated)."""
        if self.calls is None:
            return {"nfe_batch": 0, "nfe_rows": 0}
        return {"nfe_batch": int(self.calls), "nfe_rows": int(self.rows)}

    def _first(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The first evaluation: a network on another device, or of another dtype, than the
        samples is named; any other failure gets a note saying how the network was called."""
        try:
            return self.score_fn(x, t)
        except Exception as err:
            weights = weights_of(self.score_fn)
            wrapper = next((w for w in _layers(self.score_fn) if hasattr(w, "network_call")), None)
            if isinstance(err, RuntimeError) and weights is not None:
                if weights.device != x.device:
                    raise InputValueError(
                        f"the score network is on {weights.device} but the samples are on "
                        f"{x.device}: move it (network.to({str(x.device)!r})) or sample on its "
                        f"device (device={str(weights.device)!r})"
                    ) from err
                if weights.dtype != x.dtype and wrapper is not None:
                    raise InputValueError(
                        f"the score network's parameters are {weights.dtype}; "
                        f"{type(wrapper).__name__} gave it x in {weights.dtype}, but it failed "
                        f"on mixed dtypes: its time or noise-level input comes in full "
                        f"precision (a 16-bit 999 t has steps of 4), so cast that input or its "
                        f"embedding's output to the layers' dtype inside the network, or keep "
                        f"the network in float32 and pass amp='bf16'"
                    ) from err
                if weights.dtype != x.dtype:
                    raise InputValueError(
                        f"the score network's parameters are {weights.dtype} but the samples "
                        f"are {x.dtype}: wrap the network in ScoreModel (or from_diffusers), "
                        f"which runs it in its own dtype, convert it (network.to({x.dtype})), "
                        f"or keep it in float32 and pass amp='bf16' for 16-bit arithmetic"
                    ) from err
            call = f"score_fn(x, t) with x {tuple(x.shape)} and t {tuple(t.shape)}, {x.dtype}"
            if wrapper is not None:
                call += f"; {type(wrapper).__name__} calls {wrapper.network_call}"
            if hasattr(err, "add_note"):  # Python 3.11
                err.add_note(f"sdekit_score called {call}")
            raise

    def _on_rows(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """An evaluation on the rows of the samples not yet finished (an adaptive solve drops
        the others); a network holding inputs for the whole batch fails there."""
        try:
            return self.score_fn(x, t)
        except (RuntimeError, IndexError, ValueError) as err:
            raise InputValueError(
                f"the score function failed on {x.shape[0]} of the batch's {self.batch} rows "
                f"({type(err).__name__}: {err}). Adaptive samplers evaluate only the samples "
                f"not yet finished; a network that holds inputs per sample (class labels, "
                f"embeddings) for the whole batch cannot follow: pass compact=False, or give it "
                f"as a plain function (lambda x, t: ...), which is evaluated on every row"
            ) from err

    def reporter(self, callback):
        """A solve-level callback that hands ``callback`` k-diffusion's fields, with ``t`` the
        time of ``x`` (the step's end where it was accepted, its start where it was not) and
        ``accept``."""
        if callback is None:
            return None

        def report(info: dict) -> None:
            x, t, score = self.latest
            accept = info.get("accept", True)
            if "h" in info:
                start = torch.as_tensor(info["t"])
                end = start + torch.as_tensor(info["h"], dtype=start.dtype)
                # fixed steps report a Python True: no tensor made (a host-to-device copy)
                now = end if accept is True else torch.where(accept, end, start)
                now = now if self.user_time is None else self.user_time(now)
            else:  # a noise level of an annealed schedule
                now = info["t"]
            callback(
                {
                    "i": info["i"],
                    "t": now,
                    "x": info["y"],
                    "accept": accept,
                    "denoised": self.denoised(x, t, score),
                }
            )

        return report

    def denoised(self, x: torch.Tensor, t: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """Tweedie's estimate ``(x + σ(t)² s)/α(t)`` of the clean sample."""
        sigma = bcast(self.process.sigma(t), x)
        return (x + sigma**2 * score) / bcast(self.process.alpha(t), x)

    def raise_if_nonfinite(self, sampler: str, cause: Exception | None = None) -> None:
        if self.nonfinite is None or not bool(self.nonfinite):
            return
        if not bool(self.score_failed):
            raise sdekit.SolveError(
                f"sampling with {sampler!r} diverged: its states became non-finite (NaN/Inf) "
                f"while the score's outputs at finite states were finite. Use more steps or a "
                f"tighter tolerance, or a sampler that integrates the process's linear part "
                f"exactly ('dpmpp_2m_sde', 'adaptive')"
            ) from cause
        when = torch.as_tensor(self.failed_at)
        when = float(when if self.user_time is None else self.user_time(when))
        rows = self.failed_rows.nonzero().flatten().tolist()
        samples = f", samples {rows[:10]}{'...' if len(rows) > 10 else ''}" if rows else ""
        raise InputValueError(
            f"the score function returned non-finite values (NaN/Inf) at finite states during "
            f"sampling with {sampler!r} (first at t={when:g}{samples}; its first output was "
            f"finite); check the network and the times or noise levels it is evaluated at"
        ) from cause


def _finite_rows(x: torch.Tensor) -> torch.Tensor:
    """``(batch,)``: whether every element of each row is finite (a sum would overflow)."""
    finite = torch.isfinite(x.detach())
    return finite.flatten(1).all(1) if x.dim() > 1 else finite


def _acts_in_training(layer: torch.nn.Module) -> bool:
    """Whether ``layer`` differs in training mode: dropout that drops, batch norm's statistics."""
    if isinstance(layer, torch.nn.modules.dropout._DropoutNd):
        return layer.training and layer.p > 0
    return layer.training and isinstance(layer, torch.nn.modules.batchnorm._BatchNorm)


def _warn_if_training(score_fn) -> None:
    """Warn where the score's network is in training mode with dropout or batch norm active:
    sampling would then draw dropout masks (seeded samples differ) or update running
    statistics. torch leaves the mode to the caller, so it is not switched here. A network
    inside a plain function (``lambda x, t: net(x, t, labels)``) is found through the names
    the function uses."""
    active = set()
    for layer in _layers(score_fn):
        module = layer if isinstance(layer, torch.nn.Module) else getattr(layer, "__self__", None)
        modules = [module] if isinstance(module, torch.nn.Module) else _named_modules(layer)
        for m in modules:
            active |= {type(sub).__name__ for sub in m.modules() if _acts_in_training(sub)}
    if active:
        warnings.warn(
            f"the score network is in training mode with {', '.join(sorted(active))} active: "
            f"sampling draws dropout masks and updates batch statistics; call .eval() on it "
            f"first",
            stacklevel=3,
        )


def _named_modules(fn) -> list[torch.nn.Module]:
    """The modules a plain function reaches by name: its closure's and the globals it uses."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    values = []
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:  # a cell not yet filled
            continue
    names = getattr(fn, "__globals__", {})
    values += [names[name] for name in code.co_names if name in names]
    return [v for v in values if isinstance(v, torch.nn.Module)]


def _layers(score_fn):
    """``score_fn`` and the callables it wraps, outermost first, down to the network: a wrapper
    (the sampler's check, autocast, ``ScoreModel``, the adapters) names the attribute holding
    what it wraps in its class attribute ``wraps``."""
    while True:
        yield score_fn
        name = getattr(type(score_fn), "wraps", None)
        if not isinstance(name, str):
            return
        score_fn = getattr(score_fn, name)


def _compacts(score_fn, callback, compact: bool | None) -> bool:
    """Whether an adaptive solve drops finished samples from the score's batch: ``compact`` if
    given, but never for a callback (its denoised estimate needs every row).

    By default (``None``) not for a network that is a plain function rather than an
    ``nn.Module`` (or a bound method of one), nor for a denoiser given tensors in ``extra_args``:
    a closure may hold inputs per sample, e.g.
    ``lambda x, t: unet(x, t, class_labels=labels).sample``, with the whole batch's rows.
    """
    if callback is not None:
        return False
    if compact is not None:
        if not isinstance(compact, bool):
            raise InputTypeError(f"compact must be True, False or None, got {compact!r}")
        return compact
    for layer in _layers(score_fn):
        extra = getattr(layer, "extra_args", None) or {}
        if any(isinstance(value, torch.Tensor) for value in extra.values()):
            return False
    return module_of(layer) is not None


class _AtOwnTime:
    """A score of ``process`` called at the times of its :meth:`sampling_view` (the same noise
    levels, so the process's time of the view's ``u`` is the one at the same level)."""

    wraps = "score_fn"

    def __init__(self, score_fn: ScoreFn, process: ForwardProcess, view: ForwardProcess):
        self.score_fn, self.own, self.view = score_fn, process, view

    def time(self, u: torch.Tensor) -> torch.Tensor:
        return self.own.noise_level_to_t(self.view.noise_level(u))

    def __call__(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.score_fn(x, self.time(u))


def _check_process(score_fn, process: ForwardProcess) -> None:
    """Refuse a process other than the one the score was made for (``ScoreModel``'s,
    ``from_diffusers``'): a cosine-schedule model sampled on the linear ``VPSDE`` gave a twentieth
    of the data's variance. Compared by ``α(t)`` and ``σ(t)`` (the end time ``eps`` may differ)."""
    own = next((layer.process for layer in _layers(score_fn) if hasattr(layer, "process")), None)
    if own is None or own is process:
        return
    lo, hi = max(own.eps, process.eps), min(own.T, process.T)
    t = torch.linspace(lo, hi, 9, dtype=torch.float64) if lo < hi else None
    if t is None or not (
        type(own) is type(process)
        and torch.allclose(own.alpha(t), process.alpha(t), rtol=1e-6)
        and torch.allclose(own.sigma(t), process.sigma(t), rtol=1e-6)
    ):
        raise InputValueError(
            f"the score function was made for {own!r} but sample() was given {process!r}: pass "
            f"the process it was made with (score_fn.process; from_diffusers and from_denoiser "
            f"return it beside the score)"
        )


def _placement(score_fn, device, dtype) -> tuple[torch.device, torch.dtype]:
    """The samples' device and dtype: as given, else the score model's (float32 for a 16-bit
    one), else CPU and default."""
    weights = weights_of(score_fn)
    if weights is not None and weights.device.type == "meta":
        raise InputValueError(
            "the score network's parameters are on the meta device (no values): load them, "
            "e.g. network.to_empty(device='cpu') then load_state_dict(...), or "
            "load_state_dict(..., assign=True)"
        )
    if weights is not None:
        device = weights.device if device is None else device
        if dtype is None:
            dtype = torch.float32 if weights.dtype.itemsize < 4 else weights.dtype
    try:
        device = torch.device(device) if device is not None else torch.device("cpu")
    except (RuntimeError, TypeError) as err:
        raise InputValueError(f"device={device!r} is not a torch device ({err})") from None
    backend = getattr(torch, device.type, None)  # torch.cuda, torch.mps, ...
    if device.type != "cpu" and hasattr(backend, "is_available") and not backend.is_available():
        raise InputValueError(
            f"device={str(device)!r}: no {device.type} device is available here "
            f"(torch.{device.type}.is_available() is False); sample on 'cpu'"
        )
    dtype = dtype or torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise InputValueError(
            f"dtype={dtype!r}: samples need a floating dtype (torch.float32, torch.float64, ...)"
        )
    if dtype.itemsize < 4:
        raise InputValueError(
            f"dtype={dtype}: a 16-bit state rounds away the small late steps and biases the "
            f"samples (adaptive samplers stall); sample in torch.float32 (the default): a "
            f"{dtype} network still runs in {dtype} (ScoreModel and from_diffusers cast its "
            f"input), or keep the network in float32 and pass amp='bf16'"
        )
    return device, dtype


def _check_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if (
        not isinstance(shape, tuple | list)
        or not shape
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape)
    ):
        raise InputTypeError(f"shape must be a tuple of ints (batch, *event_shape), got {shape!r}")
    if any(s < 1 for s in shape):
        raise InputValueError(f"shape must have positive sizes, got {tuple(shape)}")
    if len(shape) == 1:  # the adaptive samplers' error norms run over each sample's elements
        raise InputValueError(
            f"shape {tuple(shape)} has no event dimensions: for scalar samples pass "
            f"({shape[0]}, 1), and write the score for x of that shape"
        )
    return tuple(shape)


def _finish(sol, x: torch.Tensor, throw: bool) -> tuple[torch.Tensor, dict]:
    """An adaptive solve's final states and per-sample stats. With ``throw=False`` a sample
    that did not reach the end (its step budget spent, its step size below the minimum) is NaN
    and ``stats["status"]`` says why (:class:`sdekit.Status`; 0 for the samples that finished),
    so that one such sample does not cost the others."""
    y, stats = sol.ys[-1], _adaptive_stats(sol, x)
    if not throw:
        status = 0 if sol.status is None else sol.status
        status = _per_sample(status, x).to(torch.int8)  # as sdekit's Solution.status
        stats["status"] = status
        y = torch.where(bcast(status != 0, y), math.nan, y)
    return y, stats


def _adaptive_stats(sol, x: torch.Tensor) -> dict:
    """An adaptive solve's score evaluations, accepted and rejected steps, per sample."""
    counts = {"nfe": "nfe_drift", "accepted": "accepted", "rejected": "rejected"}
    return {name: _per_sample(sol.stats[key], x) for name, key in counts.items()}


def _per_sample(n, x: torch.Tensor) -> torch.Tensor:
    if isinstance(n, torch.Tensor):
        return n.to(x.device)
    return torch.full(x.shape[:1], int(n), dtype=torch.long, device=x.device)


def _progress(iterable, total, enabled, desc):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, disable=not enabled, desc=desc)
