"""Distances between samples and a target distribution, noise floors, and convergence-order fits.

Notation::

    F_n, F      empirical CDF of n samples, exact CDF of the target mixture
    W1          integral |F_n(x) - F(x)| dx (1-D Wasserstein-1)
    KS          sup_x |F_n(x) - F(x)| (Kolmogorov-Smirnov)
    SW1         mean over unit directions u of W1(<u, samples>, <u, mixture>) (sliced W1)
    FD          |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a^1/2 C_b C_a^1/2)^1/2), the squared Frechet
                (2-Wasserstein) distance of Gaussians with the features' means and covariances (FID's d^2)

- ``wasserstein_1d(samples, mixture)``: W1 between 1-D samples and the exact mixture CDF (no second
  sample, so no second source of noise).
- ``wasserstein_1d_samples(a, b)``: W1 between two equal-size 1-D sample sets (sorted differences).
- ``sliced_wasserstein(samples, mixture)``: SW1 over fixed seeded directions (a projected Gaussian
  mixture is a 1-D Gaussian mixture, so each W1 is exact).
- ``ks_distance(samples, mixture)``: KS between 1-D samples and the mixture.
- ``w1_floor(mixture, n)``: the distribution over seeds of W1 (SW1 for dim > 1) of n exact samples:
  what a perfect sampler scores, as mean, standard deviation and (min, max).
- ``frechet_distance(feats_a, feats_b)`` and ``frechet_gaussian(mu_a, cov_a, mu_b, cov_b)``: FD.
- ``fit_order(h_or_nfe, errors)``: slope of log(error) against log(step count) by least squares.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from . import _checks

__all__ = ["FrechetHalves", "wasserstein_1d", "wasserstein_1d_samples", "sliced_wasserstein", "ks_distance", "w1_floor", "Floor",
           "frechet_distance", "frechet_gaussian", "fit_order", "rms_error"]


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


def ks_distance(samples, mixture) -> float:
    """Kolmogorov-Smirnov distance sup_x |F_n(x) - F(x)| between 1-D samples and a 1-D mixture's CDF.

    For n independent samples from the mixture, P(KS > c / sqrt(n)) is about 2 exp(-2 c^2) for large n
    (c = 1.95 gives 0.001).
    """
    x = _flat_1d(samples)
    _mixture_1d(mixture)
    F = mixture.cdf_1d(torch.sort(x).values)
    n = F.numel()
    i = torch.arange(1, n + 1, dtype=torch.float64, device=F.device)
    return float(torch.maximum(i / n - F, F - (i - 1) / n).max())


def _mixture_1d(mixture):
    if not callable(getattr(mixture, "cdf_1d", None)):
        raise TypeError(f"mixture must be a toy.GaussianMixture, got {type(mixture).__name__}")
    if mixture.dim != 1:
        raise ValueError(f"mixture must be 1-D, got dim={mixture.dim}")


class _FloorFields(NamedTuple):
    mean: float
    std: float
    band: tuple[float, float]
    values: tuple[float, ...]


def _real(v, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v!r}")
    return v


class Floor(_FloorFields):
    """A noise floor over seeds: mean, standard deviation (ddof = 1), (min, max) and every value
    (at least 2). Every field is checked when a Floor is made (finite numbers, std >= 0, min <= max)."""

    __slots__ = ()

    def __new__(cls, mean, std, band, values):
        _real(mean, "mean")
        if _real(std, "std") < 0:
            raise ValueError(f"std must be >= 0, got {std!r}")
        if not isinstance(band, tuple) or len(band) != 2:
            raise TypeError(f"band must be a (min, max) tuple, got {band!r}")
        if _real(band[0], "band[0]") > _real(band[1], "band[1]"):
            raise ValueError(f"band must be (min, max) with min <= max, got {band!r}")
        if not isinstance(values, tuple):
            raise TypeError(f"values must be a tuple of numbers, got {type(values).__name__}")
        if len(values) < 2:
            raise ValueError(f"values must hold at least 2 values (a floor is over seeds), got {len(values)}")
        for i, v in enumerate(values):
            _real(v, f"values[{i}]")
        return super().__new__(cls, mean, std, band, values)


def w1_floor(mixture, n: int, seeds=range(20), n_directions: int = 64, direction_seed: int = 0,
             n_grid: int | None = None) -> Floor:
    """The W1 distance (sliced W1 for dim > 1) between ``n`` exact samples and ``mixture`` itself, over
    ``seeds``: sample ``s`` is ``mixture.sample(n, generator=torch.Generator().manual_seed(s))``.

    No sampler scores systematically below ``mean`` with n samples; a single sampler's distance is
    comparable with the floor only within its band. ``n_directions``, ``direction_seed`` and ``n_grid``
    are those of ``sliced_wasserstein`` / ``wasserstein_1d`` (use the values of the comparison; ``None``
    keeps their default grid)."""
    _checks.positive_int(n, "n")
    seeds = list(seeds)
    if len(seeds) < 2 or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"seeds must hold at least 2 ints, got {seeds!r}")
    values = []
    for seed in seeds:
        x = mixture.sample(n, generator=torch.Generator().manual_seed(seed))
        grid = {} if n_grid is None else {"n_grid": n_grid}
        if mixture.dim == 1:
            values.append(wasserstein_1d(x, mixture, **grid))
        else:
            values.append(sliced_wasserstein(x, mixture, n_directions=n_directions, seed=direction_seed, **grid))
    v = torch.tensor(values, dtype=torch.float64)
    return Floor(float(v.mean()), float(v.std()), (float(v.min()), float(v.max())), tuple(values))


def _features(f, name):
    x = _checks.batch(f, name)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must have shape (n, dim) with n >= 2, got {tuple(f.shape)}")
    return x.to(torch.float64)


def _sym_sqrt(c):
    """The symmetric square root of a symmetric positive semi-definite matrix (eigendecomposition;
    eigenvalues rounded below 0 are set to 0)."""
    w, V = torch.linalg.eigh(c)
    return (V * w.clamp(min=0).sqrt()) @ V.T


def frechet_gaussian(mu_a, cov_a, mu_b, cov_b) -> float:
    """|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a^1/2 C_b C_a^1/2)^1/2): the squared 2-Wasserstein distance
    between N(mu_a, C_a) and N(mu_b, C_b). Only symmetric eigendecompositions, in float64."""
    mu_a, mu_b = (torch.as_tensor(m, dtype=torch.float64).reshape(-1) for m in (mu_a, mu_b))
    cov_a, cov_b = (torch.as_tensor(c, dtype=torch.float64) for c in (cov_a, cov_b))
    d = mu_a.numel()
    for name, v, shape in (("mu_b", mu_b, (d,)), ("cov_a", cov_a, (d, d)), ("cov_b", cov_b, (d, d))):
        if v.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(v.shape)}")
        _checks.finite(v, name)
    for name, c in (("cov_a", cov_a), ("cov_b", cov_b)):
        if not torch.allclose(c, c.T, rtol=1e-10, atol=1e-12 * float(c.abs().max()) + 1e-300):
            raise ValueError(f"{name} must be symmetric")
    root_a = _sym_sqrt(0.5 * (cov_a + cov_a.T))
    middle = root_a @ cov_b @ root_a
    cross = torch.linalg.eigvalsh(0.5 * (middle + middle.T)).clamp(min=0).sqrt().sum()
    return float(((mu_a - mu_b) ** 2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * cross)


def frechet_distance(feats_a, feats_b) -> float:
    """The Frechet distance (FID's d^2) between Gaussians with the sample means and covariances
    (ddof = 1) of two feature sets of shape (n, dim) (or (n,) for dim = 1)."""
    a, b = _features(feats_a, "feats_a"), _features(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feats_a and feats_b must have the same dim, got {a.shape[1]} and {b.shape[1]}")
    return frechet_gaussian(a.mean(0), torch.cov(a.T).reshape(a.shape[1], -1), b.mean(0),
                            torch.cov(b.T).reshape(b.shape[1], -1))


class FrechetHalves:
    """Frechet distances against halves of a data set, with the floor of two halves (the FID recipe
    with an honest floor, beside ``w1_floor``).

    ``feats`` (N, f): the features of the N data points (training images). Split ``k`` (k < ``n_splits``) is a random
    permutation (seed k) cut in two halves A_k, B_k. ``floor(n)`` is FD(first n of A_k, B_k) for every
    k: the FD of n genuine data points, unseen by the reference half, the value no sampler can beat
    systematically. ``score(f)`` is the mean over k of FD(f, B_k) for n sample features ``f``: the
    same sizes, the same reference halves, so the two are directly comparable."""

    def __init__(self, feats, n_splits: int = 20):
        self.feats = _checks.batch(feats, "feats").to(torch.float64)
        _checks.positive_int(n_splits, "n_splits", minimum=2)
        N = self.feats.shape[0]
        self.perms = [torch.randperm(N, generator=torch.Generator().manual_seed(k)) for k in range(n_splits)]
        self.half = N // 2
        self._moments = []
        for p in self.perms:
            b = self.feats[p[self.half:]]
            self._moments.append((b.mean(0), torch.cov(b.T)))

    def _fd(self, f, k):
        mu, cov = self._moments[k]
        return frechet_gaussian(f.mean(0), torch.cov(f.T), mu, cov)

    def floor(self, n: int, labels=None) -> Floor:
        """FD(n images of A_k, B_k) over the splits: mean, sd, (min, max), values. With ``labels``
        (one class per training image) the n images are stratified like class-conditional samples:
        the first n / n_classes of each class in A_k."""
        _checks.positive_int(n, "n", minimum=2)
        if n > self.half:
            raise ValueError(f"n must be at most half the data ({self.half}), got {n}")
        picks = []
        for p in self.perms:
            a = p[:self.half]
            if labels is not None:
                lab = torch.as_tensor(labels)[a]
                classes = lab.unique()
                if n % classes.numel():
                    raise ValueError(f"n must be a multiple of the number of classes ({classes.numel()}), got {n}")
                a = torch.cat([a[lab == c][: n // classes.numel()] for c in classes])
            picks.append(a[:n])
        v = torch.tensor([self._fd(self.feats[a], k) for k, a in enumerate(picks)], dtype=torch.float64)
        return Floor(float(v.mean()), float(v.std()), (float(v.min()), float(v.max())),
                             tuple(v.tolist()))

    def score(self, f, splits=None) -> float:
        """Mean over the splits (all, or the indices in ``splits``) of FD(f, B_k)."""
        f = _checks.batch(f, "f").to(torch.float64)
        ks = range(len(self.perms)) if splits is None else list(splits)
        return sum(self._fd(f, k) for k in ks) / len(ks)


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

