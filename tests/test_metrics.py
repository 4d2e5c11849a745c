import math

import pytest
import torch

from diffnb import metrics, toy

F64 = torch.float64


def test_wasserstein_of_a_shift_is_the_shift():
    """W1 between a distribution and its translate by c is |c|."""
    mix = toy.GaussianMixture([1.0], [0.0], [1.0])
    x = mix.sample(200_000, generator=torch.Generator().manual_seed(0))
    near = metrics.wasserstein_1d(x, mix)
    shifted = metrics.wasserstein_1d(x + 0.5, mix)
    assert near < 0.01
    assert abs(shifted - 0.5) < near + 1e-3


def test_wasserstein_sample_version_matches_exact_version():
    mix = toy.seed_mixture_1d()
    a = mix.sample(100_000, generator=torch.Generator().manual_seed(1))
    b = mix.sample(100_000, generator=torch.Generator().manual_seed(2)) + 0.1
    assert abs(metrics.wasserstein_1d_samples(a, b) - 0.1) < 0.01
    assert abs(metrics.wasserstein_1d(b, mix) - 0.1) < 0.01


def test_sliced_wasserstein_of_a_shift():
    """Sliced W1 of a shift by v is the mean over directions of |<u, v>|, about 2|v|/pi in 2-D."""
    mix = toy.mixture_2d()
    x = mix.sample(50_000, generator=torch.Generator().manual_seed(3))
    v = torch.tensor([0.3, 0.0], dtype=F64)
    base = metrics.sliced_wasserstein(x, mix, n_directions=64)
    shifted = metrics.sliced_wasserstein(x + v, mix, n_directions=64)
    assert base < 0.02
    assert abs(shifted - 0.3 * 2 / math.pi) < 0.02


def test_fit_order_recovers_a_power_law():
    n = torch.tensor([10.0, 20, 40, 80], dtype=F64)
    assert abs(metrics.fit_order(n, 3.0 * n**-2.0) - 2.0) < 1e-12
    assert abs(metrics.fit_order(n, 0.5 * n**-1.0) - 1.0) < 1e-12


def test_rms_error():
    a = torch.zeros(4, 2, dtype=F64)
    b = torch.tensor([[3.0, 4.0]] * 4, dtype=F64)
    assert metrics.rms_error(a, b) == 5.0


def test_bad_input():
    mix = toy.seed_mixture_1d()
    with pytest.raises(ValueError, match=r"samples must have shape \(n,\) or \(n, 1\)"):
        metrics.wasserstein_1d(torch.zeros(3, 2, dtype=F64), mix)
    with pytest.raises(ValueError, match=r"samples must be finite"):
        metrics.wasserstein_1d(torch.tensor([float("nan")], dtype=F64), mix)
    with pytest.raises(ValueError, match=r"mixture must be 1-D"):
        metrics.wasserstein_1d(torch.zeros(3, dtype=F64), toy.mixture_2d())
    with pytest.raises(ValueError, match=r"a and b must have the same number of samples"):
        metrics.wasserstein_1d_samples(torch.zeros(3, dtype=F64), torch.zeros(4, dtype=F64))
    with pytest.raises(ValueError, match=r"samples must have shape \(n, 2\)"):
        metrics.sliced_wasserstein(torch.zeros(3, 3, dtype=F64), toy.mixture_2d())
    with pytest.raises(ValueError, match=r"steps and errors must be positive and finite"):
        metrics.fit_order([1.0, 2.0], [1.0, 0.0])
    with pytest.raises(ValueError, match=r"reference must have x's shape"):
        metrics.rms_error(torch.zeros(3, 1, dtype=F64), torch.zeros(2, 1, dtype=F64))


def test_sliced_wasserstein_is_the_mean_of_projected_1d_distances():
    mix = toy.mixture_2d()
    x = mix.sample(20_000, generator=torch.Generator().manual_seed(6)) * 1.1
    g = torch.Generator().manual_seed(0)
    dirs = torch.randn(4, 2, generator=g, dtype=F64)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    loop = sum(metrics.wasserstein_1d(x @ u, mix.project(u), n_grid=20_001) for u in dirs) / 4
    assert abs(metrics.sliced_wasserstein(x, mix, n_directions=4, seed=0) - loop) < 1e-6
