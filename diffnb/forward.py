"""The forward process of any Gaussian path, its posteriors, and the model parameterisations.

Notation::

    q(x_t | x_0)      = N(alpha_t x_0, sigma_t^2 I)
    q(x_t | x_s)      = N(alpha_{t|s} x_s, sigma_{t|s}^2 I),  s < t,
                        alpha_{t|s} = alpha_t / alpha_s,  sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2
                        (= 1 - alpha_{t|s}^2 on a VP path)
    q(x_s | x_t, x_0) = N(mean, var) with
        mean = alpha_{t|s} sigma_s^2 / sigma_t^2 * x_t + alpha_s sigma_{t|s}^2 / sigma_t^2 * x_0
        var  = sigma_{t|s}^2 sigma_s^2 / sigma_t^2
    with lambda = log(alpha/sigma):  sigma_{t|s}^2 / sigma_t^2 = 1 - e^{2 (lambda_t - lambda_s)}

For s = t - 1 on a DDPM schedule these are DDPM's posterior mean (its eq. 7) and beta-tilde.
Any s < t gives the posterior of the respaced chain that DDPM uses to skip steps.

What a network predicts (``prediction``), all functions of (x_t, t) given one of them::

    "eps"       eps
    "x0"        x0 = (x_t - sigma_t eps) / alpha_t
    "score"     grad log q_t(x_t) = -eps / sigma_t
    "v"         v = alpha_t eps - sigma_t x0                 (diffusers' ``v_prediction``)
    "velocity"  u = dx_t/dt = alpha'_t x0 + sigma'_t eps      (flow matching's target; eps - x0 there)

Time arguments are Python numbers, 0-d tensors or tensors of shape ``(batch,)``.
"""

from __future__ import annotations

import math

import torch

from . import _checks
from .schedules import GaussianPath

__all__ = [
    "q_sample",
    "posterior_coefficients",
    "posterior",
    "x0_from_eps",
    "eps_from_x0",
    "score_from_eps",
    "eps_from_score",
    "PREDICTIONS",
    "eps_from_prediction",
    "prediction_from_eps",
    "as_eps_model",
]

PREDICTIONS = ("eps", "x0", "score", "v", "velocity")


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

    Any Gaussian path. Computed from the log scales, with 1 - e^{2 (lambda_t - lambda_s)} by
    ``expm1``, so that short steps (s close to t) keep their digits; s may be the clean end
    (sigma_s = 0: the posterior is the point x_0) and t the pure-noise end of flow matching
    (alpha_t = 0: x_t carries no information about x_0, coef_xt = 0).
    """
    t = _checks.as_float_tensor(t, "t")
    s = _checks.as_float_tensor(s, "s", dtype=t.dtype)
    if not bool((s < t).all()):
        raise ValueError("s must be earlier than t (s < t) for the posterior q(x_s | x_t, x_0)")
    la_t, ls_t, lam_t = schedule.log_scales(t)
    la_s, ls_s, lam_s = schedule.log_scales(s)
    kept = -torch.expm1(2 * (lam_t - lam_s))  # sigma_{t|s}^2 / sigma_t^2, in [0, 1]
    coef_xt = torch.exp(la_t - la_s + 2 * (ls_s - ls_t))  # alpha_{t|s} sigma_s^2 / sigma_t^2
    coef_x0 = torch.exp(la_s) * kept
    var = torch.exp(2 * ls_s) * kept
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


def _tensor(v, name: str) -> torch.Tensor:
    """A floating tensor (type checks only: these conversions run inside samplers' loops)."""
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
    if v.dtype not in _checks.FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {v.dtype}")
    return v


def _like(v, name: str, x: torch.Tensor, x_name: str) -> None:
    """``v`` must broadcast to ``x``'s shape without enlarging it (a (n,) against an (n, 1) would
    silently give an (n, n) result)."""
    shape = v.shape if isinstance(v, torch.Tensor) else ()
    if shape == x.shape:
        return
    # torch.broadcast_shapes costs more than the conversion itself: compare the sizes from the right.
    if len(shape) > x.ndim or any(a != 1 and a != b for a, b in zip(reversed(shape), reversed(x.shape))):
        raise ValueError(f"{name} must have {x_name}'s shape {tuple(x.shape)} or broadcast to it, "
                         f"got shape {tuple(shape)}")


def _scale(v, name: str, x: torch.Tensor, x_name: str, divides: bool) -> None:
    """alpha_t or sigma_t: a number or a floating tensor, finite, > 0 where the formula divides by it
    and >= 0 otherwise. One element: one read; a per-sample tensor: its min and max."""
    if isinstance(v, torch.Tensor):
        if v.dtype not in _checks.FLOAT_DTYPES:
            raise TypeError(f"{name} must be a number or a floating-point tensor, got dtype {v.dtype}")
        if v.ndim:
            _like(v, name, x, x_name)
        lo, hi = (float(v), float(v)) if v.numel() == 1 else (float(v.min()), float(v.max()))
    elif isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a number or a floating-point tensor, got {type(v).__name__}")
    else:
        lo = hi = v
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must be finite, got {lo!r}" + ("" if lo == hi else f" to {hi!r}"))
    if divides and not lo > 0:
        raise ValueError(f"{name} must be positive (the formula divides by it), got {lo!r}")
    if lo < 0:
        raise ValueError(f"{name} must be >= 0 (a scale of a Gaussian path), got {lo!r}")


def _pair(a, a_name, b, b_name):
    a, b = _tensor(a, a_name), _tensor(b, b_name)
    _like(b, b_name, a, a_name)
    return a, b


def x0_from_eps(x_t, eps, alpha, sigma):
    """x0-hat = (x_t - sigma_t eps) / alpha_t.

    ``x_t`` and ``eps`` are floating tensors (``eps`` broadcastable to ``x_t``); ``alpha`` > 0 and
    ``sigma`` >= 0 are finite numbers or tensors (one element, or per sample shaped to broadcast)."""
    x_t, eps = _pair(x_t, "x_t", eps, "eps")
    _scale(alpha, "alpha", x_t, "x_t", divides=True)
    _scale(sigma, "sigma", x_t, "x_t", divides=False)
    return _x0_from_eps(x_t, eps, alpha, sigma)


def eps_from_x0(x_t, x0, alpha, sigma):
    """eps-hat = (x_t - alpha_t x0) / sigma_t (``alpha`` >= 0, ``sigma`` > 0; as ``x0_from_eps``)."""
    x_t, x0 = _pair(x_t, "x_t", x0, "x0")
    _scale(alpha, "alpha", x_t, "x_t", divides=False)
    _scale(sigma, "sigma", x_t, "x_t", divides=True)
    return _eps_from_x0(x_t, x0, alpha, sigma)


def score_from_eps(eps, sigma):
    """grad log q_t(x_t) = -eps / sigma_t (``sigma`` > 0)."""
    eps = _tensor(eps, "eps")
    _scale(sigma, "sigma", eps, "eps", divides=True)
    return -eps / sigma


def eps_from_score(score, sigma):
    """eps = -sigma_t * grad log q_t(x_t) (``sigma`` >= 0)."""
    score = _tensor(score, "score")
    _scale(sigma, "sigma", score, "score", divides=False)
    return -sigma * score


# Unchecked forms for eps_from_prediction / prediction_from_eps, which report a division by
# alpha_t = 0 or sigma_t = 0 themselves, naming the prediction and the times.
def _x0_from_eps(x_t, eps, alpha, sigma):
    return (x_t - sigma * eps) / alpha


def _eps_from_x0(x_t, x0, alpha, sigma):
    return (x_t - alpha * x0) / sigma


def _scales(schedule, t, x):
    """alpha_t, sigma_t (and their t-derivatives) shaped to broadcast against x."""
    t = _time(t, x, "t")
    la, ls, _ = schedule.log_scales(t)
    da, ds = schedule.d_scales(t)
    return tuple(_per_sample(v, x) for v in (la.exp(), ls.exp(), da, ds))


def _defined(out, prediction, direction, t):
    if not math.isfinite(float(out.detach().sum())) and not bool(torch.isfinite(out).all()):
        tv = _checks.as_float_tensor(t, "t")
        raise ValueError(
            f"prediction={prediction!r}: {direction} is not defined at t in [{float(tv.min()):g}, "
            f"{float(tv.max()):g}] (a division by alpha_t = 0 or sigma_t = 0 there); keep t inside the "
            f"range where the conversion exists")
    return out


def _prediction(prediction):
    if not isinstance(prediction, str):
        raise TypeError(f"prediction must be a str, got {type(prediction).__name__}")
    return _checks.one_of(prediction, "prediction", PREDICTIONS)


def eps_from_prediction(out, x_t, schedule, t, prediction: str):
    """eps from a model output ``out`` of kind ``prediction`` at (x_t, t) on ``schedule``::

        x0:       eps = (x_t - alpha x0) / sigma
        score:    eps = -sigma score
        v:        eps = (alpha v + sigma x_t) / (alpha^2 + sigma^2)
        velocity: eps = (alpha u - alpha' x_t) / (alpha sigma' - alpha' sigma)

    Raises ``ValueError`` where the conversion divides by zero (x0 at sigma = 0, velocity at the clean
    end of a VP path, where sigma' is infinite)."""
    _prediction(prediction)
    if prediction == "eps":
        return out
    alpha, sigma, d_alpha, d_sigma = _scales(schedule, t, x_t)
    if prediction == "x0":
        eps = _eps_from_x0(x_t, out, alpha, sigma)
    elif prediction == "score":
        eps = -sigma * out
    elif prediction == "v":
        eps = (alpha * out + sigma * x_t) / (alpha**2 + sigma**2)
    else:
        eps = (alpha * out - d_alpha * x_t) / (alpha * d_sigma - d_alpha * sigma)
    return _defined(eps, prediction, "eps from it", t)


def prediction_from_eps(eps, x_t, schedule, t, prediction: str):
    """The converse of ``eps_from_prediction``: what a ``prediction`` model would output, given eps::

        x0 = (x_t - sigma eps) / alpha,   score = -eps / sigma,
        v = alpha eps - sigma x0,         velocity u = alpha' x0 + sigma' eps
    """
    _prediction(prediction)
    if prediction == "eps":
        return eps
    alpha, sigma, d_alpha, d_sigma = _scales(schedule, t, x_t)
    if prediction == "score":
        return _defined(-eps / sigma, prediction, "the score", t)
    x0 = _defined(_x0_from_eps(x_t, eps, alpha, sigma), prediction, "x0 (and so it)", t)
    if prediction == "x0":
        return x0
    if prediction == "v":
        return alpha * eps - sigma * x0
    return d_alpha * x0 + d_sigma * eps


def as_eps_model(model, schedule, prediction: str = "eps"):
    """Wrap a network that predicts ``prediction`` (see the module notation) into the eps model
    ``model(x, t) -> eps_hat`` that every sampler of diffnb takes."""
    _checks.callable_(model, "model")
    _prediction(prediction)
    if not isinstance(schedule, GaussianPath):
        raise TypeError(f"schedule must be a diffnb.schedules.GaussianPath, got {type(schedule).__name__}")
    if prediction == "eps":
        return model

    def eps_model(x, t):
        return eps_from_prediction(model(x, t), x, schedule, t, prediction)

    eps_model.prediction, eps_model.wrapped = prediction, model
    return eps_model
