"""Timing tables for the book (never a test: numbers depend on the machine and its load).

    .venv/bin/python benchmarks/run.py            # everything (make bench)
    .venv/bin/python benchmarks/run.py phases     # the phases of make test only
    .venv/bin/python benchmarks/run.py chapters   # chapter execution times only
    .venv/bin/python benchmarks/run.py training samplers

``phases`` runs each phase of ``make test`` as ``make`` runs it (set-up from nothing: a scratch venv
with empty uv and npm caches; then ``make unit``, ``make notebooks``, ...) and reports wall time, CPU
time (user + system of the command and everything it waited for), the load average when it started
and its exit status; a failing phase is reported, not fatal. ``chapters`` executes each chapter once
with nbconvert, on copies. The other rows are the median of ``--repeat`` runs. On a shared machine
compare CPU times; wall times only at equal load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_timed(cmd, env=None, cwd=ROOT):
    """(wall s, CPU s of the command and all its descendants, 1-min load at start, exit status), measured
    by scripts/phase.py (getrusage and a /proc sample of the process tree: Chromium's CPU included)."""
    with tempfile.TemporaryDirectory(prefix="bench-phase-") as tmp:
        table = Path(tmp) / "phase.tsv"
        subprocess.run([sys.executable, str(ROOT / "scripts" / "phase.py"), "bench", "--", *cmd], cwd=cwd,
                       env={**(env or os.environ), "PHASE_TABLE": str(table)},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, wall, cpu, load, status, _ = table.read_text().splitlines()[-1].split("\t")
    return float(wall), float(cpu), float(load), int(status)


def phase_note(cpu, load, status, command):
    return f"CPU {cpu:6.1f} s, load {load:4.1f}, {'ok    ' if status == 0 else f'FAILED ({status})'}  {command}"


# The phases of `make test`, in its order (see the Makefile for the commands behind each target).
PHASES = [("unit", "unit"), ("notebooks", "notebooks"), ("build", "build-html"), ("browser", "browser"),
          ("lab", "lab-check"), ("pdf", "pdf"), ("pdf check", "pdf-check")]


def bench_phases(repeat):
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-setup-") as tmp:
        env = {**os.environ, "UV_CACHE_DIR": f"{tmp}/uv-cache", "npm_config_cache": f"{tmp}/npm-cache",
               "PIP_NO_CACHE_DIR": "1", "VENDOR_DIR": f"{tmp}/vendor"}
        cmd = ["python3", "scripts/setup_env.py", "--venv", f"{tmp}/venv"]
        wall, cpu, load, status = run_timed(cmd, env)
        rows.append(("phase set-up: venv + pinned environment, from nothing", wall,
                     phase_note(cpu, load, status, "python3 scripts/setup_env.py (uv; empty caches)")))
        wall, cpu, load, status = run_timed(["bash", "scripts/vendor.sh"], env)
        rows.append(("phase set-up: vendored MathJax and widgets, from nothing", wall,
                     phase_note(cpu, load, status, "bash scripts/vendor.sh (empty npm cache)")))
    for name, target in PHASES:
        wall, cpu, load, status = run_timed(["make", "--no-print-directory", target])
        rows.append((f"phase {name}", wall, phase_note(cpu, load, status, f"make {target}")))
    return rows


def bench_chapters(repeat):
    jupyter = Path(sys.executable).with_name("jupyter")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # The kernel runs in the notebook's folder, and the errata appendix reads ../back/glossary.md
        # and itself: copy both folders, so that the committed notebooks are never touched.
        for folder in ("chapters", "back"):
            shutil.copytree(ROOT / folder, Path(tmp) / folder)
        for nb in sorted((ROOT / "chapters").glob("*.ipynb")):
            copy = Path(tmp) / "chapters" / nb.name
            wall, cpu, load, status = run_timed(
                [str(jupyter), "nbconvert", "--to", "notebook", "--execute", "--inplace",
                 "--ExecutePreprocessor.timeout=900", str(copy)], cwd=Path(tmp) / "chapters")
            rows.append((f"execute {nb.name}", wall,
                         f"CPU {cpu:6.1f} s, load {load:4.1f}, {'ok' if status == 0 else f'FAILED ({status})'}, "
                         f"one run, nbconvert"))
    return rows


def bench_training(repeat):
    from diffnb import toy
    from diffnb.schedules import DiscreteVP

    schedule, data = DiscreteVP.linear(), toy.seed_mixture_1d()

    def train():
        net = toy.EpsMLP(dim=1, t_scale=schedule.t_max, hidden=64, depth=3, seed=0)
        toy.train_denoiser(net, data, schedule, steps=3000, batch_size=1024, lr=1e-2, seed=0, progress=False)

    return [("train EpsMLP (Chapter 1 settings, 3000 steps)", median_time(train, repeat), f"median of {repeat}")]


def bench_samplers(repeat):
    from diffnb import samplers, toy
    from diffnb.schedules import DiscreteVP

    schedule = DiscreteVP.linear()
    ts = schedule.timesteps(100, t_end=1)  # sigma > 0 at the end: noise-prediction DPM-Solver needs it
    x = torch.randn(4000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = toy.seed_mixture_1d().eps_model(schedule)

    def trivial(x, t):
        return torch.zeros_like(x)

    runs = {
        "ddpm": lambda m: samplers.ddpm(m, x, schedule, ts, generator=torch.Generator().manual_seed(1)),
        "ddim": lambda m: samplers.ddim(m, x, schedule, ts),
        "dpm_solver_pp 2M": lambda m: samplers.dpm_solver_pp(m, x, schedule, ts, order=2),
        "dpm_solver 3S": lambda m: samplers.dpm_solver(m, x, schedule, schedule.timesteps(33, t_end=1), order=3),
    }
    rows = []
    for name, model in [("exact-score model", exact), ("trivial model", trivial)]:
        for sampler, run in runs.items():
            seconds = median_time(lambda: run(model), repeat)
            calls = 99 if sampler.endswith("3S") else 100  # 33 intervals of 3 calls
            rows.append((f"{sampler}, {calls} model calls, 4000 points, {name}", seconds,
                         f"{1e3 * seconds / calls:.3f} ms/call"))
    return rows


BENCHES = {"phases": bench_phases, "chapters": bench_chapters, "training": bench_training,
           "samplers": bench_samplers}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="*", choices=[*BENCHES, []], default=list(BENCHES))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)  # small tensors: one thread is fastest
    rows = []
    for name in args.which or BENCHES:
        rows += BENCHES[name](args.repeat)
    width = max(len(r[0]) for r in rows)
    print(f"{'benchmark':{width}s}  {'seconds':>8s}  note (seconds: wall time; machine: {os.cpu_count()} cores)")
    for label, seconds, note in rows:
        print(f"{label:{width}s}  {seconds:8.2f}  {note}")


if __name__ == "__main__":
    main()
