"""Chapter 4's derivations in SymPy: the exact solution of the semi-linear ODE, the phi integrals, the
DPM-Solver updates and their local errors, DPM-Solver++ and the SDE-DPM-Solver++ noise variance.

Symbols and conventions (the papers' naming: a step goes from s to the less noisy t)::

    t, s, tau          times; alpha, sigma undefined functions of time (any VP or non-VP schedule)
    lambda = log(alpha / sigma),  h = lambda_t - lambda_s,  r, r1, r2 fractions of h
    phi_k(z)           int_0^1 e^{(1 - theta) z} theta^{k-1} / (k-1)! d theta
    y = x / alpha      (noise prediction: dy/dlambda = -e^{-lambda} eps)
    w = x / sigma      (data prediction:  dw/dlambda =  e^{lambda} x0)

Local errors are computed on a test problem dy/dlambda = G(y, lambda) with a polynomial G of
symbolic coefficients (nonlinear in y, explicitly lambda-dependent), from lambda_s = 0: the exact
solution's Taylor series comes from repeated total derivatives, each solver's from its update with
phi_k replaced by its Taylor polynomial. The lowest power of h in (solver - exact) is the local order.
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy as sp

from .ddpm import is_zero

__all__ = ["dpm_symbols", "phi_expr", "phi_series", "phi_integral", "variation_of_constants_residual",
           "lambda_kernel_residual", "data_kernel_residual", "integrating_factor_residual",
           "seed_integrating_factor", "correct_integrating_factor", "dpm1_update", "ddim_update_ode",
           "dpm_pp1_update", "interpolation_weights", "model_problem", "small_test_problem", "exact_series", "truncate",
           "singlestep_series", "multistep_series", "seed_dpm2_series", "local_order", "sde_transition",
           "seed_sde_step", "pp_ode_coefficients"]


def dpm_symbols():
    """The symbols of the chapter, in a namespace."""
    t, s, tau, theta = sp.symbols("t s tau theta", positive=True)
    h, r, r1, r2 = sp.symbols("h r r_1 r_2", positive=True)
    z, lam, lam_s, u = sp.symbols("z lambda lambda_s u", real=True)
    alpha_s, sigma_s, alpha_t, sigma_t = sp.symbols("alpha_s sigma_s alpha_t sigma_t", positive=True)
    x, eps, x0, zeta = sp.symbols(r"x epsilon x_0 z", real=True)
    return SimpleNamespace(t=t, s=s, tau=tau, theta=theta, h=h, r=r, r1=r1, r2=r2, z=z, lam=lam, lam_s=lam_s,
                           u=u, alpha_s=alpha_s, sigma_s=sigma_s, alpha_t=alpha_t, sigma_t=sigma_t, x=x, eps=eps,
                           x0=x0, zeta=zeta, alpha=sp.Function("alpha", positive=True),
                           sigma=sp.Function("sigma", positive=True), e=sp.Function("epsilon"),
                           f=sp.Function("f"))


# --- the phi functions -------------------------------------------------------------------------------
def phi_expr(k: int, z=None):
    """phi_k(z) by integrating its definition (closed form in exp(z) and powers of z)."""
    S = dpm_symbols()
    z = S.z if z is None else z
    integrand = sp.exp((1 - S.theta) * z) * S.theta ** (k - 1) / sp.factorial(k - 1)
    return sp.simplify(sp.integrate(integrand, (S.theta, 0, 1)).rewrite(sp.exp))


def phi_series(k: int, z, terms: int):
    """The Taylor polynomial sum_{m < terms} z^m / (m + k)! of phi_k."""
    return sum(z**m / sp.factorial(m + k) for m in range(terms))


def phi_integral(n: int, sign: int = -1):
    """int_{lambda_s}^{lambda_s + h} e^{sign lambda} (lambda - lambda_s)^n / n! d lambda, by SymPy.

    sign = -1 is the noise-prediction integral (equal to e^{-lambda_t} h^{n+1} phi_{n+1}(h)), sign = +1
    the data-prediction one (e^{lambda_t} h^{n+1} phi_{n+1}(-h))."""
    S = dpm_symbols()
    integrand = sp.exp(sign * S.lam) * (S.lam - S.lam_s) ** n / sp.factorial(n)
    return sp.integrate(integrand, (S.lam, S.lam_s, S.lam_s + S.h))


# --- the exact solution: variation of constants ------------------------------------------------------
def _f_g2(alpha, sigma, t):
    f = sp.diff(alpha, t) / alpha
    return f, sp.diff(sigma**2, t) - 2 * f * sigma**2


def variation_of_constants_residual():
    """Residual dx/dt - f x - g^2/(2 sigma) eps(t) of the claimed solution
    x(t) = alpha_t/alpha_s x_s + int_s^t (alpha_t/alpha_tau) g^2(tau)/(2 sigma_tau) eps(tau) d tau,
    with alpha_t factored out of the integral (the integrating factor u = 1/alpha)."""
    S = dpm_symbols()
    xs = sp.Symbol("x_s", real=True)
    a, sg = S.alpha(S.tau), S.sigma(S.tau)
    _, g2_tau = _f_g2(a, sg, S.tau)
    x_t = S.alpha(S.t) * (xs / S.alpha(S.s) + sp.Integral(g2_tau / (2 * sg * a) * S.e(S.tau), (S.tau, S.s, S.t)))
    f_t, g2_t = _f_g2(S.alpha(S.t), S.sigma(S.t), S.t)
    residual = sp.diff(x_t, S.t) - f_t * x_t - g2_t / (2 * S.sigma(S.t)) * S.e(S.t)
    return sp.simplify(residual), x_t


def lambda_kernel_residual():
    """g^2(tau) / (2 sigma_tau alpha_tau) + e^{-lambda_tau} d lambda_tau / d tau: zero, which turns
    the integral into -alpha_t int e^{-lambda} eps d lambda (seed 002's eq. 16)."""
    S = dpm_symbols()
    a, sg = S.alpha(S.tau), S.sigma(S.tau)
    _, g2 = _f_g2(a, sg, S.tau)
    lam = sp.log(a / sg)
    return g2 / (2 * sg * a) + sp.exp(-lam) * sp.diff(lam, S.tau)


def data_kernel_residual():
    """For the data-prediction ODE dx/dt = (f + g^2/(2 sigma^2)) x - alpha g^2/(2 sigma^2) x0: returns
    (a, b) with a = d log(sigma)/dt - (f + g^2/(2 sigma^2)) (so sigma_t/sigma_s is the factor) and
    b = -alpha g^2/(2 sigma^2) / sigma - e^{lambda} d lambda/dt (so the integral is sigma_t int e^lambda x0 d lambda)."""
    S = dpm_symbols()
    a, sg = S.alpha(S.t), S.sigma(S.t)
    f, g2 = _f_g2(a, sg, S.t)
    lam = sp.log(a / sg)
    return (sp.diff(sp.log(sg), S.t) - (f + g2 / (2 * sg**2)),
            -a * g2 / (2 * sg**2) / sg - sp.exp(lam) * sp.diff(lam, S.t))


def pp_ode_coefficients():
    """Substitute eps = (x - alpha x0)/sigma into f x + g^2/(2 sigma) eps. Returns (rhs, seed_form)
    with seed_form = (f + g^2/(2 sigma^2)) x - alpha g^2/(2 sigma^2) x0 (seed 002's DPM-Solver++ ODE)."""
    S = dpm_symbols()
    a, sg = S.alpha(S.t), S.sigma(S.t)
    f, g2 = _f_g2(a, sg, S.t)
    rhs = f * S.x + g2 / (2 * sg) * (S.x - a * S.x0) / sg
    return rhs, (f + g2 / (2 * sg**2)) * S.x - a * g2 / (2 * sg**2) * S.x0


def integrating_factor_residual(u, tau, f):
    """d(u x)/d tau - u (dx/d tau - f(tau) x) for a function x(tau): zero iff u is an integrating factor
    of dx/d tau - f x = A eps (seed 002's step from eq. 10 to eq. 11)."""
    x = sp.Function("x")(tau)
    return sp.simplify(sp.diff(u * x, tau) - u * (sp.diff(x, tau) - f(tau) * x))


def seed_integrating_factor():
    """Seed 002: u_tau = exp(-int_tau^oo f(r) dr)."""
    S = dpm_symbols()
    r = sp.Symbol("r")
    return sp.exp(-sp.Integral(S.f(r), (r, S.tau, sp.oo)))


def correct_integrating_factor():
    """u_tau = exp(-int_0^tau f(r) dr) (= alpha_0 / alpha_tau, i.e. 1/alpha_tau for alpha_0 = 1)."""
    S = dpm_symbols()
    r = sp.Symbol("r")
    return sp.exp(-sp.Integral(S.f(r), (r, 0, S.tau)))


# --- first-order updates ------------------------------------------------------------------------------
def _h(S):
    return sp.log(S.alpha_t / S.sigma_t) - sp.log(S.alpha_s / S.sigma_s)


def dpm1_update(S=None):
    """DPM-Solver-1: x_t = alpha_t/alpha_s x - sigma_t (e^h - 1) eps (seed 002's eq. 18-19)."""
    S = S or dpm_symbols()
    return S.alpha_t / S.alpha_s * S.x - S.sigma_t * (sp.exp(_h(S)) - 1) * S.eps


def ddim_update_ode(S=None):
    """Deterministic DDIM: alpha_t x0_hat + sigma_t eps with x0_hat = (x - sigma_s eps)/alpha_s."""
    S = S or dpm_symbols()
    return S.alpha_t * (S.x - S.sigma_s * S.eps) / S.alpha_s + S.sigma_t * S.eps


def dpm_pp1_update(S=None):
    """DPM-Solver++(1): x_t = sigma_t/sigma_s x + alpha_t (1 - e^{-h}) x0_hat."""
    S = S or dpm_symbols()
    x0_hat = (S.x - S.sigma_s * S.eps) / S.alpha_s
    return S.sigma_t / S.sigma_s * S.x + S.alpha_t * (1 - sp.exp(-_h(S))) * x0_hat


# --- higher order: interpolation weights and local errors --------------------------------------------
def interpolation_weights(H, z, fracs, terms=None):
    """w_j with sum_n H^{n+1} phi_{n+1}(z) p^{(n)}(0) = sum_j w_j p(fracs_j H) for every polynomial p of
    degree < len(fracs) (Vandermonde solve). ``terms``: use phi's Taylor polynomial with that many terms
    (for series work) instead of the closed form."""
    q = len(fracs)
    V = sp.Matrix(q, q, lambda j, n: sp.sympify(fracs[j]) ** n)
    ph = [phi_series(n + 1, z, terms) if terms else phi_expr(n + 1, z) for n in range(q)]
    b = sp.Matrix([sp.factorial(n) * ph[n] for n in range(q)])
    return [sp.expand(H * wj) for wj in V.T.LUsolve(b)]


def model_problem():
    """G(y, lambda) = a y + b y^2 + c lambda + d lambda y, with its symbols, for local-error analysis."""
    y, lam = sp.symbols("y lambda", real=True)
    a, b, c, d = sp.symbols("a b c d", real=True)
    return SimpleNamespace(y=y, lam=lam, y0=sp.Symbol("y_0", real=True), G=a * y + b * y**2 + c * lam + d * lam * y,
                           coeffs=(a, b, c, d))


def small_test_problem(coeffs=None):
    """G = a y + b y^2 + c lambda from y_0 = 1: nonlinear in y and lambda-dependent. y_0 = 1 loses no
    generality: y = y_0 Y maps the family onto itself (b -> b y_0, c -> c / y_0). ``coeffs`` = (a, b, c)
    numbers make the series univariate in h and fast (a vanishing coefficient is then checked at one
    point of the family, a Schwartz-Zippel test); the default keeps them symbolic (a proof)."""
    y, lam = sp.symbols("y lambda", real=True)
    a, b, c = sp.symbols("a b c", real=True) if coeffs is None else [sp.nsimplify(v) for v in coeffs]
    return SimpleNamespace(y=y, lam=lam, y0=sp.Integer(1), G=a * y + b * y**2 + c * lam, coeffs=(a, b, c))


def truncate(expr, h, K):
    """The polynomial part of ``expr`` in ``h`` up to h^K (``expr`` a polynomial in h)."""
    poly = sp.Poly(sp.expand(expr), h)
    return sum(c * h**m for (m,), c in poly.terms() if m <= K)


def exact_series(P, h, K):
    """Taylor polynomial (degree K) in h of the solution of dy/dlambda = G through y(0) = y0, at lambda = h."""
    total, deriv = P.y0, P.G
    for n in range(1, K + 1):
        total += deriv.subs({P.y: P.y0, P.lam: 0}) * h**n / sp.factorial(n)
        deriv = sp.expand(sp.diff(deriv, P.lam) + P.G * sp.diff(deriv, P.y))
    return sp.expand(total)


def _exp(u, K):
    return sum(u**m / sp.factorial(m) for m in range(K + 1))


def _output(P, kind, yv, lam_v, K, h):
    """The model output at (y, lambda) for the test problem: eps = -e^{lambda} G or x0 = e^{-lambda} G."""
    g = P.G.subs({P.y: yv, P.lam: lam_v}, simultaneous=True)
    return truncate((-_exp(lam_v, K) if kind == "eps" else _exp(-lam_v, K)) * g, h, K)


def _update(kind, y_s, H, fracs, outs, K, h):
    """One exponential-integrator update in y (eps) or w (x0) variables over a step of length H from 0."""
    z = H if kind == "eps" else -H
    w = interpolation_weights(H, z, fracs, terms=K + 1)
    acc = sum(wj * o for wj, o in zip(w, outs))
    if kind == "eps":
        return truncate(y_s - _exp(-H, K) * acc, h, K)
    return truncate(y_s + _exp(H, K) * acc, h, K)


def singlestep_series(order_nodes, kind="eps", K=4, P=None):
    """Solver series of a singlestep method with intermediate nodes (fractions of h), e.g. [] (order 1),
    [r] (order 2), [r1, r2] (order 3). Each stage uses all outputs so far (the library's update)."""
    P = P or model_problem()
    h = sp.Symbol("h", positive=True)
    nodes = [sp.Integer(0), *[sp.sympify(r) for r in order_nodes]]
    outs = [_output(P, kind, P.y0, sp.Integer(0), K, h)]
    targets = [*nodes[1:], sp.Integer(1)]
    for j, c in enumerate(targets):
        fr = [nd / c for nd in nodes[: j + 1]]
        y_c = _update(kind, P.y0, c * h, fr, outs, K, h)
        if j < len(targets) - 1:
            outs.append(_output(P, kind, y_c, c * h, K, h))
    return y_c, h, P


def multistep_series(order, kind="eps", K=4, ratios=None, P=None):
    """Solver series of one multistep step of the given order on exact history at lambda = -rho_j h
    (rho_j cumulative from ``ratios``, default uniform steps: past nodes -h, -2h)."""
    P = P or model_problem()
    h = sp.Symbol("h", positive=True)
    ratios = ratios or [sp.Integer(1)] * (order - 1)
    fracs = [sp.Integer(0)]
    for rr in ratios[: order - 1]:
        fracs.append(fracs[-1] - rr)
    exact_at = lambda u: truncate(exact_series(P, sp.Symbol("v"), K).subs(sp.Symbol("v"), u), h, K)  # noqa: E731
    outs = [_output(P, kind, exact_at(fr * h), fr * h, K, h) for fr in fracs]
    return _update(kind, P.y0, h, fracs, outs, K, h), h, P


def seed_dpm2_series(r=None, K=4, P=None):
    """Seed 002's (and Lu et al.'s Algorithm 1) DPM-Solver-2 in y = x/alpha, from lambda_s = 0:
    y_1 = y_0 - e^{-rh}(e^{rh} - 1) eps_0,  y_t = y_0 - e^{-h}[(e^h - 1) eps_0 + (e^h - 1)/(2r) (eps_1 - eps_0)]."""
    P = P or model_problem()
    h = sp.Symbol("h", positive=True)
    r = sp.Symbol("r", positive=True) if r is None else sp.sympify(r)
    e0 = _output(P, "eps", P.y0, sp.Integer(0), K, h)
    y1 = truncate(P.y0 - _exp(-r * h, K) * (_exp(r * h, K) - 1) * e0, h, K)
    e1 = _output(P, "eps", y1, r * h, K, h)
    em1 = _exp(h, K + 1) - 1
    return truncate(P.y0 - _exp(-h, K) * (em1 * e0 + sp.expand(em1 / (2 * r)) * (e1 - e0)), h, K), h, P


def local_order(solver, h, P, K=4):
    """(p, leading coefficient): solver - exact = C h^p + O(h^{p+1}); p = K + 1 if all powers <= K vanish."""
    diff = sp.expand(solver - exact_series(P, h, K))
    for p in range(K + 1):
        c = sp.factor(sp.expand(diff.coeff(h, p)))
        if c != 0:
            return p, c
    return K + 1, sp.Integer(0)


# --- SDE-DPM-Solver++ ----------------------------------------------------------------------------------
def sde_transition():
    """Mean coefficients and variance of the reverse SDE dx = [(f + g^2/sigma^2) x - alpha g^2/sigma^2 x0] dt + g dw
    over a step from lambda_s to lambda_t = lambda_s + h, for a VP schedule written in lambda
    (alpha^2 = 1/(1 + e^{-2 lambda}), sigma = alpha e^{-lambda}) and x0 held fixed.

    Transition factor Phi(t, tau) = exp int_tau^t (f + g^2/sigma^2) = (sigma_t/sigma_tau)^2 (alpha_tau/alpha_t)
    (checked by ``phi_residual``); then coefficient of x_s = Phi(t, s), of x0 = int Phi alpha_tau
    (g^2/sigma^2) |d tau| and variance = int Phi^2 g^2 |d tau|, with g^2 |d tau| = 2 sigma^2 d lambda.
    Returns a namespace with ``x_coef``, ``x0_coef``, ``variance``, ``phi_residual``, the symbols."""
    S = dpm_symbols()
    L = sp.Symbol("L", real=True)  # integration variable lambda
    lam_t = S.lam_s + S.h

    def alpha_(v):
        return 1 / sp.sqrt(1 + sp.exp(-2 * v))

    def sigma_(v):
        return alpha_(v) * sp.exp(-v)

    Phi = (sigma_(lam_t) / sigma_(L)) ** 2 * alpha_(L) / alpha_(lam_t)
    # in time: Phi must solve dPhi/dt = (f + g^2/sigma^2) Phi, with f + g^2/sigma^2 = 2 sigma'/sigma - f
    a, sg = S.alpha(S.t), S.sigma(S.t)
    f, g2 = _f_g2(a, sg, S.t)
    Phi_t = (sg / S.sigma(S.tau)) ** 2 * S.alpha(S.tau) / a
    phi_residual = sp.simplify(sp.diff(Phi_t, S.t) - (f + g2 / sg**2) * Phi_t)
    x0_coef = sp.integrate(sp.simplify(Phi * alpha_(L) * 2), (L, S.lam_s, lam_t))
    variance = sp.integrate(sp.simplify(Phi**2 * 2 * sigma_(L) ** 2), (L, S.lam_s, lam_t))
    return SimpleNamespace(x_coef=sp.simplify(Phi.subs(L, S.lam_s)), x0_coef=sp.simplify(x0_coef),
                           variance=sp.simplify(variance), phi_residual=phi_residual, alpha=alpha_, sigma=sigma_,
                           lam_t=lam_t, S=S)


def seed_sde_step(S=None):
    """Seed 002's last formula: x_t = sigma_t/sigma_s e^{-h} x_s + alpha_t (1 - e^{-2h}) x0 + sigma_t sqrt(1 - e^{-2h}) z,
    with h = lambda_t - lambda_s in the alpha, sigma symbols. Returns (formula, h)."""
    S = S or dpm_symbols()
    h = _h(S)
    e = sp.exp(-h)
    return S.sigma_t / S.sigma_s * e * S.x + S.alpha_t * (1 - e**2) * S.x0 + S.sigma_t * sp.sqrt(1 - e**2) * S.zeta, h
