"""Toy data whose noised score is known exactly, and a small learned denoiser.

Notation (the book's)::

    data        p(x0) = sum_k w_k N(m_k, diag(s_k^2))          K components in dim dimensions
    noised      x_t = alpha x0 + sigma eps  =>  q_t(x) = sum_k w_k N(x; alpha m_k, diag(v_k)),
                v_k = alpha^2 s_k^2 + sigma^2
    responsibility  r_k(x) = w_k N(x; alpha m_k, v_k) / q_t(x)    (a softmax of log-densities)
    score       grad log q_t(x) = sum_k r_k (alpha m_k - x) / v_k
    eps         E[eps | x_t = x] = -sigma grad log q_t(x)
    x0_hat      E[x0 | x_t = x] = sum_k r_k (sigma^2 m_k + alpha s_k^2 x) / v_k   (Tweedie)
    labels      c_k, the class of component k; p(c | x_t) = sum_{k: c_k = c} r_k

At sigma = 0, x_t = alpha x0 carries no information about eps, so E[eps | x_t] = E[eps] = 0, and
``eps`` returns 0 there (for positive s_k this is also the limit of -sigma grad log q_t). With
s = 0 (``EmpiricalMixture(images, std=0)``) and sigma = 0 the formula (x - alpha x0_hat) / sigma
is 0/0 and q_t has no density: ``eps`` returns 0, ``x0_hat`` returns x / alpha, and ``score``,
``log_prob`` and the class methods raise ``ValueError``.

Sampler error can then be measured apart from model error; ``EpsMLP`` and ``train_denoiser`` add the
model error back, as in the source notes' toy.

Speed: when one (alpha, sigma) serves the whole batch (what samplers pass), the per-component
constants are computed once and cached (up to 512 pairs per mixture); the log-densities are matrix
products with x and x^2 (with x alone where all components share their variances, as in
``EmpiricalMixture``), kept as (K, n); score, eps and x0_hat are products of the responsibilities with
per-component constants. One (alpha, sigma) per sample takes the direct broadcast formula.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
from tqdm.auto import tqdm

from . import _checks
from .forward import q_sample

__all__ = ["GaussianMixture", "EmpiricalMixture", "seed_mixture_1d", "mixture_2d", "labelled_mixture_1d",
           "labelled_mixture_2d", "mixture_nd", "EpsMLP", "train_denoiser"]

F64 = torch.float64
_CACHE_SIZE = 512  # (alpha, sigma) pairs whose constants a mixture keeps


# --- arguments -------------------------------------------------------------------------------------
def _scale(v, name, n):
    """``alpha`` or ``sigma``: a float (one value for the batch) or an ``(n, 1)`` float64 tensor.
    A one-element tensor is read as a float, so no gradient flows back to alpha or sigma."""
    if isinstance(v, torch.Tensor):
        if v.dtype not in _checks.FLOAT_DTYPES:
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {v.dtype}")
        if v.numel() == 1:
            return float(v)
        if v.numel() != n or v.ndim > 2:
            raise ValueError(f"{name} must be one number or one value per sample ({n},), "
                             f"got shape {tuple(v.shape)}")
        return v.reshape(n, 1).to(F64)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a number or a floating-point tensor, got {type(v).__name__}")
    return float(v)


def _check_scales(a, s):
    """alpha >= 0 and sigma >= 0, finite, never both 0 (floats, or tensors of one shape)."""
    if isinstance(a, float):
        for name, v in (("alpha", a), ("sigma", s)):
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {v}")
        if a == 0 and s == 0:
            raise ValueError("alpha and sigma must not both be 0 (x_t would be 0 whatever x0 is)")
        return
    for name, v in (("alpha", a), ("sigma", s)):
        _checks.finite(v, name)
        if not bool((v >= 0).all()):
            raise ValueError(f"{name} must be >= 0")
    if bool(((a == 0) & (s == 0)).any()):
        raise ValueError("alpha and sigma must not both be 0 (x_t would be 0 whatever x0 is)")


def _labels(labels, K):
    if labels is None:
        return None
    if isinstance(labels, torch.Tensor):
        lab = labels
    else:
        try:
            lab = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"labels must be integers, one per component, got {labels!r}") from err
    if lab.dtype == torch.bool or lab.is_floating_point() or lab.is_complex():
        raise TypeError(f"labels must be integers, got dtype {lab.dtype}")
    if lab.shape != (K,):
        raise ValueError(f"labels must have shape ({K},), one per component, got {tuple(lab.shape)}")
    lab = lab.detach().to(device="cpu", dtype=torch.int64)
    if bool((lab < 0).any()):
        raise ValueError(f"labels must be >= 0, got {lab.tolist()}")
    return lab


def _coefs(kind, a, s, s2, u):
    """(c_m, c_x) with prediction = sum_k r_k (c_m m_k + c_x x); u = 1 / v (see the module notation)."""
    if kind == "score":
        return a * u, -u
    if kind == "eps":
        return u * -(s * a), u * s
    return u * (s * s), (a * s2) * u  # x0


_WIDE = 128  # from this many components on, log-densities are laid out (n, K) instead of (K, n)


def _softmax_(L, axis):
    """Softmax over the components, the dimension ``axis`` of the log-densities; large ``L`` are
    overwritten.

    Few components are laid out (K, n) (``axis = 0``) because torch's CPU softmax over a short
    contiguous last dimension is slow (8 components of 100,000 points: 5x longer as (n, K)), and a
    max-shifted exp in place is 2x faster still there (no new allocation of the size of ``L``; not when
    autograd records ``L``, whose max needs its input intact). Many components (an empirical mixture)
    are laid out (n, K), where torch's own softmax and the products that follow are fastest."""
    if axis == 1 or L.numel() < 65_536 or L.requires_grad:
        return torch.softmax(L, axis)
    L = L.sub_(L.amax(0)).exp_()
    return L.div_(L.sum(0))


# --- q_t at given (alpha, sigma): log-densities and the maps responsibilities -> predictions -----------
# Each class below holds q_t's constants; ``logits(x)`` are log w_k N(x; alpha m_k, v_k) (up to a
# per-point constant), with the components along dimension ``axis`` (see ``_softmax_``), and
# ``apply(kind, x, r)`` turns responsibilities r of that layout into score, eps or x0_hat.
class _Shared:
    """Every component has the same variances v (dim,), so |x|^2 / v drops out of the responsibilities:
    log w_k N(x; alpha m_k, v) = row(x) + c_k + (alpha m_k / v) . x, c_k = log w_k - alpha^2 |m_k|^2_v / 2.
    ``a``, ``s``: floats, or (n, 1) tensors (one pair per sample)."""

    def __init__(self, mix, a, s, device):
        P = mix._on(device)
        self.m, self.s2 = P.means, P.s2
        self.axis = 1 if self.m.shape[0] >= _WIDE else 0
        # Point masses (std = 0) at sigma = 0 have no density: compute with sigma = 1 there and patch
        # eps (0) and x0_hat (x / alpha) in ``apply``. ``clean`` is None, True, or an (n, 1) mask.
        self.clean = None
        if mix._point_masses:
            if isinstance(s, float) and s == 0:
                self.clean, s = True, 1.0
            elif not isinstance(s, float) and bool((s == 0).any()):
                self.clean, s = s == 0, torch.where(s == 0, 1.0, s)
        self.a, self.s = a, s
        self.u = torch.mul(self.s2, a * a).add_(s * s).reciprocal_()  # 1 / v: (dim,) or (n, dim)
        self.au = self.u * a
        if isinstance(a, float):
            self.c = torch.addmv(P.log_w, P.m2, self.u, alpha=-0.5 * a * a)[:, None]  # (K, 1)
        else:
            self.c = torch.addmm(P.log_w[:, None], P.m2, (self.au * a).T, alpha=-0.5)  # (K, n)
        if self.axis == 1:
            self.c = self.c.T.contiguous()
        self._coefs = {}

    def logits(self, x):
        if self.axis == 1:
            return torch.addmm(self.c, x * self.au, self.m.T)
        return torch.addmm(self.c, self.m, (x * self.au).T)

    def log_prob(self, x):
        row = 0.5 * torch.log(self.u / (2 * math.pi)).sum(-1) - 0.5 * (x * x * self.u).sum(1)
        return torch.logsumexp(self.logits(x), self.axis) + row

    def apply(self, kind, x, r):
        if self.clean is True:
            return torch.zeros_like(x) if kind == "eps" else x / self.a
        cm_cx = self._coefs.get(kind)
        if cm_cx is None:
            cm_cx = _coefs(kind, self.a, self.s, self.s2, self.u)
            if isinstance(self.a, float):
                self._coefs[kind] = cm_cx
        out = torch.addcmul(((r if self.axis else r.T) @ self.m).mul_(cm_cx[0]), x, cm_cx[1])
        if self.clean is not None:
            out = torch.where(self.clean, torch.zeros_like(x) if kind == "eps" else x / self.a, out)
        return out


class _Diag:
    """Per-component diagonal variances v_k at one (alpha, sigma) (floats): with P = alpha m / v and
    U = 1 / v (K, dim), log w_k N(x; alpha m_k, v_k) = c_k + P @ x.T - (U @ (x^2).T) / 2, and
    score = r.T @ P - x (r.T @ U), eps = -sigma score, x0_hat = r.T @ (sigma^2 m U) + x (r.T @ (alpha s^2 U))."""

    clean, axis = None, 0

    def __init__(self, mix, a, s, device):
        P = mix._on(device)
        self.m, self.s2 = P.means, P.s2
        self.a, self.s = a, s
        self.u = torch.mul(self.s2, a * a).add_(s * s).reciprocal_()
        self.p = torch.mul(self.m, self.u).mul_(a)
        # c_k = log w_k - sum_d (log(2 pi v_kd) + alpha^2 m_kd^2 / v_kd) / 2
        half = torch.log(self.u).addcmul_(self.p, self.m, value=-a).sum(1)
        self.c = torch.add(P.log_w_2pi, half, alpha=0.5)[:, None]
        self._x0 = None

    def logits(self, x):
        return torch.addmm(torch.addmm(self.c, self.p, x.T), self.u, (x * x).T, alpha=-0.5)

    def log_prob(self, x):
        return torch.logsumexp(self.logits(x), 0)

    def apply(self, kind, x, r):
        rT = r.T
        if kind == "x0":
            if self._x0 is None:
                cm, cx = _coefs("x0", self.a, self.s, self.s2, self.u)
                self._x0 = (cm * self.m, cx)
            return torch.addcmul(rT @ self._x0[0], x, rT @ self._x0[1])
        scale = 1.0 if kind == "score" else -self.s  # eps = -sigma score
        o_p = torch.addmm(x, rT, self.p, beta=0.0, alpha=scale)
        o_u = torch.addmm(x, rT, self.u, beta=0.0, alpha=scale)
        return torch.addcmul(o_p, x, o_u, value=-1.0)


class _DiagBatch:
    """Per-component diagonal variances with one (alpha, sigma) per sample ((n, 1) tensors):
    the direct formula on (K, n, dim) tensors."""

    clean, axis = None, 0

    def __init__(self, mix, a, s, device):
        P = mix._on(device)
        self.m, self.s2 = P.means[:, None, :], P.s2[:, None, :]
        self.a, self.s = a[None], s[None]  # (1, n, 1)
        v = self.a**2 * self.s2 + self.s**2
        self.u = 1 / v
        self.c = P.log_w[:, None] - 0.5 * torch.log(2 * math.pi * v).sum(-1)

    def logits(self, x):
        diff = x - self.a * self.m
        return self.c - 0.5 * (diff * diff * self.u).sum(-1)

    def log_prob(self, x):
        return torch.logsumexp(self.logits(x), 0)

    def apply(self, kind, x, r):
        cm, cx = _coefs(kind, self.a, self.s, self.s2, self.u)
        return (r[:, :, None] * (cm * self.m + cx * x)).sum(0)


class _Mixture:
    """What Gaussian and empirical mixtures share: weights (K,), means (K, dim), labels, and the exact
    noised density, score, eps and x0_hat. Subclasses set the attributes in ``_setup``."""

    def _setup(self, weights, means, s2, labels):
        self.weights, self.means = weights, means
        self.dim = means.shape[1]
        self._log_w = torch.log(weights)
        self._log_w_2pi = self._log_w - 0.5 * self.dim * math.log(2 * math.pi)
        # One variance row for every component: the cheaper shared form (s2 is (dim,)); else (K, dim).
        self._shared = s2.ndim == 1
        self._s2 = s2
        self._m2 = means * means if self._shared else None
        self._point_masses = self._shared and bool((s2 == 0).all())
        self.labels = _labels(labels, weights.numel())
        if self.labels is None:
            self.n_classes, self._class_index = None, []
        else:
            self.n_classes = int(self.labels.max()) + 1
            self._class_index = [torch.nonzero(self.labels == c)[:, 0] for c in range(self.n_classes)]
        self._cache, self._devices = {}, {}

    def _on(self, device):
        """The parameters on ``device``, copied there once (the cached constants share them)."""
        P = self._devices.get(device)
        if P is None:
            names = ("means", "s2", "log_w", "log_w_2pi", "m2")
            values = (self.means, self._s2, self._log_w, self._log_w_2pi, self._m2)
            P = self._devices[device] = SimpleNamespace(
                **{k: None if v is None else v.to(device) for k, v in zip(names, values)})
        return P

    # --- arguments ------------------------------------------------------------------------------------
    def _points(self, x):
        x = _checks.batch(x, "x")
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (batch, {self.dim}), got {tuple(x.shape)}")
        return x if x.dtype == F64 else x.to(F64)

    def _noised(self, x, alpha, sigma):
        """(x as float64, q_t's constants at (alpha, sigma)), cached when alpha and sigma are scalars."""
        x64 = self._points(x)
        a, s = _scale(alpha, "alpha", x.shape[0]), _scale(sigma, "sigma", x.shape[0])
        if isinstance(a, float) and isinstance(s, float):
            key = (a, s, x.device)
            q = self._cache.get(key)
            if q is None:
                _check_scales(a, s)
                if len(self._cache) >= _CACHE_SIZE:
                    self._cache.pop(next(iter(self._cache)))
                q = self._cache[key] = (_Shared if self._shared else _Diag)(self, a, s, x.device)
            return x64, q
        n, dev = x.shape[0], x.device
        a, s = (torch.full((n, 1), v, dtype=F64, device=dev) if isinstance(v, float) else v.to(dev)
                for v in (a, s))
        _check_scales(a, s)
        return x64, (_Shared if self._shared else _DiagBatch)(self, a, s, dev)

    def _density(self, q, what):
        if q.clean is not None:
            raise ValueError(f"sigma must be positive for {what}: with std = 0 the data are point masses, "
                             "which have no density at sigma = 0")

    def _predict(self, kind, x, alpha, sigma):
        x64, q = self._noised(x, alpha, sigma)
        if kind == "score":
            self._density(q, "score")
        return q.apply(kind, x64, _softmax_(q.logits(x64), q.axis)).to(x.dtype)

    # --- the data distribution ------------------------------------------------------------------------
    def sample(self, n: int, generator=None, dtype=F64, return_labels: bool = False):
        """``n`` samples of shape ``(n, dim)`` (and their class labels if ``return_labels``)."""
        _checks.positive_int(n, "n")
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=F64)
        x = (self.means[k] + self._std_of(k) * z).to(dtype)
        if not return_labels:
            return x
        if self.labels is None:
            raise ValueError("return_labels needs a labelled mixture (pass labels=...)")
        return x, self.labels[k]

    def _std_of(self, k):
        return self._s2.sqrt() if self._shared else self._s2[k].sqrt()

    def mean(self) -> torch.Tensor:
        """E[x0], shape (dim,)."""
        return self.weights @ self.means

    # --- the noised mixture q_t, given alpha and sigma (numbers, or one value per sample) --------------
    def log_prob(self, x, alpha=1.0, sigma=0.0) -> torch.Tensor:
        """log q_t(x) for the mixture noised to (alpha, sigma); the data density by default."""
        x64, q = self._noised(x, alpha, sigma)
        self._density(q, "log_prob")
        return q.log_prob(x64).to(x.dtype)

    def score(self, x, alpha, sigma) -> torch.Tensor:
        """grad_x log q_t(x), exact."""
        return self._predict("score", x, alpha, sigma)

    def eps(self, x, alpha, sigma) -> torch.Tensor:
        """The optimal noise prediction E[eps | x_t = x] = -sigma grad log q_t(x); 0 at sigma = 0."""
        return self._predict("eps", x, alpha, sigma)

    def x0_hat(self, x, alpha, sigma) -> torch.Tensor:
        """The optimal data prediction E[x0 | x_t = x] = (x + sigma^2 grad log q_t(x)) / alpha (Tweedie),
        from the per-component posterior means, so that alpha = 0 gives the data mean."""
        return self._predict("x0", x, alpha, sigma)

    def eps_model(self, schedule):
        """``model(x, t) -> eps``, the exact noise prediction under ``schedule`` (any object with
        ``alpha(t)`` and ``sigma(t)``); a batch with one time takes the cached fast path."""
        for name in ("alpha", "sigma"):
            if not callable(getattr(schedule, name, None)):
                raise TypeError(f"schedule must have an {name}(t) method, got {type(schedule).__name__}")

        def model(x, t):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"t must be a torch.Tensor, got {type(t).__name__}")
            n = x.shape[0] if isinstance(x, torch.Tensor) and x.ndim else 1
            if t.ndim > 1 or t.numel() not in (1, n):
                raise ValueError(f"t must have shape ({n},), one time per sample, got {tuple(t.shape)}")
            t0 = t.reshape(-1)[:1]
            if t.numel() == 1 or torch.equal(t, t0.expand_as(t)):
                t = t0
            return self.eps(x, schedule.alpha(t), schedule.sigma(t))

        return model

    # --- classes ---------------------------------------------------------------------------------------
    def _require_labels(self):
        if self.labels is None:
            raise ValueError("this mixture has no labels: construct it with labels=...")

    def _class(self, c, n=None):
        """c as an int class that has components, or (n,) int64 tensor of them."""
        self._require_labels()
        if isinstance(c, torch.Tensor) and c.ndim == 1 and n is not None:
            if c.dtype == torch.bool or c.is_floating_point() or c.shape != (n,):
                raise ValueError(f"c must be an int or an int64 tensor of shape ({n},), "
                                 f"got {c.dtype} {tuple(c.shape)}")
            values = set(c.unique().tolist())
        else:
            if isinstance(c, torch.Tensor) and c.ndim == 0 and not c.is_floating_point() and c.dtype != torch.bool:
                c = int(c)
            if isinstance(c, bool) or not isinstance(c, int):
                raise TypeError(f"c must be an int class label, got {type(c).__name__}")
            values = {c}
        present = {k for k, idx in enumerate(self._class_index) if idx.numel()}
        if not values <= present:
            raise ValueError(f"c must be one of the mixture's classes {sorted(present)}, "
                             f"got {sorted(values - present)}")
        return c

    def conditional(self, c):
        """p(x0 | c): the class-c components, weights renormalised to sum to 1."""
        c = self._class(c)
        return self._subset(self._class_index[c])

    def class_posterior(self, x, alpha, sigma, log: bool = False) -> torch.Tensor:
        """p(c | x_t = x) of shape (n, n_classes), rows summing to 1 (log p if ``log``): per class a
        log-sum-exp of log w_k N(x; alpha m_k, v_k), normalised by the log-sum-exp over classes."""
        self._require_labels()
        x64, q = self._noised(x, alpha, sigma)
        self._density(q, "class_posterior")
        L, k = q.logits(x64), q.axis
        empty = torch.full((x64.shape[0],), -math.inf, dtype=F64, device=L.device)
        per = [L.index_select(k, idx.to(L.device)).logsumexp(k) if idx.numel() else empty
               for idx in self._class_index]
        logp = torch.stack(per, 1)
        logp = logp - logp.logsumexp(1, keepdim=True)
        return (logp if log else logp.exp()).to(x.dtype)

    def class_log_prob_grad(self, x, alpha, sigma, c) -> torch.Tensor:
        """grad_x log p(c | x_t = x) = grad log q_t(x | c) - grad log q_t(x), in closed form; ``c`` an
        int or one class per sample."""
        x64, q = self._noised(x, alpha, sigma)
        c = self._class(c, n=x64.shape[0])
        self._density(q, "class_log_prob_grad")
        L = q.logits(x64)
        labels = self.labels.to(L.device)
        mask = labels[:, None] == (c.to(L.device)[None, :] if isinstance(c, torch.Tensor) else c)  # (K, n)
        if q.axis == 1:
            mask = mask.T
        r_c = _softmax_(L.masked_fill(~mask, -math.inf), q.axis)
        r = _softmax_(L, q.axis)
        return (q.apply("score", x64, r_c) - q.apply("score", x64, r)).to(x.dtype)


class GaussianMixture(_Mixture):
    """A mixture of axis-aligned Gaussians in ``dim`` dimensions (float64).

    weights: (K,) positive, summing to 1; means: (K, dim) (or (K,) for 1-D); stds: (K,) or (K, dim),
    positive; labels: optional, one int class >= 0 per component. ``n_classes`` is the largest label
    plus 1 (a class with no component has p(c | x_t) = 0); ``labels`` and ``n_classes`` are None for an
    unlabelled mixture.
    """

    def __init__(self, weights, means, stds, labels=None):
        w = torch.as_tensor(weights, dtype=F64)
        m = torch.as_tensor(means, dtype=F64)
        s = torch.as_tensor(stds, dtype=F64)
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
        self.stds = s.contiguous()
        s2 = self.stds**2
        self._setup(w, m.contiguous(), s2[0].clone() if bool((s2 == s2[:1]).all()) else s2, labels)

    def __repr__(self):
        lab = "" if self.labels is None else f", n_classes={self.n_classes}"
        return f"GaussianMixture(K={self.weights.numel()}, dim={self.dim}{lab})"

    def _std_of(self, k):
        return self.stds[k]

    def _subset(self, idx):
        w = self.weights[idx]
        return GaussianMixture(w / w.sum(), self.means[idx], self.stds[idx],
                               None if self.labels is None else self.labels[idx])

    # --- 1-D helpers -----------------------------------------------------------------------------------
    def cdf_1d(self, x: torch.Tensor) -> torch.Tensor:
        """The data CDF of a 1-D mixture at points ``x`` (any shape)."""
        if self.dim != 1:
            raise ValueError(f"cdf_1d needs a 1-D mixture, this one has dim={self.dim}")
        z = (x.to(F64)[..., None] - self.means[:, 0]) / self.stds[:, 0]
        return (self.weights * 0.5 * torch.erfc(-z / math.sqrt(2))).sum(-1)

    def project(self, direction: torch.Tensor) -> "GaussianMixture":
        """The 1-D mixture of <u, x> for x from this mixture (exact for axis-aligned components)."""
        u = torch.as_tensor(direction, dtype=F64)
        if u.shape != (self.dim,):
            raise ValueError(f"direction must have shape ({self.dim},), got {tuple(u.shape)}")
        stds = torch.sqrt((self.stds**2 * u**2).sum(-1))
        return GaussianMixture(self.weights, self.means @ u, stds, self.labels)


class EmpiricalMixture(_Mixture):
    """The data set ``images`` (n_images, dim) as a mixture: each row x_i a component N(x_i, std^2 I)
    with weight 1 / n_images. ``std = 0`` is the empirical distribution itself, whose noised version
    is sum_i N(alpha x_i, sigma^2 I) / n_images; its exact x0_hat is a softmax-weighted average of the
    training rows, which tends to the nearest one (scaled by alpha) as sigma -> 0: the exact model
    memorises. ``labels``: optional, one int class per row (as in ``GaussianMixture``)."""

    def __init__(self, images, std: float = 0.0, labels=None):
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a 2-D torch.Tensor, got {type(images).__name__}")
        if images.dtype not in _checks.FLOAT_DTYPES:
            raise TypeError(f"images must be a floating-point tensor, got dtype {images.dtype}")
        if images.ndim != 2 or images.shape[0] == 0 or images.shape[1] == 0:
            raise ValueError(f"images must be 2-D (n_images, dim) and non-empty, "
                             f"got shape {tuple(images.shape)}")
        _checks.finite(images, "images")
        if isinstance(std, torch.Tensor) and std.numel() == 1:
            std = float(std)
        if isinstance(std, bool) or not isinstance(std, (int, float)):
            raise TypeError(f"std must be a number, got {type(std).__name__}")
        if not (math.isfinite(std) and std >= 0):
            raise ValueError(f"std must be finite and >= 0, got {std}")
        self.std = float(std)
        X = images.detach().to(F64, copy=True)
        N, d = X.shape
        self._setup(torch.full((N,), 1 / N, dtype=F64), X, torch.full((d,), self.std**2, dtype=F64), labels)

    @property
    def images(self) -> torch.Tensor:
        return self.means

    def __repr__(self):
        lab = "" if self.labels is None else f", n_classes={self.n_classes}"
        return f"EmpiricalMixture(n_images={self.means.shape[0]}, dim={self.dim}, std={self.std:g}{lab})"

    def _subset(self, idx):
        return EmpiricalMixture(self.means[idx], self.std, None if self.labels is None else self.labels[idx])

    def nearest(self, x):
        """(distance, index) of the training row nearest to each row of ``x`` (Euclidean)."""
        x64 = self._points(x)
        P = self._on(x64.device)
        # argmin_i |x - x_i|^2 = argmin_i (|x_i|^2 - 2 x . x_i); then the distance, directly.
        index = torch.addmm(P.m2.sum(1), x64, P.means.T, alpha=-2.0).argmin(1)
        X = P.means
        return (x64 - X[index]).norm(dim=1).to(x.dtype), index


def seed_mixture_1d() -> GaussianMixture:
    """The source notes' 1-D toy data: weights 0.3/0.4/0.3, means 0.5/0.1/-0.4, stds 0.01/0.03/0.01."""
    return GaussianMixture([0.3, 0.4, 0.3], [0.5, 0.1, -0.4], [0.01, 0.03, 0.01])


def labelled_mixture_1d() -> GaussianMixture:
    """``seed_mixture_1d`` with each mode its own class: labels 0, 1, 2 for the modes at 0.5, 0.1, -0.4."""
    return GaussianMixture([0.3, 0.4, 0.3], [0.5, 0.1, -0.4], [0.01, 0.03, 0.01], labels=[0, 1, 2])


def mixture_2d() -> GaussianMixture:
    """A 2-D mixture of eight Gaussians on a ring, the usual 2-D toy, scaled to unit-order size."""
    angles = torch.arange(8, dtype=F64) * (2 * math.pi / 8)
    means = torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    return GaussianMixture(torch.full((8,), 1 / 8, dtype=F64), means, torch.full((8,), 0.08))


def labelled_mixture_2d() -> GaussianMixture:
    """Three classes of two elongated Gaussians each, in 2-D: class 0 on the left, class 1 on the right,
    class 2 at the top and bottom; the classes overlap a little near the origin."""
    means = [[-1.0, 0.4], [-0.6, -0.5], [1.0, -0.4], [0.6, 0.5], [0.0, 1.0], [0.0, -1.0]]
    stds = [[0.15, 0.3], [0.25, 0.12], [0.15, 0.3], [0.25, 0.12], [0.3, 0.1], [0.3, 0.1]]
    weights = [0.2, 0.15, 0.2, 0.15, 0.15, 0.15]
    return GaussianMixture(weights, means, stds, labels=[0, 0, 1, 1, 2, 2])


def mixture_nd(dim: int = 16, n_classes: int = 4, per_class: int = 2, seed: int = 0) -> GaussianMixture:
    """A labelled mixture in ``dim`` dimensions, the same for the same arguments: ``n_classes`` classes of
    ``per_class`` components, means N(0, I), per-coordinate stds uniform in [0.2, 0.5], weights
    proportional to uniforms in [1, 2]."""
    for name, v in (("dim", dim), ("n_classes", n_classes), ("per_class", per_class)):
        _checks.positive_int(v, name)
    g = torch.Generator().manual_seed(seed)
    K = n_classes * per_class
    means = torch.randn(K, dim, generator=g, dtype=F64)
    stds = 0.2 + 0.3 * torch.rand(K, dim, generator=g, dtype=F64)
    w = 1 + torch.rand(K, generator=g, dtype=F64)
    return GaussianMixture(w / w.sum(), means, stds, labels=torch.arange(n_classes).repeat_interleave(per_class))


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
