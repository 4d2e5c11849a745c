"""Helpers for Chapter 6 (guidance): exact guided models of labelled mixtures, the tilted data law
p_s(x0 | c) and the distances of sampled laws to it, paired bake-offs with error bars over paths,
path constants of the guided ODE, and bounded data for thresholding.

Notation (the book's)::

    s                       the guidance scale (diffusers' guidance_scale); s = 1 is conditional
    p_s(x0 | c)             proportional to p(x0) p(c | x0)^s, the tilted data law (t = 0)
    eps_u, eps_c, grad      exact unconditional and class-c eps, grad_x log p(c | x_t)
    Q(u)                    a 1-D quantile function; W1 = int_0^1 |Q_a(u) - Q_b(u)| du
    L_x0, L_eps             max along paths of |d x0_hat / d lambda| and |d eps_hat / d lambda|
    kappa                   max along paths of alpha_t ||d x0_hat / d x||_2, the Lipschitz constant in z
                            of the data-prediction ODE dz/dlambda = e^lambda x0_hat(sigma z)
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import torch

from . import _checks, bakeoff, sde
from .dpm_solver import dpm_solver_pp, sde_dpm_solver_pp
from .guidance import cfg_model
from .metrics import Floor
from .toy import GaussianMixture

__all__ = ["overlapping_mixture_1d", "rescale_into", "exact_guidance", "guided_model", "log_tilted",
           "Tilted1D", "tilted_1d", "sample_tilted", "normal_quantiles", "ode_quantiles_1d",
           "sde_endpoint", "sliced_w1", "floor", "paired_bake", "path_constants", "noised_score_1d",
           "split_scores", "laws_1d", "laws_nd", "floor_1d", "floor_nd", "ode_density_1d",
           "mixture_quantiles", "compact_table"]

F64 = torch.float64


def _mixture(mix, name: str = "mix", one_d: bool = False) -> GaussianMixture:
    if not isinstance(mix, GaussianMixture):
        raise TypeError(f"{name} must be a toy.GaussianMixture, got {type(mix).__name__}")
    if one_d and mix.dim != 1:
        raise ValueError(f"{name} must be 1-D, got dim={mix.dim}")
    return mix


def _tilted(p, name: str = "p_s") -> "Tilted1D":
    if not isinstance(p, Tilted1D):
        raise TypeError(f"{name} must be a Tilted1D (from tilted_1d), got {type(p).__name__}")
    return p


def overlapping_mixture_1d() -> GaussianMixture:
    """Two classes that overlap: class 0 one Gaussian on the left, class 1 two modes on the right."""
    return GaussianMixture([0.5, 0.3, 0.2], [-0.35, 0.1, 0.55], [0.15, 0.12, 0.08], labels=[0, 1, 1])


def rescale_into(mix: GaussianMixture, bound: float = 1.0, n_std: float = 3.0) -> GaussianMixture:
    """The mixture mapped affinely, coordinate by coordinate, so that every component's mean +- n_std stds
    fills [-bound, bound]: data with (practically) bounded support, like images in [-1, 1]."""
    _mixture(mix)
    bound = _checks.positive_number(bound, "bound")
    n_std = _checks.positive_number(n_std, "n_std")
    lo = (mix.means - n_std * mix.stds).min(0).values
    hi = (mix.means + n_std * mix.stds).max(0).values
    a = 2 * bound / (hi - lo)
    means = (mix.means - (lo + hi) / 2) * a
    return GaussianMixture(mix.weights, means, mix.stds * a, mix.labels)


def _time_collapsed(fn, schedule):
    """``fn(x, alpha, sigma)`` as ``(x, t)``, one (alpha, sigma) when the batch shares its time."""
    def model(x, t):
        t0 = t.reshape(-1)[:1]
        if t.numel() == 1 or torch.equal(t, t0.expand_as(t)):
            t = t0
        return fn(x, schedule.alpha(t), schedule.sigma(t))
    return model


def exact_guidance(mix: GaussianMixture, schedule, c: int) -> SimpleNamespace:
    """The exact ``eps_u``, ``eps_c`` (eps models) and ``grad`` (grad_x log p(c | x_t) as (x, t)) of a
    labelled mixture, and ``cond`` = ``mix.conditional(c)``."""
    _mixture(mix)
    _checks.gaussian_path(schedule)
    cond = mix.conditional(c)
    grad = _time_collapsed(lambda x, a, s: mix.class_log_prob_grad(x, a, s, c), schedule)
    return SimpleNamespace(eps_u=mix.eps_model(schedule), eps_c=cond.eps_model(schedule), grad=grad, cond=cond)


def guided_model(mix: GaussianMixture, schedule, c: int, scale):
    """The exact CFG eps model eps_u + scale (eps_c - eps_u) of class c."""
    g = exact_guidance(mix, schedule, c)
    return cfg_model(g.eps_u, g.eps_c, scale)


def log_tilted(mix: GaussianMixture, c: int, scale, x) -> torch.Tensor:
    """log p(x) + scale log p(c | x) at t = 0 (unnormalised log p_s(x | c)), shape (n,)."""
    _mixture(mix)
    mix.conditional(c)  # checks c
    _checks.real_number(scale, "scale")
    _checks.batch(x, "x")
    return mix.log_prob(x) + scale * mix.class_posterior(x, 1.0, 0.0, log=True)[:, c]


class Tilted1D:
    """p_s(x0 | c) of a 1-D mixture on a grid: ``pdf``, ``cdf`` (trapezoid rule), quantiles, samples,
    and W1 distances to it."""

    def __init__(self, mix, c, scale, lo, hi, n_grid):
        _mixture(mix, one_d=True)
        _checks.real_number(scale, "scale")
        if not _checks.real_number(lo, "lo") < _checks.real_number(hi, "hi"):
            raise ValueError(f"lo must be below hi, got lo={lo!r}, hi={hi!r}")
        _checks.positive_int(n_grid, "n_grid", minimum=2)
        self.scale = float(scale)
        self.grid = torch.linspace(lo, hi, n_grid, dtype=F64)
        lp = log_tilted(mix, c, scale, self.grid[:, None])
        p = (lp - lp.max()).exp()
        cdf = torch.cat([torch.zeros(1, dtype=F64), torch.cumulative_trapezoid(p, self.grid)])
        self.pdf, self.cdf = p / cdf[-1], cdf / cdf[-1]

    def quantile(self, u):
        """Q(u) by linear interpolation of the CDF."""
        u = torch.as_tensor(u, dtype=F64)
        return torch.from_numpy(np.interp(u.numpy(), self.cdf.numpy(), self.grid.numpy()))

    def sample(self, n, generator=None):
        """n samples (n, 1) by inversion of the CDF."""
        return self.quantile(torch.rand(n, generator=generator, dtype=F64))[:, None]

    def w1(self, samples) -> float:
        """W1 between samples and this law: int |F_n - F| dx on the grid."""
        x = samples.reshape(-1).to(F64).sort().values
        emp = torch.searchsorted(x, self.grid, right=True).to(F64) / x.numel()
        return float(torch.trapezoid((emp - self.cdf).abs(), self.grid))

    def w1_quantiles(self, q, u) -> float:
        """W1 between a law given by its quantiles q at the midpoints u = (i - 1/2)/n and this law."""
        return float((q.reshape(-1) - self.quantile(u)).abs().mean())

    def mass(self, a, b) -> float:
        """P(a < x0 < b) under this law."""
        F = np.interp([a, b], self.grid.numpy(), self.cdf.numpy())
        return float(F[1] - F[0])


def tilted_1d(mix, c, scale, lo=-1.5, hi=1.5, n_grid=150_001) -> Tilted1D:
    return Tilted1D(mix, c, scale, lo, hi, n_grid)


def sample_tilted(mix: GaussianMixture, c: int, scale, n: int, generator=None) -> torch.Tensor:
    """n exact samples of p_s(x0 | c) in any dimension, by rejection: for s >= 1 from p(x0 | c) with
    acceptance p(c | x0)^(s - 1), for 0 <= s < 1 from p(x0) with acceptance p(c | x0)^s
    (p(x0) p(c | x0)^s is proportional to p(x0 | c) p(c | x0)^(s - 1))."""
    _mixture(mix)
    _checks.real_number(scale, "scale")
    _checks.positive_int(n, "n")
    if not scale >= 0:
        raise ValueError(f"scale must be >= 0 for rejection sampling, got {scale}")
    base, power = (mix.conditional(c), scale - 1) if scale >= 1 else (mix, scale)
    out, have = [], 0
    while have < n:
        x = base.sample(max(2 * (n - have), 256), generator=generator)
        logp = mix.class_posterior(x, 1.0, 0.0, log=True)[:, c]
        u = torch.rand(x.shape[0], generator=generator, dtype=F64)
        keep = x[torch.log(u) < power * logp]
        out.append(keep)
        have += keep.shape[0]
    return torch.cat(out)[:n]


def normal_quantiles(n: int):
    """(u, x_T): the midpoints u_i = (i - 1/2)/n and the standard normal quantiles at them, (n, 1)."""
    _checks.positive_int(n, "n")
    u = (torch.arange(n, dtype=F64) + 0.5) / n
    return u, (math.sqrt(2) * torch.erfinv(2 * u - 1))[:, None]


def ode_quantiles_1d(model, schedule, n: int = 500, t_end: float = 0.0):
    """(u, Q): quantiles of the 1-D probability-flow ODE's endpoint law from x_T ~ N(0, 1). In 1-D the flow
    map is increasing (paths cannot cross), so the solution from the u-quantile of N(0, 1) is the
    u-quantile of the endpoint law: no Monte Carlo error, only the solver's."""
    _checks.callable_(model, "model")
    _checks.gaussian_path(schedule)
    _checks.real_number(t_end, "t_end")
    u, x_T = normal_quantiles(n)
    x0 = sde.reference_ode_solve(model, x_T, schedule, schedule.t_max, t_end)
    return u, x0[:, 0]


def sde_endpoint(model, schedule, x_T, steps: int = 400, generator=None, t_small: float = 1e-4):
    """The guided reverse SDE's endpoint: SDE-DPM-Solver++(2M) on a lambda-uniform grid of ``steps``
    intervals from t_max to ``t_small``, then a last step to t = 0."""
    _checks.callable_(model, "model")
    _checks.gaussian_path(schedule)
    _checks.batch(x_T, "x_T")
    _checks.positive_int(steps, "steps")
    _checks.positive_number(t_small, "t_small")
    ts = torch.cat([schedule.timesteps(steps, "logsnr", t_end=t_small), torch.zeros(1, dtype=F64)])
    return sde_dpm_solver_pp(model, x_T, schedule, ts, order=2, generator=generator)


def sliced_w1(a, b, n_directions: int = 64, seed: int = 0) -> float:
    """Sliced W1 between two equal-size sample sets: mean over seeded unit directions of the mean |sorted
    differences| of the projections."""
    a, b = _checks.batch(a, "a"), _checks.batch(b, "b")
    _checks.positive_int(n_directions, "n_directions")
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"a and b must have the same shape (n, dim), got {tuple(a.shape)} and {tuple(b.shape)}")
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(n_directions, a.shape[1], generator=g, dtype=F64)
    u = u / u.norm(dim=1, keepdim=True)
    pa, pb = (torch.sort(v.to(F64) @ u.T, dim=0).values for v in (a, b))
    return float((pa - pb).abs().mean())


def floor(values) -> Floor:
    """A ``metrics.Floor`` (mean, sd, (min, max), values) of a list of distances over seeds."""
    if values is None or isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"values must be an iterable of numbers, got {type(values).__name__}")
    v = torch.tensor(list(values), dtype=F64)
    if v.numel() < 2:
        raise ValueError(f"values must hold at least 2 distances, got {v.numel()}")
    _checks.finite(v, "values")
    return Floor(float(v.mean()), float(v.std()), (float(v.min()), float(v.max())), tuple(v.tolist()))


def split_scores(sq, batches: int):
    """RMS over each of ``batches`` disjoint groups of per-path squared errors (paths split in order)."""
    sq = _checks.batch(sq, "sq")
    _checks.positive_int(batches, "batches")
    if batches > sq.shape[0]:
        raise ValueError(f"batches must be at most the number of paths ({sq.shape[0]}), got {batches}")
    return tuple(float(part.mean().sqrt()) for part in torch.chunk(sq, batches))


def paired_bake(names, model, x_T, schedule, budgets, reference, batches: int = 5, **timesteps_kwargs):
    """``bakeoff.bake`` of deterministic entries, scored by the paired error to ``reference`` (the reference ODE
    solution from the same x_T), with an uncertainty over starting points: each cell's scores are the RMS errors
    over ``batches`` disjoint groups of paths, so ``Cell.mean`` / ``Cell.sem`` / ``bakeoff.beats`` say how much
    the ranking depends on which x_T were drawn. ``bake`` scores each deterministic run once, in the order of
    its jobs (names, then budgets); the per-path errors are recorded in that order."""
    recorded = []

    def score(x):
        sq = ((x - reference) ** 2).reshape(x.shape[0], -1).sum(1)
        recorded.append(sq)
        return float(sq.mean().sqrt())

    rows = bakeoff.bake(names, model, x_T, schedule, budgets, score, **timesteps_kwargs)
    jobs = [(name, b) for name in names for b in budgets]
    if len(recorded) != len(jobs):
        raise ValueError("paired_bake takes deterministic entries only (one run per cell)")
    out = {}
    for (name, b), sq in zip(jobs, recorded):
        cell = rows[name][b]
        out.setdefault(name, {})[b] = bakeoff.Cell(name, b, cell.nfe, split_scores(sq, batches))
    return out


def _guided_x0_eps(g, scale, x, alpha, sigma):
    """Guided (x0_hat, eps_hat) at one (alpha, sigma) for the whole batch."""
    eu = g.mix.eps(x, alpha, sigma)
    ec = g.cond.eps(x, alpha, sigma)
    eps = eu + scale * (ec - eu)
    return (x - sigma * eps) / alpha, eps


def path_constants(mix: GaussianMixture, schedule, c: int, scale, x_T, steps: int = 300, t_end: float = 1.0):
    """Constants of the guided ODE along its paths from ``x_T``, on a fine lambda-uniform DPM-Solver++(2M) run
    (``steps`` intervals to ``t_end``). Returns a namespace with ``lam`` (steps + 1,), the per-grid-point
    maxima over paths of |d x0_hat/d lambda|, |d eps_hat/d lambda| (finite differences between grid points,
    at the midpoints ``lam_mid``) and of alpha ||d x0_hat/d x||_2 (autograd), and their overall maxima
    ``L_x0``, ``L_eps``, ``kappa``, with ``kappa_signed``: the most negative eigenvalue of the symmetric part
    of alpha d x0_hat/d x (contraction where negative)."""
    _mixture(mix)
    _checks.gaussian_path(schedule)
    _checks.real_number(scale, "scale")
    x_T = _checks.batch(x_T, "x_T")
    _checks.positive_int(steps, "steps")
    _checks.positive_number(t_end, "t_end")
    g = SimpleNamespace(mix=mix, cond=mix.conditional(c))
    model = cfg_model(mix.eps_model(schedule), g.cond.eps_model(schedule), scale)
    ts = schedule.timesteps(steps, "logsnr", t_end=t_end)
    xs = [x_T]
    dpm_solver_pp(model, x_T, schedule, ts, order=2, callback=lambda d: xs.append(d["x"]))
    lam = schedule.log_snr(ts)
    x0s, epss, kap, kap_neg = [], [], [], []
    for x, t in zip(xs, ts):
        a, s = float(schedule.alpha(t)), float(schedule.sigma(t))
        xr = x.detach().clone().requires_grad_(True)
        x0, eps = _guided_x0_eps(g, scale, xr, a, s)
        J = torch.stack([torch.autograd.grad(x0[:, j].sum(), xr, retain_graph=j + 1 < x.shape[1])[0]
                         for j in range(x.shape[1])], 1)  # (n, out, in)
        kap.append(a * torch.linalg.matrix_norm(J, ord=2).max())
        kap_neg.append(a * torch.linalg.eigvalsh((J + J.transpose(1, 2)) / 2)[:, 0].min())
        x0s.append(x0.detach())
        epss.append(eps.detach())
    dl = (lam[1:] - lam[:-1])[:, None]
    d_x0 = (torch.stack(x0s).diff(dim=0).norm(dim=-1) / dl).max(1).values
    d_eps = (torch.stack(epss).diff(dim=0).norm(dim=-1) / dl).max(1).values
    kap, kap_neg = torch.stack(kap), torch.stack(kap_neg)
    return SimpleNamespace(lam=lam, lam_mid=(lam[1:] + lam[:-1]) / 2, d_x0=d_x0, d_eps=d_eps, kappa_path=kap,
                           L_x0=float(d_x0.max()), L_eps=float(d_eps.max()), kappa=float(kap.max()),
                           kappa_signed=float(kap_neg.min()))


def noised_score_1d(tilted: Tilted1D, alpha: float, sigma: float, x) -> torch.Tensor:
    """The score of p_s(x0 | c) noised to (alpha, sigma), at points x (n,), by quadrature over the grid:
    E[(alpha x0 - x) / sigma^2 | x_t = x] under the posterior p_s(x0) N(x; alpha x0, sigma^2)."""
    _tilted(tilted, "tilted")
    _checks.real_number(alpha, "alpha")
    if not _checks.real_number(sigma, "sigma") > 0:
        raise ValueError(f"sigma must be positive (the score divides by sigma^2), got {sigma!r}")
    if x is None or isinstance(x, (str, bytes, bool)):
        raise TypeError(f"x must be points (a tensor, a sequence of numbers or a number), got {type(x).__name__}")
    if not bool(torch.isfinite(torch.as_tensor(x, dtype=F64)).all()):
        raise ValueError("x must be finite, but it contains NaN or inf")
    x = torch.as_tensor(x, dtype=F64).reshape(-1, 1)
    g = tilted.grid[None, :]
    logw = torch.log(tilted.pdf.clamp_min(1e-300))[None, :] - (x - alpha * g) ** 2 / (2 * sigma**2)
    w = torch.softmax(logw, 1)
    return ((alpha * g - x) * w).sum(1) / sigma**2


def laws_1d(mix, c, scale, schedule, n_ode: int = 500, n_sde: int = 1000, seeds: int = 4, steps: int = 400,
            seed: int = 0) -> SimpleNamespace:
    """Distances to p_s(x0 | c) of a 1-D mixture: ``ode`` the exact W1 of the guided ODE's endpoint law (from
    ``n_ode`` quantiles), ``sde`` the W1 of ``seeds`` independent sets of ``n_sde`` guided-SDE samples (one
    batch, split), with ``p_s``, the quantiles ``u``, ``q`` and the samples ``x_sde``."""
    _mixture(mix, one_d=True)
    _checks.gaussian_path(schedule)
    for v, name in ((n_ode, "n_ode"), (n_sde, "n_sde"), (seeds, "seeds"), (steps, "steps")):
        _checks.positive_int(v, name)
    model = guided_model(mix, schedule, c, scale)
    p_s = tilted_1d(mix, c, scale)
    u, q = ode_quantiles_1d(model, schedule, n=n_ode)
    g = torch.Generator().manual_seed(seed)
    x_sde = sde_endpoint(model, schedule, torch.randn(n_sde * seeds, 1, generator=g, dtype=F64), steps, g)
    return SimpleNamespace(ode=p_s.w1_quantiles(q, u), sde=tuple(p_s.w1(x) for x in torch.chunk(x_sde, seeds)),
                           p_s=p_s, u=u, q=q, x_sde=x_sde)


def floor_1d(p_s: Tilted1D, n: int, seeds=range(100, 120)) -> Floor:
    """W1 of n exact samples of p_s against p_s, over seeds."""
    _tilted(p_s)
    _checks.positive_int(n, "n")
    return floor(p_s.w1(p_s.sample(n, torch.Generator().manual_seed(j))) for j in seeds)


def laws_nd(mix, c, scale, schedule, n: int = 1000, seeds: int = 4, ode_sets: int = 2, steps: int = 400,
            seed: int = 0) -> SimpleNamespace:
    """Sliced W1 to p_s(x0 | c) in any dimension: ``ode_sets`` sets of n guided-ODE endpoints (reference solves)
    and ``seeds`` sets of n guided-SDE samples, each against its own set of n exact samples of p_s."""
    _mixture(mix)
    _checks.gaussian_path(schedule)
    for v, name in ((n, "n"), (seeds, "seeds"), (ode_sets, "ode_sets"), (steps, "steps")):
        _checks.positive_int(v, name)
    model = guided_model(mix, schedule, c, scale)
    g = torch.Generator().manual_seed(seed)
    x_T = torch.randn(n * seeds, mix.dim, generator=g, dtype=F64)
    x_ode = sde.reference_ode_solve(model, x_T[:n * ode_sets], schedule, schedule.t_max, 0.0, rtol=1e-8, atol=1e-8)
    x_sde = sde_endpoint(model, schedule, x_T, steps, g)
    ref = torch.chunk(sample_tilted(mix, c, scale, n * (seeds + ode_sets), torch.Generator().manual_seed(seed + 50)),
                      seeds + ode_sets)
    ode = tuple(sliced_w1(x, r) for x, r in zip(torch.chunk(x_ode, ode_sets), ref[seeds:]))
    return SimpleNamespace(ode=ode, sde=tuple(sliced_w1(x, r) for x, r in zip(torch.chunk(x_sde, seeds), ref)),
                           x_ode=x_ode, x_sde=x_sde, ref=ref[0])


def floor_nd(mix, c, scale, n: int, seeds=range(20)) -> Floor:
    """Sliced W1 between two independent sets of n exact samples of p_s, over seeds."""
    _mixture(mix)
    _checks.positive_int(n, "n")
    def one(j):
        a, b = (sample_tilted(mix, c, scale, n, torch.Generator().manual_seed(200 + 2 * j + i)) for i in (0, 1))
        return sliced_w1(a, b)
    return floor(one(j) for j in seeds)


def ode_density_1d(u, q):
    """(x, density) of a 1-D law from its quantiles q at the points u: du/dQ at the midpoints."""
    return (q[1:] + q[:-1]) / 2, (u[1:] - u[:-1]) / (q[1:] - q[:-1])


def mixture_quantiles(mix: GaussianMixture, u, half_width: float = 10.0, n_grid: int = 400_001) -> torch.Tensor:
    """Quantiles of a 1-D mixture at the levels u, by interpolating its exact CDF on a grid spanning the
    components' means +- ``half_width`` standard deviations."""
    _mixture(mix, one_d=True)
    _checks.positive_number(half_width, "half_width")
    _checks.positive_int(n_grid, "n_grid", minimum=2)
    if u is None or isinstance(u, (str, bytes)):
        raise TypeError(f"u must be levels in [0, 1] (a number, a sequence or a tensor), got {type(u).__name__}")
    levels = torch.as_tensor(u, dtype=F64)
    if not bool(((levels >= 0) & (levels <= 1)).all()):
        raise ValueError("u must hold levels in [0, 1] (NaN refused)")
    m, s = mix.means[:, 0], mix.stds[:, 0]
    grid = torch.linspace(float((m - half_width * s).min()), float((m + half_width * s).max()), n_grid, dtype=F64)
    u = torch.as_tensor(u, dtype=F64)
    return torch.from_numpy(np.interp(u.numpy(), mix.cdf_1d(grid).numpy(), grid.numpy()))


def compact_table(rows: dict, budgets, fmt: str = "{:.1e}") -> str:
    """A narrow text table of a bake-off: one line per entry with its mean score at each budget and,
    last, its largest relative standard error over the budgets (``max SE``, in percent); each line is
    at most 17 + 8 per budget + 8 characters wide."""
    budgets = list(budgets)
    lines = [" " * 17 + "".join(f"{b:>8d}" for b in budgets) + f"{'max SE':>8s}"]
    for name, cells in rows.items():
        cs = [cells[b] for b in budgets]
        rel = max(c.sem / c.mean for c in cs)
        lines.append(f"{name:17s}" + "".join(f"{fmt.format(c.mean):>8s}" for c in cs) + f"{rel:>8.0%}")
    return "\n".join(lines)
