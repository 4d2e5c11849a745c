"""Chapter 2's helpers: textbook displays, the update's terms, the non-Markovian joint, the
miniature Table 1's protocol, trajectories in (rho, y)."""

import math
import re

import pytest
import torch

from diffnb import ddim_demo as dd
from diffnb import metrics, plots, samplers, toy
from diffnb.schedules import DiscreteVP
from diffnb.symbolic import ddim as symd

F64 = torch.float64
SCHED = DiscreteVP.linear()
MIX = toy.seed_mixture_1d()


def randn(n, seed, dim=1):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


# --- one update ----------------------------------------------------------------------------------
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_update_parts_add_up_to_the_library_step(eta):
    ring = toy.mixture_2d()
    x_t = randn(5, 0, dim=2)
    z = randn(5, 1, dim=2)
    parts = dd.update_parts(ring, SCHED, x_t, 300.0, 120.0, eta, z)
    step = samplers.ddim(ring.eps_model(SCHED), x_t, SCHED, torch.tensor([300.0, 120.0], dtype=F64),
                         eta=eta, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(parts["x_s"], step, atol=1e-12)
    # the direction is parallel to x_t - alpha_t x0_hat
    foot = x_t - SCHED.alpha(torch.tensor(300.0)) * parts["x0_hat"]
    cross = parts["direction"][:, 0] * foot[:, 1] - parts["direction"][:, 1] * foot[:, 0]
    assert cross.abs().max() < 1e-10


# --- the joint -----------------------------------------------------------------------------------
def test_walk_kernel_with_no_noise_is_the_marginal_with_one_eps():
    x0 = MIX.sample(50, generator=torch.Generator().manual_seed(0))
    grid = torch.tensor([1000.0, 500.0, 20.0], dtype=F64)
    states = dd.walk_kernel(SCHED, x0, grid, lambda t, s: 0 * SCHED.sigma(s), torch.Generator().manual_seed(1))
    eps = (states[0] - SCHED.alpha(grid[0]) * x0) / SCHED.sigma(grid[0])
    for x, t in zip(states, grid):
        assert torch.allclose(x, SCHED.alpha(t) * x0 + SCHED.sigma(t) * eps, atol=1e-12)


def test_walk_kernel_keeps_the_marginal_variance():
    x0 = torch.zeros(40_000, 1, dtype=F64)
    grid = torch.tensor([1000.0, 600.0, 100.0], dtype=F64)
    states = dd.walk_kernel(SCHED, x0, grid, lambda t, s: samplers.ddim_sigma(SCHED, t, s, 0.5),
                            torch.Generator().manual_seed(2))
    for x, t in zip(states, grid):
        assert abs(float(x.var()) / float(SCHED.sigma(t)) ** 2 - 1) < 4 * math.sqrt(2 / 40_000)


def test_ols_recovers_exact_coefficients_and_kernel_closed_form_at_eta_one():
    a, b = randn(100, 0), randn(100, 1)
    coef, se, resid = dd.ols(2 * a - 3 * b, a, b)
    assert torch.allclose(coef, torch.tensor([2.0, -3.0], dtype=F64), atol=1e-12) and resid < 1e-20
    assert se.shape == (2,)
    t, s = torch.tensor(600.0, dtype=F64), torch.tensor(300.0, dtype=F64)
    c_s, c_0, v = dd.kernel_closed_form(SCHED, t, s, samplers.ddim_sigma(SCHED, t, s, 1.0))
    ratio = float(SCHED.alpha_bar(t) / SCHED.alpha_bar(s))
    assert abs(c_0) < 1e-12 and math.isclose(c_s, math.sqrt(ratio), rel_tol=1e-12)
    assert math.isclose(v, 1 - ratio, rel_tol=1e-10)


# --- Table 1 -------------------------------------------------------------------------------------
def test_paper_grid():
    assert dd.paper_grid(10).tolist() == [901.0, 801, 701, 601, 501, 401, 301, 201, 101, 1, 0]
    assert len(dd.paper_grid(100)) == 101
    with pytest.raises(ValueError, match="divide"):
        dd.paper_grid(7)


def test_sigma_hat_sampler_is_the_posterior_mean_plus_beta_hat_noise():
    x0 = torch.full((20, 1), 0.3, dtype=F64)
    model = lambda x, t: (x - SCHED.alpha(t)[:, None] * x0) / SCHED.sigma(t)[:, None]  # noqa: E731
    x_T = randn(20, 3)
    ts = torch.tensor([800.0, 300.0, 0.0], dtype=F64)
    seen = []
    out = dd.sigma_hat_sampler(model, x_T, SCHED, ts, torch.Generator().manual_seed(4),
                               callback=lambda info: seen.append(float(info["t"])))
    assert seen == [300.0, 0.0]
    assert torch.allclose(out, x0, atol=1e-12)  # the last step adds no noise
    g = torch.Generator().manual_seed(5)
    one = dd.sigma_hat_sampler(model, x_T, SCHED, ts[:2], g)
    from diffnb import forward
    mean, _ = forward.posterior(SCHED, x_T, x0, ts[0], ts[1])
    beta_hat = 1 - SCHED.alpha_bar(ts[0]) / SCHED.alpha_bar(ts[1])
    z = torch.randn(20, 1, generator=torch.Generator().manual_seed(5), dtype=F64)
    assert torch.allclose(one, mean + torch.sqrt(beta_hat) * z, atol=1e-12)


def test_replicates_floor_band_gap():
    x = MIX.sample(3000, generator=torch.Generator().manual_seed(0))
    w = dd.w1_replicates(x, MIX, 3)
    assert w.shape == (3,) and bool((w > 0).all())
    with pytest.raises(ValueError, match="multiple"):
        dd.w1_replicates(x, MIX, 7)
    mean, lo, hi = dd.band(torch.arange(1.0, 102.0))
    assert mean == 51.0 and math.isclose(lo, 6.0) and math.isclose(hi, 96.0)
    d, h = dd.gap(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 0.0, 0.0]))
    assert d == 2.0 and math.isclose(h, 2.0 / math.sqrt(3))
    err = dd.paired_error(x, x + 0.5, 3)
    assert torch.allclose(err, torch.full((3,), 0.5, dtype=F64))


def test_table1_rows_and_states():
    model = MIX.eps_model(SCHED)
    x_T = randn(400, 6)
    out = dd.table1(model, SCHED, MIX, x_T, 2, (10, 20), (0.0, 1.0), seed=7)
    assert set(out.w1) == {"eta = 0", "eta = 1", "sigma-hat"}
    assert all(v.shape == (2, 2) for v in out.w1.values())
    assert set(out.at_1) == set(out.final) and len(out.final) == 6
    ref = samplers.ddim(model, x_T, SCHED, dd.paper_grid(20))
    assert torch.equal(out.final["eta = 0", 20], ref)
    last = samplers.ddim(model, out.at_1["eta = 0", 20], SCHED, torch.tensor([1.0, 0.0], dtype=F64))
    assert torch.allclose(last, ref, atol=1e-12)


def test_off_support():
    x = MIX.sample(20_000, generator=torch.Generator().manual_seed(8))
    assert dd.off_support(x, MIX) < 1e-3
    assert dd.off_support(torch.tensor([[0.3], [2.0]], dtype=F64), MIX) == 1.0
    assert dd.off_support(torch.tensor([[0.5]], dtype=F64), MIX, alpha=1.0, sigma=0.01) == 0.0


# --- trajectories and figures -------------------------------------------------------------------
def test_rho_y_path_is_euler_and_reference_path_is_exact_for_a_point():
    point = toy.EmpiricalMixture(torch.tensor([[0.3]], dtype=F64))
    model = point.eps_model(SCHED)
    x_T = randn(4, 9)
    ts = torch.tensor([900.0, 400.0, 50.0, 1.0], dtype=F64)
    rho, y = dd.rho_y_path(model, SCHED, x_T, ts)
    assert torch.allclose(y[0], x_T[:, 0] / SCHED.alpha(ts[0]))
    line = 0.3 + (y[0] - 0.3) * (rho / rho[0])[:, None]  # the exact flow of a point mass
    assert torch.allclose(y, line, atol=1e-10)
    rho_r, y_r = dd.reference_path(model, SCHED, x_T, ts)
    assert torch.equal(rho_r, rho) and torch.allclose(y_r, line, atol=1e-6)


def test_row_styles_are_distinct_and_follow_the_catalogue():
    from diffnb import catalogue

    assert dd.ROW_STYLE["eta = 0"][0] == catalogue.style("DDIM (eta = 0)")["color"]
    assert dd.ROW_STYLE["eta = 1"][0] == catalogue.style("DDIM (eta = 1)")["color"]
    assert len({c for c, _ in dd.ROW_STYLE.values()}) == len(dd.ROW_STYLE)
    assert len({m for _, m in dd.ROW_STYLE.values()}) == len(dd.ROW_STYLE)
    others = {e.color for name, e in catalogue.ENTRIES.items() if name not in ("DDPM", "DDIM (eta = 0)", "DDIM (eta = 1)")}
    assert not others & {dd.ROW_STYLE[r][0] for r in ("eta = 0.2", "eta = 0.5", "sigma-hat")}


def test_figure_helpers_draw():
    ring = toy.mixture_2d()
    parts = dd.update_parts(ring, SCHED, randn(1, 0, 2), 200.0, 80.0, 1.0, randn(1, 1, 2))
    fig, axes = plots.figure(ncols=2)
    dd.draw_update(axes[0], parts, float(SCHED.alpha(torch.tensor(200.0))), plots.COLORS[:3])
    w1 = {"eta = 0": torch.rand(5, 2, dtype=F64) + 0.01, "sigma-hat": torch.rand(5, 2, dtype=F64) + 0.01}
    floor = metrics.w1_floor(MIX, 200, seeds=range(3), n_grid=2001)
    dd.draw_table1(axes[1], (10, 20), w1, floor, [torch.ones(5), torch.ones(5)])
    assert len(axes[0].get_legend_handles_labels()[1]) == 6
    assert len(axes[1].get_legend_handles_labels()[1]) == 4
    for ax in axes:
        ax.set(xlabel="a", ylabel="b")
    plots.show(fig)


# --- bad input is refused by name ------------------------------------------------------------------
def _bad_ddim_calls():
    S = symd.ddim_symbols()
    model = MIX.eps_model(SCHED)
    x8 = randn(8, 0)
    ts = torch.tensor([1000.0, 500.0, 0.0], dtype=F64)
    t, s = torch.tensor(300.0, dtype=F64), torch.tensor(120.0, dtype=F64)
    return [
        (lambda: dd.formula_names("S"), TypeError, "S must be the symbol namespace"),
        (lambda: dd.formula_names(None), TypeError, "ddim_symbols"),
        (lambda: dd.formula_names(S, w="w"), TypeError, "w must be a SymPy object"),
        (lambda: dd.kernel_closed_form("x", t, s, 0.1), TypeError, "schedule must be a diffnb.schedules.GaussianPath"),
        (lambda: dd.kernel_closed_form(SCHED, None, s, 0.1), TypeError, "t must be"),
        (lambda: dd.kernel_closed_form(SCHED, t, math.nan, 0.1), ValueError, "t must be finite"),
        (lambda: dd.kernel_closed_form(SCHED, t, s, math.nan), ValueError, "vs must be finite"),
        (lambda: dd.kernel_closed_form(SCHED, t, s, -0.1), ValueError, "vs must be >= 0"),
        (lambda: dd.kernel_closed_form(SCHED, t, s, "x"), TypeError, "vs must be a number"),
        (lambda: dd.kernel_closed_form(SCHED, t, 0.0, 0.0), ValueError, "sigma_s > 0"),
        (lambda: dd.band(None), TypeError, "values must be"),
        (lambda: dd.band([1.0, math.nan]), ValueError, "values must be finite"),
        (lambda: dd.band([1.0, 2.0], q=1.5), ValueError, "q must lie in (0, 1)"),
        (lambda: dd.band([], ), ValueError, "values must hold at least one"),
        (lambda: dd.gap("a", 0), TypeError, "a must be"),
        (lambda: dd.gap(math.nan, math.nan), ValueError, "a must be finite"),
        (lambda: dd.gap([1.0, 2.0], [math.inf, 0.0]), ValueError, "b must be finite"),
        (lambda: dd.gap([1.0], 0), ValueError, "at least 2 replicate values"),
        (lambda: dd.rho_y_path("m", SCHED, x8, ts), TypeError, "model must be callable"),
        (lambda: dd.rho_y_path(model, None, x8, ts), TypeError, "schedule must be"),
        (lambda: dd.rho_y_path(model, SCHED, None, ts), TypeError, "x_T must be a torch.Tensor"),
        (lambda: dd.rho_y_path(model, SCHED, randn(8, 0, dim=2), ts), ValueError, "x_T must hold 1-D samples"),
        (lambda: dd.rho_y_path(model, SCHED, x8, [1000.0, 0.0]), TypeError, "ts must be a 1-D torch.Tensor"),
        (lambda: dd.reference_path(model, SCHED, x8 * math.nan, ts), ValueError, "x_T must be finite"),
        (lambda: dd.reference_path(model, SCHED, x8, ts.flip(0)), ValueError, "ts must be strictly decreasing"),
        (lambda: dd.reference_path(model, SCHED, x8, ts, rtol=0.0), ValueError, "rtol must be positive"),
        (lambda: dd.update_parts("mix", SCHED, x8, 300.0, 120.0, 0.0, x8), TypeError, "mixture must be a toy.GaussianMixture"),
        (lambda: dd.update_parts(MIX, SCHED, x8, math.nan, 120.0, 0.0, x8), ValueError, "t must be finite"),
        (lambda: dd.update_parts(MIX, SCHED, x8, 300.0, 120.0, 0.0, x8[:2]), ValueError, "z must have x_t's shape"),
        (lambda: dd.walk_kernel(SCHED, x8, ts, None, None), TypeError, "vs_of must be callable"),
        (lambda: dd.walk_kernel(SCHED, x8, [1000.0, 0.0], lambda t, s: 0.0, None), TypeError, "grid must be a 1-D"),
        (lambda: dd.ols(x8), ValueError, "at least one column"),
        (lambda: dd.ols(x8, x8[:4]), ValueError, "columns[0] must have y's 8 values"),
        (lambda: dd.ols(x8, "c"), TypeError, "columns[0] must be a torch.Tensor"),
        (lambda: dd.sigma_hat_sampler(model, x8, SCHED, ts, callback=1), TypeError, "callback must be callable"),
        (lambda: dd.sigma_hat_sampler(model, x8, "s", ts), TypeError, "schedule must be"),
        (lambda: dd.per_replicate(None, x8, 2), TypeError, "fn must be callable"),
        (lambda: dd.per_replicate(len, x8, 2, x8[:4]), ValueError, "others[0] must have x's batch size 8"),
        (lambda: dd.paired_error(x8, x8[:4], 2), ValueError, "reference must have x's shape"),
        (lambda: dd.w1_replicates(x8, toy.mixture_2d(), 2), ValueError, "mixture must be 1-D"),
        (lambda: dd.table1(model, SCHED, None, x8, 2, [10], [0.0]), TypeError, "mixture must be a toy.GaussianMixture"),
        (lambda: dd.table1(model, SCHED, MIX, x8, 2, [10], [-1.0]), ValueError, "each of etas must be >= 0"),
        (lambda: dd.off_support(x8, MIX, k=0.0), ValueError, "k must be positive"),
        (lambda: dd.off_support(x8, MIX, alpha=math.nan), ValueError, "alpha must be finite"),
    ]


@pytest.mark.parametrize("k", range(len(_bad_ddim_calls())))
def test_bad_input_raises_naming_the_argument(k):
    call, error, message = _bad_ddim_calls()[k]
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_gap_and_band_accept_what_the_chapter_passes():
    assert dd.gap(torch.tensor([1.0, 3.0], dtype=F64), 0) == (2.0, 2.0)
    assert dd.gap((1.0, 2.0), [0.0, 0.0])[0] == 1.5
    assert dd.band(torch.arange(5, dtype=F64))[0] == 2.0
