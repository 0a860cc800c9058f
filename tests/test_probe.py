"""zfkit.probe against independent computations: autograd, captum, brute force, known answers."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zfkit import build_model, probe, receptive_fields

SPECS = ("alexnet", "zfnet", "alexnet-paper", "zfnet-paper")


@pytest.fixture(scope="module")
def nets() -> dict[str, nn.Module]:
    """Untrained nets in float64, so comparisons hold to ~1e-12."""
    torch.manual_seed(0)
    return {name: build_model(name).double().eval() for name in SPECS}


def _image(model: nn.Module, seed: int = 0, batch: int = 1) -> torch.Tensor:
    size = model.spec.input_size
    return torch.randn(batch, 3, size, size, dtype=torch.float64,
                       generator=torch.Generator().manual_seed(seed))


class _DeconvReLU(torch.autograd.Function):
    """ReLU whose backward rectifies the incoming signal (the deconvnet's rule), not masks it."""

    @staticmethod
    def forward(ctx, x):
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp_min(0)


def _autograd_deconv(model, x, layer, channel):
    """The deconvnet as a gradient: ReLU backward rectified, LRN backward the identity."""
    end = model.layer_index[layer] + (2 if model.spec.layer(layer).kind == "conv" else 1)
    x = x.clone().requires_grad_(True)
    h = x
    for module in model.features[:end]:
        if isinstance(module, nn.ReLU):
            h = _DeconvReLU.apply(h)
        elif isinstance(module, nn.LocalResponseNorm):
            h = h + (module(h) - h).detach()      # LRN's value, the identity's gradient
        else:
            h = module(h)
    chosen = h[:, channel].detach().flatten(1)    # (B, h*w)
    best = chosen.argmax(1)
    signal = torch.zeros_like(h)
    signal[:, channel] = torch.zeros_like(chosen).scatter_(
        1, best[:, None], chosen.gather(1, best[:, None])).view_as(h[:, channel])
    (grad,) = torch.autograd.grad(h, x, grad_outputs=signal)
    return grad


@pytest.mark.parametrize("name", SPECS)
def test_deconv_matches_autograd_with_rectified_relu(nets, name):
    model = nets[name]
    x = _image(model, batch=2)
    layers = [l.name for l in model.spec.layers if l.kind != "fc"]
    for layer in ("conv1", layers[layers.index("conv2") + 1], "pool5"):
        ours = probe.deconv_project(model, x, layer, channel=5)
        ref = _autograd_deconv(model, x, layer, channel=5)
        assert ours.shape == x.shape
        assert ours.abs().max() > 0, f"{name} {layer}: empty projection, the test would be vacuous"
        torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-12 * float(ref.abs().max()))


@pytest.mark.parametrize("name", ("alexnet", "zfnet"))
def test_deconv_matches_captum_neuron_deconvolution(nets, name):
    captum = pytest.importorskip("captum.attr")
    model = nets[name]
    x = _image(model, seed=1)
    twin = copy.deepcopy(model)
    for module in twin.modules():                 # captum hooks cannot see in-place ReLUs
        if isinstance(module, nn.ReLU):
            module.inplace = False
    for layer, channel in (("conv2", 7), ("conv4", 11)):
        act = probe.forward_features(model, x, layer).activations[layer][0, channel]
        value, flat = act.flatten().max(0)
        assert value > 0, f"{name} {layer} map {channel} is silent: both sides would be 0"
        y, xx = divmod(int(flat), act.shape[1])
        relu = twin.features[model.layer_index[layer] + 1]
        with pytest.warns(UserWarning):
            ref = captum.NeuronDeconvolution(twin, relu).attribute(
                x.clone(), neuron_selector=(channel, y, xx))
        ours = probe.deconv_project(model, x, layer, channel)
        torch.testing.assert_close(ours, value * ref, rtol=1e-9, atol=1e-15)


def test_deconv_restores_every_size_with_output_padding(nets):
    # zfnet's conv2 (5x5, stride 2, padding 2) maps 56 -> 28, and 28 -> 55 without output_padding
    model = nets["zfnet"]
    assert probe.deconv_output_padding(28, 56, 5, 2, 2) == 1
    x = torch.randn(1, 3, 200, 211, dtype=torch.float64)   # odd, non-square sizes
    assert probe.deconv_project(model, x, "pool5", 0, mode="map").shape == x.shape
    with pytest.raises(RuntimeError, match="cannot restore"):
        probe.deconv_output_padding(28, 60, 5, 2, 2)


def test_unpooling_adds_values_that_share_a_switch():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 9.0          # the maximum of all four overlapping 3x3 stride-2 windows
    pooled, switches = F.max_pool2d(x, 3, 2, return_indices=True)   # (1, 1, 2, 2)
    assert (switches == 12).all()
    values = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    out = probe.unpool_sum(values, switches, (5, 5))
    assert out[0, 0, 2, 2] == 10.0 and out.sum() == 10.0
    # the same as the gradient of max-pooling
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.max_pool2d(xg, 3, 2), xg, grad_outputs=values)
    torch.testing.assert_close(out, grad)


def test_deconv_map_mode_and_bad_arguments(nets):
    model = nets["alexnet"]
    x = _image(model)
    one = probe.deconv_project(model, x, "conv1", 2, mode="max")
    whole = probe.deconv_project(model, x, "conv1", 2, mode="map")
    assert whole.abs().sum() > one.abs().sum() > 0
    with pytest.raises(ValueError, match="channel"):
        probe.deconv_project(model, x, "conv1", 64)
    with pytest.raises(ValueError, match="mode"):
        probe.deconv_project(model, x, "conv1", 0, mode="mean")
    with pytest.raises(ValueError, match="no feature layer"):
        probe.deconv_project(model, x, "fc6", 0)


def test_top_activations_match_brute_force(nets):
    model = nets["zfnet"]
    images = _image(model, seed=3, batch=7)
    hits = probe.top_activations(model, images, ("conv3", "pool1"), k=4, batch_size=3)
    assert set(hits) == {"conv3", "pool1"} and len(hits["conv3"]) == 384
    for layer in ("conv3", "pool1"):
        end = model.layer_index[layer] + (2 if layer.startswith("conv") else 1)
        with torch.no_grad():
            act = model.features[:end](images)            # e.g. (7, 384, 13, 13)
        for c in (0, 9, 60):
            per_image = act[:, c].flatten(1).max(1).values
            expected = per_image.argsort(descending=True)[:4].tolist()
            found = hits[layer][c]
            assert [h.image for h in found] == expected
            for h in found:
                assert act[h.image, c, h.y, h.x] == pytest.approx(h.value)


def test_top_activations_accept_uint8():
    model = build_model("alexnet").eval()
    images = torch.randint(0, 256, (3, 3, 227, 227), dtype=torch.uint8)
    hits = probe.top_activations(model, images, "pool1", k=9)
    assert len(hits["pool1"][0]) == 3                  # one hit per image, at most N


@pytest.mark.parametrize("name,layer", [("alexnet", "conv3"), ("zfnet", "conv2"),
                                        ("zfnet-paper", "pool2")])
def test_receptive_box_is_exactly_what_a_unit_sees(nets, name, layer):
    model = nets[name]
    x = _image(model, seed=4)
    record = probe.forward_features(model, x, layer)
    act = record.activations[layer][0]                 # (C, h, w)
    y, xx = act.shape[1] // 2, act.shape[2] // 3
    top, left, size = probe.receptive_box(model, layer, y, xx)
    assert size == receptive_fields(model.spec)[layer][0]
    inside = torch.zeros_like(x, dtype=torch.bool)
    inside[..., max(top, 0):top + size, max(left, 0):left + size] = True
    noise = torch.randn_like(x) * 3
    changed_outside = torch.where(inside, x, noise)
    after = probe.forward_features(model, changed_outside, layer).activations[layer][0]
    torch.testing.assert_close(after[:, y, xx], act[:, y, xx])
    # ... and every edge of the box matters: change a one-pixel strip along each edge
    for strip in ((slice(top, top + 1), slice(left, left + size)),
                  (slice(top + size - 1, top + size), slice(left, left + size)),
                  (slice(top, top + size), slice(left, left + 1)),
                  (slice(top, top + size), slice(left + size - 1, left + size))):
        edged = x.clone()
        edged[..., strip[0], strip[1]] += 50.0
        moved = probe.forward_features(model, edged, layer).activations[layer][0]
        assert (moved[:, y, xx] - act[:, y, xx]).abs().max() > 1e-9


def test_crop_box_pads_outside_the_image():
    image = torch.arange(2 * 4 * 4, dtype=torch.uint8).view(2, 4, 4)
    patch = probe.crop_box(image, (-1, 2, 3), fill=200)
    assert patch.shape == (2, 3, 3)
    assert (patch[:, 0] == 200).all() and (patch[:, :, 2] == 200).all()
    assert torch.equal(patch[:, 1:, :2], image[:, :2, 2:])


class _ReadsRegion(nn.Module):
    """Two classes; the logit of class 0 is 4 x the mean of one 6x6 region of the input."""
    region = (10, 16, 20, 26)  # rows 10..15, columns 20..25

    def forward(self, x):
        r0, r1, c0, c1 = self.region
        s = x[:, :, r0:r1, c0:c1].mean((1, 2, 3))
        return torch.stack([4 * s, torch.zeros_like(s)], 1)


def test_occlusion_on_a_model_whose_answer_is_known():
    model = _ReadsRegion()
    image = torch.ones(3, 40, 40)                       # normalised input: white everywhere
    config = probe.OcclusionConfig(patch=8, stride=3, grey=0.5, batch_size=7)
    result = probe.occlusion_map(model, image, target=0, config=config)
    assert result.ys == list(range(0, 33, 3)) and result.prob.shape == (11, 11)
    assert result.base_prob == pytest.approx(1 / (1 + math.exp(-4)))
    r0, r1, c0, c1 = _ReadsRegion.region
    for i, y in enumerate(result.ys):
        for j, x in enumerate(result.xs):
            rows = max(0, min(y + 8, r1) - max(y, r0))
            cols = max(0, min(x + 8, c1) - max(x, c0))
            covered = rows * cols / 36                  # grey is 0 after normalisation
            assert float(result.prob[i, j]) == pytest.approx(1 / (1 + math.exp(-4 * (1 - covered))),
                                                             rel=1e-6)
            assert int(result.top_class[i, j]) == 0     # 4 * s >= 0 always
    assert result.prob.min() == pytest.approx(0.5)     # some square covers the whole region


def test_occlusion_agrees_with_captum():
    captum = pytest.importorskip("captum.attr")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 5, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                          nn.Flatten(), nn.Linear(16, 3)).double().eval()
    image = torch.randn(3, 30, 30, dtype=torch.float64)
    patch, stride, target = 10, 4, 2   # (30 - 10) / 4 is whole: captum rounds up, we round down
    ours = probe.occlusion_map(model, image, target, probe.OcclusionConfig(patch, stride, grey=0.5))
    # captum spreads (p_base - p_occluded) over the square's pixels and averages the squares
    # that cover each pixel; rebuild that from our map
    total = torch.zeros(30, 30, dtype=torch.float64)
    count = torch.zeros(30, 30, dtype=torch.float64)
    for i, y in enumerate(ours.ys):
        for j, x in enumerate(ours.xs):
            total[y:y + patch, x:x + patch] += ours.base_prob - float(ours.prob[i, j])
            count[y:y + patch, x:x + patch] += 1
    expected = torch.where(count > 0, total / count.clamp_min(1), 0.0)
    occ = captum.Occlusion(lambda x: model(x).softmax(1))
    ref = occ.attribute(image[None], target=target, sliding_window_shapes=(3, patch, patch),
                        strides=(3, stride, stride), baselines=0.0)[0]
    for channel in range(3):
        # captum accumulates in float32
        torch.testing.assert_close(ref[channel].double(), expected, rtol=1e-5, atol=1e-7)


def _grating(freq: float, k: int, angle: float = 0.0) -> torch.Tensor:
    """A cosine grating of ``freq`` cycles/pixel, as a (1, 3, k, k) filter bank."""
    y, x = torch.meshgrid(torch.arange(k, dtype=torch.float64),
                          torch.arange(k, dtype=torch.float64), indexing="ij")
    phase = 2 * math.pi * freq * (x * math.cos(angle) + y * math.sin(angle))
    return torch.cos(phase).expand(1, 3, k, k).clone()


@pytest.mark.parametrize("k", [7, 11])
@pytest.mark.parametrize("band,angle", [(0, 0.0), (1, 0.0), (2, 0.5), (3, 0.0), (4, 1.2)])
def test_a_grating_lands_in_its_band(k, band, angle):
    freq = 0.1 * band + 0.05                           # the centre of band [0.1 b, 0.1 (b + 1))
    spectra = probe.filter_spectra(_grating(freq, k, angle), stride=2)
    assert int(spectra.band_energy[0].argmax()) == band
    assert float(spectra.centroid[0]) == pytest.approx(freq, abs=1.0 / k)
    torch.testing.assert_close(spectra.band_energy.sum(1), torch.ones(1))


def test_energy_above_the_output_nyquist():
    # stride 4: output Nyquist 1/8 cycles/pixel. A 0.3 grating lies far above it, 0.02 far below.
    high = probe.filter_spectra(_grating(0.3, 11), stride=4)
    low = probe.filter_spectra(_grating(0.02, 11), stride=4)
    assert high.nyquist == 0.125
    assert float(high.above_nyquist[0]) > 0.9
    # an 11-tap filter is a box window: its sinc side lobes leak some energy past any cut-off
    assert float(low.above_nyquist[0]) < 0.2
    # a diagonal grating aliases when either axis exceeds Nyquist: 0.16 at 45 degrees has
    # 0.113 per axis (below 1/8), the same frequency along x does not
    diagonal = probe.filter_spectra(_grating(0.16, 11, math.pi / 4), stride=4)
    along_x = probe.filter_spectra(_grating(0.16, 11), stride=4)
    assert float(diagonal.above_nyquist[0]) < float(along_x.above_nyquist[0])
    # layer-level figures weight filters by their energy
    bank = probe.filter_spectra(torch.cat([_grating(0.3, 11), 0.0 * _grating(0.02, 11)]), stride=4)
    assert bank.layer_above_nyquist == pytest.approx(float(high.above_nyquist[0]), rel=1e-5)
    torch.testing.assert_close(bank.layer_band_energy, high.band_energy[0])


def test_peak_frequency_and_white_noise_reference():
    # a low + high mix has a mid mean frequency but peaks low or high; a mid grating peaks mid
    mix = _grating(0.02, 11) + 0.9 * _grating(0.45, 11)
    mid = _grating(0.25, 11)
    spectra = probe.filter_spectra(torch.cat([mix, mid]), stride=4)
    assert 0.1 <= float(spectra.centroid[0]) < 0.4, "the mean frequency calls the mix 'mid'"
    assert float(spectra.peak[0]) < 0.1 or float(spectra.peak[0]) >= 0.4
    assert float(spectra.peak[1]) == pytest.approx(0.25, abs=1 / 64)
    low = float(spectra.peak[0]) < 0.1
    expected = [0.5, 0, 0.5, 0, 0] if low else [0, 0, 0.5, 0, 0.5]
    torch.testing.assert_close(spectra.peak_band_share, torch.tensor(expected))
    # band_area is white noise's expected share: a large white bank matches it
    noise = torch.randn(400, 3, 11, 11, generator=torch.Generator().manual_seed(0))
    white = probe.filter_spectra(noise, stride=4)
    torch.testing.assert_close(white.band_area.sum(), torch.tensor(1.0))
    torch.testing.assert_close(white.layer_band_energy, white.band_area, atol=0.01, rtol=0)
    assert float(white.band_area[-1]) > 0.4, "the last ring and the corners hold most of it"


def test_spectrum_keeps_parseval_and_rejects_bad_shapes():
    w = torch.randn(4, 3, 7, 7, dtype=torch.float64)
    spectra = probe.filter_spectra(w, stride=2, n_fft=32)
    power = torch.fft.fft2(w, s=(32, 32)).abs().square().sum((1, 2, 3)) / 32 ** 2
    torch.testing.assert_close(spectra.energy.double(), power, rtol=1e-5, atol=0)
    with pytest.raises(ValueError, match="square filters"):
        probe.filter_spectra(torch.zeros(4, 3, 7, 5), stride=2)
    with pytest.raises(ValueError, match="n_fft"):
        probe.filter_spectra(w, stride=2, n_fft=4)


def test_dead_filters_finds_zeroed_and_silenced_filters():
    torch.manual_seed(0)
    model = build_model("alexnet").eval()
    images = torch.randint(0, 256, (4, 3, 227, 227), dtype=torch.uint8)
    before = {r.layer: r for r in probe.dead_filters(model, images)}
    with torch.no_grad():
        model.features[0].weight[3].zero_()        # conv1 filter 3: no weights
        model.features[0].bias[3] = -1.0           # ... and never positive
        model.features[3].bias[17] = -1e4          # conv2 filter 17: never positive
    reports = {r.layer: r for r in probe.dead_filters(model, images, batch_size=3)}
    assert list(reports) == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert reports["conv1"].near_zero == [3] and 3 in reports["conv1"].never_active
    # (a random init can leave a few filters silent on 4 images already: only 17 is new)
    assert set(reports["conv2"].never_active) - set(before["conv2"].never_active) == {17}
    assert reports["conv2"].near_zero == []
    assert reports["conv2"].images == 4 and reports["conv5"].n_filters == 256


def test_shift_images_moves_content():
    x = torch.randn(2, 3, 20, 20)
    torch.testing.assert_close(probe.shift_images(x, 0, 0), x)
    moved = probe.shift_images(x, 2, -3)
    assert moved.shape == x.shape
    torch.testing.assert_close(moved[:, :, 2:, :-3], x[:, :, :-2, 3:])
    with pytest.raises(ValueError, match="smaller than the image"):
        probe.shift_images(x, 20, 0)


class _ReadsPixel(nn.Module):
    """Three classes: the colour channel that is brightest at pixel (5, 5)."""

    def forward(self, x):
        return x[:, :, 5, 5]


class _MeanColour(nn.Module):
    """Three classes: the colour channel brightest on average (shift invariant for flat images)."""

    def forward(self, x):
        return x.mean((2, 3))


def test_shift_consistency_known_answers():
    gen = torch.Generator().manual_seed(0)
    noisy = torch.rand(60, 3, 24, 24, generator=gen)
    flat = torch.rand(60, 3, 1, 1, generator=gen).expand(60, 3, 24, 24).clone()
    assert probe.shift_consistency(_MeanColour(), flat, max_shift=6).consistency == 1.0
    pixel = probe.shift_consistency(_ReadsPixel(), noisy, max_shift=6, batch_size=16)
    assert pixel.agree.shape == (60,) and pixel.consistency < 0.7   # ~1/3 by chance
    # the same seed draws the same offsets
    again = probe.shift_consistency(_ReadsPixel(), noisy, max_shift=6)
    assert torch.equal(pixel.agree, again.agree)
    curve = probe.consistency_by_shift(_ReadsPixel(), noisy, [0, 1, 4])
    assert curve[0] == 1.0 and curve[1:].max() < 0.7


def _tiny_crops(root) -> None:
    """A crops folder of 6 train and 4 val JPEGs in two classes, with its manifest."""
    import json

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("val", 2)):
        for name in ("cat", "dog"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for k in range(n):
                pixels = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{k}.jpg")
    manifest = {"classes": ["cat", "dog"], "source": "test-crops", "hash": "tiny0",
                "counts": {"train": 6, "val": 4}}
    (root / "manifest.json").write_text(json.dumps(manifest))


def test_initial_model_rebuilds_the_weights_a_run_started_from(tmp_path):
    from zfkit.models import derive_spec
    from zfkit.train import TrainConfig, fit, load_model

    # zfnet's layout with narrow layers, so that one epoch and its checkpoints take no time
    derive_spec("zfnet", "zfnet-narrow", register=True, conv1=dict(filters=8),
                conv2=dict(filters=8), conv3=dict(filters=8), conv4=dict(filters=8),
                conv5=dict(filters=8), fc6=dict(filters=16), fc7=dict(filters=16))
    _tiny_crops(tmp_path / "crops")
    config = TrainConfig(model="zfnet-narrow", epochs=1, batch_size=4, lr=1e-12, seed=3,
                         device="cpu")
    fit(config, tmp_path / "crops", tmp_path / "run", progress=False, slim=False)  # fp32 kept
    trained = load_model(tmp_path / "run", "last").state_dict()   # moved by ~1e-12 at most
    state = torch.get_rng_state()
    rebuilt = probe.initial_model(tmp_path / "run")
    assert torch.equal(torch.get_rng_state(), state)            # global random state untouched
    assert rebuilt.spec.name == "zfnet-narrow" and rebuilt.num_classes == 2
    for key, value in rebuilt.state_dict().items():
        torch.testing.assert_close(value, trained[key], rtol=0, atol=1e-9)
    torch.manual_seed(4)                                         # another seed: other weights
    other = build_model("zfnet-narrow", num_classes=2).features[0].weight
    assert not torch.allclose(other, trained["features.0.weight"], atol=1e-3)
