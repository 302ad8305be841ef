"""Adaptive stepping: controllers, step placement, per-sample independence, failure reporting.

Fixed seeds, float64; hypothesis follows the profile of ``tests/conftest.py``.
"""

from __future__ import annotations

import inspect
import math
import re
import sys

import pytest
import torch
import torchsde
from hypothesis import Phase, assume, example, given, settings
from hypothesis import strategies as st

import sdekit as sk
import sdekit.testing as skt
from sdekit.solvers import resolve_solver

F64 = torch.float64


def _column(t: torch.Tensor) -> torch.Tensor:
    """``t`` as a column over the batch (per-sample time) or as is (shared time)."""
    return t.reshape(-1, 1) if t.dim() else t


def _decay(t, y):
    return -y * (1 + 0.5 * torch.cos(_column(t)))


def _decay_exact(y0, t0, t):
    return y0 * math.exp(-(t - t0) - 0.5 * (math.sin(t) - math.sin(t0)))


class _Recorder:
    """Wraps ``f`` (and ``g``) of a problem, keeping every time it is called with."""

    def __init__(self, batch: int):
        self.batch = batch
        self.times: list[torch.Tensor] = []
        self.dims: set[int] = set()

    def wrap(self, fn):
        def recorded(t, y):
            self.dims.add(t.dim())
            self.times.append(t.detach().expand(self.batch).clone())
            return fn(t, y)

        return recorded

    def matrix(self) -> torch.Tensor:
        """``(calls, batch)``: the time each sample was given at each call."""
        return torch.stack(self.times)


def _problem(kind: str, recorder: _Recorder | None = None):
    wrap = recorder.wrap if recorder is not None else (lambda fn: fn)
    if kind == "ode":
        return sk.ODE(wrap(_decay))

    def diffusion(t, y):
        return (0.3 + 0.1 * torch.sin(_column(t))) * torch.ones_like(y)

    return sk.SDE(wrap(_decay), wrap(diffusion), noise="additive")


# --------------------------------------------------------------------------- tolerance proportionality


def _oscillator(t, y):
    return torch.cat([y[:, 1:2], -y[:, 0:1] * (1 + 0.5 * torch.cos(_column(t)))], 1)


@pytest.mark.parametrize("controller", [sk.IController, sk.PIController])
@pytest.mark.parametrize("solver", ["dopri5", "bosh3"])
def test_ode_global_error_is_proportional_to_tolerance(solver, controller):
    ode = sk.ODE(_oscillator)
    y0 = torch.tensor([[1.0, 0.0], [0.5, 1.0]], dtype=F64)
    tight = sk.PIController(rtol=1e-12, atol=1e-12)
    reference = sk.solve(ode, y0, 0.0, 10.0, solver="dopri5", controller=tight).ys
    tols = [1e-4, 1e-5, 1e-6, 1e-7]
    errors = []
    for tol in tols:
        sol = sk.solve(ode, y0, 0.0, 10.0, solver=solver, controller=controller(rtol=tol, atol=tol))
        errors.append((sol.ys - reference).abs().max().item())
    decades = [math.log10(a / b) for a, b in zip(errors, errors[1:], strict=False)]
    # Error per unit tolerance stays within one order of magnitude, and each decade of
    # tolerance buys close to one decade of error (measured 0.84-1.01).
    assert all(0.7 < d < 1.3 for d in decades), (errors, decades)
    assert all(0.1 < e / tol < 100 for e, tol in zip(errors, tols, strict=True)), errors


def test_sde_strong_error_falls_with_tolerance_on_a_shared_path():
    """improved_euler, additive noise: error against a fine fixed-step run on the same path.

    The estimate is O(h^1.5) and the strong error O(h), so error ~ tol^(2/3) (measured 0.64-0.75
    per decade). A controller that ignored the tolerance, or a path that differed between runs,
    would give a flat error.
    """
    batch, t1 = 32, 1.0
    sde = sk.SDE(lambda t, y: y - y**3, lambda t, y: torch.full_like(y, 0.8), noise="additive")
    y0 = torch.linspace(-1.5, 1.5, batch, dtype=F64).reshape(batch, 1)
    bm = torchsde.BrownianInterval(
        0.0, t1, size=(batch, 1), dtype=F64, entropy=1234, dt=2**-13, levy_area_approximation="none"
    )
    reference = sk.solve(sde, y0, 0.0, t1, solver="improved_euler", dt=2**-13, brownian=bm).ys
    errors = []
    for tol in (3e-2, 3e-3, 3e-4):
        controller = sk.PIController(rtol=tol, atol=tol)
        sol = sk.solve(
            sde, y0, 0.0, t1, solver="improved_euler", controller=controller, brownian=bm
        )
        errors.append((sol.ys - reference).square().mean().sqrt().item())
    decades = [math.log10(a / b) for a, b in zip(errors, errors[1:], strict=False)]
    assert all(0.4 < d < 1.1 for d in decades), (errors, decades)


# --------------------------------------------------------------------------- steps land on stops


# Global error of dopri5/bosh3 under PIController(rtol=tol, atol=tol) on the decay problem, per unit
# of the mixed tolerance tol (1 + |y|) and per unit of time: at most 21 (bosh3 at tol 1e-6; dopri5
# 1.5) over 400 random spans, save times and first steps, and 36 in one case the exploring profile
# found (bosh3, tol 1e-4, a large first step, four save times). The bound leaves room above that;
# at tol 1e-2 it exceeds the solution itself, so accuracy is asserted for tol <= 1e-4 only, where
# returning zeros fails.
ERROR_PER_TOLERANCE = 60.0


@settings(max_examples=80, phases=[Phase.explicit, Phase.generate])
@given(
    t0=st.floats(-2.0, 2.0),
    t1=st.floats(-2.0, 2.0),
    fractions=st.lists(st.floats(0.0, 1.0), max_size=4, unique=True),
    tol=st.sampled_from([1e-2, 1e-4, 1e-6]),
    dt=st.one_of(st.none(), st.floats(1e-3, 10.0)),
    per_sample=st.booleans(),
    solver=st.sampled_from(["dopri5", "bosh3", "improved_euler"]),
)
# saveat holding t0: a zero-length first step
@example(t0=0.0, t1=1.0, fractions=[0.0, 0.5], tol=1e-4, dt=None, per_sample=False, solver="dopri5")
# a step clipped to t1 = 0.9 from 0.3: 0.3 + (0.9 - 0.3) rounds to 0.9000000000000001
@example(t0=0.3, t1=0.9, fractions=[], tol=1e-2, dt=1.0, per_sample=False, solver="dopri5")
# t + h rounds past the save time -0.187058940055309: the step ends one ulp short (FSAL stage)
@example(
    t0=0.30294197788019256,
    t1=-1.9999999999999998,
    fractions=[0.21277171663114874, 0.06777149216908597],
    tol=0.01,
    dt=0.30294197788019256,
    per_sample=True,
    solver="dopri5",
)
# t + (s - t) rounds 16 ulps of s short of the save time s = -0.0576...556 (from t = 0.1989):
# the FSAL stage reused as the next step's first is evaluated that rounding error before it
@example(
    t0=1.0220594236777822,
    t1=-1.8113151214632053,
    fractions=[2.2250738585072014e-308, 0.01, 0.01891964781931166, 0.38106530779418446],
    tol=0.01,
    dt=6.350802200017323,
    per_sample=True,
    solver="bosh3",
)
def test_steps_never_pass_t1_or_a_save_time(t0, t1, fractions, tol, dt, per_sample, solver):
    """Shrinking is off: a failing case is printed as generated (each can run to max_steps)."""
    assume(abs(t1 - t0) >= 0.05)
    direction = 1.0 if t1 > t0 else -1.0
    lo, hi = min(t0, t1), max(t0, t1)
    saveat = {min(max(t0 + (t1 - t0) * f, lo), hi) for f in fractions}
    saveat = sorted(saveat, key=lambda s: direction * s)
    if solver == "improved_euler":
        tol = max(tol, 1e-3)  # keeps the SDE runs at a few hundred steps
    batch = 3
    recorder = _Recorder(batch)
    problem = _problem("sde" if solver == "improved_euler" else "ode", recorder)
    y0 = torch.tensor([[1.0], [-0.5], [2.0]], dtype=F64)
    controller = sk.PIController(rtol=tol, atol=tol, per_sample=per_sample)
    sol = sk.solve(
        problem,
        y0,
        t0,
        t1,
        solver=solver,
        controller=controller,
        dt=dt,
        saveat=saveat or None,
        generator=0,
        max_steps=3000,
    )
    assert recorder.dims == ({1} if per_sample else {0})
    times = recorder.matrix()
    assert lo <= times.min().item() and times.max().item() <= hi, (times.min(), times.max())
    # A step onto a stop from t has h = s - t, and t + h is s only to rounding (t + h is kept from
    # passing s): an FSAL scheme's last stage, reused as the next step's first, is evaluated at
    # t + h, up to a rounding error of t + h short of s.
    rounding = 4 * sys.float_info.epsilon * max(abs(t0), abs(t1))
    for s in saveat:
        if s == t1:
            continue
        for i in range(batch):
            short = direction * (s - times[:, i])
            hits = ((short >= 0) & (short <= rounding)).nonzero()
            assert len(hits), f"no step of sample {i} started exactly at the save time {s!r}"
            before = times[: hits[0, 0], i]
            assert (direction * (before - s) <= 0).all(), f"sample {i} stepped past {s!r}"
    if saveat:
        assert torch.equal(sol.ts, torch.tensor(saveat, dtype=F64))
        assert sol.ys.shape == (len(saveat), batch, 1)
    else:
        assert sol.ts.item() == t1
    assert torch.isfinite(sol.ys).all()
    # The global error follows the tolerance once steps are in the range where an embedded
    # estimate is asymptotic. A first step far beyond it (dt of 0.5 or more, cut to the first
    # save point) can be accepted on an estimate far below its true error (bosh3: a 0.17 step at
    # tol 1e-6 accepted with a true error of 6.6e-5, found with dt=1.1), so the bound is checked
    # for first steps up to 0.1.
    if solver != "improved_euler" and tol <= 1e-4 and (dt is None or dt <= 0.1):
        for k, s in enumerate(saveat or [t1]):
            exact = _decay_exact(y0, t0, s)
            got = sol.ys[k] if saveat else sol.ys[0]
            bound = ERROR_PER_TOLERANCE * tol * (1 + exact.abs()) * max(abs(s - t0), 0.05)
            assert ((got - exact).abs() <= bound).all(), (s, got, exact, bound)


@pytest.mark.parametrize("per_sample", [False, True])
def test_a_step_landing_on_a_stop_integrates_the_whole_way_there_at_large_float32_times(
    per_sample,
):
    # A step within 64 float32 ulps of max|t| of a stop landed on it but integrated only its own
    # length: at t0 = 1e4 and 1e5 time jumped ahead of the state (y(t0 + 1) = 0.382 and 0.565
    # for e^-1 = 0.368; an OU mean 26 standard errors off).
    controller = sk.PIController(rtol=1e-5, atol=1e-7, per_sample=per_sample)
    for t0, resolution in ((1e4, 2e-3), (1e5, 1e-2)):  # float32's ulp there: 1e-3, 8e-3
        y = sk.solve(sk.ODE(lambda t, y: -y), torch.ones(4, 1), t0, t0 + 1, solver="dopri5",
                     controller=controller, saveat=[t0 + 0.5, t0 + 1]).ys  # fmt: skip
        assert float((y[-1] - math.exp(-1)).abs().max()) < resolution
        assert float((y[0] - math.exp(-0.5)).abs().max()) < resolution
    # Brownian motion too: the variance of an OU solve (sd 0.5 per unit time) keeps its law.
    ou = sk.SDE(lambda t, y: -y, lambda t, y: torch.full_like(y, 0.5), noise="additive")
    n, t0 = 4000, 1e4
    sol = sk.solve(ou, torch.ones(n, 1), t0, t0 + 1, solver="sosra", generator=0, max_steps=2000,
                   controller=sk.PIController(rtol=1e-3, atol=1e-3, per_sample=per_sample))  # fmt: skip
    y = sol.ys[-1].double()
    var = 0.125 * (1 - math.exp(-2))
    assert abs(float(y.mean()) - math.exp(-1)) < 4 * math.sqrt(var / n)
    assert abs(float(y.var()) / var - 1) < 4 * math.sqrt(2 / n)


def test_save_time_at_t0_is_saved_without_stalling():
    """A save time equal to ``t0`` (saveat=[t0, ..., t1], the commonest layout) is a zero step."""
    ode = sk.ODE(_decay)
    y0 = torch.ones(3, 1, dtype=F64)
    for per_sample in (False, True):
        controller = sk.PIController(rtol=1e-6, atol=1e-6, per_sample=per_sample)
        sol = sk.solve(
            ode,
            y0,
            0.0,
            1.0,
            solver="dopri5",
            controller=controller,
            saveat=[0.0, 0.5, 1.0],
            max_steps=1000,
        )
        exact = torch.stack([_decay_exact(y0, 0.0, s) for s in (0.0, 0.5, 1.0)])
        assert torch.allclose(sol.ys, exact, rtol=1e-5, atol=0)


# --------------------------------------------------------------------------- controller arithmetic


def _controller_for(controller: sk.PIDController, solver: str, batch: int = 2, size: int = 4):
    problem = _problem("sde" if solver == "improved_euler" else "ode")
    y0 = torch.zeros(batch, size, dtype=F64)
    h, state = controller.init(resolve_solver(solver, problem), y0, 0.0, 1.0, 0.1)
    return y0, h, state


def _attempt(controller, state, h, err: float | list[float], y=None, y_next=None):
    """One ``adapt`` call whose error norm is ``err`` under atol=1, rtol=0 and a zero state."""
    errs = torch.as_tensor(err, dtype=F64).reshape(-1, 1).expand(-1, 4)
    y = torch.zeros_like(errs) if y is None else y
    y_next = torch.zeros_like(errs) if y_next is None else y_next
    return controller.adapt(y, y_next, errs.clone(), h, state)


@pytest.mark.parametrize(
    ("solver", "order"), [("dopri5", 5), ("bosh3", 3), ("improved_euler", 1.5)]
)
def test_step_factor_exponent_follows_the_solver_error_order(solver, order):
    controller = sk.IController(rtol=0.0, atol=1.0, safety=0.9)
    _, h, state = _controller_for(controller, solver)
    accept, h_next, _ = _attempt(controller, state, h, 0.5)
    assert accept.all()
    assert torch.allclose(h_next, h * 0.9 * 2.0 ** (1 / order), rtol=1e-14)
    accept, h_next, _ = _attempt(controller, state, h, 4.0)
    assert not accept.any()
    assert torch.allclose(h_next, h * max(0.2, 0.9 * 4.0 ** (-1 / order)), rtol=1e-14)


def test_explicit_exponent_overrides_the_error_order():
    controller = sk.IController(rtol=0.0, atol=1.0, safety=0.9, exponent=0.9)
    _, h, state = _controller_for(controller, "improved_euler")
    _, h_next, _ = _attempt(controller, state, h, 0.5)
    assert torch.allclose(h_next, h * 0.9 * 2.0**0.9, rtol=1e-14)


def test_step_factor_is_clipped_to_factor_limits():
    controller = sk.IController(rtol=0.0, atol=1.0, factor_min=0.3, factor_max=4.0)
    _, h, state = _controller_for(controller, "dopri5")
    _, h_up, _ = _attempt(controller, state, h, 1e-12)
    _, h_down, _ = _attempt(controller, state, h, 1e12)
    assert torch.allclose(h_up, 4.0 * h) and torch.allclose(h_down, 0.3 * h)
    _, h_zero, _ = _attempt(controller, state, h, 0.0)
    assert torch.allclose(h_zero, 4.0 * h)


def test_pid_memory_uses_past_accepted_errors_only():
    p, i, d, k, s = 0.2, 0.5, 0.1, 5.0, 0.9
    controller = sk.PIDController(
        rtol=0.0, atol=1.0, pcoeff=p, icoeff=i, dcoeff=d, safety=s, factor_max=100.0
    )
    _, h, state = _controller_for(controller, "dopri5")
    accept, h, state = _attempt(controller, state, h, 0.5)
    assert accept.all()
    accept, h_rejected, state = _attempt(controller, state, h, 8.0)
    assert not accept.any()
    assert torch.allclose(h_rejected, h * s * 8.0 ** (-i / k))  # integral term only, never grows
    h = h_rejected
    accept, h_next, state = _attempt(controller, state, h, 0.25)
    assert accept.all()
    # eps_n = 4, eps_{n-1} = 2 (the rejected 8 is not remembered), eps_{n-2} = 1 (initial memory)
    expected = s * 4.0 ** ((p + i + d) / k) * 2.0 ** (-(p + 2 * d) / k) * 1.0 ** (d / k)
    assert torch.allclose(h_next, h * expected, rtol=1e-14)
    h = h_next
    _, h_next, _ = _attempt(controller, state, h, 0.5)
    expected = s * 2.0 ** ((p + i + d) / k) * 4.0 ** (-(p + 2 * d) / k) * 2.0 ** (d / k)
    assert torch.allclose(h_next, h * expected, rtol=1e-14)


def test_pi_controller_defaults_are_hairers_coefficients():
    controller = sk.PIController(rtol=0.0, atol=1.0, safety=1.0, factor_max=100.0)
    _, h, state = _controller_for(controller, "dopri5")
    _, h1, state = _attempt(controller, state, h, 0.5)
    _, h2, _ = _attempt(controller, state, h1, 0.1)
    assert torch.allclose(h2 / h1, torch.tensor(10.0 ** (0.7 / 5) * 2.0 ** (-0.4 / 5), dtype=F64))


@pytest.mark.parametrize("rejection", ["integral", "elementary"])
def test_rejection_option_sets_the_exponent_of_the_step_after_a_rejection(rejection):
    p, i, k, s = 0.4, 0.3, 5.0, 0.9
    controller = sk.PIController(
        rtol=0.0, atol=1.0, pcoeff=p, icoeff=i, safety=s, rejection=rejection, per_sample=True
    )
    _, h, state = _controller_for(controller, "dopri5")
    accept, h_next, after = _attempt(controller, state, h, [8.0, 1e6])
    assert not accept.any()
    exponent = i / k if rejection == "integral" else 1 / k
    expected = torch.tensor([max(0.2, s * e**-exponent) for e in (8.0, 1e6)], dtype=F64)
    torch.testing.assert_close(h_next / h, expected, rtol=1e-14, atol=0.0)
    assert torch.equal(after.inv_err_prev, state.inv_err_prev)  # a rejection is not remembered


def test_rejection_options_coincide_for_the_i_controller_and_are_checked():
    steps = []
    for rejection in ("integral", "elementary"):
        controller = sk.IController(rtol=0.0, atol=1.0, rejection=rejection)
        _, h, state = _controller_for(controller, "bosh3")
        steps.append(_attempt(controller, state, h, 3.0)[1])
    assert torch.equal(steps[0], steps[1])
    with pytest.raises(ValueError, match="rejection"):
        sk.PIController(rejection="proportional")


def _start(controller, solver="dopri5", batch=3, t1=2.0, dt0=None):
    problem = _problem("ode")
    y0 = torch.zeros(batch, 4, dtype=F64)
    return controller.init(resolve_solver(solver, problem), y0, 0.0, t1, dt0)


def test_start_up_sets_the_step_after_the_probe_where_the_settled_error_is_predicted():
    # dopri5: k = 5. The PI controller settles where s eps^(i/k) = 1, E = s^(k/i); after the
    # probe h0 = |t1 - t0|/100 the step is h0 s^(1/i) E0^(-1/k) (clipped to the factor limits)
    # and the memory is the error predicted there, so the proportional term sees no trend when
    # the error comes out as predicted: at the settled error the step is kept (h2 = h1 exactly),
    # below it (a capped start-up step) it grows by the integral term alone, s eps^(i/k). A
    # memory left at 1 (or at E0) would change both.
    p, i, k, s = 0.4, 0.3, 5.0, 0.9
    controller = sk.PIController(rtol=0.0, atol=1.0, pcoeff=p, icoeff=i, safety=s, per_sample=True)
    h0, state = _start(controller)
    torch.testing.assert_close(h0, torch.full((3,), 0.02, dtype=F64), rtol=1e-15, atol=0.0)
    errors = [0.5, 1e-9, 4.0]  # uncapped, capped at factor_max = 10, rejected
    accept, h1, state = _attempt(controller, state, h0, errors)
    assert accept.tolist() == [True, True, False]
    factors = [s ** (1 / i) * 0.5 ** (-1 / k), 10.0, max(0.2, s * 4.0 ** (-i / k))]
    torch.testing.assert_close(h1 / h0, torch.tensor(factors, dtype=F64), rtol=1e-13, atol=0.0)
    assert state.probing.tolist() == [False, False, True]
    predicted = [0.5 * factors[0] ** k, 1e-9 * 10.0**k]
    settled = s ** (k / i)
    assert predicted[0] == pytest.approx(settled, rel=1e-12)
    # The next errors: as predicted for samples 0 and 1; the rejected probe is accepted now.
    accept, h2, state = _attempt(controller, state, h1, [predicted[0], predicted[1], 0.5])
    assert accept.all()
    assert float(h2[0] / h1[0]) == pytest.approx(1.0, rel=1e-12)
    assert float(h2[1] / h1[1]) == pytest.approx(s * predicted[1] ** (-i / k), rel=1e-12)
    assert float(h2[2] / h1[2]) == pytest.approx(factors[0], rel=1e-13)  # its start-up step
    assert not state.probing.any()
    # From here on the ordinary PI rule: eps_n = 2, eps_{n-1} = 1/settled.
    _, h3, _ = _attempt(controller, state, h2, [0.5, 0.5, 0.5])
    expected = s * 2.0 ** ((p + i) / k) * (1 / settled) ** (-p / k)
    assert float(h3[0] / h2[0]) == pytest.approx(expected, rel=1e-13)


def test_given_first_step_keeps_the_pi_rule_from_the_first_step():
    p, i, k, s = 0.4, 0.3, 5.0, 0.9
    controller = sk.PIController(rtol=0.0, atol=1.0, safety=s, per_sample=True)
    h0, state = _start(controller, dt0=0.05)
    assert state.probing is None
    torch.testing.assert_close(h0, torch.full((3,), 0.05, dtype=F64), rtol=0.0, atol=0.0)
    _, h1, _ = _attempt(controller, state, h0, 0.5)
    expected = torch.full((3,), s * 2.0 ** ((p + i) / k), dtype=F64)  # memory 1
    torch.testing.assert_close(h1 / h0, expected, rtol=1e-14, atol=0.0)


def test_start_up_probe_is_bounded_and_a_zero_length_step_does_not_end_it():
    controller = sk.PIController(rtol=0.0, atol=1.0, dt_max=0.004, per_sample=True)
    h0, state = _start(controller, batch=2, t1=-3.0)  # backward: |t1 - t0|/100 = 0.03
    torch.testing.assert_close(h0, torch.full((2,), 0.004, dtype=F64), rtol=0.0, atol=0.0)
    h_try = torch.tensor([0.0, 0.004], dtype=F64)  # sample 0 attempted nothing (landed on t0)
    accept, h1, state = _attempt(controller, state, h_try, [0.0, 1e-6])
    assert accept.all() and state.probing.tolist() == [True, False]
    assert (h1 <= 0.004).all()  # dt_max caps the start-up step too
    shared = sk.PIController(rtol=0.0, atol=1.0)
    h0, state = _start(shared)
    assert h0.shape == () and state.probing.shape == ()
    accept, h1, state = _attempt(shared, state, h0, [0.5, 0.1, 0.2])  # the worst sample decides
    assert h1.shape == () and not bool(state.probing)
    assert float(h1 / h0) == pytest.approx(0.9 ** (1 / 0.3) * 0.5 ** (-1 / 5), rel=1e-13)


@pytest.mark.parametrize("per_sample", [True, False])
def test_i_controller_solves_alike_with_and_without_the_first_step(per_sample):
    # The start-up step of an I controller is its ordinary step: a solve without dt is the solve
    # with dt = |t1 - t0|/100, bit for bit (what the probability-flow sampler relies on).
    problem = _problem("ode")
    y0 = torch.linspace(0.5, 2.0, 4, dtype=F64).reshape(4, 1)
    runs = []
    for dt in (None, 0.03):
        controller = sk.IController(rtol=1e-6, atol=1e-6, per_sample=per_sample)
        runs.append(sk.solve(problem, y0, 0.0, 3.0, solver="bosh3", controller=controller, dt=dt))
    assert torch.equal(runs[0].ys, runs[1].ys)
    assert torch.equal(
        torch.as_tensor(runs[0].stats["steps"]), torch.as_tensor(runs[1].stats["steps"])
    )


def test_rms_and_max_norms_differ_on_a_concentrated_error():
    y = torch.zeros(1, 4, dtype=F64)
    err = torch.tensor([[1.5, 0.0, 0.0, 0.0]], dtype=F64)
    for norm, expected, accepted in (("rms", 0.75, True), ("max", 1.5, False)):
        controller = sk.IController(rtol=0.0, atol=1.0, norm=norm)
        _, h, state = _controller_for(controller, "dopri5", batch=1)
        assert torch.allclose(
            controller.error(y, y, err, state), torch.tensor([expected], dtype=F64)
        )
        assert bool(controller.adapt(y, y, err, h, state)[0]) is accepted


def test_tolerance_combines_absolute_and_relative_parts():
    y = torch.full((1, 4), 2.0, dtype=F64)
    err = torch.full((1, 4), 0.25, dtype=F64)
    for combine, scale in (("sum", 0.1 + 0.1 * 2.0), ("max", max(0.1, 0.1 * 2.0))):
        controller = sk.IController(rtol=0.1, atol=0.1, combine=combine)
        _, _, state = _controller_for(controller, "dopri5", batch=1)
        got = controller.error(y, y, err, state)
        assert torch.allclose(got, torch.tensor([0.25 / scale], dtype=F64))


def test_mixed_tolerance_uses_the_larger_of_current_and_next_state():
    big, small = torch.full((1, 4), 10.0, dtype=F64), torch.zeros(1, 4, dtype=F64)
    err = torch.full((1, 4), 0.9, dtype=F64)
    controller = sk.IController(rtol=0.1, atol=0.0)
    _, _, state = _controller_for(controller, "dopri5", batch=1)
    for y, y_next in ((big, small), (small, big)):
        assert torch.allclose(
            controller.error(y, y_next, err, state), torch.tensor([0.9], dtype=F64)
        )


def test_previous_proposal_reference_is_the_last_accepted_proposal():
    """The Gotta Go Fast variant: ``delta = max(atol, rtol max(|x'_prev|, |x'|))`` where ``x'_prev``
    is the embedded (Euler–Maruyama) proposal of the last *accepted* step (the authors' code keeps
    it with ``torch.where(accept, x', x'_prev)``)."""
    controller = sk.IController(
        rtol=0.1, atol=1e-3, combine="max", reference="previous_proposal", candidate="embedded"
    )
    zeros = torch.zeros(1, 4, dtype=F64)
    _, h, state = _controller_for(controller, "improved_euler", batch=1)
    # accepted: y_next = 10.5, error 0.5, so the embedded proposal is 10
    accept, h, state = controller.adapt(zeros, zeros + 10.5, zeros + 0.5, h, state)
    assert accept.all()
    # the scale is now rtol * 10 = 1, even though y and the next proposal are 0
    assert torch.allclose(
        controller.error(zeros, zeros, zeros + 0.9, state), torch.tensor([0.9], dtype=F64)
    )
    # a rejected attempt with proposal 100 does not move the reference
    accept, h, state = controller.adapt(zeros, zeros + 150.0, zeros + 50.0, h, state)
    assert not accept.any()
    assert torch.allclose(
        controller.error(zeros, zeros, zeros + 0.9, state), torch.tensor([0.9], dtype=F64)
    )


def test_non_finite_error_or_state_is_a_rejection_of_that_sample_only():
    controller = sk.IController(rtol=0.0, atol=1.0, per_sample=True)
    _, h, state = _controller_for(controller, "dopri5", batch=3)
    y = torch.zeros(3, 4, dtype=F64)
    y_next = y.clone()
    y_next[2, 1] = math.inf
    err = torch.full((3, 4), 0.5, dtype=F64)
    err[1, 3] = math.nan
    accept, h_next, _ = controller.adapt(y, y_next, err, h, state)
    assert accept.tolist() == [True, False, False]
    assert h_next[0] > h[0] and (h_next[1:] < h[1:]).all()
    shared = sk.IController(rtol=0.0, atol=1.0)
    _, h, state = _controller_for(shared, "dopri5", batch=3)
    accept, h_next, _ = shared.adapt(y, y_next, err, h, state)
    assert accept.dim() == 0 and not accept and h_next < h


def test_shared_controller_decides_on_the_worst_sample():
    controller = sk.IController(rtol=0.0, atol=1.0)
    _, h, state = _controller_for(controller, "dopri5", batch=3)
    accept, h_next, _ = _attempt(controller, state, h, [0.1, 0.9, 0.2])
    assert accept.dim() == 0 and accept
    assert torch.allclose(h_next, h * 0.9 * (1 / 0.9) ** (1 / 5))
    accept, _, _ = _attempt(controller, state, h, [0.1, 1.1, 0.2])
    assert not accept


# --------------------------------------------------------------------------- step-size bounds


def _step_sizes(recorder: _Recorder) -> torch.Tensor:
    """improved_euler calls f at t and t + h: the attempted step sizes, in order."""
    times = recorder.matrix()[:, 0]
    return times[1::2] - times[0::2]


@pytest.mark.parametrize("per_sample", [False, True])
def test_initial_step_and_dt_max_bound_the_attempted_steps(per_sample):
    y0 = torch.ones(2, 1, dtype=F64)
    controller = sk.PIController(rtol=1e-1, atol=1e-1, dt_max=0.2, per_sample=per_sample)
    recorder = _Recorder(2)
    sde = sk.SDE(recorder.wrap(_decay), lambda t, y: 0.1 * torch.ones_like(y), noise="additive")
    sk.solve(
        sde, y0, 0.0, 3.0, solver="improved_euler", controller=controller, dt=0.05, generator=0
    )
    h = _step_sizes(recorder)
    assert h[0].item() == pytest.approx(0.05, rel=1e-12)
    assert h.max().item() <= 0.2 * (1 + 1e-12)
    assert (h > 0.19).sum() > 5  # loose tolerance: dt_max is what limits the steps


def test_the_initial_step_is_given_in_one_place_only():
    with pytest.raises(TypeError, match="dt0"):
        sk.PIController(rtol=1e-3, dt0=0.05)
    y0 = torch.ones(2, 1, dtype=F64)
    recorder = _Recorder(2)
    sde = sk.SDE(recorder.wrap(_decay), lambda t, y: 0.1 * torch.ones_like(y), noise="additive")
    controller = sk.PIController(rtol=1e-1, atol=1e-1)
    sk.solve(sde, y0, 0.0, 3.0, solver="improved_euler", controller=controller, generator=0)
    assert _step_sizes(recorder)[0].item() == pytest.approx(3.0 / 100, rel=1e-12)


# --------------------------------------------------------------------------- batch semantics


def _stiffness_batch():
    """Sample 1 decays 30x faster than the others, so it needs many more steps."""
    rates = torch.tensor([[1.0], [30.0], [2.0]], dtype=F64)
    return (lambda t, y: -rates * y), torch.ones(3, 1, dtype=F64)


def test_shared_time_mode_takes_one_decision_for_the_whole_batch():
    """Oscillators of frequencies 1, 20, 2: the fast one has the largest error at every step."""
    omega = torch.tensor([[1.0], [20.0], [2.0]], dtype=F64)

    def f(t, y):
        return omega * torch.cat([y[:, 1:2], -y[:, 0:1]], 1)

    y0 = torch.tensor([[1.0, 0.0]], dtype=F64).repeat(3, 1)
    recorder = _Recorder(3)
    controller = sk.PIController(rtol=1e-6, atol=1e-9)
    batch = sk.solve(sk.ODE(recorder.wrap(f)), y0, 0.0, 1.0, solver="dopri5", controller=controller)
    assert recorder.dims == {0}
    assert all(isinstance(v, int) for v in batch.stats.values())

    def fast_only(t, y):
        return 20.0 * torch.cat([y[:, 1:2], -y[:, 0:1]], 1)

    alone = sk.solve(sk.ODE(fast_only), y0[1:2], 0.0, 1.0, solver="dopri5", controller=controller)
    assert batch.stats == alone.stats  # the fast sample sets every decision
    assert torch.equal(batch.ys[-1, 1], alone.ys[-1, 0])


def test_per_sample_stats_count_each_samples_own_attempts():
    f, y0 = _stiffness_batch()
    controller = sk.PIController(rtol=1e-6, atol=1e-9, per_sample=True)
    sol = sk.solve(sk.ODE(f), y0, 0.0, 1.0, solver="dopri5", controller=controller)
    stats = sol.stats
    for key in ("nfe", "accepted", "rejected", "steps"):
        assert stats[key].shape == (3,)
    assert torch.equal(stats["steps"], stats["accepted"] + stats["rejected"])
    assert stats["steps"][1] > 2 * stats["steps"][0]
    rates = (1.0, 30.0, 2.0)
    for i, rate in enumerate(rates):
        calls = []

        def counted(t, y, rate=rate, calls=calls):
            calls.append(1)
            return -rate * y

        alone = sk.solve(
            sk.ODE(counted), y0[i : i + 1], 0.0, 1.0, solver="dopri5", controller=controller
        )
        assert stats["nfe"][i].item() == len(calls) == alone.stats["nfe"].item()
        assert stats["accepted"][i] == alone.stats["accepted"].item()
        assert torch.equal(sol.ys[-1, i], alone.ys[-1, 0])


def _double_well():
    return sk.SDE(lambda t, y: y - y**3, lambda t, y: torch.full_like(y, 0.7), noise="additive")


@pytest.mark.parametrize("brownian", ["redraw", "bridge"])
def test_per_sample_result_does_not_depend_on_the_rest_of_the_batch(brownian):
    batch = 6
    y0 = torch.linspace(-1.5, 1.5, batch * 2, dtype=F64).reshape(batch, 2)
    controller = sk.PIController(rtol=1e-2, atol=1e-2, per_sample=True)

    def run(rows):
        generators = [torch.Generator().manual_seed(1000 + i) for i in rows]
        return sk.solve(
            _double_well(),
            y0[rows],
            0.0,
            2.0,
            solver="improved_euler",
            controller=controller,
            saveat=[0.5, 1.0, 2.0],
            generator=generators,
            brownian=brownian,
        )

    together = run(list(range(batch)))
    assert (together.stats["rejected"] > 0).any()
    assert len(set(together.stats["steps"].tolist())) > 1  # samples really took their own steps
    for i in (0, 3, 5):
        alone = run([i])
        torch.testing.assert_close(alone.ys[:, 0], together.ys[:, i], rtol=0, atol=1e-12)
        for key in ("nfe", "accepted", "rejected"):
            assert alone.stats[key].item() == together.stats[key][i].item()


# --------------------------------------------------------------------------- non-finite values and failure


def _nan_above(threshold: float, f):
    def guarded(t, y):
        return torch.where(y.abs() > threshold, torch.nan, f(t, y))

    return guarded


@pytest.mark.parametrize("per_sample", [False, True])
def test_nan_region_is_avoided_by_rejection(per_sample):
    """Large first steps overshoot into a region where the drift is NaN; rejection steps around it."""
    y0 = torch.tensor([[1.4], [1.0], [-1.2]], dtype=F64)
    controller = sk.PIController(rtol=1e-6, atol=1e-6, per_sample=per_sample)
    ode = sk.ODE(_nan_above(1.5, lambda t, y: -y))
    sol = sk.solve(ode, y0, 0.0, 4.0, solver="dopri5", dt=5.0, controller=controller)
    assert sol.status is None and torch.isfinite(sol.ys).all()
    assert torch.allclose(sol.ys, y0 * math.exp(-4.0), rtol=1e-4)
    assert (torch.as_tensor(sol.stats["rejected"]) > 0).all()
    sde = sk.SDE(
        _nan_above(2.0, lambda t, y: -y), lambda t, y: 0.2 * torch.ones_like(y), noise="additive"
    )
    controller = sk.PIController(rtol=1e-2, atol=1e-2, per_sample=per_sample)
    sol = sk.solve(
        sde, y0, 0.0, 4.0, solver="improved_euler", dt=3.0, controller=controller, generator=0
    )
    assert sol.status is None and torch.isfinite(sol.ys).all()
    assert (torch.as_tensor(sol.stats["rejected"]) > 0).all()


def _blocked_ode():
    """Sample 2 reaches y = 0.5 at t = 0.5 and finds NaN beyond; the others never get there."""
    rates = torch.tensor([[0.1], [0.1], [1.0], [0.1]], dtype=F64)

    def f(t, y):
        return torch.where(y > 0.5, torch.nan, rates.expand_as(y))

    return sk.ODE(f), torch.zeros(4, 1, dtype=F64)


def _parse_failure(message: str) -> tuple[float, int, float]:
    t = re.search(r"\bt=([-+0-9.e]+)", message)
    sample = re.search(r"sample (\d+)", message)
    h = re.search(r"\|h\|=([-+0-9.e]+)", message)
    assert t and sample and h, message
    return float(t.group(1)), int(sample.group(1)), float(h.group(1))


@pytest.mark.parametrize("dt_min", [0.0, 1e-4])
@pytest.mark.parametrize("per_sample", [False, True])
def test_unavoidable_nan_raises_an_error_naming_time_sample_and_step(per_sample, dt_min):
    ode, y0 = _blocked_ode()
    controller = sk.PIController(per_sample=per_sample, dt_min=dt_min)
    with pytest.raises(sk.SolveError, match="dt_min") as info:
        sk.solve(ode, y0, 0.0, 1.0, solver="dopri5", controller=controller)
    t, sample, h = _parse_failure(str(info.value))
    assert t == pytest.approx(0.5, abs=1e-4)
    assert sample == 2
    assert 0 < h < max(dt_min, 1e-9) or (dt_min == 0 and h < 1e-12)


@pytest.mark.parametrize("per_sample", [False, True])
def test_throw_false_returns_a_status_per_sample(per_sample):
    ode, y0 = _blocked_ode()
    controller = sk.PIController(per_sample=per_sample, dt_min=1e-6)
    sol = sk.solve(ode, y0, 0.0, 1.0, solver="dopri5", controller=controller, throw=False)
    assert sol.status is not None and sol.status.shape == (4,)
    assert torch.isfinite(sol.ys).all()
    assert sol.ys[-1, 2].item() == pytest.approx(0.5, abs=1e-4)
    ok, dt_min = int(sk.Status.OK), int(sk.Status.DT_MIN)
    # y = rate·t: each stopped state names its time
    torch.testing.assert_close(sol.ys[-1, :, 0], torch.tensor([0.1, 0.1, 1.0, 0.1]) * sol.t_stopped,
                               check_dtype=False)  # fmt: skip
    assert sol.t_stopped.dtype == F64 and sol.t_stopped[2].item() == pytest.approx(0.5, abs=1e-4)
    if per_sample:
        assert sol.status.tolist() == [ok, ok, dt_min, ok]
        torch.testing.assert_close(sol.ys[-1, [0, 1, 3]], torch.full((3, 1), 0.1, dtype=F64))
        assert sol.t_stopped[[0, 1, 3]].tolist() == [1.0, 1.0, 1.0]
    else:
        assert (
            sol.status == sk.Status.DT_MIN
        ).all()  # the batch stops together, where sample 2 stopped
        assert (sol.t_stopped == sol.t_stopped[2]).all()
    finished = sk.solve(ode, y0, 0.0, 0.4, solver="dopri5", controller=controller, throw=False)
    assert finished.status is None and finished.t_stopped is None


@pytest.mark.parametrize("per_sample", [False, True])
def test_step_budget_exhaustion_raises_with_the_same_information(per_sample):
    f, y0 = _stiffness_batch()
    controller = sk.PIController(rtol=1e-8, atol=1e-8, per_sample=per_sample)
    with pytest.raises(sk.SolveError, match="max_steps=30") as info:
        sk.solve(sk.ODE(f), y0, 0.0, 1.0, solver="dopri5", controller=controller, max_steps=30)
    t, sample, h = _parse_failure(str(info.value))
    assert 0 < t < 1 and h > 0
    if per_sample:
        assert sample == 1  # the only sample still running
    sol = sk.solve(
        sk.ODE(f), y0, 0.0, 1.0, solver="dopri5", controller=controller, max_steps=30, throw=False
    )
    assert sol.status is not None
    assert torch.as_tensor(sol.stats["steps"]).max().item() == 30
    if per_sample:
        assert sol.status[1] == 2 and (sol.status[[0, 2]] != 2).all()
    else:
        assert (sol.status == 2).all()


@pytest.mark.parametrize("per_sample", [False, True])
def test_a_rejected_step_shrinks_by_a_tenth_at_least_whatever_the_safety_factor(per_sample):
    # safety=1: a retry on the same Brownian path shrank the step by a fraction of a percent
    # (2000 attempts for 7 accepted steps of an OU solve)
    ou = sk.SDE(lambda t, y: -y, lambda t, y: torch.full_like(y, 0.5), noise="additive")
    controller = sk.PIController(rtol=1e-3, atol=1e-3, per_sample=per_sample, safety=1.0)
    sol = sk.solve(ou, torch.ones(500, 1), 0.0, 1.0, solver="sosra", generator=0,
                   controller=controller, max_steps=1000)  # fmt: skip
    assert torch.as_tensor(sol.stats["steps"]).max() < 300
    state = controller.init(resolve_solver("sosra", ou), torch.zeros(1, 1), 0.0, 1.0, 0.1)[1]
    error = torch.full((1, 1), 1.01e-3)  # just above the tolerance
    accept, h_next, _ = controller.adapt(
        torch.zeros(1, 1), torch.zeros(1, 1), error, torch.ones(1), state
    )
    assert not accept.any() and float(h_next.max()) <= 0.9


def test_an_adaptive_solve_has_a_step_budget_by_default_and_none_lifts_it():
    # An unreachable tolerance (rtol 1e-30) ran for hours without one; 100000 attempts take
    # seconds to a minute on small states. torchsde's adaptive mode has none: compat keeps that.
    assert inspect.signature(sk.solve).parameters["max_steps"].default == 100_000
    f, y0 = _stiffness_batch()
    controller = sk.PIController(rtol=1e-8, atol=1e-8)
    sol = sk.solve(sk.ODE(f), y0, 0.0, 1.0, solver="dopri5", controller=controller, max_steps=None)
    assert sol.stats["steps"] > 30


# --------------------------------------------------------------------------- host synchronisation

_SYNCING = (
    "item",
    "tolist",
    "__bool__",
    "__int__",
    "__float__",
    "__index__",
    "nonzero",
    "cpu",
    "numpy",
)


@pytest.mark.parametrize("brownian", ["redraw", "bridge"])
@pytest.mark.parametrize("per_sample", [False, True])
def test_adaptive_loop_reads_the_device_at_most_once_per_step(per_sample, brownian, monkeypatch):
    """Counts the tensor methods that force a host synchronisation on an accelerator.

    The bridge reads its longest queue once every ``capacity // 4`` (8) steps to grow its
    buffers; that amortised read is allowed on top of the loop's one per step.
    """
    sde = _double_well()
    y0 = torch.linspace(-1, 1, 64, dtype=F64).reshape(16, 4)
    controller = sk.PIController(rtol=1e-3, atol=1e-3, per_sample=per_sample)
    solve_args = dict(
        solver="improved_euler", controller=controller, saveat=[0.5, 1.0], brownian=brownian
    )
    sk.solve(sde, y0, 0.0, 1.0, **solve_args, generator=0)  # warm-up: first-call checks
    reads = []
    for name in _SYNCING:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, _name=name, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    sol = sk.solve(sde, y0, 0.0, 1.0, **solve_args, generator=0)
    monkeypatch.undo()
    steps = int(torch.as_tensor(sol.stats["steps"]).max())
    assert steps > 50
    allowed = steps + 12 + (steps // 8 if brownian == "bridge" else 0)
    assert len(reads) <= allowed, (len(reads), steps, sorted(set(reads)))


# --------------------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(rtol=-1.0), r"rtol=-1.0: must be finite and non-negative"),
        (dict(atol=math.inf), r"atol=inf: must be finite and non-negative"),
        (dict(rtol=0.0, atol=0.0), "both 0.*give at least one positive tolerance"),
        (dict(exponent=0.0), r"exponent=0.0: must be positive"),
        (dict(safety=1.5), r"safety=1.5: must be in \(0, 1\]"),
        (dict(factor_min=1.0), "need 0 <= factor_min < 1 < factor_max"),
        (dict(factor_max=1.0), "need 0 <= factor_min < 1 < factor_max"),
        (dict(dt_min=1.0, dt_max=0.5), "need 0 <= dt_min < dt_max"),
        (dict(norm="l1"), "norm='l1': choose one of rms, max"),
        (dict(combine="mean"), "combine='mean': choose one of sum, max"),
        (dict(reference="next"), "reference='next': choose one of current, previous_proposal"),
        (dict(candidate="lower"), "candidate='lower': choose one of solution, embedded"),
    ],
)
def test_pid_controller_refuses_invalid_settings_saying_what_is_valid(options, message):
    with pytest.raises(sk.InputValueError, match=message):
        sk.PIDController(**options)


def test_clip_step_size_refuses_what_it_cannot_wrap_or_bound():
    with pytest.raises(sk.InputTypeError, match="wraps an adaptive controller.*StepTo"):
        sk.ClipStepSize(sk.ConstantStepSize())
    with pytest.raises(sk.InputValueError, match="need 0 <= dt_min < dt_max"):
        sk.ClipStepSize(sk.IController(), dt_min=1.0, dt_max=0.5)
    with pytest.raises(sk.InputValueError, match="jump_ts must be finite"):
        sk.ClipStepSize(sk.IController(), jump_ts=[math.nan])
    with pytest.raises(sk.InputTypeError, match="jump_ts must be a sequence of numbers"):
        sk.ClipStepSize(sk.IController(), jump_ts=3)
    with pytest.raises(sk.InputTypeError, match=r"jump_ts must be a sequence of numbers.*'half'"):
        sk.ClipStepSize(sk.IController(), jump_ts=[0.25, "half"])


@pytest.mark.parametrize(
    ("ts", "error", "message"),
    [
        ([0.0], sk.InputValueError, "needs at least two times"),
        ([0.0, 1.0, 0.5], sk.InputValueError, "must be strictly monotonic"),
        (torch.zeros(2, 2), sk.InputValueError, "must be 1-D"),
        (3, sk.InputTypeError, "must be a sequence of numbers"),
    ],
)
def test_step_to_refuses_grids_that_are_not_monotonic_sequences(ts, error, message):
    with pytest.raises(error, match=message):
        sk.StepTo(ts)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(controller=sk.StepTo([0.0, 0.5, 1.0]), dt=0.1), "do not also pass dt"),
        (dict(controller=sk.StepTo([0.0, 0.5, 2.0])), "its first and last times must be t0 and t1"),
        (dict(controller=sk.ConstantStepSize()), r"needs solve\(..., dt=...\)"),
    ],
)
def test_fixed_step_controllers_refuse_a_solve_they_do_not_fit(options, message):
    sde = _problem("sde")
    with pytest.raises(sk.InputValueError, match=message):
        sk.solve(sde, torch.zeros(2, 1, dtype=F64), 0.0, 1.0, solver="euler", **options)


@pytest.mark.parametrize("solver", ["sosri", "sriw1"])
@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("backward", [False, True])
def test_a_save_time_at_t0_is_landed_on_without_a_step(solver, per_sample, backward):
    # The zero-length step onto a save time at t0 is no step: an SRI scheme's error estimate
    # divides by h, and a shared-time solve rejected that step forever (saveat=linspace(t0, t1)).
    gbm = sk.SDE(lambda t, y: 0.5 * y, lambda t, y: 0.8 * y)
    y0 = torch.ones(10, 3, dtype=torch.float64)
    t0, t1 = (1.0, 0.0) if backward else (0.0, 1.0)
    controller = sk.PIController(rtol=1e-2, atol=1e-2, per_sample=per_sample)
    sol = sk.solve(gbm, y0, t0, t1, solver=solver, controller=controller, saveat=[t0, 0.5, t1],
                   generator=0, max_steps=500)  # fmt: skip
    assert torch.equal(sol.ys[0], y0) and torch.isfinite(sol.ys).all()


@pytest.mark.parametrize("per_sample", [False, True])
def test_a_stopped_solve_saves_its_last_state_last_and_nan_where_it_did_not_reach(per_sample):
    # ys[-1] held zeros (a valid state) for samples that ran out of steps, and their last
    # accepted state was lost
    f, y0 = _stiffness_batch()
    controller = sk.PIController(rtol=1e-8, atol=1e-8, per_sample=per_sample)
    options = dict(solver="dopri5", controller=controller, max_steps=30, throw=False)
    plain = sk.solve(sk.ODE(f), y0, 0.0, 1.0, **options)
    saved = sk.solve(sk.ODE(f), y0, 0.0, 1.0, saveat=[0.001, 0.5, 1.0], **options)
    stopped = saved.status != 0
    assert stopped[1]  # the stiff sample, which does not reach t = 0.5
    assert torch.isnan(saved.ys[1, 1]).all() and torch.isnan(plain.ys[:, 1]).sum() == 0
    last = saved.ys[-1]
    assert torch.isfinite(last).all() and (last[stopped] != 0).all()
    reached = ~torch.isnan(saved.ys[:, stopped])
    assert (saved.ys[:, stopped][reached] != 0).all()  # no zeros standing in for states
    if per_sample:  # the finished samples keep their results
        torch.testing.assert_close(last[~stopped], plain.ys[-1][~stopped])
        assert torch.isfinite(saved.ys[:, ~stopped]).all()


class _HalveOrDouble(sk.AbstractStepSizeController):
    """The docs' controller (docs/concepts/controllers.md): no error() of its own."""

    def __init__(self, tol: float):
        self.tol = tol

    def init(self, solver, y0, t0, t1, dt0):
        return torch.tensor(dt0, dtype=y0.dtype, device=y0.device), None

    def adapt(self, y, y_next, y_error, h, state):
        accept = y_error.abs().max() <= self.tol
        return accept, torch.where(accept, 2 * h, h / 2), state


def test_clip_step_size_around_a_controller_without_an_error_norm_fails_as_a_solve_error():
    # ClipStepSize.error delegated unconditionally: the underflow report, which names the worst
    # sample where the controller has an error norm, raised AttributeError instead
    controller = sk.ClipStepSize(_HalveOrDouble(1e-6), dt_max=0.2, dt_min=1e-4)
    assert not hasattr(controller, "error") and hasattr(sk.ClipStepSize(sk.IController()), "error")
    blows_up = sk.ODE(lambda t, y: y**2)  # at t = 1
    with pytest.raises(sk.SolveError, match="fell below dt_min=0.0001"):
        sk.solve(blows_up, torch.ones(2, 1, dtype=torch.float64), 0.0, 2.0, solver="bosh3",
                 controller=controller, dt=0.1)  # fmt: skip


@pytest.mark.parametrize("per_sample", [False, True])
def test_a_controller_that_shrinks_accepted_steps_to_nothing_stops_at_once(per_sample):
    # Valid coefficients (hypothesis drew them) that accept every step and shrink it by 0.79:
    # the steps reached 4e-307 with t frozen, until max_steps after 12-17 s
    controller = sk.PIDController(
        rtol=0, atol=1e-6, icoeff=0.1, safety=0.5, factor_min=0.0, factor_max=1.5,
        per_sample=per_sample,
    )  # fmt: skip
    problem = skt.problems.smooth_ode()
    with pytest.raises(sk.SolveError, match="controller shrinks accepted steps") as caught:
        sk.solve(problem, problem.initial(3), 0.0, 1.0, solver="dopri5", controller=controller,
                 max_steps=50_000)  # fmt: skip
    assert caught.value.status == sk.Status.DT_MIN
