"""Chapter 3's derivations in SymPy: the forward SDE of a VP schedule, DDPM as its Euler-Maruyama
discretisation, the denoising score-matching target, and the Fokker-Planck and continuity equations
behind the reverse SDE and the probability-flow ODE. (The integrating factor that opens the
DPM-Solver derivation lives with Chapter 4, in ``diffnb.symbolic.dpm_solver``.)

Symbols::

    t, x            time and state (1-D; every formula acts coordinate-wise)
    alpha, sigma    alpha_t, sigma_t as undefined functions of t (any schedule) unless a schedule is given
    f, g2           drift f(t) = d log alpha_t / dt and squared diffusion g^2(t) = d sigma_t^2/dt - 2 f sigma_t^2
    m, s            mean and standard deviation of Gaussian data N(m, s^2)
    beta_0, beta_1  the linear schedule's beta(t) = beta_0 + (beta_1 - beta_0) t on t in [0, 1]
    s_cos           the cosine schedule's offset s
    tau, r          integration variables
    b, x0, eps      DDPM's per-step beta_n, clean data x_0 and a standard normal eps

Every function returns SymPy objects; the chapter displays them and ``tests/test_symbolic_sde.py``
checks them. Functions named ``seed_*`` return a formula exactly as the source notes state it, so
that the book can show it failing the check that the corrected formula passes.
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy as sp

__all__ = [
    "sde_symbols",
    "drift_diffusion_expr",
    "linear_vp_log_alpha",
    "linear_vp_beta",
    "cosine_vp_alpha",
    "seed_linear_schedule",
    "product_continuum_limit",
    "gaussian_density",
    "fokker_planck_residual",
    "reverse_fokker_planck_residual",
    "continuity_residual",
    "pf_ode_velocity",
    "reverse_sde_drift",
    "gaussian_flow_map",
    "rho_form_residual",
    "ddpm_step_vs_euler_maruyama",
    "conditional_score",
    "gaussian_score",
]


def sde_symbols():
    """The symbols of the SDE derivations, in a namespace (alpha, sigma are functions of t)."""
    t, tau, r, dt = sp.symbols("t tau r Delta_t", positive=True)
    x, m, x0, eps = sp.symbols("x m x_0 epsilon", real=True)
    b = sp.Symbol("beta_n", positive=True)
    s, s_cos, beta_0, beta_1 = sp.symbols(r"s s_{\cos} beta_0 beta_1", positive=True)
    alpha, sigma = sp.Function("alpha", positive=True)(t), sp.Function("sigma", positive=True)(t)
    return SimpleNamespace(t=t, tau=tau, r=r, dt=dt, x=x, m=m, x0=x0, eps=eps, b=b, s=s, s_cos=s_cos, beta_0=beta_0,
                           beta_1=beta_1, alpha=alpha, sigma=sigma, f=sp.Function("f"))


def drift_diffusion_expr(alpha, sigma, t):
    """``(f, g2)`` with f = d log alpha / dt and g^2 = d sigma^2 / dt - 2 f sigma^2 (Lu et al. 2022, eq. 2.2)."""
    f = sp.diff(sp.log(alpha), t)
    return f, sp.diff(sigma**2, t) - 2 * f * sigma**2


def linear_vp_beta(S=None):
    """beta(t) = beta_0 + (beta_1 - beta_0) t."""
    S = S or sde_symbols()
    return S.beta_0 + (S.beta_1 - S.beta_0) * S.t


def linear_vp_log_alpha(S=None):
    """log alpha_t = -1/2 int_0^t beta(r) dr for the linear VP schedule, by integration (not by hand)."""
    S = S or sde_symbols()
    beta_r = linear_vp_beta(S).subs(S.t, S.r)
    return sp.expand(-sp.Rational(1, 2) * sp.integrate(beta_r, (S.r, 0, S.t)))


def cosine_vp_alpha(S=None):
    """alpha_t = cos((t + s)/(1 + s) pi/2) / cos(s/(1 + s) pi/2) (Nichol and Dhariwal 2021), t in [0, 1)."""
    S = S or sde_symbols()
    angle = lambda u: (u + S.s_cos) / (1 + S.s_cos) * sp.pi / 2  # noqa: E731
    return sp.cos(angle(S.t)) / sp.cos(angle(0))


def seed_linear_schedule(S=None):
    """The source notes' (seed 002) continuous linear schedule, as stated.

    Returns a namespace: ``alpha_def`` says alpha_t = prod_i (1 - beta_i) (that is alpha_bar_t in the
    book's notation); ``dlog_alpha`` is the claimed d log alpha_t / dt = -beta_t; ``log_alpha`` is the
    final quadratic -(beta_1 - beta_0)/4 t^2 - beta_0/2 t.
    """
    S = S or sde_symbols()
    return SimpleNamespace(
        alpha_def="alpha_t = prod_{i=0}^{t} (1 - beta_i)",
        dlog_alpha=-linear_vp_beta(S),
        log_alpha=-(S.beta_1 - S.beta_0) / 4 * S.t**2 - S.beta_0 / 2 * S.t,
    )


def product_continuum_limit(S=None):
    """lim_{dt -> 0} (a(t + dt) - a(t)) / (a(t) dt) for a(t + dt) = a(t) (1 - dt beta(t + dt)), with the
    linear beta(t): the continuum limit of a_{n+1} = a_n (1 - beta_{n+1}), beta_n = beta(t) dt, of the
    product a_n = prod_i (1 - beta_i) = alpha_bar_n. Equals -beta(t)."""
    S = S or sde_symbols()
    beta = sp.Lambda(S.r, linear_vp_beta(S).subs(S.t, S.r))
    ratio = ((1 - S.dt * beta(S.t + S.dt)) - 1) / S.dt
    return sp.limit(ratio, S.dt, 0)


def gaussian_density(x, mean, var):
    """N(x; mean, var)."""
    return sp.exp(-(x - mean) ** 2 / (2 * var)) / sp.sqrt(2 * sp.pi * var)


def fokker_planck_residual(p, drift, g2, x, t):
    """dp/dt + d(drift p)/dx - g^2/2 d^2 p/dx^2: zero when p solves the SDE dx = drift dt + g dw."""
    return sp.diff(p, t) + sp.diff(drift * p, x) - g2 / 2 * sp.diff(p, x, 2)


def reverse_fokker_planck_residual(p, drift, g2, x, t):
    """dp/dt + d(drift p)/dx + g^2/2 d^2 p/dx^2: zero when p solves dx = drift dt + g dw_bar run backwards
    in time (the Fokker-Planck equation in the reversed time T - t, rewritten in t)."""
    return sp.diff(p, t) + sp.diff(drift * p, x) + g2 / 2 * sp.diff(p, x, 2)


def continuity_residual(p, velocity, x, t):
    """dp/dt + d(velocity p)/dx: zero when p is transported by the ODE dx/dt = velocity."""
    return sp.diff(p, t) + sp.diff(velocity * p, x)


def pf_ode_velocity(f, g2, p, x):
    """The probability-flow velocity f x - g^2/2 d log p / dx (Song et al. 2021, eq. 13)."""
    return f * x - g2 / 2 * sp.diff(sp.log(p), x)


def reverse_sde_drift(f, g2, p, x):
    """The reverse SDE's drift f x - g^2 d log p / dx (Anderson 1982), run backwards in time."""
    return f * x - g2 * sp.diff(sp.log(p), x)


def gaussian_flow_map(S=None, x_T=None, T=None):
    """The PF-ODE solution for data N(m, s^2) through x_T at time T: the standardised value is conserved,
    x_t = alpha_t m + sqrt(alpha_t^2 s^2 + sigma_t^2) (x_T - alpha_T m) / sqrt(alpha_T^2 s^2 + sigma_T^2)."""
    S = S or sde_symbols()
    x_T = sp.Symbol("x_T", real=True) if x_T is None else x_T
    T = sp.Symbol("T", positive=True) if T is None else T
    std = sp.sqrt(S.alpha**2 * S.s**2 + S.sigma**2)
    z = (x_T - S.alpha.subs(S.t, T) * S.m) / std.subs(S.t, T)
    return S.alpha * S.m + std * z


def rho_form_residual(S=None):
    """g^2 / (2 sigma alpha) - d rho / dt with rho = sigma / alpha: zero, which turns the PF-ODE into
    d(x / alpha) / d rho = eps (the form ``diffnb.sde.reference_ode_solve`` integrates)."""
    S = S or sde_symbols()
    _, g2 = drift_diffusion_expr(S.alpha, S.sigma, S.t)
    return g2 / (2 * S.sigma * S.alpha) - sp.diff(S.sigma / S.alpha, S.t)


def ddpm_step_vs_euler_maruyama(S=None, order=3):
    """DDPM's forward step against one Euler-Maruyama step of the VP SDE over dt with beta(t) dt = beta_n.

    DDPM: x' = sqrt(1 - beta_n) x + sqrt(beta_n) z. Euler-Maruyama of dx = -beta(t)/2 x dt + sqrt(beta(t)) dw:
    x' = (1 - beta_n / 2) x + sqrt(beta_n) z (f dt = -beta_n / 2, g^2 dt = beta_n). Returns a namespace with
    the two coefficients of x, the two noise variances, and the series of the difference of the x
    coefficients in beta_n up to ``order`` (it starts at -beta_n^2 / 8: the two agree to first order).
    """
    S = S or sde_symbols()
    ddpm_coef, em_coef = sp.sqrt(1 - S.b), 1 - S.b / 2
    gap = sp.series(ddpm_coef - em_coef, S.b, 0, order).removeO()
    return SimpleNamespace(ddpm_coef=ddpm_coef, em_coef=em_coef, ddpm_var=S.b, em_var=S.b, gap=gap)


def conditional_score(S=None):
    """grad_{x_t} log q(x_t | x_0) at x_t = alpha x_0 + sigma eps (the denoising score-matching target).

    Returns ``(score, x_t)``; the score simplifies to -eps / sigma (seed 002's derivation before eq. 5)."""
    S = S or sde_symbols()
    x_t = S.alpha * S.x0 + S.sigma * S.eps
    log_q = sp.log(gaussian_density(S.x, S.alpha * S.x0, S.sigma**2))
    return sp.diff(log_q, S.x).subs(S.x, x_t), x_t


def gaussian_score(S=None):
    """The exact score of q_t for Gaussian data N(m, s^2): -(x - alpha m) / (alpha^2 s^2 + sigma^2)."""
    S = S or sde_symbols()
    return sp.diff(sp.log(gaussian_density(S.x, S.alpha * S.m, S.alpha**2 * S.s**2 + S.sigma**2)), S.x)
