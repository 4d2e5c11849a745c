"""Gaussian paths x_t = alpha_t x_0 + sigma_t eps, and the noise schedules built on them.

Notation (the book's, see the notation page)::

    x_t = alpha_t x_0 + sigma_t eps       any alpha_t, sigma_t > 0 inside the range
    VP          alpha_t^2 + sigma_t^2 = 1 (DDPM, the linear and cosine schedules)
    VE / EDM    alpha_t = 1, sigma_t = t
    flow match. alpha_t = 1 - t, sigma_t = t
    alpha_bar_t = alpha_t^2               (DDPM's cumulative product, diffusers' ``alphas_cumprod``)
    log_snr     = lambda_t = log(alpha_t / sigma_t)
    noise_to_signal = rho_t = sigma_t / alpha_t = exp(-lambda_t)   (EDM's and k-diffusion's "sigma")
    forward SDE dx = f(t) x dt + g(t) dw,  f = d log alpha/dt,  g^2 = d sigma^2/dt - 2 f sigma^2

DDPM's per-step ``alpha_t = 1 - beta_t`` is always written ``1 - beta`` here: the name ``alpha`` means
the signal scale ``sqrt(alpha_bar)`` of DPM-Solver, and nothing else.

A path is defined by ``_log_scales(t) -> (log alpha_t, log sigma_t)``, their t-derivatives and the
inverse of lambda; everything public follows from these, in float64. ``log_scales(t)`` is the one
public entry point that samplers use. VP schedules are defined by log alpha alone and derive log sigma
with ``expm1`` so that nothing is lost where alpha_t is close to 1.
"""

from __future__ import annotations

import math

import torch

from . import _checks

__all__ = ["GaussianPath", "VPSchedule", "DiscreteVP", "LinearVP", "CosineVP", "VE", "FlowMatching"]

SPACINGS = ("uniform", "logsnr", "quadratic", "karras")
F64 = torch.float64


class GaussianPath:
    """Base class: x_t = alpha_t x0 + sigma_t eps on ``[t_min, t_max]``.

    Subclasses provide, for float64 tensors inside the range, ``_log_scales(t)`` (log alpha, log sigma),
    ``_d_log_scales(t)`` (their t-derivatives) and ``_t_of_log_snr(lam)`` (the inverse of lambda_t,
    which must decrease strictly in t). Where alpha or sigma is 0 its log is -inf.
    """

    t_min: float = 0.0
    t_max: float = 1.0

    # --- to be provided by subclasses -----------------------------------------------------------
    def _log_scales(self, t):
        raise NotImplementedError

    def _d_log_scales(self, t):
        raise NotImplementedError

    def _t_of_log_snr(self, lam):
        raise NotImplementedError

    def _d_scales(self, t):
        """(d alpha/dt, d sigma/dt); overridden where a log-derivative is infinite (alpha or sigma 0)."""
        la, ls = self._log_scales(t)
        dla, dls = self._d_log_scales(t)
        return la.exp() * dla, ls.exp() * dls

    def _drift_diffusion(self, t):
        """(f, g^2) = (d log alpha/dt, 2 sigma^2 (d log sigma/dt - d log alpha/dt))."""
        _, ls = self._log_scales(t)
        dla, dls = self._d_log_scales(t)
        return dla, 2 * torch.exp(2 * ls) * (dls - dla)

    # --- checks -----------------------------------------------------------------------------------
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
        out = fn(t.to(F64))
        if isinstance(out, tuple):
            return tuple(o.to(t.dtype) for o in out)
        return out.to(t.dtype)

    # --- public API -------------------------------------------------------------------------------
    def log_scales(self, t):
        """``(log alpha_t, log sigma_t, lambda_t)``, float64 inside, returned in t's dtype.

        log sigma = -inf and lambda = +inf where sigma = 0 (clean data); log alpha = -inf and
        lambda = -inf where alpha = 0 (the pure-noise end of flow matching)."""
        def scales(u):
            la, ls = self._log_scales(u)
            return la, ls, la - ls
        return self._eval(scales, t)

    def log_alpha(self, t):
        """log alpha_t."""
        return self._eval(lambda u: self._log_scales(u)[0], t)

    def log_sigma(self, t):
        """log sigma_t."""
        return self._eval(lambda u: self._log_scales(u)[1], t)

    def alpha(self, t):
        """Signal scale alpha_t."""
        return self._eval(lambda u: self._log_scales(u)[0].exp(), t)

    def sigma(self, t):
        """Noise scale sigma_t."""
        return self._eval(lambda u: self._log_scales(u)[1].exp(), t)

    def alpha_bar(self, t):
        """alpha_bar_t = alpha_t^2."""
        return self._eval(lambda u: (2 * self._log_scales(u)[0]).exp(), t)

    def log_snr(self, t):
        """lambda_t = log(alpha_t / sigma_t); +inf where sigma_t = 0 (clean data)."""
        return self.log_scales(t)[2]

    def noise_to_signal(self, t):
        """rho_t = sigma_t / alpha_t = exp(-lambda_t), the "sigma" of EDM and k-diffusion."""
        return torch.exp(-self.log_scales(t)[2])

    def d_log_scales(self, t):
        """``(d log alpha_t/dt, d log sigma_t/dt)``."""
        return self._eval(self._d_log_scales, t)

    def d_log_alpha(self, t):
        """d log(alpha_t) / dt, the drift coefficient f(t) of the forward SDE."""
        return self.d_log_scales(t)[0]

    def d_scales(self, t):
        """``(d alpha_t/dt, d sigma_t/dt)``, finite also where alpha or sigma is 0 (flow matching)."""
        return self._eval(self._d_scales, t)

    def drift_diffusion(self, t):
        """``(f(t), g^2(t))`` of the forward SDE dx = f x dt + g dw that has this path's marginals::

            f = d log alpha_t / dt,    g^2 = d sigma_t^2/dt - 2 f sigma_t^2 = -2 sigma_t^2 d lambda_t/dt
        """
        return self._eval(self._drift_diffusion, t)

    def t_of_log_snr(self, lam):
        """The time t at which log_snr(t) = lam (the inverse of ``log_snr``); lam = +inf gives the
        clean end, lam = -inf the pure-noise end where the path has one (flow matching's t = 1)."""
        lam = _checks.as_float_tensor(lam, "lam")
        if bool(torch.isnan(lam).any()):
            raise ValueError("lam must not contain NaN")
        lam64 = lam.to(F64)
        lam_lo, lam_hi = (float(self._lam_at(v)) for v in (self.t_max, self.t_min))
        tol = 1e-12 * max(1.0, abs(lam_lo))
        if float(lam64.min()) < lam_lo - tol:
            raise ValueError(f"lam must be at least log_snr(t_max) = {lam_lo:.6g} for {self!r}, "
                             f"got {float(lam64.min()):.6g}")
        if float(lam64.max()) > lam_hi + 1e-12 * max(1.0, abs(lam_hi)):
            raise ValueError(f"lam must be at most log_snr(t_min) = {lam_hi:.6g} for {self!r}, "
                             f"got {float(lam64.max()):.6g}")
        t = self._t_of_log_snr(lam64.clamp(lam_lo, lam_hi))
        return t.clamp(self.t_min, self.t_max).to(lam.dtype)

    def _lam_at(self, t):
        la, ls = self._log_scales(torch.tensor(t, dtype=F64))
        return la - ls

    def _default_ends(self):
        return self.t_max, self.t_min

    def timesteps(self, n: int, spacing: str = "uniform", t_start=None, t_end=None, rho: float = 7.0,
                  dtype=F64):
        """``n + 1`` strictly decreasing times from ``t_start`` (default ``t_max``) to ``t_end``
        (default ``t_min``; ``VE``: its ``sigma_min``).

        spacing
            ``"uniform"``: equal steps in t. ``"logsnr"``: equal steps in lambda (DPM-Solver's
            choice; both ends need a finite lambda, so pass ``t_end > t_min``). ``"quadratic"``:
            equal steps in sqrt(t) (DPM-Solver's "time_quadratic"), dense near ``t_end``.
            ``"karras"``: EDM's grid (Karras et al. 2022, eq. 5) in the noise-to-signal ratio,
            rho_i = (rho_max^(1/r) + i/n (rho_min^(1/r) - rho_max^(1/r)))^r with r = ``rho``;
            EDM's own grid ends at sigma_min and appends a last step to 0: append ``t_min`` yourself.
        """
        _checks.positive_int(n, "n")
        if not isinstance(spacing, str):
            raise TypeError(f"spacing must be a str, got {type(spacing).__name__}")
        _checks.one_of(spacing, "spacing", SPACINGS)
        if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not (math.isfinite(rho) and rho > 0):
            raise ValueError(f"rho must be a positive finite number, got {rho!r}")
        default_start, default_end = self._default_ends()
        t_start = default_start if t_start is None else float(t_start)
        t_end = default_end if t_end is None else float(t_end)
        for name, value in (("t_start", t_start), ("t_end", t_end)):
            if not self.t_min <= value <= self.t_max:
                raise ValueError(f"{name} must lie in [{self.t_min:g}, {self.t_max:g}], got {value:g}")
        if not t_start > t_end:
            raise ValueError(f"t_start must be greater than t_end, got t_start={t_start:g}, t_end={t_end:g}")
        if spacing == "uniform":
            ts = torch.linspace(t_start, t_end, n + 1, dtype=F64)
        elif spacing == "quadratic":
            ts = torch.linspace(math.sqrt(t_start), math.sqrt(t_end), n + 1, dtype=F64) ** 2
        elif spacing == "logsnr":
            lam_start, lam_end = float(self._lam_at(t_start)), float(self._lam_at(t_end))
            if not (math.isfinite(lam_start) and math.isfinite(lam_end)):
                raise ValueError(
                    f"spacing='logsnr' needs a finite log_snr at both ends; log_snr(t_start={t_start:g}) = "
                    f"{lam_start}, log_snr(t_end={t_end:g}) = {lam_end}: keep both ends strictly inside "
                    f"({self.t_min:g}, {self.t_max:g}) where alpha or sigma vanishes there"
                )
            ts = self.t_of_log_snr(torch.linspace(lam_start, lam_end, n + 1, dtype=F64))
        else:
            r_start, r_end = (math.exp(-float(self._lam_at(v))) for v in (t_start, t_end))
            if not math.isfinite(r_start):
                raise ValueError(f"spacing='karras' needs a finite sigma/alpha at t_start={t_start:g}: "
                                 f"start inside the range where alpha > 0")
            i = torch.linspace(0, 1, n + 1, dtype=F64)
            a, b = r_start ** (1 / rho), r_end ** (1 / rho)
            ts = self.t_of_log_snr(-torch.log((a + i * (b - a)) ** rho))
        ts[0], ts[-1] = t_start, t_end  # exact ends, whatever the rounding
        if not bool((ts[1:] < ts[:-1]).all()):
            raise ValueError(f"n={n} is too many steps to keep the {spacing} grid strictly decreasing in float64")
        return ts.to(dtype)


class VPSchedule(GaussianPath):
    """Variance preserving (alpha_t^2 + sigma_t^2 = 1), defined by ``_log_alpha`` alone::

        log sigma = log(1 - alpha^2) / 2,   d log sigma/dt = -(alpha^2/sigma^2) d log alpha/dt,
        f = d log alpha/dt,   g^2 = -2 f   (= beta(t) for the linear schedule)
    """

    # --- to be provided by subclasses (inputs are float64 tensors inside the range) -------------
    def _log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _d_log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _t_of_log_alpha(self, log_alpha: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # --- the path, from log alpha ----------------------------------------------------------------
    def _log_scales(self, t):
        la = self._log_alpha(t)
        return la, 0.5 * torch.log(-torch.expm1(2 * la))

    def _d_log_scales(self, t):
        la, dla = self._log_alpha(t), self._d_log_alpha(t)
        return dla, -dla / torch.expm1(-2 * la)  # alpha^2 / sigma^2 = 1 / (e^{-2 log alpha} - 1)

    def _d_scales(self, t):
        la, ls = self._log_scales(t)
        dla = self._d_log_alpha(t)
        return la.exp() * dla, -torch.exp(2 * la - ls) * dla

    def _drift_diffusion(self, t):
        f = self._d_log_alpha(t)
        return f, -2 * f

    def _t_of_log_snr(self, lam):
        return self._t_of_log_alpha(-0.5 * torch.nn.functional.softplus(-2 * lam))  # alpha^2 = 1/(1 + e^{-2 lam})


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



class VE(GaussianPath):
    """Variance exploding with EDM's choice sigma(t) = t (Karras et al. 2022): alpha_t = 1, sigma_t = t,
    t in [0, sigma_max]. ``sigma_min`` is where the default grids end (EDM's 0.002); t = 0 is clean data.
    f = 0 and g^2 = d sigma^2/dt = 2t; lambda = -log t and noise_to_signal = t."""

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0):
        self.sigma_min = _checks.positive_number(sigma_min, "sigma_min")
        self.sigma_max = _checks.positive_number(sigma_max, "sigma_max")
        if not self.sigma_min < self.sigma_max:
            raise ValueError(f"sigma_min must be less than sigma_max, got {sigma_min} and {sigma_max}")
        self.t_max = self.sigma_max

    def __repr__(self):
        return f"VE(sigma_min={self.sigma_min:g}, sigma_max={self.sigma_max:g})"

    def _default_ends(self):
        return self.sigma_max, self.sigma_min

    def _log_scales(self, t):
        return torch.zeros_like(t), torch.log(t)

    def _d_log_scales(self, t):
        return torch.zeros_like(t), 1 / t

    def _d_scales(self, t):
        return torch.zeros_like(t), torch.ones_like(t)

    def _drift_diffusion(self, t):
        return torch.zeros_like(t), 2 * t

    def _t_of_log_snr(self, lam):
        return torch.exp(-lam)


class FlowMatching(GaussianPath):
    """The flow-matching (rectified-flow) path of SD3 and Flux: alpha_t = 1 - t, sigma_t = t, t in [0, 1].

    lambda_t = log((1 - t)/t), t = sigmoid(-lambda). At t = 1, alpha = 0 (lambda = -inf): x_1 is pure
    noise, x0 cannot be recovered from eps there, and only samplers that never divide by alpha may
    start there. The velocity target is dx_t/dt = x_1 - x_0 = eps - x0. The forward SDE with these
    marginals has f = -1/(1 - t), g^2 = 2t/(1 - t) (both infinite at t = 1)."""

    def __repr__(self):
        return "FlowMatching()"

    def _log_scales(self, t):
        return torch.log1p(-t), torch.log(t)

    def _d_log_scales(self, t):
        return -1 / (1 - t), 1 / t

    def _d_scales(self, t):
        return -torch.ones_like(t), torch.ones_like(t)

    def _drift_diffusion(self, t):
        return -1 / (1 - t), 2 * t / (1 - t)

    def _t_of_log_snr(self, lam):
        return torch.sigmoid(-lam)

    def timesteps(self, n: int, spacing: str = "uniform", t_start=None, t_end=None, rho: float = 7.0,
                  shift: float = 1.0, dtype=F64):
        """As ``GaussianPath.timesteps``, plus SD3's timestep shift (Esser et al. 2024) on the uniform grid:
        t -> shift t / (1 + (shift - 1) t), which keeps both ends and moves the grid towards the noise
        (shift > 1, SD3 uses 3.0). ``shift=1`` is the plain grid."""
        shift = _checks.positive_number(shift, "shift")
        if shift != 1.0 and spacing != "uniform":
            raise ValueError(f"shift applies to spacing='uniform' only, got spacing={spacing!r}")
        ts = super().timesteps(n, spacing, t_start, t_end, rho, dtype=F64)
        if shift != 1.0:
            ts = shift * ts / (1 + (shift - 1) * ts)
            if not bool((ts[1:] < ts[:-1]).all()):
                raise ValueError(f"n={n} is too many steps to keep the shifted grid strictly decreasing")
        return ts.to(dtype)
