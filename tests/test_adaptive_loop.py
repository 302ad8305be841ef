"""The adaptive loop's host reads: flags read one attempt late change no result.

On CUDA an adaptive solve reads whether samples are still running (and whether one failed) one
attempt late, so that the host never waits for the attempt it just queued. ``LAGGED_FLAGS``
switches that path on for every device; here it runs on CPU against the immediate reads.
"""

from __future__ import annotations

import importlib

import pytest
import torch

import sdekit as sk
from sdekit.solution import SolveError

solve_module = importlib.import_module("sdekit.solve")
F64 = torch.float64


def _well(t, y):
    return 3 * (y - y**3)


def _decay(t, y):
    rate = torch.linspace(0.3, 30.0, y.shape[0], dtype=y.dtype).view(-1, 1)
    return -rate * y


def _noise(t, y):
    return torch.full_like(y, 0.7)


CASES = {
    # name: (problem, solver, per_sample, compact)
    "per-sample bridge": (sk.SDE(_well, _noise, noise="additive"), "improved_euler", True, False),
    "per-sample bridge, compacted": (
        sk.SDE(_well, _noise, noise="additive"),
        "improved_euler",
        True,
        True,
    ),
    "shared-time bridge": (sk.SDE(_well, _noise, noise="additive"), "improved_euler", False, False),
    "per-sample ode": (sk.ODE(_decay), "dopri5", True, False),
    "shared-time ode": (sk.ODE(_decay), "bosh3", False, False),
}


def _solve(case, *, lagged, monkeypatch, **options):
    problem, solver, per_sample, compact = CASES[case]
    monkeypatch.setattr(solve_module, "LAGGED_FLAGS", lagged)
    batch = 6
    y0 = torch.linspace(-1.2, 1.2, batch, dtype=F64).view(-1, 1)
    noisy = isinstance(problem, sk.SDE)
    return sk.solve(
        problem,
        y0,
        0.0,
        0.7,
        solver=solver,
        controller=sk.PIController(rtol=1e-3, atol=1e-3, per_sample=per_sample),
        saveat=[0.3, 0.7],
        generator=[torch.Generator().manual_seed(i) for i in range(batch)] if noisy else None,
        compact=compact,
        **options,
    )


@pytest.mark.parametrize("case", list(CASES))
def test_late_flags_give_the_same_solution_and_at_most_one_more_attempt(case, monkeypatch):
    now = _solve(case, lagged=False, monkeypatch=monkeypatch)
    late = _solve(case, lagged=True, monkeypatch=monkeypatch)
    assert torch.equal(late.ys, now.ys)
    for key in ("nfe", "steps", "accepted", "rejected"):
        assert torch.equal(torch.as_tensor(late.stats[key]), torch.as_tensor(now.stats[key])), key
    if "nfe_batch" in now.stats:
        extra = late.stats["nfe_batch"] - now.stats["nfe_batch"]
        solver = sk.solvers.resolve_solver(CASES[case][1], CASES[case][0])
        assert 0 <= extra <= solver.nfe_drift + solver.nfe_diffusion


def test_late_flags_still_name_the_sample_that_underflowed(monkeypatch):
    """A sample whose error stays above tolerance at every step size: the error is raised one
    attempt late, from that attempt, and names the sample, its time and its last step."""

    def blows_up_for_sample_4(t, y):
        rate = torch.zeros_like(y)
        rate[4] = 1.0
        return rate * torch.where(t.view(-1, 1) > 0.2, 1e6 * y.abs() + 1e3, 0.0 * y)

    messages = []
    for lagged in (False, True):
        monkeypatch.setattr(solve_module, "LAGGED_FLAGS", lagged)
        with pytest.raises(SolveError, match=r"\(sample 4,") as err:
            sk.solve(
                sk.ODE(blows_up_for_sample_4),
                torch.ones(6, 1, dtype=F64),
                0.0,
                1.0,
                solver="bosh3",
                controller=sk.PIController(rtol=1e-6, atol=1e-6, per_sample=True, dt_min=1e-5),
            )
        messages.append(str(err.value))
    assert messages[0] == messages[1]


def test_late_flags_stop_at_max_steps_with_the_same_status(monkeypatch):
    now = _solve("per-sample ode", lagged=False, monkeypatch=monkeypatch, max_steps=12, throw=False)
    late = _solve("per-sample ode", lagged=True, monkeypatch=monkeypatch, max_steps=12, throw=False)
    assert now.status.tolist() == late.status.tolist()
    assert 2 in now.status.tolist()  # the stiffest samples ran out of steps
    assert torch.equal(late.ys, now.ys)
