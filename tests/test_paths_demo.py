"""Chapter 5's helpers: chord deviation, grids to zero, matched grids, paired statistics."""
import math
import re

import pytest
import torch

from diffnb import paths_demo as pdm
from diffnb import toy
from diffnb.schedules import VE, FlowMatching, LinearVP

F64 = torch.float64


def test_chord_deviation_zero_on_lines_and_positive_on_curves():
    tau = torch.linspace(0.0, 1.0, 51, dtype=F64)
    line = (2.0 + 3.0 * tau)[:, None, None]
    assert float(pdm.chord_deviation(tau, line)[0]) < 1e-14
    curve = (tau ** 2)[:, None, None]  # max |t^2 - t| = 1/4 at t = 1/2
    assert math.isclose(float(pdm.chord_deviation(tau, curve)[0]), 0.25, rel_tol=1e-12)


def test_projective_map_keeps_lines_straight():
    """A line y = c + b rho in (rho, y) is a line in flow matching's (t, x)."""
    fm = FlowMatching()
    lam = torch.linspace(-3.0, 4.0, 41, dtype=F64)
    rho = torch.exp(-lam)
    y = (0.5 - 1.5 * rho)[:, None, None]
    t, x = pdm.coordinates(fm, lam, y)
    assert float(pdm.chord_deviation(t, x)[0]) < 1e-12
    assert float(pdm.chord_deviation(rho, y)[0]) < 1e-12


def test_grid_to_zero_and_matched_grid():
    ve, vp = VE(), LinearVP()
    ts = pdm.grid_to_zero(ve, 6, "karras")
    assert len(ts) == 7 and float(ts[-1]) == 0.0 and float(ts[-2]) == ve.sigma_min
    tv = pdm.matched_grid(ts, ve, vp)
    assert torch.allclose(vp.log_snr(tv[:-1]), ve.log_snr(ts[:-1]), rtol=1e-10)
    assert float(tv[-1]) == float(vp.t_min)
    with pytest.raises(ValueError):
        pdm.grid_to_zero(ve, 1, "karras")


def test_exact_velocity_matches_finite_difference_of_the_path_law():
    """u = alpha' x0_hat + sigma' eps_hat; for a point mass at c it is -c + eps (exact)."""
    fm = FlowMatching()
    mix = toy.GaussianMixture([1.0], [0.3], [1e-12])
    t = torch.full((5,), 0.4, dtype=F64)
    eps = torch.randn(5, 1, generator=torch.Generator().manual_seed(0), dtype=F64)
    x = 0.6 * 0.3 + 0.4 * eps
    u = pdm.exact_velocity(mix, fm)(x, t)
    assert torch.allclose(u, eps - 0.3, rtol=1e-9, atol=1e-9)


def test_paired_ratio_and_its_interval():
    g = torch.Generator().manual_seed(1)
    sq_b = torch.rand(400, generator=g, dtype=F64)
    r, lo, hi = pdm.paired_ratio(0.25 * sq_b, sq_b, n_boot=200)
    assert math.isclose(r, 0.5, rel_tol=1e-12) and lo == pytest.approx(0.5) and hi == pytest.approx(0.5)
    sq_a = torch.rand(400, generator=g, dtype=F64)
    r, lo, hi = pdm.paired_ratio(sq_a, sq_b, n_boot=200)
    assert lo < r < hi and lo < 1 < hi
    with pytest.raises(ValueError):
        pdm.paired_ratio(sq_a[:10], sq_b)


def test_crossing_nfe_interpolates_log_linearly():
    nfe = [10, 20, 40]
    # errors 1, 1/2, 1/4 on every path: RMS crosses 1/sqrt(8) halfway between 20 and 40 in log
    sq = torch.tensor([1.0, 0.25, 0.0625], dtype=F64)[:, None].expand(3, 50)
    target = torch.full((50,), 0.125, dtype=F64)
    n, lo, hi = pdm.crossing_nfe(nfe, sq, target, n_boot=50)
    assert math.isclose(n, math.sqrt(20 * 40), rel_tol=1e-12) and lo == pytest.approx(n)
    never = pdm.crossing_nfe(nfe, sq, torch.full((50,), 1e-4, dtype=F64), n_boot=20)
    assert math.isinf(never[0])


# --- bad input is refused by name ------------------------------------------------------------------
def _bad_paths_calls():
    ve, vp = VE(), LinearVP()
    sq = torch.rand(10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sq_a = torch.stack([2 * sq, sq, sq / 2])
    x = torch.randn(10, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return [
        (lambda: pdm.matched_grid(None, ve, vp), TypeError, "ts must be a torch.Tensor"),
        (lambda: pdm.matched_grid(torch.ones(3), "ve", vp), TypeError, "source must be a diffnb.schedules.GaussianPath"),
        (lambda: pdm.matched_grid(torch.ones(3), ve, None), TypeError, "target must be a diffnb.schedules.GaussianPath"),
        (lambda: pdm.per_path_sq_errors(math.nan, x), TypeError, "x must be a torch.Tensor"),
        (lambda: pdm.per_path_sq_errors(x, x[:5]), ValueError, "reference must have x's shape"),
        (lambda: pdm.per_path_sq_errors(x, x * math.nan), ValueError, "reference must be finite"),
        (lambda: pdm.rms("sq"), TypeError, "sq must be a torch.Tensor"),
        (lambda: pdm.rms(sq * math.nan), ValueError, "sq must be finite"),
        (lambda: pdm.rms(torch.ones(3, 0)), ValueError, "non-empty last dimension"),
        (lambda: pdm.paired_ratio(sq, None), TypeError, "sq_b must be a torch.Tensor"),
        (lambda: pdm.paired_ratio(-sq, sq), ValueError, "sq_a must be squared errors (>= 0)"),
        (lambda: pdm.paired_ratio(sq_a, sq_a), ValueError, "sq_a must be 1-D"),
        (lambda: pdm.paired_ratio(sq, sq, n_boot=1), ValueError, "n_boot must be at least 2"),
        (lambda: pdm.paired_ratio(sq, sq, level=1.0), ValueError, "level must lie in (0, 1)"),
        (lambda: pdm.paired_ratio(sq, sq, seed=0.5), TypeError, "seed must be an int"),
        (lambda: pdm.crossing_nfe(None, sq_a, sq), TypeError, "nfe_a must be a sequence"),
        (lambda: pdm.crossing_nfe([1, 3, 2], sq_a, sq), ValueError, "nfe_a must be a non-empty increasing"),
        (lambda: pdm.crossing_nfe([1, 2, math.nan], sq_a, sq), ValueError, "each of nfe_a must be positive"),
        (lambda: pdm.crossing_nfe([1, 2], sq_a, sq), ValueError, "sq_a must have shape (len(nfe_a), batch)"),
        (lambda: pdm.crossing_nfe([1, 2, 4], sq_a, sq * math.nan), ValueError, "target_sq must be finite"),
        (lambda: pdm.exact_velocity("mix", vp), TypeError, "mixture must be a toy.GaussianMixture"),
        (lambda: pdm.dense_paths(toy.mixture_2d(), x, [0.0, 1.0]), TypeError, "lam must be a 1-D torch.Tensor"),
        (lambda: pdm.dense_paths(toy.mixture_2d(), x, torch.tensor([1.0, 0.0])), ValueError,
         "lam must be strictly increasing"),
        (lambda: pdm.grid_to_zero("ve", 18, "karras"), TypeError, "schedule must be a diffnb.schedules.GaussianPath"),
    ]


@pytest.mark.parametrize("k", range(len(_bad_paths_calls())))
def test_bad_input_raises_naming_the_argument(k):
    call, error, message = _bad_paths_calls()[k]
    with pytest.raises(error, match=re.escape(message)):
        call()
