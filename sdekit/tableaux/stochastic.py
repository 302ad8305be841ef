r"""Stochastic Runge–Kutta tableaux of Rößler's SRI and SRA families, as validated immutable data.

**SRI** (Itô SDEs with scalar or diagonal noise; Rößler 2010, sec. 5/6). With the iterated
integrals :math:`I_{(1)} = \Delta W`, :math:`I_{(1,1)}`, :math:`I_{(1,0)}`, :math:`I_{(1,1,1)}`
over :math:`[t, t+h]`, an :math:`s`-stage SRI method is

.. math::
    H^{(0)}_i &= y + h\sum_{j<i} A^{(0)}_{ij} f_j + \frac{I_{(1,0)}}{h}\sum_{j<i} B^{(0)}_{ij} g_j,
    \qquad f_j = f(t + c^{(0)}_j h, H^{(0)}_j) \\
    H^{(1)}_i &= y + h\sum_{j<i} A^{(1)}_{ij} f_j + \sqrt{h}\sum_{j<i} B^{(1)}_{ij} g_j,
    \qquad g_j = g(t + c^{(1)}_j h, H^{(1)}_j) \\
    y_{n+1} &= y + h\sum_i \alpha_i f_i + \sum_i \Big(\beta^{(1)}_i I_{(1)}
        + \beta^{(2)}_i \frac{I_{(1,1)}}{\sqrt h} + \beta^{(3)}_i \frac{I_{(1,0)}}{h}
        + \beta^{(4)}_i \frac{I_{(1,1,1)}}{h}\Big) g_i .

**SRA** (additive noise :math:`g = g(t)`, where Itô and Stratonovich coincide; Rößler 2010, sec. 6):

.. math::
    H^{(0)}_i = y + h\sum_{j<i} A^{(0)}_{ij} f_j + \frac{I_{(1,0)}}{h}\sum_{j<i} B^{(0)}_{ij} g_j,
    \qquad
    y_{n+1} = y + h\sum_i \alpha_i f_i
        + \sum_i \Big(\beta^{(1)}_i I_{(1)} + \beta^{(2)}_i \frac{I_{(1,0)}}{h}\Big) g_i,

with :math:`g_j = g(t + c^{(1)}_j h)`.

**Embedded estimate.** Each tableau carries lower-order drift weights :math:`\hat\alpha` (default
:math:`(1, 0, \ldots, 0)`: the Euler drift). Dropping the order-1.5 noise terms
(:math:`\beta^{(3)}, \beta^{(4)}` for SRI, :math:`\beta^{(2)}` for SRA) and using :math:`\hat\alpha`
gives a strong order 1.0 method from the same stages (Rackauckas & Nie 2017, "natural embedding");
the solver's error estimate is the difference (see :mod:`sdekit.solvers.srk`).

Matrices are given by their strictly lower-triangular rows (row ``i`` has ``i`` entries, as in
:class:`~sdekit.tableaux.butcher.ButcherTableau`) or as full square matrices with zeros on and
above the diagonal. The nodes ``c0`` (and ``c1`` for SRI) must be the row sums of ``A0`` (``A1``):
that is what makes the method consistent for time-dependent coefficients; pass ``None`` to have
them computed (also to :func:`dataclasses.replace` when changing ``A0``/``A1``, which otherwise
passes the stored nodes on). SRA's ``c1`` are free diffusion-time nodes. Coefficients may be any
real numbers and are stored as floats. The order conditions themselves are checked by
:mod:`sdekit.tableaux.conditions`, not here.

Library (coefficients as published; the tests check every order condition to 1e-12):

==========  ======  ============  ==========  ================================================
tableau     stages  strong order  det. order  source
==========  ======  ============  ==========  ================================================
SRI1W1      4       1.5           2           Rößler (2010), "SRI1W1"; StochasticDiffEq
                                              ``constructSRIW1``, torchsde ``srid1``
SRI2W1      4       1.5           3           Rößler (2010), "SRI2W1"; StochasticDiffEq
                                              ``constructSRIW2``, torchsde ``srid2``
SOSRI       4       1.5           2           Rackauckas & Nie (2018), SOSRI (StochasticDiffEq
                                              ``constructSRIOpt1`` / ``SOSRIConstantCache``)
SOSRI2      4       1.5           2           Rackauckas & Nie (2018), SOSRI2
                                              (``constructSRIOpt2`` / ``SOSRI2ConstantCache``)
SRA1        2       1.5           2           Rößler (2010); ``constructSRA1``, torchsde ``sra1``
SRA2        2       1.5           2           Rößler (2010); ``constructSRA2``, torchsde ``sra2``
SRA3        3       1.5           3           Rößler (2010); ``constructSRA3`` (torchsde's
                                              ``sra3`` has the sign of ``beta2`` flipped, which
                                              breaks :math:`\beta^{(2)\top} c^{(1)} = -1`)
SOSRA       3       1.5           2           Rackauckas & Nie (2018), SOSRA (``constructSOSRA``)
SOSRA2      3       1.5           2           Rackauckas & Nie (2018), SOSRA2 (``constructSOSRA2``)
==========  ======  ============  ==========  ================================================

Every tableau of the library declares weak order 2 (``weak_order``), the order measured for
each on a linear problem (moments ``E[Y]``, ``E[Y²]``; ``skt.solver_properties``): SRA3 and SRI2W1
measure 2.1 and 2.0 there, not the 3 that their third deterministic order might suggest.

SOSRI's drift stages lie at ``t − 0.042 h`` and ``t + 3.75 h`` (its ``c0``), outside the step:
its drift must be defined a little before and well after the interval it solves over, and
``solve`` refuses it with jump times (``ClipStepSize(jump_ts=...)``); SOSRI2 and the other
tableaux keep every stage within the step.

``SRIW1``/``SRIW2`` are the names StochasticDiffEq.jl and Rackauckas & Nie use for Rößler's
SRI1W1/SRI2W1 ("W1": one Wiener process, i.e. scalar noise, applied component-wise to diagonal
noise).

References:
    A. Rößler, "Runge–Kutta methods for the strong approximation of solutions of stochastic
    differential equations", SIAM J. Numer. Anal. 48(3), 922–952 (2010).
    C. Rackauckas & Q. Nie, "Adaptive methods for stochastic differential equations via natural
    embeddings and rejection sampling with memory", Discrete Contin. Dyn. Syst. B 22(7) (2017).
    C. Rackauckas & Q. Nie, "Stability-optimized high order methods and stiffness detection for
    pathwise stiff stochastic differential equations", IEEE HPEC (2020), arXiv:1804.04344 (2018).
    Coefficients cross-checked against SciML/StochasticDiffEq.jl ``src/tableaus.jl`` and
    ``src/caches/rossler_caches.jl``, and google-research/torchsde ``_core/methods/tableaus``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction as F

from sdekit.checks import one_of, positive_float

from . import coefficients as coef
from .coefficients import Rows, Vector

STRONG_ORDERS = (1.0, 1.5)
DETERMINISTIC_ORDERS = (1, 2, 3)


class _StochasticRKTableau:
    r"""The validation SRI and SRA tableaux share, run once on construction.

    Every family has the drift stages :math:`(c^{(0)}, A^{(0)}, B^{(0)})`, drift weights
    :math:`\alpha` summing to one with their embedded :math:`\hat\alpha`, and its orders; a family
    names the rest of its fields in three class attributes: ``_vectors`` (one entry per stage),
    ``_matrices`` (strictly lower triangular) and ``_row_sums`` (pairs ``(c, A)`` with
    :math:`c = A e`). The number of stages is the length the fields agree on; a field that
    disagrees is named with the fields it disagrees with.
    """

    _vectors: tuple[str, ...]
    _matrices: tuple[str, ...]
    _row_sums: tuple[tuple[str, str], ...]

    def __post_init__(self):
        cls = type(self).__name__
        nodes = tuple(c for c, _ in self._row_sums)
        vectors = {}
        for name in (*nodes, *self._vectors, "alpha_embedded"):
            value = getattr(self, name)
            computed = value is None and name in (*nodes, "alpha_embedded")
            vectors[name] = None if computed else coef.sequence(value, f"{cls}.{name}")
        matrices = {
            name: coef.matrix(getattr(self, name), f"{cls}.{name}") for name in self._matrices
        }
        s = coef.stage_count(cls, vectors, matrices)
        set_ = object.__setattr__
        for name in self._vectors:  # the drift weights sum to one: αᵀe = 1 (consistency)
            convert = coef.weights if name == "alpha" else coef.vector
            set_(self, name, convert(vectors[name], f"{cls}.{name}"))
        for name in self._matrices:
            set_(self, name, coef.lower_rows(matrices[name], s, f"{cls}.{name}"))
        for c_name, a_name in self._row_sums:
            set_(
                self,
                c_name,
                coef.nodes(vectors[c_name], getattr(self, a_name), cls, c_name, a_name),
            )
        embedded = vectors["alpha_embedded"]
        if embedded is None:
            set_(self, "alpha_embedded", (1.0,) + (0.0,) * (s - 1))
        else:
            set_(self, "alpha_embedded", coef.weights(embedded, f"{cls}.alpha_embedded"))
        one_of(f"{cls}.strong_order", self.strong_order, STRONG_ORDERS)
        one_of(f"{cls}.deterministic_order", self.deterministic_order, DETERMINISTIC_ORDERS)
        if self.weak_order is not None:
            set_(self, "weak_order", positive_float(self.weak_order, f"{cls}.weak_order"))

    @property
    def stages(self) -> int:
        return len(self.alpha)


@dataclass(frozen=True)
class SRITableau(_StochasticRKTableau):
    r"""Rößler's SRI method for Itô SDEs with scalar or diagonal noise (module docstring).

    Attributes:
        c0, c1: drift and diffusion stage times (row sums of ``A0``, ``A1``; computed if ``None``).
        A0, A1, B0, B1: stage matrices, strictly lower triangular.
        alpha: drift weights; beta1..beta4: weights of :math:`I_{(1)}`,
            :math:`I_{(1,1)}/\sqrt h`, :math:`I_{(1,0)}/h`, :math:`I_{(1,1,1)}/h`.
        alpha_embedded: lower-order drift weights for the error estimate (default: Euler).
        strong_order: 1.5, or 1.0 for a Milstein-type tableau (selects the order conditions).
        deterministic_order: classical order when ``g = 0`` (1, 2 or 3).
        weak_order: the weak order its source states, a positive number (``None``: not
            stated). Not derived from the coefficients: the strong conditions checked here do
            not imply it.
    """

    c0: Vector | None
    c1: Vector | None
    A0: Rows
    A1: Rows
    B0: Rows
    B1: Rows
    alpha: Vector
    beta1: Vector
    beta2: Vector
    beta3: Vector
    beta4: Vector
    alpha_embedded: Vector | None = None
    strong_order: float = 1.5
    deterministic_order: int = 2
    weak_order: float | None = None

    _vectors = ("alpha", "beta1", "beta2", "beta3", "beta4")
    _matrices = ("A0", "A1", "B0", "B1")
    _row_sums = (("c0", "A0"), ("c1", "A1"))


@dataclass(frozen=True)
class SRATableau(_StochasticRKTableau):
    r"""Rößler's SRA method for SDEs with additive noise (module docstring).

    Attributes:
        c0: drift stage times (row sums of ``A0``; computed if ``None``).
        c1: diffusion times :math:`g(t + c^{(1)}_i h)` (free nodes).
        A0, B0: stage matrices, strictly lower triangular.
        alpha: drift weights; beta1, beta2: weights of :math:`I_{(1)}` and :math:`I_{(1,0)}/h`.
        alpha_embedded: lower-order drift weights for the error estimate (default: Euler).
        strong_order: 1.5 (or 1.0).
        deterministic_order: classical order when ``g = 0`` (1, 2 or 3).
        weak_order: the weak order its source states, a positive number (``None``: not stated).
    """

    c0: Vector | None
    c1: Vector
    A0: Rows
    B0: Rows
    alpha: Vector
    beta1: Vector
    beta2: Vector
    alpha_embedded: Vector | None = None
    strong_order: float = 1.5
    deterministic_order: int = 2
    weak_order: float | None = None

    _vectors = ("alpha", "beta1", "beta2", "c1")
    _matrices = ("A0", "B0")
    _row_sums = (("c0", "A0"),)


# --------------------------------------------------------------------------- SRI library

_SRIW_BETA1 = (-1, F(4, 3), F(2, 3), 0)
_SRIW_BETA3 = (2, F(-4, 3), F(-2, 3), 0)
_SRIW_BETA4 = (-2, F(5, 3), F(-2, 3), 1)
_SRIW_C1 = (0, F(1, 4), 1, F(1, 4))
_SRIW_A1 = ((), (F(1, 4),), (1, 0), (0, 0, F(1, 4)))

SRI1W1 = SRITableau(
    c0=(0, F(3, 4), 0, 0),
    c1=_SRIW_C1,
    A0=((), (F(3, 4),), (0, 0), (0, 0, 0)),
    A1=_SRIW_A1,
    B0=((), (F(3, 2),), (0, 0), (0, 0, 0)),
    B1=((), (F(1, 2),), (-1, 0), (-5, 3, F(1, 2))),
    alpha=(F(1, 3), F(2, 3), 0, 0),
    beta1=_SRIW_BETA1,
    beta2=(-1, F(4, 3), F(-1, 3), 0),
    beta3=_SRIW_BETA3,
    beta4=_SRIW_BETA4,
    deterministic_order=2,
    weak_order=2,
)

SRI2W1 = SRITableau(
    c0=(0, 1, F(1, 2), 0),
    c1=_SRIW_C1,
    A0=((), (1,), (F(1, 4), F(1, 4)), (0, 0, 0)),
    A1=_SRIW_A1,
    B0=((), (0,), (1, F(1, 2)), (0, 0, 0)),
    B1=((), (F(-1, 2),), (1, 0), (2, -1, F(1, 2))),
    alpha=(F(1, 6), F(1, 6), F(2, 3), 0),
    beta1=_SRIW_BETA1,
    beta2=(1, F(-4, 3), F(1, 3), 0),
    beta3=_SRIW_BETA3,
    beta4=_SRIW_BETA4,
    deterministic_order=3,
    weak_order=2,
)

SRIW1 = SRI1W1
SRIW2 = SRI2W1

SOSRI = SRITableau(
    c0=(0.0, -0.04199224421316468, 0.7898405466170333, 3.7504010171562823),
    c1=(0.0, 0.26204282091330466, 0.05879875232001766, 0.758661169101175),
    A0=(
        (),
        (-0.04199224421316468,),
        (2.842612915017106, -2.0527723684000727),
        (4.338237071435815, -2.8895936137439793, 2.3017575594644466),
    ),
    A1=(
        (),
        (0.26204282091330466,),
        (0.20903646383505375, -0.1502377115150361),
        (0.05836595312746999, 0.6149440396332373, 0.08535117634046772),
    ),
    B0=(
        (),
        (-0.21641093549612528,),
        (1.5336352863679572, 0.26066223492647056),
        (-1.0536037558179159, 1.7015284721089472, -0.20725685784180017),
    ),
    B1=(
        (),
        (-0.5119011827621657,),
        (2.67767339866713, -4.9395031322250995),
        (0.15580956238299215, 3.2361551006624674, -1.4223118283355949),
    ),
    alpha=(1.140099274172029, -0.6401334255743456, 0.4736296532772559, 0.026404498125060714),
    beta1=(-1.8453464565104432, 2.688764531100726, -0.2523866501071323, 0.40896857551684956),
    beta2=(0.4969658141589478, -0.5771202869753592, -0.12919702470322217, 0.2093514975196336),
    beta3=(2.8453464565104425, -2.688764531100725, 0.2523866501071322, -0.40896857551684945),
    beta4=(0.11522663875443433, -0.57877086147738, 0.2857851028163886, 0.17775911990655704),
    deterministic_order=2,
    weak_order=2,
)

SOSRI2 = SRITableau(
    c0=(0.0, 0.13804532298278663, 0.9999999999999992, 0.9999999999999994),
    c1=(0.0, 0.45605532163856893, 0.999999999999996, 0.9999999999999962),
    A0=(
        (),
        (0.13804532298278663,),
        (0.5818361298250374, 0.4181638701749618),
        (0.4670018408674211, 0.8046204792187386, -0.27162232008616016),
    ),
    A1=(
        (),
        (0.45605532163856893,),
        (0.7555807846451692, 0.24441921535482677),
        (0.6981181143266059, 0.3453277086024727, -0.04344582292908241),
    ),
    B0=(
        (),
        (0.08852381537667678,),
        (1.0317752458971061, 0.4563552922077882),
        (1.73078280444124, -0.46089678470929774, -0.9637509618944188),
    ),
    B1=(
        (),
        (0.6753186815412179,),
        (-0.07452812525785148, -0.49783736486149366),
        (-0.5591906709928903, 0.022696571806569924, -0.8984927888368557),
    ),
    alpha=(-0.15036858140642623, 0.7545275856696072, 0.686995463807979, -0.2911544680711602),
    beta1=(-0.45315689727309133, 0.8330937231303951, 0.3792843195533544, 0.24077885458934192),
    beta2=(-0.4994383733810986, 0.9181786186154077, -0.25613778661003145, -0.16260245862427797),
    beta3=(1.4531568972730915, -0.8330937231303933, -0.3792843195533583, -0.24077885458934023),
    beta4=(-0.4976090683622265, 0.9148155835648892, -1.4102107084476505, 0.9930041932449877),
    deterministic_order=2,
    weak_order=2,
)

# --------------------------------------------------------------------------- SRA library

SRA1 = SRATableau(
    c0=(0, F(3, 4)),
    c1=(1, 0),
    A0=((), (F(3, 4),)),
    B0=((), (F(3, 2),)),
    alpha=(F(1, 3), F(2, 3)),
    beta1=(1, 0),
    beta2=(-1, 1),
    deterministic_order=2,
    weak_order=2,
)

SRA2 = SRATableau(
    c0=(0, F(3, 4)),
    c1=(F(1, 3), 1),
    A0=((), (F(3, 4),)),
    B0=((), (F(3, 2),)),
    alpha=(F(1, 3), F(2, 3)),
    beta1=(0, 1),
    beta2=(F(3, 2), F(-3, 2)),
    deterministic_order=2,
    weak_order=2,
)

SRA3 = SRATableau(
    c0=(0, 1, F(1, 2)),
    c1=(1, 0, 0),
    A0=((), (1,), (F(1, 4), F(1, 4))),
    B0=((), (0,), (1, F(1, 2))),
    alpha=(F(1, 6), F(1, 6), F(2, 3)),
    beta1=(1, 0, 0),
    beta2=(-1, 1, 0),
    deterministic_order=3,
    weak_order=2,
)

SOSRA = SRATableau(
    c0=(0.0, 0.6923962376159507, 1.0),
    c1=(0.0, 0.041248171110700504, 1.0),
    A0=((), (0.6923962376159507,), (-3.1609142252828395, 4.1609142252828395)),
    B0=((), (1.3371632704399763,), (1.442371048468624, 1.8632741501139225)),
    alpha=(0.2889874966892885, 0.6859880440839937, 0.025024459226717772),
    beta1=(-16.792534242221663, 17.514995785380226, 0.27753845684143835),
    beta2=(0.4237535769069274, 0.6010381474428539, -1.0247917243497813),
    deterministic_order=2,
    weak_order=2,
)

SOSRA2 = SRATableau(
    c0=(0.0, 1.0, 1.0),
    c1=(0.0, 1.0, 1.0),
    A0=((), (1.0,), (0.9511849235504364, 0.04881507644956362)),
    B0=((), (0.7686101171003622,), (0.43886792994934987, 0.7490415909204886)),
    alpha=(0.4999999999999998, -0.9683897375354181, 1.4683897375354185),
    beta1=(0.0, 0.92438032145683, 0.07561967854316998),
    beta2=(1.0, -0.8169981105823436, -0.18300188941765633),
    deterministic_order=2,
    weak_order=2,
)

SRI_TABLEAUX: dict[str, SRITableau] = {
    "SRI1W1": SRI1W1,
    "SRI2W1": SRI2W1,
    "SOSRI": SOSRI,
    "SOSRI2": SOSRI2,
}
SRA_TABLEAUX: dict[str, SRATableau] = {
    "SRA1": SRA1,
    "SRA2": SRA2,
    "SRA3": SRA3,
    "SOSRA": SOSRA,
    "SOSRA2": SOSRA2,
}
