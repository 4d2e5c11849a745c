"""Chapter 1's SymPy derivations, each checked against an independent computation: numeric integration
of Bayes' rule, Monte Carlo, or a second derivation."""

import mpmath
import sympy as sp
import torch

from diffnb.symbolic import ddim, ddpm
from diffnb.symbolic.core import gaussian_log_density, is_zero, latex

S = ddpm.ddpm_symbols()
# An exact point: beta_t = 1/5, abar_{t-1} = 1/2 (so abar_t = 2/5), x_0 = 2/7, x_t = -3/5.
POINT = {S.beta: sp.Rational(1, 5), S.abar_prev: sp.Rational(1, 2), S.x0: sp.Rational(2, 7), S.xt: sp.Rational(-3, 5)}


def at_point(expr, extra=None):
    return mpmath.mpf(sp.N(expr.subs(S.relation).subs({**POINT, **(extra or {})}), 30))


def test_symbols_are_independent_and_the_relation_ties_them():
    assert S.abar.is_Symbol and S.abar_prev.is_Symbol and S.beta.is_Symbol
    assert S.relation == {S.abar: (1 - S.beta) * S.abar_prev}


def test_forward_composition_gives_the_marginal():
    mean_coef, var = ddpm.compose_gaussian_steps(sp.sqrt(S.abar_prev), 1 - S.abar_prev, sp.sqrt(1 - S.beta), S.beta)
    assert is_zero(mean_coef - sp.sqrt(S.abar), S.relation)
    assert is_zero(var - (1 - S.abar), S.relation)
    # Monte Carlo of the two steps at the exact point
    g = torch.Generator().manual_seed(0)
    n = 400_000
    x1 = 0.5**0.5 * 1.0 + 0.5**0.5 * torch.randn(n, generator=g, dtype=torch.float64)  # x0 = 1
    x2 = 0.8**0.5 * x1 + 0.2**0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    assert abs(float(x2.mean()) - float(mean_coef.subs(POINT))) < 0.005
    assert abs(float(x2.var()) - float(var.subs(POINT))) < 0.005


def test_posterior_is_ddpm_eq7_and_matches_bayes_by_quadrature():
    mean, var, log_joint = ddpm.ddpm_posterior(S)
    mean_c, var_c = ddpm.posterior_closed_form(S)
    assert is_zero(mean - mean_c, S.relation) and is_zero(var - var_c, S.relation)
    # numeric Bayes at the point: normalise q(x_t | x) q(x | x_0) over x
    joint = sp.lambdify(S.x, sp.exp(log_joint.subs(POINT)), "mpmath")
    z = mpmath.quad(joint, [-mpmath.inf, mpmath.inf])
    m1 = mpmath.quad(lambda y: y * joint(y), [-mpmath.inf, mpmath.inf]) / z
    m2 = mpmath.quad(lambda y: y**2 * joint(y), [-mpmath.inf, mpmath.inf]) / z
    assert abs(m1 - at_point(mean_c)) < 1e-12 and abs(m2 - m1**2 - at_point(var_c)) < 1e-12


def test_bayes_ratio_is_exactly_the_gaussian_posterior_density():
    _, _, log_joint = ddpm.ddpm_posterior(S)
    mean_c, var_c = ddpm.posterior_closed_form(S)
    ratio = log_joint - gaussian_log_density(S.xt, sp.sqrt(S.abar) * S.x0, 1 - S.abar)
    assert is_zero(ratio - gaussian_log_density(S.x, mean_c, var_c), S.relation)


def test_eps_form_of_the_mean():
    x0 = ddpm.x0_from_eps_expr(S)
    assert is_zero(sp.sqrt(S.abar) * x0 + sp.sqrt(1 - S.abar) * S.eps - S.xt)
    mean_c, _ = ddpm.posterior_closed_form(S)
    assert is_zero(mean_c.subs(S.x0, x0) - ddpm.posterior_mean_eps_form(S), S.relation)


def test_elbo_term_is_the_weighted_eps_loss():
    """L_{t-1} = weight (eps - eps_theta)^2 + C exactly; the weight is Ho et al.'s; C does not see the model
    and vanishes for varsigma^2 = beta-tilde."""
    E = ddpm.elbo_term(S)
    assert is_zero(E.weight - ddpm.elbo_weight_closed_form(S))
    assert is_zero(E.kl - E.weight * (S.eps - S.eps_theta) ** 2 - E.constant)
    assert not E.constant.has(S.eps_theta)
    _, beta_tilde = ddpm.posterior_closed_form(S)
    beta_tilde = beta_tilde.subs(S.abar_prev, S.abar / (1 - S.beta))
    assert is_zero(E.constant - (sp.log(S.vs**2 / beta_tilde) + beta_tilde / S.vs**2 - 1) / 2)
    assert is_zero(E.constant.subs(S.vs, sp.sqrt(beta_tilde)))


def test_elbo_term_matches_a_numeric_kl():
    """At the exact point, with eps = 1/3, eps_theta = -1/2, varsigma^2 = 1/4: the KL between the two Gaussian
    densities by quadrature, the means taken from DDPM's sampler formula in floats."""
    E = ddpm.elbo_term(S)
    eps, eps_th, vs2 = 1 / 3, -1 / 2, 1 / 4
    beta, abar_prev = 0.2, 0.5
    abar, xt = (1 - beta) * abar_prev, -0.6
    x0 = (xt - (1 - abar) ** 0.5 * eps) / abar**0.5
    mean_q = (abar_prev**0.5 * beta * x0 + (1 - beta) ** 0.5 * (1 - abar_prev) * xt) / (1 - abar)
    var_q = (1 - abar_prev) / (1 - abar) * beta
    mean_p = (xt - beta / (1 - abar) ** 0.5 * eps_th) / (1 - beta) ** 0.5
    q = lambda y: mpmath.npdf(y, mean_q, mpmath.sqrt(var_q))  # noqa: E731
    p = lambda y: mpmath.npdf(y, mean_p, mpmath.sqrt(vs2))  # noqa: E731
    numeric = mpmath.quad(lambda y: q(y) * mpmath.log(q(y) / p(y)), [-mpmath.inf, mpmath.inf])
    extra = {S.eps: sp.Rational(1, 3), S.eps_theta: sp.Rational(-1, 2), S.vs: sp.Rational(1, 2)}
    assert abs(numeric - at_point(E.kl, extra)) < 1e-10


def test_two_step_chain_has_the_respaced_jump_posterior():
    """Seed 001 says DDPM cannot jump; the Markov chain over two steps, composed and inverted by Bayes' rule,
    has exactly the one-jump posterior q(x_{t-2} | x_t, x_0) of ``ddim.posterior_moments_expr``."""
    mean, var, T = ddpm.two_step_posterior()
    D = ddim.ddim_symbols("t-2")
    r_mean, r_var = ddim.posterior_moments_expr(D)
    assert D.abar_s == T.abar_s and D.x == T.x
    sub = {D.abar_t: (1 - T.b1) * (1 - T.b2) * T.abar_s}
    split = lambda e: sp.expand_power_base(e.subs(sub), force=True)  # noqa: E731  (0 < beta < 1: roots split)
    assert is_zero(mean - split(r_mean)) and is_zero(var - split(r_var))


def test_textbook_forms_are_the_derived_results_in_textbook_form():
    F = ddpm.textbook_forms(S)
    mean, var, _ = ddpm.ddpm_posterior(S)
    assert is_zero(F["posterior_mean"].rhs - mean, S.relation)
    assert is_zero(F["posterior_variance"].rhs - var, S.relation)
    assert is_zero(F["x0_hat"].rhs - ddpm.x0_from_eps_expr(S))
    assert is_zero(F["marginal_variance"].rhs - ddpm.compose_gaussian_steps(
        sp.sqrt(S.abar_prev), 1 - S.abar_prev, sp.sqrt(1 - S.beta), S.beta)[1], S.relation)
    E = ddpm.elbo_term(S)
    loss = F["l_simple"].rhs
    assert is_zero(F["elbo_term"].rhs.coeff(loss) - E.weight)  # L_simple is L_{t-1} with the weight dropped
    text = latex(F["posterior_mean"]) + latex(F["posterior_variance"]) + latex(F["elbo_term"])
    assert r"1 - \bar{\alpha}_{t}" in text and r"\bar{\alpha}_{t-1} \beta_{t}" not in text


# --- bad input: TypeError / ValueError naming the argument ------------------------------------------
import pytest  # noqa: E402


@pytest.mark.parametrize("name", ["ddpm_posterior", "posterior_closed_form", "x0_from_eps_expr",
                                  "posterior_mean_eps_form", "elbo_term", "elbo_weight_closed_form", "textbook_forms"])
def test_functions_of_S_refuse_another_namespace(name):
    for bad in ("S", ddim.ddim_symbols()):
        with pytest.raises(TypeError, match=r"S must be the symbol namespace of diffnb.symbolic.ddpm.ddpm_symbols\(\)"):
            getattr(ddpm, name)(bad)


def test_ddpm_bad_arguments_name_the_argument():
    nan = float("nan")
    b = S.beta
    with pytest.raises(TypeError, match="a1 must be a sympy expression"):
        ddpm.compose_gaussian_steps("a", b, 1, b)
    with pytest.raises(ValueError, match="v2 must be non-negative"):
        ddpm.compose_gaussian_steps(1, b, 1, -1)
    with pytest.raises(ValueError, match="v1 must be finite"):
        ddpm.compose_gaussian_steps(1, nan, 1, b)
    args = dict(xt=S.xt, x=S.x, x0=S.x0, a=sp.sqrt(1 - b), v=b, abar_prev=S.abar_prev)
    for key, bad, error, message in [("xt", None, TypeError, "xt must be a sympy expression"),
                                     ("x", 1, TypeError, "x must be a sympy Symbol"),
                                     ("a", nan, ValueError, "a must be finite"),
                                     ("v", 0, ValueError, "v must be positive"),
                                     ("abar_prev", 1, ValueError, "abar_prev must be below 1"),
                                     ("abar_prev", -0.5, ValueError, "abar_prev must be non-negative")]:
        with pytest.raises(error, match=message):
            ddpm.bayes_posterior(**{**args, key: bad})
    with pytest.raises(TypeError, match="eps must be a sympy expression"):
        ddpm.posterior_mean_eps_form(S, "eps")
    assert ddpm.compose_gaussian_steps(1, 0, 1, b)[1] == b  # a deterministic first step is allowed
