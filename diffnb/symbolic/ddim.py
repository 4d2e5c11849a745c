"""Chapter 2's derivations in SymPy: DDIM by coefficient matching, its non-Markovian joint (marginals,
the forward kernel, Theorem 1), the eta family, and DDIM as an ODE.

Symbols (the source notes' alpha-bar notation; all positive)::

    abar_t, abar_s   alpha-bar at the current time t and at the earlier time s (s = t-1 or any s < t)
    vs               DDIM's noise scale of the step t -> s, varsigma_t (the DDIM paper's sigma_t; ``ddim_sigma``
                     in code): the book keeps sigma_t for the noise scale sqrt(1 - abar_t) of x_t
    x0, xt, x        x_0, x_t and the unknown x_s
    eps, eps_theta   the noise in x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, and a model's prediction of it
    z                the fresh standard normal of the step
    k, m             the unknown coefficients of x_s = k x0 + m xt + vs z

The admissible region is 0 < abar_t < abar_s < 1 and 0 < vs^2 < 1 - abar_s. SymPy cannot decide the
sign of 1 - abar_s - vs^2 from symbol assumptions alone, so ``is_zero_admissible`` substitutes a
parametrisation of exactly that region by positive symbols u, v, w and then proves the identity.

For the ODE (``ode_symbols``): alpha, sigma are the scales of any Gaussian path, y = x/alpha and
rho = sigma/alpha (``noise_to_signal``).
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy as sp

from .core import (Symbols, complete_the_square, expression, gaussian_expectation, gaussian_kl, gaussian_log_density,
                   gaussian_moments, in_order, is_zero, namespace, positive_expression)

__all__ = ["ddim_symbols", "admissible", "is_zero_admissible", "matching_equations", "solve_matching",
           "ddim_coefficients", "x0_eps_form", "x0_hat_expr", "ddim_update", "ddim_sigma_expr", "eta_max_expr",
           "posterior_moments_expr", "kernel_marginal", "forward_kernel", "theorem1_step",
           "theorem1_weight_closed_form", "ode_symbols", "ddim_deterministic_step", "euler_step_y_rho",
           "boxed_ode_residual", "textbook_forms"]


class DDIMSymbols(Symbols):
    """The namespace ``ddim_symbols`` returns."""

    factory = "diffnb.symbolic.ddim.ddim_symbols()"


class ODESymbols(Symbols):
    """The namespace ``ode_symbols`` returns."""

    factory = "diffnb.symbolic.ddim.ode_symbols()"


def _S(S, name="S"):
    return namespace(S, DDIMSymbols, name)


def _O(O):
    return namespace(O, ODESymbols, "O")


def ddim_symbols(prev: str = "t-1"):
    """The symbols of the DDIM derivation; ``prev`` names the earlier time ("t-1", "s", ...)."""
    if not isinstance(prev, str):
        raise TypeError(f"prev must be a str naming the earlier time (e.g. 't-1', 's'), got {type(prev).__name__}")
    if not prev:
        raise ValueError("prev must be a non-empty str naming the earlier time (e.g. 't-1', 's')")
    abar_t = sp.Symbol(r"\bar{\alpha}_{t}", positive=True)
    abar_s = sp.Symbol(rf"\bar{{\alpha}}_{{{prev}}}", positive=True)
    vs = sp.Symbol(r"\varsigma_{t}", positive=True)
    x0, xt, x = sp.symbols(rf"x_0 x_t x_{{{prev}}}", real=True)
    eps, eps_theta, z = sp.symbols(r"epsilon \epsilon_\theta z", real=True)
    k, m = sp.symbols("k m", real=True)
    u, v, w = sp.symbols("u v w", positive=True)
    return DDIMSymbols(abar_t=abar_t, abar_s=abar_s, vs=vs, x0=x0, xt=xt, x=x, eps=eps, eps_theta=eps_theta,
                       z=z, k=k, m=m, u=u, v=v, w=w, prev=prev)


def admissible(expr, S):
    """Substitute abar_s = 1/(1+u), abar_t = abar_s/(1+v), vs^2 = (1 - abar_s)/(1+w) with u, v, w > 0:
    every admissible (abar_t, abar_s, vs) is reached, and nothing else."""
    expr, S = expression(expr, "expr"), _S(S)
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
    expr = sp.simplify(admissible(expr, _S(S)))
    return expr == 0 or is_zero(_factor_radicands(expr))


def _x_t(S):
    return sp.sqrt(S.abar_t) * S.x0 + sp.sqrt(1 - S.abar_t) * S.eps


# --- coefficient matching ---------------------------------------------------------------------------
def matching_equations(S):
    """Posit x_s = k x0 + m x_t + vs z with x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps; demand the
    marginal q(x_s | x0) = N(sqrt(abar_s) x0, 1 - abar_s). Returns ``(mean_eq, var_eq)``."""
    _S(S)
    coef, var = gaussian_moments(S.k * S.x0 + S.m * _x_t(S) + S.vs * S.z, S.x0, [S.eps, S.z])
    return sp.Eq(coef, sp.sqrt(S.abar_s)), sp.Eq(var, 1 - S.abar_s)


def solve_matching(S):
    """``sympy.solve`` the matching equations for (k, m). Returns ``(k, m, solutions)``: the root with
    m > 0 (the one that reproduces DDPM's posterior at eta = 1) and both roots."""
    _S(S)
    solutions = sp.solve(list(matching_equations(S)), [S.k, S.m], dict=True)
    point = {S.u: 1, S.v: 1, S.w: 1}
    positive = [sol for sol in solutions if admissible(sol[S.m], S).subs(point) > 0]
    if len(solutions) != 2 or len(positive) != 1:
        raise RuntimeError(f"expected two roots, one with m > 0; got {solutions}")
    return positive[0][S.k], positive[0][S.m], solutions


def ddim_coefficients(S):
    """The closed forms ``(k, m)``: m = sqrt(1 - abar_s - vs^2)/sqrt(1 - abar_t), k = sqrt(abar_s) - sqrt(abar_t) m."""
    _S(S)
    m = sp.sqrt(1 - S.abar_s - S.vs**2) / sp.sqrt(1 - S.abar_t)
    return sp.sqrt(S.abar_s) - sp.sqrt(S.abar_t) * m, m


def x0_eps_form(S):
    """The mean of q_vs(x_s | x_t, x0), k x0 + m x_t regrouped (DDIM's eq. 7):
    sqrt(abar_s) x0 + sqrt(1 - abar_s - vs^2) (x_t - sqrt(abar_t) x0)/sqrt(1 - abar_t)."""
    _S(S)
    eps_of_x0 = (S.xt - sp.sqrt(S.abar_t) * S.x0) / sp.sqrt(1 - S.abar_t)
    return sp.sqrt(S.abar_s) * S.x0 + sp.sqrt(1 - S.abar_s - S.vs**2) * eps_of_x0


def x0_hat_expr(S, eps=None):
    """x0-hat = (x_t - sqrt(1 - abar_t) eps)/sqrt(abar_t)."""
    _S(S)
    eps = S.eps if eps is None else expression(eps, "eps")
    return (S.xt - sp.sqrt(1 - S.abar_t) * eps) / sp.sqrt(S.abar_t)


def ddim_update(S):
    """DDIM's sampling step (its eq. 12): sqrt(abar_s) x0-hat + sqrt(1 - abar_s - vs^2) eps + vs z."""
    _S(S)
    return in_order(sp.sqrt(S.abar_s) * x0_hat_expr(S), sp.sqrt(1 - S.abar_s - S.vs**2) * S.eps, S.vs * S.z)


def ddim_sigma_expr(S, eta=None):
    """DDIM's eq. (16): vs(eta) = eta sqrt((1 - abar_s)/(1 - abar_t)) sqrt(1 - abar_t/abar_s)."""
    _S(S)
    eta = sp.Symbol("eta", positive=True) if eta is None else sp.sympify(positive_expression(eta, "eta", zero=True))
    return eta * sp.sqrt((1 - S.abar_s) / (1 - S.abar_t)) * sp.sqrt(1 - S.abar_t / S.abar_s)


def eta_max_expr(S):
    """The eta at which vs^2 = 1 - abar_s (the eps coefficient vanishes):
    sqrt(abar_s (1 - abar_t)/(abar_s - abar_t))."""
    _S(S)
    return sp.sqrt(S.abar_s * (1 - S.abar_t) / (S.abar_s - S.abar_t))


def posterior_moments_expr(S):
    """DDPM's posterior q(x_s | x_t, x0) for any s < t, in closed form ``(mean, var)``:
    mean = sqrt(abar_s)(1 - abar_t/abar_s)/(1 - abar_t) x0 + sqrt(abar_t/abar_s)(1 - abar_s)/(1 - abar_t) x_t,
    var = (1 - abar_t/abar_s)(1 - abar_s)/(1 - abar_t)."""
    _S(S)
    beta_ts = 1 - S.abar_t / S.abar_s  # 1 - alpha_{t|s}^2, the jump's own beta
    mean = (sp.sqrt(S.abar_s) * beta_ts / (1 - S.abar_t) * S.x0
            + sp.sqrt(S.abar_t / S.abar_s) * (1 - S.abar_s) / (1 - S.abar_t) * S.xt)
    return mean, beta_ts * (1 - S.abar_s) / (1 - S.abar_t)


# --- the non-Markovian joint --------------------------------------------------------------------------
def kernel_marginal(S):
    """DDIM's Lemma 1, one step: if x_t | x0 ~ N(sqrt(abar_t) x0, 1 - abar_t), the moments ``(coefficient
    of x0, variance)`` of x_s = mean of q_vs(x_s | x_t, x0) + vs z; they are those of N(sqrt(abar_s) x0, 1 - abar_s)."""
    _S(S)
    return gaussian_moments(x0_eps_form(S).subs(S.xt, _x_t(S)) + S.vs * S.z, S.x0, [S.eps, S.z])


def forward_kernel(S):
    """The forward kernel q_vs(x_t | x_s, x0) of DDIM's joint, by Bayes' rule in x_t:
    log q_vs(x_s | x_t, x0) + log q(x_t | x0) - log q(x_s | x0), completing the square. Returns ``(mean, var)``;
    the mean depends on x0 (the joint is not Markovian) except at eta = 1."""
    _S(S)
    log_joint = (gaussian_log_density(S.x, x0_eps_form(S), S.vs**2)
                 + gaussian_log_density(S.xt, sp.sqrt(S.abar_t) * S.x0, 1 - S.abar_t))
    return complete_the_square(log_joint, S.xt)


def theorem1_step(S, data=None):
    """One term of DDIM's Theorem 1: KL(q_vs(x_s | x_t, x0) || p_theta(x_s | x_t)) with p_theta(x_s | x_t) =
    q_vs(x_s | x_t, x0-hat(x_t, eps_theta)). Returns a namespace ``kl``, ``weight`` (half the second
    derivative in eps_theta), ``constant`` (kl at eps_theta = eps) with kl = weight (eps - eps_theta)^2 + constant.

    ``data=(m, s, a, b)``: Gaussian data x0 = m + s u and the linear model eps_theta(x_t) = a x_t + b;
    the namespace then also holds ``expected_kl`` and ``expected_mse`` = E (eps - eps_theta)^2 over u and eps,
    whose difference expected_kl - weight expected_mse is the constant of J = L_gamma + C."""
    mean = x0_eps_form(_S(S))
    if data is not None:
        if not isinstance(data, (list, tuple)) or len(data) != 4:
            raise TypeError(f"data must be a tuple (m, s, a, b) of sympy expressions, got {data!r}")
        data = [expression(v, f"data[{i}]") for i, v in enumerate(data)]
    mean_theta = mean.subs(S.x0, x0_hat_expr(S, S.eps_theta))
    gap = sp.factor(sp.expand((mean - mean_theta).subs(S.xt, _x_t(S))))  # the means with x_t = x_t(x0, eps)
    kl = gaussian_kl(gap, S.vs**2, 0, S.vs**2)  # a KL is unchanged by a common shift of both means
    weight = sp.factor(sp.diff(kl, S.eps_theta, 2) / 2)
    out = SimpleNamespace(kl=kl, weight=weight, constant=sp.simplify(kl.subs(S.eps_theta, S.eps)))
    if data is not None:
        m, s, a, b = data
        u = sp.Dummy("u", real=True)
        model = {S.eps_theta: a * _x_t(S) + b}
        on_data = lambda e: gaussian_expectation(e.subs(model).subs(S.x0, m + s * u), [u, S.eps])  # noqa: E731
        out.expected_kl, out.expected_mse = on_data(kl), on_data((S.eps - S.eps_theta) ** 2)
    return out


def theorem1_weight_closed_form(S):
    """gamma_t = k^2 (1 - abar_t)/(2 vs^2 abar_t), with k the coefficient of x0 (``ddim_coefficients``): the
    means differ by k (x0 - x0-hat) and x0 - x0-hat = sqrt((1 - abar_t)/abar_t)(eps_theta - eps)."""
    _S(S)
    k, _ = ddim_coefficients(S)
    return k**2 * (1 - S.abar_t) / (2 * S.vs**2 * S.abar_t)


# --- DDIM as an ODE ----------------------------------------------------------------------------------
def ode_symbols():
    """alpha_t, sigma_t, alpha_s, sigma_s (a step from t to the less noisy s), x = x_t and eps = eps-hat(x_t, t)."""
    alpha_t, sigma_t, alpha_s, sigma_s = sp.symbols(r"alpha_t sigma_t alpha_s sigma_s", positive=True)
    x, eps = sp.symbols("x epsilon", real=True)
    return ODESymbols(alpha_t=alpha_t, sigma_t=sigma_t, alpha_s=alpha_s, sigma_s=sigma_s, x=x, eps=eps)


def ddim_deterministic_step(O):
    """DDIM with vs = 0 for any Gaussian path: x_s = alpha_s (x - sigma_t eps)/alpha_t + sigma_s eps."""
    _O(O)
    return O.alpha_s * (O.x - O.sigma_t * O.eps) / O.alpha_t + O.sigma_s * O.eps


def euler_step_y_rho(O):
    """One explicit Euler step of dy/drho = eps from rho_t to rho_s, y = x/alpha, rho = sigma/alpha,
    mapped back to x: x_s = alpha_s (y_t + (rho_s - rho_t) eps)."""
    _O(O)
    rho_t, rho_s = O.sigma_t / O.alpha_t, O.sigma_s / O.alpha_s
    return O.alpha_s * (O.x / O.alpha_t + (rho_s - rho_t) * O.eps)


def boxed_ode_residual():
    """Seed 000's boxed ODE from the step: write the DDIM step as y(tau - h) - y(tau) = (rho(tau - h) - rho(tau)) eps,
    divide by -h and let h -> 0. Returns ``(residual, y, rho, tau, eps)``, residual = dy/dtau - drho/dtau eps."""
    tau, h = sp.symbols("tau h", real=True)
    y, rho = sp.Function("y"), sp.Function("rho")
    eps = sp.Symbol("epsilon", real=True)
    quotient = ((y(tau - h) - y(tau)) - (rho(tau - h) - rho(tau)) * eps) / (-h)
    residual = sp.series(quotient, h, 0, 1).removeO().doit()
    return sp.expand(residual), y, rho, tau, eps


def textbook_forms(S=None):
    """The chapter's results as the DDIM paper prints them, as ``sympy.Eq`` objects keyed by name; each
    right-hand side is a closed form that a test proves equal to the derived result."""
    S = ddim_symbols("s") if S is None else _S(S)
    k, m = ddim_coefficients(S)
    mean, var = posterior_moments_expr(S)
    eta = sp.Symbol("eta", positive=True)
    loss = sp.Symbol(r"\|\epsilon - \epsilon_\theta\|^{2}", nonnegative=True)
    return {
        "m": sp.Eq(S.m, m),
        "k": sp.Eq(S.k, k),
        "kernel_mean": sp.Eq(sp.Symbol(r"\tilde\mu_{\varsigma}"), x0_eps_form(S)),
        "update": sp.Eq(S.x, ddim_update(S)),
        "sigma_eta": sp.Eq(sp.Symbol(r"\varsigma_{t}(\eta)"), ddim_sigma_expr(S, eta)),
        "eta_max": sp.Eq(sp.Symbol(r"\eta_{\max}"), eta_max_expr(S)),
        "posterior_mean": sp.Eq(sp.Symbol(rf"\tilde\mu_{{t \to {S.prev}}}"), mean),
        "posterior_variance": sp.Eq(sp.Symbol(rf"\tilde\beta_{{t \to {S.prev}}}"), var),
        "theorem1_step": sp.Eq(sp.Symbol(r"D_{\mathrm{KL}}"), theorem1_weight_closed_form(S) * loss),
    }
