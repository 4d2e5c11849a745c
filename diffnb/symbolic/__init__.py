"""SymPy derivations, one module per chapter (``ddpm``, ``ddim``, ``sde``, ``dpm_solver``), the source
notes' own versions of the formulas that the errata appendix checks (``errata``), and the shared tools
of ``core`` (re-exported here). Each function returns SymPy objects that a chapter displays and a test
checks."""

from . import core, ddim, ddpm, dpm_solver, errata, sde  # noqa: F401
from .core import *  # noqa: F401,F403
from .core import __all__ as _core_all

__all__ = [*_core_all, "core", "ddpm", "ddim", "sde", "dpm_solver", "errata"]
