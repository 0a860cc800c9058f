"""zfkit.calculator: the pictures and the widget agree with the formula and with real PyTorch layers."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from zfkit.calculator import calculator, draw_windows, explain, explain_layer, window_positions
from zfkit.models import MODEL_NAMES, get_spec
from zfkit.shapes import layer_table
from zfkit.shapes import conv_output_size

# (size, kernel, stride, padding, dilation, ceil_mode); padding <= kernel // 2 so MaxPool accepts it
SETTINGS = [
    (8, 3, 2, 0, 1, False),    # a partial window is dropped
    (8, 3, 2, 0, 1, True),     # ceil mode keeps it
    (5, 2, 2, 1, 1, True),     # ceil mode, but the extra window would start in the right padding
    (7, 3, 2, 1, 1, False),
    (9, 3, 1, 0, 2, False),    # dilation
    (27, 3, 2, 0, 1, False),   # the 27 -> 13 pooling of both nets
    (11, 5, 3, 2, 1, True),
    (6, 6, 1, 0, 1, False),    # one window
    (10, 1, 3, 0, 1, False),   # stride larger than the window: pixels are skipped
]


def _gids(ax, gid: str) -> list:
    return [a for a in ax.get_children() if a.get_gid() == gid]


def _real_1d(size, kernel, stride, padding, dilation, ceil_mode) -> int:
    """Output length of a real MaxPool1d (ceil) or Conv1d (floor) on a 1 x 1 x size input."""
    x = torch.zeros(1, 1, size)
    if ceil_mode:
        layer = nn.MaxPool1d(kernel, stride, padding, dilation, ceil_mode=True)
    else:
        layer = nn.Conv1d(1, 1, kernel, stride, padding, dilation)
    return layer(x).shape[-1]


@pytest.mark.parametrize("settings", SETTINGS)
def test_1d_picture_draws_one_window_per_output(settings):
    ax = draw_windows(*settings)
    out = conv_output_size(*settings)
    assert len(_gids(ax, "window")) == out == _real_1d(*settings)
    dropped = window_positions(*settings).dropped
    assert len(_gids(ax, "dropped-window")) == (dropped is not None)
    assert ax.get_title().endswith(f"= {out}")


@pytest.mark.parametrize("settings", SETTINGS)
def test_2d_picture_marks_every_output(settings):
    ax = draw_windows(*settings, dims=2)
    size, kernel, stride, padding, dilation, ceil_mode = settings
    (centres,) = _gids(ax, "window-centres")
    pool = nn.MaxPool2d(kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    assert len(centres.get_offsets()) == pool(torch.zeros(1, 1, size, size)).numel()


@pytest.mark.parametrize("settings", SETTINGS)
def test_window_taps_match_what_max_pool_reads(settings):
    # Max-pooling an increasing ramp returns, for each window, the index of the last input pixel
    # it reads; that must be the largest of our taps that lies inside the input.
    size, kernel, stride, padding, dilation, ceil_mode = settings
    w = window_positions(*settings)
    ramp = torch.arange(size, dtype=torch.float32).view(1, 1, size)
    _, idx = nn.MaxPool1d(kernel, stride, padding, dilation, return_indices=True,
                          ceil_mode=ceil_mode)(ramp)
    expected = [max(t for t in w.taps(s) if 0 <= t < size) for s in w.starts]
    assert idx.flatten().tolist() == expected


def test_dropped_window_is_the_one_floor_mode_leaves_out():
    w = window_positions(8, 3, 2)            # windows at 0, 2, 4; one at 6 would need pixel 8
    assert w.starts == (0, 2, 4) and w.dropped == 6
    assert window_positions(8, 3, 2, ceil_mode=True).dropped is None
    assert window_positions(7, 3, 2).dropped is None   # windows end exactly at the last pixel


def test_ceil_mode_keeps_the_dropped_window_unless_it_starts_in_the_padding():
    checked = 0
    for size in range(1, 14):
        for kernel in range(1, 6):
            for stride in range(1, 5):
                for padding in range(0, kernel // 2 + 1):
                    if kernel > size + 2 * padding:
                        continue
                    x = torch.zeros(1, 1, size)
                    floor = nn.MaxPool1d(kernel, stride, padding)(x).shape[-1]
                    ceil = nn.MaxPool1d(kernel, stride, padding, ceil_mode=True)(x).shape[-1]
                    w = window_positions(size, kernel, stride, padding)
                    # ceil mode keeps the dropped window unless it starts in the right padding
                    kept_by_ceil = w.dropped is not None and w.dropped < size
                    assert kept_by_ceil == (ceil == floor + 1), (size, kernel, stride, padding)
                    checked += 1
    assert checked > 300


@pytest.mark.parametrize("settings", SETTINGS)
def test_explain_ends_with_pytorchs_answer(settings):
    assert explain(*settings).endswith(f"= {_real_1d(*settings)}")


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("input_size", [None, 224])
def test_explain_layer_ends_with_the_layer_tables_size(name, input_size):
    table = layer_table(name, input_size)
    for layer in get_spec(name).layers:
        if layer.kind in ("conv", "pool"):
            side = table.row(layer.name).output_shape[-1]
            assert explain_layer(name, layer.name, input_size).endswith(f"= {side}")


def test_explain_layer_reads_the_settings_from_the_spec():
    assert explain_layer("alexnet", "conv1", 224) == explain(224, 11, 4, 2)
    assert explain_layer("zfnet-paper", "pool1") == explain(110, 3, 2, ceil_mode=True)
    with pytest.raises(ValueError, match="conv and pool"):
        explain_layer("alexnet", "fc6")
    with pytest.raises(KeyError):
        explain_layer("alexnet", "conv9")


@pytest.mark.parametrize("bad", [dict(size=3, kernel_size=5), dict(size=4, kernel_size=3, stride=0),
                                 dict(size=5, kernel_size=3, padding=-1)])
def test_invalid_settings_raise_the_formula_error(bad):
    with pytest.raises(ValueError) as formula_error:
        conv_output_size(**bad)
    with pytest.raises(ValueError, match=str(formula_error.value).split(" (")[0]):
        draw_windows(**bad)
    with pytest.raises(ValueError):
        explain(**bad)


def test_draw_rejects_unknown_dims():
    with pytest.raises(ValueError, match="dims must be 1"):
        draw_windows(8, 3, dims=3)


def _controls(box) -> dict:
    """Every descendant widget of ``box`` that has a description, by description."""
    found, todo = {}, [box]
    while todo:
        widget = todo.pop()
        todo.extend(getattr(widget, "children", ()))
        if getattr(widget, "description", ""):
            found[widget.description] = widget
    return found


def _status_and_image(box):
    import ipywidgets as widgets
    (status,) = [c for c in box.children if isinstance(c, widgets.HTML)]
    (image,) = [c for c in box.children if isinstance(c, widgets.Image)]
    return status, image


def test_calculator_redraws_on_change_and_reports_errors():
    box = calculator(size=8, kernel_size=3, stride=2)
    controls = _controls(box)
    assert {"size", "kernel", "stride", "padding", "dilation", "ceil mode", "picture"} <= set(controls)
    status, image = _status_and_image(box)
    assert image.value[:4] == b"\x89PNG" and "<b>3</b>" in status.value
    first = image.value

    controls["ceil mode"].value = True                 # 8, 3, 2 in ceil mode: 4 outputs
    assert "<b>4</b>" in status.value and image.value != first

    controls["kernel"].value = 11                      # larger than the 8-pixel input
    with pytest.raises(ValueError) as formula_error:
        conv_output_size(8, 11, 2, 0, 1, True)
    assert str(formula_error.value) in status.value
    assert image.layout.display == "none"

    controls["padding"].value = 2                      # 8 + 2*2 = 12 >= 11: valid again
    assert f"<b>{conv_output_size(8, 11, 2, 2, 1, True)}</b>" in status.value
    assert image.layout.display is None

    controls["picture"].value = 2
    assert image.value[:4] == b"\x89PNG"
