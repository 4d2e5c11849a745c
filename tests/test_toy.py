import math

import pytest
import torch

from diffnb import toy
from diffnb.schedules import DiscreteVP, LinearVP

F64 = torch.float64


def test_seed_mixture_is_the_source_notes_data():
    m = toy.seed_mixture_1d()
    assert m.weights.tolist() == [0.3, 0.4, 0.3]
    assert m.means[:, 0].tolist() == [0.5, 0.1, -0.4]
    assert m.stds[:, 0].tolist() == [0.01, 0.03, 0.01]


@pytest.mark.parametrize("mix", [toy.seed_mixture_1d(), toy.mixture_2d()])
def test_score_is_the_gradient_of_log_prob(mix):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, mix.dim, generator=g, dtype=F64).requires_grad_(True)
    alpha, sigma = 0.8, 0.6
    (grad,) = torch.autograd.grad(mix.log_prob(x, alpha, sigma).sum(), x)
    assert torch.allclose(mix.score(x.detach(), alpha, sigma), grad, rtol=1e-10, atol=1e-10)


def test_noised_density_integrates_to_one_and_matches_monte_carlo():
    mix, s = toy.seed_mixture_1d(), DiscreteVP.linear()
    t = 100.0
    a, sg = s.alpha(t), s.sigma(t)
    grid = torch.linspace(-3, 3, 200_001, dtype=F64)[:, None]
    p = mix.log_prob(grid, a, sg).exp()
    assert abs(float(torch.trapezoid(p[:, 0] if p.ndim == 2 else p, grid[:, 0])) - 1) < 1e-8
    g = torch.Generator().manual_seed(1)
    x0 = mix.sample(400_000, generator=g)
    xt = a * x0 + sg * torch.randn(x0.shape, generator=g, dtype=F64)
    # The mean and the variance of the noised mixture, in closed form.
    m = float((mix.weights * mix.means[:, 0]).sum())
    v = float((mix.weights * (mix.stds[:, 0] ** 2 + mix.means[:, 0] ** 2)).sum()) - m**2
    assert abs(float(xt.mean()) - float(a) * m) < 5 * math.sqrt(float(a**2 * v + sg**2) / 4e5)
    assert abs(float(xt.var()) / float(a**2 * v + sg**2) - 1) < 0.01


def test_exact_eps_is_the_conditional_expectation_of_the_noise():
    """E[eps | x_t] estimated by binning Monte Carlo pairs (x_t, eps) matches mixture.eps."""
    mix, s = toy.seed_mixture_1d(), DiscreteVP.linear()
    t = 300.0
    a, sg = s.alpha(t), s.sigma(t)
    g = torch.Generator().manual_seed(2)
    x0 = mix.sample(1_000_000, generator=g)
    eps = torch.randn(x0.shape, generator=g, dtype=F64)
    xt = a * x0 + sg * eps
    edges = torch.linspace(-1.0, 1.0, 21, dtype=F64)
    idx = torch.bucketize(xt[:, 0], edges)
    for b in range(1, 21):
        sel = idx == b
        if int(sel.sum()) < 20_000:
            continue
        centre = xt[sel].mean(0, keepdim=True)
        binned = eps[sel].mean()
        assert abs(float(binned) - float(mix.eps(centre, a, sg))) < 0.02


def test_eps_model_follows_the_sampler_contract():
    mix, s = toy.mixture_2d(), LinearVP()
    model = mix.eps_model(s)
    x = torch.randn(7, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    t = torch.full((7,), 0.5, dtype=F64)
    out = model(x, t)
    assert out.shape == x.shape and out.dtype == F64
    assert torch.allclose(out, -s.sigma(0.5) * mix.score(x, s.alpha(0.5), s.sigma(0.5)))


def test_projection_of_a_mixture_is_exact():
    mix = toy.mixture_2d()
    u = torch.tensor([0.6, 0.8], dtype=F64)
    proj = mix.project(u)
    x = mix.sample(300_000, generator=torch.Generator().manual_seed(4))
    y = x @ u
    assert abs(float(y.var()) - float(proj.sample(300_000, torch.Generator().manual_seed(5)).var())) < 0.01


def test_mlp_shapes_seed_and_dtype():
    a, b = toy.EpsMLP(dim=2, t_scale=1000.0, seed=3), toy.EpsMLP(dim=2, t_scale=1000.0, seed=3)
    x, t = torch.zeros(5, 2, dtype=F64), torch.full((5,), 10.0, dtype=F64)
    assert torch.equal(a(x, t), b(x, t)) and a(x, t).shape == (5, 2) and a(x, t).dtype == F64


def test_training_reduces_the_loss_towards_the_exact_eps():
    mix, s = toy.seed_mixture_1d(), DiscreteVP.linear()
    net = toy.EpsMLP(dim=1, t_scale=s.t_max, hidden=64, depth=2, seed=0)
    losses = toy.train_denoiser(net, mix, s, steps=300, batch_size=512, seed=0, progress=False)
    assert len(losses) == 300
    assert sum(losses[-50:]) / 50 < 0.8 * sum(losses[:50]) / 50


def test_bad_input():
    with pytest.raises(ValueError, match=r"weights must be positive and sum to 1"):
        toy.GaussianMixture([0.5, 0.6], [0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"stds must be positive"):
        toy.GaussianMixture([0.5, 0.5], [0.0, 1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match=r"means must have shape \(2,\) or \(2, dim\)"):
        toy.GaussianMixture([0.5, 0.5], [0.0, 1.0, 2.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\)"):
        toy.mixture_2d().score(torch.zeros(3, 1, dtype=F64), 1.0, 0.5)
    with pytest.raises(ValueError, match=r"x must be finite"):
        toy.seed_mixture_1d().score(torch.tensor([[float("nan")]], dtype=F64), 1.0, 0.5)
    with pytest.raises(ValueError, match=r"cdf_1d needs a 1-D mixture"):
        toy.mixture_2d().cdf_1d(torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match=r"t_scale must be positive"):
        toy.EpsMLP(t_scale=0.0)
    with pytest.raises(ValueError, match=r"n must be at least 1"):
        toy.seed_mixture_1d().sample(0)
