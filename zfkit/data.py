"""The data pipeline, in one place to import from: decode and resize every crop once, then flip
and normalize per batch.

The seed trains with ``ImageFolder`` and this transform, applied to every image on every epoch::

    Resize((227, 227)) -> RandomHorizontalFlip() -> ToTensor() -> Normalize((0.5,)*3, (0.5,)*3)

Only the flip is random, so the JPEG decode and the resize give the same result every epoch. Here
they are done once, and the pipeline has two halves, each in its own module:

* :mod:`zfkit.cache`: :func:`load_split` decodes and resizes a split once into a
  :class:`CachedSplit` (``uint8`` ``(N, 3, 227, 227)``), optionally cached on disk
  (:func:`cache_path`); :func:`read_manifest` and :func:`list_crops` read the crops folder.
* :mod:`zfkit.batches`: :func:`batches` gathers a shuffled batch, moves it to the device and only
  there flips and normalizes it (:func:`normalize_batch`, the seed's :data:`MEAN` and :data:`STD`),
  giving exactly the pixels the seed's transform would; :func:`imagefolder_loader` is the seed's
  own path (:func:`seed_transform`), kept for comparison and for ``bench/bench_data.py``.

Reference: Krizhevsky et al. (2012), Sec. 2 and 4.1 (fixed-size images, horizontal reflections).
"""
from __future__ import annotations

from .batches import MEAN, STD, batches, imagefolder_loader, normalize_batch, seed_transform
from .cache import CachedSplit, cache_path, decode_resize, list_crops, load_split, read_manifest
from .classes import SPLITS

__all__ = [
    "SPLITS", "MEAN", "STD", "CachedSplit", "read_manifest", "list_crops", "decode_resize",
    "cache_path", "load_split", "normalize_batch", "batches", "seed_transform", "imagefolder_loader",
]
