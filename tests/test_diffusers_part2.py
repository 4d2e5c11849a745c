"""Part II's diffusers schedulers reproduced by diffnb (the conventions appendix, as tests).

Each diffusers run uses the book's exact-score model at the timestep diffusers passes (a training index tau is
book time tau + 1 on the DDPM schedule; flow matching's tau is 1000 t) and is compared with the diffnb call
that matches its conventions (``diffnb.conventions_part2``). ``report()`` prints the rows of the appendix.
"""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
diffusers = pytest.importorskip("diffusers")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from diffusers.utils import logging  # noqa: E402

from diffnb import conventions as cv  # noqa: E402
from diffnb import conventions_part2 as cv2  # noqa: E402
from diffnb import toy  # noqa: E402
from diffnb.edm import euler, flow_euler, heun  # noqa: E402
from diffnb.paths_demo import exact_velocity  # noqa: E402
from diffnb.samplers import ddim, dpm_solver_pp, unipc  # noqa: E402
from diffnb.schedules import DiscreteVP, FlowMatching  # noqa: E402

logging.set_verbosity_error()
F64 = torch.float64
S = DiscreteVP.linear()          # the model's schedule (the book's, float64)
S32 = cv.float32_schedule()      # the samplers' schedule, matched to diffusers' float32 alphas_cumprod
AC = cv.diffusers_alphas_cumprod()
MIX = toy.mixture_2d()
MODEL = MIX.eps_model(S)
X_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
FLOAT32_TOL = 2e-6   # a few float32 ulps of |x| ~ 1, accumulated over the steps
ROWS = {}            # scheduler -> (convention, max |diffusers - diffnb|), for the appendix


def maxdiff(a, b):
    return float((a - b).abs().max())


EFFECTS = {}         # scheduler -> max change of the diffnb run if the network's times were diffnb's own


def record(name, convention, diff):
    ROWS[name] = (convention, max(diff, ROWS.get(name, ("", 0.0))[1]))
    return diff


def record_effect(name, diff):
    EFFECTS[name] = max(diff, EFFECTS.get(name, 0.0))
    return diff


# --- FlowMatchEulerDiscreteScheduler ------------------------------------------------------------------
@pytest.mark.parametrize("shift", [1.0, 3.0])
@pytest.mark.parametrize("n", [10, 28])
def test_flow_match_euler(shift, n):
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(n)
    ts = cv2.flow_match_sigmas(n, shift)
    assert torch.equal(sched.sigmas.to(F64), ts)  # the grid, to the bit
    assert torch.allclose(sched.timesteps.to(F64), 1000 * ts[:-1], rtol=1e-6)  # tau = 1000 t
    fm = FlowMatching()
    u = exact_velocity(MIX, fm)
    x_d = cv2.sigma_loop(sched, u, X_T, n, book_time=lambda tau: tau / 1000)
    x_b = flow_euler(u, X_T, fm, ts)
    assert record("FlowMatchEulerDiscreteScheduler",
                  "flow_euler on FlowMatching, t = sigmas; tau = 1000 t; velocity u = eps - x0; "
                  "grid = shift(linspace(1, shift(1/1000), n)) + [0]", maxdiff(x_d, x_b)) < FLOAT32_TOL
    # After its first step (from t = 1, where alpha = 0) the flow-matching Euler sampler is DDIM.
    x_1 = flow_euler(u, X_T, fm, ts[:2])
    assert maxdiff(ddim(MIX.eps_model(fm), x_1, fm, ts[1:]), x_b) < 1e-12


def test_flow_match_grid_shifts_the_small_end_twice():
    ts = cv2.flow_match_sigmas(10, 3.0)
    double = FlowMatching().timesteps(9, t_end=float(cv2.sd3_shift(torch.tensor(1e-3, dtype=F64), 3.0)), shift=3.0)
    single = FlowMatching().timesteps(9, t_end=1e-3, shift=3.0)
    assert maxdiff(ts[:-1], double) < 1e-7 and float(ts[-2] - single[-1]) > 5e-3


# --- EulerDiscreteScheduler(use_karras_sigmas=True) -------------------------------------------------
@pytest.mark.parametrize("n", [10, 25])
def test_euler_karras(n):
    sched = diffusers.EulerDiscreteScheduler(use_karras_sigmas=True)
    sched.set_timesteps(n)
    sigmas = cv2.karras_sigmas(AC, n)
    assert torch.equal(sched.sigmas.to(F64), sigmas)
    tau = cv2.sigma_to_index(sigmas[:-1].numpy().astype(np.float32), AC)
    assert np.allclose(sched.timesteps.numpy(), tau, rtol=0, atol=1e-3)
    y_T = X_T * float(sched.init_noise_sigma)
    x_d = cv2.sigma_loop(sched, MODEL, y_T, n)
    ts = cv2.book_times(S32, sigmas)
    model = cv2.remapped_model(MODEL, ts, torch.cat([torch.from_numpy(tau) + 1, ts.new_zeros(1)]))
    x_b = euler(model, y_T * S32.alpha(ts[0]), S32, ts)
    assert record("EulerDiscreteScheduler(use_karras_sigmas=True)",
                  "euler in (rho, y): sample = y = x/alpha, rho = Karras sigmas (rho = 7) between sigma(0) and "
                  "sigma(T-1), then 0; the network at tau + 1, tau = log-sigma-interpolated index",
                  maxdiff(x_d, x_b)) < FLOAT32_TOL
    # The network's times are part of the convention: at diffnb's own times (log alpha interpolated) the run
    # differs, here by little (the exact model's noise levels at the two times are close).
    own_times = euler(MODEL, y_T * S32.alpha(ts[0]), S32, ts)
    assert 1e-7 < record_effect("EulerDiscreteScheduler(use_karras_sigmas=True)", maxdiff(own_times, x_b)) < 1e-4


# --- HeunDiscreteScheduler -----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [10, 25])
def test_heun(n):
    sched = diffusers.HeunDiscreteScheduler(beta_start=1e-4, beta_end=0.02)  # its default betas are SD's
    sched.set_timesteps(n)
    tau, sigmas = cv2.heun_sigmas(AC, n)
    interleaved = torch.cat([sigmas[:1], sigmas[1:-1].repeat_interleave(2), sigmas[-1:]])
    assert torch.equal(sched.sigmas.to(F64), interleaved)  # each inner sigma twice: two calls per interval
    y_T = X_T * float(sched.init_noise_sigma)
    x_d = cv2.sigma_loop(sched, MODEL, y_T, n)
    ts = cv2.book_times(S32, sigmas)
    model = cv2.remapped_model(MODEL, ts, torch.cat([tau + 1, ts.new_zeros(1)]))
    infos = []
    x_b = heun(model, y_T * S32.alpha(ts[0]), S32, ts, callback=infos.append)
    assert infos[-1]["nfe"] == len(sched.timesteps) == 2 * n - 1
    own_times = heun(MODEL, y_T * S32.alpha(ts[0]), S32, ts)
    assert record_effect("HeunDiscreteScheduler", maxdiff(own_times, x_b)) > 1e-9
    assert record("HeunDiscreteScheduler",
                  "heun (EDM Algorithm 1) in (rho, y); default betas are SD's (0.00085-0.012), DDPM's passed; "
                  "sigma interpolated linearly at tau = linspace(0, T-1, n); the network at tau + 1; Euler on the "
                  "last interval (to 0)", maxdiff(x_d, x_b)) < FLOAT32_TOL


# --- UniPCMultistepScheduler ------------------------------------------------------------------------------
UNIPC_CASES = [(order, variant, final) for order in (1, 2, 3) for variant in ("bh1", "bh2")
               for final in ("zero", "sigma_min") if not (variant == "bh1" and final == "zero")]


@pytest.mark.parametrize("order, variant, final", UNIPC_CASES)
@pytest.mark.parametrize("n", [10, 20])
def test_unipc(order, variant, final, n):
    sched = diffusers.UniPCMultistepScheduler(solver_order=order, solver_type=variant, final_sigmas_type=final)
    x_d = cv.diffusers_loop(sched, MODEL, X_T, n)
    ts = cv.dpm_solver_book_grid(1000, n, "linspace", final)
    x_b = unipc(MODEL, X_T, S32, ts, order=order, variant=variant, lower_order_final=True)
    assert record("UniPCMultistepScheduler",
                  "unipc(lower_order_final=True) on the DPM-Solver grid (index k = book time k + 1, final 0 or "
                  "alphas_cumprod[0]); the corrector of step i runs at the start of step i + 1, none after the "
                  "last", maxdiff(x_d, x_b)) < FLOAT32_TOL


def test_unipc_bh1_to_sigma_zero_is_nan_in_diffusers():
    """B(h) = h is infinite on a last step to sigma = 0: diffusers returns NaN; diffnb's last step is x0_hat."""
    x_d = cv.diffusers_loop(diffusers.UniPCMultistepScheduler(solver_type="bh1"), MODEL, X_T, 10)
    assert bool(torch.isnan(x_d).all())
    x_b = unipc(MODEL, X_T, S32, cv.dpm_solver_book_grid(1000, 10, "linspace", "zero"), variant="bh1",
                lower_order_final=True)
    assert bool(torch.isfinite(x_b).all())


# --- DPMSolverMultistepScheduler(use_karras_sigmas=True) ------------------------------------------------
@pytest.mark.parametrize("n", [10, 20])
def test_dpm_solver_multistep_karras(n):
    sched = diffusers.DPMSolverMultistepScheduler(use_karras_sigmas=True)
    x_d = cv.diffusers_loop(sched, MODEL, X_T, n)
    sigmas = cv2.karras_sigmas(AC, n)
    assert torch.equal(sched.sigmas.to(F64), sigmas)
    k = np.round(cv2.sigma_to_index(sigmas[:-1].numpy().astype(np.float32), AC))
    assert np.array_equal(sched.timesteps.numpy(), k.astype(np.int64))  # the network's rounded indices
    ts = cv2.book_times(S32, sigmas)
    model = cv2.remapped_model(MODEL, ts, torch.cat([torch.from_numpy(k) + 1, ts.new_zeros(1)]))
    x_b = dpm_solver_pp(model, X_T, S32, ts, order=2, method="multistep", solver_type="dpmsolver",
                        lower_order_final=n < 15)
    assert record("DPMSolverMultistepScheduler(use_karras_sigmas=True)",
                  "dpm_solver_pp(order=2, solver_type='dpmsolver') on the Karras rho grid, then 0; the network "
                  "at k + 1 for the *rounded* index k of each sigma, while the update uses the unrounded sigma",
                  maxdiff(x_d, x_b)) < FLOAT32_TOL
    own_times = dpm_solver_pp(MODEL, X_T, S32, ts, order=2, lower_order_final=n < 15)
    assert record_effect("DPMSolverMultistepScheduler(use_karras_sigmas=True)", maxdiff(own_times, x_b)) > 1e-5


def test_helpers_refuse_bad_input():
    ts = torch.tensor([10.0, 1.0], dtype=F64)
    model = cv2.remapped_model(MODEL, ts, torch.tensor([11.0, 2.0], dtype=F64))
    with pytest.raises(ValueError, match="grid"):
        model(X_T, torch.full((64,), 5.0, dtype=F64))
    with pytest.raises(ValueError, match="same length"):
        cv2.remapped_model(MODEL, ts, torch.tensor([1.0], dtype=F64))
    with pytest.raises(ValueError, match="sigmas"):
        cv2.book_times(S32, torch.tensor([1e4], dtype=F64))
    with pytest.raises(TypeError, match="alphas_cumprod"):
        cv2.karras_sigmas([0.5, 0.4], 10)
    with pytest.raises(TypeError, match="scheduler"):
        cv2.sigma_loop(object(), MODEL, X_T, 10)


def report():
    """The appendix rows: scheduler, convention, max difference (run after the tests of this module)."""
    return {name: row for name, row in ROWS.items()}


def test_report_has_every_scheduler():
    # runs last in this module (pytest keeps file order): every scheduler above has its row
    assert set(ROWS) == {"FlowMatchEulerDiscreteScheduler", "EulerDiscreteScheduler(use_karras_sigmas=True)",
                         "HeunDiscreteScheduler", "UniPCMultistepScheduler",
                         "DPMSolverMultistepScheduler(use_karras_sigmas=True)"}
    for name, (_, diff) in ROWS.items():
        effect = f"; network at diffnb's own times changes diffnb by {EFFECTS[name]:.1e}" if name in EFFECTS else ""
        print(f"{name}: max |diffusers - diffnb| = {diff:.1e}{effect}")


def test_rounding_tolerance_is_roundings_per_call():
    assert cv2.rounding_tolerance(torch.float32, 10, 2.0, per_call=1.0) == 10 * 2.0 * 2.0**-24
    assert cv2.rounding_tolerance(torch.float64, 1, 1.0) == 8 * 2.0**-53
    with pytest.raises(ValueError, match="dtype"):
        cv2.rounding_tolerance(torch.float16, 10, 1.0)
    with pytest.raises(ValueError, match="scale"):
        cv2.rounding_tolerance(torch.float32, 10, 0.0)


def test_orders_used_records_the_schedulers_updates_and_restores_them():
    from diffnb import conventions as cv
    sched = diffusers.DPMSolverMultistepScheduler(solver_order=3, final_sigmas_type="zero")
    used = cv2.orders_used(sched, lambda: cv.diffusers_loop(sched, MODEL, X_T[:2], 6))
    assert used == [1, 2, 3, 3, 2, 1]  # warm-up, then lower_order_final below 15 steps, last step to 0
    assert all(name not in vars(sched) for name in cv2.MULTISTEP_UPDATES)
    with pytest.raises(TypeError, match="scheduler"):
        cv2.orders_used(object(), lambda: None)


def test_sd3_shift_refuses_bad_input():
    with pytest.raises(TypeError, match="t must be"):
        cv2.sd3_shift(None, 3.0)
    with pytest.raises(TypeError, match="shift must be a number"):
        cv2.sd3_shift(0.5, "3")
    with pytest.raises(ValueError, match="shift must be positive"):
        cv2.sd3_shift(0.5, float("nan"))
    assert cv2.sd3_shift(0.5, 3.0) == 0.75
