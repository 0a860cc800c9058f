"""conv1's sampling, drawn: where the first layer's windows land on a 227-pixel image, side by
side for several nets at one scale, and a grating sampled at two strides (aliasing).

:func:`plot_sampling_grids` is :func:`zfkit.calculator.draw_windows` for a whole 227x227 input:
the windows come from :func:`zfkit.calculator.window_positions` (so from the same output-size
formula as every layer table), but the pixel grid is drawn as one image, not one patch per pixel,
so that tens of thousands of pixels stay quick to draw; a second row zooms into the top-left
corner, where single pixels and overlapping windows can be seen. :func:`plot_aliasing` samples a
grating every ``s`` pixels and shows the false coarse pattern (moire) that appears when its
frequency exceeds the grid's Nyquist frequency ``1/(2 s)`` (:mod:`zfkit.aliasing`).

Reference: Zeiler and Fergus (2014), Sec. 4.1 (stride 4 against stride 2 in the first layer).
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .aliasing import alias_frequency, grating
from .calculator import FIRST, LAST, PAD_FACE, SECOND, window_positions
from .models import get_spec
from .mosaic import image_axes
from .style import color_for

__all__ = ["plot_sampling_grids", "plot_aliasing"]


def _padded_input(size: int, padding: int) -> np.ndarray:
    """``(size + 2p, size + 2p, 3)`` white input, grey padding."""
    grey = np.array([int(PAD_FACE[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    img = np.ones((size + 2 * padding, size + 2 * padding, 3))
    img[:padding], img[size + padding:] = grey, grey
    img[:, :padding], img[:, size + padding:] = grey, grey
    return img


def plot_sampling_grids(nets: Sequence[str] = ("alexnet", "zfnet"), *, layer: str = "conv1",
                        zoom: int = 26) -> Figure:
    """Each net's ``layer`` windows on its input, side by side at one scale (one input pixel is
    the same size in every panel of a row), and a zoom on the top-left ``zoom`` pixels.

    Returns:
        The figure: top row the whole input with a dot at the centre of every window (one dot
        per output value) and the first, second and last windows outlined; bottom row the
        corner, pixel by pixel, with every window that starts there outlined.
    """
    specs = [get_spec(n) for n in nets]
    fig, axes = plt.subplots(2, len(nets), figsize=(5.2 * len(nets), 10.2), squeeze=False,
                             height_ratios=[1, 1], layout="constrained")
    for col, (name, spec) in enumerate(zip(nets, specs)):
        conv = spec.layer(layer)
        w = window_positions(spec.input_size, conv.kernel, conv.stride, conv.padding)
        p, k = conv.padding, conv.kernel
        extent = (-p - 0.5, spec.input_size + p - 0.5, spec.input_size + p - 0.5, -p - 0.5)
        centres = np.array(w.starts) + (k - 1) / 2
        for row, ax in enumerate(axes[:, col]):
            ax.imshow(_padded_input(spec.input_size, p), extent=extent, interpolation="nearest")
            if row == 0:
                yy, xx = np.meshgrid(centres, centres, indexing="ij")
                ax.scatter(xx.ravel(), yy.ravel(), s=0.6, color="black", lw=0)
                picks = [(0, 0, FIRST), (0, 1, SECOND), (w.out - 1, w.out - 1, LAST)]
            else:
                shown = [c for c in centres if c < zoom - p]
                for x in np.arange(-p, zoom - p + 1) - 0.5:      # the pixel grid
                    ax.axvline(x, color="#C8C8C8", lw=0.4)
                    ax.axhline(x, color="#C8C8C8", lw=0.4)
                yy, xx = np.meshgrid(shown, shown, indexing="ij")
                ax.scatter(xx.ravel(), yy.ravel(), s=14, color="black", zorder=5)
                picks = [(0, 0, FIRST), (0, 1, SECOND)]
                ax.add_patch(Rectangle((w.starts[0] - 0.5, w.starts[0] - 0.5), k, k,
                                       facecolor=FIRST, alpha=0.18, lw=0))
            for r, c, colour in picks:
                y0, x0 = w.starts[r] - 0.5, w.starts[c] - 0.5
                ax.add_patch(Rectangle((x0, y0), k, k, fill=False, edgecolor=colour, lw=2.0))
            if row == 1:
                ax.set_xlim(-p - 0.5, zoom - p - 0.5)
                ax.set_ylim(zoom - p - 0.5, -p - 0.5)
            image_axes(ax)
        shared = k - conv.stride
        axes[0, col].set_title(
            f"{name} {layer}: {k}x{k}, stride {conv.stride}, padding {p}\n{w.out}x{w.out} "
            f"windows on {spec.input_size}x{spec.input_size} (grey: padding)",
            color=color_for(name), fontsize=10)
        axes[1, col].set_title(
            f"top-left {zoom}x{zoom} pixels: neighbours share {shared} of {k} columns\n"
            f"(first window green, second pink, dots: window centres)",
            color=color_for(name), fontsize=9)
    return fig


def plot_aliasing(freq: float = 0.2, strides: Sequence[int] = (2, 4), *, size: int = 227,
                  angle: float = 0.3) -> Figure:
    """A grating of ``freq`` cycles/pixel, and what is left of it when only every ``s``-th pixel
    of each row and column is kept (each kept sample drawn as an ``s x s`` block, so all panels
    cover the same image area).

    Returns:
        The figure; each panel's title gives the grid's Nyquist frequency and the frequency the
        grating appears at (:func:`zfkit.aliasing.alias_frequency` along each axis).
    """
    image = grating(size, freq, angle).numpy()                       # (size, size) in [0, 1]
    fig, axes = plt.subplots(1, 1 + len(strides), figsize=(3.6 * (1 + len(strides)), 4.1),
                             layout="constrained")
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes[0].set_title(f"grating, {freq:g} cycles/pixel\n(every pixel)", fontsize=10)
    fx, fy = freq * np.cos(angle), freq * np.sin(angle)
    for ax, s in zip(axes[1:], strides):
        kept = image[::s, ::s]
        ax.imshow(np.kron(kept, np.ones((s, s)))[:size, :size], cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax_, ay_ = alias_frequency(fx, s), alias_frequency(fy, s)
        seen = float(np.hypot(ax_, ay_))
        verdict = "kept" if max(fx, fy) <= 1 / (2 * s) else "aliased"
        nth = {1: "", 2: "2nd", 3: "3rd"}.get(s, f"{s}th")
        ax.set_title(f"every {nth} pixel: Nyquist {1 / (2 * s):g}\n{verdict}: appears at "
                     f"{seen:.3f} cycles/pixel", fontsize=10,
                     color="#C00000" if verdict == "aliased" else "black")
    for ax in axes:
        image_axes(ax)
    return fig
