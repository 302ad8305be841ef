"""Build your own stochastic Runge–Kutta tableau, check its order conditions, and solve with it.

A two-stage SRA method is fixed in its drift part by the strong order 1.5 conditions
(alpha = (1/3, 2/3), A0 = 3/4, B0 = 3/2, as in Rößler's SRA1), but its diffusion nodes ``c1`` are
free. Here we put them at the two ends of the step, c1 = (0, 1); the conditions
beta1·e = 1, beta2·e = 0, beta1·c1 = 1, beta2·c1 = -1 then give beta1 = (0, 1), beta2 = (1, -1).

    python examples/custom_srk_tableau.py
"""

from __future__ import annotations

import dataclasses

import torch
import torchsde

import sdekit as sk

ENDPOINT_SRA = sk.SRATableau(
    c0=None,  # computed: the row sums of A0
    c1=(0, 1),
    A0=((), (3 / 4,)),
    B0=((), (3 / 2,)),
    alpha=(1 / 3, 2 / 3),
    beta1=(0, 1),
    beta2=(1, -1),
)


def main() -> None:
    conditions = sk.sra_order_conditions(ENDPOINT_SRA)
    print(conditions)
    assert conditions.all_hold

    typo = dataclasses.replace(ENDPOINT_SRA, beta2=(1, 1))
    print("\nwith a sign typo in beta2:", [c.name for c in sk.sra_order_conditions(typo).failed])

    # dX = -(sin 3X + X) dt + (1 + t) dW: additive noise, nonlinear drift.
    sde = sk.SDE(
        lambda t, y: -(torch.sin(3 * y) + y),
        lambda t, y: (1 + t) * torch.ones_like(y),
        noise="additive",
    )
    y0 = torch.full((500, 1), 0.3, dtype=torch.float64)
    bm = torchsde.BrownianInterval(
        0.0,
        1.0,
        size=(500, 1),
        dtype=torch.float64,
        entropy=0,
        dt=2**-11,
        levy_area_approximation="space-time",
    )
    solver = sk.SRA(ENDPOINT_SRA)
    reference = sk.solve(sde, y0, 0.0, 1.0, solver=solver, dt=2**-11, brownian=bm).ys[-1]
    print(
        f"\n{solver.name}: {solver.nfe_drift} drift + {solver.nfe_diffusion} diffusion calls/step"
    )
    print(f"{'dt':>8} {'strong error':>14}")
    for k in range(3, 8):
        y1 = sk.solve(sde, y0, 0.0, 1.0, solver=solver, dt=2**-k, brownian=bm).ys[-1]
        print(f"{f'2^-{k}':>8} {float((y1 - reference).pow(2).mean().sqrt()):>14.3e}")


if __name__ == "__main__":
    main()
