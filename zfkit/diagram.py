"""Architecture diagrams drawn from the specs: every map a box to scale, one net per row.

:func:`plot_architecture` draws one row per network (AlexNet above ZFNet, say). Each feature map
(the input, and the output of every conv, pool, LRN and adaptive-pool layer) is a box: its height
is the map's side and its width its depth (channels), both on scales shared by every row, and the
second spatial side recedes at 45 degrees, foreshortened by half, as in Krizhevsky et al.'s
Fig. 2. A fully connected layer is a bar whose height is its number of units, on a scale of its
own. conv1's kernel is drawn on the input, to scale, with lines to the conv1 unit it computes.

Every label comes from :func:`zfkit.shapes.layer_table` through :func:`diagram_labels`, so a
changed spec changes its picture; nothing in it is typed by hand.

References: Krizhevsky et al. (2012), Fig. 2; Zeiler and Fergus (2014), Fig. 3.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Polygon, Rectangle

from .shapes import layer_table
from .specs import ArchSpec, get_spec
from .style import color_for

__all__ = ["BoxLabel", "diagram_labels", "plot_architecture", "MAP_HEIGHT", "DEPTH_WIDTH"]

MAP_HEIGHT = 1.5    # inches: the height of the largest input side in the figure
DEPTH_WIDTH = 0.45  # inches: the width of the deepest map (most channels) in the figure
_RECEDE = 0.5 * 0.7071   # the receding side: half length, at 45 degrees (x and y share)
_FC_WIDTH = 0.07    # inches
_MIN_COLUMN = 0.44  # inches: room for a column's labels (three lines, turned upright)
_GAP = 0.12         # inches between a box and the next column
_TITLE = 0.5        # inches above the boxes for the row's title and the window's note
_MARGIN = 0.15
_FONT = 7.5
_NOTE = ("To scale, one scale for every row: box height = the map's side, box width = its "
         "channels, the receding side drawn at half length; fully connected layers: bar height "
         "= units, on a scale of their own. Dark: convolution + ReLU; light: max-pool; white: "
         "LRN; grey: the input and the average pool. Beside each box: kernel, stride s, padding "
         "p, groups g; output HxWxC.")


@dataclass(frozen=True)
class BoxLabel:
    """What one box of a diagram says, read off the layer table.

    Attributes:
        name: the layer's name (``"input"`` for the input image).
        kind: ``"input"``, ``"conv"``, ``"maxpool"``, ``"lrn"``, ``"adaptive-avgpool"`` or
            ``"fc"``.
        operation: the layer's settings, e.g. ``"11x11 s4 p2"`` (kernel, stride, padding; ``g2``
            for two groups) or ``"3x3 s2 ceil"`` for a ceil-mode max-pool.
        output: the output shape as the layer table writes it: ``"55x55x96"`` (HxWxC), or
            ``"4096"`` for an FC layer.
        channels: channels of the output map, or units of an FC layer.
        side: the output map's side; ``None`` for an FC layer.
    """
    name: str
    kind: str
    operation: str
    output: str
    channels: int
    side: int | None


def _shape(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[2]}x{shape[0]}" if len(shape) == 3 else str(shape[0])


def diagram_labels(spec: str | ArchSpec, input_size: int | None = None, *,
                   num_classes: int = 20) -> list[BoxLabel]:
    """The boxes of ``spec``'s diagram, input first, one per row of its layer table.

    Args:
        spec: a registered name or an :class:`~zfkit.specs.ArchSpec`.
        input_size: side of the square RGB input (default: the spec's own).
        num_classes: outputs of the last FC layer.
    Returns:
        One :class:`BoxLabel` for the input and one per row of
        :func:`~zfkit.shapes.layer_table`, in order.
    """
    spec = get_spec(spec)
    table = layer_table(spec, input_size, num_classes=num_classes)
    size = table.input_size
    boxes = [BoxLabel("input", "input", "RGB image", f"{size}x{size}x3", 3, size)]
    for row in table.rows:
        if row.kind == "conv":
            groups = spec.layer(row.name).groups
            op = f"{row.kernel}x{row.kernel} s{row.stride} p{row.padding}"
            op += f" g{groups}" if groups > 1 else ""
        elif row.kind == "maxpool":
            op = f"{row.kernel}x{row.kernel} s{row.stride}"
            op += (f" p{row.padding}" if row.padding else "") + (" ceil" if row.ceil_mode else "")
        elif row.kind == "lrn":
            op = f"LRN n={spec.layer(row.name).size}"
        elif row.kind == "adaptive-avgpool":
            op = f"avg to {row.output_shape[1]}x{row.output_shape[2]}"
        else:
            dropout = spec.layer(row.name).dropout
            op = f"drop {dropout:g}, fc" if dropout else "fc"
        side = row.output_shape[1] if len(row.output_shape) == 3 else None
        boxes.append(BoxLabel(row.name, row.kind, op, _shape(row.output_shape),
                              row.output_shape[0], side))
    return boxes


def _shade(color: str, amount: float) -> tuple[float, float, float]:
    """``color`` mixed with white (``amount`` > 0) or black (< 0)."""
    r, g, b = to_rgb(color)
    t, end = (amount, 1.0) if amount > 0 else (-amount, 0.0)
    return (r + (end - r) * t, g + (end - g) * t, b + (end - b) * t)


def _face_color(kind: str, net_color: str) -> str | tuple[float, float, float]:
    return {"input": "#BBBBBB", "conv": net_color, "maxpool": _shade(net_color, 0.55),
            "lrn": "#FFFFFF", "adaptive-avgpool": "#DDDDDD", "fc": net_color}[kind]


def _draw_box(ax, x: float, y: float, w: float, h: float, recede: float, color, gid: str) -> None:
    """A cuboid: front face ``w`` x ``h`` at (x, y), top and right faces receding by ``recede``."""
    edge = dict(edgecolor="#333333", linewidth=0.6)
    ax.add_patch(Rectangle((x, y), w, h, facecolor=color, gid=gid, **edge))
    up, out = y + h + recede, x + w + recede
    top = [(x, y + h), (x + w, y + h), (out, up), (x + recede, up)]
    right = [(x + w, y), (out, y + recede), (out, up), (x + w, y + h)]
    ax.add_patch(Polygon(top, facecolor=_shade(to_rgb(color), 0.35), **edge))
    ax.add_patch(Polygon(right, facecolor=_shade(to_rgb(color), -0.2), gid=f"{gid}:side", **edge))


def _on_side(x: float, y: float, w: float, h: float, recede: float, side: int,
             row: float, col: float) -> tuple[float, float]:
    """The point of a box's right (spatial) face at pixel ``(row, col)`` of a ``side`` map."""
    return (x + w + col / side * recede, y + h - row / side * h + col / side * recede)


def _draw_kernel(ax, first: tuple, conv1: tuple, kernel: int, stride: int, padding: int) -> None:
    """conv1's window on the input, to scale, and lines to the conv1 unit that reads it."""
    (x0, y0, w0, h0, r0, n0), (x1, y1, w1, h1, r1, n1) = first, conv1
    unit = (n1 - 1) // 2                                # the middle unit of conv1's map
    start = max(0, unit * stride - padding)             # its window on the input (padding cut)
    end = min(n0, unit * stride - padding + kernel)
    corners = [(start, start), (start, end), (end, end), (end, start)]
    window = [_on_side(x0, y0, w0, h0, r0, n0, r, c) for r, c in corners]
    ax.add_patch(Polygon(window, facecolor="#FFD700", edgecolor="#CC0000", linewidth=1.2,
                         zorder=5, gid="conv1-kernel"))
    cell = [_on_side(x1, y1, w1, h1, r1, n1, r, c) for r, c in
            [(unit, unit), (unit, unit + 1), (unit + 1, unit + 1), (unit + 1, unit)]]
    ax.add_patch(Polygon(cell, facecolor="#FFD700", edgecolor="black", linewidth=0.8, zorder=5))
    tip = _on_side(x1, y1, w1, h1, r1, n1, unit + 0.5, unit + 0.5)
    for corner in window:
        ax.plot([corner[0], tip[0]], [corner[1], tip[1]], color="black", linewidth=0.5,
                zorder=4)
    ax.text(x0, y0 + h0 + r0 + 0.05, f"conv1's window on the input, to scale: {kernel}x{kernel}, "
            f"stride {stride}", ha="left", va="bottom", fontsize=_FONT, color="#CC0000")


def plot_architecture(specs: str | ArchSpec | Sequence[str | ArchSpec],
                      input_size: int | None = None, *, num_classes: int = 20) -> Figure:
    """Draw each network of ``specs`` as a row of boxes to scale, the first at the top.

    Box heights are map sides, box widths are channels, on scales shared by all rows (stated at
    the bottom of the figure); FC bars have a height scale of their own. Rows line up column by
    column, so two nets with the same list of layers (``["alexnet", "zfnet"]``) can be compared
    box by box. Under each box: the layer's name, its settings and its output shape, all from
    :func:`diagram_labels`.

    Args:
        specs: one spec or several (registered names or :class:`~zfkit.specs.ArchSpec`).
        input_size: side of the input for every net (default: each spec's own).
        num_classes: outputs of the last FC layer.
    Returns:
        The figure, made with pyplot (as :mod:`zfkit.viz` makes its figures), so a notebook
        shows it at the end of the cell: ``fig = plot_architecture(...)``. The front face of
        each box is a patch with gid ``"<net>:<layer>"`` (the input's layer is ``"input"``);
        conv1's window on the input has gid ``"conv1-kernel"``.
    Raises:
        ValueError: when ``specs`` is empty, or a layer's window does not fit its input.
    """
    specs = [get_spec(s) for s in ([specs] if isinstance(specs, (str, ArchSpec)) else specs)]
    if not specs:
        raise ValueError("plot_architecture needs at least one spec, e.g. ['alexnet', 'zfnet']")
    rows = [diagram_labels(s, input_size, num_classes=num_classes) for s in specs]
    maps = [b for boxes in rows for b in boxes if b.side is not None]
    units = [b.channels for boxes in rows for b in boxes if b.side is None]
    per_pixel = MAP_HEIGHT / max(b.side for b in maps)
    per_channel = DEPTH_WIDTH / max(b.channels for b in maps)
    per_unit = MAP_HEIGHT / max(units) if units else 0.0

    def extent(b: BoxLabel) -> float:
        if b.side is None:
            return _FC_WIDTH
        return b.channels * per_channel + b.side * per_pixel * _RECEDE

    columns = max(len(boxes) for boxes in rows)
    widths = [max(_MIN_COLUMN, max(extent(boxes[i]) for boxes in rows if i < len(boxes)) + _GAP)
              for i in range(columns)]
    tallest = max(b.side * per_pixel * (1 + _RECEDE) for b in maps)
    longest = max(len(t) for boxes in rows for b in boxes for t in (b.operation, b.output))
    labels = longest * _FONT / 72 * 0.62 + 0.12      # inches: the longest label, upright
    row_height = _TITLE + tallest + labels + 0.12
    width = sum(widths) + 2 * _MARGIN
    note = textwrap.wrap(_NOTE, int(width * 72 / (_FONT * 0.55)))
    height = row_height * len(rows) + 0.1 + 0.15 * len(note)
    fig = plt.figure(figsize=(width, height))   # pyplot: a notebook shows it at the end
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set(xlim=(0, width), ylim=(0, height))
    ax.axis("off")
    for r, (spec, boxes) in enumerate(zip(specs, rows)):
        top = height - r * row_height
        middle = top - _TITLE - tallest / 2
        net = color_for(spec.name)
        ax.text(_MARGIN, top - 0.05, f"{spec.title}, input {boxes[0].side}x{boxes[0].side}x3",
                fontsize=_FONT + 2, fontweight="bold", color=net, va="top")
        x, placed = _MARGIN, {}
        for i, b in enumerate(boxes):
            center = x + widths[i] / 2
            if b.side is None:
                h = max(b.channels * per_unit, 0.02)
                ax.add_patch(Rectangle((center - _FC_WIDTH / 2, middle - h / 2), _FC_WIDTH, h,
                                       facecolor=net, edgecolor="#333333", linewidth=0.6,
                                       gid=f"{spec.name}:{b.name}"))
            else:
                w, h = b.channels * per_channel, b.side * per_pixel
                recede = h * _RECEDE
                bx, by = center - (w + recede) / 2, middle - (h + recede) / 2
                _draw_box(ax, bx, by, w, h, recede, _face_color(b.kind, net),
                          f"{spec.name}:{b.name}")
                placed[b.name] = (bx, by, w, h, recede, b.side)
            below = middle - tallest / 2 - 0.06
            # upright labels, read from below: the name, then settings and output shape
            ax.text(center - 0.13, below, b.name, ha="center", va="top", rotation=90,
                    fontsize=_FONT, fontweight="bold")
            ax.text(center + 0.06, below, f"{b.operation}\n{b.output}", ha="center",
                    va="top", rotation=90, fontsize=_FONT, linespacing=1.2)
            x += widths[i]
        conv1 = spec.layer("conv1") if "conv1" in placed else None
        if conv1 is not None:
            _draw_kernel(ax, placed["input"], placed["conv1"], conv1.kernel, conv1.stride,
                         conv1.padding)
    ax.text(_MARGIN, 0.06, "\n".join(note), fontsize=_FONT, color="#444444", va="bottom",
            linespacing=1.3)
    return fig
