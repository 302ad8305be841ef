"""Compaction of finished samples (``solve(..., compact=True)``): the same results, fewer rows.

Every problem here keeps each sample's difficulty in its own state (a rate carried as a constant
component), so that rows are independent and may be dropped. Float64, seeded; hypothesis follows
the profile of ``tests/conftest.py``.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sdekit as sk
import sdekit_score as ss
from sdekit.brownian import BrownianSource, GaussianIncrements
from sdekit.errors import InputTypeError
from sdekit.solution import SolveError

F64 = torch.float64
RATES = (0.3, 1.0, 3.0, 10.0, 30.0)  # how fast a sample's dynamics run: its number of steps


def _rate(y):
    return y[:, 1:2]


def _decay(t, y):
    """``x' = -k x (1 + cos t / 2)``, ``k' = 0``: stiffer rows take more steps."""
    scale = 1 + 0.5 * torch.cos(t).reshape(-1, 1)
    return torch.cat([-_rate(y) * y[:, :1] * scale, torch.zeros_like(y[:, 1:])], 1)


def _well(t, y):
    """A double well ``x' = k (x - x³)``, ``k' = 0``."""
    x = y[:, :1]
    return torch.cat([_rate(y) * (x - x**3), torch.zeros_like(y[:, 1:])], 1)


def _noise(scale):
    def g(t, y):
        return torch.cat([scale * torch.ones_like(y[:, :1]), torch.zeros_like(y[:, 1:])], 1)

    return g


def _multiplicative(t, y):
    return torch.cat([0.3 * y[:, :1], torch.zeros_like(y[:, 1:])], 1)


PROBLEMS = {
    # name: (problem, solver, brownian, jump_ts)
    "ode dopri5 (FSAL state, restarts)": (sk.ODE(_decay), "dopri5", None, (0.35,)),
    "ode bosh3": (sk.ODE(_decay), "bosh3", None, ()),
    "bridge improved_euler": (
        sk.SDE(_well, _noise(0.7), noise="additive"),
        "improved_euler",
        "bridge",
        (),
    ),
    "bridge sosri (Levy area)": (
        sk.SDE(_decay, _multiplicative, noise="diagonal"),
        "sosri",
        "bridge",
        (),
    ),
    "redraw improved_euler": (
        sk.SDE(_well, _noise(0.7), noise="additive"),
        "improved_euler",
        "redraw",
        (),
    ),
}


def _y0(rates):
    x = torch.linspace(-1.5, 1.5, len(rates), dtype=F64)
    return torch.stack([x, torch.tensor(rates, dtype=F64)], 1)


def _solve(name, rates, *, compact, seed=0, callback=None, **options):
    problem, solver, brownian, jump_ts = PROBLEMS[name]
    controller = sk.PIController(rtol=1e-3, atol=1e-3, per_sample=True)
    if jump_ts:
        controller = sk.ClipStepSize(controller, jump_ts=jump_ts)
    generators = [torch.Generator().manual_seed(seed + i) for i in range(len(rates))]
    return sk.solve(
        problem,
        _y0(rates),
        0.0,
        0.6,
        solver=solver,
        controller=controller,
        saveat=[0.2, 0.5, 0.6],
        brownian=brownian,
        generator=generators if brownian else None,
        compact=compact,
        callback=callback,
        **options,
    )


PER_SAMPLE_STATS = ("nfe", "nfe_drift", "nfe_diffusion", "steps", "accepted", "rejected")


@pytest.mark.parametrize("name", list(PROBLEMS))
@settings(max_examples=6)
@given(rates=st.lists(st.sampled_from(RATES), min_size=1, max_size=12), seed=st.integers(0, 99))
def test_compaction_changes_no_result_bitwise_and_evaluates_fewer_rows(name, rates, seed):
    """With one generator per sample (or no noise) every sample's saved states and counts are
    those of the uncompacted solve, bit for bit, whatever the batch and the order in which its
    samples finish; the drift sees fewer rows."""
    plain = _solve(name, rates, compact=False, seed=seed)
    packed = _solve(name, rates, compact=True, seed=seed)
    assert torch.equal(packed.ys, plain.ys)
    for key in PER_SAMPLE_STATS:
        assert torch.equal(packed.stats[key], plain.stats[key]), key
    assert packed.stats["nfe_batch"] == plain.stats["nfe_batch"]
    assert plain.stats["nfe_rows"] == len(rates) * plain.stats["nfe_batch"]
    # every row a sample needed is evaluated, and never more than without compaction
    assert int(plain.stats["nfe"].sum()) <= packed.stats["nfe_rows"] <= plain.stats["nfe_rows"]
    # The batch is re-packed once at most half of it is running: fewer rows whenever at least
    # half of the samples end two or more attempts before the last one does.
    attempts = plain.stats["accepted"] + plain.stats["rejected"]
    if 2 * int((attempts <= attempts.max() - 2).sum()) >= len(rates):
        assert packed.stats["nfe_rows"] < plain.stats["nfe_rows"]


def test_compacted_rows_are_the_running_ones_and_the_cost_follows_the_samples():
    """Three fast samples and one slow one: after the fast ones end, only the slow row is
    evaluated, and the rows evaluated come close to the sum of the samples' own evaluations."""
    seen = []

    def recorded(t, y):
        seen.append(y.shape[0])
        return _decay(t, y)

    rates = [0.3, 0.3, 0.3, 30.0]
    controller = sk.PIController(rtol=1e-6, atol=1e-6, per_sample=True)
    sol = sk.solve(
        sk.ODE(recorded), _y0(rates), 0.0, 1.0, solver="dopri5", controller=controller, compact=True
    )
    assert seen[0] == 4 and seen[-1] == 1 and sorted(set(seen)) == [1, 4]
    assert sol.stats["nfe_rows"] == sum(seen)
    assert sol.stats["nfe_batch"] == len(seen)
    own = int(sol.stats["nfe"].sum())
    assert own <= sol.stats["nfe_rows"] <= own + 4 * 6  # at most one extra step on the fast rows


@pytest.mark.parametrize("name", ["ode dopri5 (FSAL state, restarts)", "bridge improved_euler"])
def test_callback_sees_the_whole_batch_as_without_compaction(name):
    rates = [30.0, 0.3, 3.0, 0.3, 10.0, 0.3]
    calls = {False: [], True: []}
    for compact in (False, True):
        _solve(name, rates, compact=compact, callback=calls[compact].append)
    assert len(calls[True]) == len(calls[False])
    for packed, plain in zip(calls[True], calls[False], strict=True):
        assert packed["i"] == plain["i"]
        for key in ("t", "h", "y", "accept"):
            assert torch.equal(packed[key], plain[key]), key


def test_a_failed_solve_names_its_sample_in_the_batch_and_keeps_every_status():
    rates = [0.3, 0.3, 0.3, 0.3, 30.0, 0.3]
    with pytest.raises(SolveError, match=r"\(sample 4,"):
        _solve("ode bosh3", rates, compact=True, max_steps=10)
    plain = _solve("ode bosh3", rates, compact=False, max_steps=10, throw=False)
    packed = _solve("ode bosh3", rates, compact=True, max_steps=10, throw=False)
    assert packed.status.tolist() == plain.status.tolist() == [0, 0, 0, 0, 2, 0]
    # save times the stopped sample did not reach hold NaN in both
    torch.testing.assert_close(packed.ys, plain.ys, rtol=0, atol=0, equal_nan=True)


def test_a_source_that_cannot_drop_rows_keeps_the_whole_batch():
    class Unselectable(BrownianSource):
        def __init__(self, shape):
            self.inner = GaussianIncrements(
                shape, dtype=F64, device="cpu", generator=torch.Generator().manual_seed(0)
            )

        def increment(self, t, h):
            return self.inner.increment(t, h)

    rates = [30.0, 0.3, 0.3, 0.3]
    problem = PROBLEMS["redraw improved_euler"][0]
    controller = sk.IController(rtol=1e-2, atol=1e-2, per_sample=True)
    sol = sk.solve(
        problem,
        _y0(rates),
        0.0,
        0.6,
        solver="improved_euler",
        controller=controller,
        brownian=Unselectable((4, 2)),
        compact=True,
    )
    assert sol.stats["nfe_rows"] == 4 * sol.stats["nfe_batch"]


def test_compact_must_be_a_bool():
    with pytest.raises(InputTypeError, match="compact must be True or False"):
        _solve("ode bosh3", [1.0], compact=1)


@pytest.mark.parametrize("sampler", ["ode", "ggf"])
def test_adaptive_score_samplers_evaluate_only_running_samples(sampler):
    process = ss.VPSDE()
    mixture = ss.GaussianMixture.random(2, data_range=process.data_range, seed=1)
    score_fn = mixture.score(process)
    rows = []

    def recorded(x, t):
        rows.append(x.shape[0])
        return score_fn(x, t)

    def generators():
        return [torch.Generator().manual_seed(i) for i in range(16)]

    # a plain function may hold per-sample inputs: compaction is asked for
    x, stats = ss.sample(
        recorded, process, (16, 2), sampler=sampler, generator=generators(), dtype=F64,
        compact=True,
    )  # fmt: skip
    assert x.shape == (16, 2) and rows[0] == 16 and min(rows) < 8
    assert sum(rows) < 16 * len(rows)
    # the mixture's own score is a module that treats rows independently: compacted by default
    rows.clear()
    recording = score_fn.register_forward_pre_hook(lambda module, args: rows.append(len(args[0])))
    y, _ = ss.sample(score_fn, process, (16, 2), sampler=sampler, generator=generators(), dtype=F64)
    recording.remove()
    assert torch.equal(x, y) and min(rows) < 8
    rows.clear()
    ss.sample(recorded, process, (16, 2), sampler=sampler, generator=generators(), dtype=F64)
    assert min(rows) == 16  # by default a function is evaluated on every row


def test_a_drift_that_holds_the_whole_batch_is_named_under_compaction():
    # a closure over (batch, 1) rates broadcast a compacted state back to the whole batch, and
    # the bookkeeping failed with an IndexError
    rates = torch.tensor([[1.0], [30.0], [2.0]], dtype=F64)
    controller = sk.PIController(rtol=1e-8, atol=1e-8, per_sample=True)
    with pytest.raises(ValueError, match=r"compact=True .* returned 3 rows .* compact=False"):
        sk.solve(
            sk.ODE(lambda t, y: -rates * y),
            torch.ones(3, 1, dtype=F64),
            0.0,
            1.0,
            solver="dopri5",
            controller=controller,
            compact=True,
        )
