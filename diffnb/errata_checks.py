"""The source notes' samplers exactly as they write them, and the third-order multistep update with
the weight of its second divided difference as a parameter: what Appendix A runs to measure what an
error costs.

Notation (the book's)::

    abar_t      alpha-bar_t = prod_{i <= t} (1 - beta_i);  alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t)
    x0_hat      (x_t - sigma_t eps_hat) / alpha_t
    varsigma    DDIM's noise scale of a step, eta sqrt((1 - abar_s)/(1 - abar_t)) sqrt(1 - abar_t/abar_s)
    lambda, h   lambda = log(alpha / sigma), h = lambda_next - lambda_current
    m_j         data predictions x0_hat at the last grid points (m_0 the newest)

Every sampler takes ``as_written``: True is the note's formula, False the corrected one; with False
each equals the ``diffnb.samplers`` function named in its docstring, given the same generator
(``tests/test_errata_checks.py``). Noise is drawn as in ``diffnb.samplers``: one
``torch.randn(x.shape, generator=...)`` per step.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch

from . import _checks
from .schedules import DiscreteVP

__all__ = ["certify", "Verdict", "seed000_ddpm", "seed001_ddim", "seed003_arrays", "seed003_ddpm",
           "seed003_ddim_step", "seed003_ddim", "seed002_reverse_sde", "multistep_pp3",
           "split_w1"]

F64 = torch.float64


def _discrete(schedule):
    if not isinstance(schedule, DiscreteVP):
        raise TypeError(f"schedule must be a DiscreteVP, got {type(schedule).__name__}")
    return schedule


def _noise(x, generator):
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def _at(x, t):
    return torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)


_ARRAYS = ("alphas", "alphas_cumprod", "alphas_cumprod_prev", "posterior_variance",
           "sqrt_one_minus_alphas_cumprod")


def _arrays(arrays):
    """``arrays`` must be the namespace of ``seed003_arrays``."""
    if not isinstance(arrays, SimpleNamespace) or not all(isinstance(getattr(arrays, k, None), torch.Tensor)
                                                          for k in _ARRAYS):
        raise TypeError(f"arrays must be the namespace made by seed003_arrays(schedule), got {type(arrays).__name__}")
    return arrays


def _eta(eta):
    if isinstance(eta, bool) or not isinstance(eta, (int, float)):
        raise TypeError(f"eta must be a number, got {type(eta).__name__}")
    if not (math.isfinite(eta) and eta >= 0):
        raise ValueError(f"eta must be finite and >= 0, got {eta!r}")
    return eta


def _symbolic(v, name):
    """A SymPy expression or an exact Python number (not a str, None or bool)."""
    import sympy as sp

    if isinstance(v, sp.Basic) or (isinstance(v, (int, float)) and not isinstance(v, bool)):
        return v
    raise TypeError(f"{name} must be a SymPy expression, got {type(v).__name__}")


def _flag(as_written, name="as_written"):
    if not isinstance(as_written, bool):
        raise TypeError(f"{name} must be a bool, got {type(as_written).__name__}")


def seed000_ddpm(model, x_T, schedule, generator=None, as_written: bool = True):
    """Seed 000's DDPM sampler, steps (1) and (2), t = T, ..., 1: x0_hat from eps_hat, then
    x_{t-1} = M(x_t, x0_hat) + sigma_t z with sigma_t^2 = (1 - abar_{t-1}) beta_t / (1 - abar_t) and
    M = c_t x_t + sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0_hat, where c_t is
    sqrt(abar_t)(1 - abar_{t-1})/(1 - abar_t) as written and sqrt(1 - beta_t)(1 - abar_{t-1})/(1 - abar_t)
    corrected (``samplers.ddpm`` on the full grid)."""
    _checks.callable_(model, "model")
    _flag(as_written)
    s = _discrete(schedule)
    x = _checks.batch(x_T, "x_T")
    abar = torch.cat([torch.ones(1, dtype=F64), torch.cumprod(1 - s.betas.to(F64), 0)])
    for t in range(s.T, 0, -1):
        a, a_prev, beta = float(abar[t]), float(abar[t - 1]), 1 - float(abar[t] / abar[t - 1])
        eps = model(x, _at(x, t))
        x0_hat = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
        c_t = (math.sqrt(a) if as_written else math.sqrt(1 - beta)) * (1 - a_prev) / (1 - a)
        var = (1 - a_prev) / (1 - a) * beta
        x = c_t * x + math.sqrt(a_prev) * beta / (1 - a) * x0_hat + math.sqrt(var) * _noise(x, generator)
    return x


def seed001_ddim(model, x_T, schedule, ts, eta: float = 1.0, generator=None, as_written: bool = True):
    """Seed 001's final sampling formula on the grid ``ts``:
    x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - varsigma^2) eps_hat + varsigma^2 z as written,
    + varsigma z corrected (``samplers.ddim`` with the same ``eta``)."""
    _checks.callable_(model, "model")
    _checks.gaussian_path(schedule)
    _eta(eta)
    _flag(as_written)
    x = _checks.batch(x_T, "x_T")
    ts = torch.as_tensor(ts, dtype=F64)
    abar = schedule.alpha_bar(ts).tolist()
    for i in range(len(ts) - 1):
        a, a_prev = abar[i], abar[i + 1]
        vs = eta * math.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
        eps = model(x, _at(x, ts[i]))
        x0_hat = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
        noise = vs**2 if as_written else vs
        x = (math.sqrt(a_prev) * x0_hat + math.sqrt(1 - a_prev - vs**2) * eps
             + noise * _noise(x, generator))
    return x


def seed003_arrays(schedule, as_written: bool = True):
    """The arrays of seed 003's code for ``schedule`` (its index k is the book's time k + 1):
    ``alphas`` (1 - beta), ``alphas_cumprod``, ``alphas_cumprod_prev``, ``posterior_variance`` and
    ``sqrt_one_minus_alphas_cumprod``, which is sqrt(1 - abar^2) as written and sqrt(1 - abar)
    corrected."""
    _flag(as_written)
    s = _discrete(schedule)
    alphas = 1 - s.betas.to(F64)
    cum = torch.cumprod(alphas, 0)
    prev = torch.cat([torch.ones(1, dtype=F64), cum[:-1]])
    return SimpleNamespace(
        alphas=alphas, alphas_cumprod=cum, alphas_cumprod_prev=prev,
        posterior_variance=(1 - alphas) * (1 - prev) / (1 - cum),
        sqrt_one_minus_alphas_cumprod=torch.sqrt(1 - cum**2 if as_written else 1 - cum))


def seed003_ddpm(model, x_T, arrays, generator=None):
    """Seed 003's ``sample_ddpm`` applied for k = n - 1, ..., 0 (``model`` takes the book's time k + 1):
    mean = (x - (1 - a_k) eps_hat / st_k) / sqrt(a_k), then mean + sqrt(posterior_variance_k) z. With
    ``seed003_arrays(as_written=False)`` this is ``samplers.ddpm`` on the full grid."""
    _checks.callable_(model, "model")
    x = _checks.batch(x_T, "x_T")
    _arrays(arrays)
    for k in range(len(arrays.alphas) - 1, -1, -1):
        at = float(arrays.alphas[k])
        st = float(arrays.sqrt_one_minus_alphas_cumprod[k])
        mean = math.sqrt(1 / at) * (x - (1 - at) * model(x, _at(x, k + 1)) / st)
        var = float(arrays.posterior_variance[k])
        x = mean + math.sqrt(var) * _noise(x, generator)
    return x


def seed003_ddim_step(model, x, k, arrays, z, eta: float = 1.0):
    """Seed 003's ``sample_ddim(x, k, eta)`` with its fresh noise ``z`` passed in: one step from the
    book's time k + 1 to k (``alphas_cumprod_prev[k]`` fixes the target). Returns the new x."""
    _checks.callable_(model, "model")
    x = _checks.batch(x, "x")
    _arrays(arrays)
    n = len(arrays.alphas_cumprod)
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int index of arrays, got {type(k).__name__}")
    if not 0 <= k < n:
        raise ValueError(f"k must lie in [0, {n - 1}], got {k}")
    if _checks.batch(z, "z").shape != x.shape:
        raise ValueError(f"z must have x's shape {tuple(x.shape)}, got {tuple(z.shape)}")
    return _ddim_step(model, x, k, arrays, z, _eta(eta))


def _ddim_step(model, x, k, arrays, z, eta):
    """``seed003_ddim_step`` without the argument checks (its loop checks them once)."""
    at, at_1 = float(arrays.alphas_cumprod[k]), float(arrays.alphas_cumprod_prev[k])
    sigma_t = eta * math.sqrt((1 - at_1) / (1 - at) * (1 - at / at_1))
    e = model(x, _at(x, k + 1))
    return (math.sqrt(at_1 / at) * x
            + (math.sqrt(1 - at_1 - sigma_t**2) - math.sqrt(at_1 * (1 - at) / at)) * e
            + sigma_t * z)


def seed003_ddim(model, x_T, arrays, eta: float = 1.0, generator=None):
    """Seed 003's ``sample_ddim`` applied for k = n - 1, ..., 0, as its experiment runs it: every
    step t -> t - 1, one call per step, fresh noise drawn as in ``diffnb.samplers``."""
    _checks.callable_(model, "model")
    x = _checks.batch(x_T, "x_T")
    _arrays(arrays)
    _eta(eta)
    for k in range(len(arrays.alphas) - 1, -1, -1):
        x = _ddim_step(model, x, k, arrays, _noise(x, generator), eta)
    return x


def seed002_reverse_sde(model, x_T, schedule, ts, noise: bool = True, generator=None):
    """Seed 002's reverse SDE (7), dx = [f x + g^2/sigma_t eps_hat] dt + g dw_bar, by Euler-Maruyama
    on the decreasing grid ``ts``; the last step adds no noise. With ``noise=True`` this is
    ``sde.reverse_sde_euler_maruyama``; ``noise=False`` keeps the same drift and drops the Wiener
    increments, to separate what the noise does from what the drift does."""
    from .sde import drift_diffusion

    _checks.callable_(model, "model")
    _checks.gaussian_path(schedule)
    _flag(noise, "noise")
    x = _checks.batch(x_T, "x_T")
    ts = torch.as_tensor(ts, dtype=x.dtype)
    n = len(ts) - 1
    for i in range(n):
        t, s = ts[i], ts[i + 1]
        f, g2 = drift_diffusion(schedule, t)
        x = x - (f * x + g2 / schedule.sigma(t) * model(x, _at(x, t))) * (t - s)
        if noise and i < n - 1:
            x = x + torch.sqrt(g2 * (t - s)) * _noise(x, generator)
    return x


def multistep_pp3(model, x_T, schedule, ts, d2_weight: float = 1.0):
    """DPM-Solver++(3M) in the reference code's variables (data prediction m, one call per step):
    step 1 first order, step 2 the 2M step of DPM-Solver++'s Algorithm 2, then

        D1_0 = (m_0 - m_1)/r_0,  D1_1 = (m_1 - m_2)/r_1,  D1 = D1_0 + r_0/(r_0 + r_1) (D1_0 - D1_1),
        D2 = (D1_0 - D1_1)/(r_0 + r_1),   phi_1 = expm1(-h), phi_2 = phi_1/h + 1, phi_3 = phi_2/h - 1/2,
        x_t = sigma_t/sigma_s x_s - alpha_t phi_1 m_0 + alpha_t phi_2 D1 - 2 w alpha_t phi_3 D2,

    r_j the ratios of the previous steps in lambda to h. D2 is h^2 m''/2 + O(h^3): the quadratic term of
    the Taylor expansion needs w = ``d2_weight`` = 1 (``samplers.dpm_solver_pp(order=3)``); the
    reference code, k-diffusion and diffusers have w = 1/2. ``ts`` must end at a positive sigma (the
    ratios r_j divide by lambda differences)."""
    if isinstance(d2_weight, bool) or not isinstance(d2_weight, (int, float)):
        raise TypeError(f"d2_weight must be a number, got {type(d2_weight).__name__}")
    x = _checks.batch(x_T, "x_T")
    ts = torch.as_tensor(ts, dtype=F64)
    la, ls, lam = (v.tolist() for v in schedule.log_scales(ts))
    if not math.isfinite(lam[-1]):
        raise ValueError(f"ts must end at a positive sigma (finite lambda), got ts[-1] = {float(ts[-1]):g}")
    ms, lams = [], []
    for i in range(len(ts) - 1):
        eps = model(x, _at(x, ts[i]))
        ms.insert(0, (x - math.exp(ls[i]) * eps) / math.exp(la[i]))
        lams.insert(0, lam[i])
        h = lam[i + 1] - lam[i]
        a_t, phi_1 = math.exp(la[i + 1]), math.expm1(-h)
        x_new = math.exp(ls[i + 1] - ls[i]) * x - a_t * phi_1 * ms[0]
        if len(ms) == 2:
            d1 = (ms[0] - ms[1]) / ((lams[0] - lams[1]) / h)
            x_new = x_new - 0.5 * a_t * phi_1 * d1
        elif len(ms) >= 3:
            r0, r1 = (lams[0] - lams[1]) / h, (lams[1] - lams[2]) / h
            d1_0, d1_1 = (ms[0] - ms[1]) / r0, (ms[1] - ms[2]) / r1
            d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            phi_2 = phi_1 / h + 1
            phi_3 = phi_2 / h - 0.5
            x_new = x_new + a_t * phi_2 * d1 - 2 * d2_weight * a_t * phi_3 * d2
            del ms[3:], lams[3:]
        x = x_new
    return x


def split_w1(samples, mixture, groups: int = 20):
    """W1 to a 1-D ``mixture`` of each of ``groups`` equal consecutive slices of ``samples`` (independent
    replicates when the samples are): ``(mean, 2 standard errors, values)``."""
    from .metrics import wasserstein_1d
    from .toy import GaussianMixture

    samples = _checks.batch(samples, "samples")
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a toy.GaussianMixture, got {type(mixture).__name__}")
    if mixture.dim != 1:
        raise ValueError(f"mixture must be 1-D, got dim={mixture.dim}")
    _checks.positive_int(groups, "groups")
    if groups < 2 or samples.shape[0] % groups:
        raise ValueError(f"groups must be >= 2 and divide {samples.shape[0]}, got {groups}")
    vals = torch.tensor([wasserstein_1d(c, mixture) for c in samples.chunk(groups)], dtype=F64)
    return float(vals.mean()), float(2 * vals.std() / math.sqrt(groups)), vals.tolist()


class Verdict:
    """The outcome of ``certify``: the exact non-zero value of the note's residual at ``point``, and
    the corrected residual proved identically zero. Displays as a few aligned lines of mathematics
    (the value, the point with at most ``PER_LINE`` coordinates a line, the corrected residual), so
    that it fits a text column."""

    PER_LINE = 4

    def __init__(self, label, value, point):
        if not isinstance(label, str):
            raise TypeError(f"label must be a str, got {type(label).__name__}")
        _symbolic(value, "value")
        if not isinstance(point, dict):
            raise TypeError(f"point must be a dict symbol -> exact value, got {type(point).__name__}")
        self.label, self.value, self.point = label, value, point

    def _point_latex(self):
        import sympy as sp

        def one(k, v):
            if isinstance(v, sp.Lambda):
                (var,), body = v.args
                return rf"{sp.latex(k(var))} = {sp.latex(body)}"
            return rf"{sp.latex(k)} = {sp.latex(v)}"

        items = [one(k, v) for k, v in self.point.items()]
        rows = [items[i:i + self.PER_LINE] for i in range(0, len(items), self.PER_LINE)]
        return [r",\ ".join(row) for row in rows]

    def _repr_latex_(self):
        import sympy as sp

        lines = [rf"&\text{{{self.label}:}}\quad r_{{\text{{note}}}} = {sp.latex(self.value)} \neq 0"]
        at = r"\text{at }"
        for i, row in enumerate(self._point_latex()):
            lines[-1] += "," if i else ""
            lead = at if i == 0 else rf"\phantom{{{at}}}"
            lines.append(rf"&\qquad {lead}\ {row}")
        lines[-1] += ";"
        lines.append(r"&\text{corrected: } r \text{ proved identically zero}")
        return r"$\begin{aligned}" + r" \\ ".join(lines) + r"\end{aligned}$"

    def __repr__(self):
        lines = [f"{self.label}: note's residual {self.value} != 0", "  at "]
        for i, item in enumerate(f"{k} = {v}" for k, v in self.point.items()):
            if i and len(lines[-1]) + len(item) + 2 > 75:  # a new line of the point
                lines[-1] += ","
                lines.append("     ")
            lines[-1] += (", " if not lines[-1].endswith(" ") else "") + item
        return "\n".join(lines + ["  corrected: proved zero"])


def certify(label, wrong, right, point, relation=None, prove=None) -> Verdict:
    """Certify the note's residual ``wrong`` non-zero at the exact ``point`` (``core.nonzero_at``) and prove
    the corrected residual ``right`` (an expression or a list of them) identically zero (``prove``,
    default ``core.is_zero`` with ``relation``). Raises ``AssertionError`` if the proof fails and
    ``ValueError`` if the note's residual vanishes at ``point``."""
    from .symbolic.core import is_zero, nonzero_at

    if not isinstance(label, str):
        raise TypeError(f"label must be a str, got {type(label).__name__}")
    _symbolic(wrong, "wrong")
    for r in (right if isinstance(right, (list, tuple)) else [right]):
        _symbolic(r, "right")
    if not isinstance(point, dict):
        raise TypeError(f"point must be a dict symbol -> exact value, got {type(point).__name__}")
    if prove is not None:
        _checks.callable_(prove, "prove")
    value = nonzero_at(wrong, point, relation)
    prove = prove or (lambda e: is_zero(e, relation))
    for r in (right if isinstance(right, (list, tuple)) else [right]):
        if not prove(r):
            raise AssertionError(f"{label}: the corrected residual is not proved zero: {r}")
    return Verdict(label, value, point)
