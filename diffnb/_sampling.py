"""Small helpers shared by every sampler module (kept apart so that ``samplers`` can re-export the
DPM-Solver family from ``dpm_solver`` without a circular import)."""

from __future__ import annotations

import torch

from . import _checks

__all__ = ["predict_eps", "_start", "_noise"]


def predict_eps(model, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Call ``model`` at the scalar time ``t`` for the whole batch and check what it returns."""
    tb = t.to(dtype=x.dtype, device=x.device).expand(x.shape[0])
    return _checks.model_output(model(x, tb), x)


def _start(model, x_T, schedule, ts, callback, x_name="x_T"):
    _checks.callable_(model, "model")
    if callback is not None:
        _checks.callable_(callback, "callback")
    x = _checks.batch(x_T, x_name)
    return x, _checks.grid(ts, x, schedule)


def _noise(x, generator):
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
