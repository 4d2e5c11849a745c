"""The book's shared trained network: one noise-prediction MLP for the source notes' 1-D mixture.

Chapters compare samplers with a learned model as well as with the exact eps. A network that is
far from the loss floor cannot tell samplers apart (every sampler lands at the model's own error),
so the book trains one network once, well (its L_simple within 0.005 of the exact-eps floor), and
ships its weights inside the package; every chapter loads the same network in milliseconds.

    make weights            # retrains it from the recipe below and rewrites the weights file

The recipe is deterministic (seeded data, seeded initialisation, one thread); the weights file
carries a fingerprint of the first ``FINGERPRINT_STEPS`` steps, which ``tests/test_pretrained.py``
regenerates, so the shipped file is tied to this code.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ._threads import one_thread
from . import _checks, toy
from .forward import q_sample
from .schedules import DiscreteVP

__all__ = ["RECIPE", "seed_schedule", "seed_denoiser", "train_seed_denoiser", "eps_loss", "fingerprint"]

WEIGHTS = Path(__file__).parent / "weights" / "seed_mixture_1d.pt"
FINGERPRINT_STEPS = 40
# Architecture and training of the shipped network (``toy.EpsMLP`` and ``toy.train_denoiser``).
RECIPE = {"hidden": 64, "depth": 3, "seed": 0, "steps": 6000, "batch_size": 1024, "lr": 1e-2}


def seed_schedule() -> DiscreteVP:
    """DDPM's linear schedule (T = 1000, beta from 1e-4 to 0.02), the one the network is trained on."""
    return DiscreteVP.linear(T=1000, beta_start=1e-4, beta_end=0.02)


def _fresh_net(schedule) -> toy.EpsMLP:
    return toy.EpsMLP(dim=1, t_scale=schedule.t_max, hidden=RECIPE["hidden"], depth=RECIPE["depth"],
                      seed=RECIPE["seed"])


def fingerprint(net: torch.nn.Module) -> float:
    """A number that changes with any weight: the sum of |w| over all parameters.

    ``net`` must be a torch.nn.Module with at least one parameter, all finite."""
    if not isinstance(net, torch.nn.Module):
        raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
    if next(net.parameters(), None) is None:
        raise ValueError(f"net must have parameters to fingerprint, {type(net).__name__} has none")
    with torch.no_grad():
        value = float(sum(p.abs().sum() for p in net.parameters()))
    if not math.isfinite(value):
        raise ValueError(f"net's parameters must be finite, got a fingerprint of {value}")
    return value


def train_seed_denoiser(steps: int | None = None, progress: bool = True):
    """Train the network from the recipe (``steps`` overrides the recipe's, for the fingerprint test).

    Returns ``(net, losses)``. Data: the source notes' mixture (``toy.seed_mixture_1d``), fresh
    samples every step, t uniform on (0, T].
    """
    if steps is not None:
        _checks.positive_int(steps, "steps")
    _checks.flag(progress, "progress")
    schedule = seed_schedule()
    net = _fresh_net(schedule)
    with one_thread():
        losses = toy.train_denoiser(net, toy.seed_mixture_1d(), schedule,
                                    steps=RECIPE["steps"] if steps is None else steps,
                                    batch_size=RECIPE["batch_size"], lr=RECIPE["lr"], seed=RECIPE["seed"],
                                    progress=progress)
    return net.eval(), losses


def seed_denoiser() -> toy.EpsMLP:
    """The shipped network, ready to use as ``model(x, t)`` on ``seed_schedule()`` (no training)."""
    if not WEIGHTS.exists():
        raise FileNotFoundError(f"{WEIGHTS} is missing: run `make weights` to train the network")
    saved = torch.load(WEIGHTS, weights_only=True)
    net = _fresh_net(seed_schedule())
    net.load_state_dict(saved["state_dict"])
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def eps_loss(model, n: int = 200_000, seed: int = 4) -> float:
    """Monte Carlo L_simple = E ||model(x_t, t) - eps||^2 on the seed mixture, t uniform on (0, T].

    With the same ``seed`` every model sees the same (x_t, t, eps), so differences between models
    are paired (the Monte Carlo noise of a difference is much smaller than that of each value).
    ``model(x_t, t)`` must return a finite tensor of x_t's shape (n, 1) and dtype (float64)."""
    _checks.callable_(model, "model")
    _checks.positive_int(n, "n")
    _checks.positive_int(seed, "seed", minimum=0)
    schedule, data = seed_schedule(), toy.seed_mixture_1d()
    g = torch.Generator().manual_seed(seed)
    x0 = data.sample(n, generator=g)
    t = schedule.t_max * (1 - torch.rand(n, generator=g, dtype=torch.float64))
    x_t, eps = q_sample(schedule, x0, t, generator=g)
    with torch.no_grad():
        out = _checks.model_output(model(x_t, t), x_t)
        return float(((out - eps) ** 2).mean())



def main():
    """Retrain and write the weights file with its fingerprint (``make weights``)."""
    short, _ = train_seed_denoiser(FINGERPRINT_STEPS, progress=False)
    net, losses = train_seed_denoiser()
    WEIGHTS.parent.mkdir(exist_ok=True)
    torch.save({"state_dict": net.state_dict(), "recipe": dict(RECIPE),
                "fingerprint": {"steps": FINGERPRINT_STEPS, "value": fingerprint(short)}}, WEIGHTS)
    exact = toy.seed_mixture_1d().eps_model(seed_schedule())
    print(f"wrote {WEIGHTS.name}: L_simple {eps_loss(net):.4f}, exact-eps floor {eps_loss(exact):.4f}, "
          f"last-100-step training loss {sum(losses[-100:]) / 100:.4f}")


if __name__ == "__main__":
    main()
