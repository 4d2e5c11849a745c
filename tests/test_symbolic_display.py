"""Textbook displays of formulas, and certificates that a formula is wrong."""

import pytest
import sympy as sp

from diffnb.ddim_demo import formula_names
from diffnb.symbolic import ddim as symd
from diffnb.symbolic.display import Aligned, Braced, Equation, Formula, certificate


def test_formula_keeps_the_typed_order_and_evaluates_for_checks():
    S = symd.ddim_symbols()
    f = Formula("sqrt(1 - abar_s - vs**2)/sqrt(1 - abar_t)", formula_names(S), "m")
    assert f.latex() == r"m = \frac{\sqrt{1 - \bar{\alpha}_{t-1} - \varsigma_{t}^{2}}}{\sqrt{1 - \bar{\alpha}_{t}}}"
    assert sp.simplify(f.expr - sp.sqrt(1 - S.abar_s - S.vs**2) / sp.sqrt(1 - S.abar_t)) == 0
    assert f._repr_latex_().startswith("$\\displaystyle m = ")
    assert repr(f) == "m = sqrt(1 - abar_s - vs**2)/sqrt(1 - abar_t)"


def test_equation_braced_and_aligned_displays():
    S = symd.ddim_symbols()
    N = formula_names(S)
    eq = Equation(Formula("k + m*sqrt(abar_t)", N), Formula("sqrt(abar_s)", N))
    assert eq.latex() == r"k + m \sqrt{\bar{\alpha}_{t}} = \sqrt{\bar{\alpha}_{t-1}}"
    br = Braced("x", [(Formula("vs*z", N), r"\text{noise}"), (Formula("k", N), "b")])
    assert br.latex() == r"x = \underbrace{\varsigma_{t} z}_{\text{noise}} + \underbrace{k}_{b}"
    assert br.expr == S.vs * S.z + S.k
    text = Aligned(eq, Formula("m", N, "y"))._repr_latex_()
    assert r"\begin{aligned} k + m \sqrt{\bar{\alpha}_{t}} &= " in text and r" \\ y &= m " in text


def test_certificate_is_exact_and_refuses_a_zero():
    x = sp.Symbol("x", positive=True)
    cert = certificate("r", x**2 - 2, {x: sp.Rational(1, 2)})
    assert cert.value == sp.Rational(-7, 4)
    assert cert.latex() == (r"r = - \frac{7}{4} \\ "
                            r"&\qquad \text{at } x = \frac{1}{2}")
    shown = cert._repr_latex_()  # the point on a second row, aligned
    assert shown.startswith(r"$\displaystyle \begin{aligned} r &= ")
    assert shown.endswith(r"\end{aligned}$")
    with pytest.raises(ValueError):
        certificate("r", x - 1, {x: 1})


def test_display_bad_input():
    with pytest.raises(TypeError, match="source"):
        Formula(1, {})
    with pytest.raises(TypeError, match="Formula"):
        Equation("a", "b")
    with pytest.raises(TypeError, match="pairs"):
        Braced("x", [("a", "b")])


def test_display_bad_arguments_name_the_argument():
    S = symd.ddim_symbols()
    f = Formula("1 - abar_t", formula_names(S))
    with pytest.raises(TypeError, match="names must be a dict"):
        Formula("1 - abar_t", None)
    with pytest.raises(TypeError, match="lhs must be a LaTeX str or None"):
        Formula("1 - abar_t", formula_names(S), 1)
    with pytest.raises(TypeError, match="lhs must be a LaTeX str, got NoneType"):
        Braced(None, [(f, "label")])
    with pytest.raises(TypeError, match="terms must be a list of"):
        Braced("x", None)
    with pytest.raises(TypeError, match="terms must be"):
        Braced("x", [(f, "a", "b")])
    with pytest.raises(TypeError, match=r"rows\[1\] must be a Formula, Equation, Braced or certificate"):
        Aligned(f, "x = 1")
    with pytest.raises(TypeError, match="lhs must be a LaTeX str"):
        certificate(None, S.x0 - 1, {S.x0: 2})
    with pytest.raises(TypeError, match="point must be a dict"):
        certificate("r", S.x0 - 1, [(S.x0, 2)])
    with pytest.raises(TypeError, match="expr must be a sympy expression"):
        certificate("r", "x0 - 1", {S.x0: 2})
    assert Aligned(f, Equation(f, f), certificate("r", S.x0 - 1, {S.x0: 2}))._repr_latex_()
