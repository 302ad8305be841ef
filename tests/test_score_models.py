"""Score-model conventions: every output/conditioning pair recovers the exact score."""

import pytest
import torch

import sdekit_score as ss

PROCESSES = [ss.VPSDE(), ss.SubVPSDE(), ss.VESDE(), ss.EDMProcess()]
GMM = ss.GaussianMixture.random(6, n_components=3, seed=2)


def _expected_conditioning(name, process, t):
    level = process.sigma(t) / process.alpha(t)
    return {"t": t, "999t": 999 * t, "sigma": level, "log_sigma": torch.log(level)}[name]


def _net_output(name, process, x, t, score):
    """What a perfect network of each convention outputs, from the exact score."""
    b = (-1,) + (1,) * (x.ndim - 1)
    alpha, sigma = process.alpha(t).reshape(b), process.sigma(t).reshape(b)
    return {
        "noise": -sigma * score,
        "sigma_score": sigma * score,
        "score": score,
        "denoiser": (x + sigma**2 * score) / alpha,  # Tweedie: E[x0 | x]
    }[name]


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: p.kind)
@pytest.mark.parametrize("output", ["noise", "sigma_score", "score", "denoiser"])
@pytest.mark.parametrize("conditioning", ["t", "999t", "sigma", "log_sigma"])
def test_each_convention_recovers_the_exact_score(process, output, conditioning):
    exact = GMM.score(process)
    t = process.eps + torch.tensor([0.01, 0.2, 0.5, 0.99], dtype=torch.float64) * (
        process.T - process.eps
    )
    x = GMM.sample_perturbed(4, t, process, 0, dtype=torch.float64).reshape(4, 2, 3)

    def net(x_in, c):
        torch.testing.assert_close(c, _expected_conditioning(conditioning, process, t))
        return _net_output(output, process, x_in, t, exact(x_in, t))

    model = ss.ScoreModel(net, process, output=output, conditioning=conditioning)
    torch.testing.assert_close(model(x, t), exact(x, t))


class _ScaledIdentity(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x, c):
        return self.scale * x


def test_module_net_parameters_are_registered():
    model = ss.ScoreModel(_ScaledIdentity(), ss.VPSDE())
    assert [p.shape for p in model.parameters()] == [()]


def test_zero_dim_time_is_expanded_to_the_batch():
    seen = []

    def net(x, c):
        seen.append(c.shape)
        return torch.zeros_like(x)

    ss.ScoreModel(net, ss.VESDE())(torch.zeros(3, 2), torch.tensor(0.5))
    assert seen == [(3,)]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"output": "eps"}, "output='eps': choose one of noise, sigma_score, score, denoiser"),
        ({"conditioning": "time"}, "conditioning='time': choose one of t, 999t, sigma, log_sigma"),
    ],
)
def test_bad_options_name_the_valid_ones(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ss.ScoreModel(lambda x, c: x, ss.VPSDE(), **kwargs)


def test_wrong_net_output_shape_is_reported():
    model = ss.ScoreModel(lambda x, c: x[:, :1], ss.VPSDE())
    with pytest.raises(ValueError, match=r"net returned shape \(3, 1\) for x of shape \(3, 2\)"):
        model(torch.zeros(3, 2), torch.full((3,), 0.5))


def test_check_score_output():
    x = torch.zeros(4, 2, 2)
    score = torch.ones(4, 2, 2)
    assert ss.check_score_output(score, x) is score
    with pytest.raises(TypeError, match="tensor"):
        ss.check_score_output([1.0], x)
    with pytest.raises(ValueError, match=r"shape \(4, 4\) for x of shape \(4, 2, 2\)"):
        ss.check_score_output(torch.ones(4, 4), x)
    score[2, 1, 0] = float("nan")
    score[3, 0, 0] = float("inf")
    t = torch.tensor([0.1, 0.2, 0.3, 0.4])
    with pytest.raises(
        ValueError, match=r"2 non-finite .* 2 of 4 samples \(first: \[2, 3\]\).*0\.3"
    ):
        ss.check_score_output(score, x, t)
