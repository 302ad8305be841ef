"""BrownianBridge: one Brownian path per sample, whatever the solver rejects.

Statistical checks use float64, fixed seeds and thresholds at 5 standard errors. Under rejection
patterns fixed in advance, accepted increments must be independent N(0, h) with independent
Lévy areas N(0, h/12); under noise-dependent rejection only the total over a fixed horizon is
N(0, T) (individual accepted increments are then a selected sample), and re-drawing the noise
fails that check.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from sdekit.brownian import BrownianBridge, GaussianIncrements
from sdekit.brownian import bridge as bridge_module

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


def _assert_standard_normal(z: np.ndarray, what: str) -> None:
    n = len(z)
    assert abs(z.mean()) < 5 / math.sqrt(n), f"{what}: mean {z.mean():.4f}"
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / n), f"{what}: variance {z.var():.4f}, want 1"
    p = stats.kstest(z, "norm").pvalue
    assert p > 1e-5, f"{what}: Kolmogorov–Smirnov p = {p:.2g}"


def _assert_uncorrelated(columns: list[np.ndarray], names: list[str]) -> None:
    n = len(columns[0])
    corr = np.corrcoef(np.stack(columns))
    np.fill_diagonal(corr, 0)
    i, j = np.unravel_index(np.abs(corr).argmax(), corr.shape)
    assert abs(corr[i, j]) < 5 / math.sqrt(n), f"corr({names[i]}, {names[j]}) = {corr[i, j]:.4f}"


# ---------------------------------------------------------------- rejection fixed in advance


def _run_schedules(br, schedules, group, t0, t1, dt0):
    """Drive ``br`` with one (fraction of dt0, accept) schedule per group of samples.

    After its schedule a group steps by dt0, accepting, up to t1. Returns per group the list of
    accepted (h, dW, H) with dW, H as numpy arrays over the group's samples.
    """
    n_groups = len(schedules)
    t = [t0] * n_groups
    pos = [0] * n_groups
    accepted = [[] for _ in range(n_groups)]
    while any(t1 - tg > 1e-12 for tg in t):
        hs, acc = [], []
        for g in range(n_groups):
            remaining = t1 - t[g]
            frac, ok = schedules[g][pos[g]] if pos[g] < len(schedules[g]) else (1.0, True)
            pos[g] += 1
            hs.append(min(frac * dt0, remaining) if remaining > 1e-12 else 0.0)
            acc.append(ok and remaining > 1e-12)
        inc = br.increment(torch.tensor(t, dtype=F64)[group], torch.tensor(hs, dtype=F64)[group])
        br.commit(torch.tensor(acc)[group])
        for g in range(n_groups):
            if acc[g]:
                rows = group == g
                H = inc.H[rows, 0].numpy() if inc.H is not None else None
                accepted[g].append((hs[g], inc.dW[rows, 0].numpy(), H))
                t[g] += hs[g]
    return accepted


_schedule = st.lists(st.tuples(st.floats(0.05, 1.5), st.booleans()), min_size=1, max_size=10)


@settings(max_examples=8)
@given(schedules=st.lists(_schedule, min_size=2, max_size=2), levy_area=st.booleans())
def test_accepted_increments_are_independent_gaussians_under_forced_rejection(schedules, levy_area):
    batch = 40_000
    group = torch.arange(batch) % 2
    br = _bridge(batch, levy_area=levy_area, generator=1234)
    t0, t1 = 0.5, 1.5
    for steps in _run_schedules(br, schedules, group, t0, t1, dt0=0.25):
        columns, names = [], []
        total = sum(h for h, _, _ in steps)
        assert total == pytest.approx(t1 - t0)
        for k, (h, dW, H) in enumerate(steps):
            columns.append(dW / math.sqrt(h))
            names.append(f"dW[{k}] (h={h:.3f})")
            if H is not None:
                columns.append(H / math.sqrt(h / 12))
                names.append(f"H[{k}] (h={h:.3f})")
        for z, name in zip(columns, names, strict=True):
            _assert_standard_normal(z, name)
        if len(columns) > 1:
            _assert_uncorrelated(columns, names)
        W_total = sum(dW for _, dW, _ in steps)
        _assert_standard_normal(W_total / math.sqrt(total), "W(t1) - W(t0)")


# ---------------------------------------------------------------- rejection that looks at the noise


def _noise_dependent_run(source, batch, T=1.0):
    """Reject when the step's noise is small (|dW|/√h < 1/2, or |H|/√(h/12) < 1/2), retry at h/2.

    Steps start at T/4, double after an acceptance, and are always accepted at T/64 or below.
    Returns W(T) and the Lévy area H over [0, T] (None without) assembled from accepted steps.
    """
    t = torch.zeros(batch, dtype=F64)
    h = torch.full((batch,), T / 4, dtype=F64)
    piece = (torch.zeros(batch, dtype=F64),) * 3  # accepted (length, W, K) so far
    while True:
        active = T - t > 1e-12
        if not active.any():
            break
        h_try = torch.where(active, torch.minimum(h, T - t), 0.0)
        inc = source.increment(t, h_try)
        h_safe = torch.where(active, h_try, 1.0)
        small = inc.dW[:, 0].abs() / h_safe.sqrt() < 0.5
        if inc.H is not None:
            small |= inc.H[:, 0].abs() / (h_safe / 12).sqrt() < 0.5
        accept = active & (~small | (h_try <= T / 64 + 1e-15))
        source.commit(accept)
        H = inc.H[:, 0] if inc.H is not None else torch.zeros(batch, dtype=F64)
        step = (h_try, inc.dW[:, 0], h_try * H)
        piece = tuple(
            torch.where(accept, m, p) for m, p in zip(_merge(piece, step), piece, strict=True)
        )
        t = torch.where(accept, t + h_try, t)
        h = torch.where(accept, torch.clamp(2 * h_try, max=T / 4), h_try / 2)
    length, W, K = piece
    assert torch.allclose(length, torch.full_like(length, T))
    return W.numpy(), (K / T).numpy() if source.levy_area else None


@pytest.mark.parametrize("levy_area", [False, True])
def test_noise_dependent_rejection_keeps_the_total_exactly_gaussian(levy_area):
    T = 1.0
    br = _bridge(20_000, levy_area=levy_area, generator=7)
    W_T, H_T = _noise_dependent_run(br, 20_000, T)
    _assert_standard_normal(W_T / math.sqrt(T), "W(T)")
    if levy_area:
        _assert_standard_normal(H_T / math.sqrt(T / 12), "H over [0, T]")
        _assert_uncorrelated([W_T, H_T], ["W(T)", "H(0, T)"])


def test_redrawing_the_noise_on_rejection_fails_the_same_check():
    """The control: fresh draws after a rejection keep the large ones, and Var W(T) / T ≫ 1."""
    n = 20_000
    gauss = GaussianIncrements(
        (n, 1), dtype=F64, device="cpu", generator=torch.Generator().manual_seed(7)
    )
    W_T, _ = _noise_dependent_run(gauss, n)
    ratio = W_T.var()
    assert ratio > 1 + 10 * math.sqrt(2 / n), (
        f"Var W(T)/T = {ratio:.3f}: the control lost its power"
    )
    with pytest.raises(AssertionError):
        _assert_standard_normal(W_T, "W(T), re-drawn")


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
