"""The step-size controller protocol.

A controller never steps; it decides where steps go. The solve loop asks it twice:

- ``init(solver, y0, t0, t1, dt0) -> (h, state)``: the first ``|h|`` and the controller's memory.
  ``dt0`` is ``solve(dt=...)``, the one place an initial or fixed step is given (``None`` when
  not given).
- ``adapt(y, y_next, y_error, h, state) -> (accept, h_next, state)``: after an attempted step of
  size ``h`` from ``y`` to ``y_next`` with the solver's embedded estimate ``y_error``, whether to
  accept it and the next ``|h|``. All on tensors: ``accept`` and ``h_next`` are 0-d (one decision
  for the batch) or ``(batch,)`` (``per_sample``); no host synchronisation.

A controller that decides for the whole batch (``per_sample=False``) may also decide on the host,
declared by ``host_decisions = True``:

- ``init_host(solver, y0, t0, t1, dt0) -> (h, state)`` with ``h`` a Python float;
- ``adapt_host(y, y_next, y_error, h, state, err=None) -> (accept, h_next, state)`` with ``h``,
  ``h_next`` Python floats and ``accept`` a bool. A controller with a per-sample
  ``error(y, y_next, y_error, state)`` norm (reading only ``state.reference`` of its state) is
  given ``err``, the largest of those errors, when ``solve(..., compile=True)`` computed it in
  the same compiled call as the step.

The loop then keeps times, steps and decisions in Python floats and reads one number per attempted
step (the batch's error): beyond the solver's step, an attempt costs the error norm and little
else.

and reads five more declarations:

- ``adaptive``: ``False`` for controllers whose steps are known in advance (every step is accepted
  and ``adapt`` is never called); the loop then runs its fixed-step path on a precomputed grid
  from :meth:`AbstractStepSizeController.grid`.
- ``per_sample``: one step size and decision per sample instead of one for the batch.
- ``dt_min``: a rejected step whose next ``|h|`` falls below it ends that sample's solve.
- ``stops``: times every step must land on exactly (jump times of the problem; save times are
  added by the loop), in addition to ``t1``; a solver that carries state across steps starts
  afresh there.
- ``step_ts``: more times every step lands on, where the solver carries on as between any two
  steps (no step straddles one: a grid that bounds the steps).

Wrappers compose: :class:`~sdekit.ClipStepSize` bounds the step of any adaptive controller and adds
landing times.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sdekit.errors import InputTypeError, InputValueError


class AbstractStepSizeController:
    """Base class of step-size controllers (see the module docstring for the protocol)."""

    adaptive: bool = True
    per_sample: bool = False
    host_decisions: bool = False
    dt_min: float = 0.0
    stops: tuple[float, ...] = ()
    step_ts: tuple[float, ...] = ()

    def init(self, solver, y0: torch.Tensor, t0: float, t1: float, dt0: float | None):
        raise NotImplementedError

    def adapt(self, y, y_next, y_error, h_abs: torch.Tensor, state):
        raise NotImplementedError

    def grid(self, t0: float, t1: float, dt0: float | None, stops: list[float]) -> list[float]:
        """Times of a non-adaptive controller's steps from ``t0`` to ``t1``, through ``stops``."""
        raise NotImplementedError


def merge_grid(grid: list[float], stops: list[float], t1: float, tiny: float) -> list[float]:
    """``grid`` (starting at ``t0``, ending at ``t1``) merged with ``stops``.

    A grid time within ``tiny`` of a stop, of ``t0`` or of ``t1`` is dropped in its favour, so
    that rounding never creates a near-empty step; every stop is landed on exactly, even two
    stops that close together (then with a step that short).
    """
    direction = 1.0 if t1 >= grid[0] else -1.0
    exact = set(stops) | {grid[0], t1}
    times = np.union1d(np.asarray(grid, dtype=np.float64), sorted(exact))  # sorted, unique
    if direction < 0:
        times = times[::-1]
    if not (np.abs(np.diff(times)) <= tiny).any():
        return times.tolist()
    times = times.tolist()
    out = [times[0]]
    for s in times[1:]:
        if abs(s - out[-1]) > tiny or (s in exact and out[-1] in exact):
            out.append(s)
        elif s in exact:
            out[-1] = s
    return out


def snap(time: float, target: float, dtype: torch.dtype | None) -> float:
    """``target`` where ``time`` is ``target`` rounded to ``dtype`` (the dtype of the tensor
    ``time`` came from: ``torch.linspace(0.2, 1.2, n)[-1]`` is 1.2 in float32), else ``time``."""
    if dtype is not None and time == torch.tensor(target, dtype=dtype).item():
        return target
    return time


def check_times(times, name: str) -> tuple[float, ...]:
    """A sequence (or 1-D tensor) of finite floats."""
    if isinstance(times, torch.Tensor):
        if times.requires_grad:
            raise InputValueError(
                f"{name} requires grad, but solve does not differentiate with respect to times: "
                f"pass them detached (.detach())"
            )
        if times.dim() != 1:
            raise InputValueError(f"{name} must be 1-D, got shape {tuple(times.shape)}")
        times = times.tolist()
    try:
        values = tuple(float(s) for s in times)
    except (TypeError, ValueError):
        raise InputTypeError(
            f"{name} must be a sequence of numbers (times), got {times!r:.80}"
        ) from None
    if not all(math.isfinite(s) for s in values):
        raise InputValueError(f"{name} must be finite, got {list(values)}")
    return values
