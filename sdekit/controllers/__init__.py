"""Step-size controllers: where the steps of a solve go.

- :class:`ConstantStepSize` (what ``solve(dt=...)`` uses) and :class:`StepTo` (a given time grid):
  steps known in advance, every step accepted.
- :class:`IController`, :class:`PIController`, :class:`PIDController`: adaptive control from the
  solver's embedded error estimate, shared or per sample.
- :class:`ClipStepSize`: wraps an adaptive controller with step bounds and landing times.

The protocol is in :mod:`sdekit.controllers.base`.
"""

from .base import AbstractStepSizeController
from .clip import ClipStepSize
from .constant import ConstantStepSize, StepTo
from .pid import IController, PIController, PIDController

__all__ = [
    "AbstractStepSizeController",
    "ClipStepSize",
    "ConstantStepSize",
    "IController",
    "PIController",
    "PIDController",
    "StepTo",
]
