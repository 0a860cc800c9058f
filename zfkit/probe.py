"""Looking inside a network the way Zeiler and Fergus did, in one place to import from.

``from zfkit import probe`` gives every probe the chapters use; each lives in a module of its own:

* :mod:`zfkit.activations`: run the feature layers, record activations and pooling switches
  (:func:`forward_features`); images in (:func:`as_input`) and out (:func:`to_display`).
* :mod:`zfkit.deconvnet`: project a feature map back to pixels (:func:`deconv_project`), Sec. 2.1.
* :mod:`zfkit.top9`: the strongest images of each feature map and the patches their units see
  (:func:`top_activations`, :func:`receptive_box`, :func:`crop_box`), Fig. 2.
* :mod:`zfkit.occlusion`: the grey-square experiment (:func:`occlusion_map`), Sec. 4.2, Fig. 7.
* :mod:`zfkit.spectra`: conv1 filter spectra and dead filters (:func:`filter_spectra`,
  :func:`dead_filters`), Sec. 4.1, Fig. 6.
* :mod:`zfkit.shift`: shift consistency (:func:`shift_consistency`), Sec. 4, Fig. 5, measured as in
  Zhang (2019).
* :mod:`zfkit.checkpoint`: :func:`initial_model`, a run's network before its first step.

Every probe takes a :class:`~zfkit.models.ConvNet` and images ``(B, 3, H, W)``: ``uint8`` images
are normalised with the seed's recipe, float images are taken as already normalised.

References:
    Zeiler and Fergus (2014), "Visualizing and Understanding Convolutional Networks",
    arXiv:1311.2901. Zhang (2019), "Making Convolutional Networks Shift-Invariant Again".
"""
from __future__ import annotations

from .activations import ForwardRecord, as_input, forward_features, to_display
from .checkpoint import initial_model
from .deconvnet import deconv_output_padding, deconv_project, unpool_sum
from .occlusion import OcclusionConfig, OcclusionResult, occlusion_map
from .shift import ShiftConsistency, consistency_by_shift, shift_consistency, shift_images
from .spectra import DeadFilters, FilterSpectra, dead_filters, filter_spectra
from .top9 import TopHit, crop_box, receptive_box, top_activations

__all__ = [
    "as_input", "to_display", "initial_model", "ForwardRecord", "forward_features", "unpool_sum",
    "deconv_output_padding", "deconv_project", "TopHit", "top_activations", "receptive_box",
    "crop_box", "OcclusionConfig", "OcclusionResult", "occlusion_map",
    "FilterSpectra", "filter_spectra", "DeadFilters", "dead_filters", "shift_images",
    "ShiftConsistency", "shift_consistency", "consistency_by_shift",
]
