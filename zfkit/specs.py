"""AlexNet and ZFNet written once as data: layer specs, whole-network specs and their registry.

Each architecture is an :class:`ArchSpec`: a tuple of layer specs (convolution, max-pool, local
response normalisation, fully connected) plus the input size it is meant for, in the spirit of
torchvision's ``vgg.py`` tables. Nothing here needs torch: :mod:`zfkit.sizes` walks a spec with
the output-size formula, :mod:`zfkit.models` builds the ``nn.Module`` from the *same* spec and
:mod:`zfkit.shapes` turns it into a layer table, so a chapter's table and the network cannot drift
apart.

References:
    Krizhevsky, Sutskever, Hinton (2012), "ImageNet Classification with Deep Convolutional
    Neural Networks", Sec. 3 and Fig. 2 (AlexNet). Zeiler and Fergus (2014), "Visualizing and
    Understanding Convolutional Networks", arXiv:1311.2901, Sec. 3 and Fig. 3 (ZFNet), Sec. 4.1
    (why conv1 became 7x7 stride 2). Krizhevsky (2014), "One weird trick for parallelizing
    convolutional neural networks" (the 64-192-384-256-256 variant in torchvision).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Union

__all__ = [
    "Conv", "Pool", "LRN", "FC", "Layer", "ArchSpec", "SPECS", "MODEL_NAMES", "ALEXNET",
    "ZFNET", "ALEXNET_PAPER", "ZFNET_PAPER", "get_spec", "derive_spec",
]


@dataclass(frozen=True)
class Conv:
    """A convolution followed by ReLU."""
    name: str
    filters: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    kind: str = dataclasses.field(default="conv", init=False)


@dataclass(frozen=True)
class Pool:
    """A max-pool; ``ceil_mode=True`` is Caffe's rounding (the ZFNet paper's sizes need it)."""
    name: str
    kernel: int
    stride: int
    padding: int = 0
    ceil_mode: bool = False
    kind: str = dataclasses.field(default="pool", init=False)


@dataclass(frozen=True)
class LRN:
    """Local response normalisation across channels (AlexNet paper, Sec. 3.3)."""
    name: str
    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 2.0
    kind: str = dataclasses.field(default="lrn", init=False)


@dataclass(frozen=True)
class FC:
    """A fully connected layer. ``filters=None`` means "the number of classes" (the last layer)."""
    name: str
    filters: int | None
    dropout: float = 0.0  # dropout applied to this layer's *input*
    relu: bool = True
    kind: str = dataclasses.field(default="fc", init=False)


Layer = Union[Conv, Pool, LRN, FC]


@dataclass(frozen=True)
class ArchSpec:
    """A whole network as data.

    Args:
        name: registry name, e.g. ``"zfnet"``.
        title: a human title for tables and plots.
        input_size: the side of the square RGB input the network is designed for.
        layers: the feature extractor (Conv/Pool/LRN) followed by the classifier (FC).
        adaptive_pool: if set, an ``AdaptiveAvgPool2d`` to this size sits between features and
            classifier (torchvision does this so any input of at least 63 pixels works).
        source: where the spec comes from, and where it departs from it.
    """
    name: str
    title: str
    input_size: int
    layers: tuple[Layer, ...]
    adaptive_pool: int | None = None
    source: str = ""

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"{self.name} has no layer {name!r}; it has {[l.name for l in self.layers]}")


def _classifier(in_dropout: float) -> tuple[FC, ...]:
    return (FC("fc6", 4096, dropout=in_dropout), FC("fc7", 4096, dropout=in_dropout),
            FC("fc8", None, relu=False))


_TORCHVISION_FEATURES = (
    Conv("conv1", 64, 11, stride=4, padding=2), Pool("pool1", 3, 2),
    Conv("conv2", 192, 5, padding=2), Pool("pool2", 3, 2),
    Conv("conv3", 384, 3, padding=1), Conv("conv4", 256, 3, padding=1),
    Conv("conv5", 256, 3, padding=1), Pool("pool5", 3, 2),
)

SPECS: dict[str, ArchSpec] = {}


def _register(spec: ArchSpec) -> ArchSpec:
    SPECS[spec.name] = spec
    return spec


ALEXNET = _register(ArchSpec(
    name="alexnet", title="AlexNet (torchvision)", input_size=227,
    layers=_TORCHVISION_FEATURES + _classifier(0.5), adaptive_pool=6,
    source=("torchvision.models.AlexNet, the network the seed trains: the 'one weird trick' widths "
            "64-192-384-256-256, no LRN, no grouped convolutions, conv1 padding 2 (which the "
            "paper's 227-pixel derivation does not have), dropout before fc6 and fc7, "
            "AdaptiveAvgPool2d(6)."),
))

ZFNET = _register(ArchSpec(
    name="zfnet", title="ZFNet (seed)", input_size=227,
    layers=(Conv("conv1", 64, 7, stride=2, padding=2), Pool("pool1", 3, 2),
            Conv("conv2", 192, 5, stride=2, padding=2)) + _TORCHVISION_FEATURES[3:]
    + _classifier(0.5),
    adaptive_pool=6,
    source=("The seed's ZFNet: torchvision's AlexNet with conv1 7x7 stride 2 and conv2 stride 2, "
            "everything else unchanged: padding 2 is kept on both, although the seed's own table "
            "uses padding 0 on conv1 and 1 on conv2. Widths are torchvision's, not the paper's."),
))

ALEXNET_PAPER = _register(ArchSpec(
    name="alexnet-paper", title="AlexNet (Krizhevsky 2012)", input_size=227,
    layers=(Conv("conv1", 96, 11, stride=4), LRN("norm1"), Pool("pool1", 3, 2),
            Conv("conv2", 256, 5, padding=2, groups=2), LRN("norm2"), Pool("pool2", 3, 2),
            Conv("conv3", 384, 3, padding=1), Conv("conv4", 384, 3, padding=1, groups=2),
            Conv("conv5", 256, 3, padding=1, groups=2), Pool("pool5", 3, 2))
    + _classifier(0.5),
    source=("Krizhevsky et al. 2012, Fig. 2: 96-256-384-384-256 filters, LRN after conv1 and conv2 "
            "(k=2, n=5, alpha=1e-4, beta=0.75), overlapping 3x3 stride-2 pooling, dropout 0.5 in "
            "fc6/fc7. Departures: input 227 rather than the paper's 224 (at 224 the pool5 map "
            "does not fit fc6's 9216 inputs); the two-GPU split is kept as groups=2 on "
            "conv2, conv4 and conv5 on one device."),
))

ZFNET_PAPER = _register(ArchSpec(
    name="zfnet-paper", title="ZFNet (Zeiler & Fergus 2014)", input_size=224,
    layers=(Conv("conv1", 96, 7, stride=2, padding=1), LRN("norm1"),
            Pool("pool1", 3, 2, ceil_mode=True),
            Conv("conv2", 256, 5, stride=2), LRN("norm2"), Pool("pool2", 3, 2, ceil_mode=True),
            Conv("conv3", 384, 3, padding=1), Conv("conv4", 384, 3, padding=1),
            Conv("conv5", 256, 3, padding=1), Pool("pool5", 3, 2, ceil_mode=True))
    + _classifier(0.5),
    source=("Zeiler and Fergus 2014, Fig. 3: conv1 96 of 7x7 stride 2, conv2 256 of 5x5 stride 2, "
            "384-384-256, input 224, sizes 110-55-26-13-13-13-6. The paper states no paddings; "
            "conv1 padding 1, conv2 padding 0 and ceil-mode (Caffe) pooling are what reproduce "
            "its sizes. Its contrast normalisation is written as AlexNet's LRN."),
))

MODEL_NAMES: tuple[str, ...] = tuple(SPECS)


def get_spec(name: str | ArchSpec) -> ArchSpec:
    """Return the registered spec called ``name`` (a spec passes through unchanged)."""
    if isinstance(name, ArchSpec):
        return name
    if name not in SPECS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(SPECS)}")
    return SPECS[name]


def derive_spec(base: str | ArchSpec, name: str, title: str | None = None, *,
                register: bool = False, **changes: dict) -> ArchSpec:
    """A copy of ``base`` with some layers' fields changed, e.g. for an ablation::

        derive_spec("alexnet", "alexnet-k7", conv1=dict(kernel=7))

    Args:
        base: the spec (or its name) to start from.
        name: the new spec's name.
        title: its title (defaults to ``name``).
        register: also add it to :data:`SPECS`, so ``build_model(name)`` finds it.
        **changes: layer name -> dict of fields to replace in that layer.
    Returns:
        The new :class:`ArchSpec`.
    """
    spec = get_spec(base)
    unknown = set(changes) - {layer.name for layer in spec.layers}
    if unknown:
        raise ValueError(f"{spec.name} has no layer(s) {sorted(unknown)}")
    layers = tuple(dataclasses.replace(l, **changes[l.name]) if l.name in changes else l
                   for l in spec.layers)
    what = ", ".join(f"{k}: {v}" for k, v in changes.items())
    new = dataclasses.replace(spec, name=name, title=title or name, layers=layers,
                              source=f"{spec.name} with {what}")
    if register:
        SPECS[name] = new
    return new
