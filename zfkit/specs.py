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
    convolutional neural networks", p. 5, footnote 1 (the single-column 64-192-384-384-256
    network torchvision's AlexNet is based on; torchvision's conv4 has 256 filters).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Union

__all__ = [
    "Conv", "Pool", "LRN", "FC", "Layer", "ArchSpec", "SPECS", "MODEL_NAMES", "ALEXNET",
    "ZFNET", "ALEXNET_PAPER", "ZFNET_PAPER", "get_spec", "derive_spec", "ALEXNET_K7",
    "ALEXNET_S2X2", "ABLATION_GRID",
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
    """Local response normalisation across channels (AlexNet paper, Sec. 3.3).

    ``alpha`` is PyTorch's: ``nn.LocalResponseNorm`` divides it by ``size``, the paper's formula
    does not, so the paper's alpha=1e-4 with n=5 is 5e-4 here (``tests/test_models.py`` checks the
    built layer against the paper's formula).
    """
    name: str
    size: int = 5
    alpha: float = 5e-4
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


def _classifier(order: str) -> tuple[FC, ...]:
    """fc6, fc7, fc8 with dropout 0.5, placed in the ``"paper"`` or ``"torchvision"`` order.

    Both papers drop the *outputs* of fc6 and fc7 (Krizhevsky et al. 2012, Sec. 4.2; Zeiler and
    Fergus 2014, Sec. 3), that is the inputs of fc7 and fc8; torchvision drops the inputs of fc6
    and fc7, its own order.
    """
    if order == "paper":
        return (FC("fc6", 4096), FC("fc7", 4096, dropout=0.5),
                FC("fc8", None, dropout=0.5, relu=False))
    return (FC("fc6", 4096, dropout=0.5), FC("fc7", 4096, dropout=0.5),
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
    layers=_TORCHVISION_FEATURES + _classifier("torchvision"), adaptive_pool=6,
    source=("torchvision.models.AlexNet, the network the seed trains, based on the single-column "
            "network of Krizhevsky's 'one weird trick' paper (64-192-384-384-256 filters). "
            "torchvision departs from that paper twice: conv4 has 256 filters, from the "
            "single-GPU configuration of cuda-convnet2 that its Torch port followed, and dropout "
            "comes before fc6 and fc7, torchvision's own order (the papers drop the outputs of "
            "fc6 and fc7). Unlike the 2012 network it has no LRN, no grouped convolutions and "
            "conv1 padding 2 (which the 227-pixel derivation does not have), and an "
            "AdaptiveAvgPool2d(6) before fc6."),
))

ZFNET = _register(ArchSpec(
    name="zfnet", title="ZFNet (seed)", input_size=227,
    layers=(Conv("conv1", 64, 7, stride=2, padding=2), Pool("pool1", 3, 2),
            Conv("conv2", 192, 5, stride=2, padding=2)) + _TORCHVISION_FEATURES[3:]
    + _classifier("torchvision"),
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
    + _classifier("paper"),
    source=("Krizhevsky et al. 2012, Fig. 2: 96-256-384-384-256 filters, LRN after conv1 and conv2 "
            "before pooling (the paper's k=2, n=5, alpha=1e-4, beta=0.75; alpha=5e-4 in "
            "nn.LocalResponseNorm, which divides it by n), overlapping 3x3 stride-2 pooling, "
            "dropout 0.5 on the outputs of fc6 and fc7 (Sec. 4.2). Departures: input 227 rather "
            "than the paper's 224 (at 224 the pool5 map does not fit fc6's 9216 inputs); the "
            "two-GPU split is kept as groups=2 on conv2, conv4 and conv5 on one device."),
))

ZFNET_PAPER = _register(ArchSpec(
    name="zfnet-paper", title="ZFNet (Zeiler & Fergus 2014)", input_size=224,
    layers=(Conv("conv1", 96, 7, stride=2, padding=1), Pool("pool1", 3, 2, ceil_mode=True),
            LRN("norm1"),
            Conv("conv2", 256, 5, stride=2), Pool("pool2", 3, 2, ceil_mode=True), LRN("norm2"),
            Conv("conv3", 384, 3, padding=1), Conv("conv4", 384, 3, padding=1),
            Conv("conv5", 256, 3, padding=1), Pool("pool5", 3, 2, ceil_mode=True))
    + _classifier("paper"),
    source=("Zeiler and Fergus 2014, Fig. 3: conv1 96 of 7x7 stride 2, conv2 256 of 5x5 stride 2, "
            "384-384-256, input 224, sizes 110-55-26-13-13-13-6. Dense connections throughout: "
            "Sec. 3 replaces the sparse (two-GPU) connections of AlexNet's layers 3, 4 and 5 with "
            "dense ones. The first two layers pool and then normalise, in Fig. 3's order "
            "(AlexNet normalises before pooling); the contrast normalisation is written as "
            "AlexNet's LRN with AlexNet's constants, which the paper does not restate. Dropout 0.5 "
            "on the outputs of fc6 and fc7 (Sec. 3). The paper states no paddings: conv1 padding "
            "1, conv2 padding 0 and ceil-mode (Caffe) pooling reproduce its sizes (chapter 3)."),
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


# Chapter 8's 2x2 ablation: each of ZFNet's two changes to AlexNet on its own (the seed's ZFNet is
# AlexNet with both). Registered after MODEL_NAMES, which lists the four networks of the papers.
ALEXNET_K7 = derive_spec("alexnet", "alexnet-k7", "AlexNet + 7x7 conv1 (stride 4)", register=True,
                         conv1=dict(kernel=7))
ALEXNET_S2X2 = derive_spec("alexnet", "alexnet-s2x2", "AlexNet + strides 2, 2 (11x11 conv1)",
                           register=True, conv1=dict(stride=2), conv2=dict(stride=2))
# (conv1 kernel, conv1 stride x conv2 stride) -> the registered network
ABLATION_GRID: dict[tuple[int, str], str] = {
    (11, "4x1"): "alexnet", (7, "4x1"): ALEXNET_K7.name,
    (11, "2x2"): ALEXNET_S2X2.name, (7, "2x2"): "zfnet"}
