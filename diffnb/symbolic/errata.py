"""The source notes' own versions of the formulas the errata appendix rejects or questions, each exactly
as the note states it. Every corrected side, and every check, comes from the chapter modules; a seed
formula is certified wrong by ``core.nonzero_at`` (an exact non-zero residual at an exact point).

Names: ``seedNNN_<what>`` for source note NNN (000 and 001: DDPM and DDIM notes; 002: the DPM-Solver
notes). Symbols are those of the chapter modules: ``S`` from ``ddpm.ddpm_symbols``, ``D`` from
``ddim.ddim_symbols``, ``Q`` from ``sde.sde_symbols``.

Seed formulas that are right live in the chapter modules only; what the appendix questions there is a
claim, not the formula: seed 002's eq. (18)-(19) is ``dpm_solver.dpm1_update`` (exact only for a constant
model output), its k = 2 step is ``dpm_solver.dpm2_paper_series`` (indeed O(h^3)), its DPM-Solver++ ODE is
``dpm_solver.pp_ode_coefficients()[1]``, the statement before its eq. (15) is ``sde.rho_form_residual``, and
its last formula is ``dpm_solver.sde_pp1_update``: SDE-DPM-Solver++(1), a stochastic step, not the
high-order ODE solution it is presented as.
"""

from __future__ import annotations

from types import SimpleNamespace

import sympy as sp

from .core import expression, gaussian_expectation, namespace
from .ddim import DDIMSymbols, x0_hat_expr
from .ddpm import DDPMSymbols
from .sde import SDESymbols, dsm_loss, linear_vp_beta

__all__ = ["seed000_forward_kernel", "seed000_posterior_mean", "seed000_m", "seed000_k", "seed000_regrouped_step",
           "seed001_update", "seed002_integrating_factor", "seed002_linear_schedule", "seed002_dsm_objective"]


def seed000_forward_kernel(S):
    """Seed 000: q(x_t | x_{t-1}) = N(sqrt(abar_t) x_{t-1}, (1 - abar_t) I).
    Returns ``(mean coefficient, variance)``."""
    namespace(S, DDPMSymbols, "S")
    return sp.sqrt(S.abar), 1 - S.abar


def seed000_posterior_mean(S):
    """Seed 000's posterior mean:
    M(x_t, x_0) = sqrt(abar_t)(1 - abar_{t-1})/(1 - abar_t) x_t + sqrt(abar_{t-1}) beta_t/(1 - abar_t) x_0."""
    namespace(S, DDPMSymbols, "S")
    return (sp.sqrt(S.abar) * (1 - S.abar_prev) / (1 - S.abar) * S.xt
            + sp.sqrt(S.abar_prev) * S.beta / (1 - S.abar) * S.x0)


def seed000_m(D):
    """Seed 000: m_t = (1 - abar_{t-1} - sigma_t^2)/(1 - abar_t), the square root missing."""
    namespace(D, DDIMSymbols, "D")
    return (1 - D.abar_s - D.vs**2) / (1 - D.abar_t)


def seed000_k(D):
    """Seed 000: sqrt(abar_{t-1}) - sqrt(abar_t/(1 - abar_t)) (1 - abar_{t-1} - delta_t^2), the bracket outside
    the square root."""
    namespace(D, DDIMSymbols, "D")
    return sp.sqrt(D.abar_s) - sp.sqrt(D.abar_t / (1 - D.abar_t)) * (1 - D.abar_s - D.vs**2)


def seed000_regrouped_step(D):
    """Seed 000's third line of the regrouped step, as typeset: (sqrt(abar_{t-1}) X_0 + sqrt(1 - abar_{t-1} - delta^2))
    / X-hat_{0|t} (X_t - sqrt(abar_t) X_0)/sqrt(1 - abar_t) + delta eps (the label X-hat_{0|t} became a divisor).
    Returns ``(line, x0_hat_label)``."""
    namespace(D, DDIMSymbols, "D")
    label = sp.Symbol(r"\hat X_{0|t}", positive=True)
    noise_part = (D.xt - sp.sqrt(D.abar_t) * D.x0) / sp.sqrt(1 - D.abar_t)
    return (sp.sqrt(D.abar_s) * D.x0 + sp.sqrt(1 - D.abar_s - D.vs**2)) / label * noise_part + D.vs * D.z, label


def seed001_update(D):
    """Seed 001's final sampling formula: sqrt(abar_prev) x0-hat + sqrt(1 - abar_prev - sigma^2) eps + sigma^2 eps',
    where the fresh noise needs sigma."""
    namespace(D, DDIMSymbols, "D")
    return sp.sqrt(D.abar_s) * x0_hat_expr(D) + sp.sqrt(1 - D.abar_s - D.vs**2) * D.eps + D.vs**2 * D.z


def seed002_integrating_factor():
    """Seed 002's u_tau = exp(-int_tau^oo f(r) dr), opening its DPM-Solver section."""
    tau, r = sp.Symbol("tau", positive=True), sp.Symbol("r")
    return sp.exp(-sp.Integral(sp.Function("f")(r), (r, tau, sp.oo)))


def seed002_linear_schedule(Q):
    """Seed 002's continuous linear schedule, as stated: ``alpha_def`` says alpha_t = prod_i (1 - beta_i) (that
    is alpha-bar_t in the book's notation); ``dlog_alpha`` is the claimed d log alpha_t / dt = -beta_t;
    ``log_alpha`` the final quadratic -(beta_1 - beta_0)/4 t^2 - beta_0/2 t; ``d_beta`` the extra -d beta_t
    of its limit line, beta(t + dt) - beta(t)."""
    namespace(Q, SDESymbols, "Q")
    beta = linear_vp_beta(Q)
    return SimpleNamespace(alpha_def="alpha_t = prod_{i=0}^{t} (1 - beta_i)", dlog_alpha=-beta,
                           log_alpha=-(Q.beta_1 - Q.beta_0) / 4 * Q.t**2 - Q.beta_0 / 2 * Q.t,
                           d_beta=beta.subs(Q.t, Q.t + Q.dt) - beta)


def seed002_dsm_objective(Q, model):
    """Seed 002's eq. (4) as subscripted: the DSM loss averaged over q_0t(x_t | x_0) only (over eps, not over
    the data), for a ``model`` polynomial in Q.x. It still depends on x_0."""
    namespace(Q, SDESymbols, "Q")
    expression(model, "model")
    return gaussian_expectation(dsm_loss(Q, model), [Q.eps])
