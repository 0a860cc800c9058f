"""Every model: output shape, gradients reach the input, AlexNet equals torchvision's, the papers'
LRN and dropout are the papers'."""
import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from zfkit import MODEL_NAMES, build_model, get_spec
from zfkit.models import conv_layers, derive_spec


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_output_shape_and_backprop_to_input(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=20)
    size = get_spec(name).input_size
    x = torch.randn(2, 3, size, size, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 20)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_alexnet_is_numerically_torchvision_alexnet():
    torch.manual_seed(0)
    reference = torchvision.models.AlexNet(num_classes=20).eval()
    ours = build_model("alexnet").eval()
    ours.load_state_dict(reference.state_dict())  # same keys, same shapes
    x = torch.randn(3, 3, 227, 227)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))


def test_zfnet_differs_from_alexnet_only_where_the_seed_says():
    a, z = get_spec("alexnet"), get_spec("zfnet")
    changed = {la.name for la, lz in zip(a.layers, z.layers) if la != lz}
    assert changed == {"conv1", "conv2"}
    assert (z.layer("conv1").kernel, z.layer("conv1").stride, z.layer("conv2").stride) == (7, 2, 2)


def paper_lrn(a: np.ndarray, k: float = 2.0, n: int = 5, alpha: float = 1e-4,
              beta: float = 0.75) -> np.ndarray:
    """Krizhevsky et al. (2012), Sec. 3.3, written out with loops: channel i of ``a`` (B, C, H, W)
    divided by (k + alpha * sum of a_j^2 over the n channels j around i, clipped at the ends)^beta."""
    b = np.empty_like(a)
    channels = a.shape[1]
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        b[:, i] = a[:, i] / (k + alpha * (a[:, lo:hi + 1] ** 2).sum(axis=1)) ** beta
    return b


@pytest.mark.parametrize("name", ["alexnet-paper", "zfnet-paper"])
@pytest.mark.parametrize("layer", ["norm1", "norm2"])
def test_lrn_is_the_papers_formula(name, layer):
    model = build_model(name)
    lrn = model.features[model.layer_index[layer]]
    assert isinstance(lrn, nn.LocalResponseNorm)
    x = 40 * torch.randn(2, 16, 5, 5, generator=torch.Generator().manual_seed(0),
                         dtype=torch.float64)   # large enough that the alpha term matters
    ref = paper_lrn(x.numpy())
    assert np.abs(ref).max() > 1, "the reference must not be (nearly) zero"
    # The check can tell the paper's alpha from torch's: alpha=1e-4 in nn.LocalResponseNorm is the
    # paper's 2e-5, and that differs from the reference by far more than the tolerance below.
    assert np.abs(paper_lrn(x.numpy(), alpha=1e-4 / 5) - ref).max() > 0.05 * np.abs(ref).max()
    np.testing.assert_allclose(lrn(x).numpy(), ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name,dropped", [("alexnet", ["fc6", "fc7"]), ("zfnet", ["fc6", "fc7"]),
                                          ("alexnet-paper", ["fc7", "fc8"]),
                                          ("zfnet-paper", ["fc7", "fc8"])])
def test_dropout_is_where_each_spec_says(name, dropped):
    # torchvision drops the inputs of fc6 and fc7; both papers the outputs of fc6 and fc7.
    model = build_model(name)
    before = [fc for fc in ("fc6", "fc7", "fc8")
              if isinstance(model.classifier[model.layer_index[fc] - 1], nn.Dropout)
              and model.layer_index[fc] > 0]
    assert before == dropped


def test_conv_layers_lists_the_convolutions_in_order():
    names = [name for name, _ in conv_layers(build_model("zfnet-paper"))]
    assert names == ["conv1", "conv2", "conv3", "conv4", "conv5"]


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        build_model("vgg")
    with pytest.raises(ValueError, match="num_classes"):
        build_model("zfnet", num_classes=0)
    with pytest.raises(ValueError, match="no layer"):
        derive_spec("zfnet", "x", conv9=dict(kernel=3))


def test_derive_spec_registers_only_when_asked():
    spec = derive_spec("alexnet", "alexnet-k7-test", conv1=dict(kernel=7))
    with pytest.raises(ValueError):
        build_model("alexnet-k7-test")
    assert build_model(spec).features[0].kernel_size == (7, 7)
