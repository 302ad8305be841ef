"""``sdekit.compat.sdeint``: torchsde's results on torchsde's own Brownian path, and torchsde's errors."""

import math
import warnings

import pytest
import torch
import torchsde

import sdekit.testing as skt
from sdekit.compat import sdeint, sdeint_adjoint
from sdekit.compat.sdeint import torchsde_grid
from sdekit.compat.solvers import Midpoint, ReversibleHeun

B, D, M = 5, 3, 2
DTYPE = torch.float64
NOISE_CHANNELS = {"diagonal": D, "scalar": 1, "additive": M, "general": M}


class Module(torch.nn.Module):
    """A nonlinear SDE in each of torchsde's noise layouts; component i of a diagonal or scalar
    diffusion depends on y_i only (commutative noise, where Milstein and SRK apply)."""

    def __init__(self, noise="diagonal", sde_type="ito", seed=0):
        super().__init__()
        self.noise_type, self.sde_type = noise, sde_type
        gen = torch.Generator().manual_seed(seed)
        self.a = torch.nn.Parameter(torch.randn(D, generator=gen, dtype=DTYPE))
        self.b = torch.nn.Parameter(0.5 + torch.rand(D, generator=gen, dtype=DTYPE))
        self.W = torch.nn.Parameter(0.4 * torch.randn(D, M, generator=gen, dtype=DTYPE))

    def f(self, t, y):
        return torch.sin(y) * self.a - 0.5 * y + 0.2 * t

    def g(self, t, y):
        if self.noise_type == "diagonal":
            return torch.sigmoid(y) * self.b
        if self.noise_type == "scalar":
            return (torch.sigmoid(y) * self.b).unsqueeze(-1)
        if self.noise_type == "additive":
            return (self.W * (1 + t)).expand(y.shape[0], D, M)
        return torch.tanh(y).unsqueeze(-1) * self.W + 0.1

    def h(self, t, y):  # a prior drift, for logqp
        return -y


def interval(ts, noise, levy_area="space-time", entropy=7, channels=None):
    return torchsde.BrownianInterval(
        t0=ts[0],
        t1=ts[-1],
        size=(B, channels or NOISE_CHANNELS[noise]),
        dtype=DTYPE,
        levy_area_approximation=levy_area,
        entropy=entropy,
    )


def y0(seed=1):
    return torch.rand(B, D, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)


# Every method on every noise type torchsde supports it on. Stratonovich grad-free Milstein is
# sdekit's corrected scheme (see test_stratonovich_grad_free_milstein_...).
CASES = [
    ("ito", "euler", None, ("diagonal", "scalar", "additive", "general")),
    ("ito", "milstein", None, ("diagonal", "scalar", "additive")),
    ("ito", "milstein", {"grad_free": True}, ("diagonal", "scalar", "additive")),
    ("ito", "srk", None, ("diagonal", "scalar", "additive")),
    ("stratonovich", "milstein", None, ("diagonal", "scalar", "additive")),
    ("stratonovich", "euler_heun", None, ("diagonal", "scalar", "additive", "general")),
    ("stratonovich", "heun", None, ("diagonal", "scalar", "additive", "general")),
    ("stratonovich", "midpoint", None, ("diagonal", "scalar", "additive", "general")),
    ("stratonovich", "reversible_heun", None, ("diagonal", "scalar", "additive", "general")),
    ("stratonovich", "log_ode", None, ("diagonal", "scalar", "additive")),
]
PARAMS = [
    pytest.param(
        calculus,
        method,
        options,
        noise,
        id=f"{calculus}-{method}{'-grad_free' if options else ''}-{noise}",
    )
    for calculus, method, options, noises in CASES
    for noise in noises
]
# Output grids: the end only; intermediate times off the dt grid (interpolated, as torchsde does);
# a start away from 0 with an output closer than one step.
GRIDS = [((0.0, 1.0), 0.05), ((0.0, 0.33, 0.5, 0.91, 1.2), 0.07), ((0.1, 0.1004, 0.6), 0.05)]


@pytest.mark.parametrize("ts, dt", GRIDS, ids=["end", "interpolated", "short-first"])
@pytest.mark.parametrize("calculus, method, options, noise", PARAMS)
def test_fixed_steps_equal_torchsde_on_one_brownian_interval(
    calculus, method, options, noise, ts, dt
):
    sde, x0 = Module(noise, calculus), y0()
    levy_area = "foster" if method == "log_ode" else "space-time"
    bm = interval(ts, noise, levy_area)
    kwargs = dict(bm=bm, method=method, dt=dt, options=options)
    expected = torchsde.sdeint(sde, x0, ts, **kwargs)
    got = sdeint(sde, x0, ts, **kwargs)
    assert got.shape == (len(ts), B, D)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_float32_results_equal_torchsde_to_float32_rounding():
    sde = Module("diagonal", "ito").float()
    x0 = y0().float()
    ts = torch.tensor([0.0, 0.4, 1.0])
    bm = torchsde.BrownianInterval(
        t0=0.0, t1=1.0, size=(B, D), levy_area_approximation="space-time", entropy=3
    )
    for method in ("euler", "srk"):
        expected = torchsde.sdeint(sde, x0, ts, bm=bm, method=method, dt=0.05)
        torch.testing.assert_close(sdeint(sde, x0, ts, bm=bm, method=method, dt=0.05), expected)


def test_the_grid_is_torchsdes_accumulated_in_the_dtype_of_ts():
    ts = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float32)
    grid, brackets = torchsde_grid(ts, 0.1)
    t, expected = ts[0], [ts[0]]
    while t < ts[-1]:
        t = min(t + 0.1, ts[-1])
        expected.append(t)
    assert [float(s) for s in grid] == [float(s) for s in expected]
    assert float(grid[-1]) == 1.0 and float(grid[-2]) != 0.9  # 0.1 summed in float32
    assert brackets == [(2, 3), (len(grid) - 2, len(grid) - 1)]  # 0.25 lies in (0.2, 0.3]


@pytest.mark.parametrize(
    "calculus, noise, expected",
    [
        ("ito", "diagonal", "srk"),
        ("ito", "general", "euler"),
        ("stratonovich", "scalar", "midpoint"),
    ],
)
def test_the_default_method_follows_sde_type_and_noise_type(calculus, noise, expected):
    sde, x0, ts = Module(noise, calculus), y0(), (0.0, 0.5)
    bm = interval(ts, noise)
    default = sdeint(sde, x0, ts, bm=bm, dt=0.1)
    torch.testing.assert_close(default, sdeint(sde, x0, ts, bm=bm, dt=0.1, method=expected))
    torch.testing.assert_close(default, torchsde.sdeint(sde, x0, ts, bm=bm, dt=0.1))


def test_stratonovich_grad_free_milstein_is_torchsdes_where_the_drift_vanishes_and_dw_is_positive():
    # sdekit's derivative-free Stratonovich Milstein takes the finite difference with the sign of
    # dW and includes the drift (strong order 1.0); torchsde's uses +sqrt(h) and no drift (0.5).
    class Driftless(Module):
        def f(self, t, y):
            return torch.zeros_like(y)

    sde, x0, ts = Driftless("diagonal", "stratonovich"), y0(), (0.0, 0.2)
    bm = interval(ts, "diagonal")
    kwargs = dict(bm=bm, method="milstein", dt=0.2, options={"grad_free": True})
    ours, theirs = sdeint(sde, x0, ts, **kwargs)[-1], torchsde.sdeint(sde, x0, ts, **kwargs)[-1]
    positive = bm(0.0, 0.2) > 0
    assert 0 < positive.sum() < positive.numel()
    torch.testing.assert_close(ours[positive], theirs[positive], rtol=1e-12, atol=1e-12)
    assert ((ours - theirs)[~positive].abs() > 1e-6).all()


def test_milstein_on_scalar_noise_uses_the_jacobian_times_g():
    # dY1 = Y2 dW, dY2 = 0 has the exact solution Y1 = Y1(0) + Y2 W, which Milstein's term
    # J_g g (= 0 here) reproduces; torchsde's J_g^T g (= (0, Y2)) moves Y2.
    class Shear:
        noise_type, sde_type = "scalar", "ito"

        def f(self, t, y):
            return torch.zeros_like(y)

        def g(self, t, y):
            return torch.stack([y[:, 1], torch.zeros_like(y[:, 0])], dim=-1).unsqueeze(-1)

    x0 = torch.tensor([[0.0, 1.0]], dtype=DTYPE)
    bm = torchsde.BrownianInterval(t0=0.0, t1=1.0, size=(1, 1), dtype=DTYPE, entropy=3)
    ours = sdeint(Shear(), x0, [0.0, 1.0], bm=bm, method="milstein", dt=0.25)[-1]
    torch.testing.assert_close(ours, torch.cat([bm(0.0, 1.0), x0[:, 1:]], dim=1))
    theirs = torchsde.sdeint(Shear(), x0, [0.0, 1.0], bm=bm, method="milstein", dt=0.25)[-1]
    assert (theirs[:, 1] - 1).abs().item() > 1e-3


@pytest.mark.parametrize(
    "solver, skip",
    [
        (Midpoint(), ()),
        # z carries over steps: a restart from y alone is another solve (resuming is tested above)
        (ReversibleHeun(), ("composition",)),
    ],
    ids=["midpoint", "reversible_heun"],
)
def test_the_schemes_sdekit_lacked_pass_the_solver_battery(solver, skip):
    skt.assert_solver_properties(solver, skip=skip)


# --------------------------------------------------------------------------- module conventions


def _missing(self):
    raise AttributeError("not defined by this module")


ABSENT = property(_missing)  # hides an inherited method from hasattr


class Fused(Module):
    """Only ``f_and_g``, counting its calls."""

    def __init__(self, noise):
        super().__init__(noise, "ito")
        self.calls = 0

    def f_and_g(self, t, y):
        self.calls += 1
        return Module.f(self, t, y), Module.g(self, t, y)

    f = g = ABSENT


class Products(Module):
    """Only ``f`` and ``g_prod`` (torchsde's diffusion-vector product)."""

    g = ABSENT

    def g_prod(self, t, y, v):
        g = Module.g(self, t, y)
        return g * v if self.noise_type == "diagonal" else torch.bmm(g, v.unsqueeze(-1)).squeeze(-1)


class FusedProducts(Products):
    """Only ``f_and_g_prod``."""

    f = ABSENT

    def f_and_g_prod(self, t, y, v):
        return Module.f(self, t, y), self.g_prod(t, y, v)


class Renamed(Module):
    """The drift, diffusion and prior drift under other names."""

    drift, diffusion, prior = Module.f, Module.g, Module.h
    f = g = h = ABSENT


class NoPrior(Module):
    h = ABSENT


@pytest.mark.parametrize("noise", ["diagonal", "general"])
def test_f_and_g_is_called_once_per_euler_step_and_gives_torchsdes_result(noise):
    sde, x0, ts = Fused(noise), y0(), (0.0, 0.5)
    bm = interval(ts, noise)
    expected = torchsde.sdeint(sde, x0, ts, bm=bm, method="euler", dt=0.05)
    sde.calls = 0
    got = sdeint(sde, x0, ts, bm=bm, method="euler", dt=0.05)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    steps = len(torchsde_grid(torch.tensor(ts, dtype=DTYPE), 0.05)[0]) - 1
    assert steps == 11  # ten steps of 0.05 sum to 0.49999999999999994 in float64
    assert sde.calls == steps + (noise == "general")  # one per step; the noise size from one call


@pytest.mark.parametrize("cls", [Products, FusedProducts], ids=["g_prod", "f_and_g_prod"])
@pytest.mark.parametrize("noise", ["diagonal", "scalar", "general"])
def test_diffusion_products_alone_are_enough(cls, noise):
    sde, x0, ts = cls(noise, "ito"), y0(), (0.0, 0.3, 0.5)
    bm = interval(ts, noise)
    expected = torchsde.sdeint(sde, x0, ts, bm=bm, method="euler", dt=0.05)
    torch.testing.assert_close(sdeint(sde, x0, ts, bm=bm, method="euler", dt=0.05), expected)
    with pytest.raises(ValueError, match="Cannot infer noise size"):
        sdeint(cls("general", "ito"), x0, ts, method="euler")


def test_names_rename_the_modules_methods():
    sde, x0, ts = Renamed("diagonal", "stratonovich"), y0(), (0.0, 0.5)
    names = {"drift": "drift", "diffusion": "diffusion", "prior_drift": "prior"}
    bm = interval(ts, "diagonal", channels=D + 1)  # logqp's extra state has its own channel
    kwargs = dict(bm=bm, method="heun", dt=0.05, names=names, logqp=True)
    for got, expected in zip(
        sdeint(sde, x0, ts, **kwargs), torchsde.sdeint(sde, x0, ts, **kwargs), strict=True
    ):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("noise", ["diagonal", "general"])
def test_logqp_returns_torchsdes_log_ratio_increments(noise):
    sde, x0, ts = Module(noise, "ito"), y0(), (0.0, 0.2, 0.5)
    bm = interval(ts, noise, channels=D + 1 if noise == "diagonal" else M)
    kwargs = dict(bm=bm, method="euler", dt=0.05, logqp=True)
    ys, log_ratio = sdeint(sde, x0, ts, **kwargs)
    expected_ys, expected_log_ratio = torchsde.sdeint(sde, x0, ts, **kwargs)
    assert ys.shape == (3, B, D) and log_ratio.shape == (2, B)
    torch.testing.assert_close(ys, expected_ys, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_ratio, expected_log_ratio, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("noise", ["diagonal", "scalar"])
def test_reversible_heun_returns_and_resumes_from_its_extra_state(noise):
    sde, x0 = Module(noise, "stratonovich"), y0()
    bm = interval((0.0, 1.0), noise)
    kwargs = dict(bm=bm, method="reversible_heun", dt=0.05, extra=True)
    ys, state = sdeint(sde, x0, (0.0, 0.5), **kwargs)
    expected_ys, expected_state = torchsde.sdeint(sde, x0, (0.0, 0.5), **kwargs)
    torch.testing.assert_close(ys, expected_ys, rtol=1e-12, atol=1e-12)
    for got, expected in zip(state, expected_state, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    resumed = sdeint(sde, ys[-1], (0.5, 1.0), extra_solver_state=state, **kwargs)[0]
    expected = torchsde.sdeint(sde, ys[-1], (0.5, 1.0), extra_solver_state=state, **kwargs)[0]
    torch.testing.assert_close(resumed, expected, rtol=1e-12, atol=1e-12)
    assert sdeint(sde, x0, (0.0, 0.5), bm=bm, method="euler_heun", dt=0.05, extra=True)[1] == ()


def test_without_bm_the_draws_come_from_torchs_global_generator():
    sde, x0, ts = Module("diagonal", "ito"), y0(), torch.linspace(0, 1, 5, dtype=DTYPE)
    torch.manual_seed(0)
    first = sdeint(sde, x0, ts, dt=0.01)
    torch.manual_seed(0)
    again = sdeint(sde, x0, ts, dt=0.01)
    assert first.shape == (5, B, D)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, sdeint(sde, x0, ts, dt=0.01))


@pytest.mark.parametrize("method", ["euler", "srk"])  # step doubling, embedded estimate
def test_adaptive_steps_without_bm_are_reproducible_under_torchs_seed(method):
    # step doubling builds a BrownianInterval, which torchsde seeds from NumPy's generator
    sde, x0, ts = Module("diagonal", "ito"), y0(), torch.linspace(0, 1, 3, dtype=DTYPE)
    runs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # adaptive Euler on multiplicative noise
            runs.append(sdeint(sde, x0, ts, method=method, dt=0.05, adaptive=True))
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    assert not torch.equal(runs[0], runs[2])


# --------------------------------------------------------------------------- adaptive steps


@pytest.mark.parametrize(
    "calculus, method, reference",
    [("ito", "euler", "srk"), ("ito", "srk", "srk"), ("stratonovich", "heun", "heun")],
)
def test_adaptive_steps_are_as_accurate_as_torchsdes_and_land_on_the_output_times(
    calculus, method, reference
):
    # Same tolerance, same path, against a fine fixed-step solution: at the end the two
    # adaptive solves have errors of the same size; at the intermediate output time torchsde
    # interpolates between its steps, sdekit lands a step there.
    sde, x0, ts = Module("diagonal", calculus), y0(), (0.0, 0.4, 1.0)
    bm = interval(ts, "diagonal")
    fine = sdeint(sde, x0, ts, bm=bm, method=reference, dt=2e-3)
    kwargs = dict(bm=bm, method=method, dt=0.05, adaptive=True, rtol=1e-2, atol=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # adaptive Euler on multiplicative noise: torchsde warns
        ours = sdeint(sde, x0, ts, **kwargs)
        theirs = torchsde.sdeint(sde, x0, ts, **kwargs)
    assert ours.shape == (3, B, D)
    ours_err, theirs_err = (
        (ours - fine).abs().amax(dim=(1, 2)),
        (theirs - fine).abs().amax(dim=(1, 2)),
    )
    assert ours_err[2] < max(2 * theirs_err[2], 0.05), (ours_err, theirs_err)
    assert ours_err[1] < theirs_err[1] / 2, (ours_err, theirs_err)


def test_adaptive_step_at_dt_min_is_accepted_with_torchsdes_warning():
    sde, x0, ts = Module("diagonal", "stratonovich"), y0(), (0.0, 0.05)
    kwargs = dict(method="heun", dt=0.01, adaptive=True, rtol=1e-12, atol=1e-12, dt_min=0.005)
    with pytest.warns(UserWarning, match="minimum allowed step size"):
        ys = sdeint(sde, x0, ts, **kwargs)
    assert torch.isfinite(ys).all()


def test_adaptive_euler_on_multiplicative_noise_warns_as_torchsde():
    sde, x0 = Module("diagonal", "ito"), y0()
    with pytest.warns(UserWarning, match="not guaranteed to converge"):
        sdeint(sde, x0, (0.0, 0.1), method="euler", dt=0.05, adaptive=True, rtol=1e-2, atol=1e-2)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("calculus, method", [("ito", "milstein"), ("stratonovich", "midpoint")])
def test_sdeint_adjoint_gives_the_gradients_of_the_discretised_solve(calculus, method):
    sde, x0, ts = Module("diagonal", calculus), y0().requires_grad_(), (0.0, 0.3, 0.6)
    bm = interval(ts, "diagonal")
    params = [x0, sde.a, sde.b]

    def loss(ys):
        return (ys**2).sum()

    ours = torch.autograd.grad(
        loss(sdeint_adjoint(sde, x0, ts, bm=bm, method=method, dt=0.05)), params
    )
    backprop = torch.autograd.grad(
        loss(torchsde.sdeint(sde, x0, ts, bm=bm, method=method, dt=0.05)), params
    )
    adjoint = torch.autograd.grad(
        loss(torchsde.sdeint_adjoint(sde, x0, ts, bm=bm, method=method, dt=0.05)), params
    )
    for got, exact, approximate in zip(ours, backprop, adjoint, strict=True):
        torch.testing.assert_close(got, exact, rtol=1e-9, atol=1e-9)
        # torchsde's adjoint approximates the same gradient, to O(dt).
        torch.testing.assert_close(got, approximate, rtol=0.1, atol=0.1)


def test_sdeint_adjoint_needs_a_module_or_adjoint_params():
    sde = Module("diagonal", "ito")
    plain = type(
        "Plain", (), {"noise_type": "diagonal", "sde_type": "ito", "f": sde.f, "g": sde.g}
    )()
    for fn in (torchsde.sdeint_adjoint, sdeint_adjoint):
        with pytest.raises(ValueError, match="nn.Module"):
            fn(plain, y0(), (0.0, 0.1), method="euler")
    assert sdeint_adjoint(plain, y0(), (0.0, 0.1), method="euler", adjoint_params=()).shape == (
        2,
        B,
        D,
    )


# --------------------------------------------------------------------------- torchsde's errors


class NoNoiseType:
    sde_type = "ito"

    def f(self, t, y):
        return y

    def g(self, t, y):
        return y


def _module(noise="diagonal", calculus="ito", **attributes):
    sde = Module(noise, calculus)
    for name, value in attributes.items():
        setattr(sde, name, value)
    return sde


INVALID = {
    "ito-sde-stratonovich-method": (lambda: (_module(), dict(method="heun"))),
    "ito-sde-midpoint": (lambda: (_module(), dict(method="midpoint"))),
    "stratonovich-sde-euler": (lambda: (_module(calculus="stratonovich"), dict(method="euler"))),
    "stratonovich-sde-srk": (lambda: (_module(calculus="stratonovich"), dict(method="srk"))),
    "srk-general-noise": (lambda: (_module("general"), dict(method="srk"))),
    "milstein-general-noise": (lambda: (_module("general"), dict(method="milstein"))),
    "srk-without-levy-area": (
        lambda: (_module(), dict(method="srk", bm=interval((0.0, 0.1), "diagonal", "none")))
    ),
    "adjoint-method-in-sdeint": (lambda: (_module(), dict(method="adjoint_reversible_heun"))),
    "unknown-method": (lambda: (_module(), dict(method="rk4"))),
    "no-noise-type": (lambda: (NoNoiseType(), dict(method="euler"))),
    "unknown-noise-type": (lambda: (_module(noise_type="colored"), dict(method="euler"))),
    "unknown-sde-type": (lambda: (_module(sde_type="ito-ish"), dict(method="euler"))),
    "y0-not-2d": (lambda: (_module(), dict(y0=torch.zeros(B, D, 1, dtype=DTYPE)))),
    "y0-not-a-tensor": (lambda: (_module(), dict(y0=[[0.0] * D] * B))),
    "ts-not-increasing": (lambda: (_module(), dict(ts=(0.0, 0.1, 0.1)))),
    "ts-strings": (lambda: (_module(), dict(ts=("0", "1")))),
    "ts-requires-grad": (
        lambda: (_module(), dict(ts=torch.tensor([0.0, 0.1], dtype=DTYPE, requires_grad=True)))
    ),
    "bm-batch-mismatch": (
        lambda: (
            _module(),
            dict(bm=torchsde.BrownianInterval(t0=0.0, t1=0.1, size=(B + 1, D), dtype=DTYPE)),
        )
    ),
    "scalar-noise-two-channels": (
        lambda: (_module("scalar", g=lambda t, y: torch.ones(B, D, 2, dtype=DTYPE)), {})
    ),
    "logqp-without-prior-drift": (lambda: (NoPrior(), dict(logqp=True))),
}


@pytest.mark.parametrize("case", INVALID)
def test_invalid_calls_raise_torchsdes_exception_types(case):
    sde, kwargs = INVALID[case]()
    call = dict(y0=y0(), ts=(0.0, 0.1), dt=0.05) | kwargs
    with pytest.raises(Exception) as theirs:
        torchsde.sdeint(sde, **call)
    with pytest.raises(theirs.type):
        sdeint(sde, **call)


@pytest.mark.parametrize("dt", [0.0, -0.05, math.nan, torch.tensor(0.0)])
@pytest.mark.parametrize("adaptive", [False, True])
def test_a_step_that_is_not_positive_is_refused(dt, adaptive):
    # torchsde's grid loop never ends for dt <= 0, growing its grid until memory runs out
    with pytest.raises(ValueError, match=r"must be (a )?positive"):
        sdeint(_module(), y0(), (0.0, 0.1), dt=dt, adaptive=adaptive)
    with pytest.raises(ValueError, match=r"must be (a )?positive"):
        sdeint_adjoint(_module(), y0(), (0.0, 0.1), dt=dt, adaptive=adaptive)


def test_log_ode_on_general_noise_names_the_alternative():
    with pytest.raises(ValueError, match="method='midpoint'"):
        sdeint(Module("general", "stratonovich"), y0(), (0.0, 0.1), method="log_ode", dt=0.05)


def test_unexpected_arguments_warn_as_in_torchsde():
    with pytest.warns(UserWarning, match="Unexpected arguments"):
        sdeint(Module(), y0(), (0.0, 0.1), method="euler", dt=0.05, tol=1e-3)


class _Float32Decay(torch.nn.Module):
    noise_type, sde_type = "diagonal", "stratonovich"

    def f(self, t, y):
        return -y

    def g(self, t, y):
        return torch.ones_like(y)


@pytest.mark.parametrize("method", ["midpoint", "heun", "reversible_heun", "euler_heun"])
def test_float32_step_doubling_at_torchsdes_default_tolerances_does_not_collapse(method):
    # The halves' times in float32 ended up to 3e-8 off the full step's end: the path's noise
    # over that gap failed every estimate at atol 1e-4, steps fell to dt_min (28 s, 30 000
    # warnings), and longer spans recursed in BrownianInterval
    ts = torch.linspace(0.0, 2.2, 3)
    bm = torchsde.BrownianInterval(t0=0.0, t1=2.2, size=(4, 2), entropy=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Hitting minimum allowed step size" among them
        ys = sdeint(
            _Float32Decay(), torch.full((4, 2), 0.2), ts, bm=bm, method=method, adaptive=True
        )
    assert ys.dtype == torch.float32 and torch.isfinite(ys).all()


def test_float32_times_that_round_past_the_paths_end_are_rounding():
    # float32(0.3) is 1.2e-8 above the path's t1 = 0.3: refused with a message printing [0.3, 0.3]
    bm = torchsde.BrownianInterval(t0=0.0, t1=0.3, size=(4, 2))
    ys = sdeint(_Float32Decay(), torch.full((4, 2), 0.2), torch.linspace(0, 0.3, 4), bm=bm, dt=0.01)
    assert ys.shape == (4, 4, 2)
    with pytest.raises(ValueError, match=r"over \[0\.2\d+, 0\.3299\d+\] leaves .* \[0, 0\.3\]"):
        sdeint(_Float32Decay(), torch.full((4, 2), 0.2), torch.tensor([0.0, 0.4]), bm=bm, dt=0.11)


def test_adjoint_params_that_leave_out_a_parameter_say_that_gradients_reach_it_anyway():
    sde = Module()
    ts = torch.tensor([0.0, 0.5], dtype=DTYPE)
    with pytest.warns(UserWarning, match=r"adjoint_params leaves out a, b, W.*requires_grad=False"):
        sdeint_adjoint(sde, y0(), ts, bm=interval(ts, "diagonal"), dt=0.1, adjoint_params=())


def test_options_that_are_not_a_dict_are_refused_clearly():
    # a list raised "cannot convert dictionary update sequence element"
    ts = torch.tensor([0.0, 0.5], dtype=DTYPE)
    with pytest.raises(TypeError, match="options must be a dict, got list"):
        sdeint(Module(), y0(), ts, bm=interval(ts, "diagonal"), dt=0.1, options=[1])
