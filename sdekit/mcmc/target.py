"""The distribution an MCMC kernel samples: its score and, optionally, its log density."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from sdekit.errors import InputTypeError, InputValueError

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
LogProbFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Target:
    """A target density π on states ``x`` of shape ``(batch, *event)``, one chain per row.

    Attributes:
        score: ``score(x) -> ∇_x log π(x)``, a tensor of the same shape as ``x``.
        log_prob: ``log_prob(x) -> log π(x)`` up to an additive constant, a tensor of shape
            ``(batch,)``; ``None`` when only the score is known. Kernels with a Metropolis
            correction (MALA) need it; Langevin kernels use the score only.

    Kernels never differentiate through a target, so ``score`` may be a network, a closed form,
    or ``torch.func.grad`` of a log density: whatever the caller finds cheapest.
    """

    score: ScoreFn
    log_prob: LogProbFn | None = None

    def __post_init__(self) -> None:
        if not callable(self.score):
            raise InputTypeError(
                f"Target.score must be a callable score(x) -> tensor shaped like x, "
                f"got {type(self.score).__name__}"
            )
        if self.log_prob is not None and not callable(self.log_prob):
            raise InputTypeError(
                f"Target.log_prob must be None or a callable log_prob(x) -> tensor of shape "
                f"(batch,), got {type(self.log_prob).__name__}"
            )

    def eval_score(self, x: torch.Tensor) -> torch.Tensor:
        """``score(x)``, checked to have the shape of ``x``."""
        s = self.score(x)
        if not isinstance(s, torch.Tensor) or s.shape != x.shape:
            got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
            raise InputValueError(
                f"the target's score must return a tensor shaped like x {tuple(x.shape)}, got {got}"
            )
        # a wider dtype or another device would carry the chains with it; a narrower one (a
        # network under autocast) is taken in x's
        if torch.promote_types(s.dtype, x.dtype) != x.dtype or s.device != x.device:
            raise InputValueError(
                f"the target's score returned {s.dtype} on {s.device} for x of {x.dtype} on "
                f"{x.device}: return x's (score(x).to(x)), or run the chains in its dtype"
            )
        return s.to(x.dtype)

    def eval_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log_prob(x)``, checked to have shape ``(batch,)``."""
        if self.log_prob is None:
            raise InputValueError(
                "this target has no log density: pass Target(score=..., log_prob=...)"
            )
        lp = self.log_prob(x)
        if not isinstance(lp, torch.Tensor) or lp.shape != x.shape[:1]:
            got = tuple(lp.shape) if isinstance(lp, torch.Tensor) else type(lp).__name__
            raise InputValueError(
                f"the target's log_prob must return one value per sample, shape "
                f"{tuple(x.shape[:1])}, got {got}"
            )
        return lp
