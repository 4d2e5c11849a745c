"""The errata appendix's SymPy checks (seed 002's second half and a few others): identities, orders of
accuracy, and the seed versions failing where the appendix says they fail."""

from functools import lru_cache

import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from diffnb.symbolic import errata as se
from diffnb.symbolic.ddim import gaussian_moments
from diffnb.symbolic.ddpm import is_zero

E = se.errata_symbols()


@lru_cache(maxsize=None)
def dpm2_residual(degree=2):
    return sp.expand(se.exact_step_y(E, degree) - se.seed002_dpm_solver2_y(E, degree))


def test_exact_step_solves_the_lambda_ode():
    """d y_t / d h = -e^{-lam_t} eps(lam_t) and y_t = y_s at h = 0: the exact step of eq. (16)."""
    y = se.exact_step_y(E, 2)
    lam_t = E.lam_s + E.h
    assert is_zero(sp.diff(y, E.h) + sp.exp(-lam_t) * se.eps_taylor(E, lam_t, 2))
    assert sp.simplify(y.subs(E.h, 0) - E.y_s) == 0


def test_seed_first_order_step_is_the_ddim_euler_step_in_rho():
    """e^{-lam} = rho = sigma/alpha: eq. (18) is y_t = y_s + (rho_t - rho_s) eps_s, DDIM's Euler step."""
    rho = lambda lam: sp.exp(-lam)  # noqa: E731
    euler = E.y_s + (rho(E.lam_s + E.h) - rho(E.lam_s)) * E.e0
    assert is_zero(se.seed002_dpm_solver1_y(E, 0) - euler)


@pytest.mark.parametrize("degree, order", [(0, sp.oo), (1, 2), (2, 2)])
def test_first_order_step_local_error(degree, order):
    residual = se.exact_step_y(E, degree) - se.seed002_dpm_solver1_y(E, degree)
    assert se.local_error_order(residual, E.h, n_max=4) == order


@pytest.mark.parametrize("degree, order", [(0, sp.oo), (2, 3)])
def test_dpm_solver2_local_error(degree, order):
    assert se.local_error_order(dpm2_residual(degree), E.h, n_max=4) == order


@given(st.fractions(min_value=0.1, max_value=1), st.fractions(min_value=-3, max_value=3),
       st.integers(min_value=-5, max_value=5).filter(bool))
def test_dpm_solver2_error_ratio_is_eight_when_h_halves(r, lam_s, e2):
    """Numerically: halving h divides the local error by about 2^3 for any r, lam_s and curvature e2."""
    res = dpm2_residual(2).subs({E.r: sp.Rational(r), E.lam_s: sp.Rational(lam_s), E.e0: 1, E.e1: -2, E.e2: e2})
    big, small = (sp.N(res.subs(E.h, h), 40) for h in (sp.Rational(1, 200), sp.Rational(1, 400)))
    assert abs(big / small - 8) < 0.1


def test_local_error_order_reads_the_lowest_power():
    h = sp.Symbol("h", positive=True)
    assert se.local_error_order(h**3 + h**4, h) == 3
    assert se.local_error_order(sp.exp(h) - 1 - h, h) == 2
    assert se.local_error_order(sp.Integer(0), h) == sp.oo
    assert se.local_error_order(sp.exp(h) - 1 - h - h**2 / 2, h, n_max=3) == sp.oo  # beyond n_max


def test_local_error_order_rejects_bad_input():
    with pytest.raises(TypeError, match="h must be a sympy Symbol"):
        se.local_error_order(sp.Integer(1), "h")
    with pytest.raises(ValueError, match="n_max must be a positive int"):
        se.local_error_order(sp.Integer(1), E.h, n_max=0)


def test_eps_taylor_rejects_bad_degree():
    with pytest.raises(ValueError, match="degree must be an int in 0..2"):
        se.eps_taylor(E, E.lam_s, 3)
    with pytest.raises(ValueError, match="degree must be an int in 0..2"):
        se.eps_taylor(E, E.lam_s, True)


def test_seed_last_formula_is_sde_dpm_solver_pp1_not_the_ode_step():
    """Without noise it is not exact for a constant x_theta (every ODE step is); DPM-Solver++(1) is. With its
    noise it maps q(x_s | x_0) to q(x_t | x_0) for point data: the SDE step's defining property."""
    exact = se.ode_pp_exact_constant(E)
    assert is_zero(se.dpm_solver_pp1(E) - exact)
    assert not is_zero(se.seed002_last_formula(E, noise=False) - exact)
    x0, u = sp.symbols("x_0 u", real=True)
    step = se.seed002_last_formula(E).subs({E.x_s: E.alpha_s * x0 + E.sigma_s * u, E.x_theta: x0})
    mean, var = gaussian_moments(step, x0, [u, E.z])
    assert is_zero(mean - E.alpha_t) and is_zero(var - E.sigma_t**2)


def test_gaussian_expectation_moments():
    u, v, a, b = sp.symbols("u v a b", real=True)
    assert se.gaussian_expectation(u**2, [u]) == 1
    assert se.gaussian_expectation(u**4, [u]) == 3
    assert se.gaussian_expectation(u**3 + u * v, [u, v]) == 0
    assert is_zero(se.gaussian_expectation((a * u + b * v) ** 2, [u, v]) - a**2 - b**2)
    with pytest.raises(TypeError, match="normals must be a non-empty list of sympy Symbols"):
        se.gaussian_expectation(u, [])


def test_dsm_minimiser_is_the_true_score():
    """Averaged over the data as well, the objective is free of x0, and its minimiser over the linear
    model a x + b is the score of q_t = N(alpha m, alpha^2 s^2 + sigma^2)."""
    obj, x0, (a, b, m, s, alpha, sigma) = se.dsm_objective(True)
    assert not obj.has(x0)
    sol = sp.solve([sp.diff(obj, a), sp.diff(obj, b)], [a, b], dict=True)[0]
    var_t = alpha**2 * s**2 + sigma**2
    assert is_zero(sol[a] + 1 / var_t) and is_zero(sol[b] - alpha * m / var_t)
    obj_x0, x0, _ = se.dsm_objective(False)
    assert obj_x0.has(x0)
    with pytest.raises(TypeError, match="over_data must be a bool"):
        se.dsm_objective(1)


def test_markov_chain_has_the_respaced_jump_posterior():
    mean, var, r_mean, r_var = se.markov_jump_posterior()
    assert is_zero(mean - r_mean) and is_zero(var - r_var)


def test_seed002_identities_hold():
    assert is_zero(se.data_prediction_ode_residual())
    assert all(is_zero(r) for r in se.pp_variation_of_constants_residuals())
    assert is_zero(se.exponential_weight_residual())


def test_integrating_factor_seed_fails_and_correct_passes():
    """With the seed's u, d(u x)/d tau = u (x' + f x): the residual is 2 f x u, not zero."""
    seed = se.seed002_integrating_factor()
    tau, f, x = sp.Symbol("tau", real=True), sp.Function("f"), sp.Function("x")
    assert sp.simplify(se.integrating_factor_residual(seed) - 2 * f(tau) * x(tau) * seed) == 0
    assert se.integrating_factor_residual(se.integrating_factor()) == 0
    with pytest.raises(TypeError, match="u must be a sympy expression"):
        se.integrating_factor_residual(1.0)
