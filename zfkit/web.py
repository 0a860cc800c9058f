"""The book's interactive pieces as plain HTML and JavaScript: no kernel, no server, no CDN.

A rendered page keeps a cell's HTML output, so a piece made here works on the static page, offline,
and in a re-run notebook alike. Each is a :class:`WebPiece` that a cell displays:
:func:`calculator_html` (chapter 1; its arithmetic runs in the browser as
``window.zfkit.convOutputSize``, a port of :func:`zfkit.sizes.conv_output_size` with the same
messages, which ``tests/test_web.py`` checks), :func:`layer_table_html` (chapters 2 and 3: click a
row, see its derivation and its receptive field at true scale) and :func:`feature_explorer_html`
(chapter 6: a net, a layer, an image and a channel; maps computed here, packed into PNG sprites).

Every number a table or the explorer shows is computed here (from :mod:`zfkit.shapes`, the spec,
the models) and travels as JSON inside the piece; ``static/zfkit.js`` only draws. Each piece inlines
``static/zfkit.css`` and ``static/zfkit.js``; the script defines ``window.zfkit`` once per page and
starts every piece not yet started, so several pieces on one page never run it twice. Without
JavaScript a piece stays hidden and a note (which the script removes) points to the figures.
"""
from __future__ import annotations

import base64
import html
import io
import json
import uuid
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .shapes import LayerRow, layer_table
from .sizes import conv_output_size, receptive_fields
from .specs import ArchSpec, get_spec

__all__ = ["MAX_EXPLORER_BYTES", "WebPiece", "static_text", "example_image", "calculator_html",
           "layer_table_html", "feature_explorer_html", "standalone_page"]

MAX_EXPLORER_BYTES = 3_000_000   # the most the feature-map explorer may add to a page


@lru_cache(maxsize=None)
def static_text(name: str) -> str:
    """The text of a file shipped in ``zfkit/static/`` (e.g. ``"zfkit.js"``)."""
    return resources.files("zfkit").joinpath("static", name).read_text(encoding="utf-8")


@dataclass(frozen=True, repr=False)
class WebPiece:
    """One interactive piece, shown by a notebook through ``_repr_html_``.

    Attributes:
        kind: ``"calculator"``, ``"table"`` or ``"explorer"`` (which starter of zfkit.js runs).
        data: what the script needs, embedded as JSON.
        markup: the controls and panels (hidden until the script starts the piece).
        note: what a reader reads where the script does not run.
        style: CSS custom properties of the piece, e.g. ``"--zf-net: #0072B2"``.
    """
    kind: str
    data: Mapping[str, Any]
    markup: str
    note: str
    style: str = ""

    @property
    def html(self) -> str:
        """The whole piece: stylesheet, note, hidden block with its JSON, script (which shows
        the block and removes the note; without it, as in an untrusted notebook, the note stays)."""
        payload = json.dumps(self.data, separators=(",", ":")).replace("<", "\\u003c")
        return (f'<div class="zfkit-piece"><style>{static_text("zfkit.css")}</style>'
                f'<p class="zfkit-noscript">{html.escape(self.note)}</p>'
                f'<div class="zfkit zfkit-{self.kind}" data-zfkit="{self.kind}" '
                f'style="{html.escape(self.style)}" hidden><script type="application/json" '
                f'class="zfkit-data">{payload}</script>{self.markup}</div>'
                f"<script>{static_text('zfkit.js')}</script></div>")

    @property
    def nbytes(self) -> int:
        """Bytes this piece adds to a page (UTF-8)."""
        return len(self.html.encode("utf-8"))

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:  # the text/plain copy a notebook stores: short, not the data
        return f"<zfkit.web {self.kind}: {self.nbytes:,} bytes of HTML and JavaScript>"


def _data_uri(pixels: np.ndarray, fmt: str = "png") -> str:
    """A ``data:`` URI of ``pixels`` (``(H, W)`` or ``(H, W, 3)`` uint8) as PNG or JPEG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **({"quality": 85} if fmt == "jpeg" else {}))
    return f"data:image/{fmt};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _label(for_id: str, text: str, control: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f'<label for="{for_id}"{attr}><span>{html.escape(text)}</span>{control}</label>'


def example_image(size: int = 227) -> np.ndarray:
    """A synthetic ``(size, size, 3)`` uint8 scene (sky, sun, house, tree, striped field) drawn
    with numpy: the example input of receptive-field outlines, not an image of any data set."""
    y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1)                     # (H, W) in [0, 1]
    img = np.empty((size, size, 3))
    img[:] = (0.62, 0.80, 0.95)                                             # sky, in two bands
    img[y > 0.32] = (0.70, 0.86, 0.97)
    img[(x - 0.8) ** 2 + (y - 0.18) ** 2 < 0.09 ** 2] = (0.98, 0.80, 0.20)  # sun
    img[y > 0.66] = (0.36, 0.62, 0.28)                                      # field, striped
    img[(y > 0.66) & (np.floor((x + 0.5 * y) * 24) % 2 == 0)] = (0.30, 0.54, 0.22)
    for x0, x1, y0, y1, rgb in [(0.14, 0.46, 0.44, 0.74, (0.78, 0.36, 0.27)),       # wall
                                (0.20, 0.28, 0.52, 0.60, (0.95, 0.92, 0.70)),       # window
                                (0.33, 0.40, 0.58, 0.74, (0.30, 0.18, 0.12)),       # door
                                (0.655, 0.685, 0.50, 0.72, (0.42, 0.27, 0.15))]:    # trunk
        img[(x0 < x) & (x < x1) & (y0 < y) & (y < y1)] = rgb
    img[(y < 0.44) & (y > 0.25 + np.abs(x - 0.30))] = (0.35, 0.22, 0.20)    # roof
    img[(x - 0.67) ** 2 + (y - 0.44) ** 2 < 0.1 ** 2] = (0.16, 0.45, 0.20)  # crown
    return (img * 255).round().astype(np.uint8)


# ---------------------------------------------------------------- the calculator (chapter 1)

def calculator_html(size: int = 8, kernel_size: int = 3, stride: int = 2, padding: int = 0,
                    dilation: int = 1, ceil_mode: bool = False) -> WebPiece:
    """The in-page output-size calculator: the formula with the reader's numbers, the windows
    drawn over the input, the ceil-mode rule when it changes the answer, and for invalid
    settings the message of :func:`~zfkit.sizes.conv_output_size`.

    Args:
        size, kernel_size, stride, padding, dilation, ceil_mode: the settings it opens with.
    Raises:
        ValueError: for invalid opening settings (the message of ``conv_output_size``).
    """
    from .calculator import DROPPED, FIRST, LAST, OTHER, SECOND

    conv_output_size(size, kernel_size, stride, padding, dilation, ceil_mode)
    uid = f"zfkit-calc-{uuid.uuid4().hex[:8]}"        # fresh ids: pieces can share a page
    fields = [("size", "input size", size, 0), ("kernel", "kernel size", kernel_size, 1),
              ("stride", "stride", stride, 1), ("padding", "padding", padding, 0),
              ("dilation", "dilation", dilation, 1)]
    inputs = "".join(_label(f"{uid}-{key}", text, f'<input type="number" id="{uid}-{key}" '
                            f'data-role="{key}" value="{value}" min="{low}" step="1" '
                            'inputmode="numeric">') for key, text, value, low in fields)
    ceil = _label(f"{uid}-ceil", "ceil mode", f'<input type="checkbox" id="{uid}-ceil" '
                  f'data-role="ceil"{" checked" if ceil_mode else ""}>', "zfkit-check")
    colors = {"first": FIRST, "second": SECOND, "last": LAST, "other": OTHER, "dropped": DROPPED}
    legend = "".join(f'<li style="--swatch: {colors[key]}">{text}</li>' for key, text in
                     [("first", "first window"), ("second", "second"), ("last", "last window"),
                      ("other", "others")])
    legend += f'<li class="zfkit-dashed" style="--swatch: {DROPPED}">dropped window</li>'
    markup = (f'<p class="zfkit-title" id="{uid}-title">Output-size calculator</p>'
              f'<div class="zfkit-controls" role="group" aria-labelledby="{uid}-title">{inputs}'
              f'{ceil}</div><p class="zfkit-result" data-role="result" aria-live="polite"></p>'
              '<p class="zfkit-formula" data-role="formula"></p><p data-role="rule"></p>'
              '<div class="zfkit-strip"><svg data-role="strip" role="img" aria-label="the '
              f'windows over the input strip"></svg></div><ul class="zfkit-legend">{legend}'
              '<li style="--swatch: var(--zf-pad)">padding</li></ul>')
    note = ("The interactive calculator needs JavaScript (in a notebook: a trusted one); the figures above draw the same "
            "windows for fixed settings.")
    return WebPiece("calculator", {"colors": colors}, markup, note)


# ---------------------------------------------------------------- clickable layer tables

def _field_starts(spec: ArchSpec) -> dict[str, int]:
    """Input pixel where the field of unit 0 of each feature layer starts: it moves back by
    ``padding * jump`` at every conv/pool (as :func:`zfkit.probe.receptive_box` computes it)."""
    fields, start, jump_in, out = receptive_fields(spec), 0, 1, {}
    for layer in spec.layers:
        if layer.kind == "fc":
            break
        if layer.kind in ("conv", "pool"):
            start -= layer.padding * jump_in
        jump_in = fields[layer.name][1]
        out[layer.name] = start
    return out


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape[1:] + shape[:1])) if len(shape) == 3 else str(shape[0])


def _derivation(spec: ArchSpec, row: LayerRow, previous: tuple[int, int]) -> list[str]:
    """How a row's size (and receptive field) follow from its input, as lines of text."""
    from .calculator import explain

    if row.kind in ("conv", "maxpool"):
        n, k = row.input_shape[-1], row.kernel
        lines = [f"{row.kind} {k}x{k}, stride {row.stride}, padding {row.padding}"
                 f"{', ceil mode' if row.ceil_mode else ''}, on a {n}x{n} input",
                 "output side = " + explain(n, k, row.stride, row.padding,
                                            ceil_mode=row.ceil_mode)]
        if row.kind == "conv":
            per = row.input_shape[0] // spec.layer(row.name).groups
            lines.append(f"{row.filters} filters, one map each; parameters ({per}·{k}·{k} + 1)·"
                         f"{row.filters} = {row.params:,}")
        else:
            lines.append(f"pooling keeps the {row.input_shape[0]} channels; no parameters")
        return lines + [f"receptive field {previous[0]} + ({k}−1)·{previous[1]} = "
                        f"{row.receptive_field} pixels; jump {previous[1]}·{row.stride} = "
                        f"{row.jump} pixels"]
    if row.kind == "lrn":
        return [f"local response normalisation across channels keeps the shape "
                f"{_shape(row.output_shape)}",
                f"receptive field unchanged: {row.receptive_field} pixels, jump {row.jump}"]
    if row.kind == "adaptive-avgpool":
        c, a = row.output_shape[0], row.output_shape[-1]
        return [f"adaptive average pooling turns any map into {a}x{a} ({c} channels), so the "
                f"first FC layer always gets {c}·{a}·{a} = {c * a * a:,} inputs"]
    n_in, n_out = row.input_shape[0], row.output_shape[0]
    return [f"fully connected: {n_in:,} inputs → {n_out:,} outputs; parameters {n_in:,}·"
            f"{n_out:,} + {n_out:,} = {row.params:,}", "every output depends on every pixel"]


def _box(row: LayerRow, field: tuple[int, int, int] | None, size: int) -> tuple[dict, str]:
    """The receptive field of the row's centre unit, ``{left, size, jump}``, and its caption."""
    if field is None:
        return ({"left": 0, "size": size, "jump": 0},
                f"{row.name}: every output sees the whole {size}x{size} image")
    start, rf, jump = field
    side = row.output_shape[-1]
    unit = (side - 1) // 2
    left = start + unit * jump
    outside = " (partly in the padding)" if left < 0 or left + rf > size else ""
    label = (f"{row.name}: the field of unit ({unit}, {unit}), the centre of the {side}x{side} "
             f"map: pixels {left} to {left + rf - 1} across and down{outside}")
    if side > 1:
        label += f"; dashed: its neighbour, {jump} pixels on"
    return {"left": left, "size": rf, "jump": jump if side > 1 else 0}, label


def layer_table_html(spec: str | ArchSpec, input_size: int | None = None, *,
                     num_classes: int = 20) -> WebPiece:
    """A clickable layer table: clicking a row (or Enter/Space on it) shows that row's size
    derivation and outlines the receptive field of its centre unit on :func:`example_image`, at
    true scale. Every number comes from :func:`~zfkit.shapes.layer_table` and
    :func:`~zfkit.sizes.receptive_fields`.

    Args:
        spec: a registered name or an :class:`~zfkit.specs.ArchSpec`.
        input_size, num_classes: the input side (default: the spec's) and the last layer's width.
    """
    from .style import color_for

    spec = get_spec(spec)
    table = layer_table(spec, input_size, num_classes=num_classes)
    size, fields, starts = table.input_size, receptive_fields(spec), _field_starts(spec)
    rows, previous, field = [], (1, 1), None
    for row in table.rows:
        if row.name in starts:                     # (start of unit 0, receptive field, jump)
            field = (starts[row.name], *fields[row.name])
        elif row.input_shape != row.output_shape:  # an FC, or an adaptive pool that resizes
            field = None                           # (one that keeps the size keeps the field)
        box, label = _box(row, field, size)
        kind = row.kind + (" (ceil)" if row.ceil_mode else "")
        rows.append({"name": row.name, "box": box, "box_label": label,
                     "cells": [row.name, kind, f"{row.kernel}x{row.kernel} / {row.stride} / "
                               f"{row.padding}" if row.kernel else "-", _shape(row.output_shape),
                               f"{field[1]} / {field[2]}" if field else "all"],
                     "derivation": [f"{row.name}: {_shape(row.input_shape)} → "
                                    f"{_shape(row.output_shape)}"]
                     + _derivation(spec, row, previous)})
        previous = fields.get(row.name, previous)
    margin = max([0] + [max(-b["left"], b["left"] + b["jump"] + b["size"] - size)
                        for b in (r["box"] for r in rows)])
    uid, side = f"zfkit-table-{uuid.uuid4().hex[:8]}", size + 2 * margin
    head = "".join(f'<th scope="col">{h}</th>' for h in
                   ("layer", "kind", "k / s / p", "output", "RF / jump"))
    body = "".join(f'<tr data-row="{i}" tabindex="0" role="row" aria-selected="false">'
                   + "".join(f"<td>{html.escape(str(c))}</td>" for c in r["cells"]) + "</tr>"
                   for i, r in enumerate(rows))
    hint = (f"{spec.title} at {size}x{size}x3 (k / s / p: kernel, stride, padding; output "
            "HxWxC; RF / jump: receptive field and jump in input pixels). Click a row, or focus "
            "it (Tab, arrow keys) and press Enter, to see how its size is derived and what one "
            "of its units sees.")
    image = (f'<svg width="{side}" height="{side}" viewBox="{-margin} {-margin} {side} {side}" '
             f'role="img" aria-labelledby="{uid}-fig"><image href="'
             f'{_data_uri(example_image(size))}" x="0" y="0" width="{size}" height="{size}"/>'
             f'<rect class="zfkit-frame" x="0" y="0" width="{size}" height="{size}"/>'
             '<rect class="zfkit-next" data-role="next"/><rect class="zfkit-box" '
             'data-role="box"/></svg>')
    markup = (f'<p class="zfkit-hint" id="{uid}-cap">{html.escape(hint)}</p><div class="zfkit-'
              f'scroll"><table role="grid" aria-describedby="{uid}-cap"><thead><tr>{head}</tr>'
              f'</thead><tbody>{body}</tbody></table></div><div class="zfkit-linked"><figure>'
              f'{image}<figcaption id="{uid}-fig"><span data-role="box-label"></span>. '
              f"Synthetic {size}x{size} example image (drawn by zfkit.web.example_image, not "
              'from the data), at true scale.</figcaption></figure><div class="zfkit-'
              'derivation" data-role="derivation" aria-live="polite"></div></div>')
    note = (f"The clickable table of {spec.title} needs JavaScript (in a notebook: a trusted one); the table above has the same "
            "numbers.")
    return WebPiece("table", {"rows": rows, "start": 0}, markup, note,
                    style=f"--zf-net: {color_for(spec.name)}")


# ---------------------------------------------------------------- the feature-map explorer

def _pack_layer(act: torch.Tensor, channels: int) -> dict[str, Any]:
    """The ``channels`` channels of ``act (N, C, h, w)`` with the largest mean, each map
    quantised to uint8 on its own scale (0 to its peak, stored), in one grey PNG sprite."""
    n, c, h, w = act.shape
    chosen = act.mean((0, 2, 3)).argsort(descending=True)[:channels].tolist()
    picked = act[:, chosen]                                              # (N, K, h, w)
    peaks = picked.amax((2, 3))                                          # (N, K)
    quant = (picked / peaks.clamp_min(1e-12)[..., None, None] * 255).round().clamp(0, 255)
    sprite = quant.to(torch.uint8).permute(0, 2, 1, 3).reshape(n * h, len(chosen) * w)
    return {"shape": [c, h, w], "channels": chosen, "sprite": _data_uri(sprite.numpy()),
            "peaks": [[float(f"{p:.4g}") for p in row] for row in peaks.tolist()]}


def feature_explorer_html(models: Mapping[str, nn.Module], images: torch.Tensor, *,
                          layers: Sequence[str] = ("conv1", "conv2", "conv3", "conv4", "conv5"),
                          channels: int = 8, image_labels: Sequence[str] | None = None,
                          source: str, max_bytes: int = MAX_EXPLORER_BYTES) -> WebPiece:
    """The in-page feature-map explorer: pick a net, a layer, an image and a channel; see that
    feature map (after the ReLU, :func:`zfkit.probe.forward_features`) beside its image.

    Args:
        models: net name -> :class:`~zfkit.models.ConvNet`.
        images: ``(N, 3, H, W)`` (uint8, or normalised float as the nets take them).
        layers: feature layers every net has.
        channels: channels kept per net and layer (those with the largest mean activation).
        image_labels: one label per image (e.g. its class), shown in the image selector.
        source: where the nets and images come from, shown in the explorer.
        max_bytes: the most the piece may add to a page.
    Raises:
        ValueError: for no nets, images not ``(N, 3, H, W)``, an unknown layer, as many labels as
            images, or a piece over ``max_bytes`` (then pass fewer images or channels).
    """
    from matplotlib import colormaps

    from .probe import forward_features, to_display
    from .style import color_for

    names = list(models)
    if not names or images.dim() != 4 or images.shape[1] != 3 or len(images) == 0:
        raise ValueError("need at least one net and images of shape (N, 3, H, W), got "
                         f"{len(names)} nets and images of shape {tuple(images.shape)}")
    labels = [str(i) for i in range(len(images))] if image_labels is None else list(image_labels)
    if len(labels) != len(images) or channels < 1:
        raise ValueError(f"need one of image_labels per image and channels >= 1, got "
                         f"{len(labels)} image_labels for {len(images)} images, {channels}")
    nets = []
    for name in names:
        known = [l.name for l in models[name].spec.layers if l.kind != "fc"]
        if set(layers) - set(known):
            raise ValueError(f"{name} has no feature layer(s) {sorted(set(layers) - set(known))}"
                             f"; choose from {known}")
        acts = forward_features(models[name], images, keep=tuple(layers)).activations
        nets.append({"name": name, "color": color_for(name), "layers": [
            {"name": l, **_pack_layer(acts[l].detach().float().cpu(), channels)} for l in layers]})
    lut = (colormaps["viridis"](np.arange(256))[:, :3] * 255).round().astype(np.uint8)
    data = {"source": source, "labels": labels, "nets": nets,
            "cmap": base64.b64encode(lut.tobytes()).decode("ascii"),     # 256 RGB colours
            "images": [_data_uri((to_display(im) * 255).round().astype(np.uint8), "jpeg")
                       for im in images]}
    uid, (h, w) = f"zfkit-explorer-{uuid.uuid4().hex[:8]}", images.shape[-2:]
    controls = "".join(
        _label(f"{uid}-{key}", key if key != "net" else "network",
               f'<select id="{uid}-{key}" data-role="{key}">' + "".join(
                   f'<option value="{i}">{html.escape(str(t))}</option>'
                   for i, t in enumerate(options)) + "</select>")
        for key, options in [("net", names), ("layer", layers),
                             ("image", [f"{i}: {t}" for i, t in enumerate(labels)]),
                             ("channel", [])])
    markup = (f'<p class="zfkit-title" id="{uid}-title">Feature-map explorer</p><div class="'
              f'zfkit-controls" role="group" aria-labelledby="{uid}-title">{controls}</div>'
              '<div class="zfkit-views"><figure><canvas data-role="image-canvas" '
              f'width="{w}" height="{h}" role="img" aria-label="the chosen input image">'
              f"</canvas><figcaption>input image ({h}x{w})</figcaption></figure><figure>"
              '<canvas data-role="map-canvas" width="1" height="1" role="img" aria-label="the '
              'chosen feature map"></canvas><div class="zfkit-bar"><span>0</span><canvas '
              'data-role="colorbar" width="150" height="1" aria-hidden="true"></canvas><span '
              'data-role="bar-max"></span></div><figcaption>feature map, drawn at the '
              "image's size</figcaption></figure></div><p data-role=\"caption\" aria-live="
              f'"polite"></p><p class="zfkit-source">Data: {html.escape(source.rstrip("."))}. Colour: '
              "each map on its own scale, 0 to its largest value (viridis).</p>")
    note = ("The interactive feature-map explorer needs JavaScript (in a notebook: a trusted one); the figures above show the "
            "same maps for one image.")
    piece = WebPiece("explorer", data, markup, note)
    if piece.nbytes > max_bytes:
        raise ValueError(f"the explorer would add {piece.nbytes:,} bytes to the page, more than "
                         f"the budget of {max_bytes:,}: pass fewer images or channels")
    return piece


def standalone_page(*pieces: WebPiece, title: str = "zfkit", before: str = "",
                    theme: str | None = None) -> str:
    """A whole HTML page of ``pieces`` (after the HTML ``before``), for tests and for opening
    pieces without the book; ``theme="light"`` or ``"dark"`` sets ``data-theme`` on ``<html>``
    and a few colour variables, as the book's theme does."""
    attr = f' data-theme="{theme}"' if theme else ""
    style = f"<style>{static_text('standalone.css')}</style>" if theme else ""
    return (f'<!DOCTYPE html><html lang="en"{attr}><head><meta charset="utf-8"><meta '
            'name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title>{style}</head><body><main>{before}"
            + "".join(p.html for p in pieces) + "</main></body></html>")
