"""Images for display: one scaling rule for signed images, and mosaics of tiles.

Filters and deconvnet projections have signs. :data:`SIGNED_SCALING` states the one rule every
figure of the book uses for them: each image is divided by its own largest absolute value and
mapped to [0, 1] with 0 at mid-grey, so the sign of a weight is its colour and nothing is clipped
(:func:`signed_to_unit`). :func:`mosaic` lays tiles out in rows, :func:`filter_mosaic` a whole
first-layer filter bank; :func:`image_axes` strips an axes' ticks for an image.

Reference: Zeiler and Fergus (2014), Fig. 2 and Fig. 6 (projections and first-layer filters shown
as tiles); Krizhevsky et al. (2012), Fig. 3 (AlexNet's conv1 kernels as one mosaic).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes

__all__ = ["SIGNED_SCALING", "signed_to_unit", "mosaic", "filter_mosaic", "image_axes"]

SIGNED_SCALING = ("each image is divided by its own largest absolute value and shown with 0 as "
                  "mid-grey (positive towards full colour, negative towards its complement)")


def signed_to_unit(x: torch.Tensor) -> np.ndarray:
    """``x (C, H, W)`` scaled by :data:`SIGNED_SCALING` into an ``(H, W, C)`` array in [0, 1]."""
    x = x.detach().float().cpu()
    peak = x.abs().max().clamp_min(1e-12)
    return (x / peak * 0.5 + 0.5).permute(1, 2, 0).numpy()


def mosaic(tiles: Sequence[np.ndarray | torch.Tensor], ncols: int, *, gap: int = 1,
           fill: float = 1.0) -> np.ndarray:
    """Tiles ``(h, w, C)`` of one size laid out in rows of ``ncols``, ``gap`` pixels of ``fill``
    between them and around them.

    Returns:
        ``(rows * (h + gap) + gap, ncols * (w + gap) + gap, C)`` array.
    """
    tiles = [np.asarray(t, dtype=np.float32) for t in tiles]
    if not tiles:
        raise ValueError("mosaic needs at least one tile")
    h, w, c = tiles[0].shape
    rows = -(-len(tiles) // ncols)
    out = np.full((rows * (h + gap) + gap, ncols * (w + gap) + gap, c), fill, dtype=np.float32)
    for i, tile in enumerate(tiles):
        r, q = divmod(i, ncols)
        out[gap + r * (h + gap):gap + r * (h + gap) + h,
            gap + q * (w + gap):gap + q * (w + gap) + w] = tile
    return out


def filter_mosaic(weight: torch.Tensor, ncols: int = 8, *, gap: int = 1) -> np.ndarray:
    """First-layer filters ``(F, 3, k, k)`` as one RGB image, each scaled by :data:`SIGNED_SCALING`.

    Returns:
        ``(H, W, 3)`` in [0, 1], one image pixel per filter weight, white gaps.
    """
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise ValueError(f"expected RGB filters (F, 3, k, k), got {tuple(weight.shape)}")
    return mosaic([signed_to_unit(w) for w in weight], ncols, gap=gap)


def image_axes(ax: Axes) -> None:
    """No ticks, grid or frame: an axes that shows an image."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
