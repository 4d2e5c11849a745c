"""Chapter 2's derivations in SymPy: DDIM by coefficient matching, the eta family, DDIM as an ODE.

Symbols (the source notes' alpha-bar notation; all positive)::

    abar_t, abar_s   alpha_bar at the current time t and at the earlier time s (s = t-1 or any s < t)
    vs               DDIM's noise scale for the step t -> s, written varsigma_t in the chapter
                     (the DDIM paper's sigma_t; ``ddim_sigma`` in code). The book keeps sigma_t for
                     the noise scale sqrt(1 - abar_t) of x_t, so DDIM's one gets its own letter.
    x0, xt, x        x_0, x_t and the unknown x_s
    eps              the noise in x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (or the model's eps-hat)
    z                the fresh standard normal of the step
    k, m             the unknown coefficients of x_s = k x0 + m xt + vs z

The admissible region is 0 < abar_t < abar_s < 1 and 0 < vs^2 < 1 - abar_s. SymPy cannot decide the
sign of 1 - abar_s - vs^2 from symbol assumptions alone, so ``is_zero_admissible`` substitutes a
parametrisation of exactly that region by positive symbols u, v, w and then proves the identity.

For the ODE: alpha, sigma are the book's signal and noise scales (alpha^2 + sigma^2 = 1), y = x/alpha
and rho = sigma/alpha (``noise_to_signal``).
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy as sp

from .ddpm import is_zero

__all__ = ["ddim_symbols", "admissible", "is_zero_admissible", "gaussian_moments", "matching_equations",
           "solve_matching", "ddim_coefficients", "x0_eps_form", "x0_hat_expr", "ddim_update",
           "ddim_sigma_expr", "posterior_moments_expr", "eta_max_expr", "seed000_m", "seed000_k",
           "seed001_update", "ode_symbols", "ddim_deterministic_step", "euler_step_y_rho",
           "boxed_ode_residual", "probability_flow_check"]


def ddim_symbols(prev: str = "t-1"):
    """The symbols of the DDIM derivation; ``prev`` names the earlier time ("t-1" or "s")."""
    abar_t = sp.Symbol(r"\bar{\alpha}_{t}", positive=True)
    abar_s = sp.Symbol(rf"\bar{{\alpha}}_{{{prev}}}", positive=True)
    vs = sp.Symbol(r"\varsigma_{t}", positive=True)
    x0, xt, x = sp.symbols(rf"x_0 x_t x_{{{prev}}}", real=True)
    eps, z = sp.symbols(r"epsilon z", real=True)
    k, m = sp.symbols("k m", real=True)
    u, v, w = sp.symbols("u v w", positive=True)
    return SimpleNamespace(abar_t=abar_t, abar_s=abar_s, vs=vs, x0=x0, xt=xt, x=x, eps=eps, z=z, k=k, m=m,
                           u=u, v=v, w=w, prev=prev)


def admissible(expr, S):
    """Substitute abar_s = 1/(1+u), abar_t = abar_s/(1+v), vs^2 = (1 - abar_s)/(1+w) with u, v, w > 0:
    every admissible (abar_t, abar_s, vs) is reached, and nothing else."""
    abar_s = 1 / (1 + S.u)
    abar_t = abar_s / (1 + S.v)
    vs = sp.sqrt((1 - abar_s) / (1 + S.w))
    return sp.sympify(expr).subs({S.abar_t: abar_t, S.abar_s: abar_s, S.vs: vs})


def _factor_radicands(expr):
    """Factor the base of every fractional power: with u, v, w > 0 the factors then split out of the root."""
    return expr.replace(lambda e: e.is_Pow and e.exp.is_Rational and not e.exp.is_Integer,
                        lambda e: sp.factor(sp.together(e.base)) ** e.exp)


def is_zero_admissible(expr, S) -> bool:
    """True when ``expr`` is identically zero on the whole admissible region (a proof, not a sample)."""
    expr = sp.simplify(admissible(expr, S))
    return expr == 0 or is_zero(_factor_radicands(expr))


def gaussian_moments(expr, x0, noises):
    """For ``expr`` linear in x0 and in independent standard normals ``noises``, return
    (coefficient of x0, variance); raises ``ValueError`` if anything else is left over."""
    expr = sp.expand(expr)
    coef = expr.coeff(x0)
    coefs = [expr.coeff(n) for n in noises]
    rest = sp.simplify(expr - coef * x0 - sum(c * n for c, n in zip(coefs, noises)))
    if rest != 0 or any(c.has(x0, *noises) for c in [coef, *coefs]):
        raise ValueError(f"expr must be linear in {x0} and in the noises {noises}, left over: {rest}")
    return coef, sp.expand(sum(c**2 for c in coefs))


def matching_equations(S):
    """Posit x_s = k x0 + m x_t + vs z with x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps; demand the
    marginal q(x_s | x0) = N(sqrt(abar_s) x0, 1 - abar_s). Returns ``(mean_eq, var_eq)``."""
    x_t = sp.sqrt(S.abar_t) * S.x0 + sp.sqrt(1 - S.abar_t) * S.eps
    coef, var = gaussian_moments(S.k * S.x0 + S.m * x_t + S.vs * S.z, S.x0, [S.eps, S.z])
    return sp.Eq(coef, sp.sqrt(S.abar_s)), sp.Eq(var, 1 - S.abar_s)


def solve_matching(S):
    """``sympy.solve`` the matching equations for (k, m). Returns ``(k, m, solutions)``: the root with
    m > 0 (the one that reproduces DDPM's posterior at eta = 1) and both roots."""
    solutions = sp.solve(list(matching_equations(S)), [S.k, S.m], dict=True)
    point = {S.u: 1, S.v: 1, S.w: 1}
    positive = [sol for sol in solutions if admissible(sol[S.m], S).subs(point) > 0]
    if len(solutions) != 2 or len(positive) != 1:
        raise RuntimeError(f"expected two roots, one with m > 0; got {solutions}")
    return positive[0][S.k], positive[0][S.m], solutions


def ddim_coefficients(S):
    """The readable closed forms: m = sqrt(1 - abar_s - vs^2)/sqrt(1 - abar_t),
    k = sqrt(abar_s) - sqrt(abar_t) * m."""
    m = sp.sqrt(1 - S.abar_s - S.vs**2) / sp.sqrt(1 - S.abar_t)
    return sp.sqrt(S.abar_s) - sp.sqrt(S.abar_t) * m, m


def x0_eps_form(S):
    """The mean k x0 + m x_t regrouped: sqrt(abar_s) x0 + sqrt(1 - abar_s - vs^2) (x_t - sqrt(abar_t) x0)/sqrt(1 - abar_t),
    where the last fraction is the noise eps in x_t."""
    eps_of_x0 = (S.xt - sp.sqrt(S.abar_t) * S.x0) / sp.sqrt(1 - S.abar_t)
    return sp.sqrt(S.abar_s) * S.x0 + sp.sqrt(1 - S.abar_s - S.vs**2) * eps_of_x0


def x0_hat_expr(S):
    """x0-hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
    return (S.xt - sp.sqrt(1 - S.abar_t) * S.eps) / sp.sqrt(S.abar_t)


def ddim_update(S, noise_coef=None):
    """DDIM's sampling step (its eq. 12): sqrt(abar_s) x0-hat + sqrt(1 - abar_s - vs^2) eps + vs z.
    ``noise_coef`` replaces the coefficient of z (to test a wrong version)."""
    noise_coef = S.vs if noise_coef is None else noise_coef
    return sp.sqrt(S.abar_s) * x0_hat_expr(S) + sp.sqrt(1 - S.abar_s - S.vs**2) * S.eps + noise_coef * S.z


def ddim_sigma_expr(S, eta=None):
    """DDIM's eq. (16): vs(eta) = eta sqrt((1 - abar_s)/(1 - abar_t)) sqrt(1 - abar_t/abar_s)."""
    eta = sp.Symbol("eta", positive=True) if eta is None else sp.sympify(eta)
    return eta * sp.sqrt((1 - S.abar_s) / (1 - S.abar_t)) * sp.sqrt(1 - S.abar_t / S.abar_s)


def posterior_moments_expr(S):
    """DDPM's posterior q(x_s | x_t, x0) for any s < t (``forward.posterior`` in alpha-bar form):
    mean = sqrt(abar_s) (1 - abar_t/abar_s)/(1 - abar_t) x0 + sqrt(abar_t/abar_s) (1 - abar_s)/(1 - abar_t) x_t,
    var = (1 - abar_t/abar_s)(1 - abar_s)/(1 - abar_t)."""
    beta_ts = 1 - S.abar_t / S.abar_s  # 1 - alpha_{t|s}^2, the jump's own beta
    mean = (sp.sqrt(S.abar_s) * beta_ts / (1 - S.abar_t) * S.x0
            + sp.sqrt(S.abar_t / S.abar_s) * (1 - S.abar_s) / (1 - S.abar_t) * S.xt)
    return mean, beta_ts * (1 - S.abar_s) / (1 - S.abar_t)


def eta_max_expr(S):
    """The eta at which vs^2 = 1 - abar_s (the eps coefficient vanishes): sqrt(abar_s (1 - abar_t)/(abar_s - abar_t))."""
    return sp.sqrt(S.abar_s * (1 - S.abar_t) / (S.abar_s - S.abar_t))


# --- the source notes' versions, kept to show them failing the checks ------------------------------
def seed000_m(S):
    """Seed 000: m_t = (1 - abar_{t-1} - sigma_t^2)/(1 - abar_t), the square root missing."""
    return (1 - S.abar_s - S.vs**2) / (1 - S.abar_t)


def seed000_k(S):
    """Seed 000: sqrt(abar_{t-1}) - sqrt(abar_t/(1 - abar_t)) (1 - abar_{t-1} - delta_t^2), the bracket
    outside the square root."""
    return sp.sqrt(S.abar_s) - sp.sqrt(S.abar_t / (1 - S.abar_t)) * (1 - S.abar_s - S.vs**2)


def seed001_update(S):
    """Seed 001's final sampling formula: ... + sigma^2 eps where the noise needs sigma."""
    return ddim_update(S, noise_coef=S.vs**2)


# --- DDIM as an ODE ----------------------------------------------------------------------------------
def ode_symbols():
    """alpha_t, sigma_t, alpha_s, sigma_s (the book's scales), x = x_t and eps = eps-hat(x_t, t)."""
    alpha_t, sigma_t, alpha_s, sigma_s = sp.symbols(r"alpha_t sigma_t alpha_s sigma_s", positive=True)
    x, eps = sp.symbols("x epsilon", real=True)
    return SimpleNamespace(alpha_t=alpha_t, sigma_t=sigma_t, alpha_s=alpha_s, sigma_s=sigma_s, x=x, eps=eps)


def ddim_deterministic_step(O):
    """DDIM with vs = 0 in the book's notation: x_s = alpha_s (x - sigma_t eps)/alpha_t + sigma_s eps."""
    return O.alpha_s * (O.x - O.sigma_t * O.eps) / O.alpha_t + O.sigma_s * O.eps


def euler_step_y_rho(O):
    """One explicit Euler step of dy/drho = eps from rho_t to rho_s, y = x/alpha, rho = sigma/alpha,
    mapped back to x: x_s = alpha_s (y_t + (rho_s - rho_t) eps)."""
    y_t = O.x / O.alpha_t
    rho_t, rho_s = O.sigma_t / O.alpha_t, O.sigma_s / O.alpha_s
    return O.alpha_s * (y_t + (rho_s - rho_t) * O.eps)


def boxed_ode_residual():
    """Seed 000's boxed ODE from the step: write the DDIM step as y(tau - h) - y(tau) = (rho(tau - h) - rho(tau)) eps,
    divide by -h and let h -> 0. Returns ``(residual, y, rho, tau)`` with residual = dy/dtau - drho/dtau * eps."""
    tau, h = sp.symbols("tau h", real=True)
    y, rho = sp.Function("y"), sp.Function("rho")
    eps = sp.Symbol("epsilon", real=True)
    quotient = ((y(tau - h) - y(tau)) - (rho(tau - h) - rho(tau)) * eps) / (-h)
    residual = sp.series(quotient, h, 0, 1).removeO().doit()
    return sp.expand(residual), y, rho, tau, eps


def probability_flow_check():
    """Rewrite dy/dt = (d rho/dt) eps with x = alpha y, rho = sigma/alpha, sigma = sqrt(1 - alpha^2) as an ODE
    for x. Returns ``(dx_dt, pf_rhs)`` with pf_rhs = f x + g^2/(2 sigma) eps, the probability-flow ODE of
    a VP diffusion (f = d log alpha/dt, g^2 = -2 f, score = -eps/sigma)."""
    t = sp.Symbol("t", real=True)
    x, eps = sp.symbols("x epsilon", real=True)
    alpha = sp.Function("alpha")(t)
    sigma = sp.sqrt(1 - alpha**2)
    rho = sigma / alpha
    dx_dt = sp.diff(alpha, t) * (x / alpha) + alpha * sp.diff(rho, t) * eps  # product rule on x = alpha y
    f = sp.diff(alpha, t) / alpha
    g2 = sp.diff(sigma**2, t) - 2 * f * sigma**2
    score = -eps / sigma
    return dx_dt, f * x - g2 / 2 * score
