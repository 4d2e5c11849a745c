"""Tests of diffnb.analytic_dpm: the mixture's posterior of x_0, Analytic-DPM's optimal variance, the
true reverse kernel and respaced DDPM with a chosen variance."""

import math

import pytest
import torch

from diffnb import analytic_dpm as ad
from diffnb import forward, metrics, toy
from diffnb.samplers import ddpm
from diffnb.schedules import DiscreteVP

F64 = torch.float64


@pytest.fixture(scope="module")
def setup():
    return DiscreteVP.linear(T=1000), toy.seed_mixture_1d()


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_posterior_mean_is_x0_hat(setup):
    _, mix = setup
    x = torch.linspace(-1.5, 1.5, 41, dtype=F64)[:, None]
    r, mu, c = ad.x0_posterior(mix, x, 0.8, 0.6)
    assert torch.allclose(r.sum(1), torch.ones(41, dtype=F64))
    assert torch.allclose((r[:, :, None] * mu).sum(1), mix.x0_hat(x, 0.8, 0.6), atol=1e-13)


def test_variance_is_second_order_tweedie(setup):
    """Var[x_0 | x_t] = (sigma^2 / alpha^2) (1 + sigma^2 d/dx score), the score differentiated by
    central differences of the toy's closed-form score."""
    _, mix = setup
    a, s, h = 0.9, math.sqrt(1 - 0.81), 1e-5
    x = torch.linspace(-1.2, 1.2, 37, dtype=F64)[:, None]
    dscore = (mix.score(x + h, a, s) - mix.score(x - h, a, s)) / (2 * h)
    tweedie = s**2 / a**2 * (1 + s**2 * dscore)
    assert torch.allclose(ad.x0_variance(mix, x, a, s), tweedie, atol=1e-8, rtol=1e-6)


def test_expected_variance_single_gaussian_closed_form():
    g = toy.GaussianMixture([1.0], [0.3], [0.5])
    a = torch.tensor([0.99, 0.7, 0.2], dtype=F64)
    s = torch.sqrt(1 - a**2)
    exact = 0.25 * s**2 / (a**2 * 0.25 + s**2)
    assert torch.allclose(ad.expected_x0_variance(g, a, s), exact, rtol=1e-12)


def test_expected_variance_ends(setup):
    _, mix = setup
    var0 = float(mix.weights @ (mix.stds[:, 0] ** 2 + mix.means[:, 0] ** 2) - (mix.weights @ mix.means[:, 0]) ** 2)
    out = ad.expected_x0_variance(mix, torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    assert out[0] == 0 and abs(float(out[1]) - var0) < 1e-15


@pytest.mark.parametrize("t", [1.0, 20.0, 150.0, 400.0])
def test_expected_variance_against_monte_carlo(setup, t):
    sched, mix = setup
    a, s = float(sched.alpha(t)), float(sched.sigma(t))
    x0 = mix.sample(200_000, generator=_gen(1))
    xt = a * x0 + s * torch.randn(x0.shape, generator=_gen(2), dtype=F64)
    v = ad.x0_variance(mix, xt, a, s)[:, 0]
    quad = float(ad.expected_x0_variance(mix, a, s))
    assert abs(float(v.mean()) - quad) < 5 * float(v.std()) / math.sqrt(len(v))
    # Analytic-DPM's estimator from the (exact) eps model agrees within its own standard error.
    gamma, se = ad.expected_x0_variance_from_eps(mix.eps_model(sched), sched, t, x0, generator=_gen(3))
    assert abs(gamma - quad) < 5 * se


def test_jump_variances_one_step_are_ddpms(setup):
    sched, _ = setup
    ts = torch.arange(1000, -1, -1, dtype=F64)
    b, beta_tilde, beta = ad.jump_variances(sched, ts)
    betas = sched.betas.flip(0)
    abar = sched.alpha_bar(ts)
    assert torch.allclose(beta, betas, rtol=1e-9)
    assert torch.allclose(beta_tilde, (1 - abar[1:]) / (1 - abar[:-1]) * betas, rtol=1e-9, atol=1e-300)
    assert torch.allclose(b, abar[1:].sqrt() * betas / (1 - abar[:-1]), rtol=1e-9)


def test_optimal_variance_is_total_variance_on_average(setup):
    """v* is the forward chain's mean squared deviation of x_s from E[x_s | x_t] (Monte Carlo)."""
    sched, mix = setup
    t, s = 300.0, 200.0
    x0 = mix.sample(200_000, generator=_gen(4))
    xs, _ = forward.q_sample(sched, x0, s, generator=_gen(5))
    a_ts = float(sched.alpha(t) / sched.alpha(s))
    xt = a_ts * xs + math.sqrt(1 - a_ts**2) * torch.randn(xs.shape, generator=_gen(6), dtype=F64)
    mean, _ = forward.posterior(sched, xt, mix.x0_hat(xt, float(sched.alpha(t)), float(sched.sigma(t))), t, s)
    d2 = (xs - mean)[:, 0] ** 2
    v_opt = float(ad.reverse_variances(sched, torch.tensor([t, s]), "optimal", mix)[0])
    assert abs(float(d2.mean()) - v_opt) < 5 * float(d2.std()) / math.sqrt(len(d2))
    v_bt = float(ad.reverse_variances(sched, torch.tensor([t, s]), "beta_tilde")[0])
    assert v_opt > v_bt


def test_respaced_beta_tilde_is_ddpm(setup):
    sched, mix = setup
    model = mix.eps_model(sched)
    x_T = torch.randn(300, 1, generator=_gen(7), dtype=F64)
    ts = sched.timesteps(25)
    a = ad.respaced_ddpm(model, x_T, sched, ts, "beta_tilde", generator=_gen(8))
    b = ddpm(model, x_T, sched, ts, generator=_gen(8))
    assert torch.equal(a, b)
    v = ad.reverse_variances(sched, ts, "beta_tilde")
    assert torch.equal(ad.respaced_ddpm(model, x_T, sched, ts, v, generator=_gen(8)), b)


def test_final_noise_only_changes_last_step(setup):
    sched, mix = setup
    model = mix.eps_model(sched)
    x_T = torch.randn(200, 1, generator=_gen(9), dtype=F64)
    ts = sched.timesteps(10)
    v = ad.reverse_variances(sched, ts, "optimal", mix)
    runs = {}
    for final in (False, True):
        seen = runs[final] = []
        ad.respaced_ddpm(model, x_T, sched, ts, v, generator=_gen(10), final_noise=final,
                         callback=lambda info, seen=seen: seen.append(info["x"]))
    assert all(torch.equal(a, b) for a, b in zip(runs[False][:-1], runs[True][:-1]))
    gap = runs[True][-1] - runs[False][-1]  # the last step's noise alone
    assert abs(float(gap.std()) - math.sqrt(float(v[-1]))) < 0.2 * math.sqrt(float(v[-1]))


def test_reverse_kernel_against_bayes_on_a_grid(setup):
    """q(x_s | x_t) is proportional to q_s(x_s) q(x_t | x_s): normalise on a grid and compare."""
    sched, mix = setup
    t, s, x_t = 400.0, 300.0, 0.05
    kernel = ad.reverse_kernel(mix, sched, x_t, t, s)
    grid = torch.linspace(-6, 6, 120_001, dtype=F64)[:, None]
    a_ts = float(sched.alpha(t) / sched.alpha(s))
    log = mix.log_prob(grid, float(sched.alpha(s)), float(sched.sigma(s)))
    log = log - 0.5 * (x_t - a_ts * grid[:, 0]) ** 2 / (1 - a_ts**2)
    dens = torch.exp(log - log.max())
    dens = dens / torch.trapezoid(dens, grid[:, 0])
    assert torch.allclose(kernel.log_prob(grid).exp(), dens, atol=1e-8)
    # Its mean is DDPM's kernel mean; its variance is beta_tilde + b^2 Var[x_0 | x_t].
    mean, _ = ad.ddpm_kernel(mix, sched, x_t, t, s, 0.0)
    kmean = float(kernel.weights @ kernel.means[:, 0])
    kvar = float(kernel.weights @ (kernel.stds[:, 0] ** 2 + kernel.means[:, 0] ** 2)) - kmean**2
    _, b, bt = (float(v) for v in forward.posterior_coefficients(sched, t, s))
    xv = float(ad.x0_variance(mix, torch.tensor([[x_t]], dtype=F64), sched.alpha(t), sched.sigma(t)))
    assert abs(kmean - mean) < 1e-12 and abs(kvar - (bt + b * b * xv)) < 1e-12


def test_kernel_curves_are_normalised_densities_with_the_right_moments(setup):
    """Each curve integrates to 1 on its grid; the two Gaussians have the exact kernel's mean and the
    variances beta_tilde and v*; over one step all three agree (the omitted variance is tiny)."""
    sched, mix = setup
    c = ad.kernel_curves(mix, sched, 0.15, 100.0, 20.0, n=4001)
    g = c["grid"]
    mean = float(torch.trapezoid(g * c["exact"], g))
    bt = float(forward.posterior_coefficients(sched, 100.0, 20.0)[2])
    v_opt = float(ad.reverse_variances(sched, torch.tensor([100.0, 20.0]), "optimal", mix)[0])
    for kind, var in (("beta_tilde", bt), ("optimal", v_opt)):
        d = c[kind]
        assert abs(float(torch.trapezoid(d, g)) - 1) < 1e-4
        m = float(torch.trapezoid(g * d, g))
        assert abs(m - mean) < 1e-4
        # the grid ends 4 sd of the widest curve out: a normal cut there keeps 99.89% of its variance
        assert abs(float(torch.trapezoid((g - m) ** 2 * d, g)) / var - 1) < 2e-3
    assert abs(float(torch.trapezoid(c["exact"], g)) - 1) < 1e-4
    one = ad.kernel_curves(mix, sched, 0.15, 100.0, 99.0)
    peak = float(one["beta_tilde"].max())
    assert float((one["exact"] - one["beta_tilde"]).abs().max()) < 0.01 * peak
    assert float((one["optimal"] - one["beta_tilde"]).abs().max()) < 0.01 * peak
    with pytest.raises(ValueError, match="n"):
        ad.kernel_curves(mix, sched, 0.15, 100.0, 20.0, n=0)


def test_mode_spread_and_floor(setup):
    _, mix = setup
    x = mix.sample(100_000, generator=_gen(11))
    frac, std = ad.mode_spread(x, mix)
    assert torch.allclose(frac, mix.weights, atol=0.01)
    assert torch.allclose(std, mix.stds[:, 0], rtol=0.03)
    inside, between, between_exact = ad.mode_mass(x, mix)
    assert torch.allclose(inside, torch.ones(3, dtype=F64), atol=0.03)
    assert abs(between - between_exact) < 5 * math.sqrt(between_exact / len(x))
    crowded, _, _ = ad.mode_mass(mix.means[:, 0][torch.tensor([0, 1, 2] * 100)], mix)
    assert bool((crowded > 1.2).all())  # 1/3 of the samples at each centre
    w = ad.w1_by_seed(x[:1000], mix, 2)
    assert w.shape == (2,) and w.dtype == F64 and bool((w > 0).all())
    assert torch.equal(w[0:1], ad.w1_by_seed(x[:500], mix, 1))
    assert abs(float(w[1]) - metrics.wasserstein_1d(x[500:1000], mix)) < 1e-6


def test_bad_inputs(setup):
    sched, mix = setup
    with pytest.raises(TypeError, match="mixture"):
        ad.x0_variance(object(), torch.zeros(2, 1), 0.5, 0.5)
    with pytest.raises(ValueError, match="kind"):
        ad.reverse_variances(sched, sched.timesteps(4), "large")
    with pytest.raises(ValueError, match="mixture"):
        ad.reverse_variances(sched, sched.timesteps(4), "optimal")
    with pytest.raises(ValueError, match="decreasing"):
        ad.jump_variances(sched, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="variance"):
        ad.respaced_ddpm(mix.eps_model(sched), torch.zeros(3, 1, dtype=F64), sched, sched.timesteps(4),
                         torch.ones(2, dtype=F64))
    with pytest.raises(ValueError, match="1-D"):
        ad.expected_x0_variance(toy.mixture_2d(), 0.5, 0.5)
    with pytest.raises(ValueError, match="split"):
        ad.w1_by_seed(torch.zeros(5, 1, dtype=F64), mix, 2)


def test_binned_z_detects_a_bias(setup):
    sched, mix = setup
    t = 100.0
    a, s = float(sched.alpha(t)), float(sched.sigma(t))
    x0 = mix.sample(100_000, generator=_gen(12))
    xt = a * x0 + s * torch.randn(x0.shape, generator=_gen(13), dtype=F64)
    edges = torch.linspace(-0.6, 0.7, 14, dtype=F64)
    z = ad.binned_z(xt, x0 - mix.x0_hat(xt, a, s), edges)
    assert len(z) >= 10 and float(z.abs().max()) < 4.5
    assert float(ad.binned_z(xt, x0 - 0.9 * mix.x0_hat(xt, a, s), edges).abs().max()) > 8
