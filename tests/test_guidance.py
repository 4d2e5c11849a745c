"""Guidance: CFG and classifier guidance on eps models, the exact labelled-mixture quantities they use,
the tilted law and the chapter helpers (diffnb.guidance, diffnb.guidance_demo)."""

import math

import pytest
import torch

from diffnb import guidance, toy
from diffnb import guidance_demo as gdm
from diffnb.schedules import DiscreteVP, LinearVP

F64 = torch.float64
SCH = DiscreteVP.linear()
MIXES = {"1-D": (toy.labelled_mixture_1d(), 1), "2-D": (toy.labelled_mixture_2d(), 0),
         "16-D": (toy.mixture_nd(16), 2), "overlap": (gdm.overlapping_mixture_1d(), 1)}


def _points(mix, n=64, seed=0, t=300.0):
    g = torch.Generator().manual_seed(seed)
    x0 = mix.sample(n, generator=g)
    tt = torch.full((n,), t, dtype=F64)
    a, s = SCH.alpha(tt)[:, None], SCH.sigma(tt)[:, None]
    return a * x0 + s * torch.randn(x0.shape, generator=g, dtype=F64), tt


@pytest.mark.parametrize("key", list(MIXES))
def test_cfg_equals_classifier_guidance_for_exact_models(key):
    mix, c = MIXES[key]
    g = gdm.exact_guidance(mix, SCH, c)
    for t in (20.0, 300.0, 900.0):
        x, tt = _points(mix, t=t)
        for scale in (0.0, 1.0, 3.5, 10.0):
            cfg = guidance.cfg_model(g.eps_u, g.eps_c, scale)(x, tt)
            cg = guidance.classifier_guidance_model(g.eps_u, g.grad, scale, SCH)(x, tt)
            assert torch.allclose(cfg, cg, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("key", list(MIXES))
def test_guided_eps_is_minus_sigma_times_the_tilted_score(key):
    mix, c = MIXES[key]
    scale, t = 4.0, 250.0
    x, tt = _points(mix, t=t)
    a, s = float(SCH.alpha(tt[:1])), float(SCH.sigma(tt[:1]))
    xr = x.clone().requires_grad_(True)
    log_tilt = mix.log_prob(xr, a, s) + scale * mix.class_posterior(xr, a, s, log=True)[:, c]
    score = torch.autograd.grad(log_tilt.sum(), xr)[0]
    eps = gdm.guided_model(mix, SCH, c, scale)(x, tt)
    assert torch.allclose(eps, -s * score, rtol=1e-8, atol=1e-9)


def test_cfg_endpoints_and_ho_salimans_form():
    mix, c = MIXES["2-D"]
    g = gdm.exact_guidance(mix, SCH, c)
    x, tt = _points(mix)
    eu, ec = g.eps_u(x, tt), g.eps_c(x, tt)
    assert torch.equal(guidance.cfg_model(g.eps_u, g.eps_c, 0.0)(x, tt), eu)
    assert torch.allclose(guidance.cfg_model(g.eps_u, g.eps_c, 1)(x, tt), ec, rtol=0, atol=1e-15)
    w = 6.5  # Ho and Salimans: (1 + w) eps_c - w eps_u is scale = 1 + w
    assert torch.allclose(guidance.cfg_model(g.eps_u, g.eps_c, 1 + w)(x, tt), (1 + w) * ec - w * eu,
                          rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("key", ["1-D", "2-D", "16-D"])
def test_class_gradient_is_eps_difference_and_autograd(key):
    mix, c = MIXES[key]
    x, tt = _points(mix, t=150.0)
    a, s = float(SCH.alpha(tt[:1])), float(SCH.sigma(tt[:1]))
    g = gdm.exact_guidance(mix, SCH, c)
    grad = g.grad(x, tt)
    xr = x.clone().requires_grad_(True)
    auto = torch.autograd.grad(mix.class_posterior(xr, a, s, log=True)[:, c].sum(), xr)[0]
    assert torch.allclose(grad, auto, rtol=1e-8, atol=1e-9)
    assert torch.allclose(g.eps_c(x, tt) - g.eps_u(x, tt), -s * grad, rtol=1e-8, atol=1e-9)


def test_class_posterior_is_bayes_rule():
    mix, _ = MIXES["16-D"]
    x, _ = _points(mix, t=400.0)
    a, s = float(SCH.alpha(torch.tensor(400.0))), float(SCH.sigma(torch.tensor(400.0)))
    post = mix.class_posterior(x, a, s)
    prior = torch.stack([mix.weights[mix.labels == k].sum() for k in range(mix.n_classes)])
    bayes = torch.stack([prior[k] * mix.conditional(k).log_prob(x, a, s).exp() for k in range(mix.n_classes)], 1)
    bayes = bayes / mix.log_prob(x, a, s).exp()[:, None]
    assert torch.allclose(post, bayes, rtol=1e-9, atol=1e-12)
    assert torch.allclose(post.sum(1), torch.ones(len(x), dtype=F64), atol=1e-12)


def test_guidance_on_any_path_and_shapes():
    mix, c = MIXES["2-D"]
    vp = LinearVP()
    g = gdm.exact_guidance(mix, vp, c)
    x = torch.randn(10, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    t = torch.full((10,), 0.4, dtype=F64)
    out = guidance.classifier_guidance_model(g.eps_u, g.grad, 2.0, vp)(x, t)
    assert out.shape == x.shape and out.dtype == F64
    assert torch.allclose(out, guidance.cfg_model(g.eps_u, g.eps_c, 2.0)(x, t), rtol=1e-9, atol=1e-10)


# --- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale, err", [(float("nan"), ValueError), (float("inf"), ValueError), ("2", TypeError),
                                        (True, TypeError), (None, TypeError),
                                        (torch.ones(2, dtype=F64), TypeError)])
def test_bad_scale(scale, err):
    mix, c = MIXES["1-D"]
    g = gdm.exact_guidance(mix, SCH, c)
    with pytest.raises(err, match="scale"):
        guidance.cfg_model(g.eps_u, g.eps_c, scale)
    with pytest.raises(err, match="scale"):
        guidance.classifier_guidance_model(g.eps_u, g.grad, scale, SCH)


def test_scale_as_one_element_tensor():
    mix, c = MIXES["1-D"]
    g = gdm.exact_guidance(mix, SCH, c)
    assert guidance.cfg_model(g.eps_u, g.eps_c, torch.tensor(2.0, dtype=F64)).scale == 2.0


def test_bad_models_schedule_and_gradient_shape():
    mix, c = MIXES["1-D"]
    g = gdm.exact_guidance(mix, SCH, c)
    with pytest.raises(TypeError, match="model_uncond"):
        guidance.cfg_model(1, g.eps_c, 2.0)
    with pytest.raises(TypeError, match="model_cond"):
        guidance.cfg_model(g.eps_u, "eps", 2.0)
    with pytest.raises(TypeError, match="log_prob_grad"):
        guidance.classifier_guidance_model(g.eps_u, None, 2.0, SCH)
    with pytest.raises(TypeError, match="schedule"):
        guidance.classifier_guidance_model(g.eps_u, g.grad, 2.0, "linear")
    bad = guidance.classifier_guidance_model(g.eps_u, lambda x, t: x[:, :0], 2.0, SCH)
    with pytest.raises(ValueError, match="log_prob_grad"):
        bad(torch.zeros(4, 1, dtype=F64), torch.full((4,), 10.0, dtype=F64))


def test_bad_labels_and_classes():
    with pytest.raises(ValueError, match="labels"):
        toy.GaussianMixture([0.5, 0.5], [0.0, 1.0], [0.1, 0.1], labels=[0, 1, 1])
    with pytest.raises(TypeError, match="labels"):
        toy.GaussianMixture([0.5, 0.5], [0.0, 1.0], [0.1, 0.1], labels=[0.0, 1.0])
    mix, _ = MIXES["1-D"]
    with pytest.raises(ValueError, match="c must be one of"):
        mix.conditional(7)
    with pytest.raises(ValueError, match="c must be one of"):
        gdm.exact_guidance(mix, SCH, 3)
    with pytest.raises(TypeError, match="c must be an int"):
        mix.conditional(1.0)


# --- the tilted law and the chapter helpers --------------------------------------------------------
def test_tilted_law_at_scale_0_and_1_is_the_data_and_the_conditional():
    mix, c = MIXES["overlap"]
    for scale, target in ((0.0, mix), (1.0, mix.conditional(c))):
        p = gdm.tilted_1d(mix, c, scale, n_grid=30001)
        assert float((p.cdf - target.cdf_1d(p.grid)).abs().max()) < 1e-6


def test_tilted_law_is_not_a_rescaled_conditional():
    """p_s = p(x|c) p(c|x)^(s-1) / Z: at s = 3 the weight of class 1's right mode grows."""
    mix, c = MIXES["overlap"]
    p1, p3 = (gdm.tilted_1d(mix, c, s, n_grid=30001) for s in (1.0, 3.0))
    assert p3.mass(0.33, 2.0) > p1.mass(0.33, 2.0) + 0.02


def test_rejection_sampler_matches_the_quadrature_law():
    mix, c = MIXES["overlap"]
    for scale in (0.5, 3.0):
        x = gdm.sample_tilted(mix, c, scale, 4000, generator=torch.Generator().manual_seed(3))
        p = gdm.tilted_1d(mix, c, scale, n_grid=30001)
        F = torch.from_numpy(__import__("numpy").interp(x[:, 0].sort().values.numpy(), p.grid.numpy(),
                                                        p.cdf.numpy()))
        i = torch.arange(1, 4001, dtype=F64)
        ks = float(torch.maximum(i / 4000 - F, F - (i - 1) / 4000).max())
        assert ks < 1.95 / math.sqrt(4000)  # P(KS > this) ~ 0.001 for exact samples


def test_sliced_w1_and_quantile_w1():
    a = torch.randn(500, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert gdm.sliced_w1(a, a) == 0.0
    assert abs(gdm.sliced_w1(a, a + torch.tensor([0.3, 0.0], dtype=F64)) - 0.3 * 2 / math.pi) < 0.03
    mix = toy.GaussianMixture([1.0], [0.2], [0.1], labels=[0])
    p = gdm.tilted_1d(mix, 0, 1.0, n_grid=30001)
    u, z = gdm.normal_quantiles(2000)
    assert p.w1_quantiles(0.2 + 0.1 * z[:, 0], u) < 1e-5
    assert abs(p.w1_quantiles(0.25 + 0.1 * z[:, 0], u) - 0.05) < 1e-5


def test_ode_quantiles_at_scale_1_give_the_conditional():
    mix, c = MIXES["1-D"]
    u, q = gdm.ode_quantiles_1d(gdm.guided_model(mix, SCH, c, 1.0), SCH, n=200)
    assert bool((q.diff() > 0).all())  # the 1-D flow map is increasing
    assert gdm.tilted_1d(mix, c, 1.0).w1_quantiles(q, u) < 1e-4


def test_paired_bake_scores_over_path_batches():
    mix, c = MIXES["2-D"]
    model = gdm.guided_model(mix, SCH, c, 3.0)
    x_T = torch.randn(40, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    ref = torch.zeros_like(x_T)
    rows = gdm.paired_bake(["DDIM (eta = 0)"], model, x_T, SCH, [5], ref, batches=4, t_end=1.0)
    cell = rows["DDIM (eta = 0)"][5]
    assert len(cell.scores) == 4 and cell.nfe == 5 and cell.sem > 0
    with pytest.raises(ValueError, match="deterministic"):
        gdm.paired_bake(["DDPM"], model, x_T, SCH, [5], ref, t_end=1.0)


def test_compact_table_is_narrow_and_reports_means_and_relative_se():
    from diffnb.bakeoff import Cell
    rows = {"DPM-Solver++(3M)": {6: Cell("a", 6, 6, (1.0, 3.0)), 12: Cell("a", 12, 12, (0.1, 0.1))},
            "DDIM (eta = 0)": {6: Cell("b", 6, 6, (2.0, 2.0)), 12: Cell("b", 12, 12, (0.5, 0.7))}}
    text = gdm.compact_table(rows, [6, 12])
    lines = text.splitlines()
    assert len(lines) == 3 and max(len(line) for line in lines) <= 17 + 2 * 8 + 8
    assert lines[1].split() == ["DPM-Solver++(3M)", "2.0e+00", "1.0e-01", "50%"]  # sem 1 / mean 2
    assert lines[2].split()[-1] == "17%"  # sem 0.1 / mean 0.6


def test_rescale_into_bounds():
    mix = gdm.rescale_into(toy.mixture_nd(16), 1.0, 3.0)
    lo = (mix.means - 3 * mix.stds).min(0).values
    hi = (mix.means + 3 * mix.stds).max(0).values
    assert torch.allclose(lo, -torch.ones(16, dtype=F64)) and torch.allclose(hi, torch.ones(16, dtype=F64))
    assert mix.n_classes == 4


def test_path_constants_grow_with_scale():
    mix, c = MIXES["2-D"]
    x_T = torch.randn(20, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    low, high = (gdm.path_constants(mix, SCH, c, s, x_T, steps=100) for s in (1.0, 8.0))
    assert high.L_x0 > 3 * low.L_x0
    assert low.kappa > 0 and low.d_x0.shape == (100,)


def test_noised_score_of_the_conditional_is_the_conditional_score():
    mix, c = MIXES["overlap"]
    p = gdm.tilted_1d(mix, c, 1.0, n_grid=20001)
    x = torch.linspace(-0.5, 0.8, 7, dtype=F64)
    a, s = 0.8, 0.6
    exact = mix.conditional(c).score(x[:, None], a, s)[:, 0]
    assert torch.allclose(gdm.noised_score_1d(p, a, s, x), exact, rtol=1e-6, atol=1e-6)


def test_mixture_quantiles_and_ode_density():
    mix = toy.GaussianMixture([1.0], [0.3], [0.2])
    u, z = gdm.normal_quantiles(400)
    q = gdm.mixture_quantiles(mix, u)
    assert torch.allclose(q, 0.3 + 0.2 * z[:, 0], atol=1e-6)
    xd, dens = gdm.ode_density_1d(u, q)
    exact = torch.exp(-((xd - 0.3) / 0.2) ** 2 / 2) / (0.2 * math.sqrt(2 * math.pi))
    assert float((dens - exact).abs().max()) < 2e-3 * float(exact.max())


def test_laws_and_floors_at_scale_1():
    mix, c = MIXES["overlap"]
    law = gdm.laws_1d(mix, c, 1.0, SCH, n_ode=200, n_sde=500, seeds=2, steps=100)
    assert law.ode < 2e-3 and len(law.sde) == 2
    fl = gdm.floor_1d(law.p_s, 500, seeds=range(5))
    assert len(fl.values) == 5 and fl.band[0] <= fl.mean <= fl.band[1]
    mix2, c2 = MIXES["2-D"]
    nd = gdm.laws_nd(mix2, c2, 1.0, SCH, n=200, seeds=2, ode_sets=1, steps=100)
    fl2 = gdm.floor_nd(mix2, c2, 1.0, 200, seeds=range(5))
    assert len(nd.ode) == 1 and len(nd.sde) == 2
    assert max(nd.ode + nd.sde) < 3 * fl2.band[1]


# --- guidance_demo: bad input is refused by name ---------------------------------------------------
def _bad_guidance_demo_calls():
    mix, c = MIXES["overlap"]
    mix2, c2 = MIXES["2-D"]
    p = gdm.tilted_1d(mix, c, 1.0, n_grid=2001)
    model = gdm.guided_model(mix, SCH, c, 1.0)
    x2 = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    return [
        (lambda: gdm.rescale_into("mix"), TypeError, "mix must be a toy.GaussianMixture"),
        (lambda: gdm.exact_guidance(None, SCH, c), TypeError, "mix must be a toy.GaussianMixture"),
        (lambda: gdm.exact_guidance(mix, "SCH", c), TypeError, "schedule must be a diffnb.schedules.GaussianPath"),
        (lambda: gdm.guided_model(mix, SCH, c, math.nan), ValueError, "scale must be finite"),
        (lambda: gdm.log_tilted(mix, c, None, x2[:, :1]), TypeError, "scale must be a number"),
        (lambda: gdm.log_tilted(mix, c, 2.0, "x"), TypeError, "x must be a torch.Tensor"),
        (lambda: gdm.Tilted1D(mix2, c2, 1.0, -1.0, 1.0, 11), ValueError, "mix must be 1-D"),
        (lambda: gdm.tilted_1d(mix, c, math.nan), ValueError, "scale must be finite"),
        (lambda: gdm.tilted_1d(mix, c, 1.0, lo=1.0, hi=-1.0), ValueError, "lo must be below hi"),
        (lambda: gdm.tilted_1d(mix, c, 1.0, n_grid=1), ValueError, "n_grid must be at least 2"),
        (lambda: gdm.sample_tilted(mix, c, "s", 10), TypeError, "scale must be a number"),
        (lambda: gdm.normal_quantiles(math.nan), TypeError, "n must be an int"),
        (lambda: gdm.normal_quantiles(0), ValueError, "n must be at least 1"),
        (lambda: gdm.ode_quantiles_1d(None, SCH), TypeError, "model must be callable"),
        (lambda: gdm.ode_quantiles_1d(model, SCH, t_end=math.nan), ValueError, "t_end must be finite"),
        (lambda: gdm.sde_endpoint(model, None, x2[:, :1]), TypeError, "schedule must be"),
        (lambda: gdm.sde_endpoint(model, SCH, x2[:, :1], t_small=0.0), ValueError, "t_small must be positive"),
        (lambda: gdm.sliced_w1(None, x2), TypeError, "a must be a torch.Tensor"),
        (lambda: gdm.sliced_w1(x2, x2 * math.nan), ValueError, "b must be finite"),
        (lambda: gdm.path_constants(mix2, SCH, c2, 1.0, x2, steps=0), ValueError, "steps must be at least 1"),
        (lambda: gdm.path_constants(mix2, SCH, c2, 1.0, "x"), TypeError, "x_T must be a torch.Tensor"),
        (lambda: gdm.noised_score_1d("p", 0.8, 0.6, x2[:, 0]), TypeError, "tilted must be a Tilted1D"),
        (lambda: gdm.noised_score_1d(p, 0.8, 0.0, x2[:, 0]), ValueError, "sigma must be positive"),
        (lambda: gdm.noised_score_1d(p, math.nan, 0.6, x2[:, 0]), ValueError, "alpha must be finite"),
        (lambda: gdm.noised_score_1d(p, 0.8, 0.6, None), TypeError, "x must be points"),
        (lambda: gdm.noised_score_1d(p, 0.8, 0.6, [0.0, math.nan]), ValueError, "x must be finite"),
        (lambda: gdm.laws_1d(mix2, c2, 1.0, SCH), ValueError, "mix must be 1-D"),
        (lambda: gdm.laws_1d(mix, c, 1.0, SCH, seeds=0), ValueError, "seeds must be at least 1"),
        (lambda: gdm.laws_nd(mix2, c2, 1.0, None), TypeError, "schedule must be"),
        (lambda: gdm.floor_1d(mix, 10), TypeError, "p_s must be a Tilted1D"),
        (lambda: gdm.floor_nd("mix", c, 1.0, 10), TypeError, "mix must be a toy.GaussianMixture"),
        (lambda: gdm.mixture_quantiles(mix2, [0.5]), ValueError, "mix must be 1-D"),
        (lambda: gdm.mixture_quantiles(mix, None), TypeError, "u must be levels"),
        (lambda: gdm.mixture_quantiles(mix, [0.5, math.nan]), ValueError, "u must hold levels in [0, 1]"),
        (lambda: gdm.mixture_quantiles(mix, [1.5]), ValueError, "u must hold levels in [0, 1]"),
    ]


@pytest.mark.parametrize("k", range(35))
def test_guidance_demo_bad_input_raises_naming_the_argument(k):
    import re

    calls = _bad_guidance_demo_calls()
    assert len(calls) == 35
    call, error, message = calls[k]
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_guidance_demo_floor_and_split_scores_refuse_bad_input():
    with pytest.raises(ValueError, match="values must be finite"):
        gdm.floor([0.1, math.nan])
    with pytest.raises(ValueError, match="at least 2 distances"):
        gdm.floor([0.1])
    with pytest.raises(TypeError, match="values must be an iterable"):
        gdm.floor(None)
    with pytest.raises(ValueError, match="batches must be at most the number of paths"):
        gdm.split_scores(torch.ones(3, dtype=F64), 5)
    with pytest.raises(TypeError, match="sq must be a torch.Tensor"):
        gdm.split_scores([1.0, 2.0], 2)


def test_threshold_checks_x0_even_when_it_does_nothing():
    x0 = torch.linspace(-2, 2, 8, dtype=torch.float64)[:, None]
    assert guidance.threshold(x0, None) is x0
    with pytest.raises(TypeError, match=r"x0 must be a torch.Tensor, got NoneType"):
        guidance.threshold(None, None)
    with pytest.raises(ValueError, match=r"x0 must be finite"):
        guidance.threshold(torch.full((2, 1), float("nan"), dtype=torch.float64), None)
    with pytest.raises(ValueError, match=r"percentile must be in \(0, 1\]"):
        guidance.threshold(x0, None, percentile=2.0)
    with pytest.raises(TypeError, match=r"thresholding must be a str"):
        guidance.threshold(x0, 1)
