"""The deconvnet of Zeiler and Fergus: one feature map projected back to pixel space.

Forward to a layer recording the pooling switches (:func:`zfkit.activations.forward_features`),
keep one channel, then walk back: unpool with the switches (:func:`unpool_sum`), rectify, and
apply the transposed filters with the ``output_padding`` that restores each layer's exact input
size (:func:`deconv_output_padding`). :func:`deconv_project` does the whole walk.

Reference: Zeiler and Fergus (2014), "Visualizing and Understanding Convolutional Networks",
arXiv:1311.2901, Sec. 2.1 (unpooling, rectification, filtering with "transposed versions of the
same filters") and Fig. 1; the projections of Fig. 2 (see :mod:`zfkit.top9`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .activations import feature_layers, forward_features
from .models import ConvNet

__all__ = ["unpool_sum", "deconv_output_padding", "deconv_project"]


def unpool_sum(values: torch.Tensor, switches: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo a max-pool with its recorded switches, *adding* values that share a switch.

    With overlapping windows (3x3, stride 2) one input pixel can be the maximum of two windows;
    ``F.max_unpool2d`` then keeps only one of the two values (it overwrites), this adds them, which
    is also what the gradient of ``max_pool2d`` does.

    Args:
        values: ``(B, C, h, w)`` the signal at the pool's output.
        switches: ``(B, C, h, w)`` the indices returned by ``max_pool2d(..., return_indices=True)``.
        size: ``(H, W)`` of the pool's input.
    Returns:
        ``(B, C, H, W)``, zero except at the switch positions.
    """
    if values.shape != switches.shape:
        raise ValueError(f"values {tuple(values.shape)} and switches {tuple(switches.shape)} "
                         "must have the same shape")
    b, c = values.shape[:2]
    out = values.new_zeros(b, c, size[0] * size[1])
    out.scatter_add_(2, switches.flatten(2), values.flatten(2))  # (B, C, H*W)
    return out.view(b, c, size[0], size[1])


def deconv_output_padding(out_size: int, in_size: int, kernel: int, stride: int,
                          padding: int) -> int:
    """The ``output_padding`` that makes ``conv_transpose2d`` return exactly ``in_size``.

    ``conv_transpose2d`` gives ``(out_size - 1) * stride - 2 * padding + kernel + output_padding``;
    the rows a strided convolution skipped at the bottom/right edge are what output_padding adds.

    Raises:
        RuntimeError: when no ``0 <= output_padding < stride`` restores ``in_size`` (the layer
            does not fit the recorded sizes: a bug, not a user error).
    """
    op = in_size - ((out_size - 1) * stride - 2 * padding + kernel)
    if not 0 <= op < stride:
        raise RuntimeError(f"cannot restore input size {in_size} from {out_size} with kernel "
                           f"{kernel}, stride {stride}, padding {padding} (output_padding {op})")
    return op


def _select(activation: torch.Tensor, channel: int, mode: str) -> torch.Tensor:
    """The deconvnet's starting signal: one channel's strongest unit, or its whole map."""
    b, c, h, w = activation.shape
    if not 0 <= channel < c:
        raise ValueError(f"channel must be in [0, {c}), got {channel}")
    signal = torch.zeros_like(activation)
    chosen = activation[:, channel]                              # (B, h, w)
    if mode == "map":
        signal[:, channel] = chosen
    elif mode == "max":
        flat = chosen.flatten(1)                                 # (B, h*w)
        best = flat.argmax(dim=1)                                # (B,)
        picked = torch.zeros_like(flat).scatter_(1, best[:, None], flat.gather(1, best[:, None]))
        signal[:, channel] = picked.view(b, h, w)
    else:
        raise ValueError(f"mode must be 'max' (the strongest unit) or 'map', got {mode!r}")
    return signal


def deconv_project(model: ConvNet, images: torch.Tensor, layer: str, channel: int, *,
                   mode: str = "max") -> torch.Tensor:
    """Project one feature map back to pixel space with Zeiler and Fergus's deconvnet (Sec. 2.1).

    Forward to ``layer`` recording the pooling switches, keep only ``channel`` (its strongest unit,
    ``mode="max"`` as in the paper's figures, or its whole map, ``mode="map"``), zero every other
    activation, then walk back: unpool with the switches (:func:`unpool_sum`), rectify, and apply
    the transposed filters (``conv_transpose2d`` with the layer's stride and padding, no bias, and
    the ``output_padding`` that restores each layer's exact input size).

    Departure: LRN layers (``alexnet-paper``, ``zfnet-paper``) are passed through unchanged on the
    way back: the paper does not say how it inverts contrast normalisation, and the identity is the
    simplest reading.

    Args:
        model: a :class:`ConvNet`.
        images: ``(B, 3, H, W)``, see :func:`as_input`.
        layer: a feature layer name, e.g. ``"conv3"`` (after its ReLU) or ``"pool2"``.
        channel: the feature map to project.
        mode: ``"max"`` or ``"map"``.
    Returns:
        ``(B, 3, H, W)`` projections in input space (same scale as the activation).
    """
    record = forward_features(model, images, layer, keep=(layer,))
    signal = _select(record.activations[layer], channel, mode)   # (B, C_layer, h, w)
    with torch.no_grad():
        for spec_layer in reversed(feature_layers(model, layer)):
            module = model.features[model.layer_index[spec_layer.name]]
            size = record.input_sizes[spec_layer.name]
            if spec_layer.kind == "conv":
                signal = F.relu(signal)                              # rectify
                k, s, p = spec_layer.kernel, spec_layer.stride, spec_layer.padding
                pad_h = deconv_output_padding(signal.shape[-2], size[0], k, s, p)
                pad_w = deconv_output_padding(signal.shape[-1], size[1], k, s, p)
                signal = F.conv_transpose2d(signal, module.weight, None, s, p, (pad_h, pad_w),
                                            spec_layer.groups)     # (B, C_in, H, W)
            elif spec_layer.kind == "pool":
                signal = unpool_sum(signal, record.switches[spec_layer.name], size)
            # lrn: identity on the way back (see the docstring)
            if tuple(signal.shape[-2:]) != tuple(size):
                raise RuntimeError(f"deconvnet at {spec_layer.name}: got "
                                   f"{tuple(signal.shape[-2:])}, expected the layer's input "
                                   f"size {size}")
    return signal
