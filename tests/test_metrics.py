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


def test_ks_distance_is_scipy_kstest():
    from scipy import stats

    x = torch.randn(500, generator=torch.Generator().manual_seed(13), dtype=F64) * 0.7 + 0.2
    mix = toy.GaussianMixture([1.0], [0.2], [0.7])
    ours = metrics.ks_distance(x, mix)
    assert math.isclose(ours, float(stats.kstest(x.numpy(), stats.norm(0.2, 0.7).cdf).statistic), rel_tol=1e-12)
    assert metrics.ks_distance(x[:, None], mix) == ours
    with pytest.raises(ValueError, match="mixture must be 1-D, got dim=2"):
        metrics.ks_distance(x, toy.mixture_2d())
    with pytest.raises(ValueError, match=r"samples must have shape \(n,\) or \(n, 1\)"):
        metrics.ks_distance(torch.zeros(5, 2, dtype=F64), mix)
    with pytest.raises(TypeError, match="mixture must be a toy.GaussianMixture"):
        metrics.ks_distance(x, "mixture")


def test_w1_floor_is_the_spread_of_exact_samples_over_seeds():
    mix = toy.seed_mixture_1d()
    floor = metrics.w1_floor(mix, 1000, seeds=range(6))
    by_hand = [metrics.wasserstein_1d(mix.sample(1000, generator=torch.Generator().manual_seed(s)), mix)
               for s in range(6)]
    assert floor.values == tuple(by_hand)
    v = torch.tensor(by_hand, dtype=F64)
    assert math.isclose(floor.mean, float(v.mean()), rel_tol=1e-14)
    assert math.isclose(floor.std, float(v.std()), rel_tol=1e-12)
    assert floor.band == (min(by_hand), max(by_hand)) and floor.band[0] <= floor.mean <= floor.band[1]
    coarse = metrics.w1_floor(mix, 1000, seeds=[0, 1], n_grid=20_001)
    assert coarse.values[1] == metrics.wasserstein_1d(mix.sample(1000, generator=torch.Generator().manual_seed(1)),
                                                      mix, n_grid=20_001)
    # W1 of n exact samples shrinks like 1/sqrt(n): 4x the samples, about half the floor.
    ratio = floor.mean / metrics.w1_floor(mix, 4000, seeds=range(6)).mean
    assert 1.4 < ratio < 2.9


def test_w1_floor_uses_sliced_w1_in_more_dimensions():
    mix = toy.mixture_2d()
    floor = metrics.w1_floor(mix, 500, seeds=[3, 4], n_directions=8, direction_seed=2)
    x = mix.sample(500, generator=torch.Generator().manual_seed(4))
    assert floor.values[1] == metrics.sliced_wasserstein(x, mix, n_directions=8, seed=2)
    with pytest.raises(ValueError, match=r"seeds must hold at least 2 ints"):
        metrics.w1_floor(mix, 10, seeds=[1])
    with pytest.raises(ValueError, match=r"n must be at least 1"):
        metrics.w1_floor(mix, 0)


def exact_moments(mu, cov, n, seed):
    """n points whose sample mean and sample covariance (ddof = 1) are exactly mu and cov."""
    d = mu.numel()
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)
    z = z - z.mean(0)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(z.T))).T  # sample covariance I
    return mu + z @ torch.linalg.cholesky(cov).T


def test_frechet_of_1d_and_commuting_gaussians_is_the_closed_form():
    # 1-D: (mu_a - mu_b)^2 + (s_a - s_b)^2
    assert math.isclose(metrics.frechet_gaussian([0.3], [[4.0]], [-0.2], [[0.25]]), 0.25 + 1.5**2, rel_tol=1e-14)
    # Diagonal covariances: sum_i (sqrt(a_i) - sqrt(b_i))^2, whatever common rotation is applied.
    a, b = torch.tensor([1.0, 4.0, 9.0], dtype=F64), torch.tensor([4.0, 1.0, 0.25], dtype=F64)
    mu_a, mu_b = torch.tensor([1.0, 0.0, 2.0], dtype=F64), torch.zeros(3, dtype=F64)
    expected = float(((mu_a - mu_b) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum())
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=F64))
    got = metrics.frechet_gaussian(q @ mu_a, q @ torch.diag(a) @ q.T, q @ mu_b, q @ torch.diag(b) @ q.T)
    assert math.isclose(got, expected, rel_tol=1e-12)


def test_frechet_of_non_commuting_2d_gaussians():
    """For 2x2 matrices, tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)); with M = C_a^1/2 C_b C_a^1/2 this is
    tr (C_a C_b)^1/2 = sqrt(tr(C_a C_b) + 2 sqrt(det C_a det C_b))."""
    ca = torch.tensor([[2.0, 0.7], [0.7, 1.0]], dtype=F64)
    cb = torch.tensor([[0.5, -0.3], [-0.3, 1.5]], dtype=F64)
    mu_a, mu_b = torch.tensor([0.1, -0.4], dtype=F64), torch.tensor([1.0, 0.5], dtype=F64)
    cross = math.sqrt(float(torch.trace(ca @ cb)) + 2 * math.sqrt(float(torch.det(ca) * torch.det(cb))))
    expected = float(((mu_a - mu_b) ** 2).sum() + torch.trace(ca) + torch.trace(cb)) - 2 * cross
    assert math.isclose(metrics.frechet_gaussian(mu_a, ca, mu_b, cb), expected, rel_tol=1e-12)
    # From features with exactly these sample moments.
    fa, fb = exact_moments(mu_a, ca, 300, 1), exact_moments(mu_b, cb, 200, 2)
    assert math.isclose(metrics.frechet_distance(fa, fb), expected, rel_tol=1e-10)
    assert abs(metrics.frechet_distance(fa, fa)) < 1e-12
    assert math.isclose(metrics.frechet_distance(fa, fb), metrics.frechet_distance(fb, fa), rel_tol=1e-10)


def test_frechet_matches_scipy_sqrtm_in_higher_dimension():
    from scipy import linalg

    g = torch.Generator().manual_seed(3)
    A, B = torch.randn(6, 6, generator=g, dtype=F64), torch.randn(6, 6, generator=g, dtype=F64)
    ca, cb = A @ A.T + 0.1 * torch.eye(6, dtype=F64), B @ B.T + 0.1 * torch.eye(6, dtype=F64)
    mu_a, mu_b = torch.randn(6, generator=g, dtype=F64), torch.randn(6, generator=g, dtype=F64)
    root = linalg.sqrtm(ca.numpy() @ cb.numpy())
    expected = float(((mu_a - mu_b) ** 2).sum() + torch.trace(ca) + torch.trace(cb)) - 2 * float(root.real.trace())
    assert math.isclose(metrics.frechet_gaussian(mu_a, ca, mu_b, cb), expected, rel_tol=1e-9)


def test_frechet_bad_input():
    x = torch.zeros(5, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"feats_a and feats_b must have the same dim"):
        metrics.frechet_distance(x, torch.zeros(5, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"feats_b must have shape \(n, dim\) with n >= 2"):
        metrics.frechet_distance(x, torch.zeros(1, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"feats_a must be finite"):
        metrics.frechet_distance(torch.full((3, 2), float("nan"), dtype=F64), x)
    with pytest.raises(ValueError, match=r"cov_b must have shape \(2, 2\)"):
        metrics.frechet_gaussian([0.0, 0.0], torch.eye(2), [0.0, 0.0], torch.eye(3))
    with pytest.raises(ValueError, match=r"cov_a must be symmetric"):
        metrics.frechet_gaussian([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]], [0.0, 0.0], torch.eye(2))


def test_frechet_halves_floor_and_score():
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(400, 3, generator=g, dtype=torch.float64)
    halves = metrics.FrechetHalves(feats, n_splits=5)
    floor = halves.floor(100)
    assert len(floor.values) == 5 and floor.band[0] <= floor.mean <= floor.band[1]
    # the score of A_0's first 100 rows against the B_k averages the per-split distances
    f = feats[halves.perms[0][:100]]
    by_split = [metrics.frechet_distance(f, feats[p[200:]]) for p in halves.perms]
    assert math.isclose(halves.score(f), sum(by_split) / 5, rel_tol=1e-9)
    assert math.isclose(floor.values[0], by_split[0], rel_tol=1e-9)
    shifted = halves.score(f + 1.0)  # a mean shift of 1 in 3 dimensions adds about 3
    assert 2.5 < shifted - halves.score(f) < 3.5
    with pytest.raises(ValueError, match="at most half"):
        halves.floor(300)


def test_frechet_halves_stratified_floor_takes_equal_classes_from_the_first_half():
    feats = torch.arange(40, dtype=torch.float64)[:, None].repeat(1, 2) + torch.randn(40, 2, dtype=torch.float64,
                                                                                       generator=torch.Generator().manual_seed(4))
    labels = torch.arange(40) % 4
    halves = metrics.FrechetHalves(feats, n_splits=3)
    floor = halves.floor(8, labels=labels)
    p = halves.perms[0][:20]
    a = torch.cat([p[labels[p] == c][:2] for c in range(4)])
    assert math.isclose(floor.values[0], metrics.frechet_distance(feats[a], feats[halves.perms[0][20:]]), rel_tol=1e-9)
    with pytest.raises(ValueError, match="multiple of the number of classes"):
        halves.floor(9, labels=labels)


@pytest.mark.parametrize("args, error, message", [
    ((None, 0.1, (0.0, 1.0), (0.0, 1.0)), TypeError, r"mean must be a number, got NoneType"),
    ((float("nan"), 0.1, (0.0, 1.0), (0.0, 1.0)), ValueError, r"mean must be finite"),
    ((0.5, -0.1, (0.0, 1.0), (0.0, 1.0)), ValueError, r"std must be >= 0"),
    ((0.5, 0.1, [0.0, 1.0], (0.0, 1.0)), TypeError, r"band must be a \(min, max\) tuple"),
    ((0.5, 0.1, (1.0, 0.0), (0.0, 1.0)), ValueError, r"band must be \(min, max\) with min <= max"),
    ((0.5, 0.1, (0.0, 1.0), [0.0, 1.0]), TypeError, r"values must be a tuple of numbers, got list"),
    ((0.5, 0.1, (0.0, 1.0), (0.5,)), ValueError, r"values must hold at least 2 values"),
    ((0.5, 0.1, (0.0, 1.0), (0.0, "x")), TypeError, r"values\[1\] must be a number, got str"),
    ((0.5, 0.1, (0.0, 1.0), (0.0, float("inf"))), ValueError, r"values\[1\] must be finite"),
])
def test_floor_checks_its_fields(args, error, message):
    with pytest.raises(error, match=message):
        metrics.Floor(*args)


def test_floor_is_still_a_named_tuple():
    f = metrics.Floor(0.5, 0.1, (0.4, 0.6), (0.4, 0.6))
    assert f._fields == ("mean", "std", "band", "values") and f.mean == 0.5 and tuple(f)[2] == (0.4, 0.6)
    assert f._replace(mean=0.45).mean == 0.45
