"""DDPM's reverse variance, exactly: the true reverse kernel of a Gaussian mixture, Analytic-DPM's
optimal variance computed from the mixture's Var[x_0 | x_t], and respaced DDPM with a chosen variance.

Notation (the book's; one jump t -> s, s < t, on any Gaussian path)::

    q(x_s | x_t, x_0) = N(a x_t + b x_0, beta_tilde)           forward.posterior_coefficients
        a = alpha_{t|s} sigma_s^2 / sigma_t^2,   b = alpha_s sigma_{t|s}^2 / sigma_t^2,
        beta_tilde = sigma_{t|s}^2 sigma_s^2 / sigma_t^2,   alpha_{t|s} = alpha_t / alpha_s
    beta_{t|s} = sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2
        the forward variance of the jump (1 - alpha-bar_t / alpha-bar_s on DDPM; beta_t for s = t - 1)

For data p(x_0) = sum_k w_k N(m_k, s_k^2) (per coordinate), with v_k = alpha_t^2 s_k^2 + sigma_t^2::

    q(x_0 | x_t) = sum_k r_k(x_t) N(mu_k, c_k),   r_k the responsibilities of q_t,
        mu_k = (sigma_t^2 m_k + alpha_t s_k^2 x_t) / v_k,   c_k = s_k^2 sigma_t^2 / v_k
    q(x_s | x_t) = sum_k r_k(x_t) N(a x_t + b mu_k, beta_tilde + b^2 c_k)    (the true reverse kernel)
    Var[x_s | x_t] = beta_tilde + b^2 Var[x_0 | x_t]                           (law of total variance)

DDPM's model kernel is p(x_s | x_t) = N(a x_t + b x0_hat(x_t), v) with a variance v that does not
depend on x_t. DDPM offers v = beta_tilde and v = beta_{t|s}; Analytic-DPM (Bao et al. 2022, Theorem 1)
shows that the v minimising the KL divergence of the model's chain from the forward chain, with the
mean optimal, is the average of Var[x_s | x_t] over x_t ~ q_t::

    v* = beta_tilde + b^2 Gamma_t,   Gamma_t = E_{x_t ~ q_t} Var[x_0 | x_t]   (mean over coordinates)
    Gamma_t = (sigma_t^2 / alpha_t^2) (1 - E |eps_hat(x_t)|^2 / d)           (from an eps model)

``expected_x0_variance`` computes Gamma_t by quadrature for a 1-D mixture (exact to ~1e-12);
``expected_x0_variance_from_eps`` is the Monte Carlo estimate that Bao et al. use with a network.
"""

from __future__ import annotations

import math

import torch

from . import _checks
from ._sampling import _noise, _start, grid_scales, predict_eps
from .forward import posterior_coefficients, q_sample, x0_from_eps
from .toy import GaussianMixture

__all__ = ["VARIANCES", "x0_posterior", "x0_variance", "expected_x0_variance",
           "expected_x0_variance_from_eps", "jump_variances", "reverse_variances", "respaced_ddpm",
           "reverse_kernel", "ddpm_kernel", "kernel_curves", "mode_spread", "mode_mass", "w1_by_seed",
           "binned_z"]

F64 = torch.float64
VARIANCES = ("beta", "beta_tilde", "optimal")


def _mixture(mixture):
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a diffnb.toy.GaussianMixture, got {type(mixture).__name__}")
    return mixture


def _as_scale(v, name):
    v = _checks.as_float_tensor(v, name, dtype=F64)
    if not bool(torch.isfinite(v).all()) or bool((v < 0).any()):
        raise ValueError(f"{name} must be finite and >= 0")
    return v


def x0_posterior(mixture, x, alpha, sigma):
    """``(r, mu, c)`` of q(x_0 | x_t = x) = sum_k r_k N(mu_k, diag(c_k)) for a Gaussian mixture:
    r (n, K) responsibilities, mu (n, K, dim) and c (K, dim) (see the module notation)."""
    mix = _mixture(mixture)
    x = mix._points(x)
    a, s = float(_as_scale(alpha, "alpha")), float(_as_scale(sigma, "sigma"))
    if s == 0 or a == 0:
        raise ValueError("alpha and sigma must both be positive for q(x_0 | x_t)")
    s2 = mix.stds**2  # (K, dim)
    v = a * a * s2 + s * s
    r = torch.softmax(torch.log(mix.weights) + _log_normal(x[:, None, :], a * mix.means, v), 1)
    mu = (s * s * mix.means + a * s2 * x[:, None, :]) / v
    return r, mu, s2 * (s * s) / v


def _log_normal(x, mean, var):
    return (-0.5 * ((x - mean) ** 2 / var + torch.log(2 * math.pi * var))).sum(-1)


def x0_variance(mixture, x, alpha, sigma):
    """Var[x_0 | x_t = x] per coordinate, shape (n, dim): sum_k r_k c_k + sum_k r_k (mu_k - x0_hat)^2
    (the within-component variance plus the spread of the component means, no cancellation)."""
    r, mu, c = x0_posterior(mixture, x, alpha, sigma)
    mean = (r[:, :, None] * mu).sum(1, keepdim=True)
    return r @ c + (r[:, :, None] * (mu - mean) ** 2).sum(1)


def expected_x0_variance(mixture, alpha, sigma, nodes: int = 1601, width: float = 10.0):
    """Gamma_t = E_{x_t ~ q_t} Var[x_0 | x_t] for a 1-D mixture, at each (alpha, sigma) given (tensors
    of one shape, or numbers). Quadrature: q_t = sum_k w_k N(alpha m_k, v_k), and each component's
    integral is the trapezoid rule on ``nodes`` points over ``width`` standard deviations either side
    (spectrally accurate for these smooth integrands; 0 at sigma = 0, Var[x_0] at alpha = 0)."""
    mix = _mixture(mixture)
    if mix.dim != 1:
        raise ValueError(f"expected_x0_variance needs a 1-D mixture, got dim={mix.dim}")
    _checks.positive_int(nodes, "nodes")
    alpha, sigma = torch.broadcast_tensors(_as_scale(alpha, "alpha"), _as_scale(sigma, "sigma"))
    z = torch.linspace(-width, width, nodes, dtype=F64)
    wz = torch.exp(-0.5 * z**2)
    wz = wz / torch.trapezoid(wz, z)  # the normal density, normalised on the grid
    m, sd, w = mix.means[:, 0], mix.stds[:, 0], mix.weights
    out = torch.empty(alpha.shape, dtype=F64)
    for i, (a, s) in enumerate(zip(alpha.reshape(-1).tolist(), sigma.reshape(-1).tolist())):
        if s == 0:
            out.view(-1)[i] = 0.0
            continue
        if a == 0:
            out.view(-1)[i] = float(w @ (sd**2 + m**2) - (w @ m) ** 2)
            continue
        x = (a * m[:, None] + torch.sqrt(a * a * sd[:, None] ** 2 + s * s) * z).reshape(-1, 1)
        f = x0_variance(mix, x, a, s)[:, 0].reshape(len(w), nodes)
        out.view(-1)[i] = float(w @ torch.trapezoid(f * wz, z, dim=1))
    return out


def expected_x0_variance_from_eps(model, schedule, t, x0, generator=None):
    """Analytic-DPM's estimate of Gamma_t from an eps model: (sigma_t^2 / alpha_t^2) (1 - mean eps_hat^2)
    over x_t ~ q(x_t | x_0) for the data samples ``x0`` (n, dim); also returns its standard error.
    Returns ``(gamma, stderr)`` as floats."""
    _checks.callable_(model, "model")
    x0 = _checks.batch(x0, "x0")
    t = _checks.as_float_tensor(t, "t", dtype=x0.dtype)
    if t.ndim != 0:
        raise ValueError(f"t must be one time, got shape {tuple(t.shape)}")
    x_t, _ = q_sample(schedule, x0, t, generator=generator)
    with torch.no_grad():
        e2 = (model(x_t, t.expand(len(x0))) ** 2).reshape(len(x0), -1).mean(1)
    k = float(schedule.sigma(t) ** 2 / schedule.alpha(t) ** 2)
    return k * float(1 - e2.mean()), k * float(e2.std() / math.sqrt(len(e2)))


def jump_variances(schedule, ts):
    """``(b, beta_tilde, beta)`` for each jump ts[i] -> ts[i + 1] of a decreasing grid: the posterior's
    coefficient of x_0, its variance, and the forward variance sigma_{t|s}^2 of the jump."""
    ts = _checks.as_float_tensor(ts, "ts", dtype=F64)
    if ts.ndim != 1 or len(ts) < 2 or not bool((ts[1:] < ts[:-1]).all()):
        raise ValueError("ts must be a strictly decreasing 1-D grid of at least two times")
    t, s = ts[:-1], ts[1:]
    _, b, beta_tilde = posterior_coefficients(schedule, t, s)
    la_t, ls_t, _ = schedule.log_scales(t)
    la_s, ls_s, _ = schedule.log_scales(s)
    beta = torch.exp(2 * ls_t) - torch.exp(2 * (la_t - la_s + ls_s))
    return b, beta_tilde, beta


def reverse_variances(schedule, ts, kind: str, mixture=None):
    """The reverse variance of each jump of ``ts``: ``"beta"`` (sigma_{t|s}^2, DDPM's sigma_t^2 = beta_t),
    ``"beta_tilde"`` (the posterior's, DDPM's sigma_t^2 = beta-tilde_t) or ``"optimal"`` (Analytic-DPM's
    beta_tilde + b^2 Gamma_t, exact for ``mixture``, a 1-D GaussianMixture). Shape (len(ts) - 1,)."""
    _checks.one_of(kind, "kind", VARIANCES)
    b, beta_tilde, beta = jump_variances(schedule, ts)
    if kind == "beta":
        return beta
    if kind == "beta_tilde":
        return beta_tilde
    if mixture is None:
        raise ValueError('kind="optimal" needs the data mixture (mixture=...)')
    t = _checks.as_float_tensor(ts, "ts", dtype=F64)[:-1]
    return beta_tilde + b**2 * expected_x0_variance(mixture, schedule.alpha(t), schedule.sigma(t))


def respaced_ddpm(model, x_T, schedule, ts, variance="beta_tilde", mixture=None, generator=None,
                  final_noise: bool = False, callback=None):
    """Ancestral DDPM on the grid ``ts`` with the reverse variance ``variance``: a kind of
    ``reverse_variances`` or a tensor of one variance per jump. Each step::

        x0_hat = (x_t - sigma_t eps_hat) / alpha_t;   x_s = a x_t + b x0_hat + sqrt(v) z

    The last jump adds no noise unless ``final_noise`` (DDPM's Algorithm 2: z = 0 at t = 1). With
    ``variance="beta_tilde"`` this is ``samplers.ddpm`` draw for draw (one noise draw per step)."""
    x, ts = _start(model, x_T, schedule, ts, callback)
    if isinstance(variance, str):
        var = reverse_variances(schedule, ts, variance, mixture)
    else:
        var = _checks.as_float_tensor(variance, "variance", dtype=F64)
        if var.shape != (len(ts) - 1,) or not bool(torch.isfinite(var).all() and (var >= 0).all()):
            raise ValueError(f"variance must be finite, >= 0, one per jump: shape ({len(ts) - 1},)")
    std = [v**0.5 for v in var.tolist()]
    if not final_noise:
        std[-1] = 0.0
    la, ls, _ = grid_scales(schedule, ts)
    alpha, sigma = la.exp().tolist(), ls.exp().tolist()
    t64 = ts.to(F64)
    c_xt, c_x0, _ = (c.tolist() for c in posterior_coefficients(schedule, t64[:-1], t64[1:]))
    for i in range(len(ts) - 1):
        eps_hat = predict_eps(model, x, ts[i])
        x0_hat = x0_from_eps(x, eps_hat, alpha[i], sigma[i])
        # The posterior mean a x_t + b x0_hat, plus the chosen noise (the arithmetic of samplers.ddpm).
        x = torch.mul(x, c_xt[i]).add_(x0_hat, alpha=c_x0[i]).add_(_noise(x, generator), alpha=std[i])
        if callback is not None:
            callback({"i": i, "t": ts[i + 1], "t_prev": ts[i], "x": x, "x0_hat": x0_hat, "eps_hat": eps_hat})
    return x


def reverse_kernel(mixture, schedule, x_t: float, t: float, s: float) -> GaussianMixture:
    """The true reverse kernel q(x_s | x_t) of a 1-D mixture at one point x_t, as a GaussianMixture
    (components whose responsibility underflows to 0 are dropped)."""
    mix = _mixture(mixture)
    if mix.dim != 1:
        raise ValueError(f"reverse_kernel needs a 1-D mixture, got dim={mix.dim}")
    xt = torch.tensor([[float(x_t)]], dtype=F64)
    r, mu, c = x0_posterior(mix, xt, schedule.alpha(t), schedule.sigma(t))
    a, b, bt = (float(v) for v in posterior_coefficients(schedule, t, s))
    keep = r[0] > 0
    w = r[0][keep]
    return GaussianMixture(w / w.sum(), a * float(x_t) + b * mu[0, keep, 0],
                           torch.sqrt(bt + b * b * c[keep, 0]))


def ddpm_kernel(mixture, schedule, x_t: float, t: float, s: float, variance: float):
    """``(mean, var)`` of DDPM's Gaussian kernel N(a x_t + b x0_hat(x_t), variance) with the exact x0_hat
    of ``mixture``; compare with ``reverse_kernel``."""
    mix = _mixture(mixture)
    xt = torch.tensor([[float(x_t)]], dtype=F64)
    x0_hat = float(mix.x0_hat(xt, float(schedule.alpha(t)), float(schedule.sigma(t))))
    a, b, _ = (float(v) for v in posterior_coefficients(schedule, t, s))
    return a * float(x_t) + b * x0_hat, float(variance)


def kernel_curves(mixture, schedule, x_t: float, t: float, s: float, n: int = 1001):
    """The densities of three reverse kernels for one jump t -> s at one point x_t of a 1-D mixture, on
    a grid of ``n`` points centred on DDPM's mean and wide enough for all three (4 standard deviations
    of the widest): the true kernel q(x_s | x_t) (``reverse_kernel``), DDPM's Gaussian with variance
    beta_tilde_{t|s} and the Gaussian with Analytic-DPM's v*_{t|s}, both with the exact mean.
    Returns a dict with keys ``grid`` (n,), ``exact``, ``beta_tilde``, ``optimal`` (each (n,))."""
    _checks.positive_int(n, "n")
    kernel = reverse_kernel(mixture, schedule, x_t, t, s)
    bt = float(posterior_coefficients(schedule, t, s)[2])
    v_opt = float(reverse_variances(schedule, torch.tensor([float(t), float(s)], dtype=F64), "optimal",
                                    mixture)[0])
    mean, _ = ddpm_kernel(mixture, schedule, x_t, t, s, bt)
    half_width = 4 * max(float(kernel.stds.max()), v_opt**0.5)
    grid = torch.linspace(mean - half_width, mean + half_width, n, dtype=F64)[:, None]
    out = {"grid": grid[:, 0], "exact": kernel.log_prob(grid).exp()}
    for kind, v in (("beta_tilde", bt), ("optimal", v_opt)):
        out[kind] = GaussianMixture([1.0], [mean], [v**0.5]).log_prob(grid).exp()
    return out


def mode_spread(samples, mixture):
    """``(fraction, std)`` per component of a 1-D mixture: each sample is assigned to the component
    whose mean is nearest, and the fraction and standard deviation of each group are returned
    (compare with ``mixture.weights`` and ``mixture.stds``). Empty groups get std NaN."""
    mix = _mixture(mixture)
    x = _checks.batch(samples, "samples").reshape(-1).to(F64)
    m = mix.means[:, 0]
    k = (x[:, None] - m).abs().argmin(1)
    frac = torch.bincount(k, minlength=len(m)).to(F64) / len(x)
    std = torch.stack([x[k == j].std() if int((k == j).sum()) > 1 else torch.tensor(float("nan"), dtype=F64)
                       for j in range(len(m))])
    return frac, std


def mode_mass(samples, mixture, inner: float = 1.0, outer: float = 3.0):
    """Where 1-D samples lie relative to the modes of ``mixture``: ``(inside, between, between_exact)``.
    ``inside[k]`` is the fraction of samples within ``inner`` s_k of m_k divided by the data's own
    fraction there (1 for exact samples, > 1 when the samples crowd the centre); ``between`` is the
    fraction farther than ``outer`` s_k from every m_k, and ``between_exact`` the data's (exact CDF)."""
    mix = _mixture(mixture)
    if mix.dim != 1:
        raise ValueError(f"mode_mass needs a 1-D mixture, got dim={mix.dim}")
    x = _checks.batch(samples, "samples").reshape(-1).to(F64)
    m, s = mix.means[:, 0], mix.stds[:, 0]
    dist = (x[:, None] - m).abs() / s
    exact_in = mix.cdf_1d(m + inner * s) - mix.cdf_1d(m - inner * s)
    inside = (dist < inner).to(F64).mean(0) / exact_in
    between = float((dist > outer).all(1).to(F64).mean())
    exact_out = 1 - float((mix.cdf_1d(m + outer * s) - mix.cdf_1d(m - outer * s)).sum())
    return inside, between, exact_out


def w1_by_seed(samples, mixture, n_seeds: int, n_grid: int = 20_001) -> torch.Tensor:
    """W1 to the exact 1-D ``mixture`` of each of ``n_seeds`` equal consecutive blocks of ``samples``
    (a batch made of one block per seed; ``metrics.wasserstein_1d`` on an ``n_grid``-point grid, whose
    quadrature error, ~1e-7 at the default, is far below the sampling noise). Shape (n_seeds,)."""
    from .metrics import wasserstein_1d

    _checks.positive_int(n_seeds, "n_seeds")
    x = _checks.batch(samples, "samples")
    if x.shape[0] % n_seeds:
        raise ValueError(f"samples ({x.shape[0]}) must split into {n_seeds} equal blocks")
    return torch.tensor([wasserstein_1d(block, mixture, n_grid=n_grid) for block in x.chunk(n_seeds)],
                        dtype=F64)


def binned_z(x, residual, edges, min_count: int = 200) -> torch.Tensor:
    """z-scores (mean / standard error) of ``residual`` in each bin of the 1-D ``x`` between consecutive
    ``edges``, for the bins holding at least ``min_count`` samples: a Monte Carlo check that
    E[residual | x] = 0 (for Tweedie's formula, residual = x_0 - x0_hat(x_t))."""
    x = _checks.batch(x, "x").reshape(-1)
    r = _checks.batch(residual, "residual").reshape(-1).to(F64)
    if r.shape != x.shape:
        raise ValueError(f"residual must have one value per x ({x.numel()}), got {r.numel()}")
    which = torch.bucketize(x, torch.as_tensor(edges, dtype=x.dtype))
    z = []
    for k in range(1, len(edges)):
        rk = r[which == k]
        if rk.numel() >= min_count:
            z.append(rk.mean() / (rk.std() / math.sqrt(rk.numel())))
    return torch.stack(z)
