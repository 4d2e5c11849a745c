"""SymPy derivations, one module per chapter; each function returns expressions that a chapter
displays and a test checks."""

from .ddpm import *  # noqa: F401,F403
from .sde import *  # noqa: F401,F403
from .ddim import *  # noqa: F401,F403
from .dpm_solver import *  # noqa: F401,F403
