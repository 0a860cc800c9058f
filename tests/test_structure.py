"""Filter statistics (zfkit.structure), aliasing (zfkit.aliasing) and the papers' recipes
(zfkit.paper_recipes) against known answers."""
from __future__ import annotations

import math

import pytest
import torch

from zfkit import aliasing, paper_recipes, probe, structure


def _smooth(kind: str, k: int) -> torch.Tensor:
    """A smooth RGB filter (1, 3, k, k): a Gabor patch, an edge or a blob, Gaussian envelope."""
    c = (k - 1) / 2
    y, x = torch.meshgrid(torch.arange(k, dtype=torch.float64) - c,
                          torch.arange(k, dtype=torch.float64) - c, indexing="ij")
    envelope = torch.exp(-(x ** 2 + y ** 2) / (2 * (k / 5) ** 2))
    carrier = {"gabor": torch.cos(2 * math.pi * 0.15 * (x + y) / math.sqrt(2)),
               "edge": torch.sin(2 * math.pi * 0.08 * x), "blob": torch.ones_like(x)}[kind]
    colour = torch.tensor([1.0, 0.4, -0.6], dtype=torch.float64)[:, None, None]
    return (colour * envelope * carrier)[None]


@pytest.mark.parametrize("k", [7, 11])
def test_white_noise_is_flat_and_smooth_filters_are_not(k):
    noise = torch.randn(512, 3, k, k, generator=torch.Generator().manual_seed(0))
    flat = structure.spectral_flatness(noise)
    # RGB white noise: the geometric/arithmetic mean of a chi-square with 6 degrees of freedom,
    # exp(digamma(3)) / 3 = 0.839
    assert float(flat.mean()) == pytest.approx(math.exp(1.5 - 0.5772156649) / 3, abs=0.02)
    for kind in ("gabor", "edge", "blob"):
        smooth = float(structure.spectral_flatness(_smooth(kind, k))[0])
        assert smooth < 0.05, (kind, smooth)
        assert smooth > 0, "a smooth filter still has energy in every bin"
    reference = structure.white_noise_flatness((64, 3, k, k), draws=8)
    assert reference.shape == (8,)
    assert float(reference.mean()) == pytest.approx(float(flat.mean()), abs=0.02)
    # uniform weights (PyTorch's initialisation) give the same reference
    uniform = torch.rand(512, 3, k, k, generator=torch.Generator().manual_seed(1)) * 2 - 1
    assert float(structure.spectral_flatness(uniform).mean()) == pytest.approx(
        float(reference.mean()), abs=0.02)


def test_flatness_is_scale_free_and_has_known_extremes():
    w = torch.randn(16, 3, 7, 7, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(structure.spectral_flatness(w),
                               structure.spectral_flatness(1e-4 * w))
    impulse = torch.zeros(1, 3, 7, 7)
    impulse[0, :, 3, 3] = 1.0
    assert float(structure.spectral_flatness(impulse)[0]) == pytest.approx(1.0)
    flat_colour = torch.ones(1, 3, 7, 7)
    assert float(structure.spectral_flatness(flat_colour)[0]) < 1e-6
    assert float(structure.spectral_flatness(torch.zeros(1, 3, 7, 7))[0]) == 0.0
    with pytest.raises(ValueError, match="square filters"):
        structure.spectral_flatness(torch.zeros(2, 3, 7, 5))
    with pytest.raises(ValueError, match="bank shape"):
        structure.white_noise_flatness((3, 7, 7))


def test_power_spectrum_keeps_parseval():
    w = torch.randn(5, 3, 11, 11, dtype=torch.float64)
    power = structure.power_spectrum(w)
    torch.testing.assert_close(power.sum((1, 2)) / 121, w.square().sum((1, 2, 3)))


def test_relative_change_and_rms():
    w0 = torch.ones(2, 3, 2, 2)
    assert structure.relative_change(3 * w0, w0) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="all zero"):
        structure.relative_change(w0, torch.zeros_like(w0))
    with pytest.raises(ValueError, match="shapes differ"):
        structure.relative_change(w0, w0[:1])
    w = torch.stack([torch.full((3, 2, 2), 0.5), torch.full((3, 2, 2), 0.05)])
    torch.testing.assert_close(structure.filter_rms(w), torch.tensor([0.5, 0.05],
                                                                   dtype=torch.float64))


def test_renormalise_scales_only_filters_above_the_radius():
    w = torch.stack([torch.full((3, 2, 2), 0.5), torch.full((3, 2, 2), -0.05)])
    out = structure.renormalise(w, 0.1)
    torch.testing.assert_close(structure.filter_rms(out).float(), torch.tensor([0.1, 0.05]))
    torch.testing.assert_close(out[1], w[1])                   # below the radius: untouched
    assert torch.all(torch.sign(out) == torch.sign(w))          # the direction is kept
    with pytest.raises(ValueError, match="positive"):
        structure.renormalise(w, 0.0)
    rule = paper_recipes.ZFNET_RENORMALISATION
    assert rule.radius == 0.1
    assert rule.radius_for(1.0) == pytest.approx(12.8)          # inputs in [-1, 1]
    assert rule.radius_for(128.0) == pytest.approx(0.1)


def test_alias_frequency_folds_into_the_pass_band():
    assert aliasing.alias_frequency(0.2, 2) == pytest.approx(0.2)      # below 1/4: kept
    assert aliasing.alias_frequency(0.2, 4) == pytest.approx(0.05)     # 0.25 - 0.2
    assert aliasing.alias_frequency(0.3, 4) == pytest.approx(0.05)     # 0.3 - 0.25
    assert aliasing.alias_frequency(0.1, 4) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="stride"):
        aliasing.alias_frequency(0.1, 0)


@pytest.mark.parametrize("stride", [2, 4])
def test_a_sampled_grating_peaks_at_its_alias(stride):
    size = 256
    g = aliasing.grating(size, 0.2)                                 # along x
    assert float(g.min()) >= 0 and float(g.max()) <= 1
    kept = g[::stride, ::stride] - g[::stride, ::stride].mean()    # (size/s, size/s)
    spectrum = torch.fft.rfft(kept[0]).abs()
    peak = int(spectrum.argmax()) / kept.shape[1] / stride         # cycles per input pixel
    assert peak == pytest.approx(aliasing.alias_frequency(0.2, stride), abs=1.5 / size)


def test_aliasing_potential_on_white_images_is_the_filters_own_share():
    w = torch.randn(8, 3, 11, 11, generator=torch.Generator().manual_seed(3))
    ours = aliasing.aliasing_potential(w, stride=4)
    ref = probe.filter_spectra(w, stride=4)
    torch.testing.assert_close(ours.per_filter, ref.above_nyquist, rtol=1e-5, atol=1e-6)
    assert ours.layer == pytest.approx(ref.layer_above_nyquist, rel=1e-5)
    # an identity cross-spectrum is white: the same answer
    white = torch.eye(3, dtype=torch.complex128)[:, :, None, None].expand(3, 3, 64, 64)
    same = aliasing.aliasing_potential(w, stride=4, spectrum=white)
    torch.testing.assert_close(same.per_filter, ours.per_filter)
    assert ours.layer > 0.5, "white-noise filters put most of their energy above 1/8"


def test_smooth_images_leave_little_to_alias():
    # zero-mean images of coarse blocks (low frequencies) against pixel noise (white)
    g = torch.Generator().manual_seed(4)
    coarse = (torch.rand(6, 3, 8, 8, generator=g) - 0.5).repeat_interleave(16, 2)
    coarse = coarse.repeat_interleave(16, 3)                             # (6, 3, 128, 128)
    noise = torch.rand(6, 3, 128, 128, generator=g) - 0.5
    w = torch.randn(16, 3, 11, 11, generator=g)
    smooth = aliasing.aliasing_potential(w, stride=4,
                                         spectrum=aliasing.image_cross_spectrum(coarse))
    rough = aliasing.aliasing_potential(w, stride=4,
                                        spectrum=aliasing.image_cross_spectrum(noise))
    assert smooth.layer < 0.3 < rough.layer
    assert rough.nyquist == 0.125
    spectrum = aliasing.image_cross_spectrum(noise)
    assert spectrum.shape == (3, 3, 64, 64)
    # a cross-spectrum is Hermitian in its colour indices, with a real, positive diagonal
    torch.testing.assert_close(spectrum, spectrum.transpose(0, 1).conj())
    assert float(spectrum[0, 0].real.min()) > 0
    with pytest.raises(ValueError, match="smaller than"):
        aliasing.image_cross_spectrum(noise[:, :, :32, :32])
    with pytest.raises(ValueError, match="spectrum must be"):
        aliasing.aliasing_potential(w, stride=4, spectrum=spectrum[:2, :2])


def test_the_papers_steps_and_weight_decay():
    alexnet, zfnet = paper_recipes.ALEXNET_2012, paper_recipes.ZFNET_2014
    assert paper_recipes.steps(alexnet) == 90 * 9375                 # 1.2 M / 128 = 9375
    assert paper_recipes.steps(zfnet) == 70 * math.ceil(1_300_000 / 128)
    rate = paper_recipes.decay_per_step(alexnet.lr, alexnet.weight_decay, alexnet.momentum)
    assert rate == pytest.approx(5e-5)                               # 0.01 * 5e-4 / 0.1
    assert paper_recipes.half_life_steps(0.01, 5e-4, 0.9) == pytest.approx(math.log(2) / 5e-5)
    assert paper_recipes.half_life_steps(1e-3, 0.0) == math.inf
    assert zfnet.weight_decay is None                                 # the paper states none
    with pytest.raises(ValueError, match="momentum"):
        paper_recipes.decay_per_step(0.01, 5e-4, 1.0)


def test_momentum_amplifies_weight_decay_as_stated():
    # SGD with momentum on a weight no gradient touches: it shrinks by lr*wd/(1-m) per step
    w = torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([w], lr=0.01, momentum=0.9, weight_decay=5e-4)
    for _ in range(2000):
        opt.zero_grad()
        w.grad = torch.zeros(1)
        opt.step()
    rate = paper_recipes.decay_per_step(0.01, 5e-4, 0.9)
    # after the momentum's start-up (about 1/(1-m) = 10 steps) the decay runs at the stated rate
    assert float(w.detach()) == pytest.approx(math.exp(-rate * (2000 - 9)), rel=2e-3)
