"""SymPy derivations, one module per chapter (``ddpm``, ``ddim``, ``sde``, ``dpm_solver``), the source
notes' own versions of the formulas that the errata appendix checks (``errata``), and the shared tools
of ``core`` and the textbook displays of ``display`` (both re-exported here). Each function returns SymPy objects that a chapter displays and a test
checks."""

from . import core, ddim, ddpm, display, dpm_solver, errata, sde  # noqa: F401
from .core import *  # noqa: F401,F403
from .core import __all__ as _core_all
from .display import *  # noqa: F401,F403
from .display import __all__ as _display_all

__all__ = [*_core_all, *_display_all, "core", "display", "ddpm", "ddim", "sde", "dpm_solver", "errata"]
