import sympy as sp

from diffnb.symbolic import ddpm as sd


def numeric_points(expr, S, n=5):
    """Evaluate at a few points with 0 < beta, abar_prev < 1 (a wrong identity shows up numerically)."""
    vals = []
    for k in range(n):
        subs = {S.beta: sp.Rational(k + 1, 17), S.abar_prev: sp.Rational(k + 3, 11), S.x0: sp.Rational(2, 7),
                S.xt: sp.Rational(-3, 5), S.x: sp.Rational(1, 3), S.eps: sp.Rational(5, 9)}
        vals.append(sp.N(expr.subs(subs), 30))
    return vals


def test_forward_composition_gives_the_marginal():
    S = sd.ddpm_symbols()
    mean_coef, var = sd.compose_gaussian_steps(sp.sqrt(S.abar_prev), 1 - S.abar_prev, sp.sqrt(1 - S.beta), S.beta)
    assert sd.is_zero(mean_coef - sp.sqrt(S.abar))
    assert sd.is_zero(var - (1 - S.abar))


def test_posterior_by_completing_the_square_is_ddpm_eq7():
    S = sd.ddpm_symbols()
    mean, var, _ = sd.ddpm_posterior(S)
    mean_c, var_c = sd.posterior_closed_form(S)
    assert sd.is_zero(mean - mean_c) and sd.is_zero(var - var_c)
    assert all(abs(v) < 1e-25 for v in numeric_points(mean - mean_c, S))


def test_bayes_ratio_is_exactly_the_gaussian_posterior_density():
    S = sd.ddpm_symbols()
    _, _, log_joint = sd.ddpm_posterior(S)
    mean_c, var_c = sd.posterior_closed_form(S)
    ratio = log_joint - sd.gaussian_log_density(S.xt, sp.sqrt(S.abar) * S.x0, 1 - S.abar)
    assert sd.is_zero(ratio - sd.gaussian_log_density(S.x, mean_c, var_c))


def test_the_checks_fail_for_the_source_notes_posterior_mean():
    """Seed 000 writes sqrt(abar_t) where DDPM's eq. 7 has sqrt(1 - beta_t) in front of x_t."""
    S = sd.ddpm_symbols()
    mean_c, _ = sd.posterior_closed_form(S)
    seed_mean = mean_c.subs(sp.sqrt(1 - S.beta), sp.sqrt(S.abar))
    assert seed_mean != mean_c
    assert not sd.is_zero(seed_mean - mean_c)
    assert any(abs(v) > 1e-3 for v in numeric_points(seed_mean - mean_c, S))


def test_eps_form_of_the_mean():
    S = sd.ddpm_symbols()
    x0 = sd.x0_from_eps_expr(S)
    assert sd.is_zero(sp.sqrt(S.abar) * x0 + sp.sqrt(1 - S.abar) * S.eps - S.xt)
    mean_c, _ = sd.posterior_closed_form(S)
    assert sd.is_zero(mean_c.subs(S.x0, x0) - sd.posterior_mean_eps_form(S))


def test_complete_the_square_rejects_non_quadratics():
    import pytest

    x = sp.Symbol("x")
    with pytest.raises(ValueError, match=r"log_density must be quadratic in x"):
        sd.complete_the_square(x**3, x)
