"""Aliasing: what a stride-s grid can hold, a grating that shows it, and the aliasing potential
of a first layer on real images.

A layer that keeps one output every ``s`` pixels can represent frequencies up to its Nyquist
frequency ``1 / (2 s)`` cycles per pixel on each axis; finer detail folds back to a coarser false
pattern (:func:`alias_frequency`), the moire of a :func:`grating` sampled every ``s`` pixels.
That limit belongs to the sampling grid, not to any weights: a white-noise filter puts
``1 - 1/s^2`` of its energy above it.

What actually folds depends on the filter *and* on the images: conv1's output at full resolution
is the image filtered, so its spectrum is the filter's response weighted by the image spectrum.
:func:`image_cross_spectrum` estimates that spectrum (3x3 colour cross-spectra, so colour-opponent
filters are judged fairly) from tiles of real images, and :func:`aliasing_potential` gives the
share of conv1's output energy above the output Nyquist frequency on those images: the energy
that *can* alias when the output is sampled every ``s`` pixels, before the ReLU and the next
layers decide whether it does harm.

Reference: Zeiler and Fergus (2014), arXiv:1311.2901, Sec. 4.1 ("aliasing artifacts caused by
the large stride 4 used in the 1st layer convolutions").
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .activations import as_input

__all__ = ["grating", "alias_frequency", "image_cross_spectrum", "AliasingPotential",
           "aliasing_potential"]


def grating(size: int, freq: float, angle: float = 0.0) -> torch.Tensor:
    """A cosine grating of ``freq`` cycles per pixel at ``angle`` radians from the x axis.

    Returns:
        ``(size, size)`` float64 in [0, 1].
    """
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float64),
                          torch.arange(size, dtype=torch.float64), indexing="ij")
    phase = 2 * math.pi * freq * (x * math.cos(angle) + y * math.sin(angle))
    return 0.5 + 0.5 * torch.cos(phase)


def alias_frequency(freq: float, stride: int) -> float:
    """The frequency (cycles per *input* pixel) that ``freq`` appears at after keeping every
    ``stride``-th sample: folded into ``[0, 1/(2 stride)]``. Unchanged below Nyquist."""
    if stride < 1:
        raise ValueError(f"stride must be at least 1, got {stride}")
    rate = 1.0 / stride                                  # samples per input pixel
    return abs(freq - round(freq / rate) * rate)


def image_cross_spectrum(images: torch.Tensor, *, n_fft: int = 64) -> torch.Tensor:
    """The mean colour cross-spectrum of ``n_fft x n_fft`` tiles of ``images``.

    Every image (normalised as the nets see it, :func:`zfkit.probe.as_input`) is cut into
    non-overlapping tiles; each tile loses its (window-weighted) mean per channel, is multiplied
    by a 2-D Hann window (so the tile's edges do not add false high frequencies) and transformed.
    Removing the mean leaves the zero frequency empty: a constant cannot alias, and kept, the
    images' mean brightness would dominate every share. The result is on the same frequency
    grid as a filter zero-padded to ``n_fft`` points (:func:`zfkit.probe.filter_spectra`).

    Args:
        images: ``(N, C, H, W)`` (uint8 or normalised float), ``H, W >= n_fft``.
        n_fft: tile side = DFT size.
    Returns:
        ``(C, C, n_fft, n_fft)`` complex128 ``S[c, d] = mean(X_c conj(X_d))``.
    """
    x = as_input(images).double().cpu()                                # (N, C, H, W)
    n, c, h, w = x.shape
    if h < n_fft or w < n_fft:
        raise ValueError(f"images ({h}x{w}) are smaller than one {n_fft}x{n_fft} tile")
    tiles = x.unfold(2, n_fft, n_fft).unfold(3, n_fft, n_fft)           # (N, C, ty, tx, n, n)
    tiles = tiles.permute(0, 2, 3, 1, 4, 5).reshape(-1, c, n_fft, n_fft)
    hann = torch.hann_window(n_fft, periodic=False, dtype=torch.float64)
    window = hann[:, None] * hann[None, :]                              # (n, n)
    mean = (tiles * window).sum((-2, -1), keepdim=True) / window.sum()  # (T, C, 1, 1)
    spec = torch.fft.fft2((tiles - mean) * window)                      # (T, C, n, n)
    out = torch.empty(c, c, n_fft, n_fft, dtype=spec.dtype)
    for i in range(c):                       # Hermitian in (c, d): compute the upper half
        for j in range(i, c):
            out[i, j] = (spec[:, i] * spec[:, j].conj()).mean(0)
            out[j, i] = out[i, j].conj()
    return out


@dataclass
class AliasingPotential:
    """Where conv1's output energy lies relative to the output Nyquist frequency.

    Attributes:
        per_filter: ``(F,)`` each filter's share of its output energy above Nyquist.
        layer: the whole layer's share (filters weighted by their output energy).
        energy: ``(F,)`` each filter's mean output energy on the images.
        stride: the layer's stride.
    """
    per_filter: torch.Tensor
    layer: float
    energy: torch.Tensor
    stride: int

    @property
    def nyquist(self) -> float:
        return 1.0 / (2 * self.stride)


def aliasing_potential(weight: torch.Tensor, *, stride: int,
                       spectrum: torch.Tensor | None = None) -> AliasingPotential:
    """The share of a first layer's output energy above its output Nyquist frequency.

    Args:
        weight: ``(F, C, k, k)`` filters.
        stride: the layer's stride.
        spectrum: ``(C, C, n, n)`` from :func:`image_cross_spectrum`; ``None``: white images
            (every frequency and channel alike, uncorrelated), which gives the filters' own
            share of energy above Nyquist (:attr:`zfkit.probe.FilterSpectra.above_nyquist`).
    Returns:
        An :class:`AliasingPotential`.
    """
    w = torch.as_tensor(weight).detach().double().cpu()
    if w.dim() != 4 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"expected square filters (F, C, k, k), got {tuple(w.shape)}")
    f, c, k, _ = w.shape
    n = 64 if spectrum is None else spectrum.shape[-1]
    if spectrum is not None and tuple(spectrum.shape) != (c, c, n, n):
        raise ValueError(f"spectrum must be ({c}, {c}, n, n) for {c}-channel filters, got "
                         f"{tuple(spectrum.shape)}")
    if n < k:
        raise ValueError(f"the spectrum's grid ({n}) is smaller than the kernel ({k})")
    wf = torch.fft.fft2(w, s=(n, n))                                   # (F, C, n, n)
    if spectrum is None:
        power = wf.abs().square().sum(1)                               # (F, n, n)
    else:
        power = torch.einsum("fcyx,cdyx,fdyx->fyx", wf.conj(), spectrum.to(wf), wf).real
    power = power.clamp_min(0)
    freq = torch.fft.fftfreq(n, dtype=torch.float64)
    fy, fx = torch.meshgrid(freq, freq, indexing="ij")
    above = torch.maximum(fx.abs(), fy.abs()) > 1.0 / (2 * stride) + 1e-12
    total = power.sum((1, 2))                                          # (F,)
    share = power[:, above].sum(1) / total.clamp_min(1e-300)
    layer = float(power[:, above].sum() / total.sum().clamp_min(1e-300))
    return AliasingPotential(share.float(), layer, (total / n ** 2).float(), stride)
