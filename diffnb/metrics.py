"""Distances between samples and a target distribution, and convergence-order fits.

- ``wasserstein_1d(samples, mixture)``: W1 = integral |F_n(x) - F(x)| dx between the empirical CDF
  of 1-D samples and the exact mixture CDF (no second sample, so no second source of noise).
- ``wasserstein_1d_samples(a, b)``: W1 between two equal-size 1-D sample sets (sorted differences).
- ``sliced_wasserstein(samples, mixture)``: the mean over fixed random directions u of the exact
  1-D W1 between <u, samples> and the projected mixture (a projected Gaussian mixture is a 1-D
  Gaussian mixture).
- ``fit_order(h_or_nfe, errors)``: slope of log(error) against log(step count) by least squares.
"""

from __future__ import annotations

import torch

from . import _checks

__all__ = ["wasserstein_1d", "wasserstein_1d_samples", "sliced_wasserstein", "fit_order", "rms_error"]


def _flat_1d(samples, name="samples"):
    x = _checks.batch(samples, name)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1:
        raise ValueError(f"{name} must have shape (n,) or (n, 1), got {tuple(samples.shape)}")
    return x.to(torch.float64)


def wasserstein_1d(samples, mixture, n_grid: int = 200_001) -> float:
    """W1 distance between 1-D ``samples`` and the exact 1-D ``mixture`` (trapezoid rule on a fine grid)."""
    x = torch.sort(_flat_1d(samples)).values
    if mixture.dim != 1:
        raise ValueError(f"mixture must be 1-D, got dim={mixture.dim}")
    m, s = mixture.means[:, 0], mixture.stds[:, 0]
    lo = min(float(x[0]), float((m - 10 * s).min()))
    hi = max(float(x[-1]), float((m + 10 * s).max()))
    grid = torch.linspace(lo, hi, n_grid, dtype=torch.float64)
    empirical = torch.searchsorted(x, grid, right=True).to(torch.float64) / x.numel()
    return float(torch.trapezoid((empirical - mixture.cdf_1d(grid)).abs(), grid))


def wasserstein_1d_samples(a, b) -> float:
    """W1 distance between two 1-D sample sets of the same size: mean |sort(a) - sort(b)|."""
    a, b = _flat_1d(a, "a"), _flat_1d(b, "b")
    if a.numel() != b.numel():
        raise ValueError(f"a and b must have the same number of samples, got {a.numel()} and {b.numel()}")
    return float((torch.sort(a).values - torch.sort(b).values).abs().mean())


def sliced_wasserstein(samples, mixture, n_directions: int = 64, seed: int = 0, n_grid: int = 20_001) -> float:
    """Mean over ``n_directions`` seeded unit directions of the exact projected W1 distance
    (all directions at once: one sort, one batched CDF evaluation)."""
    x = _checks.batch(samples, "samples")
    if x.ndim != 2 or x.shape[1] != mixture.dim:
        raise ValueError(f"samples must have shape (n, {mixture.dim}), got {tuple(x.shape)}")
    _checks.positive_int(n_directions, "n_directions")
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(n_directions, mixture.dim, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    proj = torch.sort((x.to(torch.float64) @ dirs.T).T.contiguous(), dim=1).values  # (L, n)
    means = dirs @ mixture.means.T  # (L, K): the projected mixture of each direction
    stds = torch.sqrt((mixture.stds**2) @ (dirs**2).T).T  # (L, K)
    lo = torch.minimum(proj[:, 0], (means - 10 * stds).min(1).values)
    hi = torch.maximum(proj[:, -1], (means + 10 * stds).max(1).values)
    u = torch.linspace(0, 1, n_grid, dtype=torch.float64)
    grid = lo[:, None] + (hi - lo)[:, None] * u  # (L, G)
    empirical = torch.searchsorted(proj, grid, right=True).to(torch.float64) / proj.shape[1]
    z = (grid[:, :, None] - means[:, None, :]) / stds[:, None, :]
    exact = (mixture.weights * 0.5 * torch.erfc(-z / 2**0.5)).sum(-1)
    return float(torch.trapezoid((empirical - exact).abs(), grid, dim=1).mean())


def rms_error(x, reference) -> float:
    """Root-mean-square distance between paired samples (per sample Euclidean norm)."""
    x, reference = _checks.batch(x, "x"), _checks.batch(reference, "reference")
    if x.shape != reference.shape:
        raise ValueError(f"reference must have x's shape {tuple(x.shape)}, got {tuple(reference.shape)}")
    diff = (x - reference).reshape(x.shape[0], -1).to(torch.float64)
    return float(diff.pow(2).sum(1).mean().sqrt())


def fit_order(steps, errors) -> float:
    """Least-squares slope p of log(error) = c - p log(steps): the empirical order of convergence."""
    steps = torch.as_tensor(steps, dtype=torch.float64)
    errors = torch.as_tensor(errors, dtype=torch.float64)
    if steps.ndim != 1 or steps.shape != errors.shape or steps.numel() < 2:
        raise ValueError("steps and errors must be 1-D with the same length, at least 2")
    if not bool((steps > 0).all() and (errors > 0).all()) or not bool(torch.isfinite(errors).all()):
        raise ValueError("steps and errors must be positive and finite")
    lx, ly = torch.log(steps), torch.log(errors)
    lx = lx - lx.mean()
    return float(-(lx * (ly - ly.mean())).sum() / (lx * lx).sum())

