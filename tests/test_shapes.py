"""The formula against real PyTorch layers, and the layer tables against torchinfo."""
import random

import pytest
import torch
from torch import nn

import zfkit
from zfkit import conv_output_size, layer_table, receptive_fields
from zfkit.models import SPECS, build_model, derive_spec
from zfkit.shapes import check_with_torchinfo, feature_shape


def _random_configs(n, seed):
    """Random valid (size, kernel, stride, padding, dilation) settings."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        k, d, s = rng.randint(1, 7), rng.randint(1, 3), rng.randint(1, 5)
        size = rng.randint(1, 40)
        p = rng.randint(0, 3)
        if d * (k - 1) + 1 <= size + 2 * p:
            out.append((size, k, s, p, d))
    return out


@pytest.mark.parametrize("size,k,s,p,d", _random_configs(300, seed=0))
def test_formula_matches_conv2d(size, k, s, p, d):
    layer = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
    with torch.no_grad():
        out = layer(torch.zeros(1, 1, size, size + 1))
    assert out.shape[-2:] == (conv_output_size(size, k, s, p, d),
                              conv_output_size(size + 1, k, s, p, d))


def _pool_configs(n, seed):
    # PyTorch's pooling also requires padding <= half the (undilated) kernel
    return [(size, k, s, min(p, k // 2), d) for size, k, s, p, d in _random_configs(n, seed)
            if d * (k - 1) + 1 <= size + 2 * min(p, k // 2)]


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("size,k,s,p,d", _pool_configs(200, seed=1))
def test_formula_matches_maxpool2d(size, k, s, p, d, ceil_mode):
    layer = nn.MaxPool2d(k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)
    out = layer(torch.zeros(1, 1, size, size))
    assert out.shape[-1] == conv_output_size(size, k, s, p, d, ceil_mode=ceil_mode)


@pytest.mark.parametrize("size,k,s,p", [(5, 2, 2, 1), (6, 3, 2, 1), (13, 3, 2, 0), (4, 2, 3, 1),
                                        (110, 3, 2, 0), (26, 3, 2, 0), (7, 3, 3, 1)])
def test_ceil_mode_last_window_rule_matches_avgpool(size, k, s, p):
    """Cases where ceil mode's extra window would start in the right padding and is dropped."""
    layer = nn.AvgPool2d(k, stride=s, padding=p, ceil_mode=True)
    assert layer(torch.zeros(1, 1, size, size)).shape[-1] == conv_output_size(
        size, k, s, p, ceil_mode=True)


def _pytorch_pool(kind: str, size: int, k: int, s: int, p: int, d: int, ceil_mode: bool):
    layer = (nn.MaxPool2d(k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)
             if kind == "max" else nn.AvgPool2d(k, stride=s, padding=p, ceil_mode=ceil_mode))
    try:
        return layer(torch.zeros(1, 1, size, size)).shape[-1]
    except RuntimeError:                        # "Output size is too small"
        return None


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_formula_accepts_exactly_the_pool_settings_pytorch_accepts(kind, ceil_mode):
    """Every small setting PyTorch's pooling can take (padding at most half the kernel, a
    non-empty input): the same output, or an error exactly where PyTorch refuses. In ceil mode
    that includes windows wider than the padded input (e.g. size 2, kernel 3, stride 2: 1)."""
    differ, wide = [], 0
    for size in range(1, 8):
        for k in range(1, 7):
            for s in range(1, 5):
                for p in range(k // 2 + 1):
                    for d in (1, 2, 3) if kind == "max" else (1,):
                        expected = _pytorch_pool(kind, size, k, s, p, d, ceil_mode)
                        try:
                            got = conv_output_size(size, k, s, p, d, ceil_mode)
                        except ValueError:
                            got = None
                        wide += got is not None and d * (k - 1) + 1 > size + 2 * p
                        if got != expected:
                            differ.append(((size, k, s, p, d), expected, got))
    assert not differ, f"{len(differ)} settings differ from PyTorch, e.g. {differ[:5]}"
    assert (wide > 0) == ceil_mode               # the wide-window cases were really tried


def _exact(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """The formula with exact rationals (the reference for huge sizes)."""
    import math
    from fractions import Fraction

    q = Fraction(size + 2 * p - d * (k - 1) - 1, s)
    out = (math.ceil(q) if ceil_mode else math.floor(q)) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def test_ceil_mode_is_exact_above_2_to_the_53():
    # float division says 2**60 + 1 here: (3*2**60 + 1) / 3 rounds to 2**60 as a float
    assert conv_output_size(3 * 2**60 + 2, 5, 3, 2, ceil_mode=True) == 2**60 + 2
    rng = random.Random(53)
    for _ in range(2000):
        size = rng.randrange(2**53, 2**70)
        args = (size, rng.randint(1, 2**20), rng.randint(1, 2**12), rng.randint(0, 2**20),
                rng.randint(1, 8))
        for ceil_mode in (False, True):
            assert conv_output_size(*args, ceil_mode=ceil_mode) == _exact(*args, ceil_mode), args


@pytest.mark.parametrize("kwargs,name", [
    (dict(size=10, kernel_size=0), "kernel_size"),
    (dict(size=10, kernel_size=3, stride=0), "stride"),
    (dict(size=10, kernel_size=3, dilation=0), "dilation"),
    (dict(size=10, kernel_size=3, padding=-1), "padding"),
    (dict(size=10.0, kernel_size=3), "size"),
    (dict(size=10, kernel_size=3.5), "kernel_size"),
    (dict(size=10, kernel_size=3, stride=True), "stride"),
    (dict(size=4, kernel_size=7), "kernel_size"),
    (dict(size=4, kernel_size=3, dilation=3, padding=1), "kernel_size"),
    (dict(size=10, kernel_size=3, ceil_mode="yes"), "ceil_mode"),
])
def test_invalid_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        conv_output_size(**kwargs)


@pytest.mark.parametrize("name", list(SPECS))
def test_table_agrees_with_torchinfo(name):
    assert check_with_torchinfo(name) == []


def test_alexnet_at_224_agrees_with_torchinfo_too():
    assert check_with_torchinfo("alexnet", 224) == []


def test_deliberately_wrong_spec_is_caught():
    # The seed's ZFNet *table* (conv1 padding 0, conv2 padding 1) checked against the seed's ZFNet
    # *code* (padding 2 on both): 111-55-27-13 against 113-56-28-13.
    table_spec = derive_spec("zfnet", "zfnet-as-tabled", conv1=dict(padding=0), conv2=dict(padding=1))
    bad = check_with_torchinfo(table_spec, model=build_model("zfnet"))
    layers = {m.layer for m in bad if m.what == "output"}
    assert layers == {"conv1", "pool1", "conv2"}  # pool2 is 13 either way
    conv1 = next(m for m in bad if m.layer == "conv1")
    assert conv1.formula == (64, 111, 111) and conv1.torchinfo == (64, 113, 113)


@pytest.mark.parametrize("name,sizes", [
    ("alexnet", [56, 27, 27, 13, 13, 13, 13, 6]),
    ("zfnet", [113, 56, 28, 13, 13, 13, 13, 6]),
    ("alexnet-paper", [55, 55, 27, 27, 27, 13, 13, 13, 13, 6]),
    ("zfnet-paper", [110, 55, 55, 26, 13, 13, 13, 13, 13, 6]),   # Fig. 3: pool, then normalise
])
def test_known_sizes(name, sizes):
    rows = [r for r in layer_table(name).rows if r.kind not in ("fc", "adaptive-avgpool")]
    assert [r.output_shape[1] for r in rows] == sizes


def test_alexnet_paper_at_224_does_not_fit_fc6():
    rows = layer_table("alexnet-paper", 224).rows
    assert rows[[r.name for r in rows].index("pool5")].output_shape == (256, 5, 5)
    assert feature_shape("alexnet-paper", 224) == (256, 5, 5)


def test_receptive_field_matches_gradient_support():
    """The receptive field of one conv5 unit equals the input region its gradient reaches.

    Max-pools pass gradient to one input only, so they are swapped for average pools of the same
    window (same geometry); all-positive weights keep every ReLU open.
    """
    model = build_model("zfnet").eval()
    x = torch.zeros(1, 3, 227, 227, requires_grad=True)
    upto = nn.Sequential(*[
        nn.AvgPool2d(m.kernel_size, m.stride, m.padding) if isinstance(m, nn.MaxPool2d) else m
        for m in model.features[: model.layer_index["conv5"] + 1]])
    with torch.no_grad():
        for m in upto:
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0)
                m.bias.fill_(1.0)
    y = upto(x)
    y[0, 0, 6, 6].backward()
    rows = torch.nonzero(x.grad[0].abs().sum(0).sum(1)).flatten()
    rf, _ = receptive_fields("zfnet")["conv5"]
    assert int(rows.max() - rows.min() + 1) == rf


def test_table_renders_html_and_text():
    table = layer_table("zfnet")
    assert "<table" in table._repr_html_() and "conv1" in table._repr_html_()
    text = str(table)
    assert "113x113x64" in text and f"{table.total_params:,}" in text
    assert table.total_params == sum(p.numel() for p in build_model("zfnet").parameters())


def test_layer_table_error_names_layer():
    with pytest.raises(ValueError, match="conv1"):
        layer_table("alexnet", 6)
    with pytest.raises(ValueError, match="pool1"):
        layer_table("alexnet", 8)  # conv1 fits (1x1 out), the 3x3 pool does not


def test_public_api():
    assert zfkit.conv_output_size is conv_output_size


def test_torchinfo_check_at_another_input_size_for_a_fixed_fc_spec():
    # alexnet-paper has no adaptive pool: at 224 its fc6 must be sized for 256x5x5
    assert check_with_torchinfo("alexnet-paper", 224) == []
    model = build_model("alexnet-paper", input_size=224)
    assert model.classifier[model.layer_index["fc6"]].in_features == 256 * 5 * 5
