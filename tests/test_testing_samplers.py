"""Samplers under ``sdekit.testing``'s batch-invariance check: with one generator per sample, a
sample of ``ss.sample`` does not depend on the rest of the batch or on its place in it."""

from __future__ import annotations

import pytest
import torch

import sdekit.testing as skt
import sdekit_score as ss

PROCESS = ss.VPSDE()
SCORE = ss.GaussianMixture.random(3, seed=0, data_range=PROCESS.data_range).score(PROCESS)
SIGMA_LAST = PROCESS.noise_level_range()[0]

# (sampler, options, largest relative gap): exact where every operation is per sample. The bridge
# re-bases each sample's running values (W ← W − W_current) at calls set by the batch's longest
# queue, so a sample alone is re-based at other calls than in a batch: the same path up to
# rounding (1e-16), which the reverse SDE amplifies to at most 3e-7 here (same accept/reject
# decisions and evaluation counts; measured on seeds 1000-1004)
INDEPENDENT = [
    ("em", dict(steps=50), 1e-12),
    ("pc", dict(steps=50, batch_mean_norms=False), 1e-12),
    ("ode", {}, 1e-12),
    ("ggf", {}, 1e-6),
    ("ggf", dict(brownian="redraw"), 1e-12),
    ("als", dict(n_levels=20), 1e-12),
    ("cas", dict(n_levels=20, step_lr=SIGMA_LAST**2), 1e-12),
]


def _sampler(name, options):
    def run(rows, generators):
        x, _ = ss.sample(
            SCORE,
            PROCESS,
            (len(rows), 3),
            sampler=name,
            generator=generators,
            dtype=torch.float64,
            **options,
        )
        return x

    return run


@pytest.mark.parametrize(
    "name, options, tolerance", INDEPENDENT, ids=[f"{n}-{'-'.join(o)}" for n, o, _ in INDEPENDENT]
)
def test_a_sample_does_not_depend_on_the_rest_of_the_batch(name, options, tolerance):
    assert skt.batch_invariance_gap(_sampler(name, options), 5) <= tolerance


def test_batch_mean_norms_couple_the_samples_as_documented():
    # pc's default corrector step uses batch-mean norms (as Song et al.'s code): permuting the
    # batch changes nothing but rounding, taking a sample out changes it.
    run = _sampler("pc", dict(steps=50))
    assert skt.batch_invariance_gap(run, 5) > 1e-3
    together = run([0, 1, 2], [torch.Generator().manual_seed(i) for i in (0, 1, 2)])
    permuted = run([2, 0, 1], [torch.Generator().manual_seed(i) for i in (2, 0, 1)])
    torch.testing.assert_close(permuted, together[[2, 0, 1]], rtol=1e-12, atol=1e-12)
