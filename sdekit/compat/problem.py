"""A torchsde module as an :class:`sdekit.SDE`: renamed methods, fused methods, the logqp term.

torchsde lets a module define any of ``f``, ``g``, ``f_and_g``, ``g_prod`` (``g(t, y) @ v``) and
``f_and_g_prod``. sdekit's schemes evaluate the drift and the diffusion matrix separately (and
combine diffusion values across stages before the product), so the module's methods are bound
once to a drift ``f(t, y)`` and a diffusion ``g(t, y)`` in sdekit's layout:

* ``f`` and ``g`` when present;
* else ``f_and_g``, evaluated once per ``(t, y)``: the drift and the diffusion asked for at the
  same time and state (every scheme asks for both) share one call;
* else ``f_and_g_prod`` / ``g_prod``: the diffusion matrix is rebuilt from products with
  basis vectors (one call for diagonal and scalar noise, whose product with ones is ``g``
  itself; ``m`` calls for general and additive noise with ``m`` Brownian motions).

Layouts: torchsde's scalar noise has ``g`` of shape ``(batch, d, 1)``, which sdekit's scalar layout
holds as ``(batch, d)``; additive noise is matrix-valued ``(batch, d, m)``, sdekit's general layout.
"""

from __future__ import annotations

from typing import Any

import torch

from sdekit.errors import InputValueError
from sdekit.problems import SDE

RENAMES = {
    "drift": "f",
    "diffusion": "g",
    "prior_drift": "h",
    "drift_and_diffusion": "f_and_g",
    "drift_and_diffusion_prod": "f_and_g_prod",
}
"""torchsde's ``names=`` keys and the methods they rename."""

METHODS = ("f", "g", "h", "g_prod", "f_and_g", "f_and_g_prod")


class Renamed:
    """The module's methods under torchsde's names, after ``names=`` (``{"drift": "foo"}`` ...)."""

    def __init__(self, module: Any, names: dict[str, str] | None):
        attributes = {m: m for m in METHODS}
        for key, method in RENAMES.items():
            if names and key in names:
                attributes[method] = names[key]
        self.noise_type = getattr(module, "noise_type", None)
        self.sde_type = getattr(module, "sde_type", None)
        self.module = module
        for method, attribute in attributes.items():
            if hasattr(module, attribute):
                setattr(self, method, getattr(module, attribute))


class _Shared:
    """``fn(t, y)`` evaluated once per ``(t, y)`` pair: a second call with the same two objects
    returns the first call's result (the pair is held, so their ids cannot be reused)."""

    def __init__(self, fn):
        self.fn = fn
        self.key: tuple | None = None
        self.value = None

    def __call__(self, t, y):
        if self.key is None or self.key[0] is not t or self.key[1] is not y:
            self.value, self.key = self.fn(t, y), (t, y)
        return self.value


def drift_and_diffusion(sde: Renamed, noise_dim: int):
    """``(f, g)`` with ``g`` in sdekit's layout for ``sde.noise_type``; see the module docstring."""
    scalar = sde.noise_type == "scalar"
    if hasattr(sde, "f_and_g") and not (hasattr(sde, "f") and hasattr(sde, "g")):
        both = _Shared(sde.f_and_g)
        f = getattr(sde, "f", lambda t, y: both(t, y)[0])
        g = getattr(sde, "g", lambda t, y: both(t, y)[1])
    elif hasattr(sde, "f") and hasattr(sde, "g"):
        f, g = sde.f, sde.g
    else:
        f, g = _from_products(sde, noise_dim)
        scalar = False  # rebuilt in sdekit's layout already
    if scalar:
        return f, lambda t, y, _g=g: _g(t, y).squeeze(-1)
    return f, g


def _from_products(sde: Renamed, m: int):
    if hasattr(sde, "g_prod"):
        prod = sde.g_prod
    else:
        prod = lambda t, y, v: sde.f_and_g_prod(t, y, v)[1]  # noqa: E731
    if hasattr(sde, "f"):
        f = sde.f
    elif hasattr(sde, "f_and_g"):
        f = lambda t, y: sde.f_and_g(t, y)[0]  # noqa: E731
    else:
        f = lambda t, y: sde.f_and_g_prod(t, y, y.new_zeros(y.shape[0], m))[0]  # noqa: E731

    if sde.noise_type in ("diagonal", "scalar"):
        width = None if sde.noise_type == "diagonal" else 1

        def g(t, y):
            return prod(t, y, torch.ones_like(y) if width is None else y.new_ones(len(y), 1))

        return f, g

    def g_matrix(t, y):
        basis = torch.eye(m, dtype=y.dtype, device=y.device)
        return torch.stack([prod(t, y, e.expand(len(y), m)) for e in basis], dim=-1)

    return f, g_matrix


def as_sde(sde: Renamed, noise_dim: int) -> SDE:
    """The :class:`sdekit.SDE` of a checked torchsde module with ``noise_dim`` Brownian motions."""
    f, g = drift_and_diffusion(sde, noise_dim)
    matrix = sde.noise_type in ("general", "additive")
    return SDE(
        f,
        g,
        noise=sde.noise_type,
        calculus=sde.sde_type,
        noise_dim=noise_dim if matrix else None,
    )


class Logqp:
    r"""torchsde's ``logqp=True``: the state ``[y, L]`` with ``dL = ½‖u‖² dt``, ``g u = f − h``.

    ``h`` is the module's prior drift; ``u = (f − h)/g`` for diagonal noise (with ``|g|`` floored
    at ``1e-7``, keeping its sign, as torchsde's ``stable_division``) and ``u = g⁺ (f − h)`` (the
    pseudo-inverse) otherwise. ``L`` gets no noise. The increments of ``L`` between output times
    estimate the KL divergence of the posterior path measure from the prior's (Li et al. 2020).
    """

    def __init__(self, sde: Renamed):
        if not all(hasattr(sde, m) for m in ("f", "g", "h")):
            raise AttributeError(
                "logqp=True needs the drift f, the diffusion g and the prior drift h of the module"
            )
        self.noise_type, self.sde_type = sde.noise_type, sde.sde_type
        self._f, self._g, self._h = sde.f, sde.g, sde.h

    def f_and_g(self, t, y):
        y = y[:, :-1]
        f, g, h = self._f(t, y), self._g(t, y), self._h(t, y)
        if self.noise_type == "diagonal":
            floor = torch.full_like(g, 1e-7) * g.sign()
            u = (f - h) / torch.where(g.abs().detach() > 1e-7, g, floor)
            g_logqp = y.new_zeros(y.shape[0], 1)
        else:
            u = torch.bmm(g.pinverse(), (f - h).unsqueeze(-1)).squeeze(-1)
            g_logqp = y.new_zeros(g.shape[0], 1, g.shape[-1])
        f_logqp = 0.5 * (u**2).sum(dim=1, keepdim=True)
        return torch.cat([f, f_logqp], dim=1), torch.cat([g, g_logqp], dim=1)


def check_noise(noise_type, sde_type) -> None:
    if noise_type not in ("diagonal", "scalar", "additive", "general"):
        raise InputValueError(
            f"the module's noise_type is {noise_type!r}: expected 'diagonal', 'scalar', "
            f"'additive' or 'general'"
        )
    if sde_type not in ("ito", "stratonovich"):
        raise InputValueError(
            f"the module's sde_type is {sde_type!r}: expected 'ito' or 'stratonovich'"
        )
