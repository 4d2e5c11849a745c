"""DPM-Solver, DPM-Solver++ and SDE-DPM-Solver++: exponential integrators for diffusion sampling.

Notation (Lu et al. 2022 and 2025, with the book's alpha_t, sigma_t, lambda_t = log(alpha_t / sigma_t)).
One step goes from the current time s to the next, less noisy time t, as in the papers (the DDPM
samplers in ``diffnb.samplers`` say t -> s for the same thing)::

    h        = lambda_t - lambda_s > 0
    phi_k(z) = int_0^1 e^{(1 - theta) z} theta^{k-1} / (k-1)! d theta,
               phi_1(z) = expm1(z) / z,   phi_{k+1}(z) = (phi_k(z) - 1/k!) / z
    noise prediction  x_t = (alpha_t/alpha_s) x_s - sigma_t sum_n h^{n+1} phi_{n+1}(h)  eps^{(n)}
    data prediction   x_t = (sigma_t/sigma_s) x_s + alpha_t sum_n h^{n+1} phi_{n+1}(-h) x0^{(n)}
    SDE (data)        x_t = (sigma_t/sigma_s) e^{-h} x_s + alpha_t sum_n (2h)^{n+1} phi_{n+1}(-2h) x0^{(n)} / 2^n
                            + sigma_t sqrt(1 - e^{-2h}) z

eps^{(n)}, x0^{(n)} are n-th lambda-derivatives at lambda_s of the model output. Every solver here
replaces them by those of the polynomial that interpolates the model outputs it has (at
lambda_s + r_j h: intermediate points for singlestep, past grid points for multistep), i.e. by
divided differences. A step is therefore ``A x_s + sum_j w_j out_j`` with weights from
``exponential_weights``; the first-order weights are the papers' sigma_t expm1(h) and
alpha_t (-expm1(-h)) (their code calls expm1(-h) ``phi_1``). With two outputs this is the papers'
"taylor" variant of the second-order update; the papers' Algorithm 1 uses expm1(h)/(2r) in place of
h phi_2(h)/r, which differs by O(h^3) per step (same order; see the chapter).

Everything that depends only on the grid (alpha, sigma, lambda, weights) is computed once per call,
as tensors; the loop is then only model calls and axpy's.
"""

from __future__ import annotations

import math

import torch

from . import _checks
from ._sampling import _noise, _start, predict_eps

__all__ = ["phi", "exponential_weights", "dpm_solver", "dpm_solver_pp", "sde_dpm_solver_pp",
           "SINGLESTEP_FRACTIONS", "nfe_count"]

SINGLESTEP_FRACTIONS = {1: (), 2: (0.5,), 3: (1 / 3, 2 / 3)}  # intermediate points r_j (fractions of h)
METHODS = ("singlestep", "multistep")


def phi(k: int, z):
    """phi_k(z) = int_0^1 e^{(1 - theta) z} theta^{k-1}/(k-1)! d theta, elementwise, stable near z = 0
    (a 31-term series for |z| < 1, the closed form expm1 and the recursion above elsewhere)."""
    _checks.positive_int(k, "k")
    z = _checks.as_float_tensor(z, "z")
    small = z.abs() < 1
    zs = torch.where(small, z, torch.zeros_like(z))
    series = torch.zeros_like(z)
    for m in range(30, -1, -1):  # Horner for sum_m z^m / (m + k)!
        series = series * zs + 1.0 / math.factorial(m + k)
    zl = torch.where(small, torch.ones_like(z), z)
    closed = torch.expm1(zl) / zl
    for j in range(1, k):
        closed = (closed - 1.0 / math.factorial(j)) / zl
    return torch.where(small, series, closed)


def exponential_weights(H, z, fracs):
    """Weights w_j with  sum_n H z-phi terms = sum_j w_j out_j  for interpolated model outputs.

    Given outputs out_j at lambda_s + fracs_j h (fracs[..., 0] = 0), the interpolating polynomial has
    Taylor coefficients d_n = n! a_n / h^n with sum_n a_n fracs_j^n = out_j (a Vandermonde system), and
    sum_n h^{n+1} phi_{n+1}(z) d_n = H sum_n n! phi_{n+1}(z) a_n = sum_j w_j out_j. ODE steps use
    (H, z) = (h, h) for noise and (h, -h) for data prediction; the SDE step uses (2h, -2h).
    Shapes: H, z (S,), fracs (S, q) -> w (S, q).
    """
    fracs = _checks.as_float_tensor(fracs, "fracs")
    if fracs.ndim != 2:
        raise ValueError(f"fracs must have shape (steps, q), got {tuple(fracs.shape)}")
    q = fracs.shape[1]
    V = fracs[:, :, None] ** torch.arange(q, device=fracs.device)  # V[s, j, n] = fracs_j^n (0^0 = 1)
    b = torch.stack([math.factorial(n) * phi(n + 1, z) for n in range(q)], -1)
    w = torch.linalg.solve(V.transpose(1, 2), b[:, :, None])[:, :, 0]
    return H[:, None] * w


def _log_scales(log_alpha):
    """(log alpha, log sigma, lambda) from log alpha; log sigma = -inf and lambda = inf where sigma = 0."""
    log_sigma = 0.5 * torch.log(-torch.expm1(2 * log_alpha))
    return log_alpha, log_sigma, log_alpha - log_sigma


def _scales_of_lambda(lam):
    log_alpha = -0.5 * torch.nn.functional.softplus(-2 * lam)  # alpha^2 = 1 / (1 + e^{-2 lambda})
    return log_alpha, log_alpha - lam


def _check_options(order, orders, method=None, lower_order_final=False):
    if isinstance(order, bool) or not isinstance(order, int):
        raise TypeError(f"order must be an int, got {type(order).__name__}")
    if order not in orders:
        raise ValueError(f"order must be one of {list(orders)}, got {order}")
    if method is not None:
        if not isinstance(method, str):
            raise TypeError(f"method must be a str, got {type(method).__name__}")
        _checks.one_of(method, "method", METHODS)
    if not isinstance(lower_order_final, bool):
        raise TypeError(f"lower_order_final must be a bool, got {type(lower_order_final).__name__}")


def _prepare(schedule, ts, kind):
    """Grid quantities, once per call. Returns (log_alpha, log_sigma, lambda, h, to_zero)."""
    la, ls, lam = _log_scales(schedule.log_alpha(ts).to(torch.float64))
    if not bool(torch.isfinite(la).all()):
        raise ValueError("ts must keep alpha_t > 0 (lambda > -inf); choose a start time inside the schedule's range")
    to_zero = bool(torch.isinf(lam[-1]))
    if to_zero and kind == "eps":
        raise ValueError(
            f"ts reaches sigma = 0 (lambda = inf) at ts[-1] = {float(ts[-1]):g}: noise prediction cannot step "
            f"there (h = inf and sigma_t expm1(h) is 0 * inf); end the grid at a time with sigma > 0 "
            f"(e.g. t_end = 1 for DiscreteVP, 1e-3 for LinearVP) or use dpm_solver_pp, which can step to sigma = 0")
    return la, ls, lam, lam[1:] - lam[:-1], to_zero


def _orders(N, order, method, lower_order_final):
    """Order used on each interval: multistep warms up 1, 2, ..., order; lower_order_final lowers
    the last ones to N - i (the final interval is first order)."""
    i = torch.arange(N)
    q = torch.full((N,), order) if method == "singlestep" else torch.clamp(i + 1, max=order)
    if lower_order_final:
        q = torch.minimum(q, N - i)
    return q.tolist()


def nfe_count(N: int, order: int, method: str = "multistep", lower_order_final: bool = False,
              to_zero: bool = False) -> int:
    """Model evaluations of a DPM-Solver call on N intervals: one per interval for multistep; for
    singlestep, the order of each interval (k calls), except that a final step to sigma = 0 costs one."""
    _checks.positive_int(N, "N")
    _check_options(order, (1, 2, 3), method, lower_order_final)
    if method == "multistep":
        return N
    q = _orders(N, order, method, lower_order_final)
    if to_zero:
        q[-1] = 1
    return int(sum(q))


class _Model:
    """Model calls in the chosen parameterisation, counting evaluations."""

    def __init__(self, model, kind):
        self.model, self.kind, self.nfe = model, kind, 0

    def __call__(self, x, t, alpha, sigma):
        eps = predict_eps(self.model, x, t)
        self.nfe += 1
        if self.kind == "eps":
            return eps, eps, None
        x0 = torch.add(x, eps, alpha=-sigma).div_(alpha)  # (x - sigma eps) / alpha in two passes
        return x0, eps, x0


def _step_coefficients(kind, la_s, ls_s, la_t, ls_t, h, fracs):
    """A (S,) and w (S, q) of x_t = A x_s + sum_j w_j out_j for each row (an exponential-integrator step)."""
    if kind == "eps":
        return torch.exp(la_t - la_s), -torch.exp(ls_t)[:, None] * exponential_weights(h, h, fracs)
    if kind == "x0":
        return torch.exp(ls_t - ls_s), torch.exp(la_t)[:, None] * exponential_weights(h, -h, fracs)
    # SDE-DPM-Solver++: the x_s factor carries e^{-h}; the weights are the ODE's with h -> 2h.
    return torch.exp(ls_t - ls_s - h), torch.exp(la_t)[:, None] * exponential_weights(2 * h, -2 * h, fracs)


def _run(model, x_T, schedule, ts, order, method, lower_order_final, kind, callback, generator=None):
    x, ts = _start(model, x_T, schedule, ts, callback)
    la, ls, lam, h, to_zero = _prepare(schedule, ts, kind)
    N = len(ts) - 1
    q = _orders(N, order, method, lower_order_final)
    if to_zero:
        q[-1] = 1
    alpha, sigma = la.exp().tolist(), ls.exp().tolist()
    net = _Model(model, "eps" if kind == "eps" else "x0")
    if method == "singlestep":
        plan = _singlestep_plan(schedule, la, ls, lam, h, q, kind, to_zero)
    else:
        plan = _multistep_plan(la, ls, lam, h, q, kind, to_zero)
    if kind == "sde":
        noise_std = (ls[1:].exp() * torch.sqrt(-torch.expm1(-2 * h))).nan_to_num(0.0).tolist()
    history = []  # multistep: past model outputs, newest last
    for i in range(N):
        x_s = x
        out, eps_hat, x0_hat = net(x, ts[i], alpha[i], sigma[i])
        if method == "singlestep":
            outs = [out]
            for A, w, stage in plan[i]:  # stages, the last one lands on ts[i + 1]
                x_stage = _combine(A, x, w, outs)
                if stage is not None:
                    outs.append(net(x_stage, *stage)[0])
            x = x_stage
        else:
            history = (history + [out])[-order:]
            A, w = plan[i]
            x = _combine(A, x, w, reversed(history))
        if kind == "sde":
            x = x.add_(_noise(x, generator), alpha=noise_std[i])  # x is this step's new tensor
        if callback is not None:
            if x0_hat is None:
                x0_hat = (x_s - sigma[i] * eps_hat) / alpha[i]
            callback({"i": i, "t": ts[i + 1], "t_prev": ts[i], "x": x, "x0_hat": x0_hat, "eps_hat": eps_hat,
                      "nfe": net.nfe})
    return x


def _combine(A, x, w, outs):
    """A x + sum_j w_j out_j as one new tensor, one pass per term (A, w_j Python floats)."""
    y = torch.mul(x, A)
    for wj, o in zip(w, outs):
        y.add_(o, alpha=wj)
    return y


def _final_to_zero():
    """The last step to sigma = 0 with data prediction: sigma_t = 0 and alpha_t (1 - e^{-h}) = 1, so
    x_t = x0_hat(x_s, s); the higher terms h^{n+1} phi_{n+1}(-h) grow without bound as h -> inf."""
    return 0.0, [1.0]


def _multistep_plan(la, ls, lam, h, q, kind, to_zero):
    N = len(h)
    plan = [None] * N
    last = N - 1 if to_zero else N
    for order in sorted(set(q[:last])):
        idx = torch.tensor([i for i in range(last) if q[i] == order])
        # fracs_j = (lambda_{i-j} - lambda_i) / h_i: the past grid points, as fractions of this step
        fracs = torch.stack([(lam[idx - j] - lam[idx]) / h[idx] for j in range(order)], 1)
        A, w = _step_coefficients(kind, la[idx], ls[idx], la[idx + 1], ls[idx + 1], h[idx], fracs)
        for row, i in enumerate(idx.tolist()):
            plan[i] = (float(A[row]), w[row].tolist())
    if to_zero:
        plan[-1] = _final_to_zero()
    return plan


def _singlestep_plan(schedule, la, ls, lam, h, q, kind, to_zero):
    """For each interval, its stages (A, w, next): x_stage = A x_s + sum_j w_j out_j, then the model is
    called at ``next`` = (t, alpha, sigma) of the stage (None for the last stage, which is the new x)."""
    N = len(h)
    plan = [None] * N
    last = N - 1 if to_zero else N
    for order in sorted(set(q[:last])):
        idx = torch.tensor([i for i in range(last) if q[i] == order])
        nodes = torch.tensor([0.0, *SINGLESTEP_FRACTIONS[order]], dtype=torch.float64)
        targets = torch.cat([nodes[1:], torch.ones(1, dtype=torch.float64)])
        stages = []
        for j, c in enumerate(targets.tolist()):
            if c == 1.0:
                la_t, ls_t, t_next = la[idx + 1], ls[idx + 1], None
            else:
                lam_c = lam[idx] + c * h[idx]
                la_t, ls_t = _scales_of_lambda(lam_c)
                t_next = schedule.t_of_log_snr(lam_c)
            fracs = (nodes[: j + 1] / c).expand(len(idx), j + 1)
            A, w = _step_coefficients(kind, la[idx], ls[idx], la_t, ls_t, c * h[idx], fracs)
            nxt = None if t_next is None else (t_next, la_t.exp(), ls_t.exp())
            stages.append((A, w, nxt))
        for row, i in enumerate(idx.tolist()):
            plan[i] = [(float(A[row]), w[row].tolist(),
                        None if nxt is None else (nxt[0][row], float(nxt[1][row]), float(nxt[2][row])))
                       for A, w, nxt in stages]
    if to_zero:
        A, w = _final_to_zero()
        plan[-1] = [(A, w, None)]
    return plan


def dpm_solver(model, x_T, schedule, ts, order: int = 2, method: str = "singlestep",
               lower_order_final: bool = False, callback=None):
    """DPM-Solver (Lu et al. 2022) with noise prediction, from ``ts[0]`` to ``ts[-1]``.

    ``order`` 1, 2 or 3. ``method="singlestep"`` spends ``order`` model calls on each interval of ``ts``,
    with intermediate points at lambda fractions 1/2 (order 2) and 1/3, 2/3 (order 3); order 1 is DDIM.
    ``method="multistep"`` spends one call per interval and uses the outputs of the previous grid points,
    raising the order 1, 2, ... up to ``order`` as they accumulate. ``lower_order_final=True`` lowers the
    order of the last intervals to the number of intervals left (the last one first order).
    ``ts`` must keep sigma > 0: at sigma = 0, lambda = inf and the noise-prediction step is undefined.
    ``callback`` gets {"i", "t", "t_prev", "x", "x0_hat", "eps_hat", "nfe"} after each interval.
    """
    _check_options(order, (1, 2, 3), method, lower_order_final)
    return _run(model, x_T, schedule, ts, order, method, lower_order_final, "eps", callback)


def dpm_solver_pp(model, x_T, schedule, ts, order: int = 2, method: str = "multistep",
                  lower_order_final: bool = False, callback=None):
    """DPM-Solver++ (Lu et al. 2025): the same integrators on the data prediction x0_hat = (x - sigma eps)/alpha.

    Options as in ``dpm_solver``. ``ts`` may end at sigma = 0 (t = 0): the last step is then
    x_t = x0_hat(x_s, s), the limit h -> inf of the first-order step (sigma_t = 0, alpha_t (1 - e^{-h}) = 1);
    it costs one model call whatever the order, and its error is that of stopping the integral early:
    x0_hat at the last grid point instead of its limit at sigma = 0.
    """
    _check_options(order, (1, 2, 3), method, lower_order_final)
    return _run(model, x_T, schedule, ts, order, method, lower_order_final, "x0", callback)


def sde_dpm_solver_pp(model, x_T, schedule, ts, order: int = 1, generator=None, callback=None):
    """SDE-DPM-Solver++ (Lu et al. 2025) for the reverse SDE, orders 1 and 2 (multistep, "2M")::

        x_t = (sigma_t/sigma_s) e^{-h} x_s + alpha_t (1 - e^{-2h}) x0_hat + [2M: second-order term] + sigma_t sqrt(1 - e^{-2h}) z

    Order 1 is DDPM's respaced posterior step (the same chain given the same noise). One noise draw per
    step, also on a final step to sigma = 0, where it is multiplied by 0 (as in ``ddpm``).
    """
    _check_options(order, (1, 2))
    return _run(model, x_T, schedule, ts, order, "multistep", False, "sde", callback, generator)
