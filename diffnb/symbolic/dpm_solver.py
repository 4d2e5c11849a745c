"""Chapter 4's derivations in SymPy: the exact solution of the semi-linear ODE, the phi integrals, the
DPM-Solver and DPM-Solver++ updates and their local errors, and the SDE-DPM-Solver++ step.

Symbols and conventions (``dpm_symbols``; the papers' naming: a step goes from s to the less noisy t)::

    t, s, tau          times; alpha, sigma undefined functions of time (any Gaussian path)
    alpha_s, sigma_s, alpha_t, sigma_t   the scales at both ends of a step, as symbols
    lambda = log(alpha / sigma),  h = lambda_t - lambda_s,  r, r1, r2 fractions of h
    relation           {h: log(alpha_t sigma_s / (sigma_t alpha_s)), lambda_s: log(alpha_s / sigma_s)}:
                       the updates are written with e^h as the papers write them; checks substitute
    phi_k(z)           int_0^1 e^{(1 - theta) z} theta^{k-1} / (k-1)! d theta
    x, eps, x0, zeta   the state x_s, the noise prediction, the data prediction, a standard normal
    y = x / alpha      (noise prediction: dy/dlambda = -e^{-lambda} eps)
    w = x / sigma      (data prediction:  dw/dlambda =  e^{lambda} x0)

Local errors are computed on a test problem dy/dlambda = G(y, lambda) (``small_test_problem``: nonlinear
in y, explicitly lambda-dependent) from lambda_s = 0: the exact solution's Taylor series comes from
repeated total derivatives (``core.ode_series``), each solver's from its update with phi_k replaced by
its Taylor polynomial. The lowest power of h in (solver - exact) is the local order.
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy as sp

from .core import (Symbols, drift_diffusion, expression, expressions, in_order, integer, local_order, namespace,
                   ode_series, positive_expression, truncate, variable)
from .ddim import ODESymbols, ddim_deterministic_step

__all__ = ["dpm_symbols", "phi_expr", "phi_series", "phi_integral", "integrating_factor",
           "integrating_factor_residual", "pp_ode_coefficients", "exact_solution_residual", "exact_step",
           "dpm1_update", "dpm_pp1_update", "ddim_update_ode", "interpolation_weights", "small_test_problem",
           "singlestep_series", "multistep_series", "dpm2_paper_series", "series_order", "sde_transition",
           "sde_pp1_update", "textbook_forms"]


class DPMSymbols(Symbols):
    """The namespace ``dpm_symbols`` returns."""

    factory = "diffnb.symbolic.dpm_solver.dpm_symbols()"


class TestEquation(Symbols):
    """The namespace ``small_test_problem`` returns."""

    __test__ = False  # not a pytest class
    factory = "diffnb.symbolic.dpm_solver.small_test_problem()"


def _S(S):
    """``S`` if given (checked), else a fresh ``dpm_symbols()``."""
    return dpm_symbols() if S is None else namespace(S, DPMSymbols)


def _P(P):
    """``P`` if given (checked), else the symbolic ``small_test_problem()``."""
    return small_test_problem() if P is None else namespace(P, TestEquation, "P")


def _kind_K(kind, K):
    _check_kind(kind)
    integer(K, "K", 1)


def dpm_symbols():
    """The symbols of the chapter, in a namespace (see the module docstring)."""
    t, s, tau, theta = sp.symbols("t s tau theta", positive=True)
    h, r, r1, r2 = sp.symbols("h r r_1 r_2", positive=True)
    z, lam, lam_s = sp.symbols("z lambda lambda_s", real=True)
    alpha_s, sigma_s, alpha_t, sigma_t = sp.symbols("alpha_s sigma_s alpha_t sigma_t", positive=True)
    x, eps, x0, zeta = sp.symbols(r"x epsilon x_0 z", real=True)
    relation = {h: sp.log(alpha_t * sigma_s / (sigma_t * alpha_s)), lam_s: sp.log(alpha_s / sigma_s)}
    return DPMSymbols(t=t, s=s, tau=tau, theta=theta, h=h, r=r, r1=r1, r2=r2, z=z, lam=lam, lam_s=lam_s,
                      alpha_s=alpha_s, sigma_s=sigma_s, alpha_t=alpha_t, sigma_t=sigma_t, x=x, eps=eps,
                      x0=x0, zeta=zeta, relation=relation, alpha=sp.Function("alpha", positive=True),
                      sigma=sp.Function("sigma", positive=True), e=sp.Function("epsilon"), f=sp.Function("f"))


# --- the phi functions -------------------------------------------------------------------------------
def phi_expr(k: int, z=None):
    """phi_k(z) by integrating its definition (closed form in exp(z) and powers of z)."""
    integer(k, "k", 1)
    S = dpm_symbols()
    z = S.z if z is None else expression(z, "z")
    integrand = sp.exp((1 - S.theta) * z) * S.theta ** (k - 1) / sp.factorial(k - 1)
    return sp.simplify(sp.integrate(integrand, (S.theta, 0, 1)).rewrite(sp.exp))


def phi_series(k: int, z, terms: int):
    """The Taylor polynomial sum_{m < terms} z^m / (m + k)! of phi_k (k = 0: of e^z)."""
    integer(k, "k", 0), expression(z, "z"), integer(terms, "terms", 1)
    return sp.Add(*[z**m / sp.factorial(m + k) for m in range(terms)])


def phi_integral(n: int, sign: int = -1):
    """int_{lambda_s}^{lambda_s + h} e^{sign lambda} (lambda - lambda_s)^n / n! d lambda, by SymPy.

    sign = -1 is the noise-prediction integral (equal to e^{-lambda_t} h^{n+1} phi_{n+1}(h)), sign = +1
    the data-prediction one (e^{lambda_t} h^{n+1} phi_{n+1}(-h))."""
    integer(n, "n", 0)
    if isinstance(sign, bool) or sign not in (-1, 1):
        raise ValueError(f"sign must be -1 or +1, got {sign!r}")
    S = dpm_symbols()
    integrand = sp.exp(sign * S.lam) * (S.lam - S.lam_s) ** n / sp.factorial(n)
    return sp.integrate(integrand, (S.lam, S.lam_s, S.lam_s + S.h))


# --- the exact solution ------------------------------------------------------------------------------
def integrating_factor():
    """u_tau = exp(-int_0^tau f(r) dr) (= alpha_0/alpha_tau, i.e. 1/alpha_tau when alpha_0 = 1)."""
    S = dpm_symbols()
    r = sp.Symbol("r")
    return sp.exp(-sp.Integral(S.f(r), (r, 0, S.tau)))


def integrating_factor_residual(u, tau=None, f=None):
    """d(u x)/d tau - u (dx/d tau - f(tau) x) for any function x(tau): zero iff ``u`` is an integrating factor
    of dx/d tau - f x = A eps (the step from seed 002's eq. 10 to eq. 11)."""
    if not isinstance(u, sp.Expr):
        raise TypeError(f"u must be a sympy expression, got {type(u).__name__}")
    if tau is not None:
        variable(tau, "tau")
    if f is not None and not callable(f):
        raise TypeError(f"f must be a sympy function (e.g. sympy.Function('f')), got {type(f).__name__}")
    S = dpm_symbols()
    tau, f = (S.tau if tau is None else tau), (S.f if f is None else f)
    x = sp.Function("x")(tau)
    return sp.simplify(sp.diff(u * x, tau) - u * (sp.diff(x, tau) - f(tau) * x))


def _ode_rhs(kind, x, out, alpha, sigma, f, g2):
    """The PF-ODE dx/dt in the noise (``out`` = eps) or data (``out`` = x0) parameterisation."""
    if kind == "eps":
        return f * x + g2 / (2 * sigma) * out
    return (f + g2 / (2 * sigma**2)) * x - alpha * g2 / (2 * sigma**2) * out


def pp_ode_coefficients():
    """The data-prediction ODE: substitute eps = (x - alpha x0)/sigma into f x + g^2/(2 sigma) eps. Returns
    ``(rhs, closed_form)`` with closed_form = (f + g^2/(2 sigma^2)) x - alpha g^2/(2 sigma^2) x0 (DPM-Solver++'s
    ODE, as seed 002 states it)."""
    S = dpm_symbols()
    a, sg = S.alpha(S.t), S.sigma(S.t)
    f, g2 = drift_diffusion(a, sg, S.t)
    return _ode_rhs("eps", S.x, (S.x - a * S.x0) / sg, a, sg, f, g2), _ode_rhs("x0", S.x, S.x0, a, sg, f, g2)


def _check_kind(kind):
    if not (isinstance(kind, str) or kind is None):
        raise TypeError(f"kind must be the str 'eps' or 'x0', got {type(kind).__name__}")
    if kind not in ("eps", "x0"):
        raise ValueError(f"kind must be 'eps' or 'x0', got {kind!r}")


def _solution(kind, x_s, integral, alpha_t, sigma_t, alpha_s, sigma_s):
    """alpha_t/alpha_s x_s - alpha_t integral (eps: seed 002's eq. 16), or sigma_t/sigma_s x_s + sigma_t integral
    (x0)."""
    if kind == "eps":
        return alpha_t / alpha_s * x_s - alpha_t * integral
    return sigma_t / sigma_s * x_s + sigma_t * integral


def exact_solution_residual(kind: str = "eps"):
    """The residual in the ODE of its claimed exact solution, in lambda for any alpha(t), sigma(t):
    eps: x_t = alpha_t/alpha_s x_s - alpha_t int e^{-lambda} eps d lambda;  x0: x_t = sigma_t/sigma_s x_s +
    sigma_t int e^{lambda} x0 d lambda; each integral written over tau with d lambda = lambda'(tau) d tau.
    Returns ``(residual, x_t)``; the residual is zero (variation of constants and the change to lambda at once)."""
    _check_kind(kind)
    S = dpm_symbols()
    x_s, sign = sp.Symbol("x_s", real=True), (-1 if kind == "eps" else 1)
    lam = sp.log(S.alpha(S.tau) / S.sigma(S.tau))
    integral = sp.Integral(sp.exp(sign * lam) * sp.diff(lam, S.tau) * S.e(S.tau), (S.tau, S.s, S.t))
    x_t = _solution(kind, x_s, integral, S.alpha(S.t), S.sigma(S.t), S.alpha(S.s), S.sigma(S.s))
    f, g2 = drift_diffusion(S.alpha(S.t), S.sigma(S.t), S.t)
    residual = sp.diff(x_t, S.t) - _ode_rhs(kind, x_t, S.e(S.t), S.alpha(S.t), S.sigma(S.t), f, g2)
    return sp.simplify(residual), x_t


def exact_step(S=None, kind: str = "eps"):
    """The exact step for a constant model output (eps or x0): the exact solution with its integral done
    by ``phi_integral(0)``, in lambda_s and h (``S.relation`` turns them into the scales)."""
    _check_kind(kind)
    S = _S(S)
    out, sign = (S.eps, -1) if kind == "eps" else (S.x0, 1)
    return _solution(kind, S.x, phi_integral(0, sign) * out, S.alpha_t, S.sigma_t, S.alpha_s, S.sigma_s)


# --- first-order updates -------------------------------------------------------------------------------
def dpm1_update(S=None):
    """DPM-Solver-1 (Lu et al. 2022, eq. 3.7): x_t = alpha_t/alpha_s x - sigma_t (e^h - 1) eps."""
    S = _S(S)
    return in_order(S.alpha_t / S.alpha_s * S.x, -S.sigma_t * in_order(sp.exp(S.h), -1) * S.eps)


def dpm_pp1_update(S=None):
    """DPM-Solver++(1): x_t = sigma_t/sigma_s x + alpha_t (1 - e^{-h}) x0, with x0 the data prediction."""
    S = _S(S)
    return in_order(S.sigma_t / S.sigma_s * S.x, S.alpha_t * (1 - sp.exp(-S.h)) * S.x0)


def ddim_update_ode(S=None):
    """Deterministic DDIM (``ddim.ddim_deterministic_step``) from s to t in this chapter's names."""
    S = _S(S)
    step = ODESymbols(alpha_t=S.alpha_s, sigma_t=S.sigma_s, alpha_s=S.alpha_t, sigma_s=S.sigma_t, x=S.x, eps=S.eps)
    return ddim_deterministic_step(step)


# --- higher order: interpolation weights and local errors --------------------------------------------
def interpolation_weights(H, z, fracs, terms=None):
    """w_j with sum_n H^{n+1} phi_{n+1}(z) p^{(n)}(0) = sum_j w_j p(fracs_j H) for every polynomial p of
    degree < len(fracs) (Vandermonde solve). ``terms``: use phi's Taylor polynomial with that many terms
    (for series work) instead of the closed form."""
    expression(H, "H"), expression(z, "z"), expressions(fracs, "fracs")
    if terms is not None:
        integer(terms, "terms", 1)
    q = len(fracs)
    V = sp.Matrix(q, q, lambda j, n: sp.sympify(fracs[j]) ** n)
    ph = [phi_series(n + 1, z, terms) if terms else phi_expr(n + 1, z) for n in range(q)]
    b = sp.Matrix([sp.factorial(n) * ph[n] for n in range(q)])
    return [sp.expand(H * wj) for wj in V.T.LUsolve(b)]


def small_test_problem(coeffs=None):
    """G = a y + b y^2 + c lambda from y_0 = 1: nonlinear in y and lambda-dependent. y_0 = 1 loses no
    generality: y = y_0 Y maps the family onto itself (b -> b y_0, c -> c / y_0). ``coeffs`` = (a, b, c)
    numbers make the series univariate in h and fast (a vanishing coefficient is then checked at one
    point of the family, a Schwartz-Zippel test); the default keeps them symbolic (a proof)."""
    if coeffs is not None:
        if not isinstance(coeffs, (list, tuple)) or len(coeffs) != 3:
            raise TypeError(f"coeffs must be a tuple (a, b, c) of three numbers, got {coeffs!r}")
        for name, v in zip("abc", coeffs):
            expression(v, f"coeffs ({name})")
            if not (isinstance(v, (int, float)) or (isinstance(v, sp.Basic) and v.is_number and v.is_real)):
                raise TypeError(f"coeffs ({name}) must be a real number, got {v!r}")
    y, lam = sp.symbols("y lambda", real=True)
    a, b, c = sp.symbols("a b c", real=True) if coeffs is None else [sp.nsimplify(v) for v in coeffs]
    return TestEquation(y=y, lam=lam, y0=sp.Integer(1), G=a * y + b * y**2 + c * lam, coeffs=(a, b, c))


def _exp(u, K):
    return phi_series(0, u, K + 1)


def _output(P, kind, yv, lam_v, K, h):
    """The model output at (y, lambda) for the test problem: eps = -e^{lambda} G or x0 = e^{-lambda} G."""
    g = P.G.subs({P.y: yv, P.lam: lam_v}, simultaneous=True)
    return truncate((-_exp(lam_v, K) if kind == "eps" else _exp(-lam_v, K)) * g, h, K)


def _update(kind, y_s, H, fracs, outs, K, h):
    """One exponential-integrator update in y (eps) or w (x0) variables over a step of length H from 0."""
    w = interpolation_weights(H, H if kind == "eps" else -H, fracs, terms=K + 1)
    acc = sum(wj * o for wj, o in zip(w, outs))
    return truncate(y_s - _exp(-H, K) * acc if kind == "eps" else y_s + _exp(H, K) * acc, h, K)


def singlestep_series(order_nodes, kind="eps", K=4, P=None):
    """Solver series of a singlestep method with intermediate nodes (fractions of h), e.g. [] (order 1),
    [r] (order 2), [r1, r2] (order 3). Each stage uses all outputs so far (the interpolation form)."""
    expressions(order_nodes, "order_nodes", empty=True)
    _kind_K(kind, K)
    P = _P(P)
    h = sp.Symbol("h", positive=True)
    nodes = [sp.Integer(0), *[sp.sympify(r) for r in order_nodes]]
    outs = [_output(P, kind, P.y0, sp.Integer(0), K, h)]
    targets = [*nodes[1:], sp.Integer(1)]
    for j, c in enumerate(targets):
        y_c = _update(kind, P.y0, c * h, [nd / c for nd in nodes[: j + 1]], outs, K, h)
        if j < len(targets) - 1:
            outs.append(_output(P, kind, y_c, c * h, K, h))
    return y_c, h, P


def multistep_series(order, kind="eps", K=4, ratios=None, P=None):
    """Solver series of one multistep step of the given order on exact history at lambda = -rho_j h
    (rho_j cumulative from ``ratios``, default uniform steps: past nodes -h, -2h)."""
    integer(order, "order", 1)
    _kind_K(kind, K)
    if ratios is not None:
        expressions(ratios, "ratios", empty=True)
        if ratios and len(ratios) < order - 1:
            raise ValueError(f"ratios must hold at least order - 1 = {order - 1} step ratios, got {len(ratios)}")
    P = _P(P)
    h, v = sp.Symbol("h", positive=True), sp.Dummy("v")
    ratios = ratios or [sp.Integer(1)] * (order - 1)
    fracs = [sp.Integer(0)]
    for rr in ratios[: order - 1]:
        fracs.append(fracs[-1] - rr)
    exact = ode_series(P.G, P.y, P.lam, P.y0, v, K)
    outs = [_output(P, kind, truncate(exact.subs(v, fr * h), h, K), fr * h, K, h) for fr in fracs]
    return _update(kind, P.y0, h, fracs, outs, K, h), h, P


def dpm2_paper_series(r=None, K=4, P=None):
    """DPM-Solver-2 as Lu et al. print it (Algorithm 1, and seed 002's k = 2 formula) in y = x/alpha from
    lambda_s = 0: y_1 = y_0 - e^{-rh}(e^{rh} - 1) eps_0, then
    y_t = y_0 - e^{-h}[(e^h - 1) eps_0 + (e^h - 1)/(2r) (eps_1 - eps_0)]."""
    if r is not None:
        positive_expression(r, "r")
    integer(K, "K", 1)
    P = _P(P)
    h = sp.Symbol("h", positive=True)
    r = sp.Symbol("r", positive=True) if r is None else sp.sympify(r)
    e0 = _output(P, "eps", P.y0, sp.Integer(0), K, h)
    y1 = truncate(P.y0 - _exp(-r * h, K) * (_exp(r * h, K) - 1) * e0, h, K)
    e1 = _output(P, "eps", y1, r * h, K, h)
    em1 = _exp(h, K + 1) - 1
    return truncate(P.y0 - _exp(-h, K) * (em1 * e0 + sp.expand(em1 / (2 * r)) * (e1 - e0)), h, K), h, P


def series_order(solver, h, P, K=4):
    """``core.local_order`` of solver - exact for a solver series of degree K on the test problem P:
    ``(p, C)``, with p = oo when all powers up to h^K agree."""
    expression(solver, "solver"), variable(h, "h"), namespace(P, TestEquation, "P"), integer(K, "K", 0)
    return local_order(solver - ode_series(P.G, P.y, P.lam, P.y0, h, K), h, K + 1)


# --- SDE-DPM-Solver++ ----------------------------------------------------------------------------------
def sde_transition():
    """The step s -> t of the reverse SDE dx = [(f + g^2/sigma^2) x - alpha g^2/sigma^2 x0] dt + g dw_bar (data
    prediction, eta = 1) for any alpha(tau), sigma(tau), with x0 held fixed: a linear SDE, so
    x_t = Phi(t, s) x_s + int_s^t Phi(t, tau) (-alpha g^2/sigma^2) x0 d tau + noise of variance int_t^s Phi^2 g^2 d tau,
    Phi(t, tau) = (sigma_t/sigma_tau)^2 alpha_tau/alpha_t. Each integrand divided by d lambda/d tau is a
    function of lambda alone once alpha_tau = sigma_tau e^lambda; integrated from lambda_t - h to lambda_t.

    Returns a namespace: ``x_coef``, ``x0_coef``, ``variance`` (in alpha_t, sigma_t, h) and ``phi_residual``
    (dPhi/dt - (f + g^2/sigma^2) Phi, zero)."""
    S = dpm_symbols()
    a, sg, L = S.alpha(S.tau), S.sigma(S.tau), sp.Symbol("L", real=True)
    f, g2 = drift_diffusion(a, sg, S.tau)
    dlam = sp.diff(sp.log(a / sg), S.tau)
    Phi = (S.sigma_t / sg) ** 2 * a / S.alpha_t
    at, st = S.alpha(S.t), S.sigma(S.t)
    Phi_t, (f_t, g2_t) = Phi.subs({S.sigma_t: st, S.alpha_t: at}), drift_diffusion(at, st, S.t)
    phi_residual = sp.simplify(sp.diff(Phi_t, S.t) - (f_t + g2_t / st**2) * Phi_t)

    def in_lambda(integrand):  # integrand d tau = (integrand / lambda') d lambda, then integrate in lambda
        per_dlam = sp.factor(sp.cancel(sp.expand(integrand / dlam))).subs(a, sg * sp.exp(L))
        lam_t = sp.log(S.alpha_t / S.sigma_t)
        return sp.simplify(sp.integrate(per_dlam, (L, lam_t - S.h, lam_t)))

    return SimpleNamespace(x_coef=sp.simplify(Phi.subs({a: S.alpha_s, sg: S.sigma_s})),
                           x0_coef=in_lambda(-Phi * a * g2 / sg**2), variance=in_lambda(-(Phi**2) * g2),
                           phi_residual=phi_residual)


def sde_pp1_update(S=None):
    """SDE-DPM-Solver++(1) (Lu et al. 2022b), also seed 002's last formula:
    x_t = sigma_t/sigma_s e^{-h} x + alpha_t (1 - e^{-2h}) x0 + sigma_t sqrt(1 - e^{-2h}) z."""
    S = _S(S)
    e1, e2 = sp.exp(-S.h), sp.exp(-2 * S.h)
    return in_order(S.sigma_t / S.sigma_s * e1 * S.x, S.alpha_t * (1 - e2) * S.x0, S.sigma_t * sp.sqrt(1 - e2) * S.zeta)


def textbook_forms(S=None):
    """The chapter's results as the papers print them, as ``sympy.Eq`` objects keyed by name; each
    right-hand side is a closed form that a test proves equal to the derived result."""
    S = _S(S)
    f, g2 = sp.Symbol("f(t)"), sp.Symbol("g^{2}(t)")
    x_t = sp.Symbol(r"\tilde x_t")
    return {
        "dpm_solver_1": sp.Eq(x_t, dpm1_update(S)),
        "dpm_solver_pp_1": sp.Eq(x_t, dpm_pp1_update(S)),
        "pp_ode": sp.Eq(sp.Symbol(r"\frac{dx}{dt}"), _ode_rhs("x0", S.x, S.x0, S.alpha_t, S.sigma_t, f, g2)),
        "sde_pp_1": sp.Eq(x_t, sde_pp1_update(S)),
        "sde_pp_variance": sp.Eq(sp.Symbol(r"{\mathrm{Var}[\tilde x_t]}"), sde_pp1_update(S).coeff(S.zeta) ** 2),
    }
