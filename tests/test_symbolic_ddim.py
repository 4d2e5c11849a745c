"""Chapter 2's SymPy derivations, checked symbolically (on the whole admissible region) and numerically."""

import math
import random

import pytest
import sympy as sp
import torch

from diffnb import forward, samplers
from diffnb.schedules import DiscreteVP
from diffnb.symbolic import ddim as sd
from diffnb.symbolic import ddpm


def admissible_points(S, n=6, seed=0):
    """Random exact points with 0 < abar_t < abar_s < 1 and 0 < vs^2 < 1 - abar_s."""
    rng = random.Random(seed)
    pts = []
    for _ in range(n):
        a_s = sp.Rational(rng.randint(2, 97), 100)
        a_t = a_s * sp.Rational(rng.randint(1, 99), 100)
        vs = sp.sqrt((1 - a_s) * sp.Rational(rng.randint(1, 99), 100))
        pts.append({S.abar_s: a_s, S.abar_t: a_t, S.vs: vs, S.x0: sp.Rational(2, 7), S.xt: sp.Rational(-3, 5),
                    S.eps: sp.Rational(5, 9), S.z: sp.Rational(-1, 4)})
    return pts


def max_abs(expr, S):
    return max(abs(sp.N(expr.subs(p), 30)) for p in admissible_points(S))


def test_admissible_parametrisation_covers_the_region():
    """u, v, w > 0 reach every admissible point: invert the map at random points."""
    S = sd.ddim_symbols()
    for p in admissible_points(S):
        u = 1 / p[S.abar_s] - 1
        v = p[S.abar_s] / p[S.abar_t] - 1
        w = (1 - p[S.abar_s]) / p[S.vs] ** 2 - 1
        assert u > 0 and v > 0 and w > 0
        back = {S.u: u, S.v: v, S.w: w}
        for sym in (S.abar_s, S.abar_t, S.vs):
            assert sp.simplify(sd.admissible(sym, S).subs(back) - p[sym]) == 0


def test_matching_equations_are_mean_and_variance_of_the_posited_step():
    S = sd.ddim_symbols()
    mean_eq, var_eq = sd.matching_equations(S)
    assert sd.is_zero(mean_eq.lhs - (S.k + S.m * sp.sqrt(S.abar_t)))
    assert sd.is_zero(var_eq.lhs - (S.m**2 * (1 - S.abar_t) + S.vs**2))
    assert mean_eq.rhs == sp.sqrt(S.abar_s) and var_eq.rhs == 1 - S.abar_s


@pytest.mark.parametrize("prev", ["s"])
def test_solve_finds_the_ddim_coefficients_and_the_positive_root(prev):
    S = sd.ddim_symbols(prev)
    k, m, sols = sd.solve_matching(S)
    k_c, m_c = sd.ddim_coefficients(S)
    assert sd.is_zero_admissible(k - k_c, S) and sd.is_zero_admissible(m - m_c, S)
    other = [sol for sol in sols if sol[S.m] is not m][0]
    assert sd.is_zero_admissible(other[S.m] + m_c, S)  # the other root is -m
    assert not sd.is_zero_admissible(other[S.m] - m_c, S)
    for eq in sd.matching_equations(S):
        assert sd.is_zero_admissible((eq.lhs - eq.rhs).subs({S.k: k_c, S.m: m_c}), S)


def test_the_source_notes_coefficients_fail_the_same_checks():
    """Seed 000: m without its square root; k with (1 - abar_{t-1} - sigma^2) outside the root."""
    S = sd.ddim_symbols()
    k_c, m_c = sd.ddim_coefficients(S)
    mean_eq, var_eq = sd.matching_equations(S)
    var_res = var_eq.lhs - var_eq.rhs
    assert not sd.is_zero_admissible(var_res.subs(S.m, sd.seed000_m(S)), S)
    assert max_abs(var_res.subs(S.m, sd.seed000_m(S)), S) > 1e-3
    mean_res = (mean_eq.lhs - mean_eq.rhs).subs(S.m, m_c)
    assert not sd.is_zero_admissible(mean_res.subs(S.k, sd.seed000_k(S)), S)
    assert max_abs(mean_res.subs(S.k, sd.seed000_k(S)), S) > 1e-3
    assert sd.is_zero_admissible(mean_res.subs(S.k, k_c), S)


def test_x0_eps_form_and_the_sampling_step():
    S = sd.ddim_symbols()
    k_c, m_c = sd.ddim_coefficients(S)
    assert sd.is_zero(k_c * S.x0 + m_c * S.xt - sd.x0_eps_form(S))
    step = sd.x0_eps_form(S).subs(S.x0, sd.x0_hat_expr(S)) + S.vs * S.z
    assert sd.is_zero(step - sd.ddim_update(S))


def test_the_step_keeps_the_marginal_and_seed001_does_not():
    """With x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps and the true eps, x_s ~ N(sqrt(abar_s) x0, 1 - abar_s);
    seed 001's '+ sigma^2 eps' gives variance 1 - abar_s - sigma^2 + sigma^4 instead."""
    S = sd.ddim_symbols()
    x_t = sp.sqrt(S.abar_t) * S.x0 + sp.sqrt(1 - S.abar_t) * S.eps
    coef, var = sd.gaussian_moments(sd.ddim_update(S).subs(S.xt, x_t), S.x0, [S.eps, S.z])
    assert sd.is_zero_admissible(coef - sp.sqrt(S.abar_s), S)
    assert sd.is_zero_admissible(var - (1 - S.abar_s), S)
    coef1, var1 = sd.gaussian_moments(sd.seed001_update(S).subs(S.xt, x_t), S.x0, [S.eps, S.z])
    assert sd.is_zero_admissible(coef1 - sp.sqrt(S.abar_s), S)
    assert sd.is_zero_admissible(var1 - (1 - S.abar_s - S.vs**2 + S.vs**4), S)
    assert not sd.is_zero_admissible(var1 - (1 - S.abar_s), S)


def test_eta_one_is_ddpm_posterior_variance_and_mean():
    S = sd.ddim_symbols("s")
    mean_p, var_p = sd.posterior_moments_expr(S)
    sig1 = sd.ddim_sigma_expr(S, 1)
    assert sd.is_zero(sig1**2 - var_p)
    assert sd.is_zero_admissible(sd.x0_eps_form(S).subs(S.vs, sig1) - mean_p, S)
    assert not sd.is_zero_admissible(sd.x0_eps_form(S).subs(S.vs, sd.ddim_sigma_expr(S, sp.Rational(1, 2))) - mean_p, S)
    # With s = t - 1 and abar_t = (1 - beta) abar_{t-1}: Chapter 1's beta-tilde.
    D = ddpm.ddpm_symbols()
    _, var_c = ddpm.posterior_closed_form(D)
    sub = {S.abar_s: D.abar_prev, S.abar_t: D.abar}
    assert ddpm.is_zero(sig1.subs(sub) ** 2 - var_c)


def test_posterior_moments_expr_matches_forward_posterior_numerically():
    S = sd.ddim_symbols("s")
    sch = DiscreteVP.linear()
    t, s_ = 640.0, 210.0
    cxt, cx0, var = (float(v) for v in forward.posterior_coefficients(sch, t, s_))
    mean_p, var_p = sd.posterior_moments_expr(S)
    vals = {S.abar_t: float(sch.alpha_bar(t)), S.abar_s: float(sch.alpha_bar(s_))}
    assert math.isclose(float(mean_p.coeff(S.xt).subs(vals)), cxt, rel_tol=1e-12)
    assert math.isclose(float(mean_p.coeff(S.x0).subs(vals)), cx0, rel_tol=1e-12)
    assert math.isclose(float(var_p.subs(vals)), var, rel_tol=1e-12)
    assert math.isclose(float(sd.ddim_sigma_expr(S, 1).subs(vals)), float(samplers.ddim_sigma(sch, t, s_)), rel_tol=1e-12)


def test_eta_max_zeroes_the_eps_coefficient_and_exceeds_one():
    S = sd.ddim_symbols("s")
    eta_max = sd.eta_max_expr(S)
    assert sd.is_zero(sd.ddim_sigma_expr(S, eta_max) ** 2 - (1 - S.abar_s))
    assert sd.is_zero(eta_max**2 - 1 - S.abar_t * (1 - S.abar_s) / (S.abar_s - S.abar_t))  # > 0
    k_c, m_c = sd.ddim_coefficients(S)
    assert m_c.subs(S.vs, sp.sqrt(1 - S.abar_s)) == 0 and k_c.subs(S.vs, sp.sqrt(1 - S.abar_s)) == sp.sqrt(S.abar_s)


def test_deterministic_step_is_euler_in_y_rho_and_the_boxed_ode_follows():
    O = sd.ode_symbols()
    assert sd.is_zero(sd.ddim_deterministic_step(O) - sd.euler_step_y_rho(O))
    residual, y, rho, tau, eps = sd.boxed_ode_residual()
    expected = sp.Derivative(y(tau), tau) - eps * sp.Derivative(rho(tau), tau)
    assert sp.simplify(residual - expected) == 0
    dx_dt, pf = sd.probability_flow_check()
    assert sp.simplify(dx_dt - pf) == 0
    assert sp.simplify(dx_dt - pf.subs(eps, 2 * eps)) != 0


def test_seed000_sigma_is_noise_to_signal():
    """Seed 000's sigma = sqrt((1 - abar)/abar) is the book's sigma/alpha = noise_to_signal."""
    sch = DiscreteVP.linear()
    t = torch.tensor([1.0, 100.0, 500.0, 1000.0], dtype=torch.float64)
    abar = sch.alpha_bar(t)
    assert torch.allclose(torch.sqrt((1 - abar) / abar), sch.noise_to_signal(t), rtol=1e-12)


def test_gaussian_moments_rejects_nonlinear_input():
    S = sd.ddim_symbols()
    with pytest.raises(ValueError, match=r"expr must be linear in x_0"):
        sd.gaussian_moments(S.x0**2 + S.eps, S.x0, [S.eps])
    with pytest.raises(ValueError, match=r"expr must be linear in x_0"):
        sd.gaussian_moments(S.x0 * S.eps, S.x0, [S.eps])
