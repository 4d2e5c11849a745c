"""The exact models of ``diffnb.toy`` against minimal implementations of the same formulas
(a timing table, never a test: the numbers depend on the machine and its load).

    .venv/bin/python benchmarks/exact_models.py                 # one torch thread, 9 repeats (about 2 min)
    .venv/bin/python benchmarks/exact_models.py --repeat 31 --grid 100

"minimal" is the direct one-pass torch formula with no argument checks: for a Gaussian mixture the
broadcast (n, K, dim) log-densities, a softmax over components and the responsibility-weighted sum;
for the empirical mixture matmul-based squared distances |x|^2 - 2 alpha x . x_i + alpha^2 |x_i|^2
(|x_i|^2 precomputed) and a softmax. The minimal ``eps_model`` calls ``schedule.alpha(t)`` and
``schedule.sigma(t)`` like diffnb's and broadcasts the per-sample values (the model contract).

Rows marked "cold" clear the mixture's cache of per-(alpha, sigma) constants before every sweep of a
``--grid``-step grid (20 by default), which is what one sampler run sees; the other rows call at one
(alpha, sigma), which is what repeated runs on the same grid see. Every row first checks that both
sides agree. Each cell is the median over ``--repeat`` blocks of calls; the two sides are interleaved
block by block, so a change in the machine's load affects both alike.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from diffnb import data, toy
from diffnb.schedules import LinearVP


# --- minimal implementations ------------------------------------------------------------------------
def _minimal_parts(mix, x, a, s):
    v = a * a * mix.stds**2 + s * s  # (K, d), or (n, K, d) for per-sample a and s
    diff = x[:, None, :] - a * mix.means
    logp = torch.log(mix.weights) - 0.5 * (diff * diff / v + torch.log(2 * math.pi * v)).sum(-1)
    return diff, v, torch.softmax(logp, -1)[:, :, None]


def minimal_score(mix, x, a, s):
    diff, v, r = _minimal_parts(mix, x, a, s)
    return -(r * diff / v).sum(1)


def minimal_eps(mix, x, a, s):
    diff, v, r = _minimal_parts(mix, x, a, s)
    return (s if isinstance(s, float) else s[:, 0]) * (r * diff / v).sum(1)


def minimal_x0_hat(mix, x, a, s):
    _, v, r = _minimal_parts(mix, x, a, s)
    return (r * (s * s * mix.means + a * mix.stds**2 * x[:, None, :]) / v).sum(1)


def minimal_eps_model(mix, schedule):
    def model(x, t):
        a, s = schedule.alpha(t)[:, None, None], schedule.sigma(t)[:, None, None]
        return minimal_eps(mix, x, a, s)

    return model


def minimal_empirical_eps(X, X2, x, a, s, std):
    v = a * a * std * std + s * s
    d2 = (x * x).sum(1, keepdim=True) - 2 * a * (x @ X.T) + (a * a) * X2
    r = torch.softmax(-0.5 * d2 / v, 1)
    return s * (x - a * (r @ X)) / v


# --- timing -------------------------------------------------------------------------------------------
def per_call(fns, repeat, calls):
    """Median seconds per call of each function; blocks of ``calls`` calls, interleaved."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, ts in zip(fns, times):
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            ts.append((time.perf_counter() - start) / calls)
    return [statistics.median(ts) for ts in times]


def calls_for(fn, budget=0.02):
    start = time.perf_counter()
    fn()
    return max(1, int(budget / max(time.perf_counter() - start, 1e-7)))


def agree(a, b, what):
    scale = float(b.abs().max()) + 1e-300
    err = float((a - b).abs().max())
    if err > 1e-9 * scale:
        raise AssertionError(f"{what}: diffnb and minimal differ by {err:.3g} (scale {scale:.3g})")


def cases(grid):
    schedule = LinearVP()
    t = 0.3
    a, s = float(schedule.alpha(t)), float(schedule.sigma(t))
    ts = schedule.timesteps(grid, t_end=1e-3)[:-1]
    rows = []
    for label, mix, n in (("1-D seed mixture, 16 points", toy.seed_mixture_1d(), 16),
                          ("1-D seed mixture, 2,000 points", toy.seed_mixture_1d(), 2000),
                          ("2-D ring, 100,000 points", toy.mixture_2d(), 100_000)):
        g = torch.Generator().manual_seed(0)
        x = a * mix.sample(n, generator=g) + s * torch.randn(n, mix.dim, generator=g, dtype=torch.float64)
        for name, ours, mini in (("eps", mix.eps, minimal_eps), ("score", mix.score, minimal_score),
                                 ("x0_hat", mix.x0_hat, minimal_x0_hat)):
            rows.append((f"{name}, {label}", lambda o=ours, x=x: o(x, a, s),
                         lambda m=mini, mix=mix, x=x: m(mix, x, a, s)))
        model, mini_model = mix.eps_model(schedule), minimal_eps_model(mix, schedule)
        tb = torch.full((n,), t, dtype=torch.float64)
        rows.append((f"eps_model, {label}", lambda m=model, x=x, tb=tb: m(x, tb),
                     lambda m=mini_model, x=x, tb=tb: m(x, tb)))

        def sweep(m, x=x, mix=mix, clear=False):
            if clear:
                mix._cache.clear()
            out = None
            for ti in ts:
                out = m(x, ti.expand(x.shape[0]))
            return out

        rows.append((f"eps_model cold, {len(ts)}-step grid, {label}", lambda m=model, sw=sweep: sw(m, clear=True),
                     lambda m=mini_model, sw=sweep: sw(m)))
    images, _ = data.digits()
    emp = toy.EmpiricalMixture(images, std=0.0)
    X2 = (images * images).sum(1)
    g = torch.Generator().manual_seed(1)
    x = a * images[torch.randint(images.shape[0], (1000,), generator=g)] + s * torch.randn(1000, 64, generator=g,
                                                                                            dtype=torch.float64)
    rows.append(("EmpiricalMixture.eps, 1,000 points, 1,797 digits", lambda: emp.eps(x, a, s),
                 lambda: minimal_empirical_eps(images, X2, x, a, s, 0.0)))
    return rows, len(ts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--grid", type=int, default=20, help="steps of the grid of the 'cold' rows")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, grid = cases(args.grid)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), median of {args.repeat} blocks; "
          f"'cold' rows: ms per model call over a {grid}-call sweep")
    print(f"{'case':<62} {'diffnb ms':>10} {'minimal ms':>11} {'ratio':>6}")
    for name, ours, mini in rows:
        agree(ours(), mini(), name)
        calls = calls_for(mini)
        t_ours, t_mini = per_call([ours, mini], args.repeat, calls)
        scale = grid if "cold" in name else 1
        print(f"{name:<62} {1e3 * t_ours / scale:>10.4f} {1e3 * t_mini / scale:>11.4f} {t_ours / t_mini:>6.2f}")


if __name__ == "__main__":
    main()
