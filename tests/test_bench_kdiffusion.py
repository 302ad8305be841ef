"""bench/kdiffusion.py: k-diffusion's denoiser built from an sdekit_score score, checked in closed form."""

import importlib.util
from pathlib import Path

import pytest
import torch

import sdekit_score as ss

_spec = importlib.util.spec_from_file_location(
    "bench_kdiffusion", Path(__file__).parents[1] / "bench" / "kdiffusion.py"
)
kdiffusion = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kdiffusion)

MEAN = torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64)
STD = 0.1


def gaussian() -> ss.GaussianMixture:
    return ss.GaussianMixture(MEAN, STD, torch.ones(1, dtype=torch.float64))


@pytest.mark.parametrize("process", [ss.VPSDE(), ss.VESDE()], ids=["vp", "ve"])
@pytest.mark.parametrize("level", [0.02, 0.7, 30.0])
def test_denoiser_is_the_posterior_mean_of_x0_given_x_over_alpha(process, level):
    # x̃ = x0 + σ̃ z with x0 ~ N(m, s²I): E[x0 | x̃] = m + s²/(s² + σ̃²) (x̃ − m)
    denoiser = kdiffusion.Denoiser(process, gaussian().score(process))
    x = 3 * torch.randn(7, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = MEAN + STD**2 / (STD**2 + level**2) * (x - MEAN)
    got = denoiser(x, torch.full((7,), level, dtype=torch.float64))
    torch.testing.assert_close(got, exact, rtol=0, atol=1e-6)
    assert denoiser.calls == 1


def test_levels_and_coordinates_follow_the_vp_process():
    process = ss.VPSDE()
    denoiser = kdiffusion.Denoiser(process, gaussian().score(process))
    low, high = denoiser.sigma_range
    ends = torch.tensor([process.eps, process.T], dtype=torch.float64)
    torch.testing.assert_close(
        torch.tensor([low, high], dtype=torch.float64), process.sigma(ends) / process.alpha(ends)
    )
    x_T = torch.ones(2, 3, dtype=torch.float64)
    alpha_T = process.alpha(torch.tensor(process.T, dtype=torch.float64))
    torch.testing.assert_close(denoiser.start(x_T), x_T / alpha_T)
    torch.testing.assert_close(denoiser.to_process(denoiser.start(x_T), high), x_T)


def test_missing_source_names_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="pip download k-diffusion"):
        kdiffusion.load_sampling(tmp_path)
