"""One Brownian path under rejected steps for a batch that shares its time, bookkept on the host.

:class:`~sdekit.brownian.BrownianBridge` keeps each sample's times in ``(capacity, batch)``
tensors, so that samples can step on their own. When the batch shares one time, one step size
and one accept decision (a shared-time adaptive solve), the times are common to all samples and
the bookkeeping can live in Python: :class:`SharedTimeBridge` hands out the same law (the math
is in :mod:`sdekit.brownian.bridge`: the plain bridge, the bridge with Lévy area drawn on the
shorter side, fresh pieces beyond every point, keeping every drawn point as in Rackauckas &
Nie's RSwM3).

Representation
--------------
The current point (the end of the last accepted step) is the origin: ``τ = 0``, ``V = W(τ) = 0``
and, with ``levy_area``, ``I = ∫_0^τ W(s) ds = 0``. The pending points ahead of it (ends of
steps drawn but not accepted) are a Python list of ``(τ, V, I)`` ordered by ``τ``, with ``τ`` a
float (distance in the direction of integration) and ``V``, ``I`` tensors of the increments'
shape, all relative to the origin; so a step's ``dW`` is the value ``V`` at its end (a pending
point also keeps the ``H`` handed out for the step to it, so that a retry gets the same numbers,
until the origin moves). Accepting a step ending at ``τ_e`` moves the origin there and re-bases
the pending points beyond it:

    τ ← τ - τ_e,    V ← V - V_e,    I ← I - I_e - (τ - τ_e) V_e,

which keeps their values of the order of the pieces between them (float32 stays accurate over
long solves) and costs tensor work only when points are pending. Finding a step's neighbours is
a bisection on the list of times; the coefficients are Python floats. A step beyond every
pending point from the origin (the common case) is one draw and one multiply (two of each with
Lévy area). With Python numbers for ``t``, ``h`` and ``accept`` no call reads the device.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import NamedTuple

import torch

from sdekit.errors import InputValueError

from ..random import GeneratorLike, as_generator, randn
from .base import BrownianSource, Increment

_EPS64 = torch.finfo(torch.float64).eps
_SQRT_1_12 = math.sqrt(1 / 12)


class _Point(NamedTuple):
    """A known point of the path, relative to the current one."""

    tau: float  # time
    V: torch.Tensor  # W(τ)
    I: torch.Tensor | None  # ∫_0^τ W(s) ds (levy_area only)
    H: torch.Tensor | None = None  # the area handed out for the step to it, until the origin moves


class _Attempt(NamedTuple):
    """What :meth:`SharedTimeBridge.increment` drew, held until the next commit."""

    index: int  # pending points from this index on lie beyond the step's end
    at_point: bool  # the step ends at a known point (pending point index - 1, or the origin)
    end: float  # time of the step's end
    V: torch.Tensor  # W at the end: the step's dW
    H: torch.Tensor | None  # the step's Lévy area (levy_area only)
    I: torch.Tensor | None  # ∫W up to the end (levy_area only; None for a fresh piece from the
    # origin, whose I is end · (H + V/2))


class SharedTimeBridge(BrownianSource):
    """Brownian increments that stay one path under rejected steps, for a batch sharing its time.

    The law of :class:`~sdekit.brownian.BrownianBridge` in shared time (one ``t``, ``h`` and
    accept decision for the whole batch), with the times kept on the host.

    Args:
        shape: shape of one increment, ``(batch, *event)``.
        dtype, device: of the increments handed out. Times are Python floats.
        generator: ``None``, a seed, a ``torch.Generator`` or one generator per sample (then
            sample ``i`` draws only from ``generator[i]``, so its path does not depend on the rest
            of the batch, given the steps and decisions).
        levy_area: also hand out the space-time Lévy area ``H`` of every step.

    Protocol (see :class:`~sdekit.brownian.BrownianSource`): ``increment(t, h)`` gives the
    increment over the next step (``t``, ``h`` floats or 0-d tensors), then ``commit(accept)``
    (a bool or a 0-d bool tensor) says whether the batch accepted it. The source tracks its
    position itself, as the sum of the accepted ``|h|``: every step starts where the last accepted
    one ended, and ``t`` only sets the tolerance (16 ulps of ``|t| + |h|``, in the coarser
    dtype of ``t`` and ``h`` and at least that of the increments: a solve in float32 computes
    its times in float32) within which a step ending at an earlier step's end is matched to it.
    ``h == 0`` gives ``dW = 0``, ``H = 0`` and changes nothing. An ``increment`` that follows
    another without a ``commit`` in between counts the earlier step as accepted. Only ``|h|``
    enters: a backward solve sees the same path, built in its direction.

    The tensors handed out may be kept as pending points: read them, do not modify them in place.
    Converting a 0-d tensor ``t``, ``h`` or ``accept`` to a Python number reads it from its
    device; with Python numbers no call synchronises.
    """

    selectable = False

    def __init__(
        self,
        shape: tuple[int, ...],
        *,
        dtype: torch.dtype,
        device: torch.device | str,
        generator: GeneratorLike = None,
        levy_area: bool = False,
    ):
        shape = tuple(int(s) for s in shape)
        if len(shape) == 0 or shape[0] < 1:
            raise InputValueError(f"shape must be (batch, *event) with batch >= 1, got {shape}")
        self.shape = shape
        self.dtype = dtype
        self.device = torch.device(device)
        self.generator = as_generator(generator, self.device)
        self.levy_area = levy_area
        self._eps = torch.finfo(dtype).eps
        zero = torch.zeros(shape, dtype=dtype, device=self.device)
        self._origin = _Point(0.0, zero, *(zero, zero) if levy_area else (None, None))
        self._points: list[_Point] = []  # pending, ordered by τ
        self._times: list[float] = []  # their τ, for bisection
        self._attempt: _Attempt | None = None

    # ------------------------------------------------------------------ the protocol

    def increment(self, t: float | torch.Tensor, h: float | torch.Tensor) -> Increment:
        """Increment over ``[t, t + h]`` for the whole batch."""
        if self._attempt is not None:
            self.commit(True)
        t, eps_t = _scalar(t, "t")
        h, eps_h = _scalar(h, "h")
        tau = abs(h)
        # within 16 ulps of a point ends on it; a step longer than one ulp, within a quarter of
        # itself where that is less (a step of a few ulps of a large t must not end at its start)
        ulp = max(eps_t, eps_h, self._eps) * (abs(t) + tau)
        tol = min(16 * ulp, tau / 4) if tau > ulp else 16 * ulp
        # The last known point at or before the step's end (the origin at least) and the first
        # one after it, if any.
        i = bisect_right(self._times, tau + tol)
        left = self._points[i - 1] if i else self._origin
        if left.tau >= tau - tol:  # at a known point (the origin when h == 0)
            if not self.levy_area:
                return self._hand_out(_Attempt(i, True, left.tau, left.V, None, None))
            H = self._area(left.tau, left.V, left.I) if left.H is None else left.H
            return self._hand_out(_Attempt(i, True, left.tau, left.V, H, left.I))
        a = tau - left.tau
        z1 = randn(self.shape, self.generator, self.dtype, self.device)
        if i == len(self._points):  # beyond every point: a fresh piece ΔW ~ N(0, a)
            if i == 0:
                V = z1.mul_(math.sqrt(a))
                if not self.levy_area:
                    return self._hand_out(_Attempt(i, False, tau, V, None, None))
                # K ~ N(0, a³/12), H = K/a
                z2 = randn(self.shape, self.generator, self.dtype, self.device)
                H = z2.mul_(math.sqrt(a) * _SQRT_1_12)
                return self._hand_out(_Attempt(i, False, tau, V, H, None))
            V = torch.add(left.V, z1, alpha=math.sqrt(a))
            if not self.levy_area:
                return self._hand_out(_Attempt(i, False, tau, V, None, None))
            # ∫ over the piece: a W(l) + (a/2) ΔW + K, with K ~ N(0, a³/12)
            z2 = randn(self.shape, self.generator, self.dtype, self.device)
            I = torch.add(left.I, left.V + V, alpha=a / 2).add_(z2, alpha=math.sqrt(a**3 / 12))
            return self._hand_out(_Attempt(i, False, tau, V, self._area(tau, V, I), I))
        right = self._points[i]
        L = right.tau - left.tau
        if not self.levy_area:  # the plain bridge: W(l + a) ~ N(W(l) + x (W(r) - W(l)), a (1 - x))
            x = a / L
            V = torch.lerp(left.V, right.V, x).add_(z1, alpha=math.sqrt(a * (1 - x)))
            return self._hand_out(_Attempt(i, False, tau, V, None, None))
        # With the area, draw the shorter side of [l, r] from its base (l, or r through time
        # reversal, which flips the sign of the area), conditioned on the interval's increment
        # W(r) - W(l) and area K.
        K = torch.add(right.I - left.I, left.V + right.V, alpha=-L / 2)
        from_right = 2 * a > L
        base, sign, s = (right, -1.0, L - a) if from_right else (left, 1.0, a)
        x = s / L
        xy = x * (1 - x)
        q = 1 - 3 * xy
        # the drawn piece (in its own direction): W1 = x W + 6 x(1 - x) sign K / L + √Var z1,
        # K1 = x³ sign K + Cov/√Var z1 + σ z2
        drawn = torch.sub(right.V, left.V).mul_(x).add_(K, alpha=sign * 6 * xy / L)
        drawn.add_(z1, alpha=math.sqrt(L * xy * q))
        V = torch.add(base.V, drawn, alpha=sign)
        z2 = randn(self.shape, self.generator, self.dtype, self.device)
        I = torch.add(base.I, base.V + V, alpha=sign * s / 2).add_(K, alpha=sign * x**3)
        I.add_(z1, alpha=-(L**1.5) * x**3.5 * math.sqrt(1 - x) / (2 * math.sqrt(q)))
        I.add_(z2, alpha=math.sqrt(L**3 * xy**3 / (12 * q)))
        return self._hand_out(_Attempt(i, False, tau, V, self._area(tau, V, I), I))

    def commit(self, accept: bool | torch.Tensor) -> None:
        """Accepting moves the current point to the end of the step and forgets the pending points
        before it; rejecting keeps every pending point and adds the step's end to them."""
        attempt = self._attempt
        if attempt is None:
            raise RuntimeError(
                "SharedTimeBridge.commit() called without a step: call increment() first"
            )
        if isinstance(accept, torch.Tensor) and accept.dim() != 0:
            raise InputValueError(
                f"accept must be a bool or a 0-d tensor, got shape {tuple(accept.shape)}: "
                "SharedTimeBridge takes one decision for the batch; use BrownianBridge for "
                "per-sample decisions"
            )
        self._attempt = None
        i = attempt.index
        if not bool(accept):
            if not attempt.at_point:
                point = _Point(attempt.end, attempt.V, self._integral(attempt), attempt.H)
                self._points.insert(i, point)
                self._times.insert(i, attempt.end)
            return
        if attempt.end == 0.0:  # stayed at the origin
            return
        ahead = self._points[i:]
        if ahead:
            V_e, I_e = attempt.V, self._integral(attempt)
            ahead = [
                _Point(
                    p.tau - attempt.end,
                    p.V - V_e,
                    None if I_e is None else (p.I - I_e).sub_(V_e, alpha=p.tau - attempt.end),
                )
                for p in ahead
            ]
        self._points = ahead
        self._times = [p.tau for p in ahead]

    # ------------------------------------------------------------------ helpers

    def _hand_out(self, attempt: _Attempt) -> Increment:
        self._attempt = attempt
        return Increment(attempt.V, attempt.H)

    def _area(self, tau: float, V: torch.Tensor, I: torch.Tensor) -> torch.Tensor:
        """``H`` of the step from the origin to a point ``(τ, V, I)``: ``(I - τ V/2)/τ``."""
        return torch.add(I, V, alpha=-tau / 2).div_(tau)

    def _integral(self, attempt: _Attempt) -> torch.Tensor | None:
        """``I`` at the step's end (``None`` without Lévy area); a fresh piece from the origin
        has ``I = τ (H + V/2)``."""
        if attempt.I is not None or not self.levy_area:
            return attempt.I
        return torch.add(attempt.H, attempt.V, alpha=0.5).mul_(attempt.end)


def _scalar(x: float | torch.Tensor, name: str) -> tuple[float, float]:
    """``x`` as a float, and the machine epsilon of its dtype (float64 for Python numbers)."""
    eps = _EPS64
    if isinstance(x, torch.Tensor):
        if x.dim() != 0:
            raise InputValueError(
                f"{name} must be a float or a 0-d tensor, got shape {tuple(x.shape)}: "
                "SharedTimeBridge serves one time for the whole batch; use BrownianBridge for "
                "per-sample times"
            )
        if x.is_floating_point():
            eps = torch.finfo(x.dtype).eps
    value = float(x)
    if not math.isfinite(value):
        raise InputValueError(f"{name} must be finite, got {value}")
    return value, eps
