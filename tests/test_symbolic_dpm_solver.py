"""Chapter 4's SymPy derivations, each against an independent computation: high-precision numeric ODE
solves and quadrature (mpmath), polynomial reproduction, and exact non-zero leading error terms."""

import mpmath
import pytest
import sympy as sp

from diffnb.symbolic import dpm_solver as sd
from diffnb.symbolic.core import drift_diffusion, is_zero, latex, nonzero_at

S = sd.dpm_symbols()
Q = (sp.Rational(2, 3), sp.Rational(-5, 7), sp.Rational(3, 11))  # a point of the test family
# An explicit non-VP path: alpha = 1/(1 + t), sigma = t (lambda decreases in t).
ALPHA, SIGMA = (lambda t: 1 / (1 + t)), (lambda t: t)


_tau = sp.Symbol("tau", positive=True)
F_PATH, G2_PATH = (sp.lambdify(_tau, e, "mpmath") for e in drift_diffusion(ALPHA(_tau), SIGMA(_tau), _tau))


def test_phi_closed_forms_and_recursion():
    z = sp.Symbol("z", positive=True)
    p = [None] + [sd.phi_expr(k, z) for k in (1, 2, 3)]
    assert is_zero(p[1] - (sp.exp(z) - 1) / z)
    for k in (1, 2):
        assert is_zero(p[k + 1] - (p[k] - 1 / sp.factorial(k)) / z)
    assert sp.limit(p[3], z, 0) == sp.Rational(1, 6)
    assert is_zero(sd.phi_series(2, z, 6) - sp.series(p[2], z, 0, 6).removeO())


def test_phi_integrals():
    lam_t = S.lam_s + S.h
    for n in (0, 1):
        assert is_zero(sd.phi_integral(n, -1) - sp.exp(-lam_t) * S.h ** (n + 1) * sd.phi_expr(n + 1, S.h))
        assert is_zero(sd.phi_integral(n, 1) - sp.exp(lam_t) * S.h ** (n + 1) * sd.phi_expr(n + 1, -S.h))


def test_exact_solution_in_lambda_solves_both_odes():
    for kind in ("eps", "x0"):
        residual, _ = sd.exact_solution_residual(kind)
        assert residual == 0, kind
    rhs, closed = sd.pp_ode_coefficients()
    assert is_zero(rhs - closed)
    for bad in ("v", None):
        with pytest.raises(ValueError, match="kind must be 'eps' or 'x0'"):
            sd.exact_step(S, bad)


def test_exact_solution_against_a_numeric_ode_solve():
    """alpha = 1/(1 + t), sigma = t, eps(t) = cos(3t): integrate dx/dt = f x + g^2/(2 sigma) eps from s = 1 to t = 1/2
    numerically and compare with alpha_t/alpha_s x_s - alpha_t int e^{-lambda} eps d lambda (by quadrature)."""
    mpmath.mp.dps = 20
    eps = lambda t: mpmath.cos(3 * t)  # noqa: E731
    lam = lambda t: mpmath.log(ALPHA(t) / SIGMA(t))  # noqa: E731
    rhs = lambda t, x: F_PATH(t) * x + G2_PATH(t) / (2 * SIGMA(t)) * eps(t)  # noqa: E731
    s, t, x_s = mpmath.mpf(1), mpmath.mpf("0.5"), mpmath.mpf("0.7")
    sol = mpmath.odefun(lambda u, x: -rhs(s - u, x), 0, x_s)  # run time backwards from s
    integral = mpmath.quad(lambda u: mpmath.exp(-lam(u)) * mpmath.diff(lam, u) * eps(u), [s, t])
    formula = ALPHA(t) / ALPHA(s) * x_s - ALPHA(t) * integral
    assert abs(sol(s - t) - formula) < 1e-8
    mpmath.mp.dps = 15


def test_integrating_factor():
    u = sd.integrating_factor()
    assert sd.integrating_factor_residual(u) == 0
    assert sd.integrating_factor_residual(u, S.tau, S.f) == 0
    with pytest.raises(TypeError, match="u must be a sympy expression"):
        sd.integrating_factor_residual(1.0)
    wrong = sp.exp(sp.Integral(S.f(sp.Symbol("r")), (sp.Symbol("r"), 0, S.tau)))  # exp(+int f)
    point = {S.f: sp.Lambda(sp.Symbol("r"), 1), sp.Function("x"): sp.Lambda(S.tau, 1), S.tau: 1}
    assert nonzero_at(sd.integrating_factor_residual(wrong), point) == 2 * sp.E


def test_first_order_updates_are_exact_for_constant_output_and_are_ddim():
    assert is_zero(sd.dpm1_update(S) - sd.exact_step(S, "eps"), S.relation)
    assert is_zero(sd.dpm_pp1_update(S) - sd.exact_step(S, "x0"), S.relation)
    assert is_zero(sd.dpm1_update(S) - sd.ddim_update_ode(S), S.relation)
    x0_hat = (S.x - S.sigma_s * S.eps) / S.alpha_s
    assert is_zero(sd.dpm_pp1_update(S).subs(S.x0, x0_hat) - sd.ddim_update_ode(S), S.relation)


def test_weights_reproduce_polynomials():
    """sum_j w_j p(f_j H) = sum_n H^{n+1} phi_{n+1}(z) p^{(n)}(0) for p of degree < q."""
    H, z, u = sp.symbols("H z u")
    fracs = [0, sp.Rational(1, 3), sp.Rational(2, 3)]
    w = sd.interpolation_weights(H, z, fracs, terms=5)
    for p in (sp.Integer(1), u, u**2):
        lhs = sum(wj * p.subs(u, f * H) for wj, f in zip(w, fracs))
        rhs = sum(H ** (n + 1) * sd.phi_series(n + 1, z, 5) * sp.diff(p, u, n).subs(u, 0) for n in range(3))
        assert sp.expand(lhs - rhs) == 0


def test_local_order_of_dpm_solver_2_for_every_r():
    P = sd.small_test_problem()  # symbolic coefficients: a proof for the whole family
    r = sp.Symbol("r", positive=True)
    y, h, _ = sd.singlestep_series([r], "eps", K=3, P=P)
    p, lead = sd.series_order(y, h, P, K=3)
    assert p == 3 and lead.has(r)
    a, b, c = P.coeffs
    assert nonzero_at(lead, {a: 1, b: 1, c: 1, r: sp.Rational(1, 2)}) != 0


def test_local_orders_on_a_point_of_the_family():
    P = sd.small_test_problem(Q)
    cases = [([], "eps", 2), ([], "x0", 2), ([sp.Rational(1, 2)], "x0", 3),
             ([sp.Rational(1, 3), sp.Rational(2, 3)], "eps", 4),
             ([sp.Rational(1, 3), sp.Rational(1, 2)], "eps", 3)]  # r2 != 2/3: third order lost
    for nodes, kind, p in cases:
        y, h, _ = sd.singlestep_series(nodes, kind, K=p, P=P)
        order, lead = sd.series_order(y, h, P, K=p)
        assert order == p and lead != 0, (nodes, kind)
    for k in (2, 3):
        y, h, _ = sd.multistep_series(k, "x0", K=k + 1, P=P)
        assert sd.series_order(y, h, P, K=k + 1)[0] == k + 1
    y, h, _ = sd.dpm2_paper_series(K=3, P=P)
    assert sd.series_order(y, h, P, K=3)[0] == 3


def test_local_orders_against_numeric_steps():
    """Independent of the series machinery: DPM-Solver-1 and the paper's DPM-Solver-2 (r = 1/2) with exact
    exponentials on the test problem, against mpmath's ODE solution; halving h divides the local error by
    about 2^p with p = 2 and 3."""
    mpmath.mp.dps = 30
    a, b, c = (mpmath.mpf(q.p) / q.q for q in Q)
    G = lambda y, lam: a * y + b * y**2 + c * lam  # noqa: E731
    eps = lambda y, lam: -mpmath.exp(lam) * G(y, lam)  # noqa: E731
    exact = mpmath.odefun(lambda lam, y: G(y, lam), 0, mpmath.mpf(1))

    def dpm1(h):
        return 1 - mpmath.exp(-h) * mpmath.expm1(h) * eps(1, 0)

    def dpm2(h, r=mpmath.mpf("0.5")):
        e0 = eps(1, 0)
        y1 = 1 - mpmath.exp(-r * h) * mpmath.expm1(r * h) * e0
        e1 = eps(y1, r * h)
        return 1 - mpmath.exp(-h) * (mpmath.expm1(h) * e0 + mpmath.expm1(h) / (2 * r) * (e1 - e0))

    for step, p in ((dpm1, 2), (dpm2, 3)):
        errs = [abs(step(h) - exact(h)) for h in (mpmath.mpf(1) / 100, mpmath.mpf(1) / 200)]
        assert abs(errs[0] / errs[1] / 2**p - 1) < 0.05
    mpmath.mp.dps = 15


def test_sde_transition_is_sde_dpm_solver_pp1():
    T = sd.sde_transition()
    assert T.phi_residual == 0
    step = sd.sde_pp1_update(S)
    assert is_zero(T.x_coef - step.coeff(S.x), S.relation)
    assert is_zero(T.x0_coef - step.coeff(S.x0))
    assert is_zero(T.variance - step.coeff(S.zeta) ** 2)


def test_sde_variance_against_quadrature_in_time():
    """The noise variance int_t^s Phi(t, tau)^2 g^2(tau) d tau by quadrature in tau (no change to lambda) on
    alpha = 1/(1 + t), sigma = t, against sigma_t^2 (1 - e^{-2h})."""
    s, t = 0.9, 0.4
    phi = lambda tau: (SIGMA(t) / SIGMA(tau)) ** 2 * ALPHA(tau) / ALPHA(t)  # noqa: E731
    var = mpmath.quad(lambda tau: phi(tau) ** 2 * G2_PATH(tau), [t, s])
    h = mpmath.log(ALPHA(t) / SIGMA(t)) - mpmath.log(ALPHA(s) / SIGMA(s))
    assert abs(var - SIGMA(t) ** 2 * (1 - mpmath.exp(-2 * h))) < 1e-10


def test_textbook_forms_are_the_derived_results():
    F = sd.textbook_forms(S)
    assert is_zero(F["dpm_solver_1"].rhs - sd.exact_step(S, "eps"), S.relation)
    assert is_zero(F["dpm_solver_pp_1"].rhs - sd.exact_step(S, "x0"), S.relation)
    assert is_zero(F["sde_pp_1"].rhs - sd.sde_pp1_update(S))
    assert is_zero(F["sde_pp_variance"].rhs - sd.sde_transition().variance)
    assert latex(F["sde_pp_variance"].rhs) == r"\sigma_{t}^{2} \left(1 - e^{- 2 h}\right)"
    assert r"\sigma_{t} \left(e^{h} - 1\right)" in latex(F["dpm_solver_1"])


# --- bad input: TypeError / ValueError naming the argument ------------------------------------------
from diffnb.symbolic import ddim as _ddim  # noqa: E402


@pytest.mark.parametrize("name", ["exact_step", "dpm1_update", "dpm_pp1_update", "ddim_update_ode",
                                  "sde_pp1_update", "textbook_forms"])
def test_functions_of_S_refuse_another_namespace(name):
    for bad in ("S", _ddim.ddim_symbols()):
        with pytest.raises(TypeError,
                           match=r"S must be the symbol namespace of diffnb.symbolic.dpm_solver.dpm_symbols\(\)"):
            getattr(sd, name)(bad)


def test_dpm_solver_bad_arguments_name_the_argument():
    nan, h = float("nan"), S.h
    P = sd.small_test_problem(Q)
    for call, error, message in [
        (lambda: sd.phi_expr(0), ValueError, "k must be at least 1"),
        (lambda: sd.phi_expr(1.0), TypeError, "k must be an int"),
        (lambda: sd.phi_expr(1, nan), ValueError, "z must be finite"),
        (lambda: sd.phi_expr(1, "z"), TypeError, "z must be a sympy expression"),
        (lambda: sd.phi_series(1, S.z, 0), ValueError, "terms must be at least 1"),
        (lambda: sd.phi_series(-1, S.z, 3), ValueError, "k must be at least 0"),
        (lambda: sd.phi_integral(nan), TypeError, "n must be an int"),
        (lambda: sd.phi_integral(1, 2), ValueError, "sign must be -1 or"),
        (lambda: sd.integrating_factor_residual(sd.integrating_factor(), tau=1), TypeError, "tau must be a sympy Symbol"),
        (lambda: sd.integrating_factor_residual(sd.integrating_factor(), f="f"), TypeError, "f must be a sympy function"),
        (lambda: sd.exact_solution_residual(1), TypeError, "kind must be the str 'eps' or 'x0'"),
        (lambda: sd.interpolation_weights("H", h, [0]), TypeError, "H must be a sympy expression"),
        (lambda: sd.interpolation_weights(h, h, "0"), TypeError, "fracs must be a list or tuple"),
        (lambda: sd.interpolation_weights(h, h, []), ValueError, "fracs must not be empty"),
        (lambda: sd.interpolation_weights(h, h, [0, nan]), ValueError, r"fracs\[1\] must be finite"),
        (lambda: sd.interpolation_weights(h, h, [0], terms=0), ValueError, "terms must be at least 1"),
        (lambda: sd.small_test_problem((1, 2)), TypeError, r"coeffs must be a tuple \(a, b, c\)"),
        (lambda: sd.small_test_problem((1, nan, 2)), ValueError, r"coeffs \(b\) must be finite"),
        (lambda: sd.small_test_problem((1, S.z, 2)), TypeError, r"coeffs \(b\) must be a real number"),
        (lambda: sd.singlestep_series("x"), TypeError, "order_nodes must be a list or tuple"),
        (lambda: sd.singlestep_series([None], P=P), TypeError, r"order_nodes\[0\] must be a sympy expression"),
        (lambda: sd.singlestep_series([], "y", P=P), ValueError, "kind must be 'eps' or 'x0'"),
        (lambda: sd.singlestep_series([], K=0, P=P), ValueError, "K must be at least 1"),
        (lambda: sd.singlestep_series([], P=S), TypeError,
         r"P must be the symbol namespace of diffnb.symbolic.dpm_solver.small_test_problem\(\)"),
        (lambda: sd.multistep_series(0, P=P), ValueError, "order must be at least 1"),
        (lambda: sd.multistep_series(3, ratios=[1], P=P), ValueError, "ratios must hold at least order - 1 = 2"),
        (lambda: sd.multistep_series(2, P="P"), TypeError, "P must be the symbol namespace"),
        (lambda: sd.dpm2_paper_series(0, P=P), ValueError, "r must be positive"),
        (lambda: sd.dpm2_paper_series("r", P=P), TypeError, "r must be a sympy expression"),
        (lambda: sd.series_order(None, h, P), TypeError, "solver must be a sympy expression"),
        (lambda: sd.series_order(h, "h", P), TypeError, "h must be a sympy Symbol"),
        (lambda: sd.series_order(h, h, None), TypeError, "P must be the symbol namespace"),
    ]:
        with pytest.raises(error, match=message):
            call()
    assert sd.phi_series(0, S.z, 2) == 1 + S.z and sd.phi_integral(0, +1) == sd.phi_integral(0, 1)
