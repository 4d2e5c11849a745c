"""DPM-Solver, DPM-Solver++ and SDE-DPM-Solver++: weights, identities, exactness, orders, every path, bad input."""

import math

import pytest
import sympy as sp
import torch
from hypothesis import assume, given, settings, strategies as st

from diffnb import metrics, toy
from diffnb.dpm_solver import exponential_weights, fast_orders, nfe_count, phi
from diffnb.samplers import ddim, ddpm, dpm_solver, dpm_solver_pp, sde_dpm_solver_pp
from diffnb.schedules import VE, DiscreteVP, FlowMatching, LinearVP
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


def test_midpoint_weights_are_algorithm_1s():
    """b_1 = phi_1/2: x_t = ... - sigma_t expm1(h) [(1 - 1/(2r)) eps_s + 1/(2r) eps_r] (DPM-Solver-2, Algorithm 1)."""
    h = torch.tensor([0.1, 0.7, 2.0], dtype=F64)
    for r in (0.5, 0.3):
        fr = torch.tensor([[0.0, r]] * 3, dtype=F64)
        w = exponential_weights(h, h, fr, midpoint=True)
        assert torch.allclose(w, torch.expm1(h)[:, None] * torch.tensor([1 - 1 / (2 * r), 1 / (2 * r)], dtype=F64),
                              rtol=1e-13)
        w = exponential_weights(h, -h, fr, midpoint=True)  # DPM-Solver++(2S), data prediction
        assert torch.allclose(w, -torch.expm1(-h)[:, None] * torch.tensor([1 - 1 / (2 * r), 1 / (2 * r)], dtype=F64),
                              rtol=1e-13)
    # the Taylor weights differ at O(h^2) relative to the derivative term
    taylor = exponential_weights(h, h, fr)
    assert float((taylor - exponential_weights(h, h, fr, midpoint=True)).abs().min()) > 1e-4


@pytest.mark.parametrize("fracs", [[0, "1/2"], [0, "1/3", "2/3"], [0, -1, "-5/2"], [0, "-7/10"]])
def test_exponential_weights_are_the_symbolic_interpolation_weights(fracs):
    """Compared with the SymPy derivation at numeric points (closed-form phi, exact Vandermonde solve)."""
    from diffnb.symbolic import dpm_solver as sdp

    fr = [sp.Rational(f) for f in fracs]
    for H, z in [(sp.Rational(3, 10), sp.Rational(3, 10)), (sp.Rational(3, 2), -sp.Rational(3, 2)),
                 (sp.Rational(1, 2), -1)]:
        exact = [float(w) for w in sdp.interpolation_weights(H, z, fr)]
        got = exponential_weights(torch.tensor([float(H)], dtype=F64), torch.tensor([float(z)], dtype=F64),
                                  torch.tensor([[float(f) for f in fr]], dtype=F64))[0]
        assert torch.allclose(got, torch.tensor(exact, dtype=F64), rtol=1e-12, atol=1e-14)


# --- equivalences -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["singlestep", "multistep"])
@pytest.mark.parametrize("solver_type", ["dpmsolver", "taylor"])
def test_dpm_solver_1_is_ddim(method, solver_type):
    s = DiscreteVP.linear()
    model = toy.seed_mixture_1d().eps_model(s)
    ts = s.timesteps(17, "uniform", t_end=1.0)
    ref = ddim(model, x_T(), s, ts, eta=0.0)
    for fn in (dpm_solver, dpm_solver_pp):
        out = fn(model, x_T(), s, ts, order=1, method=method, solver_type=solver_type)
        assert torch.allclose(out, ref, rtol=1e-12, atol=1e-12)


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


def test_solver_types_differ_only_where_the_papers_do():
    """Order 1 and third-order multistep after warm-up are the same in both forms; 2S, 2M and 3S are not."""
    s = LinearVP()
    model = toy.mixture_2d().eps_model(s)
    ts, x = s.timesteps(8, "logsnr", t_end=1e-3), x_T(dim=2)

    def gap(**kw):
        return float((dpm_solver_pp(model, x, s, ts, solver_type="taylor", **kw)
                      - dpm_solver_pp(model, x, s, ts, **kw)).abs().max())
    assert gap(order=1) == 0.0
    assert gap(order=[1, 1, 3, 3, 3, 3, 3, 3]) < 1e-14  # skip the 2M warm-up: 3M is one formula
    for kw in ({"order": 2}, {"order": 3}, {"order": 2, "method": "singlestep"}, {"order": 3, "method": "singlestep"}):
        assert gap(**kw) > 1e-6, kw  # 3M: through its 2M warm-up step


def test_integer_and_constant_list_orders_are_the_same_call():
    s = LinearVP()
    model = toy.mixture_2d().eps_model(s)
    ts, x = s.timesteps(6, "logsnr", t_end=1e-3), x_T(dim=2)
    for order in (1, 2, 3):
        a = dpm_solver(model, x, s, ts, order=order)
        assert torch.equal(a, dpm_solver(model, x, s, ts, order=[order] * 6))
        assert torch.equal(a, dpm_solver(model, x, s, ts, order=[order] * 6, fractions=[
            (1 / 2,) if order == 2 else (1 / 3, 2 / 3) if order == 3 else ()] * 6))
        warm = [min(i + 1, order) for i in range(6)]
        assert torch.equal(dpm_solver_pp(model, x, s, ts, order=order), dpm_solver_pp(model, x, s, ts, order=warm))


def test_fractions_place_the_intermediate_points():
    s = LinearVP()
    model = toy.mixture_2d().eps_model(s)
    seen = []

    def recording(x, t):
        seen.append(float(t[0]))
        return model(x, t)
    ts = s.timesteps(2, "logsnr", t_end=1e-3)
    dpm_solver(recording, x_T(dim=2), s, ts, order=[3, 2], fractions=[(0.2, 0.7), (0.4,)])
    lam = s.log_snr(ts)
    expected = [ts[0], s.t_of_log_snr(lam[0] + 0.2 * (lam[1] - lam[0])), s.t_of_log_snr(lam[0] + 0.7 * (lam[1] - lam[0])),
                ts[1], s.t_of_log_snr(lam[1] + 0.4 * (lam[2] - lam[1]))]
    assert seen == pytest.approx([float(t) for t in expected], rel=1e-13)


# --- exactness for polynomial model outputs ------------------------------------------------------------------
def _poly_model(schedule, coeffs, prediction):
    """A model whose eps ("eps") or x0_hat ("x0") is the polynomial sum c_n lambda^n, whatever x."""
    def p(lam):
        return sum(c * lam**n for n, c in enumerate(coeffs))

    def model(x, t):
        lam = schedule.log_snr(t)[:, None]
        if prediction == "eps":
            return p(lam).expand_as(x).clone()
        alpha, sigma = schedule.alpha(t)[:, None], schedule.sigma(t)[:, None]
        return (x - alpha * p(lam)) / sigma
    return model


def _exact_poly_solution(schedule, coeffs, prediction, x, t0, t1):
    """x(t1) from x(t0) for a model output p(lambda): antiderivatives of e^{-lam} p and e^{lam} p."""
    lam0, lam1 = schedule.log_snr(t0), schedule.log_snr(t1)
    derivs = [coeffs]
    for _ in range(len(coeffs)):
        c = derivs[-1]
        derivs.append([n * c[n] for n in range(1, len(c))] or [0.0])
    val = lambda cs, lam: sum(cn * lam**n for n, cn in enumerate(cs))  # noqa: E731
    if prediction == "eps":  # int e^{-lam} p = -e^{-lam} (p + p' + p'' + ...)
        F = lambda lam: -torch.exp(-lam) * sum(val(c, lam) for c in derivs)  # noqa: E731
        return schedule.alpha(t1) / schedule.alpha(t0) * x - schedule.alpha(t1) * (F(lam1) - F(lam0))
    H = lambda lam: torch.exp(lam) * sum((-1) ** k * val(c, lam) for k, c in enumerate(derivs))  # noqa: E731
    return schedule.sigma(t1) / schedule.sigma(t0) * x + schedule.sigma(t1) * (H(lam1) - H(lam0))


# The highest polynomial degree each update integrates exactly. "taylor": order - 1. "dpmsolver": phi_1/2 in
# place of phi_2 is exact only for constants; DPM-Solver-3's last stage interpolates linearly (s and s_2);
# third-order multistep is the same quadratic in both forms.
EXACT_DEGREE = {("taylor", m, k): k - 1 for m in ("singlestep", "multistep") for k in (1, 2, 3)} | {
    ("dpmsolver", "singlestep", 1): 0, ("dpmsolver", "singlestep", 2): 0, ("dpmsolver", "singlestep", 3): 1,
    ("dpmsolver", "multistep", 1): 0, ("dpmsolver", "multistep", 2): 0, ("dpmsolver", "multistep", 3): 2}


@settings(max_examples=10)
@given(st.lists(st.integers(min_value=1, max_value=50), min_size=5, max_size=7, unique=True).map(
           lambda v: [k / 50 for k in v]),
       st.sampled_from([1, 2, 3]), st.sampled_from(["singlestep", "multistep"]), st.sampled_from(["eps", "x0"]),
       st.sampled_from(["dpmsolver", "taylor"]))
def test_each_update_is_exact_for_polynomials_up_to_its_degree(times, order, method, prediction, solver_type):
    """The model output is a polynomial p(lambda) (whatever x): every full-order update integrates it exactly
    up to the degree of its form, so the output is the exact solution from the state where full order starts
    (multistep: after its order - 1 warm-up steps); one degree more is not."""
    s = LinearVP()
    ts = torch.tensor(sorted(times, reverse=True), dtype=F64)
    x = x_T(4)
    solver = dpm_solver if prediction == "eps" else dpm_solver_pp
    q = order if method == "singlestep" else [1] * (order - 1) + [order] * (len(ts) - order)  # warm up by DDIM
    start = 0 if method == "singlestep" else order - 1
    d = EXACT_DEGREE[(solver_type, method, order)]
    for coeffs, exact_expected in [([0.3, -0.2, 0.05][: d + 1], True), ([0.3, -0.2, 0.05, 0.4][: d + 2], False)]:
        states = [x]
        out = solver(_poly_model(s, coeffs, prediction), x, s, ts, order=q, method=method, solver_type=solver_type,
                     callback=lambda info: states.append(info["x"]))
        exact = _exact_poly_solution(s, coeffs, prediction, states[start], ts[start], ts[-1])
        assert torch.allclose(out, exact, rtol=1e-9, atol=1e-9) == exact_expected


# --- one update on every Gaussian path -----------------------------------------------------------------------------
PATHS = [LinearVP(), VE(), FlowMatching()]


def _same_lambda_grid(schedule, n=7):
    return schedule.t_of_log_snr(torch.linspace(-2.5, 4.0, n + 1, dtype=F64))


def _y_trajectory(run, schedule, n=7):
    """Run a sampler from the same y_T = x_T / alpha on the lambda grid of ``schedule``; return y at every grid point."""
    ts = _same_lambda_grid(schedule, n)
    x = x_T(16, 2) * float(schedule.noise_to_signal(ts[0])) * float(schedule.alpha(ts[0]))
    ys = [x / schedule.alpha(ts[0])]
    run(toy.mixture_2d().eps_model(schedule), x, schedule, ts, lambda info: ys.append(info["x"] / schedule.alpha(info["t"])))
    return torch.stack(ys)


INVARIANT_RUNS = {
    "ddim": lambda m, x, s, ts, cb: ddim(m, x, s, ts, callback=cb),
    **{f"dpm_solver {k} {me} {st}": (lambda k, me, st: lambda m, x, s, ts, cb: dpm_solver(
        m, x, s, ts, order=k, method=me, solver_type=st, callback=cb))(k, me, st)
       for k in (1, 2, 3) for me in ("singlestep", "multistep") for st in ("dpmsolver", "taylor")},
    **{f"dpm_solver_pp {k} {me} {st}": (lambda k, me, st: lambda m, x, s, ts, cb: dpm_solver_pp(
        m, x, s, ts, order=k, method=me, solver_type=st, callback=cb))(k, me, st)
       for k in (1, 2, 3) for me in ("singlestep", "multistep") for st in ("dpmsolver", "taylor")},
    "dpm_solver fast": lambda m, x, s, ts, cb: dpm_solver(m, x, s, ts, order=fast_orders(19), callback=cb),
    "sde_dpm_solver_pp 2": lambda m, x, s, ts, cb: sde_dpm_solver_pp(
        m, x, s, ts, order=2, generator=torch.Generator().manual_seed(2), callback=cb),
    "ddim eta 1": lambda m, x, s, ts, cb: ddim(m, x, s, ts, eta=1.0, generator=torch.Generator().manual_seed(2),
                                               callback=cb),
    "ddpm": lambda m, x, s, ts, cb: ddpm(m, x, s, ts, generator=torch.Generator().manual_seed(2), callback=cb),
}


@pytest.mark.parametrize("name", list(INVARIANT_RUNS))
def test_the_same_lambda_grid_gives_the_same_y_trajectory_on_vp_ve_and_flow_matching(name):
    """With y = x/alpha and a model that is a function of (y, lambda) (the exact eps of a mixture is), every
    sampler's y trajectory depends on the lambda grid only: VP, VE and flow matching agree to rounding
    (the stochastic ones given the same noise)."""
    trajectories = [_y_trajectory(INVARIANT_RUNS[name], s) for s in PATHS]
    scale = float(trajectories[0].abs().max())
    for other in trajectories[1:]:
        assert float((other - trajectories[0]).abs().max()) < 1e-12 * scale


# --- measured orders (a fast version of the chapter's experiment) ----------------------------------------
SAMPLERS = {  # name: (run, order, model calls per interval)
    "DDIM": (lambda m, x, s, ts: ddim(m, x, s, ts), 1, 1),
    "DPM-Solver-1": (lambda m, x, s, ts: dpm_solver(m, x, s, ts, order=1), 1, 1),
    "DPM-Solver(2M)": (lambda m, x, s, ts: dpm_solver(m, x, s, ts, order=2, method="multistep"), 2, 1),
    "DPM-Solver++(2M)": (lambda m, x, s, ts: dpm_solver_pp(m, x, s, ts, order=2), 2, 1),
    "DPM-Solver(3M)": (lambda m, x, s, ts: dpm_solver(m, x, s, ts, order=3, method="multistep"), 3, 1),
    "DPM-Solver++(3M)": (lambda m, x, s, ts: dpm_solver_pp(m, x, s, ts, order=3), 3, 1),
}
for _st in ("dpmsolver", "taylor"):
    SAMPLERS |= {
        f"DPM-Solver-2 {_st}": ((lambda st: lambda m, x, s, ts: dpm_solver(m, x, s, ts, order=2, solver_type=st))(_st),
                                2, 2),
        f"DPM-Solver++(2S) {_st}": ((lambda st: lambda m, x, s, ts: dpm_solver_pp(
            m, x, s, ts, order=2, method="singlestep", solver_type=st))(_st), 2, 2),
        f"DPM-Solver-3 {_st}": ((lambda st: lambda m, x, s, ts: dpm_solver(m, x, s, ts, order=3, solver_type=st))(_st),
                                3, 3),
        f"DPM-Solver++(2M) {_st}": ((lambda st: lambda m, x, s, ts: dpm_solver_pp(m, x, s, ts, solver_type=st))(_st),
                                    2, 1),
    }


def test_measured_orders_against_the_model_calls_spent(counting):
    """Error against a high-accuracy reference ODE solve from the same x_T, fitted against the model calls
    each run really made (counted), not against the number of intervals."""
    s = LinearVP()
    model = toy.GaussianMixture([0.5, 0.5], [-0.6, 0.6], [0.25, 0.25]).eps_model(s)
    x = x_T(12)
    t_end = 1e-3
    ref = reference_ode_solve(model, x, s, 1.0, t_end)
    for name, (run, order, calls_per_interval) in SAMPLERS.items():
        nfe, errs = [], []
        for budget in (40, 80, 160):
            counted, calls = counting(model)
            out = run(counted, x, s, s.timesteps(budget // calls_per_interval, "logsnr", t_end=t_end))
            nfe.append(len(calls))
            errs.append(metrics.rms_error(out, ref))
        assert nfe == [budget - budget % calls_per_interval for budget in (40, 80, 160)], (name, nfe)
        slope = metrics.fit_order(nfe[1:], errs[1:])  # the asymptotic slope, from the two finer runs
        assert abs(slope - order) < 0.15, (name, slope, errs)


def test_dpm_solver_fast_spends_its_budget_and_its_last_interval_sets_the_asymptotic_order(counting):
    """DPM-Solver-fast spends exactly its budget. Its order is 3 only when nfe % 3 == 2 (it ends ..., 3, 2);
    otherwise it ends with a first-order interval (..., 3, 2, 1 or ..., 3, 1) whose O(h^2) local error
    makes it second order as nfe -> oo (the measured slope falls from 3 towards 2)."""
    s = LinearVP()
    model = toy.GaussianMixture([0.5, 0.5], [-0.6, 0.6], [0.25, 0.25]).eps_model(s)
    x = x_T(12)
    ref = reference_ode_solve(model, x, s, 1.0, 1e-3)
    slopes = {}
    for budgets in ([62, 122, 242], [60, 120, 240]):
        errs = []
        for nfe in budgets:
            q = fast_orders(nfe)
            counted, calls = counting(model)
            out = dpm_solver(counted, x, s, s.timesteps(len(q), "logsnr", t_end=1e-3), order=q)
            assert len(calls) == nfe
            errs.append(metrics.rms_error(out, ref))
        slopes[budgets[0] % 3] = metrics.fit_order(budgets[1:], errs[1:])
    assert abs(slopes[2] - 3) < 0.15 and 2 < slopes[0] < 2.7, slopes


@pytest.mark.parametrize("solver_type", ["dpmsolver", "taylor"])
def test_singlestep_third_order_needs_r2_two_thirds(solver_type):
    """Intermediate points (r_1, r_2): any r_1 with r_2 = 2/3 keeps DPM-Solver-3 third order, another r_2 makes
    it second order, in both forms."""
    s = LinearVP()
    model = toy.GaussianMixture([0.5, 0.5], [-0.6, 0.6], [0.25, 0.25]).eps_model(s)
    x = x_T(12)
    ref = reference_ode_solve(model, x, s, 1.0, 1e-3)
    for fr, order in (((0.4, 2 / 3), 3), ((1 / 3, 0.7), 2)):
        Ks = [40, 80]
        errs = [metrics.rms_error(dpm_solver(model, x, s, s.timesteps(K, "logsnr", t_end=1e-3), order=3,
                                             solver_type=solver_type, fractions=[fr] * K), ref) for K in Ks]
        assert abs(metrics.fit_order(Ks, errs) - order) < 0.15, (fr, errs)


# --- DPM-Solver-fast's order schedule -------------------------------------------------------------------------
@given(st.integers(1, 300), st.sampled_from([1, 2, 3]))
def test_fast_orders_spend_exactly_the_budget_with_the_highest_orders_first(nfe, order):
    q = fast_orders(nfe, order)
    assert sum(q) == nfe and all(1 <= o <= order for o in q) and q == sorted(q, reverse=True)
    # as few intervals as the budget allows at that order, plus one when the remainder is split (3 = 2 + 1)
    assert len(q) == {1: nfe, 2: -(-nfe // 2), 3: nfe // 3 + 1}[order]
    assert q.count(order) >= len(q) - 2 and (order == 1 or q.count(1) <= 1)


def test_fast_orders_are_the_papers_examples():
    """Sec. 3.4 of the DPM-Solver paper: K = NFE // 3 + 1 intervals; NFE % 3 == 0: K - 2 third-order steps,
    one second-order, one first-order; == 1: K - 1 third-order and one first-order; == 2: one second-order."""
    assert fast_orders(12) == [3, 3, 3, 2, 1]
    assert fast_orders(10) == [3, 3, 3, 1]
    assert fast_orders(20) == [3, 3, 3, 3, 3, 3, 2]
    assert fast_orders(3) == [2, 1] and fast_orders(1) == [1] and fast_orders(2) == [2]
    assert fast_orders(7, order=2) == [2, 2, 2, 1] and fast_orders(4, order=1) == [1, 1, 1, 1]


# --- NFE accounting, options ----------------------------------------------------------------------------------
@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("method", ["singlestep", "multistep"])
@pytest.mark.parametrize("lower_order_final", [False, True])
def test_nfe_accounting(counting, order, method, lower_order_final):
    s = DiscreteVP.linear()
    model, calls = counting(toy.seed_mixture_1d().eps_model(s))
    seen = []
    N = 6
    dpm_solver(model, x_T(4), s, s.timesteps(N, t_end=1.0), order=order, method=method,
               lower_order_final=lower_order_final, callback=lambda info: seen.append(info["nfe"]))
    expected = N if method == "multistep" else (order * N if not lower_order_final else
                                                 sum(min(order, N - i) for i in range(N)))
    assert len(calls) == expected == seen[-1] == nfe_count(N, order, method, lower_order_final)
    assert len(seen) == N


def test_nfe_count_of_a_list_of_orders():
    assert nfe_count(4, [3, 3, 2, 1], "singlestep") == 9 == sum(fast_orders(9))
    assert nfe_count(4, [3, 3, 2, 2], "singlestep", to_zero=True) == 9
    assert nfe_count(4, [1, 2, 2, 2], "multistep") == 4


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
def test_bad_options():
    s = DiscreteVP.linear()
    model = toy.seed_mixture_1d().eps_model(s)
    ts = s.timesteps(5, t_end=1.0)
    x = x_T(4)
    for order in (0, 4):
        with pytest.raises(ValueError, match=r"order must be one of \[1, 2, 3\]"):
            dpm_solver(model, x, s, ts, order=order)
    with pytest.raises(TypeError, match=r"order must be an int or a list of ints \(one per interval\), got float"):
        dpm_solver_pp(model, x, s, ts, order=2.0)
    with pytest.raises(ValueError, match=r"order must have one entry per interval of ts \(5\), got 3"):
        dpm_solver(model, x, s, ts, order=[3, 3, 2])
    with pytest.raises(ValueError, match=r"order\[1\] must be one of \[1, 2, 3\], got 4"):
        dpm_solver(model, x, s, ts, order=[3, 4, 2, 1, 1])
    with pytest.raises(TypeError, match=r"order\[0\] must be an int, got str"):
        dpm_solver(model, x, s, ts, order=["3", 3, 2, 1, 1])
    with pytest.raises(ValueError, match=r"order\[1\] = 3 needs 3 model outputs, but multistep has only 2"):
        dpm_solver_pp(model, x, s, ts, order=[1, 3, 3, 3, 3], method="multistep")
    with pytest.raises(ValueError, match="method must be one of"):
        dpm_solver(model, x, s, ts, method="adaptive")
    with pytest.raises(TypeError, match="method must be a str, got int"):
        dpm_solver(model, x, s, ts, method=1)
    with pytest.raises(ValueError, match=r"solver_type must be one of \['dpmsolver', 'taylor'\], got 'heun'"):
        dpm_solver(model, x, s, ts, solver_type="heun")
    with pytest.raises(TypeError, match=r"solver_type must be a str, got NoneType"):
        sde_dpm_solver_pp(model, x, s, ts, solver_type=None)
    with pytest.raises(TypeError, match="lower_order_final must be a bool"):
        dpm_solver(model, x, s, ts, lower_order_final=1)
    with pytest.raises(ValueError, match=r"order must be one of \[1, 2\]"):
        sde_dpm_solver_pp(model, x, s, ts, order=3)
    with pytest.raises(ValueError, match=r"fractions\[0\] must hold order - 1 = 1 increasing numbers in \(0, 1\)"):
        dpm_solver(model, x, s, ts, order=2, fractions=[(0.5, 0.7)] + [(0.5,)] * 4)
    with pytest.raises(ValueError, match=r"fractions\[1\] must hold order - 1 = 2 increasing numbers in \(0, 1\)"):
        dpm_solver(model, x, s, ts, order=3, fractions=[(0.2, 0.6), (0.6, 0.2)] + [(0.3, 0.6)] * 3)
    with pytest.raises(ValueError, match=r"fractions must be a list with one tuple .* per interval \(5\)"):
        dpm_solver(model, x, s, ts, order=2, fractions=[(0.5,)])
    with pytest.raises(ValueError, match=r"fractions applies to method='singlestep' only"):
        dpm_solver(model, x, s, ts, order=2, method="multistep", fractions=[(0.5,)] * 5)


def test_bad_grids_schedules_and_models():
    s = DiscreteVP.linear()
    model = toy.seed_mixture_1d().eps_model(s)
    ts = s.timesteps(5, t_end=1.0)
    x = x_T(4)
    with pytest.raises(ValueError, match=r"ts reaches sigma = 0 \(lambda = inf\) at ts\[-1\] = 0.*dpm_solver_pp"):
        dpm_solver(model, x, s, s.timesteps(5))
    with pytest.raises(ValueError, match="strictly decreasing"):
        dpm_solver(model, x, s, ts.flip(0))
    with pytest.raises(TypeError, match="model must be callable"):
        dpm_solver_pp(None, x, s, ts)
    with pytest.raises(TypeError, match=r"schedule must be a diffnb.schedules.GaussianPath .*got str"):
        dpm_solver_pp(model, x, "linear", ts)
    with pytest.raises(TypeError, match=r"schedule must be a diffnb.schedules.GaussianPath .*got NoneType"):
        sde_dpm_solver_pp(model, x, None, ts)
    fm = FlowMatching()
    for fn in (dpm_solver, dpm_solver_pp, sde_dpm_solver_pp):
        with pytest.raises(ValueError, match=r"ts\[0\] = 1 has alpha_t = 0 \(log_snr = -inf\) on FlowMatching\(\)"):
            fn(model, x, fm, torch.tensor([1.0, 0.5, 0.1], dtype=F64))
    # flow matching from just below t = 1 is fine, and dpm_solver_pp may end at its clean end t = 0
    assert torch.isfinite(dpm_solver_pp(model, x, fm, torch.tensor([0.99, 0.5, 0.0], dtype=F64))).all()


def test_bad_weights_and_counts():
    with pytest.raises(ValueError, match="k must be at least 1"):
        phi(0, torch.tensor(1.0, dtype=F64))
    with pytest.raises(ValueError, match="fracs must have shape"):
        exponential_weights(torch.ones(2, dtype=F64), torch.ones(2, dtype=F64), torch.zeros(2, dtype=F64))
    with pytest.raises(ValueError, match=r"midpoint weights need exactly two outputs .* got q=3"):
        exponential_weights(torch.ones(1, dtype=F64), torch.ones(1, dtype=F64),
                            torch.tensor([[0.0, 0.5, 0.7]], dtype=F64), midpoint=True)
    with pytest.raises(TypeError, match="midpoint must be a bool"):
        exponential_weights(torch.ones(1, dtype=F64), torch.ones(1, dtype=F64), torch.zeros(1, 1, dtype=F64),
                            midpoint=None)
    with pytest.raises(ValueError, match="nfe must be at least 1"):
        fast_orders(0)
    with pytest.raises(TypeError, match="nfe must be an int"):
        fast_orders(10.0)
    with pytest.raises(ValueError, match=r"order must be one of \[1, 2, 3\], got 4"):
        fast_orders(10, order=4)
    with pytest.raises(TypeError, match=r"order must be an int, got list"):
        fast_orders(10, order=[3])
    with pytest.raises(TypeError, match="to_zero must be a bool"):
        nfe_count(4, 2, "singlestep", to_zero=1)
