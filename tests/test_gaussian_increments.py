"""GaussianIncrements draws its normals in blocks: the numbers a call gets do not depend on how
calls are grouped (one by one, or several at once for a compiled chunk of steps)."""

from __future__ import annotations

import math

import torch
from hypothesis import given
from hypothesis import strategies as st

import sdekit as sk
from sdekit.brownian import GaussianIncrements

F64 = torch.float64


def _source(shape, block, levy_area, per_sample, seed=0):
    generator = (
        [torch.Generator().manual_seed(seed + i) for i in range(shape[0])]
        if per_sample
        else torch.Generator().manual_seed(seed)
    )
    return GaussianIncrements(
        shape, dtype=F64, device="cpu", generator=generator, levy_area=levy_area, block=block
    )


@given(
    shape=st.sampled_from([(1, 1), (3, 5), (2, 8), (4, 2, 3)]),
    block=st.integers(1, 9),
    groups=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    levy_area=st.booleans(),
    per_sample=st.booleans(),
)
def test_grouped_normals_are_the_normals_of_single_calls(
    shape, block, groups, levy_area, per_sample
):
    single = _source(shape, block, levy_area, per_sample)
    grouped = _source(shape, block, levy_area, per_sample)
    h = 0.25
    for n in groups:
        z, area = grouped.normals(n)
        assert z.shape == (n, *shape) and (area is None) != levy_area
        for k in range(n):
            inc = single.increment(0.0, h)
            torch.testing.assert_close(inc.dW, z[k] * math.sqrt(h), rtol=0, atol=0)
            if levy_area:
                torch.testing.assert_close(inc.H, area[k] * math.sqrt(h / 12), rtol=0, atol=0)


def test_one_generator_per_sample_keeps_each_row_to_its_own_generator():
    # Row i's numbers are those of a batch of one with generator i alone.
    batch = _source((3, 5), 4, True, per_sample=True, seed=10)
    rows = [_source((1, 5), 4, True, per_sample=True, seed=10 + i) for i in range(3)]
    for _ in range(6):
        inc = batch.increment(0.0, 1.0)
        for i, row in enumerate(rows):
            alone = row.increment(0.0, 1.0)
            torch.testing.assert_close(inc.dW[i : i + 1], alone.dW, rtol=0, atol=0)
            torch.testing.assert_close(inc.H[i : i + 1], alone.H, rtol=0, atol=0)


def test_dropping_rows_keeps_the_rest_of_their_block():
    full = _source((4, 3), 5, False, per_sample=True)
    kept = _source((4, 3), 5, False, per_sample=True)
    rows = torch.tensor([1, 3])
    for step in range(12):
        if step == 2:
            kept.select(rows)
        want = full.increment(0.0, 1.0).dW
        got = kept.increment(0.0, 1.0).dW
        torch.testing.assert_close(got, want[rows] if step >= 2 else want, rtol=0, atol=0)


def test_blocks_are_standard_normal():
    source = _source((1000,), 16, True, per_sample=False)
    z, area = source.normals(40)
    for x in (z, area):
        n = x.numel()
        assert abs(float(x.mean())) < 4 / math.sqrt(n)
        assert abs(float(x.var()) - 1) < 4 * math.sqrt(2 / n)
    assert abs(
        float(torch.corrcoef(torch.stack([z.flatten(), area.flatten()]))[0, 1])
    ) < 4 / math.sqrt(z.numel())


def test_compiled_and_eager_fixed_steps_agree_on_a_state_of_one_element():
    # One element per step is where drawing the whole chunk's noise at once used to give other
    # numbers than step by step; now both take them from the same blocks.
    sde = sk.SDE(lambda t, y: -y, lambda t, y: 0.5 + 0 * y, noise="diagonal")
    y0 = torch.ones(1, 1)
    runs = [
        sk.solve(sde, y0, 0.0, 1.0, solver="euler", dt=1 / 200, generator=3, compile=flag).ys
        for flag in (False, True)
    ]
    torch.testing.assert_close(runs[1], runs[0], rtol=1e-6, atol=1e-6)


def test_a_seed_is_a_generator_as_for_the_bridge():
    # an int seed crashed inside torch.randn (BrownianBridge and solve take one)
    def first(generator):
        source = GaussianIncrements((4, 1), dtype=torch.float64, device="cpu", generator=generator)
        return source.increment(torch.tensor(0.0, dtype=torch.float64), 0.1).dW

    assert torch.equal(first(3), first(torch.Generator().manual_seed(3)))
