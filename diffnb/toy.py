"""Toy data whose noised score is known exactly, and a small learned denoiser.

A Gaussian mixture sum_k w_k N(m_k, diag(s_k^2)) stays a Gaussian mixture under the forward process::

    x_t = alpha_t x_0 + sigma_t eps   =>   q_t = sum_k w_k N(alpha_t m_k, diag(alpha_t^2 s_k^2 + sigma_t^2))

so its score grad log q_t, the optimal noise prediction eps*(x, t) = -sigma_t grad log q_t(x) and
E[x_0 | x_t] are available in closed form. Sampler error can then be measured apart from model
error; ``EpsMLP`` and ``train_denoiser`` add the model error back, as in the source notes' toy.
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from . import _checks
from .forward import q_sample

__all__ = ["GaussianMixture", "seed_mixture_1d", "mixture_2d", "EpsMLP", "train_denoiser"]


class GaussianMixture:
    """A mixture of axis-aligned Gaussians in ``dim`` dimensions (float64).

    weights: (K,) positive, summing to 1; means: (K, dim) (or (K,) for 1-D); stds: (K,) or (K, dim).
    """

    def __init__(self, weights, means, stds):
        w = torch.as_tensor(weights, dtype=torch.float64)
        m = torch.as_tensor(means, dtype=torch.float64)
        s = torch.as_tensor(stds, dtype=torch.float64)
        if w.ndim != 1 or w.numel() == 0:
            raise ValueError(f"weights must be 1-D and non-empty, got shape {tuple(w.shape)}")
        K = w.numel()
        if m.ndim == 1:
            m = m[:, None]
        if m.ndim != 2 or m.shape[0] != K:
            raise ValueError(f"means must have shape ({K},) or ({K}, dim), got {tuple(m.shape)}")
        if s.ndim == 1:
            s = s[:, None].expand(K, m.shape[1])
        if s.shape != m.shape:
            raise ValueError(f"stds must have shape ({K},) or {tuple(m.shape)}, got {tuple(s.shape)}")
        for name, v in (("weights", w), ("means", m), ("stds", s)):
            _checks.finite(v, name)
        if not bool((w > 0).all()) or abs(float(w.sum()) - 1) > 1e-12:
            raise ValueError(f"weights must be positive and sum to 1, got {w.tolist()}")
        if not bool((s > 0).all()):
            raise ValueError("stds must be positive")
        self.weights, self.means, self.stds = w, m, s.contiguous()
        self.dim = m.shape[1]

    def __repr__(self):
        return f"GaussianMixture(K={self.weights.numel()}, dim={self.dim})"

    # --- data distribution ------------------------------------------------------------------------
    def sample(self, n: int, generator=None, dtype=torch.float64) -> torch.Tensor:
        """``n`` samples of shape ``(n, dim)``."""
        _checks.positive_int(n, "n")
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return (self.means[k] + self.stds[k] * z).to(dtype)

    def mean(self) -> torch.Tensor:
        return (self.weights[:, None] * self.means).sum(0)

    # --- the noised mixture q_t, given alpha_t and sigma_t ------------------------------------------
    def _noised(self, x, alpha, sigma):
        x = _checks.batch(x, "x")
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (batch, {self.dim}), got {tuple(x.shape)}")
        dev = x.device
        alpha = torch.as_tensor(alpha, dtype=torch.float64, device=dev).reshape(-1, 1, 1)
        sigma = torch.as_tensor(sigma, dtype=torch.float64, device=dev).reshape(-1, 1, 1)
        mu = alpha * self.means.to(dev)  # (B or 1, K, dim)
        var = alpha**2 * self.stds.to(dev) ** 2 + sigma**2
        diff = x.to(torch.float64)[:, None, :] - mu  # (B, K, dim)
        log_comp = torch.log(self.weights.to(dev)) - 0.5 * (diff**2 / var + torch.log(2 * math.pi * var)).sum(-1)
        return diff, var, log_comp

    def log_prob(self, x, alpha=1.0, sigma=0.0) -> torch.Tensor:
        """log q_t(x) for the mixture noised to (alpha, sigma); the data density by default."""
        _, _, log_comp = self._noised(x, alpha, sigma)
        return torch.logsumexp(log_comp, -1).to(x.dtype)

    def score(self, x, alpha, sigma) -> torch.Tensor:
        """grad_x log q_t(x), exact."""
        diff, var, log_comp = self._noised(x, alpha, sigma)
        resp = torch.softmax(log_comp, -1)[..., None]  # posterior responsibility of each component
        return (resp * (-diff / var)).sum(1).to(x.dtype)

    def eps(self, x, alpha, sigma) -> torch.Tensor:
        """The optimal noise prediction E[eps | x_t = x] = -sigma_t * grad log q_t(x)."""
        sigma_b = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1)
        return -sigma_b * self.score(x, alpha, sigma)

    def eps_model(self, schedule):
        """``model(x, t) -> eps`` with the exact noise prediction under ``schedule``."""

        def model(x, t):
            return self.eps(x, schedule.alpha(t), schedule.sigma(t))

        return model

    # --- 1-D helpers -------------------------------------------------------------------------------
    def cdf_1d(self, x: torch.Tensor) -> torch.Tensor:
        """The data CDF of a 1-D mixture at points ``x`` (any shape)."""
        if self.dim != 1:
            raise ValueError(f"cdf_1d needs a 1-D mixture, this one has dim={self.dim}")
        z = (x.to(torch.float64)[..., None] - self.means[:, 0]) / self.stds[:, 0]
        return (self.weights * 0.5 * torch.erfc(-z / math.sqrt(2))).sum(-1)

    def project(self, direction: torch.Tensor) -> "GaussianMixture":
        """The 1-D mixture of <u, x> for x from this mixture (exact for axis-aligned components)."""
        u = torch.as_tensor(direction, dtype=torch.float64)
        if u.shape != (self.dim,):
            raise ValueError(f"direction must have shape ({self.dim},), got {tuple(u.shape)}")
        return GaussianMixture(self.weights, self.means @ u, torch.sqrt((self.stds**2 * u**2).sum(-1)))


def seed_mixture_1d() -> GaussianMixture:
    """The source notes' 1-D toy data: weights 0.3/0.4/0.3, means 0.5/0.1/-0.4, stds 0.01/0.03/0.01."""
    return GaussianMixture([0.3, 0.4, 0.3], [0.5, 0.1, -0.4], [0.01, 0.03, 0.01])


def mixture_2d() -> GaussianMixture:
    """A 2-D mixture of eight Gaussians on a ring, the usual 2-D toy, scaled to unit-order size."""
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    means = torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    return GaussianMixture(torch.full((8,), 1 / 8, dtype=torch.float64), means, torch.full((8,), 0.08))


class EpsMLP(torch.nn.Module):
    """A small noise-prediction network eps_theta(x, t): an MLP on [x, sinusoidal embedding of t/t_scale].

    float64 throughout (``model(x, t)`` follows the samplers' contract); ``seed`` fixes the weights.
    """

    def __init__(self, dim: int = 1, t_scale: float = 1.0, hidden: int = 128, depth: int = 3,
                 n_freq: int = 16, seed: int = 0):
        super().__init__()
        _checks.positive_int(dim, "dim")
        _checks.positive_int(hidden, "hidden")
        _checks.positive_int(depth, "depth")
        _checks.positive_int(n_freq, "n_freq")
        if not t_scale > 0:
            raise ValueError(f"t_scale must be positive, got {t_scale}")
        self.dim, self.t_scale = dim, float(t_scale)
        self.register_buffer("freqs", torch.exp(torch.linspace(0, math.log(1000), n_freq, dtype=torch.float64)))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            layers, width = [], dim + 2 * n_freq
            for _ in range(depth):
                layers += [torch.nn.Linear(width, hidden, dtype=torch.float64), torch.nn.SiLU()]
                width = hidden
            layers.append(torch.nn.Linear(width, dim, dtype=torch.float64))
            self.net = torch.nn.Sequential(*layers)

    def forward(self, x, t):
        tau = (t.to(x.dtype) / self.t_scale)[:, None] * self.freqs.to(x.dtype)
        return self.net(torch.cat([x, torch.sin(tau), torch.cos(tau)], -1))


def train_denoiser(model: EpsMLP, data: GaussianMixture, schedule, steps: int = 3000, batch_size: int = 1024,
                   lr: float = 1e-2, seed: int = 0, progress: bool = True) -> list[float]:
    """Minimise the eps-prediction loss E ||eps_theta(x_t, t) - eps||^2 with t uniform on (t_min, t_max].

    Fresh data every step from ``data`` (so there is no over-fitting to a finite set), Adam with a
    cosine learning-rate decay. Returns the per-step losses.
    """
    _checks.positive_int(steps, "steps")
    _checks.positive_int(batch_size, "batch_size")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    span = schedule.t_max - schedule.t_min
    losses = []
    bar = tqdm(range(steps), desc="training", disable=not progress, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt}")
    for _ in bar:
        x0 = data.sample(batch_size, generator=g)
        t = schedule.t_max - span * torch.rand(batch_size, generator=g, dtype=torch.float64)
        x_t, eps = q_sample(schedule, x0, t, generator=g)
        loss = torch.mean((model(x_t, t) - eps) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses
