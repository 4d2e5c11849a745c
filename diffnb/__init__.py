"""diffnb: the tested helpers behind *Diffusion sampling, derived and verified*.

Modules: ``schedules`` (noise schedules), ``forward`` (q(x_t | x_0) and posteriors), ``samplers``
(DDPM, DDIM, inversion; DPM-Solver and DPM-Solver++ re-exported from ``dpm_solver``), ``sde`` (forward
and reverse SDE, probability-flow ODE, reference ODE solver), ``toy`` (Gaussian mixtures with exact
scores, a small denoiser), ``metrics``, ``timesteps`` and ``conventions`` (other libraries' grids and
conventions), ``symbolic`` (SymPy derivations), ``plots`` and ``widgets``.
"""

__version__ = "0.1.0"
