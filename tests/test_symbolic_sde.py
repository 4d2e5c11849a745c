import math

import sympy as sp
import torch

from diffnb import toy
from diffnb.schedules import CosineVP, DiscreteVP, LinearVP
from diffnb.symbolic import is_zero
from diffnb.symbolic.sde import (
    conditional_score,
    continuity_residual,
    cosine_vp_alpha,
    ddpm_step_vs_euler_maruyama,
    drift_diffusion_expr,
    fokker_planck_residual,
    gaussian_density,
    gaussian_flow_map,
    gaussian_score,
    linear_vp_beta,
    linear_vp_log_alpha,
    pf_ode_velocity,
    product_continuum_limit,
    reverse_fokker_planck_residual,
    reverse_sde_drift,
    rho_form_residual,
    sde_symbols,
    seed_linear_schedule,
)

S = sde_symbols()
F, G2 = drift_diffusion_expr(S.alpha, S.sigma, S.t)  # general alpha_t, sigma_t
P = gaussian_density(S.x, S.alpha * S.m, S.alpha**2 * S.s**2 + S.sigma**2)


def vp(alpha):
    return drift_diffusion_expr(alpha, sp.sqrt(1 - alpha**2), S.t)


def test_vp_diffusion_is_minus_twice_the_drift():
    f, g2 = vp(S.alpha)
    assert is_zero(g2 + 2 * f)


def test_linear_vp_drift_and_diffusion():
    """f = -beta(t)/2 and g^2 = beta(t); the log alpha matches LinearVP numerically."""
    la = linear_vp_log_alpha(S)
    f, g2 = vp(sp.exp(la))
    beta = linear_vp_beta(S)
    assert is_zero(f + beta / 2) and is_zero(g2 - beta)
    sched = LinearVP(0.1, 20.0)
    fn = sp.lambdify(S.t, la.subs({S.beta_0: 0.1, S.beta_1: 20.0}))
    for t in (0.0, 0.37, 1.0):
        assert math.isclose(fn(t), float(sched.log_alpha(t)), rel_tol=1e-14, abs_tol=1e-15)


def test_cosine_vp_drift_matches_the_schedule():
    alpha = cosine_vp_alpha(S)
    f, g2 = vp(alpha)
    assert is_zero(g2 + 2 * f)
    sched = CosineVP(s=0.008)
    fn = sp.lambdify(S.t, f.subs(S.s_cos, sp.Rational(8, 1000)))
    for t in (0.0, 0.5, 0.99):
        assert math.isclose(fn(t), float(sched.d_log_alpha(t)), rel_tol=1e-12)


def test_seed_linear_schedule_final_quadratic_holds_but_its_ode_does_not():
    """Seed 002: the quadratic log alpha is right for alpha = sqrt(alpha_bar); its d log alpha = -beta dt
    is off by a factor 2 (it is the ODE of alpha_bar = prod(1 - beta_i), the seed's own definition)."""
    seed = seed_linear_schedule(S)
    beta = linear_vp_beta(S)
    assert is_zero(seed.log_alpha - linear_vp_log_alpha(S))
    assert not is_zero(sp.diff(seed.log_alpha, S.t) - seed.dlog_alpha)
    assert is_zero(sp.diff(seed.log_alpha, S.t) - seed.dlog_alpha / 2)
    integrated = sp.integrate(seed.dlog_alpha.subs(S.t, S.r), (S.r, 0, S.t))
    assert not is_zero(integrated - seed.log_alpha)
    assert is_zero(integrated - 2 * seed.log_alpha)  # log alpha_bar = 2 log alpha
    assert is_zero(product_continuum_limit(S) + beta)


def test_seed_alpha_definition_is_alpha_bar_numerically():
    """prod(1 - beta_i) equals DiscreteVP's alpha_bar, not its alpha."""
    sched = DiscreteVP.linear()
    prod = torch.cumprod(1 - sched.betas, 0)[499]
    assert math.isclose(float(prod), float(sched.alpha_bar(500.0)), rel_tol=1e-12)
    assert not math.isclose(float(prod), float(sched.alpha(500.0)), rel_tol=1e-2)


def test_discrete_linear_schedule_converges_to_the_continuous_one_at_first_order():
    """DiscreteVP.linear with betas beta(t)/T is LinearVP sampled at n/T up to O(1/T): quadrupling T
    divides the largest gap in log alpha by about four."""
    def gap(T):
        disc = DiscreteVP.linear(T, beta_start=0.1 / T, beta_end=20.0 / T)
        n = torch.arange(T + 1, dtype=torch.float64)
        return float((disc.log_alpha(n) - LinearVP(0.1, 20.0).log_alpha(n / T)).abs().max())

    ratio = gap(250) / gap(1000)
    assert 3.8 < ratio < 4.2


def test_fokker_planck_and_continuity_for_gaussian_data():
    """The Gaussian marginal solves the forward FP equation, the PF-ODE continuity equation and the
    reverse-SDE FP equation (any alpha_t, sigma_t); the reverse drift used as an ODE velocity does not."""
    assert is_zero(fokker_planck_residual(P, F * S.x, G2, S.x, S.t) / P)
    assert is_zero(continuity_residual(P, pf_ode_velocity(F, G2, P, S.x), S.x, S.t) / P)
    assert is_zero(reverse_fokker_planck_residual(P, reverse_sde_drift(F, G2, P, S.x), G2, S.x, S.t) / P)
    assert not is_zero(continuity_residual(P, reverse_sde_drift(F, G2, P, S.x), S.x, S.t) / P)


def test_pf_ode_velocity_is_fp_flux_for_any_density():
    """-(v p)_x equals the FP right-hand side for an arbitrary density p(x, t)."""
    p = sp.Function("p", positive=True)(S.x, S.t)
    v = pf_ode_velocity(F, G2, p, S.x)
    assert sp.simplify(continuity_residual(p, v, S.x, S.t) - fokker_planck_residual(p, F * S.x, G2, S.x, S.t)) == 0


def test_gaussian_flow_map_solves_the_pf_ode_and_rho_form():
    x_t = gaussian_flow_map(S)
    v = pf_ode_velocity(F, G2, P, S.x)
    assert is_zero(sp.diff(x_t, S.t) - v.subs(S.x, x_t))
    assert is_zero(rho_form_residual(S))


def test_ddpm_step_is_euler_maruyama_to_first_order():
    """Same noise variance; the x coefficients differ by -beta_n^2/8 + O(beta_n^3), and that is the
    true difference (not an artefact of the truncation)."""
    r = ddpm_step_vs_euler_maruyama(S)
    assert is_zero(r.ddpm_var - r.em_var)
    assert is_zero(r.gap + S.b**2 / 8)
    exact_gap = r.ddpm_coef - r.em_coef
    assert is_zero(sp.limit(exact_gap / S.b**2, S.b, 0) + sp.Rational(1, 8))
    f, g2 = vp(sp.exp(linear_vp_log_alpha(S)))
    assert is_zero(g2 * S.dt - linear_vp_beta(S) * S.dt) and is_zero(f * S.dt + linear_vp_beta(S) * S.dt / 2)


def test_dsm_target_and_gaussian_score():
    """grad log q(x_t | x_0) = -eps / sigma; for Gaussian data -sigma * score is the eps of diffnb.toy."""
    score, _ = conditional_score(S)
    assert is_zero(score + S.eps / S.sigma)
    eps_star = -S.sigma * gaussian_score(S)

    x = torch.linspace(-2, 2, 7, dtype=torch.float64)[:, None]
    a, b = sp.Symbol("a"), sp.Symbol("b")
    fn = sp.lambdify((S.x, S.m, S.s, a, b), eps_star.subs({S.alpha: a, S.sigma: b}))
    assert torch.allclose(toy.GaussianMixture([1.0], [0.3], [0.5]).eps(x, 0.6, 0.8), fn(x, 0.3, 0.5, 0.6, 0.8))
