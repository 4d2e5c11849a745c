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


def test_bad_input_is_refused_by_name():
    import pytest

    for bad, error, message in [(None, TypeError, r"net must be a torch.nn.Module, got NoneType"),
                                (torch.nn.ReLU(), ValueError, r"net must have parameters"),
                                (torch.nn.Linear(2, 2).requires_grad_(False).apply(
                                    lambda m: m.weight.fill_(float("nan")) if hasattr(m, "weight") else None),
                                 ValueError, r"net's parameters must be finite")]:
        with pytest.raises(error, match=message):
            pretrained.fingerprint(bad)
    with pytest.raises(TypeError, match=r"model must be callable"):
        pretrained.eps_loss(None)
    with pytest.raises(ValueError, match=r"n must be at least 1"):
        pretrained.eps_loss(lambda x, t: x, n=0)
    with pytest.raises(TypeError, match=r"seed must be an int"):
        pretrained.eps_loss(lambda x, t: x, n=10, seed=1.5)
    with pytest.raises(ValueError, match=r"model\(x, t\) must return x's shape \(10, 1\)"):
        pretrained.eps_loss(lambda x, t: x[:, 0], n=10)
    with pytest.raises(ValueError, match=r"model\(x, t\) must be finite"):
        pretrained.eps_loss(lambda x, t: x * float("nan"), n=10)
    with pytest.raises(ValueError, match=r"steps must be at least 1"):
        pretrained.train_seed_denoiser(0)  # refused before any training
