"""Figures and widgets for looking inside the two nets: filters, feature maps, deconvnet
projections with their top-9 patches, occlusion maps, filter spectra and shift consistency.

Every function returns a matplotlib ``Figure`` (or an ipywidgets widget) and leaves showing or
saving it to the caller. The two nets get their colours from :mod:`zfkit.style`; panels meant to be
compared share one colour scale.

One scaling rule for signed images (filters and deconvnet projections), stated in
:data:`SIGNED_SCALING`: each image is divided by its own largest absolute value and mapped to
[0, 1] with 0 at mid-grey, so the sign of a weight is its colour and nothing is clipped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .probe import FilterSpectra, OcclusionResult, forward_features, to_display
from .style import color_for

__all__ = [
    "SIGNED_SCALING", "signed_to_unit", "mosaic", "filter_mosaic", "FilterPanel", "plot_filters",
    "strongest_channels", "plot_feature_maps", "plot_channel", "feature_explorer",
    "plot_top9", "plot_occlusion", "plot_spectra", "plot_shift_consistency",
]

SIGNED_SCALING = ("each image is divided by its own largest absolute value and shown with 0 as "
                  "mid-grey (positive towards full colour, negative towards its complement)")


def signed_to_unit(x: torch.Tensor) -> np.ndarray:
    """``x (C, H, W)`` scaled by :data:`SIGNED_SCALING` into an ``(H, W, C)`` array in [0, 1]."""
    x = x.detach().float().cpu()
    peak = x.abs().max().clamp_min(1e-12)
    return (x / peak * 0.5 + 0.5).permute(1, 2, 0).numpy()


def mosaic(tiles: Sequence[np.ndarray | torch.Tensor], ncols: int, *, gap: int = 1,
           fill: float = 1.0) -> np.ndarray:
    """Tiles ``(h, w, C)`` of one size laid out in rows of ``ncols``, ``gap`` pixels of ``fill``
    between them and around them.

    Returns:
        ``(rows * (h + gap) + gap, ncols * (w + gap) + gap, C)`` array.
    """
    tiles = [np.asarray(t, dtype=np.float32) for t in tiles]
    if not tiles:
        raise ValueError("mosaic needs at least one tile")
    h, w, c = tiles[0].shape
    rows = -(-len(tiles) // ncols)
    out = np.full((rows * (h + gap) + gap, ncols * (w + gap) + gap, c), fill, dtype=np.float32)
    for i, tile in enumerate(tiles):
        r, q = divmod(i, ncols)
        out[gap + r * (h + gap):gap + r * (h + gap) + h,
            gap + q * (w + gap):gap + q * (w + gap) + w] = tile
    return out


def filter_mosaic(weight: torch.Tensor, ncols: int = 8, *, gap: int = 1) -> np.ndarray:
    """First-layer filters ``(F, 3, k, k)`` as one RGB image, each scaled by :data:`SIGNED_SCALING`.

    Returns:
        ``(H, W, 3)`` in [0, 1], one image pixel per filter weight, white gaps.
    """
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise ValueError(f"expected RGB filters (F, 3, k, k), got {tuple(weight.shape)}")
    return mosaic([signed_to_unit(w) for w in weight], ncols, gap=gap)


def _image_axes(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)


@dataclass
class FilterPanel:
    """One panel of :func:`plot_filters`: a title, the filters ``(F, 3, k, k)``, the net's name."""
    title: str
    weight: torch.Tensor
    net: str


def plot_filters(rows: Sequence[Sequence[FilterPanel]], *, pixel: float = 4.0, ncols: int = 8,
                 title: str = "") -> Figure:
    """Filter banks at their true relative size: one filter weight is ``pixel`` screen pixels in
    every panel, so an 11x11 filter is drawn 11/7 times as wide as a 7x7 one.

    Args:
        rows: rows of panels (e.g. one row per training stage, one panel per net).
        pixel: screen pixels (at the figure's dpi) per filter weight.
        ncols: filters per row of a mosaic.
        title: the figure's title.
    Returns:
        The figure; axes are placed in inches, not stretched to fit.
    """
    grids = [[filter_mosaic(p.weight, ncols) for p in row] for row in rows]
    dpi = plt.rcParams["figure.dpi"]
    inch = pixel / dpi                                   # inches per filter weight
    n_cols = max(len(r) for r in grids)
    col_w = [max(g[c].shape[1] for g in grids if c < len(g)) * inch for c in range(n_cols)]
    row_h = [max(g.shape[0] for g in r) * inch for r in grids]
    margin, head, gap, foot = 0.15, 0.5, 0.35, 0.4     # inches
    above = 0.35 if title else 0.0
    width = 2 * margin + sum(col_w) + gap * (n_cols - 1)
    height = above + sum(row_h) + head * len(grids) + foot + margin
    fig = plt.figure(figsize=(width, height))
    top = height - margin - above
    for row, panels, rh in zip(grids, rows, row_h):
        top -= head
        left = margin
        for c, (grid, panel) in enumerate(zip(row, panels)):
            gh, gw = grid.shape[0] * inch, grid.shape[1] * inch
            ax = fig.add_axes((left / width, (top - gh) / height, gw / width, gh / height))
            ax.imshow(grid, interpolation="nearest")
            _image_axes(ax)
            k = panel.weight.shape[-1]
            ax.set_title(f"{panel.title}\n{panel.weight.shape[0]} filters, {k}x{k}",
                         color=color_for(panel.net), fontsize=9)
            left += col_w[c] + gap
        top -= rh
    note = f"Same scale in every panel: 1 filter weight = {pixel:g} px. Colours: {SIGNED_SCALING}."
    fig.text(0.5, 0.1 / height, note, ha="center", va="bottom", fontsize=7.5, wrap=True)
    if title:
        fig.suptitle(title, y=1 - 0.05 / height, va="top", fontweight="bold")
    return fig


def strongest_channels(activation: torch.Tensor, n: int) -> list[int]:
    """The ``n`` channels of ``activation (C, H, W)`` with the largest mean, strongest first."""
    return activation.float().mean((1, 2)).argsort(descending=True)[:n].tolist()


def plot_feature_maps(activations: Mapping[str, Mapping[str, torch.Tensor]], image: torch.Tensor,
                      *, n: int = 8, ncols: int = 4, title: str = "") -> Figure:
    """The strongest ``n`` feature maps of every layer, the nets side by side, one colour scale per
    layer shared by the nets.

    Args:
        activations: net name -> layer name -> ``(C, H, W)`` activations of one image. Every net
            must have the same layer names.
        image: the input ``(3, H, W)`` (uint8 or normalised float).
        n: maps per panel (the channels with the largest mean activation).
        ncols: maps per row of a panel.
        title: the figure's title.
    Returns:
        The figure.
    """
    nets = list(activations)
    layers = list(activations[nets[0]])
    layout = [["image"] * len(nets)] + [[f"{net}/{layer}" for net in nets] for layer in layers]
    fig, axes = plt.subplot_mosaic(layout, figsize=(4.2 * len(nets) + 1, 2.3 * len(layers) + 2.6),
                                   height_ratios=[1.6] + [1] * len(layers),
                                   layout="constrained")
    axes["image"].imshow(to_display(image))
    axes["image"].set_title("input image")
    _image_axes(axes["image"])
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    for layer in layers:
        vmax = max(float(activations[net][layer].max()) for net in nets) or 1.0
        for net in nets:
            act = activations[net][layer].detach().float().cpu()      # (C, h, w)
            chosen = strongest_channels(act, n)
            tiles = [act[c][..., None].numpy() for c in chosen]
            grid = mosaic(tiles, ncols, gap=max(1, act.shape[-1] // 16), fill=np.nan)[..., 0]
            ax = axes[f"{net}/{layer}"]
            im = ax.imshow(grid, cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
            _image_axes(ax)
            c, h, w = act.shape
            ax.set_title(f"{net} {layer}: {len(chosen)} strongest of {c} maps, {h}x{w}",
                         color=color_for(net), fontsize=9)
        fig.colorbar(im, ax=[axes[f"{net}/{layer}"] for net in nets], shrink=0.8,
                     label="activation" if layer == layers[0] else None)
    if title:
        fig.suptitle(title)
    return fig


def plot_channel(image: torch.Tensor, activation: torch.Tensor, *, title: str = "",
                 color: str = "black") -> Figure:
    """One feature map ``(h, w)`` beside its input image (the view of :func:`feature_explorer`)."""
    fig, (ax_img, ax_map) = plt.subplots(1, 2, figsize=(8, 3.8), layout="constrained")
    ax_img.imshow(to_display(image))
    ax_img.set_title("input image")
    act = activation.detach().float().cpu().numpy()                    # (h, w)
    im = ax_map.imshow(act, cmap="viridis", vmin=0, vmax=float(act.max()) or 1.0,
                       interpolation="nearest")
    ax_map.set_title(f"{title} ({act.shape[0]}x{act.shape[1]})", color=color)
    for ax in (ax_img, ax_map):
        _image_axes(ax)
    fig.colorbar(im, ax=ax_map, shrink=0.8, label="activation")
    return fig


def feature_explorer(models: Mapping[str, torch.nn.Module], images: torch.Tensor,
                     captions: Sequence[str] | None = None):
    """An ipywidgets explorer: pick an image, a net, a layer and a channel; see the feature map.

    Only live in a running notebook (a rendered page shows no widget output): pair it with a
    static figure such as :func:`plot_feature_maps`.

    Args:
        models: net name -> :class:`~zfkit.models.ConvNet`.
        images: ``(N, 3, H, W)`` images to choose from.
        captions: one caption per image (e.g. its class), shown in the image selector.
    Returns:
        An ``ipywidgets.VBox``.
    """
    import ipywidgets as widgets
    from IPython.display import display

    names = list(models)
    captions = list(captions) if captions is not None else [str(i) for i in range(len(images))]
    pick_image = widgets.Dropdown(options=[(f"{i}: {c}", i) for i, c in enumerate(captions)],
                                  description="image")
    pick_net = widgets.Dropdown(options=names, description="net")
    pick_layer = widgets.Dropdown(description="layer")
    pick_channel = widgets.IntSlider(description="channel", min=0, continuous_update=False)
    out = widgets.Output()
    cache: dict[tuple[str, int], dict[str, torch.Tensor]] = {}

    def acts() -> dict[str, torch.Tensor]:
        key = (pick_net.value, pick_image.value)
        if key not in cache:
            record = forward_features(models[key[0]], images[key[1]:key[1] + 1])
            cache[key] = {name: a[0].cpu() for name, a in record.activations.items()}
        return cache[key]

    busy = [False]  # set while the selectors are being updated, so the map is drawn once

    def on_net(_=None) -> None:
        layers = list(acts())
        keep = pick_layer.value if pick_layer.value in layers else layers[0]
        busy[0] = True
        pick_layer.options = layers
        pick_layer.value = keep
        busy[0] = False
        on_layer()

    def on_layer(_=None) -> None:
        if busy[0]:
            return
        busy[0] = True
        pick_channel.max = acts()[pick_layer.value].shape[0] - 1
        busy[0] = False
        redraw()

    def redraw(_=None) -> None:
        if busy[0]:
            return
        act = acts()[pick_layer.value][pick_channel.value]
        with out:
            out.clear_output(wait=True)
            fig = plot_channel(images[pick_image.value], act, color=color_for(pick_net.value),
                               title=f"{pick_net.value} {pick_layer.value} channel "
                                     f"{pick_channel.value}")
            display(fig)
            plt.close(fig)

    pick_net.observe(on_net, "value")
    pick_image.observe(on_net, "value")
    pick_layer.observe(on_layer, "value")
    pick_channel.observe(redraw, "value")
    on_net()
    return widgets.VBox([widgets.HBox([pick_image, pick_net]),
                         widgets.HBox([pick_layer, pick_channel]), out])


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
        _image_axes(ax)
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
        _image_axes(ax)
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
