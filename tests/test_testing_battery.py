"""The batteries of ``sdekit.testing``: every built-in scheme and controller passes them, and
deliberately broken ones are caught, each with a message that says what failed and by how much.

Mutants (each one defect):

- ``WRONG_SRI``: SRI1W1 with one coefficient changed (``β4₄ = 1.1`` instead of 1);
- ``WRONG_SRA``: SRA1 with one diffusion node changed (``c1₂ = 0.2`` instead of 0), which only
  time-dependent noise reveals;
- ``UncorrectedMilstein``: Milstein without its ``½ g'g (ΔW² − h)`` term (Euler–Maruyama, declared
  strong order 1);
- ``ItoHeun``: stochastic Heun declared Itô (it converges to the Stratonovich solution);
- controllers that accept errors up to 2, let the step grow without bound, grow the step with the
  error, or accept non-finite errors;
- Brownian sources: re-drawing on rejection (``GaussianIncrements``, in
  ``tests/test_brownian_bridge.py``) and a bridge that merges rejected pieces (in
  ``tests/test_adaptive_statistics.py``).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torchsde
from hypothesis import given

import sdekit as sk
import sdekit.testing as skt
from sdekit.brownian import CallableBrownian
from sdekit.solvers import ODE_SOLVERS, SDE_SOLVERS
from sdekit.tableaux.stochastic import SRA1, SRI1W1
from sdekit.testing.strategies import controllers

BUILT_IN = {
    **{name: make for name, make in SDE_SOLVERS.items() if name != "sri1"},  # sri1 is sriw1
    "milstein-finite-difference": lambda: sk.Milstein("finite_difference"),
    **{f"ode-{name}": make for name, make in ODE_SOLVERS.items()},
}


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_every_built_in_scheme_passes_the_battery(name):
    report = skt.solver_properties(BUILT_IN[name]())
    report.raise_if_failed()
    ran = {r.name for r in report.results if r.status == "passed"}
    assert {"strong_order", "determinism", "time_reversal", "gradients"} <= ran, str(report)


# --------------------------------------------------------------------------- mutant schemes


class UncorrectedMilstein(sk.Milstein):
    """Milstein's declarations, Euler–Maruyama's step."""

    def step(self, problem, t, y, h, inc, state):
        return y + h * problem.f(t, y) + problem.g_prod(problem.g(t, y), inc.dW), None, state


class ItoHeun(sk.Heun):
    """Stochastic Heun (a Stratonovich scheme) declared for Itô problems."""

    calculus = frozenset({"ito"})


WRONG_SRI = sk.SRI(dataclasses.replace(SRI1W1, beta4=(-2, 5 / 3, -2 / 3, 1.1)))
WRONG_SRA = sk.SRA(dataclasses.replace(SRA1, c1=(1, 0.2)))

MUTANTS = [
    (UncorrectedMilstein(), {"strong_order"}, "strong order 0.5"),
    (ItoHeun(), {"strong_order"}, "strong order -0.0"),
    (WRONG_SRI, {"tableau", "strong_order", "weak_order"}, "β4ᵀe = 0 off by 0.1"),
    (WRONG_SRA, {"tableau", "strong_order", "weak_order"}, "β2ᵀc1 = -1 off by 0.2"),
]


@pytest.mark.parametrize(
    "solver, failing, phrase", MUTANTS, ids=["uncorrected-milstein", "ito-heun", "sri", "sra"]
)
def test_a_broken_scheme_is_caught_with_a_message_saying_by_how_much(solver, failing, phrase):
    report = skt.solver_properties(solver, only=["tableau", "strong_order", "weak_order"])
    assert {r.name for r in report.failures} == failing, str(report)
    assert phrase in str(report), str(report)
    with pytest.raises(AssertionError, match=r"strong_order: on .*declared .*too low"):
        report.raise_if_failed()


class TimeBlindEuler(sk.Euler):
    """Euler–Maruyama with every coefficient evaluated at t = 0."""

    def step(self, problem, t, y, h, inc, state):
        return super().step(problem, torch.zeros_like(torch.as_tensor(t)), y, h, inc, state)


class ColumnSumMilstein(sk.Milstein):
    """Milstein with ``g'g`` taken as ``g`` times the column sums of ``J_g``: right where the
    noise is diagonal (``J_g`` diagonal), wrong for scalar noise with a full matrix."""

    calculus = frozenset({"ito"})

    def step(self, problem, t, y, h, inc, state):
        if problem.additive:
            return super().step(problem, t, y, h, inc, state)
        with torch.enable_grad():
            y_leaf = y.detach().requires_grad_(True)
            g = problem.g(t, y_leaf)
            (column_sums,) = torch.autograd.grad(g.sum(), y_leaf)
        g, dW = g.detach(), inc.dW
        correction = 0.5 * g * column_sums * (dW * dW - abs(h))
        return y + h * problem.f(t, y) + g * dW + correction, None, state


@pytest.mark.parametrize(
    "solver, problem",
    [(TimeBlindEuler(), "additive-linear-ito"), (ColumnSumMilstein(), "linear-system-ito")],
    ids=["ignores-time", "diagonal-only-correction"],
)
def test_a_scheme_wrong_on_one_kind_of_problem_only_fails_strong_order_there(solver, problem):
    # Both are right on the two sharpest problems (autonomous, diagonal noise): the order is also
    # checked on the first problem of each other noise type and on a time-dependent one.
    report = skt.solver_properties(solver, only="strong_order")
    assert not report.passed and report.failures[0].detail.startswith(f"on {problem}:"), report


def test_a_report_that_checked_nothing_has_not_passed():
    report = skt.solver_properties("euler", problems=[skt.problems.gbm(calculus="stratonovich")])
    assert all(r.status == "skipped" for r in report.results) and not report.passed
    with pytest.raises(AssertionError, match="nothing was checked"):
        report.raise_if_failed()


def test_a_scheme_that_declares_no_order_fails_strong_order_unless_skipped():
    class Undeclared(sk.Euler):
        strong_order = None

    assert (
        "declares no strong_order"
        in skt.solver_properties(Undeclared(), only="strong_order")["strong_order"].detail
    )
    assert skt.solver_properties(Undeclared(), only="determinism").passed


def test_a_class_or_a_scheme_without_noise_types_is_refused_with_what_to_pass():
    with pytest.raises(TypeError, match=r"pass a solver instance, Euler\(\)"):
        skt.solver_properties(sk.Euler)

    class NoNoise(sk.Euler):
        noise = frozenset()

    with pytest.raises(ValueError, match="declare the noise it supports"):
        skt.solver_properties(NoNoise())


def test_the_order_failure_names_the_problem_the_fit_and_the_allowance():
    detail = skt.solver_properties(UncorrectedMilstein(), only=["strong_order"]).failures[0].detail
    assert detail.startswith("on gbm-diagonal-ito: strong order 0.5")
    assert "declared 1: 0.4" in detail and "allowed 0.15 below" in detail and "h=0.125" in detail


def test_every_property_can_be_run_alone_and_unknown_ones_are_refused():
    report = skt.solver_properties("euler", only="determinism")
    assert [r.name for r in report.results] == ["determinism"] and report.passed
    with pytest.raises(ValueError, match="unknown properties.*choose from"):
        skt.solver_properties("euler", only=["speed"])


def test_a_crash_inside_a_property_is_a_failure_with_its_cause():
    class Crashing(sk.Euler):
        def step(self, problem, t, y, h, inc, state):
            raise RuntimeError("boom")

    report = skt.solver_properties(Crashing(), only=["determinism"])
    assert "raised RuntimeError: boom" in report.failures[0].detail


def test_a_scheme_that_mixes_samples_fails_batch_invariance():
    class Mixing(sk.Euler):
        def step(self, problem, t, y, h, inc, state):
            y_next, error, state = super().step(problem, t, y, h, inc, state)
            return y_next + 1e-3 * y.mean(0, keepdim=True), error, state

    detail = skt.solver_properties(Mixing(), only=["batch_invariance"]).failures[0].detail
    assert "depends on the rest of the batch" in detail


# --------------------------------------------------------------------------- controllers

BUILT_IN_CONTROLLERS = [
    sk.IController(rtol=1e-4, atol=1e-6),
    sk.PIController(rtol=1e-3, atol=1e-3, per_sample=True),
    sk.PIDController(rtol=1e-3, atol=1e-6, pcoeff=0.2, icoeff=0.5, dcoeff=0.1),
    sk.IController(rtol=1e-3, atol=1e-3, norm="max", combine="max", factor_max=4.0),
    sk.ClipStepSize(sk.PIController(rtol=1e-4, atol=1e-4, per_sample=True), dt_max=0.05),
]


@pytest.mark.parametrize("controller", BUILT_IN_CONTROLLERS, ids=repr)
def test_built_in_controllers_pass_the_battery(controller):
    skt.assert_controller_properties(controller)


@pytest.mark.parametrize("controller", [c for c in BUILT_IN_CONTROLLERS if c.per_sample])
def test_per_sample_controllers_pass_the_battery_with_an_sde_solver(controller):
    skt.assert_controller_properties(controller, solver="bosh3", batch=5, seed=3)


@given(controllers())
def test_random_valid_controllers_pass_the_battery(controller):
    skt.assert_controller_properties(controller, skip=["stops"])


class _Loose(sk.IController):
    """Accepts errors up to 2."""

    def adapt(self, y, y_next, y_error, h_abs, state):
        accept, h_next, state = super().adapt(y, y_next, y_error / 2, h_abs, state)
        return accept, h_next, state


class _Unbounded(sk.IController):
    """Grows the step by 1/E^(1/k) without the factor_max clip."""

    def adapt(self, y, y_next, y_error, h_abs, state):
        accept, h_next, state = super().adapt(y, y_next, y_error, h_abs, state)
        err = self.error(y, y_next, y_error, state).max()
        return accept, torch.where(accept, h_abs / err.clamp(min=1e-10) ** 0.2, h_next), state


class _Backwards(sk.IController):
    """After an acceptance, the larger the error the larger the next step."""

    def adapt(self, y, y_next, y_error, h_abs, state):
        accept, h_next, state = super().adapt(y, y_next, y_error, h_abs, state)
        err = self.error(y, y_next, y_error, state).max()
        return accept, torch.where(accept, h_abs * (1 + err).clamp(max=5.0), h_next), state


class _NanFriendly(sk.IController):
    """Treats a non-finite error as zero."""

    def adapt(self, y, y_next, y_error, h_abs, state):
        return super().adapt(y, torch.nan_to_num(y_next), torch.nan_to_num(y_error), h_abs, state)


class _LooseOnTheHost(sk.IController):
    """Accepts errors up to 1.5 where a shared-time solve decides: on the host."""

    def adapt_host(self, y, y_next, y_error, h_abs, state, err=None):
        if err is None:
            err = float(self.error(y, y_next, y_error, state).max())
        return super().adapt_host(y, y_next, y_error, h_abs, state, err=err / 1.5)


class _ClipOnlyOnTheDevice(sk.ClipStepSize):
    """Ignores dt_max on the host path."""

    def adapt_host(self, y, y_next, y_error, h_abs, state, err=None):
        return self.controller.adapt_host(y, y_next, y_error, h_abs, state, err)


class _KeepsARejectedStep(sk.IController):
    """Retries a rejected step at the same size (with the same noise: for ever)."""

    def adapt(self, y, y_next, y_error, h_abs, state):
        accept, h_next, state = super().adapt(y, y_next, y_error, h_abs, state)
        return accept, torch.where(accept, h_next, h_abs), state


class _GrowsAfterTwoRejections(sk.IController):
    """Doubles the step when the attempt before was rejected too (a defect with memory)."""

    def init(self, solver, y0, t0, t1, dt0):
        h, state = super().init(solver, y0, t0, t1, dt0)
        return h, (state, torch.zeros((), dtype=torch.bool))

    def adapt(self, y, y_next, y_error, h_abs, state):
        inner, rejected_before = state
        accept, h_next, inner = super().adapt(y, y_next, y_error, h_abs, inner)
        return accept, torch.where(~accept & rejected_before, 2 * h_abs, h_next), (inner, ~accept)


@pytest.mark.parametrize(
    "controller, failing, phrase",
    [
        (_Loose(), "accept_iff_error_at_most_one", "scaled errors"),
        (_Unbounded(), "factor_bounds", "outside [0.2, 10.0]"),
        (_Backwards(), "monotone_in_the_error", "the next step grows"),
        (_NanFriendly(), "non_finite_error", "accepted"),
        (_LooseOnTheHost(), "accept_iff_error_at_most_one", "(adapt_host): scaled errors"),
        (_ClipOnlyOnTheDevice(sk.IController(), dt_max=0.05), "factor_bounds", "(adapt_host)"),
        (_KeepsARejectedStep(), "factor_bounds", "not shrunk to a positive step"),
        (_GrowsAfterTwoRejections(), "factor_bounds", "rejection 2 in a row"),
    ],
    ids=[
        "loose",
        "unbounded",
        "backwards",
        "nan-friendly",
        "loose-on-the-host",
        "dt-max-on-the-device-only",
        "keeps-a-rejected-step",
        "grows-after-two-rejections",
    ],
)
def test_a_broken_controller_is_caught_with_a_message(controller, failing, phrase):
    report = skt.controller_properties(controller, skip=["stops"])
    assert failing in {r.name for r in report.failures}, str(report)
    assert phrase in report[failing].detail, str(report)


def _steps(*rows):
    """A step log of one sample from ``(t, h, accept)`` rows."""
    log = skt.battery._StepLog(1)
    log.steps = [
        (
            torch.tensor([t], dtype=torch.float64),
            torch.tensor([h], dtype=torch.float64),
            torch.tensor([ok]),
        )
        for t, h, ok in rows
    ]
    return log


def test_the_step_log_catches_steps_that_pass_a_save_time_or_t1_or_stop_short():
    # The loop clips every step, so no controller can do this: the check is tested on its own.
    good = _steps((0.0, 0.5, False), (0.0, 0.3, True), (0.3, 0.2, True), (0.5, 0.5, True))
    assert good.landing_failure(0.0, 1.0, [0.5, 1.0]) is None
    straddle = _steps((0.0, 0.6, True), (0.6, 0.4, True))
    assert "straddles the save time 0.5" in straddle.landing_failure(0.0, 1.0, [0.5, 1.0])
    past = _steps((0.0, 0.5, True), (0.5, 0.6, True))
    assert "past t1" in past.landing_failure(0.0, 1.0, [0.5])
    short = _steps((0.0, 0.5, True), (0.5, 0.4, True))
    assert "short of t1" in short.landing_failure(0.0, 1.0, [0.5, 1.0])


# --------------------------------------------------------------------------- Brownian sources


def _torchsde_interval(shape, *, dtype, device, generator, levy_area):
    """torchsde's BrownianInterval on [0, 1], through sdekit's adapter for such objects."""
    entropy = int(torch.randint(2**31, (1,), generator=generator))
    interval = torchsde.BrownianInterval(
        0.0,
        1.0,
        size=shape,
        dtype=dtype,
        device=device,
        entropy=entropy,
        levy_area_approximation="space-time" if levy_area else "none",
    )
    return CallableBrownian(interval, levy_area=levy_area)


def test_torchsde_brownian_interval_passes_the_battery_for_shared_time():
    report = skt.brownian_properties(
        _torchsde_interval, skip=["past_end"], per_sample=False, n=10_000
    )
    report.raise_if_failed()
    assert report["path_under_rejection"].status == "passed"  # the shared-time form


def test_a_query_past_the_end_of_a_torchsde_path_fails_clearly():
    # torchsde's BrownianInterval only warns past its end and extrapolates; the adapter refuses.
    skt.assert_brownian_properties(_torchsde_interval, only=["past_end"], end=1.0, per_sample=False)
    for bm in (
        torchsde.BrownianTree(0.0, torch.zeros(2, 3), t1=1.0),
        torchsde.BrownianPath(0.0, torch.zeros(2, 3)),
    ):
        with pytest.raises(sk.InputValueError, match=r"leaves the Brownian path's span \[0, 1\]"):
            CallableBrownian(bm).increment(torch.tensor(0.95), 0.1)
