"""Occlusion sensitivity: slide a grey square over an image and map the probability of the true
class at every position of the square.

If the network really uses the object, covering the object makes the probability drop; covering
the background does not. :func:`occlusion_map` runs the experiment for one image, in batches of
occluded copies; :func:`zfkit.viz.plot_occlusion` draws the map.

Reference: Zeiler and Fergus (2014), "Visualizing and Understanding Convolutional Networks",
arXiv:1311.2901, Sec. 4.2 "Occlusion Sensitivity" and Fig. 7 (d) (the classifier's probability of
the correct class as a function of the grey square's position).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .activations import as_input, evaluating, model_device
from .batches import MEAN, STD

__all__ = ["OcclusionConfig", "OcclusionResult", "occlusion_map"]


@dataclass(frozen=True)
class OcclusionConfig:
    """The grey square of the occlusion experiment (Zeiler and Fergus, Sec. 4.2, Fig. 7).

    Args:
        patch: side of the square in pixels.
        stride: step between square positions.
        grey: the square's intensity in [0, 1] (0.5 is 0 after the seed's normalisation).
        batch_size: occluded copies per forward pass.
    """
    patch: int = 47
    stride: int = 12
    grey: float = 0.5
    batch_size: int = 64


@dataclass
class OcclusionResult:
    """Attributes:
        prob: ``(ny, nx)`` probability of ``target`` with the square at each position.
        top_class: ``(ny, nx)`` the most probable class at each position.
        base_prob: probability of ``target`` without occlusion.
        target: the class whose probability is mapped.
        ys, xs: top/left pixel of the square for each row/column of the map.
        patch: the square's side.
    """
    prob: torch.Tensor
    top_class: torch.Tensor
    base_prob: float
    target: int
    ys: list[int]
    xs: list[int]
    patch: int


def occlusion_map(model: nn.Module, image: torch.Tensor, target: int,
                  config: OcclusionConfig = OcclusionConfig()) -> OcclusionResult:
    """Slide a grey square over ``image`` and record the probability of ``target`` at each place.

    Args:
        model: any classifier of ``(B, 3, H, W)`` (logits out).
        image: ``(3, H, W)``, see :func:`as_input`.
        target: the class index (usually the true class).
        config: square size, stride, grey level, batch size.
    Returns:
        An :class:`OcclusionResult`; positions run ``0, stride, ...`` while the square fits, so
        the squares cover the whole image when ``stride`` divides ``H - patch`` (227: patch 47,
        stride 12 or 18).
    """
    x = as_input(image).to(model_device(model))                       # (1, 3, H, W)
    _, _, h, w = x.shape
    if not 0 < config.patch <= min(h, w):
        raise ValueError(f"patch must be in [1, {min(h, w)}], got {config.patch}")
    ys = list(range(0, h - config.patch + 1, config.stride))
    xs = list(range(0, w - config.patch + 1, config.stride))
    grey = (config.grey - MEAN) / STD
    places = [(y, x0) for y in ys for x0 in xs]
    probs, tops = [], []
    with evaluating(model):
        base_prob = float(model(x).softmax(1)[0, target])
        for start in range(0, len(places), config.batch_size):
            chunk = places[start:start + config.batch_size]
            batch = x.repeat(len(chunk), 1, 1, 1)                # (b, 3, H, W)
            for i, (y, x0) in enumerate(chunk):
                batch[i, :, y:y + config.patch, x0:x0 + config.patch] = grey
            p = model(batch).softmax(1)                          # (b, classes)
            probs.append(p[:, target].cpu())
            tops.append(p.argmax(1).cpu())
    shape = (len(ys), len(xs))
    return OcclusionResult(torch.cat(probs).view(shape), torch.cat(tops).view(shape), base_prob,
                           target, ys, xs, config.patch)
