"""Sampler comparisons at equal model calls, measured honestly.

A bake-off runs catalogue entries (``diffnb.catalogue``) at budgets of model calls and scores each
run with a ``score(samples) -> float``, for example the paired error to the reference ODE solution
from the same x_T (deterministic samplers) or the distance to the target law (any sampler).
Stochastic entries run once per noise seed, so each cell of the table is a small sample of scores:
its mean, its standard deviation and the standard error of the mean. ``beats(a, b)`` says "a is
better than b" only where the gap exceeds twice the combined standard error.

    rows = bake(["DDIM (eta = 0)", "DPM-Solver++(2M)"], model, x_T, schedule, [10, 20],
                score=lambda x: metrics.rms_error(x, x_ref), t_end=1e-3)
    print(table(rows))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from . import _checks, catalogue

__all__ = ["Cell", "Counted", "bake", "beats", "table"]


@dataclass(frozen=True)
class Cell:
    """One sampler at one budget: the model calls it spent and its scores over noise seeds."""

    name: str
    budget: int
    nfe: int
    scores: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores)

    @property
    def sd(self) -> float:
        n = len(self.scores)
        if n < 2:
            return 0.0
        return math.sqrt(sum((s - self.mean) ** 2 for s in self.scores) / (n - 1))

    @property
    def sem(self) -> float:
        """Standard error of the mean (0 for a deterministic sampler: one run, no sampling noise)."""
        return self.sd / math.sqrt(len(self.scores))


class Counted:
    """``model`` with a count of its calls (``.calls``)."""

    def __init__(self, model):
        self.model, self.calls = _checks.callable_(model, "model"), 0

    def __call__(self, x, t):
        self.calls += 1
        return self.model(x, t)


def bake(names, model, x_T, schedule, budgets, score, spacing: str = "logsnr", seeds: int = 8,
         progress: bool = False, **timesteps_kwargs) -> dict:
    """``{name: {budget: Cell}}``: every entry at every budget of model calls.

    Each entry runs on ``catalogue.budget_grid(name, schedule, budget, spacing, **timesteps_kwargs)``;
    stochastic entries run ``seeds`` times with generators seeded 0, 1, ..., deterministic ones once.
    ``score`` maps the samples to a number (smaller is better)."""
    _checks.callable_(score, "score")
    _checks.positive_int(seeds, "seeds")
    budgets = [_checks.positive_int(b, "budgets") for b in budgets]
    for name in names:
        catalogue.get(name)
    rows = {}
    jobs = [(name, b) for name in names for b in budgets]
    for name, b in tqdm(jobs, desc="bake-off", disable=not progress):
        ts, extra = catalogue.budget_grid(name, schedule, b, spacing, **timesteps_kwargs)
        runs = range(seeds) if catalogue.get(name).stochastic else [None]
        scores, calls = [], 0
        for seed in runs:
            counted = Counted(model)
            g = None if seed is None else torch.Generator(device=x_T.device).manual_seed(seed)
            x = catalogue.run(name, counted, x_T, schedule, ts, generator=g, **extra)
            scores.append(float(score(x)))
            calls = counted.calls
        rows.setdefault(name, {})[b] = Cell(name, b, calls, tuple(scores))
    return rows


def beats(a: Cell, b: Cell, z: float = 2.0) -> bool:
    """True where a's mean score is below b's by more than ``z`` combined standard errors."""
    return b.mean - a.mean > z * math.hypot(a.sem, b.sem)


def table(rows: dict, budgets=None, fmt: str = "{:.2e}") -> str:
    """A text table: one line per entry, one column per budget (all budgets of ``rows``, or the
    given ones), ``mean ± sem (nfe)`` per cell (``± sem`` only for entries scored over several
    seeds), each column as narrow as its entries and two spaces apart, so that a wide bake-off prints
    as several narrow blocks."""
    if budgets is None:
        budgets = sorted({b for cells in rows.values() for b in cells})
    cols = []
    for b in budgets:
        texts = []
        for cells in rows.values():
            c = cells.get(b)
            sem = "" if c is None or len(c.scores) == 1 else f" ± {fmt.format(c.sem)}"
            texts.append("-" if c is None else f"{fmt.format(c.mean)}{sem} ({c.nfe})")
        w = max(len(t) for t in texts + [f"{b} calls"]) + 2
        cols.append((f"{b} calls".rjust(w), [t.rjust(w) for t in texts]))
    width = max(len(n) for n in rows)
    lines = [" " * width + "".join(h for h, _ in cols)]
    for i, name in enumerate(rows):
        lines.append(name.ljust(width) + "".join(c[i] for _, c in cols))
    return "\n".join(lines)
