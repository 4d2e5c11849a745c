"""How other libraries choose the times of a shortened DDPM/DDIM chain, mapped onto the book's time.

Notation::

    T            number of training steps (DDPM's 1000)
    n            number of sampling steps (model calls)
    index k      a library's 0-based timestep: its ``alphas_cumprod[k]`` = prod_{i <= k} (1 - beta_i),
                 which is the book's alpha_bar at time t = k + 1
    final        where the last step lands, in book time: 0 when the library uses alpha_bar = 1 there
                 (diffusers' ``set_alpha_to_one=True``, the DDIM repository's index -1), 1 when it reuses
                 ``alphas_cumprod[0]`` (``set_alpha_to_one=False``)

The formulas are those of diffusers' ``DDIMScheduler.set_timesteps`` (``timestep_spacing`` =
"linspace", "leading", "trailing") and of the DDIM repository's ``skip_type`` ("uniform", "quad").
They use NumPy, as the libraries do, so that rounding agrees with them.
"""

from __future__ import annotations

import numpy as np
import torch

from . import _checks

__all__ = ["DIFFUSERS_SPACINGS", "DDIM_SKIP_TYPES", "diffusers_timesteps", "diffusers_step_targets",
           "ddim_repo_timesteps", "to_book_times"]

DIFFUSERS_SPACINGS = ("linspace", "leading", "trailing")
DDIM_SKIP_TYPES = ("uniform", "quad")


def _sizes(T, n):
    _checks.positive_int(T, "T")
    _checks.positive_int(n, "n")
    if n > T:
        raise ValueError(f"n must be at most T={T} (one model call per training step at most), got n={n}")


def diffusers_timesteps(T: int, n: int, spacing: str = "leading", steps_offset: int = 0) -> torch.Tensor:
    """diffusers' ``DDIMScheduler`` timesteps: ``n`` decreasing 0-based indices (int64).

    "linspace": round(linspace(0, T - 1, n)); "leading": arange(n) * (T // n) + steps_offset (Stable
    Diffusion uses steps_offset = 1); "trailing": round(arange(T, 0, -T/n)) - 1, which for some
    (T, n) yields n + 1 entries ending at index -1 (float ``arange``): that case raises ``ValueError``.
    """
    _sizes(T, n)
    _checks.one_of(spacing, "spacing", DIFFUSERS_SPACINGS)
    if isinstance(steps_offset, bool) or not isinstance(steps_offset, int) or steps_offset < 0:
        raise ValueError(f"steps_offset must be a non-negative int, got {steps_offset!r}")
    if spacing == "linspace":
        k = np.linspace(0, T - 1, n).round()[::-1]
    elif spacing == "leading":
        k = (np.arange(0, n) * (T // n)).round()[::-1] + steps_offset
    else:
        k = np.round(np.arange(T, 0, -T / n)) - 1
    k = k.astype(np.int64)
    if k.size != n:  # floating-point arange: e.g. T = 1000, n = 61 gives 62 entries ending at index -1
        raise ValueError(f"the trailing formula round(arange(T, 0, -T/n)) - 1 gives {k.size} indices ending at "
                         f"{int(k[-1])} for T={T}, n={n} (float arange overshoots); choose another n")
    if k.max() > T - 1:
        raise ValueError(f"steps_offset={steps_offset} pushes the first index past T - 1 = {T - 1}")
    return torch.from_numpy(k.copy())


def diffusers_step_targets(T: int, n: int, spacing: str = "leading", steps_offset: int = 0) -> torch.Tensor:
    """Where each ``DDIMScheduler.step`` lands: index k - T // n (negative means the final alpha_bar),
    whatever the spacing. It equals the next listed index for "leading", and for "trailing" when n
    divides T, but not for "linspace"."""
    return diffusers_timesteps(T, n, spacing, steps_offset) - T // n


def ddim_repo_timesteps(T: int, n: int, skip_type: str = "uniform") -> torch.Tensor:
    """The DDIM repository's ``seq`` (increasing 0-based indices, int64), walked backwards by its sampler.

    "uniform": range(0, T, T // n) (more than n entries when n does not divide T); "quad":
    int(linspace(0, sqrt(0.8 T), n)^2), which stops at 0.8 T and repeats small indices when n is large.
    """
    _sizes(T, n)
    _checks.one_of(skip_type, "skip_type", DDIM_SKIP_TYPES)
    if skip_type == "uniform":
        k = np.arange(0, T, T // n)
    else:
        k = np.array([int(s) for s in np.linspace(0, np.sqrt(T * 0.8), n) ** 2])
    return torch.from_numpy(k.astype(np.int64))


def to_book_times(indices, final: float = 0.0) -> torch.Tensor:
    """The book's strictly decreasing grid for a library's 0-based ``indices``: t = k + 1 for each listed
    index, then ``final``. A repeated index is a step of length zero (DDIM maps x to itself there), so
    repeats are dropped; so is ``final`` when it equals the last listed time."""
    if not isinstance(indices, torch.Tensor) or indices.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"indices must be an integer torch.Tensor, got {type(indices).__name__}"
                        + (f" of dtype {indices.dtype}" if isinstance(indices, torch.Tensor) else ""))
    if indices.ndim != 1 or indices.numel() == 0:
        raise ValueError(f"indices must be 1-D and non-empty, got shape {tuple(indices.shape)}")
    if int(indices.min()) < 0:
        raise ValueError(f"indices must be non-negative, got min {int(indices.min())}")
    if isinstance(final, bool) or not isinstance(final, (int, float)) or not final >= 0:
        raise ValueError(f"final must be a non-negative number, got {final!r}")
    times = torch.unique(indices.to(torch.float64) + 1).flip(0)  # unique sorts ascending
    if final > float(times[-1]):
        raise ValueError(f"final={final:g} must not be later than the last listed time {float(times[-1]):g}")
    if final < float(times[-1]):
        times = torch.cat([times, torch.tensor([float(final)], dtype=torch.float64)])
    return times
