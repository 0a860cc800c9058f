"""Figures of the probes: top-9 projections with their patches, occlusion maps, filter spectra and
shift consistency, each drawn for the two nets side by side.

The numbers come from the probes (:mod:`zfkit.probe`); every function returns a matplotlib
``Figure`` and leaves showing or saving it to the caller. Colours per net come from
:mod:`zfkit.style`; projections are scaled by :data:`zfkit.mosaic.SIGNED_SCALING`.

:func:`plot_deconvnet_flow` draws the deconvnet's data flow beside the convnet's (the paper's
Fig. 1): no data, only the order of the operations and the switches that link them.

Reference: Zeiler and Fergus (2014), Fig. 1 (the deconvnet attached to a convnet layer), Fig. 2
(top-9 projections and patches), Fig. 5 (invariance),
Fig. 6 (first-layer filters and their frequencies, Sec. 4.1) and Fig. 7 (occlusion, Sec. 4.2).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .activations import to_display
from .mosaic import image_axes, mosaic, signed_to_unit
from .occlusion import OcclusionResult
from .spectra import FilterSpectra
from .style import color_for

__all__ = ["plot_top9", "plot_occlusion", "plot_spectra", "plot_ring_spectra",
           "plot_shift_consistency", "plot_deconvnet_flow"]


def plot_top9(rows: Sequence[tuple[str, str, int, Sequence[torch.Tensor], Sequence[torch.Tensor]]],
              *, title: str = "") -> Figure:
    """Zeiler and Fergus's Fig. 2 layout: for each (net, layer), the deconvnet projections of the
    top activations of one feature map (scaled by :data:`SIGNED_SCALING`) beside the image patches
    they come from.

    Args:
        rows: ``(net, layer, channel, projections, patches)``: up to 9 projections and patches,
            each ``(3, s, s)`` (projections float, patches uint8), cut by the same receptive field
            box. Rows of the same layer are drawn side by side, one net per pair of columns.
        title: the figure's title.
    Returns:
        The figure.
    """
    layers = list(dict.fromkeys(layer for _, layer, _, _, _ in rows))
    nets = list(dict.fromkeys(net for net, _, _, _, _ in rows))
    fig, axes = plt.subplots(len(layers), 2 * len(nets), squeeze=False, layout="constrained",
                             figsize=(2.2 * 2 * len(nets), 2.4 * len(layers)))
    for ax in axes.flat:
        image_axes(ax)
    for net, layer, channel, projections, patches in rows:
        r, c = layers.index(layer), 2 * nets.index(net)
        size = patches[0].shape[-1]
        gap = max(1, size // 20)
        axes[r, c].imshow(mosaic([signed_to_unit(p) for p in projections], 3, gap=gap),
                          interpolation="nearest")
        axes[r, c + 1].imshow(mosaic([to_display(p) for p in patches], 3, gap=gap))
        axes[r, c].set_title(f"{net} {layer} map {channel}\ndeconvnet", color=color_for(net),
                             fontsize=9)
        axes[r, c + 1].set_title(f"{net} {layer} map {channel}\npatches, {size}x{size}",
                                 color=color_for(net), fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def plot_occlusion(image: torch.Tensor, results: Mapping[str, OcclusionResult],
                   class_names: Sequence[str] | None = None, *, title: str = "") -> Figure:
    """Occlusion sensitivity (Zeiler and Fergus, Fig. 7 (d)): the input, then for each net the
    probability of the true class with the grey square centred at each place (one scale, 0 to 1).

    Args:
        image: the input ``(3, H, W)``.
        results: net name -> its :class:`~zfkit.probe.OcclusionResult` for this image.
        class_names: names for the class indices.
        title: the figure's title.
    Returns:
        The figure.
    """
    fig, axes = plt.subplots(1, 1 + len(results), figsize=(3.6 * (1 + len(results)) + 0.8, 3.9),
                             layout="constrained")
    shown = to_display(image)
    first = next(iter(results.values()))
    name = class_names[first.target] if class_names else str(first.target)
    axes[0].imshow(shown)
    axes[0].add_patch(plt.Rectangle((first.xs[0] - 0.5, first.ys[0] - 0.5), first.patch,
                                    first.patch, color=(0.5, 0.5, 0.5)))
    axes[0].set_title(f"input, true class '{name}'\n(grey square: {first.patch}x{first.patch})",
                      fontsize=9)
    for ax, (net, res) in zip(axes[1:], results.items()):
        half = res.patch / 2
        extent = (res.xs[0] + half - 0.5, res.xs[-1] + half - 0.5,
                  res.ys[-1] + half - 0.5, res.ys[0] + half - 0.5)
        ax.imshow(shown, alpha=0.35)
        im = ax.imshow(res.prob.numpy(), cmap="magma", vmin=0, vmax=1, extent=extent,
                       interpolation="nearest", alpha=0.85)
        ax.set_xlim(-0.5, shown.shape[1] - 0.5)
        ax.set_ylim(shown.shape[0] - 0.5, -0.5)
        ax.set_title(f"{net}: p('{name}') by square centre\nunoccluded p = {res.base_prob:.2f}",
                     color=color_for(net), fontsize=9)
    for ax in axes:
        image_axes(ax)
    fig.colorbar(im, ax=list(axes[1:]), shrink=0.85, label="probability of the true class")
    if title:
        fig.suptitle(title)
    return fig


def plot_spectra(entries: Sequence[tuple[str, str, FilterSpectra]], *, title: str = "") -> Figure:
    """conv1 filter spectra: the layer's energy by radial band, and each filter's mean frequency.

    Args:
        entries: ``(label, net, spectra)``; labels mentioning "init" are drawn hatched and pale.
        title: the figure's title.
    Returns:
        The figure with two panels; dotted lines mark each net's output Nyquist 1/(2*stride).
    """
    fig, (ax_bands, ax_hist) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    edges = entries[0][2].edges.numpy()
    width = (edges[1] - edges[0]) / (len(entries) + 1)
    bins = np.linspace(0, 0.55, 23)
    for i, (label, net, spectra) in enumerate(entries):
        pale = "init" in label
        ax_bands.bar(edges[:-1] + width * (i + 0.5), spectra.layer_band_energy.numpy(), width,
                     align="edge", color=color_for(net), alpha=0.35 if pale else 0.9,
                     hatch="//" if pale else None, edgecolor=color_for(net), label=label)
        ax_hist.hist(spectra.centroid.numpy(), bins=bins, histtype="step", linewidth=2,
                     linestyle="--" if pale else "-", color=color_for(net), label=label)
    nyquists = {net: spectra.nyquist for _, net, spectra in entries}    # one line per net
    for net, nyquist in nyquists.items():
        for ax in (ax_bands, ax_hist):
            ax.axvline(nyquist, color=color_for(net), linestyle=":", linewidth=1.5)
    ax_bands.set_xticks(edges)
    ax_bands.set(title="Share of the layer's energy by radial frequency band",
                 xlabel="radial frequency (cycles per input pixel); last band includes corners",
                 ylabel="share of energy")
    ax_hist.set(title="Each filter's mean frequency (energy-weighted)",
                xlabel="cycles per input pixel (dotted: output Nyquist 1/(2 stride))",
                ylabel="filters")
    ax_bands.legend(fontsize=8)
    ax_hist.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_ring_spectra(panels: Mapping[str, Sequence[tuple[str, FilterSpectra]]], *,
                      title: str = "") -> Figure:
    """Each bank's energy per ring of radial frequency, divided by white noise's (the ring's
    share of the frequency grid, :attr:`FilterSpectra.band_area`): 1 everywhere for white noise,
    above 1 where a bank concentrates its energy. One panel per net, log scale.

    Args:
        panels: net name -> ``(label, spectra)`` pairs (e.g. ``W0``, ``W``, ``W - W0``), all with
            the same rings.
        title: the figure's title.
    Returns:
        The figure; a dotted line marks each net's output Nyquist frequency on the axes.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.9), squeeze=False,
                             sharey=True, layout="constrained")
    styles = ("--", "-", "-")
    widths = (1.4, 1.6, 2.6)
    for ax, (net, entries) in zip(axes[0], panels.items()):
        for i, (label, spectra) in enumerate(entries):
            edges = spectra.edges.numpy()
            centres = (edges[:-1] + edges[1:]) / 2
            ratio = (spectra.layer_band_energy / spectra.band_area).numpy()
            ax.plot(centres, ratio, marker="o", linestyle=styles[min(i, 2)],
                    linewidth=widths[min(i, 2)], color=color_for(net),
                    alpha=0.45 if i == 0 else 1.0, label=label)
        ax.axhline(1.0, color="black", linewidth=0.8, label="white noise")
        ax.axvline(entries[0][1].nyquist, color="black", linestyle=":", linewidth=1.2)
        ax.set_yscale("log")
        ax.set(title=f"{net} conv1", xlabel="radial frequency (cycles/pixel; last ring "
               "includes the corners)")
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel("energy share / white noise's")
    if title:
        fig.suptitle(title)
    return fig


def plot_shift_consistency(curves: Mapping[str, torch.Tensor], shifts: Sequence[int], *,
                           title: str = "") -> Figure:
    """Fraction of images classified as unshifted, against the diagonal shift in pixels.

    Args:
        curves: net name -> ``(len(shifts),)`` fractions (:func:`zfkit.probe.consistency_by_shift`).
        shifts: the shifts.
        title: the figure's title.
    Returns:
        The figure.
    """
    fig, ax = plt.subplots(figsize=(6.5, 3.6), layout="constrained")
    for net, curve in curves.items():
        ax.plot(list(shifts), curve.numpy(), "o-", color=color_for(net), label=net)
    ax.set(title=title or "Same class as the unshifted image", ylim=(0, 1.02),
           xlabel="shift down and right (pixels)", ylabel="fraction of images")
    ax.legend(loc="lower left")
    return fig


def plot_deconvnet_flow() -> Figure:
    """The deconvnet beside the convnet, one layer of each (Zeiler and Fergus, Fig. 1, top).

    Right, bottom to top: the convnet's forward pass (filter, rectify, max-pool, recording the
    switches). Left, top to bottom: the deconvnet going back (unpool with those switches,
    rectify, filter with the transposed filters), from the reconstruction of the layer above to
    a reconstruction of the layer below.
    """
    fig, ax = plt.subplots(figsize=(9.2, 6.4), layout="constrained")
    ax.set(xlim=(0, 10), ylim=(0, 10))
    ax.axis("off")
    ops = {"face": "#FFF2CC", "edge": "#B38F00"}
    maps = {"face": "#DDEBF7", "edge": "#2F5597"}
    conv = [("layer below: pooled maps", maps), ("convolutional filtering {F}", ops),
            ("feature maps", maps), ("rectified linear function", ops),
            ("rectified feature maps", maps), ("max pooling", ops), ("pooled maps", maps)]
    deconv = [("layer above: reconstruction", maps), ("max unpooling", ops),
              ("unpooled maps", maps), ("rectified linear function", ops),
              ("rectified unpooled maps", maps), ("convolutional filtering {F transposed}", ops),
              ("reconstruction of the layer below", maps)]
    ys = np.linspace(0.7, 8.6, len(conv))
    boxes = {}
    for column, x, steps, upward in (("convnet", 7.4, conv, True),
                                     ("deconvnet", 2.6, deconv, False)):
        order = ys if upward else ys[::-1]
        for i, ((text, colours), y) in enumerate(zip(steps, order)):
            ax.text(x, y, text, ha="center", va="center", fontsize=9.5,
                    bbox=dict(boxstyle="round,pad=0.45", facecolor=colours["face"],
                              edgecolor=colours["edge"]))
            boxes[(column, i)] = (x, y)
            if i:
                (x0, y0) = boxes[(column, i - 1)]
                dy = 0.32 if upward else -0.32
                ax.annotate("", xy=(x, y - dy), xytext=(x0, y0 + dy),
                            arrowprops=dict(arrowstyle="-|>", color="black", lw=1.3))
        ax.text(x, 9.6, f"{column} ({'forward, up' if upward else 'backward, down'})",
                ha="center", va="center", fontsize=11, fontweight="bold")
    (xp, yp), (xu, yu) = boxes[("convnet", 5)], boxes[("deconvnet", 1)]
    ax.annotate("", xy=(xu + 1.15, yu), xytext=(xp - 1.0, yp),
                arrowprops=dict(arrowstyle="-|>", color="#C00000", lw=1.8, linestyle="--"))
    ax.text((xu + xp) / 2 + 0.1, (yu + yp) / 2 + 0.35, "switches\n(where each max was)",
            ha="center", va="bottom", fontsize=9, color="#C00000")
    (xf, yf), (xt, yt) = boxes[("convnet", 1)], boxes[("deconvnet", 5)]
    ax.annotate("", xy=(xt + 1.95, yt), xytext=(xf - 1.35, yf),
                arrowprops=dict(arrowstyle="-|>", color="#555555", lw=1.2, linestyle=":"))
    ax.text((xt + xf) / 2 + 0.3, (yt + yf) / 2 - 0.45, "the same filters F", ha="center",
            va="top", fontsize=9, color="#555555")
    ax.text(5, 0.0, "blue: maps (data)   yellow: operations", ha="center", va="bottom",
            fontsize=8.5, color="#404040")
    ax.set_title("One layer of the deconvnet attached to one layer of the convnet "
                 "(after Zeiler and Fergus 2014, Fig. 1)", fontsize=10)
    return fig
