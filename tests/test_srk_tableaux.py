"""Stochastic Runge–Kutta tableaux: validation on construction and the order-condition checkers."""

from __future__ import annotations

import dataclasses
from fractions import Fraction as F

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sdekit as sk
import sdekit.testing as skt
from sdekit.tableaux.conditions import sra_order_conditions, sri_order_conditions
from sdekit.tableaux.stochastic import (
    SRA1,
    SRA3,
    SRA_TABLEAUX,
    SRI1W1,
    SRI2W1,
    SRI_TABLEAUX,
    SRATableau,
    SRITableau,
)

LIBRARY = {**SRI_TABLEAUX, **SRA_TABLEAUX}


@pytest.mark.parametrize("name", list(LIBRARY))
def test_library_tableau_satisfies_its_order_conditions_to_1e_12(name):
    result = skt.check_tableau(LIBRARY[name], tol=1e-12)
    assert result.all_hold, str(result)
    assert result.max_residual <= 1e-12


@pytest.mark.parametrize("name", list(LIBRARY))
def test_declared_deterministic_order_is_sharp(name):
    # With g = 0 the tableau is the Runge–Kutta method (c0, A0, alpha): it has the declared
    # classical order and not one more (Butcher's conditions, so order 3 tableaux are checked too).
    tableau = LIBRARY[name]
    order = tableau.deterministic_order
    assert skt.check_tableau(skt.deterministic_tableau(tableau)).all_hold
    assert not skt.check_tableau(skt.deterministic_tableau(tableau, order + 1)).all_hold


def test_condition_lists_have_rosslers_lengths():
    # 5 + 4 + 16 strong conditions for SRI (StochasticDiffEq's checkSRIOrder has the same 25),
    # 8 for SRA; deterministic order 3 adds two.
    assert len(sri_order_conditions(SRI1W1)) == 25
    assert len(sri_order_conditions(SRI2W1)) == 27
    assert len(sra_order_conditions(SRA1)) == 8
    assert len(sra_order_conditions(SRA3)) == 10
    assert len(sri_order_conditions(SRI1W1, order=1.0)) == 9 + 1  # + deterministic order 2


def test_torchsde_sra3_sign_of_beta2_is_caught():
    # torchsde's tableaus/sra3.py has beta2 = (1, -1, 0); Rößler's (and StochasticDiffEq's) is
    # (-1, 1, 0). The flipped sign only matters for time-dependent noise: β2ᵀc1 = -1 fails.
    flipped = dataclasses.replace(SRA3, beta2=(1, -1, 0))
    failed = [c.name for c in sra_order_conditions(flipped).failed]
    assert failed == ["β2ᵀc1 = -1"]


def test_a_milstein_type_tableau_is_strong_order_one():
    # Kloeden & Platen's derivative-free Milstein scheme written as an SRI tableau.
    milstein = SRITableau(
        c0=None,
        c1=None,
        A0=((), (0,)),
        A1=((), (1,)),
        B0=((), (0,)),
        B1=((), (1,)),
        alpha=(1, 0),
        beta1=(1, 0),
        beta2=(-1, 1),
        beta3=(0, 0),
        beta4=(0, 0),
        strong_order=1.0,
        deterministic_order=1,
    )
    assert sri_order_conditions(milstein).all_hold
    assert not sri_order_conditions(milstein, order=1.5).all_hold


# --------------------------------------------------------------------------- validation


def test_full_square_matrices_equal_lower_rows():
    square = dataclasses.replace(SRA1, A0=((0, 0), (F(3, 4), 0)), B0=[[0, 0], [1.5, 0]], c0=None)
    assert square == SRA1


def test_stage_times_default_to_row_sums():
    assert dataclasses.replace(SRI2W1, c0=None, c1=None) == SRI2W1


def test_stage_times_inconsistent_with_row_sums_are_refused():
    with pytest.raises(ValueError, match=r"c0\[1\].*row 1 of A0 sums to 0.75"):
        dataclasses.replace(SRA1, c0=(0, 0.7))
    with pytest.raises(ValueError, match=r"c1\[2\].*row 2 of A1"):
        dataclasses.replace(SRI1W1, c1=(0, 0.25, 0.9, 0.25))


def test_malformed_tableaux_are_refused():
    with pytest.raises(ValueError, match="strictly lower-triangular"):
        dataclasses.replace(SRA1, A0=((1, 0), (0.75, 0)), c0=None)
    with pytest.raises(ValueError, match="row lengths"):
        dataclasses.replace(SRA1, B0=((), (1.5, 0.1)))
    with pytest.raises(ValueError, match="expected 2 entries"):
        dataclasses.replace(SRA1, beta2=(-1, 1, 0))
    with pytest.raises(ValueError, match="finite"):
        dataclasses.replace(SRA1, alpha=(float("nan"), 1))
    with pytest.raises(ValueError, match="alpha_embedded sums"):
        dataclasses.replace(SRA1, alpha_embedded=(0.5, 0.4))
    with pytest.raises(ValueError, match="strong_order"):
        dataclasses.replace(SRA1, strong_order=2.0)


@pytest.mark.parametrize(
    ("tableau", "changes", "message"),
    [
        (SRI1W1, {"A1": [[0] * 4, [1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0.25, 1]]}, "SRITableau.A1: "),
        (SRI1W1, {"B1": ((), (1,))}, r"SRITableau.B1: expected 4 rows"),
        (SRI1W1, {"beta4": (1, 0)}, r"SRITableau.beta4: expected 4 entries"),
        (SRI1W1, {"alpha_embedded": (0.5, 0.4, 0, 0)}, "SRITableau.alpha_embedded sums"),
        (SRI1W1, {"deterministic_order": 4}, "SRITableau.deterministic_order"),
        (SRA1, {"A0": (("x", 0), (0.75, 0)), "c0": None}, r"SRATableau.A0: expected a number"),
        (SRA1, {"c1": (1,)}, r"SRATableau.c1: expected 2 entries"),
    ],
)
def test_both_families_share_the_validation_and_name_the_family(tableau, changes, message):
    with pytest.raises((TypeError, ValueError), match=message):
        dataclasses.replace(tableau, **changes)


def test_tableaux_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SRA1.alpha = (0.5, 0.5)


def test_default_embedding_is_the_euler_drift():
    assert SRI1W1.alpha_embedded == (1.0, 0.0, 0.0, 0.0)
    assert SRA3.alpha_embedded == (1.0, 0.0, 0.0)


# --------------------------------------------------------------------------- power of the checker

_FIELDS = {
    SRITableau: ("A0", "A1", "B0", "B1", "alpha", "beta1", "beta2", "beta3", "beta4"),
    SRATableau: ("A0", "B0", "alpha", "beta1", "beta2", "c1"),
}


def _nonzero_coefficients(tableau):
    out = []
    for field in _FIELDS[type(tableau)]:
        value = getattr(tableau, field)
        if field[0] in "AB":
            out += [(field, (i, j)) for i, r in enumerate(value) for j, x in enumerate(r) if x]
        else:
            out += [(field, (i,)) for i, x in enumerate(value) if x]
    return out


def _perturbed(tableau, field, index, delta):
    value = getattr(tableau, field)
    if len(index) == 2:
        rows = [list(r) for r in value]
        rows[index[0]][index[1]] += delta
        new = tuple(tuple(r) for r in rows)
    else:
        new = tuple(x + delta if k == index[0] else x for k, x in enumerate(value))
    # Stage times follow the perturbed matrices (they are derived data, not free coefficients).
    derived = {"c0": None} | ({"c1": None} if isinstance(tableau, SRITableau) else {})
    return dataclasses.replace(tableau, **{field: new}, **derived)


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(sorted(LIBRARY)),
    pick=st.integers(min_value=0, max_value=10**6),
    magnitude=st.floats(min_value=1e-8, max_value=2.0),
    sign=st.sampled_from((-1.0, 1.0)),
)
def test_perturbing_any_nonzero_coefficient_breaks_a_condition(name, pick, magnitude, sign):
    tableau = LIBRARY[name]
    coefficients = _nonzero_coefficients(tableau)
    field, index = coefficients[pick % len(coefficients)]
    if field == "alpha":  # αᵀe = 1 is checked when the tableau is built
        with pytest.raises(ValueError, match="alpha sums to"):
            _perturbed(tableau, field, index, sign * magnitude)
        return
    assert not skt.check_tableau(_perturbed(tableau, field, index, sign * magnitude)).all_hold


def test_a_solver_declares_the_weak_order_its_tableau_states():
    assert {
        sk.SRI(t).weak_order if isinstance(t, SRITableau) else sk.SRA(t).weak_order
        for t in LIBRARY.values()
    } == {2}
    unstated = dataclasses.replace(LIBRARY["SOSRI"], weak_order=None)
    assert sk.SRI(unstated).weak_order is None
    assert (
        skt.solver_properties(sk.SRI(unstated), only="weak_order")["weak_order"].status == "skipped"
    )
