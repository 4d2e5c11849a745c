"""diffusers' conventions reproduced with diffnb: identities that hold without diffusers installed."""

import math

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from diffnb import conventions as cv
from diffnb import samplers, toy
from diffnb import timesteps as tsp
from diffnb.metrics import fit_order
from diffnb.schedules import DiscreteVP

F64 = torch.float64


def _x(n=64, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_float32_alphas_cumprod_is_the_book_schedule_to_float32_accuracy():
    ac = cv.diffusers_alphas_cumprod()
    assert ac.dtype == torch.float32 and ac.shape == (1000,)
    book = DiscreteVP.linear().alpha_bar(torch.arange(1, 1001, dtype=F64))
    rel = ((ac.double() - book) / book).abs()
    assert float(rel.max()) < 1e-5 and float(rel.max()) > 1e-8  # float32 rounding, accumulated over 1000 factors
    sl = cv.diffusers_alphas_cumprod(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    betas = 1 - sl.double() / torch.cat([torch.ones(1, dtype=F64), sl.double()[:-1]])
    assert abs(float(betas[0]) - 0.00085) < 1e-6 and abs(float(betas[-1]) - 0.012) < 1e-5


@given(st.lists(st.floats(1e-4, 0.05), min_size=1, max_size=50))
def test_schedule_from_alphas_cumprod_reproduces_them_at_t_equal_k_plus_one(betas):
    ac = torch.cumprod(1 - torch.tensor(betas, dtype=F64), 0)
    s = cv.schedule_from_alphas_cumprod(ac)
    assert s.T == len(betas)
    got = s.alpha_bar(torch.arange(1, len(betas) + 1, dtype=F64))
    assert torch.allclose(got, ac, rtol=1e-13, atol=0)


@given(T=st.integers(20, 2000), n=st.integers(1, 60), spacing=st.sampled_from(["leading", "linspace"]))
def test_ddim_step_times(T, n, spacing):
    n = min(n, T)
    t_from, t_to = cv.ddim_step_times(T, n, spacing)
    assert bool((t_to < t_from).all()) and float(t_to[-1]) == 0.0
    assert float(cv.ddim_step_times(T, n, spacing, set_alpha_to_one=False)[1][-1]) == 1.0
    # every step lands T // n below its index, except the last, whose target k - T // n < 0 is alpha_bar = 1
    assert torch.equal((t_from - t_to)[:-1], torch.full_like(t_from[:-1], T // n))
    assert float(t_from[-1]) - 1 - T // n < 0
    if spacing == "leading":  # each step lands on the next listed index
        assert torch.equal(t_to[:-1], t_from[1:])


def test_ddim_chain_is_ddim_when_the_steps_follow_the_list():
    s, model, x = DiscreteVP.linear(), toy.mixture_2d().eps_model(DiscreteVP.linear()), _x()
    t_from, t_to = cv.ddim_step_times(1000, 10, "leading")
    ts = tsp.to_book_times(tsp.diffusers_timesteps(1000, 10, "leading"))
    for eta in (0.0, 1.0):
        a = cv.ddim_chain(model, x, s, t_from, t_to, eta=eta, generator=torch.Generator().manual_seed(1))
        b = samplers.ddim(model, x, s, ts, eta=eta, generator=torch.Generator().manual_seed(1))
        assert torch.allclose(a, b, rtol=0, atol=1e-13)
    # linspace: the steps land T // n below, not on the next listed index, and the chains differ
    t_from, t_to = cv.ddim_step_times(1000, 10, "linspace")
    assert not torch.equal(t_to[:-1], t_from[1:])
    a = cv.ddim_chain(model, x, s, t_from, t_to)
    b = samplers.ddim(model, x, s, tsp.to_book_times(tsp.diffusers_timesteps(1000, 10, "linspace")))
    assert float((a - b).abs().max()) > 1e-3


def test_a_zero_length_step_keeps_x_and_the_noise_stream():
    s, x = DiscreteVP.linear(), _x()
    model = toy.mixture_2d().eps_model(s)
    t_from, t_to = torch.tensor([501.0, 1.0], dtype=F64), torch.tensor([1.0, 1.0], dtype=F64)
    a = cv.ddim_chain(model, x, s, t_from, t_to, eta=1.0, generator=torch.Generator().manual_seed(2))
    b = samplers.ddim(model, x, s, torch.tensor([501.0, 1.0], dtype=F64), eta=1.0,
                      generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    # a zero-length step alone: x is unchanged and one noise draw of x's shape is consumed
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    same = cv.ddim_chain(model, x, s, torch.tensor([1.0], dtype=F64), torch.tensor([1.0], dtype=F64), eta=1.0,
                         generator=g1)
    assert torch.equal(same, x)
    torch.randn(x.shape, generator=g2, dtype=F64)
    assert torch.equal(torch.randn(3, generator=g1), torch.randn(3, generator=g2))


@given(n=st.integers(1, 200), spacing=st.sampled_from(["linspace", "leading", "trailing"]))
def test_dpm_solver_timesteps_and_grid(n, spacing):
    T = 1000
    assume(spacing != "trailing" or len(torch.arange(T, 0, -T / n)) == n)  # else the float arange overshoots
    k = cv.dpm_solver_timesteps(T, n, spacing)
    assert k.numel() == n and bool((k[1:] < k[:-1]).all()) and int(k.min()) >= 0 and int(k.max()) <= T - 1
    if spacing == "linspace":
        assert int(k[0]) == T - 1 and int(k[-1]) > 0  # the 0 of linspace(0, T - 1, n + 1) is dropped
    for final, t_end in (("zero", 0.0), ("sigma_min", 1.0)):
        grid = cv.dpm_solver_book_grid(T, n, spacing, final)
        assert float(grid[-1]) == t_end and torch.equal(grid[: k.numel()], k.double() + 1)


@given(n=st.integers(1, 40), order=st.integers(1, 3), lof=st.booleans(),
       final=st.sampled_from(["zero", "sigma_min"]))
def test_multistep_orders_warm_up_and_never_exceed_the_history(n, order, lof, final):
    """Structure only; which steps diffusers lowers is compared with its scheduler in test_diffusers.py."""
    q = cv.multistep_orders(n, order, lof, final)
    assert len(q) == n and q[0] == 1 and all(1 <= o <= min(order, i + 1) for i, o in enumerate(q))
    assert q[: max(n - 2, 0)] == sorted(q[: max(n - 2, 0)])  # only the last two steps may lower the order


@given(n=st.integers(1, 40), order=st.integers(1, 3), lof=st.booleans(),
       final=st.sampled_from(["zero", "sigma_min"]))
def test_singlestep_orders_are_runs_1_to_q(n, order, lof, final):
    q = cv.singlestep_orders(n, order, lof, final)
    assert len(q) == n and max(q) <= order
    for i, o in enumerate(q):  # an order-o step continues a run 1, 2, ..., o
        assert o == 1 or q[i - 1] == o - 1
    if final == "zero":
        assert q[-1] == 1


def test_singlestep_intervals_at_lambda_midpoints_are_diffnbs_singlestep():
    """Steps with orders 1, 2 between listed times that are the lambda midpoints of a coarse grid are
    dpm_solver's singlestep order 2 on the coarse grid (fractions 1/2 to rounding)."""
    s = DiscreteVP.linear()
    model, x = toy.mixture_2d().eps_model(s), _x()
    coarse = torch.tensor([1000.0, 600.0, 300.0, 100.0, 20.0], dtype=F64)
    lam = s.log_snr(coarse)
    mids = s.t_of_log_snr((lam[:-1] + lam[1:]) / 2)
    fine = torch.cat([torch.stack([coarse[:-1], mids], 1).reshape(-1), coarse[-1:]])
    outer, q, fr = cv.singlestep_intervals(s, fine, [1, 2] * 4)
    assert torch.equal(outer, coarse) and q == [2] * 4
    assert all(abs(f[0] - 0.5) < 1e-12 for f in fr)
    for st in ("dpmsolver", "taylor"):
        a = samplers.dpm_solver_pp(model, x, s, outer, order=q, method="singlestep", fractions=fr, solver_type=st)
        b = samplers.dpm_solver_pp(model, x, s, coarse, order=2, method="singlestep", solver_type=st)
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    # all first order: DDIM on the fine grid; a final step to t = 0 returns x0_hat
    to_zero = torch.cat([fine, torch.zeros(1, dtype=F64)])
    outer, q, fr = cv.singlestep_intervals(s, to_zero, [1] * 9)
    assert torch.equal(outer, to_zero) and q == [1] * 9 and fr == [()] * 9
    a = samplers.dpm_solver_pp(model, x, s, outer, order=q, method="singlestep", fractions=fr)
    assert torch.allclose(a, samplers.ddim(model, x, s, to_zero), rtol=0, atol=1e-12)
    # a third-order interval keeps both listed intermediate times
    outer, q, fr = cv.singlestep_intervals(s, fine[:4], [1, 2, 3])
    assert torch.equal(outer, fine[[0, 3]]) and q == [3]
    assert fr[0] == pytest.approx(((lam_f := s.log_snr(fine[:4]))[1:3] - lam_f[0]) / (lam_f[3] - lam_f[0]))


def test_cosine_data_problem_is_solved_by_diffnb_at_the_expected_orders():
    s = DiscreteVP.linear()
    model, exact = cv.cosine_data_problem(s)
    t_a, t_b = float(s.t_of_log_snr(-3.0)), float(s.t_of_log_snr(3.0))
    x = torch.full((1, 1), 0.3, dtype=F64)
    ref = exact(0.3, t_a, t_b)
    assert math.isclose(exact(exact(0.3, t_a, 400.0), 400.0, t_b), ref, rel_tol=1e-12)  # a flow
    ns = [20, 40, 80]
    for order in (1, 2, 3):
        errs = []
        for n in ns:
            ts = s.t_of_log_snr(torch.linspace(-3.0, 3.0, n + 1, dtype=F64))
            ts[0], ts[-1] = t_a, t_b
            errs.append(abs(float(samplers.dpm_solver_pp(model, x, s, ts, order=order)) - ref))
        assert abs(fit_order(ns, errs) - order) < 0.3


def test_bad_input_is_refused():
    s, x = DiscreteVP.linear(), _x()
    model = toy.mixture_2d().eps_model(s)
    with pytest.raises(ValueError, match=r"beta_schedule must be one of"):
        cv.diffusers_alphas_cumprod(beta_schedule="cosine")
    with pytest.raises(ValueError, match=r"beta_start must be a number in \(0, 1\)"):
        cv.diffusers_alphas_cumprod(beta_start=0.0)
    with pytest.raises(TypeError, match=r"alphas_cumprod must be a floating-point torch.Tensor"):
        cv.schedule_from_alphas_cumprod([0.9, 0.8])
    with pytest.raises(ValueError, match=r"alphas_cumprod must lie in \(0, 1\) and be strictly decreasing"):
        cv.schedule_from_alphas_cumprod(torch.tensor([0.8, 0.9]))
    with pytest.raises(TypeError, match=r"set_alpha_to_one must be a bool"):
        cv.ddim_step_times(1000, 10, set_alpha_to_one=1)
    with pytest.raises(ValueError, match=r"t_to must not be later than t_from"):
        cv.ddim_chain(model, x, s, torch.tensor([5.0], dtype=F64), torch.tensor([6.0], dtype=F64))
    with pytest.raises(ValueError, match=r"t_to must have t_from's shape"):
        cv.ddim_chain(model, x, s, torch.tensor([5.0], dtype=F64), torch.tensor([1.0, 0.0], dtype=F64))
    with pytest.raises(ValueError, match=r"n must be less than T=1000"):
        cv.dpm_solver_timesteps(1000, 1000)
    with pytest.raises(ValueError, match=r"final_sigmas_type must be one of"):
        cv.dpm_solver_book_grid(1000, 10, final_sigmas_type="min")
    with pytest.raises(ValueError, match=r"order must be one of \[1, 2, 3\], got 4"):
        cv.multistep_orders(10, 4)
    with pytest.raises(TypeError, match=r"order must be an int"):
        cv.singlestep_orders(10, 2.0)
    with pytest.raises(ValueError, match=r"orders\[1\] = 3 does not continue an interval"):
        cv.singlestep_intervals(s, torch.tensor([900.0, 500.0, 100.0], dtype=F64), [1, 3])
    with pytest.raises(ValueError, match=r"orders\[0\] = 2 does not continue an interval"):
        cv.singlestep_intervals(s, torch.tensor([900.0, 500.0, 100.0], dtype=F64), [2, 1])
    with pytest.raises(ValueError, match=r"the step to sigma = 0 must be first order"):
        cv.singlestep_intervals(s, torch.tensor([900.0, 500.0, 0.0], dtype=F64), [1, 2])
    with pytest.raises(ValueError, match=r"orders must be a list with one order per step \(2\)"):
        cv.singlestep_intervals(s, torch.tensor([900.0, 500.0, 0.0], dtype=F64), [1])
    with pytest.raises(TypeError, match=r"schedule must be a diffnb.schedules.GaussianPath"):
        cv.singlestep_intervals(None, torch.tensor([900.0, 500.0], dtype=F64), [1])
    with pytest.raises(TypeError, match=r"ts must be a 1-D torch.Tensor"):
        cv.singlestep_intervals(s, [900.0, 500.0], [1])
    with pytest.raises(TypeError, match=r"scheduler must have a set_timesteps\(\) method"):
        cv.diffusers_loop(object(), model, x, 10)
    with pytest.raises(TypeError, match=r"x_scale must be a number"):
        cv.cosine_data_problem(s, x_scale="1")


def test_more_bad_input_is_refused_by_name():
    s = DiscreteVP.linear()
    x = torch.zeros(2, 1, dtype=F64)
    model = toy.seed_mixture_1d().eps_model(s)
    with pytest.raises(TypeError, match=r"schedule must be a diffnb.schedules.GaussianPath"):
        cv.cosine_data_problem(None)
    with pytest.raises(ValueError, match=r"x_scale must be finite, got nan"):
        cv.cosine_data_problem(s, x_scale=float("nan"))
    with pytest.raises(TypeError, match=r"schedule must be a diffnb.schedules.GaussianPath"):
        cv.ddim_chain(model, x, "x", torch.tensor([5.0], dtype=F64), torch.tensor([1.0], dtype=F64))
    with pytest.raises(TypeError, match=r"schedule must be a diffnb.schedules.GaussianPath"):
        cv.dpm_scheduler_on_grid(object(), model, x, None, torch.tensor([5.0, 1.0], dtype=F64))
    with pytest.raises(TypeError, match=r"lower_order_final must be a bool"):
        cv.multistep_orders(10, 2, None)
    with pytest.raises(TypeError, match=r"euler_at_final must be a bool"):
        cv.multistep_orders(10, 2, True, "zero", 1)
    with pytest.raises(TypeError, match=r"lower_order_final must be a bool"):
        cv.singlestep_orders(10, 2, "no")
