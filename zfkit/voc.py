"""Pascal VOC 2007, in one place to import from: its classes and official counts, the download,
the annotations, the crop builder and the generated samples.

The data flows through four modules, each re-exported here, so ``from zfkit import voc`` and
``voc.build_crops(...)`` work as they always have:

1. :mod:`zfkit.download`: :func:`download_voc` fetches the tar archives from a list of mirrors
   (resuming with HTTP Range), checks their MD5 and extracts them, refusing any member that would
   land outside the target.
2. :mod:`zfkit.annotations`: :func:`read_annotation` and :func:`read_split` read the XML files
   and split lists; :func:`crop_box` turns a VOC box (1-based, inclusive) into PIL's crop box.
3. :mod:`zfkit.crops`: :func:`build_crops` turns every non-difficult object box into an image file
   ``out/<split>/<class>/<image-id>_<k>.<ext>`` and writes ``out/manifest.json`` last;
   :func:`read_manifest` reads it back and checks the folder still matches it.
4. :mod:`zfkit.sample`: :func:`make_sample` writes a generated VOC-format tree (XML annotations,
   JPEGs, split lists) that runs the same code without downloading anything. It is never VOC
   data, and its crops' manifest says so.

The facts the others share live in two modules without imports of their own, because the crop
builder needs them and this module imports the crop builder: :data:`VOC_CLASSES` and
:data:`SPLITS` (:mod:`zfkit.classes`), :data:`VOC2007_OFFICIAL_COUNTS` and
:data:`VOC2007_OFFICIAL_IMAGES` (:mod:`zfkit.official`).

Reference: Everingham, Van Gool, Williams, Winn, Zisserman (2010), "The PASCAL Visual Object Classes
(VOC) Challenge", IJCV 88(2). The crop recipe is the seed blog post's, with one correction (the
box convention, see :mod:`zfkit.annotations`).
"""
from __future__ import annotations

from .annotations import Annotation, VocObject, crop_box, read_annotation, read_split
from .classes import SPLITS, VOC_CLASSES
from .crops import MANIFEST, build_crops, read_manifest
from .download import (DEFAULT_MIRRORS, VOC2007_TEST, VOC2007_TRAINVAL, Archive, download_voc,
                       fetch_archive, md5sum, safe_extract)
from .official import VOC2007_OFFICIAL_COUNTS, VOC2007_OFFICIAL_IMAGES

__all__ = [
    "VOC_CLASSES", "SPLITS", "VOC2007_OFFICIAL_COUNTS", "VOC2007_OFFICIAL_IMAGES", "Archive",
    "VOC2007_TRAINVAL", "VOC2007_TEST", "DEFAULT_MIRRORS", "SAMPLE_MARKER", "SAMPLE_LOOKS",
    "VocObject", "Annotation", "download_voc", "fetch_archive", "safe_extract", "md5sum",
    "read_annotation", "read_split", "crop_box", "build_crops", "read_manifest", "make_sample",
    "MANIFEST",
]


# ----------------------------------------------------------------------------------------------
# 3. The generated VOC-format samples live in zfkit.sample (shapes) and zfkit.photos (photos);
#    re-exported here so `zfkit.voc.make_sample` keeps working.
# ----------------------------------------------------------------------------------------------

from .sample import (SAMPLE_LOOKS, SAMPLE_MARKER, _COLOURS,  # noqa: E402,F401  (tests use _COLOURS)
                     make_sample, sample_source)
