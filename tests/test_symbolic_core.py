"""The shared SymPy tools, each against an independent computation (numeric quadrature, Monte Carlo,
known series) rather than a restatement."""

import math

import mpmath
import pytest
import sympy as sp
import torch

from diffnb.symbolic import core
from diffnb.symbolic.sde import fokker_planck_residual

x, u, v = sp.symbols("x u v", real=True)
a, b, h = sp.symbols("a b h", positive=True)


def test_is_zero_proves_identities_and_applies_a_relation():
    assert core.is_zero(sp.log(a * b) - sp.log(a) - sp.log(b))
    assert core.is_zero(sp.sqrt(a) ** 2 / a - 1)
    assert core.is_zero((a**2 - b**2) / (a - b) - a - b)  # rational: decided by cancel
    assert not core.is_zero(a - b)
    c = sp.Symbol("c", positive=True)
    assert not core.is_zero(c - a * b) and core.is_zero(c - a * b, {c: a * b})


def test_nonzero_at_returns_the_exact_value():
    assert core.nonzero_at(a**2 - b, {a: sp.Rational(1, 2), b: sp.Rational(1, 3)}) == sp.Rational(-1, 12)
    value = core.nonzero_at(sp.sqrt(a) - b, {a: 2, b: 1})  # algebraic: its minimal polynomial is not t
    assert value == sp.sqrt(2) - 1
    assert core.nonzero_at(sp.exp(a) - b, {a: 1, b: sp.Rational(2718, 1000)}) == sp.E - sp.Rational(1359, 500)
    f = sp.Function("f")
    assert core.nonzero_at(sp.diff(f(a), a), {f: sp.Lambda(a, a**3), a: 2}) == 12
    assert core.nonzero_at(a - b, {a: 1}, relation={b: 2 * a}) == -1


def test_nonzero_at_refuses_zero_inexact_and_incomplete_points():
    with pytest.raises(ValueError, match="vanishes"):
        core.nonzero_at(sp.sqrt(a) + sp.sqrt(3) - sp.sqrt(5 + 2 * sp.sqrt(6)), {a: 2})  # a hidden zero
    with pytest.raises(ValueError, match="vanishes"):
        core.nonzero_at(sp.log(a * b) - sp.log(a) - sp.log(b), {a: 2, b: 3})
    with pytest.raises(TypeError, match=r"point\[a\] must be an exact number"):
        core.nonzero_at(a - b, {a: 0.5, b: 1})
    with pytest.raises(ValueError, match=r"point leaves \['b'\] free"):
        core.nonzero_at(a - b, {a: 1})


def test_complete_the_square_against_quadrature():
    """Posterior of N(x; 1/2, 1/3) N(2/5; 3/4 x, 1/5) in x: moments by numeric integration."""
    logp = core.gaussian_log_density(x, sp.Rational(1, 2), sp.Rational(1, 3)) + core.gaussian_log_density(
        sp.Rational(2, 5), sp.Rational(3, 4) * x, sp.Rational(1, 5))
    mean, var = core.complete_the_square(logp, x)
    dens = sp.lambdify(x, sp.exp(logp), "mpmath")
    z = mpmath.quad(dens, [-mpmath.inf, mpmath.inf])
    m1 = mpmath.quad(lambda y: y * dens(y), [-mpmath.inf, mpmath.inf]) / z
    m2 = mpmath.quad(lambda y: y**2 * dens(y), [-mpmath.inf, mpmath.inf]) / z
    assert abs(m1 - mpmath.mpf(sp.N(mean, 30))) < 1e-12 and abs(m2 - m1**2 - mpmath.mpf(sp.N(var, 30))) < 1e-12
    with pytest.raises(ValueError, match=r"log_density must be quadratic in x"):
        core.complete_the_square(x**3, x)


def test_gaussian_moments_and_expectation_against_monte_carlo():
    coef, var = core.gaussian_moments(2 * x + 3 * u - v, x, [u, v])
    assert (coef, var) == (2, 10)
    g = torch.Generator().manual_seed(0)
    uu, vv = torch.randn(2, 400_000, generator=g, dtype=torch.float64)
    expr = (1 + u + 2 * v) ** 2 * u**2
    sample = (1 + uu + 2 * vv) ** 2 * uu**2
    exact = core.gaussian_expectation(expr, [u, v])
    assert exact == 3 + 1 + 4 * 1  # E u^2 + E u^4 + 4 E u^2 v^2
    assert abs(float(sample.mean()) - float(exact)) < 4 * float(sample.std()) / len(sample) ** 0.5
    with pytest.raises(ValueError, match=r"expr must be linear in x"):
        core.gaussian_moments(x * u, x, [u])
    with pytest.raises(TypeError, match="normals must be a non-empty list of sympy Symbols"):
        core.gaussian_expectation(u, [])


def test_gaussian_kl_is_the_textbook_formula_and_matches_quadrature():
    mq, mp = sp.symbols("m_q m_p", real=True)
    vq, vp = sp.symbols("v_q v_p", positive=True)
    kl = core.gaussian_kl(mq, vq, mp, vp)
    textbook = sp.log(vp / vq) / 2 + (vq + (mq - mp) ** 2) / (2 * vp) - sp.Rational(1, 2)
    assert core.is_zero(kl - textbook)
    point = {mq: sp.Rational(1, 3), vq: sp.Rational(1, 2), mp: sp.Rational(-1, 4), vp: sp.Rational(3, 2)}
    q = sp.lambdify(x, core.gaussian_density(x, mq, vq).subs(point), "mpmath")
    p = sp.lambdify(x, core.gaussian_density(x, mp, vp).subs(point), "mpmath")
    numeric = mpmath.quad(lambda y: q(y) * mpmath.log(q(y) / p(y)), [-mpmath.inf, mpmath.inf])
    assert abs(numeric - mpmath.mpf(sp.N(kl.subs(point), 30))) < 1e-12
    iso = core.gaussian_kl([mq, 0], vq, [mp, 1], vp)  # two coordinates: the sum
    assert core.is_zero(iso - kl - core.gaussian_kl(0, vq, 1, vp))
    assert core.gaussian_kl(mq, vq, mq, vq) == 0
    with pytest.raises(ValueError, match="both be scalars or both sequences of one length"):
        core.gaussian_kl([mq], vq, [mp, 0], vp)


@pytest.mark.parametrize("alpha, sigma", [(1, "t"), ("1 - t", "t"), ("1/sqrt(1 + t**2)", "t/sqrt(1 + t**2)")],
                         ids=["VE", "flow matching", "VP"])
def test_drift_diffusion_gives_the_path_marginals(alpha, sigma):
    """N(alpha x0, sigma^2) solves the Fokker-Planck equation of dx = f x dt + g dw for f, g^2 of any path."""
    t = sp.Symbol("t", positive=True)
    x0 = sp.Symbol("x_0", real=True)
    alpha, sigma = sp.sympify(alpha, locals={"t": t}), sp.sympify(sigma, locals={"t": t})
    f, g2 = core.drift_diffusion(alpha, sigma, t)
    p = core.gaussian_density(x, alpha * x0, sigma**2)
    assert core.is_zero(fokker_planck_residual(p, f * x, g2, x, t) / p)
    wrong = fokker_planck_residual(p, f * x, g2 / 2, x, t) / p  # half the diffusion: certified wrong
    assert core.nonzero_at(wrong, {t: sp.Rational(1, 2), x: 1, x0: 0}) != 0


def test_drift_diffusion_of_flow_matching_by_simulation():
    """Euler-Maruyama of the flow-matching SDE (alpha = 1 - t, sigma = t) from x0 = 0.7 reaches
    N(0.4 * 0.7, 0.6^2) at t = 0.6."""
    t = sp.Symbol("t", positive=True)
    f, g2 = (sp.lambdify(t, e, "math") for e in core.drift_diffusion(1 - t, t, t))
    g = torch.Generator().manual_seed(1)
    n, steps, t_end = 50_000, 300, 0.6
    xs = torch.full((n,), 0.7, dtype=torch.float64)
    dt = t_end / steps
    for i in range(steps):
        tm = (i + 0.5) * dt
        xs = xs + f(tm) * xs * dt + math.sqrt(g2(tm) * dt) * torch.randn(n, generator=g, dtype=torch.float64)
    assert abs(float(xs.mean()) - 0.4 * 0.7) < 0.01 and abs(float(xs.std()) - 0.6) < 0.01


def test_truncate_ode_series_and_local_order():
    assert core.truncate(sp.exp(h), h, 3) == 1 + h + h**2 / 2 + h**3 / 6
    assert core.truncate((1 + h) ** 5, h, 1) == 1 + 5 * h
    y, lam = sp.symbols("y lambda", real=True)
    assert core.ode_series(a * y, y, lam, 1, h, 4) == core.truncate(sp.exp(a * h), h, 4)  # y = e^{a lambda}
    assert core.ode_series(lam, y, lam, 0, h, 3) == h**2 / 2
    assert core.local_order(h**3 + h**4, h) == (3, 1)
    assert core.local_order(sp.exp(h) - 1 - h, h) == (2, sp.Rational(1, 2))
    assert core.local_order(sp.Integer(0), h) == (sp.oo, 0)
    assert core.local_order(sp.exp(h) - 1 - h - h**2 / 2, h, n_max=3) == (sp.oo, 0)  # beyond n_max
    with pytest.raises(TypeError, match="h must be a sympy Symbol"):
        core.local_order(sp.Integer(1), "h")
    with pytest.raises(ValueError, match="n_max must be a positive int"):
        core.local_order(sp.Integer(1), h, n_max=0)


def test_latex_keeps_the_written_order():
    assert core.latex(1 - a - b**2) == "1 - a - b^{2}"
    assert core.latex(core.in_order(sp.exp(h), -1)) == "e^{h} - 1"
    assert core.is_zero(core.in_order(sp.exp(h), -1) - (sp.exp(h) - 1))


# --- bad input: TypeError / ValueError naming the argument ------------------------------------------
NAN = float("nan")


@pytest.mark.parametrize("call, error, message", [
    (lambda: core.latex("x"), TypeError, "expr must be a sympy expression or a real number, got str"),
    (lambda: core.show(None), TypeError, "expr must be a sympy expression or a real number, got NoneType"),
    (lambda: core.latex(NAN), ValueError, "expr must be finite"),
    (lambda: core.in_order(x, "y"), TypeError, r"terms\[1\] must be a sympy expression"),
    (lambda: core.is_zero("x - x"), TypeError, "expr must be a sympy expression"),
    (lambda: core.is_zero(sp.nan), ValueError, "expr must be finite"),
    (lambda: core.is_zero(x, [(x, 0)]), TypeError, "relation must be a dict"),
    (lambda: core.nonzero_at(x, None), TypeError, "point must be a dict"),
    (lambda: core.nonzero_at(None, {x: 1}), TypeError, "expr must be a sympy expression"),
    (lambda: core.gaussian_log_density(x, NAN, 1), ValueError, "mean must be finite"),
    (lambda: core.gaussian_log_density(x, 0, 0), ValueError, "var must be positive"),
    (lambda: core.gaussian_density(x, 0, -1), ValueError, "var must be positive"),
    (lambda: core.gaussian_density("x", 0, 1), TypeError, "x must be a sympy expression"),
    (lambda: core.gaussian_kl(0, 1, NAN, 1), ValueError, "mean_p must be finite"),
    (lambda: core.gaussian_kl(0, 1, 0, 0), ValueError, "var_p must be positive"),
    (lambda: core.complete_the_square(None, x), TypeError, "log_density must be a sympy expression"),
    (lambda: core.complete_the_square(-x**2, "x"), TypeError, "x must be a sympy Symbol"),
    (lambda: core.gaussian_moments(None, x, [u]), TypeError, "expr must be a sympy expression"),
    (lambda: core.gaussian_moments(x, x, u), TypeError, "noises must be a list of sympy Symbols"),
    (lambda: core.gaussian_expectation("u", [u]), TypeError, "expr must be a sympy expression"),
    (lambda: core.gaussian_expectation(u, u), TypeError, "normals must be a non-empty list"),
    (lambda: core.drift_diffusion(None, a, h), TypeError, "alpha must be a sympy expression"),
    (lambda: core.drift_diffusion(0, a, h), ValueError, "alpha must be positive"),
    (lambda: core.drift_diffusion(a, NAN, h), ValueError, "sigma must be finite"),
    (lambda: core.drift_diffusion(a, b, 1), TypeError, "t must be a sympy Symbol"),
    (lambda: core.truncate(None, h, 2), TypeError, "expr must be a sympy expression"),
    (lambda: core.truncate(h, h, 2.0), TypeError, "K must be an int"),
    (lambda: core.truncate(h, h, -1), ValueError, "K must be at least 0"),
    (lambda: core.ode_series(x, x, "lam", 1, h, 2), TypeError, "lam must be a sympy Symbol"),
    (lambda: core.ode_series(x, x, u, NAN, h, 2), ValueError, "y0 must be finite"),
    (lambda: core.local_order("h", h), TypeError, "residual must be a sympy expression"),
])
def test_bad_input_names_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_checks_accept_what_the_chapters_pass():
    assert core.latex(sp.Matrix([x, 1])) and core.latex(2) == "2"
    assert core.is_zero(0) and core.is_zero(x - x, {})
    assert core.gaussian_kl([x, 0], 1, [0, 0], 2) == core.gaussian_kl(x, 1, 0, 2) + core.gaussian_kl(0, 1, 0, 2)
    assert core.drift_diffusion(1, h, h) == (0, 2 * h)  # VE: alpha = 1
    assert core.gaussian_log_density(x, 0.5, 0.25) == -(x - 0.5) ** 2 / 0.5 - sp.log(2 * sp.pi * 0.25) / 2


def test_namespace_check_names_the_factory():
    from diffnb.symbolic import ddim, ddpm

    with pytest.raises(TypeError, match=r"S must be the symbol namespace of diffnb.symbolic.ddim.ddim_symbols\(\), "
                                        r"got the namespace of diffnb.symbolic.ddpm.ddpm_symbols\(\)"):
        ddim.ddim_update(ddpm.ddpm_symbols())
    with pytest.raises(TypeError, match="got SimpleNamespace"):
        from types import SimpleNamespace

        ddim.ddim_update(SimpleNamespace(**vars(ddim.ddim_symbols())))
