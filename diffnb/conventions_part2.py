"""diffusers' schedulers of Part II (Euler, Heun, flow-matching Euler, UniPC, DPM-Solver with Karras sigmas),
their conventions, and the diffnb calls that reproduce them.

Notation (the book's; diffusers' names in quotes)::

    "sigma"      diffusers' ``sigmas``: the book's rho = sigma_t / alpha_t (``noise_to_signal``) for the VP
                 schedulers, flow matching's t itself for ``FlowMatchEulerDiscreteScheduler``
    "sample"     Euler and Heun carry y = x / alpha (EDM's x; ``init_noise_sigma`` scales the start) and
                 give the network ``scale_model_input(y) = y / sqrt(rho^2 + 1) = alpha y``, the book's x;
                 UniPC and DPM-Solver carry the book's x
    "timestep"   what the network is told: a (fractional) training index tau, book time tau + 1 on a VP
                 schedule (``diffnb.conventions``); for flow matching tau = 1000 t

The conventions that decide agreement, one helper each:

* which noise levels: ``karras_sigmas`` (EDM's rho^(1/7)-uniform grid between diffusers' sigma(index 0) and
  sigma(index T - 1)), ``heun_sigmas`` (sigma interpolated *linearly* at fractional indices), and
  ``flow_match_sigmas`` (SD3's shift applied twice at the small end: the grid is shift(linspace(1, shift(1/T)))).
* which timestep the network sees for a noise level: ``sigma_to_index`` (diffusers' ``_sigma_to_t``, log-sigma
  interpolation between integer indices; DPM-Solver rounds it to an integer). ``DiscreteVP`` interpolates
  log alpha instead, so a network called at the book time of a noise level sees a slightly different time:
  ``remapped_model`` makes a diffnb sampler call the network at diffusers' times.
* how a scheduler is driven: ``sigma_loop`` (with ``scale_model_input``; Euler, Heun) and
  ``diffusers.conventions.diffusers_loop`` (UniPC, DPM-Solver).

Nothing here imports diffusers; every function takes its numbers (``alphas_cumprod`` from
``conventions.diffusers_alphas_cumprod``) or a scheduler object, duck-typed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _checks
from ._sampling import predict_eps

__all__ = ["diffusers_sigmas", "sigma_to_index", "karras_sigmas", "heun_sigmas", "flow_match_sigmas",
           "sd3_shift", "book_times", "remapped_model", "sigma_loop", "UNIT_ROUNDOFF", "rounding_tolerance",
           "MULTISTEP_UPDATES", "orders_used"]

F64 = torch.float64
UNIT_ROUNDOFF = {torch.float32: 2.0**-24, torch.float64: 2.0**-53}
# diffusers' DPMSolverMultistepScheduler update methods, by order
MULTISTEP_UPDATES = ("dpm_solver_first_order_update", "multistep_dpm_solver_second_order_update",
                     "multistep_dpm_solver_third_order_update")


def rounding_tolerance(dtype, calls: int, scale: float, per_call: float = 8.0) -> float:
    """The largest difference two runs of one method may show from rounding alone: ``per_call`` roundings
    (unit roundoff u of ``dtype``: 2^-24 for float32, 2^-53 for float64) of a number of size ``scale`` per
    model call, added over ``calls`` calls: ``per_call * calls * u * scale``."""
    if dtype not in UNIT_ROUNDOFF:
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    _checks.positive_int(calls, "calls")
    for name, v in (("scale", scale), ("per_call", per_call)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ValueError(f"{name} must be a positive number, got {v!r}")
    return per_call * calls * UNIT_ROUNDOFF[dtype] * scale


def orders_used(scheduler, run) -> list[int]:
    """The order of each multistep update a diffusers ``DPMSolverMultistepScheduler`` really runs during
    ``run()`` (a function that drives ``scheduler``), recorded by wrapping its own update methods
    (``MULTISTEP_UPDATES``); the methods are restored afterwards."""
    if not callable(run):
        raise TypeError(f"run must be callable, got {type(run).__name__}")
    _checks.has_methods(scheduler, "scheduler", MULTISTEP_UPDATES, "a DPMSolverMultistepScheduler")
    used, saved = [], {}
    own = {name: scheduler.__dict__[name] for name in MULTISTEP_UPDATES if name in vars(scheduler)}
    for order, name in enumerate(MULTISTEP_UPDATES, start=1):
        saved[name] = getattr(scheduler, name)

        def wrapped(*args, _f=saved[name], _q=order, **kwargs):
            used.append(_q)
            return _f(*args, **kwargs)

        setattr(scheduler, name, wrapped)
    try:
        run()
    finally:
        for name in MULTISTEP_UPDATES:
            delattr(scheduler, name)  # the wrapper; the class's method shows again
            if name in own:
                setattr(scheduler, name, own[name])
    return used


def _ac(alphas_cumprod) -> np.ndarray:
    if not isinstance(alphas_cumprod, torch.Tensor) or alphas_cumprod.ndim != 1:
        raise TypeError("alphas_cumprod must be a 1-D torch.Tensor (conventions.diffusers_alphas_cumprod())")
    return alphas_cumprod.detach().cpu().numpy()


def diffusers_sigmas(alphas_cumprod) -> np.ndarray:
    """diffusers' sigma at each training index k: sqrt((1 - alphas_cumprod[k]) / alphas_cumprod[k]), computed as
    its schedulers compute it (in the dtype of ``alphas_cumprod``, float32)."""
    ac = _ac(alphas_cumprod)
    return np.array(((1 - ac) / ac) ** 0.5)


def sigma_to_index(sigma, alphas_cumprod) -> np.ndarray:
    """diffusers' ``_sigma_to_t``: the fractional training index of a noise level, interpolating log sigma
    linearly between integer indices (clipped to [0, T - 1])."""
    log_sigmas = np.log(diffusers_sigmas(alphas_cumprod))
    sigma = np.asarray(sigma)
    log_sigma = np.log(np.maximum(sigma, 1e-10))
    dists = log_sigma - log_sigmas[:, np.newaxis]
    low = np.cumsum((dists >= 0), axis=0).argmax(axis=0).clip(max=log_sigmas.shape[0] - 2)
    w = np.clip((log_sigmas[low] - log_sigma) / (log_sigmas[low] - log_sigmas[low + 1]), 0, 1)
    return ((1 - w) * low + w * (low + 1)).reshape(sigma.shape)


def karras_sigmas(alphas_cumprod, n: int, rho: float = 7.0) -> torch.Tensor:
    """The n Karras sigmas of diffusers' ``use_karras_sigmas=True`` (k-diffusion's ``get_sigmas_karras`` in
    float64 between sigma(index T - 1) and sigma(index 0)), followed by a final 0, stored as float32 as the
    schedulers store them; returned as float64."""
    _checks.positive_int(n, "n", minimum=2)
    sig = diffusers_sigmas(alphas_cumprod)
    ramp = np.linspace(0, 1, n)
    lo, hi = float(sig[0]) ** (1 / rho), float(sig[-1]) ** (1 / rho)
    out = (hi + ramp * (lo - hi)) ** rho
    return torch.from_numpy(np.concatenate([out, [0.0]]).astype(np.float32)).to(F64)


def heun_sigmas(alphas_cumprod, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``HeunDiscreteScheduler``'s default grid: fractional indices tau = linspace(0, T - 1, n) (float32,
    decreasing) and sigma interpolated *linearly* at them (``np.interp``), then a final 0. Returns
    ``(tau, sigmas)`` as float64 (sigmas rounded to float32 first, as stored)."""
    _checks.positive_int(n, "n", minimum=2)
    sig = diffusers_sigmas(alphas_cumprod)
    tau = np.linspace(0, len(sig) - 1, n, dtype=np.float32)[::-1].copy()
    s = np.concatenate([np.interp(tau, np.arange(0, len(sig)), sig), [0.0]]).astype(np.float32)
    return torch.from_numpy(tau.astype(np.float64)), torch.from_numpy(s).to(F64)


def sd3_shift(t, shift: float):
    """SD3's timestep shift t -> shift t / (1 + (shift - 1) t) (``FlowMatching.timesteps(shift=...)``);
    ``t`` a number, NumPy array or tensor of times in [0, 1], ``shift`` a positive number."""
    if isinstance(t, bool) or not isinstance(t, (int, float, np.ndarray, torch.Tensor)):
        raise TypeError(f"t must be a number, a NumPy array or a tensor of times, got {type(t).__name__}")
    shift = _checks.positive_number(shift, "shift")
    return shift * t / (1 + (shift - 1) * t)


def flow_match_sigmas(n: int, shift: float = 1.0, T: int = 1000) -> torch.Tensor:
    """``FlowMatchEulerDiscreteScheduler(shift=shift).set_timesteps(n)``'s sigmas (the book's flow-matching t),
    float32 as stored, returned as float64: the scheduler keeps sigma_min = shift(1/T) from its training
    grid and shifts linspace(1, sigma_min, n) once more, so at the small end the shift acts twice; then 0."""
    _checks.positive_int(n, "n")
    _checks.positive_int(T, "T")
    train = np.linspace(1, T, T, dtype=np.float32)[::-1].copy()
    train_sig = torch.from_numpy(train / T).to(torch.float32)
    train_sig = sd3_shift(train_sig, shift)
    s_max, s_min = float(train_sig[0]), float(train_sig[-1])
    sig = np.linspace(s_max * T, s_min * T, n) / T
    sig = sd3_shift(sig, shift)
    s32 = torch.from_numpy(np.asarray(sig)).to(torch.float32)
    return torch.cat([s32, torch.zeros(1, dtype=torch.float32)]).to(F64)


def book_times(schedule, sigmas, rtol: float = 1e-6) -> torch.Tensor:
    """The book times with noise-to-signal ratios ``sigmas`` on ``schedule`` (sigma = 0 -> ``t_min``).

    A sigma stored in float32 may exceed the schedule's largest one (its float64 value) by an ulp: up to
    ``rtol`` beyond it maps to ``t_max``; more raises ``ValueError``."""
    _checks.gaussian_path(schedule)
    s = _checks.as_float_tensor(sigmas, "sigmas").to(F64)
    lam = torch.where(s > 0, -torch.log(torch.where(s > 0, s, torch.ones_like(s))), torch.full_like(s, math.inf))
    lam_lo = float(schedule.log_snr(torch.tensor(schedule.t_max, dtype=F64)))
    if float(lam.min()) < lam_lo - rtol:
        raise ValueError(f"sigmas must not exceed the schedule's largest noise-to-signal ratio "
                         f"{math.exp(-lam_lo):.6g} (by more than rtol={rtol:g}), got {float(s.max()):.6g}")
    t = schedule.t_of_log_snr(lam.clamp(min=lam_lo))
    return torch.where(s > 0, t, torch.full_like(t, float(schedule.t_min)))


def remapped_model(model, ts, model_times):
    """``model`` called at ``model_times[j]`` whenever a sampler asks for it at ``ts[j]`` (exact match): how a
    diffnb sampler on the grid ``ts`` sees a network that diffusers calls at other times for the same noise
    levels (its interpolated or rounded timesteps)."""
    _checks.callable_(model, "model")
    ts = _checks.as_float_tensor(ts, "ts").to(F64)
    model_times = _checks.as_float_tensor(model_times, "model_times").to(F64)
    if ts.shape != model_times.shape or ts.ndim != 1:
        raise ValueError("ts and model_times must be 1-D of the same length")
    table = {float(a): float(b) for a, b in zip(ts, model_times)}

    def wrapped(x, t):
        key = float(t.reshape(-1)[0])
        if key not in table:
            raise ValueError(f"remapped_model was called at t = {key!r}, which is not one of the grid's times")
        return model(x, torch.full_like(t, table[key]))

    return wrapped


def sigma_loop(scheduler, model, y_T, num_inference_steps: int, book_time=lambda tau: tau + 1.0):
    """Drive a diffusers scheduler as its pipelines do: ``set_timesteps``, then for each timestep tau the
    network on ``scale_model_input(sample, tau)`` (the sample itself where there is none) at book time ``book_time(tau)``, and ``step``. ``model`` is a
    book model ``(x, t) -> output`` (eps for Euler and Heun, the velocity for flow matching); the returned
    sample is in the scheduler's own variable (y for Euler and Heun, x for flow matching)."""
    _checks.callable_(model, "model")
    y = _checks.batch(y_T, "y_T")
    _checks.positive_int(num_inference_steps, "num_inference_steps")
    _checks.has_methods(scheduler, "scheduler", ("set_timesteps", "step"), "a diffusers scheduler")
    scale = getattr(scheduler, "scale_model_input", lambda sample, tau: sample)  # flow matching has none
    scheduler.set_timesteps(num_inference_steps)
    for tau in scheduler.timesteps:
        x_in = scale(y, tau)
        t = torch.tensor(book_time(float(tau)), dtype=y.dtype)
        y = scheduler.step(predict_eps(model, x_in, t), tau, y).prev_sample
    return y
