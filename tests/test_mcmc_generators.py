"""Where randomness comes from: kernels take generators (never a seed), schedules also take a seed."""

from __future__ import annotations

import pytest
import torch

from sdekit.errors import InputTypeError
from sdekit.mcmc import (
    MALA,
    ULA,
    LangevinCorrector,
    Target,
    UnderdampedLangevin,
    annealed_langevin,
    consistent_annealed_sampling,
    run_schedule,
)

F64 = torch.float64
KERNELS = [
    ULA(),
    MALA(),
    MALA(target_acceptance=0.574),
    UnderdampedLangevin(),
    UnderdampedLangevin(scheme="obabo"),
    LangevinCorrector(),
]
KERNEL_IDS = ["ula", "mala", "mala-adaptive", "baoab", "obabo", "corrector"]
NORMAL = Target(score=lambda x: -x, log_prob=lambda x: -0.5 * (x * x).sum(1))
X = torch.linspace(-1.0, 1.0, 64 * 2, dtype=F64).reshape(64, 2)


def unused_score(x: torch.Tensor) -> torch.Tensor:
    raise AssertionError("the score was evaluated before the generator was checked")


@pytest.mark.parametrize("kernel", KERNELS, ids=KERNEL_IDS)
def test_kernels_refuse_an_int_seed_before_any_work(kernel):
    target = Target(score=unused_score, log_prob=unused_score)
    with pytest.raises(InputTypeError, match=r"torch\.Generator\(\)\.manual_seed\(0\)") as err:
        kernel(X, target, 0.1, 0)
    assert "outside the loop" in str(err.value)
    with pytest.raises(TypeError, match="torch.Generator"):
        kernel(X, target, 0.1, generator=7)


@pytest.mark.parametrize("kernel", KERNELS, ids=KERNEL_IDS)
def test_successive_calls_with_one_generator_draw_fresh_noise(kernel):
    g = torch.Generator().manual_seed(0)
    first = kernel(X, NORMAL, 0.1, g).x
    second = kernel(X, NORMAL, 0.1, g).x
    assert not torch.equal(first, X) and not torch.equal(second, X)
    assert not torch.equal(first, second)


@pytest.mark.parametrize("kernel", KERNELS, ids=KERNEL_IDS)
def test_kernels_take_none_a_generator_or_one_generator_per_chain(kernel):
    x = X[:3]
    per_chain = [torch.Generator().manual_seed(i) for i in range(3)]
    for generator in (None, torch.Generator().manual_seed(0), per_chain, tuple(per_chain)):
        assert kernel(x, NORMAL, 0.1, generator).x.shape == x.shape


SCHEDULES = {
    "als": lambda gen: annealed_langevin(
        lambda x, s: -x / s[:, None] ** 2, X, [2.0, 1.0], 0.1, 3, generator=gen
    ),
    "cas": lambda gen: consistent_annealed_sampling(
        lambda x, s: -x / s[:, None] ** 2, X, [2.0, 1.0, 0.5], 0.2, 2, generator=gen
    ),
    "mala": lambda gen: run_schedule(
        MALA(),
        X,
        lambda x, s: -x,
        [1.0],
        0.5,
        4,
        log_prob=lambda x, s: NORMAL.log_prob(x),
        generator=gen,
    ),
    "underdamped": lambda gen: run_schedule(
        UnderdampedLangevin(), X, lambda x, s: -x, [1.0, 0.5], 0.2, 3, generator=gen
    ),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedules_take_a_seed_and_are_reproducible_under_it(name):
    run = SCHEDULES[name]
    a, b, other = run(3).x, run(3).x, run(4).x
    assert torch.equal(a, b) and not torch.equal(a, other)
    assert torch.equal(a, run(torch.Generator().manual_seed(3)).x)


def test_a_seeded_schedule_is_a_loop_over_one_generator_made_from_the_seed():
    """The seed becomes one generator for the whole run: no step repeats another's noise."""
    n_steps = 5
    result = run_schedule(ULA(), X, lambda x, s: -x, [1.0], 0.1, n_steps, generator=3)
    g, x, increments = torch.Generator().manual_seed(3), X, []
    for _ in range(n_steps):
        x_new = ULA()(x, NORMAL, 0.1, g).x
        increments.append(x_new - 0.9 * x)  # the noise term √(2h)·z of this step
        x = x_new
    assert torch.equal(result.x, x)
    assert all(not torch.equal(a, b) for a, b in zip(increments, increments[1:], strict=False))
