"""solve(..., compile=True): compiled chunks of fixed steps equal the eager steps."""

from __future__ import annotations

import importlib
import warnings

import pytest
import torch

import sdekit as sk

solve_module = importlib.import_module("sdekit.solve")

F64 = torch.float64


def _sde(noise: str, calculus: str = "ito") -> sk.SDE:
    def drift(t, y):
        return -y + torch.sin(t)

    if noise == "additive":
        return sk.SDE(drift, lambda t, y: 0.3 * torch.ones_like(y), noise=noise, calculus=calculus)
    return sk.SDE(drift, lambda t, y: 0.3 * y + 0.1, noise=noise, calculus=calculus)


CASES = [
    ("euler", _sde("diagonal"), (16, 2)),
    ("milstein", _sde("diagonal"), (16, 2)),
    ("heun", _sde("diagonal", "stratonovich"), (16, 2)),
    (
        "euler_heun",
        _sde("diagonal", "stratonovich"),
        (3, 5),
    ),  # 15 elements: noise drawn step by step
    ("improved_euler", _sde("additive"), (16, 2)),
    ("sriw1", _sde("diagonal"), (16, 2)),  # Lévy area
    ("sra1", _sde("additive"), (16, 2)),
    ("rk4", sk.ODE(lambda t, y: -y + torch.sin(t)), (16, 2)),
    ("dopri5", sk.ODE(lambda t, y: -y + torch.sin(t)), (16, 2)),  # first-same-as-last state
]


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(solve_module, "CHUNK_STEPS", 4)  # small graphs: quick to compile
    monkeypatch.setattr(solve_module, "MIN_COMPILED_CHUNK", 4)
    torch._dynamo.reset()  # each problem is a new graph: stay below torch's recompile limit
    # A failed compilation elsewhere in this process (a module torch cannot import) must not
    # leave a solver class marked as uncompilable here.
    monkeypatch.setattr(solve_module, "_compiled", {})


@pytest.mark.slow
@pytest.mark.parametrize("solver, problem, shape", CASES, ids=[c[0] for c in CASES])
def test_compiled_fixed_steps_equal_eager_steps(small_chunks, solver, problem, shape):
    y0 = torch.linspace(-1, 1, shape[0] * shape[1], dtype=F64).reshape(shape)
    options = dict(solver=solver, dt=0.01, saveat=[0.05, 0.2, 0.23])
    eager = sk.solve(problem, y0, 0.0, 0.23, generator=3, **options)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="compile=True")  # it must not fall back
        compiled = sk.solve(problem, y0, 0.0, 0.23, generator=3, compile=True, **options)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs  # it did compile
    torch.testing.assert_close(compiled.ys, eager.ys, rtol=1e-12, atol=1e-12)
    assert compiled.stats == eager.stats


def test_compile_falls_back_to_eager_steps_with_one_warning(small_chunks, monkeypatch):
    def unavailable(fn, **kwargs):
        def fail(*args):
            raise RuntimeError("no compiler on this machine")

        return fail

    monkeypatch.setattr(torch, "compile", unavailable)
    monkeypatch.setattr(solve_module, "_compiled", {})
    problem, y0 = _sde("diagonal"), torch.ones(16, 1, dtype=F64)
    eager = sk.solve(problem, y0, 0.0, 0.3, solver="euler", dt=0.01, generator=0)
    with pytest.warns(UserWarning, match="torch.compile is unavailable") as record:
        compiled = sk.solve(
            problem, y0, 0.0, 0.3, solver="euler", dt=0.01, generator=0, compile=True
        )
        sk.solve(problem, y0, 0.0, 0.3, solver="euler", dt=0.01, generator=0, compile=True)
    assert len(record) == 1
    torch.testing.assert_close(compiled.ys, eager.ys, rtol=1e-12, atol=1e-12)


SHARED_CASES = [
    # solver, problem, controller, saveat
    ("improved_euler", _sde("additive"), sk.IController(rtol=1e-4, atol=1e-4), [0.3, 1.0]),
    (
        "dopri5",  # first-same-as-last state, restarted at the jump
        sk.ODE(lambda t, y: torch.where(t >= 0.5, -4.0 * y, y + torch.sin(t))),
        sk.ClipStepSize(sk.PIController(rtol=1e-7, atol=1e-7), jump_ts=[0.5]),
        None,
    ),
]


@pytest.mark.parametrize("solver, problem, controller, saveat", SHARED_CASES, ids=["sde", "ode"])
def test_compiled_shared_time_attempts_take_the_eager_steps(
    small_chunks, solver, problem, controller, saveat
):
    """A shared-time adaptive solve compiles each attempt's step and batch error as one call."""
    y0 = torch.linspace(-1, 1, 8, dtype=F64).view(4, 2)
    options = dict(solver=solver, controller=controller, saveat=saveat, generator=5)
    eager = sk.solve(problem, y0, 0.0, 1.0, **options)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="compile=True")  # it must not fall back
        compiled = sk.solve(problem, y0, 0.0, 1.0, compile=True, **options)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs  # it did compile
    assert compiled.stats == eager.stats and eager.stats["rejected"] > 0
    torch.testing.assert_close(compiled.ys, eager.ys, rtol=1e-10, atol=1e-10)


def _per_sample_sde(noise: str, calculus: str = "ito") -> sk.SDE:
    """:func:`_sde` for per-sample times, ``t`` of shape ``(batch,)``."""
    sde = _sde(noise, calculus)
    return sk.SDE(lambda t, y: sde.f(t.view(-1, 1), y), sde.g, noise, calculus)


PER_SAMPLE_CASES = [
    # solver, problem, saveat, compact
    ("improved_euler", _per_sample_sde("diagonal", "stratonovich"), [0.3, 1.0], False),
    ("sosri", _per_sample_sde("diagonal"), None, False),  # the bridge with Lévy area
    (
        "dopri5",
        sk.ODE(lambda t, y: -y + 9 * torch.exp(-400 * (t - 0.6) ** 2)[:, None]),
        [0.5],
        False,
    ),
    ("improved_euler", _per_sample_sde("additive"), None, True),  # rows set aside
    ("dopri5", sk.ODE(lambda t, y: torch.where(t[:, None] >= 0.5, -4 * y, y)), None, "jump"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "solver, problem, saveat, compact",
    PER_SAMPLE_CASES,
    ids=["bridge", "levy-area", "ode", "compact", "jump"],
)
def test_compiled_per_sample_attempts_take_the_eager_steps(
    small_chunks, solver, problem, saveat, compact
):
    """A per-sample adaptive solve compiles each attempt whole (the proposal, the bridge's draw
    and commit, the step, the controller) and takes the eager path's steps: per sample the same
    attempts and rejections. The states agree to rounding, which the loop amplifies a little
    (a last-bit change in a step size moves the point where the bridge is sampled)."""
    y0 = torch.linspace(-1, 1, 24, dtype=F64).view(12, 2)
    controller = sk.PIController(rtol=1e-3, atol=1e-3, per_sample=True)
    if compact == "jump":  # the first-same-as-last state restarted there, as eagerly
        controller, compact = sk.ClipStepSize(controller, jump_ts=[0.5]), False
    options = dict(solver=solver, controller=controller, saveat=saveat, generator=5)
    eager = sk.solve(problem, y0, 0.0, 1.0, compact=compact, **options)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="compile=True")  # it must not fall back
        compiled = sk.solve(problem, y0, 0.0, 1.0, compile=True, compact=compact, **options)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs  # it did compile
    assert eager.stats["rejected"].sum() > 0
    for key in ("steps", "accepted", "rejected", "nfe"):
        assert torch.equal(compiled.stats[key], eager.stats[key]), key
    assert compiled.stats["nfe_rows"] == eager.stats["nfe_rows"]
    if isinstance(controller, sk.ClipStepSize):
        assert torch.equal(compiled.stats["nfe_drift"], eager.stats["nfe_drift"])
        # six evaluations per attempt, one to start and one to restart at the jump
        assert torch.equal(eager.stats["nfe_drift"], 6 * eager.stats["steps"] + 2)
    torch.testing.assert_close(compiled.ys, eager.ys, rtol=1e-9, atol=1e-9)


LOOP_CASES = [
    # solver, problem, saveat
    ("improved_euler", _per_sample_sde("diagonal", "stratonovich"), [0.3, 1.0]),  # plain bridge
    ("sosri", _per_sample_sde("diagonal"), None),  # with Lévy area
    ("dopri5", sk.ODE(lambda t, y: -y + 9 * torch.exp(-400 * (t - 0.6) ** 2)[:, None]), None),
]


@pytest.mark.slow
@pytest.mark.parametrize("solver, problem, saveat", LOOP_CASES, ids=[c[0] for c in LOOP_CASES])
def test_a_compiled_loop_of_attempts_equals_one_attempt_per_call(
    small_chunks, monkeypatch, solver, problem, saveat
):
    """Several attempts per compiled call (a small state on CPU, no jump times) take
    the steps of one attempt per call, and leave the generator where those left it: the
    normals drawn for attempts the loop did not take (the solve ended) go back. The states
    agree to rounding (the two fuse their arithmetic differently)."""
    y0 = torch.linspace(-1, 1, 24, dtype=F64).view(12, 2)
    controller = sk.PIController(rtol=1e-3, atol=1e-3, per_sample=True)
    results = []
    for loop_bytes in (0, solve_module.LOOP_BYTES):  # 0: the loop never serves
        monkeypatch.setattr(solve_module, "LOOP_BYTES", loop_bytes)
        generator = torch.Generator().manual_seed(5)
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message="compile=True")
            solution = sk.solve(
                problem, y0, 0.0, 1.0, solver=solver, controller=controller, saveat=saveat,
                generator=generator, compile=True,
            )  # fmt: skip
        results.append((solution, torch.randn(3, generator=generator)))
    assert _compiled_functions() == {"_per_sample_attempt": True, "_per_sample_attempts": True}
    (single, after_single), (looped, after_looped) = results
    assert single.stats["rejected"].sum() > 0
    for key in ("steps", "accepted", "rejected", "nfe"):
        assert torch.equal(looped.stats[key], single.stats[key]), key
    assert looped.stats["nfe_batch"] == single.stats["nfe_batch"]
    torch.testing.assert_close(looped.ys, single.ys, rtol=1e-9, atol=1e-9)
    assert torch.equal(after_looped, after_single)


def _compiled_functions() -> dict[str, bool]:
    """The functions a solve put through torch.compile: whether each compiled."""
    return {
        f.__name__: compiled is not None for (f, *_), compiled in solve_module._compiled.items()
    }


@pytest.mark.slow
def test_a_compiled_loop_hands_back_failures_as_eager_attempts_do(small_chunks):
    """The loop stops at a step-size underflow (raised naming the sample, or with
    ``throw=False`` the rest of the batch goes on) and at the step budget, as eagerly."""
    relax = _per_sample_sde("additive")
    y0 = torch.linspace(-1, 1, 24, dtype=F64).view(12, 2)
    underflow = sk.PIController(rtol=1e-5, atol=1e-5, per_sample=True, dt_min=1e-3)
    loose = sk.PIController(rtol=1e-3, atol=1e-3, per_sample=True)
    for controller, max_steps in ((underflow, None), (loose, 7)):
        options = dict(solver="improved_euler", controller=controller, max_steps=max_steps)
        messages, solutions = [], []
        for compile in (False, True):
            with pytest.raises(sk.SolveError) as failure:
                sk.solve(relax, y0, 0.0, 1.0, generator=5, compile=compile, **options)
            messages.append(str(failure.value))
            solution = sk.solve(
                relax, y0, 0.0, 1.0, generator=5, compile=compile, throw=False, **options
            )
            solutions.append(solution)
        assert messages[0] == messages[1]
        assert "at t=0 " not in messages[0]  # not at the first attempt, which runs eagerly
        eager, compiled = solutions
        assert torch.equal(compiled.status, eager.status)
        assert torch.equal(compiled.stats["steps"], eager.stats["steps"])
        torch.testing.assert_close(compiled.ys, eager.ys, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_a_loop_that_does_not_compile_leaves_one_attempt_per_call(small_chunks):
    """A problem the loop cannot trace whole (here a drift that reads a number on the host)
    runs one compiled attempt per call, silently and with the same results."""

    def drift(t, y):
        return -y * float(t.max() + 1)  # a graph break: fine in one attempt, not in a loop

    relax = sk.SDE(drift, lambda t, y: 0.3 * torch.ones_like(y), noise="additive")
    y0 = torch.linspace(-1, 1, 24, dtype=F64).view(12, 2)
    options = dict(
        solver="improved_euler",
        controller=sk.PIController(rtol=1e-3, atol=1e-3, per_sample=True),
        generator=5,
    )
    eager = sk.solve(relax, y0, 0.0, 1.0, **options)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="compile=True")
        compiled = sk.solve(relax, y0, 0.0, 1.0, compile=True, **options)
    assert _compiled_functions() == {"_per_sample_attempts": False, "_per_sample_attempt": True}
    assert torch.equal(compiled.stats["steps"], eager.stats["steps"])
    torch.testing.assert_close(compiled.ys, eager.ys, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_a_compiled_per_sample_attempt_serves_every_horizon(small_chunks):
    """A new end time reuses the compiled attempt: recompiling takes seconds per problem, and
    torch stops compiling a function after a few recompilations."""
    relax = _per_sample_sde("additive")
    y0 = torch.linspace(-1, 1, 24, dtype=F64).view(12, 2)
    controller = sk.PIController(rtol=1e-3, atol=1e-3, per_sample=True)
    options = dict(solver="improved_euler", controller=controller, generator=5, compile=True)
    sk.solve(relax, y0, 0.0, 1.0, **options)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    for t1 in (2.0, 0.5):
        sk.solve(relax, y0, 0.0, t1, **options)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs


def test_compiled_per_sample_solve_falls_back_with_one_warning(small_chunks, monkeypatch):
    def unavailable(fn, **kwargs):
        def fail(*args):
            raise RuntimeError("no compiler on this machine")

        return fail

    monkeypatch.setattr(torch, "compile", unavailable)
    ode, y0 = sk.ODE(lambda t, y: -y * t.view(-1, 1)), torch.linspace(1, 2, 6, dtype=F64).view(6, 1)
    options = dict(solver="dopri5", controller=sk.PIController(1e-6, 1e-6, per_sample=True))
    eager = sk.solve(ode, y0, 0.0, 2.0, **options)
    with pytest.warns(UserWarning, match="torch.compile is unavailable") as record:
        compiled = sk.solve(ode, y0, 0.0, 2.0, compile=True, **options)
        sk.solve(ode, y0, 0.0, 2.0, compile=True, **options)
    assert len(record) == 1
    assert torch.equal(compiled.ys, eager.ys)


def test_compile_with_a_user_brownian_source_solves_eagerly():
    controller = sk.PIController(rtol=1e-3, atol=1e-3, per_sample=True)
    relax = sk.SDE(lambda t, y: -y, lambda t, y: 0.3 * torch.ones_like(y), noise="additive")
    y0 = torch.ones(4, 1, dtype=F64)
    options = dict(solver="sra1", controller=controller)

    def source():
        generator = torch.Generator().manual_seed(0)
        return sk.brownian.GaussianIncrements(
            (4, 1), dtype=F64, device="cpu", generator=generator, levy_area=True
        )

    eager = sk.solve(relax, y0, 0.0, 1.0, brownian=source(), **options)
    with pytest.warns(UserWarning, match="runs eagerly"):
        again = sk.solve(relax, y0, 0.0, 1.0, brownian=source(), compile=True, **options)
    assert torch.equal(again.ys, eager.ys)


def test_compile_refuses_a_callback():
    with pytest.raises(ValueError, match="callback"):
        sk.solve(
            _sde("diagonal"),
            torch.ones(2, 1),
            0.0,
            1.0,
            solver="euler",
            dt=0.1,
            compile=True,
            callback=print,
        )


def test_a_chunk_holds_fewer_steps_of_a_scheme_that_evaluates_more():
    """Compilation time grows with the graph, so a chunk holds at most CHUNK_EVALUATIONS drift
    and diffusion evaluations (Euler: 128 steps; SOSRI's 8 per step: 32)."""
    y0 = torch.zeros(1, 1)
    grid = [k * 0.01 for k in range(1001)]
    steps = [solve_module._FixedSteps(grid, None, (), None, y0, nfe).chunk for nfe in (2, 8, 7)]
    assert steps == [128, 32, 36]
    large = torch.zeros(2**14, 1)  # the noise of 16 steps would pass CHUNK_ELEMENTS: eager
    assert not solve_module._FixedSteps(grid, None, (), None, large, 2).compilable


@pytest.mark.slow
def test_compiled_multistep_exponential_steps_equal_eager_steps(small_chunks):
    # UniPC's state (the corrected point, three denoised values, their log-SNR steps) passes
    # through compiled chunks, padded steps of size 0 included, as through eager steps.
    import sdekit_score as ss
    from sdekit_score.sampling.exponential_ode import UniPC
    from sdekit_score.sampling.schedules import time_grid

    process = ss.VPSDE()
    problem = ss.probability_flow(process, lambda x, t: -x / (1 + 0 * t[:, None]))
    y0 = torch.linspace(-2, 2, 32, dtype=F64).reshape(16, 2)
    options = dict(solver=UniPC(), controller=sk.StepTo(time_grid(process, 11, "logsnr")))
    eager = sk.solve(problem, y0, process.T, process.eps, **options)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="compile=True")  # it must not fall back
        compiled = sk.solve(problem, y0, process.T, process.eps, compile=True, **options)
    torch.testing.assert_close(compiled.ys, eager.ys, rtol=1e-12, atol=1e-12)
