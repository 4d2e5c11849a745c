"""The SDE view of a VP diffusion: forward and reverse SDE, and the probability-flow ODE.

Notation (Song et al. 2021; alpha_t, sigma_t, lambda_t as in ``diffnb.schedules``)::

    forward SDE       dx = f(t) x dt + g(t) dw
    drift, diffusion  f(t)   = d log alpha_t / dt
                      g^2(t) = d sigma_t^2 / dt - 2 f(t) sigma_t^2     (= -2 f(t) = beta(t) for VP)
    score             grad log q_t(x) = -eps(x, t) / sigma_t
    reverse SDE       dx = [f(t) x + g^2(t) / sigma_t * eps_hat(x, t)] dt + g(t) dw_bar   (t decreasing)
    PF-ODE            dx/dt = f(t) x + g^2(t) / (2 sigma_t) * eps_hat(x, t)
    in rho = sigma_t / alpha_t = exp(-lambda_t) ("noise_to_signal") and y = x / alpha_t:
                      dy / drho = eps_hat(alpha y, t(rho))     (the "DDIM as an ODE" form)

DDPM's chain x_n = sqrt(1 - beta_n) x_{n-1} + sqrt(beta_n) z is the Euler-Maruyama step of the
forward SDE with beta_n = beta(t) dt, up to O(beta_n^2) per step.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.integrate import solve_ivp

from . import _checks
from .samplers import _noise, _start, predict_eps

__all__ = [
    "drift_diffusion",
    "forward_sde_euler_maruyama",
    "reverse_sde_euler_maruyama",
    "probability_flow_rhs",
    "reference_ode_solve",
]


def _scalar_time(t, name, like):
    t = _checks.as_float_tensor(t, name, dtype=like.dtype, device=like.device)
    if t.ndim != 0:
        raise ValueError(f"{name} must be a scalar time (a number or a 0-d tensor), got shape {tuple(t.shape)}")
    return _checks.finite(t, name).to(dtype=like.dtype, device=like.device)


def drift_diffusion(schedule, t):
    """``(f(t), g^2(t))`` of the forward SDE dx = f x dt + g dw of a VP schedule::

        f(t) = d log alpha_t / dt,   g^2(t) = d sigma_t^2/dt - 2 f sigma_t^2 = -2 f(t)

    (alpha_t^2 + sigma_t^2 = 1 makes d sigma_t^2/dt = -2 f alpha_t^2). For the linear VP schedule
    g^2(t) = beta(t). Shapes and dtype follow ``t``.
    """
    f = schedule.d_log_alpha(t)
    return f, -2 * f


def _increasing_grid(ts, like, schedule, name="ts"):
    if not isinstance(ts, torch.Tensor):
        raise TypeError(f"{name} must be a 1-D torch.Tensor of times, got {type(ts).__name__}")
    if ts.ndim != 1 or ts.numel() < 2:
        raise ValueError(f"{name} must be 1-D with at least 2 points, got shape {tuple(ts.shape)}")
    if not bool((ts[1:] > ts[:-1]).all()):
        raise ValueError(f"{name} must be strictly increasing (the forward SDE runs from t = 0 upwards)")
    # Reuse the decreasing-grid check (dtype, finiteness, range) on the flipped grid.
    return _checks.grid(ts.flip(0), like, schedule, name).flip(0)


def forward_sde_euler_maruyama(x0, schedule, ts, generator=None, callback=None):
    """Simulate the forward SDE dx = f(t) x dt + g(t) dw by Euler-Maruyama on the increasing grid ``ts``::

        x_{k+1} = x_k + f(t_k) x_k dt + g(t_k) sqrt(dt) z_k,   dt = t_{k+1} - t_k,  z_k ~ N(0, I)

    starting from ``x0`` at ``ts[0]``; returns the state at ``ts[-1]``. ``callback`` receives
    ``{"i", "t", "t_prev", "x"}`` after each step (x is the state at t = ts[i + 1]).
    """
    x = _checks.batch(x0, "x0")
    if callback is not None:
        _checks.callable_(callback, "callback")
    ts = _increasing_grid(ts, x, schedule)
    for i in range(len(ts) - 1):
        t, t_next = ts[i], ts[i + 1]
        dt = t_next - t
        f, g2 = drift_diffusion(schedule, t)
        # Euler-Maruyama step.
        x = x + f * x * dt + torch.sqrt(g2 * dt) * _noise(x, generator)
        if callback is not None:
            callback({"i": i, "t": t_next, "t_prev": t, "x": x})
    return x


def reverse_sde_euler_maruyama(model, x_T, schedule, ts, generator=None, callback=None, last_step_noise=False):
    """Euler-Maruyama for the reverse SDE (Anderson 1982; Song et al. 2021, eq. 6) with score = -eps_hat / sigma_t::

        x_s = x_t - [f(t) x_t + g^2(t) / sigma_t * eps_hat(x_t, t)] (t - s) + g(t) sqrt(t - s) z

    on the strictly decreasing grid ``ts`` (the samplers' contract; callback info
    ``{"i", "t", "t_prev", "x", "x0_hat", "eps_hat"}``). As in Song et al.'s code, the last step
    returns the mean without noise unless ``last_step_noise=True`` (DDPM's last posterior variance is
    zero for the same reason: noise added at the end is not removed by anything).
    """
    x, ts = _start(model, x_T, schedule, ts, callback)
    if not isinstance(last_step_noise, bool):
        raise TypeError(f"last_step_noise must be a bool, got {type(last_step_noise).__name__}")
    n = len(ts) - 1
    for i in range(n):
        t, s = ts[i], ts[i + 1]
        dt = t - s  # > 0: the step runs backwards in time
        alpha_t, sigma_t = schedule.alpha(t), schedule.sigma(t)
        f, g2 = drift_diffusion(schedule, t)
        eps_hat = predict_eps(model, x, t)
        x0_hat = (x - sigma_t * eps_hat) / alpha_t
        # Reverse drift f x - g^2 * score, with score = -eps_hat / sigma_t.
        x = x - (f * x + g2 / sigma_t * eps_hat) * dt
        if i < n - 1 or last_step_noise:
            x = x + torch.sqrt(g2 * dt) * _noise(x, generator)
        if callback is not None:
            callback({"i": i, "t": s, "t_prev": t, "x": x, "x0_hat": x0_hat, "eps_hat": eps_hat})
    return x


def probability_flow_rhs(model, x, t, schedule):
    """The probability-flow ODE's right-hand side (Song et al. 2021, eq. 13, with score = -eps/sigma)::

        dx/dt = f(t) x + g^2(t) / (2 sigma_t) * eps_hat(x, t)

    ``t`` is a scalar time with sigma_t > 0 (at sigma_t = 0 the formula divides by zero; integrate
    in rho = sigma_t / alpha_t instead, as ``reference_ode_solve`` does).
    """
    _checks.callable_(model, "model")
    x = _checks.batch(x, "x")
    t = _scalar_time(t, "t", x)
    schedule.check_times(t, "t")
    sigma_t = schedule.sigma(t)
    if not float(sigma_t) > 0:
        raise ValueError(f"t must have sigma_t > 0 for the probability-flow right-hand side, got t={float(t):g}")
    f, g2 = drift_diffusion(schedule, t)
    return f * x + g2 / (2 * sigma_t) * predict_eps(model, x, t)


def _positive_number(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be positive and finite, got {v}")
    return float(v)


def reference_ode_solve(model, x_start, schedule, t_start, t_end, rtol=1e-10, atol=1e-10, return_info=False):
    """Integrate the probability-flow ODE from ``t_start`` to ``t_end`` to high accuracy (either direction).

    Formulation: in rho = sigma_t / alpha_t and y = x / alpha_t the ODE is dy/drho = eps_hat(x, t(rho))
    (it follows from dx/dt = f x + g^2/(2 sigma) eps with g^2 = 2 sigma (d sigma/dt - f sigma) and
    d rho/dt = (d sigma/dt - f sigma) / alpha). It is integrated by ``scipy.integrate.solve_ivp``
    with DOP853 (order 8) on the flattened batch; t(rho) = ``schedule.t_of_log_snr(-log rho)`` and
    alpha = 1 / sqrt(1 + rho^2). rho = 0 (t = t_min, sigma = 0) is an ordinary point of this form, so
    ``t_end`` (or ``t_start``) may be the clean-data time as long as ``model`` is finite there (the
    exact mixture eps is; it is 0 at sigma = 0).

    Tolerances are per component: scipy measures the error in an RMS norm over all n components, so
    ``rtol`` and ``atol`` are divided by sqrt(n) before they are passed on (floored at scipy's
    100 * machine epsilon for ``rtol``), which bounds every component's local error estimate by
    atol + rtol |y|, however large the batch.

    ``x_start`` must be float64; the result has its shape, dtype and device. With
    ``return_info=True`` returns ``(x_end, info)`` with info = {"nfev", "n_steps", "message"}.
    """
    _checks.callable_(model, "model")
    x = _checks.batch(x_start, "x_start")
    if x.dtype != torch.float64:
        raise TypeError(f"x_start must be float64 for a reference solve, got {x.dtype}")
    rtol, atol = _positive_number(rtol, "rtol"), _positive_number(atol, "atol")
    t_start, t_end = _scalar_time(t_start, "t_start", x), _scalar_time(t_end, "t_end", x)
    schedule.check_times(t_start, "t_start")
    schedule.check_times(t_end, "t_end")
    rho_start, rho_end = float(schedule.noise_to_signal(t_start)), float(schedule.noise_to_signal(t_end))
    alpha_start = float(schedule.alpha(t_start))
    info = {"nfev": 0, "n_steps": 0, "message": "t_start equals t_end"}
    if rho_start == rho_end:
        return (x.clone(), info) if return_info else x.clone()

    shape, device = x.shape, x.device
    n = x.numel()

    def rhs(rho, y_flat):
        rho_t = torch.tensor(rho, dtype=torch.float64, device=device)
        t = schedule.t_of_log_snr(-torch.log(rho_t))
        alpha = torch.rsqrt(1 + rho_t**2)
        y = torch.from_numpy(y_flat).to(device).reshape(shape)
        eps = predict_eps(model, alpha * y, t)
        return eps.reshape(-1).cpu().numpy()

    y0 = (x / alpha_start).reshape(-1).cpu().numpy().astype(np.float64)
    scale = math.sqrt(n)
    sol = solve_ivp(rhs, (rho_start, rho_end), y0, method="DOP853",
                    rtol=max(rtol / scale, 100 * np.finfo(float).eps), atol=atol / scale)
    if not sol.success:
        raise RuntimeError(f"reference_ode_solve: solve_ivp failed: {sol.message}")
    y_end = torch.from_numpy(sol.y[:, -1].copy()).to(device).reshape(shape)
    x_end = y_end * schedule.alpha(t_end)
    info = {"nfev": int(sol.nfev), "n_steps": int(sol.t.size - 1), "message": sol.message}
    return (x_end, info) if return_info else x_end
