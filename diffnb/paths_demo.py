"""Chapter 5's helpers: exact velocities, ODE paths in three coordinate systems, their straightness,
the grids of the bake-off, and paired error statistics.

Notation (the book's)::

    lambda = log(alpha/sigma),  rho = sigma/alpha = e^{-lambda},  y = x/alpha
    (rho, y)   EDM's coordinates (VE with sigma(t) = t)
    (t, x)     a schedule's own coordinates: flow matching (alpha = 1 - t, sigma = t) or a VP schedule
    u(x, t)    the probability-flow velocity dx/dt = alpha'_t x0_hat + sigma'_t eps_hat

Flow matching's (t, x) and EDM's (rho, y) are related by t = rho/(1 + rho), x = y/(1 + rho): a
projective map, which sends straight lines to straight lines.
"""

from __future__ import annotations

import math

import torch

from . import _checks
from .dpm_solver import dpm_solver_pp
from .schedules import VE, GaussianPath

__all__ = ["exact_velocity", "dense_paths", "coordinates", "chord_deviation", "grid_to_zero", "matched_grid",
           "per_path_sq_errors", "rms", "paired_ratio", "crossing_nfe"]

F64 = torch.float64


def _mixture(mixture):
    from .toy import GaussianMixture

    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a toy.GaussianMixture, got {type(mixture).__name__}")
    return mixture


def _sq_errors(sq, name: str, ndim: int) -> torch.Tensor:
    """Per-path squared errors: a finite, non-negative floating tensor of ``ndim`` dimensions."""
    sq = _checks.batch(sq, name)
    if sq.ndim != ndim or sq.shape[-1] == 0:
        raise ValueError(f"{name} must be {ndim}-D per-path squared errors, got shape {tuple(sq.shape)}")
    if bool((sq < 0).any()):
        raise ValueError(f"{name} must be squared errors (>= 0), but it holds negative values")
    return sq


def _bootstrap(n_boot, seed, level):
    _checks.positive_int(n_boot, "n_boot", minimum=2)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if isinstance(level, bool) or not isinstance(level, (int, float)):
        raise TypeError(f"level must be a number, got {type(level).__name__}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")


def exact_velocity(mixture, schedule):
    """The exact probability-flow velocity u(x, t) = alpha'_t E[x0 | x_t] + sigma'_t E[eps | x_t] of a
    ``toy.GaussianMixture`` on ``schedule``; finite where alpha = 0 (flow matching's t = 1, where it is
    x - E[x0]), since the mixture's x0_hat is Tweedie's formula, not (x - sigma eps)/alpha."""
    _mixture(mixture)
    _checks.gaussian_path(schedule)

    def velocity(x, t):
        alpha, sigma = schedule.alpha(t), schedule.sigma(t)
        d_alpha, d_sigma = (v.reshape(-1, 1) for v in schedule.d_scales(t))
        return d_alpha * mixture.x0_hat(x, alpha, sigma) + d_sigma * mixture.eps(x, alpha, sigma)

    return velocity


def dense_paths(mixture, y_T, lam, order: int = 3):
    """Exact probability-flow paths in (rho, y) at the log-SNRs ``lam`` (increasing; a fine grid), by
    DPM-Solver++ of ``order`` on ``lam`` itself. Returns y of shape ``(len(lam), batch, dim)``; the
    paths are the same on every schedule (y and rho are)."""
    _mixture(mixture)
    y_T = _checks.batch(y_T, "y_T")
    if not isinstance(lam, torch.Tensor):
        raise TypeError(f"lam must be a 1-D torch.Tensor of log-SNRs, got {type(lam).__name__}")
    if lam.ndim != 1 or lam.numel() < 2:
        raise ValueError(f"lam must be 1-D with at least 2 log-SNRs, got shape {tuple(lam.shape)}")
    if not bool((lam[1:] > lam[:-1]).all()):
        raise ValueError("lam must be strictly increasing (and finite)")
    _checks.positive_int(order, "order")
    ve = VE(sigma_min=math.exp(-float(lam[-1])), sigma_max=math.exp(-float(lam[0])))
    ts = ve.t_of_log_snr(lam)
    ts[0], ts[-1] = ve.t_max, ve.sigma_min
    out = [y_T]
    dpm_solver_pp(mixture.eps_model(ve), y_T, ve, ts, order=order, callback=lambda info: out.append(info["x"]))
    return torch.stack(out)


def coordinates(schedule, lam, y):
    """(tau, z): the paths ``y`` (``(len(lam), batch, dim)``) in a coordinate system: ``"edm"`` gives
    (rho, y); a schedule gives its own (t, x) = (t(lambda), alpha_t y)."""
    if isinstance(schedule, str):
        _checks.one_of(schedule, "schedule", ("edm",))
        return torch.exp(-lam), y
    _checks.gaussian_path(schedule)
    t = schedule.t_of_log_snr(lam)
    return t, schedule.alpha(t)[:, None, None] * y


def chord_deviation(tau, z):
    """Per path: max over tau of |z(tau) - chord(tau)| / |z(tau_end) - z(tau_start)|, the chord being the
    straight line between the end points in the (tau, z) plane. 0 for a path that is a straight line in
    these coordinates (what makes one Euler step exact)."""
    w = ((tau - tau[0]) / (tau[-1] - tau[0]))[:, None, None]
    chord = z[0] + w * (z[-1] - z[0])
    return (z - chord).norm(dim=-1).amax(0) / (z[-1] - z[0]).norm(dim=-1)


def grid_to_zero(schedule, n: int, spacing: str, **kwargs):
    """n intervals ending at sigma = 0: ``schedule.timesteps(n - 1, spacing, ...)`` (which ends at the
    schedule's default t_end, VE's sigma_min) and then t_min, as EDM and diffusers' "zero" final sigma do."""
    _checks.gaussian_path(schedule)
    _checks.positive_int(n, "n", minimum=2)
    ts = schedule.timesteps(n - 1, spacing, **kwargs)
    return torch.cat([ts, ts.new_full((1,), float(schedule.t_min))])


def matched_grid(ts, source: GaussianPath, target: GaussianPath):
    """The times of ``target`` with the log-SNRs of ``ts`` on ``source`` (the same lambda grid); the clean
    end (lambda = inf) maps to ``target.t_min``."""
    _checks.gaussian_path(source, "source")
    _checks.gaussian_path(target, "target")
    if not isinstance(ts, torch.Tensor):
        raise TypeError(f"ts must be a torch.Tensor of times, got {type(ts).__name__}")
    lam = source.log_snr(ts)
    out = target.t_of_log_snr(lam)
    return torch.where(torch.isposinf(lam), torch.full_like(out, float(target.t_min)), out)


def per_path_sq_errors(x, reference):
    """Squared Euclidean error of each path, ``(batch,)``."""
    x, reference = _checks.batch(x, "x"), _checks.batch(reference, "reference")
    if x.shape != reference.shape:
        raise ValueError(f"reference must have x's shape {tuple(x.shape)}, got {tuple(reference.shape)}")
    return (x - reference).reshape(x.shape[0], -1).pow(2).sum(1)


def rms(sq):
    """RMS error from per-path squared errors (the last dimension)."""
    if not isinstance(sq, torch.Tensor):
        raise TypeError(f"sq must be a torch.Tensor of per-path squared errors, got {type(sq).__name__}")
    if sq.dtype not in _checks.FLOAT_DTYPES:
        raise TypeError(f"sq must be a floating-point tensor, got dtype {sq.dtype}")
    if sq.ndim < 1 or sq.shape[-1] == 0:
        raise ValueError(f"sq must have a non-empty last dimension of paths, got shape {tuple(sq.shape)}")
    _checks.finite(sq, "sq")
    return sq.mean(-1).sqrt()


def _boot_index(n, n_boot, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, n, (n_boot, n), generator=g)


def paired_ratio(sq_a, sq_b, n_boot: int = 2000, seed: int = 0, level: float = 0.95):
    """RMS(a) / RMS(b) over the same paths and its paired bootstrap interval (resampling paths).

    Returns ``(ratio, lo, hi)``; "a beats b" is supported where hi < 1."""
    sq_a, sq_b = _sq_errors(sq_a, "sq_a", 1), _sq_errors(sq_b, "sq_b", 1)
    _bootstrap(n_boot, seed, level)
    if sq_a.shape != sq_b.shape or sq_a.ndim != 1:
        raise ValueError("sq_a and sq_b must be 1-D per-path squared errors of the same paths")
    idx = _boot_index(sq_a.numel(), n_boot, seed)
    boot = rms(sq_a[idx]) / rms(sq_b[idx])
    q = torch.quantile(boot, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=boot.dtype))
    return float(rms(sq_a) / rms(sq_b)), float(q[0]), float(q[1])


def _cross(log_n, err_a, err_t):
    """Log-linear crossing of each row of err_a (B, K) below err_t (B,); inf where it never crosses."""
    below = err_a <= err_t[:, None]
    k = below.to(torch.int64).argmax(1)  # the first budget at or below the target
    km1 = (k - 1).clamp(min=0)
    e0, e1 = err_a.gather(1, km1[:, None])[:, 0].log(), err_a.gather(1, k[:, None])[:, 0].log()
    w = torch.where(k > 0, (e0 - err_t.log()) / (e0 - e1), torch.zeros_like(e0))
    n = torch.exp(log_n[km1] + w * (log_n[k] - log_n[km1]))
    return torch.where(below.any(1), n, torch.full_like(n, math.inf))


def crossing_nfe(nfe_a, sq_a, target_sq, n_boot: int = 2000, seed: int = 0, level: float = 0.95):
    """The fewest model calls at which sampler a's RMS error is at most RMS(target), interpolated
    log-linearly between the budgets ``nfe_a`` (increasing), and its paired bootstrap interval.

    ``sq_a``: ``(len(nfe_a), batch)`` per-path squared errors; ``target_sq``: ``(batch,)`` on the same
    paths. Returns ``(nfe, lo, hi)``; inf where a never gets there."""
    if isinstance(nfe_a, (str, bytes)) or not hasattr(nfe_a, "__len__"):
        raise TypeError(f"nfe_a must be a sequence of model-call budgets, got {type(nfe_a).__name__}")
    budgets = [_checks.positive_number(n, "each of nfe_a") for n in
               (nfe_a.tolist() if isinstance(nfe_a, torch.Tensor) else nfe_a)]
    if not budgets or any(b <= a for a, b in zip(budgets, budgets[1:])):
        raise ValueError(f"nfe_a must be a non-empty increasing sequence, got {budgets}")
    sq_a, target_sq = _sq_errors(sq_a, "sq_a", 2), _sq_errors(target_sq, "target_sq", 1)
    if sq_a.shape != (len(budgets), target_sq.shape[0]):
        raise ValueError(f"sq_a must have shape (len(nfe_a), batch) = ({len(budgets)}, {target_sq.shape[0]}), "
                         f"got {tuple(sq_a.shape)}")
    _bootstrap(n_boot, seed, level)
    log_n = torch.as_tensor(nfe_a, dtype=F64).log()
    point = float(_cross(log_n, rms(sq_a)[None], rms(target_sq)[None])[0])
    idx = _boot_index(target_sq.numel(), n_boot, seed)
    boot = _cross(log_n, rms(sq_a[:, idx]).T, rms(target_sq[idx]))
    q = torch.quantile(boot, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=F64))
    return point, float(q[0]), float(q[1])
