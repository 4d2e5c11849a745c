"""diffusers' scheduler conventions, reproduced with diffnb's samplers.

Notation (the book's, with diffusers' names in quotes)::

    index k        diffusers' integer ``timestep``; ``alphas_cumprod[k]`` is the book's alpha_bar(k + 1),
                   so index k is book time t = k + 1 and "alpha_bar = 1" (``set_alpha_to_one``,
                   ``final_sigmas_type="zero"``) is book time 0
    sigma (EDM)    diffusers' DPM-Solver ``sigmas`` = sqrt((1 - alpha_bar) / alpha_bar) = sigma_t / alpha_t,
                   the book's ``noise_to_signal``
    orders         the order of the update each scheduler ``step`` uses (1, 2 or 3)

What diffusers does differently from a plain call of a diffnb sampler, and the helper that reproduces it:

* precision: ``alphas_cumprod`` is a float32 cumulative product (``diffusers_alphas_cumprod``); a
  ``DiscreteVP`` with exactly those values (``schedule_from_alphas_cumprod``) removes that difference.
* visited times: ``DDIMScheduler.step`` lands on k - T // n, not on the next listed index
  (``ddim_step_times``, ``ddim_chain``); the DPM-Solver schedulers list n indices and then a final
  sigma (``dpm_solver_timesteps``, ``dpm_solver_book_grid``).
* orders: which order each DPM-Solver step uses (``multistep_orders``, ``singlestep_orders``), and
  singlestep intermediate points at listed times rather than at lambda fractions: ``singlestep_intervals``
  turns the scheduler's steps into ``dpm_solver``'s intervals, orders and intermediate fractions.
* solver_type: diffusers' "midpoint" is diffnb's ``solver_type="dpmsolver"``, its "heun" is ``"taylor"``.

``diffusers_loop`` drives any diffusers scheduler with a book model (x, t) -> eps_hat; it is duck-typed
and never imports diffusers.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _checks
from .dpm_solver import _check_order
from .forward import eps_from_x0
from .samplers import ddim, predict_eps
from .schedules import DiscreteVP
from .timesteps import DIFFUSERS_SPACINGS, diffusers_timesteps, to_book_times

__all__ = ["BETA_SCHEDULES", "FINAL_SIGMAS_TYPES", "diffusers_alphas_cumprod", "schedule_from_alphas_cumprod",
           "float32_schedule", "diffusers_loop", "ddim_step_times", "ddim_chain", "dpm_solver_timesteps",
           "dpm_solver_book_grid", "multistep_orders", "singlestep_orders", "singlestep_intervals",
           "dpm_scheduler_on_grid", "cosine_data_problem"]

BETA_SCHEDULES = ("linear", "scaled_linear")
FINAL_SIGMAS_TYPES = ("zero", "sigma_min")
F64 = torch.float64


def diffusers_alphas_cumprod(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                             beta_schedule: str = "linear") -> torch.Tensor:
    """diffusers' ``alphas_cumprod`` (float32), computed as its schedulers do: betas by a float32
    ``linspace`` ("linear") or the square of a linspace of square roots ("scaled_linear", Stable
    Diffusion's), then a float32 cumulative product of 1 - beta."""
    _checks.positive_int(T, "T")
    _checks.one_of(beta_schedule, "beta_schedule", BETA_SCHEDULES)
    for name, v in (("beta_start", beta_start), ("beta_end", beta_end)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
            raise ValueError(f"{name} must be a number in (0, 1), got {v!r}")
    if beta_schedule == "linear":
        betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float32)
    else:
        betas = torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def schedule_from_alphas_cumprod(alphas_cumprod) -> DiscreteVP:
    """The ``DiscreteVP`` whose alpha_bar(k + 1) is ``alphas_cumprod[k]`` (to float64 rounding): its betas
    are 1 - alphas_cumprod[k] / alphas_cumprod[k - 1], computed in float64 from the given values."""
    if not isinstance(alphas_cumprod, torch.Tensor) or alphas_cumprod.dtype not in _checks.FLOAT_DTYPES:
        raise TypeError("alphas_cumprod must be a floating-point torch.Tensor, got "
                        + (str(alphas_cumprod.dtype) if isinstance(alphas_cumprod, torch.Tensor)
                           else type(alphas_cumprod).__name__))
    if alphas_cumprod.ndim != 1 or alphas_cumprod.numel() == 0:
        raise ValueError(f"alphas_cumprod must be 1-D and non-empty, got shape {tuple(alphas_cumprod.shape)}")
    ac = alphas_cumprod.detach().to(F64).cpu()
    _checks.finite(ac, "alphas_cumprod")
    if not bool(((ac > 0) & (ac < 1)).all()) or not bool((ac[1:] < ac[:-1]).all()):
        raise ValueError("alphas_cumprod must lie in (0, 1) and be strictly decreasing")
    return DiscreteVP(-torch.expm1(torch.log(ac) - torch.log(torch.cat([torch.ones(1, dtype=F64), ac[:-1]]))))


def float32_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                     beta_schedule: str = "linear") -> DiscreteVP:
    """The book's ``DiscreteVP`` with diffusers' float32 ``alphas_cumprod``."""
    return schedule_from_alphas_cumprod(diffusers_alphas_cumprod(T, beta_start, beta_end, beta_schedule))


def diffusers_loop(scheduler, model, x_T, num_inference_steps: int, generator=None, noises=None,
                   callback=None, **step_kwargs) -> torch.Tensor:
    """The usual diffusers sampling loop with a book model: ``set_timesteps``, then for each integer
    timestep k, ``eps_hat = model(x, k + 1)`` (index k is book time k + 1) and ``scheduler.step``.

    ``generator`` goes to ``step`` (DDPM, DDIM with eta > 0); ``noises`` (one tensor per step) is passed as
    ``variance_noise`` instead (DDIM, SDE-DPM-Solver++). ``callback(i, k, x)`` after each step.
    """
    _checks.callable_(model, "model")
    x = _checks.batch(x_T, "x_T")
    _checks.positive_int(num_inference_steps, "num_inference_steps")
    _checks.has_methods(scheduler, "scheduler", ("set_timesteps", "step"), "a diffusers scheduler")
    scheduler.set_timesteps(num_inference_steps)
    if noises is not None and len(noises) != len(scheduler.timesteps):
        raise ValueError(f"noises must hold one tensor per step ({len(scheduler.timesteps)}), got {len(noises)}")
    kwargs = dict(step_kwargs)
    if generator is not None:
        kwargs["generator"] = generator
    for i, k in enumerate(scheduler.timesteps):
        eps_hat = predict_eps(model, x, torch.tensor(float(k) + 1.0, dtype=x.dtype))
        if noises is not None:
            kwargs["variance_noise"] = noises[i]
        x = scheduler.step(eps_hat, k, x, **kwargs).prev_sample
        if callback is not None:
            callback(i, int(k), x)
    return x


def ddim_step_times(T: int, n: int, spacing: str = "leading", steps_offset: int = 0,
                    set_alpha_to_one: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Book times ``(t_from, t_to)`` of each ``DDIMScheduler.step``: the model is called at the listed
    index k (t_from = k + 1) and the step lands on k - T // n (t_to = k - T // n + 1); a negative target is
    the final alpha_bar, 1 with ``set_alpha_to_one`` (t_to = 0) and alphas_cumprod[0] without (t_to = 1)."""
    if not isinstance(set_alpha_to_one, bool):
        raise TypeError(f"set_alpha_to_one must be a bool, got {type(set_alpha_to_one).__name__}")
    k = diffusers_timesteps(T, n, spacing, steps_offset).to(F64)
    target = k - T // n
    final = 0.0 if set_alpha_to_one else 1.0
    return k + 1, torch.where(target >= 0, target + 1, torch.full_like(target, final))


def ddim_chain(model, x_T, schedule, t_from, t_to, eta: float = 0.0, generator=None) -> torch.Tensor:
    """DDIM steps t_from[i] -> t_to[i], each a ``diffnb.samplers.ddim`` call on the two-point grid, applied
    to the current sample whatever its noise level. With t_to[i] = t_from[i + 1] this is one ``ddim`` call
    on the grid; otherwise it is diffusers' chain. A zero-length step (t_to = t_from) leaves x unchanged;
    with eta > 0 it still draws (and discards) one noise sample, as diffusers' step does."""
    for name, v in (("t_from", t_from), ("t_to", t_to)):
        if not isinstance(v, torch.Tensor) or v.ndim != 1:
            raise TypeError(f"{name} must be a 1-D torch.Tensor of book times")
    if t_from.shape != t_to.shape:
        raise ValueError(f"t_to must have t_from's shape {tuple(t_from.shape)}, got {tuple(t_to.shape)}")
    _checks.gaussian_path(schedule)
    if bool((t_to > t_from).any()):
        raise ValueError("t_to must not be later than t_from (every step goes towards the data)")
    x = _checks.batch(x_T, "x_T")
    for a, b in zip(t_from.tolist(), t_to.tolist()):
        if b < a:
            x = ddim(model, x, schedule, torch.tensor([a, b], dtype=x.dtype), eta=eta, generator=generator)
        elif eta > 0:
            torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x


def dpm_solver_timesteps(T: int, n: int, spacing: str = "linspace", steps_offset: int = 0) -> torch.Tensor:
    """The n decreasing indices of ``DPMSolverMultistepScheduler.set_timesteps`` (and of the singlestep
    scheduler, which always uses "linspace"): "linspace" drops the 0 of round(linspace(0, T - 1, n + 1));
    "leading" is arange(n + 1) * (T // (n + 1)) without its 0, plus ``steps_offset``; "trailing" is
    round(arange(T, 0, -T / n)) - 1 as for DDIM."""
    _checks.positive_int(T, "T")
    _checks.positive_int(n, "n")
    _checks.one_of(spacing, "spacing", DIFFUSERS_SPACINGS)
    if n >= T:
        raise ValueError(f"n must be less than T={T}, got n={n}")
    if spacing == "linspace":
        k = np.linspace(0, T - 1, n + 1).round()[::-1][:-1]
    elif spacing == "leading":
        k = (np.arange(0, n + 1) * (T // (n + 1))).round()[::-1][:-1] + steps_offset
    else:
        k = np.arange(T, 0, -T / n).round() - 1
    return torch.from_numpy(k.astype(np.int64).copy())


def dpm_solver_book_grid(T: int, n: int, spacing: str = "linspace", final_sigmas_type: str = "zero",
                         steps_offset: int = 0) -> torch.Tensor:
    """The book grid of a diffusers DPM-Solver run: t = k + 1 for the listed indices, then the final sigma,
    t = 0 for ``final_sigmas_type="zero"`` (sigma = 0) and t = 1 for "sigma_min" (alphas_cumprod[0])."""
    _checks.one_of(final_sigmas_type, "final_sigmas_type", FINAL_SIGMAS_TYPES)
    final = 0.0 if final_sigmas_type == "zero" else 1.0
    return to_book_times(dpm_solver_timesteps(T, n, spacing, steps_offset), final=final)


def _order_arg(order):
    _check_order(order, (1, 2, 3), allow_list=False)


def multistep_orders(n: int, order: int, lower_order_final: bool = True, final_sigmas_type: str = "zero",
                     euler_at_final: bool = False) -> list[int]:
    """The order of each ``DPMSolverMultistepScheduler.step``: warm-up 1, 2, ..., ``order``; the last step
    is first order if ``final_sigmas_type="zero"`` or ``euler_at_final``; ``lower_order_final`` lowers the
    last step to 1 and the one before to at most 2 only when there are fewer than 15 steps."""
    _checks.positive_int(n, "n")
    _order_arg(order)
    _checks.one_of(final_sigmas_type, "final_sigmas_type", FINAL_SIGMAS_TYPES)
    _checks.flag(lower_order_final, "lower_order_final")
    _checks.flag(euler_at_final, "euler_at_final")
    short = lower_order_final and n < 15
    orders = []
    for i in range(n):
        q = min(order, i + 1)
        if i == n - 1 and (euler_at_final or short or final_sigmas_type == "zero"):
            q = 1
        elif i == n - 2 and short:
            q = min(q, 2)
        orders.append(q)
    return orders


def singlestep_orders(n: int, order: int, lower_order_final: bool = False,
                      final_sigmas_type: str = "zero") -> list[int]:
    """The order of each ``DPMSolverSinglestepScheduler.step`` (its ``order_list``): an order-k interval is
    k consecutive steps with orders 1, 2, ..., k. ``lower_order_final`` is switched on by the scheduler
    itself when n is not a multiple of ``order`` or ``final_sigmas_type="zero"``; the last step of a run
    to sigma = 0 is first order."""
    _checks.positive_int(n, "n")
    _order_arg(order)
    _checks.one_of(final_sigmas_type, "final_sigmas_type", FINAL_SIGMAS_TYPES)
    _checks.flag(lower_order_final, "lower_order_final")
    if n % order != 0 or final_sigmas_type == "zero":
        lower_order_final = True
    if not lower_order_final or order == 1:
        orders = list(range(1, order + 1)) * (n // order)
    elif order == 2:
        orders = [1, 2] * (n // 2 - 1) + [1, 1] if n % 2 == 0 else [1, 2] * (n // 2) + [1]
    elif n % 3 == 0:
        orders = [1, 2, 3] * (n // 3 - 1) + [1, 2] + [1]
    else:
        orders = [1, 2, 3] * (n // 3) + ([1] if n % 3 == 1 else [1, 2])
    if final_sigmas_type == "zero":
        orders[-1] = 1
    return orders


def singlestep_intervals(schedule, ts, orders):
    """``DPMSolverSinglestepScheduler``'s steps as the intervals of ``diffnb.dpm_solver``'s singlestep method.

    ``orders[i]`` is the order of the scheduler's step from ts[i] to ts[i + 1]; its orders run 1, 2, ..., q
    over the q steps of one interval, from ts[b] to ts[b + q], whose intermediate points are the listed
    times ts[b + 1], ..., ts[b + q - 1] (the papers use lambda fractions 1/2 and 1/3, 2/3 instead). Returns
    ``(outer, interval_orders, fractions)`` for ::

        dpm_solver_pp(model, x_T, schedule, outer, order=interval_orders, method="singlestep",
                      fractions=fractions, solver_type=...)   # diffusers "heun": "taylor"; "midpoint": "dpmsolver"

    with fractions (lambda(ts[b + j]) - lambda(ts[b])) / h. A step to sigma = 0 must be first order.
    """
    _checks.gaussian_path(schedule)
    if not isinstance(ts, torch.Tensor):
        raise TypeError(f"ts must be a 1-D torch.Tensor of times, got {type(ts).__name__}")
    ts = _checks.grid(ts, ts, schedule)
    if not isinstance(orders, (list, tuple)) or len(orders) != len(ts) - 1:
        raise ValueError(f"orders must be a list with one order per step ({len(ts) - 1}), got {orders!r}")
    lam = schedule.log_snr(ts.to(F64))
    starts, interval_orders = [], []
    for i, q in enumerate(orders):
        if q == 1:
            starts.append(i)
            interval_orders.append(1)
        elif q in (2, 3) and i > 0 and orders[i - 1] == q - 1:
            interval_orders[-1] = q
        else:
            raise ValueError(f"orders[{i}] = {q} does not continue an interval (orders must run 1, 2, ..., q)")
    fractions = []
    for b, q in zip(starts, interval_orders):
        if q > 1 and math.isinf(float(lam[b + q])):
            raise ValueError("the step to sigma = 0 must be first order")
        fractions.append(tuple(float((lam[b + j] - lam[b]) / (lam[b + q] - lam[b])) for j in range(1, q)))
    return ts[starts + [len(ts) - 1]], interval_orders, fractions


def dpm_scheduler_on_grid(scheduler, model, x_T, schedule, ts) -> torch.Tensor:
    """Run a diffusers DPM-Solver scheduler on any book grid ``ts`` (not only integer timesteps).

    Its ``step`` reads the noise levels only from ``scheduler.sigmas`` (EDM sigmas, one per step plus the
    final one), so the run sets placeholder integer timesteps and then replaces ``sigmas`` by the grid's
    ``noise_to_signal``; the model is called at ``ts[i]``. Used to measure diffusers' order on a fine
    lambda-uniform grid that integer timesteps cannot express.
    """
    _checks.callable_(model, "model")
    _checks.gaussian_path(schedule)
    x = _checks.batch(x_T, "x_T")
    ts = _checks.grid(ts, x, schedule)
    n = len(ts) - 1
    scheduler.set_timesteps(timesteps=list(range(n, 0, -1)))
    if len(scheduler.sigmas) != n + 1:
        raise TypeError(f"scheduler must keep one sigma per step plus a final one (a diffusers DPM-Solver "
                        f"scheduler), got {len(scheduler.sigmas)} sigmas for {n} steps")
    scheduler.sigmas = schedule.noise_to_signal(ts).to(F64)
    for i, k in enumerate(scheduler.timesteps):
        x = scheduler.step(predict_eps(model, x, ts[i]), k, x).prev_sample
    return x


def cosine_data_problem(schedule, x_scale: float = 1.0):
    """A model whose data prediction is x0_hat(x, t) = cos(lambda_t), the same for every x, and the exact
    solution of its probability-flow ODE. In DPM-Solver++'s form the ODE is linear with a known source::

        x_t = (sigma_t / sigma_s) x_s + sigma_t int_{lambda_s}^{lambda_t} e^lambda cos(lambda) d lambda,
        int e^lambda cos(lambda) d lambda = e^lambda (cos(lambda) + sin(lambda)) / 2

    so a solver's error is measured without a reference ODE solve. Returns ``(model, exact)`` with
    ``model(x, t) -> eps_hat`` and ``exact(x_s, t_s, t_t) -> x_t`` (times as floats, t_t < t_s).
    """
    _checks.gaussian_path(schedule)
    if isinstance(x_scale, bool) or not isinstance(x_scale, (int, float)):
        raise TypeError(f"x_scale must be a number, got {type(x_scale).__name__}")
    if not math.isfinite(x_scale):
        raise ValueError(f"x_scale must be finite, got {x_scale!r}")

    def model(x, t):
        la, ls, lam = (v.reshape(-1, *([1] * (x.ndim - 1))) for v in schedule.log_scales(t))
        return eps_from_x0(x, x_scale * torch.cos(lam), la.exp(), ls.exp())

    def exact(x_s, t_s, t_t):
        if not t_t < t_s:
            raise ValueError(f"t_t must be earlier than t_s, got t_s={t_s}, t_t={t_t}")
        ls, lt = float(schedule.log_snr(float(t_s))), float(schedule.log_snr(float(t_t)))
        prim = lambda lam: math.exp(lam) * (math.cos(lam) + math.sin(lam)) / 2  # noqa: E731
        sig_s, sig_t = float(schedule.sigma(float(t_s))), float(schedule.sigma(float(t_t)))
        return sig_t / sig_s * x_s + sig_t * x_scale * (prim(lt) - prim(ls))

    return model, exact
