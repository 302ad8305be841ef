"""One Brownian path per sample under rejected steps: rejection sampling with memory.

An adaptive solver that re-draws the noise after a rejected step biases its solution whenever
rejection depends on the noise (it keeps the rare draws that its error estimate likes). Rackauckas
& Nie (2017, "Adaptive methods for stochastic differential equations via natural embeddings and
rejection sampling with memory") keep instead everything that was drawn, so that every increment
handed out is a piece of one Brownian path: a shorter retry is a Brownian-bridge sample
conditioned on what the rejected step drew, and the rest of the rejected interval is kept for
later steps.

Representation
--------------
Per sample the source keeps its current point (the end of the last accepted step) and the
*pending points* ahead of it: the ends of steps that were drawn but not accepted. Each point
stores its time ``τ`` (distance travelled in the direction of integration, in float64), the path
``V = W(τ)`` and its running integral ``I = ∫_0^τ W(s) ds`` (``I`` only with ``levy_area``), all
relative to an origin that is moved to the current point now and then (see
:meth:`BrownianBridge._compact`). The space-time Lévy area of the interval between two points
``l < r`` of length ``L`` follows from their values alone (the integral minus the trapezoid),

    K = ∫_l^r (W(s) - W(l) - (s - l)/L · (W(r) - W(l))) ds = I_r - I_l - L (V_l + V_r) / 2,
    H = K / L,

so a step over any number of pending pieces is two look-ups, and merging adjacent pieces
``(a, W1, K1)``, ``(b, W2, K2)`` is implicit: ``K = K1 + K2 + (b W1 - a W2)/2``. Points occupy
slots of ``(capacity, batch)`` (times) and ``(capacity, batch, *event)`` (values) tensors in no
particular order, the current one included: a step finds its neighbours by a masked min/max over
the slot times, and a commit writes its new point to the next unused slot. Every 16th call (every
4th for events of 1024 elements and more, where each slot is a copy of a large state) the
points are packed to the front and re-based onto the current point (and packed without
re-basing when the slots run out before that); those are the only host synchronisations. The
schedule counts calls only, so a sample's values do not depend on the rest of the batch
(:meth:`BrownianBridge.select` can drop samples mid-solve).

A step ``[τ_c, τ_c + |h|]`` ends

* at a pending point (within a rounding tolerance): that point's values are the answer;
* inside the interval between two consecutive known points: the end is drawn from the bridge of
  that interval (below);
* beyond every pending point: a fresh independent piece ``ΔW ~ N(0, r)``, ``K ~ N(0, r³/12)``
  is drawn from the last point, ``r`` the remaining length.

On :meth:`commit` an accepting sample moves its current point to the end of the step and forgets
the pending points it passed (the next packing frees their slots); a rejecting sample keeps
*every* pending point and adds the step's end to them, as in their RSwM3. Keeping the points
individually, rather than merging a rejected step's pieces into one, matters: a merged piece
forgets interior values that earlier decisions and step proposals saw, and drawing them again
later is a mild form of the re-draw bias. On the double well of
``tests/test_adaptive_statistics.py`` (improved Euler, per-sample I controller, tolerance 1e-2,
40000 samples) merged pieces gave E[Y²] +10.3% and E[Y⁴] +15.9%, kept points +3.6% and +4.1%
(± 0.4% and 0.8%; the rest is the inherent cost of choosing steps with noise not yet applied).
With nothing ever forgotten, every increment is a function of one Brownian path, revealed at the
points the solver asked for: accepted increments over ``[t0, T]`` sum to
``W(T) - W(t0) ~ N(0, T - t0)`` whatever the accept rule, and they are independent ``N(0, h)``
whenever the accept rule does not look at the noise.

Bridge with Lévy area
---------------------
Split an interval of length ``L``, with increment ``W`` and area ``K = L·H``, at ``a = xL``
(``b = L - a``). The left and right pieces' ``(W1, K1)``, ``(W2, K2)`` are four independent
Gaussians, ``N(0, a)``, ``N(0, b)``, ``N(0, a³/12)``, ``N(0, b³/12)``, and the parent is linear in
them: ``W = W1 + W2``, ``K = K1 + K2 + (b W1 - a W2)/2``. Gaussian conditioning (``Cov(W1, W) = a``,
``Cov(W1, K) = ab/2``, ``Cov(K1, K) = a³/12``, ``Cov(K1, W) = 0``, ``Var W = L``,
``Var K = L³/12``, ``Cov(W, K) = 0``) gives, with ``q = 1 - 3x(1 - x)``,

    E[W1 | W, K] = x W + 6 x(1 - x) K / L,        Var = L x(1 - x) q,
    E[K1 | W, K] = x³ K,                          Var = L³ x³ (1 - x³) / 12,
    Cov(W1, K1 | W, K) = -L² x⁴ (1 - x) / 2,

(on the unit interval: ``Cov(B_x, ∫B) = x(1 - x)/2``, ``Var ∫B = 1/12``, and
``K1 = ∫_0^x B - x B_x / 2`` for the bridge ``B``). Drawn as ``W1 = E + √Var · z1`` and
``K1 = x³ K + (Cov/√Var) z1 + σ z2`` with the residual ``σ² = L³ x³ (1 - x)³ / (12 q)``, a closed
form free of cancellation. Without Lévy area the first line loses its ``K`` terms and ``q``
(the plain Brownian bridge ``W1 ~ N(xW, L x(1 - x))``), drawn directly at the step's end in a
few operations. With it, the piece that is drawn is always the *shorter* one (``x ≤ 1/2``, so
``1/4 ≤ q ≤ 1``): the longer one is the parent minus it, and a short piece never comes out as a
difference of large numbers. The right piece is drawn through time reversal,
``W̃(s) = W(L) - W(L - s)``, which keeps ``W`` and flips the sign of ``K``. These moments agree
with torchsde's ``BrownianInterval``.

Time direction: only ``|h|`` enters. A backward solve (``h < 0``) gets the same path, built in
the direction of integration: ``dW`` is the increment of the Brownian motion that runs with the
solve, ``N(0, |h|)``, and ``H`` its space-time Lévy area over the step (the signed formula
``H = (1/h) ∫_t^{t+h} (W(s) - W(t) - (s - t)/h · dW) ds`` reads the same in that path).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from sdekit.errors import InputValueError

from ..random import GeneratorLike, as_generator, randn
from .base import BrownianSource, Increment

_INF = math.inf
_REBASE_EVERY = 16  # calls between re-basings (host reads of the longest queue) ...
# ... on events of this many elements and more, every 4th call, from 8 slots: each slot holds a
# copy of the state, and a network that large costs far more per call than the extra read.
_LARGE_EVENT = 1024
_REBASE_EVERY_LARGE = 4
_GATHER_BY_INDEX = 4096  # elements of a step's increment from which points are gathered by row


class _Attempt(NamedTuple):
    """What :meth:`BrownianBridge.increment` drew, held until the next :meth:`BrownianBridge.commit`."""

    active: torch.Tensor  # (batch,) bool: h != 0
    at_point: torch.Tensor  # (batch,) bool: the step ends at a point the queue holds ...
    end_slot: torch.Tensor  # (batch,) ... in this slot
    end: torch.Tensor  # (batch,) time of the step's end
    V_end: torch.Tensor  # W at the end
    I_end: torch.Tensor | None  # ∫W up to the end (levy_area only)


class BrownianBridge(BrownianSource):
    """Per-sample Brownian increments that stay one path when adaptive steps are rejected.

    Args:
        shape: shape of one increment, ``(batch, *event)``.
        dtype, device: of the increments handed out. Times are kept in float64.
        generator: ``None``, a seed, a ``torch.Generator`` or one generator per sample (then
            sample ``i`` draws only from ``generator[i]``, so its path does not depend on the rest
            of the batch, given its own sequence of steps and decisions).
        levy_area: also hand out the space-time Lévy area ``H`` of every step.
        capacity: initial number of points (the current one and those pending) a sample can
            hold, each a ``(batch, *event)`` buffer (two with ``levy_area``); grows while a
            run of rejections keeps many points pending and shrinks back once they are passed.
            Default: 32, or 8 for events of 1024 elements and more (packed every 4th call
            instead of every 16th, so that the buffers hold 8 copies of the state, not 32).

    Protocol (see :class:`~sdekit.brownian.BrownianSource`): ``increment(t, h)`` gives the
    increment over the next step, then ``commit(accept)`` says which samples accepted it. The
    source tracks each sample's position itself, as the sum of its accepted ``|h|``: every step
    must start where the sample's last accepted step ended, and ``t`` only sets the tolerance
    (16 ulps of ``|t| + |h|``) within which a step ending at an earlier step's end is matched
    to it. ``h == 0`` marks a finished sample: it gets ``dW = 0``, ``H = 0`` and nothing about
    it changes. An ``increment`` that follows another without a ``commit`` in between counts the
    earlier step as accepted (fixed steps never reject).

    The math is in the module docstring. Each call costs a few comparisons over the slot times
    in use, three row gathers, a handful of ``(batch, *event)`` multiply-adds (about twenty with
    ``levy_area``, and six gathers) and one slot write. The host reads the longest queue once
    every 16 calls (4 on large events) to pack and re-base the points (and packs them between
    times when the slots run out), doubling the capacity while fewer than a quarter of the
    slots would stay free, and going back to the least such capacity once that is a quarter of
    the present one or less.
    :meth:`select` drops samples (``solve(..., compact=True)``).
    """

    selectable = True

    def __init__(
        self,
        shape: tuple[int, ...],
        *,
        dtype: torch.dtype,
        device: torch.device | str,
        generator: GeneratorLike = None,
        levy_area: bool = False,
        capacity: int | None = None,
    ):
        shape = tuple(int(s) for s in shape)
        if len(shape) == 0 or shape[0] < 1:
            raise InputValueError(f"shape must be (batch, *event) with batch >= 1, got {shape}")
        large = math.prod(shape[1:]) >= _LARGE_EVENT
        self._rebase_every = _REBASE_EVERY_LARGE if large else _REBASE_EVERY
        if capacity is None:
            capacity = 2 * self._rebase_every
        if capacity < 2:
            raise InputValueError(f"capacity must be at least 2, got {capacity}")
        self._least_capacity = capacity
        self.shape = shape
        self.dtype = dtype
        self.device = torch.device(device)
        self.generator = as_generator(generator, self.device)
        self.levy_area = levy_area
        batch = shape[0]
        # float64 times except where the device has none
        self._tdtype = torch.float32 if self.device.type == "mps" else torch.float64
        self._rows = torch.arange(batch, device=self.device)
        self._c = torch.zeros(batch, dtype=self._tdtype, device=self.device)  # current time
        self._cur = torch.zeros(batch, dtype=torch.long, device=self.device)  # its slot
        # Slots lead: the search over slot times reduces along the outer dimension, vectorised
        # over samples, and samples at the same slot read their values from one block.
        self._T = torch.full((capacity, batch), _INF, dtype=self._tdtype, device=self.device)
        self._T[0] = 0.0  # inf marks a free slot
        self._V = torch.zeros((capacity, batch, *shape[1:]), dtype=dtype, device=self.device)
        self._I = torch.zeros_like(self._V) if levy_area else None
        # Slots in use lie in [0, window): each commit writes its new point to slot `window`
        # and moves it on by one; _compact packs the points to the front again.
        self._window = 1
        self._calls = 0
        self._attempt: _Attempt | None = None
        self._drawn_from: list[torch.Tensor] | None = None  # generator states, see prepare_attempts

    @property
    def capacity(self) -> int:
        """Points a sample can hold (its current one included) before the buffers grow."""
        return self._T.shape[0]

    # ------------------------------------------------------------------ the protocol

    def increment(self, t: float | torch.Tensor, h: float | torch.Tensor) -> Increment:
        """Increment over ``[t, t + h]`` (per sample when ``t``/``h`` have shape ``(batch,)``)."""
        z1, z2, _ = self.prepare()
        window = self._window
        points = _Points(self._T[:window], self._V, self._I, self._c, self._cur, self._rows)
        times = self._per_sample(t, "t"), self._per_sample(h, "h")
        inc, self._attempt = draw(points, *times, z1, z2, _eps(t, h))
        return inc

    def commit(self, accept: bool | torch.Tensor) -> None:
        """Accepting samples move on to the end of the step; rejecting ones keep all they drew."""
        attempt = self._attempt
        if attempt is None:
            raise RuntimeError(
                "BrownianBridge.commit() called without a step: call increment() first"
            )
        accept = torch.as_tensor(accept, dtype=torch.bool, device=self.device)
        batch = self.shape[0]
        if accept.dim() == 0:
            accept = accept.expand(batch)
        elif accept.shape != (batch,):
            raise InputValueError(
                f"accept must be 0-d or ({batch},), got shape {tuple(accept.shape)}"
            )
        self._attempt = None
        slot = self._window
        # The slots in use and the free one the new point takes: no search beyond them.
        points = self.points()._replace(T=self._T[: slot + 1])
        store(points, attempt.V_end, attempt.I_end, slot)
        self.settle(*commit(points, attempt, accept, slot))

    # ------------------------------------------------------------------ for a compiled solve

    def prepare(self) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        """The bookkeeping before a draw (an earlier step left without a commit is accepted; the
        points are packed on schedule), then the draw's standard normals and the slot its new
        point will take. With :meth:`points`, :func:`draw`, :func:`commit` and :meth:`settle`
        this is :meth:`increment` and :meth:`commit` taken apart, for a solve that runs the
        tensor work of a whole attempt as one compiled call."""
        self._settle_and_pack()
        self._calls += 1
        return *self._normals(), self._window

    def prepare_attempts(self, most: int) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        """:meth:`prepare` for up to ``most`` attempts in one compiled loop (:func:`advance`
        takes the place of :func:`commit` and :func:`store` there): the normals of as many
        attempts as fit before the next packing, stacked ``(k, batch, *event)``, and the slot of
        the first one's new point. :meth:`settle_attempts` ends the loop."""
        self._settle_and_pack()
        every = self._rebase_every
        k = min(most, every - self._calls % every, self.capacity - self._window)
        self._drawn_from = [g.get_state() for g in self._generators()]
        z1, z2 = zip(*(self._normals() for _ in range(k)), strict=True)
        return torch.stack(z1), torch.stack(z2) if self.levy_area else None, self._window

    def settle_attempts(self, points: _Points, taken: int, drawn: int) -> None:
        """Take the ``points`` after ``taken`` attempts of a loop that :meth:`prepare_attempts`
        gave ``drawn`` attempts' normals. The normals of attempts not taken go back: the
        generators continue as after ``taken`` calls of :meth:`prepare`."""
        self._T, self._V, self._I, self._c, self._cur = points[:5]
        self._window += taken
        self._calls += taken
        if taken < drawn:
            for g, state in zip(self._generators(), self._drawn_from, strict=True):
                g.set_state(state)
            for _ in range(taken):
                self._normals()
        self._drawn_from = None

    @property
    def nbytes(self) -> int:
        """Bytes of the buffers that hold the points."""
        buffers = (self._T, self._V) if self._I is None else (self._T, self._V, self._I)
        return sum(x.numel() * x.element_size() for x in buffers)

    def points(self) -> _Points:
        """Every slot's buffers (free ones hold ``τ = inf``, passed ones a time before the
        current one) and each sample's current point."""
        return _Points(self._T, self._V, self._I, self._c, self._cur, self._rows)

    def settle(self, current_time: torch.Tensor, current_slot: torch.Tensor) -> None:
        """Take the current points a :func:`commit` returned (after :func:`store` wrote the new
        point's values); its slot is now in use."""
        self._c, self._cur = current_time, current_slot
        self._window += 1

    # ------------------------------------------------------------------ helpers

    def _settle_and_pack(self) -> None:
        """Before a draw: an earlier step left without a commit is accepted, and the points are
        packed on schedule (or when the slots ran out)."""
        if self._attempt is not None:
            self.commit(torch.ones((), dtype=torch.bool, device=self.device))
        rebase = self._calls > 0 and self._calls % self._rebase_every == 0
        if rebase or self._window >= self.capacity:
            self._compact(rebase)

    def _normals(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One call's standard normals: ``z1``, and ``z2`` with the area."""
        z1 = randn(self.shape, self.generator, self.dtype, self.device)
        z2 = randn(self.shape, self.generator, self.dtype, self.device) if self.levy_area else None
        return z1, z2

    def _generators(self) -> list[torch.Generator]:
        """The generators the normals come from (the device's default one for ``None``)."""
        if isinstance(self.generator, list):
            return self.generator
        if self.generator is not None:
            return [self.generator]
        if self.device.type == "cuda":
            index = self.device.index
            index = torch.cuda.current_device() if index is None else index
            return [torch.cuda.default_generators[index]]
        return [torch.default_generator]

    def _compact(self, rebase: bool) -> None:
        """Move each sample's points to the front slots, re-based on its current point.

        A host synchronisation: reads the longest queue. Re-basing (``V ← V - V_c``,
        ``I ← I - I_c - (τ - τ_c) V_c``, ``τ ← τ - τ_c``) keeps the running values of the order
        of the pending pieces, so their differences stay accurate over long solves; without it
        the values move unchanged. The capacity becomes the least one doubled while fewer than a
        quarter of the slots would stay free: at once when that is more than the present one,
        when it is a quarter of it or less otherwise.
        """
        batch, event = self.shape[0], self.shape[1:]
        T = self._T[: self._window]
        # Free slots hold inf; points behind the current one were passed (see _moved).
        held = (T < _INF) & (T >= self._c)
        count = held.sum(dim=0)
        longest = int(count.max())
        # Each held point's place in the packed order, and the slots the places read from
        # (free places read slot 0; their times are set to inf below).
        place = held.cumsum(dim=0).sub_(1).masked_fill_(~held, longest)
        order = T.new_zeros((longest + 1, batch), dtype=torch.long)
        slots = torch.arange(self._window, device=self.device)[:, None].expand(-1, batch)
        order = order.scatter_(0, place, slots)[:longest]
        free = torch.arange(longest, device=self.device)[:, None] >= count
        T = torch.gather(T, 0, order).masked_fill_(free, _INF)
        flat = (order * batch + self._rows).flatten()
        V = self._V.view(-1, *event)
        values = [V.index_select(0, flat).view(longest, batch, *event)]
        if self.levy_area:
            I = self._I.view(-1, *event)
            values.append(I.index_select(0, flat).view(longest, batch, *event))
        if rebase:
            cur = self._cur * batch + self._rows
            T -= self._c
            V_c = V.index_select(0, cur)
            values[0] -= V_c
            if self.levy_area:
                values[1] -= I.index_select(0, cur)
                values[1] -= _bcast(T.masked_fill(free, 0.0), V_c) * V_c
        capacity = self._least_capacity
        while longest + max(1, capacity // 4) > capacity:
            capacity *= 2
        # Grown buffers go back once a run of rejections is passed; not at once, so that a
        # solve near the edge does not reallocate at every packing.
        if capacity > self.capacity or 4 * capacity <= self.capacity:
            self._T = torch.full((capacity, batch), _INF, dtype=T.dtype, device=self.device)
            self._V = self._V.new_zeros((capacity, batch, *event))
            self._I = torch.zeros_like(self._V) if self.levy_area else None
        self._T[: self._window] = _INF
        self._T[:longest] = T
        self._V[:longest] = values[0]
        if self.levy_area:
            self._I[:longest] = values[1]
        self._cur = place.gather(0, self._cur[None])[0]
        if rebase:
            self._c = torch.zeros_like(self._c)
        self._window = longest

    def select(self, rows: torch.Tensor) -> None:
        """Keep only the samples ``rows``, renumbered from 0 (between a commit and the next step)."""
        if self._attempt is not None:
            raise RuntimeError("BrownianBridge.select() between increment() and commit()")
        self.shape = (len(rows), *self.shape[1:])
        self._rows = torch.arange(len(rows), device=self.device)
        self._c, self._cur = self._c.index_select(0, rows), self._cur.index_select(0, rows)
        self._T, self._V = self._T.index_select(1, rows), self._V.index_select(1, rows)
        if self.levy_area:
            self._I = self._I.index_select(1, rows)
        if isinstance(self.generator, list):
            self.generator = [self.generator[i] for i in rows.tolist()]

    def _per_sample(self, x: float | torch.Tensor, name: str) -> torch.Tensor:
        batch = self.shape[0]
        if not isinstance(x, torch.Tensor):
            return torch.full((batch,), float(x), dtype=self._tdtype, device=self.device)
        if x.dim() == 0:
            return x.to(device=self.device, dtype=self._tdtype).expand(batch)
        if x.shape != (batch,):
            raise InputValueError(
                f"{name} must be a float, a 0-d tensor or a ({batch},) tensor, got shape "
                f"{tuple(x.shape)}"
            )
        return x.to(device=self.device, dtype=self._tdtype)


class _Points(NamedTuple):
    """A bridge's points: slot times ``T`` ``(slots, batch)`` (``inf``: free; before ``c``:
    passed), values ``V`` and running integrals ``I`` ``(slots, batch, *event)`` (``I`` with
    ``levy_area`` only), each sample's current time ``c`` and slot ``cur``, and
    ``rows = arange(batch)``."""

    T: torch.Tensor
    V: torch.Tensor
    I: torch.Tensor | None
    c: torch.Tensor
    cur: torch.Tensor
    rows: torch.Tensor


def draw(points: _Points, t, h, z1, z2, eps: float) -> tuple[Increment, _Attempt]:
    """The increment over ``[t, t + h]`` (``(batch,)`` tensors in the points' time dtype) from
    the standard normals ``z1`` (and ``z2`` with the area, else ``None``), and what
    :func:`commit` needs of it. ``eps``: the machine epsilon of the times as the solver computes
    them (a step ending within 16 ulps of a point ends on it; a step longer than one ulp of
    ``t``, within a quarter of itself where that is less, so that a step of a few ulps of a
    large ``t`` does not end on its own start). Reads ``points``, changes nothing."""
    T, V, I, c, cur, rows = points
    h_abs = h.abs()
    active = h_abs > 0
    ulp = eps * (t.abs() + h_abs)
    tol = torch.where(h_abs > ulp, torch.minimum(16 * ulp, h_abs / 4), 16 * ulp) * active
    tau = c + h_abs
    # The last known point at or before the step's end (the current point at least: a
    # finished sample, with tol = 0, sees no other) and the first one after it, if any.
    before = T <= tau + tol
    left_T, left_i = torch.where(before, T, -_INF).max(dim=0)
    right_T, right_i = torch.where(before, _INF, T).min(dim=0)
    # Beyond every point the right one has weight 0: read the left one's row again (from
    # cache) rather than some other slot's.
    right_i = torch.where(right_T < _INF, right_i, left_i)
    at_point = left_T >= tau - tol

    end = torch.where(at_point, left_T, tau)
    # The current point, l and r in one gather.
    slots = torch.stack([cur, left_i, right_i])
    V_c, V_l, V_r = _gather(V, rows, slots)
    a = (tau - left_T).masked_fill_(at_point, 0.0)  # l ≤ τ unless at a point
    if I is None:
        # The plain bridge W(l + a) ~ N(W(l) + x (W(r) - W(l)), a (1 - x)), x = a/L, with
        # L = inf (x = 0) beyond every point: five operations on (batch,).
        x = a / (right_T - left_T)
        x_std = _bcast(torch.stack([x, (a * (1 - x)).sqrt_()]), z1)
        V_end = torch.lerp(V_l, V_r, x_std[0]).addcmul_(x_std[1], z1)
        return Increment(V_end - V_c), _Attempt(active, at_point, left_i, end, V_end, None)

    # With the area, draw the shorter side of [l, r] (x ≤ 1/2 of the interval), a fresh piece
    # of length s beyond every point, or nothing (s = 0) at a known point. Coefficients on
    # (batch,), in float64; the values are then a few multiply-adds.
    split = torch.isfinite(right_T) & ~at_point
    L = torch.where(split, right_T - left_T, 1.0)
    from_right = split & (2 * a > L)
    fr = from_right.to(L.dtype)
    s = torch.where(from_right, L - a, a)
    x = (s / L).masked_fill_(~split, 0.0)
    xy = x * (1 - x)
    sign = 1 - 2 * fr
    c_left = 1 - x + fr * (2 * x - 1)  # weight of W(l) in the mean: x from the right
    c_right = (1 - c_left) * split
    q = 1 - 3 * xy
    e = sign * s / 2
    length = end - c
    coef = torch.stack(
        [
            c_left,
            c_right,
            6 * xy / L,  # the parent's area in the mean
            sign * torch.where(split, L * xy * q, s).sqrt(),
            -(L**1.5) * x**3.5 * (1 - x).sqrt() / (2 * q.sqrt()),  # z1 in the area
            torch.where(split, L**3 * xy**3 / (12 * q), s**3 / 12).sqrt(),  # z2 in the area
            fr + sign * x**3,
            fr * L / 2 + (1 - fr) * e,
            fr * (L / 2 + e),
            e,
            -L / 2,
            -length / 2,
            torch.where(length > 0, 1 / length, 0.0),
        ]
    )
    c_l, c_r, w_K, w_z1, k_z1, k_z2, g_K, g_l, g_r, g_end, m_L, m_len, inv_len = _bcast(coef, z1)
    I_c, I_l, I_r = _gather(I, rows, slots)
    K = I_r - I_l  # the interval's area; times sign, that of the drawn piece's parent
    K.addcmul_(m_L, V_l + V_r)
    V_end = c_l * V_l
    V_end.addcmul_(c_r, V_r).addcmul_(w_K, K).addcmul_(w_z1, z1)
    # I_end = I(base) ± (s/2)(W(base) + V_end) + area of the drawn piece, where the base is
    # l, or r when drawing from the right, and I(r) = I(l) + K + (L/2)(W(l) + W(r)).
    I_end = torch.addcmul(I_l, g_K, K)
    I_end.addcmul_(g_l, V_l).addcmul_(g_r, V_r).addcmul_(g_end, V_end)
    I_end.addcmul_(k_z1, z1).addcmul_(k_z2, z2)
    K_step = I_end - I_c
    K_step.addcmul_(m_len, V_c + V_end)
    inc = Increment(V_end - V_c, K_step.mul_(inv_len))
    return inc, _Attempt(active, at_point, left_i, end, V_end, I_end)


def commit(points: _Points, attempt: _Attempt, accept: torch.Tensor, slot: int | torch.Tensor):
    """Settle a drawn step's times: accepting samples ``(batch,)`` move on to its end,
    forgetting the points before it (the old current one included); the end, if new, takes
    ``slot`` (a free one: an int, or a 0-d tensor in a compiled call), whose values
    :func:`store` writes. ``points.T`` changes in place; returns the new current times and
    slots."""
    T, end = points.T, attempt.end
    new, c, cur = _moved(points, attempt, accept, slot)
    if isinstance(slot, int):
        T[slot] = torch.where(new, end, _INF)
    else:  # a tensor index: one graph for every slot
        T.index_copy_(0, slot.view(1), torch.where(new, end, _INF)[None])
    return c, cur


def advance(points: _Points, attempt: _Attempt, accept: torch.Tensor, slot: torch.Tensor):
    """:func:`commit` and :func:`store` without writing to ``points``: the points after the
    step, the new one in ``slot`` (a 0-d tensor). For a compiled loop, whose body may not write
    to its inputs: every call copies the buffers, so only for small states."""
    T, end, index = points.T, attempt.end, slot.view(1)
    new, c, cur = _moved(points, attempt, accept, slot)
    T = T.index_copy(0, index, torch.where(new, end, _INF)[None])
    V = points.V.index_copy(0, index, attempt.V_end[None])
    I = None if points.I is None else points.I.index_copy(0, index, attempt.I_end[None])
    return points._replace(T=T, V=V, I=I, c=c, cur=cur)


def _moved(points: _Points, attempt: _Attempt, accept: torch.Tensor, slot: int | torch.Tensor):
    """Of a drawn step: the samples whose end is a new point, and the current times and slots
    after it. The points an accepting sample passes stay where they are, behind its new current
    time, where no search looks (:func:`draw` finds the last point at or before a step's end,
    the current one at least), until the next packing drops them: forgetting them here would
    be a pass over every slot per step."""
    moved = accept & attempt.active
    new = attempt.active & ~attempt.at_point
    c = torch.where(moved, attempt.end, points.c)
    cur = torch.where(moved & new, slot, torch.where(moved, attempt.end_slot, points.cur))
    return new, c, cur


def store(
    points: _Points, V_end: torch.Tensor, I_end: torch.Tensor | None, slot: int | torch.Tensor
) -> None:
    """Write a drawn step's end values to ``slot`` (see :func:`commit`; a 0-d tensor in a
    compiled call, which writes the row in place): one row copy each."""
    for values, end in ((points.V, V_end), (points.I, I_end)):
        if end is None:
            continue
        if isinstance(slot, int):
            values[slot].copy_(end)
        else:
            values.index_copy_(0, slot.view(1), end[None])


def _gather(values: torch.Tensor, rows: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """``values[slots[k, row], row]`` for every row: ``(len(slots), batch, *event)``."""
    if math.prod(values.shape[1:]) < _GATHER_BY_INDEX:
        return values[slots, rows]
    # On large states index_select copies rows about 3x faster than advanced indexing (CPU).
    flat = (slots * values.shape[1] + rows).flatten()
    event = values.shape[2:]
    return values.view(-1, *event).index_select(0, flat).view(*slots.shape, *event)


def _bcast(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-sample numbers ``(..., batch)`` → ``like``'s dtype, broadcastable over its event dims."""
    return x.to(like.dtype).view(x.shape + (1,) * (like.dim() - 1))


def _eps(t: float | torch.Tensor, h: float | torch.Tensor) -> float:
    """Machine epsilon of the coarsest floating dtype among ``t`` and ``h`` (float64 for floats)."""
    dtypes = [x.dtype for x in (t, h) if isinstance(x, torch.Tensor) and x.is_floating_point()]
    return max((torch.finfo(d).eps for d in dtypes), default=torch.finfo(torch.float64).eps)
