"""The solver and sampler tables of the documentation, generated from the code's own metadata.

Every SDE scheme in ``sdekit.solvers.SDE_SOLVERS`` and ODE scheme in ``ODE_SOLVERS`` declares its
calculus, noise kinds, orders, evaluations per step, Lévy-area need and embedded error order;
``check(problem)`` may refine those for a given problem (Milstein needs one diffusion evaluation
under additive noise, improved Euler takes Itô problems only with additive noise). The table asks
each scheme, for every calculus and noise kind it declares, whether it accepts such a problem and
what it then costs, so that it says what the code does. The sampler table reads
``sdekit_score.sampling.samplers.SAMPLERS`` and the ``SAMPLER_INFO`` declared next to it; a
closed-form NFE is evaluated at each sampler's own default options (from its signature).

Used as a MkDocs hook (``hooks:`` in ``mkdocs.yml``): a page line ``<!-- table: NAME -->`` is
replaced by the table ``NAME`` (``sde-solvers``, ``ode-solvers``, ``samplers``) when the site is
built. ``python docs/gen_tables.py`` prints the tables.
"""

from __future__ import annotations

import inspect
import re

import torch

import sdekit as sk
from sdekit.solvers import ODE_SOLVERS, SDE_SOLVERS
from sdekit_score.sampling.samplers import SAMPLER_INFO, SAMPLERS

CALCULUS_NAMES = {"ito": "Itô", "stratonovich": "Stratonovich"}
NOISE_ORDER = ("diagonal", "scalar", "additive", "general")


def _order(value) -> str:
    if value is None:
        return "—"
    return f"{value:g}"


def _big_o(order: float) -> str:
    return "O(h)" if order == 1 else f"O(h^{order:g})"


def _problem(noise: str, calculus: str) -> sk.SDE:
    zero = lambda t, y: torch.zeros_like(y)  # noqa: E731  (never called: check reads declarations)
    return sk.SDE(zero, zero, noise=noise, calculus=calculus)


def _accepted(factory) -> dict[tuple[str, str], tuple]:
    """For every declared (calculus, noise) pair the scheme accepts: (nfe_drift, nfe_diffusion,
    error_order, strong_order) after ``check`` on such a problem, from a fresh instance each
    time."""
    declared = factory()
    out = {}
    for calculus in sorted(declared.calculus):
        for noise in NOISE_ORDER:
            if noise not in declared.noise:
                continue
            solver = factory()
            try:
                solver.check(_problem(noise, calculus))
            except ValueError:
                continue
            out[calculus, noise] = (
                solver.nfe_drift,
                solver.nfe_diffusion,
                solver.error_order,
                solver.strong_order,
            )
    return out


def _varying(values: dict[str, object], fmt) -> str:
    """One value, or the most common one followed by the exceptions by noise kind."""
    distinct = list(dict.fromkeys(values.values()))
    if len(distinct) == 1:
        return fmt(distinct[0])
    common = max(distinct, key=lambda v: sum(1 for w in values.values() if w == v))
    exceptions = [f"{fmt(v)} {k}" for k, v in values.items() if v != common]
    return f"{fmt(common)} ({'; '.join(exceptions)})"


def _support(accepted: dict[tuple[str, str], tuple]) -> tuple[str, str]:
    """The calculus and noise columns: what the scheme accepts, per calculus when that differs."""
    by_calculus: dict[str, list[str]] = {}
    for calculus, noise in accepted:
        by_calculus.setdefault(calculus, []).append(noise)
    calculi = ", ".join(CALCULUS_NAMES[c] for c in by_calculus)
    kinds = list(by_calculus.values())
    if all(k == kinds[0] for k in kinds):
        return calculi, ", ".join(kinds[0])
    noise = "; ".join(f"{CALCULUS_NAMES[c]}: {', '.join(k)}" for c, k in by_calculus.items())
    return calculi, noise


def _aliases(table: dict) -> dict[str, list[str]]:
    """Names grouped by factory, in table order (``sri1`` is ``sriw1``)."""
    groups: dict[object, list[str]] = {}
    for name, factory in table.items():
        groups.setdefault(factory, []).append(name)
    # The factory's own name first (``sriw1``, then its alias ``sri1``).
    for factory, names in groups.items():
        names.sort(key=lambda n: n != getattr(factory, "__name__", None))
    return {names[0]: names for names in groups.values()}


def sde_solver_table() -> str:
    """Markdown table of ``SDE_SOLVERS``."""
    rows = [
        "| scheme | class | calculus | noise | strong order | weak order "
        "| evaluations per step (f + g) | Lévy area | error estimate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for first, names in _aliases(SDE_SOLVERS).items():
        factory = SDE_SOLVERS[first]
        solver = factory()
        accepted = _accepted(factory)
        calculi, noise = _support(accepted)
        by_noise: dict[str, tuple] = {}
        for (_, kind), value in accepted.items():
            by_noise.setdefault(kind, value)
        cost = _varying({k: v[:2] for k, v in by_noise.items()}, lambda v: f"{v[0]} + {v[1]}")
        error = _varying(
            {k: v[2] for k, v in by_noise.items()},
            lambda v: "none (fixed steps)" if v is None else _big_o(v),
        )
        strong = _varying({k: v[3] for k, v in by_noise.items()}, _order)
        name = ", ".join(f"`{n}`" for n in names)
        rows.append(
            f"| {name} | `{solver.name}` | {calculi} | {noise} | {strong} "
            f"| {_order(solver.weak_order)} | {cost} | {'yes' if solver.levy_area else 'no'} "
            f"| {error} |"
        )
    return "\n".join(rows)


def ode_solver_table() -> str:
    """Markdown table of ``ODE_SOLVERS``."""
    rows = [
        "| scheme | order | stages | evaluations per step | first same as last | error estimate |",
        "|---|---|---|---|---|---|",
    ]
    for first, names in _aliases(ODE_SOLVERS).items():
        solver = ODE_SOLVERS[first]()
        tableau = solver.tableau
        error = "none (fixed steps)" if solver.error_order is None else _big_o(solver.error_order)
        if tableau.embedded_order is not None:
            error += f", embedded order {tableau.embedded_order}"
        rows.append(
            f"| {', '.join(f'`{n}`' for n in names)} | {solver.order} | {tableau.stages} "
            f"| {solver.nfe_drift} | {'yes' if tableau.fsal else 'no'} | {error} |"
        )
    return "\n".join(rows)


def _nfe(sampler, formula: str) -> str:
    """``formula`` and, when it is an expression in the sampler's options, its value at their
    defaults."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(sampler).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    try:
        code = compile(formula, "<nfe>", "eval")
    except SyntaxError:
        return formula
    if not set(code.co_names) <= set(defaults):
        return formula
    value = eval(code, {"__builtins__": {}}, defaults)
    return f"`{formula}` = {value} at the defaults"


def sampler_table() -> str:
    """Markdown table of ``SAMPLERS`` with ``SAMPLER_INFO``."""
    missing = set(SAMPLERS) ^ set(SAMPLER_INFO)
    if missing:
        raise RuntimeError(f"SAMPLERS and SAMPLER_INFO disagree on {sorted(missing)}")
    rows = [
        "| sampler | what it solves or runs | NFE per sample | stochastic | adaptive | paper |",
        "|---|---|---|---|---|---|",
    ]
    for name, sampler in SAMPLERS.items():
        info = SAMPLER_INFO[name]
        rows.append(
            f"| `{name}` | {info['method']} | {_nfe(sampler, info['nfe'])} "
            f"| {'yes' if info['stochastic'] else 'no'} | {'yes' if info['adaptive'] else 'no'} "
            f"| {info['paper']} |"
        )
    return "\n".join(rows)


TABLES = {
    "sde-solvers": sde_solver_table,
    "ode-solvers": ode_solver_table,
    "samplers": sampler_table,
}
_MARKER = re.compile(r"^<!-- table: ([a-z-]+) -->$", re.MULTILINE)


def on_page_markdown(markdown: str, **kwargs) -> str:
    """MkDocs hook: replace each ``<!-- table: NAME -->`` line with the table."""
    return _MARKER.sub(lambda m: TABLES[m.group(1)](), markdown)


if __name__ == "__main__":
    for name, table in TABLES.items():
        print(f"## {name}\n\n{table()}\n")
