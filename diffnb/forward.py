"""The forward process and its Gaussian posteriors.

Notation::

    q(x_t | x_0)      = N(alpha_t x_0, sigma_t^2 I)
    q(x_t | x_s)      = N(alpha_{t|s} x_s, sigma_{t|s}^2 I),  s < t,
                        alpha_{t|s} = alpha_t / alpha_s,  sigma_{t|s}^2 = 1 - alpha_{t|s}^2
    q(x_s | x_t, x_0) = N(mean, var) with
        mean = alpha_{t|s} sigma_s^2 / sigma_t^2 * x_t + alpha_s sigma_{t|s}^2 / sigma_t^2 * x_0
        var  = sigma_{t|s}^2 sigma_s^2 / sigma_t^2

For s = t - 1 on a DDPM schedule these are DDPM's posterior mean (its eq. 7) and beta-tilde.
Any s < t gives the posterior of the respaced chain that DDPM uses to skip steps.

Time arguments are Python numbers, 0-d tensors or tensors of shape ``(batch,)``.
"""

from __future__ import annotations

import torch

from . import _checks

__all__ = [
    "q_sample",
    "posterior_coefficients",
    "posterior",
    "x0_from_eps",
    "eps_from_x0",
    "score_from_eps",
    "eps_from_score",
]


def _per_sample(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Shape a scalar or a ``(batch,)`` tensor to broadcast against ``x``."""
    v = v.to(device=x.device, dtype=x.dtype)
    if v.ndim == 0:
        return v
    if v.ndim != 1 or v.shape[0] != x.shape[0]:
        raise ValueError(f"a time tensor must be a scalar or have shape ({x.shape[0]},), got {tuple(v.shape)}")
    return v.reshape(-1, *([1] * (x.ndim - 1)))


def _time(t, x, name):
    return _checks.as_float_tensor(t, name, dtype=x.dtype, device=x.device)


def q_sample(schedule, x0, t, generator=None):
    """Draw x_t ~ q(x_t | x_0) = N(alpha_t x_0, sigma_t^2 I). Returns ``(x_t, eps)``."""
    x0 = _checks.batch(x0, "x0")
    t = _time(t, x0, "t")
    alpha, sigma = _per_sample(schedule.alpha(t), x0), _per_sample(schedule.sigma(t), x0)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    return alpha * x0 + sigma * eps, eps


def posterior_coefficients(schedule, t, s):
    """``(coef_xt, coef_x0, var)`` of q(x_s | x_t, x_0) = N(coef_xt x_t + coef_x0 x_0, var I), s < t.

    Computed from log alpha with ``expm1`` so that short steps (s close to t) keep their digits.
    """
    t = _checks.as_float_tensor(t, "t")
    s = _checks.as_float_tensor(s, "s", dtype=t.dtype)
    if not bool((s < t).all()):
        raise ValueError("s must be earlier than t (s < t) for the posterior q(x_s | x_t, x_0)")
    la_t, la_s = schedule.log_alpha(t), schedule.log_alpha(s)
    sigma2_t = -torch.expm1(2 * la_t)
    sigma2_s = -torch.expm1(2 * la_s)
    sigma2_ts = -torch.expm1(2 * (la_t - la_s))  # sigma_{t|s}^2 = 1 - alpha_t^2 / alpha_s^2
    coef_xt = torch.exp(la_t - la_s) * sigma2_s / sigma2_t
    coef_x0 = torch.exp(la_s) * sigma2_ts / sigma2_t
    var = sigma2_ts * sigma2_s / sigma2_t
    return coef_xt, coef_x0, var


def posterior(schedule, x_t, x0, t, s):
    """Mean and variance of q(x_s | x_t, x_0) for s < t; the variance has x's shape broadcastable."""
    x_t = _checks.batch(x_t, "x_t")
    x0 = _checks.batch(x0, "x0")
    if x0.shape != x_t.shape:
        raise ValueError(f"x0 must have x_t's shape {tuple(x_t.shape)}, got {tuple(x0.shape)}")
    if x0.dtype != x_t.dtype:
        raise TypeError(f"x0 must have x_t's dtype {x_t.dtype}, got {x0.dtype}")
    coef_xt, coef_x0, var = posterior_coefficients(schedule, _time(t, x_t, "t"), _time(s, x_t, "s"))
    coef_xt, coef_x0, var = (_per_sample(c, x_t) for c in (coef_xt, coef_x0, var))
    return coef_xt * x_t + coef_x0 * x0, var


def x0_from_eps(x_t, eps, alpha, sigma):
    """x0-hat = (x_t - sigma_t eps) / alpha_t."""
    return (x_t - sigma * eps) / alpha


def eps_from_x0(x_t, x0, alpha, sigma):
    """eps-hat = (x_t - alpha_t x0) / sigma_t."""
    return (x_t - alpha * x0) / sigma


def score_from_eps(eps, sigma):
    """grad log q_t(x_t) = -eps / sigma_t."""
    return -eps / sigma


def eps_from_score(score, sigma):
    """eps = -sigma_t * grad log q_t(x_t)."""
    return -sigma * score
