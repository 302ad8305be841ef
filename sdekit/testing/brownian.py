r"""A battery for Brownian sources: the law of what they hand out, and one path under rejection.

:func:`brownian_properties` drives a source (made by ``make_source(shape, *, dtype, device,
generator, levy_area)``, the signature of :class:`~sdekit.brownian.BrownianBridge`) the way an
adaptive solve does (``increment(t, h)``, then ``commit(accept)``) over ``n`` independent samples,
and checks, with and without space-time Lévy area:

================  ===========================================================================
property          what must hold
================  ===========================================================================
increment_law     under a rejection pattern fixed in advance, accepted increments are
                  independent ``N(0, h)`` (and areas ``H ~ N(0, h/12)``, independent of them):
                  mean and variance within ``z`` standard errors, a Kolmogorov–Smirnov p-value
                  above ``1e-5``, pairwise correlations within ``z/√n``
path_under_       when rejection looks at the noise (small increments rejected, retried at
rejection         half the step), the accepted increments still add up to ``W(T) ~ N(0, T)``
                  (and the area over ``[0, T]`` to ``N(0, T/12)``): single accepted increments
                  are a selected sample, their sum is not. Per sample, or for a source that
                  serves shared time (``per_sample=False``) over many small batches, each
                  taking one decision from the mean square of its noise
chen              a rejected step and the accepted pieces that later cover it agree exactly
                  (Chen's relation: ``W = W₁ + W₂``, ``K = K₁ + K₂ + (bW₁ − aW₂)/2`` with
                  ``K = hH``), over random rejection patterns, and where a longer rejected
                  step came in between (``[0, .5]``, then ``[0, .8]``, then ``[0, .25]`` and
                  ``[.25, .5]``: a source that forgets pending points fails here)
bridge_law        a shorter retry of a rejected step ``[0, L]`` at ``xL`` is the Brownian
                  bridge: residual of ``W₁ − xW − 6x(1 − x)K/L`` uncorrelated with
                  ``(W, K)``, of variance ``Lx(1 − x)(1 − 3x(1 − x))`` (``Lx(1 − x)`` without
                  area), for a left and a right piece
retry             retrying a rejected step gives the same noise, bit for bit, also after a
                  shorter rejection inside a longer one (``[0, 1]``, ``[0, .3]``, ``[0, .3]``)
determinism       a source made with the same seed hands out the same noise, bit for bit,
                  under rejection; another seed other noise
past_end          with ``end=`` given, a query past it raises (a warning is not enough)
================  ===========================================================================

A source that re-draws rejected noise (:class:`~sdekit.brownian.GaussianIncrements`) passes
``increment_law`` only; the battery's own tests keep it as the control that must fail the rest.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import torch

from .measure import ks_normal
from .report import Report, run_property, select, skipped

BROWNIAN_PROPERTIES = (
    "increment_law",
    "path_under_rejection",
    "chen",
    "bridge_law",
    "retry",
    "determinism",
    "past_end",
)

F64 = torch.float64
#: A fixed pattern (fraction of the base step 1/4, accept) with rejections, shorter retries,
#: steps across pending points and steps ending on them.
DEFAULT_SCHEDULES = (
    ((1.0, False), (0.6, False), (0.25, True), (1.0, False), (0.5, True), (1.2, True)),
    ((0.8, False), (0.8, False), (0.3, True), (1.5, False), (0.9, True), (0.2, False)),
)


def _merge(left, right):
    """(length, W, K) of two adjacent pieces joined (Chen's relation)."""
    a, W1, K1 = left
    b, W2, K2 = right
    return a + b, W1 + W2, K1 + K2 + (b * W1 - a * W2) / 2


def _standard_normal(z: torch.Tensor, what: str, z_limit: float) -> str:
    n = z.numel()
    mean, var = float(z.mean()), float(z.var())
    assert abs(mean) <= z_limit / math.sqrt(n), (
        f"{what}: mean {mean:.4f}, allowed ±{z_limit / math.sqrt(n):.4f} ({z_limit:g} SE)"
    )
    se = math.sqrt(2 / (n - 1))
    assert abs(var - 1) <= z_limit * se, (
        f"{what}: variance {var:.4f}, want 1 ± {z_limit * se:.4f} ({z_limit:g} SE)"
    )
    _, p = ks_normal(z)
    assert p > 1e-5, f"{what}: Kolmogorov–Smirnov p = {p:.2g} against N(0, 1)"
    return f"{what} ok"


def _uncorrelated(columns: list[torch.Tensor], names: list[str], z_limit: float) -> None:
    n = columns[0].numel()
    corr = torch.corrcoef(torch.stack([c.flatten() for c in columns]))
    corr.fill_diagonal_(0)
    worst = int(corr.abs().argmax())
    i, j = divmod(worst, len(columns))
    assert abs(float(corr[i, j])) <= z_limit / math.sqrt(n), (
        f"corr({names[i]}, {names[j]}) = {float(corr[i, j]):.4f}, allowed ±"
        f"{z_limit / math.sqrt(n):.4f}"
    )


class _Checked:
    """A source made with ``levy_area=True``, whose increments must carry ``H``."""

    def __init__(self, source, levy_area: bool):
        self.source, self.levy_area = source, levy_area

    def increment(self, t, h):
        inc = self.source.increment(t, h)
        assert inc.H is not None, (
            "the source was made with levy_area=True but its increment has H=None: return the "
            "space-time Lévy area too (or test with levy_area=False)"
        )
        return inc

    def __getattr__(self, name):
        return getattr(self.source, name)


class _BrownianBattery:
    def __init__(self, make_source, n, seed, z, schedules, levy_areas, end, per_sample):
        self.make, self.n, self.seed, self.z = make_source, n, seed, z
        self.schedules, self.levy_areas = schedules, levy_areas
        self.end, self.per_sample = end, per_sample

    def _source(self, levy_area: bool, n: int | None = None, event=(1,), seed_offset: int = 0):
        gen = torch.Generator().manual_seed(self.seed + seed_offset)
        shape = (n or self.n, *event)
        source = self.make(
            shape, dtype=F64, device=torch.device("cpu"), generator=gen, levy_area=levy_area
        )
        return _Checked(source, levy_area) if levy_area else source

    @staticmethod
    def _queries(source, queries):
        """``(dW, H)`` of each query ``(t, h, accept)``, taken in order."""
        out = []
        for t, h, ok in queries:
            inc = source.increment(torch.tensor(t, dtype=F64), h)
            source.commit(torch.tensor(ok))
            out.append((inc.dW, inc.H))
        return out

    def _run(self, source, schedule, t1=1.0, dt0=0.25):
        """Drive ``source`` (shared time) through ``schedule``, then accepted steps of ``dt0`` up
        to ``t1``; the accepted ``(h, dW, H)``, in order."""
        t, accepted = 0.0, []
        steps = list(schedule)
        while t1 - t > 1e-12:
            frac, ok = steps.pop(0) if steps else (1.0, True)
            h = min(frac * dt0, t1 - t)
            inc = source.increment(torch.tensor(t, dtype=F64), h)
            source.commit(torch.tensor(ok))
            if ok:
                accepted.append((h, inc.dW, inc.H))
                t += h
        return accepted

    def increment_law(self):
        for levy in self.levy_areas:
            for k, schedule in enumerate(self.schedules):
                steps = self._run(self._source(levy, seed_offset=k), schedule)
                columns, names = [], []
                for i, (h, dW, H) in enumerate(steps):
                    columns.append(dW / math.sqrt(h))
                    names.append(f"dW[{i}] (h={h:.3g})")
                    if levy:
                        columns.append(H / math.sqrt(h / 12))
                        names.append(f"H[{i}] (h={h:.3g})")
                for c, name in zip(columns, names, strict=True):
                    _standard_normal(c, f"schedule {k}, levy_area={levy}: {name}", self.z)
                if len(columns) > 1:
                    _uncorrelated(columns, names, self.z)
        return f"{len(self.schedules)} patterns, {self.n} samples"

    def path_under_rejection(self):
        if not self.per_sample:
            return self._path_under_shared_rejection()
        T = 1.0
        for levy in self.levy_areas:
            source = self._source(levy)
            n = self.n
            t = torch.zeros(n, dtype=F64)
            h = torch.full((n,), T / 4, dtype=F64)
            piece = (torch.zeros(n, dtype=F64),) * 3
            rejected = 0
            for _ in range(10_000):
                active = T - t > 1e-12
                if not active.any():
                    break
                h_try = torch.where(active, torch.minimum(h, T - t), 0.0)
                inc = source.increment(t, h_try)
                h_safe = torch.where(active, h_try, 1.0)
                small = inc.dW[:, 0].abs() / h_safe.sqrt() < 0.5
                if levy:
                    small |= inc.H[:, 0].abs() / (h_safe / 12).sqrt() < 0.5
                accept = active & (~small | (h_try <= T / 64 + 1e-15))
                source.commit(accept)
                rejected += int((active & ~accept).sum())
                H = inc.H[:, 0] if levy else torch.zeros(n, dtype=F64)
                merged = _merge(piece, (h_try, inc.dW[:, 0], h_try * H))
                piece = tuple(torch.where(accept, m, p) for m, p in zip(merged, piece, strict=True))
                t = torch.where(accept, t + h_try, t)
                h = torch.where(accept, torch.clamp(2 * h_try, max=T / 4), h_try / 2)
            _, W, K = piece
            self._law_at_T(W, K, T, levy)
        return f"{rejected} noise-dependent rejections"

    def _path_under_shared_rejection(self, batch: int = 4):
        """``path_under_rejection`` for a source that serves shared time: ``n / batch``
        independent sources of ``batch`` samples, each with one step and one decision per
        attempt: rejected when the batch's mean square of the noise (``dW²/h``, and ``12H²/h``
        with area) is below 1/2, retried at half the step (from ``T/2`` down to ``T/16``). The
        sources are stepped in turn, drawing from one generator."""
        T = 1.0
        sources_n = max(self.n // batch, 1)
        rejected = 0
        for levy in self.levy_areas:
            gen = torch.Generator().manual_seed(self.seed)
            sources = [
                self.make(
                    (batch, 1), dtype=F64, device=torch.device("cpu"), generator=gen, levy_area=levy
                )
                for _ in range(sources_n)
            ]
            t, h = [0.0] * sources_n, [T / 2] * sources_n
            length = torch.zeros(sources_n, 1, dtype=F64)
            W = torch.zeros(sources_n, batch, dtype=F64)
            K = torch.zeros(sources_n, batch, dtype=F64)
            active = list(range(sources_n))
            while active:
                h_try = [min(h[k], T - t[k]) for k in active]
                times = torch.tensor([t[k] for k in active], dtype=F64).unbind()
                incs = [
                    sources[k].increment(tk, hk)
                    for k, tk, hk in zip(active, times, h_try, strict=True)
                ]
                rows = torch.tensor(active)
                step = torch.tensor(h_try, dtype=F64)[:, None]
                dW = torch.stack([inc.dW[:, 0] for inc in incs])
                score = dW**2 / step
                if levy:
                    H = torch.stack([inc.H[:, 0] for inc in incs])
                    score = (score + 12 * H**2 / step) / 2
                small = score.mean(dim=1) < 0.5
                decisions = ~small | (step[:, 0] <= T / 16 + 1e-15)
                for k, ok in zip(active, decisions.unbind(), strict=True):
                    sources[k].commit(ok)
                accept = decisions.tolist()
                merged = _merge(
                    (length[rows], W[rows], K[rows]),
                    (step, dW, step * H if levy else torch.zeros_like(dW)),
                )
                kept = decisions[:, None]
                for whole, part in zip((length, W, K), merged, strict=True):
                    whole[rows] = torch.where(kept, part, whole[rows])
                for k, hk, ok in zip(active, h_try, accept, strict=True):
                    t[k], h[k] = (t[k] + hk, min(2 * hk, T / 2)) if ok else (t[k], hk / 2)
                rejected += accept.count(False)
                active = [k for k in active if T - t[k] > 1e-12]
            self._law_at_T(W.flatten(), K.flatten(), T, levy)
        return f"{rejected} noise-dependent rejections of {sources_n} batches of {batch}"

    def _law_at_T(self, W, K, T, levy):
        """``W(T) ~ N(0, T)`` from the accepted increments (and their area over ``[0, T]``,
        ``K/T ~ N(0, T/12)``, uncorrelated with it)."""
        _standard_normal(W / math.sqrt(T), f"levy_area={levy}: W(T) from accepted steps", self.z)
        if levy:
            H_T = K / T
            _standard_normal(H_T / math.sqrt(T / 12), "area over [0, T]", self.z)
            _uncorrelated([W, H_T], ["W(T)", "H(0, T)"], self.z)

    def chen(self):
        worst = 0.0
        for levy in self.levy_areas:
            for k, schedule in enumerate(self.schedules):
                source = self._source(levy, n=64, event=(3,), seed_offset=k)
                whole = source.increment(torch.tensor(0.0, dtype=F64), 1.0)
                source.commit(torch.tensor(False))
                piece = None
                for h, dW, H in self._run(source, schedule):
                    step = (h, dW, h * H if levy else torch.zeros_like(dW))
                    piece = step if piece is None else _merge(piece, step)
                length, W, K = piece
                assert abs(length - 1.0) < 1e-12, f"accepted steps cover {length}, not 1"
                gap = float((W - whole.dW).abs().max())
                assert gap <= 1e-10, (
                    f"schedule {k}: accepted increments add up to W(1) - W(0) off by {gap:.3g}"
                )
                if levy:
                    gap_K = float((K - whole.H).abs().max())
                    assert gap_K <= 1e-10, (
                        f"schedule {k}: accepted Lévy areas merge to the rejected step's off by "
                        f"{gap_K:.3g}"
                    )
                    gap = max(gap, gap_K)
                worst = max(worst, gap)
            # a longer rejection after a shorter one: the shorter one's end stays a point of
            # the path, which the accepted pieces must reproduce
            steps = [(0.0, 0.5, False), (0.0, 0.8, False), (0.0, 0.25, True), (0.25, 0.25, True)]
            (W, H), _, (W1, H1), (W2, H2) = self._queries(self._source(levy, n=64), steps)
            _, W12, K12 = _merge(
                (0.25, W1, 0.25 * H1 if levy else 0), (0.25, W2, 0.25 * H2 if levy else 0)
            )
            gap = float((W12 - W).abs().max())
            if levy:
                gap = max(gap, float((K12 - 0.5 * H).abs().max()))
            assert gap <= 1e-10, (
                f"levy_area={levy}: after rejecting [0, .5] and then [0, .8], the accepted "
                f"[0, .25] and [.25, .5] differ from the rejected [0, .5] by {gap:.3g} (a point "
                f"of the path was forgotten)"
            )
            worst = max(worst, gap)
        return f"pieces merge to the rejected step to {worst:.1e}"

    def bridge_law(self):
        for levy in self.levy_areas:
            for x in (0.3, 0.7):
                source = self._source(levy)
                zero = torch.tensor(0.0, dtype=F64)
                parent = source.increment(zero, 1.0)
                source.commit(torch.tensor(False))
                child = source.increment(zero, x)
                W, W1 = parent.dW.flatten(), child.dW.flatten()
                xy = x * (1 - x)
                if levy:
                    K = parent.H.flatten()
                    residual = W1 - x * W - 6 * xy * K
                    variance = xy * (1 - 3 * xy)
                    _uncorrelated([residual, W, K], ["residual", "W", "K"], self.z)
                else:
                    residual = W1 - x * W
                    variance = xy
                    _uncorrelated([residual, W], ["residual", "W"], self.z)
                _standard_normal(
                    residual / math.sqrt(variance),
                    f"levy_area={levy}: bridge residual at x={x}",
                    self.z,
                )
        return "conditional mean and variance of the retry"

    def retry(self):
        for levy in self.levy_areas:
            source = self._source(levy, n=16)
            zero = torch.tensor(0.0, dtype=F64)
            first = source.increment(zero, 0.3)
            source.commit(torch.tensor(False))
            again = source.increment(zero, 0.3)
            assert torch.equal(first.dW, again.dW), (
                f"levy_area={levy}: a retried step gets different noise (max change "
                f"{float((first.dW - again.dW).abs().max()):.3g})"
            )
            if levy:
                assert torch.equal(first.H, again.H), "a retried step gets a different Lévy area"
            steps = [(0.0, 1.0, False), (0.0, 0.3, False), (0.0, 0.3, False)]
            _, first, again = self._queries(self._source(levy, n=16), steps)
            assert all(
                torch.equal(a, b) for a, b in zip(first, again, strict=True) if a is not None
            ), (
                f"levy_area={levy}: a step retried inside a longer rejected one gets different "
                f"noise (max change {float((first[0] - again[0]).abs().max()):.3g})"
            )
        return "same noise"

    def determinism(self):
        steps = [(0.0, 0.5, False), (0.0, 0.2, True), (0.2, 0.6, False), (0.2, 0.3, True)]
        for levy in self.levy_areas:
            one, same = (self._queries(self._source(levy, n=16), steps) for _ in range(2))
            other = self._queries(self._source(levy, n=16, seed_offset=101), steps)
            for (a, _), (b, _), (c, _) in zip(one, same, other, strict=True):
                assert torch.equal(a, b), (
                    f"levy_area={levy}: a source made with the same seed gave other noise (max "
                    f"change {float((a - b).abs().max()):.3g}): does it use the generator it is "
                    f"given?"
                )
                assert not torch.equal(a, c), f"levy_area={levy}: another seed, the same noise"
        return "same seed, same noise; another seed, other noise"

    def past_end(self):
        if self.end is None:
            return skipped("past_end", "no end given (end=)")
        source = self._source(False, n=4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                source.increment(torch.tensor(self.end - 0.1, dtype=F64), 0.2)
            except Exception as err:  # any clear error is what is asked for
                return f"refused: {type(err).__name__}: {err}"
        raise AssertionError(
            f"a step over [{self.end - 0.1:g}, {self.end + 0.1:g}] past the end {self.end:g} "
            f"returned an increment instead of raising"
        )


def brownian_properties(
    make_source: Callable,
    *,
    only=None,
    skip=(),
    n: int = 20_000,
    seed: int = 0,
    z: float = 5.0,
    schedules: Sequence = DEFAULT_SCHEDULES,
    levy_area: bool | None = None,
    end: float | None = None,
    per_sample: bool = True,
) -> Report:
    """Run a Brownian source through :data:`BROWNIAN_PROPERTIES` (module docstring).

    Args:
        make_source: ``make_source(shape, *, dtype, device, generator, levy_area)`` → a fresh
            :class:`~sdekit.brownian.BrownianSource`; :class:`~sdekit.brownian.BrownianBridge`
            itself is one.
        n: samples (independent paths) of the statistical checks.
        z: standard errors allowed in each statistical check.
        schedules: rejection patterns ``[(fraction of 1/4, accept), ...]`` on ``[0, 1]``
            (e.g. drawn with :func:`sdekit.testing.strategies.rejection_schedules`).
        levy_area: check with (``True``), without (``False``) or both (``None``).
        end: the source's end time, if it has one (then ``past_end`` is checked).
        per_sample: the source takes ``(batch,)`` times and steps (``False``: shared time only;
            ``path_under_rejection`` then drives ``n / 4`` sources of 4 samples, each with its
            own shared steps and decisions).
    """
    names = select(BROWNIAN_PROPERTIES, only, skip)
    levy_areas = (False, True) if levy_area is None else (levy_area,)
    battery = _BrownianBattery(make_source, n, seed, z, schedules, levy_areas, end, per_sample)
    name = getattr(make_source, "__name__", type(make_source).__name__)
    return Report(
        f"Brownian source {name}", tuple(run_property(p, getattr(battery, p)) for p in names)
    )


def assert_brownian_properties(make_source: Callable, **options) -> Report:
    """:func:`brownian_properties`, raising an ``AssertionError`` that lists every failure."""
    return brownian_properties(make_source, **options).raise_if_failed()
