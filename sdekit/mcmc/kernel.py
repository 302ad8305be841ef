"""The kernel interface: what every MCMC kernel takes, and what it gives back.

A kernel is a small immutable object holding its settings (friction, target acceptance, ...).
Calling it advances every chain of a batch by one step::

    x, info, state = kernel(x, target, step_size, generator, state)

- ``x``: the chains, shape ``(batch, *event)``; any floating dtype and device, which the result
  follows.
- ``target``: a :class:`~sdekit.mcmc.target.Target`.
- ``step_size``: a positive float, or a tensor of shape ``(batch,)`` (one step size per chain; it
  broadcasts over the event dims). Tensor step sizes on the CPU are checked (finite, positive);
  on another device they are not, as that would cost a device synchronisation every step.
- ``generator``: ``None``, a ``torch.Generator``, or a list with one generator per chain (then
  chain ``i`` draws only from ``generator[i]``, so its path does not depend on the rest of the
  batch). Not an ``int`` seed: a call draws its noise once, so a seed would make a fresh generator
  at every call and a loop would repeat the same noise at every step. Create the generator once,
  outside the loop (``torch.Generator().manual_seed(0)``); kernels raise
  :class:`~sdekit.errors.InputTypeError` for an ``int``. Schedules, which loop themselves, do take
  a seed.
- ``state``: what the kernel carried over from its previous call (``None`` at the start). Kernels
  that need no memory return ``None``.

Kernels that evaluate the score at the point they return (MALA, underdamped Langevin) keep that
evaluation in their state and reuse it on the next call when it is made with the same target
object and the very tensor they returned; any other call re-evaluates. Do not modify a returned
state tensor in place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import torch

from sdekit.checks import positive_float
from sdekit.errors import InputTypeError, InputValueError
from sdekit.mcmc.target import Target
from sdekit.random import as_generator

StepSize = float | torch.Tensor
StepGenerator = None | torch.Generator | Sequence[torch.Generator]


@dataclass(frozen=True)
class KernelInfo:
    """Per-chain diagnostics of one kernel step; every field has shape ``(batch,)``.

    Attributes:
        evaluations: score evaluations this step spent on each chain (int64).
        step_size: the step size each chain actually used (after adaptation or, for the Langevin
            corrector, the signal-to-noise rule).
        acceptance: Metropolis acceptance probability ``min(1, r)``; ``None`` for kernels without
            a Metropolis correction.
        accepted: whether each chain moved to its proposal; ``None`` likewise.
    """

    evaluations: torch.Tensor
    step_size: torch.Tensor
    acceptance: torch.Tensor | None = None
    accepted: torch.Tensor | None = None


class KernelStep(NamedTuple):
    """What a kernel returns: the new chains, this step's diagnostics, and the carried state."""

    x: torch.Tensor
    info: KernelInfo
    state: Any


class Kernel(Protocol):
    """One MCMC step for a batch of chains (see the module docstring for the arguments).

    ``generator`` is ``None``, a ``torch.Generator`` or one per chain, never an ``int`` seed.
    """

    def __call__(
        self,
        x: torch.Tensor,
        target: Target,
        step_size: StepSize,
        generator: StepGenerator = None,
        state: Any = None,
    ) -> KernelStep: ...


def check_chains(x: torch.Tensor, target: Target) -> None:
    """Reject a state that is not a floating tensor with a batch dimension, or a non-Target."""
    if not isinstance(x, torch.Tensor):
        raise InputTypeError(
            f"x must be a torch.Tensor of shape (batch, *event), got {type(x).__name__}"
        )
    if not x.is_floating_point():
        raise InputTypeError(
            f"x must have a floating dtype, got {x.dtype}: convert it with x.double()"
        )
    if x.dim() < 1:
        raise InputValueError("x must have a leading batch dimension: shape (batch, *event)")
    if not isinstance(target, Target):
        raise InputTypeError(
            f"target must be an sdekit.mcmc.Target(score=..., log_prob=...), "
            f"got {type(target).__name__}"
        )


def per_chain(step_size: StepSize, x: torch.Tensor, name: str = "step_size") -> torch.Tensor:
    """``step_size`` as a tensor of shape ``(batch,)`` in ``x``'s dtype and on its device."""
    batch = x.shape[0]
    if isinstance(step_size, torch.Tensor):
        if step_size.dim() == 0:
            step_size = step_size.expand(batch)
        if step_size.shape != (batch,):
            raise InputValueError(
                f"{name} must be a float or a tensor of shape (batch,) = ({batch},), "
                f"got shape {tuple(step_size.shape)}"
            )
        # Checked where the values are on the host already; on a device the check would wait
        # for it at every step.
        if step_size.device.type == "cpu" and not bool(
            (torch.isfinite(step_size) & (step_size > 0)).all()
        ):
            raise InputValueError(
                f"{name} must hold finite positive step sizes, got {step_size.tolist()}"
            )
        return step_size.to(dtype=x.dtype, device=x.device)
    value = positive_float(step_size, name)
    return torch.full((batch,), value, dtype=x.dtype, device=x.device)


def begin_step(
    x: torch.Tensor,
    target: Target,
    step_size: StepSize,
    generator: StepGenerator,
    name: str = "step_size",
) -> tuple[torch.Tensor, torch.Generator | list[torch.Generator] | None]:
    """The checks at the top of every kernel step: returns ``(h, generator)``.

    Checks the chains and target (:func:`check_chains`), makes ``step_size`` a ``(batch,)`` tensor
    (:func:`per_chain`, which names it ``name`` in errors) and normalises ``generator``, refusing
    an ``int`` seed (see the module docstring).
    """
    check_chains(x, target)
    h = per_chain(step_size, x, name)
    if isinstance(generator, int):
        example = (
            "torch.Generator()"
            if x.device.type == "cpu"
            else f"torch.Generator(device='{x.device}')"
        )
        raise InputTypeError(
            f"a kernel step takes generator=None, a torch.Generator or a list of them, not the int "
            f"{generator!r}: a seed would make a fresh generator at every call, so a loop would "
            f"repeat the same noise. Create a torch.Generator once, outside the loop, e.g. "
            f"g = {example}.manual_seed(0), and pass g at every step (or use run_schedule, "
            f"which takes a seed)"
        )
    return h, as_generator(generator, x.device)


def sum_event(v: torch.Tensor) -> torch.Tensor:
    """Sum over every dim but the batch dim: ``(batch, *event) -> (batch,)``."""
    return rows(v).sum(dim=1)


def rows(v: torch.Tensor) -> torch.Tensor:
    """``(batch, *event) -> (batch, prod(event))``, also for an empty batch or event."""
    return v.reshape(v.shape[0], math.prod(v.shape[1:]))


def count(x: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` evaluations for every chain, as an int64 tensor of shape ``(batch,)``."""
    return torch.full((x.shape[0],), n, dtype=torch.int64, device=x.device)


@dataclass(frozen=True)
class ScoreCache:
    """The score (and log density) at a point, tied to the target and tensor they belong to."""

    x: torch.Tensor
    target: Target
    score: torch.Tensor
    log_prob: torch.Tensor | None = None
    version: int = -1  # x's version counter when filled: an in-place change of x invalidates

    def __post_init__(self):
        object.__setattr__(self, "version", _version(self.x))

    def holds(self, x: torch.Tensor, target: Target) -> bool:
        """Whether this cache was filled for exactly this tensor, unchanged since (in place
        too), and this target object. Tensors made under ``torch.inference_mode()`` have no
        version counter to tell an in-place change: they are never held (one more evaluation
        per step there; ``torch.no_grad()`` keeps the cache)."""
        if x.is_inference():
            return False
        return self.x is x and x._version == self.version and self.target is target


def _version(x: torch.Tensor) -> int:
    """``x``'s version counter (-1 for a tensor made under ``torch.inference_mode()``)."""
    return -1 if x.is_inference() else x._version
