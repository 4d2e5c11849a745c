"""Small real data sets that ship inside an installed package (no download).

Notation::

    digits   scikit-learn's 8x8 handwritten digits (UCI), 1,797 images of 64 pixels with values 0..16,
             scaled to x = pixel / 8 - 1 in [-1, 1] (the range diffusion models expect), flattened
             row by row; labels 0..9.

``sklearn.datasets.load_digits`` reads the copy inside the scikit-learn wheel, so this works offline.
"""

from __future__ import annotations

import torch

__all__ = ["digits", "DIGITS_SHAPE"]

DIGITS_SHAPE = (8, 8)  # images.reshape(-1, *DIGITS_SHAPE) gives the pictures
_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)``: float64 ``(1797, 64)`` in [-1, 1] and int64 ``(1797,)`` in 0..9.

    Loaded once per process; each call returns fresh copies, so a caller may modify them."""
    if "digits" not in _cache:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = torch.as_tensor(bunch.data, dtype=torch.float64) / 8 - 1
        labels = torch.as_tensor(bunch.target, dtype=torch.int64)
        _cache["digits"] = (images, labels)
    images, labels = _cache["digits"]
    return images.clone(), labels.clone()
