import math

import torch

from diffnb import pretrained, toy


def test_shipped_network_is_within_0_005_of_the_floor():
    """Paired Monte Carlo (the same x_t, t, eps for both models): the gap is measured, not assumed."""
    net = pretrained.seed_denoiser()
    exact = toy.seed_mixture_1d().eps_model(pretrained.seed_schedule())
    gap = pretrained.eps_loss(net, n=100_000) - pretrained.eps_loss(exact, n=100_000)
    assert 0 < gap < 0.005


def test_shipped_weights_come_from_the_recipe():
    """A short regeneration reproduces the fingerprint saved with the weights (the recipe is deterministic)."""
    saved = torch.load(pretrained.WEIGHTS, weights_only=True)
    assert saved["recipe"] == pretrained.RECIPE
    short, _ = pretrained.train_seed_denoiser(saved["fingerprint"]["steps"], progress=False)
    assert math.isclose(pretrained.fingerprint(short), saved["fingerprint"]["value"], rel_tol=1e-9)


def test_network_follows_the_model_contract():
    net = pretrained.seed_denoiser()
    x = torch.zeros(5, 1, dtype=torch.float64)
    out = net(x, torch.full((5,), 500.0, dtype=torch.float64))
    assert out.shape == x.shape and out.dtype == torch.float64 and not out.requires_grad
