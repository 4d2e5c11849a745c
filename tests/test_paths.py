"""Gaussian paths beyond VP: VE, flow matching, the karras grid, f and g^2 of any path."""
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffnb.schedules import VE, CosineVP, DiscreteVP, FlowMatching, GaussianPath, LinearVP

F64 = torch.float64
PATHS = [DiscreteVP.linear(), LinearVP(), CosineVP(), VE(), VE(0.01, 10.0), FlowMatching()]


def inner_times(s, n=9):
    """Times strictly inside the range (where every quantity is finite)."""
    return s.t_min + (s.t_max - s.t_min) * torch.linspace(0.05, 0.95, n, dtype=F64)


def test_closed_forms_of_ve_and_flow_matching():
    t = torch.tensor([0.1, 0.5, 0.9], dtype=F64)
    ve, fm = VE(), FlowMatching()
    assert torch.equal(ve.alpha(t), torch.ones_like(t)) and torch.allclose(ve.sigma(t), t, rtol=1e-15)
    assert torch.allclose(fm.alpha(t), 1 - t, rtol=1e-15) and torch.allclose(fm.sigma(t), t, rtol=1e-15)
    assert torch.allclose(fm.log_snr(t), torch.log((1 - t) / t), rtol=1e-14)
    assert torch.allclose(ve.noise_to_signal(t), t, rtol=1e-15)
    # The ends: clean data (sigma = 0, lambda = +inf) and flow matching's pure noise (alpha = 0).
    assert ve.log_snr(0.0) == math.inf and fm.log_snr(0.0) == math.inf
    assert fm.alpha(1.0) == 0 and fm.log_snr(1.0) == -math.inf
    assert float(fm.t_of_log_snr(-math.inf)) == 1.0 and float(fm.t_of_log_snr(math.inf)) == 0.0


@pytest.mark.parametrize("s", PATHS, ids=repr)
def test_log_scales_agree_with_alpha_sigma_and_invert(s):
    t = inner_times(s)
    la, ls, lam = s.log_scales(t)
    assert torch.allclose(la.exp(), s.alpha(t), rtol=1e-14) and torch.allclose(ls.exp(), s.sigma(t), rtol=1e-14)
    assert torch.allclose(lam, torch.log(s.alpha(t) / s.sigma(t)), rtol=1e-12, atol=1e-12)
    assert torch.allclose(s.t_of_log_snr(lam), t, rtol=1e-11, atol=1e-11 * s.t_max)


@pytest.mark.parametrize("s", PATHS, ids=repr)
def test_derivatives_and_sde_coefficients_against_finite_differences(s):
    t, h = inner_times(s), 1e-6 * s.t_max
    if isinstance(s, DiscreteVP):  # piecewise linear log alpha: stay inside one segment
        t, h = torch.floor(t) + 0.5, 1e-3
    fd = lambda fn: (fn(t + h) - fn(t - h)) / (2 * h)  # noqa: E731
    d_alpha, d_sigma = s.d_scales(t)
    assert torch.allclose(d_alpha, fd(s.alpha), rtol=1e-6, atol=1e-9)
    assert torch.allclose(d_sigma, fd(s.sigma), rtol=1e-6, atol=1e-9)
    f, g2 = s.drift_diffusion(t)
    # f = d log alpha/dt; g^2 = d sigma^2/dt - 2 f sigma^2 (the forward SDE's marginal variance equation).
    assert torch.allclose(f, fd(lambda u: torch.log(s.alpha(u))), rtol=1e-6, atol=1e-9)
    assert torch.allclose(g2, fd(lambda u: s.sigma(u) ** 2) - 2 * f * s.sigma(t) ** 2, rtol=1e-5, atol=1e-8)
    assert bool((g2 > 0).all())


def test_karras_grid_is_edms_formula():
    ve, n, r = VE(), 18, 7.0
    i = torch.arange(n + 1, dtype=F64)
    edm = (80.0 ** (1 / r) + i / n * (0.002 ** (1 / r) - 80.0 ** (1 / r))) ** r  # Karras et al. eq. 5
    assert torch.allclose(ve.timesteps(n, "karras"), edm, rtol=1e-13)
    # On another path the grid is the same in sigma/alpha.
    vp = LinearVP()
    ts = vp.timesteps(n, "karras", t_end=1e-3)
    rho = vp.noise_to_signal(ts)
    r0, r1 = float(rho[0]), float(rho[-1])
    expect = (r0 ** (1 / r) + i / n * (r1 ** (1 / r) - r0 ** (1 / r))) ** r
    assert torch.allclose(rho, expect, rtol=1e-10)


def test_flow_matching_shift_and_defaults():
    fm = FlowMatching()
    plain = fm.timesteps(8)
    shifted = fm.timesteps(8, shift=3.0)
    assert torch.allclose(shifted, 3 * plain / (1 + 2 * plain), rtol=1e-15)
    assert float(shifted[0]) == 1.0 and float(shifted[-1]) == 0.0 and bool((shifted >= plain).all())
    assert float(VE().timesteps(4)[-1]) == pytest.approx(0.002)  # VE's default grids end at sigma_min
    with pytest.raises(ValueError, match="shift applies to spacing='uniform' only"):
        fm.timesteps(8, "karras", t_start=0.99, shift=2.0)
    with pytest.raises(ValueError, match="shift must be positive"):
        fm.timesteps(8, shift=-1.0)
    with pytest.raises(ValueError, match="needs a finite sigma/alpha at t_start"):
        fm.timesteps(8, "karras")


@given(st.sampled_from(PATHS), st.integers(1, 60), st.sampled_from(["uniform", "logsnr", "quadratic", "karras"]))
def test_every_grid_is_strictly_decreasing_inside_the_range(s, n, spacing):
    start = s.t_max * (0.999 if isinstance(s, FlowMatching) else 1.0)
    ts = s.timesteps(n, spacing, t_start=start, t_end=s.t_min + 1e-3 * s.t_max)
    assert ts.shape == (n + 1,) and bool((ts[1:] < ts[:-1]).all())
    assert float(ts[0]) == start


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="sigma_min must be less than sigma_max"):
        VE(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(TypeError, match="sigma_max must be a number"):
        VE(sigma_max="80")
    with pytest.raises(ValueError, match="rho must be a positive finite number"):
        VE().timesteps(5, "karras", rho=0.0)
    with pytest.raises(ValueError, match=r"lam must be at least log_snr\(t_max\)"):
        VE().t_of_log_snr(-10.0)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        FlowMatching().alpha(1.5)
    assert all(isinstance(s, GaussianPath) for s in PATHS)
