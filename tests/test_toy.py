import math

import pytest
import torch

from diffnb import toy
from diffnb.schedules import VE, DiscreteVP, FlowMatching, LinearVP

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


# --- the fast exact model against the direct formula ----------------------------------------------------
def direct(mix, x, alpha, sigma):
    """(score, eps, x0_hat) by the textbook formula on (n, K, dim) tensors, one (alpha, sigma) per row."""
    a = torch.as_tensor(alpha, dtype=F64).reshape(-1, 1, 1)
    s = torch.as_tensor(sigma, dtype=F64).reshape(-1, 1, 1)
    v = a**2 * mix.stds**2 + s**2
    diff = x[:, None, :] - a * mix.means
    log_comp = torch.log(mix.weights) - 0.5 * (diff**2 / v + torch.log(2 * math.pi * v)).sum(-1)
    r = torch.softmax(log_comp, -1)[:, :, None]
    score = -(r * diff / v).sum(1)
    x0 = (r * (mix.means + a * mix.stds**2 / v * (x[:, None, :] - a * mix.means))).sum(1)
    return score, -s[:, 0] * score, x0


MIXTURES = [toy.seed_mixture_1d(), toy.mixture_2d(), toy.labelled_mixture_2d(), toy.mixture_nd()]


@pytest.mark.parametrize("mix", MIXTURES, ids=repr)
@pytest.mark.parametrize("alpha, sigma", [(1.0, 1e-4), (0.8, 0.6), (0.05, 0.999), (1.0, 80.0), (0.0, 1.0)])
def test_score_eps_x0_hat_match_the_direct_formula(mix, alpha, sigma):
    g = torch.Generator().manual_seed(10)
    x = alpha * mix.sample(64, generator=g) + sigma * torch.randn(64, mix.dim, generator=g, dtype=F64)
    score, eps, x0 = direct(mix, x, alpha, sigma)
    scale = float(score.abs().max())
    assert torch.allclose(mix.score(x, alpha, sigma), score, rtol=1e-9, atol=1e-10 * scale)
    assert torch.allclose(mix.eps(x, alpha, sigma), eps, rtol=1e-9, atol=1e-10 * sigma * scale)
    assert torch.allclose(mix.x0_hat(x, alpha, sigma), x0, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("mix", MIXTURES, ids=repr)
def test_per_sample_scales_match_one_scale_at_a_time(mix):
    g = torch.Generator().manual_seed(11)
    alpha = torch.rand(20, generator=g, dtype=F64)
    sigma = torch.sqrt(1 - alpha**2)
    x = mix.sample(20, generator=g) * alpha[:, None] + sigma[:, None] * torch.randn(20, mix.dim, generator=g, dtype=F64)
    for name in ("score", "eps", "x0_hat"):
        batch = getattr(mix, name)(x, alpha, sigma)
        rows = torch.cat([getattr(mix, name)(x[i:i + 1], float(alpha[i]), float(sigma[i])) for i in range(20)])
        assert torch.allclose(batch, rows, rtol=1e-10, atol=1e-12), name
    lp = torch.cat([mix.log_prob(x[i:i + 1], float(alpha[i]), float(sigma[i])) for i in range(20)])
    assert torch.allclose(mix.log_prob(x, alpha, sigma), lp, rtol=1e-12, atol=1e-12)
    assert torch.allclose(mix.score(x, alpha[:, None], sigma[:, None]), mix.score(x, alpha, sigma))


@pytest.mark.parametrize("mix", MIXTURES, ids=repr)
def test_x0_hat_is_tweedie_from_autograd_of_log_prob(mix):
    """E[x0 | x_t] = (x + sigma^2 grad log q_t(x)) / alpha, with the gradient taken by autograd."""
    g = torch.Generator().manual_seed(12)
    alpha, sigma = 0.7, 0.5
    x = torch.randn(16, mix.dim, generator=g, dtype=F64).requires_grad_(True)
    (grad,) = torch.autograd.grad(mix.log_prob(x, alpha, sigma).sum(), x)
    x = x.detach()
    assert torch.allclose(mix.x0_hat(x, alpha, sigma), (x + sigma**2 * grad) / alpha, rtol=1e-10, atol=1e-10)
    assert torch.allclose(alpha * mix.x0_hat(x, alpha, sigma) + sigma * mix.eps(x, alpha, sigma), x, atol=1e-12)


def test_clean_and_pure_noise_ends():
    """At sigma = 0, E[eps | x_t] = 0 and E[x0 | x_t] = x / alpha; at alpha = 0 x0_hat is the data mean."""
    mix = toy.seed_mixture_1d()
    x = torch.linspace(-1, 1, 9, dtype=F64)[:, None]
    assert torch.equal(mix.eps(x, 0.9, 0.0).abs(), torch.zeros_like(x))
    assert torch.allclose(mix.x0_hat(x, 0.9, 0.0), x / 0.9, rtol=1e-14)
    assert torch.allclose(mix.x0_hat(x, 0.0, 1.0), mix.mean().expand_as(x), rtol=1e-14)
    assert torch.allclose(mix.eps(x, 0.0, 1.0), x, rtol=1e-14)  # pure noise: eps = x_t


def test_fast_path_keeps_float64_accuracy_near_a_narrow_mode():
    """The expanded quadratic form loses nothing visible where the old direct formula was exact."""
    mix = toy.seed_mixture_1d()
    x = torch.tensor([[0.5], [0.5 + 1e-9], [0.51], [-0.4], [3.0]], dtype=F64)
    for sigma in (1e-6, 1e-3):
        score, eps, _ = direct(mix, x, 1.0, sigma)
        assert torch.allclose(mix.score(x, 1.0, sigma), score, rtol=1e-9, atol=1e-6)
        assert torch.allclose(mix.eps(x, 1.0, sigma), eps, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("mix", [toy.mixture_2d(), toy.labelled_mixture_2d()], ids=repr)
def test_large_batches_take_the_in_place_softmax_and_agree_with_small_ones(mix):
    x = torch.randn(12_000, 2, generator=torch.Generator().manual_seed(15), dtype=F64)  # 12,000 K > 65,536
    for name in ("eps", "score", "x0_hat"):
        whole = getattr(mix, name)(x, 0.8, 0.6)
        chunks = torch.cat([getattr(mix, name)(part, 0.8, 0.6) for part in x.split(1000)])
        assert torch.allclose(whole, chunks, rtol=1e-13, atol=1e-14), name
    if mix.labels is not None:
        whole = mix.class_log_prob_grad(x, 0.8, 0.6, 1)
        chunks = torch.cat([mix.class_log_prob_grad(part, 0.8, 0.6, 1) for part in x.split(1000)])
        assert torch.allclose(whole, chunks, rtol=1e-12, atol=1e-13)


def test_autograd_flows_through_the_exact_model():
    """The divergence of eps (exact log-likelihoods need it) by autograd, for a large batch."""
    mix = toy.labelled_mixture_2d()
    x = torch.randn(12_000, 2, generator=torch.Generator().manual_seed(16), dtype=F64).requires_grad_(True)
    (grad,) = torch.autograd.grad(mix.eps(x, 0.8, 0.6)[:, 0].sum(), x)
    h = 1e-6
    e = torch.tensor([h, 0.0], dtype=F64)
    fd = (mix.eps(x.detach()[:50] + e, 0.8, 0.6) - mix.eps(x.detach()[:50] - e, 0.8, 0.6))[:, 0] / (2 * h)
    assert torch.allclose(grad[:50, 0], fd, rtol=1e-5, atol=1e-6)


def test_cache_of_constants_stays_bounded_and_correct():
    mix = toy.seed_mixture_1d()
    x = torch.linspace(-1, 1, 5, dtype=F64)[:, None]
    sigmas = torch.linspace(0.01, 0.99, toy._CACHE_SIZE + 50, dtype=F64)
    for s in sigmas:
        mix.eps(x, float(torch.sqrt(1 - s**2)), float(s))
    assert len(mix._cache) <= toy._CACHE_SIZE
    s = float(sigmas[0])  # evicted long ago: recomputed, same value as the direct formula
    assert torch.allclose(mix.eps(x, math.sqrt(1 - s * s), s), direct(mix, x, math.sqrt(1 - s * s), s)[1])


def test_output_follows_the_input_dtype():
    mix = toy.mixture_2d()
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(13), dtype=F64)
    out32 = mix.eps(x.float(), 0.8, 0.6)
    assert out32.dtype == torch.float32
    assert torch.allclose(out32.double(), mix.eps(x.float().double(), 0.8, 0.6), rtol=1e-6)


@pytest.mark.parametrize("schedule", [LinearVP(), DiscreteVP.cosine(), VE(), FlowMatching()], ids=repr)
def test_eps_model_on_every_gaussian_path(schedule):
    mix = toy.mixture_nd(dim=4, n_classes=2)
    model = mix.eps_model(schedule)
    g = torch.Generator().manual_seed(14)
    x = torch.randn(6, 4, generator=g, dtype=F64)
    t = schedule.t_min + (schedule.t_max - schedule.t_min) * torch.rand(6, generator=g, dtype=F64)
    out = model(x, t)  # one time per sample: the per-sample path
    for i in range(6):
        a, s = schedule.alpha(t[i]), schedule.sigma(t[i])
        assert torch.allclose(out[i], -s * mix.score(x[i:i + 1], a, s)[0], rtol=1e-10, atol=1e-12)
    same = model(x, t[:1].expand(6))  # one time for the batch: the cached path
    assert torch.allclose(same, mix.eps(x, schedule.alpha(t[0]), schedule.sigma(t[0])), rtol=0, atol=0)


def test_eps_model_takes_any_object_with_alpha_and_sigma():
    class Path:
        def alpha(self, t):
            return torch.cos(t)

        def sigma(self, t):
            return torch.sin(t)

    mix = toy.seed_mixture_1d()
    x = torch.linspace(-1, 1, 5, dtype=F64)[:, None]
    t = torch.full((5,), 0.4, dtype=F64)
    assert torch.allclose(mix.eps_model(Path())(x, t), mix.eps(x, math.cos(0.4), math.sin(0.4)))
    with pytest.raises(TypeError, match=r"schedule must have an alpha\(t\) method"):
        mix.eps_model(object())
    with pytest.raises(TypeError, match=r"t must be a torch.Tensor"):
        mix.eps_model(Path())(x, 0.4)
    with pytest.raises(ValueError, match=r"t must have shape \(5,\)"):
        mix.eps_model(Path())(x, torch.full((3,), 0.4, dtype=F64))


def test_bad_scales_are_named():
    mix, x = toy.mixture_2d(), torch.zeros(3, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"sigma must be finite and >= 0"):
        mix.eps(x, 1.0, -0.1)
    with pytest.raises(ValueError, match=r"alpha must be finite and >= 0"):
        mix.eps(x, float("nan"), 0.5)
    with pytest.raises(ValueError, match=r"alpha and sigma must not both be 0"):
        mix.score(x, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"sigma must be >= 0"):
        mix.eps(x, torch.ones(3, dtype=F64), -torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match=r"alpha must be one number or one value per sample \(3,\)"):
        mix.eps(x, torch.ones(2, dtype=F64), 0.5)
    with pytest.raises(TypeError, match=r"sigma must be a number or a floating-point tensor"):
        mix.eps(x, 1.0, "0.5")
    with pytest.raises(TypeError, match=r"alpha must be a floating-point tensor"):
        mix.eps(x, torch.ones(3, dtype=torch.int64), 0.5)
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor"):
        mix.eps([[0.0, 0.0]], 1.0, 0.5)


# --- labelled mixtures -------------------------------------------------------------------------------
LABELLED = [toy.labelled_mixture_1d(), toy.labelled_mixture_2d(), toy.mixture_nd()]


def bayes_log_posterior(mix, x, alpha, sigma):
    """log p(c | x_t) = log pi_c + log q_t(x | c) - log q_t(x), from each class's own mixture."""
    cols = []
    for c in range(mix.n_classes):
        prior = float(mix.weights[mix.labels == c].sum())
        cols.append(math.log(prior) + mix.conditional(c).log_prob(x, alpha, sigma) - mix.log_prob(x, alpha, sigma))
    return torch.stack(cols, 1)


@pytest.mark.parametrize("mix", LABELLED, ids=repr)
@pytest.mark.parametrize("alpha, sigma", [(0.9, 0.1), (0.6, 0.8), (0.1, 0.99)])
def test_class_posterior_is_bayes_rule(mix, alpha, sigma):
    g = torch.Generator().manual_seed(20)
    x = alpha * mix.sample(50, generator=g) + sigma * torch.randn(50, mix.dim, generator=g, dtype=F64)
    post = mix.class_posterior(x, alpha, sigma)
    assert post.shape == (50, mix.n_classes)
    assert torch.allclose(post.sum(1), torch.ones(50, dtype=F64), rtol=0, atol=1e-14)
    bayes = bayes_log_posterior(mix, x, alpha, sigma)
    assert torch.allclose(post, bayes.exp(), rtol=1e-10, atol=1e-13)
    log_post = mix.class_posterior(x, alpha, sigma, log=True)
    finite = bayes > -600  # far below that, log p is still exact, but the reference underflows
    assert torch.allclose(log_post[finite], bayes[finite], rtol=1e-9, atol=1e-9)


def test_class_posterior_log_stays_finite_far_from_a_class():
    """The per-class log-sum-exp keeps log p(c | x) exact where p(c | x) underflows."""
    mix = toy.labelled_mixture_1d()
    x = torch.tensor([[0.5]], dtype=F64)
    log_post = mix.class_posterior(x, 1.0, 1e-3, log=True)
    assert bool(torch.isfinite(log_post).all()) and float(log_post[0, 2]) < -1000  # exp underflows below -745
    # Exactly: log of w_c N(0.5; m_c, v_c) relative to class 0, which holds nearly all the mass.
    v = mix.stds[:, 0] ** 2 + 1e-6
    logw = torch.log(mix.weights) - 0.5 * ((0.5 - mix.means[:, 0]) ** 2 / v + torch.log(2 * math.pi * v))
    assert abs(float(log_post[0, 2]) - float(logw[2] - logw[0])) < 1e-9 * abs(float(logw[2]))


@pytest.mark.parametrize("mix", LABELLED, ids=repr)
def test_class_log_prob_grad_is_the_gradient_of_log_posterior(mix):
    g = torch.Generator().manual_seed(21)
    alpha, sigma = 0.8, 0.6
    x = (alpha * mix.sample(12, generator=g) + sigma * torch.randn(12, mix.dim, generator=g, dtype=F64))
    for c in range(mix.n_classes):
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(bayes_log_posterior(mix, xg, alpha, sigma)[:, c].sum(), xg)
        ours = mix.class_log_prob_grad(x, alpha, sigma, c)
        assert torch.allclose(ours, grad, rtol=1e-9, atol=1e-9)
        cond = mix.conditional(c).score(x, alpha, sigma) - mix.score(x, alpha, sigma)
        assert torch.allclose(ours, cond, rtol=1e-10, atol=1e-10)
    per_sample = torch.arange(12) % mix.n_classes
    rows = torch.stack([mix.class_log_prob_grad(x[i:i + 1], alpha, sigma, int(per_sample[i]))[0] for i in range(12)])
    assert torch.allclose(mix.class_log_prob_grad(x, alpha, sigma, per_sample), rows, rtol=1e-12, atol=1e-12)
    a_t = torch.full((12,), alpha, dtype=F64)
    assert torch.allclose(mix.class_log_prob_grad(x, a_t, sigma, per_sample), rows, rtol=1e-10, atol=1e-10)


def test_conditional_renormalises_the_weights():
    mix = toy.labelled_mixture_2d()
    for c in range(mix.n_classes):
        cond = mix.conditional(c)
        keep = mix.labels == c
        assert torch.allclose(cond.weights, mix.weights[keep] / mix.weights[keep].sum(), rtol=1e-15)
        assert abs(float(cond.weights.sum()) - 1) < 1e-15
        assert torch.equal(cond.means, mix.means[keep]) and torch.equal(cond.stds, mix.stds[keep])
        assert cond.labels.tolist() == [c] * int(keep.sum())
    # The mixture is the prior-weighted sum of its class conditionals.
    x = torch.randn(30, 2, generator=torch.Generator().manual_seed(22), dtype=F64)
    total = sum(float(mix.weights[mix.labels == c].sum()) * mix.conditional(c).log_prob(x, 0.7, 0.3).exp()
                for c in range(mix.n_classes))
    assert torch.allclose(total, mix.log_prob(x, 0.7, 0.3).exp(), rtol=1e-12)


def test_labelled_helpers():
    one = toy.labelled_mixture_1d()
    seed = toy.seed_mixture_1d()
    assert one.labels.tolist() == [0, 1, 2] and one.n_classes == 3 and one.labels.dtype == torch.int64
    assert torch.equal(one.means, seed.means) and torch.equal(one.weights, seed.weights)
    two = toy.labelled_mixture_2d()
    assert two.dim == 2 and two.n_classes >= 3
    assert all(int((two.labels == c).sum()) >= 2 for c in range(two.n_classes))
    nd = toy.mixture_nd()
    assert nd.dim == 16 and nd.n_classes >= 2 and torch.equal(nd.means, toy.mixture_nd().means)
    assert not torch.equal(nd.means, toy.mixture_nd(seed=1).means)
    assert toy.seed_mixture_1d().labels is None and toy.seed_mixture_1d().n_classes is None
    x, y = two.sample(1000, generator=torch.Generator().manual_seed(23), return_labels=True)
    assert x.shape == (1000, 2) and y.dtype == torch.int64
    # A sample's label is (almost always) the class with the largest posterior at sigma = 0.
    assert float((two.class_posterior(x, 1.0, 1e-3).argmax(1) == y).double().mean()) > 0.9


def test_bad_labels_and_classes():
    w, m, s = [0.5, 0.5], [0.0, 1.0], [1.0, 1.0]
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        toy.GaussianMixture(w, m, s, labels=[0, 1, 2])
    with pytest.raises(TypeError, match=r"labels must be integers"):
        toy.GaussianMixture(w, m, s, labels=[0.0, 1.0])
    with pytest.raises(TypeError, match=r"labels must be integers"):
        toy.GaussianMixture(w, m, s, labels=["a", "b"])
    with pytest.raises(ValueError, match=r"labels must be >= 0"):
        toy.GaussianMixture(w, m, s, labels=[0, -1])
    mix = toy.GaussianMixture(w, m, s, labels=[0, 2])  # class 1 has no component
    x = torch.zeros(3, 1, dtype=F64)
    assert mix.n_classes == 3 and torch.equal(mix.class_posterior(x, 1.0, 0.5)[:, 1], torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match=r"c must be one of the mixture's classes \[0, 2\], got \[1\]"):
        mix.conditional(1)
    with pytest.raises(ValueError, match=r"c must be one of the mixture's classes"):
        mix.class_log_prob_grad(x, 1.0, 0.5, torch.tensor([0, 2, 5]))
    with pytest.raises(TypeError, match=r"c must be an int class label"):
        mix.conditional(0.0)
    with pytest.raises(ValueError, match=r"this mixture has no labels"):
        toy.seed_mixture_1d().class_posterior(x, 1.0, 0.5)
    with pytest.raises(ValueError, match=r"return_labels needs a labelled mixture"):
        toy.seed_mixture_1d().sample(3, return_labels=True)


# --- empirical mixtures ------------------------------------------------------------------------------
def small_images(n=6, d=3, seed=30):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("n_images", [6, toy._WIDE + 20], ids=["few", "many"])  # both layouts
@pytest.mark.parametrize("std", [0.3, 1e-3])
def test_empirical_mixture_equals_the_gaussian_mixture_of_its_rows(std, n_images):
    X = small_images(n_images)
    emp = toy.EmpiricalMixture(X, std=std)
    w = torch.full((n_images,), 1 / n_images, dtype=F64)
    # One std differs in the last bits: the Gaussian mixture takes its per-component-variance code path.
    stds = torch.full((n_images, 3), std, dtype=F64)
    stds[0, 0] *= 1 + 1e-15
    gm = toy.GaussianMixture(w, X, stds)
    assert emp._shared and not gm._shared
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(31), dtype=F64)
    for alpha, sigma in ((0.9, 0.2), (0.5, 0.9), (1.0, 0.0)):
        for name in ("score", "eps", "x0_hat", "log_prob"):
            ours, ref = getattr(emp, name)(x, alpha, sigma), getattr(gm, name)(x, alpha, sigma)
            assert torch.allclose(ours, ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max())), (name, alpha, sigma)


@pytest.mark.parametrize("n_images", [20, toy._WIDE + 20], ids=["few", "many"])
@pytest.mark.parametrize("std", [0.0, 0.2])
def test_empirical_eps_is_minus_sigma_grad_log_prob(std, n_images):
    X = small_images(n_images, 5)
    emp = toy.EmpiricalMixture(X, std=std)
    alpha, sigma = 0.8, 0.6
    x = torch.randn(10, 5, generator=torch.Generator().manual_seed(32), dtype=F64).requires_grad_(True)
    (grad,) = torch.autograd.grad(emp.log_prob(x, alpha, sigma).sum(), x)
    assert torch.allclose(emp.eps(x.detach(), alpha, sigma), -sigma * grad, rtol=1e-10, atol=1e-12)
    assert torch.allclose(emp.score(x.detach(), alpha, sigma), grad, rtol=1e-10, atol=1e-12)


def test_empirical_x0_hat_tends_to_the_nearest_training_row():
    X = small_images(30, 8)
    emp = toy.EmpiricalMixture(X)
    g = torch.Generator().manual_seed(33)
    idx = torch.randint(30, (12,), generator=g)
    alpha = 0.99
    noise = torch.randn(12, 8, generator=g, dtype=F64)
    errors = []
    for sigma in (0.3, 0.1, 0.03, 0.01):
        x = alpha * X[idx] + sigma * noise
        errors.append(float((emp.x0_hat(x, alpha, sigma) - X[idx]).abs().max()))
        dist, nearest = emp.nearest(x / alpha)
        assert torch.equal(nearest, idx) or sigma > 0.05
    assert errors[-1] < 1e-12 and errors == sorted(errors, reverse=True)


@pytest.mark.parametrize("n_images", [6, toy._WIDE + 20], ids=["few", "many"])
def test_empirical_clean_end_and_point_masses(n_images):
    X = small_images(n_images)
    emp = toy.EmpiricalMixture(X)  # std = 0: q_t has no density at sigma = 0
    x = 0.9 * X[:3]
    assert torch.equal(emp.eps(x, 0.9, 0.0), torch.zeros_like(x))
    assert torch.allclose(emp.x0_hat(x, 0.9, 0.0), X[:3], rtol=1e-15)
    sigma = torch.tensor([0.0, 0.5, 0.0], dtype=F64)
    eps = emp.eps(x, 0.9, sigma)
    assert torch.equal(eps[[0, 2]], torch.zeros(2, 3, dtype=F64))
    assert torch.allclose(eps[1], emp.eps(x[1:2], 0.9, 0.5)[0], rtol=1e-14)
    with pytest.raises(ValueError, match=r"sigma must be positive for score"):
        emp.score(x, 0.9, 0.0)
    with pytest.raises(ValueError, match=r"sigma must be positive for log_prob"):
        emp.log_prob(x)


def test_empirical_sample_and_nearest():
    X = small_images(50, 4)
    emp = toy.EmpiricalMixture(X)
    x = emp.sample(200, generator=torch.Generator().manual_seed(34))
    dist, idx = emp.nearest(x)
    assert torch.equal(dist, torch.zeros(200, dtype=F64)) and torch.equal(X[idx], x)
    y = torch.randn(30, 4, generator=torch.Generator().manual_seed(35), dtype=F64)
    dist, idx = emp.nearest(y)
    brute = torch.cdist(y, X)
    assert torch.equal(idx, brute.argmin(1))
    assert torch.allclose(dist, brute.min(1).values, rtol=1e-12)
    assert torch.equal(emp.sample(5, generator=torch.Generator().manual_seed(1)),
                       emp.sample(5, generator=torch.Generator().manual_seed(1)))
    wide = toy.EmpiricalMixture(X, std=0.5).sample(20_000, generator=torch.Generator().manual_seed(36))
    assert abs(float(wide.var(0).mean()) - float(X.var(0, correction=0).mean() + 0.25)) < 0.05


@pytest.mark.parametrize("n_images", [20, toy._WIDE + 20], ids=["few", "many"])
def test_empirical_class_methods_in_both_layouts(n_images):
    X = small_images(n_images, 4, seed=37)
    labels = torch.arange(n_images) % 3
    emp = toy.EmpiricalMixture(X, std=0.1, labels=labels)
    x = torch.randn(25, 4, generator=torch.Generator().manual_seed(38), dtype=F64)
    post = emp.class_posterior(x, 0.8, 0.6)
    bayes = bayes_log_posterior(emp, x, 0.8, 0.6).exp()
    assert torch.allclose(post, bayes, rtol=1e-10, atol=1e-13)
    c = torch.arange(25) % 3
    grad = emp.class_log_prob_grad(x, 0.8, 0.6, c)
    for k in range(3):
        rows = c == k
        ref = emp.conditional(k).score(x[rows], 0.8, 0.6) - emp.score(x[rows], 0.8, 0.6)
        assert torch.allclose(grad[rows], ref, rtol=1e-9, atol=1e-10)


def test_empirical_labels_and_copy():
    X = small_images(8, 2)
    labels = torch.tensor([0, 1] * 4)
    emp = toy.EmpiricalMixture(X, std=0.1, labels=labels)
    assert torch.equal(emp.conditional(1).images, X[1::2])
    X[0, 0] = 100.0  # the mixture keeps its own copy
    assert float(emp.images[0, 0]) != 100.0
    assert emp.class_posterior(emp.images[:2], 1.0, 0.01).argmax(1).tolist() == [0, 1]


def test_empirical_bad_input():
    X = small_images()
    with pytest.raises(TypeError, match=r"images must be a 2-D torch.Tensor"):
        toy.EmpiricalMixture(X.tolist())
    with pytest.raises(ValueError, match=r"images must be 2-D"):
        toy.EmpiricalMixture(X[0])
    with pytest.raises(TypeError, match=r"images must be a floating-point tensor"):
        toy.EmpiricalMixture(X.long())
    bad = X.clone()
    bad[1, 1] = float("nan")
    with pytest.raises(ValueError, match=r"images must be finite"):
        toy.EmpiricalMixture(bad)
    with pytest.raises(ValueError, match=r"std must be finite and >= 0"):
        toy.EmpiricalMixture(X, std=-0.1)
    with pytest.raises(TypeError, match=r"std must be a number"):
        toy.EmpiricalMixture(X, std=True)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 3\)"):
        toy.EmpiricalMixture(X).eps(torch.zeros(2, 4, dtype=F64), 1.0, 0.5)
