"""Output-size arithmetic: the conv/pool formula, receptive fields, and layer tables.

Everything here is computed from an :class:`~zfkit.models.ArchSpec` with the formula, never by
running a network; :func:`check_with_torchinfo` then runs torchinfo on the built network and reports
every row where the two disagree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Integral

from .models import ArchSpec, get_spec

__all__ = [
    "conv_output_size", "receptive_fields", "layer_table", "feature_shape", "LayerRow",
    "LayerTable", "Mismatch", "check_with_torchinfo",
]


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length along one dimension of ``nn.Conv2d``, ``nn.MaxPool2d`` or ``nn.AvgPool2d``.

    ``out = floor((size + 2*padding - dilation*(kernel_size-1) - 1) / stride) + 1``; with
    ``ceil_mode`` the division rounds up, except that (PyTorch's rule) the last window must start
    inside the input or the left padding, otherwise it is dropped.

    Args:
        size: input length (pixels).
        kernel_size, stride, padding, dilation: the layer's arguments along this dimension.
        ceil_mode: round up instead of down (pooling only; Caffe always rounds up).
    Returns:
        The output length, equal to PyTorch's.
    Raises:
        ValueError: naming the argument, for a non-integer, a kernel/stride/dilation below 1, a
            negative padding or size, or a window larger than the padded input.
    """
    size = _check_int("size", size, 0)
    kernel_size = _check_int("kernel_size", kernel_size, 1)
    stride = _check_int("stride", stride, 1)
    padding = _check_int("padding", padding, 0)
    dilation = _check_int("dilation", dilation, 1)
    if not isinstance(ceil_mode, bool):
        raise ValueError(f"ceil_mode must be True or False, got {ceil_mode!r}")
    span = dilation * (kernel_size - 1) + 1          # the window's extent in input pixels
    padded = size + 2 * padding
    if span > padded:
        raise ValueError(f"kernel_size {kernel_size} (dilation {dilation}, so {span} pixels) is "
                         f"larger than the padded input ({size} + 2*{padding} = {padded})")
    if ceil_mode:
        out = math.ceil((padded - span) / stride) + 1
        if (out - 1) * stride >= size + padding:     # last window would start in the right padding
            out -= 1
        return out
    return (padded - span) // stride + 1


@dataclass
class LayerRow:
    """One row of a layer table; shapes are ``(C, H, W)`` for maps and ``(N,)`` for vectors."""
    name: str
    kind: str
    kernel: int | None
    stride: int | None
    padding: int | None
    filters: int | None
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    mult_adds: int
    receptive_field: int | None   # pixels of the input seen by one output unit
    jump: int | None              # input pixels between neighbouring output units
    ceil_mode: bool = False


def receptive_fields(spec: str | ArchSpec) -> dict[str, tuple[int, int]]:
    """Receptive field and jump (effective stride) after every conv/pool/LRN layer.

    ``rf_out = rf_in + (kernel - 1) * jump_in`` and ``jump_out = jump_in * stride``.
    Returns:
        layer name -> ``(receptive field, jump)`` in input pixels.
    """
    spec = get_spec(spec)
    rf, jump, out = 1, 1, {}
    for layer in spec.layers:
        if layer.kind in ("conv", "pool"):
            rf, jump = rf + (layer.kernel - 1) * jump, jump * layer.stride
        if layer.kind != "fc":
            out[layer.name] = (rf, jump)
    return out


@dataclass
class LayerTable:
    """A layer table; shows as HTML in a notebook and as aligned text in a terminal."""
    title: str
    input_size: int
    rows: list[LayerRow] = field(default_factory=list)

    COLUMNS = ("layer", "kind", "kernel", "stride", "pad", "filters", "input", "output",
               "params", "mult-adds", "RF", "jump")

    def _cells(self, row: LayerRow) -> list[str]:
        def shape(s: tuple[int, ...]) -> str:
            return "x".join(map(str, s[1:] + s[:1])) if len(s) == 3 else str(s[0])
        dash = "-"
        kind = row.kind + (" (ceil)" if row.ceil_mode else "")
        return [row.name, kind,
                f"{row.kernel}x{row.kernel}" if row.kernel else dash,
                str(row.stride) if row.stride else dash,
                str(row.padding) if row.padding is not None else dash,
                str(row.filters) if row.filters else dash,
                shape(row.input_shape), shape(row.output_shape),
                f"{row.params:,}", f"{row.mult_adds:,}",
                str(row.receptive_field) if row.receptive_field else dash,
                str(row.jump) if row.jump else dash]

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def total_mult_adds(self) -> int:
        return sum(r.mult_adds for r in self.rows)

    def row(self, name: str) -> LayerRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no layer {name!r} in {self.title}")

    def __str__(self) -> str:
        body = [list(self.COLUMNS)] + [self._cells(r) for r in self.rows]
        widths = [max(len(line[i]) for line in body) for i in range(len(self.COLUMNS))]
        lines = [f"{self.title} at {self.input_size}x{self.input_size}x3 (computed with the formula; "
                 "shapes are HxWxC)"]
        for i, line in enumerate(body):
            lines.append("  ".join(c.rjust(w) if j >= 2 else c.ljust(w)
                                   for j, (c, w) in enumerate(zip(line, widths))))
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines.append(f"total: {self.total_params:,} parameters, {self.total_mult_adds:,} mult-adds")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from .report import html_table

        caption = (f"{self.title} at {self.input_size}x{self.input_size}x3 (shapes HxWxC, computed "
                   f"with the formula): {self.total_params:,} parameters, "
                   f"{self.total_mult_adds:,} mult-adds")
        return html_table(self.COLUMNS, map(self._cells, self.rows), caption)._repr_html_()


def layer_table(spec: str | ArchSpec, input_size: int | None = None, *,
                num_classes: int = 20) -> LayerTable:
    """The layer table of ``spec`` at ``input_size`` (default: the spec's own), by the formula.

    Args:
        spec: a registered name or an :class:`ArchSpec`.
        input_size: side of the square RGB input.
        num_classes: outputs of the last FC layer.
    Returns:
        A :class:`LayerTable` with one row per conv, pool, LRN, adaptive-pool and FC layer.
    Raises:
        ValueError: when a layer's window does not fit its input (the message names the layer).
    """
    spec = get_spec(spec)
    size = spec.input_size if input_size is None else input_size
    fields = receptive_fields(spec)
    table = LayerTable(spec.title, size)
    c, h, w = 3, size, size
    flat = None
    for layer in spec.layers:
        if layer.kind == "fc":
            if flat is None:
                if spec.adaptive_pool:
                    a = spec.adaptive_pool
                    table.rows.append(LayerRow("avgpool", "adaptive-avgpool", None, None, None,
                                               None, (c, h, w), (c, a, a), 0, 0, None, None))
                    h = w = a
                flat = c * h * w
            out = num_classes if layer.filters is None else layer.filters
            table.rows.append(LayerRow(layer.name, "fc", None, None, None, out, (flat,), (out,),
                                       flat * out + out, flat * out, None, None))
            flat = out
            continue
        rf, jump = fields[layer.name]
        try:
            if layer.kind == "conv":
                oh = conv_output_size(h, layer.kernel, layer.stride, layer.padding)
                per_out = (c // layer.groups) * layer.kernel ** 2
                table.rows.append(LayerRow(layer.name, "conv", layer.kernel, layer.stride,
                                           layer.padding, layer.filters, (c, h, w),
                                           (layer.filters, oh, oh),
                                           (per_out + 1) * layer.filters,
                                           per_out * layer.filters * oh * oh, rf, jump))
                c = layer.filters
            elif layer.kind == "pool":
                oh = conv_output_size(h, layer.kernel, layer.stride, layer.padding,
                                      ceil_mode=layer.ceil_mode)
                table.rows.append(LayerRow(layer.name, "maxpool", layer.kernel, layer.stride,
                                           layer.padding, None, (c, h, w), (c, oh, oh), 0, 0,
                                           rf, jump, ceil_mode=layer.ceil_mode))
            else:  # lrn keeps the shape
                oh = h
                table.rows.append(LayerRow(layer.name, "lrn", None, None, None, None, (c, h, w),
                                           (c, h, w), 0, 0, rf, jump))
        except ValueError as exc:
            raise ValueError(f"{spec.name}, layer {layer.name} at input {h}x{w}: {exc}") from None
        h = w = oh
    return table


def feature_shape(spec: str | ArchSpec, input_size: int | None = None) -> tuple[int, int, int]:
    """``(C, H, W)`` entering the first FC layer (after the adaptive pool, if the spec has one)."""
    spec = get_spec(spec)
    fc6 = next(l for l in spec.layers if l.kind == "fc")
    rows = layer_table(spec, input_size).rows
    before = rows[[r.name for r in rows].index(fc6.name) - 1]
    return before.output_shape  # type: ignore[return-value]


@dataclass
class Mismatch:
    """A row where the formula and torchinfo disagree."""
    layer: str
    what: str  # "output" or "params"
    formula: object
    torchinfo: object

    def __str__(self) -> str:
        return f"{self.layer}: {self.what} by formula {self.formula}, by torchinfo {self.torchinfo}"


def check_with_torchinfo(spec: str | ArchSpec, input_size: int | None = None, *,
                         model=None, num_classes: int = 20) -> list[Mismatch]:
    """Run torchinfo on the built network and compare every row of :func:`layer_table` with it.

    Args:
        spec: the spec whose table is checked.
        input_size: input side (default: the spec's).
        model: the network to summarise (default: ``build_model(spec)``). Passing a model built
            from another spec is how a wrong table is caught.
        num_classes: classes of the default model.
    Returns:
        The rows that disagree (output shape or parameter count); empty when all agree.
    """
    import torchinfo

    from .models import build_model

    spec = get_spec(spec)
    size = spec.input_size if input_size is None else input_size
    table = layer_table(spec, size, num_classes=num_classes)
    if model is None:
        model = build_model(spec, num_classes=num_classes, input_size=size)
    info = torchinfo.summary(model, input_size=(1, 3, size, size), depth=3, verbose=0,
                             device="cpu")
    by_module = {id(layer.module): layer for layer in info.summary_list}
    mismatches: list[Mismatch] = []
    for row in table.rows:
        if row.name == "avgpool":
            module = model.avgpool
        else:
            kind = spec.layer(row.name).kind
            seq = model.classifier if kind == "fc" else model.features
            idx = model.layer_index.get(row.name)
            module = seq[idx] if idx is not None and idx < len(seq) else None
        layer = by_module.get(id(module))
        if layer is None:
            mismatches.append(Mismatch(row.name, "output", row.output_shape, "missing"))
            continue
        got = tuple(layer.output_size[1:])
        if got != row.output_shape:
            mismatches.append(Mismatch(row.name, "output", row.output_shape, got))
        if layer.num_params != row.params:
            mismatches.append(Mismatch(row.name, "params", row.params, layer.num_params))
    return mismatches
