"""Cross-checks against diffusers' schedulers (the conventions appendix, as tests).

Every diffusers run is driven by the book's exact-score model (integer timestep k is book time k + 1) and
compared with the diffnb call that matches its conventions; see ``diffnb.conventions``.
"""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
diffusers = pytest.importorskip("diffusers")

import math  # noqa: E402

import torch  # noqa: E402
from diffusers.utils import logging  # noqa: E402

from diffnb import conventions as cv  # noqa: E402
from diffnb import samplers, toy  # noqa: E402
from diffnb import timesteps as tsp  # noqa: E402
from diffnb.metrics import fit_order  # noqa: E402
from diffnb.schedules import DiscreteVP  # noqa: E402

logging.set_verbosity_error()
F64 = torch.float64
S = DiscreteVP.linear()          # the model's schedule (the book's, float64)
S32 = cv.float32_schedule()      # the sampler's schedule matched to diffusers' float32 alphas_cumprod
MODEL = toy.mixture_2d().eps_model(S)
X_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
FLOAT32_TOL = 2e-6  # a few float32 ulps of |x| ~ 1, accumulated over the steps


def maxdiff(a, b):
    return float((a - b).abs().max())


def gen(seed=1):
    return torch.Generator().manual_seed(seed)


def test_alphas_cumprod_are_float32_products_and_index_k_is_book_time_k_plus_one():
    sched = diffusers.DDIMScheduler()
    assert sched.alphas_cumprod.dtype == torch.float32
    assert torch.equal(sched.alphas_cumprod, cv.diffusers_alphas_cumprod())
    k = torch.arange(1000, dtype=F64)
    assert torch.allclose(S32.alpha_bar(k + 1), sched.alphas_cumprod.double(), rtol=1e-13, atol=0)
    assert torch.allclose(S.alpha_bar(k + 1), sched.alphas_cumprod.double(), rtol=1e-5, atol=0)
    for spacing in ("linspace", "leading", "trailing"):
        sched = diffusers.DDIMScheduler(timestep_spacing=spacing)
        sched.set_timesteps(20)
        assert torch.equal(sched.timesteps, tsp.diffusers_timesteps(1000, 20, spacing))


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("set_alpha_to_one", [True, False])
def test_ddim(spacing, eta, set_alpha_to_one):
    sched = diffusers.DDIMScheduler(clip_sample=False, timestep_spacing=spacing, set_alpha_to_one=set_alpha_to_one)
    x_d = cv.diffusers_loop(sched, MODEL, X_T, 20, generator=gen(), eta=eta)
    t_from, t_to = cv.ddim_step_times(1000, 20, spacing, set_alpha_to_one=set_alpha_to_one)
    x_chain = cv.ddim_chain(MODEL, X_T, S32, t_from, t_to, eta=eta, generator=gen())
    assert maxdiff(x_d, x_chain) < (1e-7 if eta == 0 else 10 * FLOAT32_TOL)
    ts = tsp.to_book_times(tsp.diffusers_timesteps(1000, 20, spacing), final=0.0 if set_alpha_to_one else 1.0)
    x_b = samplers.ddim(MODEL, X_T, S32, ts, eta=eta, generator=gen())
    if spacing == "linspace":  # steps land T // n below the listed index, not on the next one
        assert maxdiff(x_d, x_b) > 1e-3
    else:
        assert maxdiff(x_d, x_b) < (1e-7 if eta == 0 else 10 * FLOAT32_TOL)


def test_ddim_float32_alphas_cumprod_is_the_remaining_difference():
    x_d = cv.diffusers_loop(diffusers.DDIMScheduler(clip_sample=False), MODEL, X_T, 20)
    ts = tsp.to_book_times(tsp.diffusers_timesteps(1000, 20, "leading"))
    book, matched = maxdiff(x_d, samplers.ddim(MODEL, X_T, S, ts)), maxdiff(x_d, samplers.ddim(MODEL, X_T, S32, ts))
    assert matched < book / 10 and book < 1e-4


def test_ddim_clip_sample_default_clips_x0_hat():
    x_d = cv.diffusers_loop(diffusers.DDIMScheduler(), MODEL, X_T, 20)
    x_b = samplers.ddim(MODEL, X_T, S32, tsp.to_book_times(tsp.diffusers_timesteps(1000, 20, "leading")))
    assert float(x_d.abs().max()) <= 1.0 + 1e-6 < float(x_b.abs().max())


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_ddpm(spacing):
    sched = diffusers.DDPMScheduler(clip_sample=False, timestep_spacing=spacing)
    x_d = cv.diffusers_loop(sched, MODEL, X_T, 20, generator=gen())
    ts = tsp.to_book_times(tsp.diffusers_timesteps(1000, 20, spacing))  # DDPM steps to the next listed index
    assert maxdiff(x_d, samplers.ddpm(MODEL, X_T, S32, ts, generator=gen())) < 10 * FLOAT32_TOL


# noise prediction ("dpmsolver") cannot step to sigma = 0: diffusers and diffnb both refuse final "zero" there
MULTISTEP_CASES = [(alg, order, lof, final) for alg in ("dpmsolver++", "dpmsolver") for order in (1, 2)
                   for lof in (False, True) for final in ("zero", "sigma_min")
                   if not (alg == "dpmsolver" and final == "zero")]
SOLVER_TYPES = {"midpoint": "dpmsolver", "heun": "taylor"}  # diffusers' solver_type: diffnb's


@pytest.mark.parametrize("diffusers_type", list(SOLVER_TYPES))
@pytest.mark.parametrize("algorithm, order, lower_order_final, final", MULTISTEP_CASES)
def test_dpm_solver_multistep_orders_1_and_2(algorithm, order, lower_order_final, final, diffusers_type):
    fn = samplers.dpm_solver_pp if algorithm == "dpmsolver++" else samplers.dpm_solver
    for n in (10, 20):
        sched = diffusers.DPMSolverMultistepScheduler(algorithm_type=algorithm, solver_order=order,
                                                      solver_type=diffusers_type, lower_order_final=lower_order_final,
                                                      final_sigmas_type=final)
        x_d = cv.diffusers_loop(sched, MODEL, X_T, n)
        ts = cv.dpm_solver_book_grid(1000, n, "linspace", final)
        q = cv.multistep_orders(n, order, lower_order_final, final)
        x_b = fn(MODEL, X_T, S32, ts, order=q, method="multistep", solver_type=SOLVER_TYPES[diffusers_type])
        assert maxdiff(x_d, x_b) < FLOAT32_TOL


def _orders_used(sched, n):
    """The order of each multistep update the scheduler really runs, recorded from its own update methods."""
    used = []
    for k, name in enumerate(("dpm_solver_first_order_update", "multistep_dpm_solver_second_order_update",
                              "multistep_dpm_solver_third_order_update"), start=1):
        original = getattr(sched, name)
        setattr(sched, name, lambda *a, _f=original, _k=k, **kw: (used.append(_k), _f(*a, **kw))[1])
    cv.diffusers_loop(sched, MODEL, X_T[:2], n)
    return used


@pytest.mark.parametrize("final", ["zero", "sigma_min"])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_multistep_orders_are_the_schedulers_own(order, final):
    for n in (1, 2, 3, 5, 14, 15, 16):
        for lof in (False, True):
            for euler_at_final in (False, True):
                sched = diffusers.DPMSolverMultistepScheduler(solver_order=order, lower_order_final=lof,
                                                              final_sigmas_type=final, euler_at_final=euler_at_final)
                assert cv.multistep_orders(n, order, lof, final, euler_at_final) == _orders_used(sched, n), (
                    n, lof, euler_at_final)


def test_midpoint_solver_type_is_the_papers_dpmsolver_form():
    """diffusers' default solver_type="midpoint" is diffnb's default "dpmsolver" (expm1(-h)/(2r), DPM-Solver++'s
    Algorithm 2) and "heun" is "taylor" (h phi_2(-h)/r); the two forms differ by much more than float32."""
    ts = cv.dpm_solver_book_grid(1000, 20, "linspace", "zero")
    mid = cv.diffusers_loop(diffusers.DPMSolverMultistepScheduler(solver_type="midpoint"), MODEL, X_T, 20)
    heun = cv.diffusers_loop(diffusers.DPMSolverMultistepScheduler(solver_type="heun"), MODEL, X_T, 20)
    q = cv.multistep_orders(20, 2)
    assert maxdiff(mid, samplers.dpm_solver_pp(MODEL, X_T, S32, ts, order=q)) < FLOAT32_TOL
    assert maxdiff(heun, samplers.dpm_solver_pp(MODEL, X_T, S32, ts, order=q, solver_type="taylor")) < FLOAT32_TOL
    assert maxdiff(mid, heun) > 1e-4


def test_third_order_multistep_update_halves_the_second_derivative_term():
    """diffusers' multistep third-order update integrates a data prediction that is quadratic in lambda
    with half the quadratic term: its D2 = h^2 x0''/2 is weighted by alpha_t (1/2 - phi) instead of twice that."""
    sched = diffusers.DPMSolverMultistepScheduler(solver_order=3, final_sigmas_type="sigma_min")
    lam = torch.tensor([-1.0, -0.5, 0.0, 0.5], dtype=F64)     # lambda_{s2}, lambda_{s1}, lambda_{s0}, lambda_t
    ts = S32.t_of_log_snr(lam)
    sched.set_timesteps(timesteps=[3, 2, 1])
    sched.sigmas = S32.noise_to_signal(ts)
    sched.set_begin_index(2)
    sched._step_index = 2
    f = (lam - lam[2]) ** 2                                  # x0_hat quadratic in lambda, zero at lambda_{s0}
    outs = [f[j].reshape(1, 1) for j in range(3)]
    x_d = float(sched.multistep_dpm_solver_third_order_update(outs, sample=torch.zeros(1, 1, dtype=F64)))
    # exact: sigma_t int_{l0}^{lt} e^l (l - l0)^2 dl, with l0 = 0: e^l (l^2 - 2l + 2) from 0 to lt
    lt = float(lam[3])
    exact_x = float(S32.sigma(ts[3])) * (math.exp(lt) * (lt**2 - 2 * lt + 2) - 2)
    assert math.isclose(x_d / exact_x, 0.5, rel_tol=1e-9)


def test_third_order_multistep_is_second_order_in_diffusers_and_third_in_diffnb():
    model, exact = cv.cosine_data_problem(S32)
    t_a, t_b = float(S32.t_of_log_snr(-3.0)), float(S32.t_of_log_snr(3.0))
    x = torch.full((1, 1), 0.3, dtype=F64)
    ref, ns, err_d, err_b = exact(0.3, t_a, t_b), [40, 80, 160], [], []
    for n in ns:
        ts = S32.t_of_log_snr(torch.linspace(-3.0, 3.0, n + 1, dtype=F64))
        ts[0], ts[-1] = t_a, t_b
        sched = diffusers.DPMSolverMultistepScheduler(solver_order=3, final_sigmas_type="sigma_min",
                                                      lower_order_final=False)
        err_d.append(abs(float(cv.dpm_scheduler_on_grid(sched, model, x, S32, ts)) - ref))
        err_b.append(abs(float(samplers.dpm_solver_pp(model, x, S32, ts, order=3)) - ref))
    assert abs(fit_order(ns, err_d) - 2) < 0.3 and abs(fit_order(ns, err_b) - 3) < 0.3


SINGLESTEP_CASES = [(2, 10, "midpoint"), (2, 11, "midpoint"), (2, 10, "heun"), (2, 11, "heun"), (3, 12, "heun"),
                    (3, 13, "heun")]


def _singlestep_run(order, n, final, diffusers_type):
    sched = diffusers.DPMSolverSinglestepScheduler(solver_order=order, solver_type=diffusers_type,
                                                   final_sigmas_type=final)
    x_d = cv.diffusers_loop(sched, MODEL, X_T, n)
    assert sched.order_list == cv.singlestep_orders(n, order, False, final)
    ts = cv.dpm_solver_book_grid(1000, n, "linspace", final)
    return x_d, cv.singlestep_intervals(S32, ts, sched.order_list)


@pytest.mark.parametrize("final", ["zero", "sigma_min"])
@pytest.mark.parametrize("order, n, diffusers_type", SINGLESTEP_CASES)
def test_dpm_solver_singlestep(order, n, diffusers_type, final):
    """The singlestep scheduler is diffnb's singlestep method with its intermediate points at the listed times
    (``singlestep_intervals``); its own order list is ``singlestep_orders``."""
    x_d, (outer, q, fractions) = _singlestep_run(order, n, final, diffusers_type)
    st = SOLVER_TYPES[diffusers_type]
    x_b = samplers.dpm_solver_pp(MODEL, X_T, S32, outer, order=q, method="singlestep", fractions=fractions,
                                 solver_type=st)
    # three-point interpolation over close nodes amplifies diffusers' float32 rounding a little
    assert maxdiff(x_d, x_b) < (3 if order == 3 else 1) * FLOAT32_TOL
    # the intermediate point is the next listed time, not the lambda midpoint of diffnb's default
    x_mid = samplers.dpm_solver_pp(MODEL, X_T, S32, outer, order=q, method="singlestep", solver_type=st)
    assert maxdiff(x_d, x_mid) > 50 * FLOAT32_TOL


@pytest.mark.parametrize("final", ["zero", "sigma_min"])
@pytest.mark.parametrize("n", [12, 13])
def test_singlestep_midpoint_order_3_is_not_algorithm_2(n, final, monkeypatch):
    """diffusers' "midpoint" third order ends like DPM-Solver's Algorithm 2 but takes its middle stage in the
    midpoint form too (Algorithm 2 and the official code use the Taylor form there): diffnb's "dpmsolver"
    differs from it, and the same weights with that one stage switched reproduce it."""
    from diffnb import dpm_solver as dpm

    x_d, (outer, q, fractions) = _singlestep_run(3, n, final, "midpoint")
    kw = dict(order=q, method="singlestep", fractions=fractions)
    assert maxdiff(x_d, samplers.dpm_solver_pp(MODEL, X_T, S32, outer, **kw)) > 50 * FLOAT32_TOL
    monkeypatch.setitem(dpm._SINGLESTEP_FORMS["dpmsolver"], 3, [((0,), False), ((0, 1), True), ((0, 2), False)])
    assert maxdiff(x_d, samplers.dpm_solver_pp(MODEL, X_T, S32, outer, **kw)) < 3 * FLOAT32_TOL
