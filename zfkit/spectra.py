"""Filter spectra and dead filters: the numbers behind Zeiler and Fergus's architecture selection.

Looking at AlexNet's first layer, Zeiler and Fergus saw "a mix of extremely high and low frequency
information, with little coverage of the mid frequencies", aliasing artifacts in the second layer
caused by conv1's large stride, and dead filters; they shrank conv1 to 7x7 and its stride to 2.
:func:`filter_spectra` measures where a filter bank's energy lies in frequency, and how much of it
lies above the Nyquist frequency of the layer's output grid (what can alias), and at which frequency
each filter peaks; :func:`dead_filters` counts the filters that are near zero or never active.
Two habits keep the numbers honest. A filter's mean frequency cannot tell a mix of very low and
very high frequencies (what Sec. 4.1 describes) from a real mid-frequency filter, so the bank is
described by its energy per ring (:attr:`FilterSpectra.layer_band_energy`) and each filter by its
peak frequency (:attr:`FilterSpectra.peak`). And the outer rings hold more of the frequency
square than the inner ones (the last one also holds the corners), so white noise puts most of its
energy there: :attr:`FilterSpectra.band_area` is white noise's expected share per ring, the
reference every share is read against.
:func:`zfkit.viz.plot_spectra` draws the spectra.

Reference: Zeiler and Fergus (2014), "Visualizing and Understanding Convolutional Networks",
arXiv:1311.2901, Sec. 4.1 "Architecture Selection" and Fig. 6.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .activations import forward_features
from .models import ConvNet, conv_layers

__all__ = ["FilterSpectra", "filter_spectra", "DeadFilters", "dead_filters"]


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
        peak: ``(F,)`` the radial frequency of each filter's strongest DFT bin.
        band_area: ``(n_bands,)`` each band's share of the DFT grid: white noise's expected
            share of energy per band.
    """
    edges: torch.Tensor
    band_energy: torch.Tensor
    centroid: torch.Tensor
    above_nyquist: torch.Tensor
    energy: torch.Tensor
    stride: int
    peak: torch.Tensor
    band_area: torch.Tensor

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

    @property
    def peak_band_share(self) -> torch.Tensor:
        """``(n_bands,)`` the fraction of filters whose peak frequency lies in each band."""
        band = torch.bucketize(self.peak.double(), self.edges[1:-1].double(), right=True)
        return torch.bincount(band, minlength=len(self.band_area)).float() / len(self.peak)


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
    peak = radius.flatten()[power.flatten(1).argmax(1)]                # (F,)
    area = torch.bincount(band.flatten(), minlength=n_bands).double() / band.numel()
    return FilterSpectra(edges.float(), bands.float(), centroid.float(), above.float(),
                         energy.float(), stride, peak.float(), area.float())


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
