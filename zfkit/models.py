"""AlexNet and ZFNet built into ``nn.Module``s from their specs.

The architectures themselves are data, in :mod:`zfkit.specs`; :func:`build_model` turns a spec into
a :class:`ConvNet`, sizing fc6 with the output-size formula of :mod:`zfkit.sizes` (not with a dummy
forward pass), and :mod:`zfkit.shapes` turns the *same* spec into a layer table. One source, so
the table in a chapter and the network cannot drift apart. The spec names (``ArchSpec``,
``SPECS``, ``get_spec``, ``derive_spec``, ...) are re-exported here.

References:
    Krizhevsky, Sutskever, Hinton (2012), "ImageNet Classification with Deep Convolutional
    Neural Networks", Sec. 3 (AlexNet). Zeiler and Fergus (2014), "Visualizing and Understanding
    Convolutional Networks", arXiv:1311.2901, Sec. 3 (ZFNet). The module names and order follow
    ``torchvision.models.AlexNet`` (Krizhevsky 2014, "One weird trick").
"""
from __future__ import annotations

import torch
from torch import nn

from .sizes import feature_shape
from .specs import FC, LRN, MODEL_NAMES, SPECS, ArchSpec, Conv, Layer, Pool, derive_spec, get_spec

__all__ = [
    "Conv", "Pool", "LRN", "FC", "Layer", "ArchSpec", "SPECS", "MODEL_NAMES", "ConvNet",
    "build_model", "get_spec", "derive_spec", "conv_layers",
]


class ConvNet(nn.Module):
    """An AlexNet-style network built from an :class:`ArchSpec`.

    The attribute names (``features``, ``avgpool``, ``classifier``) and module order match
    ``torchvision.models.AlexNet``, so a torchvision state dict loads into ``build_model("alexnet")``.
    """

    def __init__(self, spec: ArchSpec, num_classes: int = 20, input_size: int | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.num_classes = num_classes
        self.input_size = spec.input_size if input_size is None else input_size
        features: list[nn.Module] = []
        classifier: list[nn.Module] = []
        channels = 3
        if not any(l.kind == "fc" for l in spec.layers):
            raise ValueError(f"{spec.name}: a spec needs at least one FC layer")
        c, h, w = feature_shape(spec, self.input_size)   # what enters fc6, by the formula
        in_features = c * h * w
        self.layer_index: dict[str, int] = {}  # spec layer name -> index in features/classifier
        for layer in spec.layers:
            if layer.kind == "conv":
                self.layer_index[layer.name] = len(features)
                features += [nn.Conv2d(channels, layer.filters, layer.kernel, layer.stride,
                                       layer.padding, groups=layer.groups), nn.ReLU(inplace=True)]
                channels = layer.filters
            elif layer.kind == "pool":
                self.layer_index[layer.name] = len(features)
                features.append(nn.MaxPool2d(layer.kernel, layer.stride, layer.padding,
                                             ceil_mode=layer.ceil_mode))
            elif layer.kind == "lrn":
                self.layer_index[layer.name] = len(features)
                features.append(nn.LocalResponseNorm(layer.size, layer.alpha, layer.beta, layer.k))
            else:  # fc
                if layer.dropout:
                    classifier.append(nn.Dropout(layer.dropout))
                out = num_classes if layer.filters is None else layer.filters
                self.layer_index[layer.name] = len(classifier)
                classifier.append(nn.Linear(in_features, out))
                if layer.relu:
                    classifier.append(nn.ReLU(inplace=True))
                in_features = out
        self.features = nn.Sequential(*features)
        self.avgpool = (nn.AdaptiveAvgPool2d(spec.adaptive_pool) if spec.adaptive_pool
                        else nn.Identity())
        self.classifier = nn.Sequential(*classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)          # (B, C, H, W), e.g. (B, 256, 6, 6)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)       # (B, C*H*W)
        return self.classifier(x)     # (B, num_classes)

    def extra_repr(self) -> str:
        return f"spec={self.spec.name!r}, num_classes={self.num_classes}"


def build_model(name: str | ArchSpec, *, num_classes: int = 20,
                input_size: int | None = None) -> ConvNet:
    """Build a registered architecture (``alexnet``, ``zfnet``, ``alexnet-paper``, ``zfnet-paper``).

    Args:
        name: a name from :data:`MODEL_NAMES` (or an :class:`ArchSpec`).
        num_classes: outputs of the last layer (20 for the VOC classes).
        input_size: the input side fc6 is sized for (default: the spec's). Only matters for specs
            without an adaptive pool, whose fc6 width depends on the input size.
    Returns:
        A freshly initialised :class:`ConvNet` (PyTorch's default initialisation).
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return ConvNet(get_spec(name), num_classes=num_classes, input_size=input_size)


def conv_layers(model: ConvNet) -> list[tuple[str, nn.Conv2d]]:
    """The convolution layers of ``model`` in order, as ``(spec name, module)`` pairs."""
    return [(l.name, model.features[model.layer_index[l.name]])
            for l in model.spec.layers if l.kind == "conv"]
