import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from diffnb import metrics, toy
from diffnb.dpm_solver import exponential_weights, nfe_count, phi
from diffnb.samplers import ddim, ddpm, dpm_solver, dpm_solver_pp, sde_dpm_solver_pp
from diffnb.schedules import DiscreteVP, LinearVP
from diffnb.sde import reference_ode_solve

F64 = torch.float64


def x_T(n=32, dim=1, seed=0):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


# --- phi and the weights --------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_phi_is_its_integral_and_continuous_at_the_series_switch(k):
    z = torch.tensor([-3.0, -1.0 - 1e-12, -1.0, -0.3, 1e-9, 0.0, 0.5, 1.0 - 1e-12, 1.0, 2.5], dtype=F64)
    theta = torch.linspace(0, 1, 20001, dtype=F64)
    integrand = torch.exp((1 - theta) * z[:, None]) * theta ** (k - 1) / math.factorial(k - 1)
    quad = torch.trapezoid(integrand, theta, dim=1)
    assert torch.allclose(phi(k, z), quad, rtol=1e-7, atol=0)
    assert float(phi(k, torch.tensor(0.0, dtype=F64))) == pytest.approx(1 / math.factorial(k), rel=1e-15)


@given(st.floats(min_value=-6, max_value=6).filter(lambda v: abs(v) > 1e-3))
def test_phi_recursion(z):
    z = torch.tensor(z, dtype=F64)
    for k in (1, 2, 3):
        assert torch.allclose(phi(k + 1, z) * z, phi(k, z) - 1 / math.factorial(k), rtol=1e-11, atol=1e-13)


def test_first_order_weights_are_the_papers():
    h = torch.tensor([0.1, 0.7, 2.0], dtype=F64)
    w = exponential_weights(h, h, torch.zeros(3, 1, dtype=F64))
    assert torch.allclose(w[:, 0], torch.expm1(h), rtol=1e-14)  # sigma_t (e^h - 1) in DPM-Solver-1
    w = exponential_weights(h, -h, torch.zeros(3, 1, dtype=F64))
    assert torch.allclose(w[:, 0], -torch.expm1(-h), rtol=1e-14)  # alpha_t (1 - e^{-h}) in DPM-Solver++(1)


# --- equivalences -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["singlestep", "multistep"])
def test_dpm_solver_1_is_ddim(method):
    s = DiscreteVP.linear()
    model = toy.seed_mixture_1d().eps_model(s)
    ts = s.timesteps(17, "uniform", t_end=1.0)
    ref = ddim(model, x_T(), s, ts, eta=0.0)
    assert torch.allclose(dpm_solver(model, x_T(), s, ts, order=1, method=method), ref, rtol=1e-12, atol=1e-12)
    assert torch.allclose(dpm_solver_pp(model, x_T(), s, ts, order=1, method=method), ref, rtol=1e-12, atol=1e-12)


def test_dpm_solver_pp_1_reaches_sigma_zero_like_ddim():
    s = DiscreteVP.linear()
    model = toy.seed_mixture_1d().eps_model(s)
    ts = s.timesteps(10)  # ends at t = 0, sigma = 0
    assert torch.allclose(dpm_solver_pp(model, x_T(), s, ts, order=1), ddim(model, x_T(), s, ts), rtol=1e-12, atol=1e-12)


def test_sde_dpm_solver_pp_1_is_ddpm_given_the_same_noise():
    s = DiscreteVP.linear()
    model = toy.seed_mixture_1d().eps_model(s)
    ts = s.timesteps(20)
    a = sde_dpm_solver_pp(model, x_T(), s, ts, order=1, generator=torch.Generator().manual_seed(3))
    b = ddpm(model, x_T(), s, ts, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_dpm_solver_pp_2m_is_the_papers_formula():
    """DPM-Solver++(2M), Taylor form: x_t = sigma_t/sigma_s x - alpha_t phi_1 D0 + alpha_t (phi_1/h + 1) D1,
    phi_1 = expm1(-h), D1 = (D0 - D_prev) / r, r = h_prev / h."""
    s = LinearVP()
    model = toy.mixture_2d().eps_model(s)
    ts = torch.tensor([1.0, 0.6, 0.3], dtype=F64)
    x = x_T(dim=2)
    lam = s.log_snr(ts)
    alpha, sigma = s.alpha(ts), s.sigma(ts)
    d = [(x - sigma[0] * model(x, ts[0].expand(32))) / alpha[0]]
    x1 = sigma[1] / sigma[0] * x - alpha[1] * torch.expm1(-(lam[1] - lam[0])) * d[0]  # first step: order 1
    d.append((x1 - sigma[1] * model(x1, ts[1].expand(32))) / alpha[1])
    h, r = lam[2] - lam[1], (lam[1] - lam[0]) / (lam[2] - lam[1])
    phi_1 = torch.expm1(-h)
    x2 = sigma[2] / sigma[1] * x1 - alpha[2] * phi_1 * d[1] + alpha[2] * (phi_1 / h + 1) * (d[1] - d[0]) / r
    assert torch.allclose(dpm_solver_pp(model, x, s, ts, order=2), x2, rtol=1e-12, atol=1e-12)


# --- exactness for polynomial model outputs ------------------------------------------------------------------
def _poly_model(schedule, coeffs, kind):
    """A model whose eps (kind "eps") or x0_hat (kind "x0") is the polynomial sum c_n lambda^n, whatever x."""
    def p(lam):
        return sum(c * lam**n for n, c in enumerate(coeffs))

    def model(x, t):
        lam = schedule.log_snr(t)[:, None]
        if kind == "eps":
            return p(lam).expand_as(x).clone()
        alpha, sigma = schedule.alpha(t)[:, None], schedule.sigma(t)[:, None]
        return (x - alpha * p(lam)) / sigma
    return model


def _exact_poly_solution(schedule, coeffs, kind, x, t0, t1):
    """x(t1) from x(t0) for a model output p(lambda): antiderivatives of e^{-lam} p and e^{lam} p."""
    lam0, lam1 = schedule.log_snr(t0), schedule.log_snr(t1)
    derivs = [coeffs]
    for _ in range(len(coeffs)):
        c = derivs[-1]
        derivs.append([n * c[n] for n in range(1, len(c))] or [0.0])
    val = lambda cs, lam: sum(cn * lam**n for n, cn in enumerate(cs))  # noqa: E731
    if kind == "eps":  # int e^{-lam} p = -e^{-lam} (p + p' + p'' + ...)
        F = lambda lam: -torch.exp(-lam) * sum(val(c, lam) for c in derivs)  # noqa: E731
        return schedule.alpha(t1) / schedule.alpha(t0) * x - schedule.alpha(t1) * (F(lam1) - F(lam0))
    H = lambda lam: torch.exp(lam) * sum((-1) ** k * val(c, lam) for k, c in enumerate(derivs))  # noqa: E731
    return schedule.sigma(t1) / schedule.sigma(t0) * x + schedule.sigma(t1) * (H(lam1) - H(lam0))


def _run_from_warm_start(solver, model, x, s, ts, order, method):
    """Run the solver; return (output, state and index where full order starts): singlestep is at full
    order from the start, multistep after its order - 1 warm-up steps (orders 1, ..., order - 1)."""
    states = [x]
    out = solver(model, x, s, ts, order=order, method=method, callback=lambda info: states.append(info["x"]))
    start = 0 if method == "singlestep" else order - 1
    return out, states[start], start


@settings(max_examples=12)
@given(st.lists(st.integers(min_value=1, max_value=50), min_size=5, max_size=7, unique=True).map(
           lambda v: [k / 50 for k in v]),
       st.sampled_from([1, 2, 3]), st.sampled_from(["singlestep", "multistep"]), st.sampled_from(["eps", "x0"]))
def test_each_update_is_exact_for_polynomials_of_degree_below_its_order(times, order, method, kind):
    """The model output is a polynomial p(lambda) (whatever x): every full-order step integrates it exactly,
    so the output is the exact solution from the state where full order starts; one degree more is not."""
    s = LinearVP()
    ts = torch.tensor(sorted(times, reverse=True), dtype=F64)
    x = x_T(4)
    solver = dpm_solver if kind == "eps" else dpm_solver_pp
    for coeffs, exact_expected in [([0.3, -0.2, 0.05][:order], True), ([0.3, -0.2, 0.05, 0.4][: order + 1], False)]:
        out, x_start, start = _run_from_warm_start(solver, _poly_model(s, coeffs, kind), x, s, ts, order, method)
        exact = _exact_poly_solution(s, coeffs, kind, x_start, ts[start], ts[-1])
        assert torch.allclose(out, exact, rtol=1e-9, atol=1e-9) == exact_expected


# --- measured orders (a fast version of the chapter's experiment) ----------------------------------------
SAMPLERS = {
    "DDIM": (lambda m, x, s, ts: ddim(m, x, s, ts), 1, 1),
    "DPM-Solver-1": (lambda m, x, s, ts: dpm_solver(m, x, s, ts, order=1), 1, 1),
    "DPM-Solver-2": (lambda m, x, s, ts: dpm_solver(m, x, s, ts, order=2), 2, 2),
    "DPM-Solver++(2S)": (lambda m, x, s, ts: dpm_solver_pp(m, x, s, ts, order=2, method="singlestep"), 2, 2),
    "DPM-Solver(2M)": (lambda m, x, s, ts: dpm_solver(m, x, s, ts, order=2, method="multistep"), 2, 1),
    "DPM-Solver++(2M)": (lambda m, x, s, ts: dpm_solver_pp(m, x, s, ts, order=2), 2, 1),
    "DPM-Solver-3": (lambda m, x, s, ts: dpm_solver(m, x, s, ts, order=3), 3, 3),
    "DPM-Solver(3M)": (lambda m, x, s, ts: dpm_solver(m, x, s, ts, order=3, method="multistep"), 3, 1),
    "DPM-Solver++(3M)": (lambda m, x, s, ts: dpm_solver_pp(m, x, s, ts, order=3), 3, 1),
}


def test_measured_orders_on_exact_score_data():
    s = LinearVP()
    data = toy.GaussianMixture([0.5, 0.5], [-0.6, 0.6], [0.25, 0.25])
    model = data.eps_model(s)
    x = x_T(12)
    t_end = 1e-3
    ref = reference_ode_solve(model, x, s, 1.0, t_end)
    for name, (run, order, calls) in SAMPLERS.items():
        nfe = [20 * 2 ** j for j in range(3)]
        errs = [metrics.rms_error(run(model, x, s, s.timesteps(n // calls if calls > 1 else n, "logsnr", t_end=t_end)), ref)
                for n in [n * (calls if calls > 1 else 1) for n in nfe]]
        slope = metrics.fit_order(nfe[1:], errs[1:])
        assert abs(slope - order) < 0.15, (name, slope, errs)


# --- NFE accounting, options ----------------------------------------------------------------------------------
@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("method", ["singlestep", "multistep"])
@pytest.mark.parametrize("lower_order_final", [False, True])
def test_nfe_accounting(order, method, lower_order_final):
    s = DiscreteVP.linear()
    model = toy.seed_mixture_1d().eps_model(s)
    calls = []

    def counting(x, t):
        calls.append(1)
        return model(x, t)

    seen = []
    N = 6
    dpm_solver(counting, x_T(4), s, s.timesteps(N, t_end=1.0), order=order, method=method,
               lower_order_final=lower_order_final, callback=lambda info: seen.append(info["nfe"]))
    expected = N if method == "multistep" else (order * N if not lower_order_final else
                                                 sum(min(order, N - i) for i in range(N)))
    assert len(calls) == expected == seen[-1] == nfe_count(N, order, method, lower_order_final)
    assert len(seen) == N


@pytest.mark.parametrize("order", [2, 3])
def test_singlestep_to_sigma_zero_spends_one_call_on_the_last_interval_and_returns_x0_hat(order):
    s = DiscreteVP.linear()
    model = toy.seed_mixture_1d().eps_model(s)
    infos = []
    out = dpm_solver_pp(model, x_T(4), s, s.timesteps(5), order=order, method="singlestep",
                        callback=infos.append)
    assert infos[-1]["nfe"] == order * 4 + 1 == nfe_count(5, order, "singlestep", to_zero=True)
    assert torch.equal(out, infos[-1]["x0_hat"])


def test_lower_order_final_on_two_steps_is_ddim():
    s = LinearVP()
    model = toy.mixture_2d().eps_model(s)
    ts = s.timesteps(2, t_end=1e-3)
    out = dpm_solver(model, x_T(dim=2), s, ts, order=2, method="multistep", lower_order_final=True)
    assert torch.allclose(out, ddim(model, x_T(dim=2), s, ts), rtol=1e-12, atol=1e-12)


def test_callback_and_dtype():
    s = LinearVP()
    model = toy.mixture_2d().eps_model(s)
    ts = s.timesteps(4, "logsnr", t_end=1e-3)
    infos = []
    out = dpm_solver(model, x_T(dim=2), s, ts, order=2, callback=infos.append)
    assert out.dtype == F64 and [i["i"] for i in infos] == [0, 1, 2, 3]
    assert set(infos[0]) >= {"i", "t", "t_prev", "x", "x0_hat", "eps_hat", "nfe"}
    assert torch.equal(infos[-1]["x"], out) and float(infos[-1]["t"]) == float(ts[-1])


# --- bad input -------------------------------------------------------------------------------------------------
def test_bad_input():
    s = DiscreteVP.linear()
    model = toy.seed_mixture_1d().eps_model(s)
    ts = s.timesteps(5, t_end=1.0)
    x = x_T(4)
    for order in (0, 4):
        with pytest.raises(ValueError, match=r"order must be one of \[1, 2, 3\]"):
            dpm_solver(model, x, s, ts, order=order)
    with pytest.raises(TypeError, match="order must be an int"):
        dpm_solver_pp(model, x, s, ts, order=2.0)
    with pytest.raises(ValueError, match="method must be one of"):
        dpm_solver(model, x, s, ts, method="adaptive")
    with pytest.raises(TypeError, match="lower_order_final must be a bool"):
        dpm_solver(model, x, s, ts, lower_order_final=1)
    with pytest.raises(ValueError, match=r"sigma = 0 \(lambda = inf\).*dpm_solver_pp"):
        dpm_solver(model, x, s, s.timesteps(5))
    with pytest.raises(ValueError, match=r"order must be one of \[1, 2\]"):
        sde_dpm_solver_pp(model, x, s, ts, order=3)
    with pytest.raises(ValueError, match="strictly decreasing"):
        dpm_solver(model, x, s, ts.flip(0))
    with pytest.raises(TypeError, match="model must be callable"):
        dpm_solver_pp(None, x, s, ts)
    with pytest.raises(ValueError, match="k must be at least 1"):
        phi(0, torch.tensor(1.0, dtype=F64))
    with pytest.raises(ValueError, match="fracs must have shape"):
        exponential_weights(torch.ones(2, dtype=F64), torch.ones(2, dtype=F64), torch.zeros(2, dtype=F64))
