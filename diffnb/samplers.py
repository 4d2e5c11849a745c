"""Samplers: from x_T to x_0 along a strictly decreasing time grid ``ts``.

Contract (shared by every sampler)::

    model(x, t) -> eps_hat, shaped like x; t has shape (batch,) and x's dtype
    ts[0] > ts[1] > ... > ts[-1]; the sampler goes from ts[0] to ts[-1]
    callback(info) after each step, info = {"i", "t", "t_prev", "x", "x0_hat", "eps_hat"}:
        x is the new state at time t (= ts[i + 1]); x0_hat and eps_hat are the predictions made
        at t_prev (= ts[i]) that produced it.

Dtype and device follow ``x_T``; nothing is converted behind the caller's back.

Notation: alpha_t, sigma_t as in ``diffnb.schedules``; one step goes from t to an earlier s (DDPM's
naming). The DPM-Solver family lives in ``diffnb.dpm_solver`` (with the paper's naming, s -> t) and is
re-exported here.
"""

from __future__ import annotations

import torch

from . import _checks
from ._sampling import _noise, _start, predict_eps
from .dpm_solver import dpm_solver, dpm_solver_pp, sde_dpm_solver_pp
from .forward import posterior

__all__ = ["ddpm", "ddim", "ddim_invert", "predict_eps", "ddim_sigma", "dpm_solver", "dpm_solver_pp",
           "sde_dpm_solver_pp"]


def ddim_sigma(schedule, t, s, eta: float = 1.0):
    """DDIM's noise scale for a step t -> s (s < t)::

        sigma_{t->s}(eta) = eta * sqrt((1 - alpha_bar_s) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_s)

    eta = 1 is the standard deviation of DDPM's posterior q(x_s | x_t, x_0); eta = 0 is deterministic.
    """
    if isinstance(eta, bool) or not isinstance(eta, (int, float, torch.Tensor)):
        raise TypeError(f"eta must be a number, got {type(eta).__name__}")
    if not bool(torch.all(torch.as_tensor(eta) >= 0)):
        raise ValueError(f"eta must be >= 0, got {eta}")
    t = _checks.as_float_tensor(t, "t")
    s = _checks.as_float_tensor(s, "s", dtype=t.dtype)
    if not bool((s < t).all()):
        raise ValueError("s must be earlier than t (s < t) for the step t -> s")
    la_t, la_s = schedule.log_alpha(t), schedule.log_alpha(s)
    var = -torch.expm1(2 * la_s) / -torch.expm1(2 * la_t) * -torch.expm1(2 * (la_t - la_s))
    return eta * torch.sqrt(var)


def ddpm(model, x_T, schedule, ts, generator=None, callback=None):
    """Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2) on any decreasing grid.

    Each step predicts x0 from eps and draws x_s from the posterior q(x_s | x_t, x0_hat); with
    ``ts`` = T, T-1, ..., 0 this is DDPM itself, with a subsequence it is the respaced chain.
    The variance is the posterior's (beta-tilde), which is 0 on the last step to t = 0.
    """
    x, ts = _start(model, x_T, schedule, ts, callback)
    for i in range(len(ts) - 1):
        t, s = ts[i], ts[i + 1]
        alpha_t, sigma_t = schedule.alpha(t), schedule.sigma(t)
        # 1. Predict the noise, then the clean data.
        eps_hat = predict_eps(model, x, t)
        x0_hat = (x - sigma_t * eps_hat) / alpha_t
        # 2. Sample the posterior q(x_s | x_t, x0_hat).
        mean, var = posterior(schedule, x, x0_hat, t, s)
        x = mean + torch.sqrt(var) * _noise(x, generator)
        if callback is not None:
            callback({"i": i, "t": s, "t_prev": t, "x": x, "x0_hat": x0_hat, "eps_hat": eps_hat})
    return x


def ddim(model, x_T, schedule, ts, eta: float = 0.0, generator=None, callback=None):
    """DDIM (Song, Meng and Ermon 2021, eq. 12) on any decreasing grid::

        x_s = alpha_s x0_hat + sqrt(sigma_s^2 - ddim_sigma^2) eps_hat + ddim_sigma z

    eta = 0: deterministic (the probability-flow ODE's first-order solver); eta = 1: DDPM's
    posterior variance, the same chain as ``ddpm`` given the same noise. One noise draw per step
    when eta > 0, in the same order as ``ddpm``.

    With x0_hat = (x_t - sigma_t eps_hat) / alpha_t the step is x_s = a x_t + b eps_hat (+ ddim_sigma z),
    a = alpha_s / alpha_t, b = sqrt(sigma_s^2 - ddim_sigma^2) - a sigma_t: the coefficients depend only
    on the grid and are computed once per call, so a step is the model call and two passes over x.
    """
    if isinstance(eta, bool) or not isinstance(eta, (int, float)):
        raise TypeError(f"eta must be a number, got {type(eta).__name__}")
    if not eta >= 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    x, ts = _start(model, x_T, schedule, ts, callback)
    t64 = ts.to(torch.float64)
    la = schedule.log_alpha(t64)
    sigma = torch.sqrt(-torch.expm1(2 * la))
    noise_std = ddim_sigma(schedule, t64[:-1], t64[1:], eta) if eta > 0 else torch.zeros_like(la[1:])
    direction2 = sigma[1:] ** 2 - noise_std**2  # squared coefficient of the "direction pointing to x_t"
    bad = torch.nonzero(direction2 < 0)
    if bad.numel():
        i = int(bad[0])
        raise ValueError(
            f"eta={eta} is too large for the step t={float(ts[i]):g} -> s={float(ts[i + 1]):g}: "
            f"1 - alpha_bar_s - sigma^2 = {float(direction2[i]):.3g} < 0"
        )
    a = torch.exp(la[1:] - la[:-1])
    b = torch.sqrt(direction2) - a * sigma[:-1]
    a, b, std = a.tolist(), b.tolist(), noise_std.tolist()
    alpha_t, sigma_t = la.exp().tolist(), sigma.tolist()
    for i in range(len(ts) - 1):
        eps_hat = predict_eps(model, x, ts[i])
        x_new = torch.mul(x, a[i]).add_(eps_hat, alpha=b[i])
        if eta > 0:
            x_new.add_(_noise(x, generator), alpha=std[i])
        if callback is not None:
            x0_hat = (x - sigma_t[i] * eps_hat) / alpha_t[i]
            callback({"i": i, "t": ts[i + 1], "t_prev": ts[i], "x": x_new, "x0_hat": x0_hat, "eps_hat": eps_hat})
        x = x_new
    return x


def ddim_invert(model, x_0, schedule, ts, callback=None):
    """DDIM inversion: run deterministic DDIM backwards, from ``ts[-1]`` up to ``ts[0]``.

    Each step from s up to t uses the prediction at the current point, eps_hat(x_s, s)::

        x_t = alpha_t x0_hat(x_s) + sigma_t eps_hat(x_s, s)

    which is the explicit Euler step of the same ODE, so ``ddim(model, ddim_invert(model, x, ...), ...)``
    returns x up to the discretisation error of both walks.
    """
    x, ts = _start(model, x_0, schedule, ts, callback, x_name="x_0")
    up = ts.flip(0)
    for i in range(len(up) - 1):
        s, t = up[i], up[i + 1]
        alpha_s, sigma_s = schedule.alpha(s), schedule.sigma(s)
        eps_hat = predict_eps(model, x, s)
        x0_hat = (x - sigma_s * eps_hat) / alpha_s
        x = schedule.alpha(t) * x0_hat + schedule.sigma(t) * eps_hat
        if callback is not None:
            callback({"i": i, "t": t, "t_prev": s, "x": x, "x0_hat": x0_hat, "eps_hat": eps_hat})
    return x
