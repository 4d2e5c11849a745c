"""Chapter 2's SymPy derivations, proved on the whole admissible region and checked against independent
computations (a second derivation, Monte Carlo, the library's samplers)."""

import math
import random

import sympy as sp
import torch

from diffnb import forward, samplers
from diffnb.schedules import DiscreteVP
from diffnb.symbolic import ddim as sd
from diffnb.symbolic import ddpm
from diffnb.symbolic.core import is_zero, latex, nonzero_at


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
    assert is_zero(mean_eq.lhs - (S.k + S.m * sp.sqrt(S.abar_t)))
    assert is_zero(var_eq.lhs - (S.m**2 * (1 - S.abar_t) + S.vs**2))
    assert mean_eq.rhs == sp.sqrt(S.abar_s) and var_eq.rhs == 1 - S.abar_s


def test_solve_finds_the_ddim_coefficients_and_the_positive_root():
    S = sd.ddim_symbols("s")
    k, m, sols = sd.solve_matching(S)
    k_c, m_c = sd.ddim_coefficients(S)
    assert sd.is_zero_admissible(k - k_c, S) and sd.is_zero_admissible(m - m_c, S)
    other = [sol for sol in sols if sol[S.m] is not m][0]
    assert sd.is_zero_admissible(other[S.m] + m_c, S)  # the other root is -m
    assert nonzero_at(other[S.m] - m_c, admissible_points(S)[0]) < 0
    for eq in sd.matching_equations(S):
        assert sd.is_zero_admissible((eq.lhs - eq.rhs).subs({S.k: k_c, S.m: m_c}), S)


def test_x0_eps_form_and_the_sampling_step():
    S = sd.ddim_symbols()
    k_c, m_c = sd.ddim_coefficients(S)
    assert is_zero(k_c * S.x0 + m_c * S.xt - sd.x0_eps_form(S))
    step = sd.x0_eps_form(S).subs(S.x0, sd.x0_hat_expr(S)) + S.vs * S.z
    assert is_zero(step - sd.ddim_update(S))


def test_the_step_keeps_the_marginal_lemma_1():
    """q_vs(x_s | x_t, x0) maps N(sqrt(abar_t) x0, 1 - abar_t) to N(sqrt(abar_s) x0, 1 - abar_s), for every vs."""
    S = sd.ddim_symbols("s")
    coef, var = sd.kernel_marginal(S)
    assert sd.is_zero_admissible(coef - sp.sqrt(S.abar_s), S) and sd.is_zero_admissible(var - (1 - S.abar_s), S)
    # Monte Carlo through two steps 900 -> 500 -> 100 with different noise scales
    sched, g = DiscreteVP.linear(), torch.Generator().manual_seed(0)
    abar = {t: float(sched.alpha_bar(float(t))) for t in (900, 500, 100)}
    n, x0 = 400_000, 0.8
    x = abar[900] ** 0.5 * x0 + (1 - abar[900]) ** 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    for (t, s_), frac in zip([(900, 500), (500, 100)], [0.3, 0.9]):
        vals = {S.abar_t: abar[t], S.abar_s: abar[s_], S.vs: (frac * (1 - abar[s_])) ** 0.5}
        mean = sp.lambdify(S.xt, sd.x0_eps_form(S).subs(vals).subs(S.x0, x0))
        x = mean(x) + float(vals[S.vs]) * torch.randn(n, generator=g, dtype=torch.float64)
    assert abs(float(x.mean()) - abar[100] ** 0.5 * x0) < 0.005 and abs(float(x.var()) - (1 - abar[100])) < 0.005


def test_forward_kernel_is_not_markovian_except_at_eta_one():
    S = sd.ddim_symbols("s")
    mean, var = sd.forward_kernel(S)
    x0_coef = sp.expand(mean).coeff(S.x0)
    vs1 = sd.ddim_sigma_expr(S, 1)
    assert sd.is_zero_admissible(x0_coef.subs(S.vs, vs1), S)  # eta = 1: DDPM's Markov kernel
    assert sd.is_zero_admissible(sp.expand(mean).coeff(S.x).subs(S.vs, vs1) - sp.sqrt(S.abar_t / S.abar_s), S)
    assert is_zero(var.subs(S.vs, vs1) - (1 - S.abar_t / S.abar_s))
    point = {S.abar_s: sp.Rational(1, 2), S.abar_t: sp.Rational(1, 4), S.vs: sp.Rational(1, 4)}
    assert nonzero_at(x0_coef, point) != 0  # eta < 1: x_t depends on x0 given x_s


def test_forward_kernel_by_monte_carlo_regression():
    """Sample x_t ~ q(x_t | x0), then x_s ~ q_vs(x_s | x_t, x0); regress x_t on x_s: slope, intercept and
    residual variance are the forward kernel's."""
    S = sd.ddim_symbols("s")
    vals = {S.abar_t: 0.3, S.abar_s: 0.6, S.vs: 0.35}
    mean, var = sd.forward_kernel(S)
    x0, n, g = 0.5, 400_000, torch.Generator().manual_seed(2)
    xt = vals[S.abar_t] ** 0.5 * x0 + (1 - vals[S.abar_t]) ** 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    kernel = sp.lambdify(S.xt, sd.x0_eps_form(S).subs(vals).subs(S.x0, x0))
    xs = kernel(xt) + vals[S.vs] * torch.randn(n, generator=g, dtype=torch.float64)
    design = torch.stack([xs, torch.ones_like(xs)], 1)
    slope, intercept = torch.linalg.lstsq(design, xt[:, None]).solution[:, 0]
    res_var = float((xt - design @ torch.stack([slope, intercept])).var())
    mean_num = sp.expand(mean.subs(vals).subs(S.x0, x0))
    assert abs(float(slope) - float(mean_num.coeff(S.x))) < 0.005
    assert abs(float(intercept) - float(mean_num.subs(S.x, 0))) < 0.005
    assert abs(res_var - float(var.subs(vals))) < 0.005


def test_theorem1_per_step_kl_is_a_weighted_eps_mse():
    S = sd.ddim_symbols("s")
    T = sd.theorem1_step(S)
    assert is_zero(T.kl - T.weight * (S.eps - S.eps_theta) ** 2 - T.constant) and T.constant == 0
    assert sd.is_zero_admissible(T.weight - sd.theorem1_weight_closed_form(S), S)
    # Gaussian data and a linear model: E[KL] - gamma E[(eps - eps_theta)^2] is free of the model
    m, s, a, b = sp.symbols("m s a b", real=True)
    G = sd.theorem1_step(S, data=(m, s, a, b))
    gap = sp.expand(G.expected_kl - T.weight * G.expected_mse)
    assert not gap.has(a) and not gap.has(b)


def test_theorem1_weight_at_eta_one_is_ddpm_elbo_weight():
    """A second derivation: at s = t-1 and eta = 1 the DDIM weight is the DDPM ELBO weight with
    varsigma^2 = beta-tilde."""
    S, D = sd.ddim_symbols(), ddpm.ddpm_symbols()
    vs1 = sd.ddim_sigma_expr(S, 1)
    gamma = sd.theorem1_step(S).weight.subs(S.vs, vs1)
    ddpm_weight = ddpm.elbo_weight_closed_form(D).subs({D.vs: vs1, D.beta: 1 - D.abar / D.abar_prev})
    assert S.abar_s == D.abar_prev and S.abar_t == D.abar
    assert sd.is_zero_admissible(gamma - ddpm_weight, S)


def test_eta_one_is_ddpm_posterior_variance_and_mean():
    S = sd.ddim_symbols("s")
    mean_p, var_p = sd.posterior_moments_expr(S)
    sig1 = sd.ddim_sigma_expr(S, 1)
    assert is_zero(sig1**2 - var_p)
    assert sd.is_zero_admissible(sd.x0_eps_form(S).subs(S.vs, sig1) - mean_p, S)
    half = sd.x0_eps_form(S).subs(S.vs, sd.ddim_sigma_expr(S, sp.Rational(1, 2))) - mean_p
    assert nonzero_at(half, {S.abar_s: sp.Rational(1, 2), S.abar_t: sp.Rational(1, 4), S.x0: 1, S.xt: 0}) != 0
    D = ddpm.ddpm_symbols()  # s = t - 1: Chapter 1's beta-tilde
    _, var_c = ddpm.posterior_closed_form(D)
    assert is_zero(sd.ddim_sigma_expr(sd.ddim_symbols(), 1) ** 2 - var_c, D.relation)


def test_posterior_moments_expr_is_bayes_for_the_jump_kernel():
    """Second derivation: Bayes' rule with q(x_t | x_s) = N(sqrt(abar_t/abar_s) x_s, 1 - abar_t/abar_s)."""
    S = sd.ddim_symbols("s")
    jump = S.abar_t / S.abar_s
    mean, var, _ = ddpm.bayes_posterior(S.xt, S.x, S.x0, sp.sqrt(jump), 1 - jump, S.abar_s)
    mean_c, var_c = sd.posterior_moments_expr(S)
    assert is_zero(mean - mean_c) and is_zero(var - var_c)


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
    sigma_1 = float(samplers.ddim_sigma(sch, t, s_))
    assert math.isclose(float(sd.ddim_sigma_expr(S, 1).subs(vals)), sigma_1, rel_tol=1e-12)


def test_eta_max_zeroes_the_eps_coefficient_and_exceeds_one():
    S = sd.ddim_symbols("s")
    eta_max = sd.eta_max_expr(S)
    assert is_zero(sd.ddim_sigma_expr(S, eta_max) ** 2 - (1 - S.abar_s))
    assert is_zero(eta_max**2 - 1 - S.abar_t * (1 - S.abar_s) / (S.abar_s - S.abar_t))  # > 0
    k_c, m_c = sd.ddim_coefficients(S)
    assert m_c.subs(S.vs, sp.sqrt(1 - S.abar_s)) == 0 and k_c.subs(S.vs, sp.sqrt(1 - S.abar_s)) == sp.sqrt(S.abar_s)


def test_deterministic_step_is_euler_in_y_rho_and_the_boxed_ode_follows():
    O = sd.ode_symbols()
    assert is_zero(sd.ddim_deterministic_step(O) - sd.euler_step_y_rho(O))
    residual, y, rho, tau, eps = sd.boxed_ode_residual()
    assert sp.simplify(residual - (sp.Derivative(y(tau), tau) - eps * sp.Derivative(rho(tau), tau))) == 0
    # in alpha-bar form (VP) it is the sampling step with vs = 0
    S = sd.ddim_symbols("s")
    vp = {O.alpha_t: sp.sqrt(S.abar_t), O.sigma_t: sp.sqrt(1 - S.abar_t), O.alpha_s: sp.sqrt(S.abar_s),
          O.sigma_s: sp.sqrt(1 - S.abar_s), O.x: S.xt, O.eps: S.eps}
    assert is_zero(sd.ddim_deterministic_step(O).subs(vp) - sd.ddim_update(S).subs({S.vs: 0}))


def test_textbook_forms_are_the_derived_results():
    S = sd.ddim_symbols("s")
    F = sd.textbook_forms(S)
    k, m, _ = sd.solve_matching(S)
    assert sd.is_zero_admissible(F["k"].rhs - k, S) and sd.is_zero_admissible(F["m"].rhs - m, S)
    assert is_zero(F["update"].rhs - sd.ddim_update(S))
    assert sd.is_zero_admissible(F["theorem1_step"].rhs.coeff(sp.Symbol(r"\|\epsilon - \epsilon_\theta\|^{2}",
                                 nonnegative=True)) - sd.theorem1_step(S).weight, S)
    assert r"\sqrt{1 - \bar{\alpha}_{s} - \varsigma_{t}^{2}}" in latex(F["m"])


# --- bad input: TypeError / ValueError naming the argument ------------------------------------------
import pytest  # noqa: E402

S_FUNCTIONS = ["matching_equations", "solve_matching", "ddim_coefficients", "x0_eps_form", "x0_hat_expr",
               "ddim_update", "ddim_sigma_expr", "eta_max_expr", "posterior_moments_expr", "kernel_marginal",
               "forward_kernel", "theorem1_step", "theorem1_weight_closed_form", "textbook_forms"]


@pytest.mark.parametrize("name", S_FUNCTIONS)
@pytest.mark.parametrize("bad", ["x", 1.0, ddpm.ddpm_symbols(), sd.ode_symbols()])
def test_functions_of_S_refuse_another_namespace(name, bad):
    with pytest.raises(TypeError, match=r"S must be the symbol namespace of diffnb.symbolic.ddim.ddim_symbols\(\)"):
        getattr(sd, name)(bad)


@pytest.mark.parametrize("name", ["ddim_deterministic_step", "euler_step_y_rho"])
def test_ode_steps_refuse_another_namespace(name):
    with pytest.raises(TypeError, match=r"O must be the symbol namespace of diffnb.symbolic.ddim.ode_symbols\(\), "
                                        r"got the namespace of diffnb.symbolic.ddim.ddim_symbols\(\)"):
        getattr(sd, name)(sd.ddim_symbols())


def test_ddim_bad_arguments_name_the_argument():
    S = sd.ddim_symbols("s")
    with pytest.raises(TypeError, match="prev must be a str"):
        sd.ddim_symbols(1)
    with pytest.raises(ValueError, match="prev must be a non-empty str"):
        sd.ddim_symbols("")
    for fn in (sd.admissible, sd.is_zero_admissible):
        with pytest.raises(TypeError, match="expr must be a sympy expression"):
            fn("x", S)
        with pytest.raises(TypeError, match="S must be the symbol namespace"):
            fn(S.x, None)
    with pytest.raises(TypeError, match="eps must be a sympy expression"):
        sd.x0_hat_expr(S, "eps")
    with pytest.raises(ValueError, match="eta must be finite"):
        sd.ddim_sigma_expr(S, float("nan"))
    with pytest.raises(ValueError, match="eta must be non-negative"):
        sd.ddim_sigma_expr(S, -1)
    with pytest.raises(TypeError, match=r"data must be a tuple \(m, s, a, b\)"):
        sd.theorem1_step(S, data=(0, 1))
    with pytest.raises(TypeError, match=r"data\[2\] must be a sympy expression"):
        sd.theorem1_step(S, data=(0, 1, None, 0))
    assert sd.ddim_sigma_expr(S, 0) == 0 and sd.is_zero_admissible(0, S)
