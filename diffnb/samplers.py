"""Samplers: from x_T to x_0 along a strictly decreasing time grid ``ts``, on any Gaussian path.

Contract (shared by every sampler)::

    model(x, t) -> eps_hat, shaped like x; t has shape (batch,) and x's dtype
    schedule   a diffnb.schedules.GaussianPath: x_t = alpha_t x_0 + sigma_t eps (VP, VE, flow matching)
    ts[0] > ts[1] > ... > ts[-1]; the sampler goes from ts[0] to ts[-1]
    callback(info) after each step, info = {"i", "t", "t_prev", "x", "x0_hat", "eps_hat"}:
        x is the new state at time t (= ts[i + 1]); x0_hat and eps_hat are the predictions made
        at t_prev (= ts[i]) that produced it.

Dtype and device follow ``x_T``; nothing is converted behind the caller's back. Where a sampler is
undefined on a grid (an eps model at alpha = 0, noise prediction stepping to sigma = 0) it raises a
``ValueError`` naming ``ts``.

Notation: alpha_t, sigma_t as in ``diffnb.schedules``; one step goes from t to an earlier s (DDPM's
naming). The DPM-Solver family lives in ``diffnb.dpm_solver`` (with the paper's naming, s -> t) and is
re-exported here, as are the samplers of ``diffnb.edm`` and ``diffnb.unipc`` (imported on first use).
The sampler catalogue of the book's comparisons is ``diffnb.catalogue``.
"""

from __future__ import annotations

import importlib
import importlib.util

import torch

from . import _checks
from ._sampling import _noise, _start, grid_scales, predict_eps
from .dpm_solver import dpm_solver, dpm_solver_pp, fast_orders, sde_dpm_solver_pp
from .forward import posterior_coefficients, x0_from_eps

__all__ = ["ddpm", "ddim", "ddim_invert", "predict_eps", "ddim_sigma", "dpm_solver", "dpm_solver_pp",
           "sde_dpm_solver_pp", "fast_orders"]

F64 = torch.float64
_ELSEWHERE = {"euler": "edm", "heun": "edm", "edm_sampler": "edm", "unipc": "unipc"}
__all__ += [name for name, mod in _ELSEWHERE.items() if importlib.util.find_spec(f"{__package__}.{mod}")]


def __getattr__(name):
    """``euler``, ``heun``, ``edm_sampler`` (``diffnb.edm``) and ``unipc`` (``diffnb.unipc``), imported lazily."""
    if name in _ELSEWHERE:
        return getattr(importlib.import_module(f".{_ELSEWHERE[name]}", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _check_eta(eta, allow_tensor=False):
    kinds = (int, float, torch.Tensor) if allow_tensor else (int, float)
    if isinstance(eta, bool) or not isinstance(eta, kinds):
        raise TypeError(f"eta must be a number, got {type(eta).__name__}")
    if not bool(torch.all(torch.as_tensor(eta) >= 0)):
        raise ValueError(f"eta must be >= 0, got {eta}")


def ddim_sigma(schedule, t, s, eta: float = 1.0):
    """DDIM's noise scale for a step t -> s (s < t): eta times the standard deviation of the posterior
    q(x_s | x_t, x_0) (``forward.posterior_coefficients``); on a VP schedule::

        sigma_{t->s}(eta) = eta * sqrt((1 - alpha_bar_s) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_s)

    eta = 1 is DDPM's posterior; eta = 0 is deterministic.
    """
    _check_eta(eta, allow_tensor=True)
    _checks.gaussian_path(schedule)
    return eta * torch.sqrt(posterior_coefficients(schedule, t, s)[2])


def ddpm(model, x_T, schedule, ts, generator=None, callback=None):
    """Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2) on any decreasing grid.

    Each step predicts x0 from eps and draws x_s from the posterior q(x_s | x_t, x0_hat); with
    ``ts`` = T, T-1, ..., 0 this is DDPM itself, with a subsequence it is the respaced chain.
    The variance is the posterior's (beta-tilde), which is 0 on the last step to sigma = 0.
    """
    x, ts = _start(model, x_T, schedule, ts, callback)
    la, ls, _ = grid_scales(schedule, ts)
    alpha, sigma = la.exp().tolist(), ls.exp().tolist()
    t64 = ts.to(F64)
    # q(x_s | x_t, x0) = N(c_xt x_t + c_x0 x0, var) for every step, once per call
    c_xt, c_x0, var = (c.tolist() for c in posterior_coefficients(schedule, t64[:-1], t64[1:]))
    for i in range(len(ts) - 1):
        # 1. Predict the noise, then the clean data.
        eps_hat = predict_eps(model, x, ts[i])
        x0_hat = x0_from_eps(x, eps_hat, alpha[i], sigma[i])
        # 2. Sample the posterior q(x_s | x_t, x0_hat).
        x = torch.mul(x, c_xt[i]).add_(x0_hat, alpha=c_x0[i]).add_(_noise(x, generator), alpha=var[i] ** 0.5)
        if callback is not None:
            callback({"i": i, "t": ts[i + 1], "t_prev": ts[i], "x": x, "x0_hat": x0_hat, "eps_hat": eps_hat})
    return x


def _ddim_coefficients(la, ls, noise_std=None):
    """(a, b) of the DDIM step from grid point i to i + 1, x_{i+1} = a x_i + b eps_hat (+ noise_std z):
    x0_hat = (x_i - sigma_i eps_hat)/alpha_i, then alpha_{i+1} x0_hat + sqrt(sigma_{i+1}^2 - noise_std^2) eps_hat,
    so a = alpha_{i+1}/alpha_i and b = sqrt(sigma_{i+1}^2 - noise_std^2) - a sigma_i."""
    a = torch.exp(la[1:] - la[:-1])
    direction = ls[1:].exp() if noise_std is None else torch.sqrt(torch.exp(2 * ls[1:]) - noise_std**2)
    return a, direction - a * ls[:-1].exp()


def ddim(model, x_T, schedule, ts, eta: float = 0.0, generator=None, callback=None):
    """DDIM (Song, Meng and Ermon 2021, eq. 12) on any decreasing grid and any Gaussian path::

        x_s = alpha_s x0_hat + sqrt(sigma_s^2 - ddim_sigma^2) eps_hat + ddim_sigma z

    eta = 0: deterministic (the probability-flow ODE's first-order solver, Euler in rho = sigma/alpha
    and y = x/alpha); eta = 1: the posterior's variance, the same chain as ``ddpm`` given the same noise.
    One noise draw per step when eta > 0, in the same order as ``ddpm``.

    With x0_hat = (x_t - sigma_t eps_hat) / alpha_t the step is x_s = a x_t + b eps_hat (+ ddim_sigma z),
    a = alpha_s / alpha_t, b = sqrt(sigma_s^2 - ddim_sigma^2) - a sigma_t: the coefficients depend only
    on the grid and are computed once per call, so a step is the model call and two passes over x.
    """
    _check_eta(eta)
    x, ts = _start(model, x_T, schedule, ts, callback)
    t64 = ts.to(F64)
    la, ls, _ = grid_scales(schedule, ts)
    noise_std = ddim_sigma(schedule, t64[:-1], t64[1:], eta) if eta > 0 else torch.zeros_like(la[1:])
    direction2 = torch.exp(2 * ls[1:]) - noise_std**2  # squared coefficient of the "direction pointing to x_t"
    bad = torch.nonzero(direction2 < 0)
    if bad.numel():
        i = int(bad[0])
        raise ValueError(
            f"eta={eta} is too large for the step t={float(ts[i]):g} -> s={float(ts[i + 1]):g}: "
            f"sigma_s^2 - ddim_sigma^2 = {float(direction2[i]):.3g} < 0"
        )
    a, b = _ddim_coefficients(la, ls, noise_std if eta > 0 else None)
    a, b, std = a.tolist(), b.tolist(), noise_std.tolist()
    alpha, sigma = la.exp().tolist(), ls.exp().tolist()
    for i in range(len(ts) - 1):
        eps_hat = predict_eps(model, x, ts[i])
        x_new = torch.mul(x, a[i]).add_(eps_hat, alpha=b[i])
        if eta > 0:
            x_new.add_(_noise(x, generator), alpha=std[i])
        if callback is not None:
            x0_hat = x0_from_eps(x, eps_hat, alpha[i], sigma[i])
            callback({"i": i, "t": ts[i + 1], "t_prev": ts[i], "x": x_new, "x0_hat": x0_hat, "eps_hat": eps_hat})
        x = x_new
    return x


def ddim_invert(model, x_0, schedule, ts, callback=None):
    """DDIM inversion: run deterministic DDIM backwards, from ``ts[-1]`` up to ``ts[0]``.

    Each step from s up to t uses the prediction at the current point, eps_hat(x_s, s)::

        x_t = alpha_t x0_hat(x_s) + sigma_t eps_hat(x_s, s)

    which is the explicit Euler step of the same ODE, so ``ddim(model, ddim_invert(model, x, ...), ...)``
    returns x up to the discretisation error of both walks. ``ts[0]`` may be a time with alpha = 0
    (flow matching's t = 1): the walk ends there with x = eps_hat and never divides by that alpha.
    """
    x, ts = _start(model, x_0, schedule, ts, callback, x_name="x_0")
    up = ts.flip(0)
    la, ls, _ = (v.flip(0) for v in grid_scales(schedule, ts, predict_at=slice(1, None)))
    a, b = _ddim_coefficients(la, ls)
    a, b = a.tolist(), b.tolist()
    alpha, sigma = la.exp().tolist(), ls.exp().tolist()
    for i in range(len(up) - 1):
        eps_hat = predict_eps(model, x, up[i])
        x0_hat = x0_from_eps(x, eps_hat, alpha[i], sigma[i])
        x_new = torch.mul(x, a[i]).add_(eps_hat, alpha=b[i])
        if callback is not None:
            callback({"i": i, "t": up[i + 1], "t_prev": up[i], "x": x_new, "x0_hat": x0_hat, "eps_hat": eps_hat})
        x = x_new
    return x
