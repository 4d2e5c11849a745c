"""diffnb's samplers against diffusers' schedulers, side by side (a timing table, never a test).

    .venv/bin/python benchmarks/diffusers_vs_diffnb.py                      # 100,000 2-D points, 20 steps
    .venv/bin/python benchmarks/diffusers_vs_diffnb.py --batch 10000 --steps 50 --repeat 7 --threads 2

For each sampler pair (DDIM with eta = 0; DPM-Solver++(2M)) and each model (the exact-score model of
``toy.mixture_2d`` and the trivial ``lambda x, t: 0.1 * x``) it prints the median wall time of ``--repeat``
runs of one sample batch. The trivial model isolates the per-step overhead of the sampler:

    overhead per step = (median time with the trivial model - steps * median time of one trivial call) / steps

Both sides get float64 samples, the same model and the same times (diffusers' "leading" DDIM indices and
"linspace" DPM-Solver indices, mapped to book time k + 1); diffusers runs its usual loop
(``set_timesteps``, then ``scheduler.step`` per timestep) with ``clip_sample=False``. The runs of the two
sides are interleaved, so that a change in the machine's load affects both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from diffnb import conventions, samplers, toy  # noqa: E402
from diffnb import timesteps as tsp  # noqa: E402
from diffnb.schedules import DiscreteVP  # noqa: E402


def median_time(fn, repeat):
    return median_times([fn], repeat)[0]


def median_times(fns, repeat):
    """Median wall time of each function; the runs are interleaved (a, b, a, b, ...) so that a change in
    the machine's load during the benchmark affects every column alike."""
    for fn in fns:
        fn()  # warm-up (first-call allocations, lazy imports)
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, ts in zip(fns, times):
            start = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - start)
    return [statistics.median(ts) for ts in times]


def diffusers_run(scheduler, model, x_T, steps):
    """The loop a diffusers user writes: integer timestep k is book time k + 1."""
    scheduler.set_timesteps(steps)
    x = x_T
    t = torch.empty(x.shape[0], dtype=x.dtype)
    for k in scheduler.timesteps:
        x = scheduler.step(model(x, t.fill_(float(k) + 1.0)), k, x).prev_sample
    return x


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=100_000, help="points per sample batch (default 100,000)")
    parser.add_argument("--steps", type=int, default=20, help="sampling steps (default 20)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per row; the median is printed (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
    from diffusers.utils import logging

    logging.set_verbosity_error()
    schedule = DiscreteVP.linear()
    n, T = args.steps, schedule.T
    x_T = torch.randn(args.batch, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    models = {"exact-score": toy.mixture_2d().eps_model(schedule), "trivial": lambda x, t: 0.1 * x}
    ddim_ts = tsp.to_book_times(tsp.diffusers_timesteps(T, n, "leading"))
    dpm_ts = conventions.dpm_solver_book_grid(T, n, "linspace", "zero")
    pairs = {
        "DDIM (eta = 0)": (
            lambda m: samplers.ddim(m, x_T, schedule, ddim_ts),
            lambda m: diffusers_run(DDIMScheduler(clip_sample=False), m, x_T, n)),
        "DPM-Solver++(2M)": (
            lambda m: samplers.dpm_solver_pp(m, x_T, schedule, dpm_ts, order=2, method="multistep"),
            lambda m: diffusers_run(DPMSolverMultistepScheduler(solver_order=2, solver_type="heun"), m, x_T, n)),
    }
    t_call = {name: median_time(lambda m=m: m(x_T, ddim_ts[0].expand(args.batch)), 3 * args.repeat)
              for name, m in models.items()}

    print(f"{args.batch:,} points in 2-D, {n} steps, float64, {args.threads} torch thread(s), "
          f"median of {args.repeat} runs")
    print(f"one model call: exact-score {1e3 * t_call['exact-score']:.2f} ms, trivial {1e3 * t_call['trivial']:.3f} ms")
    head = f"{'sampler':18s} {'model':12s} {'diffnb s':>9s} {'diffusers s':>11s} {'ratio':>6s}"
    print(head + f" {'diffnb ovh ms/step':>19s} {'diffusers ovh ms/step':>22s}")
    for label, (ours, theirs) in pairs.items():
        for name, m in models.items():
            a, b = median_times([lambda: ours(m), lambda: theirs(m)], args.repeat)
            row = f"{label:18s} {name:12s} {a:9.3f} {b:11.3f} {a / b:6.2f}"
            if name == "trivial":
                oa, ob = (1e3 * (s - n * t_call[name]) / n for s in (a, b))
                row += f" {oa:19.3f} {ob:22.3f}"
            print(row)


if __name__ == "__main__":
    main()
