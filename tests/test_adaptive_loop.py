"""The adaptive loop's host reads.

Per-sample solves: on CUDA an adaptive solve reads whether samples are still running (and whether
one failed) one attempt late, so that the host never waits for the attempt it just queued.
``LAGGED_FLAGS`` switches that path on for every device; here it runs on CPU against the
immediate reads.

Shared-time solves whose controller can decide on the host keep their times and decisions in
Python floats (one read of the batch's error per attempt); they take the same steps as the
tensor loop, which a controller without ``host_decisions`` still gets.
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
    "per-sample ode": (sk.ODE(_decay), "dopri5", True, False),
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
        assert err.value.sample == 4  # for callers that map it to their own numbering
    assert messages[0] == messages[1]


def test_late_flags_stop_at_max_steps_with_the_same_status(monkeypatch):
    now = _solve("per-sample ode", lagged=False, monkeypatch=monkeypatch, max_steps=12, throw=False)
    late = _solve("per-sample ode", lagged=True, monkeypatch=monkeypatch, max_steps=12, throw=False)
    assert now.status.tolist() == late.status.tolist()
    assert 2 in now.status.tolist()  # the stiffest samples ran out of steps
    assert torch.equal(late.ys, now.ys)


# ---------------------------------------------------------------- shared time, on the host


class _TensorPI(sk.PIController):
    """A PI controller the loop must drive on tensors."""

    host_decisions = False


def _switch(t, y):
    return torch.where(t >= 0.4, -8.0 * y, 0.5 * y)


HOST_CASES = {
    # name: (problem, solver, t0, t1, saveat, jump_ts, brownian)
    "ode, saves": (sk.ODE(_decay), "dopri5", 0.0, 0.7, [0.1, 0.3, 0.7], (), None),
    "ode, backward": (sk.ODE(_decay), "bosh3", 0.7, 0.0, [0.5, 0.0], (), None),
    "ode, jump": (sk.ODE(_switch), "dopri5", 0.0, 1.0, None, (0.4,), None),
    "sde, fresh noise": (sk.SDE(_well, _noise, noise="additive"), "improved_euler", 0.0, 0.7,
                         [0.3, 0.7], (), "redraw"),
}  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=str)
@pytest.mark.parametrize("case", list(HOST_CASES))
def test_shared_time_on_the_host_takes_the_tensor_loops_steps(case, dtype):
    problem, solver, t0, t1, saveat, jump_ts, brownian = HOST_CASES[case]
    y0 = torch.linspace(-1.2, 1.2, 6, dtype=dtype).view(-1, 1)
    sols, logs = [], []
    for kind in (sk.PIController, _TensorPI):
        log = []
        controller = sk.ClipStepSize(kind(rtol=1e-4, atol=1e-4), jump_ts=jump_ts)
        sols.append(
            sk.solve(problem, y0, t0, t1, solver=solver, controller=controller, saveat=saveat,
                     generator=3, brownian=brownian, callback=lambda info, log=log: log.append(
                         (float(info["t"]), float(info["h"]), bool(info["accept"]))))
        )  # fmt: skip
        logs.append(log)
    host, tensor = sols
    assert host.stats == tensor.stats
    assert len(logs[0]) == len(logs[1]) > 5
    # The tensor loop's controller computes in y0's dtype, the host's in float64: in float32 an
    # error estimate of 1e-4 is good to a few per cent at best, and so are the steps it proposes.
    exact = dtype == F64
    for (t_a, h_a, a_a), (t_b, h_b, a_b) in zip(*logs, strict=True):
        assert a_a == a_b
        if exact:
            assert t_a == pytest.approx(t_b, rel=1e-9, abs=1e-12)
            assert h_a == pytest.approx(h_b, rel=1e-9)
    tol = 1e-9 if exact else 1e-3
    torch.testing.assert_close(host.ys, tensor.ys, rtol=tol, atol=tol)
    assert torch.equal(host.ts, tensor.ts)
    if jump_ts:
        assert host.stats["nfe_drift"] == tensor.stats["nfe_drift"]


def test_shared_time_on_the_host_reports_failures_as_the_tensor_loop_does():
    """An underflow names the batch's worst sample; ``throw=False`` returns the status of every
    sample, and the save times not reached hold zeros."""

    def blows_up_for_sample_4(t, y):
        rate = torch.zeros_like(y)
        rate[4] = 1.0
        return rate * torch.where(t > 0.2, 1e6 * y.abs() + 1e3, 0.0 * y)

    results = []
    for kind in (sk.PIController, _TensorPI):
        controller = kind(rtol=1e-6, atol=1e-6, dt_min=1e-5)
        args = (sk.ODE(blows_up_for_sample_4), torch.ones(6, 1, dtype=F64), 0.0, 1.0)
        with pytest.raises(SolveError, match=r"\(sample 4,") as err:
            sk.solve(*args, solver="bosh3", controller=controller)
        sol = sk.solve(*args, solver="bosh3", controller=controller, saveat=[0.1, 1.0],
                       throw=False)  # fmt: skip
        results.append((str(err.value).split(" at t=")[0], sol))
        assert err.value.sample == 4
    (message, host), (message_tensor, tensor) = results
    assert message == message_tensor
    assert host.status.tolist() == tensor.status.tolist() == [1] * 6
    # the save at t1, not reached, holds the last accepted state (it held zeros)
    assert torch.isfinite(host.ys[1]).all() and (host.ys[1] != 0).all()
    torch.testing.assert_close(host.ys, tensor.ys)
