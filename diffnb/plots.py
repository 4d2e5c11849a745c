"""Figures in one house style.

``figure(...)`` opens a figure in the house style; ``show(fig)`` renders it to a PNG with fixed
metadata and returns an object that notebooks display. Its text form carries a hash of the PNG
bytes, so strict nbval (which compares text, not images) fails when a committed figure is stale.
"""

from __future__ import annotations

import hashlib
import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.axes  # noqa: E402
import matplotlib.figure  # noqa: E402
import torch  # noqa: E402

from . import _checks  # noqa: E402

__all__ = ["STYLE", "COLORS", "figure", "show", "Figure", "density_vs_histogram"]

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "font.size": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
}
COLORS = ["#1f4e79", "#c0504d", "#4f8f3a", "#8064a2", "#d08a1e", "#2c9aa0", "#7f7f7f"]


class Figure:
    """A rendered figure: displays as PNG; its text form names it and hashes the PNG bytes."""

    def __init__(self, png: bytes, title: str):
        self.png, self.title = png, title
        self.sha = hashlib.sha256(png).hexdigest()[:16]

    def _repr_png_(self):
        return self.png

    def __repr__(self):
        return f"<Figure {self.title!r} png sha256:{self.sha}>"


def figure(ncols: int = 1, nrows: int = 1, width: float = 6.4, height: float = 3.6, **kwargs):
    """``plt.subplots`` in the house style. Returns ``(fig, axes)``."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), **kwargs)
        fig.set_layout_engine("constrained")
    for ax in getattr(axes, "flat", [axes]):
        ax.set_prop_cycle(color=COLORS)
        ax.grid(True, alpha=0.3)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return fig, axes


def show(fig, title: str | None = None) -> Figure:
    """Render ``fig`` to PNG (deterministic bytes: no software or date metadata), close it, return it."""
    if not isinstance(fig, matplotlib.figure.Figure):
        raise TypeError(f"fig must be a matplotlib Figure (from plots.figure), got {type(fig).__name__}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str or None, got {type(title).__name__}")
    for ax in fig.axes:
        # Colour bars and axes drawn without axis lines (image grids) carry no x/y quantity to label.
        exempt = ax.get_label() == "<colorbar>" or not ax.axison
        if ax.get_visible() and ax.has_data() and not exempt and not (ax.get_xlabel() and ax.get_ylabel()):
            raise ValueError(f"every plotted axis needs an x and a y label; axis {ax.get_title()!r} lacks one")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    if title is None:
        title = fig._suptitle.get_text() if fig._suptitle is not None else (fig.axes[0].get_title() if fig.axes else "")
    return Figure(buf.getvalue(), title)


def density_vs_histogram(ax, samples: torch.Tensor, mixture, bins: int = 200, label: str = "samples",
                         x_range=(-0.7, 0.8), color=None):
    """A histogram of 1-D samples (as a density) over the exact mixture density.

    ``samples``: a finite floating tensor of shape (n,) or (n, 1); ``mixture``: a 1-D mixture with
    ``log_prob`` (``diffnb.toy.GaussianMixture``); ``x_range``: (lo, hi) with lo < hi."""
    if not isinstance(ax, matplotlib.axes.Axes):
        raise TypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}")
    samples = _checks.batch(samples, "samples")
    if samples.ndim > 2 or (samples.ndim == 2 and samples.shape[1] != 1):
        raise ValueError(f"samples must have shape (n,) or (n, 1), got {tuple(samples.shape)}")
    if not callable(getattr(mixture, "log_prob", None)) or not hasattr(mixture, "dim"):
        raise TypeError(f"mixture must be a mixture with log_prob (e.g. diffnb.toy.GaussianMixture), "
                        f"got {type(mixture).__name__}")
    if mixture.dim != 1:
        raise ValueError(f"mixture must be 1-D, got dim={mixture.dim}")
    _checks.positive_int(bins, "bins")
    if not isinstance(label, str):
        raise TypeError(f"label must be a str, got {type(label).__name__}")
    if (not isinstance(x_range, (tuple, list)) or len(x_range) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in x_range)):
        raise TypeError(f"x_range must be a (lo, hi) pair of numbers, got {x_range!r}")
    if not (math.isfinite(x_range[0]) and math.isfinite(x_range[1]) and x_range[0] < x_range[1]):
        raise ValueError(f"x_range must be finite with lo < hi, got {x_range!r}")
    x = samples.reshape(-1).to(torch.float64).cpu().numpy()
    ax.hist(x, bins=bins, range=x_range, density=True, alpha=0.55, label=label, color=color or COLORS[0])
    grid = torch.linspace(*x_range, 2000, dtype=torch.float64)
    ax.plot(grid.numpy(), mixture.log_prob(grid[:, None]).exp().numpy(), color="black", lw=1.0, label="exact density")
    ax.set_xlabel("$x_0$")
    ax.set_ylabel("density")
    ax.set_xlim(*x_range)
