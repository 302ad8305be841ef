"""Property-test your own SDE scheme with ``sdekit.testing``, in a few lines of pytest.

The scheme below is Platen's derivative-free Milstein scheme for Itô SDEs with diagonal noise
(Kloeden & Platen 1992, eq. 11.1.5), written from scratch as a user would: strong order 1, weak
order 1. The tests run it through the whole battery (measured strong and weak order, determinism,
batch invariance, time reversal, dtypes, gradients, ...) and through random problems drawn by
hypothesis; each failure says which property failed and by how much.

    python -m pytest examples/test_your_scheme.py          # the tests
    python examples/test_your_scheme.py OUTDIR             # the report and a convergence plot

``SDEKIT_EXAMPLE_QUICK=1`` uses fewer paths (the examples' smoke test sets it).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings

import sdekit as sk
import sdekit.testing as skt
from sdekit.batching import bcast


class Platen(sk.AbstractSolver):
    r"""``y + f h + g ΔW + (g(ȳ) − g(y))(ΔW² − h)/(2√h)`` with ``ȳ = y + f h + g √h``."""

    strong_order = 1.0
    weak_order = 1.0
    calculus = frozenset({"ito"})
    noise = frozenset({"diagonal", "scalar"})
    nfe_diffusion = 2

    def step(self, problem, t, y, h, inc, state):
        hb = bcast(h, y)
        sqrt_h = hb.abs().sqrt() if torch.is_tensor(hb) else math.sqrt(abs(h))
        f, g = problem.f(t, y), problem.g(t, y)
        g_bar = problem.g(t, y + f * hb + g * sqrt_h)
        correction = (g_bar - g) * (inc.dW**2 - abs(hb)) / (2 * sqrt_h)
        return y + f * hb + g * inc.dW + correction, None, state


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("prop", skt.SOLVER_PROPERTIES)
def test_platen_scheme_has_every_property(prop):
    skt.assert_solver_properties(Platen(), only=prop)


@settings(max_examples=5, deadline=None)
@given(problem=skt.strategies.exact_sdes(calculus="ito", noise="diagonal"))
def test_platen_scheme_is_strong_order_one_on_random_problems(problem):
    fit = skt.strong_order(
        Platen(), problem, None, 1.0, [2.0**-k for k in range(3, 8)], n_paths=500
    )
    assert fit.failure(1.0, at_least=True) is None, fit.failure(1.0, at_least=True)


def test_without_its_correction_the_scheme_is_caught():
    class Broken(Platen):
        def step(self, problem, t, y, h, inc, state):
            return y + problem.f(t, y) * h + problem.g(t, y) * inc.dW, None, state

    report = skt.solver_properties(Broken(), only=["strong_order"])
    assert not report.passed and "too low" in report["strong_order"].detail


# --------------------------------------------------------------------------- as a script


def main(out_dir: Path) -> None:
    quick = os.environ.get("SDEKIT_EXAMPLE_QUICK") == "1"
    out_dir.mkdir(parents=True, exist_ok=True)
    report = skt.solver_properties(Platen(), n_paths=200 if quick else 1000)
    steps = [2.0**-k for k in range(3, 7 if quick else 9)]
    fits = {
        name: skt.strong_order(solver, skt.problems.cubic(), None, 1.0, steps, n_paths=500)
        for name, solver in (("Platen", Platen()), ("Euler–Maruyama", "euler"))
    }
    lines = [str(report), ""] + [f"{name}: {fit}" for name, fit in fits.items()]
    (out_dir / "test_your_scheme.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the text report is written either way
        return
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, fit in fits.items():
        ax.loglog(fit.step_sizes, fit.errors, "o-", label=f"{name}: slope {fit.slope:.2f}")
    ax.set(xlabel="step size h", ylabel="RMS error at t = 1", title="cubic problem (K&P 4.4)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "test_your_scheme.png", dpi=100)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
