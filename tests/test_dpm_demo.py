"""Chapter 4's helpers (diffnb.dpm_demo), each against an independent computation: the symbolic series
of diffnb.symbolic.dpm_solver, the library samplers, Monte Carlo, and exact identities."""

import math
import re

import pytest
import sympy as sp
import torch
from matplotlib.figure import Figure

from diffnb import bakeoff, catalogue, dpm_demo, metrics, plots, toy
from diffnb.samplers import dpm_solver, dpm_solver_pp, sde_dpm_solver_pp
from diffnb.schedules import LinearVP
from diffnb.symbolic import dpm_solver as sdp
from diffnb.symbolic.core import local_order, ode_series

F64 = torch.float64
P = sdp.small_test_problem((sp.Rational(2, 3), sp.Rational(-5, 7), sp.Rational(3, 11)))
VP = LinearVP()
RING = toy.mixture_2d()
EPS = RING.eps_model(VP)


def _x(n=32, dim=2, seed=0):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


# --- symbolic forms -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(dpm_demo.FORMS))
def test_taylor_form_is_the_symbolic_modules_interpolation_series(name):
    method, kind, q = dpm_demo.FORMS[name]
    ours, _, _ = dpm_demo.form_series(name, "taylor", q + 1, P)
    if method == "singlestep":
        nodes = [sp.Rational(j, q) for j in range(1, q)]
        theirs, _, _ = sdp.singlestep_series(nodes, kind, K=q + 1, P=P)
    else:
        theirs, _, _ = sdp.multistep_series(q, kind, K=q + 1, P=P)
    assert sp.expand(ours - theirs) == 0


def test_printed_form_of_dpm_solver_2_is_algorithm_1_for_any_r():
    r = sp.Symbol("r", positive=True)
    ours, _, _ = dpm_demo.form_series("DPM-Solver-2", "dpmsolver", 3, P, r=r)
    theirs, _, _ = sdp.dpm2_paper_series(r=r, K=3, P=P)
    assert sp.expand(ours - theirs) == 0


def test_local_orders_of_both_forms_and_of_their_difference():
    got = dpm_demo.form_orders(P=P)
    for name, (pa, pb, pd) in got.items():
        k = dpm_demo.FORMS[name][2]
        assert pa == pb == k + 1
        assert pd == (sp.oo if name.endswith("(3M)") else k + 1), name


def test_halved_second_derivative_weight_is_second_order():
    for name in ("DPM-Solver(3M)", "DPM-Solver++(3M)"):
        y, h, _ = dpm_demo.form_series(name, "taylor", 4, P, d2_weight=sp.Rational(1, 2))
        assert local_order(y - ode_series(P.G, P.y, P.lam, P.y0, h, 4), h, 5)[0] == 3


def test_form_series_bad_input():
    with pytest.raises(ValueError, match="name must be one of"):
        dpm_demo.form_series("DPM-Solver-4")
    with pytest.raises(ValueError, match="solver_type must be one of"):
        dpm_demo.form_series("DPM-Solver-2", "midpoint")
    with pytest.raises(ValueError, match="r applies to singlestep updates only"):
        dpm_demo.form_series("DPM-Solver(2M)", r=sp.Rational(1, 3))
    with pytest.raises(ValueError, match="r must hold 2 intermediate"):
        dpm_demo.form_series("DPM-Solver-3", r=sp.Rational(1, 3))


def test_third_order_intermediate_points_in_both_forms():
    third = (sp.Rational(1, 3), sp.Rational(2, 3))
    moved = (sp.Rational(1, 3), sp.Rational(1, 2))
    ours, _, _ = dpm_demo.form_series("DPM-Solver-3", "taylor", 3, P, r=moved)
    theirs, _, _ = sdp.singlestep_series(list(moved), "eps", K=3, P=P)
    assert sp.expand(ours - theirs) == 0
    for st in ("taylor", "dpmsolver"):
        default, h, _ = dpm_demo.form_series("DPM-Solver-3", st, 4, P)
        same, _, _ = dpm_demo.form_series("DPM-Solver-3", st, 4, P, r=third)
        assert sp.expand(default - same) == 0
        y, _, _ = dpm_demo.form_series("DPM-Solver-3", st, 4, P, r=moved)
        exact = ode_series(P.G, P.y, P.lam, P.y0, h, 4)
        assert local_order(y - exact, h, 5)[0] == 3, st


# --- the multistep integrator --------------------------------------------------------------------------
@pytest.mark.parametrize("solver_type", ["dpmsolver", "taylor"])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_multistep_with_full_weight_is_the_library(order, solver_type):
    x, ts = _x(), VP.timesteps(9, "logsnr", t_end=1e-3)
    a = dpm_demo.multistep(EPS, x, VP, ts, order, "x0", solver_type)
    b = dpm_solver_pp(EPS, x, VP, ts, order=order, method="multistep", solver_type=solver_type)
    c = dpm_demo.multistep(EPS, x, VP, ts, order, "eps", solver_type)
    d = dpm_solver(EPS, x, VP, ts, order=order, method="multistep", solver_type=solver_type)
    assert torch.allclose(a, b, atol=1e-12) and torch.allclose(c, d, atol=1e-12)


@pytest.mark.parametrize("solver_type", ["dpmsolver", "taylor"])
@pytest.mark.parametrize("order", [1, 2])
def test_multistep_with_noises_is_sde_dpm_solver_pp_given_the_same_draws(order, solver_type):
    x, ts = _x(), VP.timesteps(8, "logsnr", t_end=1e-3)
    g = torch.Generator().manual_seed(5)
    noises = [torch.randn(x.shape, generator=g, dtype=F64) for _ in range(8)]
    a = dpm_demo.multistep(EPS, x, VP, ts, order, "x0", solver_type, noises=noises)
    b = sde_dpm_solver_pp(EPS, x, VP, ts, order=order, generator=torch.Generator().manual_seed(5),
                          solver_type=solver_type)
    assert torch.allclose(a, b, atol=1e-12)


def test_published_step_is_the_mean_of_the_corrected_and_the_curvature_free_steps():
    x, ts = _x(), VP.timesteps(3, "logsnr", t_end=1e-3)  # only the third step sees b_2
    runs = [dpm_demo.multistep(EPS, x, VP, ts, 3, pred, d2_weight=w)
            for pred in ("x0", "eps") for w in (0.0, 0.5, 1.0)]
    for lo, mid, hi in (runs[:3], runs[3:]):
        assert torch.allclose(mid, (lo + hi) / 2, atol=1e-12)
        assert (hi - lo).abs().max() > 1e-6


def test_published_step_converges_at_second_order_and_the_corrected_at_third():
    x = _x(16)
    ref = toy_reference(x)
    errs = {w: [metrics.rms_error(dpm_demo.multistep(EPS, x, VP, VP.timesteps(n, "logsnr", t_end=1e-3), 3,
                                                     d2_weight=w), ref) for n in (160, 320)] for w in (0.5, 1.0)}
    assert abs(metrics.fit_order([160, 320], errs[0.5]) - 2) < 0.3
    assert abs(metrics.fit_order([160, 320], errs[1.0]) - 3) < 0.3


def toy_reference(x):
    from diffnb.sde import reference_ode_solve
    return reference_ode_solve(EPS, x, VP, 1.0, 1e-3)


def test_multistep_bad_input():
    x, ts = _x(), VP.timesteps(4, "logsnr", t_end=1e-3)
    with pytest.raises(ValueError, match="noises applies to prediction='x0'"):
        dpm_demo.multistep(EPS, x, VP, ts, 2, "eps", noises=[x] * 4)
    with pytest.raises(ValueError, match="prediction must be one of"):
        dpm_demo.multistep(EPS, x, VP, ts, 2, "v")


# --- coupled noise and the SDE orders ----------------------------------------------------------------
def test_coarse_noises_are_standard_normal_combinations_of_the_fine_ones():
    ts = VP.timesteps(12, "logsnr", t_end=1e-3)
    basis = [torch.zeros(12, 1, dtype=F64) for _ in range(12)]
    for j in range(12):
        basis[j][j, 0] = 1.0
    for m in (1, 3, 4, 12):
        coarse = dpm_demo.coarse_noises(VP, ts, basis, m)
        assert len(coarse) == 12 // m
        for k, z in enumerate(coarse):  # unit variance, and only its own fine steps
            assert abs(float(z.pow(2).sum()) - 1) < 1e-12
            assert float(z[: k * m].abs().sum() + z[(k + 1) * m:].abs().sum()) == 0
    assert all(torch.equal(a, b) for a, b in zip(dpm_demo.coarse_noises(VP, ts, basis, 1), basis))
    with pytest.raises(ValueError, match="m must divide"):
        dpm_demo.coarse_noises(VP, ts, basis, 5)


def test_coupled_coarse_run_is_the_fine_run_when_m_is_one():
    x, ts = _x(64), VP.timesteps(16, "logsnr", t_end=1e-3)
    out = dpm_demo.sde_study(EPS, x, VP, ts, [1, 4], lambda v: v[:, 0], torch.Generator().manual_seed(1))
    assert out.strong[1] < 1e-13 and abs(out.weak[1]) < 1e-13
    assert out.strong[4] > 1e-3 and out.weak_se[4] > 0


def test_gaussian_study_against_monte_carlo():
    mix = toy.GaussianMixture([1.0], [0.5], [0.2])
    ts = VP.timesteps(40, "logsnr", t_end=1e-3)
    g = dpm_demo.gaussian_sde_study(mix, VP, ts, [4])
    assert abs(g.var_fine - g.var_exact) < 0.03 * g.var_exact  # 40 steps: near the law
    # the same runs with random x_T and coupled noise, 20,000 paths
    model, n = mix.eps_model(VP), 20000
    gen = torch.Generator().manual_seed(3)
    x_T = torch.randn(n, 1, generator=gen, dtype=F64)
    noises = [torch.randn(n, 1, generator=gen, dtype=F64) for _ in range(40)]
    fine = dpm_demo.multistep(model, x_T, VP, ts, 2, "x0", noises=noises)
    coarse = dpm_demo.multistep(model, x_T, VP, ts[::4], 2, "x0",
                                noises=dpm_demo.coarse_noises(VP, ts, noises, 4))
    assert abs(float(coarse.var()) - g.var[4]) < 4 * g.var[4] * math.sqrt(2 / n)
    assert abs(metrics.rms_error(coarse, fine) - g.strong[4]) < 0.05 * g.strong[4]
    with pytest.raises(ValueError, match="one 1-D Gaussian"):
        dpm_demo.gaussian_sde_study(toy.seed_mixture_1d(), VP, ts, [4])


# --- bake-offs ---------------------------------------------------------------------------------------
def test_budget_run_spends_the_budget_with_the_fast_orders():
    x = _x(8)
    for name, nfe in (("DPM-Solver-2", 5), ("DPM-Solver++(2S)", 7), ("DPM-Solver-3", 10),
                      ("DPM-Solver-fast", 10), ("DDIM (eta = 0)", 6)):
        _, calls = dpm_demo.budget_run(name, EPS, x, VP, nfe, t_end=1e-3)
        assert calls == nfe, name
    _, calls = dpm_demo.budget_run("DPM-Solver-3", EPS, x, VP, 10, recommended=False, t_end=1e-3)
    assert calls == 9  # three intervals of order 3
    a, _ = dpm_demo.budget_run("DPM-Solver-3", EPS, x, VP, 10, t_end=1e-3)
    b, _ = dpm_demo.budget_run("DPM-Solver-fast", EPS, x, VP, 10, t_end=1e-3)
    assert torch.equal(a, b)
    c, _ = dpm_demo.budget_run("DPM-Solver++(2M)", EPS, x, VP, 12, t_end=1e-3, solver_type="taylor")
    d = dpm_solver_pp(EPS, x, VP, VP.timesteps(12, "logsnr", t_end=1e-3), order=2, solver_type="taylor")
    assert torch.equal(c, d)


def test_budget_run_lowers_the_final_multistep_orders_below_ten_calls():
    x = _x(8)
    for nfe in (5, dpm_demo.LOWER_FINAL_BELOW):
        ts = VP.timesteps(nfe, "logsnr", t_end=1e-3)
        low = nfe < dpm_demo.LOWER_FINAL_BELOW
        for name, fn in (("DPM-Solver++(3M)", dpm_solver_pp), ("DPM-Solver(2M)", dpm_solver)):
            order = catalogue.get(name).kwargs["order"]
            a, calls = dpm_demo.budget_run(name, EPS, x, VP, nfe, t_end=1e-3)
            b = fn(EPS, x, VP, ts, order=order, method="multistep", lower_order_final=low)
            assert calls == nfe and torch.equal(a, b), (name, nfe)
        plain, _ = dpm_demo.budget_run("DPM-Solver++(3M)", EPS, x, VP, 5, recommended=False, t_end=1e-3)
        same = dpm_solver_pp(EPS, x, VP, VP.timesteps(5, "logsnr", t_end=1e-3), order=3)
        assert torch.equal(plain, same)
    a, _ = dpm_demo.budget_run("DPM-Solver++(3M)", EPS, x, VP, 5, t_end=1e-3, lower_order_final=False)
    assert torch.equal(a, plain)  # an explicit option wins


def test_bake_blocks_scores_independent_blocks():
    x = _x(64)
    rows = dpm_demo.bake_blocks(["DDIM (eta = 0)", "DDPM"], EPS, x, VP, [4, 8],
                                {"norm": lambda j, xj: float(xj.norm(dim=1).mean())}, 4, t_end=1e-3)["norm"]
    for name in rows:
        for b, cell in rows[name].items():
            assert isinstance(cell, bakeoff.Cell) and len(cell.scores) == 4 and cell.nfe == b
            assert len(set(cell.scores)) == 4 and cell.sem > 0
    with pytest.raises(ValueError, match="blocks must divide"):
        dpm_demo.bake_blocks(["DDPM"], EPS, x, VP, [4], {}, 5)


def test_order_errors_and_paired_gap():
    x = _x(16)
    ref = toy_reference(x)
    errs = dpm_demo.order_errors(["DDIM (eta = 0)", "DPM-Solver-2"], EPS, x, VP, ref, [12, 24], t_end=1e-3)
    assert all(len(e) == 2 and e[1] < e[0] for e in errs.values())
    assert abs(metrics.fit_order([12, 24], errs["DDIM (eta = 0)"]) - 1) < 0.3
    far = ref + 0.1
    gap, se = dpm_demo.paired_gap(ref + 0.01, far, ref)
    assert gap < 0 and abs(gap - 2 * (0.01**2 - 0.1**2)) < 1e-12 and se < 1e-12


def test_block_gap_is_the_mean_and_standard_error_of_blockwise_differences():
    a = bakeoff.Cell("a", 5, 5, (0.3, 0.5, 0.4, 0.6))
    b = bakeoff.Cell("b", 5, 5, (0.1, 0.2, 0.3, 0.2))
    gap, se = dpm_demo.block_gap(a, b)
    d = torch.tensor([0.2, 0.3, 0.1, 0.4], dtype=F64)
    assert abs(gap - float(d.mean())) < 1e-15
    assert abs(se - float(d.std()) / 2) < 1e-15
    shifted = bakeoff.Cell("c", 5, 5, tuple(v + 1 for v in a.scores))
    assert dpm_demo.block_gap(shifted, a)[1] < 1e-12  # common noise cancels
    with pytest.raises(ValueError, match="same number"):
        dpm_demo.block_gap(a, bakeoff.Cell("d", 5, 5, (0.1, 0.2)))


# --- figures -----------------------------------------------------------------------------------------
def test_styles_and_frames():
    assert dpm_demo.linestyle("DPM-Solver++(2M)") == "--" == dpm_demo.linestyle("SDE-DPM-Solver++(2M)")
    assert dpm_demo.linestyle("DPM-Solver-2") == "-" == dpm_demo.linestyle("DDIM (eta = 0)")
    used = {(e.color, e.marker) for e in catalogue.ENTRIES.values()}
    assert dpm_demo.PUBLISHED_3M["color"] not in {c for c, _ in used}
    lam = torch.linspace(-3, 3, 50, dtype=F64)
    paths = torch.sin(lam)[None, :] * torch.linspace(-1, 1, 5, dtype=F64)[:, None]
    frame = dpm_demo.render_paths(lam, paths, lam[::10], paths[:, ::10], "test")
    assert isinstance(frame, plots.Figure) and frame.png[:8] == b"\x89PNG\r\n\x1a\n"
    fig, ax = plots.figure()
    ax.plot([1, 2], [1, 2])
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    small = dpm_demo.small_png(fig, 16)
    assert isinstance(small, plots.Figure) and small.png[:8] == b"\x89PNG\r\n\x1a\n"


# --- bad input is refused by name ------------------------------------------------------------------
def _bad_dpm_demo_calls():
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    ts = VP.timesteps(4, "logsnr", t_end=1e-3)
    cell = bakeoff.Cell("a", 10, 10, (1.0, 2.0))
    gauss = toy.GaussianMixture([1.0], [0.5], [0.2])
    fig = Figure()  # not through pyplot: nothing to close
    return [
        (lambda: dpm_demo.multistep(None, x, VP, ts), TypeError, "model must be callable"),
        (lambda: dpm_demo.multistep(EPS, "x", VP, ts), TypeError, "x_T must be a torch.Tensor"),
        (lambda: dpm_demo.multistep(EPS, x, "VP", ts), TypeError, "schedule must be a diffnb.schedules.GaussianPath"),
        (lambda: dpm_demo.multistep(EPS, x, VP, ts.flip(0)), ValueError, "ts must be strictly decreasing"),
        (lambda: dpm_demo.multistep(EPS, x, VP, ts, order=4), ValueError, "order must be 1, 2 or 3"),
        (lambda: dpm_demo.multistep(EPS, x, VP, ts, d2_weight=math.nan), ValueError, "d2_weight must be finite"),
        (lambda: dpm_demo.multistep(EPS, x, VP, ts, noises=[x] * 3), ValueError, "one tensor per interval (4)"),
        (lambda: dpm_demo.multistep(EPS, x, VP, ts, noises=[x[:1]] * 4), ValueError, "each of noises must have"),
        (lambda: dpm_demo.multistep(EPS, x, VP, ts, noises=x), TypeError, "noises must be a list of tensors"),
        (lambda: dpm_demo.sde_study(EPS, x, VP, ts, [3], lambda v: v, None), ValueError, "factors must divide"),
        (lambda: dpm_demo.sde_study(EPS, x, VP, ts, "2", lambda v: v, None), TypeError, "factors must be"),
        (lambda: dpm_demo.sde_study(EPS, x, VP, ts, [2], None, None), TypeError, "f must be callable"),
        (lambda: dpm_demo.sde_study(EPS, x, VP, ts, [2], lambda v: v, 3), TypeError, "generator must be"),
        (lambda: dpm_demo.gaussian_sde_study(None, VP, ts, [2]), TypeError, "mixture must be a toy.GaussianMixture"),
        (lambda: dpm_demo.gaussian_sde_study(gauss, VP, ts.float(), [2]), TypeError, "ts_fine must have the dtype"),
        (lambda: dpm_demo.gaussian_sde_study(gauss, VP, ts, [0]), ValueError, "each of factors must be at least 1"),
        (lambda: dpm_demo.linestyle(None), TypeError, "name must be a str"),
        (lambda: dpm_demo.linestyle("x"), ValueError, "name must be one of the catalogue's entries"),
        (lambda: dpm_demo.small_png("fig"), TypeError, "fig must be a matplotlib Figure"),
        (lambda: dpm_demo.small_png(fig, 1), ValueError, "colors must be at least 2"),
        (lambda: dpm_demo.small_png(fig, 1000), ValueError, "colors must be at most 256"),
        (lambda: dpm_demo.render_paths(None, x, ts, x, "t"), TypeError, "lam_dense must be a torch.Tensor"),
        (lambda: dpm_demo.render_paths(ts, x, ts, x, "t"), ValueError, "exact_paths must have one column"),
        (lambda: dpm_demo.render_paths(ts[:2], x, ts[:2], x * math.nan, "t"), ValueError, "paths must be finite"),
        (lambda: dpm_demo.render_paths(ts[:2], x, ts[:2], x, None), TypeError, "title must be a str"),
        (lambda: dpm_demo.paired_gap(x, x, None), TypeError, "ref must be a torch.Tensor"),
        (lambda: dpm_demo.paired_gap(x, x[:3], x), ValueError, "a, b and ref must have the same shape"),
        (lambda: dpm_demo.paired_gap(x[:1], x[:1], x[:1]), ValueError, "at least 2 points"),
        (lambda: dpm_demo.block_gap(cell, "b"), TypeError, "b must be a bakeoff.Cell"),
        (lambda: dpm_demo.block_gap(cell, bakeoff.Cell("b", 10, 10, (1.0,))), ValueError,
         "a and b must hold the same number (>= 2) of block scores"),
    ]


@pytest.mark.parametrize("k", range(len(_bad_dpm_demo_calls())))
def test_bad_input_raises_naming_the_argument(k):
    call, error, message = _bad_dpm_demo_calls()[k]
    with pytest.raises(error, match=re.escape(message)):
        call()
