"""Chapter 3's SymPy derivations, each against an independent computation: the library's schedules and
toy mixtures, quadrature, Monte Carlo, or an exact non-zero residual for a wrong variant."""

import math

import mpmath
import sympy as sp
import torch

from diffnb import toy
from diffnb.schedules import CosineVP, DiscreteVP, LinearVP
from diffnb.symbolic import is_zero, nonzero_at
from diffnb.symbolic import sde as ss
from diffnb.symbolic.core import drift_diffusion, gaussian_density

S = ss.sde_symbols()
F, G2 = drift_diffusion(S.alpha, S.sigma, S.t)  # general alpha_t, sigma_t
P = gaussian_density(S.x, S.alpha * S.m, S.alpha**2 * S.s**2 + S.sigma**2)
# An explicit non-VP path for exact points: alpha = 1/(1 + t), sigma = t.
PATH = {sp.Function("alpha"): sp.Lambda(S.t, 1 / (1 + S.t)), sp.Function("sigma"): sp.Lambda(S.t, S.t)}
POINT = {**PATH, S.t: sp.Rational(1, 2), S.x: sp.Rational(1, 3), S.m: sp.Rational(1, 4), S.s: sp.Rational(2, 3)}


def vp(alpha):
    return drift_diffusion(alpha, sp.sqrt(1 - alpha**2), S.t)


def test_vp_diffusion_is_minus_twice_the_drift():
    f, g2 = vp(S.alpha)
    assert is_zero(g2 + 2 * f)


def test_linear_vp_drift_and_diffusion():
    """f = -beta(t)/2 and g^2 = beta(t); the log alpha matches LinearVP numerically."""
    la = ss.linear_vp_log_alpha(S)
    f, g2 = vp(sp.exp(la))
    beta = ss.linear_vp_beta(S)
    assert is_zero(f + beta / 2) and is_zero(g2 - beta)
    sched = LinearVP(0.1, 20.0)
    fn = sp.lambdify(S.t, la.subs({S.beta_0: 0.1, S.beta_1: 20.0}))
    for t in (0.0, 0.37, 1.0):
        assert math.isclose(fn(t), float(sched.log_alpha(t)), rel_tol=1e-14, abs_tol=1e-15)


def test_cosine_vp_drift_matches_the_schedule():
    f, g2 = vp(ss.cosine_vp_alpha(S))
    assert is_zero(g2 + 2 * f)
    fn = sp.lambdify(S.t, f.subs(S.s_cos, sp.Rational(8, 1000)))
    for t in (0.0, 0.5, 0.99):
        assert math.isclose(fn(t), float(CosineVP(s=0.008).d_log_alpha(t)), rel_tol=1e-12)


def test_product_limit_is_the_ode_of_alpha_bar():
    assert is_zero(ss.product_continuum_limit(S) + ss.linear_vp_beta(S))
    prod = torch.cumprod(1 - DiscreteVP.linear().betas, 0)[499]  # prod(1 - beta_i) is alpha_bar, not alpha
    assert math.isclose(float(prod), float(DiscreteVP.linear().alpha_bar(500.0)), rel_tol=1e-12)


def test_discrete_linear_schedule_converges_to_the_continuous_one_at_first_order():
    """DiscreteVP.linear with betas beta(t)/T is LinearVP sampled at n/T up to O(1/T): quadrupling T
    divides the largest gap in log alpha by about four."""
    def gap(T):
        disc = DiscreteVP.linear(T, beta_start=0.1 / T, beta_end=20.0 / T)
        n = torch.arange(T + 1, dtype=torch.float64)
        return float((disc.log_alpha(n) - LinearVP(0.1, 20.0).log_alpha(n / T)).abs().max())

    assert 3.8 < gap(250) / gap(1000) < 4.2


def test_fokker_planck_and_continuity_for_gaussian_data():
    """The Gaussian marginal solves the forward FP equation, the PF-ODE continuity equation and the
    reverse-SDE FP equation (any path); the reverse drift used as an ODE velocity does not."""
    assert is_zero(ss.fokker_planck_residual(P, F * S.x, G2, S.x, S.t) / P)
    assert is_zero(ss.continuity_residual(P, ss.pf_ode_velocity(F, G2, P, S.x), S.x, S.t) / P)
    drift = ss.reverse_sde_drift(F, G2, P, S.x)
    assert is_zero(ss.reverse_fokker_planck_residual(P, drift, G2, S.x, S.t) / P)
    assert nonzero_at(ss.continuity_residual(P, drift, S.x, S.t) / P, POINT) != 0


def test_reverse_family_has_the_forward_marginals_for_any_density():
    """For an arbitrary p(x, t): reverse FP residual of the eta family = forward FP residual, for every eta."""
    assert ss.reverse_family_residual(S) == 0
    for eta in (sp.Rational(1, 2), 3):
        drift = ss.reverse_drift(F, G2, P, S.x, eta)
        assert is_zero(ss.reverse_fokker_planck_residual(P, drift, eta**2 * G2, S.x, S.t) / P)
    # a wrong family, (1 + eta)/2 in place of (1 + eta^2)/2, fails at eta = 1/2 by an exact amount
    wrong = F * S.x - (1 + S.eta) / 2 * G2 * sp.diff(sp.log(P), S.x)
    res = ss.reverse_fokker_planck_residual(P, wrong, S.eta**2 * G2, S.x, S.t) / P
    assert nonzero_at(res, {**POINT, S.eta: sp.Rational(1, 2)}) != 0
    assert ss.pf_ode_velocity(F, G2, P, S.x) == ss.reverse_drift(F, G2, P, S.x, 0)


def test_reverse_family_by_simulation():
    """Euler-Maruyama of the eta = 1/2 member backwards from N(0, 1) at t = 1 (LinearVP, exact score of
    data N(0.3, 0.5^2)) ends with the data's mean and standard deviation."""
    lin, gauss = LinearVP(0.1, 20.0), toy.GaussianMixture([1.0], [0.3], [0.5])
    eta, n, steps = 0.5, 20_000, 500
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, generator=g, dtype=torch.float64)
    ts = torch.linspace(1.0, 1e-3, steps + 1, dtype=torch.float64)
    for t, t_next in zip(ts[:-1], ts[1:]):
        dt = float(t - t_next)
        beta = 0.1 + (20.0 - 0.1) * float(t)  # f = -beta/2, g^2 = beta
        score = gauss.score(x, lin.alpha(t), lin.sigma(t))
        x = x - (-beta / 2 * x - (1 + eta**2) / 2 * beta * score) * dt
        x = x + eta * math.sqrt(beta * dt) * torch.randn(n, 1, generator=g, dtype=torch.float64)
    assert abs(float(x.mean()) - 0.3) < 0.02 and abs(float(x.std()) - 0.5) < 0.02


def test_pf_ode_velocity_is_fp_flux_for_any_density():
    p = sp.Function("p", positive=True)(S.x, S.t)
    v = ss.pf_ode_velocity(F, G2, p, S.x)
    fp = ss.fokker_planck_residual(p, F * S.x, G2, S.x, S.t)
    assert sp.simplify(ss.continuity_residual(p, v, S.x, S.t) - fp) == 0


def test_gaussian_flow_map_solves_the_pf_ode_and_rho_form():
    x_t = ss.gaussian_flow_map(S)
    v = ss.pf_ode_velocity(F, G2, P, S.x)
    assert is_zero(sp.diff(x_t, S.t) - v.subs(S.x, x_t))
    assert is_zero(ss.rho_form_residual(S))
    # an independent check of the rho form: numerically along LinearVP
    lin, t = LinearVP(0.1, 20.0), torch.tensor([0.3, 0.7], dtype=torch.float64)
    beta = 0.1 + 19.9 * t
    h = 1e-6
    drho = (lin.noise_to_signal(t + h) - lin.noise_to_signal(t - h)) / (2 * h)
    assert torch.allclose(beta / (2 * lin.sigma(t) * lin.alpha(t)), drho, rtol=1e-7)


def test_ddpm_step_is_euler_maruyama_to_first_order():
    r = ss.ddpm_step_vs_euler_maruyama(S)
    assert is_zero(r.ddpm_var - r.em_var)
    assert is_zero(r.gap + S.b**2 / 8)
    assert is_zero(sp.limit((r.ddpm_coef - r.em_coef) / S.b**2, S.b, 0) + sp.Rational(1, 8))


def test_dsm_target_and_gaussian_score():
    """grad log q(x_t | x_0) = -eps / sigma; for Gaussian data -sigma * score is the eps of diffnb.toy."""
    score, _ = ss.conditional_score(S)
    assert is_zero(score + S.eps / S.sigma)
    a, b = sp.Symbol("a"), sp.Symbol("b")
    fn = sp.lambdify((S.x, S.m, S.s, a, b), (-S.sigma * ss.gaussian_score(S)).subs({S.alpha: a, S.sigma: b}))
    x = torch.linspace(-2, 2, 7, dtype=torch.float64)[:, None]
    assert torch.allclose(toy.GaussianMixture([1.0], [0.3], [0.5]).eps(x, 0.6, 0.8), fn(x, 0.3, 0.5, 0.6, 0.8))


def test_tweedie_on_a_gaussian_prior():
    mean, var = ss.gaussian_posterior_mean(S)
    assert is_zero(mean - ss.tweedie_mean(S))
    wrong = (S.x + S.sigma * ss.gaussian_score(S)) / S.alpha  # sigma in place of sigma^2
    assert nonzero_at(mean - wrong, POINT) != 0
    assert is_zero(var - S.s**2 * S.sigma**2 / (S.alpha**2 * S.s**2 + S.sigma**2))


def test_tweedie_on_a_mixture_by_quadrature():
    """Beyond the Gaussian case: E[x0 | x_t] by integrating over a two-component prior equals
    (x + sigma^2 score)/alpha with the mixture's exact score."""
    mix = toy.GaussianMixture([0.3, 0.7], [-1.0, 0.8], [0.2, 0.5])
    alpha, sigma, x = 0.6, 0.8, 0.4
    prior = lambda u: 0.3 * mpmath.npdf(u, -1.0, 0.2) + 0.7 * mpmath.npdf(u, 0.8, 0.5)  # noqa: E731
    like = lambda u: mpmath.npdf(x, alpha * u, sigma)  # noqa: E731
    num = mpmath.quad(lambda u: u * prior(u) * like(u), [-mpmath.inf, -1, 0.8, mpmath.inf])
    den = mpmath.quad(lambda u: prior(u) * like(u), [-mpmath.inf, -1, 0.8, mpmath.inf])
    score = float(mix.score(torch.tensor([[x]], dtype=torch.float64), alpha, sigma))
    tweedie = sp.lambdify((S.x, S.alpha, S.sigma, sp.Symbol("sc")), ss.tweedie_mean(S, sp.Symbol("sc")))
    assert abs(float(num / den) - tweedie(x, alpha, sigma, score)) < 1e-10


def test_score_matching_and_dsm_differ_by_a_model_free_constant():
    a0, a1, a2 = sp.symbols("a_0:3", real=True)
    model = a0 + a1 * S.x + a2 * S.x**2
    gap = ss.sm_objective(S, model) - ss.dsm_objective(S, model)
    assert all(is_zero(sp.diff(gap, c)) for c in (a0, a1, a2))
    v = S.alpha**2 * S.s**2 + S.sigma**2
    assert is_zero(gap - (1 / v - 1 / S.sigma**2))
    # Monte Carlo of both objectives for one model: the same gap
    g = torch.Generator().manual_seed(3)
    n, al, sg, m, s = 1_000_000, 0.6, 0.8, 0.3, 0.5
    x0 = m + s * torch.randn(n, generator=g, dtype=torch.float64)
    eps = torch.randn(n, generator=g, dtype=torch.float64)
    xt = al * x0 + sg * eps
    mod = lambda y: 0.2 - 1.1 * y + 0.3 * y**2  # noqa: E731
    true_score = -(xt - al * m) / (al**2 * s**2 + sg**2)
    mc_gap = float(((mod(xt) - true_score) ** 2).mean() - ((mod(xt) + eps / sg) ** 2).mean())
    exact = 1 / (al**2 * s**2 + sg**2) - 1 / sg**2
    assert abs(mc_gap - exact) < 0.02


def test_textbook_forms_are_the_derived_results():
    T = ss.textbook_forms(S)
    f, g2 = vp(sp.exp(ss.linear_vp_log_alpha(S)))
    assert is_zero(T["linear_vp_drift"].rhs - f) and is_zero(T["linear_vp_diffusion"].rhs - g2)
    alpha, sigma, x = sp.symbols("alpha_t sigma_t x_t", positive=True)
    sym = {S.alpha: alpha, S.sigma: sigma, S.x: x}
    assert is_zero(T["tweedie_gaussian"].rhs - ss.gaussian_posterior_mean(S)[0].subs(sym))
    assert is_zero(T["conditional_score"].rhs - ss.conditional_score(S)[0].subs(sym))
    a0 = sp.Symbol("a_0", real=True)
    assert is_zero(T["sm_minus_dsm"].rhs - (ss.sm_objective(S, a0) - ss.dsm_objective(S, a0)).subs(sym))
    score = sp.Symbol(r"{\nabla_x \log q_t(x)}")
    assert is_zero(T["tweedie"].rhs - ss.tweedie_mean(S, score).subs(sym))
    f, g2 = sp.Symbol("f(t)"), sp.Symbol("g^{2}(t)")
    p = sp.exp(-S.eps * S.x / sigma)  # a density with score -eps/sigma at every x
    assert is_zero(T["pf_ode_eps"].rhs - ss.pf_ode_velocity(f, g2, p, S.x))


# --- bad input: TypeError / ValueError naming the argument ------------------------------------------
import pytest  # noqa: E402

from diffnb.symbolic import ddim as _ddim  # noqa: E402

OPTIONAL_S = ["linear_vp_beta", "linear_vp_log_alpha", "cosine_vp_alpha", "product_continuum_limit",
              "reverse_family_residual", "gaussian_flow_map", "rho_form_residual", "ddpm_step_vs_euler_maruyama",
              "conditional_score", "gaussian_score", "gaussian_posterior_mean", "tweedie_mean", "textbook_forms"]


@pytest.mark.parametrize("name", OPTIONAL_S + ["sm_objective", "dsm_loss", "dsm_objective"])
def test_functions_of_S_refuse_another_namespace(name):
    args = (S.x,) if name in ("sm_objective", "dsm_loss", "dsm_objective") else ()
    for bad in ("S", _ddim.ddim_symbols()):
        with pytest.raises(TypeError, match=r"S must be the symbol namespace of diffnb.symbolic.sde.sde_symbols\(\)"):
            getattr(ss, name)(bad, *args)


def test_sde_bad_arguments_name_the_argument():
    p = sp.Function("p", positive=True)(S.x, S.t)
    f, g2 = drift_diffusion(S.alpha, S.sigma, S.t)
    for name in ("sm_objective", "dsm_loss", "dsm_objective"):
        with pytest.raises(TypeError, match="S must be the symbol namespace"):
            getattr(ss, name)(None, S.x)
        with pytest.raises(TypeError, match="model must be a sympy expression"):
            getattr(ss, name)(S, "x")
    with pytest.raises(TypeError, match="p must be a sympy expression"):
        ss.fokker_planck_residual("p", f * S.x, g2, S.x, S.t)
    with pytest.raises(ValueError, match="g2 must be finite"):
        ss.fokker_planck_residual(p, f * S.x, float("nan"), S.x, S.t)
    with pytest.raises(TypeError, match="t must be a sympy Symbol"):
        ss.continuity_residual(p, f * S.x, S.x, 0.5)
    with pytest.raises(TypeError, match="g2 must be a sympy expression"):
        ss.reverse_fokker_planck_residual(p, f * S.x, None, S.x, S.t)
    with pytest.raises(ValueError, match="p must be positive"):
        ss.reverse_drift(f, g2, 0, S.x, 1)
    with pytest.raises(ValueError, match="eta must be finite"):
        ss.reverse_drift(f, g2, p, S.x, float("nan"))
    with pytest.raises(TypeError, match="x must be a sympy Symbol"):
        ss.pf_ode_velocity(f, g2, p, "x")
    with pytest.raises(TypeError, match="f must be a sympy expression"):
        ss.reverse_sde_drift(None, g2, p, S.x)
    with pytest.raises(TypeError, match="p must be a sympy expression"):
        ss.reverse_family_residual(S, "p")
    with pytest.raises(TypeError, match="x_T must be a sympy expression"):
        ss.gaussian_flow_map(S, x_T="x")
    with pytest.raises(ValueError, match="order must be at least 1"):
        ss.ddpm_step_vs_euler_maruyama(S, order=0)
    with pytest.raises(TypeError, match="score must be a sympy expression"):
        ss.tweedie_mean(S, score="s")
    assert is_zero(ss.continuity_residual(p, 0, S.x, S.t) - sp.diff(p, S.t))  # numbers where meant
