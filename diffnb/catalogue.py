"""The sampler catalogue: every sampler configuration the book compares, in one table.

Each entry says what a figure or a table needs to know about a sampler::

    name         the key and the plain-text name ("DPM-Solver++(2M)")
    label        the name for figures, in matplotlib mathtext (r"DDIM ($\\eta = 0$)")
    function     "module:function" inside diffnb, imported on first use (so that an entry may name a
                 sampler whose module is added later)
    kwargs       the keyword arguments that make the configuration
    order        nominal order: the one its paper states (for stochastic samplers the order of the
                 scheme's name, not a measured strong or weak rate)
    calls        model calls per interval of ``ts`` (singlestep order k: k; multistep: 1)
    stochastic   draws noise (``run`` passes the generator)
    color, marker  the plot style; no colour and no marker is used twice
    identity_of  the entry this one equals exactly (the same samples, given the same noise for stochastic
                 ones), or None; tests check every such identity
    budget       for entries whose configuration depends on the budget of model calls (DPM-Solver-fast):
                 nfe -> (intervals, extra kwargs); otherwise intervals = nfe // calls

Adding a sampler is one line in ``ENTRIES``. ``run(name, model, x_T, schedule, ts)`` samples with an
entry, ``style(name)`` gives ``color``, ``marker`` and ``label`` for ``plt.plot(..., **style(name))``,
``budget_grid(name, schedule, nfe)`` the grid on which an entry spends (at most) ``nfe`` model calls.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping

from . import _checks
from .dpm_solver import fast_orders

__all__ = ["Entry", "ENTRIES", "get", "names", "available", "function", "run", "style", "budget_grid"]


@dataclass(frozen=True)
class Entry:
    name: str
    label: str
    function: str
    order: int
    calls: int
    color: str
    marker: str | tuple  # a matplotlib marker; (n, 1, angle) is an n-pointed star
    stochastic: bool = False
    identity_of: str | None = None
    kwargs: Mapping = field(default_factory=dict)
    budget: Callable[[int], tuple[int, dict]] | None = None

    def __post_init__(self):
        for name in ("name", "label", "function", "color"):
            v = getattr(self, name)
            if not isinstance(v, str):
                raise TypeError(f"{name} must be a str, got {type(v).__name__}")
        if self.function.count(":") != 1 or not all(self.function.split(":")):
            raise ValueError(f"function must be 'module:function' inside diffnb (e.g. 'samplers:ddim'), "
                             f"got {self.function!r}")
        _checks.positive_int(self.order, "order")
        _checks.positive_int(self.calls, "calls")
        if not isinstance(self.marker, (str, tuple)):
            raise TypeError(f"marker must be a matplotlib marker (a str or a tuple), got {type(self.marker).__name__}")
        _checks.flag(self.stochastic, "stochastic")
        if self.identity_of is not None and not isinstance(self.identity_of, str):
            raise TypeError(f"identity_of must be an entry name (str) or None, got {type(self.identity_of).__name__}")
        if not isinstance(self.kwargs, Mapping):
            raise TypeError(f"kwargs must be a mapping of keyword arguments, got {type(self.kwargs).__name__}")
        if self.budget is not None:
            _checks.callable_(self.budget, "budget")


def _fast_budget(nfe):
    q = fast_orders(nfe)
    return len(q), {"order": q}


def _e(name, label, function, order, calls, color, marker, /, stochastic=False, identity_of=None, budget=None,
       **kwargs):
    """One catalogue row; ``kwargs`` are the sampler's (its ``order`` is not the row's nominal ``order``)."""
    return Entry(name, label, function, order, calls, color, marker, stochastic, identity_of,
                 MappingProxyType(kwargs), budget)


_SINGLE, _MULTI, _TAYLOR = {"method": "singlestep"}, {"method": "multistep"}, {"solver_type": "taylor"}

ENTRIES = {e.name: e for e in (
    _e("DDPM", "DDPM", "samplers:ddpm", 1, 1, "#1f77b4", "o", stochastic=True),
    _e("DDIM (eta = 0)", r"DDIM ($\eta = 0$)", "samplers:ddim", 1, 1, "#ff7f0e", "s", eta=0.0),
    _e("DDIM (eta = 1)", r"DDIM ($\eta = 1$)", "samplers:ddim", 1, 1, "#2ca02c", "^", stochastic=True,
       identity_of="DDPM", eta=1.0),
    _e("DPM-Solver-1", "DPM-Solver-1", "samplers:dpm_solver", 1, 1, "#d62728", "v", identity_of="DDIM (eta = 0)",
       order=1),
    _e("DPM-Solver-2", "DPM-Solver-2", "samplers:dpm_solver", 2, 2, "#9467bd", "<", order=2, **_SINGLE),
    _e("DPM-Solver-2 (Taylor)", "DPM-Solver-2 (Taylor)", "samplers:dpm_solver", 2, 2, "#8c564b", ">", order=2,
       **_SINGLE, **_TAYLOR),
    _e("DPM-Solver-3", "DPM-Solver-3", "samplers:dpm_solver", 3, 3, "#e377c2", "D", order=3, **_SINGLE),
    _e("DPM-Solver-3 (Taylor)", "DPM-Solver-3 (Taylor)", "samplers:dpm_solver", 3, 3, "#7f7f7f", "d", order=3,
       **_SINGLE, **_TAYLOR),
    _e("DPM-Solver-fast", "DPM-Solver-fast", "samplers:dpm_solver", 3, 3, "#c49c94", (4, 1, 0), budget=_fast_budget,
       **_SINGLE),
    _e("DPM-Solver(2M)", "DPM-Solver(2M)", "samplers:dpm_solver", 2, 1, "#bcbd22", "p", order=2, **_MULTI),
    _e("DPM-Solver(3M)", "DPM-Solver(3M)", "samplers:dpm_solver", 3, 1, "#17becf", "h", order=3, **_MULTI),
    _e("DPM-Solver++(2S)", "DPM-Solver++(2S)", "samplers:dpm_solver_pp", 2, 2, "#393b79", "H", order=2, **_SINGLE),
    _e("DPM-Solver++(2M)", "DPM-Solver++(2M)", "samplers:dpm_solver_pp", 2, 1, "#637939", "*", order=2, **_MULTI),
    _e("DPM-Solver++(3M)", "DPM-Solver++(3M)", "samplers:dpm_solver_pp", 3, 1, "#8c6d31", "P", order=3, **_MULTI),
    _e("SDE-DPM-Solver++(1)", "SDE-DPM-Solver++(1)", "samplers:sde_dpm_solver_pp", 1, 1, "#843c39", "X",
       stochastic=True, identity_of="DDPM", order=1),
    _e("SDE-DPM-Solver++(2M)", "SDE-DPM-Solver++(2M)", "samplers:sde_dpm_solver_pp", 2, 1, "#7b4173", "8",
       stochastic=True, order=2),
    _e("Reverse SDE (Euler-Maruyama)", "reverse SDE, Euler–Maruyama", "sde:reverse_sde_euler_maruyama", 1, 1,
       "#e6ab02", (6, 1, 0), stochastic=True),
    _e("Euler", "Euler", "edm:euler", 1, 1, "#e6550d", "+", identity_of="DDIM (eta = 0)"),
    _e("Heun (EDM)", "Heun (EDM)", "edm:heun", 2, 2, "#31a354", "x"),
    # EDM's stochastic sampler with its ImageNet-64 settings (Karras et al. 2022, Table 5)
    _e("EDM sampler", "EDM sampler", "edm:edm_sampler", 2, 2, "#756bb1", (7, 0, 0), stochastic=True, churn=40.0,
       s_tmin=0.05, s_tmax=50.0, s_noise=1.003),
    # UniPC-2 with its corrector UniC: order 3 at one model call per interval (Zhao et al. 2023)
    _e("UniPC", r"UniPC-2 ($B_2$)", "unipc:unipc", 3, 1, "#636363", (8, 1, 0), order=2, variant="bh2", corrector=True),
    # Chapter 5: EDM's sampler without churn, naive Euler in t, the other UniPC configurations and the
    # predictors alone (UniP-p with B(h) = 1 - e^{-h} is DPM-Solver++(pM))
    _e("EDM sampler (churn = 0)", r"EDM sampler ($S_\mathrm{churn} = 0$)", "edm:edm_sampler", 2, 2, "#9e9ac8", (7, 1, 0),
       identity_of="Heun (EDM)", churn=0.0),
    _e("Naive Euler", r"Euler in $t$ (naive)", "edm:naive_euler", 1, 1, "#fd8d3c", (4, 1, 45)),
    _e("UniPC-1", "UniPC-1", "unipc:unipc", 2, 1, "#969696", "$1$", order=1, variant="bh2", corrector=True),
    _e("UniPC-2 (bh1)", r"UniPC-2 ($B_1$)", "unipc:unipc", 3, 1, "#bdbdbd", "$2$", order=2, variant="bh1",
       corrector=True),
    _e("UniPC-3 (bh1)", r"UniPC-3 ($B_1$)", "unipc:unipc", 4, 1, "#252525", "$3$", order=3, variant="bh1",
       corrector=True),
    _e("UniPC-3 (bh2)", r"UniPC-3 ($B_2$)", "unipc:unipc", 4, 1, "#6baed6", "$4$", order=3, variant="bh2",
       corrector=True),
    _e("UniP-2", "UniP-2", "unipc:unipc", 2, 1, "#74c476", "$5$", identity_of="DPM-Solver++(2M)", order=2,
       variant="bh2", corrector=False),
    _e("UniP-3", "UniP-3", "unipc:unipc", 3, 1, "#fdae6b", "$6$", identity_of="DPM-Solver++(3M)", order=3,
       variant="bh2", corrector=False),
)}


def get(name: str) -> Entry:
    """The entry called ``name``."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in ENTRIES:
        raise ValueError(f"name must be one of the catalogue's entries {list(ENTRIES)}, got {name!r}")
    return ENTRIES[name]


def function(name: str):
    """The sampler function of an entry, imported on first use."""
    entry = get(name)
    module, attr = entry.function.split(":")
    try:
        return getattr(importlib.import_module(f".{module}", __package__), attr)
    except (ImportError, AttributeError) as err:
        raise NotImplementedError(f"{name!r} needs diffnb.{module}.{attr}, which is not available yet ({err})") from err


def available(name: str) -> bool:
    """Whether an entry's function can be imported (entries may name samplers added later)."""
    try:
        function(name)
    except NotImplementedError:
        return False
    return True


def names(stochastic: bool | None = None, identities: bool = True, only_available: bool = True) -> list[str]:
    """Entry names in catalogue order; ``stochastic`` True / False selects, ``identities=False`` drops the rows
    that are identities of others, ``only_available`` drops entries whose function does not exist yet."""
    if stochastic is not None:
        _checks.flag(stochastic, "stochastic")
    _checks.flag(identities, "identities")
    _checks.flag(only_available, "only_available")
    return [n for n, e in ENTRIES.items()
            if (stochastic is None or e.stochastic == stochastic) and (identities or e.identity_of is None)
            and (not only_available or available(n))]


def run(name: str, model, x_T, schedule, ts, generator=None, **overrides):
    """Sample with the entry ``name``: its function with its keyword arguments (``overrides`` replace them,
    e.g. ``order=fast_orders(nfe)`` for DPM-Solver-fast). ``generator`` goes to stochastic entries only."""
    entry = get(name)
    kwargs = {**entry.kwargs, **overrides}
    if entry.budget is not None and "order" not in overrides:
        raise ValueError(f"{name!r} takes its orders from the budget of model calls: pass the keyword arguments "
                         f"of budget_grid({name!r}, schedule, nfe) (e.g. order=fast_orders(nfe)) with its grid")
    if entry.stochastic:
        kwargs["generator"] = generator
    return function(name)(model, x_T, schedule, ts, **kwargs)


def style(name: str) -> dict:
    """``{"color", "marker", "label"}`` of an entry, for ``plt.plot(..., **style(name))``."""
    entry = get(name)
    return {"color": entry.color, "marker": entry.marker, "label": entry.label}


def budget_grid(name: str, schedule, nfe: int, spacing: str = "logsnr", **timesteps_kwargs):
    """``(ts, kwargs)``: the grid on which ``name`` spends at most ``nfe`` model calls (nfe // calls intervals,
    or the entry's own budget rule), from ``schedule.timesteps(n, spacing, **timesteps_kwargs)``, and the
    keyword arguments to pass to ``run`` with it (DPM-Solver-fast's orders). A last singlestep or Heun
    interval that ends at sigma = 0 costs one call, so such runs may spend less."""
    entry = get(name)
    _checks.gaussian_path(schedule)
    _checks.positive_int(nfe, "nfe")
    n, extra = entry.budget(nfe) if entry.budget is not None else (nfe // entry.calls, {})
    if n < 1:
        raise ValueError(f"nfe={nfe} is less than one interval of {name!r} ({entry.calls} model calls)")
    return schedule.timesteps(n, spacing, **timesteps_kwargs), extra
