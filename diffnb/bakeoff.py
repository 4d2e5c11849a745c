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

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {type(self.name).__name__}")
        _checks.positive_int(self.budget, "budget", minimum=0)
        _checks.positive_int(self.nfe, "nfe", minimum=0)
        if not isinstance(self.scores, tuple):
            raise TypeError(f"scores must be a tuple of numbers, got {type(self.scores).__name__}")
        if not self.scores:
            raise ValueError("scores must hold at least one score, got ()")
        for i, v in enumerate(self.scores):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"scores[{i}] must be a number, got {type(v).__name__}")
            if not math.isfinite(v):
                raise ValueError(f"scores[{i}] must be finite, got {v!r}")

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
    _checks.flag(progress, "progress")
    _checks.gaussian_path(schedule)
    _checks.batch(x_T, "x_T")
    names, budgets = _names(names), _budgets(budgets)
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


def _names(names) -> list:
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise TypeError(f"names must be a list of catalogue entry names, got {type(names).__name__}")
    if not names:
        raise ValueError("names must name at least one catalogue entry, got an empty list")
    return list(names)


def _budgets(budgets, minimum: int = 1) -> list:
    if isinstance(budgets, (str, bytes)) or not isinstance(budgets, (list, tuple, range)):
        raise TypeError(f"budgets must be a list of ints (model calls), got {type(budgets).__name__}")
    if not len(budgets):
        raise ValueError("budgets must hold at least one budget, got an empty list")
    return [_checks.positive_int(b, "budgets", minimum) for b in budgets]


def _cell(c, name):
    if not isinstance(c, Cell):
        raise TypeError(f"{name} must be a bakeoff.Cell, got {type(c).__name__}")
    return c


def beats(a: Cell, b: Cell, z: float = 2.0) -> bool:
    """True where a's mean score is below b's by more than ``z`` combined standard errors."""
    _cell(a, "a")
    _cell(b, "b")
    if isinstance(z, bool) or not isinstance(z, (int, float)):
        raise TypeError(f"z must be a number, got {type(z).__name__}")
    if not (math.isfinite(z) and z >= 0):
        raise ValueError(f"z must be finite and >= 0, got {z!r}")
    return b.mean - a.mean > z * math.hypot(a.sem, b.sem)


def table(rows: dict, budgets=None, fmt: str = "{:.2e}") -> str:
    """A text table: one line per entry, one column per budget (all budgets of ``rows``, or the
    given ones), ``mean ± sem (nfe)`` per cell (``± sem`` only for entries scored over several
    seeds), each column as narrow as its entries and two spaces apart, so that a wide bake-off prints
    as several narrow blocks."""
    if not isinstance(rows, dict):
        raise TypeError(f"rows must be a dict {{name: {{budget: Cell}}}} (as bake returns), got {type(rows).__name__}")
    if not rows:
        raise ValueError("rows must hold at least one entry, got {}")
    for name, cells in rows.items():
        if not isinstance(name, str):
            raise TypeError(f"rows' keys must be entry names (str), got {type(name).__name__}")
        if not isinstance(cells, dict):
            raise TypeError(f"rows[{name!r}] must be a dict {{budget: Cell}}, got {type(cells).__name__}")
        for b, c in cells.items():
            _cell(c, f"rows[{name!r}][{b!r}]")
    if not isinstance(fmt, str):
        raise TypeError(f"fmt must be a format string such as '{{:.2e}}', got {type(fmt).__name__}")
    try:
        fmt.format(1.0)
    except (IndexError, KeyError, ValueError) as err:
        raise ValueError(f"fmt must format one number, such as '{{:.2e}}', got {fmt!r} ({err})") from None
    if budgets is not None:
        budgets = _budgets(budgets, minimum=0)  # a Cell's budget may be 0 (a reference row)
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
