"""Looking inside a network the way Zeiler and Fergus did: the deconvnet, top-9 activations with
their image patches, occlusion sensitivity, and the numbers behind their Sec. 4.1 (conv1 filter
spectra, dead filters, shift consistency).

Every function takes a :class:`~zfkit.models.ConvNet` (it walks ``model.spec`` and
``model.layer_index``, so it works for every registered architecture) and images as a tensor
``(B, 3, H, W)``: ``uint8`` images (the cached crops) are normalised here with the seed's recipe
(mean 0.5, std 0.5 per channel); float images are taken as already normalised. Models are run in
evaluation mode and their training flag is restored afterwards.

References:
    Zeiler and Fergus (2014), "Visualizing and Understanding Convolutional Networks",
    arXiv:1311.2901: Sec. 2.1 (the deconvnet), Fig. 2 (top-9), Sec. 4.1 (filter frequencies,
    aliasing, dead filters), Sec. 4.2 (occlusion). Zhang (2019), "Making Convolutional Networks
    Shift-Invariant Again" (shift consistency).
"""
from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import MEAN, STD, normalize_batch
from .models import ConvNet, build_model, conv_layers
from .shapes import receptive_fields

__all__ = [
    "as_input", "to_display", "initial_model", "ForwardRecord", "forward_features", "unpool_sum",
    "deconv_output_padding", "deconv_project", "TopHit", "top_activations", "receptive_box",
    "crop_box", "OcclusionConfig", "OcclusionResult", "occlusion_map",
    "FilterSpectra", "filter_spectra", "DeadFilters", "dead_filters", "shift_images",
    "ShiftConsistency", "shift_consistency", "consistency_by_shift",
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
def _evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode without gradients, then restore its training flag."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def _device(model: nn.Module) -> torch.device:
    """Where ``model`` lives (the CPU for a model without parameters)."""
    first = next(model.parameters(), None)
    return torch.device("cpu") if first is None else first.device


def _stages(model: ConvNet, upto: str | None = None) -> list:
    """The feature layers of ``model.spec`` in order (conv, pool, lrn), ending at ``upto``."""
    stages = [l for l in model.spec.layers if l.kind != "fc"]
    if upto is None:
        return stages
    names = [l.name for l in stages]
    if upto not in names:
        raise ValueError(f"{model.spec.name} has no feature layer {upto!r}; choose one of {names}")
    return stages[: names.index(upto) + 1]


def initial_model(run_dir: str | Path) -> ConvNet:
    """The network of a training run as it was before its first step (rebuilt, not loaded).

    :func:`zfkit.train.fit` seeds torch with the run's seed and builds the model before drawing
    any other random number, so seeding and building the same way gives the same initial weights
    (``tests/test_probe.py`` checks this against a real run). The global random state is left as
    it was.

    Args:
        run_dir: a run folder (its ``history.json`` names the model, seed and classes).
    Returns:
        The freshly initialised :class:`ConvNet` on the CPU, in eval mode.
    """
    from .train import load_history

    history = load_history(run_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(history.seed)
        model = build_model(history.model, num_classes=len(history.classes))
    return model.eval()


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
    x = as_input(images).to(_device(model))
    record = ForwardRecord()
    with _evaluating(model):
        for layer in _stages(model, upto):
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
        for spec_layer in reversed(_stages(model, layer)):
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
    order = [l.name for l in _stages(model)]
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
    for spec_layer in _stages(model, layer):
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
    x = as_input(image).to(_device(model))                       # (1, 3, H, W)
    _, _, h, w = x.shape
    if not 0 < config.patch <= min(h, w):
        raise ValueError(f"patch must be in [1, {min(h, w)}], got {config.patch}")
    ys = list(range(0, h - config.patch + 1, config.stride))
    xs = list(range(0, w - config.patch + 1, config.stride))
    grey = (config.grey - MEAN) / STD
    places = [(y, x0) for y in ys for x0 in xs]
    probs, tops = [], []
    with _evaluating(model):
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


@dataclass
class FilterSpectra:
    """Where the energy of a bank of filters lies in frequency (cycles per input pixel).

    Attributes:
        edges: ``(n_bands + 1,)`` radial band edges; the last band also holds the diagonal corners
            beyond 0.5 cycles/pixel (up to 0.71).
        band_energy: ``(F, n_bands)`` each filter's share of its own energy in each band.
        centroid: ``(F,)`` each filter's energy-weighted mean radial frequency.
        above_nyquist: ``(F,)`` each filter's share of energy above the output Nyquist frequency
            ``1 / (2 * stride)`` along either axis (the part that aliases when sampled every
            ``stride`` pixels).
        energy: ``(F,)`` each filter's total energy (sum of squared weights).
        stride: the layer's stride.
    """
    edges: torch.Tensor
    band_energy: torch.Tensor
    centroid: torch.Tensor
    above_nyquist: torch.Tensor
    energy: torch.Tensor
    stride: int

    @property
    def nyquist(self) -> float:
        return 1.0 / (2 * self.stride)

    @property
    def layer_band_energy(self) -> torch.Tensor:
        """``(n_bands,)`` the whole layer's energy by band (filters weighted by their energy)."""
        total = (self.band_energy * self.energy[:, None]).sum(0)
        return total / total.sum().clamp_min(1e-30)

    @property
    def layer_above_nyquist(self) -> float:
        """The whole layer's share of energy above the output Nyquist frequency."""
        return float((self.above_nyquist * self.energy).sum() / self.energy.sum().clamp_min(1e-30))


def filter_spectra(weight: torch.Tensor, *, stride: int, n_bands: int = 5,
                   n_fft: int = 64) -> FilterSpectra:
    """Power spectra of filters ``(F, C, k, k)``, summed over input channels, by radial band.

    Each filter is zero-padded to ``n_fft`` points per axis before the 2-D DFT (a finer grid of the
    same spectrum; the energy shares do not depend on it beyond sampling).

    Args:
        weight: conv weights ``(F, C, k, k)``, e.g. ``model.features[0].weight``.
        stride: the layer's stride (sets the output Nyquist frequency ``1/(2*stride)``).
        n_bands: radial bands of equal width between 0 and 0.5 cycles/pixel.
        n_fft: DFT size per axis (at least ``k``).
    Returns:
        A :class:`FilterSpectra`.
    """
    w = weight.detach().double().cpu()
    if w.dim() != 4 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"expected square filters (F, C, k, k), got {tuple(w.shape)}")
    if n_fft < w.shape[-1]:
        raise ValueError(f"n_fft ({n_fft}) must be at least the kernel size ({w.shape[-1]})")
    power = torch.fft.fft2(w, s=(n_fft, n_fft)).abs().square().sum(1)  # (F, n, n)
    f = torch.fft.fftfreq(n_fft, dtype=torch.float64)                    # cycles/pixel
    fy, fx = torch.meshgrid(f, f, indexing="ij")
    radius = (fx.square() + fy.square()).sqrt()                          # (n, n)
    edges = torch.linspace(0, 0.5, n_bands + 1, dtype=torch.float64)
    band = torch.bucketize(radius, edges[1:-1], right=True)              # (n, n) in [0, n_bands)
    total = power.sum((1, 2))                                            # (F,)
    safe = total.clamp_min(1e-30)
    bands = torch.stack([power[:, band == i].sum(1) for i in range(n_bands)], 1) / safe[:, None]
    centroid = (power * radius).sum((1, 2)) / safe
    outside = torch.maximum(fx.abs(), fy.abs()) > 1.0 / (2 * stride) + 1e-12
    above = power[:, outside].sum(1) / safe
    energy = w.square().sum((1, 2, 3))
    return FilterSpectra(edges.float(), bands.float(), centroid.float(), above.float(),
                         energy.float(), stride)


@dataclass
class DeadFilters:
    """Filters of one conv layer that do nothing.

    Attributes:
        layer: the conv layer's name.
        n_filters: filters in the layer.
        norms: ``(F,)`` each filter's weight norm.
        near_zero: filters whose norm is below ``rel_tol`` times the layer's median norm.
        never_active: filters whose ReLU output is 0 at every position of every image given.
        images: how many images the activity was measured on.
    """
    layer: str
    n_filters: int
    norms: torch.Tensor
    near_zero: list[int]
    never_active: list[int]
    images: int


def dead_filters(model: ConvNet, images: torch.Tensor, *, rel_tol: float = 0.05,
                 batch_size: int = 64) -> list[DeadFilters]:
    """Near-zero and never-active filters of every conv layer (the "dead" filters of Sec. 4.1).

    Args:
        model: a :class:`ConvNet`.
        images: ``(N, 3, H, W)`` images to measure activity on.
        rel_tol: a filter is near zero when its norm is below ``rel_tol`` x the median norm.
        batch_size: images per forward pass.
    Returns:
        One :class:`DeadFilters` per conv layer, in order.
    """
    names = [name for name, _ in conv_layers(model)]
    peak: dict[str, torch.Tensor] = {}
    for start in range(0, len(images), batch_size):
        acts = forward_features(model, images[start:start + batch_size], keep=tuple(names))
        for name in names:
            m = acts.activations[name].amax(dim=(0, 2, 3)).cpu()          # (C,)
            peak[name] = m if name not in peak else torch.maximum(peak[name], m)
    out = []
    for name, conv in conv_layers(model):
        norms = conv.weight.detach().flatten(1).norm(dim=1).cpu()           # (F,)
        near = (norms < rel_tol * norms.median()).nonzero().flatten().tolist()
        never = (peak[name] <= 0).nonzero().flatten().tolist()
        out.append(DeadFilters(name, len(norms), norms, near, never, len(images)))
    return out


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
    device = _device(model)
    with _evaluating(model):
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
