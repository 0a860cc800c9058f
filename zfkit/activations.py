"""Running a network's feature layers and recording what they leave behind: every activation and
the switches (argmax positions) of every max-pool, as the deconvnet needs them.

Every probe of :mod:`zfkit.probe` starts here. Each takes a :class:`~zfkit.models.ConvNet` (it walks
``model.spec`` and ``model.layer_index``, so it works for every registered architecture) and
images as a tensor ``(B, 3, H, W)``: ``uint8`` images (the cached crops) are normalised here with
the seed's recipe (mean 0.5, std 0.5 per channel, :func:`as_input`); float images are taken as
already normalised. Models are run in evaluation mode and their training flag is restored
afterwards (:func:`evaluating`).

Reference: Zeiler and Fergus (2014), "Visualizing and Understanding Convolutional Networks",
arXiv:1311.2901, Sec. 2.1: "the max pooling operation is non-invertible, however we can obtain an
approximate inverse by recording the locations of the maxima within each pooling region in a set
of switch variables".
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .batches import MEAN, STD, normalize_batch
from .models import ConvNet
from .specs import Layer

__all__ = [
    "as_input", "to_display", "evaluating", "model_device", "feature_layers", "ForwardRecord",
    "forward_features",
]


def as_input(images: torch.Tensor) -> torch.Tensor:
    """Model input from images: ``uint8`` pixels are normalised exactly as in training
    (:func:`zfkit.data.normalize_batch`, no flip); float passes as is (float64 stays float64).

    Args:
        images: ``(B, 3, H, W)`` or ``(3, H, W)``.
    Returns:
        A float tensor ``(B, 3, H, W)``.
    """
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return normalize_batch(images)
    return images if images.is_floating_point() else images.float()


def to_display(image: torch.Tensor) -> np.ndarray:
    """An image ``(3, H, W)`` (uint8, or float normalised by :func:`as_input`) as an ``(H, W, 3)``
    array of floats in [0, 1] for ``imshow``."""
    if image.dtype == torch.uint8:
        out = image.float() / 255.0
    else:
        out = image.detach().float() * STD + MEAN
    return out.clamp(0, 1).permute(1, 2, 0).cpu().numpy()


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode without gradients, then restore its training flag."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def model_device(model: nn.Module) -> torch.device:
    """Where ``model`` lives (the CPU for a model without parameters)."""
    first = next(model.parameters(), None)
    return torch.device("cpu") if first is None else first.device


def feature_layers(model: ConvNet, upto: str | None = None) -> list[Layer]:
    """The feature layers of ``model.spec`` in order (conv, pool, lrn), ending at ``upto``."""
    stages = [l for l in model.spec.layers if l.kind != "fc"]
    if upto is None:
        return stages
    names = [l.name for l in stages]
    if upto not in names:
        raise ValueError(f"{model.spec.name} has no feature layer {upto!r}; choose one of {names}")
    return stages[: names.index(upto) + 1]


@dataclass
class ForwardRecord:
    """What a forward pass through the feature layers leaves behind.

    Attributes:
        activations: layer name -> its output ``(B, C, H, W)`` (after the ReLU for a conv layer).
        switches: pool name -> the argmax indices of ``max_pool2d`` (flat over the pool's input).
        input_sizes: layer name -> ``(H, W)`` of that layer's input.
    """
    activations: dict[str, torch.Tensor] = field(default_factory=dict)
    switches: dict[str, torch.Tensor] = field(default_factory=dict)
    input_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)


def forward_features(model: ConvNet, images: torch.Tensor, upto: str | None = None, *,
                     keep: tuple[str, ...] | None = None) -> ForwardRecord:
    """Run the feature layers of ``model`` up to ``upto`` and record activations and switches.

    Runs without gradients and in eval mode (feature layers have no dropout, so this only matters
    for the record's consistency).

    Args:
        model: a :class:`ConvNet`.
        images: ``(B, 3, H, W)``, see :func:`as_input`.
        upto: the last layer to run (default: all feature layers).
        keep: layer names whose activations to keep (default: all); switches are always kept.
    Returns:
        A :class:`ForwardRecord`.
    """
    x = as_input(images).to(model_device(model))
    record = ForwardRecord()
    with evaluating(model):
        for layer in feature_layers(model, upto):
            module = model.features[model.layer_index[layer.name]]
            record.input_sizes[layer.name] = (x.shape[-2], x.shape[-1])
            if layer.kind == "conv":
                x = F.relu(module(x))                       # (B, C_out, H', W')
            elif layer.kind == "pool":
                x, idx = F.max_pool2d(x, module.kernel_size, module.stride, module.padding,
                                      module.dilation, ceil_mode=module.ceil_mode,
                                      return_indices=True)  # both (B, C, H', W')
                record.switches[layer.name] = idx
            else:  # lrn keeps the shape
                x = module(x)
            if keep is None or layer.name in keep:
                record.activations[layer.name] = x
    return record
