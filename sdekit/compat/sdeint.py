"""``torchsde.sdeint`` and ``torchsde.sdeint_adjoint`` on sdekit's solve loop.

Same signatures, defaults, argument checks, default methods and output layout as torchsde 0.2.6;
the step is sdekit's. torchsde's method names map to these schemes:

===================  ===============================================  =====================
torchsde ``method``  sdekit scheme                                    problems
===================  ===============================================  =====================
``euler``            :class:`sdekit.Euler`                            Itô, any noise
``milstein``         :class:`sdekit.Milstein` (``grad_free``: its     Itô/Stratonovich;
                     ``derivative="finite_difference"``)              diagonal, scalar, additive
``srk``              ``"sriw2"`` (Rößler's SRI2W1, torchsde's         Itô; diagonal, scalar
                     ``srid2``); ``"sra1"`` for additive noise        (SRI); additive (SRA)
``heun``             :class:`sdekit.Heun`                             Stratonovich, any noise
``euler_heun``       :class:`sdekit.EulerHeun`                        Stratonovich, any noise
``midpoint``         :class:`~sdekit.compat.solvers.Midpoint`         Stratonovich, any noise
``reversible_heun``  :class:`~sdekit.compat.solvers.ReversibleHeun`   Stratonovich, any noise
``log_ode``          :class:`~sdekit.compat.solvers.Midpoint`         Stratonovich; diagonal,
                     (its Lévy-area term vanishes there); general     scalar, additive
                     noise: not available, use ``midpoint``
===================  ===============================================  =====================

**Fixed steps** follow torchsde's grid exactly: from ``ts[0]`` the step goes to
``min(t + dt, ts[-1])`` (in the dtype of ``ts``), straight through the intermediate output times,
and the output at each ``ts[i]`` is the linear interpolation between the two grid points around it.
With the same ``BrownianInterval`` the results equal torchsde's to rounding, with one documented
exception: derivative-free Stratonovich Milstein (``milstein`` with ``grad_free=True`` on a
Stratonovich SDE) is sdekit's corrected variant (strong order 1.0 where torchsde's has 0.5, see
:class:`sdekit.Milstein`); it agrees with torchsde's wherever the drift vanishes and ``ΔW > 0``.

**Adaptive steps** (``adaptive=True``) use torchsde's step-size rule
(:class:`~sdekit.compat.controller.TorchsdeController`: same tolerances, factors and ``dt_min``
behaviour). The error estimate is the scheme's embedded one where it has one (``srk``: one step
per attempt instead of three) and otherwise torchsde's step doubling
(:class:`~sdekit.compat.solvers.StepDoubling`). Steps land on every output time instead of
interpolating there. Results are close to torchsde's, not equal (step times differ in rounding).

**Brownian motion.** ``bm`` is used as given. Without it, fixed steps draw independent Gaussian
increments from torch's global generator (``torch.manual_seed`` makes a call reproducible) instead
of building a ``BrownianInterval``; adaptive steps keep one path under rejection (sdekit's bridge,
or a ``BrownianInterval`` built as torchsde does when step doubling needs midpoints, but seeded
from torch's global generator). Either way ``torch.manual_seed`` makes a call reproducible.

**Gradients.** :func:`sdeint_adjoint` backpropagates through the solve: exact gradients of the
discretised solution, with memory that grows with the number of steps. It does **not** solve the
adjoint SDE backward and gives none of the adjoint method's memory savings; its ``adjoint_*``
arguments are checked and otherwise unused, and gradients reach every tensor that requires grad,
not only ``adjoint_params``.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from sdekit.brownian import CallableBrownian
from sdekit.controllers import StepTo
from sdekit.errors import InputTypeError, InputValueError
from sdekit.solve import _step_size, solve
from sdekit.solvers import SRK_SOLVERS, AbstractSolver, Euler, EulerHeun, Heun, Milstein

from .controller import TorchsdeController
from .problem import Logqp, Renamed, as_sde, check_noise
from .solvers import Midpoint, ReversibleHeun, StepDoubling

METHODS = (
    "euler",
    "milstein",
    "srk",
    "midpoint",
    "reversible_heun",
    "adjoint_reversible_heun",
    "heun",
    "log_ode",
    "euler_heun",
)
"""torchsde's method names (``torchsde.settings.METHODS``)."""

# What each torchsde method solves: its calculus, its noise types, and the Lévy-area
# approximations it needs on a given BrownianInterval (None: any).
_SUPPORT = {
    "euler": ("ito", ("diagonal", "scalar", "additive", "general"), None),
    "milstein": (None, ("additive", "diagonal", "scalar"), None),
    "srk": ("ito", ("additive", "diagonal", "scalar"), ("space-time", "davie", "foster")),
    "midpoint": ("stratonovich", ("diagonal", "scalar", "additive", "general"), None),
    "reversible_heun": ("stratonovich", ("diagonal", "scalar", "additive", "general"), None),
    "heun": ("stratonovich", ("diagonal", "scalar", "additive", "general"), None),
    "euler_heun": ("stratonovich", ("diagonal", "scalar", "additive", "general"), None),
    "log_ode": ("stratonovich", ("diagonal", "scalar", "additive", "general"), ("davie", "foster")),
}


def sdeint(
    sde,
    y0: torch.Tensor,
    ts,
    bm=None,
    method: str | None = None,
    dt: float = 1e-3,
    adaptive: bool = False,
    rtol: float = 1e-5,
    atol: float = 1e-4,
    dt_min: float = 1e-5,
    options: dict[str, Any] | None = None,
    names: dict[str, str] | None = None,
    logqp: bool = False,
    extra: bool = False,
    extra_solver_state: tuple | None = None,
    **unused_kwargs,
):
    """Solve the SDE of a torchsde module; a drop-in for ``torchsde.sdeint`` (module docstring).

    Args:
        sde: an object with ``noise_type``, ``sde_type`` and drift/diffusion methods (``f`` and
            ``g``, or ``f_and_g``, ``g_prod``, ``f_and_g_prod``); ``g`` of shape ``(batch, d)``
            for diagonal noise, ``(batch, d, m)`` otherwise (``m = 1`` for scalar noise).
        y0: the initial state, ``(batch, d)``.
        ts: output times, strictly increasing (a 1-D tensor, or a list/tuple of numbers); the
            state at ``ts[0]`` is ``y0``.
        bm: a torchsde Brownian object of shape ``(batch, m)``, or ``None``.
        method: a torchsde method name (default: ``srk`` for Itô SDEs with diagonal, scalar or
            additive noise, ``euler`` for Itô general noise, ``midpoint`` for Stratonovich).
        dt: the fixed step, or the first step when ``adaptive``.
        adaptive, rtol, atol, dt_min: adaptive stepping with torchsde's rule.
        options: ``{"grad_free": True}`` for derivative-free Milstein.
        names: renames the module's methods: keys ``drift``, ``diffusion``, ``prior_drift``,
            ``drift_and_diffusion``, ``drift_and_diffusion_prod``.
        logqp: also return the increments of the log-ratio term between output times (needs the
            prior drift ``h``).
        extra: also return the solver's final extra state (``reversible_heun``: ``(f, g, z)``;
            ``()`` for the other methods).
        extra_solver_state: the extra state to start from (``reversible_heun``).

    Returns:
        ``ys`` of shape ``(len(ts), batch, d)``; with ``logqp`` also the ``(len(ts) - 1, batch)``
        log-ratio increments, with ``extra`` also the extra state, in that order.

    Raises:
        ValueError: an invalid module, state, time grid, method, or method for this SDE type and
            noise type (the types torchsde raises).
    """
    if unused_kwargs:
        warnings.warn(f"`sdeint`: Unexpected arguments {unused_kwargs}", stacklevel=2)
    call = _Call(sde, y0, ts, bm, method, adaptive, options, names, logqp)
    _no_grad(ts=ts, dt=dt, rtol=rtol, atol=atol, dt_min=dt_min)
    _step_size(dt)  # torchsde's grid loop never ends for dt <= 0, growing until memory runs out
    ys, state = call.integrate(dt, adaptive, rtol, atol, dt_min, extra_solver_state)
    return _parse_return(call.d, ys, state, extra, logqp)


def sdeint_adjoint(
    sde,
    y0: torch.Tensor,
    ts,
    bm=None,
    method: str | None = None,
    adjoint_method: str | None = None,
    dt: float = 1e-3,
    adaptive: bool = False,
    adjoint_adaptive: bool = False,
    rtol: float = 1e-5,
    adjoint_rtol: float = 1e-5,
    atol: float = 1e-4,
    adjoint_atol: float = 1e-4,
    dt_min: float = 1e-5,
    options: dict[str, Any] | None = None,
    adjoint_options: dict[str, Any] | None = None,
    adjoint_params=None,
    names: dict[str, str] | None = None,
    logqp: bool = False,
    extra: bool = False,
    extra_solver_state: tuple | None = None,
    **unused_kwargs,
):
    """``torchsde.sdeint_adjoint``'s signature and checks; gradients by backpropagation.

    The forward solve is :func:`sdeint`'s. Gradients are those of the discretised solution,
    computed by autograd through every step: exact for the scheme (torchsde's adjoint gives an
    approximation that converges as ``dt`` shrinks), but the memory grows with the number of
    steps, as for :func:`sdeint`. No adjoint SDE is solved; ``adjoint_method``,
    ``adjoint_adaptive``, ``adjoint_rtol``, ``adjoint_atol`` and ``adjoint_options`` are checked
    and otherwise unused, and gradients reach every tensor that requires grad, not only
    ``adjoint_params``.
    """
    if unused_kwargs:
        warnings.warn(f"`sdeint_adjoint`: Unexpected arguments {unused_kwargs}", stacklevel=2)
    if adjoint_params is None and not isinstance(sde, torch.nn.Module):
        raise InputValueError(
            "`sde` must be an instance of nn.Module to specify the adjoint parameters; "
            "alternatively pass them as adjoint_params (adjoint_params=() if there are none)"
        )
    if adjoint_method is not None and adjoint_method not in METHODS:
        raise InputValueError(
            f"adjoint_method={adjoint_method!r}: expected one of {', '.join(METHODS)}"
        )
    if adjoint_options is not None and not isinstance(adjoint_options, dict):
        raise InputTypeError(
            f"adjoint_options must be a dict, got {type(adjoint_options).__name__}"
        )
    _no_grad(adjoint_rtol=adjoint_rtol, adjoint_atol=adjoint_atol)
    if adjoint_params is not None and isinstance(sde, torch.nn.Module):
        given = {id(p) for p in adjoint_params}
        left_out = [n for n, p in sde.named_parameters() if p.requires_grad and id(p) not in given]
        if left_out:
            warnings.warn(
                f"`sdeint_adjoint`: adjoint_params leaves out {', '.join(left_out[:5])}, but "
                f"gradients are taken by backpropagation and reach every tensor that requires "
                f"grad; to keep a parameter out, set its requires_grad=False",
                stacklevel=2,
            )
    return sdeint(
        sde,
        y0,
        ts,
        bm=bm,
        method=method,
        dt=dt,
        adaptive=adaptive,
        rtol=rtol,
        atol=atol,
        dt_min=dt_min,
        options=options,
        names=names,
        logqp=logqp,
        extra=extra,
        extra_solver_state=extra_solver_state,
    )


# --------------------------------------------------------------------------- the contract


class _Call:
    """One ``sdeint`` call, checked as torchsde's ``check_contract`` checks it."""

    def __init__(self, sde, y0, ts, bm, method, adaptive, options, names, logqp):
        module = Renamed(sde, names)
        if not hasattr(sde, "noise_type"):
            raise InputValueError("sde does not have the attribute noise_type")
        if not hasattr(sde, "sde_type"):
            raise InputValueError("sde does not have the attribute sde_type")
        check_noise(module.noise_type, module.sde_type)
        if not isinstance(y0, torch.Tensor):
            raise InputValueError("`y0` must be a torch.Tensor")
        if y0.dim() != 2:
            raise InputValueError(
                f"`y0` must be a 2-dimensional tensor of shape (batch, channels), got shape "
                f"{tuple(y0.shape)} (sdekit.solve takes any (batch, *event) shape)"
            )
        self.d = y0.shape[1]
        if logqp:
            module = Logqp(module)
            y0 = torch.cat((y0, y0.new_zeros(y0.shape[0], 1)), dim=1)
        self.module, self.y0 = module, y0
        self.noise, self.calculus = module.noise_type, module.sde_type
        if method is None:
            if self.calculus == "stratonovich":
                method = "midpoint"
            else:
                method = "euler" if self.noise == "general" else "srk"
        if method not in METHODS:
            raise InputValueError(f"method={method!r}: expected one of {', '.join(METHODS)}")
        self.method = method
        self.ts = _check_ts(ts, y0)
        self.m = self._noise_size(bm)
        self.bm = bm
        if options is not None and not isinstance(options, dict):
            raise InputTypeError(f"options must be a dict, got {type(options).__name__}")
        self.options = dict(options or {})
        self._check_method(adaptive)

    def _noise_size(self, bm) -> int:
        module, y0 = self.module, self.y0
        batch = y0.shape[0]
        has_f = any(hasattr(module, m) for m in ("f", "f_and_g", "f_and_g_prod"))
        has_g = any(hasattr(module, m) for m in ("g", "f_and_g", "g_prod", "f_and_g_prod"))
        if not has_f:
            raise InputValueError(
                "sde must define at least one of `f`, `f_and_g` or `f_and_g_prod`"
            )
        if not has_g:
            raise InputValueError(
                "sde must define at least one of `g`, `f_and_g`, `g_prod` or `f_and_g_prod`"
            )
        sizes = []
        if bm is not None:
            if len(bm.shape) != 2:
                raise InputValueError(
                    f"`bm` must be of shape (batch, noise_channels), got {tuple(bm.shape)}"
                )
            if bm.shape[0] != batch:
                raise InputValueError(
                    f"Batch sizes not consistent: y0 has {batch}, bm has {bm.shape[0]}"
                )
            sizes.append(("bm", bm.shape[1]))
        diagonal = self.noise == "diagonal"
        if diagonal:
            sizes.append(("y0", y0.shape[1]))
        elif hasattr(module, "g") or hasattr(module, "f_and_g"):
            if hasattr(module, "g"):
                g = module.g(self.ts[0], y0)
            else:
                g = module.f_and_g(self.ts[0], y0)[1]
            if g.dim() != 3 or g.shape[:2] != y0.shape:
                raise InputValueError(
                    f"Diffusion must be of shape (batch, state_channels, noise_channels) = "
                    f"({batch}, {y0.shape[1]}, m) for {self.noise} noise, got {tuple(g.shape)}"
                )
            sizes.append(("the diffusion", g.shape[2]))
        if not sizes:
            raise InputValueError(
                "Cannot infer noise size (i.e. number of Brownian motion channels). Either pass "
                "`bm` explicitly, or specify one of the `g`, `f_and_g` functions"
            )
        m = sizes[0][1]
        if any(size != m for _, size in sizes):
            raise InputValueError(
                "Noise sizes not consistent: "
                + ", ".join(f"{name} has {size}" for name, size in sizes)
            )
        if self.noise == "scalar" and m != 1:
            raise InputValueError(
                f"Scalar noise must have only one channel; the diffusion has {m} noise channels"
            )
        return m

    def _check_method(self, adaptive: bool) -> None:
        method, calculus, noise = self.method, self.calculus, self.noise
        if method == "adjoint_reversible_heun":
            raise InputValueError(
                "adjoint_reversible_heun can only be used for adjoint_method (of sdeint_adjoint)"
            )
        solver_calculus, noises, areas = _SUPPORT[method]
        if solver_calculus is not None and calculus != solver_calculus:
            raise InputValueError(
                f"SDE is of type {calculus} but method {method!r} is for type {solver_calculus}; "
                + (
                    "use 'midpoint', 'heun', 'euler_heun', 'reversible_heun' or 'milstein'"
                    if calculus == "stratonovich"
                    else "use 'euler', 'milstein' or 'srk'"
                )
            )
        if noise not in noises:
            raise InputValueError(
                f"SDE has noise type {noise} but method {method!r} only supports noise types "
                f"{', '.join(noises)}; use 'euler' (Itô) or 'midpoint' (Stratonovich), which "
                f"support any noise"
            )
        area = getattr(self.bm, "levy_area_approximation", None)
        if areas is not None and self.bm is not None and area not in areas:
            raise InputValueError(
                f"method {method!r} requires one of {', '.join(areas)} set as the "
                f"`levy_area_approximation` on the Brownian motion, got {area!r}"
            )
        if method == "log_ode" and noise == "general":
            raise InputValueError(
                "method='log_ode' on general noise (the midpoint step plus a Lévy-area term "
                "from Davie/Foster approximations) is not available in sdekit; use "
                "method='midpoint' (the same step without that term, strong order 0.5 on "
                "general noise) or 'heun'"
            )
        if adaptive and method == "euler" and noise != "additive":
            warnings.warn(
                "Numerical solution is not guaranteed to converge to the correct solution when "
                "using adaptive time-stepping with the Euler--Maruyama method with non-additive "
                "noise.",
                stacklevel=4,
            )

    def solver(self, extra_solver_state) -> AbstractSolver:
        method = self.method
        if method == "euler":
            return Euler()
        if method == "milstein":
            grad_free = bool(self.options.get("grad_free", False)) and self.noise != "additive"
            return Milstein("finite_difference" if grad_free else "autograd")
        if method == "srk":
            return SRK_SOLVERS["sra1" if self.noise == "additive" else "sriw2"]()
        if method == "reversible_heun":
            if extra_solver_state is not None and self.noise == "scalar":
                f, g, z = extra_solver_state  # torchsde's scalar layout (batch, d, 1)
                extra_solver_state = (f, g.squeeze(-1), z)
            return ReversibleHeun(extra_solver_state)
        # log_ode on commutative noise: its Lévy-area term vanishes, leaving the midpoint step.
        schemes = {"heun": Heun, "euler_heun": EulerHeun, "midpoint": Midpoint, "log_ode": Midpoint}
        return schemes[method]()

    # ------------------------------------------------------------------------- the solve

    def integrate(self, dt, adaptive, rtol, atol, dt_min, extra_solver_state):
        problem = as_sde(self.module, self.m)
        solver = self.solver(extra_solver_state)
        if len(self.ts) == 1:
            ys = self.y0.unsqueeze(0)
        elif adaptive:
            ys = self._adaptive(problem, solver, dt, rtol, atol, dt_min)
        else:
            ys = self._fixed(problem, solver, dt)
        if self.method != "reversible_heun":
            return ys, ()
        f, g, z = solver.last_state or solver.init(problem, self.ts[0], self.y0)
        return ys, (f, g.unsqueeze(-1) if self.noise == "scalar" else g, z)

    def _brownian(self, levy_area: bool):
        if self.bm is None:
            return None
        return CallableBrownian(self.bm, levy_area=levy_area)

    def _fixed(self, problem, solver, dt) -> torch.Tensor:
        grid, brackets = torchsde_grid(self.ts.cpu(), dt)
        needed = sorted({i for pair in brackets for i in pair} - {0})
        times = [float(grid[i]) for i in needed]
        sol = solve(
            problem,
            self.y0,
            float(grid[0]),
            float(grid[-1]),
            solver=solver,
            controller=StepTo([float(t) for t in grid]),
            saveat=times,
            brownian=self._brownian(solver.levy_area),
            check_finite=False,
        )
        at = dict(zip(needed, sol.ys.unbind(0), strict=True)) | {0: self.y0}
        ys = [self.y0]
        for out_t, (i, j) in zip(self.ts[1:], brackets, strict=True):
            t0, t1 = grid[i], grid[j]
            ys.append((t1 - out_t) / (t1 - t0) * at[i] + (out_t - t0) / (t1 - t0) * at[j])
        return torch.stack(ys)

    def _adaptive(self, problem, solver, dt, rtol, atol, dt_min) -> torch.Tensor:
        brownian = self._brownian(solver.levy_area)
        if solver.error_order is None:
            if brownian is None:
                brownian = CallableBrownian(
                    self._interval(solver.levy_area), levy_area=solver.levy_area
                )
            solver = StepDoubling(solver, brownian)
        sol = solve(
            problem,
            self.y0,
            float(self.ts[0]),
            float(self.ts[-1]),
            solver=solver,
            dt=float(dt),
            controller=TorchsdeController(rtol, atol, dt_min),
            saveat=[float(t) for t in self.ts[1:]],
            brownian=brownian,
            check_finite=False,
            max_steps=None,  # torchsde's adaptive mode has no budget
        )
        return torch.cat([self.y0.unsqueeze(0), sol.ys])

    def _interval(self, levy_area: bool):
        """A ``BrownianInterval`` over ``[ts[0], ts[-1]]``, as torchsde builds one, seeded from
        torch's global generator (torchsde seeds it from NumPy's): ``torch.manual_seed`` makes
        the call reproducible, as without one."""
        import torchsde

        return torchsde.BrownianInterval(
            entropy=int(torch.randint(2**31 - 1, ())),
            t0=float(self.ts[0]),
            t1=float(self.ts[-1]),
            size=(self.y0.shape[0], self.m),
            dtype=self.y0.dtype,
            device=self.y0.device,
            levy_area_approximation="space-time" if levy_area else "none",
        )


def torchsde_grid(ts: torch.Tensor, dt) -> tuple[list[torch.Tensor], list[tuple[int, int]]]:
    """torchsde's fixed-step grid over ``ts`` and, per output time after the first, the indices
    of the two grid points it is interpolated between.

    As ``torchsde.BaseSDESolver.integrate``: from ``t = ts[0]``, while ``t < ts[i]`` step to
    ``min(t + dt, ts[-1])``, computed with ``ts``'s tensors (so in their dtype and rounding); the
    output at ``ts[i]`` lies between the last two grid points reached.
    """
    t = ts[0]
    grid, brackets = [t], []
    for out_t in ts[1:]:
        while t < out_t:
            t = min(t + dt, ts[-1])
            grid.append(t)
        brackets.append((len(grid) - 2, len(grid) - 1))
    return grid, brackets


def _check_ts(ts, y0: torch.Tensor) -> torch.Tensor:
    if not isinstance(ts, torch.Tensor):
        if not isinstance(ts, tuple | list) or not all(isinstance(t, float | int) for t in ts):
            raise InputValueError(
                "Evaluation times `ts` must be a 1-D Tensor or list/tuple of floats"
            )
        ts = torch.tensor(ts, dtype=y0.dtype, device=y0.device)
    if ts.dim() != 1 or len(ts) == 0:
        raise InputValueError(f"Evaluation times `ts` must be a non-empty 1-D tensor, got {ts}")
    if not bool((ts[1:] > ts[:-1]).all()):
        raise InputValueError(f"Evaluation times `ts` must be strictly increasing, got {ts}")
    return ts


def _no_grad(**values) -> None:
    for name, value in values.items():
        if isinstance(value, torch.Tensor) and value.requires_grad:
            raise InputValueError(f"Argument {name} must not require gradient")


def _parse_return(d: int, ys: torch.Tensor, state, extra: bool, logqp: bool):
    if not logqp:
        return (ys, state) if extra else ys
    ys, log_ratio = ys.split((d, 1), dim=2)
    increments = (log_ratio[1:] - log_ratio[:-1]).squeeze(2)
    return (ys, increments, state) if extra else (ys, increments)
