"""Adaptive SRI/SRA: the error estimate's noise part and what a tolerance buys.

Orders are checked elsewhere (tests/test_srk_convergence.py for the strong orders, the solver
battery's ``error_estimate`` property for the estimate's ``error_order``); here: the expected
noise error is the root mean square of the realised one, and a per-sample adaptive solve lands
at an error of the tolerance's order.
"""

from __future__ import annotations

import pytest
import torch

import sdekit as sk
import sdekit.testing as skt
from sdekit.brownian import BrownianBridge, GaussianIncrements
from sdekit.errors import InputTypeError, InputValueError
from sdekit.solvers.srk import SRK_SOLVERS

F64 = torch.float64


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("sosri", skt.problems.gbm()),
        ("sriw1", skt.problems.arctan()),
        ("sosra", skt.problems.additive_linear()),
    ],
    ids=["sosri-gbm", "sriw1-arctan", "sosra-additive"],
)
def test_expected_noise_error_is_the_root_mean_square_of_the_realised_one(name, problem):
    # With delta = 0 the estimate is the noise part alone. From one start, "path" is a function
    # of the increment and "expected" its root mean square: Var I_(1,0)/h = h/3,
    # Var I_(1,1,1)/h = h/6, uncorrelated. The diffusion stages see the increment only through
    # drift stages weighted by h (SOSRI), so "expected" varies by about 1e-3 here and
    # E[path²] = E[expected²] holds to that order. A wrong variance (h/4 for I_(1,0)/h, say)
    # is off by 25% or more.
    n, h = 40000, 0.05
    y0 = torch.full((n, 2), 0.7, dtype=F64)
    t = torch.zeros((), dtype=F64)
    source = GaussianIncrements(
        problem.noise_shape(y0),
        dtype=F64,
        device=y0.device,
        generator=torch.Generator().manual_seed(3),
        levy_area=True,
    )
    inc = source.increment(t, h)
    path = SRK_SOLVERS[name](delta=0.0, noise_error="path")
    expected = SRK_SOLVERS[name](delta=0.0, noise_error="expected")
    _, realised, _ = path.step(problem, t, y0, h, inc, None)
    _, rms, _ = expected.step(problem, t, y0, h, inc, None)
    torch.testing.assert_close(rms, rms[:1].expand_as(rms), rtol=1e-2, atol=0.0)
    squares = realised.square()
    mean, standard_error = squares.mean(0), squares.std(0) / n**0.5
    target = rms.square().mean(0)
    assert ((mean - target).abs() <= 4 * standard_error).all(), (
        f"E[path error²] = {mean.tolist()} ± {standard_error.tolist()}, "
        f"E[expected²] = {target.tolist()}"
    )


@pytest.mark.parametrize("name", ["sosri", "sriw1"])
def test_per_sample_adaptive_solve_on_gbm_reaches_an_error_of_the_tolerances_order(name):
    # Error in the tolerance's units, |Y(1) - exact| / (atol + rtol|exact|) with rtol = atol,
    # averaged over components and samples, on one Brownian path per sample (the bridge);
    # measured about 0.3 tol (sosri) and 0.2–0.3 tol (sriw1) at 1e-2 and 1e-3.
    problem = skt.problems.gbm()
    n = 1000
    errors = []
    for tol in (1e-2, 1e-3):
        y0 = problem.initial(n)
        bridge = BrownianBridge(
            problem.noise_shape(y0),
            dtype=F64,
            device=y0.device,
            generator=torch.Generator().manual_seed(11),
            levy_area=True,
        )
        recorder = skt.RecordingSource(bridge, problem.noise_shape(y0))
        controller = sk.PIController(rtol=tol, atol=tol, per_sample=True)
        sol = sk.solve(problem, y0, 0.0, 1.0, solver=name, controller=controller, brownian=recorder)
        exact = problem.exact(y0, lambda lo, hi, w_t=recorder.total: w_t, 0.0, 1.0)
        scaled = ((sol.ys[-1] - exact).abs() / (tol * (1 + exact.abs()))).flatten(1).mean(1)
        mean, standard_error = float(scaled.mean()), float(scaled.std()) / n**0.5
        assert 0.1 <= mean - 4 * standard_error and mean + 4 * standard_error <= 1.0, (
            f"tol {tol:g}: error {mean:.3f} ± {standard_error:.3f} tolerances"
        )
        errors.append(mean * tol)
    assert errors[1] <= errors[0] / 4, f"errors {errors} at tolerances 1e-2, 1e-3"


@pytest.mark.parametrize("name", ["sosra", "sra1"])
def test_pi_start_up_steps_at_the_settled_error_on_a_problem_of_known_scale(name):
    # f = 0, g(t) = 0.5 + 2t: the SRA estimate is E_N = sqrt(h/3) |sum_i beta2_i g(t + c1_i h)|
    # = (2/sqrt 3) h^1.5 whatever t, y and the increment, so the scaled error is C h^1.5/atol.
    # Without dt the first attempt is the probe |t1 - t0|/100 (rejected at the tighter
    # tolerances, then shrunk by the elementary rule); after the first accepted step every step
    # is the one at which the PI controller settles, E = s^(k/i), h* = (s^(k/i) atol/C)^(2/3),
    # up to the last (shortened) one, each sample at its own tolerance and never rejected. A
    # start-up that aimed elsewhere or left the memory at 1 would move the step after the first
    # accepted one, or make the later ones drift towards h*.
    problem = sk.SDE(
        lambda t, y: torch.zeros_like(y),
        lambda t, y: (0.5 + 2.0 * (t.reshape(-1, 1) if t.dim() else t)).expand_as(y),
        "additive",
        "ito",
    )
    atol = torch.tensor([[1e-2], [1e-3], [1e-4]], dtype=F64)
    attempts = []
    controller = sk.PIController(rtol=0.0, atol=atol, per_sample=True, rejection="elementary")
    sk.solve(
        problem,
        torch.zeros(3, 2, dtype=F64),
        0.0,
        1.0,
        solver=name,
        controller=controller,
        generator=5,
        callback=lambda info: attempts.append((info["h"].clone(), info["accept"].clone())),
    )
    c, s, k, i = 2 / 3**0.5, controller.safety, 1.5, controller.icoeff
    settled = (s ** (k / i) * atol.squeeze(1) / c) ** (1 / k)
    for sample in range(3):
        steps = [(float(h[sample]), bool(a[sample])) for h, a in attempts if h[sample] > 0]
        assert steps[0][0] == pytest.approx(0.01, rel=1e-15)
        first = next(n for n, (_, accepted) in enumerate(steps) if accepted)
        assert first <= 2  # probe rejections: E0 = 0.12, 1.2, 12 at the three tolerances
        assert all(accepted for _, accepted in steps[first:])
        assert steps[-1][0] <= float(settled[sample]) * (1 + 1e-12)
        later = torch.tensor([h for h, _ in steps[first + 1 : -1]], dtype=F64)
        assert len(later) >= 10
        torch.testing.assert_close(later, settled[sample].expand_as(later), rtol=1e-11, atol=0.0)


def test_sosri_weighs_the_deterministic_error_by_a_third():
    # Its deterministic part is mostly noise (module docstring); sriw1 keeps 1/6 and the rest 1.
    assert SRK_SOLVERS["sosri"]().delta == pytest.approx(1 / 3)
    assert SRK_SOLVERS["sosri"](delta=1.0).delta == 1.0
    assert SRK_SOLVERS["sriw1"]().delta == pytest.approx(1 / 6)
    assert SRK_SOLVERS["sosri2"]().delta == SRK_SOLVERS["sosra"]().delta == 1.0


def test_error_options_are_checked():
    with pytest.raises(InputValueError, match="delta"):
        SRK_SOLVERS["sosri"](delta=-1.0)
    with pytest.raises(InputValueError, match="delta"):
        SRK_SOLVERS["sra1"](delta=float("nan"))
    with pytest.raises(InputTypeError, match="delta"):
        SRK_SOLVERS["sosra"](delta="1/6")
    with pytest.raises(InputValueError, match="noise_error"):
        SRK_SOLVERS["sriw1"](noise_error="realised")
