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

eps^{(n)}, x0^{(n)} are n-th lambda-derivatives at lambda_s of the model output. None of this uses
alpha^2 + sigma^2 = 1: divided by alpha_t, each update is a statement about y = x/alpha and lambda
alone, so it holds on every Gaussian path (VP, VE, flow matching), and the same lambda grid gives the
same y trajectory on all of them. Alpha and sigma come from ``schedule.log_scales``; an intermediate
point is placed at its lambda with ``schedule.t_of_log_snr``.

Weights. Every update is ``A x_s + sum_j w_j out_j`` over model outputs out_j at lambda_s + r_j h
(intermediate points for singlestep, past grid points for multistep), with
``w = H V^{-T} b``, V_{jn} = r_j^n (``exponential_weights``). ``solver_type`` chooses b:

* ``"taylor"``: b_n = n! phi_{n+1}(z), the polynomial through the outputs integrated exactly (the
  interpolation form that Chapter 4 derives; the papers' code calls it "taylor").
* ``"dpmsolver"`` (default): the papers' algorithm boxes. DPM-Solver-2 and DPM-Solver++(2S) (Algorithm 1
  of each paper) and the multistep 2M step (DPM-Solver++'s Algorithm 2) put b_1 = phi_1(z)/2 in place of
  phi_2(z): the derivative is weighted by expm1(h)/(2r) instead of h phi_2(h)/r (same limit as h -> 0,
  a different O(h^3) per step). DPM-Solver-3 (DPM-Solver's Algorithm 2) ends its interval with the
  taylor weights of the outputs at s and s_2 only. Singlestep third order needs r_2 = 2/3 (any r_1)
  in both forms; other intermediate points give a second-order method.
* Third-order multistep is the same in both: quadratic interpolation of the last three outputs, i.e.
  the corrected second divided difference (the official code and diffusers weight it by one half,
  which makes their "3M" second order).

The first-order weights are the papers' sigma_t expm1(h) and alpha_t (-expm1(-h)) (their code calls
expm1(-h) ``phi_1``). Everything that depends only on the grid (alpha, sigma, lambda, weights) is
computed once per call, as tensors; the loop is then only model calls and axpy's.
"""

from __future__ import annotations

import math

import torch

from . import _checks
from ._sampling import _noise, _start, grid_scales, predict_eps
from .forward import x0_from_eps
from .guidance import check_thresholding, threshold

__all__ = ["phi", "exponential_weights", "dpm_solver", "dpm_solver_pp", "sde_dpm_solver_pp", "fast_orders",
           "SINGLESTEP_FRACTIONS", "SOLVER_TYPES", "nfe_count"]

F64 = torch.float64
SINGLESTEP_FRACTIONS = {1: (), 2: (0.5,), 3: (1 / 3, 2 / 3)}  # the papers' intermediate points r_j (fractions of h)
METHODS = ("singlestep", "multistep")
SOLVER_TYPES = ("dpmsolver", "taylor")

# Which outputs each update uses, and whether it takes the papers' b_1 = phi_1/2 ("midpoint").
# Singlestep: one entry per stage of an order-q interval; stage j lands at r_{j+1} (the last at the
# interval's end) and may use outputs 0..j (0 at s, j at the j-th intermediate point).
_SINGLESTEP_FORMS = {
    "taylor": {1: [((0,), False)],
               2: [((0,), False), ((0, 1), False)],
               3: [((0,), False), ((0, 1), False), ((0, 1, 2), False)]},
    "dpmsolver": {1: [((0,), False)],
                  2: [((0,), False), ((0, 1), True)],               # Algorithm 1 of both papers
                  3: [((0,), False), ((0, 1), False), ((0, 2), False)]},  # DPM-Solver's Algorithm 2
}
# Multistep of order q uses the outputs at the current and the q - 1 previous grid points.
_MULTISTEP_MIDPOINT = {"taylor": {1: False, 2: False, 3: False},
                       "dpmsolver": {1: False, 2: True, 3: False}}  # 2M: DPM-Solver++'s Algorithm 2


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


def exponential_weights(H, z, fracs, midpoint: bool = False):
    """Weights w_j with  sum_n H z-phi terms = sum_j w_j out_j  for interpolated model outputs.

    Given outputs out_j at lambda_s + fracs_j h (fracs[..., 0] = 0), the interpolating polynomial has
    Taylor coefficients d_n = n! a_n / h^n with sum_n a_n fracs_j^n = out_j (a Vandermonde system), and
    sum_n h^{n+1} phi_{n+1}(z) d_n = H sum_n b_n a_n = sum_j w_j out_j with b_n = n! phi_{n+1}(z).
    ODE steps use (H, z) = (h, h) for noise and (h, -h) for data prediction; the SDE step uses (2h, -2h).
    ``midpoint=True`` (two outputs only) takes b_1 = phi_1(z)/2 instead of phi_2(z): the papers'
    second-order algorithms (``solver_type="dpmsolver"``, diffusers' "midpoint").
    Shapes: H, z (S,), fracs (S, q) -> w (S, q).
    """
    fracs = _checks.as_float_tensor(fracs, "fracs")
    if fracs.ndim != 2:
        raise ValueError(f"fracs must have shape (steps, q), got {tuple(fracs.shape)}")
    q = fracs.shape[1]
    _checks.flag(midpoint, "midpoint")
    if midpoint and q != 2:
        raise ValueError(f"midpoint weights need exactly two outputs (fracs of shape (steps, 2)), got q={q}")
    V = fracs[:, :, None] ** torch.arange(q, device=fracs.device)  # V[s, j, n] = fracs_j^n (0^0 = 1)
    b = [math.factorial(n) * phi(n + 1, z) for n in range(q)]
    if midpoint:
        b[1] = phi(1, z) / 2
    w = torch.linalg.solve(V.transpose(1, 2), torch.stack(b, -1)[:, :, None])[:, :, 0]
    return H[:, None] * w


def fast_orders(nfe: int, order: int = 3) -> list[int]:
    """DPM-Solver-fast (Lu et al. 2022, Sec. 3.4): the order of each singlestep interval that spends
    exactly ``nfe`` model calls, as the paper and its code (``get_orders_and_timesteps_for_singlestep_solver``)
    choose them. ``order=3``: K = nfe // 3 + 1 intervals, third order except the last one or two
    (nfe % 3 = 0: ..., 3, 2, 1; nfe % 3 = 1: ..., 3, 1; nfe % 3 = 2: ..., 3, 2). ``order=2``: second order,
    one first-order interval at the end if nfe is odd. ``order=1``: nfe DDIM steps.

    The paper's grid has K + 1 points uniform in lambda::

        orders = fast_orders(20)                                     # [3, 3, 3, 3, 3, 3, 2]
        ts = schedule.timesteps(len(orders), "logsnr", t_end=1e-3)
        x0 = dpm_solver(model, x_T, schedule, ts, order=orders)      # 20 model calls
    """
    _checks.positive_int(nfe, "nfe")
    _check_order(order, (1, 2, 3), allow_list=False)
    if order == 1:
        return [1] * nfe
    if order == 2:
        return [2] * (nfe // 2) + [1] * (nfe % 2)
    K = nfe // 3 + 1
    tail = {0: [2, 1], 1: [1], 2: [2]}[nfe % 3]
    return [3] * (K - len(tail)) + tail


# --- options -----------------------------------------------------------------------------------------------
def _check_order(order, allowed, allow_list=True):
    if allow_list and isinstance(order, (list, tuple)):
        for i, o in enumerate(order):
            _check_one_order(o, allowed, f"order[{i}]", "an int")
    else:
        _check_one_order(order, allowed, "order", "an int or a list of ints (one per interval)" if allow_list else "an int")


def _check_one_order(o, allowed, name, kinds):
    if isinstance(o, bool) or not isinstance(o, int):
        raise TypeError(f"{name} must be {kinds}, got {type(o).__name__}")
    if o not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {o}")


def _check_options(order, allowed, method, solver_type, lower_order_final):
    _check_order(order, allowed)
    _checks.choice(method, "method", METHODS)
    _checks.choice(solver_type, "solver_type", SOLVER_TYPES)
    _checks.flag(lower_order_final, "lower_order_final")


def _interval_orders(N, order, method, lower_order_final):
    """Order used on each of the N intervals: an int gives singlestep that order everywhere and multistep
    its warm-up 1, 2, ..., order; a list gives them one by one. lower_order_final lowers the last ones to
    N - i (the final interval is first order)."""
    if isinstance(order, (list, tuple)):
        if len(order) != N:
            raise ValueError(f"order must have one entry per interval of ts ({N}), got {len(order)}")
        q = list(order)
        if method == "multistep":
            for i, o in enumerate(q):
                if o > i + 1:
                    raise ValueError(f"order[{i}] = {o} needs {o} model outputs, but multistep has only {i + 1} "
                                     f"at interval {i} (orders must warm up: order[i] <= i + 1)")
    else:
        q = [order if method == "singlestep" else min(i + 1, order) for i in range(N)]
    if lower_order_final:
        q = [min(o, N - i) for i, o in enumerate(q)]
    return q


def _check_fractions(fractions, q, method):
    """The intermediate points of each singlestep interval, as fractions r_j of its h."""
    if fractions is None:
        return [SINGLESTEP_FRACTIONS[o] for o in q]
    if method != "singlestep":
        raise ValueError("fractions applies to method='singlestep' only (multistep uses the grid's own points)")
    if not isinstance(fractions, (list, tuple)) or len(fractions) != len(q):
        raise ValueError(f"fractions must be a list with one tuple of intermediate fractions per interval "
                         f"({len(q)}), got {fractions!r:.80}")
    out = []
    for i, (r, o) in enumerate(zip(fractions, q)):
        r = tuple(float(v) for v in r) if isinstance(r, (list, tuple)) else r
        if not isinstance(r, tuple) or len(r) != o - 1 or not all(a < b for a, b in zip((0.0,) + r, r + (1.0,))):
            raise ValueError(f"fractions[{i}] must hold order - 1 = {o - 1} increasing numbers in (0, 1) for the "
                             f"interval's order {o}, got {fractions[i]!r}")
        out.append(r)
    return out


def nfe_count(N: int, order=2, method: str = "multistep", lower_order_final: bool = False,
              to_zero: bool = False) -> int:
    """Model evaluations of a DPM-Solver call on N intervals: one per interval for multistep; for
    singlestep, the order of each interval (k calls), except that a final step to sigma = 0 costs one."""
    _checks.positive_int(N, "N")
    _check_options(order, (1, 2, 3), method, "taylor", lower_order_final)
    _checks.flag(to_zero, "to_zero")
    if method == "multistep":
        return N
    q = _interval_orders(N, order, method, lower_order_final)
    if to_zero:
        q[-1] = 1
    return int(sum(q))


# --- the integrator ----------------------------------------------------------------------------------------
class _Model:
    """Model calls in the chosen parameterisation, counting evaluations."""

    def __init__(self, model, prediction, thresholding=None):
        self.model, self.prediction, self.nfe = model, prediction, 0
        self.thresholding = thresholding  # None, or (kind, percentile, max_value) for x0_hat

    def __call__(self, x, t, alpha, sigma):
        eps = predict_eps(self.model, x, t)
        self.nfe += 1
        if self.prediction == "eps":
            return eps, eps, None
        x0 = x0_from_eps(x, eps, alpha, sigma)
        if self.thresholding is not None:  # the solver then integrates the thresholded x0_hat
            x0 = threshold(x0, *self.thresholding)
        return x0, eps, x0


def _step_coefficients(prediction, stochastic, la_s, ls_s, la_t, ls_t, h, fracs, midpoint):
    """A (S,) and w (S, q) of x_t = A x_s + sum_j w_j out_j for each row (an exponential-integrator step)."""
    if prediction == "eps":
        return torch.exp(la_t - la_s), -torch.exp(ls_t)[:, None] * exponential_weights(h, h, fracs, midpoint)
    if not stochastic:
        return torch.exp(ls_t - ls_s), torch.exp(la_t)[:, None] * exponential_weights(h, -h, fracs, midpoint)
    # SDE-DPM-Solver++: the x_s factor carries e^{-h}; the weights are the ODE's with h -> 2h.
    return torch.exp(ls_t - ls_s - h), torch.exp(la_t)[:, None] * exponential_weights(2 * h, -2 * h, fracs, midpoint)


def _groups(q, last):
    """Intervals 0..last-1 grouped by order: {order: [interval indices]}."""
    out = {}
    for i in range(last):
        out.setdefault(q[i], []).append(i)
    return out


def _singlestep_plan(schedule, la, ls, lam, q, fracs, solver_type, prediction, stochastic, to_zero):
    """For each interval, its stages (A, w, next): x_stage = A x_s + sum_j w_j out_j, then the model is
    called at ``next`` = (t, alpha, sigma) of the stage (None for the last stage, which is the new x)."""
    N, h = len(q), lam[1:] - lam[:-1]
    plan = [None] * N
    for order, rows in _groups(q, N - 1 if to_zero else N).items():
        idx = torch.tensor(rows)
        r = torch.tensor([fracs[i] for i in rows], dtype=F64, device=lam.device).reshape(len(rows), order - 1)
        lands = []  # where each stage lands: the intermediate points, then the interval's end
        for j in range(order - 1):
            t_c = schedule.t_of_log_snr(lam[idx] + r[:, j] * h[idx])
            lands.append((t_c, *schedule.log_scales(t_c)))
        lands.append((None, la[idx + 1], ls[idx + 1], lam[idx + 1]))
        node_lam = torch.stack([lam[idx]] + [land[3] for land in lands[:-1]], 1)  # lambda of each output
        stages = []
        for j, ((used, midpoint), (t_c, la_c, ls_c, lam_c)) in enumerate(
                zip(_SINGLESTEP_FORMS[solver_type][order], lands)):
            H = lam_c - lam[idx]
            fr = (node_lam[:, list(used)] - lam[idx, None]) / H[:, None]
            A, w = _step_coefficients(prediction, stochastic, la[idx], ls[idx], la_c, ls_c, H, fr, midpoint)
            W = torch.zeros(len(rows), j + 1, dtype=F64, device=lam.device)
            W[:, list(used)] = w
            nxt = None if t_c is None else (t_c, la_c.exp().tolist(), ls_c.exp().tolist())
            stages.append((A.tolist(), W.tolist(), nxt))
        for k, i in enumerate(rows):
            plan[i] = [(A[k], W[k], None if nxt is None else (nxt[0][k], nxt[1][k], nxt[2][k]))
                       for A, W, nxt in stages]
    if to_zero:
        plan[-1] = [_final_to_zero() + (None,)]
    return plan


def _multistep_plan(la, ls, lam, q, solver_type, prediction, stochastic, to_zero):
    N, h = len(q), lam[1:] - lam[:-1]
    plan = [None] * N
    for order, rows in _groups(q, N - 1 if to_zero else N).items():
        idx = torch.tensor(rows)
        # fracs_j = (lambda_{i-j} - lambda_i) / h_i: the past grid points, as fractions of this step
        fracs = torch.stack([(lam[idx - j] - lam[idx]) / h[idx] for j in range(order)], 1)
        A, w = _step_coefficients(prediction, stochastic, la[idx], ls[idx], la[idx + 1], ls[idx + 1], h[idx],
                                  fracs, _MULTISTEP_MIDPOINT[solver_type][order])
        for k, i in enumerate(rows):
            plan[i] = (float(A[k]), w[k].tolist())
    if to_zero:
        plan[-1] = _final_to_zero()
    return plan


def _final_to_zero():
    """The last step to sigma = 0 with data prediction: sigma_t = 0 and alpha_t (1 - e^{-h}) = 1, so
    x_t = x0_hat(x_s, s); the higher terms h^{n+1} phi_{n+1}(-h) grow without bound as h -> inf."""
    return 0.0, [1.0]


def _combine(A, x, w, outs):
    """A x + sum_j w_j out_j as one new tensor, one pass per nonzero term (A, w_j Python floats)."""
    y = torch.mul(x, A)
    for wj, o in zip(w, outs):
        if wj != 0.0:
            y.add_(o, alpha=wj)
    return y


def _run(model, x_T, schedule, ts, order, method, solver_type, lower_order_final, fractions, prediction,
         stochastic, callback, generator=None, thresholding=None):
    x, ts = _start(model, x_T, schedule, ts, callback)
    la, ls, lam = grid_scales(schedule, ts)
    to_zero = bool(torch.isposinf(lam[-1]))
    if to_zero and prediction == "eps":
        raise ValueError(
            f"ts reaches sigma = 0 (lambda = inf) at ts[-1] = {float(ts[-1]):g}: noise prediction cannot step "
            f"there (h = inf and sigma_t expm1(h) is 0 * inf); end the grid at a time with sigma > 0 "
            f"(e.g. t_end = 1 for DiscreteVP, 1e-3 for LinearVP, sigma_min for VE) or use dpm_solver_pp, "
            f"which can step to sigma = 0")
    N = len(ts) - 1
    q = _interval_orders(N, order, method, lower_order_final)
    if to_zero:
        q[-1] = 1
    fracs = _check_fractions(fractions, q, method)
    if method == "singlestep":
        plan = _singlestep_plan(schedule, la, ls, lam, q, fracs, solver_type, prediction, stochastic, to_zero)
    else:
        plan = _multistep_plan(la, ls, lam, q, solver_type, prediction, stochastic, to_zero)
    if stochastic:  # sigma_t sqrt(1 - e^{-2h}); 0 on a final step to sigma = 0
        noise_std = (ls[1:].exp() * torch.sqrt(-torch.expm1(-2 * (lam[1:] - lam[:-1])))).tolist()
    alpha, sigma = la.exp().tolist(), ls.exp().tolist()
    net = _Model(model, prediction, thresholding)
    history, keep = [], max(q)  # multistep: past model outputs, newest last
    for i in range(N):
        x_s = x
        out, eps_hat, x0_hat = net(x_s, ts[i], alpha[i], sigma[i])
        if method == "singlestep":
            outs = [out]
            for A, w, nxt in plan[i]:  # stages, the last one lands on ts[i + 1]
                x = _combine(A, x_s, w, outs)
                if nxt is not None:
                    outs.append(net(x, *nxt)[0])
        else:
            history = (history + [out])[-keep:]
            A, w = plan[i]
            x = _combine(A, x_s, w, reversed(history))
        if stochastic:
            x.add_(_noise(x, generator), alpha=noise_std[i])  # x is this step's new tensor
        if callback is not None:
            if x0_hat is None:
                x0_hat = x0_from_eps(x_s, eps_hat, alpha[i], sigma[i])
            callback({"i": i, "t": ts[i + 1], "t_prev": ts[i], "x": x, "x0_hat": x0_hat, "eps_hat": eps_hat,
                      "nfe": net.nfe})
    return x


# --- public samplers ---------------------------------------------------------------------------------------
def dpm_solver(model, x_T, schedule, ts, order=2, method: str = "singlestep", *, solver_type: str = "dpmsolver",
               lower_order_final: bool = False, fractions=None, callback=None):
    """DPM-Solver (Lu et al. 2022) with noise prediction, from ``ts[0]`` to ``ts[-1]``, on any Gaussian path.

    ``order`` 1, 2 or 3, or a list with one order per interval of ``ts`` (e.g. ``fast_orders(nfe)``,
    the paper's DPM-Solver-fast). ``method="singlestep"`` spends k model calls on an order-k interval,
    with intermediate points at lambda fractions 1/2 (order 2) and 1/3, 2/3 (order 3), or at
    ``fractions`` (one tuple of r_j per interval, the papers' r_1, r_2; third order needs r_2 = 2/3);
    order 1 is DDIM.
    ``method="multistep"`` spends one call per interval and uses the outputs of the previous grid points,
    raising the order 1, 2, ... up to ``order`` as they accumulate (a list must keep order[i] <= i + 1).
    ``solver_type``: ``"dpmsolver"`` (the papers' Algorithms 1 and 2) or ``"taylor"``; see the module
    docstring. ``lower_order_final=True`` lowers the order of the last intervals to the number of
    intervals left (the last one first order).
    ``ts`` must keep sigma > 0 (at sigma = 0, lambda = inf and the noise-prediction step is undefined)
    and alpha > 0 (flow matching's t = 1).
    ``callback`` gets {"i", "t", "t_prev", "x", "x0_hat", "eps_hat", "nfe"} after each interval.
    """
    _check_options(order, (1, 2, 3), method, solver_type, lower_order_final)
    return _run(model, x_T, schedule, ts, order, method, solver_type, lower_order_final, fractions, "eps", False,
                callback)


def dpm_solver_pp(model, x_T, schedule, ts, order=2, method: str = "multistep", *, solver_type: str = "dpmsolver",
                  lower_order_final: bool = False, fractions=None, callback=None, thresholding=None,
                  percentile: float = 0.995, max_value: float = 1.0):
    """DPM-Solver++ (Lu et al. 2025): the same integrators on the data prediction x0_hat = (x - sigma eps)/alpha.

    Options as in ``dpm_solver``. ``ts`` may end at sigma = 0 (t = 0): the last step is then
    x_t = x0_hat(x_s, s), the limit h -> inf of the first-order step (sigma_t = 0, alpha_t (1 - e^{-h}) = 1);
    it costs one model call whatever the order, and its error is that of stopping the integral early:
    x0_hat at the last grid point instead of its limit at sigma = 0.

    ``thresholding``: None, ``"static"`` (x0_hat clipped to [-max_value, max_value]) or ``"dynamic"``
    (Imagen's per-sample rule with ``percentile``; ``diffnb.guidance.dynamic_threshold``), applied to
    every data prediction the solver uses (and passed to ``callback``). The solver then integrates the
    ODE whose data prediction is the thresholded one (``guidance.thresholded_eps_model``).
    """
    _check_options(order, (1, 2, 3), method, solver_type, lower_order_final)
    check_thresholding(thresholding, percentile, max_value)
    thr = None if thresholding is None else (thresholding, float(percentile), float(max_value))
    return _run(model, x_T, schedule, ts, order, method, solver_type, lower_order_final, fractions, "x0", False,
                callback, thresholding=thr)


def sde_dpm_solver_pp(model, x_T, schedule, ts, order=1, generator=None, callback=None, *,
                      solver_type: str = "dpmsolver"):
    """SDE-DPM-Solver++ (Lu et al. 2025) for the reverse SDE, orders 1 and 2 (multistep, "2M")::

        x_t = (sigma_t/sigma_s) e^{-h} x_s + alpha_t (1 - e^{-2h}) x0_hat + [2M: second-order term] + sigma_t sqrt(1 - e^{-2h}) z

    The 2M term is alpha_t (1 - e^{-2h}) D_1 / 2 for ``solver_type="dpmsolver"`` (the form of the paper,
    diffusers and k-diffusion, "midpoint") and alpha_t (1 - (1 - e^{-2h})/(2h)) D_1 for ``"taylor"``, with
    D_1 = (x0_hat_i - x0_hat_{i-1}) h_i / h_{i-1}. Order 1 is DDPM's respaced posterior step (the same
    chain given the same noise). One noise draw per step, also on a final step to sigma = 0, where it is
    multiplied by 0 (as in ``ddpm``).
    """
    _check_options(order, (1, 2), "multistep", solver_type, False)
    return _run(model, x_T, schedule, ts, order, "multistep", solver_type, False, None, "x0", True, callback,
                generator)
