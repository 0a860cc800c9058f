"""Figures of what the two nets learned and compute: filter banks at their true relative size,
the strongest feature maps of every layer side by side, and a live feature-map explorer.

Every function returns a matplotlib ``Figure`` (or an ipywidgets widget) and leaves showing or
saving it to the caller. The two nets get their colours from :mod:`zfkit.style`; panels meant to
be compared share one colour scale; filters are scaled by :data:`zfkit.mosaic.SIGNED_SCALING`.

Reference: Zeiler and Fergus (2014), Sec. 4.1 and Fig. 6 (first-layer filters of AlexNet and
ZFNet side by side) and Sec. 4 (feature maps); Krizhevsky et al. (2012), Fig. 3 (AlexNet's 96
first-layer kernels).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .activations import forward_features, to_display
from .mosaic import SIGNED_SCALING, filter_mosaic, image_axes, mosaic
from .style import color_for

__all__ = [
    "FilterPanel", "plot_filters", "strongest_channels", "plot_feature_maps", "plot_channel",
    "feature_explorer",
]


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
            image_axes(ax)
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
    image_axes(axes["image"])
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
            image_axes(ax)
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
        image_axes(ax)
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
