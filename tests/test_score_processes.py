"""Forward processes: marginals, inverses, priors, and the reverse-time problems built on them."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

import sdekit
import sdekit_score as ss
from sdekit_score.sampling.processes import batch_time

PROCESSES = [
    ss.VPSDE(),
    ss.SubVPSDE(),
    ss.VESDE(),
    ss.EDMProcess(),
    ss.VPSDE(beta_min=1.0, beta_max=1.0),
    ss.VESDE(sigma_min=0.002, sigma_max=80.0, eps=1e-3),
]
IDS = ["vp", "subvp", "ve", "edm", "vp-constant-beta", "ve-edm-range"]


def _t(value) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.float64)


@pytest.mark.parametrize("process", PROCESSES, ids=IDS)
def test_marginals_solve_the_moment_equations(process):
    # m' = f(t) m, v' = 2 f(t) v + g(t)^2, started from the exact marginal at eps.
    ones = torch.ones(1, 1, dtype=torch.float64)

    def moments(t, y):
        f = process.drift(ones, _t(t)).item()
        g = process.diffusion(_t(t)).item()
        return [f * y[0], 2.0 * f * y[1] + g**2]

    eps, T = process.eps, process.T
    ts = np.linspace(eps, T, 13)
    y0 = [process.alpha(_t(eps)).item(), process.sigma(_t(eps)).item() ** 2]
    sol = solve_ivp(moments, (eps, T), y0, t_eval=ts, rtol=1e-11, atol=1e-14, method="DOP853")
    assert sol.success
    np.testing.assert_allclose(process.alpha(_t(ts)).numpy(), sol.y[0], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(process.sigma(_t(ts)).numpy() ** 2, sol.y[1], rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("process", [ss.VPSDE(), ss.SubVPSDE()], ids=["vp", "subvp"])
def test_vp_family_starts_at_clean_data_and_is_accurate_for_small_t(process):
    assert process.alpha(_t(0.0)).item() == 1.0
    assert process.sigma(_t(0.0)).item() == 0.0
    # sigma^2 (VP) or sigma (subVP) ~ int_0^t beta = beta_min t for tiny t, also in float32
    t = torch.tensor([1e-7, 1e-6], dtype=torch.float32)
    leading = process.beta_min * t
    small = process.sigma(t) ** 2 if process.kind == "vp" else process.sigma(t)
    torch.testing.assert_close(small, leading, rtol=1e-4, atol=0.0)


@settings(max_examples=200, deadline=None)
@given(index=st.integers(0, len(PROCESSES) - 1), u=st.floats(0.0, 1.0))
def test_sigma_to_t_inverts_sigma(index, u):
    process = PROCESSES[index]
    t = _t(process.eps + u * (process.T - process.eps))
    torch.testing.assert_close(process.sigma_to_t(process.sigma(t)), t, rtol=1e-9, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(index=st.integers(0, len(PROCESSES) - 1), u=st.floats(0.0, 1.0))
def test_noise_level_to_t_inverts_noise_level(index, u):
    process = PROCESSES[index]
    t = _t(process.eps + u * (process.T - process.eps))
    level = process.noise_level(t)
    torch.testing.assert_close(process.noise_level_to_t(level), t, rtol=1e-9, atol=1e-12)
    low, high = process.noise_level_range()
    assert low * (1 - 1e-4) <= float(level) <= high * (1 + 1e-9)


@pytest.mark.parametrize(
    "process, tol",
    [(ss.VPSDE(), 1e-4), (ss.SubVPSDE(), 1e-4), (ss.VESDE(), 1e-3), (ss.EDMProcess(), 1e-3)],
    ids=["vp", "subvp", "ve", "edm"],
)
def test_prior_matches_marginal_at_T(process, tol):
    # second moment per element of x_T for any x0 in the data range, against the prior's
    T = _t(process.T)
    low, high = process.data_range
    for x0 in (low, 0.5 * (low + high), high):
        second_moment = process.alpha(T) ** 2 * x0**2 + process.sigma(T) ** 2
        assert abs(second_moment.item() / process.prior_std**2 - 1.0) <= tol


@pytest.mark.parametrize("process", PROCESSES[:4], ids=IDS[:4])
def test_prior_sample_has_prior_std_and_follows_generator(process):
    x = process.prior_sample((4000, 8), generator=0, dtype=torch.float64)
    assert x.shape == (4000, 8) and x.dtype == torch.float64
    assert abs(x.std().item() / process.prior_std - 1.0) < 0.03
    torch.testing.assert_close(x, process.prior_sample((4000, 8), generator=0, dtype=torch.float64))
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    per_sample = process.prior_sample((3, 5), generator=gens)
    alone = process.prior_sample((1, 5), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(per_sample[1:2], alone)


@pytest.mark.parametrize("process", PROCESSES[:4], ids=IDS[:4])
def test_perturb_and_noise_level_use_per_sample_coefficients(process):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 2, 4, generator=gen, dtype=torch.float64)
    noise = torch.randn(3, 2, 4, generator=gen, dtype=torch.float64)
    t = _t([process.eps, 0.3 * process.T, process.T])
    xt = process.perturb(x0, t, noise)
    for i in range(3):
        expected = process.alpha(t[i]) * x0[i] + process.sigma(t[i]) * noise[i]
        torch.testing.assert_close(xt[i], expected)
    torch.testing.assert_close(process.noise_level(t), process.sigma(t) / process.alpha(t))
    if process.kind in ("ve", "edm"):
        torch.testing.assert_close(process.noise_level(t), process.sigma(t))


def test_documented_constants():
    vp, subvp, ve, edm = PROCESSES[:4]
    assert (vp.kind, subvp.kind, ve.kind, edm.kind) == ("vp", "subvp", "ve", "edm")
    assert (vp.eps, ve.eps, edm.eps, edm.T, vp.T, ve.T) == (1e-3, 1e-5, 0.002, 80.0, 1.0, 1.0)
    assert (vp.prior_std, subvp.prior_std, ve.prior_std, edm.prior_std) == (1.0, 1.0, 50.0, 80.0)
    assert vp.data_range == subvp.data_range == edm.data_range == (-1.0, 1.0)
    assert ve.data_range == (0.0, 1.0)
    t = _t([0.2, 0.7])
    torch.testing.assert_close(vp.diffusion(t) ** 2, 0.1 + t * 19.9)
    torch.testing.assert_close(edm.sigma(t), t)
    torch.testing.assert_close(ve.diffusion(t), ve.sigma(t) * np.sqrt(2 * np.log(5000.0)))


def _recording_score(calls):
    def score_fn(x, t):
        calls.append(t)
        return torch.sin(x) * (1.0 + t.reshape(-1, *([1] * (x.ndim - 1))))

    return score_fn


@pytest.mark.parametrize("process", PROCESSES[:4], ids=IDS[:4])
@pytest.mark.parametrize("shared_time", [True, False], ids=["shared-t", "per-sample-t"])
def test_reverse_problems_match_hand_written_formulas(process, shared_time):
    gen = torch.Generator().manual_seed(1)
    y = torch.randn(5, 3, 2, generator=gen, dtype=torch.float64)
    t = _t(0.4 * process.T) if shared_time else _t(np.linspace(0.1, 0.9, 5) * process.T)
    tb = t.expand(5)
    b = (-1, 1, 1)
    s = torch.sin(y) * (1.0 + tb.reshape(b))
    if process.kind in ("vp", "subvp"):
        f = -0.5 * process.beta(tb).reshape(b) * y
    else:
        f = torch.zeros_like(y)
    g = {
        "vp": lambda t: torch.sqrt(0.1 + 19.9 * t),
        "subvp": lambda t: torch.sqrt(
            (0.1 + 19.9 * t) * (1 - torch.exp(-2 * (0.1 * t + 9.95 * t**2)))
        ),
        "ve": lambda t: 0.01 * 5000.0**t * np.sqrt(2 * np.log(5000.0)),
        "edm": lambda t: torch.sqrt(2 * t),
    }[process.kind](tb).reshape(b)

    calls = []
    sde = ss.reverse_sde(process, _recording_score(calls))
    assert isinstance(sde, sdekit.SDE)
    assert (sde.noise, sde.calculus) == ("additive", "ito")
    torch.testing.assert_close(sde.f(t, y), f - g**2 * s)
    torch.testing.assert_close(sde.g(t, y), g.expand_as(y))
    ode = ss.probability_flow(process, _recording_score(calls))
    assert isinstance(ode, sdekit.ODE)
    torch.testing.assert_close(ode.f(t, y), f - 0.5 * g**2 * s)
    assert all(c.shape == (5,) for c in calls) and len(calls) == 2


def test_batch_time_rejects_mismatched_batch():
    with pytest.raises(ValueError, match="one time per sample"):
        batch_time(torch.zeros(3), torch.zeros(4, 2))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ss.VPSDE(beta_min=-0.1), "beta_min"),
        (lambda: ss.SubVPSDE(beta_min=5.0, beta_max=1.0), "beta_max"),
        (lambda: ss.VPSDE(eps=0.0), "eps"),
        (lambda: ss.VESDE(eps=2.0), "eps"),
        (lambda: ss.VESDE(sigma_min=60.0), "sigma_min < sigma_max"),
        (lambda: ss.EDMProcess(sigma_min=0.0), "sigma_min"),
        (lambda: ss.VPSDE(data_range=(1.0, -1.0)), "data_range"),
    ],
)
def test_bad_parameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()
