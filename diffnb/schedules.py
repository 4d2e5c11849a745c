"""Noise schedules of variance-preserving (VP) diffusions.

Notation (the book's, see the notation page)::

    x_t = alpha_t x_0 + sigma_t eps,      alpha_t^2 + sigma_t^2 = 1
    alpha_bar_t = alpha_t^2               (DDPM's cumulative product, diffusers' ``alphas_cumprod``)
    log_snr     = lambda_t = log(alpha_t / sigma_t)
    noise_to_signal = sigma_t / alpha_t   (EDM's and k-diffusion's "sigma")

DDPM's per-step ``alpha_t = 1 - beta_t`` is always written ``1 - beta`` here: the name ``alpha`` means
the signal scale ``sqrt(alpha_bar)`` of DPM-Solver, and nothing else.

Every schedule is defined by ``log_alpha(t)``; the other quantities follow from it with
``expm1``/``log1p`` so that nothing is lost where alpha_t is close to 1.
"""

from __future__ import annotations

import math

import torch

from . import _checks

__all__ = ["VPSchedule", "DiscreteVP", "LinearVP", "CosineVP"]

SPACINGS = ("uniform", "logsnr", "quadratic")


class VPSchedule:
    """Base class: a VP schedule on ``[t_min, t_max]`` given by ``log_alpha(t)``."""

    t_min: float = 0.0
    t_max: float = 1.0

    # --- to be provided by subclasses (inputs are float64 tensors inside the range) -------------
    def _log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _d_log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _t_of_log_alpha(self, log_alpha: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # --- public API ------------------------------------------------------------------------------
    def check_times(self, t: torch.Tensor, name: str = "t") -> None:
        """Raise ``ValueError`` unless every time lies in ``[t_min, t_max]``."""
        _checks.finite(t, name)
        lo, hi = float(t.min()), float(t.max())
        if lo < self.t_min or hi > self.t_max:
            raise ValueError(
                f"{name} must lie in [{self.t_min:g}, {self.t_max:g}] for {self!r}, "
                f"got values in [{lo:g}, {hi:g}]"
            )

    def _eval(self, fn, t, name="t"):
        t = _checks.as_float_tensor(t, name)
        self.check_times(t, name)
        return fn(t.to(torch.float64)).to(t.dtype)

    def log_alpha(self, t):
        """log alpha_t (float64 inside, returned in t's dtype; Python numbers give float64)."""
        return self._eval(self._log_alpha, t)

    def alpha(self, t):
        """Signal scale alpha_t = sqrt(alpha_bar_t)."""
        return self._eval(lambda u: self._log_alpha(u).exp(), t)

    def alpha_bar(self, t):
        """alpha_bar_t = alpha_t^2."""
        return self._eval(lambda u: (2 * self._log_alpha(u)).exp(), t)

    def sigma(self, t):
        """Noise scale sigma_t = sqrt(1 - alpha_t^2)."""
        return self._eval(lambda u: torch.sqrt(-torch.expm1(2 * self._log_alpha(u))), t)

    def log_snr(self, t):
        """lambda_t = log(alpha_t / sigma_t); +inf where sigma_t = 0 (clean data)."""
        return self._eval(_log_snr_of_log_alpha_fn(self._log_alpha), t)

    def noise_to_signal(self, t):
        """sigma_t / alpha_t = exp(-lambda_t), the "sigma" of EDM and k-diffusion."""
        return self._eval(lambda u: torch.exp(-_log_snr_of_log_alpha_fn(self._log_alpha)(u)), t)

    def d_log_alpha(self, t):
        """d log(alpha_t) / dt, the drift coefficient f(t) of the forward SDE."""
        return self._eval(self._d_log_alpha, t)

    def t_of_log_snr(self, lam):
        """The time t at which log_snr(t) = lam (the inverse of ``log_snr``)."""
        lam = _checks.as_float_tensor(lam, "lam")
        if bool(torch.isnan(lam).any()):
            raise ValueError("lam must not contain NaN")
        lam64 = lam.to(torch.float64)
        log_alpha = -0.5 * torch.nn.functional.softplus(-2 * lam64)  # alpha^2 = 1 / (1 + e^{-2 lam})
        lo = self._log_alpha(torch.tensor(self.t_max, dtype=torch.float64))
        if bool((log_alpha < lo - 1e-12 * abs(float(lo))).any()):
            lam_min = float(_log_snr_of_log_alpha_fn(self._log_alpha)(torch.tensor(self.t_max, dtype=torch.float64)))
            raise ValueError(f"lam must be at least log_snr(t_max) = {lam_min:.6g} for {self!r}, got {float(lam.min()):.6g}")
        t = self._t_of_log_alpha(torch.maximum(log_alpha, lo))
        return t.clamp(self.t_min, self.t_max).to(lam.dtype)

    def timesteps(self, n: int, spacing: str = "uniform", t_start=None, t_end=None, dtype=torch.float64):
        """``n + 1`` strictly decreasing times from ``t_start`` (default ``t_max``) to ``t_end``
        (default ``t_min``).

        spacing
            ``"uniform"``: equal steps in t. ``"logsnr"``: equal steps in lambda (DPM-Solver's
            choice; both ends need a finite lambda, so pass ``t_end > t_min``). ``"quadratic"``:
            equal steps in sqrt(t) (DPM-Solver's "time_quadratic"), dense near ``t_end``.
        """
        _checks.positive_int(n, "n")
        _checks.one_of(spacing, "spacing", SPACINGS)
        t_start = self.t_max if t_start is None else float(t_start)
        t_end = self.t_min if t_end is None else float(t_end)
        for name, value in (("t_start", t_start), ("t_end", t_end)):
            if not self.t_min <= value <= self.t_max:
                raise ValueError(f"{name} must lie in [{self.t_min:g}, {self.t_max:g}], got {value:g}")
        if not t_start > t_end:
            raise ValueError(f"t_start must be greater than t_end, got t_start={t_start:g}, t_end={t_end:g}")
        f64 = torch.float64
        if spacing == "uniform":
            ts = torch.linspace(t_start, t_end, n + 1, dtype=f64)
        elif spacing == "quadratic":
            ts = torch.linspace(math.sqrt(t_start), math.sqrt(t_end), n + 1, dtype=f64) ** 2
        else:
            lam_start, lam_end = (float(self.log_snr(v)) for v in (t_start, t_end))
            if not (math.isfinite(lam_start) and math.isfinite(lam_end)):
                raise ValueError(
                    f"spacing='logsnr' needs a finite log_snr at both ends; log_snr(t_end={t_end:g}) = "
                    f"{lam_end}: pass t_end > {self.t_min:g} (for example 1e-3 of the range)"
                )
            ts = self.t_of_log_snr(torch.linspace(lam_start, lam_end, n + 1, dtype=f64))
        ts[0], ts[-1] = t_start, t_end  # exact ends, whatever the rounding
        if not bool((ts[1:] < ts[:-1]).all()):
            raise ValueError(f"n={n} is too many steps to keep the {spacing} grid strictly decreasing in float64")
        return ts.to(dtype)


def _log_snr_of_log_alpha_fn(log_alpha_fn):
    def log_snr(t):
        la = log_alpha_fn(t)
        return la - 0.5 * torch.log(-torch.expm1(2 * la))

    return log_snr


class DiscreteVP(VPSchedule):
    """DDPM's discrete schedule from ``betas[0..T-1]`` = beta_1 .. beta_T.

    Time is DDPM's index: ``t`` in ``[0, T]``, ``alpha_bar(0) = 1`` (clean data) and
    ``alpha_bar(n) = prod_{i <= n} (1 - beta_i)`` at integers. Between integers log(alpha) is linear
    in t, so every real t has a schedule value and DPM-Solver can use the same model as DDPM.
    """

    def __init__(self, betas):
        if not isinstance(betas, torch.Tensor):
            raise TypeError(f"betas must be a 1-D torch.Tensor, got {type(betas).__name__}")
        if betas.dtype not in _checks.FLOAT_DTYPES:
            raise TypeError(f"betas must be a floating-point tensor, got dtype {betas.dtype}")
        if betas.ndim != 1 or betas.numel() < 1:
            raise ValueError(f"betas must be 1-D and non-empty, got shape {tuple(betas.shape)}")
        _checks.finite(betas, "betas")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError(
                f"betas must lie in the open interval (0, 1), got values in [{float(betas.min()):g}, {float(betas.max()):g}]"
            )
        self.betas = betas.detach().to(torch.float64).cpu()
        self.T = int(betas.numel())
        self.t_max = float(self.T)
        # log alpha at the integers 0..T: 0.5 * cumulative sum of log(1 - beta_i).
        steps = 0.5 * torch.log1p(-self.betas)
        self._knots = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(steps, 0)])
        self._slopes = steps

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        """DDPM's linear betas (Ho et al. 2020)."""
        _checks.positive_int(T, "T")
        return cls(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = 0.999):
        """Improved DDPM's cosine schedule (Nichol and Dhariwal 2021), betas clipped at ``max_beta``."""
        _checks.positive_int(T, "T")
        if not s > 0:
            raise ValueError(f"s must be positive, got {s}")
        n = torch.arange(T + 1, dtype=torch.float64)
        f = torch.cos((n / T + s) / (1 + s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
        return cls(betas.clamp(max=max_beta))

    def __repr__(self):
        return f"DiscreteVP(T={self.T})"

    def _segment(self, t):
        return torch.clamp(torch.floor(t).long(), 0, self.T - 1)

    def _log_alpha(self, t):
        k = self._segment(t)
        knots, slopes = self._knots.to(t.device), self._slopes.to(t.device)
        return knots[k] + (t - k) * slopes[k]

    def _d_log_alpha(self, t):
        # Piecewise constant; at an integer n > 0 the slope of the step that ends there (n-1, n].
        k = torch.clamp(torch.ceil(t).long() - 1, 0, self.T - 1)
        return self._slopes.to(t.device)[k]

    def _t_of_log_alpha(self, log_alpha):
        knots, slopes = self._knots.to(log_alpha.device), self._slopes.to(log_alpha.device)
        # -knots is increasing: find the segment k with knots[k] >= log_alpha >= knots[k + 1].
        k = torch.searchsorted(-knots, -log_alpha.contiguous(), right=True) - 1
        k = k.clamp(0, self.T - 1)
        return k + (log_alpha - knots[k]) / slopes[k]


class LinearVP(VPSchedule):
    """Continuous VP schedule with linear beta(t) = beta_0 + t (beta_1 - beta_0) on t in [0, 1]:
    log alpha_t = -(beta_1 - beta_0) t^2 / 4 - beta_0 t / 2 (Song et al. 2021)."""

    def __init__(self, beta_0: float = 0.1, beta_1: float = 20.0):
        if not (isinstance(beta_0, (int, float)) and isinstance(beta_1, (int, float))):
            raise TypeError("beta_0 and beta_1 must be numbers")
        if not (0 <= beta_0 < beta_1 and math.isfinite(beta_1)):
            raise ValueError(f"need 0 <= beta_0 < beta_1 < inf, got beta_0={beta_0}, beta_1={beta_1}")
        self.beta_0, self.beta_1 = float(beta_0), float(beta_1)

    def __repr__(self):
        return f"LinearVP(beta_0={self.beta_0:g}, beta_1={self.beta_1:g})"

    def _log_alpha(self, t):
        return -0.25 * (self.beta_1 - self.beta_0) * t**2 - 0.5 * self.beta_0 * t

    def _d_log_alpha(self, t):
        return -0.5 * (self.beta_0 + (self.beta_1 - self.beta_0) * t)

    def _t_of_log_alpha(self, log_alpha):
        # Solve a t^2 + b t = L with L = -log alpha >= 0, in the form that is stable as a -> 0.
        a, b, L = 0.25 * (self.beta_1 - self.beta_0), 0.5 * self.beta_0, -log_alpha
        denom = b + torch.sqrt(b * b + 4 * a * L)
        # With beta_0 = 0 the denominator is 0 exactly where L = 0 (t = 0): return that t, not 0/0.
        return torch.where(L == 0, torch.zeros_like(L), 2 * L / torch.where(denom == 0, torch.ones_like(denom), denom))


class CosineVP(VPSchedule):
    """Continuous cosine schedule (Nichol and Dhariwal 2021) on t in [0, t_max]:
    alpha_t = cos((t + s)/(1 + s) pi/2) / cos(s/(1 + s) pi/2).

    alpha reaches 0 at t = 1, where lambda = -inf and x0 cannot be recovered from eps, so the
    range stops at ``t_max`` (DPM-Solver's 0.9946 by default).
    """

    def __init__(self, s: float = 0.008, t_max: float = 0.9946):
        if not (isinstance(s, (int, float)) and isinstance(t_max, (int, float))):
            raise TypeError("s and t_max must be numbers")
        if not s > 0:
            raise ValueError(f"s must be positive, got {s}")
        if not 0 < t_max < 1:
            raise ValueError(f"t_max must lie in (0, 1), got {t_max}")
        self.s, self.t_max = float(s), float(t_max)
        self._log_cos0 = math.log(math.cos(self.s / (1 + self.s) * math.pi / 2))

    def __repr__(self):
        return f"CosineVP(s={self.s:g}, t_max={self.t_max:g})"

    def _angle(self, t):
        return (t + self.s) / (1 + self.s) * math.pi / 2

    def _log_alpha(self, t):
        # Clamp the rounding at t = 0, where log alpha is exactly 0 (sigma = 0, lambda = +inf).
        return (torch.log(torch.cos(self._angle(t))) - self._log_cos0).clamp(max=0.0)

    def _d_log_alpha(self, t):
        return -torch.tan(self._angle(t)) * math.pi / (2 * (1 + self.s))

    def _t_of_log_alpha(self, log_alpha):
        angle = torch.arccos(torch.exp(log_alpha + self._log_cos0))
        return angle * 2 * (1 + self.s) / math.pi - self.s
