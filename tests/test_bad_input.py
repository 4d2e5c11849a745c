"""Every public function of diffnb refuses obviously bad input by name.

The sweep calls each function and class in a module's ``__all__`` (in the module that defines it;
re-exports are swept at home) with all its required positional arguments set to None, then to a
string, then to NaN, and requires a TypeError or ValueError (NotImplementedError for a sampler that
is not available). An AttributeError from deep inside, or a silent result, fails. The messages are
checked function by function in each module's own tests; this sweep makes sure that no public
function is missed, including ones added later.

Skipped, by name: the training loops (``train_*``: with None they would start a full training run
with the recipe's defaults), ``write_weights`` and ``main`` (they rewrite the shipped weights),
``live`` (it starts an interactive widget).
"""

from __future__ import annotations

import importlib
import inspect
import math
import pkgutil

import pytest

import diffnb
import diffnb.symbolic

SKIPPED = ("write_weights", "main", "live")
BAD_VALUES = (None, "x", math.nan)


def _modules() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(diffnb.__path__) if not m.name.startswith("_")]
    names.remove("symbolic")
    return names + [f"symbolic.{m.name}" for m in pkgutil.iter_modules(diffnb.symbolic.__path__)]


def _public_callables():
    found = []
    for module_name in _modules():
        module = importlib.import_module(f"diffnb.{module_name}")
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)  # a name in __all__ that does not exist fails here
            home = getattr(obj, "__module__", "")
            if not callable(obj) or home != module.__name__ or name.startswith("train") or name in SKIPPED:
                continue
            try:
                params = inspect.signature(obj).parameters.values()
            except (TypeError, ValueError):
                continue
            required = [p for p in params if p.default is p.empty
                        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            if required:
                found.append(pytest.param(obj, len(required), id=f"{module_name}.{name}"))
    return found


PUBLIC = _public_callables()


def test_the_sweep_covers_the_library():
    assert len(PUBLIC) >= 250  # 279 functions and classes of 34 modules when this was written


@pytest.mark.parametrize("bad", BAD_VALUES, ids=["None", "str", "nan"])
@pytest.mark.parametrize("function, n_required", PUBLIC)
def test_bad_input_is_refused_by_a_type_or_value_error(function, n_required, bad):
    with pytest.raises((TypeError, ValueError, NotImplementedError)):
        function(*[bad] * n_required)
