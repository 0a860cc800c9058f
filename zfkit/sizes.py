"""Output-size arithmetic: the conv/pool formula, a spec walked layer by layer, receptive fields.

This is the one place that turns a spec (:mod:`zfkit.specs`) into sizes, so that the network
(:mod:`zfkit.models` sizes fc6 with :func:`feature_shape`) and the layer tables
(:mod:`zfkit.shapes`) use the same numbers and neither needs the other. Nothing here runs a
network.

References:
    Dumoulin and Visin (2016), "A guide to convolution arithmetic for deep learning" (the
    formula). Krizhevsky et al. (2012), Sec. 3.5 and Fig. 2 (AlexNet's 224 vs 227 input); Zeiler
    and Fergus (2014), Fig. 3 (ZFNet's 110-55-26-13-13-13-6 sizes, which need Caffe's rounding).
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

from .specs import ArchSpec, Layer, get_spec

__all__ = ["conv_output_size", "Step", "feature_steps", "feature_shape", "receptive_fields"]


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length along one dimension of ``nn.Conv2d``, ``nn.MaxPool2d`` or ``nn.AvgPool2d``.

    ``out = floor((size + 2*padding - dilation*(kernel_size-1) - 1) / stride) + 1``; with
    ``ceil_mode`` the division rounds up, except that the last window must start inside the input
    or the left padding, otherwise it is dropped (Caffe's pooling rule, which PyTorch kept). In
    ceil mode a window may be wider than the padded input, as PyTorch's pooling allows, as long as
    one window is left. Integer arithmetic throughout, so the answer is exact for any size.

    Args:
        size: input length (pixels).
        kernel_size, stride, padding, dilation: the layer's arguments along this dimension.
        ceil_mode: round up instead of down (pooling only; Caffe always rounds up).
    Returns:
        The output length, equal to PyTorch's whenever PyTorch accepts the settings (pooling also
        requires ``padding <= kernel_size // 2``, which is not checked here: convolutions do not).
    Raises:
        ValueError: naming the argument, for a non-integer, a kernel/stride/dilation below 1, a
            negative padding or size, or a window larger than the padded input (in ceil mode: one
            that leaves no output).
    """
    size = _check_int("size", size, 0)
    kernel_size = _check_int("kernel_size", kernel_size, 1)
    stride = _check_int("stride", stride, 1)
    padding = _check_int("padding", padding, 0)
    dilation = _check_int("dilation", dilation, 1)
    if not isinstance(ceil_mode, bool):
        raise ValueError(f"ceil_mode must be True or False, got {ceil_mode!r}")
    span = dilation * (kernel_size - 1) + 1          # the window's extent in input pixels
    padded = size + 2 * padding
    if ceil_mode:
        out = -(-(padded - span) // stride) + 1      # ceiling division, in integers
        if (out - 1) * stride >= size + padding:     # last window would start in the right padding
            out -= 1
    else:
        out = (padded - span) // stride + 1
    if out < 1:                                  # only when the window is wider than the input
        raise ValueError(f"kernel_size {kernel_size} (dilation {dilation}, so {span} pixels) is "
                         f"larger than the padded input ({size} + 2*{padding} = {padded})")
    return out


@dataclass(frozen=True)
class Step:
    """One feature layer (conv, pool or LRN) with the ``(C, H, W)`` entering and leaving it."""
    layer: Layer
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]


def feature_steps(spec: str | ArchSpec, input_size: int | None = None) -> list[Step]:
    """Walk the feature layers of ``spec`` with the formula, from a square RGB input.

    Args:
        spec: a registered name or an :class:`~zfkit.specs.ArchSpec`.
        input_size: side of the input (default: the spec's own).
    Returns:
        One :class:`Step` per conv, pool and LRN layer, in order (FC layers are not walked).
    Raises:
        ValueError: when a layer's window does not fit its input (the message names the layer).
    """
    spec = get_spec(spec)
    size = spec.input_size if input_size is None else input_size
    c, h, w = 3, size, size
    steps: list[Step] = []
    for layer in spec.layers:
        if layer.kind == "fc":
            continue
        out_c = c
        try:
            if layer.kind == "conv":
                oh = conv_output_size(h, layer.kernel, layer.stride, layer.padding)
                out_c = layer.filters
            elif layer.kind == "pool":
                oh = conv_output_size(h, layer.kernel, layer.stride, layer.padding,
                                      ceil_mode=layer.ceil_mode)
            else:  # lrn keeps the shape
                oh = h
        except ValueError as exc:
            raise ValueError(f"{spec.name}, layer {layer.name} at input {h}x{w}: {exc}") from None
        steps.append(Step(layer, (c, h, w), (out_c, oh, oh)))
        c, h, w = out_c, oh, oh
    return steps


def feature_shape(spec: str | ArchSpec, input_size: int | None = None) -> tuple[int, int, int]:
    """``(C, H, W)`` entering the first FC layer (after the adaptive pool, if the spec has one)."""
    spec = get_spec(spec)
    size = spec.input_size if input_size is None else input_size
    steps = feature_steps(spec, size)
    c, h, w = steps[-1].output_shape if steps else (3, size, size)
    if spec.adaptive_pool:
        h = w = spec.adaptive_pool
    return c, h, w


def receptive_fields(spec: str | ArchSpec) -> dict[str, tuple[int, int]]:
    """Receptive field and jump (effective stride) after every conv/pool/LRN layer.

    ``rf_out = rf_in + (kernel - 1) * jump_in`` and ``jump_out = jump_in * stride``.
    Returns:
        layer name -> ``(receptive field, jump)`` in input pixels.
    """
    spec = get_spec(spec)
    rf, jump, out = 1, 1, {}
    for layer in spec.layers:
        if layer.kind in ("conv", "pool"):
            rf, jump = rf + (layer.kernel - 1) * jump, jump * layer.stride
        if layer.kind != "fc":
            out[layer.name] = (rf, jump)
    return out
