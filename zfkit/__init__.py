"""zfkit: the code behind "ZFNet vs AlexNet", an executable textbook.

Modules, one concept each, in the order the data flows (the README lists them all):

* the networks: :mod:`zfkit.specs` (AlexNet and ZFNet as data), :mod:`zfkit.sizes` (the
  output-size formula), :mod:`zfkit.models` (``nn.Module`` from a spec), :mod:`zfkit.shapes`
  (layer tables, torchinfo check), :mod:`zfkit.calculator` (the formula drawn);
* the data: :mod:`zfkit.names` (names read from data, checked), :mod:`zfkit.download`,
  :mod:`zfkit.annotations`, :mod:`zfkit.crops` and :mod:`zfkit.manifest` (VOC 2007 to class
  folders, and what they hold), :mod:`zfkit.sample` and :mod:`zfkit.photos` (generated VOC-format samples),
  :mod:`zfkit.classes` and :mod:`zfkit.official` (VOC's classes and counts), all behind
  :mod:`zfkit.voc`; :mod:`zfkit.baseline` (how far colour alone gets); :mod:`zfkit.cache` and
  :mod:`zfkit.batches` (decode once, batches on the device) behind :mod:`zfkit.data`;
* training: :mod:`zfkit.recipe`, :mod:`zfkit.history`, :mod:`zfkit.checkpoint`, behind
  :mod:`zfkit.train` (the loop; :mod:`zfkit.cpumem` keeps its CPU steps free of page faults);
  :mod:`zfkit.results`, :mod:`zfkit.recorded`, :mod:`zfkit.record`
  (comparing and recording runs); :mod:`zfkit.profiles` (the smoke/book/full switch);
* looking inside: :mod:`zfkit.activations`, :mod:`zfkit.deconvnet`, :mod:`zfkit.top9`,
  :mod:`zfkit.occlusion`, :mod:`zfkit.spectra`, :mod:`zfkit.shift`, behind :mod:`zfkit.probe`;
  :mod:`zfkit.structure` (is a filter bank still noise?) and :mod:`zfkit.aliasing`;
  :mod:`zfkit.mosaic`, :mod:`zfkit.viz_features`, :mod:`zfkit.viz_probes`,
  :mod:`zfkit.viz_sampling`, behind :mod:`zfkit.viz`;
* the page: :mod:`zfkit.web` (the in-page calculator, clickable layer tables and feature-map
  explorer of the rendered book), :mod:`zfkit.style`, :mod:`zfkit.report`; and
  :mod:`zfkit.seed` and :mod:`zfkit.paper_recipes` (quoted numbers), :mod:`zfkit.atomic`,
  :mod:`zfkit.integrity` (SHA-256 beside checkpoints
  and caches), :mod:`zfkit.version`, the command line in
  :mod:`zfkit.__main__`.
"""
from . import web
from .models import MODEL_NAMES, build_model, get_spec
from .shapes import check_with_torchinfo, conv_output_size, layer_table, receptive_fields
from .version import __version__

__all__ = [
    "MODEL_NAMES", "build_model", "get_spec", "check_with_torchinfo", "conv_output_size",
    "layer_table", "receptive_fields", "__version__",
]
