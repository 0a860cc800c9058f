"""zfkit: the code behind "ZFNet vs AlexNet", an executable textbook.

Modules, one concept each: :mod:`zfkit.shapes` (output-size formula, layer tables),
:mod:`zfkit.models` (architectures as data), :mod:`zfkit.voc` (VOC 2007 download, crops, generated
sample), :mod:`zfkit.data` (cached tensors and the batch iterator), :mod:`zfkit.train` (the loop,
checkpoints, resume), :mod:`zfkit.viz` (plots and widgets), :mod:`zfkit.probe` (deconvnet, occlusion,
filter spectra), :mod:`zfkit.profiles` (the smoke/full switch the chapters use).
"""
from .models import MODEL_NAMES, build_model, get_spec
from .shapes import check_with_torchinfo, conv_output_size, layer_table, receptive_fields
from .version import __version__

__all__ = [
    "MODEL_NAMES", "build_model", "get_spec", "check_with_torchinfo", "conv_output_size",
    "layer_table", "receptive_fields", "__version__",
]
