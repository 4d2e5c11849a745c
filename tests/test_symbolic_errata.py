"""The errata appendix's verdicts: every seed version fails the chapter's check by an exact non-zero
residual at an exact point, and the chapter's corrected version passes the same check. Seed formulas that
are right but come with a wrong claim are checked against that claim."""

import sympy as sp

from diffnb.symbolic import ddim, ddpm, dpm_solver, errata, sde
from diffnb.symbolic.core import gaussian_moments, is_zero, nonzero_at

S = ddpm.ddpm_symbols()
D = ddim.ddim_symbols()
Q = sde.sde_symbols()
DDPM_POINT = {S.beta: sp.Rational(1, 5), S.abar_prev: sp.Rational(1, 2), S.x0: 1, S.xt: 0}
# admissible: abar_t = 1/4 < abar_{t-1} = 1/2, varsigma^2 = 1/16 < 1/2
DDIM_POINT = {D.abar_t: sp.Rational(1, 4), D.abar_s: sp.Rational(1, 2), D.vs: sp.Rational(1, 4)}


def test_seed000_forward_kernel_does_not_compose_to_the_marginal():
    def residuals(kernel):
        mean, var = ddpm.compose_gaussian_steps(sp.sqrt(S.abar_prev), 1 - S.abar_prev, *kernel)
        return mean - sp.sqrt(S.abar), var - (1 - S.abar)

    good = residuals((sp.sqrt(1 - S.beta), S.beta))
    assert all(is_zero(r, S.relation) for r in good)
    mean_res, var_res = residuals(errata.seed000_forward_kernel(S))
    assert nonzero_at(var_res, DDPM_POINT, S.relation) == sp.Rational(1, 5)  # abar_t (1 - abar_{t-1})
    assert nonzero_at(mean_res, DDPM_POINT, S.relation) != 0


def test_seed000_posterior_mean_is_not_the_posterior_mean():
    derived, _, _ = ddpm.ddpm_posterior(S)
    mean_c, _ = ddpm.posterior_closed_form(S)
    assert is_zero(mean_c - derived, S.relation)
    value = nonzero_at(errata.seed000_posterior_mean(S) - derived, {**DDPM_POINT, S.x0: 0, S.xt: 1}, S.relation)
    # (sqrt(abar_t) - sqrt(1 - beta)) (1 - abar_{t-1}) / (1 - abar_t) = (sqrt(2/5) - sqrt(4/5)) (1/2) / (3/5)
    assert sp.expand(value - (sp.sqrt(10) - 2 * sp.sqrt(5)) / 6) == 0


def test_seed000_ddim_coefficients_fail_the_matching_equations():
    mean_eq, var_eq = ddim.matching_equations(D)
    k_c, m_c = ddim.ddim_coefficients(D)
    var_res, mean_res = var_eq.lhs - var_eq.rhs, (mean_eq.lhs - mean_eq.rhs).subs(D.m, m_c)
    assert ddim.is_zero_admissible(var_res.subs(D.m, m_c), D) and ddim.is_zero_admissible(mean_res.subs(D.k, k_c), D)
    # m = (7/16)/(3/4) = 7/12: m^2 (1 - abar_t) + varsigma^2 - (1 - abar_{t-1}) = 49/192 + 1/16 - 1/2
    assert nonzero_at(var_res.subs(D.m, errata.seed000_m(D)), DDIM_POINT) == sp.Rational(-35, 192)
    assert nonzero_at(mean_res.subs(D.k, errata.seed000_k(D)), DDIM_POINT) != 0


def test_seed000_regrouped_line_is_not_the_solved_step():
    line, label = errata.seed000_regrouped_step(D)
    k_c, m_c = ddim.ddim_coefficients(D)
    solved = k_c * D.x0 + m_c * D.xt + D.vs * D.z
    assert is_zero(ddim.x0_eps_form(D) + D.vs * D.z - solved)
    assert nonzero_at(line - solved, {**DDIM_POINT, label: 2, D.x0: 1, D.xt: 0, D.z: 0}) != 0


def test_seed001_update_does_not_keep_the_marginal():
    Ds = ddim.ddim_symbols("s")
    x_t = sp.sqrt(Ds.abar_t) * Ds.x0 + sp.sqrt(1 - Ds.abar_t) * Ds.eps
    _, var_ok = gaussian_moments(ddim.ddim_update(Ds).subs(Ds.xt, x_t), Ds.x0, [Ds.eps, Ds.z])
    _, var_001 = gaussian_moments(errata.seed001_update(Ds).subs(Ds.xt, x_t), Ds.x0, [Ds.eps, Ds.z])
    assert ddim.is_zero_admissible(var_ok - (1 - Ds.abar_s), Ds)
    assert is_zero(var_001 - (1 - Ds.abar_s - Ds.vs**2 + Ds.vs**4))
    point = {Ds.abar_t: sp.Rational(1, 4), Ds.abar_s: sp.Rational(1, 2), Ds.vs: sp.Rational(1, 4)}
    assert nonzero_at(var_001 - (1 - Ds.abar_s), point) == sp.Rational(-15, 256)


def test_seed002_integrating_factor_is_not_one():
    """With the seed's u, d(u x)/d tau = u (x' + f x): the residual is 2 f x u, not zero."""
    seed = errata.seed002_integrating_factor()
    tau, r, x = sp.Symbol("tau", positive=True), sp.Symbol("r"), sp.Function("x")
    f = sp.Function("f")
    assert dpm_solver.integrating_factor_residual(dpm_solver.integrating_factor()) == 0
    residual = dpm_solver.integrating_factor_residual(seed)
    assert sp.simplify(residual - 2 * f(tau) * x(tau) * seed) == 0
    point = {f: sp.Lambda(r, 1 / (1 + r) ** 2), x: sp.Lambda(tau, 1), tau: 1}
    assert nonzero_at(residual, point) == sp.exp(-sp.Rational(1, 2)) / 2


def test_seed002_linear_schedule():
    """Its quadratic log alpha is right for alpha = sqrt(alpha-bar); its d log alpha = -beta dt is the ODE of
    alpha-bar (its own definition alpha = prod(1 - beta_i)), off by a factor 2; its limit line keeps -d beta."""
    seed = errata.seed002_linear_schedule(Q)
    assert is_zero(seed.log_alpha - sde.linear_vp_log_alpha(Q))
    point = {Q.beta_0: sp.Rational(1, 10), Q.beta_1: 20, Q.t: sp.Rational(1, 2)}
    # the gap is beta(t)/2 = (1/10 + 199/20)/2
    assert nonzero_at(sp.diff(seed.log_alpha, Q.t) - seed.dlog_alpha, point) == sp.Rational(201, 40)
    assert is_zero(sp.diff(seed.log_alpha, Q.t) - seed.dlog_alpha / 2)
    limit = sde.product_continuum_limit(Q)
    assert is_zero(limit + sde.linear_vp_beta(Q))
    assert nonzero_at(-sde.linear_vp_beta(Q) - seed.d_beta - limit, {**point, Q.dt: sp.Rational(1, 100)}) != 0


def test_seed002_dsm_objective_depends_on_the_data_point():
    """Averaged over eps only (the seed's subscript) the objective still depends on x_0: it is not the
    objective whose minimiser is the score; averaged over the data too, it is."""
    a, b = sp.symbols("a b", real=True)
    model = a * Q.x + b
    seed = errata.seed002_dsm_objective(Q, model)
    point = {sp.Function("alpha"): sp.Lambda(Q.t, sp.Rational(3, 5)),
             sp.Function("sigma"): sp.Lambda(Q.t, sp.Rational(4, 5)),
             Q.x0: 1, a: 1, b: 0}
    # E_eps (a x_t + b + eps/sigma)^2 = (a alpha x0 + b)^2 + (a sigma + 1/sigma)^2: d/dx0 = 2 a alpha (a alpha x0 + b)
    assert nonzero_at(sp.diff(seed, Q.x0), point) == sp.Rational(18, 25)
    full = sde.dsm_objective(Q, model)
    assert not full.has(Q.x0)
    sol = sp.solve([sp.diff(full, a), sp.diff(full, b)], [a, b], dict=True)[0]
    score = sde.gaussian_score(Q)
    assert is_zero(sol[a] - sp.diff(score, Q.x)) and is_zero(sol[b] - score.subs(Q.x, 0))


def test_seed002_dpm_solver_1_is_not_exact():
    """Seed 002 writes eq. (17) = (18) as if exact; DPM-Solver-1 has local error O(h^2) (exact only for a
    constant model output) and the leading term is certified non-zero."""
    P = dpm_solver.small_test_problem((1, 1, 1))
    y, h, _ = dpm_solver.singlestep_series([], "eps", K=3, P=P)
    p, lead = dpm_solver.series_order(y, h, P, K=3)
    assert p == 2 and nonzero_at(lead, {}) != 0


def test_seed002_k2_claim_holds():
    """The seed's (and the paper's) second-order step: x_t - x-bar_t = O(h^3), as claimed."""
    P = dpm_solver.small_test_problem((1, 1, 1))
    y, h, _ = dpm_solver.dpm2_paper_series(K=3, P=P)
    assert dpm_solver.series_order(y, h, P, K=3)[0] == 3


def test_seed002_last_formula_is_an_sde_step_not_an_ode_step():
    """Its last formula is SDE-DPM-Solver++(1): without the noise it is not the ODE step (which is exact for a
    constant x0); with the noise it maps q(x_s | x_0) to q(x_t | x_0) for point data."""
    P = dpm_solver.dpm_symbols()
    last = dpm_solver.sde_pp1_update(P)
    ode = dpm_solver.exact_step(P, "x0")
    assert is_zero(dpm_solver.dpm_pp1_update(P) - ode, P.relation)
    vp = {P.alpha_s: sp.Rational(3, 5), P.sigma_s: sp.Rational(4, 5), P.alpha_t: sp.Rational(4, 5),
          P.sigma_t: sp.Rational(3, 5), P.x: 1, P.x0: 0, P.zeta: 0}
    # e^{-h} = 9/16: sigma_t/sigma_s (e^{-h} - 1) x = (3/4)(9/16 - 1)
    assert nonzero_at(last - ode, vp, P.relation) == sp.Rational(-21, 64)
    x0, u = sp.symbols("x_0 u", real=True)
    step = last.subs({P.x: P.alpha_s * x0 + P.sigma_s * u, P.x0: x0})
    mean, var = gaussian_moments(step, x0, [u, P.zeta])
    assert is_zero(mean - P.alpha_t, P.relation) and is_zero(var - P.sigma_t**2, P.relation)


# --- bad input: TypeError naming the argument and the factory of its namespace -----------------------
import pytest  # noqa: E402


@pytest.mark.parametrize("name, arg, factory, right", [
    ("seed000_forward_kernel", "S", "ddpm.ddpm_symbols", S), ("seed000_posterior_mean", "S", "ddpm.ddpm_symbols", S),
    ("seed000_m", "D", "ddim.ddim_symbols", D), ("seed000_k", "D", "ddim.ddim_symbols", D),
    ("seed000_regrouped_step", "D", "ddim.ddim_symbols", D), ("seed001_update", "D", "ddim.ddim_symbols", D),
    ("seed002_linear_schedule", "Q", "sde.sde_symbols", Q)])
def test_seed_formulas_refuse_another_namespace(name, arg, factory, right):
    wrong = Q if right is not Q else D
    for bad in (None, "S", wrong):
        with pytest.raises(TypeError, match=rf"{arg} must be the symbol namespace of diffnb.symbolic.{factory}\(\)"):
            getattr(errata, name)(bad)


def test_seed002_dsm_objective_bad_arguments():
    with pytest.raises(TypeError, match=r"Q must be the symbol namespace of diffnb.symbolic.sde.sde_symbols\(\)"):
        errata.seed002_dsm_objective(S, Q.x)
    with pytest.raises(TypeError, match="model must be a sympy expression"):
        errata.seed002_dsm_objective(Q, "x")
