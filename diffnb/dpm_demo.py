"""Chapter 4's helpers (the ODE and DPM-Solver): the papers' printed update forms as local-error
series, the published third-order multistep step, SDE-DPM-Solver++ with explicit (coupled) noise,
order studies, bake-offs over independent blocks of samples, and the explorer's frames.

Notation (the book's; a step goes from s to the less noisy t, as in the papers)::

    lambda = log(alpha / sigma),  h = lambda_t - lambda_s,  r fractions of h
    y = x / alpha       noise prediction: dy/dlambda = -e^{-lambda} eps
    w = x / sigma       data prediction:  dw/dlambda =  e^{lambda} x0
    b_n                 the weight of the n-th lambda-derivative in an update, divided by h^{n+1}:
                        taylor b_n = n! phi_{n+1}(z);  the papers' "dpmsolver" 2-output steps take
                        b_1 = phi_1(z) / 2 (Algorithm 1 of both papers, DPM-Solver++'s Algorithm 2)
    d2_weight           the factor on b_2 of the third-order multistep step: 1 is the corrected
                        step (``diffnb.dpm_solver``), 1/2 the one published in the reference code
                        of DPM-Solver, in k-diffusion's ``sample_dpmpp_3m_sde`` and in diffusers
    block               one of B equal slices of a batch: with one generator for the whole batch,
                        the blocks are independent replicates (different x_T, different noise)
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import sympy as sp
import torch

from . import _checks, bakeoff, catalogue, metrics, plots, toy
from .dpm_solver import fast_orders, phi
from .symbolic import dpm_solver as sdp
from .symbolic.core import local_order, ode_series, truncate

__all__ = ["FORMS", "LOWER_FINAL_BELOW", "form_series", "form_orders", "multistep", "coarse_noises",
           "sde_study", "gaussian_sde_study", "budget_run", "bake_blocks", "order_errors", "paired_gap", "block_gap",
           "linestyle", "small_png", "render_paths", "PUBLISHED_3M"]

F64 = torch.float64


def _number(v, name: str) -> float:
    """A finite real Python number (not a bool), as a float."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v!r}")
    return float(v)


def _factors(factors, n_intervals: int) -> list:
    """Coarsening factors: a non-empty sequence of ints >= 1, each dividing ``n_intervals``."""
    if isinstance(factors, (str, bytes)) or not hasattr(factors, "__iter__"):
        raise TypeError(f"factors must be a sequence of ints, got {type(factors).__name__}")
    factors = list(factors)
    if not factors:
        raise ValueError("factors must hold at least one coarsening factor")
    for m in factors:
        _checks.positive_int(m, "each of factors")
        if n_intervals % m:
            raise ValueError(f"factors must divide the number of fine intervals ({n_intervals}), got {m}")
    return factors

# Stages of a singlestep interval, as the two solver types build them: stage j lands at the
# next intermediate point (the last at the interval's end) and uses the outputs listed, with or
# without the papers' b_1 = phi_1 / 2 ("midpoint").  Output 0 is at s, output j at the j-th point.
SINGLESTEP_STAGES = {
    "taylor": {2: [((0,), False), ((0, 1), False)],
               3: [((0,), False), ((0, 1), False), ((0, 1, 2), False)]},
    "dpmsolver": {2: [((0,), False), ((0, 1), True)],                # Algorithm 1
                  3: [((0,), False), ((0, 1), False), ((0, 2), False)]},  # Algorithm 2
}
# The updates of the chapter: name -> (method, kind, order).
FORMS = {
    "DPM-Solver-2": ("singlestep", "eps", 2), "DPM-Solver-3": ("singlestep", "eps", 3),
    "DPM-Solver++(2S)": ("singlestep", "x0", 2), "DPM-Solver++(3S)": ("singlestep", "x0", 3),
    "DPM-Solver(2M)": ("multistep", "eps", 2), "DPM-Solver(3M)": ("multistep", "eps", 3),
    "DPM-Solver++(2M)": ("multistep", "x0", 2), "DPM-Solver++(3M)": ("multistep", "x0", 3),
}


# --- local errors of the printed forms, on the symbolic test problem --------------------------------
def _weights(H, z, fracs, K, midpoint=False, d2_weight=1):
    """Symbolic weights w_j (phi by its Taylor polynomial of K + 1 terms): b_n = n! phi_{n+1}(z),
    with b_1 = phi_1(z)/2 if ``midpoint`` and b_2 scaled by ``d2_weight``."""
    q = len(fracs)
    V = sp.Matrix(q, q, lambda j, n: sp.sympify(fracs[j]) ** n)
    b = [sp.factorial(n) * sdp.phi_series(n + 1, z, K + 1) for n in range(q)]
    if midpoint:
        b[1] = sdp.phi_series(1, z, K + 1) / 2
    if q == 3:
        b[2] = b[2] * d2_weight
    return [sp.expand(H * wj) for wj in V.T.LUsolve(sp.Matrix(b))]


def _exp(u, K):
    return sdp.phi_series(0, u, K + 1)


def _output(P, kind, y, lam, h, K):
    """The model output at (y, lambda) that makes the ODE the test problem dy/dlambda = G."""
    g = P.G.subs({P.y: y, P.lam: lam}, simultaneous=True)
    return truncate((-_exp(lam, K) if kind == "eps" else _exp(-lam, K)) * g, h, K)


def _step(kind, y_s, H, fracs, outs, h, K, midpoint=False, d2_weight=1):
    """One exponential-integrator update over a step of length H from lambda = 0."""
    w = _weights(H, H if kind == "eps" else -H, fracs, K, midpoint, d2_weight)
    acc = sum(wj * o for wj, o in zip(w, outs))
    new = y_s - _exp(-H, K) * acc if kind == "eps" else y_s + _exp(H, K) * acc
    return truncate(new, h, K)


def form_series(name, solver_type="taylor", K=4, P=None, d2_weight=1, r=None):
    """``(series, h, P)``: the Taylor polynomial in h (degree K) of one step of the update ``name``
    (a key of ``FORMS``) in ``solver_type``'s form, on the test problem ``P``
    (``symbolic.dpm_solver.small_test_problem``) from lambda = 0; multistep steps use exact history
    on a uniform lambda grid. ``d2_weight`` scales the second-derivative weight of a third-order
    multistep step (1/2: the published step); ``r`` moves the intermediate points of a singlestep step:
    one fraction for second order (default 1/2), a pair (r_1, r_2) for third order (default (1/3, 2/3))."""
    if name not in FORMS:
        raise ValueError(f"name must be one of {list(FORMS)}, got {name!r}")
    _checks.choice(solver_type, "solver_type", ("taylor", "dpmsolver"))
    method, kind, q = FORMS[name]
    P = P or sdp.small_test_problem()
    h = sp.Symbol("h", positive=True)
    if r is not None and method != "singlestep":
        raise ValueError(f"r applies to singlestep updates only, not {name!r}")
    if method == "multistep":
        v = sp.Dummy("v")
        exact = ode_series(P.G, P.y, P.lam, P.y0, v, K)
        fracs = [sp.Integer(-j) for j in range(q)]
        outs = [_output(P, kind, truncate(exact.subs(v, f * h), h, K), f * h, h, K) for f in fracs]
        mid = solver_type == "dpmsolver" and q == 2
        return _step(kind, P.y0, h, fracs, outs, h, K, mid, d2_weight), h, P
    nodes = [sp.Integer(0), *[sp.Rational(j, q) for j in range(1, q)], sp.Integer(1)]
    if r is not None:
        rs = list(r) if isinstance(r, (list, tuple)) else [r]
        if len(rs) != q - 1:
            raise ValueError(f"r must hold {q - 1} intermediate fraction(s) for {name!r}, got {r!r}")
        nodes[1:q] = [sp.sympify(v) for v in rs]
    outs = [_output(P, kind, P.y0, sp.Integer(0), h, K)]
    for j, (used, mid) in enumerate(SINGLESTEP_STAGES[solver_type][q]):
        c = nodes[j + 1]
        y_c = _step(kind, P.y0, c * h, [nodes[u] / c for u in used], [outs[u] for u in used], h, K, mid)
        if j < q - 1:
            outs.append(_output(P, kind, y_c, c * h, h, K))
    return y_c, h, P


def form_orders(names=None, P=None):
    """``{name: (p_taylor, p_dpmsolver, p_difference)}``: the local orders (lowest power of h) of
    both forms' errors against the exact solution and of their difference."""
    names = list(FORMS) if names is None else names
    out = {}
    for name in names:
        K = FORMS[name][2] + 1
        ya, h, P_ = form_series(name, "taylor", K, P)
        yb, _, _ = form_series(name, "dpmsolver", K, P)
        exact = ode_series(P_.G, P_.y, P_.lam, P_.y0, h, K)
        out[name] = tuple(local_order(e, h, K + 1)[0] for e in (ya - exact, yb - exact, ya - yb))
    return out


# --- the multistep step with a chosen second-derivative weight; explicit noise for the SDE ----------
def _solve(A, b):
    """Gaussian elimination with partial pivoting for a small dense system (lists of floats)."""
    n = len(b)
    M = [list(row) + [v] for row, v in zip(A, b)]
    for c in range(n):
        p = max(range(c, n), key=lambda i: abs(M[i][c]))
        M[c], M[p] = M[p], M[c]
        for i in range(c + 1, n):
            f = M[i][c] / M[c][c]
            M[i] = [a - f * e for a, e in zip(M[i], M[c])]
    x = [0.0] * n
    for i in range(n - 1, -1, -1):
        x[i] = (M[i][n] - sum(M[i][j] * x[j] for j in range(i + 1, n))) / M[i][i]
    return x


def _vandermonde_weights(H, z, fracs, midpoint, d2_weight):
    """w = H V^{-T} b with V_{jn} = fracs_j^n and b_n = n! phi_{n+1}(z) (b_1 = phi_1(z)/2 if
    ``midpoint``; b_2 scaled by ``d2_weight``)."""
    q = len(fracs)
    b = [math.factorial(n) * float(phi(n + 1, z)) for n in range(q)]
    if midpoint:
        b[1] = float(phi(1, z)) / 2
    if q == 3:
        b[2] *= d2_weight
    VT = [[f**n for f in fracs] for n in range(q)]
    return [H * w for w in _solve(VT, b)]


def multistep(model, x_T, schedule, ts, order=3, prediction="x0", solver_type="dpmsolver", d2_weight=1.0,
              noises=None):
    """Multistep DPM-Solver (``prediction="eps"``) or DPM-Solver++ (``"x0"``) of ``order`` 1-3 with warm-up
    1, 2, ..., the third-order step's second-derivative weight scaled by ``d2_weight`` (1: as in
    ``diffnb.dpm_solver``; 1/2: as published). With ``noises`` (one standard normal tensor of x_T's shape
    per interval) it is SDE-DPM-Solver++ (data prediction only) driven by exactly those draws."""
    _checks.callable_(model, "model")
    x_T = _checks.batch(x_T, "x_T")
    _checks.gaussian_path(schedule)
    _checks.grid(ts, x_T, schedule)
    _checks.positive_int(order, "order")
    if order > 3:
        raise ValueError(f"order must be 1, 2 or 3, got {order}")
    _number(d2_weight, "d2_weight")
    _checks.choice(prediction, "prediction", ("eps", "x0"))
    _checks.choice(solver_type, "solver_type", ("taylor", "dpmsolver"))
    if noises is not None and prediction != "x0":
        raise ValueError("noises applies to prediction='x0' (SDE-DPM-Solver++) only")
    if noises is not None:
        if isinstance(noises, torch.Tensor) or not isinstance(noises, (list, tuple)):
            raise TypeError(f"noises must be a list of tensors, one per interval, got {type(noises).__name__}")
        if len(noises) != len(ts) - 1:
            raise ValueError(f"noises must hold one tensor per interval ({len(ts) - 1}), got {len(noises)}")
        for z in noises:
            if _checks.batch(z, "each of noises").shape != x_T.shape:
                raise ValueError(f"each of noises must have x_T's shape {tuple(x_T.shape)}, got {tuple(z.shape)}")
    la, ls, lam = (v.tolist() for v in schedule.log_scales(ts))
    x, outs = x_T, []
    for i in range(len(ts) - 1):
        eps = model(x, ts[i].expand(x.shape[0]))
        out = eps if prediction == "eps" else (x - math.exp(ls[i]) * eps) / math.exp(la[i])
        outs = (outs + [out])[-min(order, i + 1):]
        h = lam[i + 1] - lam[i]
        fr = [(lam[i - j] - lam[i]) / h for j in range(len(outs))]
        mid = solver_type == "dpmsolver" and len(outs) == 2
        if prediction == "eps":
            w = _vandermonde_weights(h, h, fr, mid, d2_weight)
            x = math.exp(la[i + 1] - la[i]) * x - math.exp(ls[i + 1]) * sum(
                wj * o for wj, o in zip(w, reversed(outs)))
            continue
        H, A = (h, math.exp(ls[i + 1] - ls[i])) if noises is None else (2 * h, math.exp(ls[i + 1] - ls[i] - h))
        w = _vandermonde_weights(H, -H, fr, mid, d2_weight)
        x = A * x + math.exp(la[i + 1]) * sum(wj * o for wj, o in zip(w, reversed(outs)))
        if noises is not None:
            x = x + math.exp(ls[i + 1]) * math.sqrt(-math.expm1(-2 * h)) * noises[i]
    return x


def coarse_noises(schedule, ts_fine, noises, m):
    """The standard normals that drive SDE-DPM-Solver++ on ``ts_fine[::m]`` with the same Brownian path as
    ``noises`` on ``ts_fine``: over a coarse step of m fine steps the exact noise of the linear part is
    sigma_t sum_j e^{-(lambda_t - lambda_{j+1})} sqrt(1 - e^{-2 h_j}) z_j, whose variance telescopes to
    sigma_t^2 (1 - e^{-2H}); dividing by its standard deviation gives one standard normal per coarse step."""
    _checks.positive_int(m, "m")
    lam = schedule.log_snr(ts_fine).tolist()
    N = len(ts_fine) - 1
    if N % m:
        raise ValueError(f"m must divide the number of fine intervals ({N}), got {m}")
    out = []
    for k in range(N // m):
        j0, j1 = k * m, (k + 1) * m
        lam_t, H = lam[j1], lam[j1] - lam[j0]
        z = sum(math.exp(-(lam_t - lam[j + 1])) * math.sqrt(-math.expm1(-2 * (lam[j + 1] - lam[j]))) * noises[j]
                for j in range(j0, j1))
        out.append(z / math.sqrt(-math.expm1(-2 * H)))
    return out


def sde_study(model, x_T, schedule, ts_fine, factors, f, generator, solver_type="dpmsolver"):
    """Strong and weak errors of SDE-DPM-Solver++(2M) on ``ts_fine[::m]`` for each m in ``factors``,
    against the run on ``ts_fine`` driven by the same Brownian path (the fine noises drawn from
    ``generator``). Returns a namespace: ``fine`` (the fine endpoint), ``strong[m]`` (RMS of the paired
    difference), ``weak[m]`` and ``weak_se[m]`` (mean of f(coarse) - f(fine) over paths and its standard
    error; f maps samples to one value per path)."""
    _checks.callable_(model, "model")
    x_T = _checks.batch(x_T, "x_T")
    _checks.gaussian_path(schedule)
    _checks.grid(ts_fine, x_T, schedule, "ts_fine")
    N = len(ts_fine) - 1
    _factors(factors, N)
    _checks.callable_(f, "f")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    _checks.choice(solver_type, "solver_type", ("taylor", "dpmsolver"))
    noises = [torch.randn(x_T.shape, generator=generator, dtype=x_T.dtype) for _ in range(N)]
    fine = multistep(model, x_T, schedule, ts_fine, 2, "x0", solver_type, noises=noises)
    out = SimpleNamespace(fine=fine, strong={}, weak={}, weak_se={})
    for m in factors:
        x = multistep(model, x_T, schedule, ts_fine[::m], 2, "x0", solver_type,
                      noises=coarse_noises(schedule, ts_fine, noises, m))
        d = f(x) - f(fine)
        out.strong[m] = metrics.rms_error(x, fine)
        out.weak[m], out.weak_se[m] = float(d.mean()), float(d.std() / math.sqrt(d.numel()))
    return out


# --- bake-offs at equal model calls ---------------------------------------------------------------
def _singlestep_dpm(entry):
    return (entry.budget is None and entry.kwargs.get("method") == "singlestep"
            and entry.function in ("samplers:dpm_solver", "samplers:dpm_solver_pp"))


# The reference DPM-Solver code lowers the orders of a multistep run's last steps (``lower_order_final``,
# last step first order) when it has fewer than this many steps; it recommends the option for few steps.
LOWER_FINAL_BELOW = 10


def _multistep_dpm(entry):
    return (entry.kwargs.get("method") == "multistep"
            and entry.function in ("samplers:dpm_solver", "samplers:dpm_solver_pp"))


def budget_run(name, model, x_T, schedule, nfe, generator=None, recommended=True, spacing="logsnr",
               **kwargs):
    """``(x, nfe_spent)``: catalogue entry ``name`` at a budget of ``nfe`` model calls. With
    ``recommended`` (the configuration the papers' code recommends for the budget), a singlestep
    DPM-Solver entry of order k takes DPM-Solver-fast's orders ``fast_orders(nfe, k)`` (exactly nfe
    calls), and a multistep DPM-Solver entry below ``LOWER_FINAL_BELOW`` calls lowers its final orders
    (``lower_order_final=True``); otherwise, and for every other entry, ``catalogue.budget_grid``
    (nfe // calls intervals) with the entry's own options. ``kwargs``: ``timesteps`` keywords (t_start,
    t_end) and overrides such as solver_type (an explicit ``lower_order_final`` wins)."""
    entry = catalogue.get(name)
    tk = {k: kwargs.pop(k) for k in ("t_start", "t_end") if k in kwargs}
    if recommended and _singlestep_dpm(entry):
        q = fast_orders(nfe, entry.kwargs["order"])
        ts, extra = schedule.timesteps(len(q), spacing, **tk), {"order": q}
    else:
        ts, extra = catalogue.budget_grid(name, schedule, nfe, spacing, **tk)
    if recommended and _multistep_dpm(entry) and nfe < LOWER_FINAL_BELOW:
        extra["lower_order_final"] = True
    counted = bakeoff.Counted(model)
    x = catalogue.run(name, counted, x_T, schedule, ts, generator=generator, **{**extra, **kwargs})
    return x, counted.calls


def bake_blocks(names, model, x_T, schedule, budgets, scores, blocks, seed=0, **kwargs):
    """``{score: {name: {budget: bakeoff.Cell}}}``: each entry once per budget on the whole batch
    ``x_T`` (stochastic ones with one generator seeded ``seed``), scored on each of ``blocks`` equal
    slices: ``scores[key](j, x_j)`` for block j. The blocks are independent replicates, so a cell's
    mean and standard error are over blocks; entries share x_T (paired comparisons).
    ``kwargs`` go to ``budget_run``."""
    _checks.positive_int(blocks, "blocks")
    if x_T.shape[0] % blocks:
        raise ValueError(f"blocks must divide the batch ({x_T.shape[0]}), got {blocks}")
    out = {key: {} for key in scores}
    for name in names:
        for b in budgets:
            g = torch.Generator(device=x_T.device).manual_seed(seed)
            x, calls = budget_run(name, model, x_T, schedule, b, generator=g, **kwargs)
            for key, score in scores.items():
                vals = tuple(float(score(j, xj)) for j, xj in enumerate(x.chunk(blocks)))
                out[key].setdefault(name, {})[b] = bakeoff.Cell(name, b, calls, vals)
    return out


def order_errors(names, model, x, schedule, ref, nfes, **kwargs):
    """``{name: [rms error to ref at each nfe]}`` with uniform-order intervals and no lowered final
    orders (``recommended=False``): the paired error of each entry against the reference solution
    ``ref`` from the same ``x``."""
    return {name: [metrics.rms_error(budget_run(name, model, x, schedule, n, recommended=False,
                                                **kwargs)[0], ref)
                   for n in nfes] for name in names}


# --- figures ----------------------------------------------------------------------------------------
DATA_PREDICTION = ("DPM-Solver++", "SDE-DPM-Solver++")
PUBLISHED_3M = {"color": "#000000", "marker": "o", "label": r"DPM-Solver++(3M), $b_2$ halved (published)"}


def linestyle(name: str) -> str:
    """Solid for samplers driven by the noise prediction, dashed for the data-prediction family
    (``name`` a catalogue entry)."""
    catalogue.get(name)
    return "--" if name.startswith(DATA_PREDICTION) else "-"


def small_png(fig, colors: int = 64) -> plots.Figure:
    """``plots.show(fig)`` with the PNG reduced to a palette of ``colors`` colours (frames of an explorer:
    a third of the bytes, no visible change for line plots)."""
    import io

    from matplotlib.figure import Figure
    from PIL import Image

    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure (from plots.figure), got {type(fig).__name__}")
    _checks.positive_int(colors, "colors", minimum=2)
    if colors > 256:
        raise ValueError(f"colors must be at most 256 (a PNG palette), got {colors}")

    shown = plots.show(fig)
    img = Image.open(io.BytesIO(shown.png)).convert("RGB").quantize(colors, method=Image.Quantize.MEDIANCUT)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return plots.Figure(buf.getvalue(), shown.title)


def _curve(v, name: str, ndim: int):
    """A finite real tensor or NumPy array of ``ndim`` dimensions (the data of a plot)."""
    import numpy as np

    if isinstance(v, np.ndarray):
        if not np.issubdtype(v.dtype, np.floating):
            raise TypeError(f"{name} must be a floating-point array, got dtype {v.dtype}")
        if not np.isfinite(v).all():
            raise ValueError(f"{name} must be finite, but it contains NaN or inf")
    elif isinstance(v, torch.Tensor):
        if v.dtype not in _checks.FLOAT_DTYPES:
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {v.dtype}")
        _checks.finite(v, name)
    else:
        raise TypeError(f"{name} must be a torch.Tensor or a NumPy array, got {type(v).__name__}")
    if v.ndim != ndim or v.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty {ndim}-D array, got shape {tuple(v.shape)}")
    return v


def render_paths(lam_dense, exact_paths, lam_grid, paths, title, dpi=80):
    """One explorer frame: exact trajectories (grey) against a solver's grid values (coloured), x
    against lambda; ``exact_paths`` and ``paths`` are (points, len(lam)) arrays. A palette PNG at
    ``dpi`` (``small_png``)."""
    lam_dense, lam_grid = _curve(lam_dense, "lam_dense", 1), _curve(lam_grid, "lam_grid", 1)
    exact_paths, paths = _curve(exact_paths, "exact_paths", 2), _curve(paths, "paths", 2)
    for arr, lam, name, lam_name in ((exact_paths, lam_dense, "exact_paths", "lam_dense"),
                                     (paths, lam_grid, "paths", "lam_grid")):
        if arr.shape[1] != lam.shape[0]:
            raise ValueError(f"{name} must have one column per point of {lam_name} ({lam.shape[0]}), "
                             f"got shape {tuple(arr.shape)}")
    if not isinstance(title, str):
        raise TypeError(f"title must be a str, got {type(title).__name__}")
    _checks.positive_int(dpi, "dpi")
    fig, ax = plots.figure(width=6.0, height=3.2, dpi=dpi)
    ax.plot(lam_dense, exact_paths.T, color="0.7", lw=1.2)
    ax.plot(lam_grid, paths.T, "o-", color=plots.COLORS[0], ms=2, lw=0.7)
    ax.set_xlabel(r"$\lambda$")
    ax.set_ylabel("$x$")
    ax.set_title(title, fontsize=9)
    return small_png(fig)


def paired_gap(a, b, ref):
    """``(gap, se)``: the mean over points of |a - ref|^2 - |b - ref|^2 (negative: a is closer) and its
    standard error; a and b are paired (the same starting points), so their common noise cancels."""
    a, b, ref = _checks.batch(a, "a"), _checks.batch(b, "b"), _checks.batch(ref, "ref")
    if a.shape != ref.shape or b.shape != ref.shape:
        raise ValueError(f"a, b and ref must have the same shape, got {tuple(a.shape)}, {tuple(b.shape)} "
                         f"and {tuple(ref.shape)}")
    if a.shape[0] < 2:
        raise ValueError(f"a, b and ref must hold at least 2 points, got {a.shape[0]}")
    da = (a - ref).reshape(a.shape[0], -1).pow(2).sum(1)
    db = (b - ref).reshape(b.shape[0], -1).pow(2).sum(1)
    d = da - db
    return float(d.mean()), float(d.std() / math.sqrt(d.numel()))


def block_gap(a, b):
    """``(gap, se)``: the mean over blocks of a's score minus b's (two ``bakeoff.Cell`` of the same blocks,
    e.g. from one ``bake_blocks`` call, which share x_T block by block) and its standard error over blocks."""
    for cell, name in ((a, "a"), (b, "b")):
        if not isinstance(cell, bakeoff.Cell):
            raise TypeError(f"{name} must be a bakeoff.Cell, got {type(cell).__name__}")
        if not all(math.isfinite(v) for v in cell.scores):
            raise ValueError(f"{name}.scores must be finite, got {cell.scores}")
    if len(a.scores) != len(b.scores) or len(a.scores) < 2:
        raise ValueError(f"a and b must hold the same number (>= 2) of block scores, got {len(a.scores)} "
                         f"and {len(b.scores)}")
    d = [u - v for u, v in zip(a.scores, b.scores)]
    m = sum(d) / len(d)
    sd = math.sqrt(sum((v - m) ** 2 for v in d) / (len(d) - 1))
    return m, sd / math.sqrt(len(d))


def gaussian_sde_study(mixture, schedule, ts_fine, factors, solver_type="dpmsolver"):
    """Exact strong and weak errors of SDE-DPM-Solver++(2M) for Gaussian data (a one-component
    ``mixture``), where the exact eps is affine and the sampler's output is an affine function of
    (x_T, z_1, ..., z_N): one run on the N + 2 basis inputs gives every coefficient, hence the output's
    mean and variance, with no Monte Carlo error. Coarse runs on ``ts_fine[::m]`` use the same Brownian
    path (``coarse_noises``). Returns a namespace: ``var_exact`` (alpha^2 s^2 + sigma^2 at the end),
    ``var_fine``, ``var[m]`` (the weak error is var[m] - var_exact; the mean is exact for every grid,
    ``mean_gap[m]``), ``strong[m]`` (the exact RMS of coarse - fine). x_T is N(0, 1)."""
    if not isinstance(mixture, toy.GaussianMixture):
        raise TypeError(f"mixture must be a toy.GaussianMixture, got {type(mixture).__name__}")
    _checks.gaussian_path(schedule)
    _checks.grid(ts_fine, torch.zeros(1, dtype=F64), schedule, "ts_fine")
    _factors(factors, len(ts_fine) - 1)
    _checks.choice(solver_type, "solver_type", ("taylor", "dpmsolver"))
    if mixture.weights.numel() != 1 or mixture.dim != 1:
        raise ValueError("mixture must be one 1-D Gaussian (toy.GaussianMixture([1.0], [m], [s]))")
    model = mixture.eps_model(schedule)
    N = len(ts_fine) - 1
    x_T = torch.zeros(N + 2, 1, dtype=F64)
    x_T[1, 0] = 1.0  # row 0: the constant part; row 1: x_T; row j + 2: z_j
    noises = [torch.zeros(N + 2, 1, dtype=F64) for _ in range(N)]
    for j in range(N):
        noises[j][j + 2, 0] = 1.0

    def coefficients(out):
        return float(out[0, 0]), out[1:, 0] - out[0, 0]

    c0, c_fine = coefficients(multistep(model, x_T, schedule, ts_fine, 2, "x0", solver_type, noises=noises))
    alpha, sigma = float(schedule.alpha(ts_fine[-1])), float(schedule.sigma(ts_fine[-1]))
    m, s = float(mixture.means[0, 0]), float(mixture.stds[0, 0])
    out = SimpleNamespace(var_exact=alpha**2 * s**2 + sigma**2, var_fine=float(c_fine.pow(2).sum()),
                          mean_gap={}, var={}, strong={})
    for k in factors:
        c, coef = coefficients(multistep(model, x_T, schedule, ts_fine[::k], 2, "x0", solver_type,
                                         noises=coarse_noises(schedule, ts_fine, noises, k)))
        out.mean_gap[k] = c - alpha * m
        out.var[k] = float(coef.pow(2).sum())
        out.strong[k] = float((coef - c_fine).pow(2).sum().sqrt())
    out.mean_fine_gap = c0 - alpha * m
    return out


