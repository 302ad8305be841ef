"""The API a user meets: solve's conventions and controllers, and sample's safe defaults."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sdekit as sk
import sdekit.compat
import sdekit_score as ss

F64 = torch.float64


def _ou(noise: str = "additive") -> sk.SDE:
    return sk.SDE(lambda t, y: -y, lambda t, y: 0.5 * torch.ones_like(y), noise=noise)


def _double_well() -> sk.SDE:
    return sk.SDE(lambda t, y: -(y**3), lambda t, y: torch.ones_like(y), noise="additive")


# --------------------------------------------------------------------------- one Brownian path


@pytest.mark.parametrize(
    "solver, controller",
    [
        ("improved_euler", sk.IController(rtol=1e-2, atol=1e-2, per_sample=True)),
        ("improved_euler", sk.PIController(rtol=1e-2, atol=1e-2, per_sample=True)),
        ("sosra", sk.PIController(rtol=1e-2, atol=1e-2, per_sample=True)),
        ("sosra", sk.PIController(rtol=1e-2, atol=1e-2)),
    ],
)
def test_an_adaptive_sde_solve_keeps_one_path_unless_redraw_is_asked(solver, controller):
    y0 = torch.linspace(-2, 2, 64, dtype=F64).reshape(64, 1)

    def run(**brownian):
        return sk.solve(
            _double_well(),
            y0,
            0.0,
            2.0,
            solver=solver,
            controller=controller,
            generator=3,
            **brownian,
        )

    default, bridge, redraw = run(), run(brownian="bridge"), run(brownian="redraw")
    assert (
        bridge.stats["rejected"].sum() > 0
        if controller.per_sample
        else bridge.stats["rejected"] > 0
    )
    assert torch.equal(default.ys, bridge.ys)
    assert not torch.equal(default.ys, redraw.ys)


def test_fixed_steps_draw_plain_gaussian_increments_by_default():
    y0 = torch.zeros(8, 2, dtype=F64)
    default = sk.solve(_ou(), y0, 0.0, 1.0, solver="euler", dt=0.1, generator=0)
    redraw = sk.solve(_ou(), y0, 0.0, 1.0, solver="euler", dt=0.1, generator=0, brownian="redraw")
    assert torch.equal(default.ys, redraw.ys)


# --------------------------------------------------------------------------- Solution layout


@pytest.mark.parametrize("adaptive", [False, True])
def test_ys_has_a_leading_time_axis_and_ys_minus_one_is_the_final_state(adaptive):
    y0 = torch.ones(5, 3, dtype=F64)
    options = dict(controller=sk.PIController(rtol=1e-6, atol=1e-8)) if adaptive else dict(dt=0.01)
    ode = sk.ODE(lambda t, y: -y)
    sol = sk.solve(ode, y0, 0.0, 1.0, solver="dopri5", **options)
    assert sol.ys.shape == (1, 5, 3) and sol.ts.shape == (1,) and float(sol.ts[-1]) == 1.0
    saved = sk.solve(ode, y0, 0.0, 1.0, solver="dopri5", saveat=[0.5, 1.0], **options)
    assert saved.ys.shape == (2, 5, 3)
    torch.testing.assert_close(sol.ys[-1], saved.ys[-1])
    torch.testing.assert_close(sol.ys[-1], y0 * math.exp(-1), rtol=1e-6, atol=0)


def test_status_codes_are_exported_as_an_enum():
    ode = sk.ODE(lambda t, y: torch.where(t.reshape(-1, 1) > 0.5, torch.nan, 1.0) * y)
    y0 = torch.ones(3, 1, dtype=F64)
    controller = sk.PIController(per_sample=True, dt_min=1e-6)
    sol = sk.solve(ode, y0, 0.0, 1.0, solver="dopri5", controller=controller, throw=False)
    assert sol.status is not None
    assert set(sol.status.tolist()) == {int(sk.Status.DT_MIN)}
    assert sk.Status.OK == 0 and sk.Status.MAX_STEPS == 2


# --------------------------------------------------------------------------- controllers


def test_step_to_steps_exactly_on_the_given_grid():
    ts = [0.0, 0.1, 0.15, 0.4, 1.0]
    seen = []
    sol = sk.solve(
        _ou(),
        torch.zeros(4, 1, dtype=F64),
        0.0,
        1.0,
        solver="euler",
        controller=sk.StepTo(ts),
        generator=0,
        callback=lambda info: seen.append(float(info["t"])),
    )
    assert seen == ts[:-1] and sol.stats["steps"] == 4


def test_step_to_equals_constant_steps_on_the_same_grid():
    y0 = torch.zeros(4, 2, dtype=F64)
    grid = [k / 10 for k in range(11)]
    on_grid = sk.solve(
        _ou(), y0, 0.0, 1.0, solver="milstein", controller=sk.StepTo(grid), generator=1
    )
    constant = sk.solve(_ou(), y0, 0.0, 1.0, solver="milstein", dt=0.1, generator=1)
    explicit = sk.solve(
        _ou(),
        y0,
        0.0,
        1.0,
        solver="milstein",
        dt=0.1,
        generator=1,
        controller=sk.ConstantStepSize(),
    )
    torch.testing.assert_close(on_grid.ys, constant.ys, rtol=1e-12, atol=1e-12)
    assert torch.equal(constant.ys, explicit.ys)


def test_step_to_refuses_a_grid_that_does_not_span_the_solve_or_a_dt():
    with pytest.raises(ValueError, match="strictly monotonic"):
        sk.StepTo([0.0, 0.5, 0.5, 1.0])
    with pytest.raises(ValueError, match="must be t0 and t1"):
        sk.solve(_ou(), torch.zeros(2, 1), 0.0, 1.0, solver="euler", controller=sk.StepTo([0, 0.5]))
    with pytest.raises(ValueError, match="do not also pass dt"):
        sk.solve(
            _ou(),
            torch.zeros(2, 1),
            0.0,
            1.0,
            solver="euler",
            dt=0.1,
            controller=sk.StepTo([0, 1.0]),
        )


@settings(max_examples=30, deadline=None)
@given(
    jumps=st.lists(st.floats(0.01, 0.99), min_size=1, max_size=4, unique=True),
    dt_max=st.floats(0.02, 0.5),
    per_sample=st.booleans(),
)
def test_clip_step_size_lands_on_jump_times_and_bounds_the_step(jumps, dt_max, per_sample):
    times = []
    inner = sk.PIController(rtol=1e-3, atol=1e-3, per_sample=per_sample)
    controller = sk.ClipStepSize(inner, dt_max=dt_max, jump_ts=jumps)

    def field(t, y):
        times.append(t.detach().clone())
        return -y

    y0 = torch.ones(2, 1, dtype=F64)
    sol = sk.solve(sk.ODE(field), y0, 0.0, 1.0, solver="bosh3", controller=controller)
    visited = torch.cat([t.reshape(-1) for t in times]).tolist()
    for jump in jumps:  # a stage evaluated exactly at each jump time: a step started there
        assert any(v == jump for v in visited), jump
    steps = torch.tensor(sorted(set(visited)))
    assert steps.diff().max() <= dt_max * (1 + 1e-9)
    torch.testing.assert_close(sol.ys[-1], y0 * math.exp(-1), rtol=1e-3, atol=0)


def test_clip_step_size_restarts_first_same_as_last_solvers_after_a_jump():
    # The drift switches on at t = 0.5: a dopri5 step that reused the pre-jump last stage would
    # carry the old drift into the new regime.
    def field(t, y):
        return torch.where(t >= 0.5, -torch.ones_like(y), torch.zeros_like(y))

    y0 = torch.zeros(1, 1, dtype=F64)
    controller = sk.ClipStepSize(sk.IController(rtol=1e-9, atol=1e-9), jump_ts=[0.5])
    sol = sk.solve(sk.ODE(field), y0, 0.0, 1.0, solver="dopri5", controller=controller)
    assert sol.ys[-1].item() == pytest.approx(-0.5, abs=1e-12)


@settings(max_examples=20, deadline=None)
@given(
    step_ts=st.lists(st.floats(0.01, 0.99), min_size=1, max_size=6, unique=True),
    per_sample=st.booleans(),
)
def test_clip_step_size_lands_on_step_times_without_restarting(step_ts, per_sample):
    infos = []

    def field(t, y):
        return -y

    y0 = torch.ones(2, 1, dtype=F64)
    inner = sk.PIController(rtol=1e-4, atol=1e-4, per_sample=per_sample)
    landing = sk.ClipStepSize(inner, step_ts=step_ts)
    sol = sk.solve(
        sk.ODE(field), y0, 0.0, 1.0, solver="dopri5", controller=landing, callback=infos.append
    )
    starts = torch.cat([torch.as_tensor(info["t"]).reshape(-1) for info in infos]).tolist()
    for s in step_ts:  # an attempted step started exactly at each time: a step landed there
        assert any(v == s for v in starts), s
    attempts = sol.stats["accepted"] + sol.stats["rejected"]
    # first same as last carries on across step times: one evaluation at the start only
    assert torch.equal(torch.as_tensor(sol.stats["nfe_drift"]), 1 + 6 * torch.as_tensor(attempts))
    torch.testing.assert_close(sol.ys[-1], y0 * math.exp(-1), rtol=1e-3, atol=0)
    jumping = sk.ClipStepSize(inner, jump_ts=step_ts)
    restarted = sk.solve(sk.ODE(field), y0, 0.0, 1.0, solver="dopri5", controller=jumping)
    attempts = restarted.stats["accepted"] + restarted.stats["rejected"]
    extra = torch.as_tensor(restarted.stats["nfe_drift"]) - 6 * torch.as_tensor(attempts) - 1
    assert bool((extra == len(step_ts)).all())  # where jump times restart it


def test_a_controller_may_declare_its_stops_as_a_list():
    class Jumping(sk.PIController):
        stops = [0.5]  # the protocol asks for times, not a tuple

    y0 = torch.ones(2, 1, dtype=F64)
    controller = Jumping(rtol=1e-8, atol=1e-8)
    sol = sk.solve(sk.ODE(lambda t, y: -y), y0, 0.0, 1.0, solver="dopri5", controller=controller)
    torch.testing.assert_close(sol.ys[-1], y0 * math.exp(-1), rtol=1e-6, atol=0)
    assert int(sol.stats["nfe_drift"] - 6 * (sol.stats["accepted"] + sol.stats["rejected"])) == 2


def test_clip_step_size_step_times_are_checked_and_shown():
    with pytest.raises(sk.InputValueError, match="step_ts must be finite"):
        sk.ClipStepSize(sk.IController(), step_ts=[math.inf])
    with pytest.raises(sk.InputTypeError, match="step_ts must be a sequence of numbers"):
        sk.ClipStepSize(sk.IController(), step_ts=0.5)
    both = sk.ClipStepSize(sk.IController(), jump_ts=[0.5], step_ts=[0.25, 0.5])
    assert both.step_ts == (0.25,)  # a jump time is a landing already
    assert "step_ts=[0.25]" in repr(both)


def test_clip_step_size_wraps_adaptive_controllers_only():
    with pytest.raises(TypeError, match="adaptive controller"):
        sk.ClipStepSize(sk.ConstantStepSize())


def test_a_controller_must_be_a_step_size_controller():
    with pytest.raises(TypeError, match="step-size controller"):
        sk.solve(_ou(), torch.zeros(2, 1), 0.0, 1.0, solver="euler", controller=object())


# --------------------------------------------------------------------------- callbacks


def test_solve_callback_sees_every_attempted_step():
    infos = []
    controller = sk.PIController(rtol=1e-3, atol=1e-3, per_sample=True)
    sol = sk.solve(
        _ou(),
        torch.ones(3, 1, dtype=F64),
        0.0,
        1.0,
        solver="improved_euler",
        controller=controller,
        generator=0,
        callback=infos.append,
    )
    assert [info["i"] for info in infos] == list(range(len(infos)))
    assert len(infos) == int(sol.stats["steps"].max())
    accepted = torch.stack([info["accept"] for info in infos]).sum(0)
    assert torch.equal(accepted, sol.stats["accepted"])
    assert torch.equal(infos[-1]["y"], sol.ys[-1])


# --------------------------------------------------------------------------- sampling


class _TinyScore(torch.nn.Module):
    """A network score (linear in x): s(x, t) = -x·w + b(t)."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(1.0))
        self.shift = torch.nn.Linear(1, 2)

    def forward(self, x, t):
        return -self.weight * x + 0.01 * self.shift(t[:, None])


SAMPLERS_WITH_STEPS = ("em", "pc", "dpmpp_2m", "dpmpp_3m", "unipc", "dpmpp_2m_sde")


@pytest.mark.parametrize("sampler", sorted(ss.SAMPLERS))
def test_sampling_a_network_records_no_graph_unless_asked(sampler):
    # and the graph, when asked for, gives finite gradients (dpmpp_3m's first steps gave NaN)
    net = _TinyScore().double()
    options = dict(steps=20) if sampler in SAMPLERS_WITH_STEPS else {}
    x, _ = ss.sample(net, ss.VPSDE(), (8, 2), sampler=sampler, generator=0, **options)
    assert not x.requires_grad and x.grad_fn is None
    x, _ = ss.sample(net, ss.VPSDE(), (8, 2), sampler=sampler, generator=0, grad=True, **options)
    assert x.requires_grad
    x.sum().backward()
    assert net.weight.grad is not None
    assert all(bool(torch.isfinite(p.grad).all()) for p in net.parameters())


def test_samples_follow_the_models_dtype_and_explicit_arguments_win():
    net = _TinyScore().double()
    x, _ = ss.sample(net, ss.VPSDE(), (4, 2), sampler="em", generator=0, steps=5)
    assert x.dtype == torch.float64 and x.device == next(net.parameters()).device
    x, _ = ss.sample(net.forward, ss.VPSDE(), (4, 2), sampler="em", generator=0, steps=5)
    assert x.dtype == torch.float64  # a bound method of a module counts as the module
    x, _ = ss.sample(net.float(), ss.VPSDE(), (4, 2), sampler="em", steps=5, dtype=torch.float32)
    assert x.dtype == torch.float32


@pytest.mark.parametrize("sampler", ["em", "pc", "ode", "ggf", "als", "cas"])
def test_every_sampler_reports_k_diffusion_style_callbacks(sampler):
    target = ss.GaussianMixture.ring2d()
    process = ss.VESDE() if sampler in ("als", "cas") else ss.VPSDE()
    options = dict(steps=50) if sampler in ("em", "pc") else {}
    infos = []
    ss.sample(
        target.score(process),
        process,
        (6, 2),
        sampler=sampler,
        generator=0,
        callback=infos.append,
        **options,
    )
    assert infos and {"i", "t", "x", "accept", "denoised"} <= set(infos[0])
    assert infos[-1]["x"].shape == infos[-1]["denoised"].shape == (6, 2)
    assert [info["i"] for info in infos][:2] in ([0, 1], [0, 0])


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "em", "ode"])
def test_the_callbacks_t_is_the_time_of_its_x(sampler):
    # k-diffusion hands x with its own sigma; t was the step's start beside the state at its end
    target = ss.GaussianMixture.ring2d()
    process = ss.VPSDE()
    infos = []
    options = dict(steps=4) if sampler != "ode" else {}
    x, stats = ss.sample(
        target.score(process),
        process,
        (3, 2),
        sampler=sampler,
        generator=0,
        callback=infos.append,
        denoise=False,
        dtype=torch.float64,
        **options,
    )
    assert torch.equal(infos[-1]["x"], x)
    t_last = torch.as_tensor(infos[-1]["t"]).reshape(-1)
    torch.testing.assert_close(t_last, torch.full_like(t_last, process.eps))
    if sampler == "dpmpp_2m":
        grid = ss.sampling.schedules.time_grid(process, 4, "logsnr")
        ts = torch.stack([torch.as_tensor(info["t"]).reshape(-1)[0] for info in infos])
        torch.testing.assert_close(ts, grid[1:].to(ts.dtype))
    if sampler == "ode":  # a rejected attempt leaves x, and t, where they were
        for before, info in zip(infos[:-1], infos[1:], strict=True):
            kept = ~torch.as_tensor(info["accept"])
            assert torch.equal(info["x"][kept], before["x"][kept])
            now, then = torch.as_tensor(info["t"]), torch.as_tensor(before["t"])
            torch.testing.assert_close(now[kept], then[kept], rtol=1e-12, atol=1e-15)
        assert int(stats["rejected"].sum()) > 0


def test_pc_runs_as_one_solve_and_counts_its_evaluations_from_the_solve():
    target = ss.GaussianMixture.ring2d()
    process = ss.VPSDE()
    calls = []

    def score(x, t):
        calls.append(1)
        return target.score(process)(x, t)

    _, stats = ss.sample(
        score, process, (4, 2), sampler="pc", steps=50, corrector_steps=2, generator=0
    )
    assert stats["nfe"].tolist() == [len(calls)] * 4 == [50 * 3 + 1] * 4


@pytest.mark.parametrize("saveat", [[0.999999999999996], [0.999999999999996, 1.0], [0.0, 4e-15]])
def test_save_times_closer_than_rounding_are_all_landed_on(saveat):
    y0 = torch.ones(2, 2, dtype=F64)
    sol = sk.solve(_ou(), y0, 0.0, 1.0, solver="euler", dt=0.05, saveat=saveat, generator=0)
    assert sol.ts.tolist() == saveat and sol.ys.shape == (len(saveat), 2, 2)


def test_a_brownian_interval_is_queried_at_the_exact_grid_times_in_float32():
    # dY = dW: Y(1) − Y(0) is W(1) − W(0) exactly when the steps tile [0, 1] without gaps.
    torchsde = pytest.importorskip("torchsde")
    y0 = torch.zeros(8, 1)
    bm = torchsde.BrownianInterval(0.0, 1.0, size=(8, 1), dtype=torch.float32, entropy=3)
    sde = sk.SDE(
        lambda t, y: torch.zeros_like(y), lambda t, y: torch.ones_like(y), noise="additive"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torchsde warns when asked beyond its interval
        sol = sk.solve(sde, y0, 0.0, 1.0, solver="euler", dt=0.1, brownian=bm)
    torch.testing.assert_close(sol.ys[-1], bm(0.0, 1.0), rtol=0, atol=2e-6)


@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("compile", [False, True])
def test_a_drift_with_parameters_solves_adaptively_without_autograd_warnings(per_sample, compile):
    # The host's error read must not convert a tensor that requires grad (torch warns then).
    net = torch.nn.Linear(2, 2)
    sde = sk.SDE(lambda t, y: net(y), lambda t, y: torch.full_like(y, 0.1), noise="additive")
    controller = sk.PIController(rtol=1e-3, atol=1e-3, per_sample=per_sample)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Converting a tensor with requires_grad")
        sol = sk.solve(sde, torch.ones(8, 2), 0.0, 1.0, solver="improved_euler",
                       controller=controller, compile=compile)  # fmt: skip
        sk.compat.sdeint(_ModuleSDE(), torch.ones(8, 2), torch.tensor([0.0, 1.0]), method="srk",
                         dt=0.01, adaptive=True)  # fmt: skip
    assert sol.ys.requires_grad  # gradients still flow unless the user detaches


class _ModuleSDE(torch.nn.Module):
    noise_type, sde_type = "diagonal", "ito"

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)

    def f(self, t, y):
        return self.linear(y)

    def g(self, t, y):
        return 0.1 * y
