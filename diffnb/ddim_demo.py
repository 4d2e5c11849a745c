"""Chapter 2's helpers (DDIM): the names its displayed formulas use, the data of the figures
(the vector diagram of one update, trajectories in the coordinates where DDIM is Euler's method),
Monte Carlo checks of DDIM's non-Markovian forward process, and the measurement protocol of the
miniature Table 1 (replicates, sampling-noise floor, paired reference, paired gaps).

Notation (the book's)::

    alpha_t, sigma_t   signal and noise scales, x_t = alpha_t x_0 + sigma_t eps
    abar_t             alpha_t^2 (DDPM's alpha-bar); abar_s at the earlier time s < t
    vs                 DDIM's noise scale varsigma of a step t -> s (``samplers.ddim_sigma``)
    rho, y             noise_to_signal sigma_t / alpha_t and x / alpha_t
    x0_hat, eps_hat    the model's predictions at (x_t, t)
    R, n               number of replicates and samples per replicate of a measurement
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import sympy as sp
import torch

from . import _checks, forward, metrics, samplers, toy

__all__ = ["formula_names", "update_parts", "walk_kernel", "ols", "kernel_closed_form", "paper_grid", "sigma_hat_sampler",
           "per_replicate", "paired_error", "w1_replicates", "band", "gap", "table1", "off_support",
           "rho_y_path", "reference_path"]

F64 = torch.float64
_DDIM_NAMES = ("abar_t", "abar_s", "vs", "x0", "xt", "x", "eps", "z", "k", "m")


def _symbols(S):
    """``S`` must be the namespace of ``symbolic.ddim.ddim_symbols()``."""
    if not isinstance(S, SimpleNamespace) or not all(isinstance(getattr(S, k, None), sp.Symbol)
                                                     for k in _DDIM_NAMES):
        raise TypeError(f"S must be the symbol namespace made by symbolic.ddim.ddim_symbols(), "
                        f"got {type(S).__name__}")
    return S


def _values(v, name: str) -> torch.Tensor:
    """Replicate values (a number, a sequence of numbers or a tensor) as a finite float64 tensor."""
    if v is None or isinstance(v, (str, bytes, dict)) or isinstance(v, bool):
        raise TypeError(f"{name} must be a number, a sequence of numbers or a tensor, got {type(v).__name__}")
    if isinstance(v, torch.Tensor) and v.is_complex():
        raise TypeError(f"{name} must be real, got dtype {v.dtype}")
    try:
        out = torch.as_tensor(v, dtype=F64)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a number, a sequence of numbers or a tensor, "
                        f"got {type(v).__name__}") from None
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{name} must be finite, but it contains NaN or inf")
    return out


def _mixture(mixture, one_d: bool = False):
    if not isinstance(mixture, toy.GaussianMixture):
        raise TypeError(f"mixture must be a toy.GaussianMixture, got {type(mixture).__name__}")
    if one_d and mixture.dim != 1:
        raise ValueError(f"mixture must be 1-D, got dim={mixture.dim}")
    return mixture


def _path_args(model, schedule, x_T, ts):
    """The arguments of a 1-D trajectory: a model, a Gaussian path, 1-D samples and a grid."""
    _checks.callable_(model, "model")
    _checks.gaussian_path(schedule)
    x_T = _checks.batch(x_T, "x_T")
    if x_T[0].numel() != 1:
        raise ValueError(f"x_T must hold 1-D samples, shape (n,) or (n, 1), got {tuple(x_T.shape)}")
    _checks.grid(ts, x_T, schedule)


# --- formulas as a textbook prints them (the display classes live in symbolic.display) ---------
def formula_names(S, **extra) -> dict:
    """The names a ``Formula`` source may use, from ``symbolic.ddim.ddim_symbols``: abar_t, abar_s,
    vs, x0, xt, x, eps, eps_theta, z, k, m, eta (and ``extra``, SymPy objects)."""
    _symbols(S)
    for key, value in extra.items():
        if not isinstance(value, sp.Basic):
            raise TypeError(f"{key} must be a SymPy object, got {type(value).__name__}")
    names = {key: getattr(S, key) for key in _DDIM_NAMES}
    names["eps_theta"] = getattr(S, "eps_theta", sp.Symbol(r"\epsilon_\theta", real=True))
    names["eta"] = sp.Symbol("eta", positive=True)
    names.update(extra)
    return names


# --- one DDIM update, term by term (the vector diagram) -------------------------------------------
def update_parts(mixture, schedule, x_t, t: float, s: float, eta: float, z) -> dict:
    """The three terms of DDIM's eq. (12) for the exact model of ``mixture`` at points ``x_t``:
    ``x0_hat``, ``signal`` = alpha_s x0_hat, ``direction`` = sqrt(sigma_s^2 - vs^2) eps_hat (the
    "direction pointing to x_t"), ``noise`` = vs z, and ``x_s``, their sum; also ``eps_hat``."""
    _mixture(mixture)
    _checks.gaussian_path(schedule)
    x_t = _checks.batch(x_t, "x_t")
    _checks.real_number(t, "t"), _checks.real_number(s, "s")
    if _checks.batch(z, "z").shape != x_t.shape:
        raise ValueError(f"z must have x_t's shape {tuple(x_t.shape)}, got {tuple(z.shape)}")
    t, s = torch.tensor(float(t), dtype=F64), torch.tensor(float(s), dtype=F64)
    a_t, s_t = schedule.alpha(t), schedule.sigma(t)
    a_s, s_s = schedule.alpha(s), schedule.sigma(s)
    eps_hat = mixture.eps(x_t, a_t, s_t)
    x0_hat = forward.x0_from_eps(x_t, eps_hat, a_t, s_t)
    vs = samplers.ddim_sigma(schedule, t, s, eta)
    parts = {"x_t": x_t, "eps_hat": eps_hat, "x0_hat": x0_hat, "signal": a_s * x0_hat,
             "direction": torch.sqrt(s_s**2 - vs**2) * eps_hat, "noise": vs * z}
    parts["x_s"] = parts["signal"] + parts["direction"] + parts["noise"]
    return parts


# --- the non-Markovian forward process, by Monte Carlo --------------------------------------------
def walk_kernel(schedule, x0, grid, vs_of, generator) -> list:
    """Sample DDIM's joint q_vs(x_{tau_0}, ..., x_{tau_S} | x0) top-down: x at ``grid[0]`` from
    q(x_t | x0), then x_s ~ q_vs(x_s | x_t, x0) (DDIM's eq. 7) with noise scale ``vs_of(t, s)``,
    using the true x0. Returns the states at every grid time, ``grid[0]`` first."""
    _checks.gaussian_path(schedule)
    x0 = _checks.batch(x0, "x0")
    _checks.grid(grid, x0, schedule, "grid")
    _checks.callable_(vs_of, "vs_of")
    x, _ = forward.q_sample(schedule, x0, grid[0], generator=generator)
    states = [x]
    for t, s in zip(grid[:-1], grid[1:]):
        eps = (x - schedule.alpha(t) * x0) / schedule.sigma(t)  # the noise inside x_t
        vs = vs_of(t, s)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = schedule.alpha(s) * x0 + torch.sqrt(schedule.sigma(s) ** 2 - vs**2) * eps + vs * z
        states.append(x)
    return states


def ols(y, *columns):
    """Least squares y ~ sum_j c_j columns_j (no intercept). Returns ``(coef, se, resid_var)``:
    coefficients, their standard errors, and the residual variance."""
    y = _checks.batch(y, "y")
    if not columns:
        raise ValueError("ols needs at least one column")
    for j, c in enumerate(columns):
        if _checks.batch(c, f"columns[{j}]").numel() != y.numel():
            raise ValueError(f"columns[{j}] must have y's {y.numel()} values, got {c.numel()}")
    if y.numel() <= len(columns):
        raise ValueError(f"y must have more values ({y.numel()}) than there are columns ({len(columns)})")
    X = torch.cat([c.reshape(-1, 1) for c in columns], 1).to(F64)
    y = y.reshape(-1, 1).to(F64)
    n, p = X.shape
    coef = torch.linalg.lstsq(X, y).solution
    resid = y - X @ coef
    resid_var = float((resid**2).sum() / (n - p))
    se = torch.sqrt(torch.diag(torch.linalg.inv(X.T @ X)) * resid_var)
    return coef[:, 0], se, resid_var


def kernel_closed_form(schedule, t, s, vs):
    """The forward kernel q_vs(x_t | x_s, x0) = N(c_s x_s + c_0 x0, v) of DDIM's joint, numerically:
    c_s = sqrt((1 - abar_t)(1 - abar_s - vs^2))/(1 - abar_s), c_0 = sqrt(abar_t) - sqrt(abar_s) c_s,
    v = (1 - abar_t) vs^2 / (1 - abar_s). Returns ``(c_s, c_0, v)`` as floats."""
    _checks.gaussian_path(schedule)
    if _checks.real_number(vs, "vs") < 0:
        raise ValueError(f"vs must be >= 0, got {float(vs)!r}")
    a_t, a_s = float(schedule.alpha_bar(t)), float(schedule.alpha_bar(s))
    if not a_s < 1:
        raise ValueError("s must be a time with sigma_s > 0 (abar_s < 1; the kernel divides by 1 - abar_s)")
    vs2 = float(vs) ** 2
    c_s = math.sqrt((1 - a_t) * max(1 - a_s - vs2, 0.0)) / (1 - a_s)
    return c_s, math.sqrt(a_t) - math.sqrt(a_s) * c_s, (1 - a_t) * vs2 / (1 - a_s)


# --- the miniature Table 1 ------------------------------------------------------------------------
def paper_grid(S: int, T: int = 1000) -> torch.Tensor:
    """The DDIM code's uniform grid in the book's time: its indices 0, T/S, ..., (S-1) T/S are the
    times 1, 1 + T/S, ..., 1 + (S-1) T/S; walked down, then one last step to t = 0 (S steps)."""
    _checks.positive_int(S, "S")
    if T % S:
        raise ValueError(f"S must divide T={T}, got S={S}")
    inner = 1 + torch.arange(S - 1, -1, -1, dtype=F64) * (T // S)
    return torch.cat([inner, torch.zeros(1, dtype=F64)])


def sigma_hat_sampler(model, x_T, schedule, ts, generator=None, callback=None):
    """The sigma-hat row of DDIM's Table 1: DDPM's posterior mean with the larger variance
    beta-hat = 1 - abar_t/abar_s of the forward jump (no noise on the step into t = 0).
    ``callback({"i", "t", "x"})`` after each step, as the samplers' callback."""
    _checks.callable_(model, "model")
    _checks.gaussian_path(schedule)
    x = _checks.batch(x_T, "x_T")
    _checks.grid(ts, x, schedule)
    if callback is not None:
        _checks.callable_(callback, "callback")
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:])):
        eps_hat = samplers.predict_eps(model, x, t)
        x0_hat = forward.x0_from_eps(x, eps_hat, schedule.alpha(t), schedule.sigma(t))
        x, _ = forward.posterior(schedule, x, x0_hat, t, s)
        if float(s) > 0:
            beta_hat = -torch.expm1(2 * (schedule.log_alpha(t) - schedule.log_alpha(s)))
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + torch.sqrt(beta_hat) * z
        if callback is not None:
            callback({"i": i, "t": s, "x": x})
    return x


def per_replicate(fn, x, R: int, *others) -> torch.Tensor:
    """``fn`` on each of ``R`` equal consecutive chunks of ``x`` (and of ``others``)."""
    _checks.callable_(fn, "fn")
    x = _checks.batch(x, "x")
    _checks.positive_int(R, "R")
    for j, o in enumerate(others):
        if _checks.batch(o, f"others[{j}]").shape[0] != x.shape[0]:
            raise ValueError(f"others[{j}] must have x's batch size {x.shape[0]}, got {o.shape[0]}")
    if x.shape[0] % R:
        raise ValueError(f"x's batch {x.shape[0]} must be a multiple of R={R}")
    chunks = zip(x.chunk(R), *(o.chunk(R) for o in others))
    return torch.tensor([float(fn(*c)) for c in chunks], dtype=F64)


def paired_error(x, reference, R: int) -> torch.Tensor:
    """Mean |x - reference| per replicate: a deterministic sampler's error against the paired
    reference (the exact ODE solution from the same x_T), free of sampling noise."""
    x, reference = _checks.batch(x, "x"), _checks.batch(reference, "reference")
    if x.shape != reference.shape:
        raise ValueError(f"reference must have x's shape {tuple(x.shape)}, got {tuple(reference.shape)}")
    return per_replicate(lambda a, b: (a - b).abs().mean(), x, R, reference)


def w1_replicates(x, mixture, R: int, n_grid: int = 20_001) -> torch.Tensor:
    """W1 to ``mixture`` of each of ``R`` replicates (chunks) of the samples ``x`` (``n_grid`` as in
    ``metrics.wasserstein_1d``; compare with ``metrics.w1_floor`` at the same ``n_grid``)."""
    _mixture(mixture, one_d=True)
    _checks.positive_int(n_grid, "n_grid", minimum=2)
    return per_replicate(lambda c: metrics.wasserstein_1d(c, mixture, n_grid=n_grid), x, R)


def band(values, q: float = 0.9):
    """``(mean, lo, hi)``: the mean and the central ``q`` quantile band of replicate values."""
    if not 0 < _checks.real_number(q, "q") < 1:
        raise ValueError(f"q must lie in (0, 1), got {q!r}")
    if _values(values, "values").numel() == 0:
        raise ValueError("values must hold at least one number")
    v = torch.as_tensor(values, dtype=F64)
    lo, hi = torch.quantile(v, torch.tensor([(1 - q) / 2, (1 + q) / 2], dtype=F64))
    return float(v.mean()), float(lo), float(hi)


def gap(a, b):
    """Gap of replicate values ``a - b``: ``(mean, half)`` with half = 2 standard errors of the mean
    difference, estimated from the replicate differences (paired replicates share x_T; for independent
    replicates of equal number it estimates the same standard error). "a is below b" is supported only
    where mean + half < 0, "a is above b" where mean - half > 0."""
    _values(a, "a"), _values(b, "b")
    d = torch.as_tensor(a, dtype=F64) - torch.as_tensor(b, dtype=F64)
    if d.numel() < 2:
        raise ValueError(f"a - b must hold at least 2 replicate values, got {d.numel()}")
    return float(d.mean()), float(2 * d.std() / math.sqrt(d.numel()))


def table1(model, schedule, mixture, x_T, R, steps, etas, seed: int = 0):
    """The miniature Table 1 on ``paper_grid``: rows ``eta = e`` (``samplers.ddim``) and
    ``sigma-hat``, one column per number of steps. Returns a namespace with ``w1`` =
    {row: W1 to ``mixture`` per replicate, shape (R, len(steps))}, ``final`` = {(row, S):
    samples} and ``at_1`` = {(row, S): the state at t = 1, before the last step}."""
    _checks.callable_(model, "model")
    _checks.gaussian_path(schedule)
    _mixture(mixture, one_d=True)
    _checks.batch(x_T, "x_T")
    _checks.positive_int(R, "R")
    for e in etas:
        if _checks.real_number(e, "each of etas") < 0:
            raise ValueError(f"each of etas must be >= 0, got {e!r}")
    rows = [f"eta = {e:g}" for e in etas] + ["sigma-hat"]
    out = SimpleNamespace(w1={row: [] for row in rows}, final={}, at_1={})
    for S in steps:
        grid = paper_grid(S)
        for row in rows:
            g = torch.Generator().manual_seed(seed)

            def keep(info, key=(row, S)):
                if float(info["t"]) == 1.0:
                    out.at_1[key] = info["x"]

            if row == "sigma-hat":
                x = sigma_hat_sampler(model, x_T, schedule, grid, g, keep)
            else:
                eta = float(row.split("= ")[1])
                x = samplers.ddim(model, x_T, schedule, grid, eta=eta, generator=g, callback=keep)
            out.final[row, S] = x
            out.w1[row].append(w1_replicates(x, mixture, R))
    out.w1 = {row: torch.stack(c, 1) for row, c in out.w1.items()}
    return out


def off_support(x, mixture, alpha=1.0, sigma=0.0, k: float = 4.0) -> float:
    """Share of samples farther than ``k`` standard deviations from every component of the
    mixture noised to (alpha, sigma): each component N(alpha m, alpha^2 s^2 + sigma^2)."""
    x = _checks.batch(x, "x")
    _mixture(mixture, one_d=True)
    _checks.real_number(alpha, "alpha"), _checks.real_number(sigma, "sigma")
    _checks.positive_number(k, "k")
    centre = alpha * mixture.means[:, 0]
    std = torch.sqrt(alpha**2 * mixture.stds[:, 0] ** 2 + sigma**2)
    dist = ((x.reshape(-1, 1) - centre) / std).abs().min(1).values
    return float((dist > k).to(F64).mean())


# --- trajectories in (rho, y) ---------------------------------------------------------------------
def rho_y_path(model, schedule, x_T, ts):
    """Deterministic DDIM on ``ts`` from ``x_T`` (1-D samples), recorded by its callback, in the
    coordinates rho = sigma/alpha and y = x/alpha. Returns ``(rho, y)``, y of shape (len(ts), n)."""
    _path_args(model, schedule, x_T, ts)
    states = [x_T.reshape(-1)]
    samplers.ddim(model, x_T, schedule, ts, callback=lambda info: states.append(info["x"].reshape(-1)))
    rho = schedule.noise_to_signal(ts)
    return rho, torch.stack(states) / schedule.alpha(ts)[:, None]


def reference_path(model, schedule, x_T, ts, rtol=1e-8, atol=1e-8):
    """The exact probability-flow ODE through the same points, by ``sde.reference_ode_solve`` from
    each time of ``ts`` to the next (a chain). Returns ``(rho, y)`` as ``rho_y_path`` does."""
    from .sde import reference_ode_solve

    _path_args(model, schedule, x_T, ts)
    _checks.positive_number(rtol, "rtol"), _checks.positive_number(atol, "atol")
    x, states = x_T, [x_T.reshape(-1)]
    for t, s in zip(ts[:-1], ts[1:]):
        x = reference_ode_solve(model, x, schedule, t, s, rtol=rtol, atol=atol)
        states.append(x.reshape(-1))
    return schedule.noise_to_signal(ts), torch.stack(states) / schedule.alpha(ts)[:, None]


# --- figure helpers ---------------------------------------------------------------------------------
def draw_update(ax, parts: dict, alpha_t: float, colors, data=None):
    """Draw one DDIM update of ``update_parts`` (one 2-D point) as vectors on ``ax``: origin ->
    alpha_s x0_hat -> + direction -> + noise = x_s, with x_t, x0_hat and, dashed, the segment from
    alpha_t x0_hat to x_t to which the direction is parallel. ``colors``: three colours."""
    p = {k: v[0].tolist() for k, v in parts.items()}
    if data is not None:
        ax.scatter(data[:, 0], data[:, 1], s=2, color="0.8", zorder=0)
    a, b = [0.0, 0.0], p["signal"]
    c = [b[0] + p["direction"][0], b[1] + p["direction"][1]]
    labels = (r"$\sqrt{\bar\alpha_s}\,\hat x_0$", r"$\sqrt{1-\bar\alpha_s-\varsigma^2}\,\hat\epsilon$",
              r"$\varsigma z$")
    for (u, v), color, label in zip([(a, b), (b, c), (c, p["x_s"])], colors, labels):
        if math.dist(u, v) > 1e-9:
            ax.annotate("", xy=v, xytext=u, arrowprops=dict(arrowstyle="->", color=color, lw=1.8))
            ax.plot([], [], color=color, label=label)
    foot = [alpha_t * p["x0_hat"][0], alpha_t * p["x0_hat"][1]]
    ax.plot([foot[0], p["x_t"][0]], [foot[1], p["x_t"][1]], "k--", lw=0.8)
    ax.plot(*p["x_t"], "ko", ms=5, label="$x_t$")
    ax.plot(*p["x0_hat"], "k*", ms=9, label=r"$\hat x_0$")
    ax.plot(*p["x_s"], "o", ms=6, mfc="white", mec="k", label="$x_s$")
    ax.set_aspect("equal")


def _catalogue(name):
    from .catalogue import style

    st = style(name)
    return st["color"], st["marker"]


# One colour and marker per row of the miniature Table 1: the catalogue's for its entries, colours
# the catalogue does not use for the rest.
ROW_STYLE = {"eta = 0": _catalogue("DDIM (eta = 0)"), "eta = 0.2": ("#5ab4ac", "P"),
             "eta = 0.5": ("#8064a2", "d"), "eta = 1": _catalogue("DDIM (eta = 1)"),
             "sigma-hat": ("#b15928", "v"), "DDPM": _catalogue("DDPM")}
ROW_LABEL = {"eta = 0": r"$\eta = 0$", "eta = 0.2": r"$\eta = 0.2$", "eta = 0.5": r"$\eta = 0.5$",
             "eta = 1": r"$\eta = 1$", "sigma-hat": r"$\hat\sigma$", "DDPM": "DDPM"}


def draw_table1(ax, steps, w1: dict, floor, paired=None):
    """W1 per row against the number of steps (mean and two standard errors over replicates, on
    log-log axes); the floor (a ``metrics.Floor``: its mean dashed, its range over seeds shaded);
    and, if given, the eta = 0 row's paired error against the reference (dotted)."""
    ax.axhspan(*floor.band, color="0.85", zorder=0, label="floor (range over seeds)")
    ax.axhline(floor.mean, color="0.5", ls="--", lw=0.8)
    for row, w in w1.items():
        m = w.mean(0)
        h = 2 * w.std(0) / math.sqrt(w.shape[0])
        color, marker = ROW_STYLE[row]
        ax.errorbar(steps, m, yerr=h, color=color, marker=marker, ms=4, capsize=2,
                    label=ROW_LABEL[row])
    if paired is not None:
        ax.plot(steps, [float(p.mean()) for p in paired], ":", color=ROW_STYLE["eta = 0"][0],
                label=r"$\eta = 0$: $|x - x_{\rm ref}|$")
    ax.set_xscale("log")
    ax.set_yscale("log")
