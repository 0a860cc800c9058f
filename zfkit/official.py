"""Pascal VOC 2007's official statistics: non-difficult objects per class and images per split.

The crop builder (:mod:`zfkit.crops`) compares what it cut with these numbers and says so in its
manifest (``matches_official_counts``); the data and results chapters show them beside the
crops. Keyed by the class list of :mod:`zfkit.classes`; re-exported by :mod:`zfkit.voc`.

Reference: Everingham, Van Gool, Williams, Winn, Zisserman (2010), "The PASCAL Visual Object
Classes (VOC) Challenge", IJCV 88(2); the VOC2007 development kit documentation, Table 1.
"""
from __future__ import annotations

from .classes import VOC_CLASSES

__all__ = ["VOC2007_OFFICIAL_COUNTS", "VOC2007_OFFICIAL_IMAGES"]


def _per_class(*counts: int) -> dict[str, int]:
    return dict(zip(VOC_CLASSES, counts, strict=True))


# Non-difficult objects per class ("obj" columns of Table 1, "Statistics of the main image sets", in
# the VOC2007 development kit documentation: http://host.robots.ox.ac.uk/pascal/VOC/voc2007/htmldoc/
# and http://host.robots.ox.ac.uk/pascal/VOC/voc2007/dbstats.html). Checked when typed in: the
# train and val rows aeroplane..bus against a stored copy of the devkit page; every class's
# train + val against the trainval column as copied in balancap/SSD-Tensorflow
# (datasets/pascalvoc_2007.py, TRAIN_STATISTICS); the test column against an independent public
# copy of the per-class test counts; all columns against the totals. The train/val split of the
# classes car..tvmonitor was not visible in a stored copy (only its trainval sum): the real-data
# test, tests/test_voc_real.py, checks every number when VOC 2007 is present.
VOC2007_OFFICIAL_COUNTS: dict[str, dict[str, int]] = {
    "train": _per_class(151, 176, 243, 140, 253, 115, 625, 186, 400, 136,
                        103, 253, 182, 167, 2358, 248, 130, 124, 145, 166),
    "val": _per_class(155, 177, 243, 150, 252, 114, 625, 190, 398, 123,
                      112, 257, 180, 172, 2332, 266, 127, 124, 152, 158),
    "test": _per_class(285, 337, 459, 263, 469, 213, 1201, 358, 756, 244,
                       206, 489, 348, 325, 4528, 480, 242, 239, 282, 308),
}
# Images in each split (the same table's totals row).
VOC2007_OFFICIAL_IMAGES: dict[str, int] = {"train": 2501, "val": 2510, "test": 4952}
