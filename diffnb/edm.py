"""Euler, Heun and EDM's stochastic sampler (Karras et al. 2022) on any Gaussian path, and naive Euler in t.

Notation (the book's; EDM's names on the right)::

    x_t = alpha_t x_0 + sigma_t eps                     any Gaussian path (VP, VE, flow matching)
    rho = sigma_t / alpha_t  (``noise_to_signal``)      EDM's sigma
    y   = x / alpha_t                                   EDM's x with s(t) = 1
    D(y; rho) = y - rho eps_hat  (= x0_hat)             EDM's denoiser D_theta
    d   = (y - D) / rho = eps_hat                       EDM's dx/dt with sigma(t) = t, s(t) = 1

In (rho, y) the probability-flow ODE of every path is dy/drho = eps_hat(alpha y, t(rho)) (EDM's
observation; ``diffnb.sde.reference_ode_solve`` integrates the same form), so Karras et al.'s
Algorithms 1 and 2 with sigma(t) = t and s(t) = 1 are samplers for every schedule: the schedule only
says which time t (the model's input) and which alpha belong to each rho. A step from grid point
t_i to t_{i+1} is written i -> i + 1, as in EDM.

* ``euler``: Euler in rho on y. It is deterministic DDIM, exactly (x_{i+1} = alpha_{i+1} y_{i+1}).
* ``heun``: Algorithm 1: Euler, then the explicit trapezoidal correction, unless rho_{i+1} = 0
  (a last interval ending at sigma = 0 is a plain Euler step). 2 model calls per interval, 1 on
  such a last interval.
* ``edm_sampler``: Algorithm 2: before each Heun step, raise the noise level from rho_i to
  rho_hat = (1 + gamma_i) rho_i by adding fresh noise of variance rho_hat^2 - rho_i^2 (in y),
  gamma_i = min(S_churn / N, sqrt(2) - 1) where S_tmin <= rho_i <= S_tmax, else 0; S_noise scales
  the added noise. With churn = 0 it is ``heun`` exactly.
* ``naive_euler``: Euler in t on x, dx/dt = alpha'_t x0_hat + sigma'_t eps_hat (the probability-flow
  ODE's right-hand side in the schedule's own coordinates). Not schedule invariant: on VE (x = y,
  t = rho) and on flow matching it is DDIM; on VP schedules it is not.
* ``flow_euler``: the same Euler step in t for a *velocity* model u(x, t) = dx/dt (flow matching's
  network, SD3's and Flux's sampler); it never divides by alpha, so it may start at flow matching's t = 1.

Contract as in ``diffnb.samplers``: ``model(x, t) -> eps_hat``, strictly decreasing ``ts`` inside the
schedule's range, float64 in and out, device of ``x_T``; ``callback`` gets
{"i", "t", "t_prev", "x", "x0_hat", "eps_hat", "nfe"} after each interval (``edm_sampler`` adds
"t_hat"), where x0_hat and eps_hat are the first prediction of the interval.
"""

from __future__ import annotations

import math

import torch

from . import _checks
from ._sampling import _noise, _start, grid_scales, predict_eps
from .forward import x0_from_eps

__all__ = ["euler", "heun", "edm_sampler", "naive_euler", "flow_euler", "rho_grid", "t_of_rho", "heun_nfe"]

F64 = torch.float64


def rho_grid(schedule, ts):
    """``(alpha, rho)`` of the grid as Python floats: alpha_i and rho_i = sigma_i / alpha_i.

    Every grid point must have alpha > 0 (flow matching's t = 1 has none, and y = x / alpha is
    undefined there): a ``ValueError`` naming ``ts`` says so. ``ts`` is a 1-D floating tensor of
    finite times inside the schedule's range."""
    _checks.gaussian_path(schedule)
    if not isinstance(ts, torch.Tensor):
        raise TypeError(f"ts must be a 1-D torch.Tensor of times, got {type(ts).__name__}")
    if ts.dtype not in _checks.FLOAT_DTYPES:
        raise TypeError(f"ts must be a floating-point tensor, got dtype {ts.dtype}")
    if ts.ndim != 1 or ts.numel() == 0:
        raise ValueError(f"ts must be 1-D and non-empty, got shape {tuple(ts.shape)}")
    schedule.check_times(ts, "ts")  # finite, inside [t_min, t_max]
    la, ls, lam = grid_scales(schedule, ts)
    return la.exp().tolist(), torch.exp(-lam).tolist()


def t_of_rho(schedule, rho: float, like: torch.Tensor) -> torch.Tensor:
    """The time with noise-to-signal ratio ``rho`` (> 0), as a 0-d tensor in ``like``'s dtype and device.

    ``rho`` is a positive finite number (or a one-element floating tensor); ``like`` a floating tensor."""
    _checks.gaussian_path(schedule)
    if isinstance(rho, torch.Tensor):
        if rho.numel() != 1 or rho.dtype not in _checks.FLOAT_DTYPES:
            raise TypeError(f"rho must be a number or a one-element floating tensor, got a tensor of dtype "
                            f"{rho.dtype} and shape {tuple(rho.shape)}")
        rho = float(rho)
    rho = _checks.positive_number(rho, "rho")
    if not isinstance(like, torch.Tensor) or like.dtype not in _checks.FLOAT_DTYPES:
        raise TypeError("like must be a floating-point torch.Tensor (it gives the dtype and device), got "
                        + (f"dtype {like.dtype}" if isinstance(like, torch.Tensor) else type(like).__name__))
    lam = torch.tensor(-math.log(rho), dtype=F64)
    return schedule.t_of_log_snr(lam).to(dtype=like.dtype, device=like.device)


def heun_nfe(N: int, to_zero: bool = True) -> int:
    """Model calls of ``heun`` (and ``edm_sampler``) on N intervals: 2 each, 1 on a last one to sigma = 0."""
    _checks.positive_int(N, "N")
    _checks.flag(to_zero, "to_zero")
    return 2 * N - 1 if to_zero else 2 * N


def _info(i, ts, x, eps_hat, y, rho, nfe, **extra):
    return {"i": i, "t": ts[i + 1], "t_prev": ts[i], "x": x, "x0_hat": y - rho * eps_hat,
            "eps_hat": eps_hat, "nfe": nfe, **extra}


def euler(model, x_T, schedule, ts, callback=None):
    """Euler's method in rho = sigma/alpha on y = x/alpha: y_{i+1} = y_i + (rho_{i+1} - rho_i) eps_hat_i.

    One model call per interval. The same update as deterministic DDIM (``samplers.ddim``), written as
    the Euler step of dy/drho = eps_hat; it may end at sigma = 0 (then y_N = x0_hat)."""
    x, ts = _start(model, x_T, schedule, ts, callback)
    alpha, rho = rho_grid(schedule, ts)
    y = x / alpha[0]
    for i in range(len(ts) - 1):
        # Evaluate dy/drho at rho_i.
        d_cur = predict_eps(model, alpha[i] * y, ts[i])
        # Euler step.
        y_next = y + (rho[i + 1] - rho[i]) * d_cur
        if callback is not None:
            callback(_info(i, ts, alpha[i + 1] * y_next, d_cur, y, rho[i], i + 1))
        y = y_next
    return alpha[-1] * y


def heun(model, x_T, schedule, ts, callback=None):
    """EDM's deterministic sampler (Karras et al. 2022, Algorithm 1) with sigma(t) = t, s(t) = 1 in (rho, y).

    Heun's method (explicit trapezoidal rule) on dy/drho = eps_hat: an Euler step to rho_{i+1}, then
    the average of the slopes at both ends; on a last interval ending at rho = 0 (sigma = 0) only the
    Euler step. Second order; ``heun_nfe(N, to_zero)`` model calls."""
    x, ts = _start(model, x_T, schedule, ts, callback)
    alpha, rho = rho_grid(schedule, ts)
    y_next, nfe = x / alpha[0], 0
    for i in range(len(ts) - 1):
        y_cur = y_next
        # Euler step.
        d_cur = predict_eps(model, alpha[i] * y_cur, ts[i])
        y_next = y_cur + (rho[i + 1] - rho[i]) * d_cur
        nfe += 1
        # Apply 2nd order correction.
        if rho[i + 1] != 0:
            d_prime = predict_eps(model, alpha[i + 1] * y_next, ts[i + 1])
            y_next = y_cur + (rho[i + 1] - rho[i]) * (0.5 * d_cur + 0.5 * d_prime)
            nfe += 1
        if callback is not None:
            callback(_info(i, ts, alpha[i + 1] * y_next, d_cur, y_cur, rho[i], nfe))
    return alpha[-1] * y_next


def _nonneg_number(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    if math.isnan(v) or v < 0:
        raise ValueError(f"{name} must be >= 0, got {v!r}")
    return float(v)


def edm_sampler(model, x_T, schedule, ts, churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"),
                s_noise: float = 1.0, generator=None, callback=None):
    """EDM's stochastic sampler (Karras et al. 2022, Algorithm 2) with sigma(t) = t, s(t) = 1 in (rho, y).

    ``churn`` (S_churn), ``s_tmin`` and ``s_tmax`` (S_tmin, S_tmax, in units of rho = sigma/alpha) and
    ``s_noise`` (S_noise) as in the paper. On interval i of N: gamma_i = min(churn / N, sqrt(2) - 1) if
    s_tmin <= rho_i <= s_tmax, else 0; rho_hat = rho_i + gamma_i rho_i; y_hat = y_i +
    sqrt(rho_hat^2 - rho_i^2) s_noise z; then the Heun step from (rho_hat, y_hat) to rho_{i+1}. One noise
    draw per interval whatever gamma is (as EDM's ``generate.py`` draws one), so runs with the same
    ``generator`` use the same z. ``churn = 0`` is ``heun`` exactly. rho_hat must stay inside the
    schedule (a ``ValueError`` otherwise: lower ``s_tmax`` below rho at the grid's start)."""
    churn = _nonneg_number(churn, "churn")
    s_tmin, s_tmax = _nonneg_number(s_tmin, "s_tmin"), _nonneg_number(s_tmax, "s_tmax")
    s_noise = _nonneg_number(s_noise, "s_noise")
    if not s_tmin <= s_tmax:
        raise ValueError(f"s_tmin must not exceed s_tmax, got s_tmin={s_tmin:g}, s_tmax={s_tmax:g}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    x, ts = _start(model, x_T, schedule, ts, callback)
    alpha, rho = rho_grid(schedule, ts)
    rho_max = float(schedule.noise_to_signal(torch.tensor(schedule.t_max, dtype=F64)))
    N = len(ts) - 1
    y_next, nfe = x / alpha[0], 0
    for i in range(N):
        y_cur = y_next
        # Increase noise temporarily.
        gamma = min(churn / N, math.sqrt(2) - 1) if s_tmin <= rho[i] <= s_tmax else 0.0
        rho_hat = rho[i] + gamma * rho[i]
        if rho_hat > rho_max:
            raise ValueError(f"churn={churn:g} raises rho = {rho[i]:.6g} at ts[{i}] to rho_hat = {rho_hat:.6g}, "
                             f"beyond the schedule's largest sigma/alpha ({rho_max:.6g}) on {schedule!r}: set "
                             f"s_tmax below {rho[i]:.6g} or start the grid lower")
        t_hat = ts[i] if gamma == 0 else t_of_rho(schedule, rho_hat, ts)
        alpha_hat = alpha[i] if gamma == 0 else float(schedule.alpha(t_hat))
        y_hat = y_cur + math.sqrt(rho_hat**2 - rho[i] ** 2) * s_noise * _noise(y_cur, generator)
        # Euler step.
        d_cur = predict_eps(model, alpha_hat * y_hat, t_hat)
        y_next = y_hat + (rho[i + 1] - rho_hat) * d_cur
        nfe += 1
        # Apply 2nd order correction.
        if rho[i + 1] != 0:
            d_prime = predict_eps(model, alpha[i + 1] * y_next, ts[i + 1])
            y_next = y_hat + (rho[i + 1] - rho_hat) * (0.5 * d_cur + 0.5 * d_prime)
            nfe += 1
        if callback is not None:
            callback(_info(i, ts, alpha[i + 1] * y_next, d_cur, y_hat, rho_hat, nfe, t_hat=t_hat))
    return alpha[-1] * y_next


def naive_euler(model, x_T, schedule, ts, callback=None):
    """Euler's method in the schedule's own time t on x, for the probability-flow ODE::

        dx/dt = alpha'_t x0_hat + sigma'_t eps_hat     (= f(t) x + g^2(t) / (2 sigma_t) eps_hat)

    x_{i+1} = x_i + (t_{i+1} - t_i) dx/dt(x_i, t_i): no exponential integrator, no change of variables.
    On VE (alpha = 1, sigma = t) and flow matching (alpha = 1 - t, sigma = t) this is DDIM; on VP
    schedules it is a different, much worse, first-order method. One model call per interval."""
    x, ts = _start(model, x_T, schedule, ts, callback)
    alpha, _ = rho_grid(schedule, ts)
    sigma = grid_scales(schedule, ts)[1].exp().tolist()
    d_alpha, d_sigma = (v.tolist() for v in schedule.d_scales(ts.to(F64)))
    dt = (ts[1:] - ts[:-1]).tolist()
    for i in range(len(ts) - 1):
        eps_hat = predict_eps(model, x, ts[i])
        x0_hat = x0_from_eps(x, eps_hat, alpha[i], sigma[i])
        # Euler step in t.
        x_next = x + dt[i] * (d_alpha[i] * x0_hat + d_sigma[i] * eps_hat)
        if callback is not None:
            callback({"i": i, "t": ts[i + 1], "t_prev": ts[i], "x": x_next, "x0_hat": x0_hat,
                      "eps_hat": eps_hat, "nfe": i + 1})
        x = x_next
    return x


def flow_euler(velocity_model, x_T, schedule, ts, callback=None):
    """Euler's method in t for a velocity model: x_{i+1} = x_i + (t_{i+1} - t_i) u(x_i, t_i).

    ``velocity_model(x, t)`` returns u = dx/dt along the probability-flow ODE, alpha'_t x0 + sigma'_t eps
    (flow matching's regression target; ``forward.prediction_from_eps(..., "velocity")`` converts an eps
    model where alpha > 0). On ``FlowMatching`` this is the flow-matching Euler sampler, which is DDIM on
    the same grid wherever DDIM is defined; unlike DDIM it may start at t = 1 (alpha = 0). The callback
    gets {"i", "t", "t_prev", "x", "velocity", "nfe"}."""
    x, ts = _start(velocity_model, x_T, schedule, ts, callback)
    dt = (ts[1:] - ts[:-1]).tolist()
    for i in range(len(ts) - 1):
        u = predict_eps(velocity_model, x, ts[i])  # the same shape and dtype checks as an eps model
        # Euler step in t.
        x_next = x + dt[i] * u
        if callback is not None:
            callback({"i": i, "t": ts[i + 1], "t_prev": ts[i], "x": x_next, "velocity": u, "nfe": i + 1})
        x = x_next
    return x
