"""Other libraries' timestep spacings: their defining properties and the map onto the book's time."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffnb import timesteps as tsp
from diffnb.schedules import DiscreteVP

F64 = torch.float64


def test_library_index_k_is_book_time_k_plus_one():
    """alphas_cumprod[k] = prod_{i <= k} (1 - beta_i) (0-based betas) equals the book's alpha_bar(k + 1)."""
    s = DiscreteVP.linear()
    alphas_cumprod = torch.cumprod(1 - s.betas, 0)
    k = torch.tensor([0, 1, 99, 500, 999])
    book = tsp.to_book_times(k)
    assert torch.allclose(s.alpha_bar(book[:-1]), alphas_cumprod[k.flip(0)], rtol=1e-12)
    assert float(s.alpha_bar(book[-1])) == 1.0  # the final step lands on alpha_bar = 1


@given(T=st.integers(10, 2000), n=st.integers(1, 60))
def test_diffusers_spacings_have_their_defining_shapes(T, n):
    n = min(n, T)
    lin = tsp.diffusers_timesteps(T, n, "linspace")
    lead = tsp.diffusers_timesteps(T, n, "leading")
    if len(np.arange(T, 0, -T / n)) != n:  # the trailing formula overshoots in floating point
        with pytest.raises(ValueError, match=r"the trailing formula .* gives \d+ indices ending at -1"):
            tsp.diffusers_timesteps(T, n, "trailing")
        trail = lead
    else:
        trail = tsp.diffusers_timesteps(T, n, "trailing")
        assert int(trail[0]) == T - 1  # ends at the last training step
    for k in (lin, lead, trail):
        assert k.dtype == torch.int64 and k.numel() == n
        assert bool((k[1:] <= k[:-1]).all()) and int(k.min()) >= 0 and int(k.max()) <= T - 1
    assert int(lin[-1]) == 0 and (n == 1 or int(lin[0]) == T - 1)  # both ends of [0, T - 1]
    assert int(lead[-1]) == 0 and bool(((lead[:-1] - lead[1:]) == T // n).all())  # starts at 0, fixed gap
    if int(lead[0]) < T - 1:
        assert torch.equal(tsp.diffusers_timesteps(T, n, "leading", steps_offset=1), lead + 1)


@given(T=st.integers(10, 1200), n=st.integers(1, 50))
def test_trailing_is_the_books_uniform_grid_when_n_divides_T(T, n):
    T = T - T % n if T >= n else n
    grid = tsp.to_book_times(tsp.diffusers_timesteps(T, n, "trailing"))
    expected = torch.linspace(T, 0, n + 1, dtype=F64)
    assert torch.allclose(grid, expected, rtol=0, atol=1e-9)


def test_step_targets_follow_the_list_except_for_linspace():
    """DDIMScheduler.step lands on k - T // n; that is the next listed index for leading (and trailing
    when n divides T) but not for linspace."""
    for spacing in ("leading", "trailing"):
        k, target = tsp.diffusers_timesteps(1000, 10, spacing), tsp.diffusers_step_targets(1000, 10, spacing)
        assert torch.equal(target[:-1], k[1:]) and int(target[-1]) < 0
    k, target = tsp.diffusers_timesteps(1000, 10, "linspace"), tsp.diffusers_step_targets(1000, 10, "linspace")
    assert not torch.equal(target[:-1], k[1:])
    k, target = tsp.diffusers_timesteps(1000, 30, "trailing"), tsp.diffusers_step_targets(1000, 30, "trailing")
    assert not torch.equal(target[:-1], k[1:])


@given(T=st.integers(10, 2000), n=st.integers(1, 60))
def test_ddim_repository_skip_types(T, n):
    n = min(n, T)
    uni = tsp.ddim_repo_timesteps(T, n, "uniform")
    assert int(uni[0]) == 0 and bool(((uni[1:] - uni[:-1]) == T // n).all()) and int(uni[-1]) <= T - 1
    assert uni.numel() >= n
    quad = tsp.ddim_repo_timesteps(T, n, "quad")
    assert quad.numel() == n and int(quad[0]) == 0 and bool((quad[1:] >= quad[:-1]).all())
    assert int(quad[-1]) <= int(0.8 * T) and (n == 1 or int(quad[-1]) >= int(0.8 * T) - 1)
    if T % n == 0:  # n steps of T // n: the leading spacing, walked upwards
        assert uni.numel() == n and torch.equal(uni, tsp.diffusers_timesteps(T, n, "leading").flip(0))
    else:  # T // n < T / n: range(0, T, T // n) needs more than n entries to reach T - 1
        assert uni.numel() > n


def test_repeated_indices_are_dropped_and_the_grid_is_strictly_decreasing():
    quad = tsp.ddim_repo_timesteps(1000, 50, "quad")
    assert quad.unique().numel() < quad.numel()  # the repository repeats small indices
    grid = tsp.to_book_times(quad)
    assert bool((grid[1:] < grid[:-1]).all()) and grid.numel() == quad.unique().numel() + 1
    assert torch.equal(tsp.to_book_times(torch.tensor([5, 0]), final=1.0), torch.tensor([6.0, 1.0], dtype=F64))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"n must be at most T=100"):
        tsp.diffusers_timesteps(100, 101)
    with pytest.raises(ValueError, match=r"spacing must be one of"):
        tsp.diffusers_timesteps(1000, 10, "uniform")
    with pytest.raises(ValueError, match=r"skip_type must be one of"):
        tsp.ddim_repo_timesteps(1000, 10, "leading")
    with pytest.raises(TypeError, match=r"n must be an int"):
        tsp.diffusers_timesteps(1000, 10.0)
    with pytest.raises(ValueError, match=r"steps_offset must be a non-negative int"):
        tsp.diffusers_timesteps(1000, 10, "leading", steps_offset=-1)
    with pytest.raises(ValueError, match=r"steps_offset=200 pushes the first index past T - 1"):
        tsp.diffusers_timesteps(1000, 10, "leading", steps_offset=200)
    with pytest.raises(ValueError, match=r"gives 62 indices ending at -1 for T=1000, n=61"):
        tsp.diffusers_timesteps(1000, 61, "trailing")
    with pytest.raises(TypeError, match=r"indices must be an integer torch.Tensor"):
        tsp.to_book_times(torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"indices must be non-negative"):
        tsp.to_book_times(torch.tensor([3, -1]))
    with pytest.raises(ValueError, match=r"final=5 must not be later than the last listed time 1"):
        tsp.to_book_times(torch.tensor([3, 0]), final=5.0)
