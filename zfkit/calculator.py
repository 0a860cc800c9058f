"""The output-size formula, drawn: where a conv/pool window lands, and a widget to play with it.

:func:`window_positions` lists the windows a layer computes along one dimension (and the partial
window it drops), :func:`explain` writes the formula with the numbers filled in (:func:`explain_layer` does it for
one layer of a registered network, its settings read from the spec),
:func:`draw_windows` draws both as a picture, and :func:`calculator` wraps the picture in sliders.
The count of windows always comes from :func:`zfkit.shapes.conv_output_size`, the same function
that builds every layer table in the book, so the picture cannot disagree with the tables.

Reference: Dumoulin and Visin (2016), "A guide to convolution arithmetic for deep learning".
"""
from __future__ import annotations

import io
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from .models import ArchSpec, get_spec
from .shapes import conv_output_size, layer_table

__all__ = ["Windows", "window_positions", "explain", "explain_layer", "draw_windows", "calculator"]

# Window colours (Okabe-Ito greens/purples, kept apart from the nets' colours in zfkit.style).
FIRST, SECOND, LAST, OTHER, DROPPED = "#009E73", "#CC79A7", "#6A3D9A", "#8C8C8C", "#C00000"
PAD_FACE = "#D9D9D9"


@dataclass(frozen=True)
class Windows:
    """Where the windows of one layer sit along one dimension.

    Positions are input-pixel indices: ``0 .. size-1`` is the input, negative indices and indices
    from ``size`` on are padding.

    Args:
        size, kernel_size, stride, padding, dilation, ceil_mode: the layer's settings.
        out: the output length (``conv_output_size`` of the settings).
        span: pixels from a window's first tap to its last, ``dilation*(kernel_size-1) + 1``.
        starts: first pixel of each computed window, ``len(starts) == out``.
        dropped: first pixel of the window that is *not* computed although pixels after the
            last window go unread and it would start inside the padded input (floor mode: it does
            not fit, and rounding up would keep it; ceil mode: it would start in the right
            padding); ``None`` when the last window ends at the padded input's edge.
    """
    size: int
    kernel_size: int
    stride: int
    padding: int
    dilation: int
    ceil_mode: bool
    out: int
    span: int
    starts: tuple[int, ...]
    dropped: int | None

    def taps(self, start: int) -> list[int]:
        """Pixels read by the window that starts at ``start`` (every ``dilation``-th pixel)."""
        return [start + j * self.dilation for j in range(self.kernel_size)]


def window_positions(size: int, kernel_size: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1, ceil_mode: bool = False) -> Windows:
    """The windows a conv/pool layer computes along one dimension.

    Args:
        size, kernel_size, stride, padding, dilation, ceil_mode: as for ``nn.Conv2d`` /
            ``nn.MaxPool2d`` along one dimension.
    Returns:
        A :class:`Windows`.
    Raises:
        ValueError: from :func:`~zfkit.shapes.conv_output_size` for invalid settings.
    """
    out = conv_output_size(size, kernel_size, stride, padding, dilation, ceil_mode)
    span = dilation * (kernel_size - 1) + 1
    starts = tuple(-padding + i * stride for i in range(out))
    nxt = -padding + out * stride
    end = size + padding                               # one past the padded input's last pixel
    # a window is dropped when pixels after the last window go unread and the next window
    # would still start inside the padded input
    dropped = nxt if starts[-1] + span < end and nxt < end else None
    return Windows(size, kernel_size, stride, padding, dilation, ceil_mode, out, span, starts,
                   dropped)


def explain(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1,
            ceil_mode: bool = False) -> str:
    """The output-size formula with the numbers filled in, ending in PyTorch's answer.

    Example: ``explain(227, 11, 4)`` is ``"⌊(227 + 2·0 − 1·(11−1) − 1) / 4⌋ + 1 = ⌊54⌋ + 1 = 55"``.

    Args:
        size, kernel_size, stride, padding, dilation, ceil_mode: the layer's settings.
    Returns:
        One line of text (Unicode floor/ceil brackets).
    Raises:
        ValueError: for invalid settings, with the message of ``conv_output_size``.
    """
    out = conv_output_size(size, kernel_size, stride, padding, dilation, ceil_mode)
    num = size + 2 * padding - dilation * (kernel_size - 1) - 1
    lo, hi = ("⌈", "⌉") if ceil_mode else ("⌊", "⌋")
    quotient = num / stride
    if num % stride == 0:
        shown = str(num // stride)
    elif num * 100 % stride == 0:                      # an exact decimal, e.g. 53.25
        shown = f"{quotient:.2f}".rstrip("0")
    else:
        shown = f"≈{quotient:.2f}"
    rounded = -(-num // stride) if ceil_mode else num // stride   # integers: exact at any size
    text = (f"{lo}({size} + 2·{padding} − {dilation}·({kernel_size}−1) − 1) / {stride}{hi} + 1"
            f" = {lo}{shown}{hi} + 1 = {rounded + 1}")
    if rounded + 1 != out:   # ceil mode: PyTorch drops a last window that starts in the padding
        text += f", minus the window that would start in the right padding = {out}"
    return text


def explain_layer(spec: str | ArchSpec, name: str, input_size: int | None = None) -> str:
    """:func:`explain` for one conv/pool layer of a network, with its settings taken from the spec.

    Example: ``explain_layer("alexnet", "conv1", 224)`` is ``explain(224, 11, 4, 2)``.

    Args:
        spec: a registered name or an :class:`~zfkit.models.ArchSpec`.
        name: a conv or pool layer of ``spec``.
        input_size: side of the network's input (default: the spec's own); the layer's own input
            side is read from :func:`~zfkit.shapes.layer_table`.
    Returns:
        One line of text, as :func:`explain`.
    Raises:
        KeyError: when ``spec`` has no layer ``name``.
        ValueError: when the layer is not a conv or pool layer, or does not fit its input.
    """
    spec = get_spec(spec)
    layer = spec.layer(name)
    if layer.kind not in ("conv", "pool"):
        raise ValueError(f"{spec.name} layer {name} is {layer.kind!r}: the formula is for conv "
                         "and pool layers")
    size = layer_table(spec, input_size).row(name).input_shape[-1]
    return explain(size, layer.kernel, layer.stride, layer.padding,
                   ceil_mode=getattr(layer, "ceil_mode", False))


def _window_color(i: int, out: int) -> str:
    if i == out - 1:
        return LAST
    return FIRST if i == 0 else SECOND if i == 1 else OTHER


def _picks_2d(out: int) -> dict[tuple[int, int], str]:
    """The highlighted 2-D windows: first, second (along the first row) and last."""
    picks = {(0, 0): FIRST}
    if out > 2:
        picks[(0, 1)] = SECOND
    if out > 1:
        picks[(out - 1, out - 1)] = LAST
    return picks


def _legend(ax: Axes, w: Windows, dims: int) -> None:
    handles = [Patch(facecolor=PAD_FACE, edgecolor="black", hatch="//", label="padding")
               ] if w.padding else []
    handles.append(Patch(color=FIRST, label="first window"))
    if w.out > 2:
        handles.append(Patch(color=SECOND, label="second window"))
    if w.out > 1:
        handles.append(Patch(color=LAST, label="last window"))
    if w.out > 3 and dims == 1:
        handles.append(Patch(color=OTHER, label="other windows"))
    if dims == 2:
        handles.append(Line2D([], [], marker="o", color="black", linestyle="none", markersize=4,
                              label="window centre (one per output)"))
    if w.starts[-1] + w.span > w.size + w.padding:          # ceil mode: the last window hangs over
        handles.append(Patch(facecolor="none", edgecolor=LAST,
                             label="beyond the input (max-pool ignores it)"))
    if w.dropped is not None:
        handles.append(Patch(facecolor="none", edgecolor=DROPPED, linestyle="--",
                             label="dropped window"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02),
              ncol=len(handles) if len(handles) <= 5 else 3, fontsize=8, handlelength=1.5,
              columnspacing=1.0)


def _draw_1d(ax: Axes, w: Windows) -> None:
    lo, hi = -w.padding, w.size + w.padding                  # the padded input: [lo, hi)
    right = max(hi, (w.dropped if w.dropped is not None else w.starts[-1]) + w.span)
    for x in range(lo, hi):                                  # the input strip, row y = 0
        pad = x < 0 or x >= w.size
        ax.add_patch(Rectangle((x, 0), 1, 1, facecolor=PAD_FACE if pad else "white",
                               edgecolor="black", lw=0.6, hatch="//" if pad else None))
        if w.size + 2 * w.padding <= 40:
            ax.text(x + 0.5, 0.5, "p" if pad else str(x), ha="center", va="center", fontsize=7)
    rows = [(i, s) for i, s in enumerate(w.starts)]
    if w.dropped is not None:
        rows.append((w.out, w.dropped))
    for i, start in rows:                                    # one row per window, going down
        y = -1.3 * (i + 1)
        dropped = i == w.out
        color = DROPPED if dropped else _window_color(i, w.out)
        bar = Rectangle((start, y + 0.35), w.span, 0.3, facecolor="none" if dropped else color,
                        alpha=1.0 if dropped else 0.25, edgecolor=color,
                        linestyle="--" if dropped else "-", lw=1.2)
        bar.set_gid("dropped-window" if dropped else "window")
        ax.add_patch(bar)
        for t in w.taps(start):                              # the pixels this window reads
            outside = t >= hi
            ax.add_patch(Rectangle((t + 0.1, y + 0.1), 0.8, 0.8,
                                   facecolor="none" if dropped or outside else color,
                                   edgecolor=color, lw=1.0, linestyle="--" if dropped else "-"))
        label = ("dropped" if dropped else f"out[{i}]"
                 if i in (0, 1, w.out - 1) else "")
        ax.text(right + 0.3, y + 0.5, label, ha="left", va="center", fontsize=8, color=color)
    ax.set_xlim(lo - 0.5, right + 3.5)
    ax.set_ylim(-1.3 * (len(rows) + 1) + 0.6, 1.3)
    ax.axis("off")


def _draw_2d(ax: Axes, w: Windows) -> None:
    lo, hi = -w.padding, w.size + w.padding
    for r in range(lo, hi):                                  # the padded input grid
        for c in range(lo, hi):
            pad = not (0 <= r < w.size and 0 <= c < w.size)
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor=PAD_FACE if pad else "white",
                                   edgecolor="#606060", lw=0.4, hatch="//" if pad else None))
    picks = _picks_2d(w.out)                                 # (row, col) -> colour
    for (row, col), color in picks.items():
        y0, x0 = w.starts[row], w.starts[col]
        for ty in w.taps(y0):
            for tx in w.taps(x0):
                ax.add_patch(Rectangle((tx, ty), 1, 1, facecolor=color, alpha=0.35, lw=0))
        ax.add_patch(Rectangle((x0, y0), w.span, w.span, facecolor="none", edgecolor=color,
                               lw=2.0))
    if w.dropped is not None:                                # next window along the first row
        box = Rectangle((w.dropped, w.starts[0]), w.span, w.span, facecolor="none",
                        edgecolor=DROPPED, lw=1.5, linestyle="--")
        box.set_gid("dropped-window")
        ax.add_patch(box)
    centres = [s + w.span / 2 for s in w.starts]             # one dot per output value
    xs = [c for _ in centres for c in centres]
    ys = [r for r in centres for _ in centres]
    ax.scatter(xs, ys, s=max(4.0, 60.0 / max(1, w.out)), color="black", zorder=5,
               gid="window-centres")
    right = max(hi, w.starts[-1] + w.span,                   # ceil mode may hang over
                w.dropped + w.span if w.dropped is not None else hi)
    x_out = right + 2                                        # the output grid, to the right
    scale = min(1.5, (hi - lo) / w.out)                      # output cell side, input pixels
    for r in range(w.out):
        for c in range(w.out):
            face = picks.get((r, c), "white")
            ax.add_patch(Rectangle((x_out + c * scale, lo + r * scale), scale, scale,
                                   facecolor=face, edgecolor="black", lw=0.5,
                                   alpha=0.6 if face != "white" else 1.0))
    ax.text(x_out + w.out * scale / 2, lo - 0.6, f"output {w.out}x{w.out}", ha="center",
            va="bottom", fontsize=9)
    ax.text((lo + hi) / 2, lo - 0.6, f"input {w.size}x{w.size}, padding {w.padding}",
            ha="center", va="bottom", fontsize=9)
    ax.set_xlim(lo - 0.5, x_out + w.out * scale + 0.5)
    bottom = max(hi, w.starts[-1] + w.span, lo + w.out * scale)
    ax.set_ylim(bottom + 0.5, lo - 2.0)                      # row 0 at the top
    ax.set_aspect("equal")
    ax.axis("off")


def draw_windows(size: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, ceil_mode: bool = False, ax: Axes | None = None, *,
                 dims: int = 1) -> Axes:
    """Draw the input (padding shaded) and the sliding windows of a conv/pool layer.

    In 1-D every window is a row under the input strip, with the pixels it reads filled in; the
    first, second and last windows are coloured, and the next window that is *not* computed (the
    partial window floor mode drops) is dashed red. In 2-D the first, second and last windows are
    outlined on the padded input grid, a dot marks the centre of every window, and the output
    grid is drawn on the right. The title is :func:`explain`'s formula.

    Args:
        size, kernel_size, stride, padding, dilation, ceil_mode: the layer's settings (square in 2-D).
        ax: where to draw (default: a new figure sized to the picture).
        dims: 1 for a strip of pixels, 2 for a square image.
    Returns:
        The axes. Windows carry matplotlib gids: in 1-D one ``"window"`` patch per computed
        window; in 2-D one ``"window-centres"`` scatter with ``out*out`` points; the dropped
        window, if any, is the ``"dropped-window"`` patch.
    Raises:
        ValueError: for invalid settings (message from ``conv_output_size``) or ``dims`` not 1/2.
    """
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 (a strip) or 2 (a square image), got {dims!r}")
    w = window_positions(size, kernel_size, stride, padding, dilation, ceil_mode)
    if ax is None:
        if dims == 1:
            width = min(12.0, max(7.5, 0.32 * (size + 2 * padding + 6)))
            fig = Figure(figsize=(width, min(12.0, 1.4 + 0.3 * (w.out + 2))))
        else:
            fig = Figure(figsize=(9.0, 5.0))
        ax = fig.add_subplot()
    (_draw_1d if dims == 1 else _draw_2d)(ax, w)
    mode = "ceil" if ceil_mode else "floor"
    formula = explain(size, kernel_size, stride, padding, dilation, ceil_mode)
    ax.set_title(f"size {size}, kernel {kernel_size}, stride {stride}, padding {padding}, "
                 f"dilation {dilation}, {mode} mode\n{formula}", fontsize=10)
    _legend(ax, w, dims)
    return ax


def calculator(size: int = 8, kernel_size: int = 3, stride: int = 2, padding: int = 0,
               dilation: int = 1, ceil_mode: bool = False, dims: int = 1):
    """A live version of :func:`draw_windows`: sliders for every setting, redrawn on change.

    The picture is a PNG in an ``ipywidgets.Image`` (no matplotlib backend or display needed);
    invalid settings show the ``ValueError`` message in red instead of a picture.

    Args:
        size, kernel_size, stride, padding, dilation, ceil_mode, dims: the starting settings.
    Returns:
        An ``ipywidgets.VBox``: a row of controls (each named by its ``description``), a status
        line (``HTML``) and the picture (``Image``).
    """
    import ipywidgets as widgets

    style = {"description_width": "70px"}
    layout = widgets.Layout(width="300px")

    def slider(name: str, value: int, lo: int, hi: int) -> widgets.IntSlider:
        return widgets.IntSlider(value=value, min=lo, max=hi, description=name,
                                 continuous_update=False, style=style, layout=layout)

    controls = [slider("size", size, 1, 32), slider("kernel", kernel_size, 1, 11),
                slider("stride", stride, 1, 6), slider("padding", padding, 0, 5),
                slider("dilation", dilation, 1, 4),
                widgets.Checkbox(value=ceil_mode, description="ceil mode", indent=False),
                widgets.ToggleButtons(options=[("1-D", 1), ("2-D", 2)], value=dims,
                                      description="picture", style=style)]
    status = widgets.HTML()
    image = widgets.Image(format="png")

    def redraw(_change: object = None) -> None:
        s, k, st, p, d, ceil, nd = (c.value for c in controls)
        try:
            ax = draw_windows(s, k, st, p, d, ceil, dims=nd)
        except ValueError as exc:
            status.value = f'<span style="color:{DROPPED}">invalid settings: {exc}</span>'
            image.layout.display = "none"
            return
        buf = io.BytesIO()
        ax.figure.savefig(buf, format="png", bbox_inches="tight")
        image.value = buf.getvalue()
        image.layout.display = None
        status.value = f"output size <b>{conv_output_size(s, k, st, p, d, ceil)}</b>"

    for control in controls:
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([widgets.VBox(controls[:4]),
                                       widgets.VBox(controls[4:])]), status, image])
