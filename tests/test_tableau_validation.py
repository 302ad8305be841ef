"""Tableaux validate and convert their coefficients once, with messages that say what to pass."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction as F

import numpy as np
import pytest
import torch

import sdekit as sk
import sdekit.tableaux as tableaux
import sdekit.testing as skt
from sdekit.tableaux import (
    DORMAND_PRINCE,
    HEUN,
    RK4,
    SRA1,
    SRI1W1,
    ButcherTableau,
    SRATableau,
    SRITableau,
)

MIDPOINT_EXACT = dict(c=(0, F(1, 2)), a=((), (F(1, 2),)), b=(0, 1), order=2)


# --------------------------------------------------------------------------- Butcher coefficients


def test_exact_fractions_are_stored_as_floats_and_solve_as_the_float_tableau_does():
    exact = ButcherTableau(**MIDPOINT_EXACT)
    assert all(type(x) is float for x in (*exact.c, *exact.b, *exact.a[1]))
    assert exact == tableaux.MIDPOINT
    ode = sk.ODE(lambda t, y: -y)
    ys = [
        sk.solve(ode, torch.ones(2, 1), 0.0, 1.0, solver=sk.ExplicitRungeKutta(t), dt=0.1).ys
        for t in (exact, tableaux.MIDPOINT)
    ]
    assert torch.equal(*ys)


@pytest.mark.parametrize("half", [np.float32(0.5), torch.tensor(0.5), F(1, 2)], ids=repr)
def test_numpy_and_torch_scalars_are_stored_as_floats_the_checker_reads(half):
    tableau = ButcherTableau(c=(0, half), a=((), (half,)), b=(0, 1), order=2)
    assert tableau.c == (0.0, 0.5) and type(tableau.a[1][0]) is float
    assert skt.check_tableau(tableau).all_hold


@pytest.mark.parametrize("text", ["x", "0.5"])
def test_a_coefficient_given_as_text_is_refused_with_its_place(text):
    with pytest.raises(sk.InputTypeError, match=r"ButcherTableau\.a\[1\]\[0\]: expected a number"):
        ButcherTableau(c=None, a=((), (text,)), b=(0, 1), order=2)


def test_non_finite_coefficients_are_refused():
    with pytest.raises(sk.InputValueError, match=r"ButcherTableau\.a\[1\]\[0\]: .*finite"):
        ButcherTableau(c=(0, math.inf), a=((), (math.inf,)), b=(0, 1), order=2)
    with pytest.raises(sk.InputValueError, match=r"ButcherTableau\.b\[0\]: .*finite"):
        ButcherTableau(c=(0, 0.5), a=((), (0.5,)), b=(math.nan, 1), order=2)


@pytest.mark.parametrize("order", [0, -1, "2", 2.5, True, None])
def test_the_order_must_be_a_positive_int(order):
    with pytest.raises(sk.InputValueError, match=rf"ButcherTableau\.order={order!r}: .*positive"):
        ButcherTableau(**{**MIDPOINT_EXACT, "order": order})


@pytest.mark.parametrize("embedded_order", [2, 3])
def test_the_embedded_order_must_be_below_the_order(embedded_order):
    with pytest.raises(sk.InputValueError, match=r"embedded_order=\d must be below order=2"):
        dataclasses.replace(HEUN, embedded_order=embedded_order)
    with pytest.raises(sk.InputValueError, match=r"embedded_order=0: .*positive"):
        dataclasses.replace(HEUN, embedded_order=0)


def test_a_full_strictly_lower_triangular_matrix_equals_its_rows():
    square = [[0, 0, 0, 0], [0.5, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 1, 0]]
    assert dataclasses.replace(RK4, a=square) == RK4
    assert dataclasses.replace(RK4, a=np.array(square), c=None) == RK4
    square[1][1] = 0.1
    with pytest.raises(sk.InputValueError, match=r"strictly lower-triangular.*\[\(1, 1\)\]"):
        dataclasses.replace(RK4, a=square, c=None)


def test_stage_times_default_to_the_row_sums():
    assert dataclasses.replace(RK4, c=None) == RK4
    computed = dataclasses.replace(DORMAND_PRINCE, c=None)
    assert computed.c == pytest.approx(DORMAND_PRINCE.c, abs=1e-15)
    assert skt.check_tableau(computed).all_hold


def test_replacing_a_says_to_pass_c_none_as_well():
    with pytest.raises(sk.InputValueError, match=r"c\[1\] is not a row sum.*pass c=None"):
        dataclasses.replace(HEUN, a=((), (0.5,)))
    assert dataclasses.replace(HEUN, a=((), (0.5,)), c=None).c == (0.0, 0.5)


def test_a_field_of_the_wrong_length_is_named_with_the_fields_it_disagrees_with():
    with pytest.raises(
        sk.InputValueError, match=r"ButcherTableau\.b: expected 2 entries, got 3; c and a have 2"
    ):
        ButcherTableau(c=(0, 1), a=((), (1,)), b=(0.5, 0.5, 0), order=1)
    with pytest.raises(
        sk.InputValueError, match=r"disagree on the number of stages \(a has 2, b has 3\)"
    ):
        ButcherTableau(c=None, a=((), (1,)), b=(0.5, 0.5, 0), order=1)


# --------------------------------------------------------------------------- the package


def test_the_package_exports_the_tableau_classes_and_every_named_tableau():
    from sdekit.tableaux import BOGACKI_SHAMPINE, SOSRI, SRIW1, OrderConditions

    assert SOSRI is tableaux.stochastic.SOSRI and SRIW1 is tableaux.stochastic.SRI1W1
    assert BOGACKI_SHAMPINE is tableaux.butcher.BOGACKI_SHAMPINE
    assert OrderConditions is tableaux.conditions.OrderConditions
    named = {
        name
        for module in (tableaux.butcher, tableaux.stochastic)
        for name, value in vars(module).items()
        if isinstance(value, ButcherTableau | SRITableau | SRATableau) and not name.startswith("_")
    }
    assert named and named <= set(tableaux.__all__)
    assert all(hasattr(tableaux, name) for name in tableaux.__all__)


# --------------------------------------------------------------------------- SRK tableaux


def test_an_srk_field_of_the_wrong_length_is_named_not_the_one_read_first():
    # alpha used to set the stage count, so this was reported as "beta1: expected 3 entries".
    with pytest.raises(
        sk.InputValueError,
        match=r"SRATableau\.alpha: expected 2 entries, got 3; c0, beta1, beta2, c1, alpha_embedded, "
        r"A0 and B0 have 2",
    ):
        dataclasses.replace(SRA1, alpha=(F(1, 3), F(2, 3), 0))


@pytest.mark.parametrize(
    ("weak_order", "error"),
    [("two", sk.InputTypeError), (-1, sk.InputValueError), (math.inf, sk.InputValueError)],
)
def test_the_weak_order_is_validated_as_the_other_orders_are(weak_order, error):
    with pytest.raises(error, match="SRATableau.weak_order"):
        dataclasses.replace(SRA1, weak_order=weak_order)
    assert dataclasses.replace(SRI1W1, weak_order=None).weak_order is None


def test_drift_weights_that_do_not_sum_to_one_are_refused_as_butcher_weights_are():
    with pytest.raises(ValueError, match=r"SRATableau.alpha sums to 1.1"):
        dataclasses.replace(SRA1, alpha=(0.5, 0.6))


def test_replacing_a0_says_to_pass_c0_none_with_replace():
    with pytest.raises(
        sk.InputValueError, match=r"c0\[1\] is not a row sum.*pass c0=None.*replace"
    ):
        dataclasses.replace(SRA1, A0=((), (0.5,)))
    assert dataclasses.replace(SRA1, A0=((), (0.5,)), c0=None).c0 == (0.0, 0.5)


# --------------------------------------------------------------------------- checkers


@pytest.mark.parametrize("order", [0, -1, 1.5])
def test_checking_to_an_order_below_one_is_refused_not_replaced_by_the_declared(order):
    with pytest.raises(sk.InputValueError, match=rf"order={order!r}: must be a positive int"):
        skt.check_tableau(RK4, order=order)


def test_checking_to_order_one_checks_one_condition():
    assert [c.name for c in skt.check_tableau(RK4, order=1)] == ["bᵀe = 1"]


def test_the_deterministic_tableau_of_order_zero_is_refused():
    with pytest.raises(sk.InputValueError, match="order=0"):
        skt.deterministic_tableau(SRA1, 0)
