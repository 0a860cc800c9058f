"""The top-9: for every feature map, the images that excite it most, where, and the image patch
its unit sees.

:func:`top_activations` finds the strongest images of every feature map of some layers (one hit per
image); :func:`receptive_box` gives the input pixels a unit sees, from the spec (the receptive
field and jump of :func:`zfkit.sizes.receptive_fields`), and :func:`crop_box` cuts that box out
of an image. With :func:`zfkit.deconvnet.deconv_project` they make the two halves of a Fig. 2
panel (:func:`zfkit.viz.plot_top9` draws it).

Reference: Zeiler and Fergus (2014), "Visualizing and Understanding Convolutional Networks",
arXiv:1311.2901, Sec. 4 and Fig. 2 ("the top 9 activations in a random subset of feature maps
across the validation data, projected down to pixel space using our deconvolutional network
approach", beside "the corresponding image patches").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .activations import feature_layers, forward_features
from .models import ConvNet
from .sizes import receptive_fields

__all__ = ["TopHit", "top_activations", "receptive_box", "crop_box"]


@dataclass(frozen=True)
class TopHit:
    """One of the strongest activations of a feature map: which image, how strong, and where."""
    image: int
    value: float
    y: int
    x: int


def top_activations(model: ConvNet, images: torch.Tensor, layers: str | Sequence[str], *,
                    k: int = 9, batch_size: int = 64) -> dict[str, dict[int, list[TopHit]]]:
    """For every feature map of ``layers``: the ``k`` images whose strongest unit in that map is
    strongest (one hit per image, as in Zeiler and Fergus's Fig. 2). One forward pass per batch
    serves all the layers.

    Args:
        model: a :class:`ConvNet`.
        images: ``(N, 3, H, W)`` a data set (uint8 is normalised batch by batch).
        layers: a feature layer name, e.g. ``"conv5"``, or several.
        k: hits per feature map.
        batch_size: images per forward pass.
    Returns:
        layer -> channel -> up to ``k`` :class:`TopHit`, strongest first.
    """
    layers = (layers,) if isinstance(layers, str) else tuple(layers)
    order = [l.name for l in feature_layers(model)]
    unknown = [name for name in layers if name not in order]
    if unknown:
        raise ValueError(f"{model.spec.name} has no feature layer(s) {unknown}; "
                         f"choose from {order}")
    deepest = max(layers, key=order.index)
    vals: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    pos: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    widths: dict[str, int] = {}
    for start in range(0, len(images), batch_size):
        record = forward_features(model, images[start:start + batch_size], deepest, keep=layers)
        for name in layers:
            act = record.activations[name]                                 # (b, C, h, w)
            v, p = act.flatten(2).max(dim=2)                               # (b, C) each
            vals[name].append(v.cpu())
            pos[name].append(p.cpu())
            widths[name] = act.shape[-1]
    out: dict[str, dict[int, list[TopHit]]] = {}
    for name in layers:
        v, p = torch.cat(vals[name]), torch.cat(pos[name])                 # (N, C) each
        out[name] = {}
        for c in range(v.shape[1]):
            best = v[:, c].argsort(descending=True, stable=True)[:k]
            out[name][c] = [TopHit(int(i), float(v[i, c]), int(p[i, c]) // widths[name],
                                   int(p[i, c]) % widths[name]) for i in best]
    return out


def receptive_box(model: ConvNet, layer: str, y: int, x: int) -> tuple[int, int, int]:
    """The input pixels that unit ``(y, x)`` of ``layer`` sees: ``(top, left, size)``.

    From the spec: a unit's window starts at ``start + index * jump`` where ``start`` moves back by
    ``padding * jump`` at every conv/pool; ``size`` and ``jump`` come from
    :func:`zfkit.receptive_fields`. The box may reach outside the image (into the zero padding).
    """
    fields = receptive_fields(model.spec)
    start, jump_in = 0, 1                       # jump_in: the jump of the layer's input
    for spec_layer in feature_layers(model, layer):
        if spec_layer.kind in ("conv", "pool"):
            start -= spec_layer.padding * jump_in
        jump_in = fields[spec_layer.name][1]
    rf, jump = fields[layer]
    return start + y * jump, start + x * jump, rf


def crop_box(image: torch.Tensor, box: tuple[int, int, int], fill: int = 128) -> torch.Tensor:
    """Cut ``box = (top, left, size)`` out of ``image (C, H, W)``; parts outside are ``fill``."""
    top, left, size = box
    c, h, w = image.shape
    out = torch.full((c, size, size), fill, dtype=image.dtype)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + size, h), min(left + size, w)
    if y1 > y0 and x1 > x0:
        out[:, y0 - top:y1 - top, x0 - left:x1 - left] = image[:, y0:y1, x0:x1]
    return out
