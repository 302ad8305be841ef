"""SharedTimeBridge: one Brownian path for a batch that shares its time, bookkept on the host.

The law is checked by the Brownian battery of ``sdekit.testing`` in its shared-time form
(:func:`sdekit.testing.brownian_properties` with ``per_sample=False``: W(T) ~ N(0, T) from
batches that take one noise-dependent decision each; re-drawing the noise fails it), with and
without Lévy area, at 5 standard errors. Fed the same normals, it hands out the numbers of
:class:`~sdekit.brownian.BrownianBridge` in shared time (the same formulas, the same draws). The
rest is bookkeeping: Chen's relation and repeated retries over random rejection patterns,
``h == 0``, backward steps, float32 over long solves, per-sample generators, no host reads.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sdekit.testing as skt
from sdekit.brownian import BrownianBridge, GaussianIncrements, SharedTimeBridge
from sdekit.brownian import shared as shared_module
from sdekit.errors import InputValueError
from sdekit.testing.strategies import rejection_schedules

F32, F64 = torch.float32, torch.float64


def _source(batch=8, *, levy_area=True, generator=0, dtype=F64, event=(2,)):
    return SharedTimeBridge(
        (batch, *event), dtype=dtype, device="cpu", generator=generator, levy_area=levy_area
    )


def _merge(left, right):
    """(length, W, K = length·H) of two adjacent pieces joined: K = K1 + K2 + (b W1 - a W2)/2."""
    a, W1, K1 = left
    b, W2, K2 = right
    return a + b, W1 + W2, K1 + K2 + (b * W1 - a * W2) / 2


# ---------------------------------------------------------------- the battery


def test_the_shared_time_bridge_passes_the_brownian_battery():
    report = skt.brownian_properties(SharedTimeBridge, per_sample=False, n=20_000, seed=4321)
    report.raise_if_failed()
    assert report["path_under_rejection"].status == "passed"
    assert report["past_end"].status == "skipped"  # a bridge has no end


def test_redrawing_the_noise_fails_the_shared_time_battery_where_it_must():
    """The control of the shared-time ``path_under_rejection``: fresh draws after a rejection by
    a batch's mean square of the noise give Var W(T)/T = 1.25 (1.09 when the decision also looks
    at the areas; 5 SE = 0.05)."""
    report = skt.brownian_properties(GaussianIncrements, per_sample=False, n=20_000, seed=7)
    failed = {r.name for r in report.failures}
    assert failed == {"path_under_rejection", "chen", "bridge_law", "retry"}, str(report)
    assert "variance" in report["path_under_rejection"].detail


@settings(max_examples=6)
@given(schedules=rejection_schedules().map(lambda s: (s,)))
def test_accepted_increments_are_independent_gaussians_under_random_rejection_patterns(schedules):
    report = skt.brownian_properties(
        SharedTimeBridge,
        only=["increment_law"],
        schedules=schedules,
        per_sample=False,
        n=20_000,
        seed=99,
    )
    report.raise_if_failed()


# ---------------------------------------------------------------- exact bookkeeping


@given(
    schedule=rejection_schedules(max_size=20),
    t0=st.sampled_from([0.0, 2.5, -1e3]),
    direction=st.sampled_from([1.0, -1.0]),
    levy_area=st.booleans(),
)
def test_accepted_steps_add_up_to_the_rejected_parent_and_every_retry_repeats(
    schedule, t0, direction, levy_area
):
    """[0, 1] is drawn and rejected; then the steps of the pattern (fractions of 1/4, each
    rejected one retried at once, identically, and rejected again), and accepted steps of 1/4
    to the end. Accepted pieces merge to the parent (Chen's relation), forward or backward, at
    any ``t0``."""
    src = _source(levy_area=levy_area, generator=1)
    parent = src.increment(t0, direction)
    src.commit(False)
    t, piece, steps = 0.0, None, list(schedule)
    while 1.0 - t > 1e-12:
        fraction, ok = steps.pop(0) if steps else (1.0, True)
        h = min(fraction / 4, 1.0 - t)
        inc = src.increment(t0 + direction * t, direction * h)
        src.commit(ok)
        if not ok:
            again = src.increment(t0 + direction * t, direction * h)
            src.commit(False)
            assert torch.equal(again.dW, inc.dW)
            assert not levy_area or torch.equal(again.H, inc.H)
            continue
        step = (h, inc.dW, h * inc.H if levy_area else torch.zeros_like(inc.dW))
        piece = step if piece is None else _merge(piece, step)
        t += h
    length, W, K = piece
    assert length == pytest.approx(1.0)
    torch.testing.assert_close(W, parent.dW, rtol=0, atol=1e-12)
    if levy_area:
        torch.testing.assert_close(K, parent.H, rtol=0, atol=1e-12)


@pytest.mark.parametrize("levy_area", [False, True])
def test_the_numbers_of_brownian_bridge_in_shared_time(levy_area):
    """Same generator, same formulas, same draws (two per step with area, one without) as long
    as no step ends on a known point (where BrownianBridge draws and discards): equal to rounding.
    The pattern splits intervals from the left and the right, steps from the current point to
    beyond pending points and from one pending point past the next."""
    shape = (16, 3)
    a = BrownianBridge(shape, dtype=F64, device="cpu", generator=5, levy_area=levy_area)
    b = SharedTimeBridge(shape, dtype=F64, device="cpu", generator=5, levy_area=levy_area)
    rng = torch.Generator().manual_seed(0)
    t, h, rejected = 0.0, 0.3, 0
    for _ in range(300):
        ok = bool(torch.rand((), generator=rng) < 0.7)
        inc_a, inc_b = a.increment(t, h), b.increment(t, h)
        a.commit(ok)
        b.commit(ok)
        scale = math.sqrt(h)
        assert float((inc_a.dW - inc_b.dW).abs().max()) <= 1e-9 * scale
        if levy_area:
            assert float((inc_a.H - inc_b.H).abs().max()) <= 1e-9 * scale
        u = float(torch.rand((), generator=rng))
        t, h = (t + h, min(h * (0.8 + 0.9 * u), 1.0)) if ok else (t, h * (0.3 + 0.6 * u))
        rejected += not ok
    assert rejected > 50 and t > 1.0


def test_a_zero_step_hands_out_zeros_draws_nothing_and_changes_nothing():
    a, b = _source(generator=2), _source(generator=2)
    for src in (a, b):
        src.increment(0.0, 0.5)
        src.commit(False)
    for accept in (True, False):
        inc = a.increment(0.7, 0.0)
        a.commit(accept)
        assert inc.dW.eq(0).all() and inc.H.eq(0).all()
    a.increment(0.0, -0.0)  # and without a commit
    for t, h, ok in [(0.0, 0.2, True), (0.2, 0.3, True), (0.5, 0.4, True)]:
        inc_a, inc_b = a.increment(t, h), b.increment(t, h)
        a.commit(ok)
        b.commit(ok)
        assert torch.equal(inc_a.dW, inc_b.dW) and torch.equal(inc_a.H, inc_b.H)


def test_a_step_below_the_rounding_tolerance_is_empty():
    src = _source(generator=12)
    inc = src.increment(1.0, 1e-18)
    src.commit(True)
    assert inc.dW.eq(0).all() and inc.H.eq(0).all()
    assert torch.isfinite(src.increment(1.0, 0.5).H).all()


def test_a_step_ending_within_the_tolerance_of_a_pending_point_ends_on_it():
    src = _source(generator=13)
    t0 = 1e3  # tolerance 16 ulps of 1e3: 3.6e-12
    first = src.increment(t0, 0.5)
    src.commit(False)
    again = src.increment(t0, 0.5 + 1e-12)
    assert torch.equal(again.dW, first.dW) and torch.equal(again.H, first.H)
    src.commit(False)
    other = src.increment(t0, 0.5 + 1e-9)
    assert not torch.equal(other.dW, first.dW)


def test_backward_steps_see_the_same_path_in_the_direction_of_integration():
    steps = [(0.5, False), (0.2, True), (0.5, False), (0.1, True), (0.7, True)]
    fwd, bwd = _source(generator=9), _source(generator=9)
    t = 0.0
    for h, ok in steps:
        inc_f = fwd.increment(t, h)
        inc_b = bwd.increment(1.0 - t, -h)
        fwd.commit(ok)
        bwd.commit(ok)
        assert torch.equal(inc_f.dW, inc_b.dW) and torch.equal(inc_f.H, inc_b.H)
        t += h if ok else 0.0


def test_an_increment_without_commit_counts_the_previous_step_as_accepted():
    a, b = _source(generator=10), _source(generator=10)
    for src in (a, b):
        src.increment(0.0, 0.5)
        src.commit(False)
    first = a.increment(0.0, 0.2)
    a.commit(True)
    assert torch.equal(b.increment(0.0, 0.2).dW, first.dW)
    assert torch.equal(b.increment(0.2, 0.3).dW, a.increment(0.2, 0.3).dW)


def test_zero_dimensional_tensors_are_taken_as_numbers():
    a, b = _source(generator=14), _source(generator=14)
    for t, h, ok in [(0.0, 0.5, False), (0.0, 0.2, True), (0.2, 0.6, True)]:
        inc_a = a.increment(t, h)
        a.commit(ok)
        inc_b = b.increment(torch.tensor(t, dtype=F64), torch.tensor(h, dtype=F64))
        b.commit(torch.tensor(ok))
        assert torch.equal(inc_a.dW, inc_b.dW) and torch.equal(inc_a.H, inc_b.H)


@pytest.mark.parametrize("levy_area", [False, True])
def test_no_call_reads_a_tensor_back_to_the_host(levy_area, monkeypatch):
    """With Python numbers for t, h and accept, no call reads a tensor (on an accelerator each
    read is a synchronisation); with 0-d tensors, one read per argument."""
    src = _source(levy_area=levy_area, generator=15)
    reads = []
    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "cpu"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, _name=name, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    pattern = [(0.5, False), (0.3, False), (0.1, True), (0.3, True), (0.4, True), (0.2, False)]
    t = 0.0
    for h, ok in pattern * 3:
        src.increment(t, h)
        src.commit(ok)
        t += h if ok else 0.0
    assert reads == []
    src.increment(torch.tensor(t), torch.tensor(0.1))
    src.commit(torch.tensor(True))
    monkeypatch.undo()
    assert sorted(reads) == ["__bool__", "__float__", "__float__"]


def test_float32_stays_accurate_over_a_long_solve(monkeypatch):
    """A float32 source agrees with a float64 one fed the same normal draws, late in a long solve.

    A thousand steps of 0.5 up to t = 500, each rejected, retried at a third, accepted, then a
    step over the pending point rejected and the rest accepted. Everything is kept relative to
    the current point (times as float64 numbers), so the error stays at float32's rounding."""
    monkeypatch.setattr(
        shared_module,
        "randn",
        lambda shape, gen, dtype, device: torch.randn(shape, generator=gen, dtype=F64).to(dtype),
    )
    runs = {dtype: _source(64, generator=11, dtype=dtype, event=()) for dtype in (F64, F32)}
    h, worst_W, worst_H, var = 0.5, 0.0, 0.0, []
    for k in range(1000):
        t = k * h
        for start, step, ok in [
            (t, h, False),
            (t, h / 3, True),
            (t + h / 3, h, False),
            (t + h / 3, h - h / 3, True),
        ]:
            inc = {}
            for dtype, src in runs.items():
                inc[dtype] = src.increment(start, step)
                src.commit(ok)
            dW32, dW64 = inc[F32].dW.double(), inc[F64].dW
            worst_W = max(worst_W, float((dW32 - dW64).abs().max()) / math.sqrt(step))
            H32, H64 = inc[F32].H.double(), inc[F64].H
            worst_H = max(worst_H, float((H32 - H64).abs().max()) / math.sqrt(step / 12))
            if ok:
                var.append(float(dW64.pow(2).mean()) / step)
    assert worst_W < 1e-5 and worst_H < 1e-5, (worst_W, worst_H)
    mean_var = sum(var) / len(var)  # 2000 accepted steps of 64 samples: SE 0.004
    assert abs(mean_var - 1) < 0.02, mean_var


def test_a_samples_path_depends_only_on_its_own_generator():
    """Per-sample generators; the shared decision looks at the last sample's noise only, so the
    batch alone and the batch of three take the same steps: its increments agree."""

    def run(seeds):
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        src = _source(len(seeds), generator=gens)
        t, h, out = 0.0, 0.3, []
        for _ in range(30):
            inc = src.increment(t, h)
            accept = bool(inc.dW[-1].abs().max() > 0.4 * math.sqrt(h))
            src.commit(accept)
            out.append((inc.dW[-1], inc.H[-1]))
            t, h = (t + h, h * 1.3) if accept else (t, h * 0.6)
        return out

    alone, batched = run([12]), run([10, 11, 12])
    for (dW_a, H_a), (dW_b, H_b) in zip(alone, batched, strict=True):
        torch.testing.assert_close(dW_a, dW_b, rtol=1e-15, atol=0)
        torch.testing.assert_close(H_a, H_b, rtol=1e-15, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_increments_on_cuda_follow_the_constructor_without_synchronising():
    src = SharedTimeBridge((64, 8), dtype=F32, device="cuda", generator=0, levy_area=True)
    torch.cuda.set_sync_debug_mode("error")
    try:
        t = 0.0
        for h, ok in [(0.5, False), (0.2, True), (0.5, False), (0.1, True), (0.7, True)]:
            inc = src.increment(t, h)
            src.commit(ok)
            t += h if ok else 0.0
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert inc.dW.device.type == "cuda" and inc.dW.dtype == F32 and inc.H.shape == (64, 8)


def test_bad_arguments_are_refused():
    with pytest.raises(InputValueError, match="batch >= 1"):
        SharedTimeBridge((), dtype=F64, device="cpu")
    src = _source(4)
    with pytest.raises(InputValueError, match="h must be a float or a 0-d tensor.*BrownianBridge"):
        src.increment(0.0, torch.ones(4, dtype=F64))
    with pytest.raises(InputValueError, match="t must be a float or a 0-d tensor.*BrownianBridge"):
        src.increment(torch.zeros(4, dtype=F64), 0.1)
    with pytest.raises(InputValueError, match="h must be finite"):
        src.increment(0.0, math.nan)
    with pytest.raises(RuntimeError, match="increment"):
        src.commit(True)
    src.increment(0.0, 0.1)
    with pytest.raises(InputValueError, match="accept must be a bool or a 0-d tensor"):
        src.commit(torch.ones(4, dtype=torch.bool))
    assert not src.selectable
