"""Draw the book's logo and favicon: a two-mode density dissolving into noise, left to right.

Usage: python scripts/make_logo.py   (writes assets/logo.svg and assets/root/favicon.ico; commit both)

The logo is the forward process itself: the density of x_t = alpha_t x_0 + sigma_t eps for a
two-component mixture at a few times, drawn as curves that widen and merge, and then samples of pure
noise. The output is deterministic (fixed seed, no dates or software tags in the files).
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BLUE, ORANGE, GREY = "#1f5fa8", "#e07a1f", "#7a7a7a"


def mixture_density(y, alpha, sigma):
    """Density of alpha * x0 + sigma * eps, x0 from 0.5 N(-0.55, 0.12^2) + 0.5 N(0.55, 0.12^2)."""
    total = np.zeros_like(y)
    for mean in (-0.55, 0.55):
        var = (alpha * 0.12) ** 2 + sigma**2
        total += 0.5 * np.exp(-((y - alpha * mean) ** 2) / (2 * var)) / np.sqrt(2 * np.pi * var)
    return total


def draw(ax, n_curves, n_dots, lw, dot_size):
    """Densities side by side (each on its own vertical axis, rotated), then noise dots."""
    y = np.linspace(-1.6, 1.6, 90)
    for k, t in enumerate([0.0, *np.geomspace(0.04, 0.6, n_curves - 1)]):
        alpha, sigma = np.sqrt(1 - t), np.sqrt(t)
        p = mixture_density(y, alpha, sigma)
        x0 = 0.25 + 1.05 * k
        ax.fill_betweenx(y, x0, x0 + 0.55 * p / p.max() * (1 - 0.35 * t), color=BLUE, alpha=0.22 + 0.5 * (1 - t), lw=0)
        ax.plot(x0 + 0.55 * p / p.max() * (1 - 0.35 * t), y, color=BLUE, lw=lw, solid_capstyle="round")
    rng = np.random.default_rng(7)
    x_noise = 0.25 + 1.05 * n_curves + rng.uniform(0.0, 0.9, n_dots)
    ax.scatter(x_noise, rng.standard_normal(n_dots) * 0.55, s=dot_size, color=ORANGE, lw=0, alpha=0.85)
    ax.set_xlim(0, 1.05 * n_curves + 1.35)
    ax.set_ylim(-1.75, 1.75)
    ax.axis("off")


def logo_svg() -> bytes:
    plt.rcParams["svg.hashsalt"] = "diffnb-logo"
    fig = plt.figure(figsize=(3.2, 1.1))
    ax = fig.add_axes([0, 0, 1, 1])
    draw(ax, n_curves=4, n_dots=60, lw=1.6, dot_size=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", transparent=True, metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return buf.getvalue()


def favicon_png(px: int) -> Image.Image:
    """One density and a little noise: legible at 16 pixels."""
    fig = plt.figure(figsize=(1, 1), dpi=px * 4)
    ax = fig.add_axes([0, 0, 1, 1])
    y = np.linspace(-1.6, 1.6, 200)
    p = mixture_density(y, 1.0, 0.17)
    ax.fill_between(y, 0, p / p.max(), color=BLUE, lw=0)
    ax.scatter([-1.3, 0.0, 1.3], [0.62, 0.3, 0.78], s=60, color=ORANGE, lw=0)
    ax.set_xlim(-1.7, 1.7)
    ax.set_ylim(-0.05, 1.08)
    ax.axis("off")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", transparent=True, metadata={"Software": None})
    plt.close(fig)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGBA").resize((px, px), Image.LANCZOS)


def main():
    assets = ROOT / "assets"
    (assets / "root").mkdir(parents=True, exist_ok=True)
    (assets / "logo.svg").write_bytes(logo_svg())
    big = favicon_png(64)
    big.save(assets / "root" / "favicon.ico", format="ICO", sizes=[(16, 16), (32, 32), (48, 48), (64, 64)])
    print("wrote assets/logo.svg and assets/root/favicon.ico")


if __name__ == "__main__":
    main()
