"""Figures and widgets for looking inside the two nets, in one place to import from.

``from zfkit import viz`` gives every figure the chapters draw; each lives in a module of its own:

* :mod:`zfkit.mosaic`: the one scaling rule for signed images (:data:`SIGNED_SCALING`,
  :func:`signed_to_unit`) and mosaics of tiles (:func:`mosaic`, :func:`filter_mosaic`).
* :mod:`zfkit.viz_features`: filter banks at their true relative size (:func:`plot_filters`),
  the strongest feature maps of every layer (:func:`plot_feature_maps`, :func:`plot_channel`) and
  the live :func:`feature_explorer`.
* :mod:`zfkit.viz_probes`: the probes' figures: top-9 projections beside their patches
  (:func:`plot_top9`, Fig. 2), occlusion maps (:func:`plot_occlusion`, Fig. 7), filter spectra
  (:func:`plot_spectra`, :func:`plot_ring_spectra`, Sec. 4.1), shift consistency
  (:func:`plot_shift_consistency`) and the deconvnet's data flow (:func:`plot_deconvnet_flow`).
* :mod:`zfkit.viz_sampling`: conv1's windows on a whole input (:func:`plot_sampling_grids`) and
  a grating sampled at two strides (:func:`plot_aliasing`).

Every function returns a matplotlib ``Figure`` (or an ipywidgets widget) and leaves showing or
saving it to the caller; the two nets get their colours from :mod:`zfkit.style`, and panels meant
to be compared share one colour scale.

Reference: Zeiler and Fergus (2014), "Visualizing and Understanding Convolutional Networks",
arXiv:1311.2901, Fig. 2, 5, 6 and 7.
"""
from __future__ import annotations

from .mosaic import SIGNED_SCALING, filter_mosaic, mosaic, signed_to_unit
from .viz_features import (FilterPanel, feature_explorer, plot_channel, plot_feature_maps,
                           plot_filters, strongest_channels)
from .viz_probes import (plot_deconvnet_flow, plot_occlusion, plot_ring_spectra,
                         plot_shift_consistency, plot_spectra, plot_top9)
from .viz_sampling import plot_aliasing, plot_sampling_grids

__all__ = [
    "SIGNED_SCALING", "signed_to_unit", "mosaic", "filter_mosaic", "FilterPanel", "plot_filters",
    "strongest_channels", "plot_feature_maps", "plot_channel", "feature_explorer",
    "plot_top9", "plot_occlusion", "plot_spectra", "plot_ring_spectra", "plot_shift_consistency",
    "plot_deconvnet_flow", "plot_sampling_grids", "plot_aliasing",
]
