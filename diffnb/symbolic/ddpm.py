"""Chapter 1's derivations in SymPy: the forward marginal, the DDPM posterior, the ELBO term L_{t-1}
and the two-step chain behind respacing.

Symbols (all positive; 0 < beta_t < 1)::

    beta        beta_t, DDPM's per-step variance (DDPM's per-step alpha_t is 1 - beta_t)
    abar_prev   alpha-bar_{t-1}
    abar        alpha-bar_t, a symbol of its own, so that 1 - alpha-bar_t prints as the papers print it
    relation    {abar: (1 - beta) abar_prev}: alpha-bar_t = (1 - beta_t) alpha-bar_{t-1}, substituted
                inside checks only (``core.is_zero(expr, S.relation)``)
    x0, xt, x   x_0, x_t and the unknown x_{t-1}
    eps         the noise in x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps;  eps_theta the model's prediction
    vs          varsigma_t, the standard deviation of the model's kernel p_theta(x_{t-1} | x_t) (DDPM's
                sigma_t and DDIM's sigma_t: the book keeps sigma_t for sqrt(1 - alpha-bar_t))

Derived results (``ddpm_posterior``, ``elbo_term``, ``two_step_posterior``) are checked in
``tests/test_symbolic_ddpm.py`` against the closed forms that ``textbook_forms`` displays.
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy as sp

from .core import (Symbols, complete_the_square, expression, gaussian_kl, gaussian_log_density, gaussian_moments,
                   namespace, positive_expression, variable)

__all__ = ["ddpm_symbols", "compose_gaussian_steps", "bayes_posterior", "ddpm_posterior", "posterior_closed_form",
           "x0_from_eps_expr", "posterior_mean_eps_form", "elbo_term", "elbo_weight_closed_form",
           "two_step_posterior", "textbook_forms"]


class DDPMSymbols(Symbols):
    """The namespace ``ddpm_symbols`` returns."""

    factory = "diffnb.symbolic.ddpm.ddpm_symbols()"


def _S(S):
    """``S`` if given (checked), else a fresh ``ddpm_symbols()``."""
    return ddpm_symbols() if S is None else namespace(S, DDPMSymbols)


def ddpm_symbols():
    """The symbols of the DDPM derivations, in a namespace (see the module docstring)."""
    beta, abar_prev, abar = sp.symbols(r"beta_t \bar{\alpha}_{t-1} \bar{\alpha}_{t}", positive=True)
    x0, xt, x = sp.symbols("x_0 x_t x_{t-1}", real=True)
    eps, eps_theta = sp.symbols(r"epsilon \epsilon_\theta", real=True)
    vs = sp.Symbol(r"\varsigma_{t}", positive=True)
    return DDPMSymbols(beta=beta, abar_prev=abar_prev, abar=abar, relation={abar: (1 - beta) * abar_prev},
                       x0=x0, xt=xt, x=x, eps=eps, eps_theta=eps_theta, vs=vs)


def compose_gaussian_steps(a1, v1, a2, v2):
    """``(mean coefficient, variance)`` of x_2 = a2 x_1 + sqrt(v2) e_2 when x_1 = a1 x_0 + sqrt(v1) e_1,
    e_1 and e_2 independent standard normals (the forward marginal, one step at a time)."""
    a1, a2 = expression(a1, "a1"), expression(a2, "a2")
    v1, v2 = positive_expression(v1, "v1", zero=True), positive_expression(v2, "v2", zero=True)
    x0, e1, e2 = sp.symbols("x_0 e_1 e_2", real=True)
    return gaussian_moments(a2 * (a1 * x0 + sp.sqrt(v1) * e1) + sp.sqrt(v2) * e2, x0, [e1, e2])


def bayes_posterior(xt, x, x0, a, v, abar_prev):
    """q(x | x_t, x_0) from q(x_t | x) = N(a x, v) and q(x | x_0) = N(sqrt(abar_prev) x_0, 1 - abar_prev):
    Bayes' rule in x, by completing the square. Returns ``(mean, var, log_joint)``."""
    xt, x, x0 = expression(xt, "xt"), variable(x, "x"), expression(x0, "x0")
    a, v = expression(a, "a"), positive_expression(v, "v")
    prior = sp.sympify(positive_expression(abar_prev, "abar_prev", zero=True))
    if isinstance(prior, sp.Basic) and prior.is_number and not prior < 1:
        raise ValueError(f"abar_prev must be below 1 (the prior variance is 1 - abar_prev), got {abar_prev}")
    log_joint = gaussian_log_density(xt, a * x, v) + gaussian_log_density(x, sp.sqrt(abar_prev) * x0, 1 - abar_prev)
    return (*complete_the_square(log_joint, x), log_joint)


def ddpm_posterior(S=None):
    """q(x_{t-1} | x_t, x_0) for DDPM's kernel q(x_t | x_{t-1}) = N(sqrt(1 - beta) x_{t-1}, beta).
    Returns ``(mean, var, log_joint)``; the mean and variance come out in beta and abar_{t-1} only."""
    S = _S(S)
    return bayes_posterior(S.xt, S.x, S.x0, sp.sqrt(1 - S.beta), S.beta, S.abar_prev)


def posterior_closed_form(S=None):
    """DDPM's eq. (7):
    mu-tilde = sqrt(abar_{t-1}) beta/(1 - abar_t) x_0 + sqrt(1 - beta)(1 - abar_{t-1})/(1 - abar_t) x_t
    and beta-tilde = (1 - abar_{t-1})/(1 - abar_t) beta. Returns ``(mean, var)``."""
    S = _S(S)
    mean = (sp.sqrt(S.abar_prev) * S.beta / (1 - S.abar) * S.x0
            + sp.sqrt(1 - S.beta) * (1 - S.abar_prev) / (1 - S.abar) * S.xt)
    return mean, (1 - S.abar_prev) / (1 - S.abar) * S.beta


def x0_from_eps_expr(S=None):
    """Solve x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps for x_0."""
    S = _S(S)
    (sol,) = sp.solve(sp.Eq(S.xt, sp.sqrt(S.abar) * S.x0 + sp.sqrt(1 - S.abar) * S.eps), S.x0)
    return sol


def posterior_mean_eps_form(S=None, eps=None):
    """DDPM's sampling mean (its eq. 11, Algorithm 2): (x_t - beta/sqrt(1 - abar_t) eps)/sqrt(1 - beta)."""
    S = _S(S)
    eps = S.eps if eps is None else expression(eps, "eps")
    return (S.xt - S.beta / sp.sqrt(1 - S.abar) * eps) / sp.sqrt(1 - S.beta)


def elbo_term(S=None):
    """The ELBO term L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t)) for the model
    p_theta = N(mu_theta, varsigma_t^2) with mu_theta the sampling mean at eps_theta, and x_0 written
    through x_t and eps. Returns a namespace: ``kl`` (under the relation, so in beta and abar_t), ``weight``
    (half the second derivative of kl in eps_theta) and ``constant`` (kl at eps_theta = eps), with
    kl = weight (eps - eps_theta)^2 + constant exactly (checked in the tests)."""
    S = _S(S)
    mean, var = posterior_closed_form(S)
    mean_true = mean.subs(S.x0, x0_from_eps_expr(S))  # mu-tilde(x_t, x_0(x_t, eps))
    gap = sp.factor(sp.simplify((mean_true - posterior_mean_eps_form(S, S.eps_theta)).subs(S.relation)))
    kl = gaussian_kl(gap, var.subs(S.relation), 0, S.vs**2)  # a KL is unchanged by a common shift of both means
    kl = kl.subs(S.abar_prev, S.abar / (1 - S.beta))  # back to alpha-bar_t (no radicals are left in kl)
    weight = sp.factor(sp.diff(kl, S.eps_theta, 2) / 2)
    return SimpleNamespace(kl=kl, weight=weight, constant=sp.simplify(kl.subs(S.eps_theta, S.eps)))


def elbo_weight_closed_form(S=None):
    """The weight of Ho et al.'s eq. (12): beta_t^2 / (2 varsigma_t^2 (1 - beta_t)(1 - abar_t)).
    L_simple is L_{t-1} with this weight (and the constant) dropped."""
    S = _S(S)
    return S.beta**2 / (2 * S.vs**2 * (1 - S.beta) * (1 - S.abar))


def two_step_posterior():
    """DDPM's chain over two steps x_{t-2} -> x_{t-1} -> x_t (betas beta_{t-1}, beta_t), composed, then Bayes'
    rule for q(x_{t-2} | x_t, x_0). Returns ``(mean, var, T)`` with T the namespace of its symbols; the
    respaced posterior (``ddim.posterior_moments_expr`` with s = t-2) is the comparison."""
    b1, b2, abar_s = sp.symbols(r"beta_{t-1} beta_t \bar{\alpha}_{t-2}", positive=True)
    x0, xt, xs = sp.symbols("x_0 x_t x_{t-2}", real=True)
    a, v = compose_gaussian_steps(sp.sqrt(1 - b1), b1, sp.sqrt(1 - b2), b2)
    mean, var, _ = bayes_posterior(xt, xs, x0, a, v, abar_s)
    return mean, var, SimpleNamespace(b1=b1, b2=b2, abar_s=abar_s, x0=x0, xt=xt, x=xs)


def textbook_forms(S=None):
    """The chapter's results as a textbook prints them, as ``sympy.Eq`` objects keyed by name. Each
    right-hand side is a closed form that a test proves equal to the derived result."""
    S = _S(S)
    mean, var = posterior_closed_form(S)
    loss = sp.Symbol(r"\|\epsilon - \epsilon_\theta\|^{2}", nonnegative=True)
    return {
        "marginal_variance": sp.Eq(sp.Symbol(r"{\mathrm{Var}[x_t \mid x_0]}"), 1 - S.abar),
        "posterior_mean": sp.Eq(sp.Symbol(r"\tilde\mu_t"), mean),
        "posterior_variance": sp.Eq(sp.Symbol(r"\tilde\beta_t"), var),
        "x0_hat": sp.Eq(sp.Symbol(r"\hat x_0"), x0_from_eps_expr(S)),
        "sampling_mean": sp.Eq(sp.Symbol(r"\mu_\theta"), posterior_mean_eps_form(S, S.eps_theta)),
        "elbo_term": sp.Eq(sp.Symbol("L_{t-1}"), elbo_weight_closed_form(S) * loss + sp.Symbol("C")),
        "l_simple": sp.Eq(sp.Symbol(r"L_{\mathrm{simple}}"), loss),
    }
