"""Chapter 1's derivations in SymPy: the forward marginal and the DDPM posterior.

Symbols (all positive; 0 < beta < 1 is assumed where it matters)::

    beta       DDPM's per-step variance beta_t        (DDPM's per-step alpha_t is 1 - beta)
    abar_prev  alpha_bar_{t-1}
    abar       alpha_bar_t = (1 - beta) * abar_prev
    x0, xt, x  x_0, x_t and the unknown x_{t-1}

Every function returns SymPy expressions; the chapter displays them and ``tests/test_symbolic_ddpm.py``
checks them against the closed forms of the DDPM paper.
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy as sp

__all__ = ["ddpm_symbols", "gaussian_log_density", "compose_gaussian_steps", "complete_the_square",
           "ddpm_posterior", "posterior_closed_form", "x0_from_eps_expr", "posterior_mean_eps_form",
           "is_zero"]


def ddpm_symbols():
    """The symbols of the DDPM derivations, in a namespace."""
    beta, abar_prev = sp.symbols(r"beta_t \bar{\alpha}_{t-1}", positive=True)
    x0, xt, x = sp.symbols("x_0 x_t x_{t-1}", real=True)
    eps, eps1, eps2 = sp.symbols(r"epsilon epsilon_1 epsilon_2", real=True)
    return SimpleNamespace(beta=beta, abar_prev=abar_prev, abar=(1 - beta) * abar_prev,
                           x0=x0, xt=xt, x=x, eps=eps, eps1=eps1, eps2=eps2)


def is_zero(expr) -> bool:
    """True when SymPy proves ``expr`` identically zero: logarithms expanded (all symbols are positive
    or real where they appear inside a log), then simplified, then a rational-function check."""
    expr = sp.simplify(sp.expand_log(expr, force=True))
    return expr == 0 or sp.simplify(sp.radsimp(sp.together(expr))) == 0


def gaussian_log_density(x, mean, var):
    """log N(x; mean, var) for a scalar (each coordinate of an isotropic Gaussian)."""
    return -(x - mean) ** 2 / (2 * var) - sp.log(2 * sp.pi * var) / 2


def compose_gaussian_steps(a1, v1, a2, v2):
    """Mean coefficient and variance of x_2 = a2 x_1 + sqrt(v2) e_2 when x_1 = a1 x_0 + sqrt(v1) e_1.

    Independent standard normal e_1, e_2: the sum is Gaussian with mean a2 a1 x_0 and variance
    a2^2 v1 + v2. Returns ``(mean_coefficient, variance)``.
    """
    return sp.expand(a2 * a1), sp.expand(a2**2 * v1 + v2)


def complete_the_square(log_density, x):
    """Read off mean and variance of the Gaussian in ``x`` whose log density is ``log_density``.

    Write log_density = -(A x^2 - 2 B x) / 2 + (terms free of x); then var = 1/A, mean = B/A.
    Returns ``(mean, var, A, B)``; raises ``ValueError`` if the expression is not quadratic in x.
    """
    poly = sp.Poly(sp.expand(log_density), x)
    if poly.degree() != 2:
        raise ValueError(f"log_density must be quadratic in {x}, got degree {poly.degree()}")
    A = sp.simplify(-2 * poly.coeff_monomial(x**2))
    B = sp.simplify(poly.coeff_monomial(x))
    return sp.simplify(B / A), sp.simplify(1 / A), A, B


def ddpm_posterior(S=None):
    """q(x_{t-1} | x_t, x_0) by Bayes' rule, log q(x_t | x_{t-1}) + log q(x_{t-1} | x_0) in x_{t-1},
    by completing the square. Returns ``(mean, var, log_joint)``."""
    S = S or ddpm_symbols()
    log_joint = (gaussian_log_density(S.xt, sp.sqrt(1 - S.beta) * S.x, S.beta)
                 + gaussian_log_density(S.x, sp.sqrt(S.abar_prev) * S.x0, 1 - S.abar_prev))
    mean, var, _, _ = complete_the_square(log_joint, S.x)
    return mean, var, log_joint


def posterior_closed_form(S=None):
    """DDPM's eq. (7): mean = sqrt(abar_{t-1}) beta/(1 - abar) x0 + sqrt(1 - beta)(1 - abar_{t-1})/(1 - abar) xt,
    var = (1 - abar_{t-1}) / (1 - abar) * beta (beta-tilde)."""
    S = S or ddpm_symbols()
    mean = (sp.sqrt(S.abar_prev) * S.beta / (1 - S.abar) * S.x0
            + sp.sqrt(1 - S.beta) * (1 - S.abar_prev) / (1 - S.abar) * S.xt)
    var = (1 - S.abar_prev) / (1 - S.abar) * S.beta
    return mean, var


def x0_from_eps_expr(S=None):
    """Solve x_t = sqrt(abar) x0 + sqrt(1 - abar) eps for x0."""
    S = S or ddpm_symbols()
    (sol,) = sp.solve(sp.Eq(S.xt, sp.sqrt(S.abar) * S.x0 + sp.sqrt(1 - S.abar) * S.eps), S.x0)
    return sol


def posterior_mean_eps_form(S=None):
    """DDPM's sampling mean (Algorithm 2): (x_t - beta / sqrt(1 - abar) * eps) / sqrt(1 - beta)."""
    S = S or ddpm_symbols()
    return (S.xt - S.beta / sp.sqrt(1 - S.abar) * S.eps) / sp.sqrt(1 - S.beta)
