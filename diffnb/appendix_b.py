"""Helpers of the conventions appendix: the third-order multistep update as the reference
DPM-Solver code, k-diffusion's ``sample_dpmpp_3m_sde`` and diffusers write it, with the weight of the
second divided difference as a parameter.

DPM-Solver++(3M) on the data prediction m_i = x0_hat(x_{s_i}, s_i), with h = lambda_t - lambda_{s_0},
r_0 = (lambda_{s_0} - lambda_{s_1}) / h, r_1 = (lambda_{s_1} - lambda_{s_2}) / h::

    D1_0 = (m_0 - m_1) / r_0,   D1_1 = (m_1 - m_2) / r_1
    D1   = D1_0 + r_0 / (r_0 + r_1) (D1_0 - D1_1)
    D2   = c / (r_0 + r_1) (D1_0 - D1_1)
    x_t  = (sigma_t / sigma_{s_0}) x - alpha_t phi_1 m_0 + alpha_t phi_2 D1 - alpha_t phi_3 D2

with phi_1 = expm1(-h), phi_2 = phi_1 / h + 1, phi_3 = phi_2 / h - 1/2. The quadratic through the
three outputs gives c = 2 (third order; ``diffnb.samplers.dpm_solver_pp(order=3)``); the reference
code, k-diffusion and diffusers use c = 1 (second order). The first two intervals are the warm-up
steps of order 1 and 2 in the papers' "dpmsolver" form, as in the reference code.
"""

from __future__ import annotations

import torch

from . import _checks
from ._sampling import predict_eps

__all__ = ["dpm_solver_pp_3m"]

F64 = torch.float64


def dpm_solver_pp_3m(model, x_T, schedule, ts, d2_weight: float = 2.0):
    """DPM-Solver++(3M) from ``ts[0]`` to ``ts[-1]`` with D2 = d2_weight / (r_0 + r_1) (D1_0 - D1_1).

    ``d2_weight=2`` is the book's (third order), ``1`` the reference code's. ``ts`` must end at a
    positive sigma."""
    _checks.callable_(model, "model")
    x = _checks.batch(x_T, "x_T")
    ts = _checks.grid(ts, x, schedule)
    c = float(d2_weight)
    la, sg = schedule.alpha(ts).to(F64), schedule.sigma(ts).to(F64)
    if float(sg[-1]) <= 0:
        raise ValueError("ts must end at a positive sigma (the update divides by lambda differences)")
    lam = torch.log(la) - torch.log(sg)
    ms = []
    for i in range(len(ts) - 1):
        eps = predict_eps(model, x, ts[i])
        ms.append((x - sg[i] * eps) / la[i])
        h = float(lam[i + 1] - lam[i])
        a_t, ratio = float(la[i + 1]), float(sg[i + 1] / sg[i])
        phi1 = torch.expm1(torch.tensor(-h, dtype=F64)).item()
        x_new = ratio * x - a_t * phi1 * ms[-1]
        if i >= 1:
            r0 = float(lam[i] - lam[i - 1]) / h
            d1_0 = (ms[-1] - ms[-2]) / r0
        if i == 1:
            x_new = x_new - 0.5 * a_t * phi1 * d1_0
        elif i >= 2:
            r1 = float(lam[i - 1] - lam[i - 2]) / h
            d1_1 = (ms[-2] - ms[-3]) / r1
            d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
            d2 = c / (r0 + r1) * (d1_0 - d1_1)
            phi2 = phi1 / h + 1.0
            phi3 = phi2 / h - 0.5
            x_new = x_new + a_t * phi2 * d1 - a_t * phi3 * d2
        x = x_new
    return x
