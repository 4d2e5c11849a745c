"""Guidance on any eps model, and thresholding of the data prediction.

Notation (the book's; diffusers' ``guidance_scale`` is ``scale``)::

    eps_u(x, t), eps_c(x, t)   unconditional and class-c noise predictions
    grad log p(c | x_t)        the classifier's gradient; for exact models
                               eps_c - eps_u = -sigma_t grad log p(c | x_t)   (Bayes' rule)
    CFG                        eps_u + scale (eps_c - eps_u)        (Ho and Salimans 2022 write
                               (1 + w) eps_c - w eps_u: w = scale - 1)
    classifier guidance        eps - scale sigma_t grad log p(c | x_t)   (Dhariwal and Nichol 2021)

Both are -sigma_t times the score of the tilted density q_t(x) p_t(c | x)^scale at each t, so with exact
models they coincide; scale = 0 is unconditional and scale = 1 conditional sampling.

Thresholding (Saharia et al. 2022) acts on a data prediction x0 of shape (n, ...):

    static     clip x0 to [-max_value, max_value]
    dynamic    per sample, s = max(quantile_percentile(|x0|), max_value); clip x0 to [-s, s], divide by s

``dynamic`` is Imagen's and the official DPM-Solver code's rule (its ``dynamic_thresholding_fn``). With
``max_value = 1`` a sample whose quantile is at most 1 is left unchanged. diffusers' schedulers
instead clamp s into [1, sample_max_value], which with the default sample_max_value = 1 is plain
clipping to [-1, 1], i.e. ``static_threshold``. ``thresholded_eps_model`` is the eps model whose
data prediction is the thresholded one: a data-prediction sampler with ``thresholding`` solves the
probability-flow ODE of that model.
"""

from __future__ import annotations


import torch

from . import _checks

__all__ = ["cfg_model", "classifier_guidance_model", "dynamic_threshold", "static_threshold",
           "threshold", "thresholded_eps_model", "THRESHOLDINGS"]

THRESHOLDINGS = (None, "static", "dynamic")


def cfg_model(model_uncond, model_cond, scale):
    """Classifier-free guidance: ``model(x, t) = eps_u + scale (eps_c - eps_u)``.

    ``model_uncond`` and ``model_cond`` are eps models ``(x, t) -> eps`` (for a network, the same
    network called without and with the condition). Each guided call costs one call of each."""
    _checks.callable_(model_uncond, "model_uncond")
    _checks.callable_(model_cond, "model_cond")
    w = _checks.real_number(scale, "scale")

    def model(x, t):
        eps_u = model_uncond(x, t)
        eps_c = model_cond(x, t)
        return eps_u + w * (eps_c - eps_u)

    model.scale = w
    return model


def classifier_guidance_model(model, log_prob_grad, scale, schedule):
    """Classifier guidance: ``eps(x, t) - scale * sigma_t * log_prob_grad(x, t)``.

    ``log_prob_grad(x, t)`` returns grad_x log p(c | x_t) with x's shape (``t`` of shape (n,));
    ``schedule`` gives sigma_t. With the exact eps and classifier this equals ``cfg_model`` at the
    same scale."""
    _checks.callable_(model, "model")
    _checks.callable_(log_prob_grad, "log_prob_grad")
    _checks.gaussian_path(schedule)
    w = _checks.real_number(scale, "scale")

    def guided(x, t):
        grad = _checks.model_output(log_prob_grad(x, t), x, "log_prob_grad(x, t)")
        sigma = schedule.sigma(t).to(dtype=x.dtype, device=x.device)
        sigma = sigma.reshape(-1, *([1] * (x.ndim - 1))) if sigma.ndim else sigma
        return model(x, t) - w * sigma * grad

    guided.scale = w
    return guided


def _x0(x0, name="x0"):
    x0 = _checks.batch(x0, name)
    return x0


def _max_value(max_value):
    return _checks.positive_number(max_value, "max_value")


def _percentile(percentile) -> float:
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)):
        raise TypeError(f"percentile must be a number in (0, 1], got {type(percentile).__name__}")
    if not (0 < percentile <= 1):
        raise ValueError(f"percentile must be in (0, 1] (a fraction, e.g. 0.995), got {percentile!r}")
    return float(percentile)


def static_threshold(x0, max_value=1.0):
    """Clip ``x0`` to [-max_value, max_value] (Imagen's static thresholding)."""
    x0 = _x0(x0)
    m = _max_value(max_value)
    return x0.clamp(-m, m)


def dynamic_threshold(x0, percentile=0.995, max_value=1.0):
    """Imagen's dynamic thresholding, per sample (the first dimension):
    s = max(quantile_percentile(|x0|), max_value), then x0 clipped to [-s, s] and divided by s."""
    x0 = _x0(x0)
    p, m = _percentile(percentile), _max_value(max_value)
    flat = x0.abs().reshape(x0.shape[0], -1)
    s = torch.quantile(flat.to(torch.float64), p, dim=1).to(x0.dtype).clamp(min=m)
    s = s.reshape(-1, *([1] * (x0.ndim - 1)))
    return torch.maximum(torch.minimum(x0, s), -s) / s


def threshold(x0, thresholding, percentile=0.995, max_value=1.0):
    """``x0`` thresholded by ``thresholding``: None (unchanged), "static" or "dynamic".

    ``x0`` is checked as by the thresholds (a finite floating tensor with a batch dimension first)
    whatever ``thresholding`` is, and so are the options."""
    check_thresholding(thresholding, percentile, max_value)
    if thresholding is None:
        return _x0(x0)
    if thresholding == "static":
        return static_threshold(x0, max_value)
    return dynamic_threshold(x0, percentile, max_value)


def check_thresholding(thresholding, percentile, max_value):
    """Validate the three thresholding options (names in the errors are the samplers' keywords)."""
    if thresholding is not None:
        _checks.choice(thresholding, "thresholding", ("static", "dynamic"))
    _percentile(percentile)
    _max_value(max_value)


def thresholded_eps_model(model, schedule, thresholding="dynamic", percentile=0.995, max_value=1.0):
    """The eps model whose data prediction is thresholded:
    eps = (x - alpha_t T(x0_hat)) / sigma_t with x0_hat = (x - sigma_t eps_hat) / alpha_t.

    A data-prediction sampler with ``thresholding`` is an integrator of this model's probability-flow
    ODE (it uses only T(x0_hat)). Defined where sigma_t > 0."""
    _checks.callable_(model, "model")
    _checks.gaussian_path(schedule)
    if thresholding is None:
        raise ValueError("thresholding must be 'static' or 'dynamic' for a thresholded model, got None")
    check_thresholding(thresholding, percentile, max_value)

    def eps_model(x, t):
        la, ls, _ = schedule.log_scales(t.to(torch.float64))
        shape = (-1, *([1] * (x.ndim - 1)))
        alpha = la.exp().to(x.dtype).reshape(shape)
        sigma = ls.exp().to(x.dtype).reshape(shape)
        if bool((sigma == 0).any()):
            raise ValueError("t must have sigma_t > 0 for a thresholded eps model")
        x0 = (x - sigma * model(x, t)) / alpha
        return (x - alpha * threshold(x0, thresholding, percentile, max_value)) / sigma

    return eps_model
