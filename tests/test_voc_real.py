"""The crop builder on the real Pascal VOC 2007 gives the official per-class counts.

Runs only where the real data is: set ZFKIT_VOC_ROOT to a VOCdevkit/VOC2007 folder holding the
trainval archive and, for the test split, the test archive
(``python -m zfkit download-voc --root DIR --test`` makes one). Cropping all of it takes a while;
set ZFKIT_VOC_CROPS to a crops folder to keep it (or reuse it) between runs.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from zfkit import voc

VOC_ROOT = os.environ.get("ZFKIT_VOC_ROOT")
pytestmark = pytest.mark.skipif(
    not VOC_ROOT, reason="real VOC 2007 not present: set ZFKIT_VOC_ROOT=/path/to/VOCdevkit/VOC2007")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    out = Path(os.environ.get("ZFKIT_VOC_CROPS") or tmp_path_factory.mktemp("voc2007-crops"))
    return voc.build_crops(VOC_ROOT, out, progress=False)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_counts_match_the_official_statistics(manifest, split):
    if split not in manifest["splits"]:
        pytest.skip(f"{VOC_ROOT} has no {split} split (download the test archive: --test)")
    assert manifest["source"] == "voc2007"
    assert manifest["images"][split] == voc.VOC2007_OFFICIAL_IMAGES[split]
    assert manifest["counts"][split] == voc.VOC2007_OFFICIAL_COUNTS[split]
    assert sum(manifest["counts"][split].values()) == {"train": 6301, "val": 6307,
                                                        "test": 12032}[split]
    assert manifest["matches_official_counts"][split]
    skipped = manifest["skipped"][split]
    assert set(skipped) <= {"difficult"}, f"only difficult objects may be left out: {skipped}"
