"""The parts of ``sdekit.testing``: problems, order fits, statistics helpers, tableau checks,
strategies and reports. (The batteries themselves: ``tests/test_testing_battery.py``.)"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats

import sdekit as sk
import sdekit.testing as skt
from sdekit.tableaux.butcher import (
    BOGACKI_SHAMPINE,
    DORMAND_PRINCE,
    EULER,
    HEUN,
    MIDPOINT,
    RK4,
    ButcherTableau,
)
from sdekit.testing import problems as P
from sdekit.testing import strategies as S

F64 = torch.float64


# --------------------------------------------------------------------------- the module


def test_importing_sdekit_testing_needs_neither_pytest_nor_hypothesis():
    code = (
        "import sys, sdekit.testing as skt; "
        "assert 'pytest' not in sys.modules and 'hypothesis' not in sys.modules; "
        "skt.strategies; assert 'hypothesis' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_strong_order_has_the_signature_the_design_promises():
    # DESIGN.md: skt.strong_order(solver, problem, y0, t1, step_sizes, exact=..., n_paths=...,
    # seed=...).slope
    sde = sk.SDE(lambda t, y: 0.5 * y, lambda t, y: 0.8 * y)

    def exact(y0, path, t0, t1):
        return y0 * torch.exp((0.5 - 0.32) * (t1 - t0) + 0.8 * path(t0, t1))

    y0 = torch.ones(1, 2, dtype=F64)
    steps = [2.0**-k for k in range(3, 8)]
    fit = skt.strong_order("euler", sde, y0, 1.0, steps, exact=exact, n_paths=500, seed=0)
    assert abs(fit.slope - 0.5) < 0.1 and fit.ci[0] < fit.slope < fit.ci[1]
    assert len(fit.errors) == len(steps) and fit.n_paths == 500
    same = skt.strong_order("euler", sde, y0, 1.0, steps, exact=exact, n_paths=500, seed=0)
    assert same == fit  # seeded: the same path, the same bootstrap


# --------------------------------------------------------------------------- problems


def _trusted_solver(problem):
    if problem.additive:
        return "sra3"
    return sk.Milstein() if problem.calculus == "ito" else "heun"


@settings(max_examples=8)
@given(problem=S.exact_sdes())
def test_every_exact_solution_is_the_limit_of_solves_on_its_path(problem):
    # A strong order >= 1 scheme on the same path: the error falls by about 8 (at least 3)
    # from h = 2^-4 to 2^-7. A wrong formula (a sign, a missing Itô term) leaves an error that
    # does not fall.
    errors = _errors_against_exact(problem, 0.0, 1.0)
    assert errors[1] < errors[0] / 3 or errors[0] < 1e-12, (problem, errors)


def _errors_against_exact(problem, t0, t1):
    """Median absolute errors of a trusted solve at h = 2^-4 and 2^-7 against the exact solution
    (the median: with random coefficients one extreme path of 64 can dominate an RMS, e.g. a gbm
    whose RMS error fell only 3.0x while its median fell 7.4x)."""
    y0 = problem.initial(64)
    path = skt.brownian_path(problem.noise_shape(y0), seed=1, dt=2.0**-7)
    exact = problem.exact(y0, path, t0, t1)
    errors = []
    for h in (2.0**-4, 2.0**-7):
        sol = sk.solve(problem, y0, t0, t1, solver=_trusted_solver(problem), dt=h, brownian=path)
        errors.append(float((sol.ys[-1] - exact).abs().median()))
    return errors


@pytest.mark.parametrize(
    "problem",
    [
        P.gbm(calculus="ito"),
        P.gbm(calculus="stratonovich"),
        P.linear_system(*P.commuting_matrices(2, 3), calculus="ito"),
        P.cubic(calculus="stratonovich"),
    ],
    ids=lambda problem: problem.name,
)
def test_exact_solutions_over_backward_spans_are_the_limit_of_backward_solves(problem):
    # Backward, sdekit takes the Itô integral in the direction of the solve: the Itô correction
    # grows with |t1 - t0|. With the forward sign the error stayed at 0.62 (gbm) at every step.
    errors = _errors_against_exact(problem, 1.0, 0.0)
    assert errors[1] < errors[0] / 3, errors


@pytest.mark.parametrize("make", [P.cubic, P.arctan, P.sinh])
def test_ito_closed_forms_that_hold_forward_only_refuse_backward_spans(make):
    problem = make(calculus="ito")
    y0 = problem.initial(4)
    path = skt.brownian_path(problem.noise_shape(y0), seed=1)
    with pytest.raises(ValueError, match="exact solution is for forward spans"):
        problem.exact(y0, path, 1.0, 0.0)


@pytest.mark.parametrize(
    "make", [P.gbm, P.cubic, P.arctan, P.sinh, P.additive_linear, P.ornstein_uhlenbeck]
)
def test_families_accept_one_coefficient_per_component_and_any_event_shape(make):
    problem = make(calculus="stratonovich", y0=torch.full((2, 3), 0.3, dtype=F64))
    y0 = problem.initial(5)
    assert y0.shape == (5, 2, 3)
    path = skt.brownian_path(problem.noise_shape(y0))
    assert problem.exact(y0, path, 0.0, 0.5).shape == y0.shape
    assert sk.solve(problem, y0, 0.0, 0.5, solver="heun", dt=0.1, brownian=path).ys.shape == (
        1,
        5,
        2,
        3,
    )


def test_linear_system_refuses_matrices_that_do_not_commute():
    with pytest.raises(ValueError, match="commuting"):
        P.linear_system([[0.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 0.0]])
    A, B = P.commuting_matrices(3, 0)
    torch.testing.assert_close(A @ B, B @ A)


def test_the_ornstein_uhlenbeck_law_is_normal_with_the_known_moments():
    # Y(1) ~ N(m + (y0 - m)e^-θ, σ²(1 - e^-2θ)/(2θ)); 20 000 samples: mean within 5 SE, variance
    # within 5 SE (sqrt(2/n) relative)
    theta, m, sigma = 1.5, 0.5, 0.7
    problem = P.ornstein_uhlenbeck(theta, m, sigma, y0=(1.0,), panels=64)
    y = problem.exact(problem.initial(20_000), skt.brownian_path((20_000, 1)), 0.0, 1.0).flatten()
    mean = m + (1.0 - m) * math.exp(-theta)
    var = sigma**2 * (1 - math.exp(-2 * theta)) / (2 * theta)
    assert abs(float(y.mean()) - mean) < 5 * math.sqrt(var / 20_000)
    assert abs(float(y.var()) / var - 1) < 5 * math.sqrt(2 / 20_000)


@pytest.mark.parametrize("p", [1, 2, 3, 4])
def test_ou_stationary_moments_are_those_of_its_normal_law(p):
    problem = P.ou_stationary(theta=2.0, mean=0.3, sigma=1.2)
    z = stats.norm(0.3, 1.2 / math.sqrt(4.0))
    assert problem.moment(p) == pytest.approx(z.moment(p), rel=1e-12)


def test_the_mirrored_path_is_a_brownian_path_with_its_own_areas():
    # Its U is additive over adjacent pieces, U = U1 + U2 + L2 ΔW̃1 (exactly), and has the
    # covariance Cov(U, ΔW̃) = L²/2 of a Brownian path's (2000 samples, within 5 SE); reading
    # the original path's U unchanged would give -L²/2.
    n, (a, m, b) = 2000, (0.2, 0.45, 0.7)
    mirror = skt.mirrored(skt.brownian_path((n, 1), -1.0, 0.0, seed=3))
    dW, U = mirror(a, b, return_U=True)
    dW1, U1 = mirror(a, m, return_U=True)
    dW2, U2 = mirror(m, b, return_U=True)
    torch.testing.assert_close(dW, dW1 + dW2, rtol=0, atol=1e-12)
    torch.testing.assert_close(U, U1 + U2 + (b - m) * dW1, rtol=0, atol=1e-12)
    L = b - a
    products = (U * dW).flatten()
    se = float(products.std()) / math.sqrt(n)
    assert abs(float(products.mean()) - L**2 / 2) < 5 * se


def test_the_time_reversed_problem_runs_backwards():
    ode = P.smooth_ode()
    y = ode.initial(2)
    torch.testing.assert_close(
        skt.time_reversed(ode).f(torch.tensor(-0.4), y), -ode.f(torch.tensor(0.4), y)
    )
    sde = P.additive_linear()
    reversed_sde = skt.time_reversed(sde)
    assert (reversed_sde.noise, reversed_sde.calculus) == (sde.noise, sde.calculus)
    torch.testing.assert_close(reversed_sde.g(torch.tensor(-0.4), y), sde.g(torch.tensor(0.4), y))


def test_recording_source_sums_what_was_accepted():
    source = sk.brownian.BrownianBridge((3, 1), dtype=F64, device="cpu", generator=0)
    recorder = skt.RecordingSource(source, (3, 1))
    first = recorder.increment(torch.zeros(()), 0.5)
    recorder.commit(torch.tensor([True, False, True]))
    second = recorder.increment(torch.zeros(()), 0.25)
    recorder.commit(torch.tensor(True))
    expected = torch.where(torch.tensor([[True], [False], [True]]), first.dW, 0.0) + second.dW
    torch.testing.assert_close(recorder.total, expected)
    assert recorder.steps == 2


# --------------------------------------------------------------------------- fits


def test_fit_recovers_a_known_power_law_and_its_interval_covers_it():
    # errors per path c_i h^p with random c_i: every resampling gives slope p exactly, so the
    # interval collapses onto it; with noise it widens.
    steps = [2.0**-k for k in range(2, 7)]
    gen = torch.Generator().manual_seed(0)
    c = torch.rand(400, 1, generator=gen, dtype=F64) + 0.5
    h = torch.tensor(steps, dtype=F64)
    exact = skt.fit_order(steps, (c * h**1.5) ** 2, kind="strong", finish=torch.sqrt)
    assert exact.slope == pytest.approx(1.5) and exact.ci == pytest.approx((1.5, 1.5))
    noise = torch.exp(0.5 * torch.randn(400, len(steps), generator=gen, dtype=F64))
    noisy = skt.fit_order(steps, (c * h**1.5 * noise) ** 2, kind="strong", finish=torch.sqrt)
    assert noisy.ci[0] < 1.5 < noisy.ci[1] and noisy.stderr > 0
    assert all(s > 0 for s in noisy.error_se)


def test_order_failure_is_two_sided_unless_asked_and_refuses_to_decide_when_too_noisy():
    def fit(slope, half_width):
        return skt.OrderFit(
            "strong",
            slope,
            (slope - half_width, slope + half_width),
            half_width / 2,
            (0.5, 0.25),
            (1.0, 0.5),
            (0.0, 0.0),
            0.0,
            100,
        )

    assert fit(1.0, 0.05).failure(1.0) is None
    assert "too low" in fit(0.5, 0.05).failure(1.0)
    assert "too high" in fit(1.5, 0.05).failure(1.0)
    assert fit(1.5, 0.05).failure(1.0, at_least=True) is None
    assert "too uncertain" in fit(1.0, 0.4).failure(1.0)
    assert "too uncertain" in fit(1.0, 0.4).failure(1.0, at_least=True)  # reaches below 0.85
    # wholly above order - tolerance: at least the order, however wide (paths that blow up at
    # the largest step widen an interval upwards: Euler on cubic, 4 of 40 random problems)
    assert fit(2.0, 1.0).failure(1.0, at_least=True) is None
    assert "too uncertain" in fit(2.0, 1.0).failure(1.0)
    assert fit(0.8, 0.1).failure(1.0) is None  # the interval reaches 0.85


def test_weak_order_against_a_closed_form_expectation():
    # Euler–Maruyama on dY = -Y dt + dW from 1: E[Y_h(1)] = (1 - h)^(1/h) against e^-1, bias O(h);
    # the sample mean's SE (0.58/sqrt(40000) = 3e-3) is below the bias at h >= 1/8 (2e-2).
    sde = sk.SDE(lambda t, y: -y, lambda t, y: torch.ones_like(y), noise="additive")
    fit = skt.weak_order(
        "euler",
        sde,
        torch.ones(1, 1, dtype=F64),
        1.0,
        [0.5, 0.25, 0.125],
        expectation=math.exp(-1),
        n_paths=40_000,
    )
    biases = [abs((1 - h) ** (1 / h) - math.exp(-1)) for h in (0.5, 0.25, 0.125)]
    for error, se, bias in zip(fit.errors, fit.error_se, biases, strict=True):
        assert abs(error - bias) < 5 * se
    assert fit.failure(1.0) is None


def test_strong_order_refuses_bad_arguments():
    problem = P.gbm()
    with pytest.raises(ValueError, match="two different step sizes"):
        skt.strong_order("euler", problem, None, 1.0, [0.1])
    with pytest.raises(ValueError, match="n_paths"):
        skt.strong_order("euler", problem, None, 1.0, [0.1, 0.05], n_paths=0)
    # one path gave a zero-width interval and a confident verdict
    with pytest.raises(ValueError, match="n_paths=1: .* fewer than 20 paths"):
        skt.strong_order("euler", problem, None, 1.0, [0.1, 0.05], n_paths=1)
    fit = skt.strong_order("euler", problem, None, 1.0, [0.1, 0.05], n_paths=20)
    with pytest.raises(ValueError, match="tolerance"):
        fit.failure(0.5, tolerance=-1.0)
    with pytest.raises(ValueError, match="y0=None"):
        skt.strong_order("euler", sk.SDE(lambda t, y: y, lambda t, y: y), None, 1.0, [0.1, 0.05])


def test_misused_strategies_and_test_functions_say_what_they_take():
    # each of these was silent (an order-1.0 tableau for strong_order=2.0) or raised from inside
    # hypothesis or torch ("Cannot sample from a length-zero sequence", IndexError)
    with pytest.raises(ValueError, match="strong orders 1.0 and 1.5"):
        S.sri_tableaux(strong_order=2.0).example()
    with pytest.raises(ValueError, match="orders 1 to 4"):
        S.butcher_tableaux(order=5).example()
    with pytest.raises(ValueError, match="no family fits.*gbm: diagonal/scalar, ito/stratonovich"):
        S.exact_sdes(noise="general").example()
    with pytest.raises(ValueError, match="phi returned \\(\\) .* keep the paths' dimension"):
        skt.weak_order("euler", P.gbm(), None, 1.0, [0.1, 0.05], phi=lambda y: y.sum(),
                       expectation=0.0, n_paths=100)  # fmt: skip


@pytest.mark.parametrize("n", [50, 500, 5000])
def test_ks_normal_agrees_with_scipy(n):
    gen = torch.Generator().manual_seed(n)
    for z in (torch.randn(n, generator=gen, dtype=F64), 1.2 * torch.randn(n, generator=gen)):
        d, p = skt.ks_normal(z)
        reference = stats.kstest(z.double().numpy(), "norm")
        assert d == pytest.approx(reference.statistic, rel=1e-9)
        assert p == pytest.approx(reference.pvalue, rel=0.15, abs=2e-3)


def test_stationary_check_refuses_a_vanishing_moment():
    with pytest.raises(ValueError, match="use even powers"):
        skt.stationary_check(
            "euler", P.double_well(), horizon=0.1, dt=0.05, n_samples=10, powers=(1,)
        )


# --------------------------------------------------------------------------- tableaux


def test_rooted_trees_are_counted_by_oeis_a000081():
    assert [len(skt.trees(n)) for n in range(1, 8)] == [1, 1, 2, 4, 9, 20, 48]


@pytest.mark.parametrize(
    "tableau", [EULER, HEUN, MIDPOINT, RK4, BOGACKI_SHAMPINE, DORMAND_PRINCE], ids=repr
)
def test_library_butcher_tableaux_have_exactly_their_order(tableau):
    result = skt.check_tableau(tableau)
    assert result.all_hold, str(result)
    assert len(result) == sum(len(skt.trees(k)) for k in range(1, tableau.order + 1)) + sum(
        len(skt.trees(k)) for k in range(1, (tableau.embedded_order or 0) + 1)
    )
    assert not skt.check_tableau(tableau, order=tableau.order + 1).all_hold


def test_a_wrong_coefficient_names_the_condition_it_breaks():
    # RK4 with a43 = 0.9, a42 = 0.1 (row sum kept): only the tree [[[•]]] notices.
    wrong = ButcherTableau(c=RK4.c, a=((), (0.5,), (0.0, 0.5), (0.0, 0.1, 0.9)), b=RK4.b, order=4)
    failed = skt.check_tableau(wrong).failed
    assert [c.name for c in failed] == ["bᵀA(Ac) = 1/24"]
    assert failed[0].residual == pytest.approx(-0.1 / 24)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(c=(0.0, 1.0), a=((), (1.0,), (0.5,)), b=(0.5, 0.5)), "a must have 2 rows"),
        (dict(c=(0.0, 1.0), a=((), (1.0,)), b=(1.0,)), "b and b_embedded must have 2 entries"),
        (dict(c=(0.0, 0.5), a=((), (1.0,)), b=(0.5, 0.5)), r"row 1 of a sums to 1.0 but c\[1\]"),
        (dict(c=(0.0, 1.0), a=((), (1.0,)), b=(0.5, 0.6)), "b sums to 1.1"),
        (dict(c=(0.0, 1.0), a=((), (1.0,)), b=(0.5, 0.5), b_embedded=(1.0, 0.0)), "together"),
        (dict(c=(0.0, 0.5), a=((), (0.5,)), b=(0.0, 1.0), fsal=True), "fsal needs"),
    ],
)
def test_butcher_tableaux_refuse_malformed_coefficients(options, message):
    with pytest.raises(sk.InputValueError, match=message):
        ButcherTableau(order=2, **options)


# --------------------------------------------------------------------------- strategies


@given(tableau=S.butcher_tableaux())
def test_random_butcher_tableaux_satisfy_their_conditions_and_no_more(tableau):
    assert skt.check_tableau(tableau).all_hold
    assert not skt.check_tableau(tableau, order=tableau.order + 1).all_hold


# Derandomized even in CI: a random member with large error constants (|a| up to 2.7) can sit
# pre-asymptotic over every step above round-off (a CI run drew one fitting 3.52 for order 4);
# the drawn examples are fixed by this test's source, the explicit ones below are such members.
@settings(max_examples=10, derandomize=True)
@given(tableau=S.butcher_tableaux(embedded=True))
@example(  # the slowest to reach its order found so far: 3.71 over h = 1/32 ... 1/128
    tableau=ButcherTableau(
        c=(0.0, 0.1875, 0.59375, 1.0),
        a=(
            (),
            (0.1875,),
            (-0.435416666666667, 1.029166666666667),
            (1.9188438722706025, -2.494004796163066, 1.5751609238924635),
        ),
        b=(0.07894736842105227, 0.25246548323471457, 0.5315062804941345, 0.13708086785009868),
        order=4,
        b_embedded=(-1.6666666666666665, 2.6666666666666665, 0.0, 0.0),
        embedded_order=2,
    )
)
@example(  # fitted over its three smallest steps above round-off: 3.65 (local slopes 3.51, 3.79)
    tableau=ButcherTableau(
        c=(0.0, 0.1875, 0.609375, 1.0),
        a=(
            (),
            (0.1875,),
            (-0.48750000000000027, 1.0968750000000003),
            (2.038779956427014, -2.5880416364076475, 1.5492616799806336),
        ),
        b=(0.06695156695156673, 0.2836340614118396, 0.5186451408673629, 0.1307692307692308),
        order=4,
        b_embedded=(-1.6666666666666665, 2.6666666666666665, 0.0, 0.0),
        embedded_order=2,
    )
)
def test_random_butcher_tableaux_reach_their_order_and_their_embedded_order(tableau):
    # Random members of a family can have large higher-order error constants: over the steps
    # above round-off their fits sit below the order while its local slopes still climb (3.59,
    # then 3.83 for the order 4 tableau above, with |a| up to 2.5), hence 0.35; an order short is
    # still 0.65 off.
    solver = sk.ExplicitRungeKutta(tableau)
    skt.assert_solver_properties(solver, only=["strong_order", "error_estimate"], tolerance=0.35)


@given(tableau=st.one_of(S.sra_tableaux(), S.sri_tableaux()))
def test_random_stochastic_tableaux_satisfy_their_conditions(tableau):
    assert skt.check_tableau(tableau).all_hold


@pytest.mark.slow
@settings(max_examples=4)
@given(tableau=st.one_of(S.sri_tableaux(), S.sra_tableaux()))
def test_random_stochastic_tableaux_reach_their_strong_order(tableau):
    # The conditions are the whole story: any tableau that meets them converges at its order
    # (SRI on multiplicative noise, SRA on time-dependent additive noise).
    engine = sk.SRI if isinstance(tableau, sk.SRITableau) else sk.SRA
    skt.assert_solver_properties(engine(tableau), only=["strong_order"])


@settings(max_examples=20)
@given(tableau=S.sri_tableaux(1.0))
def test_random_sri_tableaux_have_an_error_estimate_that_scales(tableau):
    # A drawn weight of 1e-35, or a second drift stage at the first one's point, made the
    # embedded estimate (identically) zero: 16-28 of 100 draws failed.
    report = skt.solver_properties(sk.SRI(tableau), only="error_estimate")
    assert not report.failures, report


@given(schedule=S.rejection_schedules())
def test_rejection_schedules_propose_positive_steps(schedule):
    assert all(0 < fraction <= 1.5 and isinstance(ok, bool) for fraction, ok in schedule)


# --------------------------------------------------------------------------- reports


def test_a_report_lists_every_failure_with_its_detail():
    report = skt.Report(
        "thing",
        (
            skt.PropertyResult("a", "passed", "fine"),
            skt.PropertyResult("b", "failed", "off by 0.3"),
            skt.PropertyResult("c", "skipped", "n/a"),
        ),
    )
    assert not report.passed and report["b"].detail == "off by 0.3"
    with pytest.raises(AssertionError, match=r"thing fails 1 properties:\n  b: off by 0.3"):
        report.raise_if_failed()
    assert "SKIPPED c: n/a" in str(report)
