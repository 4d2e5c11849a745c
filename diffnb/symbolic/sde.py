"""Chapter 3's derivations in SymPy: the forward SDE of a Gaussian path, DDPM as its Euler-Maruyama
discretisation, the Fokker-Planck equations behind the one-parameter family of reverse SDEs and the
probability-flow ODE, Tweedie's formula, and (denoising) score matching.

Symbols (``sde_symbols``)::

    t, x            time and state (1-D; every formula acts coordinate-wise)
    alpha, sigma    alpha_t, sigma_t as undefined functions of t: any Gaussian path unless a schedule is given
    f, g2           drift f(t) = d log alpha_t / dt and squared diffusion g^2(t) = d sigma_t^2/dt - 2 f sigma_t^2
    eta             the reverse family's noise level: dx = [f x - (1 + eta^2)/2 g^2 score] dt + eta g dw_bar
                    (eta = 0: the probability-flow ODE; eta = 1: Anderson's reverse SDE)
    m, s            mean and standard deviation of Gaussian data N(m, s^2)
    beta_0, beta_1  the linear schedule's beta(t) = beta_0 + (beta_1 - beta_0) t on t in [0, 1]
    s_cos           the cosine schedule's offset s
    tau, r, dt      integration variables and a time step
    b, x0, eps      DDPM's per-step beta_n, clean data x_0 and a standard normal eps

``tests/test_symbolic_sde.py`` checks every function against an independent computation.
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy as sp

from .core import (Symbols, complete_the_square, drift_diffusion, expression, gaussian_density, gaussian_expectation,
                   gaussian_log_density, in_order, integer, namespace, positive_expression, variable)

__all__ = ["sde_symbols", "linear_vp_beta", "linear_vp_log_alpha", "cosine_vp_alpha", "product_continuum_limit",
           "fokker_planck_residual", "reverse_fokker_planck_residual", "continuity_residual", "reverse_drift",
           "pf_ode_velocity", "reverse_sde_drift", "reverse_family_residual", "gaussian_flow_map",
           "rho_form_residual", "ddpm_step_vs_euler_maruyama", "conditional_score", "gaussian_score",
           "gaussian_posterior_mean", "tweedie_mean", "sm_objective", "dsm_loss", "dsm_objective",
           "textbook_forms"]


class SDESymbols(Symbols):
    """The namespace ``sde_symbols`` returns."""

    factory = "diffnb.symbolic.sde.sde_symbols()"


def _S(S, optional=True):
    """``S`` checked; None (where the argument is optional) gives a fresh ``sde_symbols()``."""
    return sde_symbols() if S is None and optional else namespace(S, SDESymbols)


def sde_symbols():
    """The symbols of the SDE derivations, in a namespace (alpha, sigma are functions of t)."""
    t, tau, r, dt = sp.symbols("t tau r Delta_t", positive=True)
    x, m, x0, eps = sp.symbols("x m x_0 epsilon", real=True)
    b, eta = sp.Symbol("beta_n", positive=True), sp.Symbol("eta", nonnegative=True)
    s, s_cos, beta_0, beta_1 = sp.symbols(r"s s_{\cos} beta_0 beta_1", positive=True)
    alpha, sigma = sp.Function("alpha", positive=True)(t), sp.Function("sigma", positive=True)(t)
    return SDESymbols(t=t, tau=tau, r=r, dt=dt, x=x, m=m, x0=x0, eps=eps, b=b, eta=eta, s=s, s_cos=s_cos,
                      beta_0=beta_0, beta_1=beta_1, alpha=alpha, sigma=sigma)


# --- schedules ---------------------------------------------------------------------------------------
def linear_vp_beta(S=None):
    """beta(t) = beta_0 + (beta_1 - beta_0) t."""
    S = _S(S)
    return S.beta_0 + (S.beta_1 - S.beta_0) * S.t


def linear_vp_log_alpha(S=None):
    """log alpha_t = -1/2 int_0^t beta(r) dr for the linear VP schedule, by integration (not by hand)."""
    S = _S(S)
    return sp.expand(-sp.Rational(1, 2) * sp.integrate(linear_vp_beta(S).subs(S.t, S.r), (S.r, 0, S.t)))


def cosine_vp_alpha(S=None):
    """alpha_t = cos((t + s)/(1 + s) pi/2) / cos(s/(1 + s) pi/2) (Nichol and Dhariwal 2021), t in [0, 1)."""
    S = _S(S)
    angle = lambda u: (u + S.s_cos) / (1 + S.s_cos) * sp.pi / 2  # noqa: E731
    return sp.cos(angle(S.t)) / sp.cos(angle(0))


def product_continuum_limit(S=None):
    """lim_{dt -> 0} (a(t + dt) - a(t)) / (a(t) dt) for a(t + dt) = a(t) (1 - dt beta(t + dt)), with the
    linear beta(t): the continuum limit of a_{n+1} = a_n (1 - beta_{n+1}), beta_n = beta(t) dt, of the
    product a_n = prod_i (1 - beta_i) = alpha_bar_n. Equals -beta(t)."""
    S = _S(S)
    beta = sp.Lambda(S.r, linear_vp_beta(S).subs(S.t, S.r))
    return sp.limit(((1 - S.dt * beta(S.t + S.dt)) - 1) / S.dt, S.dt, 0)


# --- Fokker-Planck and the reverse family -------------------------------------------------------------
def fokker_planck_residual(p, drift, g2, x, t):
    """dp/dt + d(drift p)/dx - g^2/2 d^2 p/dx^2: zero when p solves the SDE dx = drift dt + g dw."""
    p, drift, g2 = expression(p, "p"), expression(drift, "drift"), expression(g2, "g2")
    x, t = variable(x, "x"), variable(t, "t")
    return sp.diff(p, t) + sp.diff(drift * p, x) - g2 / 2 * sp.diff(p, x, 2)


def reverse_fokker_planck_residual(p, drift, g2, x, t):
    """The Fokker-Planck residual of dx = drift dt + g dw_bar run backwards in time (the equation in the
    reversed time T - t, rewritten in t): dp/dt + d(drift p)/dx + g^2/2 d^2 p/dx^2."""
    g2 = expression(g2, "g2")
    return fokker_planck_residual(p, drift, -g2, x, t)


def continuity_residual(p, velocity, x, t):
    """dp/dt + d(velocity p)/dx: zero when p is transported by the ODE dx/dt = velocity (no diffusion)."""
    return fokker_planck_residual(p, velocity, 0, x, t)


def reverse_drift(f, g2, p, x, eta):
    """The drift f x - (1 + eta^2)/2 g^2 d log p/dx of the reverse SDE with diffusion eta g, run backwards."""
    f, g2, p = expression(f, "f"), expression(g2, "g2"), positive_expression(p, "p")
    x, eta = variable(x, "x"), expression(eta, "eta")
    return f * x - (1 + eta**2) / 2 * g2 * sp.diff(sp.log(p), x)


def pf_ode_velocity(f, g2, p, x):
    """The probability-flow velocity f x - g^2/2 d log p/dx (Song et al. 2021, eq. 13): eta = 0."""
    return reverse_drift(f, g2, p, x, 0)


def reverse_sde_drift(f, g2, p, x):
    """Anderson's (1982) reverse drift f x - g^2 d log p/dx: eta = 1."""
    return reverse_drift(f, g2, p, x, 1)


def reverse_family_residual(S=None, p=None):
    """Reverse Fokker-Planck residual of dx = reverse_drift(eta) dt + eta g dw_bar minus the forward one of
    dx = f x dt + g dw, for an arbitrary density p(x, t) (an undefined function unless given) and any path.
    Zero for every eta: whenever p solves the forward equation, every member of the family has the same
    marginals."""
    S = _S(S)
    p = sp.Function("p", positive=True)(S.x, S.t) if p is None else expression(p, "p")
    f, g2 = drift_diffusion(S.alpha, S.sigma, S.t)
    reverse = reverse_fokker_planck_residual(p, reverse_drift(f, g2, p, S.x, S.eta), S.eta**2 * g2, S.x, S.t)
    return sp.expand(reverse - fokker_planck_residual(p, f * S.x, g2, S.x, S.t))


def gaussian_flow_map(S=None, x_T=None, T=None):
    """The PF-ODE solution for data N(m, s^2) through x_T at time T: the standardised value is conserved,
    x_t = alpha_t m + sqrt(alpha_t^2 s^2 + sigma_t^2) (x_T - alpha_T m) / sqrt(alpha_T^2 s^2 + sigma_T^2)."""
    S = _S(S)
    x_T = sp.Symbol("x_T", real=True) if x_T is None else expression(x_T, "x_T")
    T = sp.Symbol("T", positive=True) if T is None else expression(T, "T")
    std = sp.sqrt(S.alpha**2 * S.s**2 + S.sigma**2)
    return S.alpha * S.m + std * (x_T - S.alpha.subs(S.t, T) * S.m) / std.subs(S.t, T)


def rho_form_residual(S=None):
    """g^2 / (2 sigma alpha) - d rho/dt with rho = sigma/alpha = e^{-lambda}, for any path: zero. It turns the
    PF-ODE dx/dt = f x + g^2/(2 sigma) eps into d(x/alpha)/d rho = eps (DDIM's ODE, Chapter 2; the form
    ``diffnb.sde.reference_ode_solve`` integrates) and its kernel into -e^{-lambda} d lambda (Chapter 4)."""
    S = _S(S)
    _, g2 = drift_diffusion(S.alpha, S.sigma, S.t)
    return g2 / (2 * S.sigma * S.alpha) - sp.diff(S.sigma / S.alpha, S.t)


def ddpm_step_vs_euler_maruyama(S=None, order=3):
    """DDPM's forward step against one Euler-Maruyama step of the VP SDE over dt with beta(t) dt = beta_n.

    DDPM: x' = sqrt(1 - beta_n) x + sqrt(beta_n) z. Euler-Maruyama of dx = -beta(t)/2 x dt + sqrt(beta(t)) dw:
    x' = (1 - beta_n / 2) x + sqrt(beta_n) z (f dt = -beta_n / 2, g^2 dt = beta_n). Returns a namespace with
    the two coefficients of x, the two noise variances, and the series of the difference of the x
    coefficients in beta_n up to ``order`` (it starts at -beta_n^2 / 8: the two agree to first order).
    """
    S = _S(S)
    integer(order, "order", 1)
    ddpm_coef, em_coef = sp.sqrt(1 - S.b), 1 - S.b / 2
    gap = sp.series(ddpm_coef - em_coef, S.b, 0, order).removeO()
    return SimpleNamespace(ddpm_coef=ddpm_coef, em_coef=em_coef, ddpm_var=S.b, em_var=S.b, gap=gap)


# --- scores ------------------------------------------------------------------------------------------
def _x_t(S):
    return S.alpha * S.x0 + S.sigma * S.eps


def _marginal_var(S):
    """The variance alpha^2 s^2 + sigma^2 of q_t for data N(m, s^2)."""
    return S.alpha**2 * S.s**2 + S.sigma**2


def conditional_score(S=None):
    """grad_{x_t} log q(x_t | x_0) at x_t = alpha x_0 + sigma eps (the denoising score-matching target).
    Returns ``(score, x_t)``; the score simplifies to -eps / sigma (seed 002's derivation before eq. 5)."""
    S = _S(S)
    return sp.diff(gaussian_log_density(S.x, S.alpha * S.x0, S.sigma**2), S.x).subs(S.x, _x_t(S)), _x_t(S)


def gaussian_score(S=None):
    """The exact score of q_t for Gaussian data N(m, s^2): -(x - alpha m) / (alpha^2 s^2 + sigma^2)."""
    S = _S(S)
    return sp.diff(sp.log(gaussian_density(S.x, S.alpha * S.m, _marginal_var(S))), S.x)


def gaussian_posterior_mean(S=None):
    """E[x_0 | x_t = x] for the prior N(m, s^2), by Bayes' rule in x_0 (completing the square). Returns
    ``(mean, var)`` of q(x_0 | x_t)."""
    S = _S(S)
    log_joint = gaussian_log_density(S.x0, S.m, S.s**2) + gaussian_log_density(S.x, S.alpha * S.x0, S.sigma**2)
    return complete_the_square(log_joint, S.x0)


def tweedie_mean(S=None, score=None):
    """Tweedie's formula E[x_0 | x_t = x] = (x + sigma_t^2 grad log q_t(x)) / alpha_t (``score`` defaults to
    the Gaussian-data score)."""
    S = _S(S)
    score = gaussian_score(S) if score is None else expression(score, "score")
    return (S.x + S.sigma**2 * score) / S.alpha


def sm_objective(S, model):
    """Score matching E_{q_t} (model(x) - grad log q_t(x))^2 for data N(m, s^2) and a ``model`` polynomial
    in S.x, with x = alpha m + sqrt(alpha^2 s^2 + sigma^2) u."""
    S, model = _S(S, optional=False), expression(model, "model")
    u = sp.Dummy("u", real=True)
    x_t = S.alpha * S.m + sp.sqrt(_marginal_var(S)) * u
    return gaussian_expectation(((model - gaussian_score(S)) ** 2).subs(S.x, x_t), [u])


def dsm_loss(S, model):
    """The denoising score-matching integrand (model(x_t) + eps/sigma)^2 at x_t = alpha x_0 + sigma eps
    (seed 002's eq. 5 inside the expectation; eps/sigma = -grad log q(x_t | x_0))."""
    S, model = _S(S, optional=False), expression(model, "model")
    return ((model + S.eps / S.sigma) ** 2).subs(S.x, _x_t(S))


def dsm_objective(S, model):
    """E_{x_0 ~ N(m, s^2), eps} dsm_loss: it differs from ``sm_objective`` by a constant free of the model."""
    S, model = _S(S, optional=False), expression(model, "model")
    u = sp.Dummy("u", real=True)
    return gaussian_expectation(dsm_loss(S, model).subs(S.x0, S.m + S.s * u), [u, S.eps])


def textbook_forms(S=None):
    """The chapter's results as a textbook prints them, as ``sympy.Eq`` objects keyed by name; each
    right-hand side is a closed form that a test proves equal to the derived result."""
    S = _S(S)
    f, g2 = sp.Symbol("f(t)"), sp.Symbol("g^{2}(t)")
    alpha, sigma, x = sp.symbols("alpha_t sigma_t x_t", positive=True)
    score = sp.Symbol(r"{\nabla_x \log q_t(x)}")
    v = in_order(alpha**2 * S.s**2, sigma**2)
    return {
        "linear_vp_drift": sp.Eq(f, -linear_vp_beta(S) / 2),
        "linear_vp_diffusion": sp.Eq(g2, linear_vp_beta(S)),
        "pf_ode_eps": sp.Eq(sp.Symbol(r"\frac{dx}{dt}"), f * S.x + g2 / (2 * sigma) * S.eps),
        "conditional_score": sp.Eq(sp.Symbol(r"{\nabla_{x_t} \log q(x_t \mid x_0)}"), -S.eps / sigma),
        "tweedie": sp.Eq(sp.Symbol(r"{\mathbb{E}[x_0 \mid x_t]}"), in_order(x, sigma**2 * score) / alpha),
        "tweedie_gaussian": sp.Eq(sp.Symbol(r"{\mathbb{E}[x_0 \mid x_t]}"),
                                  in_order(alpha * S.s**2 * x, sigma**2 * S.m) / v),
        "sm_minus_dsm": sp.Eq(sp.Symbol(r"{L_{\mathrm{SM}} - L_{\mathrm{DSM}}}"), 1 / v - 1 / sigma**2),
    }
