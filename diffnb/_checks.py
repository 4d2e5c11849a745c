"""Argument checks shared by every public function.

Each check raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right kind, wrong
value) with a message that names the argument and says what was expected.
"""

from __future__ import annotations

import math

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def as_float_tensor(value, name: str, *, dtype=None, device=None) -> torch.Tensor:
    """Return ``value`` as a floating tensor; Python numbers take ``dtype`` (default float64)."""
    if isinstance(value, torch.Tensor):
        if value.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or a floating-point tensor, got {type(value).__name__}")
    return torch.tensor(float(value), dtype=dtype or torch.float64, device=device)


def finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ``ValueError`` if ``x`` holds NaN or infinity.

    Fast path: NaN and inf propagate into the sum, so a finite sum proves every entry finite in one read
    pass (``isfinite(x).all()`` is several times slower on CPU and runs once per model call); only a
    non-finite sum, which can also come from overflow, falls back to the elementwise test.
    """
    if math.isfinite(float(x.detach().sum())):
        return x
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite, but it contains NaN or inf")
    return x


def batch(x, name: str = "x") -> torch.Tensor:
    """A finite floating tensor with a batch dimension first."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{name} must have a non-empty batch dimension first, got shape {tuple(x.shape)}")
    return finite(x, name)


def grid(ts, like: torch.Tensor, schedule, name: str = "ts") -> torch.Tensor:
    """A strictly decreasing 1-D time grid of at least 2 points, inside the schedule's range,
    in the dtype of ``like``."""
    if not isinstance(ts, torch.Tensor):
        raise TypeError(f"{name} must be a 1-D torch.Tensor of times, got {type(ts).__name__}")
    if ts.dtype != like.dtype:
        raise TypeError(f"{name} must have the dtype of the samples ({like.dtype}), got {ts.dtype}")
    if ts.ndim != 1 or ts.numel() < 2:
        raise ValueError(f"{name} must be 1-D with at least 2 points, got shape {tuple(ts.shape)}")
    finite(ts, name)
    if not bool((ts[1:] < ts[:-1]).all()):
        raise ValueError(f"{name} must be strictly decreasing")
    schedule.check_times(ts, name)
    return ts.to(like.device)


def model_output(out, x: torch.Tensor, what: str = "model(x, t)") -> torch.Tensor:
    """The model's prediction must be a finite tensor shaped and typed like ``x``."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{what} must return a torch.Tensor, got {type(out).__name__}")
    if out.shape != x.shape:
        raise ValueError(f"{what} must return x's shape {tuple(x.shape)}, got {tuple(out.shape)}")
    if out.dtype != x.dtype:
        raise TypeError(f"{what} must return x's dtype {x.dtype}, got {out.dtype}")
    return finite(out, what)


def positive_int(n, name: str, minimum: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} must be an int, got {type(n).__name__}")
    if n < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {n}")
    return n


def one_of(value, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def callable_(fn, name: str):
    if not callable(fn):
        raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
    return fn


def gaussian_path(schedule, name: str = "schedule"):
    """The schedule must be a ``diffnb.schedules.GaussianPath`` (VP, VE, flow matching or a subclass)."""
    from .schedules import GaussianPath  # here, not at the top: schedules imports this module

    if not isinstance(schedule, GaussianPath):
        raise TypeError(f"{name} must be a diffnb.schedules.GaussianPath (e.g. DiscreteVP.linear(), LinearVP(), "
                        f"VE(), FlowMatching()), got {type(schedule).__name__}")
    return schedule


def positive_number(v, name: str) -> float:
    """A positive, finite Python number (not a bool), returned as a float."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be positive and finite, got {v!r}")
    return float(v)


def flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def choice(value, name: str, choices) -> str:
    """A string option: ``TypeError`` if it is not a str, ``ValueError`` if it is not one of ``choices``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return one_of(value, name, choices)


def real_number(v, name: str) -> float:
    """A finite real number: a Python number (not a bool) or a one-element floating tensor, as a float."""
    if isinstance(v, torch.Tensor):
        if v.numel() != 1 or v.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name} must be a number or a one-element floating tensor, got a tensor "
                            f"of dtype {v.dtype} and shape {tuple(v.shape)}")
        v = float(v)
    elif isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v!r}")
    return float(v)


def has_methods(obj, name: str, methods, what: str):
    """``obj`` must have each of ``methods`` as a callable attribute (duck typing, e.g. a diffusers
    scheduler); ``what`` says what was expected, e.g. "a diffusers scheduler"."""
    for method in methods:
        if not callable(getattr(obj, method, None)):
            raise TypeError(f"{name} must have a {method}() method ({what}), got {type(obj).__name__}")
    return obj
