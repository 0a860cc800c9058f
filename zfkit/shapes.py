"""Layer tables: every layer's kernel, stride, padding, shapes, parameters, mult-adds and
receptive field, from a spec by the formula, and a torchinfo cross-check of the built network.

The sizes come from :mod:`zfkit.sizes` (the formula walked over the spec), never from running a
network; :func:`check_with_torchinfo` then runs torchinfo on the network that
:func:`zfkit.models.build_model` makes from the same spec and reports every row where the two
disagree. The formula, :func:`feature_shape` and :func:`receptive_fields` are re-exported here,
where the chapters look for them.

References: Krizhevsky et al. (2012), Sec. 3.5 and Fig. 2 (AlexNet's layers); Zeiler and Fergus
(2014), Fig. 3 (ZFNet's layers and sizes).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from .models import build_model
from .report import html_table
from .sizes import conv_output_size, feature_shape, feature_steps, receptive_fields
from .specs import ArchSpec, get_spec

__all__ = [
    "conv_output_size", "receptive_fields", "layer_table", "feature_shape", "LayerRow",
    "LayerTable", "Mismatch", "check_with_torchinfo",
]


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
        # Twelve columns do not fit a book's text column: the shapes, then the costs and reach.
        cells = [self._cells(r) for r in self.rows]
        title = f"{self.title} at {self.input_size}x{self.input_size}x3, by the formula"
        shapes = html_table(self.COLUMNS[:8], [c[:8] for c in cells],
                            f"{title}: shapes (HxWxC)")
        costs = html_table(self.COLUMNS[:1] + self.COLUMNS[8:], [c[:1] + c[8:] for c in cells],
                           f"{title}: {self.total_params:,} parameters, "
                           f"{self.total_mult_adds:,} mult-adds; receptive field (RF) and "
                           "jump in input pixels")
        return shapes.markup + costs.markup


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
    steps = feature_steps(spec, size)             # raises, naming the layer, if a window is too big
    for step in steps:
        layer, (c, _, _), out = step.layer, step.input_shape, step.output_shape
        rf, jump = fields[layer.name]
        if layer.kind == "conv":
            per_out = (c // layer.groups) * layer.kernel ** 2     # weights of one output unit
            row = LayerRow(layer.name, "conv", layer.kernel, layer.stride, layer.padding,
                           layer.filters, step.input_shape, out, (per_out + 1) * layer.filters,
                           per_out * out[0] * out[1] * out[2], rf, jump)
        elif layer.kind == "pool":
            row = LayerRow(layer.name, "maxpool", layer.kernel, layer.stride, layer.padding, None,
                           step.input_shape, out, 0, 0, rf, jump, ceil_mode=layer.ceil_mode)
        else:  # lrn keeps the shape
            row = LayerRow(layer.name, "lrn", None, None, None, None, step.input_shape, out, 0, 0,
                           rf, jump)
        table.rows.append(row)
    fcs = [layer for layer in spec.layers if layer.kind == "fc"]
    c, h, w = steps[-1].output_shape if steps else (3, size, size)
    if fcs and spec.adaptive_pool:
        a = spec.adaptive_pool
        table.rows.append(LayerRow("avgpool", "adaptive-avgpool", None, None, None, None,
                                   (c, h, w), (c, a, a), 0, 0, None, None))
        h = w = a
    flat = c * h * w
    for layer in fcs:
        out_n = num_classes if layer.filters is None else layer.filters
        table.rows.append(LayerRow(layer.name, "fc", None, None, None, out_n, (flat,), (out_n,),
                                   flat * out_n + out_n, flat * out_n, None, None))
        flat = out_n
    return table


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
                         model: nn.Module | None = None,
                         num_classes: int = 20) -> list[Mismatch]:
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
    import torchinfo  # imported here: it is only needed for this check

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
