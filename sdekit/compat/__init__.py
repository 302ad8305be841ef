"""A drop-in for torchsde: ``from sdekit.compat import sdeint, sdeint_adjoint``.

``torchsde.sdeint``'s signature, defaults, argument checks, default methods and output layout, on
sdekit's solve loop and schemes (see :mod:`sdekit.compat.sdeint` for the method table and what
differs). Schemes torchsde has and sdekit's library lacks are in :mod:`sdekit.compat.solvers`.
"""

from .sdeint import METHODS, sdeint, sdeint_adjoint

__all__ = ["METHODS", "sdeint", "sdeint_adjoint"]
