"""Every model: output shape, gradients reach the input, AlexNet equals torchvision's."""
import pytest
import torch
import torchvision

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
