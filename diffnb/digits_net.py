"""Chapter 7's trained models of the 8x8 digits: a tiny U-Net noise predictor and a digit classifier.

Notation::

    x        a batch of digits, (n, 64) in [-1, 1] (``diffnb.data.digits``), seen as (n, 1, 8, 8)
    t        DDPM time on ``digits_schedule()`` = DiscreteVP.linear(T=1000), t in [0, 1000]
    c        class label 0..9; ``NULL`` (= 10) is the "no label" class of classifier-free guidance
    eps_hat  the network's noise prediction; the samplers' ``model(x, t)`` contract

The denoiser ``TinyUNet`` is trained with the eps-prediction loss ||eps_theta(x_t, t, c) - eps||^2,
t uniform on (0, T], the label replaced by ``NULL`` with probability ``p_uncond`` (label dropout), so
one network gives both eps_theta(x, t) (unconditional, c = NULL) and eps_theta(x, t, c). Weights are
averaged by an exponential moving average (EMA), which is what is shipped.

Arithmetic: the networks compute in float32 (8x8 convolutions in float64 are about twenty times
slower on a CPU); ``eps_model`` takes and returns float64 as the samplers require, and
``eps_model(..., dtype=torch.float64)`` evaluates the same weights in float64, so that the rounding
of float32 can be measured (tests and Chapter 7 do).

The classifier ``DigitClassifier`` is trained on a fixed 80 % of the digits (``classifier_split``);
its penultimate layer (``FEATURES`` numbers per image) is the feature space of the chapter's Frechet
distance, FID's recipe in miniature.

    python -m diffnb.digits_net      # retrains both from RECIPE and rewrites the weights file

Training is deterministic (seeded data order, noise and initialisation, one thread); the weights file
carries fingerprints of short runs of both recipes, which ``tests/test_digits_net.py`` regenerates.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ._threads import one_thread
from . import _checks, data
from .forward import q_sample
from .schedules import DiscreteVP

__all__ = ["RECIPE", "CLASSIFIER_RECIPE", "NULL", "FEATURES", "WEIGHTS", "TinyUNet",
           "DigitClassifier", "digits_schedule", "train_denoiser", "train_classifier",
           "classifier_split", "denoiser", "classifier", "fingerprint", "eps_model", "write_weights"]

WEIGHTS = Path(__file__).parent / "weights" / "digits_models.pt"
NULL = 10
FEATURES = 32
FINGERPRINT_STEPS = 30
# Architecture and training of the shipped denoiser and classifier.
RECIPE = {"c1": 16, "c2": 32, "emb": 64, "seed": 0, "steps": 15000, "batch_size": 128, "lr": 2e-3,
          "ema": 0.999, "p_uncond": 0.15}
CLASSIFIER_RECIPE = {"seed": 0, "steps": 3000, "batch_size": 128, "lr": 2e-3, "train_fraction": 0.8,
                     "noise": 0.1}


def digits_schedule() -> DiscreteVP:
    """DDPM's linear schedule (T = 1000, beta from 1e-4 to 0.02), the one the denoiser is trained on."""
    return DiscreteVP.linear(T=1000, beta_start=1e-4, beta_end=0.02)


LAMBDA_MAX = 12.0  # log-SNR inputs are clipped here (sigma ~ 6e-6): t = 0 has lambda = infinity


def _embedding(lam, dim):
    """Sinusoidal embedding of the log-SNR, u = clip(lambda, -, LAMBDA_MAX) / 8, with ``dim`` / 2
    frequencies from 1 to 20. Low frequencies in lambda keep eps_theta smooth along the solvers'
    variable (an embedding of t with frequencies up to 1000 / T makes the ODE's right-hand side
    oscillate in t, and an adaptive reference solver crawl)."""
    freqs = torch.exp(torch.linspace(0, math.log(20.0), dim // 2, dtype=lam.dtype, device=lam.device))
    arg = (lam.clamp(max=LAMBDA_MAX) / 8)[:, None] * freqs
    return torch.cat([torch.sin(arg), torch.cos(arg)], 1)


class _Block(nn.Module):
    """Residual block without normalisation (cheaper on a CPU): SiLU, 3x3 conv, add the embedding,
    SiLU, 3x3 conv; the last conv starts at zero, so that every block starts as the identity."""

    def __init__(self, c_in, c_out, emb):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.emb = nn.Linear(emb, c_out)
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x, e):
        h = self.conv1(nn.functional.silu(x)) + self.emb(e)[:, :, None, None]
        return self.skip(x) + self.conv2(nn.functional.silu(h))


class TinyUNet(nn.Module):
    """eps_theta(x, lambda, c) on 8x8: one residual block at 8x8 (c1 channels), two at 4x4 (c2), one
    after the skip connection at 8x8; the noise level (as the log-SNR lambda_t of ``digits_schedule``)
    and the class enter every block through a shared embedding."""

    def __init__(self, c1=32, c2=64, emb=64, seed=0):
        super().__init__()
        self.emb_dim = emb
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.t_mlp = nn.Sequential(nn.Linear(emb, emb), nn.SiLU(), nn.Linear(emb, emb))
            self.c_emb = nn.Embedding(NULL + 1, emb)
            self.inp = nn.Conv2d(1, c1, 3, padding=1)
            self.down_block = _Block(c1, c1, emb)
            self.down = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
            self.mid = nn.ModuleList([_Block(c2, c2, emb), _Block(c2, c2, emb)])
            self.up = nn.ConvTranspose2d(c2, c1, 2, stride=2)
            self.up_block = _Block(2 * c1, c1, emb)
            self.out = nn.Sequential(nn.SiLU(), nn.Conv2d(c1, 1, 3, padding=1))

    def forward(self, x, lam, c):
        """x (n, 64), log-SNR lam (n,), c (n,) int64 -> eps_hat (n, 64), in the network's dtype."""
        e = nn.functional.silu(self.t_mlp(_embedding(lam.to(x.dtype), self.emb_dim)) + self.c_emb(c))
        h0 = self.down_block(self.inp(x.reshape(-1, 1, 8, 8)), e)
        h = self.down(h0)
        for block in self.mid:
            h = block(h, e)
        h = self.up_block(torch.cat([self.up(h), h0], 1), e)
        return self.out(h).reshape(-1, 64)


class DigitClassifier(nn.Module):
    """p(c | x) for clean digits: two 3x3 conv layers (16 and 32 channels, the second with stride 2),
    a FEATURES-wide layer (the Frechet distance's feature space) and a linear read-out."""

    def __init__(self, seed=0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.conv = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.SiLU(),
                                      nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.SiLU())
            self.feat = nn.Sequential(nn.Linear(32 * 16, FEATURES), nn.SiLU())
            self.head = nn.Linear(FEATURES, 10)

    def features(self, x):
        """(n, 64) -> (n, FEATURES), in float64 (computed in the network's dtype)."""
        p = next(self.parameters())
        with torch.no_grad():
            h = self.conv(x.to(p.dtype).reshape(-1, 1, 8, 8)).flatten(1)
            return self.feat(h).to(torch.float64)

    def forward(self, x):
        """Logits (n, 10)."""
        h = self.conv(x.reshape(-1, 1, 8, 8)).flatten(1)
        return self.head(self.feat(h))

    def predict(self, x):
        """The most probable class of each row of x (n, 64)."""
        p = next(self.parameters())
        with torch.no_grad():
            return self(x.to(p.dtype)).argmax(1)


def fingerprint(net: nn.Module) -> float:
    """A number that changes with any weight: the sum of |w| over all parameters (in float64).

    ``net`` must be a torch.nn.Module with at least one parameter, all finite."""
    if not isinstance(net, nn.Module):
        raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
    if next(net.parameters(), None) is None:
        raise ValueError(f"net must have parameters to fingerprint, {type(net).__name__} has none")
    with torch.no_grad():
        value = float(sum(p.detach().double().abs().sum() for p in net.parameters()))
    if not math.isfinite(value):
        raise ValueError(f"net's parameters must be finite, got a fingerprint of {value}")
    return value



def _cosine_lr(opt, lr, step, steps, warmup=200):
    scale = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
    for group in opt.param_groups:
        group["lr"] = lr * scale


def train_denoiser(steps: int | None = None, progress: bool = True, recipe: dict | None = None):
    """Train ``TinyUNet`` from ``recipe`` (default ``RECIPE``; ``steps`` overrides its steps).

    Returns ``(ema_net, losses)``: the EMA of the weights (float32, eval mode) and the per-step
    training loss. Data: all 1,797 digits, minibatches drawn with replacement; t uniform on
    (0, T]; labels dropped to ``NULL`` with probability ``p_uncond``."""
    r = {**RECIPE, **(recipe or {})}
    steps = r["steps"] if steps is None else _checks.positive_int(steps, "steps")
    images, labels = data.digits()
    x_all, schedule = images.float(), digits_schedule()
    net = TinyUNet(r["c1"], r["c2"], r["emb"], seed=r["seed"])
    ema = copy.deepcopy(net)
    opt = torch.optim.Adam(net.parameters(), lr=r["lr"])
    g = torch.Generator().manual_seed(r["seed"])
    losses = []
    with one_thread():
        for step in tqdm(range(steps), desc="training the digit denoiser", disable=not progress):
            idx = torch.randint(0, x_all.shape[0], (r["batch_size"],), generator=g)
            t = schedule.t_max * (1 - torch.rand(r["batch_size"], generator=g, dtype=torch.float64))
            x_t, eps = q_sample(schedule, x_all[idx].double(), t, generator=g)
            drop = torch.rand(r["batch_size"], generator=g) < r["p_uncond"]
            c = torch.where(drop, torch.full_like(labels[idx], NULL), labels[idx])
            lam = schedule.log_snr(t).float()
            loss = ((net(x_t.float(), lam, c) - eps.float()) ** 2).mean()
            _cosine_lr(opt, r["lr"], step, steps)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                for pe, p in zip(ema.parameters(), net.parameters()):
                    pe.lerp_(p, 1 - r["ema"])
            losses.append(loss.item())
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema.eval(), losses


def classifier_split(seed: int = 0, train_fraction: float = 0.8):
    """(train_index, test_index): a fixed random split of the 1,797 digits."""
    n = data.digits()[0].shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = int(round(train_fraction * n))
    return perm[:k].sort().values, perm[k:].sort().values


def train_classifier(steps: int | None = None, progress: bool = True):
    """Train ``DigitClassifier`` from ``CLASSIFIER_RECIPE`` on the training part of
    ``classifier_split``, with small Gaussian pixel noise as augmentation. Returns ``(net, losses)``."""
    r = CLASSIFIER_RECIPE
    steps = r["steps"] if steps is None else _checks.positive_int(steps, "steps")
    images, labels = data.digits()
    train, _ = classifier_split(r["seed"], r["train_fraction"])
    x_all, y_all = images[train].float(), labels[train]
    net = DigitClassifier(seed=r["seed"])
    opt = torch.optim.Adam(net.parameters(), lr=r["lr"])
    g = torch.Generator().manual_seed(r["seed"])
    losses = []
    with one_thread():
        for step in tqdm(range(steps), desc="training the digit classifier", disable=not progress):
            idx = torch.randint(0, x_all.shape[0], (r["batch_size"],), generator=g)
            x = x_all[idx] + r["noise"] * torch.randn(len(idx), 64, generator=g)
            loss = nn.functional.cross_entropy(net(x), y_all[idx])
            _cosine_lr(opt, r["lr"], step, steps, warmup=50)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval(), losses


def _saved():
    if not WEIGHTS.exists():
        raise FileNotFoundError(f"{WEIGHTS} is missing: run `python -m diffnb.digits_net` to train the networks")
    return torch.load(WEIGHTS, weights_only=True)


def denoiser() -> TinyUNet:
    """The shipped (EMA) denoiser, float32, eval mode, no gradients."""
    saved = _saved()
    r = saved["recipe"]
    net = TinyUNet(r["c1"], r["c2"], r["emb"], seed=r["seed"])
    net.load_state_dict(saved["denoiser"])
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def classifier() -> DigitClassifier:
    """The shipped classifier, float32, eval mode, no gradients."""
    net = DigitClassifier(seed=CLASSIFIER_RECIPE["seed"])
    net.load_state_dict(_saved()["classifier"])
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def eps_model(net: TinyUNet, labels=None, dtype=torch.float32):
    """``model(x, t) -> eps_hat`` for the samplers: float64 in and out, computed in ``dtype``.

    ``labels``: None (unconditional, c = NULL), an int (every sample that class) or an int64 tensor
    with one class per sample (the batch must then have that many rows)."""
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if not isinstance(net, TinyUNet):
        raise TypeError(f"net must be a TinyUNet, got {type(net).__name__}")
    work = net if next(net.parameters()).dtype == dtype else copy.deepcopy(net).to(dtype)
    schedule = digits_schedule()
    if labels is not None and not isinstance(labels, (int, torch.Tensor)) or isinstance(labels, bool):
        raise TypeError(f"labels must be None, an int or an int64 tensor, got {type(labels).__name__}")

    def model(x, t):
        n = x.shape[0]
        if labels is None:
            c = torch.full((n,), NULL, dtype=torch.int64)
        elif isinstance(labels, int):
            c = torch.full((n,), labels, dtype=torch.int64)
        else:
            if labels.shape != (n,):
                raise ValueError(f"labels must have shape ({n},), one per sample, got {tuple(labels.shape)}")
            c = labels
        t = t.reshape(-1).expand(n) if t.numel() == 1 else t
        lam = schedule.log_snr(t.to(torch.float64))
        with torch.no_grad():
            return work(x.to(dtype), lam.to(dtype), c.to(x.device)).to(x.dtype)

    return model


def write_weights(path=WEIGHTS, steps: int | None = None, classifier_steps: int | None = None,
                  progress: bool = True) -> dict:
    """Train both networks from the recipes (``steps`` / ``classifier_steps`` override their steps, for
    tests) and write them to ``path`` with the fingerprints of ``FINGERPRINT_STEPS``-step runs and the
    denoiser's training loss (mean per 100 steps). Returns what was written."""
    short_d, _ = train_denoiser(FINGERPRINT_STEPS, progress=False)
    short_c, _ = train_classifier(FINGERPRINT_STEPS, progress=False)
    net, losses = train_denoiser(steps, progress=progress)
    clf, _ = train_classifier(classifier_steps, progress=progress)
    curve = torch.tensor(losses, dtype=torch.float64)
    curve = curve[: len(curve) // 100 * 100].reshape(-1, 100).mean(1) if len(curve) >= 100 else curve
    payload = {"denoiser": net.state_dict(), "classifier": clf.state_dict(), "recipe": dict(RECIPE),
               "classifier_recipe": dict(CLASSIFIER_RECIPE), "loss_curve": curve,
               "fingerprint": {"steps": FINGERPRINT_STEPS, "denoiser": fingerprint(short_d),
                               "classifier": fingerprint(short_c)}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return payload


def main():
    """Retrain both networks and rewrite the shipped weights file (``make weights``)."""
    payload = write_weights()
    clf = DigitClassifier(seed=CLASSIFIER_RECIPE["seed"])
    clf.load_state_dict(payload["classifier"])
    images, labels = data.digits()
    _, test = classifier_split(CLASSIFIER_RECIPE["seed"], CLASSIFIER_RECIPE["train_fraction"])
    acc = float((clf.predict(images[test]) == labels[test]).double().mean())
    print(f"wrote {WEIGHTS.name} ({WEIGHTS.stat().st_size / 1e6:.2f} MB): last-500-step denoiser loss "
          f"{float(payload['loss_curve'][-5:].mean()):.4f}, classifier held-out accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
