import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffnb.schedules import CosineVP, DiscreteVP, LinearVP

F64 = torch.float64


def random_discrete(seed, T):
    g = torch.Generator().manual_seed(seed)
    return DiscreteVP(torch.rand(T, generator=g, dtype=F64) * 0.2 + 1e-4)


SCHEDULES = [DiscreteVP.linear(), DiscreteVP.cosine(), LinearVP(), CosineVP(), random_discrete(0, 37)]
schedule_strategy = st.one_of(
    st.sampled_from(SCHEDULES),
    st.builds(random_discrete, st.integers(0, 10_000), st.integers(1, 200)),
    st.builds(LinearVP, st.floats(0.0, 1.0), st.floats(2.0, 30.0)),
)


def times(s, u):
    return torch.as_tensor(u, dtype=F64) * (s.t_max - s.t_min) + s.t_min


@given(schedule_strategy, st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20))
def test_variance_preserving(s, u):
    t = times(s, u)
    assert torch.allclose(s.alpha(t) ** 2 + s.sigma(t) ** 2, torch.ones_like(t), atol=1e-14)
    assert torch.allclose(s.alpha_bar(t), s.alpha(t) ** 2, rtol=1e-13)


@given(schedule_strategy, st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=20))
def test_log_snr_definition_and_inverse_round_trip(s, u):
    t = times(s, u)
    lam = s.log_snr(t)
    assert torch.allclose(lam, torch.log(s.alpha(t) / s.sigma(t)), rtol=1e-9, atol=1e-9)
    assert torch.allclose(s.noise_to_signal(t), s.sigma(t) / s.alpha(t), rtol=1e-9)
    assert torch.allclose(s.t_of_log_snr(lam), t, rtol=1e-9, atol=1e-9 * s.t_max)


@given(schedule_strategy)
def test_monotone_alpha_decreasing_and_log_snr_decreasing(s):
    t = torch.linspace(s.t_min, s.t_max, 501, dtype=F64)
    assert bool((s.alpha(t)[1:] < s.alpha(t)[:-1]).all())
    assert bool((s.log_snr(t)[1:] < s.log_snr(t)[:-1]).all())


def test_clean_data_at_t_min():
    for s in SCHEDULES:
        assert float(s.alpha(s.t_min)) == 1.0 and float(s.sigma(s.t_min)) == 0.0
        assert math.isinf(float(s.log_snr(s.t_min)))
        assert float(s.t_of_log_snr(math.inf)) == s.t_min


def test_discrete_schedule_is_ddpm_cumprod_at_integers():
    s = DiscreteVP.linear(T=1000, beta_start=1e-4, beta_end=0.02)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=F64)
    alphas_cumprod = torch.cumprod(1 - betas, 0)
    n = torch.arange(1, 1001, dtype=F64)
    assert torch.allclose(s.alpha_bar(n), alphas_cumprod, rtol=1e-12)
    # Between integers log alpha is linear, so its derivative is the half log of the step's (1 - beta).
    assert torch.allclose(s.d_log_alpha(n - 0.5), 0.5 * torch.log1p(-betas), rtol=1e-12)


def test_cosine_discrete_matches_nichol_dhariwal():
    T, s0 = 1000, 0.008
    s = DiscreteVP.cosine(T=T, s=s0)
    n = torch.arange(0, 500, dtype=F64)
    f = torch.cos((n / T + s0) / (1 + s0) * math.pi / 2) ** 2
    assert torch.allclose(s.alpha_bar(n), f / f[0], rtol=1e-10)


@pytest.mark.parametrize("s", [LinearVP(), LinearVP(0.5, 5.0), CosineVP()])
def test_continuous_derivative_matches_finite_difference(s):
    t = torch.linspace(0.05, 0.9, 9, dtype=F64)
    h = 1e-6
    fd = (s.log_alpha(t + h) - s.log_alpha(t - h)) / (2 * h)
    assert torch.allclose(s.d_log_alpha(t), fd, rtol=1e-6)


def test_linear_vp_is_the_continuum_limit_of_ddpm():
    # beta_n = beta(n / N) / N with beta(t) = 0.1 + 19.9 t: alpha_bar agrees to O(1/N).
    N = 1000
    ddpm = DiscreteVP(torch.tensor([(0.1 + 19.9 * (n / N)) / N for n in range(1, N + 1)], dtype=F64))
    t = torch.linspace(0, 1, 11, dtype=F64)
    assert torch.allclose(ddpm.alpha(t * N), LinearVP(0.1, 20.0).alpha(t), atol=5e-3)


@pytest.mark.parametrize("spacing", ["uniform", "logsnr", "quadratic"])
@pytest.mark.parametrize("s", SCHEDULES)
def test_timesteps_are_strictly_decreasing_with_exact_ends(s, spacing):
    t_end = 1e-3 * s.t_max
    ts = s.timesteps(10, spacing, t_end=t_end)
    assert ts.shape == (11,) and ts.dtype == F64
    assert float(ts[0]) == s.t_max and float(ts[-1]) == t_end
    assert bool((ts[1:] < ts[:-1]).all())


def test_logsnr_grid_is_uniform_in_lambda():
    s = DiscreteVP.linear()
    lam = s.log_snr(s.timesteps(20, "logsnr", t_end=1.0))
    assert torch.allclose(lam.diff(), lam.diff().mean().expand(20), rtol=1e-9)


def test_quadratic_grid_is_uniform_in_sqrt_t():
    ts = LinearVP().timesteps(8, "quadratic", t_end=1e-3)
    assert torch.allclose(ts.sqrt().diff(), ts.sqrt().diff().mean().expand(8), rtol=1e-9)


def test_float32_in_float32_out():
    s = DiscreteVP.linear()
    t = torch.tensor([10.0, 500.0], dtype=torch.float32)
    assert s.alpha(t).dtype == torch.float32
    assert s.timesteps(4, dtype=torch.float32).dtype == torch.float32


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "betas, exc, match",
    [
        (torch.tensor([0.1, 1.0], dtype=F64), ValueError, r"betas must lie in the open interval \(0, 1\)"),
        (torch.tensor([0.0, 0.1], dtype=F64), ValueError, r"betas must lie in the open interval"),
        (torch.tensor([-0.1], dtype=F64), ValueError, r"betas must lie in the open interval"),
        (torch.full((2, 2), 0.1, dtype=F64), ValueError, r"betas must be 1-D"),
        (torch.tensor([], dtype=F64), ValueError, r"betas must be 1-D and non-empty"),
        (torch.tensor([0.1, float("nan")], dtype=F64), ValueError, r"betas must be finite"),
        (torch.tensor([0.1, float("inf")], dtype=F64), ValueError, r"betas must be finite"),
        ([0.1, 0.2], TypeError, r"betas must be a 1-D torch.Tensor"),
        (torch.tensor([1, 2]), TypeError, r"betas must be a floating-point tensor"),
    ],
)
def test_bad_betas(betas, exc, match):
    with pytest.raises(exc, match=match):
        DiscreteVP(betas)


def test_times_outside_the_range():
    s = DiscreteVP.linear(T=100)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 100\]"):
        s.alpha(100.5)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        LinearVP().sigma(torch.tensor([-0.1], dtype=F64))
    with pytest.raises(ValueError, match=r"t must be finite"):
        LinearVP().alpha(float("nan"))
    with pytest.raises(TypeError, match=r"t must be a number or a floating-point tensor"):
        LinearVP().alpha("0.5")


def test_bad_timesteps_arguments():
    s = LinearVP()
    with pytest.raises(ValueError, match=r"spacing must be one of"):
        s.timesteps(10, "cubic")
    with pytest.raises(ValueError, match=r"n must be at least 1"):
        s.timesteps(0)
    with pytest.raises(TypeError, match=r"n must be an int"):
        s.timesteps(2.5)
    with pytest.raises(ValueError, match=r"needs a finite log_snr at both ends"):
        s.timesteps(10, "logsnr")
    with pytest.raises(ValueError, match=r"t_start must be greater than t_end"):
        s.timesteps(10, t_start=0.2, t_end=0.5)
    with pytest.raises(ValueError, match=r"t_end must lie in"):
        s.timesteps(10, t_end=-1.0)


def test_bad_schedule_parameters():
    with pytest.raises(ValueError, match=r"beta_0 < beta_1"):
        LinearVP(5.0, 1.0)
    with pytest.raises(ValueError, match=r"t_max must lie in \(0, 1\)"):
        CosineVP(t_max=1.0)
    with pytest.raises(ValueError, match=r"lam must not contain NaN"):
        LinearVP().t_of_log_snr(float("nan"))
    with pytest.raises(ValueError, match=r"lam must be at least log_snr\(t_max\)"):
        LinearVP().t_of_log_snr(-50.0)


def test_linear_vp_with_beta_0_zero_inverts_at_both_ends():
    s = LinearVP(beta_0=0.0, beta_1=20.0)
    assert float(s.t_of_log_snr(math.inf)) == 0.0
    t = torch.tensor([0.0, 1e-3, 0.5, 1.0], dtype=torch.float64)
    assert torch.allclose(s.t_of_log_snr(s.log_snr(t)), t, rtol=1e-9, atol=1e-12)
