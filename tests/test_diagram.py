"""zfkit.diagram: every layer of the spec is drawn, to scale, with labels read off layer_table."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from zfkit.diagram import diagram_labels, plot_architecture  # noqa: E402
from zfkit.shapes import layer_table  # noqa: E402
from zfkit.specs import MODEL_NAMES, derive_spec, get_spec  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _patches(fig) -> dict[str, object]:
    return {p.get_gid(): p for ax in fig.axes for p in ax.patches if p.get_gid()}


def _output(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[2]}x{shape[0]}" if len(shape) == 3 else str(shape[0])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_layer_of_the_spec_is_a_box_with_the_tables_output(name):
    table = layer_table(name)
    labels = diagram_labels(name)
    assert [b.name for b in labels] == ["input"] + [r.name for r in table.rows]
    assert {l.name for l in get_spec(name).layers} <= {b.name for b in labels}
    assert [b.output for b in labels[1:]] == [_output(r.output_shape) for r in table.rows]
    fig = plot_architecture(name)
    texts, patches = _texts(fig), _patches(fig)
    for b in labels:
        assert b.name in texts
        assert f"{name}:{b.name}" in patches, f"no box for {b.name}"
        assert any(b.output in t and b.operation in t for t in texts), b


def test_a_changed_spec_changes_the_labels():
    base = {b.name: b for b in diagram_labels("alexnet")}
    k7 = derive_spec("alexnet", "alexnet-k7-test", conv1=dict(kernel=7))
    changed = {b.name: b for b in diagram_labels(k7)}
    assert base["conv1"].operation == "11x11 s4 p2" and changed["conv1"].operation == "7x7 s4 p2"
    assert changed["conv1"].output == _output(layer_table(k7).row("conv1").output_shape)
    assert changed["conv1"].output != base["conv1"].output     # 57 instead of 56
    texts = _texts(plot_architecture(k7))
    assert any("7x7 s4 p2" in t for t in texts) and not any("11x11" in t for t in texts)
    assert any("conv1's window" in t and "7x7, stride 4" in t for t in texts)


def test_boxes_are_to_scale_across_rows():
    fig = plot_architecture(["alexnet", "zfnet"])
    patches = _patches(fig)
    tables = {n: layer_table(n) for n in ("alexnet", "zfnet")}
    unit = patches["alexnet:input"].get_height() / 227        # inches per pixel, both rows
    for name, table in tables.items():
        for row in table.rows:
            box = patches[f"{name}:{row.name}"]
            if len(row.output_shape) == 3:
                assert box.get_height() == pytest.approx(row.output_shape[1] * unit)
    # depth: conv3 (384 channels) is 1.5 times as wide as conv5 (256)
    assert (patches["zfnet:conv3"].get_width() / patches["zfnet:conv5"].get_width()
            == pytest.approx(384 / 256))
    # ZFNet's conv1 map (113) is about twice AlexNet's (56), as the table says
    assert (patches["zfnet:conv1"].get_height() / patches["alexnet:conv1"].get_height()
            == pytest.approx(113 / 56))


def test_the_conv1_window_is_drawn_to_scale_on_the_input():
    for name in ("alexnet-paper", "zfnet-paper"):
        fig = plot_architecture(name)
        patches = _patches(fig)
        window = patches["conv1-kernel"].get_xy()      # corners: (row, col) = top-left first
        spec = get_spec(name)
        # its left edge spans kernel rows of the input's side (no row of it cut by padding)
        rows = window[0][1] - window[3][1]
        expected = spec.layer("conv1").kernel / spec.input_size
        assert rows / patches[f"{name}:input"].get_height() == pytest.approx(expected)


def test_groups_ceil_mode_and_dropout_show_in_the_labels():
    paper = {b.name: b for b in diagram_labels("alexnet-paper")}
    assert paper["conv2"].operation == "5x5 s1 p2 g2" and paper["norm1"].operation == "LRN n=5"
    assert paper["fc6"].operation == "fc" and paper["fc7"].operation == "drop 0.5, fc"
    zf = {b.name: b for b in diagram_labels("zfnet-paper")}
    assert zf["pool1"].operation == "3x3 s2 ceil" and zf["conv1"].output == "110x110x96"
    tv = {b.name: b for b in diagram_labels("alexnet")}
    assert tv["fc6"].operation == "drop 0.5, fc" and tv["avgpool"].operation == "avg to 6x6"


def test_rows_follow_the_order_given_and_an_empty_list_is_refused():
    fig = plot_architecture(["zfnet", "alexnet"])
    patches = _patches(fig)
    assert patches["zfnet:conv1"].get_y() > patches["alexnet:conv1"].get_y()   # first on top
    with pytest.raises(ValueError, match="at least one spec"):
        plot_architecture([])
