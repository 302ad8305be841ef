"""Stochastic Runge–Kutta engines: measured strong order, error estimates, costs, capabilities.

Strong orders are fitted by :func:`sdekit.testing.strong_order` (one Brownian path per sample
shared by every step size, float64, RMS error at ``t = 1``, 95% bootstrap interval over paths) on:

- geometric Brownian motion and the arctan problem of :mod:`sdekit.testing.problems` (exact);
- additive noise with a nonlinear drift, ``dX = -(sin 3X + X) dt + (1 + t) dW``, against a fine
  SRA3 solve on the same path (a linear drift would show order 2 and could not tell 1.5 from 2;
  the time-dependent diffusion exercises the diffusion nodes ``c1``).

A fit passes iff its interval reaches ``[1.35, 1.75]``: 0.15 below the theory, 0.25 above (these
schemes run a little fast on these problems at these steps, up to 1.62).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torchsde

import sdekit as sk
import sdekit.testing as skt
from sdekit.brownian import CallableBrownian, GaussianIncrements, Increment
from sdekit.solvers.srk import SRA, SRI, SRK_SOLVERS
from sdekit.tableaux.stochastic import SRA_TABLEAUX, SRI_TABLEAUX
from sdekit.testing import problems as P

F64 = torch.float64
SRI_NAMES = ["sriw1", "sriw2", "sosri", "sosri2"]
SRA_NAMES = ["sra1", "sra2", "sra3", "sosra", "sosra2"]
STEPS = [2.0**-k for k in range(4, 9)]
BATCH = 400

MU, SIGMA = 0.5, 0.8


def gbm() -> P.ExactSDE:
    return P.gbm(MU, SIGMA, y0=(1.0,))


def arctan() -> P.ExactSDE:
    return P.arctan(1.0, y0=(0.5,))


def additive_nonlinear() -> sk.SDE:
    return sk.SDE(
        lambda t, y: -(torch.sin(3 * y) + y),
        lambda t, y: (1 + t) * torch.ones_like(y),
        noise="additive",
    )


def assert_order(fit: skt.OrderFit, expected: float = 1.5) -> None:
    low, high = fit.ci
    assert high >= expected - 0.15 and low <= expected + 0.25 and high - low <= 0.3, str(fit)


# --------------------------------------------------------------------------- strong order


@pytest.mark.parametrize("problem", [gbm, arctan], ids=["gbm", "arctan"])
@pytest.mark.parametrize("name", SRI_NAMES)
def test_sri_schemes_have_strong_order_one_and_a_half(problem, name):
    fit = skt.strong_order(SRK_SOLVERS[name](), problem(), None, 1.0, STEPS, n_paths=BATCH, seed=11)
    assert_order(fit)


@pytest.fixture(scope="module")
def additive_reference():
    """One path and the SRA3 solve at h = 2^-11 on it: the target of every SRA fit."""
    y0 = torch.full((BATCH, 1), 0.3, dtype=F64)
    path = skt.brownian_path((BATCH, 1), seed=5, dt=2.0**-11)
    reference = sk.solve(
        additive_nonlinear(), y0, 0.0, 1.0, solver=SRK_SOLVERS["sra3"](), dt=2.0**-11, brownian=path
    ).ys[-1]
    return y0, path, reference


@pytest.mark.parametrize("name", SRA_NAMES)
def test_sra_schemes_have_strong_order_one_and_a_half_with_a_nonlinear_drift(
    name, additive_reference
):
    y0, path, reference = additive_reference
    fit = skt.strong_order(
        SRK_SOLVERS[name](),
        additive_nonlinear(),
        y0,
        1.0,
        STEPS,
        exact=lambda *args: reference,
        n_paths=BATCH,
        path=path,
    )
    assert_order(fit)


def test_backward_solve_converges_to_the_reverse_time_solution():
    # Integrating t from 1 down to 0 is the SDE in s = 1 - t with drift -μX and W̃(s) = W(1 - s) -
    # W(1): X = X_0 exp((-μ - σ²/2) + σ (W(0) - W(1))).
    def exact(y0, path, t0, t1):
        return y0 * torch.exp(-MU - SIGMA**2 / 2 - SIGMA * path(0.0, 1.0))

    fit = skt.strong_order(
        SRK_SOLVERS["sriw1"](), gbm(), None, 0.0, STEPS, exact=exact, t0=1.0, n_paths=BATCH, seed=3
    )
    assert_order(fit)


# --------------------------------------------------------------------------- agreement with torchsde


def _one_step(solver, problem, y0, bm, h):
    t = torch.zeros((), dtype=F64)
    inc = CallableBrownian(bm, levy_area=True).increment(t, h)
    return solver.step(problem, t, y0, h, inc, None)[0]


def test_sriw2_step_equals_torchsde_srk_on_diagonal_noise():
    # torchsde's method="srk" steps Rößler's SRI2W1 (its tableau srid2) for diagonal noise.
    class Diagonal(torch.nn.Module):
        noise_type, sde_type = "diagonal", "ito"

        def f(self, t, y):
            return torch.sin(y) * (1 + t)

        def g(self, t, y):
            return torch.cos(y) * (1 + t) + 0.5

    y0 = torch.linspace(-1, 1, 12, dtype=F64).reshape(4, 3)
    bm = torchsde.BrownianInterval(
        0.0, 1.0, size=(4, 3), dtype=F64, entropy=1, levy_area_approximation="space-time"
    )
    ts = torch.tensor([0.0, 0.25], dtype=F64)
    expected = torchsde.sdeint(Diagonal(), y0, ts, bm=bm, method="srk", dt=0.25)[-1]
    ours = _one_step(SRK_SOLVERS["sriw2"](), sk.as_problem(Diagonal()), y0, bm, 0.25)
    torch.testing.assert_close(ours, expected, rtol=1e-13, atol=1e-13)


def test_sra1_step_equals_torchsde_srk_on_matrix_additive_noise():
    class Additive(torch.nn.Module):
        noise_type, sde_type = "additive", "ito"

        def f(self, t, y):
            return torch.sin(y) * (1 + t)

        def g(self, t, y):
            scale = torch.tensor([1.0, 0.5], dtype=y.dtype)
            return (1 + t) * torch.ones(*y.shape, 2, dtype=y.dtype) * scale

    y0 = torch.linspace(-1, 1, 12, dtype=F64).reshape(4, 3)
    bm = torchsde.BrownianInterval(
        0.0, 1.0, size=(4, 2), dtype=F64, entropy=2, levy_area_approximation="space-time"
    )
    ts = torch.tensor([0.0, 0.25], dtype=F64)
    expected = torchsde.sdeint(Additive(), y0, ts, bm=bm, method="srk", dt=0.25)[-1]
    ours = _one_step(SRK_SOLVERS["sra1"](), sk.as_problem(Additive()), y0, bm, 0.25)
    torch.testing.assert_close(ours, expected, rtol=1e-13, atol=1e-13)


# --------------------------------------------------------------------------- error estimate


@pytest.mark.parametrize("name", sorted(set(SRK_SOLVERS) - {"sri1"}))
def test_embedded_error_estimate_is_a_magnitude_of_the_declared_order(name):
    # The battery measures the order (skt.assert_solver_properties, property error_estimate);
    # here: the estimate is a non-negative magnitude, as the engine documents.
    solver = SRK_SOLVERS[name]()
    problem = additive_nonlinear() if isinstance(solver, SRA) else arctan()
    y0 = torch.full((400, 1), 0.4, dtype=F64)
    source = GaussianIncrements(
        y0.shape,
        dtype=F64,
        device=y0.device,
        generator=torch.Generator().manual_seed(0),
        levy_area=True,
    )
    t = torch.zeros((), dtype=F64)
    _, error, _ = solver.step(problem, t, y0, 0.01, source.increment(t, 0.01), None)
    assert (error >= 0).all() and (error > 0).any()


def test_adaptive_solve_error_falls_with_the_tolerance():
    problem = gbm()
    y0 = problem.initial(200)
    bm = skt.brownian_path((200, 1), seed=7, dt=2.0**-12)
    target = problem.exact(y0, bm, 0.0, 1.0)
    errors = []
    for tol in (1e-2, 1e-3, 1e-4):
        controller = sk.PIController(rtol=tol, atol=tol)
        sol = sk.solve(
            problem, y0, 0.0, 1.0, solver=SRK_SOLVERS["sosri"](), controller=controller, brownian=bm
        )
        errors.append(float((sol.ys[-1] - target).pow(2).mean().sqrt()))
    assert errors[0] > 3 * errors[1] > 9 * errors[2]


# --------------------------------------------------------------------------- per-sample and backward steps


def test_per_sample_step_sizes_match_shared_steps_and_zero_steps_stay_put():
    problem = arctan()
    solver = SRK_SOLVERS["sosri"]()
    y0 = torch.linspace(-1, 1, 4, dtype=F64).reshape(4, 1)
    hs = torch.tensor([0.1, 0.05, 0.0, -0.2], dtype=F64)
    t = torch.tensor([0.0, 0.3, 0.5, 1.0], dtype=F64)
    dW = torch.tensor([[0.2], [-0.1], [0.0], [0.3]], dtype=F64)
    H = torch.tensor([[0.05], [0.01], [0.0], [-0.04]], dtype=F64)
    y1, err, _ = solver.step(problem, t, y0, hs, Increment(dW, H), None)
    assert torch.isfinite(y1).all() and torch.isfinite(err).all()
    assert y1[2] == y0[2] and err[2] == 0
    for i in (0, 1, 3):
        yi, ei, _ = solver.step(
            problem, t[i], y0[i : i + 1], float(hs[i]), Increment(dW[i : i + 1], H[i : i + 1]), None
        )
        torch.testing.assert_close(y1[i : i + 1], yi, rtol=1e-14, atol=1e-14)
        torch.testing.assert_close(err[i : i + 1], ei, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("name", ["sosri", "sriw2", "sosra", "sra3"])
def test_backward_step_is_the_forward_step_of_the_time_reversed_problem(name):
    # Autonomous problem: a step of -k from (f, g) equals a step of +k from (-f, g), same noise.
    solver = SRK_SOLVERS[name]()
    if isinstance(solver, SRA):
        f, g, noise = (lambda y: torch.cos(y) - y), (lambda y: 0.7 * torch.ones_like(y)), "additive"
    else:
        f, g, noise = (lambda y: torch.sin(y)), (lambda y: torch.cos(y) + 1.5), "diagonal"
    forward = sk.SDE(lambda t, y: f(y), lambda t, y: g(y), noise=noise)
    reversed_ = sk.SDE(lambda t, y: -f(y), lambda t, y: g(y), noise=noise)
    y0 = torch.linspace(-1, 1, 6, dtype=F64).reshape(6, 1)
    inc = Increment(
        torch.linspace(-0.3, 0.4, 6, dtype=F64).reshape(6, 1),
        torch.linspace(0.05, -0.05, 6, dtype=F64).reshape(6, 1),
    )
    t = torch.ones((), dtype=F64)
    back = solver.step(forward, t, y0, -0.25, inc, None)
    fwd = solver.step(reversed_, -t, y0, 0.25, inc, None)
    torch.testing.assert_close(back[0], fwd[0], rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(back[1], fwd[1], rtol=1e-14, atol=1e-14)


# --------------------------------------------------------------------------- evaluation counts


class Counting:
    """An SDE that counts its drift and diffusion calls."""

    def __init__(self, problem: sk.SDE):
        self.problem, self.n_f, self.n_g = problem, 0, 0
        self.sde = sk.SDE(self._f, self._g, noise=problem.noise)

    def _f(self, t, y):
        self.n_f += 1
        return self.problem.f(t, y)

    def _g(self, t, y):
        self.n_g += 1
        return self.problem.g(t, y)


@pytest.mark.parametrize("name", sorted(SRK_SOLVERS))
def test_evaluations_per_step_are_the_declared_counts_at_most_one_per_stage(name):
    solver = SRK_SOLVERS[name]()
    counting = Counting(additive_nonlinear() if isinstance(solver, SRA) else gbm())
    y0 = torch.ones(8, 1, dtype=F64)
    sol = sk.solve(counting.sde, y0, 0.0, 1.0, solver=solver, dt=0.125, generator=0)
    stages = solver.tableau.stages
    check = int(isinstance(solver, SRA))  # noise='additive' is checked with one more call of g
    assert (counting.n_f, counting.n_g) == (8 * solver.nfe_drift, 8 * solver.nfe_diffusion + check)
    assert sol.stats["nfe_drift"] == counting.n_f and sol.stats["nfe_diffusion"] == counting.n_g
    assert 1 <= solver.nfe_drift <= stages and 1 <= solver.nfe_diffusion <= stages


def test_evaluation_counts_of_the_library():
    counts = {
        name: (s.nfe_drift, s.nfe_diffusion)
        for name, s in ((n, f()) for n, f in SRK_SOLVERS.items())
    }
    assert counts == {
        "sri1": (2, 4),
        "sriw1": (2, 4),
        "sriw2": (3, 4),
        "sosri": (4, 4),
        "sosri2": (4, 4),
        "sra1": (2, 2),
        "sra2": (2, 2),
        "sra3": (3, 2),
        "sosra": (3, 3),
        "sosra2": (3, 2),
    }


# --------------------------------------------------------------------------- capabilities


def _sde(noise="diagonal", calculus="ito", noise_dim=None):
    def g(t, y):
        return torch.ones(*y.shape, noise_dim, dtype=y.dtype) if noise_dim else torch.ones_like(y)

    return sk.SDE(lambda t, y: -y, g, noise=noise, calculus=calculus, noise_dim=noise_dim)


@pytest.mark.parametrize(
    ("problem", "match"),
    [
        (_sde("general", noise_dim=2), "general .*use 'euler'"),
        (_sde("diagonal", "stratonovich"), "Stratonovich.*'milstein'"),
        (_sde("additive", noise_dim=2), "matrix-valued.*'sosra'"),
        (sk.ODE(lambda t, y: -y), "ODE solver such as"),
    ],
)
def test_sri_refuses_what_it_cannot_solve_and_names_an_alternative(problem, match):
    with pytest.raises(ValueError, match=match):
        sk.solve(
            problem, torch.ones(2, 3, dtype=F64), 0.0, 1.0, solver=SRK_SOLVERS["sosri"](), dt=0.1
        )


@pytest.mark.parametrize("noise", ["diagonal", "scalar"])
def test_sra_refuses_non_additive_noise_and_names_an_alternative(noise):
    with pytest.raises(ValueError, match="needs additive noise.*'sosri'.*'euler'"):
        sk.solve(
            _sde(noise), torch.ones(2, 3, dtype=F64), 0.0, 1.0, solver=SRK_SOLVERS["sra1"](), dt=0.1
        )


def test_additive_noise_is_accepted_in_either_calculus_and_solved_alike():
    # Itô and Stratonovich coincide for additive noise: on one path the solutions are the same.
    y0 = torch.ones(2, 3, dtype=F64)
    for name in ("sosri", "sosra"):
        ys = [
            sk.solve(
                _sde("additive", calculus),
                y0,
                0.0,
                0.5,
                solver=SRK_SOLVERS[name](),
                dt=0.1,
                generator=3,
            ).ys[-1]
            for calculus in ("ito", "stratonovich")
        ]
        assert torch.isfinite(ys[0]).all() and not torch.equal(ys[0], y0)
        assert torch.equal(ys[0], ys[1])
    matrix = sk.solve(
        _sde("additive", noise_dim=2), y0, 0.0, 0.5, solver=SRK_SOLVERS["sosra"](), dt=0.1
    )
    assert matrix.ys.shape == (1, 2, 3) and torch.isfinite(matrix.ys).all()


def test_scalar_noise_is_stepped_with_one_brownian_motion_per_sample():
    problem = P.gbm(MU, SIGMA, noise="scalar", y0=(1.0, 1.0))
    y0 = problem.initial(BATCH)
    bm = skt.brownian_path((BATCH, 1), seed=4, dt=2.0**-7)
    target = problem.exact(y0, bm, 0.0, 1.0)
    y1 = sk.solve(problem, y0, 0.0, 1.0, solver=SRK_SOLVERS["sriw1"](), dt=2.0**-7, brownian=bm).ys[
        -1
    ]
    assert float((y1 - target).abs().max()) < 1e-2
    torch.testing.assert_close(y1[:, 0], y1[:, 1])


def test_a_missing_levy_area_is_a_clear_error():
    t = torch.zeros((), dtype=F64)
    with pytest.raises(ValueError, match="space-time Lévy area"):
        SRK_SOLVERS["sosri"]().step(
            gbm(),
            t,
            torch.ones(2, 1, dtype=F64),
            0.1,
            Increment(torch.zeros(2, 1, dtype=F64)),
            None,
        )


def test_engines_take_tableaux_of_their_own_family_only():
    with pytest.raises(TypeError, match="SRITableau"):
        SRI(SRA_TABLEAUX["SRA1"])
    with pytest.raises(TypeError, match="SRATableau"):
        SRA(SRI_TABLEAUX["SOSRI"])


def test_solver_names_say_family_and_tableau():
    assert SRK_SOLVERS["sosri"]().name == "SRI(SOSRI)"
    assert SRK_SOLVERS["sra3"]().name == "SRA(SRA3)"
    custom = dataclasses.replace(SRI_TABLEAUX["SOSRI"])  # equal coefficients, another object
    assert SRI(custom).name == "SRI(custom 4-stage)"


@pytest.mark.parametrize("name", ["sosri", "sra1", "sriw1"])
def test_fixed_steps_skip_the_error_estimate_and_keep_every_number(name):
    # the estimate (variances, a square root over the state, the drift part) was computed at
    # every fixed step and read by nothing
    solver = SRK_SOLVERS[name]()
    fixed = solver.for_fixed_steps()
    assert solver._estimate and not fixed._estimate  # the caller's solver is left as it was
    if name == "sra1":
        problem = sk.SDE(lambda t, y: -y, lambda t, y: torch.full_like(y, 0.3), noise="additive")
    else:
        problem = sk.SDE(lambda t, y: -y, lambda t, y: 0.3 * (1 + y.square()).sqrt())
    y = torch.randn(64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    source = GaussianIncrements(y.shape, dtype=y.dtype, device="cpu", generator=1, levy_area=True)
    inc, t = source.increment(0.0, 0.1), torch.tensor(0.0, dtype=y.dtype)
    y_next, error, _ = solver.step(problem, t, y, 0.1, inc, None)
    y_fixed, no_error, _ = fixed.step(problem, t, y, 0.1, inc, None)
    assert error is not None and no_error is None
    assert torch.equal(y_fixed, y_next)


def test_a_fixed_step_solve_runs_the_solvers_fixed_step_copy(monkeypatch):
    copies = []
    original = SRI.for_fixed_steps

    def recording(self):
        copies.append(original(self))
        return copies[-1]

    monkeypatch.setattr(SRI, "for_fixed_steps", recording)
    problem = sk.SDE(lambda t, y: -y, lambda t, y: 0.3 * y)
    y0 = torch.ones(4, 2, dtype=torch.float64)
    sk.solve(problem, y0, 0.0, 1.0, solver="sosri", dt=0.1, generator=0)
    assert len(copies) == 1
    sk.solve(problem, y0, 0.0, 1.0, solver="sosri", controller=sk.PIController(), generator=0)
    assert len(copies) == 1  # adaptive solves read the estimate
