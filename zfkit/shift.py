"""Shift consistency: does a network give a shifted image the same class?

Strided convolution and pooling sample their input on a coarse grid, so a shift of a few pixels
can change what the net sees; the smaller stride of ZFNet's first layers is meant to alias less.
:func:`shift_consistency` is Zhang's measure (two random shifts of each image: how often do they get
the same class), :func:`consistency_by_shift` the same against a growing diagonal shift;
:func:`zfkit.viz.plot_shift_consistency` draws the curve.

References: Zeiler and Fergus (2014), "Visualizing and Understanding Convolutional Networks",
arXiv:1311.2901, Sec. 4 "Feature Invariance" and Fig. 5 (the input translated, scaled and
rotated, against the features and the output); Zhang (2019), "Making Convolutional Networks
Shift-Invariant Again" (consistency).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .activations import as_input, evaluating, model_device

__all__ = ["shift_images", "ShiftConsistency", "shift_consistency", "consistency_by_shift"]


def shift_images(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Move image content by ``(dy, dx)`` pixels (down/right positive), keeping the size.

    The strip uncovered at the border is filled by reflecting the image, so both copies are whole
    images of the same size, as with the two random crops of Zhang (2019).
    """
    x = as_input(images)                                                    # (B, 3, H, W)
    m = max(abs(dy), abs(dx))
    if m == 0:
        return x
    if m >= min(x.shape[-2:]):
        raise ValueError(f"shift {m} must be smaller than the image ({tuple(x.shape[-2:])})")
    padded = F.pad(x, (m, m, m, m), mode="reflect")                       # (B, 3, H+2m, W+2m)
    h, w = x.shape[-2:]
    return padded[:, :, m - dy:m - dy + h, m - dx:m - dx + w]


def _predict(model: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    device = model_device(model)
    with evaluating(model):
        return torch.cat([model(images[i:i + batch_size].to(device)).argmax(1).cpu()
                          for i in range(0, len(images), batch_size)])


@dataclass
class ShiftConsistency:
    """How often two shifted copies of an image get the same class (Zhang 2019).

    Attributes:
        consistency: the fraction of pairs that agree.
        agree: ``(N,)`` per image, whether its two copies agree.
        max_shift: offsets were drawn from ``[0, max_shift]`` on each axis.
    """
    consistency: float
    agree: torch.Tensor
    max_shift: int


def shift_consistency(model: nn.Module, images: torch.Tensor, *, max_shift: int = 16,
                      seed: int = 0, batch_size: int = 64) -> ShiftConsistency:
    """Zhang's consistency: each image is shifted by two random offsets and both are classified.

    Args:
        model: a classifier.
        images: ``(N, 3, H, W)``.
        max_shift: offsets are uniform in ``[0, max_shift]`` per axis, drawn with ``seed``.
        seed: the seed of the offsets (the same seed gives both nets the same pairs).
        batch_size: images per forward pass.
    Returns:
        A :class:`ShiftConsistency`.
    """
    rng = random.Random(seed)
    offsets = [[(rng.randint(0, max_shift), rng.randint(0, max_shift)) for _ in range(2)]
               for _ in range(len(images))]
    agree = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        copies = [torch.cat([shift_images(chunk[i:i + 1], *offsets[start + i][j])
                             for i in range(len(chunk))]) for j in (0, 1)]   # 2 x (b, 3, H, W)
        first, second = (_predict(model, c, batch_size) for c in copies)
        agree.append(first == second)
    same = torch.cat(agree)                                                # (N,)
    return ShiftConsistency(float(same.float().mean()), same, max_shift)


def consistency_by_shift(model: nn.Module, images: torch.Tensor, shifts: list[int], *,
                         batch_size: int = 64) -> torch.Tensor:
    """For each diagonal shift ``s``, the fraction of images whose class is the same as unshifted.

    Args:
        model: a classifier.
        images: ``(N, 3, H, W)``.
        shifts: shifts in pixels (applied to both axes).
        batch_size: images per forward pass.
    Returns:
        ``(len(shifts),)`` fractions in [0, 1].
    """
    x = as_input(images)                                 # normalised once, shifted below
    reference = _predict(model, x, batch_size)                              # (N,)
    fractions = []
    for s in shifts:
        shifted = reference if s == 0 else _predict(model, shift_images(x, s, s), batch_size)
        fractions.append(float((shifted == reference).float().mean()))
    return torch.tensor(fractions)
