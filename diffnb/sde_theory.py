"""Chapter 3's own helpers: the reverse-time SDE family, exact reverse jumps, a Langevin corrector, and
the symbolic identities behind them.

Notation (Song et al. 2021; ``diffnb.sde`` for the rest)::

    forward SDE         dx = f(t) x dt + g(t) dw,      f = d log alpha/dt, g^2 = d sigma^2/dt - 2 f sigma^2
    eta family          dx = [f x - (1 + eta^2)/2 g^2 grad log q_t(x)] dt + eta g dw_bar   (t decreasing)
                        eta = 0: the probability-flow ODE; eta = 1: Anderson's reverse SDE
    posterior           q(x_s | x_t, x_0) = N(c_x x_t + c_0 x_0, var),  s < t   (``forward.posterior``)
    exact reverse jump  q(x_s | x_t) = E_{x_0 ~ q(x_0 | x_t)} q(x_s | x_t, x_0): mean c_x x_t + c_0 E[x_0 | x_t],
                        variance var + c_0^2 Var[x_0 | x_t]; DDPM replaces the draw of x_0 by its mean
    Langevin corrector  x <- x + e grad log q_t(x) + sqrt(2 e) z,  e = 2 (snr |z| / |grad log q_t|)^2
                        (Song et al. 2021, Algorithm 5, with the norms averaged over a group of samples)

Symbolic part: the few identities that ``diffnb.symbolic.sde`` does not hold (the reverse jump of
Gaussian data two ways, DDPM's step as the exponential form of Euler-Maruyama's, the amplification
factor of the linear test problem), returning SymPy expressions that ``tests/test_sde_theory.py``
checks and the chapter displays. Numerical part: samplers with the
samplers' contract (``model(x, t) -> eps_hat``, a strictly decreasing grid ``ts``, float64 in and out,
``callback`` dicts with ``i``, ``t``, ``x``), exact quantities of a 1-D Gaussian mixture, and small
statistics helpers for floors and error bars over seeds.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import sympy as sp
import torch

from . import _checks, metrics
from ._sampling import _noise, _start, predict_eps
from .analytic_dpm import x0_posterior, x0_variance
from .forward import posterior, posterior_coefficients, x0_from_eps
from .schedules import GaussianPath
from .sde import drift_diffusion, noised_mixture
from .toy import GaussianMixture

__all__ = [
    "equations", "reverse_kernel_gaussian", "linearised_ddpm_step", "amplification",
    "eta_reverse_sde", "langevin_step", "predictor_corrector", "sample_x0_posterior",
    "reverse_kernel_moments", "reverse_step", "error_attribution", "summary", "density_map", "plain",
]


# --- symbolic (what ``diffnb.symbolic.sde`` does not hold) -----------------------------------------
def _sde_symbols(S):
    """``S`` must be the namespace of ``symbolic.sde.sde_symbols()`` (alpha, sigma functions of t)."""
    ok = (isinstance(S, SimpleNamespace) and isinstance(getattr(S, "t", None), sp.Symbol)
          and isinstance(getattr(S, "dt", None), sp.Symbol)
          and all(isinstance(getattr(S, k, None), sp.Expr) for k in ("alpha", "sigma")))
    if not ok:
        raise TypeError(f"S must be the symbol namespace made by symbolic.sde.sde_symbols(), got {type(S).__name__}")
    return S


def _operand(v, name: str, positive: bool = False):
    """A SymPy expression, a real number or a floating tensor (finite; positive if ``positive``)."""
    if isinstance(v, sp.Basic):
        return v
    if isinstance(v, torch.Tensor):
        if v.dtype not in _checks.FLOAT_DTYPES:
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {v.dtype}")
        _checks.finite(v, name)
        if positive and not bool((v > 0).all()):
            raise ValueError(f"{name} must be positive")
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a SymPy expression, a number or a floating tensor, got {type(v).__name__}")
    if not math.isfinite(v) or (positive and not v > 0):
        raise ValueError(f"{name} must be {'positive and ' if positive else ''}finite, got {v!r}")
    return v


def equations(*pairs):
    """Display math for ``(lhs, rhs)`` pairs side by side (``lhs`` a LaTeX string, ``rhs`` SymPy), with
    the terms in stored order (``diffnb.symbolic.latex``)."""
    from IPython.display import Math

    from .symbolic import latex

    return Math(r",\qquad ".join(f"{lhs} = {latex(rhs)}" for lhs, rhs in pairs))


def reverse_kernel_gaussian():
    """The reverse transition q(x_s | x_t) for data N(m, s^2), two ways.

    Parameters of the step: alpha_s, sigma_s at s and the transition x_t = a_ts x_s + sigma_ts z (so
    alpha_t = a_ts alpha_s, sigma_t^2 = a_ts^2 sigma_s^2 + sigma_ts^2). ``joint``: mean and variance of
    x_s given x_t from the joint Gaussian of (x_s, x_t). ``mixed``: the posterior given x_0,
    N(c_x x_t + c_0 x_0, var), averaged over x_0 ~ q(x_0 | x_t): mean c_x x_t + c_0 E[x_0 | x_t],
    variance var + c_0^2 Var[x_0 | x_t]. Returns a namespace with both pairs and the pieces."""
    a_s, s_s, a_ts, s_ts, s = sp.symbols(r"alpha_s sigma_s alpha_{t|s} sigma_{t|s} s", positive=True)
    m, x = sp.symbols("m x_t", real=True)
    a_t, s2_t = a_ts * a_s, a_ts**2 * s_s**2 + s_ts**2
    v_s, v_t = a_s**2 * s**2 + s_s**2, a_t**2 * s**2 + s2_t
    joint_mean = a_s * m + a_ts * v_s / v_t * (x - a_t * m)
    joint_var = v_s - (a_ts * v_s) ** 2 / v_t
    c_x, c_0, var = a_ts * s_s**2 / s2_t, a_s * s_ts**2 / s2_t, s_ts**2 * s_s**2 / s2_t
    x0_mean = m + a_t * s**2 / v_t * (x - a_t * m)  # Tweedie for Gaussian data
    x0_var = s**2 * s2_t / v_t
    return SimpleNamespace(joint_mean=joint_mean, joint_var=joint_var,
                           mixed_mean=c_x * x + c_0 * x0_mean, mixed_var=var + c_0**2 * x0_var,
                           c_x=c_x, c_0=c_0, var=var, x0_var=x0_var,
                           symbols=(a_s, s_s, a_ts, s_ts, s, m, x))


def linearised_ddpm_step(S, order=2):
    """DDPM's step from t to s = t - dt against Euler-Maruyama's, coefficient by coefficient.

    DDPM: x_s = (alpha_s/alpha_t) [x_t + (1 - e^{-2h})(alpha_t x0_hat - x_t)] + sigma_s sqrt(1 - e^{-2h}) z
    with h = lambda_s - lambda_t; Euler-Maruyama: x_s = (1 - f dt) x_t + (g^2 dt/sigma_t^2)
    (alpha_t x0_hat - x_t) + g sqrt(dt) z. ``S`` is ``symbolic.sde.sde_symbols()``. Returns the three
    pairs (DDPM's coefficient, Euler-Maruyama's) under "x", "pull", "noise", and the series of their
    differences in dt up to ``order`` (each starts at dt^2)."""
    _sde_symbols(S)
    _checks.positive_int(order, "order")
    f = sp.diff(sp.log(S.alpha), S.t)
    g2 = sp.diff(S.sigma**2, S.t) - 2 * f * S.sigma**2
    lam = sp.log(S.alpha) - sp.log(S.sigma)
    h = lam.subs(S.t, S.t - S.dt) - lam
    pairs = {
        "x": (S.alpha.subs(S.t, S.t - S.dt) / S.alpha, 1 - f * S.dt),
        "pull": (1 - sp.exp(-2 * h), g2 * S.dt / S.sigma**2),
        "noise": (S.sigma.subs(S.t, S.t - S.dt) ** 2 * (1 - sp.exp(-2 * h)), g2 * S.dt),
    }
    gaps = {k: sp.series(p - q, S.dt, 0, order + 1).removeO() for k, (p, q) in pairs.items()}
    return SimpleNamespace(pairs=pairs, gaps=gaps, h=h, f=f, g2=g2)


def amplification(f, g2, dt, v, eta):
    """The factor A by which one Euler-Maruyama step of the eta family multiplies x - alpha m for data
    N(m, s^2) with the exact score -(x - alpha m)/v, v = alpha^2 s^2 + sigma^2 (the linear test problem):
    A = 1 - f dt - (1 + eta^2)/2 g^2 dt / v. Works on SymPy expressions and on tensors alike (numbers
    and tensors finite, v > 0)."""
    for value, name in ((f, "f"), (g2, "g2"), (dt, "dt"), (eta, "eta")):
        _operand(value, name)
    _operand(v, "v", positive=True)
    return 1 - f * dt - (1 + eta**2) / 2 * g2 * dt / v


# --- numerical: samplers ----------------------------------------------------------------------------
def _eta(eta):
    if isinstance(eta, bool) or not isinstance(eta, (int, float)):
        raise TypeError(f"eta must be a number, got {type(eta).__name__}")
    if not (math.isfinite(eta) and eta >= 0):
        raise ValueError(f"eta must be finite and >= 0, got {eta}")
    return float(eta)


def _path(schedule):
    if not isinstance(schedule, GaussianPath):
        raise TypeError(f"schedule must be a GaussianPath, got {type(schedule).__name__}")


def eta_reverse_sde(model, x_T, schedule, ts, eta=1.0, generator=None, callback=None,
                    last_step_noise=False):
    """Euler-Maruyama of the eta family of reverse SDEs, with score = -eps_hat/sigma_t::

        x_s = x_t - [f(t) x_t + (1 + eta^2)/2 g^2(t)/sigma_t eps_hat(x_t, t)] (t - s) + eta g(t) sqrt(t - s) z

    on the strictly decreasing grid ``ts``. eta = 1 is ``sde.reverse_sde_euler_maruyama`` (same noise
    for the same generator); eta = 0 is Euler's method for the probability-flow ODE. As there, the last
    step adds no noise unless ``last_step_noise``. ``callback`` gets {"i", "t", "t_prev", "x", "x0_hat"}.
    """
    _path(schedule)
    eta = _eta(eta)
    x, ts = _start(model, x_T, schedule, ts, callback)
    n = len(ts) - 1
    for i in range(n):
        t, s = ts[i], ts[i + 1]
        dt = t - s
        alpha_t, sigma_t = schedule.alpha(t), schedule.sigma(t)
        f, g2 = drift_diffusion(schedule, t)
        eps_hat = predict_eps(model, x, t)
        x0_hat = x0_from_eps(x, eps_hat, alpha_t, sigma_t)
        # Drift of the eta family.
        x = x - (f * x + (1 + eta**2) / 2 * g2 / sigma_t * eps_hat) * dt
        # Noise eta g dw_bar.
        if eta > 0 and (i < n - 1 or last_step_noise):
            x = x + eta * torch.sqrt(g2 * dt) * _noise(x, generator)
        if callback is not None:
            callback({"i": i, "t": s, "t_prev": t, "x": x, "x0_hat": x0_hat})
    return x


def _groups(x, groups):
    _checks.positive_int(groups, "groups")
    if x.shape[0] % groups:
        raise ValueError(f"groups must divide the batch size {x.shape[0]}, got {groups}")
    return x.reshape(groups, -1)


def langevin_step(model, x, schedule, t, snr=0.16, generator=None, groups=1):
    """One Langevin corrector step at time ``t`` (Song et al. 2021, Algorithm 5)::

        e = 2 (snr ||z|| / ||grad log q_t(x)||)^2,   x <- x + e grad log q_t(x) + sqrt(2 e) z

    with grad log q_t = -eps_hat/sigma_t. The norms are root-mean-squares over each of ``groups``
    equal consecutive slices of the batch, so that groups stay independent (one group = one run).
    Returns the new x (one model call)."""
    _path(schedule)
    x = _checks.batch(x, "x")
    if isinstance(snr, bool) or not isinstance(snr, (int, float)) or not snr >= 0:
        raise ValueError(f"snr must be a number >= 0, got {snr!r}")
    t = _checks.as_float_tensor(t, "t", dtype=x.dtype)
    score = -predict_eps(model, x, t) / schedule.sigma(t)
    z = _noise(x, generator)
    rms = lambda v: _groups(v, groups).pow(2).mean(1).sqrt()  # noqa: E731
    e = 2 * (snr * rms(z) / rms(score)) ** 2  # one step size per group
    e = e.repeat_interleave(x.shape[0] // groups).reshape(-1, *([1] * (x.ndim - 1)))
    return x + e * score + torch.sqrt(2 * e) * z


def predictor_corrector(model, x_T, schedule, ts, predictor="em", snr=0.16, n_corrector=1,
                        generator=None, groups=1):
    """Predictor-corrector sampling (Song et al. 2021, Algorithm 2 for VP): at every grid time after the
    first, ``n_corrector`` Langevin steps (``langevin_step``) at that time, then one predictor step to
    the next time: ``"em"`` (reverse-SDE Euler-Maruyama, no noise on the last step) or ``"ddpm"`` (the
    posterior step of ``samplers.ddpm``). Model calls: (1 + n_corrector) per interval, minus
    n_corrector. ``n_corrector = 0`` is the predictor alone."""
    _path(schedule)
    if predictor not in ("em", "ddpm"):
        raise ValueError(f"predictor must be 'em' or 'ddpm', got {predictor!r}")
    if isinstance(n_corrector, bool) or not isinstance(n_corrector, int) or n_corrector < 0:
        raise ValueError(f"n_corrector must be an int >= 0, got {n_corrector!r}")
    x, ts = _start(model, x_T, schedule, ts, None)
    n = len(ts) - 1
    for i in range(n):
        t, s = ts[i], ts[i + 1]
        for _ in range(n_corrector if i > 0 else 0):
            x = langevin_step(model, x, schedule, t, snr, generator, groups)
        x = reverse_step(predictor, model, schedule, x, t, s, generator, last=i == n - 1)
    return x


# --- numerical: exact quantities of a 1-D mixture -----------------------------------------------------
def _mixture_1d(mix):
    if not isinstance(mix, GaussianMixture) or mix.dim != 1:
        raise TypeError("mix must be a 1-D toy.GaussianMixture")


def sample_x0_posterior(mix, x, alpha, sigma, generator=None):
    """One draw of x_0 ~ q(x_0 | x_t = x) per row of ``x`` (shape (n, 1)): a component by its
    responsibility, then that component's Gaussian posterior (``analytic_dpm.x0_posterior``)."""
    _mixture_1d(mix)
    x = _checks.batch(x, "x")
    r, mu, c = x0_posterior(mix, x, alpha, sigma)
    k = torch.multinomial(r, 1, generator=generator)
    return mu[:, :, 0].gather(1, k) + c[:, 0][k].sqrt() * _noise(x, generator)


def reverse_kernel_moments(mix, schedule, x, t, s):
    """Mean and variance of one step t -> s from x_t = x (shape (n, 1)): the exact reverse transition
    q(x_s | x_t), DDPM's kernel and Euler-Maruyama's, each with the exact x0_hat and eps of ``mix``.
    Returns a dict name -> (mean, var) with names "exact", "ddpm", "em"."""
    _mixture_1d(mix)
    _path(schedule)
    t, s = (torch.as_tensor(v, dtype=torch.float64) for v in (t, s))
    alpha, sigma = schedule.alpha(t), schedule.sigma(t)
    c_x, c_0, var = posterior_coefficients(schedule, t, s)
    f, g2 = drift_diffusion(schedule, t)
    mean = c_x * x + c_0 * mix.x0_hat(x, alpha, sigma)
    em_mean = x - (f * x + g2 / sigma * mix.eps(x, alpha, sigma)) * (t - s)
    exact_var = var + c_0**2 * x0_variance(mix, x, alpha, sigma)
    return {"exact": (mean, exact_var), "ddpm": (mean, var.expand_as(mean)),
            "em": (em_mean, (g2 * (t - s)).expand_as(mean))}


def reverse_step(kind, model, schedule, x, t, s, generator=None, last=False):
    """One reverse step from t to s < t. ``kind``: ``"ddpm"`` (posterior with x0_hat; its variance even
    on the last step, as ``samplers.ddpm``), ``"em"`` (reverse-SDE Euler-Maruyama; no noise when
    ``last``), or ``"exact"``, for which ``model`` is a 1-D ``toy.GaussianMixture``: x_0 drawn from
    q(x_0 | x_t), then x_s from q(x_s | x_t, x_0), an exact draw of q(x_s | x_t)."""
    if kind not in ("ddpm", "em", "exact"):
        raise ValueError(f"kind must be 'ddpm', 'em' or 'exact', got {kind!r}")
    t, s = (_checks.as_float_tensor(v, n, dtype=x.dtype) for v, n in ((t, "t"), (s, "s")))
    if kind == "exact":
        x0 = sample_x0_posterior(model, x, schedule.alpha(t), schedule.sigma(t), generator)
        mean, var = posterior(schedule, x, x0, t, s)
        return mean + var.sqrt() * _noise(x, generator)
    eps_hat = predict_eps(model, x, t)
    if kind == "ddpm":
        x0_hat = x0_from_eps(x, eps_hat, schedule.alpha(t), schedule.sigma(t))
        mean, var = posterior(schedule, x, x0_hat, t, s)
        return mean + var.sqrt() * _noise(x, generator)
    f, g2 = drift_diffusion(schedule, t)  # "em"
    x = x - (f * x + g2 / schedule.sigma(t) * eps_hat) * (t - s)
    return x if last else x + torch.sqrt(g2 * (t - s)) * _noise(x, generator)


def error_attribution(kind, model, mix, schedule, x_T, ts, target, generator=None):
    """How much of a sampler's final error each step leaves: for each step k, run exact reverse jumps
    (``reverse_step("exact")``) on every step but k and the sampler's step ``kind`` on step k, and
    measure W1 to ``target`` at the end. Returns ``(per_step, full, exact)``: the list over k, the
    W1 of the sampler on every step, and of exact jumps on every step (the floor of this sample size)."""
    if kind not in ("ddpm", "em", "exact"):
        raise ValueError(f"kind must be 'ddpm', 'em' or 'exact', got {kind!r}")
    _checks.callable_(model, "model")
    _mixture_1d(mix)
    _path(schedule)
    x_T = _checks.batch(x_T, "x_T")
    _checks.grid(ts, x_T, schedule)
    if not isinstance(target, GaussianMixture) or target.dim != 1:
        raise TypeError(f"target must be a 1-D toy.GaussianMixture, got {type(target).__name__}")
    n = len(ts) - 1

    def run(which):
        x = x_T
        for i in range(n):
            k = which(i)
            x = reverse_step(k, model if k != "exact" else mix, schedule, x, ts[i], ts[i + 1],
                             generator, last=i == n - 1)
        return metrics.wasserstein_1d(x, target, n_grid=20_001)

    per_step = [run(lambda i, k=k: kind if i == k else "exact") for k in range(n)]
    return per_step, run(lambda i: kind), run(lambda i: "exact")


# --- numerical: error bars and pictures -----------------------------------------------------------
def summary(values):
    """Mean, standard deviation, standard error and the 10% and 90% quantiles of a list of numbers."""
    if values is None or isinstance(values, (str, bytes)):
        raise TypeError(f"values must be a sequence of numbers, got {type(values).__name__}")
    v = torch.tensor(values, dtype=torch.float64)
    if v.numel() < 2:
        raise ValueError(f"values must hold at least 2 numbers, got {v.numel()}")
    _checks.finite(v, "values")
    sd = float(v.std())
    lo, hi = (float(q) for q in torch.quantile(v, torch.tensor([0.1, 0.9], dtype=torch.float64)))
    return SimpleNamespace(mean=float(v.mean()), sd=sd, se=sd / math.sqrt(v.numel()), lo=lo, hi=hi,
                           n=v.numel())


def density_map(mix, schedule, ts, xs):
    """q_t(x) on the grid ``ts`` x ``xs`` (a (len(ts), len(xs)) tensor), for a heat map."""
    _mixture_1d(mix)
    _path(schedule)
    xs = _checks.batch(xs, "xs").reshape(-1, 1).to(torch.float64)
    return torch.stack([noised_mixture(mix, schedule, t).log_prob(xs).exp() for t in ts])


def plain(expr, S):
    """``expr`` with alpha(t), sigma(t) and their first derivatives written as the symbols alpha_t,
    sigma_t, and dotted alpha_t, sigma_t (for display; ``S`` is ``symbolic.sde.sde_symbols()``)."""
    if not isinstance(expr, sp.Basic):
        raise TypeError(f"expr must be a SymPy expression, got {type(expr).__name__}")
    _sde_symbols(S)
    a, s = sp.symbols("alpha_t sigma_t", positive=True)
    da, ds = sp.symbols(r"\dot{\alpha}_t \dot{\sigma}_t", real=True)
    derivs = {sp.Derivative(S.alpha, S.t): da, sp.Derivative(S.sigma, S.t): ds}
    return expr.subs(derivs).subs({S.alpha: a, S.sigma: s})
