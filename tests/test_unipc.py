"""UniPC (diffnb.unipc): identities with DDIM and DPM-Solver++, steps written from the paper's formulas,
the coefficients against exact integrals, B(h)'s cancellation, model calls and convergence orders."""

import math

import pytest
import torch
from scipy.integrate import quad

from diffnb import metrics, toy
from diffnb.samplers import ddim, dpm_solver_pp
from diffnb.schedules import VE, DiscreteVP, FlowMatching, LinearVP
from diffnb.sde import reference_ode_solve
from diffnb.unipc import B_h, unipc, unipc_coefficients, unipc_orders

F64 = torch.float64


def x_T(n=32, dim=2, seed=0):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


def lam_grid(s, n, to_zero=False, lo=-4.0, hi=5.0):
    ts = s.t_of_log_snr(torch.linspace(lo, hi, n + (0 if to_zero else 1), dtype=F64))
    return torch.cat([ts, ts.new_full((1,), s.t_min)]) if to_zero else ts


# --- identities ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("to_zero", [False, True])
@pytest.mark.parametrize("variant", ["bh1", "bh2"])
def test_order_1_without_corrector_is_ddim_and_dpm_solver_pp_1(to_zero, variant):
    s = DiscreteVP.linear()
    model = toy.seed_mixture_1d().eps_model(s)
    ts = s.timesteps(15, "uniform", t_end=0.0 if to_zero else 1.0)
    a = unipc(model, x_T(dim=1), s, ts, order=1, variant=variant, corrector=False)
    assert torch.allclose(a, ddim(model, x_T(dim=1), s, ts), rtol=1e-12, atol=1e-12)
    assert torch.allclose(a, dpm_solver_pp(model, x_T(dim=1), s, ts, order=1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("lower_order_final", [False, True])
def test_unip_with_bh2_is_dpm_solver_pp_multistep(order, lower_order_final):
    """UniP-2 with B(h) = 1 - e^{-h} and the coefficient 1/2 is DPM-Solver++(2M) of the paper's Algorithm 2;
    UniP-3 (B(h) cancels) is the quadratic-interpolation 3M of diffnb."""
    s = LinearVP()
    model = toy.mixture_2d().eps_model(s)
    ts = lam_grid(s, 11, to_zero=True)
    a = unipc(model, x_T(), s, ts, order=order, variant="bh2", corrector=False, lower_order_final=lower_order_final)
    b = dpm_solver_pp(model, x_T(), s, ts, order=order, method="multistep", solver_type="dpmsolver",
                      lower_order_final=lower_order_final)
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["ve", "flow", "ddpm"])
def test_same_y_on_every_path(name):
    s = {"ve": VE(), "flow": FlowMatching(), "ddpm": DiscreteVP.linear()}[name]
    ref_s = LinearVP()
    lam = torch.linspace(-4.0, 5.0, 10, dtype=F64)
    y = x_T() * math.exp(4.0)
    outs = []
    for sch in (s, ref_s):
        ts = sch.t_of_log_snr(lam)
        outs.append(unipc(toy.mixture_2d().eps_model(sch), y * sch.alpha(ts[0]), sch, ts, order=3) / sch.alpha(ts[-1]))
    assert torch.allclose(outs[0], outs[1], rtol=1e-11, atol=1e-11)


# --- steps from the paper's formulas ---------------------------------------------------------------
def test_two_steps_of_unipc_1_by_hand():
    """UniPC-1 on two intervals: predictor DDIM, the new output m_1 at the predicted point, the corrector
    x^c_1 = sigma_1/sigma_0 x_0 + alpha_1 (1 - e^{-h}) m_0 + alpha_1 B(h) (1/2) (m_1 - m_0); the last step is
    DDIM from x^c_1 with the stored m_1 and no corrector."""
    s, mix = LinearVP(), toy.mixture_2d()
    model = mix.eps_model(s)
    ts = lam_grid(s, 2, lo=-1.0, hi=2.0)
    lam, alpha, sigma = s.log_snr(ts), s.alpha(ts), s.sigma(ts)
    x0 = x_T()
    for variant in ("bh1", "bh2"):
        def x0_hat(x, i):
            return (x - sigma[i] * model(x, ts[i].expand(len(x)))) / alpha[i]
        h = lam[1] - lam[0]
        B = h if variant == "bh1" else 1 - torch.exp(-h)
        m0 = x0_hat(x0, 0)
        pred = sigma[1] / sigma[0] * x0 + alpha[1] * (1 - torch.exp(-h)) * m0
        m1 = x0_hat(pred, 1)
        corr = pred + alpha[1] * B * 0.5 * (m1 - m0)
        h2 = lam[2] - lam[1]
        last = sigma[2] / sigma[1] * corr + alpha[2] * (1 - torch.exp(-h2)) * m1
        out = unipc(model, x0, s, ts, order=1, variant=variant)
        assert torch.allclose(out, last, rtol=1e-13, atol=1e-13)


def _exact_increment(poly, lam_s, lam_t, sigma_t):
    """sigma_t int_{lam_s}^{lam_t} e^lam P(lam) d lam: the data-prediction solution's source term."""
    return sigma_t * quad(lambda v: math.exp(v) * poly(v), lam_s, lam_t, epsabs=0, epsrel=1e-13)[0]


@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize("p", [2, 3])
def test_corrector_is_exact_for_polynomials_of_degree_p(variant, p):
    """UniC-p integrates x0_hat(lambda) exactly when it is a polynomial of degree <= p (outputs at the p - 1
    previous points, the current one and the new one): order p + 1. The predictor UniP-p (p >= 3, where the
    system is solved) is exact to degree p - 1."""
    h, prev = 0.7, [-0.5, -1.2][: p - 1]  # previous points, as lambda offsets from lambda_s = 0
    rks = [v / h for v in prev]
    alpha_t, sigma_t = math.exp(0.2), math.exp(0.2 - h)  # any alpha_t with sigma_t = alpha_t e^{-h}
    a, c = unipc_coefficients(h, rks, variant, simplified=False)
    B = B_h(h, variant)
    for degree in range(p + 1):
        poly = lambda v, d=degree: (1.3 * v - 0.4) ** d  # noqa: E731
        m0, mt = poly(0.0), poly(h)
        D = [(poly(v) - m0) / r for v, r in zip(prev, rks)]
        base = alpha_t * (1 - math.exp(-h)) * m0
        exact = _exact_increment(poly, 0.0, h, sigma_t)
        corr = base + alpha_t * B * (sum(ck * Dk for ck, Dk in zip(c, D)) + c[-1] * (mt - m0))
        assert math.isclose(corr, exact, rel_tol=1e-10, abs_tol=1e-12)
        if degree <= p - 1 and p >= 3:
            pred = base + alpha_t * B * sum(ak * Dk for ak, Dk in zip(a, D))
            assert math.isclose(pred, exact, rel_tol=1e-10, abs_tol=1e-12)
    # one degree more is not exact
    poly = lambda v: (1.3 * v - 0.4) ** (p + 1)  # noqa: E731
    m0 = poly(0.0)
    D = [(poly(v) - m0) / r for v, r in zip(prev, rks)]
    corr = alpha_t * (1 - math.exp(-h)) * m0 + alpha_t * B * (sum(ck * Dk for ck, Dk in zip(c, D)) + c[-1] * (poly(h) - m0))
    assert abs(corr - _exact_increment(poly, 0.0, h, sigma_t)) > 1e-4


@pytest.mark.parametrize("rks", [[], [-0.8], [-0.8, -1.9]])
def test_B_h_cancels_where_the_system_is_solved(rks):
    """B(h) a and B(h) c do not depend on the variant when the linear systems are solved exactly: the
    variants differ only through the 1/2 that replaces the 1 x 1 solutions."""
    h = 0.9
    out = {}
    for variant in ("bh1", "bh2"):
        a, c = unipc_coefficients(h, rks, variant, simplified=False)
        B = B_h(h, variant)
        out[variant] = [B * v for v in a + c]
    assert all(math.isclose(u, v, rel_tol=1e-12) for u, v in zip(out["bh1"], out["bh2"]))
    a1, c1 = unipc_coefficients(h, rks, "bh1")
    a2, c2 = unipc_coefficients(h, rks, "bh2")
    if len(rks) == 1:
        assert a1 == a2 == [0.5]
    if not rks:
        assert c1 == c2 == [0.5]
    same = math.isclose(B_h(h, "bh1") * (a1 + c1)[0], B_h(h, "bh2") * (a2 + c2)[0], rel_tol=1e-12)
    assert same == (len(rks) == 2)  # the simplified 1/2 makes B(h) matter for p = 1 (c) and p = 2 (a)


def test_orders_schedule():
    assert unipc_orders(6, 3) == [1, 2, 3, 3, 3, 3]
    assert unipc_orders(6, 3, lower_order_final=True) == [1, 2, 3, 3, 2, 1]
    assert unipc_orders(4, 2, to_zero=True) == [1, 2, 2, 1]


# --- model calls, sigma = 0, callback ----------------------------------------------------------------
@pytest.mark.parametrize("corrector", [True, False])
def test_one_model_call_per_interval_and_last_step_to_sigma_0(corrector):
    s = DiscreteVP.linear()
    base = toy.seed_mixture_1d().eps_model(s)
    calls = []

    def model(x, t):
        calls.append(float(t[0]))
        return base(x, t)

    ts = s.timesteps(10)
    infos = []
    out = unipc(model, x_T(dim=1), s, ts, order=3, corrector=corrector, callback=infos.append)
    assert len(calls) == 10 == infos[-1]["nfe"] and calls == ts[:-1].tolist()
    assert torch.equal(out, infos[-1]["x0_hat"])  # the last step to sigma = 0 returns x0_hat
    assert set(infos[0]) >= {"i", "t", "t_prev", "x", "x0_hat", "eps_hat", "nfe"}


def test_corrector_changes_the_state_not_the_model_calls():
    s = LinearVP()
    model = toy.mixture_2d().eps_model(s)
    ts = lam_grid(s, 8)
    with_c, without = [], []
    unipc(model, x_T(), s, ts, corrector=True, callback=with_c.append)
    unipc(model, x_T(), s, ts, corrector=False, callback=without.append)
    assert torch.equal(with_c[0]["x0_hat"], without[0]["x0_hat"])
    assert float((with_c[0]["x"] - without[0]["x"]).abs().max()) > 1e-6
    # the second output is evaluated at the predicted point, which is the same in both runs
    assert torch.equal(with_c[1]["x0_hat"], without[1]["x0_hat"])


# --- convergence -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("order, variant, corrector, expected", [
    (1, "bh2", True, 2), (2, "bh1", True, 3), (2, "bh2", True, 3), (3, "bh2", True, 4),
    (2, "bh2", False, 2), (3, "bh1", False, 3)])
def test_convergence_order(order, variant, corrector, expected):
    """UniPC-p is of order p + 1, UniP-p of order p. UniPC-3 reaches its asymptotic slope late (3.6 between
    160 and 320 steps, 3.9 between 640 and 1280 here), so it is measured on finer grids."""
    s, mix = LinearVP(), toy.mixture_2d()
    model = mix.eps_model(s)
    t0, t1 = float(s.t_of_log_snr(torch.tensor(-4.0, dtype=F64))), float(s.t_of_log_snr(torch.tensor(5.0, dtype=F64)))
    x = x_T(16)
    ref = reference_ode_solve(model, x, s, t0, t1, rtol=1e-13, atol=1e-13)
    steps = [320, 640, 1280] if expected == 4 else [80, 160, 320]
    errs = [metrics.rms_error(unipc(model, x, s, s.timesteps(n, "logsnr", t_start=t0, t_end=t1), order=order,
                                    variant=variant, corrector=corrector), ref) for n in steps]
    assert abs(metrics.fit_order(steps, errs) - expected) < 0.25


# --- bad input ---------------------------------------------------------------------------------------------
def test_bad_input_is_named():
    s = LinearVP()
    model = toy.seed_mixture_1d().eps_model(s)
    ts = lam_grid(s, 5)
    x = x_T(dim=1)
    with pytest.raises(ValueError, match="variant"):
        unipc(model, x, s, ts, variant="bh3")
    with pytest.raises(TypeError, match="variant"):
        unipc(model, x, s, ts, variant=2)
    with pytest.raises(ValueError, match="order"):
        unipc(model, x, s, ts, order=4)
    with pytest.raises(ValueError, match="order"):
        unipc(model, x, s, ts, order=0)
    with pytest.raises(TypeError, match="order"):
        unipc(model, x, s, ts, order=2.0)
    with pytest.raises(TypeError, match="corrector"):
        unipc(model, x, s, ts, corrector=1)
    with pytest.raises(TypeError, match="lower_order_final"):
        unipc(model, x, s, ts, lower_order_final="yes")
    with pytest.raises(TypeError, match="schedule"):
        unipc(model, x, None, ts)
    with pytest.raises(ValueError, match="ts"):
        unipc(model, x, s, torch.tensor([2.0, 0.5], dtype=F64))  # LinearVP lives on [0, 1]
    fm = FlowMatching()
    with pytest.raises(ValueError, match="ts"):
        unipc(toy.seed_mixture_1d().eps_model(fm), x, fm, fm.timesteps(5))  # alpha = 0 at t = 1
