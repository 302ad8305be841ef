"""BrownianBridge: one Brownian path per sample, whatever the solver rejects.

The law of what the bridge hands out is checked by the Brownian battery of ``sdekit.testing``
(:func:`sdekit.testing.brownian_properties`: increments N(0, h) and areas N(0, h/12) under
rejection patterns fixed in advance, W(T) ~ N(0, T) under noise-dependent rejection, Chen's
relation, the conditional law of a retry, the same noise on a retry), with and without Lévy area,
at 5 standard errors; re-drawing the noise fails it. The rest is bookkeeping and agreement with
Brownian paths sampled on a fine grid.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings

import sdekit as sk
import sdekit.testing as skt
from sdekit.brownian import BrownianBridge, GaussianIncrements
from sdekit.brownian import bridge as bridge_module
from sdekit.testing.strategies import rejection_schedules

F32, F64 = torch.float32, torch.float64


def _bridge(batch, *, levy_area=False, generator=0, capacity=32, dtype=F64, event=(1,)):
    return BrownianBridge(
        (batch, *event),
        dtype=dtype,
        device="cpu",
        generator=generator,
        levy_area=levy_area,
        capacity=capacity,
    )


def _merge(left, right):
    """(length, W, K = length·H) of two adjacent pieces joined: K = K1 + K2 + (b W1 - a W2)/2."""
    a, W1, K1 = left
    b, W2, K2 = right
    return a + b, W1 + W2, K1 + K2 + (b * W1 - a * W2) / 2


# ---------------------------------------------------------------- the battery


def test_the_bridge_passes_the_brownian_battery():
    report = skt.brownian_properties(BrownianBridge, n=20_000, seed=1234)
    report.raise_if_failed()
    assert report["past_end"].status == "skipped"  # a bridge has no end


def test_the_bridge_packing_every_4th_call_passes_the_brownian_battery(monkeypatch):
    """The schedule of large events (8 slots, packed every 4th call: growing and shrinking
    back under the battery's nested rejections), made to apply to the battery's small ones."""
    monkeypatch.setattr(bridge_module, "_LARGE_EVENT", 1)
    assert BrownianBridge((2, 1), dtype=F64, device="cpu").capacity == 8
    report = skt.brownian_properties(BrownianBridge, n=20_000, seed=1234)
    report.raise_if_failed()


def test_large_events_hold_8_copies_of_the_state_not_32():
    """Each slot is a copy of the state: on a 3x32x32 image the default bridge holds 8 of them
    (it held 32, twice that with the area: 50x the state in all for sampler='adaptive')."""
    for event, levy_area, copies in [
        ((2,), False, 32),
        ((3, 32, 32), False, 8),
        ((1024,), True, 16),
    ]:
        br = BrownianBridge((4, *event), dtype=F32, device="cpu", levy_area=levy_area)
        assert br.nbytes == copies * 4 * math.prod(event) * 4 + br.capacity * 4 * 8


def test_redrawing_the_noise_on_rejection_fails_the_battery_where_it_must():
    """The control: fresh draws after a rejection have the right law step by step, but are not
    one path (Var W(T)/T = 1.57 under the noise-dependent pattern, 5 SE = 0.05)."""
    report = skt.brownian_properties(GaussianIncrements, n=20_000, seed=7)
    failed = {r.name for r in report.failures}
    assert failed == {"path_under_rejection", "chen", "bridge_law", "retry"}, str(report)
    assert "variance" in report["path_under_rejection"].detail


class ForgetsInteriorPoints(BrownianBridge):
    """A rejected step forgets the points strictly inside it (its pieces merge)."""

    def commit(self, accept) -> None:
        accept = torch.as_tensor(accept, dtype=torch.bool).expand(self.shape[0])
        start, end = self._c.clone(), self._attempt.end
        super().commit(accept)
        T = self._T[: self._window]
        T.masked_fill_((T > start) & (T < end) & ~accept, math.inf)


class ForgetsEndsInsidePending(BrownianBridge):
    """A rejected step's end that lies inside a pending interval is forgotten."""

    def commit(self, accept) -> None:
        end, slot = self._attempt.end, self._window
        before = self._T[:slot].clone()
        accept = torch.as_tensor(accept, dtype=torch.bool).expand(self.shape[0])
        super().commit(accept)
        inside = ((before > end[None]) & (before < math.inf)).any(0)
        self._T[slot] = torch.where(~accept & inside, math.inf, self._T[slot])


def unseeded(shape, *, dtype, device, generator, levy_area):
    """Ignores the generator it is given (draws from torch's global one)."""
    return BrownianBridge(shape, dtype=dtype, device=device, generator=None, levy_area=levy_area)


@pytest.mark.parametrize(
    "make, failing, phrase",
    [
        (ForgetsInteriorPoints, "chen", "a point of the path was forgotten"),
        (ForgetsEndsInsidePending, "retry", "retried inside a longer rejected one"),
        (unseeded, "determinism", "same seed gave other noise"),
    ],
)
def test_a_bridge_that_forgets_points_or_its_seed_fails_the_battery(make, failing, phrase):
    # Each passed every property (the first two bias the double well's E[Y²] by +10% and +27%
    # in adaptive solves): the checks that catch them are exact, not statistical.
    report = skt.brownian_properties(make, only=["chen", "retry", "determinism"])
    assert {r.name for r in report.failures} == {failing}, str(report)
    assert phrase in report[failing].detail


@settings(max_examples=8)
@given(schedules=rejection_schedules().map(lambda s: (s,)))
def test_accepted_increments_are_independent_gaussians_under_random_rejection_patterns(schedules):
    report = skt.brownian_properties(
        BrownianBridge, only=["increment_law"], schedules=schedules, n=20_000, seed=1234
    )
    report.raise_if_failed()


@given(schedules=rejection_schedules(max_size=20).map(lambda s: (s,)))
def test_chens_relation_holds_over_random_rejection_patterns(schedules):
    skt.brownian_properties(BrownianBridge, only=["chen"], schedules=schedules).raise_if_failed()


# ---------------------------------------------------------------- the bridge against fine paths


def _path_moments(W, dt, a, b):
    """(W, H) over [a, b] of a path sampled on a fine grid (trapezoid for ∫W; indices a, b)."""
    seg = W[:, a : b + 1]
    L = (b - a) * dt
    integral = dt * (seg[:, 1:] + seg[:, :-1]).sum(1) / 2
    dW = seg[:, -1] - seg[:, 0]
    return dW, (integral - L * seg[:, 0]) / L - dW / 2


@pytest.mark.parametrize("levy_area", [True, False])
def test_bridge_samples_match_fine_brownian_paths(levy_area):
    """Split left, split right, a step over a pending point, and a step ending on one.

    Steps on [0, 1] (R = rejected): [0, 1] R, [0, .6] R, [0, .25], [.25, .85], [.85, 1]. The
    values (dW, and H with levy_area, of each) have the joint law of the same quantities
    computed from Brownian paths on a grid of 200 steps: covariance matrices agree entry by entry.
    """
    n, m = 40_000, 200
    br = _bridge(n, levy_area=levy_area, generator=3)
    got = []
    for t, h, ok in [(0, 1, 0), (0, 0.6, 0), (0, 0.25, 1), (0.25, 0.6, 1), (0.85, 0.15, 1)]:
        inc = br.increment(torch.tensor(float(t), dtype=F64), torch.tensor(h, dtype=F64))
        br.commit(torch.tensor(bool(ok)))
        got.append(inc.dW[:, 0] / math.sqrt(h))
        if levy_area:
            got.append(inc.H[:, 0] / math.sqrt(h / 12))
    gen = torch.Generator().manual_seed(4)
    dt = 1 / m
    W = torch.cat(
        [
            torch.zeros(n, 1, dtype=F64),
            (torch.randn(n, m, generator=gen, dtype=F64) * math.sqrt(dt)).cumsum(1),
        ],
        dim=1,
    )
    want = []
    for a, b in [(0, 200), (0, 120), (0, 50), (50, 170), (170, 200)]:
        dW, H = _path_moments(W, dt, a, b)
        L = (b - a) * dt
        want += [dW / math.sqrt(L), H / math.sqrt(L / 12)] if levy_area else [dW / math.sqrt(L)]
    C_got = torch.cov(torch.stack(got)).numpy()
    C_want = torch.cov(torch.stack(want)).numpy()
    se = np.sqrt(2 * (1 + C_want**2) / n)  # two independent estimates of a covariance
    worst = np.unravel_index(np.argmax(np.abs(C_got - C_want) / se), se.shape)
    assert np.all(np.abs(C_got - C_want) < 5 * se), (
        f"entry {worst}: bridge {C_got[worst]:.4f}, paths {C_want[worst]:.4f}"
    )
    # the paths do pin the conditional law: e.g. [0, .6] correlates with [0, 1]'s H, and with
    # [0, .25] (both contain it)
    assert abs(C_want[2, 1]) > 0.3 if levy_area else abs(C_want[1, 2]) > 0.5


# ---------------------------------------------------------------- exact bookkeeping


def test_packing_drops_the_points_a_sample_passed():
    """Accepted steps leave the points they pass behind the current time, where no search
    looks; each packing drops them, so a long solve with a rejection now and then keeps only
    what lies ahead (the capacity stays put) and its increments stay those of one path."""
    batch = 256
    br = _bridge(batch, generator=3, capacity=8, event=(2,))
    t, total = 0.0, torch.zeros(batch, 2, dtype=F64)
    for k in range(400):
        h = 1.0 / 400
        if k % 7 == 3:  # a rejected step twice as long, then the accepted half of it
            br.increment(t, 2 * h)
            br.commit(False)
        inc = br.increment(t, h)
        br.commit(True)
        t, total = t + h, total + inc.dW
    assert br.capacity == 8
    assert br._window <= 1 + bridge_module._REBASE_EVERY
    # Ahead of each sample: its current point and at most the rejected step's end; the rest of
    # the window is passed points the next packing drops.
    ahead = ((br._T[: br._window] >= br._c) & torch.isfinite(br._T[: br._window])).sum(dim=0)
    assert int(ahead.max()) <= 2
    # Accepted increments over [0, 1] sum to W(1) ~ N(0, 1): the sample variance of its 512
    # numbers within four standard errors, sqrt(2 / 511) each.
    assert abs(float(total.var()) - 1.0) < 4 * math.sqrt(2 / (total.numel() - 1))


def test_accepted_pieces_of_a_rejected_step_add_up_to_it_and_the_queue_grows():
    """Twenty nested rejections (capacity 2 must grow), then uneven accepted steps over [0, 1]."""
    batch = 64
    br = _bridge(batch, levy_area=True, generator=5, capacity=2, event=(3,))
    first = br.increment(0.0, 1.0)
    br.commit(False)
    for k in range(1, 21):
        br.increment(0.0, 2.0**-k)
        br.commit(False)
    assert br.capacity >= 21
    t, piece = 0.0, None
    for h in [2.0**-22, 2.0**-21, 0.01, 0.3, 0.0171, 0.2, 0.25]:
        h = min(h, 1.0 - t) if h != 0.25 else 1.0 - t
        inc = br.increment(t, h)
        br.commit(True)
        step = (h, inc.dW, h * inc.H)
        piece = step if piece is None else _merge(piece, step)
        t += h
    length, W, K = piece
    assert length == pytest.approx(1.0)
    torch.testing.assert_close(W, first.dW, rtol=0, atol=1e-12)
    torch.testing.assert_close(K, first.H, rtol=0, atol=1e-12)


def test_buffers_grown_by_a_run_of_rejections_go_back_once_it_is_passed():
    """Sixty nested rejections hold sixty points (128 slots); once accepted steps passed them,
    the buffers return to 8 slots, and the pieces still add up to the first rejected step."""
    batch, event = 4, (1024,)
    br = _bridge(batch, levy_area=True, generator=8, capacity=None, event=event)
    assert br.capacity == 8
    first = br.increment(0.0, 1.0)
    br.commit(False)
    for k in range(2, 62):
        br.increment(0.0, 1.0 / k)
        br.commit(False)
    assert br.capacity == 128
    t, piece = 0.0, None
    for _ in range(50):
        h = 1.0 / 50
        inc = br.increment(t, h)
        br.commit(True)
        step = (h, inc.dW, h * inc.H)
        piece = step if piece is None else _merge(piece, step)
        t += h
    assert br.capacity == 8
    length, W, K = piece
    assert length == pytest.approx(1.0)
    torch.testing.assert_close(W, first.dW, rtol=0, atol=1e-12)
    torch.testing.assert_close(K, first.H, rtol=0, atol=1e-12)


def test_a_retry_of_the_same_step_gets_the_same_noise():
    br = _bridge(8, levy_area=True, generator=6)
    first = br.increment(0.0, 0.3)
    br.commit(False)
    again = br.increment(0.0, 0.3)
    torch.testing.assert_close(again.dW, first.dW, rtol=0, atol=0)
    torch.testing.assert_close(again.H, first.H, rtol=0, atol=0)


def test_finished_samples_get_zero_and_keep_their_queue():
    br = _bridge(3, levy_area=True, generator=[torch.Generator().manual_seed(s) for s in range(3)])
    t = torch.zeros(3, dtype=F64)
    first = br.increment(t, torch.full((3,), 0.4, dtype=F64))
    br.commit(torch.tensor([True, False, True]))
    h = torch.tensor([0.1, 0.0, 0.2], dtype=F64)
    for accept in [[True, True, False], [False, False, True], [True, True, True]]:
        inc = br.increment(t, h)
        assert inc.dW[1].eq(0).all() and inc.H[1].eq(0).all()
        br.commit(torch.tensor(accept))
    again = br.increment(t, torch.tensor([0.1, 0.4, 0.1], dtype=F64))
    assert again.dW[1] == first.dW[1] and again.H[1] == first.H[1]


def test_a_samples_path_depends_only_on_its_own_generator():
    """Per-sample generators and noise-dependent per-sample decisions: sample 2 alone = in a batch."""

    def run(seeds):
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        br = _bridge(len(seeds), levy_area=True, generator=gens, event=(2,))
        t = torch.zeros(len(seeds), dtype=F64)
        h = torch.full((len(seeds),), 0.3, dtype=F64)
        out = []
        for _ in range(30):
            inc = br.increment(t, h)
            accept = inc.dW.abs().amax(1) > 0.4 * h.sqrt()
            br.commit(accept)
            out.append((inc.dW[-1], inc.H[-1]))
            t = torch.where(accept, t + h, t)
            h = torch.where(accept, h * 1.3, h * 0.6)
        return out

    alone, batched = run([12]), run([10, 11, 12])
    for (dW_a, H_a), (dW_b, H_b) in zip(alone, batched, strict=True):
        assert torch.equal(dW_a, dW_b) and torch.equal(H_a, H_b)


@pytest.mark.parametrize("levy_area", [False, True])
def test_attempts_prepared_together_give_the_increments_of_one_call_each(levy_area):
    """A compiled loop's protocol (:meth:`prepare_attempts`, :func:`draw` and :func:`advance`
    per attempt, :meth:`settle_attempts`) hands out the increments of ``increment`` and
    ``commit`` call by call, across packings and a capacity that grows, with per-sample
    generators; normals of attempts not taken go back to the generators."""

    def run(together):
        gens = [torch.Generator().manual_seed(s) for s in (3, 4, 5)]
        br = _bridge(3, levy_area=levy_area, generator=gens, capacity=4, event=(2,))
        t, h = torch.zeros(3, dtype=F64), torch.full((3,), 0.3, dtype=F64)
        out = []
        while len(out) < 40:
            if together:
                z1, z2, first = br.prepare_attempts(5)
                points, taken = br.points(), min(len(z1), 40 - len(out), 3)
            for i in range(taken if together else 1):
                if together:
                    z = (z1[i], None if z2 is None else z2[i])
                    inc, drawn = bridge_module.draw(points, t, h, *z, torch.finfo(F64).eps)
                else:
                    inc = br.increment(t, h)
                accept = inc.dW.abs().amax(1) > 0.4 * h.sqrt()
                if together:
                    slot = torch.tensor(first + i)
                    points = bridge_module.advance(points, drawn, accept, slot)
                else:
                    br.commit(accept)
                out.append(inc)
                t = torch.where(accept, t + h, t)
                h = torch.where(accept, h * 1.3, h * 0.6)
            if together:
                br.settle_attempts(points, taken, len(z1))
        return out, [torch.randn(2, generator=g) for g in gens]

    (one, after_one), (together, after_together) = run(False), run(True)
    for a, b in zip(one, together, strict=True):
        assert torch.equal(a.dW, b.dW)
        assert (a.H is None and b.H is None) or torch.equal(a.H, b.H)
    for a, b in zip(after_one, after_together, strict=True):
        assert torch.equal(a, b)


def test_shared_time_equals_per_sample_time_with_equal_entries():
    steps = [
        (0.0, 0.5, False),
        (0.0, 0.2, True),
        (0.2, 0.5, False),
        (0.2, 0.1, True),
        (0.3, 0.7, True),
    ]
    a = _bridge(16, levy_area=True, generator=8, event=(2, 3))
    b = _bridge(16, levy_area=True, generator=8, event=(2, 3))
    for t, h, ok in steps:
        inc_a = a.increment(t, h)
        a.commit(ok)
        inc_b = b.increment(torch.full((16,), t, dtype=F64), torch.full((16,), h, dtype=F64))
        b.commit(torch.full((16,), ok))
        assert torch.equal(inc_a.dW, inc_b.dW) and torch.equal(inc_a.H, inc_b.H)


def test_backward_steps_see_the_same_path_in_the_direction_of_integration():
    steps = [(0.5, False), (0.2, True), (0.5, False), (0.1, True), (0.7, True)]
    fwd = _bridge(16, levy_area=True, generator=9, event=(1, 1))
    bwd = _bridge(16, levy_area=True, generator=9, event=(1, 1))
    t = 0.0
    for h, ok in steps:
        inc_f = fwd.increment(t, h)
        inc_b = bwd.increment(1.0 - t, -h)
        fwd.commit(ok)
        bwd.commit(ok)
        assert torch.equal(inc_f.dW, inc_b.dW) and torch.equal(inc_f.H, inc_b.H)
        t += h if ok else 0.0


def test_a_step_below_the_rounding_tolerance_is_empty():
    br = _bridge(4, levy_area=True, generator=12)
    inc = br.increment(1.0, 1e-18)
    br.commit(True)
    assert inc.dW.eq(0).all() and inc.H.eq(0).all()
    assert torch.isfinite(br.increment(1.0, 0.5).H).all()


def test_an_increment_without_commit_counts_the_previous_step_as_accepted():
    a, b = _bridge(4, generator=10), _bridge(4, generator=10)
    a.increment(0.0, 0.5)
    a.commit(False)
    b.increment(0.0, 0.5)
    b.commit(False)
    first = a.increment(0.0, 0.2)
    a.commit(True)
    assert torch.equal(b.increment(0.0, 0.2).dW, first.dW)
    assert torch.equal(b.increment(0.2, 0.3).dW, a.increment(0.2, 0.3).dW)


def test_float32_values_stay_accurate_over_a_long_solve(monkeypatch):
    """A float32 source agrees with a float64 one fed the same normal draws, late in a long solve.

    Five hundred steps of 1e-3, each rejected once and redone in two pieces. Running values taken
    from the start would lose a few percent of the late pieces' Lévy areas to float32 rounding
    (measured: 2e-2 of a standard deviation); the source re-bases them onto the current point
    every few dozen calls, which keeps the error near 1e-4.
    """
    monkeypatch.setattr(
        bridge_module,
        "randn",
        lambda shape, gen, dtype, device: torch.randn(shape, generator=gen, dtype=F64).to(dtype),
    )
    runs = {dtype: _bridge(32, levy_area=True, generator=11, dtype=dtype) for dtype in (F64, F32)}
    h, worst_W, worst_H = 1e-3, 0.0, 0.0
    for k in range(500):
        t = k * h
        for start, step, ok in [(t, h, False), (t, h / 3, True), (t + h / 3, h - h / 3, True)]:
            inc = {}
            for dtype, br in runs.items():
                inc[dtype] = br.increment(start, step)
                br.commit(ok)
            worst_W = max(worst_W, float((inc[F32].dW - inc[F64].dW).abs().max()) / math.sqrt(step))
            worst_H = max(
                worst_H, float((inc[F32].H - inc[F64].H).abs().max()) / math.sqrt(step / 12)
            )
    assert worst_W < 1e-4 and worst_H < 1e-3, (worst_W, worst_H)


def test_bad_arguments_are_refused():
    br = _bridge(4)
    with pytest.raises(ValueError, match="h must be"):
        br.increment(0.0, torch.ones(3, dtype=F64))
    with pytest.raises(RuntimeError, match="increment"):
        br.commit(True)
    br.increment(0.0, 0.1)
    with pytest.raises(ValueError, match="accept must be"):
        br.commit(torch.ones(2, dtype=torch.bool))


@pytest.mark.parametrize("brownian", ["bridge", "shared", "per_sample"])
def test_steps_of_a_few_ulps_of_a_large_time_keep_their_noise(brownian):
    # At t = 1e4 in float32 a step of 0.005 is five ulps of t, under the 16 ulps within which a
    # step's end is taken to be a known point: every step ended on its own start (dW = 0) and
    # the variance came out 3.6e-15. OU from 1: Var Y(1) = 0.25 (1 - e^-2)/2.
    ou = sk.SDE(lambda t, y: -y, lambda t, y: torch.full_like(y, 0.5), noise="additive")
    y0 = torch.ones(4000, 1)
    if brownian != "bridge":
        controller = sk.PIController(rtol=1e-3, atol=1e-3, per_sample=brownian == "per_sample")
        sol = sk.solve(ou, y0, 1e4, 1e4 + 1, solver="sosra", controller=controller, generator=3)
    else:
        sol = sk.solve(ou, y0, 1e4, 1e4 + 1, solver="sosra", dt=0.005, brownian="bridge",
                       generator=3)  # fmt: skip
    exact = 0.125 * (1 - math.exp(-2))
    se = exact * math.sqrt(2 / (len(y0) - 1))
    assert abs(float(sol.ys[-1].var()) - exact) < 4 * se


def test_a_source_that_leaves_out_the_levy_area_asked_for_fails_with_what_to_return():
    # raw TypeErrors (None * float) in five properties before
    class WithoutArea(BrownianBridge):
        def increment(self, t, h):
            return sk.brownian.Increment(super().increment(t, h).dW, None)

    report = skt.brownian_properties(WithoutArea, levy_area=True, n=2000, only=["chen", "retry"])
    assert {r.name for r in report.failures} == {"chen", "retry"}
    assert all("has H=None: return the space-time Lévy area" in r.detail for r in report.failures)
