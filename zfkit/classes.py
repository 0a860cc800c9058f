"""The 20 Pascal VOC class names and the three splits, in one tiny module with no imports.

Everything that needs the label order imports it from here (:mod:`zfkit.voc` re-exports both), so
the generated samples (:mod:`zfkit.sample`, :mod:`zfkit.photos`) can use them without importing
the download and crop code, and no module imports another in a circle.
"""
from __future__ import annotations

__all__ = ["VOC_CLASSES", "SPLITS"]

# The 20 classes in VOC's own (alphabetical) order; a crop's label is its index here.
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)
# The splits a crops folder has, in the order chapters show them.
SPLITS: tuple[str, ...] = ("train", "val", "test")
