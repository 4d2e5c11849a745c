"""Helpers of Chapter 7 (8x8 digits): image mosaics, nearest-neighbour distances, paired
bootstrap and paired-share statistics (the Frechet floor of halves of the data is
``metrics.FrechetHalves``).

Notation::

    X          the training digits, (N, 64) in [-1, 1], N = 1797
    d_1, d_2   Euclidean distances from an image to its nearest and second-nearest training image
               (for a training image itself: leave-one-out, the image excluded)
    ratio      d_1 / d_2: close to 0 for a copy of a training image, close to 1 for an image no nearer
               to one training image than to the next (the memorisation test of Yoon et al. 2023)
    FD         Frechet distance ``metrics.frechet_distance`` between feature sets; its floor over
               halves of the data is ``metrics.FrechetHalves``
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from . import _checks, bakeoff, metrics

__all__ = ["mosaic", "image_rows", "Neighbours", "neighbours", "leave_one_out", 
           "paired_share_gap", "median_distance", "compact_table",
           "paired_bootstrap_sd"]


def mosaic(images, ncol: int, pad: int = 1, fill: float = 1.0) -> np.ndarray:
    """The rows of ``images`` (n, 64) as 8x8 tiles in a grid of ``ncol`` columns, separated by
    ``pad`` pixels of value ``fill`` (white on the book's grey map, where -1 is black)."""
    x = _checks.batch(images, "images").detach().to(torch.float64).cpu().clamp(-1, 1)
    if x.ndim != 2 or x.shape[1] != 64:
        raise ValueError(f"images must have shape (n, 64), got {tuple(x.shape)}")
    _checks.positive_int(ncol, "ncol")
    n = x.shape[0]
    nrow = -(-n // ncol)
    out = np.full((nrow * (8 + pad) + pad, ncol * (8 + pad) + pad), fill)
    for k in range(n):
        r, c = divmod(k, ncol)
        out[pad + r * (8 + pad): pad + r * (8 + pad) + 8,
            pad + c * (8 + pad): pad + c * (8 + pad) + 8] = x[k].reshape(8, 8).numpy()
    return out


def image_rows(ax, rows, pad: int = 1, fontsize: float = 8, col_labels=None, col_title=None):
    """Draw ``rows`` = [(label, images (m, 64)), ...] as one mosaic, one row of tiles per entry, each
    row labelled on the left; the axis is turned off (an image, not a plot of quantities). Digits are
    drawn dark on light (pixel value 1 = ink). ``col_labels`` (one string per column) are written above
    the columns, with ``col_title`` to their left (e.g. the quantity the labels are values of)."""
    rows = list(rows)
    if not rows:
        raise ValueError("rows must hold at least one (label, images) pair")
    m = max(int(im.shape[0]) for _, im in rows)
    if col_labels is not None and len(col_labels) != m:
        raise ValueError(f"col_labels must have one label per column ({m}), got {len(col_labels)}")
    tiles = []
    for _, im in rows:
        im = im.detach().to(torch.float64).cpu()
        blank = torch.full((m - im.shape[0], 64), -1.0, dtype=torch.float64)
        tiles.append(torch.cat([im, blank]))
    grid = mosaic(torch.cat(tiles), m, pad=pad, fill=-1.0)
    ax.imshow(-grid, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    for r, (label, _) in enumerate(rows):
        ax.text(-1.5, pad + r * (8 + pad) + 4, label, ha="right", va="center", fontsize=fontsize)
    if col_labels is not None:
        for c, label in enumerate(col_labels):
            ax.text(pad + c * (8 + pad) + 3.5, -0.5, label, ha="center", va="bottom", fontsize=fontsize)
        if col_title is not None:
            ax.text(-1.5, -0.5, col_title, ha="right", va="bottom", fontsize=fontsize)
    ax.axis("off")


class _NeighbourFields(NamedTuple):
    d1: torch.Tensor
    d2: torch.Tensor
    index: torch.Tensor


class Neighbours(_NeighbourFields):
    """Nearest-neighbour distances of a batch to the training images: ``d1`` and ``d2`` (n,) finite and
    >= 0, ``index`` (n,) integers."""

    __slots__ = ()

    def __new__(cls, d1, d2, index):
        for v, name in ((d1, "d1"), (d2, "d2")):
            v = _checks.batch(v, name)
            if v.ndim != 1:
                raise ValueError(f"{name} must be 1-D (one distance per image), got shape {tuple(v.shape)}")
            if bool((v < 0).any()):
                raise ValueError(f"{name} must hold distances (>= 0), but it holds negative values")
        if not isinstance(index, torch.Tensor):
            raise TypeError(f"index must be a torch.Tensor, got {type(index).__name__}")
        if index.dtype.is_floating_point or index.dtype.is_complex or index.dtype == torch.bool:
            raise TypeError(f"index must be an integer tensor, got dtype {index.dtype}")
        if not d1.shape == d2.shape == index.shape:
            raise ValueError(f"d1, d2 and index must have the same shape, got {tuple(d1.shape)}, "
                             f"{tuple(d2.shape)} and {tuple(index.shape)}")
        return super().__new__(cls, d1, d2, index)

    @property
    def ratio(self) -> torch.Tensor:
        return self.d1 / self.d2


def neighbours(x, X, exclude_self: bool = False) -> Neighbours:
    """d_1, d_2 and the index of the nearest row of ``X`` for every row of ``x`` (float64).
    ``exclude_self``: ``x`` is ``X`` itself and each row's own distance 0 is skipped (leave-one-out)."""
    x = _checks.batch(x, "x").to(torch.float64)
    X = _checks.batch(X, "X").to(torch.float64)
    if x.ndim != 2 or X.ndim != 2 or x.shape[1] != X.shape[1]:
        raise ValueError(f"x and X must be (n, d) and (N, d), got {tuple(x.shape)} and {tuple(X.shape)}")
    if exclude_self and x.shape != X.shape:
        raise ValueError("exclude_self needs x to be X itself")
    sq = (x * x).sum(1, keepdim=True) - 2 * x @ X.T + (X * X).sum(1)
    if exclude_self:
        sq.fill_diagonal_(float("inf"))
    vals, idx = sq.clamp(min=0).topk(2, dim=1, largest=False)
    # distances recomputed directly (the expanded form loses digits for near copies)
    d1 = (x - X[idx[:, 0]]).norm(dim=1)
    d2 = (x - X[idx[:, 1]]).norm(dim=1)
    return Neighbours(d1, d2, idx[:, 0])


def leave_one_out(X) -> Neighbours:
    """Every training image's d_1, d_2 to the others: the typical spacing of the data."""
    return neighbours(X, X, exclude_self=True)


def paired_bootstrap_sd(score, fa, fb, n_boot: int = 200, seed: int = 0) -> float:
    """Standard deviation of score(fa) - score(fb) under a paired bootstrap: the same resampled rows
    of both (rows of fa and fb belong together, e.g. samples from the same x_T)."""
    _checks.callable_(score, "score")
    if fa.shape[0] != fb.shape[0]:
        raise ValueError(f"fa and fb must have the same rows, got {fa.shape[0]} and {fb.shape[0]}")
    g = torch.Generator().manual_seed(seed)
    diffs = []
    for _ in range(_checks.positive_int(n_boot, "n_boot", minimum=2)):
        i = torch.randint(0, fa.shape[0], (fa.shape[0],), generator=g)
        diffs.append(score(fa[i]) - score(fb[i]))
    return float(torch.tensor(diffs, dtype=torch.float64).std())


def paired_share_gap(a, b):
    """(gap, sd) for two boolean outcomes on the same items (e.g. "ended on another training image"
    for two samplers from the same x_T): gap = share(a) - share(b), and its standard error from the
    discordant items only (McNemar), sqrt(n_ab + n_ba - n (gap)^2) / n."""
    a, b = torch.as_tensor(a, dtype=torch.bool), torch.as_tensor(b, dtype=torch.bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be 1-D with the same length, got {tuple(a.shape)} and {tuple(b.shape)}")
    n = a.numel()
    n_ab, n_ba = int((a & ~b).sum()), int((~a & b).sum())
    gap = (n_ab - n_ba) / n
    return gap, max(n_ab + n_ba - n * gap**2, 0.0) ** 0.5 / n


def median_distance(x, reference) -> float:
    """The median over samples of the Euclidean distance |x_i - reference_i| (robust to a few samples
    that land far away)."""
    x, reference = _checks.batch(x, "x"), _checks.batch(reference, "reference")
    if x.shape != reference.shape:
        raise ValueError(f"reference must have x's shape {tuple(x.shape)}, got {tuple(reference.shape)}")
    return float((x - reference).reshape(x.shape[0], -1).norm(dim=1).median())


def compact_table(rows: dict, fmt: str = "{:.2g}") -> str:
    """A narrow text table of ``bakeoff.bake`` rows for deterministic entries: one line per entry, its
    score at each budget, followed by the model calls spent in brackets where fewer than the budget
    (a singlestep solver's last interval); each line at most 18 + 12 per budget characters."""
    if not isinstance(rows, dict):
        raise TypeError(f"rows must be a dict name -> {{budget: bakeoff.Cell}}, got {type(rows).__name__}")
    for name, cells in rows.items():
        if not isinstance(name, str) or not isinstance(cells, dict):
            raise TypeError(f"rows must map entry names (str) to dicts {{budget: bakeoff.Cell}}, got "
                            f"{type(name).__name__} -> {type(cells).__name__}")
        for b, c in cells.items():
            if isinstance(b, bool) or not isinstance(b, int) or not isinstance(c, bakeoff.Cell):
                raise TypeError(f"rows[{name!r}] must map int budgets to bakeoff.Cell, got "
                                f"{type(b).__name__} -> {type(c).__name__}")
    if not isinstance(fmt, str):
        raise TypeError(f"fmt must be a format string such as '{{:.2g}}', got {type(fmt).__name__}")
    budgets = sorted({b for cells in rows.values() for b in cells})
    lines = [" " * 18 + "".join(f"{f'{b} calls':>12s}" for b in budgets)]
    for name, cells in rows.items():
        out = []
        for b in budgets:
            c = cells.get(b)
            text = "-" if c is None else fmt.format(c.mean) + ("" if c.nfe == b else f" ({c.nfe})")
            out.append(f"{text:>12s}")
        lines.append(f"{name[:17]:18s}" + "".join(out))
    return "\n".join(lines)
