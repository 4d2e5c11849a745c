"""The SymPy tools every chapter module shares: proofs of zero and certificates of non-zero, Gaussian
densities, moments, expectations and divergences, the drift and diffusion of a Gaussian path, and the
series tools behind local orders of accuracy.

Notation::

    x, mean, var     a scalar (one coordinate of an isotropic Gaussian), its mean and its variance
    u, eps           independent standard normals
    alpha, sigma     the scales of a Gaussian path x_t = alpha_t x_0 + sigma_t eps (any path: VP, VE,
                     flow matching; alpha^2 + sigma^2 = 1 is never assumed here)
    f, g2            the drift f = d log alpha / dt and the squared diffusion g^2 = d sigma^2/dt - 2 f sigma^2
    h                the step of a local-error expansion
    relation         a substitution {symbol: expression} that ties the book's symbols together (e.g.
                     alpha-bar_t = (1 - beta_t) alpha-bar_{t-1}); checks apply it, displays never do

Display: ``textbook_forms`` of each chapter module returns closed forms; ``show`` / ``latex`` print them
with their terms in the order they were written (``order="none"``), as the papers print them.

Arguments: a function that takes a namespace of symbols (``S`` from ``ddim.ddim_symbols()``, ...) checks
its kind (``namespace``: a ``TypeError`` naming the argument and the factory that makes one);
expressions are checked by ``expression`` (SymPy objects, and finite real numbers where a number is
meant; ``TypeError`` for a str, None or anything else, ``ValueError`` for NaN or infinity) and passed on
unchanged, so that every result is what it was without the check.

Verdicts: ``is_zero`` is a proof that an expression vanishes identically (True) or a failure to find
one (False, which proves nothing). A formula is certified *wrong* by ``nonzero_at``: the exact,
non-zero value of the residual at an exact point.
"""

from __future__ import annotations

import math
import numbers
from types import SimpleNamespace

import sympy as sp
from sympy.core.evalf import PrecisionExhausted
from sympy.core.function import AppliedUndef

__all__ = ["latex", "show", "in_order", "is_zero", "nonzero_at", "gaussian_log_density", "gaussian_density",
           "complete_the_square", "gaussian_moments", "gaussian_expectation", "gaussian_kl", "drift_diffusion",
           "truncate", "ode_series", "local_order"]


# --- argument checks ---------------------------------------------------------------------------------
class Symbols(SimpleNamespace):
    """A namespace of symbols made by one factory of the chapter modules; each factory returns its own
    subclass, whose ``factory`` names it (checked by ``namespace``)."""

    factory = "a diffnb.symbolic factory"


def namespace(S, kind, name: str = "S"):
    """``S`` must be a namespace of type ``kind`` (a ``Symbols`` subclass), e.g. from ``ddim_symbols()``."""
    if not isinstance(S, kind):
        got = f"the namespace of {type(S).factory}" if isinstance(S, Symbols) else type(S).__name__
        raise TypeError(f"{name} must be the symbol namespace of {kind.factory}, got {got}")
    return S


def expression(value, name: str, *, number: bool = True):
    """``value``, unchanged, if it is a SymPy expression (or matrix) or, with ``number``, a finite real
    number. ``TypeError`` for a str, None or any other type; ``ValueError`` for NaN or infinity."""
    if isinstance(value, (sp.Basic, sp.MatrixBase)):
        if isinstance(value, sp.Basic) and value.has(sp.nan, sp.zoo):
            raise ValueError(f"{name} must be finite, got {value}")
        return value
    if number and isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        return value
    what = "a sympy expression or a real number" if number else "a sympy expression"
    raise TypeError(f"{name} must be {what}, got {type(value).__name__}")


def variable(x, name: str):
    """A SymPy symbol or an applied undefined function (e.g. alpha(t)): what one differentiates in, or solves for."""
    if not isinstance(x, (sp.Symbol, AppliedUndef)):
        raise TypeError(f"{name} must be a sympy Symbol (or an undefined function of one), got {type(x).__name__}")
    return x


def positive_expression(value, name: str, *, zero: bool = False):
    """An ``expression`` that may be symbolic but is not a non-positive number: a variance or a scale that
    is divided by, or taken the square root or logarithm of (``zero=True`` admits 0). Returned unchanged."""
    expression(value, name)
    v = value if isinstance(value, sp.MatrixBase) else sp.sympify(value)
    if isinstance(v, sp.Basic) and (v.is_negative or (v.is_zero and not zero)):
        raise ValueError(f"{name} must be {'non-negative' if zero else 'positive'}, got {value}")
    return value


def integer(n, name: str, minimum: int = 0) -> int:
    """An int (or a SymPy Integer) of at least ``minimum``, returned unchanged."""
    if isinstance(n, bool) or not isinstance(n, (int, sp.Integer)):
        raise TypeError(f"{name} must be an int, got {type(n).__name__}")
    if n < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {n}")
    return n


def expressions(values, name: str, *, empty: bool = False) -> list:
    """A list or tuple of ``expression``s (numbers allowed), returned unchanged."""
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple of sympy expressions, got {type(values).__name__}")
    if not values and not empty:
        raise ValueError(f"{name} must not be empty")
    for i, v in enumerate(values):
        expression(v, f"{name}[{i}]")
    return values


def relation_(relation, name: str = "relation"):
    """None or a dict {symbol: expression} of substitutions."""
    if relation is not None and not isinstance(relation, dict):
        raise TypeError(f"{name} must be a dict {{symbol: expression}} or None, got {type(relation).__name__}")
    return relation


# --- display ----------------------------------------------------------------------------------------
def latex(expr) -> str:
    """LaTeX of ``expr`` with its terms in stored order (``order="none"``): 1 - alpha-bar_t, not -alpha-bar_t + 1."""
    expression(expr, "expr")
    return sp.latex(expr, order="none")


def show(expr):
    """``expr`` (an ``Eq`` from a ``textbook_forms``) as display math for a notebook cell, via ``latex``."""
    from IPython.display import Math

    expression(expr, "expr")
    return Math(latex(expr))


def in_order(*terms):
    """The sum of ``terms``, kept unevaluated so that ``latex`` prints them in the order a textbook writes
    them (SymPy's own order would put e.g. -1 before e^h). Any arithmetic on it evaluates it."""
    for i, term in enumerate(terms):
        expression(term, f"terms[{i}]")
    return sp.Add(*terms, evaluate=False)


# --- verdicts ----------------------------------------------------------------------------------------
def _split_log(arg):
    """log(arg) as log|c| + sum e_i log(p_i) over the factorisation arg = c prod p_i^e_i into irreducible p_i
    with positive leading coefficients: one canonical form, so that the logarithms of two equal arguments
    cancel however they were written. Every log(p_i) is read as log|p_i| (the book's logarithms all have
    positive arguments), which is what makes dropping the sign of c exact."""
    const, total = sp.Integer(1), sp.Integer(0)
    for part, sign in zip(sp.fraction(sp.together(arg)), (1, -1)):
        try:
            coeff, factors = sp.factor_list(part)
        except sp.PolynomialError:
            return sp.expand_log(sp.log(arg), force=True)
        const *= coeff**sign
        for p, e in factors:
            if sp.Poly(p).LC().is_negative:
                p, const = -p, const * (-1) ** (sign * e)
            total += sign * e * sp.expand_log(sp.log(p), force=True)
    return sp.log(abs(const)) + total  # read every log(p_i) as log|p_i|: the book's logs have positive arguments


def is_zero(expr, relation=None) -> bool:
    """True when SymPy proves ``expr`` identically zero (after substituting ``relation``).

    A rational function of its symbols is decided exactly (``cancel``); anything else has its logarithms
    split over the irreducible factors of their arguments (every quantity under a log is positive in the
    book), then is simplified and its radicals rationalised.
    """
    expr = sp.sympify(expression(expr, "expr"))
    if relation_(relation):
        expr = expr.subs(relation)
    expr = expr.doit()
    if expr.is_rational_function():
        return sp.cancel(sp.together(expr)) == 0
    expr = expr.replace(lambda e: isinstance(e, sp.log), lambda e: _split_log(e.args[0]))
    if sp.expand(expr) == 0:
        return True
    expr = sp.simplify(expr)
    return expr == 0 or sp.simplify(sp.radsimp(sp.together(expr))) == 0


def _is_exact(value) -> bool:
    return isinstance(value, sp.Lambda) or (value.is_number and not value.has(sp.Float))


def nonzero_at(expr, point, relation=None):
    """The exact value of ``expr`` at ``point``, certified non-zero: the certificate that a formula is wrong.

    ``point`` maps symbols to exact numbers (rationals, radicals, ``log(2)``, ...) and undefined functions
    (matched by name) to ``sympy.Lambda`` objects; ``relation`` is substituted first. A rational value is
    exact; an algebraic one is certified by its minimal polynomial; any other by ``evalf(strict=True)``,
    which refuses to return digits it cannot guarantee. Raises ``TypeError`` for an inexact point, ``ValueError`` if
    symbols are left over or the value is zero.
    """
    expr = sp.sympify(expression(expr, "expr"))
    if not isinstance(point, dict):
        raise TypeError(f"point must be a dict {{symbol: exact number}}, got {type(point).__name__}")
    relation_(relation)
    for key, value in point.items():
        if not _is_exact(sp.sympify(value)):
            raise TypeError(f"point[{key}] must be an exact number or a sympy Lambda, got {value!r}")
    if relation:
        expr = expr.subs(relation)
    functions = {k: v for k, v in point.items() if isinstance(k, sp.FunctionClass)}
    for f, lam in functions.items():  # by name (whatever its assumptions); replace also reaches into Integrals
        expr = expr.replace(lambda e: isinstance(e, AppliedUndef) and e.func.__name__ == f.__name__,
                            lambda e, lam=lam: lam(*e.args))
    value = expr.subs({k: v for k, v in point.items() if k not in functions}).doit()
    left = value.free_symbols | {e.func for e in value.atoms(AppliedUndef)}
    if left:
        raise ValueError(f"point leaves {sorted(map(str, left))} free in expr")
    value = sp.radsimp(sp.simplify(value))
    if value.is_Rational:
        certified = value != 0
    elif value.is_algebraic:
        t = sp.Dummy("t")
        certified = sp.minimal_polynomial(value, t) != t
    else:
        try:
            certified = value.evalf(50, strict=True) != 0
        except PrecisionExhausted:
            certified = False
    if not certified:
        raise ValueError(f"expr vanishes at {point}: no certificate")
    return value


# --- Gaussians ---------------------------------------------------------------------------------------
def _gaussian_args(x, mean, var):
    return expression(x, "x"), expression(mean, "mean"), positive_expression(var, "var")


def gaussian_log_density(x, mean, var):
    """log N(x; mean, var) for a scalar (each coordinate of an isotropic Gaussian)."""
    x, mean, var = _gaussian_args(x, mean, var)
    return -(x - mean) ** 2 / (2 * var) - sp.log(2 * sp.pi * var) / 2


def gaussian_density(x, mean, var):
    """N(x; mean, var)."""
    x, mean, var = _gaussian_args(x, mean, var)
    return sp.exp(-(x - mean) ** 2 / (2 * var)) / sp.sqrt(2 * sp.pi * var)


def complete_the_square(log_density, x):
    """``(mean, var)`` of the Gaussian in ``x`` whose log density is ``log_density`` (up to constants).

    Write log_density = -(A x^2 - 2 B x) / 2 + (terms free of x); then var = 1/A and mean = B/A.
    Raises ``ValueError`` if ``log_density`` is not quadratic in ``x``.
    """
    log_density, x = expression(log_density, "log_density"), variable(x, "x")
    poly = sp.Poly(sp.expand(log_density), x)
    if poly.degree() != 2:
        raise ValueError(f"log_density must be quadratic in {x}, got degree {poly.degree()}")
    A, B = -2 * poly.coeff_monomial(x**2), poly.coeff_monomial(x)
    return sp.factor(sp.cancel(B / A)), sp.factor(sp.cancel(1 / A))


def gaussian_moments(expr, x0, noises):
    """``(coefficient of x0, variance)`` of ``expr``, linear in ``x0`` and in independent standard normals
    ``noises``; raises ``ValueError`` if anything else is left over."""
    expr, x0 = expression(expr, "expr"), variable(x0, "x0")
    if not isinstance(noises, (list, tuple)) or not all(isinstance(n, sp.Symbol) for n in noises):
        raise TypeError(f"noises must be a list of sympy Symbols, got {noises!r}")
    expr = sp.expand(expr)
    coef = expr.coeff(x0)
    coefs = [expr.coeff(n) for n in noises]
    rest = sp.simplify(expr - coef * x0 - sum(c * n for c, n in zip(coefs, noises)))
    if rest != 0 or any(c.has(x0, *noises) for c in [coef, *coefs]):
        raise ValueError(f"expr must be linear in {x0} and in the noises {noises}, left over: {rest}")
    return coef, sp.expand(sum(c**2 for c in coefs))


def gaussian_expectation(expr, normals):
    """E[expr] for ``expr`` polynomial in independent standard normals ``normals`` (any coefficients):
    E[u^k] = (k - 1)!! for even k and 0 for odd k."""
    expr = expression(expr, "expr")
    if not isinstance(normals, (list, tuple)):
        raise TypeError(f"normals must be a non-empty list of sympy Symbols, got {type(normals).__name__}")
    normals = list(normals)
    if not normals or not all(isinstance(u, sp.Symbol) for u in normals):
        raise TypeError("normals must be a non-empty list of sympy Symbols")
    poly = sp.Poly(sp.expand(expr), *normals)
    moment = lambda k: sp.factorial2(k - 1) if k % 2 == 0 else 0  # noqa: E731
    return sp.expand(sum(coef * sp.prod([moment(k) for k in powers]) for powers, coef in poly.terms()))


def gaussian_kl(mean_q, var_q, mean_p, var_p):
    """KL(N(mean_q, var_q) || N(mean_p, var_p)), derived as E_q[log q - log p] with x = mean_q + sqrt(var_q) u.

    Means may be sequences of one length d (isotropic Gaussians in d dimensions): the KL is then the
    sum over coordinates. Result: log(var_p/var_q)/2 + (var_q + (mean_q - mean_p)^2)/(2 var_p) - 1/2 per
    coordinate (not typed here: the test compares it)."""
    var_q, var_p = positive_expression(var_q, "var_q"), positive_expression(var_p, "var_p")
    seq_q, seq_p = isinstance(mean_q, (list, tuple)), isinstance(mean_p, (list, tuple))
    if not seq_q:
        expression(mean_q, "mean_q")
    if not seq_p:
        expression(mean_p, "mean_p")
    if seq_q or seq_p:
        if not (seq_q and seq_p) or len(mean_q) != len(mean_p):
            raise ValueError("mean_q and mean_p must both be scalars or both sequences of one length")
        return sp.expand(sum(gaussian_kl(a, var_q, b, var_p) for a, b in zip(mean_q, mean_p)))
    x, u = sp.Dummy("x", real=True), sp.Dummy("u", real=True)
    log_ratio = gaussian_log_density(x, mean_q, var_q) - gaussian_log_density(x, mean_p, var_p)
    kl = gaussian_expectation(log_ratio.subs(x, mean_q + sp.sqrt(var_q) * u), [u])
    return sp.expand(sp.expand_log(kl, force=True))


def drift_diffusion(alpha, sigma, t):
    """``(f, g2)`` of the SDE dx = f x dt + g dw whose marginals are x_t = alpha_t x_0 + sigma_t eps (any
    path): f = d log alpha_t / dt and g^2 = d sigma_t^2 / dt - 2 f sigma_t^2 (Kingma et al. 2021; Lu et al.
    2022, eq. 2.2), from mean' = f mean and variance' = 2 f variance + g^2."""
    alpha, sigma = positive_expression(alpha, "alpha"), expression(sigma, "sigma")
    t = variable(t, "t")
    f = sp.diff(sp.log(alpha), t)
    return f, sp.diff(sigma**2, t) - 2 * f * sigma**2


# --- series and local orders ------------------------------------------------------------------------
def truncate(expr, h, K):
    """The Taylor polynomial of ``expr`` in ``h`` at 0 up to h^K (exactly the low terms of a polynomial)."""
    expr, h = expression(expr, "expr"), variable(h, "h")
    integer(K, "K")
    expr = sp.expand(expr)
    if not expr.is_polynomial(h):
        expr = sp.expand(sp.series(expr, h, 0, K + 1).removeO())
    return sp.Add(*[c * h**m for (m,), c in sp.Poly(expr, h).terms() if m <= K])


def ode_series(G, y, lam, y0, h, K):
    """The Taylor polynomial (degree K) in h of the solution of dy/dlam = G(y, lam) with y(0) = y0, at
    lam = h, from repeated total derivatives d/dlam = partial_lam + G partial_y."""
    G, y0 = expression(G, "G"), expression(y0, "y0")
    y, lam, h = variable(y, "y"), variable(lam, "lam"), variable(h, "h")
    integer(K, "K")
    total, deriv = y0, G
    for n in range(1, K + 1):
        total += deriv.subs({y: y0, lam: 0}, simultaneous=True) * h**n / sp.factorial(n)
        deriv = sp.expand(sp.diff(deriv, lam) + G * sp.diff(deriv, y))
    return sp.expand(total)


def local_order(residual, h, n_max: int = 6):
    """``(p, C)`` with residual = C h^p + O(h^{p+1}): the lowest power of ``h`` with a non-zero coefficient
    among h^0 .. h^(n_max - 1); ``(sympy.oo, 0)`` if all of them vanish. ``C`` is returned so that a check
    can certify it non-zero with ``nonzero_at``."""
    if not isinstance(h, sp.Symbol):
        raise TypeError(f"h must be a sympy Symbol, got {type(h).__name__}")
    if isinstance(n_max, bool) or not isinstance(n_max, int) or n_max < 1:
        raise ValueError(f"n_max must be a positive int, got {n_max!r}")
    expression(residual, "residual")
    poly = truncate(residual, h, n_max - 1)
    for p in range(n_max):
        c = sp.expand(poly.coeff(h, p))
        if not is_zero(c):
            return p, sp.factor(c)
    return sp.oo, sp.Integer(0)
