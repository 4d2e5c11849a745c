"""diffnb: the tested helpers behind *Diffusion sampling, derived and verified*.

Modules: ``schedules`` (noise schedules), ``forward`` (q(x_t | x_0) and posteriors), ``samplers``,
``toy`` (Gaussian mixtures with exact scores, a small denoiser), ``metrics``, ``symbolic`` (SymPy
derivations), ``plots``.
"""

__version__ = "0.1.0"
