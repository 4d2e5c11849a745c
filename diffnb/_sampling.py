"""Small helpers shared by every sampler module (kept apart so that ``samplers`` can re-export the
DPM-Solver family from ``dpm_solver`` without a circular import)."""

from __future__ import annotations

import torch

from . import _checks

__all__ = ["predict_eps", "grid_scales", "_start", "_noise"]

F64 = torch.float64


def predict_eps(model, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Call ``model`` at the scalar time ``t`` for the whole batch and check what it returns."""
    tb = t.to(dtype=x.dtype, device=x.device).expand(x.shape[0])
    return _checks.model_output(model(x, tb), x)


def _start(model, x_T, schedule, ts, callback, x_name="x_T"):
    _checks.callable_(model, "model")
    _checks.gaussian_path(schedule)
    if callback is not None:
        _checks.callable_(callback, "callback")
    x = _checks.batch(x_T, x_name)
    return x, _checks.grid(ts, x, schedule)


def grid_scales(schedule, ts, predict_at=slice(None)):
    """``(log alpha, log sigma, lambda)`` of the grid, float64 (``schedule.log_scales``).

    ``predict_at`` selects the grid times at which a sampler calls the eps model and forms
    x0_hat = (x - sigma eps)/alpha: alpha must not vanish there (flow matching's t = 1, where
    lambda = -inf and x0_hat is 0/0), and a ``ValueError`` naming ``ts`` says so."""
    la, ls, lam = schedule.log_scales(ts.to(F64))
    idx = torch.arange(len(ts), device=ts.device)[predict_at]
    bad = idx[torch.isneginf(la[idx])]
    if bad.numel():
        i = int(bad[0])
        raise ValueError(
            f"ts[{i}] = {float(ts[i]):g} has alpha_t = 0 (log_snr = -inf) on {schedule!r}: an eps model "
            f"cannot predict x0 there (x0_hat = (x - sigma eps)/alpha is 0/0); start the grid at a time with "
            f"alpha_t > 0 (for FlowMatching, t < 1)")
    return la, ls, lam


def _noise(x, generator):
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
