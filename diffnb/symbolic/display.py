"""Formulas displayed as a textbook prints them, and certificates that a formula is wrong.

SymPy prints an expression in its own canonical order, often expanded. A ``Formula`` is typed once, in
the order a textbook prints it, and keeps that order for display while its evaluated SymPy expression
``expr`` is what checks use; ``Equation``, ``Braced`` and ``Aligned`` compose formulas into one display.
``certificate`` shows the exact non-zero value of an expression at an exact point (``core.nonzero_at``).
"""

from __future__ import annotations

import sympy as sp
from sympy.parsing.sympy_parser import parse_expr

from .core import nonzero_at

__all__ = ["Formula", "Equation", "Braced", "Aligned", "certificate"]


def _lhs(lhs, optional=False):
    if not (isinstance(lhs, str) or (optional and lhs is None)):
        raise TypeError(f"lhs must be a LaTeX str{' or None' if optional else ''}, got {type(lhs).__name__}")
    return lhs


class Formula:
    """A closed form typed once, in the order a textbook prints it.

    ``source`` is Python syntax over ``names`` (a dict of SymPy symbols, ``formula_names``).
    ``expr`` is the evaluated SymPy expression, for checks; the display keeps the typed order
    (``sympy.latex(..., order="none")`` of the unevaluated parse). ``lhs`` is LaTeX.
    """

    def __init__(self, source: str, names: dict, lhs: str | None = None):
        if not isinstance(source, str):
            raise TypeError(f"source must be a str, got {type(source).__name__}")
        if not isinstance(names, dict):
            raise TypeError(f"names must be a dict {{name: sympy Symbol}}, got {type(names).__name__}")
        _lhs(lhs, optional=True)
        self.source, self.lhs = source, lhs
        local = {"sqrt": sp.sqrt, "log": sp.log, "pi": sp.pi, "E": sp.E, **names}
        self.expr = parse_expr(source, local_dict=dict(local))
        self._shown = parse_expr(source, local_dict=dict(local), evaluate=False)

    def body(self) -> str:
        return sp.latex(self._shown, order="none")

    def latex(self) -> str:
        return self.body() if self.lhs is None else f"{self.lhs} = {self.body()}"

    def _repr_latex_(self):
        return f"$\\displaystyle {self.latex()}$"

    def __repr__(self):
        return self.source if self.lhs is None else f"{self.lhs} = {self.source}"


class Equation:
    """``lhs = rhs`` with both sides ``Formula`` objects (e.g. a matching equation)."""

    def __init__(self, lhs: Formula, rhs: Formula):
        if not (isinstance(lhs, Formula) and isinstance(rhs, Formula)):
            raise TypeError("lhs and rhs must be Formula objects")
        self.lhs, self.rhs = lhs, rhs

    def latex(self) -> str:
        return f"{self.lhs.body()} = {self.rhs.body()}"

    def _repr_latex_(self):
        return f"$\\displaystyle {self.latex()}$"

    def __repr__(self):
        return f"{self.lhs.source} = {self.rhs.source}"


class Braced:
    """A sum of ``Formula`` terms, each under an underbrace with its label (LaTeX, e.g.
    ``r"\\text{random noise}"``): the display of DDIM's eq. (12)."""

    def __init__(self, lhs: str, terms):
        if not isinstance(terms, (list, tuple)):
            raise TypeError(f"terms must be a list of (Formula, str) pairs, got {type(terms).__name__}")
        self.lhs, self.terms = _lhs(lhs), list(terms)
        for pair in self.terms:
            if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], Formula)
                    and isinstance(pair[1], str)):
                raise TypeError(f"terms must be (Formula, str) pairs, got {pair!r}")
        self.expr = sp.Add(*[term.expr for term, _ in self.terms])

    def latex(self) -> str:
        parts = [rf"\underbrace{{{t.body()}}}_{{{lab}}}" for t, lab in self.terms]
        return f"{self.lhs} = " + " + ".join(parts)

    def _repr_latex_(self):
        return f"$\\displaystyle {self.latex()}$"

    def __repr__(self):
        return f"{self.lhs} = " + " + ".join(f"[{lab}: {t.source}]" for t, lab in self.terms)


class Aligned:
    """Several formulas (or certificates) displayed one per line, aligned at their = signs."""

    def __init__(self, *rows):
        for i, row in enumerate(rows):
            if not isinstance(row, (Formula, Equation, Braced, _Certificate)):
                raise TypeError(f"rows[{i}] must be a Formula, Equation, Braced or certificate, "
                                f"got {type(row).__name__}")
        self.rows = list(rows)

    def _repr_latex_(self):
        lines = [r.latex().replace(" = ", " &= ", 1) for r in self.rows]
        return "$\\displaystyle \\begin{aligned} " + r" \\ ".join(lines) + r" \end{aligned}$"

    def __repr__(self):
        return "\n".join(repr(r) for r in self.rows)


class _Certificate:
    def __init__(self, lhs, value, point):
        self.lhs, self.value, self.point = lhs, value, point

    def latex(self):
        where = ", ".join(f"{sp.latex(k)} = {sp.latex(v)}" for k, v in self.point.items())
        # the point on a line of its own, so that the display fits the text column
        return (rf"{self.lhs} = {sp.latex(self.value)} \\ "
                rf"&\qquad \text{{at }} {where}")

    def _repr_latex_(self):
        return Aligned(self)._repr_latex_()

    def __repr__(self):
        return f"{self.lhs} = {self.value} at {self.point}"


def certificate(lhs: str, expr, point: dict):
    """The exact non-zero value of ``expr`` at the exact ``point`` (``symbolic.core.nonzero_at``),
    as a displayable line "lhs = value at point": the certificate that a formula is wrong."""
    _lhs(lhs)
    return _Certificate(lhs, nonzero_at(expr, point), point)
