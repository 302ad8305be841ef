"""``to_ito`` / ``to_stratonovich``: the drift corrections against closed forms, by noise kind, and
a converted problem solved by a scheme of the other calculus on the same Brownian path."""

import pytest
import torch
import torchsde

import sdekit as sk

F64 = torch.float64


def _linear_maps(d: int, m: int, seed: int) -> torch.Tensor:
    return torch.randn(m, d, d, dtype=F64, generator=torch.Generator().manual_seed(seed)) / d


@pytest.mark.parametrize("m", [1, 3])
def test_general_noise_is_corrected_by_half_the_sum_of_b_j_squared(m):
    # g_j(y) = B_j y: J_(g_j) g_j = B_j² y, so the two drifts differ by ½ Σ_j B_j² y
    B = _linear_maps(2, m, seed=m)
    ito = sk.SDE(lambda t, y: -y, lambda t, y: torch.einsum("jde,be->bdj", B, y), noise="general")
    y = torch.randn(5, 2, dtype=F64)
    half = 0.5 * torch.einsum("jde,jef,bf->bd", B, B, y)
    strat = sk.to_stratonovich(ito)
    assert strat.calculus == "stratonovich" and strat.noise == "general"
    torch.testing.assert_close(strat.f(0.0, y), -y - half)
    torch.testing.assert_close(sk.to_ito(strat).f(0.0, y), -y)


@pytest.mark.parametrize("noise", ["diagonal", "scalar"])
def test_diagonal_and_scalar_noise_are_corrected_by_g_times_its_derivative(noise):
    # diagonal: g_i = sin(y_i) -> ½ sin cos; scalar: g = B y (one W) -> ½ B² y
    B = _linear_maps(3, 1, seed=0)[0]
    g = (lambda t, y: torch.sin(y)) if noise == "diagonal" else (lambda t, y: y @ B.T)
    ito = sk.SDE(lambda t, y: torch.zeros_like(y), g, noise=noise)
    y = torch.randn(4, 3, dtype=F64)
    expected = torch.sin(y) * torch.cos(y) if noise == "diagonal" else y @ (B @ B).T
    torch.testing.assert_close(sk.to_stratonovich(ito).f(0.0, y), -0.5 * expected)


def test_additive_noise_keeps_its_drift_and_a_problem_of_the_asked_calculus_is_itself():
    drift = lambda t, y: -y  # noqa: E731
    additive = sk.SDE(drift, lambda t, y: torch.ones_like(y), noise="additive")
    assert sk.to_stratonovich(additive).f is drift
    assert sk.to_ito(additive) is additive
    with pytest.raises(TypeError, match=r"ODE, which has no calculus"):
        sk.to_ito(sk.ODE(drift))


def test_a_converted_stratonovich_problem_is_solved_by_an_ito_scheme_on_its_path():
    # dY = a Y dt + b Y ∘dW has Y(1) = exp(a + b W(1)); SOSRI (Itô only) on the converted form
    a, b, n = 0.2, 0.7, 4000
    strat = sk.SDE(lambda t, y: a * y, lambda t, y: b * y, calculus="stratonovich")
    with pytest.raises(ValueError, match=r"sdekit.to_ito\(problem\)"):
        sk.solve(strat, torch.ones(2, 1, dtype=F64), 0.0, 1.0, solver="sosri", dt=0.1)
    y0 = torch.ones(n, 1, dtype=F64)
    bm = torchsde.BrownianInterval(
        0.0, 1.0, size=(n, 1), dtype=F64, entropy=3, levy_area_approximation="space-time"
    )
    exact = torch.exp(a + b * bm(0.0, 1.0))
    errors = [
        (
            sk.solve(sk.to_ito(strat), y0, 0.0, 1.0, solver="sosri", dt=dt, brownian=bm).ys[-1]
            - exact
        )
        .abs()
        .mean()
        .item()
        for dt in (2**-4, 2**-6)
    ]
    # strong order 1.5 over a step 4x shorter: 8x smaller (measured 7.2; order 1 would give 4)
    assert errors[1] < 2e-3 and errors[0] / errors[1] > 4**1.25


def test_the_correction_carries_the_gradient_of_the_diffusions_parameters():
    # g = θ y: the Itô drift of the Stratonovich f = 0 is ½ θ² y, whose θ-derivative is θ y
    theta = torch.tensor(0.6, dtype=F64, requires_grad=True)
    strat = sk.SDE(lambda t, y: 0 * y, lambda t, y: theta * y, calculus="stratonovich")
    y = torch.randn(8, 2, dtype=F64)
    (grad,) = torch.autograd.grad(sk.to_ito(strat).f(0.0, y).sum(), theta)
    torch.testing.assert_close(grad, theta.detach() * y.sum())
