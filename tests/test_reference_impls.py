"""The papers' algorithm boxes, restated line by line from their formulas, against diffnb's one update.

Each reference below is a plain loop over the grid with scalar alpha_t, sigma_t, lambda_t, written from
the printed algorithm (Lu et al. 2022, Algorithms 1 and 2 and Sec. 3.4; Lu et al. 2025, Algorithms 1 and 2
and the SDE-DPM-Solver++(2M) update), not from diffnb's weights. The "taylor" form is checked against its
definition instead: the interpolating polynomial of the model outputs, integrated by Gauss-Legendre
quadrature against e^{-lambda} (noise) or e^{lambda} (data prediction).
"""

import math

import numpy as np
import pytest
import torch

from diffnb import toy
from diffnb.samplers import dpm_solver, dpm_solver_pp, fast_orders, sde_dpm_solver_pp
from diffnb.schedules import VE, LinearVP

F64 = torch.float64
S = LinearVP()
MODEL = toy.mixture_2d().eps_model(S)
X = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
TS = S.timesteps(6, "logsnr", t_end=1e-3)


def sc(schedule, t):
    """(alpha_t, sigma_t, lambda_t, t) as Python floats and a 0-d tensor."""
    t = torch.as_tensor(t, dtype=F64)
    return float(schedule.alpha(t)), float(schedule.sigma(t)), float(schedule.log_snr(t)), t


def eps(model, x, t):
    return model(x, t.expand(x.shape[0]))


def x0(model, x, schedule, t):
    a, s, _, t = sc(schedule, t)
    return (x - s * eps(model, x, t)) / a


def t_at(schedule, lam):
    return schedule.t_of_log_snr(torch.tensor(lam, dtype=F64))


def close(a, b):
    return float((a - b).abs().max()) <= 1e-12 * max(1.0, float(b.abs().max()))


# --- DPM-Solver (Lu et al. 2022) ---------------------------------------------------------------------------
def dpm_solver_1_step(model, x, schedule, s, t):
    a_s, _, l_s, s = sc(schedule, s)
    a_t, g_t, l_t, t = sc(schedule, t)
    return a_t / a_s * x - g_t * math.expm1(l_t - l_s) * eps(model, x, s)


def dpm_solver_2_step(model, x, schedule, s, t, r1=0.5):
    """Algorithm 1 (DPM-Solver-2)."""
    a_s, _, l_s, s = sc(schedule, s)
    a_t, g_t, l_t, t = sc(schedule, t)
    h = l_t - l_s
    a_1, g_1, _, s1 = sc(schedule, t_at(schedule, l_s + r1 * h))
    e_s = eps(model, x, s)
    u = a_1 / a_s * x - g_1 * math.expm1(r1 * h) * e_s
    return a_t / a_s * x - g_t * math.expm1(h) * e_s - g_t / (2 * r1) * math.expm1(h) * (eps(model, u, s1) - e_s)


def dpm_solver_3_step(model, x, schedule, s, t, r1=1 / 3, r2=2 / 3):
    """Algorithm 2 (DPM-Solver-3)."""
    a_s, _, l_s, s = sc(schedule, s)
    a_t, g_t, l_t, t = sc(schedule, t)
    h = l_t - l_s
    a_1, g_1, _, s1 = sc(schedule, t_at(schedule, l_s + r1 * h))
    a_2, g_2, _, s2 = sc(schedule, t_at(schedule, l_s + r2 * h))
    e_s = eps(model, x, s)
    u1 = a_1 / a_s * x - g_1 * math.expm1(r1 * h) * e_s
    D1 = eps(model, u1, s1) - e_s
    u2 = a_2 / a_s * x - g_2 * math.expm1(r2 * h) * e_s - g_2 * r2 / r1 * (math.expm1(r2 * h) / (r2 * h) - 1) * D1
    D2 = eps(model, u2, s2) - e_s
    return a_t / a_s * x - g_t * math.expm1(h) * e_s - g_t / r2 * (math.expm1(h) / h - 1) * D2


STEPS = {1: dpm_solver_1_step, 2: dpm_solver_2_step, 3: dpm_solver_3_step}


def chain(step, model, x, schedule, ts, orders=None):
    for i, (s, t) in enumerate(zip(ts[:-1], ts[1:])):
        x = (step if orders is None else STEPS[orders[i]])(model, x, schedule, s, t)
    return x


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("schedule", [S, VE()], ids=repr)
def test_singlestep_dpm_solver_is_algorithms_1_and_2(order, schedule):
    model = toy.mixture_2d().eps_model(schedule)
    ts = schedule.timesteps(6, "logsnr", t_start=float(schedule.t_of_log_snr(torch.tensor(-3.0, dtype=F64))),
                            t_end=float(schedule.t_of_log_snr(torch.tensor(4.0, dtype=F64))))
    x = X * float(schedule.sigma(ts[0]))
    assert close(dpm_solver(model, x, schedule, ts, order=order), chain(STEPS[order], model, x, schedule, ts))


@pytest.mark.parametrize("nfe", [10, 11, 12, 20])
def test_dpm_solver_fast_is_sec_3_4(nfe):
    """K = nfe // 3 + 1 intervals uniform in lambda; orders 3, ..., 3 then (2, 1), (1) or (2) by nfe % 3."""
    K = nfe // 3 + 1
    orders = [3] * (K - 2) + [2, 1] if nfe % 3 == 0 else [3] * (K - 1) + [nfe % 3]
    ts = S.timesteps(K, "logsnr", t_end=1e-3)
    ref = chain(None, MODEL, X, S, ts, orders)
    assert close(dpm_solver(MODEL, X, S, ts, order=fast_orders(nfe)), ref)


def test_multistep_dpm_solver_2_is_the_official_dpmsolver_form():
    """x_t = a_t/a_s x - g_t (e^h - 1) eps_0 - (g_t/2) (e^h - 1) (eps_0 - eps_{-1}) / r, r = h_{-1}/h."""
    x, prev = X, None
    for s, t in zip(TS[:-1], TS[1:]):
        a_s, _, l_s, s = sc(S, s)
        a_t, g_t, l_t, t = sc(S, t)
        h, e0 = l_t - l_s, eps(MODEL, x, s)
        x_new = a_t / a_s * x - g_t * math.expm1(h) * e0
        if prev is not None:
            r = (l_s - prev[1]) / h
            x_new = x_new - 0.5 * g_t * math.expm1(h) * (e0 - prev[0]) / r
        x, prev = x_new, (e0, l_s)
    assert close(dpm_solver(MODEL, X, S, TS, order=2, method="multistep"), x)


# --- DPM-Solver++ (Lu et al. 2025) -------------------------------------------------------------------------
def test_dpm_solver_pp_2s_is_algorithm_1():
    x, r = X, 0.5
    for s, t in zip(TS[:-1], TS[1:]):
        _, g_s, l_s, s = sc(S, s)
        a_t, g_t, l_t, t = sc(S, t)
        h = l_t - l_s
        a_1, g_1, _, s1 = sc(S, t_at(S, l_s + r * h))
        d_s = x0(MODEL, x, S, s)
        u = g_1 / g_s * x - a_1 * math.expm1(-r * h) * d_s
        D = (1 - 1 / (2 * r)) * d_s + 1 / (2 * r) * x0(MODEL, u, S, s1)
        x = g_t / g_s * x - a_t * math.expm1(-h) * D
    assert close(dpm_solver_pp(MODEL, X, S, TS, order=2, method="singlestep"), x)


def test_dpm_solver_pp_2m_is_algorithm_2():
    x, prev = X, None
    for s, t in zip(TS[:-1], TS[1:]):
        _, g_s, l_s, s = sc(S, s)
        a_t, g_t, l_t, t = sc(S, t)
        h, d = l_t - l_s, x0(MODEL, x, S, s)
        D = d if prev is None else (1 + 1 / (2 * (l_s - prev[1]) / h)) * d - 1 / (2 * (l_s - prev[1]) / h) * prev[0]
        x, prev = g_t / g_s * x - a_t * math.expm1(-h) * D, (d, l_s)
    assert close(dpm_solver_pp(MODEL, X, S, TS, order=2), x)


def test_sde_dpm_solver_pp_2m_is_the_papers_update_given_the_same_noise():
    """x_t = g_t/g_s e^{-h} x + a_t (1 - e^{-2h}) D_0 + a_t (1 - e^{-2h}) D_1 / 2 + g_t sqrt(1 - e^{-2h}) z."""
    gen = torch.Generator().manual_seed(4)
    x, prev = X, None
    for s, t in zip(TS[:-1], TS[1:]):
        _, g_s, l_s, s = sc(S, s)
        a_t, g_t, l_t, t = sc(S, t)
        h, d = l_t - l_s, x0(MODEL, x, S, s)
        x_new = g_t / g_s * math.exp(-h) * x - a_t * math.expm1(-2 * h) * d
        if prev is not None:
            x_new = x_new - 0.5 * a_t * math.expm1(-2 * h) * (d - prev[0]) * h / (l_s - prev[1])
        x_new = x_new + g_t * math.sqrt(-math.expm1(-2 * h)) * torch.randn(x.shape, generator=gen, dtype=F64)
        x, prev = x_new, (d, l_s)
    out = sde_dpm_solver_pp(MODEL, X, S, TS, order=2, generator=torch.Generator().manual_seed(4))
    assert close(out, x)


# --- "taylor": the interpolating polynomial integrated exactly ---------------------------------------------
NODES, QW = np.polynomial.legendre.leggauss(40)


def integrate_interpolant(lams, outs, l_s, l_t, sign):
    """int_{l_s}^{l_t} e^{sign lambda} p(lambda) d lambda, p the Lagrange interpolant of (lams_j, outs_j)."""
    u = 0.5 * (l_t - l_s) * NODES + 0.5 * (l_t + l_s)
    total = 0.0
    for j, (lj, oj) in enumerate(zip(lams, outs)):
        basis = np.prod([(u - lk) / (lj - lk) for k, lk in enumerate(lams) if k != j], axis=0)
        total = total + float(0.5 * (l_t - l_s) * np.sum(QW * np.exp(sign * u) * basis)) * oj
    return total


def exact_step(x, s, t, lams, outs, prediction):
    """The exponential-integrator step with the model output replaced by its interpolant."""
    a_s, g_s, l_s, _ = sc(S, s)
    a_t, g_t, l_t, _ = sc(S, t)
    if prediction == "eps":
        return a_t / a_s * x - a_t * integrate_interpolant(lams, outs, l_s, l_t, -1.0)
    return g_t / g_s * x + g_t * integrate_interpolant(lams, outs, l_s, l_t, 1.0)


def output(x, t, prediction):
    return eps(MODEL, x, t) if prediction == "eps" else x0(MODEL, x, S, t)


@pytest.mark.parametrize("prediction", ["eps", "x0"])
@pytest.mark.parametrize("order", [2, 3])
def test_taylor_singlestep_integrates_the_interpolant_of_its_stages(prediction, order):
    x = X
    fr = {2: [0.5], 3: [1 / 3, 2 / 3]}[order]
    for s, t in zip(TS[:-1], TS[1:]):
        l_s, l_t = sc(S, s)[2], sc(S, t)[2]
        lams, outs, stage_times = [l_s], [output(x, s, prediction)], []
        for r in fr + [1.0]:
            tc = t if r == 1.0 else t_at(S, l_s + r * (l_t - l_s))
            xc = exact_step(x, s, tc, lams, outs, prediction)
            if r < 1.0:
                lams.append(sc(S, tc)[2])
                outs.append(output(xc, tc, prediction))
        x = xc
    fn = dpm_solver if prediction == "eps" else dpm_solver_pp
    assert close(fn(MODEL, X, S, TS, order=order, method="singlestep", solver_type="taylor"), x)


@pytest.mark.parametrize("prediction", ["eps", "x0"])
@pytest.mark.parametrize("solver_type, order", [("taylor", 2), ("taylor", 3), ("dpmsolver", 3)])
def test_multistep_integrates_the_interpolant_of_the_last_outputs(prediction, order, solver_type):
    """Taylor multistep of order k: the interpolant of the last k outputs. Third order is this in both forms
    (checked after a DDIM warm-up, so that the 2M warm-up step, where the forms differ, is not involved;
    the "dpmsolver" 2M step is DPM-Solver++'s Algorithm 2, tested above)."""
    x, hist = X, []
    orders = [1] * (order - 1) + [order] * (len(TS) - order)
    for i, (s, t) in enumerate(zip(TS[:-1], TS[1:])):
        hist.append((sc(S, s)[2], output(x, s, prediction)))
        used = hist[-orders[i]:]
        x = exact_step(x, s, t, [h[0] for h in used], [h[1] for h in used], prediction)
    fn = dpm_solver if prediction == "eps" else dpm_solver_pp
    assert close(fn(MODEL, X, S, TS, order=orders, method="multistep", solver_type=solver_type), x)
