"""SymPy checks for the errata appendix: the source notes' formulas that no chapter module holds,
mostly from the second half of seed 002 (DPM-Solver, DPM-Solver++), each next to its correction.

Notation (the book's)::

    lam_s, h        lambda at the start of a step and the step h = lambda_t - lambda_s (lambda = log(alpha/sigma))
    r               the fraction of h at which DPM-Solver-2 evaluates its intermediate point
    e0, e1, e2      Taylor coefficients of the model output in lambda: eps(lam) = e0 + e1 d + e2 d^2 / 2,
                    d = lam - lam_s (a model output that does not depend on x isolates the step's own error)
    y               x / alpha, in which the exact step is y_t = y_s - int e^{-lam} eps d lam
    alpha_s, sigma_s, alpha_t, sigma_t   the scales at both ends; e^{-h} = sigma_t alpha_s / (alpha_t sigma_s)
    x_s, x_theta, z the state, the data prediction and a standard normal draw

Functions named ``seed002_*`` return a formula as seed 002 states it; ``local_error_order`` reads off the
lowest power of h in a residual. ``tests/test_symbolic_errata.py`` checks every function.
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy as sp

from .ddim import ddim_symbols, posterior_moments_expr
from .ddpm import complete_the_square, compose_gaussian_steps, gaussian_log_density, is_zero
from .sde import drift_diffusion_expr

__all__ = ["errata_symbols", "eps_taylor", "exact_step_y", "seed002_dpm_solver1_y", "seed002_dpm_solver2_y",
           "local_error_order", "ode_pp_exact_constant", "seed002_last_formula", "dpm_solver_pp1",
           "gaussian_expectation", "dsm_objective", "markov_jump_posterior", "data_prediction_ode_residual",
           "pp_variation_of_constants_residuals", "exponential_weight_residual", "seed002_integrating_factor",
           "integrating_factor", "integrating_factor_residual"]


def errata_symbols():
    """The symbols of this module, in a namespace."""
    lam_s, e0, e1, e2, y_s, x_s, x_theta, z = sp.symbols(r"lambda_s e_0 e_1 e_2 y_s x_s x_theta z", real=True)
    h, r = sp.symbols("h r", positive=True)
    alpha_s, sigma_s, alpha_t, sigma_t = sp.symbols("alpha_s sigma_s alpha_t sigma_t", positive=True)
    return SimpleNamespace(lam_s=lam_s, h=h, r=r, e0=e0, e1=e1, e2=e2, y_s=y_s, x_s=x_s, x_theta=x_theta, z=z,
                           alpha_s=alpha_s, sigma_s=sigma_s, alpha_t=alpha_t, sigma_t=sigma_t)


def eps_taylor(S, lam, degree: int = 2):
    """The model output e0 + e1 (lam - lam_s) + e2 (lam - lam_s)^2 / 2, truncated after ``degree``."""
    if isinstance(degree, bool) or not isinstance(degree, int) or not 0 <= degree <= 2:
        raise ValueError(f"degree must be an int in 0..2, got {degree!r}")
    d = lam - S.lam_s
    return sum([S.e0, S.e1 * d, S.e2 * d**2 / 2][: degree + 1])


def exact_step_y(S, degree: int = 2):
    """The exact solution of seed 002's eq. (16) over one step, divided by alpha_t:
    y_t = y_s - int_{lam_s}^{lam_s + h} e^{-lam} eps(lam) d lam, for ``eps_taylor(degree)``."""
    lam = sp.Symbol("lambda", real=True)
    return S.y_s - sp.integrate(sp.exp(-lam) * eps_taylor(S, lam, degree), (lam, S.lam_s, S.lam_s + S.h))


def seed002_dpm_solver1_y(S, degree: int = 2):
    """Seed 002's eq. (18) divided by alpha_t: y_s + (e^{-lam_t} - e^{-lam_s}) eps(lam_s)."""
    eps0 = eps_taylor(S, S.lam_s, degree)
    return S.y_s + (sp.exp(-(S.lam_s + S.h)) - sp.exp(-S.lam_s)) * eps0


def seed002_dpm_solver2_y(S, degree: int = 2):
    """Seed 002's second-order step divided by alpha_t (sigma_t / alpha_t = e^{-lam_t}):
    y_s - e^{-lam_t}(e^h - 1) eps_s - e^{-lam_t}/(2r) (e^h - 1)(eps_{s1} - eps_s), lam_{s1} = lam_s + r h."""
    eps0 = eps_taylor(S, S.lam_s, degree)
    eps1 = eps_taylor(S, S.lam_s + S.r * S.h, degree)
    w = sp.exp(-(S.lam_s + S.h)) * (sp.exp(S.h) - 1)
    return S.y_s - w * eps0 - w / (2 * S.r) * (eps1 - eps0)


def local_error_order(residual, h, n_max: int = 6):
    """The lowest power of ``h`` with a non-zero coefficient in the series of ``residual`` at h = 0
    (``sympy.oo`` if every coefficient up to h^(n_max - 1) vanishes)."""
    if not isinstance(h, sp.Symbol):
        raise TypeError(f"h must be a sympy Symbol, got {type(h).__name__}")
    if isinstance(n_max, bool) or not isinstance(n_max, int) or n_max < 1:
        raise ValueError(f"n_max must be a positive int, got {n_max!r}")
    series = sp.expand(sp.series(residual, h, 0, n_max).removeO())
    for k in range(n_max):
        if not is_zero(series.coeff(h, k)):
            return k
    return sp.oo


def ode_pp_exact_constant(S):
    """The exact solution of the data-prediction ODE over one step when x_theta is constant:
    sigma_t/sigma_s x_s + sigma_t x_theta (e^{lam_t} - e^{lam_s}), with e^{lam} = alpha / sigma."""
    return S.sigma_t / S.sigma_s * S.x_s + S.sigma_t * S.x_theta * (S.alpha_t / S.sigma_t - S.alpha_s / S.sigma_s)


def _exp_minus_h(S):
    return S.sigma_t * S.alpha_s / (S.alpha_t * S.sigma_s)


def seed002_last_formula(S, noise: bool = True):
    """Seed 002's last formula: sigma_t/sigma_s e^{-h} x_s + alpha_t (1 - e^{-2h}) x_theta + sigma_t sqrt(1 - e^{-2h}) z
    (``noise=False`` drops the z term)."""
    e = _exp_minus_h(S)
    out = S.sigma_t / S.sigma_s * e * S.x_s + S.alpha_t * (1 - e**2) * S.x_theta
    return out + (S.sigma_t * sp.sqrt(1 - e**2) * S.z if noise else 0)


def dpm_solver_pp1(S):
    """DPM-Solver++(1), the first-order ODE step: sigma_t/sigma_s x_s + alpha_t (1 - e^{-h}) x_theta."""
    return S.sigma_t / S.sigma_s * S.x_s + S.alpha_t * (1 - _exp_minus_h(S)) * S.x_theta


def gaussian_expectation(expr, normals):
    """E[expr] for a polynomial ``expr`` in independent standard normal ``normals`` (moments
    E[u^k] = (k - 1)!! for even k, 0 for odd k)."""
    normals = list(normals)
    if not normals or not all(isinstance(u, sp.Symbol) for u in normals):
        raise TypeError("normals must be a non-empty list of sympy Symbols")
    poly = sp.Poly(sp.expand(expr), *normals)
    total = 0
    for powers, coef in poly.terms():
        moment = sp.prod([sp.factorial2(k - 1) if k % 2 == 0 else 0 for k in powers])
        total += coef * moment
    return sp.expand(total)


def dsm_objective(over_data: bool):
    """Seed 002's DSM objective (5) for data N(m, s^2) and a linear score model s_theta(x) = a x + b at one
    time: E || s_theta(x_t) + eps / sigma ||^2 with x_t = alpha x0 + sigma eps. The expectation is over eps
    only (``over_data=False``, the subscript q_0t(x_t | x_0) of the seed's eq. 4) or over x0 ~ N(m, s^2)
    as well. Returns ``(objective, x0, (a, b, m, s, alpha, sigma))``."""
    if not isinstance(over_data, bool):
        raise TypeError(f"over_data must be a bool, got {type(over_data).__name__}")
    a, b, m, x0 = sp.symbols("a b m x_0", real=True)
    s, alpha, sigma = sp.symbols("s alpha sigma", positive=True)
    u, eps = sp.symbols("u epsilon", real=True)
    x_t = alpha * x0 + sigma * eps
    loss = (a * x_t + b + eps / sigma) ** 2
    if over_data:
        return gaussian_expectation(loss.subs(x0, m + s * u), [u, eps]), x0, (a, b, m, s, alpha, sigma)
    return gaussian_expectation(loss, [eps]), x0, (a, b, m, s, alpha, sigma)


def markov_jump_posterior():
    """DDPM's Markov chain over two steps t-2 -> t-1 -> t (betas b1, b2), then Bayes' rule for
    q(x_{t-2} | x_t, x_0) by completing the square. Returns ``(mean, var, respaced_mean, respaced_var)``, the last
    two the posterior for a jump s -> t of ``ddim.posterior_moments_expr`` with abar_s = abar_{t-2}."""
    b1, b2, abar_s = sp.symbols(r"beta_{t-1} beta_t \bar{\alpha}_{t-2}", positive=True)
    x0, xt, xs = sp.symbols("x_0 x_t x_{t-2}", real=True)
    a_ts, v_ts = compose_gaussian_steps(sp.sqrt(1 - b1), b1, sp.sqrt(1 - b2), b2)  # x_t given x_{t-2}
    log_joint = gaussian_log_density(xt, a_ts * xs, v_ts) + gaussian_log_density(xs, sp.sqrt(abar_s) * x0, 1 - abar_s)
    mean, var, _, _ = complete_the_square(log_joint, xs)
    D = ddim_symbols("s")
    r_mean, r_var = posterior_moments_expr(D)
    sub = {D.abar_s: abar_s, D.abar_t: (1 - b1) * (1 - b2) * abar_s, D.x0: x0, D.xt: xt}
    # 0 < beta < 1, so sqrt((1 - b1)(1 - b2)) = sqrt(1 - b1) sqrt(1 - b2): split the roots as composing did
    split = lambda e: sp.expand_power_base(e.subs(sub), force=True)  # noqa: E731
    return mean, var, split(r_mean), split(r_var)


def data_prediction_ode_residual():
    """Seed 002's DPM-Solver++ ODE minus its eq. (8), with eps = (x - alpha x_theta)/sigma, for any
    alpha(t), sigma(t): [f + g^2/(2 sigma^2)] x - alpha g^2/(2 sigma^2) x_theta - (f x + g^2/(2 sigma) eps)."""
    t = sp.Symbol("t", real=True)
    x, x_theta = sp.symbols("x x_theta", real=True)
    alpha, sigma = sp.Function("alpha", positive=True)(t), sp.Function("sigma", positive=True)(t)
    f, g2 = drift_diffusion_expr(alpha, sigma, t)
    eps = (x - alpha * x_theta) / sigma
    seed = (f + g2 / (2 * sigma**2)) * x - alpha * g2 / (2 * sigma**2) * x_theta
    return sp.simplify(seed - (f * x + g2 / (2 * sigma) * eps))


def pp_variation_of_constants_residuals():
    """The variation-of-constants solution x = sigma (x_s/sigma_s + int e^lam x_theta d lam) of the ODE above solves
    it iff f + g^2/(2 sigma^2) = d log sigma/dt and -alpha g^2/(2 sigma^2) = sigma e^lam d lam/dt; returns both
    residuals (zero for any alpha(t), sigma(t))."""
    t = sp.Symbol("t", real=True)
    alpha, sigma = sp.Function("alpha", positive=True)(t), sp.Function("sigma", positive=True)(t)
    f, g2 = drift_diffusion_expr(alpha, sigma, t)
    lam = sp.log(alpha / sigma)
    first = f + g2 / (2 * sigma**2) - sp.diff(sp.log(sigma), t)
    second = -alpha * g2 / (2 * sigma**2) - sigma * sp.exp(lam) * sp.diff(lam, t)
    return sp.simplify(first), sp.simplify(second)


def exponential_weight_residual():
    """Seed 002, before eq. (15): e^{int_tau^t f} g^2(tau)/(2 sigma_tau) = -alpha_t sigma_tau/alpha_tau d lam/d tau.
    With e^{int_tau^t f} = alpha_t/alpha_tau this is an identity for any alpha, sigma; returns lhs - rhs."""
    tau = sp.Symbol("tau", real=True)
    alpha_t = sp.Symbol("alpha_t", positive=True)
    alpha, sigma = sp.Function("alpha", positive=True)(tau), sp.Function("sigma", positive=True)(tau)
    _, g2 = drift_diffusion_expr(alpha, sigma, tau)
    lam = sp.log(alpha / sigma)
    return sp.simplify(alpha_t / alpha * g2 / (2 * sigma) + alpha_t * sigma / alpha * sp.diff(lam, tau))


def _factor_symbols():
    tau, r = sp.symbols("tau r", real=True)
    return tau, r, sp.Function("f")


def seed002_integrating_factor():
    """Seed 002's u_tau = exp(-int_tau^inf f(r) dr), opening its DPM-Solver section."""
    tau, r, f = _factor_symbols()
    return sp.exp(-sp.Integral(f(r), (r, tau, sp.oo)))


def integrating_factor():
    """u_tau = exp(-int_0^tau f(r) dr)."""
    tau, r, f = _factor_symbols()
    return sp.exp(-sp.Integral(f(r), (r, 0, tau)))


def integrating_factor_residual(u):
    """d(u x)/d tau - u (dx/d tau - f(tau) x) for any x(tau): zero iff ``u`` turns seed 002's eq. (10) into
    eq. (11)."""
    tau, _, f = _factor_symbols()
    if not isinstance(u, sp.Expr):
        raise TypeError(f"u must be a sympy expression, got {type(u).__name__}")
    x = sp.Function("x")(tau)
    return sp.simplify(sp.diff(u * x, tau) - u * (sp.diff(x, tau) - f(tau) * x))
