"""The SDE view of a diffusion on any Gaussian path: forward and reverse SDE, the probability-flow ODE.

Notation (Song et al. 2021; alpha_t, sigma_t, lambda_t as in ``diffnb.schedules``)::

    forward SDE       dx = f(t) x dt + g(t) dw
    drift, diffusion  f(t)   = d log alpha_t / dt
                      g^2(t) = d sigma_t^2 / dt - 2 f(t) sigma_t^2     (= -2 f(t) = beta(t) for VP,
                                                                        2t for VE, 2t/(1 - t) for flow matching)
    score             grad log q_t(x) = -eps(x, t) / sigma_t
    reverse SDE       dx = [f(t) x + g^2(t) / sigma_t * eps_hat(x, t)] dt + g(t) dw_bar   (t decreasing)
    PF-ODE            dx/dt = f(t) x + g^2(t) / (2 sigma_t) * eps_hat(x, t)
    in rho = sigma_t / alpha_t = exp(-lambda_t) ("noise_to_signal") and y = x / alpha_t:
                      dy / drho = eps_hat(alpha y, t(rho))     (the "DDIM as an ODE" form)

DDPM's chain x_n = sqrt(1 - beta_n) x_{n-1} + sqrt(beta_n) z is the Euler-Maruyama step of the
forward SDE with beta_n = beta(t) dt, up to O(beta_n^2) per step.

Also here, for the chapter's checks: the exact noised mixture q_t (``noised_mixture``), the
Kolmogorov-Smirnov distance to it (``ks_distance``), the moments of the forward Euler-Maruyama chain
(``euler_maruyama_moments``) and two estimators of a conditional expectation E[eps | x_t]
(``binned_mean``, ``fit_rbf``) used to show what denoising score matching converges to.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.integrate import solve_ivp

from . import _checks
from ._sampling import _noise, _start, predict_eps
from .forward import x0_from_eps
from .metrics import ks_distance  # re-exported: the chapter's checks use it beside the SDE helpers
from .schedules import GaussianPath
from .toy import GaussianMixture

__all__ = [
    "drift_diffusion",
    "forward_sde_euler_maruyama",
    "reverse_sde_euler_maruyama",
    "probability_flow_rhs",
    "reference_ode_solve",
    "euler_maruyama_moments",
    "noised_mixture",
    "ks_distance",
    "binned_mean",
    "fit_rbf",
]


def _schedule(schedule):
    if not isinstance(schedule, GaussianPath):
        raise TypeError(f"schedule must be a diffnb.schedules.GaussianPath, got {type(schedule).__name__}")
    return schedule


def _mixture(mixture, dim=None):
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a toy.GaussianMixture, got {type(mixture).__name__}")
    if dim is not None and mixture.dim != dim:
        raise ValueError(f"mixture must be {dim}-D, got dim={mixture.dim}")
    return mixture


def _scalar_time(t, name, like):
    t = _checks.as_float_tensor(t, name, dtype=like.dtype, device=like.device)
    if t.ndim != 0:
        raise ValueError(f"{name} must be a scalar time (a number or a 0-d tensor), got shape {tuple(t.shape)}")
    return _checks.finite(t, name).to(dtype=like.dtype, device=like.device)


def drift_diffusion(schedule, t):
    """``(f(t), g^2(t))`` of the forward SDE dx = f x dt + g dw with the marginals of ``schedule``::

        f(t) = d log alpha_t / dt,   g^2(t) = d sigma_t^2/dt - 2 f sigma_t^2

    (``GaussianPath.drift_diffusion``). On a VP path d sigma_t^2/dt = -2 f alpha_t^2, so g^2 = -2 f,
    which is beta(t) for the linear schedule. Shapes and dtype follow ``t``. On ``DiscreteVP`` f is
    piecewise constant, f = log(1 - beta_n) / 2 on (n - 1, n] (left-continuous at the integers), so
    g^2 = -log(1 - beta_n).
    """
    return _schedule(schedule).drift_diffusion(t)


def _increasing_grid(ts, like, schedule, name="ts"):
    if not isinstance(ts, torch.Tensor):
        raise TypeError(f"{name} must be a 1-D torch.Tensor of times, got {type(ts).__name__}")
    if ts.ndim != 1 or ts.numel() < 2:
        raise ValueError(f"{name} must be 1-D with at least 2 points, got shape {tuple(ts.shape)}")
    if not bool((ts[1:] > ts[:-1]).all()):
        raise ValueError(f"{name} must be strictly increasing (the forward SDE runs from t = 0 upwards)")
    # Reuse the decreasing-grid check (dtype, finiteness, range) on the flipped grid.
    return _checks.grid(ts.flip(0), like, schedule, name).flip(0)


def _step_coefficients(schedule, t, t_next):
    """f and g^2 at the start ``t`` of the step t -> t_next, taken from inside the step (the one-sided
    limit): the same as at ``t`` for a smooth schedule; for ``DiscreteVP`` at an integer n it is the
    coefficient of the step (n, n + 1] being taken, not of the step that ends at n."""
    return drift_diffusion(schedule, torch.nextafter(t, t_next))


def forward_sde_euler_maruyama(x0, schedule, ts, generator=None, callback=None):
    """Simulate the forward SDE dx = f(t) x dt + g(t) dw by Euler-Maruyama on the increasing grid ``ts``::

        x_{k+1} = x_k + f(t_k) x_k dt + g(t_k) sqrt(dt) z_k,   dt = t_{k+1} - t_k,  z_k ~ N(0, I)

    starting from ``x0`` at ``ts[0]``; returns the state at ``ts[-1]``. The coefficients are taken at
    the start of each step, from inside it (this matters only for ``DiscreteVP``, whose f jumps at
    the integers). ``callback`` receives ``{"i", "t", "t_prev", "x"}`` after each step (x is the
    state at t = ts[i + 1]). ``euler_maruyama_moments`` gives the exact law of this chain.
    """
    x = _checks.batch(x0, "x0")
    _schedule(schedule)
    if callback is not None:
        _checks.callable_(callback, "callback")
    ts = _increasing_grid(ts, x, schedule)
    for i in range(len(ts) - 1):
        t, t_next = ts[i], ts[i + 1]
        dt = t_next - t
        f, g2 = _step_coefficients(schedule, t, t_next)
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
    _schedule(schedule)
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
        x0_hat = x0_from_eps(x, eps_hat, alpha_t, sigma_t)
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
    _schedule(schedule)
    t = _scalar_time(t, "t", x)
    schedule.check_times(t, "t")
    sigma_t = schedule.sigma(t)
    if not float(sigma_t) > 0:
        raise ValueError(f"t must have sigma_t > 0 for the probability-flow right-hand side, got t={float(t):g}")
    f, g2 = drift_diffusion(schedule, t)
    return f * x + g2 / (2 * sigma_t) * predict_eps(model, x, t)



RHO_SCALE = 0.02  # c in rho = c sinh(u), the solver's internal variable (see reference_ode_solve)


def reference_ode_solve(model, x_start, schedule, t_start, t_end, rtol=1e-10, atol=1e-10, return_info=False):
    """Integrate the probability-flow ODE from ``t_start`` to ``t_end`` to high accuracy (either direction).

    Formulation: in rho = sigma_t / alpha_t and y = x / alpha_t the ODE is dy/drho = eps_hat(x, t(rho))
    (it follows from dx/dt = f x + g^2/(2 sigma) eps with g^2 = 2 sigma (d sigma/dt - f sigma) and
    d rho/dt = (d sigma/dt - f sigma) / alpha; 1/alpha_t is the integrating factor of the linear
    part). rho = 0 (t = t_min, sigma = 0) is an ordinary point of this form, so ``t_end`` (or
    ``t_start``) may be the clean-data time as long as ``model`` is finite there (the exact mixture
    eps is; it is 0 at sigma = 0). t(rho) is the schedule's inverse of lambda = -log rho, so the same
    solve serves every Gaussian path; the start must have alpha > 0 (not flow matching's t = 1).

    The integrator is ``scipy.integrate.solve_ivp`` with DOP853 (order 8) on the flattened batch, in
    the variable u = asinh(rho / c), c = ``RHO_SCALE`` = 0.02: dy/du = c cosh(u) eps. The change of
    variable is exact; it only makes the adaptive steps grow geometrically with rho (where the flow
    is nearly linear in rho) instead of being rejected one after another, which saves about a third
    of the model calls at the same accuracy.

    Tolerances are per component: scipy measures the error in an RMS norm over all n components, so
    ``rtol`` and ``atol`` are divided by sqrt(n) before they are passed on (floored at scipy's
    100 * machine epsilon for ``rtol``), which bounds every component's local error estimate by
    atol + rtol |y|, however large the batch. On exact-score Gaussian data the result agrees with the
    closed-form flow to about 1e-11 (``tests/test_sde.py`` asserts 1e-9 in both directions).

    The accuracy is the model's: a network evaluated in float32 (or one whose time embedding has
    high frequencies, so that eps_hat is rough in t) is not smooth at the 1e-10 level, and the
    adaptive steps then shrink until they stall. Evaluate such a model in float64, loosen the
    tolerances to what it can deliver (1e-6 is typical), and check ``info["message"]`` and the
    number of calls with ``return_info=True``.

    ``x_start`` must be float64; the result has its shape, dtype and device. With
    ``return_info=True`` returns ``(x_end, info)`` with info = {"nfev", "n_steps", "message"}.
    """
    _checks.callable_(model, "model")
    x = _checks.batch(x_start, "x_start")
    if x.dtype != torch.float64:
        raise TypeError(f"x_start must be float64 for a reference solve, got {x.dtype}")
    _schedule(schedule)
    rtol, atol = _checks.positive_number(rtol, "rtol"), _checks.positive_number(atol, "atol")
    if not isinstance(return_info, bool):
        raise TypeError(f"return_info must be a bool, got {type(return_info).__name__}")
    t_start, t_end = _scalar_time(t_start, "t_start", x), _scalar_time(t_end, "t_end", x)
    schedule.check_times(t_start, "t_start")
    schedule.check_times(t_end, "t_end")
    rho_start, rho_end = float(schedule.noise_to_signal(t_start)), float(schedule.noise_to_signal(t_end))
    if not (math.isfinite(rho_start) and math.isfinite(rho_end)):
        raise ValueError(f"t_start and t_end must have alpha > 0 (finite sigma/alpha) for a solve in "
                         f"y = x/alpha, got t_start={float(t_start):g}, t_end={float(t_end):g} on {schedule!r}")
    alpha_start = float(schedule.alpha(t_start))
    info = {"nfev": 0, "n_steps": 0, "message": "t_start equals t_end"}
    if rho_start == rho_end:
        return (x.clone(), info) if return_info else x.clone()

    shape, device = x.shape, x.device
    n = x.numel()
    rho_max = float(schedule.noise_to_signal(torch.tensor(schedule.t_max, dtype=torch.float64)))
    c = RHO_SCALE

    def rhs(u, y_flat):
        rho = min(max(c * math.sinh(u), 0.0), rho_max)  # the dense output may probe just outside
        t = schedule.t_of_log_snr(torch.tensor(-math.log(rho) if rho > 0 else math.inf, dtype=torch.float64))
        alpha = schedule.alpha(t)
        y = torch.from_numpy(y_flat).to(device).reshape(shape)
        eps = predict_eps(model, alpha * y, t)
        return (c * math.cosh(u)) * eps.reshape(-1).cpu().numpy()

    y0 = (x / alpha_start).reshape(-1).cpu().numpy().astype(np.float64)
    scale = math.sqrt(n)
    sol = solve_ivp(rhs, (math.asinh(rho_start / c), math.asinh(rho_end / c)), y0, method="DOP853",
                    rtol=max(rtol / scale, 100 * np.finfo(float).eps), atol=atol / scale)
    if not sol.success:
        raise RuntimeError(f"reference_ode_solve: solve_ivp failed: {sol.message}")
    y_end = torch.from_numpy(sol.y[:, -1].copy()).to(device).reshape(shape)
    x_end = y_end * schedule.alpha(t_end)
    info = {"nfev": int(sol.nfev), "n_steps": int(sol.t.size - 1), "message": sol.message}
    return (x_end, info) if return_info else x_end


# --- exact references and estimators for the chapter's checks ------------------------------------

def euler_maruyama_moments(schedule, ts):
    """Mean coefficient and variance of the forward Euler-Maruyama chain on the increasing grid ``ts``::

        c_{k+1} = (1 + f(t_k) dt) c_k,   v_{k+1} = (1 + f(t_k) dt)^2 v_k + g^2(t_k) dt,   c_0 = 1, v_0 = 0

    with the coefficients of ``forward_sde_euler_maruyama``, so that x_k given x_0 is N(c_k x_0, v_k)
    exactly for the simulated chain. Returns ``(c, v)``, float64 tensors with one entry per grid
    point (the exact SDE has c = alpha_t / alpha_{ts[0]} and v = 1 - c^2).
    """
    _schedule(schedule)
    ts = _increasing_grid(ts, torch.zeros(1, dtype=torch.float64), schedule)
    f, g2 = _step_coefficients(schedule, ts[:-1], ts[1:])
    dt = ts[1:] - ts[:-1]
    c, v = [torch.ones((), dtype=torch.float64)], [torch.zeros((), dtype=torch.float64)]
    for a, b in zip(1 + f * dt, g2 * dt):
        c.append(a * c[-1])
        v.append(a * a * v[-1] + b)
    return torch.stack(c), torch.stack(v)


def noised_mixture(mixture, schedule, t) -> GaussianMixture:
    """q_t for data ``mixture``: each component N(m, s^2) becomes N(alpha_t m, alpha_t^2 s^2 + sigma_t^2)."""
    _mixture(mixture)
    _schedule(schedule)
    t = _checks.as_float_tensor(t, "t")
    if t.ndim != 0:
        raise ValueError(f"t must be a scalar time, got shape {tuple(t.shape)}")
    alpha, sigma = schedule.alpha(t).double(), schedule.sigma(t).double()
    return GaussianMixture(mixture.weights, alpha * mixture.means, torch.sqrt(alpha**2 * mixture.stds**2 + sigma**2))



def binned_mean(x, y, edges):
    """Per-bin mean of ``y`` over the samples whose ``x`` falls in [edges[j], edges[j+1]).

    ``x`` and ``y`` are 1-D (or ``(n, 1)``) and paired; returns ``(counts, means)`` (NaN-free: bins
    with no sample get mean 0 and count 0)."""
    x, y = _checks.batch(x, "x").reshape(-1), _checks.batch(y, "y").reshape(-1)
    if x.numel() != y.numel():
        raise ValueError(f"y must pair with x: got {y.numel()} values for {x.numel()}")
    edges = _checks.as_float_tensor(edges, "edges")
    if edges.ndim != 1 or edges.numel() < 2 or not bool((edges[1:] > edges[:-1]).all()):
        raise ValueError("edges must be a strictly increasing 1-D tensor of at least 2 points")
    j = torch.bucketize(x, edges.to(x), right=True) - 1
    keep = (j >= 0) & (j < edges.numel() - 1)
    nb = edges.numel() - 1
    counts = torch.zeros(nb, dtype=y.dtype).index_add_(0, j[keep], torch.ones_like(y[keep]))
    sums = torch.zeros(nb, dtype=y.dtype).index_add_(0, j[keep], y[keep])
    return counts, sums / counts.clamp(min=1)


def fit_rbf(x, y, centers, width, ridge: float = 1e-8):
    """Least-squares fit of y ~ sum_j w_j exp(-(x - c_j)^2 / (2 width^2)) + w_0 (1-D ``x``, ``y``).

    Minimising the mean square error over a rich family approximates the conditional expectation
    E[y | x], which is what the denoising score-matching loss converges to. ``ridge`` is a small
    Tikhonov term for conditioning. Returns ``predict(x_new)``.
    """
    x, y = _checks.batch(x, "x").reshape(-1, 1).double(), _checks.batch(y, "y").reshape(-1, 1).double()
    if x.shape != y.shape:
        raise ValueError(f"y must pair with x: got {y.shape[0]} values for {x.shape[0]}")
    centers = _checks.as_float_tensor(centers, "centers").double().reshape(1, -1)
    width = _checks.positive_number(width, "width")
    if isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or not (math.isfinite(ridge) and ridge >= 0):
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")

    def features(u):
        return torch.cat([torch.ones_like(u), torch.exp(-((u - centers) ** 2) / (2 * width**2))], 1)

    phi = features(x)
    gram = phi.T @ phi / x.shape[0] + ridge * torch.eye(phi.shape[1], dtype=torch.float64)
    w = torch.linalg.solve(gram, phi.T @ y / x.shape[0])

    def predict(u):
        u = _checks.batch(u, "x_new")
        return (features(u.reshape(-1, 1).double()) @ w).reshape(u.shape).to(u.dtype)

    return predict
