"""UniPC (Zhao et al. 2023): the unified predictor UniP and corrector UniC, data prediction, multistep.

Notation (the paper's, with the book's alpha_t, sigma_t, lambda_t = log(alpha_t / sigma_t)). A step goes
from t_{i-1} to t_i; m_j = x0_hat(x_j, t_j) are the stored data predictions, m_0 the newest::

    h     = lambda_{t_i} - lambda_{t_{i-1}} > 0
    r_k   = (lambda_{s_k} - lambda_{t_{i-1}}) / h      s_k the k-th previous grid point (r_k < 0), r = 1 at t_i
    D_k   = (m_{s_k} - m_0) / r_k                       (the code's D1s)
    B(h)  = h (variant "bh1") or 1 - e^{-h} ("bh2")     any B(h) = O(h), B(h) != 0
    g_n   = n! h phi_{n+1}(-h) / B(h),   R_{nk} = r_k^{n-1}   (phi_k as in ``diffnb.dpm_solver``)

    UniP-p:  x_t = (sigma_t/sigma_s) x_s + alpha_t (1 - e^{-h}) m_0 + alpha_t B(h) sum_{k<p} a_k D_k,
             R_{p-1} a = g_{1..p-1}
    UniC-p:  the same with the new output m_t = x0_hat(x~_t, t) at r = 1 included:
             x^c_t = ... + alpha_t B(h) (sum_{k<p} c_k D_k + c_p (m_t - m_0)),   R_p c = g_{1..p}

With the outputs interpolated by a polynomial in lambda, R a = g makes the sum reproduce the terms
h^{n+1} phi_{n+1}(-h) x0^{(n)} of the exact data-prediction solution (``diffnb.dpm_solver``) up to
n = p - 1 (UniP-p, order p) or n = p (UniC-p, which raises the order to p + 1). Where the system is
1 x 1 (the predictor of order 2, the corrector of order 1) the official code and diffusers replace
its solution g_1 = h phi_2(-h)/B(h) = 1/2 + O(h) by its limit 1/2; so does ``unipc`` (the change is
O(h^3) per step). With "bh2" and 1/2, UniP-2 is DPM-Solver++(2M) of the paper's Algorithm 2, exactly.

Multistep, one model call per interval: the output at the predicted point x~_{t_i} serves both the
corrector of step i and the predictors of the following steps, and the corrector's x^c_{t_i} is the
state they start from. The last step has no corrector (it would cost a call). A last step to sigma = 0
is first order, x = m_0 (``dpm_solver_pp``'s rule), whatever ``order``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _checks
from ._sampling import _start, grid_scales, predict_eps
from .dpm_solver import phi
from .forward import x0_from_eps

__all__ = ["unipc", "unipc_coefficients", "B_h", "VARIANTS", "ORDERS", "unipc_orders"]

F64 = torch.float64
VARIANTS = ("bh1", "bh2")
ORDERS = (1, 2, 3)


def B_h(h: float, variant: str) -> float:
    """B(h) of the variant: h ("bh1") or 1 - e^{-h} ("bh2")."""
    _checks.choice(variant, "variant", VARIANTS)
    return float(h) if variant == "bh1" else -math.expm1(-float(h))


def unipc_coefficients(h, rks, variant: str = "bh2", simplified: bool = True):
    """The coefficients (a, c) of UniP and UniC for one step, as lists of floats.

    ``h`` > 0 is the step in lambda, ``rks`` the fractions r_k of the previous points used (p - 1 of
    them, negative), so the step has order p = len(rks) + 1. Returns ``a`` (p - 1 predictor weights of
    D_1..D_{p-1}) and ``c`` (p corrector weights of D_1..D_{p-1} and of m_t - m_0), solutions of
    R a = g_{1..p-1} and R c = g_{1..p} with R_{nk} = r_k^{n-1}, g_n = n! h phi_{n+1}(-h) / B(h).
    ``simplified``: the official code's 1/2 in place of the 1 x 1 solutions (predictor p = 2,
    corrector p = 1).
    """
    h = float(h)
    r = [*(float(v) for v in rks), 1.0]
    p = len(r)
    B = B_h(h, variant)
    g = [math.factorial(n) * h * float(phi(n + 1, -h)) / B for n in range(1, p + 1)]
    R = np.array([[rk**n for rk in r] for n in range(p)])
    a = list(np.linalg.solve(R[:-1, :-1], g[:-1])) if p > 1 else []
    c = list(np.linalg.solve(R, g))
    if simplified and p == 2:
        a = [0.5]
    if simplified and p == 1:
        c = [0.5]
    return [float(v) for v in a], [float(v) for v in c]


def unipc_orders(N: int, order: int, lower_order_final: bool = False, to_zero: bool = False) -> list[int]:
    """The order p of each of the N steps: warm-up 1, 2, ..., ``order``; ``lower_order_final`` lowers
    step i to at most N - i (the official code and diffusers do so by default); a last step to sigma = 0
    is first order."""
    _checks.positive_int(N, "N")
    _check_order(order)
    _checks.flag(lower_order_final, "lower_order_final")
    q = [min(order, i + 1, N - i if lower_order_final else order) for i in range(N)]
    if to_zero:
        q[-1] = 1
    return q


def _check_order(order):
    if isinstance(order, bool) or not isinstance(order, int):
        raise TypeError(f"order must be an int, got {type(order).__name__}")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {list(ORDERS)} (UniPC-1, -2, -3), got {order}")


def unipc(model, x_T, schedule, ts, order: int = 2, variant: str = "bh2", corrector: bool = True,
          lower_order_final: bool = False, callback=None):
    """UniPC-p (Zhao et al. 2023), multistep with data prediction, from ``ts[0]`` to ``ts[-1]``.

    ``order`` p in 1, 2, 3 is the order of the predictor UniP-p; with ``corrector=True`` each step but
    the last is corrected by UniC-p, which raises the order to p + 1 at no extra model call.
    ``variant`` is B(h): "bh1" (h) or "bh2" (1 - e^{-h}). One model call per interval (N in all).
    ``corrector=False`` and ``order=1`` is DDIM; ``ts`` may end at sigma = 0 (last step x0_hat).
    ``callback`` gets {"i", "t", "t_prev", "x", "x0_hat", "eps_hat", "nfe"} after each interval; x is the
    corrected state where a corrector ran.
    """
    _check_order(order)
    _checks.choice(variant, "variant", VARIANTS)
    _checks.flag(corrector, "corrector")
    _checks.flag(lower_order_final, "lower_order_final")
    x, ts = _start(model, x_T, schedule, ts, callback)
    la, ls, lam = grid_scales(schedule, ts)
    alpha, sigma, lam = la.exp().tolist(), ls.exp().tolist(), lam.tolist()
    N = len(ts) - 1
    q = unipc_orders(N, order, lower_order_final, to_zero=math.isinf(lam[-1]))

    def data_prediction(x_, i):
        eps = predict_eps(model, x_, ts[i])
        return x0_from_eps(x_, eps, alpha[i], sigma[i]), eps

    m, eps_hat = data_prediction(x, 0)
    outputs, nfe = [m], 1  # model outputs m_j at grid points 0..i (newest last)
    for i in range(N):
        p, m0 = q[i], outputs[-1]
        if math.isinf(lam[i + 1]):  # Step to sigma = 0: the first-order limit.
            x_new = m0
        else:
            h = lam[i + 1] - lam[i]
            rks = [(lam[i - k] - lam[i]) / h for k in range(1, p)]
            D = [(outputs[-1 - k] - m0) / r for k, r in enumerate(rks, start=1)]
            a, c = unipc_coefficients(h, rks, variant)
            B = B_h(h, variant)
            x_t_ = sigma[i + 1] / sigma[i] * x + alpha[i + 1] * (-math.expm1(-h)) * m0
            # UniP-p: predict x at t_{i+1}.
            x_new = x_t_ + alpha[i + 1] * B * sum(ak * Dk for ak, Dk in zip(a, D)) if D else x_t_
            if i < N - 1:
                m_new, eps_new = data_prediction(x_new, i + 1)
                nfe += 1
                # UniC-p: correct with the new output m_t.
                if corrector:
                    corr = sum(ck * Dk for ck, Dk in zip(c[:-1], D)) + c[-1] * (m_new - m0)
                    x_new = x_t_ + alpha[i + 1] * B * corr
        if callback is not None:
            callback({"i": i, "t": ts[i + 1], "t_prev": ts[i], "x": x_new, "x0_hat": m0, "eps_hat": eps_hat,
                      "nfe": nfe})
        if i < N - 1:
            outputs = (outputs + [m_new])[-order:]
            eps_hat = eps_new
        x = x_new
    return x
