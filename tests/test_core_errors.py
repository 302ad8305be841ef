"""Misuse fails early, with the exception type and a message that says what is wrong."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import sdekit as sk
from sdekit.solvers import ODE_SOLVERS, SDE_SOLVERS


def _sde(drift=None, diffusion=None, **kwargs) -> sk.SDE:
    return sk.SDE(
        drift or (lambda t, y: -y),
        diffusion or (lambda t, y: 0.1 * torch.ones_like(y)),
        **kwargs,
    )


Y0 = torch.zeros(4, 2, dtype=torch.float64)


# --------------------------------------------------------------------- shapes


def test_drift_of_the_wrong_shape_names_expected_and_actual_shapes():
    sde = _sde(drift=lambda t, y: torch.zeros(4, 3, dtype=y.dtype))
    with pytest.raises(ValueError, match=r"drift returned shape \(4, 3\), expected \(4, 2\)"):
        sk.solve(sde, Y0, 0.0, 1.0, solver="euler", dt=0.1)


def test_diffusion_of_the_wrong_shape_names_expected_and_actual_shapes():
    sde = _sde(diffusion=lambda t, y: torch.ones(4, dtype=y.dtype))
    with pytest.raises(ValueError, match=r"diffusion returned shape \(4,\), expected \(4, 2\)"):
        sk.solve(sde, Y0, 0.0, 1.0, solver="euler", dt=0.1)


def test_general_diffusion_of_the_wrong_shape_names_expected_and_actual_shapes():
    bad = _sde(diffusion=lambda t, y: torch.ones(4, 3, dtype=y.dtype), noise="general")
    with pytest.raises(ValueError, match=r"\(4, 2, m\), got \(4, 3\)"):
        sk.solve(bad, Y0, 0.0, 1.0, solver="euler", dt=0.1)
    declared = _sde(
        diffusion=lambda t, y: torch.ones(4, 2, 5, dtype=y.dtype), noise="general", noise_dim=3
    )
    with pytest.raises(
        ValueError, match=r"diffusion returned shape \(4, 2, 5\), expected \(4, 2, 3\)"
    ):
        sk.solve(declared, Y0, 0.0, 1.0, solver="euler", dt=0.1)


@pytest.mark.parametrize(
    "solver, noise_dim",
    [
        ("euler", None),
        ("improved_euler", None),
        ("milstein", None),
        ("sosra", None),
        ("euler", 3),
        ("sosra", 3),
    ],
)
def test_additive_noise_that_depends_on_y_is_refused(solver, noise_dim):
    # GBM declared additive: improved_euler would give E[Y(1)] = 2.28 instead of e^0.5 = 1.65.
    shape = (4, 2) if noise_dim is None else (4, 2, noise_dim)
    gbm = _sde(
        lambda t, y: y,
        lambda t, y: 0.8 * (y[..., None].expand(shape) if noise_dim else y),
        noise="additive",
        noise_dim=noise_dim,
    )
    with pytest.raises(sk.InputValueError, match=r"declares noise='additive' .* changes with y"):
        sk.solve(gbm, Y0 + 1, 0.0, 1.0, solver=solver, dt=0.1)
    # A diffusion that depends on t and on the sample (not on y) is additive.
    sigma = torch.linspace(0.1, 0.4, 4, dtype=torch.float64).reshape(4, *[1] * (len(shape) - 1))
    timed = _sde(
        diffusion=lambda t, y: (sigma * (1 + t)).expand(shape),
        noise="additive",
        noise_dim=noise_dim,
    )
    sk.solve(timed, Y0, 0.0, 1.0, solver=solver, dt=0.1)


def test_ode_vector_field_of_the_wrong_shape_names_expected_and_actual_shapes():
    ode = sk.ODE(lambda t, y: y.sum(-1))
    with pytest.raises(ValueError, match=r"returned shape \(4,\), expected \(4, 2\)"):
        sk.solve(ode, Y0, 0.0, 1.0, solver="dopri5", dt=0.1)


def test_non_tensor_output_is_a_type_error():
    sde = _sde(drift=lambda t, y: 0.0)
    with pytest.raises(TypeError, match="drift returned float, expected a torch.Tensor"):
        sk.solve(sde, Y0, 0.0, 1.0, solver="euler", dt=0.1)


@pytest.mark.parametrize(
    "y0, message",
    [
        (torch.tensor(1.0), "batch dimension"),
        (torch.zeros(3, 2, dtype=torch.long), "floating point"),
        ([[0.0]], "torch.Tensor"),
        (torch.zeros(3, 2, dtype=torch.bfloat16), r"16-bit state .*y0\.float\(\)"),
        (torch.zeros(3, 2, dtype=torch.float16), "16-bit state"),
    ],
    ids=["0-d", "integer", "list", "bfloat16", "float16"],
)
def test_bad_initial_state_is_rejected(y0, message):
    error = ValueError if isinstance(y0, torch.Tensor) and y0.dim() == 0 else TypeError
    with pytest.raises(error, match=message):
        sk.solve(_sde(), y0, 0.0, 1.0, solver="euler", dt=0.1)


# --------------------------------------------------------------------- dtype and device


def test_dtype_mismatch_between_y0_and_drift_is_named():
    sde = _sde(drift=lambda t, y: torch.zeros(y.shape, dtype=torch.float32))
    with pytest.raises(
        TypeError, match=r"drift returned torch.float32 on cpu, but y0 is torch.float64"
    ):
        sk.solve(sde, Y0, 0.0, 1.0, solver="euler", dt=0.1)


def test_dtype_mismatch_between_y0_and_diffusion_is_named():
    sde = _sde(diffusion=lambda t, y: torch.ones(y.shape, dtype=torch.float32))
    with pytest.raises(
        TypeError, match=r"diffusion returned torch.float32 on cpu, but y0 is torch.float64"
    ):
        sk.solve(sde, Y0, 0.0, 1.0, solver="euler", dt=0.1)


def test_device_mismatch_between_y0_and_drift_is_named():
    # The meta device stands in for an accelerator: the check happens before any arithmetic.
    sde = _sde(drift=lambda t, y: torch.zeros(y.shape, dtype=y.dtype, device="meta"))
    with pytest.raises(
        TypeError, match=r"drift returned torch.float64 on meta, but y0 is torch.float64 on cpu"
    ):
        sk.solve(sde, Y0, 0.0, 1.0, solver="euler", dt=0.1)


# --------------------------------------------------------------------- scheme names


def test_unknown_sde_solver_lists_the_known_ones():
    with pytest.raises(ValueError) as info:
        sk.solve(_sde(), Y0, 0.0, 1.0, solver="eulr", dt=0.1)
    message = str(info.value)
    assert "unknown SDE solver 'eulr'" in message
    assert all(name in message for name in SDE_SOLVERS)


def test_unknown_ode_solver_lists_the_known_ones():
    with pytest.raises(ValueError) as info:
        sk.solve(sk.ODE(lambda t, y: -y), Y0, 0.0, 1.0, solver="rk45", dt=0.1)
    message = str(info.value)
    assert "unknown ODE solver 'rk45'" in message
    assert all(name in message for name in ODE_SOLVERS)


def test_unknown_milstein_derivative_lists_the_known_ones():
    with pytest.raises(ValueError, match="autograd, finite_difference"):
        sk.Milstein(derivative="symbolic")


def test_solver_of_the_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="solver must be a name or an sdekit solver instance"):
        sk.solve(_sde(), Y0, 0.0, 1.0, solver=42, dt=0.1)


# --------------------------------------------------------------------- step sizes and times


@pytest.mark.parametrize("dt", [0.0, math.nan, math.inf, -math.inf, torch.tensor(0.0), True, "0.1"])
def test_non_positive_or_non_finite_dt_is_rejected(dt):
    with pytest.raises(ValueError, match="step size must be a positive finite number"):
        sk.solve(_sde(), Y0, 0.0, 1.0, solver="euler", dt=dt)


def test_a_negative_dt_is_told_that_the_direction_comes_from_t0_and_t1():
    # diffrax takes dt0 < 0 for a backward solve; here |dt| is given and t1 < t0 says backward
    with pytest.raises(ValueError, match=r"direction comes from t0 and t1.*pass dt=0.1"):
        sk.solve(_sde(), Y0, 1.0, 0.0, solver="euler", dt=-0.1)


@pytest.mark.parametrize(
    "dt", [torch.tensor(0.1), torch.tensor([0.1]), np.float32(0.1), np.float64(0.1)]
)
def test_a_step_or_time_given_as_a_numpy_or_one_element_tensor_is_its_number(dt):
    sol = sk.solve(_sde(), Y0, np.float64(0.0), torch.tensor(1.0), solver="euler", dt=dt)
    assert sol.stats["steps"] == 10 and sol.ts.tolist() == [1.0]


@pytest.mark.parametrize("name", ["t0", "t1"])
def test_a_time_that_requires_grad_is_refused_rather_than_silently_cut(name):
    times = {
        "t0": 0.0,
        "t1": 1.0,
        name: torch.tensor(0.5 if name == "t0" else 1.0).requires_grad_(),
    }
    with pytest.raises(ValueError, match=f"{name} requires grad.*{name}.detach()"):
        sk.solve(_sde(), Y0, times["t0"], times["t1"], solver="euler", dt=0.1)
    with pytest.raises(ValueError, match=r"dt requires grad.*dt.detach()"):
        sk.solve(_sde(), Y0, 0.0, 1.0, solver="euler", dt=torch.tensor(0.1, requires_grad=True))
    # save times and StepTo's grid: their gradients were silently None
    times = torch.linspace(0.0, 1.0, 5, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match=r"saveat requires grad.*saveat.detach()"):
        sk.solve(_sde(), Y0, 0.0, 1.0, solver="euler", dt=0.1, saveat=times)
    with pytest.raises(ValueError, match=r"StepTo\(ts\) requires grad.*detached"):
        sk.StepTo(times)


def test_missing_dt_and_controller_is_rejected():
    with pytest.raises(ValueError, match=r"give dt=\.\.\. for fixed steps, or controller=\.\.\."):
        sk.solve(_sde(), Y0, 0.0, 1.0, solver="euler")


@pytest.mark.parametrize("name, value", [("t0", math.nan), ("t1", math.inf)])
def test_non_finite_time_is_rejected(name, value):
    times = {"t0": 0.0, "t1": 1.0, name: value}
    with pytest.raises(ValueError, match=f"{name}=.*must be a finite number"):
        sk.solve(_sde(), Y0, times["t0"], times["t1"], solver="euler", dt=0.1)


@pytest.mark.parametrize(
    "t0, t1, saveat", [(0.0, 1.0, [0.5, 1.5]), (0.0, 1.0, [-0.1]), (1.0, 0.0, [0.5, 1.2])]
)
def test_saveat_outside_the_time_span_is_rejected(t0, t1, saveat):
    with pytest.raises(ValueError, match=r"saveat times \[.*\] lie outside \[0.0, 1.0\]"):
        sk.solve(_sde(), Y0, t0, t1, solver="euler", dt=0.1, saveat=saveat)


@pytest.mark.parametrize("per_sample", [None, False, True])
def test_float32_time_grids_from_t0_to_t1_end_on_t0_and_t1(per_sample):
    # torch.linspace(0.2, 1.2, n) is float32: its ends are 0.2 and 1.2 rounded, which were refused
    # ("runs from 0.2 to 1.2 but the solve runs from 0.2 to 1.2", "lie outside [0.2, 1.2]").
    grid, save = torch.linspace(0.2, 1.2, 41), torch.linspace(0.2, 1.2, 11)
    if per_sample is None:
        sol = sk.solve(_sde(), Y0, 0.2, 1.2, solver="euler", controller=sk.StepTo(grid),
                       saveat=save)  # fmt: skip
    else:
        sol = sk.solve(_sde(noise="additive"), Y0, 0.2, 1.2, solver="improved_euler", saveat=save,
                       controller=sk.IController(rtol=1e-3, atol=1e-3, per_sample=per_sample))  # fmt: skip
    assert (sol.ts[0].item(), sol.ts[-1].item()) == (0.2, 1.2) and len(sol.ts) == 11
    assert torch.equal(sol.ys[0], Y0)  # the save time t0 is t0 itself, not a step after it
    # a grid that does not end at t1 in its own precision is still refused, with exact numbers
    with pytest.raises(
        ValueError, match=r"runs from 0.2 to 1.25 but the solve runs from 0.2 to 1.2:"
    ):
        sk.solve(
            _sde(),
            Y0,
            0.2,
            1.2,
            solver="euler",
            controller=sk.StepTo(torch.linspace(0.2, 1.25, 41)),
        )


@pytest.mark.parametrize(
    "t0, t1, saveat, order",
    [
        (0.0, 1.0, [0.5, 0.2], "strictly increasing"),
        (0.0, 1.0, [0.5, 0.5], "strictly increasing"),
        (1.0, 0.0, [0.2, 0.5], "strictly decreasing"),
    ],
)
def test_unsorted_saveat_is_rejected(t0, t1, saveat, order):
    with pytest.raises(ValueError, match=f"saveat must be {order}"):
        sk.solve(_sde(), Y0, t0, t1, solver="euler", dt=0.1, saveat=saveat)


def test_empty_saveat_is_rejected():
    with pytest.raises(ValueError, match="saveat is empty"):
        sk.solve(_sde(), Y0, 0.0, 1.0, solver="euler", dt=0.1, saveat=[])


# --------------------------------------------------------------------- non-finite results


def _blows_up_after(t_bad: float) -> sk.SDE:
    def drift(t, y):
        return torch.where(t >= t_bad, torch.full_like(y, math.nan), -y)

    return _sde(drift=drift)


def test_non_finite_result_names_the_time_interval():
    sde = _blows_up_after(0.5)
    with pytest.raises(sk.SolveError, match=r"non-finite between t=0 and t=1\b"):
        sk.solve(sde, Y0, 0.0, 1.0, solver="euler", dt=0.25)
    # With save points the interval narrows to the one where it happened (the saved states are
    # checked once, at the end: no host read per save time), compiled or not, y0 saved or not.
    for saveat in ([0.25, 0.5, 0.75, 1.0], [0.0, 0.25, 0.5, 0.75]):
        for compile in (False, True):
            with pytest.raises(sk.SolveError, match=r"non-finite between t=0.5 and t=0.75\b"):
                sk.solve(sde, Y0, 0.0, 1.0, solver="euler", dt=0.25, saveat=saveat,
                         compile=compile)  # fmt: skip


def test_non_finite_result_is_returned_with_check_finite_false():
    sol = sk.solve(_blows_up_after(0.5), Y0, 0.0, 1.0, solver="euler", dt=0.25, check_finite=False)
    assert torch.isnan(sol.ys).all()


def test_overflow_to_inf_is_caught_as_well():
    ode = sk.ODE(lambda t, y: y * y)  # y' = y^2 from 1 blows up at t = 1
    y0 = torch.ones(2, 1, dtype=torch.float64)
    with pytest.raises(sk.SolveError, match=r"non-finite between t=0 and t=3"):
        sk.solve(ode, y0, 0.0, 3.0, solver="euler", dt=0.1)


def test_adaptive_solve_that_cannot_get_past_a_blow_up_says_where():
    # A non-finite step is a rejection; the step shrinks until it falls below dt_min (or until
    # t + h == t with the default dt_min=0), and the error names the time it got stuck at.
    ode = sk.ODE(lambda t, y: torch.where(t >= 0.5, torch.full_like(y, math.nan), -y))
    controller = sk.PIController(rtol=1e-4, atol=1e-6, dt_min=1e-6)
    with pytest.raises(sk.SolveError, match=r"dt_min=1e-06 at t=0\.4999"):
        sk.solve(ode, Y0, 0.0, 1.0, solver="dopri5", controller=controller)
    with pytest.raises(sk.SolveError, match=r"dt_min=0 at t=0\.5 "):
        sk.solve(ode, Y0, 0.0, 1.0, solver="dopri5", controller=sk.PIController())
    sol = sk.solve(ode, Y0, 0.0, 1.0, solver="dopri5", controller=sk.PIController(), throw=False)
    assert sol.status.tolist() == [1, 1, 1, 1]
    assert torch.isfinite(sol.ys).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("kind", ["ode", "sde"])
def test_a_first_step_that_is_never_accepted_ends_the_solve_at_t0(kind, per_sample, dtype):
    # y/t is infinite at t0 = 0, so every attempted first step is rejected. The step shrinks
    # until it no longer moves t in y0's dtype or is below the dtype's smallest normal number;
    # before, a float32 shared-time solve at t = 0 looped forever (its step rounded to 0 in
    # float32 while 0 + h != 0 in float64) or overflowed in the bridge's arithmetic.
    def drift(t, y):
        return y / (t.reshape(-1, 1) if t.dim() else t)  # per sample, t has the batch's shape

    if kind == "ode":
        problem, solver = sk.ODE(drift), "dopri5"
    else:
        problem = sk.SDE(drift, lambda t, y: torch.ones_like(y), noise="diagonal")
        solver = "sosri"
    controller = sk.PIController(rtol=1e-3, atol=1e-3, per_sample=per_sample)
    y0 = torch.ones(4, 2, dtype=dtype)
    with pytest.raises(sk.SolveError, match=r"dt_min=0 at t=0 .*too short to move t") as info:
        sk.solve(problem, y0, 0.0, 1.0, solver=solver, controller=controller, max_steps=1000)
    h = float(re.search(r"\|h\|=([-+0-9.e]+)", str(info.value)).group(1))
    assert 0 < h < torch.finfo(dtype).tiny


# --------------------------------------------------------------------- incompatible combinations


@pytest.mark.parametrize(
    "sde, solver, names",
    [
        (_sde(calculus="ito"), "heun", ["Heun", "stratonovich", "ito"]),
        (_sde(calculus="ito"), "euler_heun", ["EulerHeun", "stratonovich", "ito"]),
        (_sde(calculus="stratonovich"), "euler", ["Euler", "ito", "stratonovich"]),
        (
            _sde(diffusion=lambda t, y: torch.ones(*y.shape, 3, dtype=y.dtype), noise="general"),
            "milstein",
            ["Milstein", "general noise"],
        ),
        (
            _sde(calculus="ito", noise="diagonal"),
            "improved_euler",
            ["improved_euler", "Itô", "diagonal"],
        ),
        (_sde(), "dopri5", ["'dopri5' is for ODEs", "SDE solver"]),
        (_sde(), sk.solvers.runge_kutta.rk4(), ["ODE solver", "SDE (diagonal noise)"]),
        (sk.ODE(lambda t, y: -y), "milstein", ["'milstein' is for SDEs", "ODE solver"]),
        (sk.ODE(lambda t, y: -y), sk.Heun(), ["Heun is an SDE solver", "ODE"]),
    ],
    ids=[
        "heun-on-ito",
        "euler_heun-on-ito",
        "euler-on-stratonovich",
        "milstein-on-general",
        "improved_euler-on-ito-diagonal",
        "ode-name-on-sde",
        "ode-instance-on-sde",
        "sde-name-on-ode",
        "sde-instance-on-ode",
    ],
)
def test_incompatible_solver_and_problem_is_a_value_error_naming_both(sde, solver, names):
    with pytest.raises(ValueError) as info:
        sk.solve(sde, Y0, 0.0, 1.0, solver=solver, dt=0.1)
    for name in names:
        assert name in str(info.value), f"{name!r} missing from: {info.value}"


# --------------------------------------------------------------------- problem construction


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(noise="diagnoal"),
            "noise=.diagnoal.: choose one of diagonal, scalar, additive, general",
        ),
        (dict(calculus="stratonovitch"), "calculus must be 'ito' or 'stratonovich'"),
        (dict(noise="general", noise_dim=0), "noise_dim=0.*positive int"),
        (dict(noise="diagonal", noise_dim=2), "noise_dim is for 'general'"),
    ],
)
def test_bad_problem_options_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _sde(**kwargs)


def test_non_callable_coefficients_are_type_errors():
    with pytest.raises(TypeError, match=re.escape("SDE(drift=...)")):
        sk.SDE(1.0, lambda t, y: y)
    with pytest.raises(TypeError, match="ODE.*callable"):
        sk.ODE("f")


def test_object_that_is_not_a_problem_is_a_type_error():
    with pytest.raises(
        TypeError, match="expected an sdekit.SDE, an sdekit.ODE or a torchsde-style"
    ):
        sk.solve(object(), Y0, 0.0, 1.0, solver="euler", dt=0.1)


def test_torchsde_module_with_unknown_noise_type_is_named():
    class Module:
        noise_type, sde_type = "diagonl", "ito"

        def f(self, t, y):
            return y

        def g(self, t, y):
            return y

    with pytest.raises(ValueError, match="noise_type='diagonl'"):
        sk.solve(Module(), Y0, 0.0, 1.0, solver="euler", dt=0.1)


def test_unknown_brownian_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="bridge, redraw"):
        sk.solve(_sde(), Y0, 0.0, 1.0, solver="euler", dt=0.1, brownian="levy")


@pytest.mark.parametrize("solver", ["euler", "sosri"])
def test_fixed_steps_name_a_drift_that_is_nan_from_the_start(solver):
    # No step size helps: the error names the drift, not the steps (it said "reduce the step
    # size" once the whole solve had run).
    sde = sk.SDE(lambda t, y: y * math.nan, lambda t, y: y, noise="diagonal")
    y0 = torch.ones(4, 2)
    with pytest.raises(sk.InputValueError, match=r"the drift returned non-finite .* first eval"):
        sk.solve(sde, y0, 0.0, 1.0, solver=solver, dt=0.1)
    with pytest.raises(sk.InputValueError, match=r"t=0, at y0, which holds NaN/Inf: fix the"):
        sk.solve(sde, y0 * math.nan, 0.0, 1.0, solver=solver, dt=0.1)
    sol = sk.solve(sde, y0, 0.0, 1.0, solver=solver, dt=0.1, check_finite=False)
    assert sol.ys.isnan().all()


def test_a_brownian_object_of_another_size_or_dtype_or_without_the_area_is_refused():
    # torchsde's BrownianInterval of a smaller size broadcast silently: one path for every sample
    # (size (1, 3)) or one Brownian motion for every channel (size (16, 1)).
    torchsde = pytest.importorskip("torchsde")
    sde = sk.SDE(lambda t, y: -y, lambda t, y: 0.5 * y, noise="diagonal")
    y0 = torch.ones(16, 3, dtype=torch.float64)
    for size, dtype, message in [
        ((1, 3), torch.float64, r"increments have shape \(1, 3\), .* size=\(16, 3\)"),
        ((16, 1), torch.float64, r"increments have shape \(16, 1\)"),
        ((16, 3), torch.float32, r"increments are torch.float32 on cpu, but y0 is torch.float64"),
    ]:
        bm = torchsde.BrownianInterval(0.0, 1.0, size=size, dtype=dtype)
        with pytest.raises(sk.InputValueError, match=message):
            sk.solve(sde, y0, 0.0, 1.0, solver="euler", dt=0.1, brownian=bm)
    additive = sk.SDE(lambda t, y: -y, lambda t, y: torch.full_like(y, 0.5), noise="additive")
    bm = torchsde.BrownianInterval(0.0, 1.0, size=(16, 3), dtype=torch.float64)
    with pytest.raises(sk.InputValueError, match="levy_area_approximation='space-time'"):
        sk.solve(additive, y0, 0.0, 1.0, solver="sosra", dt=0.1, brownian=bm)


def test_a_saveat_of_more_than_one_dimension_is_refused():
    with pytest.raises(sk.InputValueError, match=r"1-D sequence of times, got a tensor of shape"):
        sk.solve(sk.ODE(lambda t, y: -y), Y0, 0.0, 1.0, solver="euler", dt=0.1,
                 saveat=torch.ones(2, 2) * 0.5)  # fmt: skip


def test_an_adaptive_controller_without_an_estimate_names_solvers_for_the_problem():
    with pytest.raises(
        ValueError, match=r"no embedded error estimate.*'sosri', 'sosra' or"
    ) as info:
        sk.solve(_sde(), Y0, 0.0, 1.0, solver="euler", controller=sk.PIController())
    assert "dopri5" not in str(info.value)
    with pytest.raises(ValueError, match=r"'dopri5'"):
        sk.solve(sk.ODE(lambda t, y: -y), Y0, 0.0, 1.0, solver="rk4", controller=sk.PIController())


def test_improved_euler_drift_only_is_refused_where_it_solves_another_equation():
    # drift_only takes g at the step's start (Itô): on Stratonovich GBM it gave E[Y(1)] 1.65
    # for e^0.625 = 1.87; under adaptive control the steps refined for large |dW| bias the
    # Itô correction (per sample, E[log Y(1)] 0.42 for 0.375).
    gbm = lambda calculus: _sde(  # noqa: E731
        lambda t, y: 0.5 * y, lambda t, y: 0.5 * y, noise="diagonal", calculus=calculus
    )
    drift_only = sk.ImprovedEuler(drift_only=True)
    y0 = torch.ones(4, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"Itô interpretation.*ImprovedEuler\(\) .* or 'heun'"):
        sk.solve(gbm("stratonovich"), y0, 0.0, 1.0, solver=drift_only, dt=0.1)
    controller = sk.PIController(rtol=1e-2, atol=1e-2, per_sample=True)
    with pytest.raises(ValueError, match=r"cannot be used with an adaptive controller.*'sosri'"):
        sk.solve(gbm("ito"), y0, 0.0, 1.0, solver=drift_only, controller=controller)
    assert drift_only.strong_order == 0.5
    sk.solve(gbm("ito"), y0, 0.0, 1.0, solver=drift_only, dt=0.1)  # fixed steps: Itô
    # additive noise: the pair is the paper's, adaptive and strong order 1
    ou = _sde(noise="additive")
    sol = sk.solve(ou, Y0, 0.0, 1.0, solver=drift_only, controller=controller, generator=0)
    assert drift_only.strong_order == 1.0 and bool(torch.isfinite(sol.ys).all())


@pytest.mark.parametrize("name", ["heun", "euler_heun", "improved_euler"])
def test_heun_type_schemes_declare_strong_order_one_half_for_general_noise(name):
    # Without Lévy areas non-commuting noise costs them half an order (measured slopes 0.50,
    # 0.71, 0.50 on a linear system with three Brownian motions); commutative noise keeps 1.
    solver = sk.solvers.resolve_solver(name, _sde(noise="diagonal", calculus="stratonovich"))
    assert solver.strong_order == 1.0
    general = _sde(
        diffusion=lambda t, y: 0.1 * y[..., None].expand(*y.shape, 3),
        noise="general",
        calculus="stratonovich",
    )
    assert sk.solvers.resolve_solver(name, general).strong_order == 0.5


def test_a_scheme_whose_stages_leave_the_step_is_refused_with_jump_times():
    # SOSRI's drift stage at t + 3.75 h saw a drift switched on at a jump time: E[Y(1)] off by
    # 1.7% at tolerance 1e-3 where sosri2 and sriw1 are within 1.6e-4.
    sde = _sde(lambda t, y: -y, lambda t, y: 0.3 * y)
    controller = sk.ClipStepSize(sk.PIController(rtol=1e-3, atol=1e-3), jump_ts=[0.5])
    assert sk.solvers.resolve_solver("sosri", sde).stage_span[1] > 3.7
    with pytest.raises(ValueError, match=r"t \+ 3.75 h.*jump time.*'sosri2' or 'sriw1'"):
        sk.solve(sde, Y0 + 1, 0.0, 1.0, solver="sosri", controller=controller)
    for name in ("sosri2", "sriw1"):
        sk.solve(sde, Y0 + 1, 0.0, 1.0, solver=name, controller=controller, generator=0)
    # a jump time outside the span is no jump of this solve
    outside = sk.ClipStepSize(sk.PIController(rtol=1e-3, atol=1e-3), jump_ts=[2.0])
    sk.solve(sde, Y0 + 1, 0.0, 1.0, solver="sosri", controller=outside, generator=0)


# --------------------------------------------------------------------- review fixes


def test_a_per_sample_drift_that_does_not_broadcast_its_times_names_the_fix():
    sde = _sde(drift=lambda t, y: -t * y, noise="additive")  # t (batch,) against y (batch, 2)
    controller = sk.PIController(rtol=1e-3, atol=1e-3, per_sample=True)
    with pytest.raises(sk.InputValueError, match=r"t of shape \(batch,\).*t.view\(-1, 1\)"):
        sk.solve(sde, Y0[:3], 0.0, 1.0, solver="sosra", controller=controller, generator=0)
    # the same drift with one time for the batch is fine
    sk.solve(sde, Y0[:3], 0.0, 1.0, solver="sosra", controller=sk.PIController(), generator=0)


def test_an_unknown_brownian_name_is_refused_for_an_ode_too():
    with pytest.raises(sk.InputValueError, match="brownian='bogus'.*bridge, redraw"):
        sk.solve(sk.ODE(lambda t, y: -y), Y0, 0.0, 1.0, solver="rk4", dt=0.1, brownian="bogus")


def test_general_noise_finds_its_dimension_at_t0():
    # a diffusion defined only on [t0, t1] (a schedule lookup) was probed at t = 0
    def diffusion(t, y):
        if not 1.0 <= float(t.reshape(-1)[0]) <= 2.0:
            raise ValueError(f"t={float(t)} outside [1, 2]")
        return torch.ones(*y.shape, 3, dtype=y.dtype)

    sde = sk.SDE(lambda t, y: -y, diffusion, noise="general")
    sol = sk.solve(sde, Y0, 1.0, 2.0, solver="euler", dt=0.1, generator=0)
    assert sol.ys.shape == (1, *Y0.shape)


@pytest.mark.parametrize(
    ("rtol", "atol", "match"),
    [
        (torch.tensor(-1e-3), 1e-3, "rtol=.*finite and non-negative"),
        (torch.tensor(math.nan), 1e-3, "rtol=.*finite and non-negative"),
        (1e-3, torch.tensor([1e-3, math.inf]), "atol=.*finite and non-negative"),
        (torch.tensor(0.0), torch.tensor(0.0), "both 0"),
        (torch.tensor([1e-3, 0.0]), torch.tensor([1e-3, 0.0]), "both 0"),
        (torch.tensor(1), 1e-3, "floating"),
    ],
)
def test_tensor_tolerances_are_checked_as_floats_are(rtol, atol, match):
    with pytest.raises((sk.InputValueError, sk.InputTypeError), match=match):
        sk.PIController(rtol=rtol, atol=atol)


@pytest.mark.parametrize("per_sample", [False, True])
def test_a_tolerance_that_does_not_broadcast_to_the_state_says_how_to_shape_it(per_sample):
    controller = sk.PIController(rtol=torch.full((4,), 1e-3), atol=1e-3, per_sample=per_sample)
    with pytest.raises(sk.InputValueError, match=r"shape \(4,\).*give shape \(4, 1\)"):
        sk.solve(_sde(), Y0, 0.0, 1.0, solver="sosri", controller=controller, generator=0)
    per_sample_tol = sk.PIController(rtol=torch.full((4, 1), 1e-3), atol=1e-3, per_sample=True)
    sk.solve(_sde(), Y0, 0.0, 1.0, solver="sosri", controller=per_sample_tol, generator=0)


def test_a_state_that_leaves_a_functions_domain_is_named_as_a_likely_cause():
    # a CIR-like variance below 0 under sqrt: the message only said to reduce the step size,
    # which cannot help there
    cir = sk.SDE(lambda t, v: 1.5 * (0.04 - v), lambda t, v: 0.5 * v.sqrt())
    v0 = torch.full((200, 1), 0.04, dtype=torch.float64)
    with pytest.raises(sk.SolveError, match=r"outside a function's domain.*clamp\(min=0\)"):
        sk.solve(cir, v0, 0.0, 1.0, solver="euler", dt=1 / 50, generator=0)
