"""zfkit.viz: figures show what they claim (true relative size, shared colour scales)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from zfkit import build_model, probe, viz  # noqa: E402
from zfkit.style import color_for  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {name: build_model(name).eval() for name in ("alexnet", "zfnet")}


def test_signed_scaling_puts_zero_at_grey_and_the_peak_at_an_end():
    x = torch.zeros(3, 2, 2)
    x[0, 0, 0], x[1, 1, 1] = -4.0, 2.0
    out = viz.signed_to_unit(x)
    assert out.shape == (2, 2, 3)
    assert out[0, 0, 0] == 0.0 and out[1, 1, 1] == 0.75 and out[0, 1, 2] == 0.5
    assert (viz.signed_to_unit(torch.zeros(3, 2, 2)) == 0.5).all()   # no division by zero


def test_mosaic_places_tiles_row_by_row():
    tiles = [np.full((2, 3, 1), i, dtype=np.float32) for i in range(5)]
    out = viz.mosaic(tiles, 2, gap=1, fill=-1)
    assert out.shape == (3 * 3 + 1, 2 * 4 + 1, 1)
    assert out[1, 1, 0] == 0 and out[1, 5, 0] == 1 and out[4, 1, 0] == 2 and out[7, 5, 0] == -1
    with pytest.raises(ValueError, match="at least one tile"):
        viz.mosaic([], 2)


def test_filter_mosaic_keeps_one_pixel_per_weight(nets):
    a = viz.filter_mosaic(nets["alexnet"].features[0].weight)
    z = viz.filter_mosaic(nets["zfnet"].features[0].weight)
    assert a.shape == (8 * 12 + 1, 8 * 12 + 1, 3) and z.shape == (8 * 8 + 1, 8 * 8 + 1, 3)
    assert 0 <= a.min() and a.max() <= 1
    with pytest.raises(ValueError, match="RGB filters"):
        viz.filter_mosaic(torch.zeros(4, 1, 5, 5))


def test_filters_are_drawn_at_their_true_relative_size(nets):
    panels = [viz.FilterPanel(name, net.features[0].weight, name) for name, net in nets.items()]
    fig = viz.plot_filters([panels, panels[::-1]], pixel=3.0, title="t")
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 4
    width_in = fig.get_size_inches()[0]
    for ax in images:
        grid_width = ax.images[0].get_array().shape[1]          # filter weights across
        drawn = ax.get_position().width * width_in * fig.dpi      # screen pixels across
        assert drawn / grid_width == pytest.approx(3.0)
    titles = {ax.get_title(): ax.title.get_color() for ax in images}
    assert any("11x11" in t for t in titles) and any("7x7" in t for t in titles)
    assert color_for("zfnet").lower() in [matplotlib.colors.to_hex(c) for c in titles.values()]


def test_feature_maps_share_one_colour_scale_per_layer(nets):
    image = torch.randint(0, 256, (3, 227, 227), dtype=torch.uint8)
    acts = {name: {k: v[0] for k, v in probe.forward_features(net, image, "conv3")
                   .activations.items() if k.startswith("conv")} for name, net in nets.items()}
    fig = viz.plot_feature_maps(acts, image, n=4, ncols=2)
    by_title = {ax.get_title(): ax for ax in fig.axes if ax.images}
    assert "input image" in by_title
    for layer in ("conv1", "conv2", "conv3"):
        pair = [ax for t, ax in by_title.items() if f" {layer}:" in t]
        assert len(pair) == 2
        limits = {ax.images[0].get_clim() for ax in pair}
        assert len(limits) == 1
        vmax = max(float(acts[n][layer].max()) for n in nets)
        assert limits.pop() == pytest.approx((0.0, vmax))
        # the maps shown are each net's strongest channels
        for ax in pair:
            net = ax.get_title().split()[0]
            best = viz.strongest_channels(acts[net][layer], 1)[0]
            shown = ax.images[0].get_array()
            h, w = acts[net][layer].shape[1:]
            gap = max(1, w // 16)
            np.testing.assert_allclose(shown[gap:gap + h, gap:gap + w],
                                       acts[net][layer][best].numpy(), rtol=1e-6)


def test_feature_explorer_follows_its_selectors(nets):
    pytest.importorskip("ipywidgets")
    images = torch.randint(0, 256, (2, 3, 227, 227), dtype=torch.uint8)
    box = viz.feature_explorer(nets, images, ["cat", "dog"])
    (pick_image, pick_net), (pick_layer, pick_channel) = (box.children[0].children,
                                                          box.children[1].children)
    assert [o[0] for o in pick_image.options] == ["0: cat", "1: dog"]
    assert pick_layer.value == "conv1" and pick_channel.max == 63
    pick_layer.value = "conv3"
    assert pick_channel.max == 383
    pick_channel.value = 200
    pick_net.value = "zfnet"                       # the layer choice survives a change of net
    assert pick_layer.value == "conv3" and pick_channel.value == 200
    pick_image.value = 1
    assert pick_layer.options == ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5",
                                  "pool5")


def test_occlusion_plot_uses_probability_scale_and_square_centres(nets):
    image = torch.randint(0, 256, (3, 227, 227), dtype=torch.uint8)
    config = probe.OcclusionConfig(patch=47, stride=60)
    results = {name: probe.occlusion_map(net, image, 2, config) for name, net in nets.items()}
    fig = viz.plot_occlusion(image, results, [f"c{i}" for i in range(20)])
    maps = [ax.images[1] for ax in fig.axes if len(ax.images) == 2]
    assert len(maps) == 2
    for im in maps:
        assert im.get_clim() == (0, 1)
        left, right, bottom, top = im.get_extent()
        assert (left, top) == (23.5 - 0.5, 23.5 - 0.5)       # the first square's centre
        assert right == results["alexnet"].xs[-1] + 23.5 - 0.5
    assert "'c2'" in fig.axes[0].get_title()


def test_spectra_and_shift_plots(nets):
    entries = [(f"{name} init", name, probe.filter_spectra(net.features[0].weight,
                                                            stride=net.spec.layer("conv1").stride))
               for name, net in nets.items()]
    fig = viz.plot_spectra(entries)
    bands_ax = fig.axes[0]
    assert len(bands_ax.patches) == 2 * 5
    heights = [p.get_height() for p in bands_ax.patches[:5]]
    np.testing.assert_allclose(heights, entries[0][2].layer_band_energy.numpy(), rtol=1e-6)
    nyquists = sorted({line.get_xdata()[0] for line in bands_ax.lines})
    assert nyquists == [0.125, 0.25]
    fig = viz.plot_shift_consistency({"alexnet": torch.tensor([1.0, 0.5])}, [0, 4])
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [1.0, 0.5])


def test_top9_layout(nets):
    images = torch.randint(0, 256, (3, 3, 227, 227), dtype=torch.uint8)
    rows = []
    for name, net in nets.items():
        hits = probe.top_activations(net, images, "conv2", k=9)["conv2"][0]
        boxes = [probe.receptive_box(net, "conv2", h.y, h.x) for h in hits]
        projections = [probe.crop_box(probe.deconv_project(net, images[h.image], "conv2", 0)[0],
                                      b, fill=0) for h, b in zip(hits, boxes)]
        patches = [probe.crop_box(images[h.image], b) for h, b in zip(hits, boxes)]
        rows.append((name, "conv2", 0, projections, patches))
    fig = viz.plot_top9(rows)
    assert len(fig.axes) == 4                               # one row: the nets side by side
    assert "patches, 51x51" in fig.axes[1].get_title()      # alexnet conv2's receptive field
    assert "patches, 27x27" in fig.axes[3].get_title()      # zfnet's: 7 + 2*2 + 4*4
