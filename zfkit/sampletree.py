"""What every generated sample shares: the VOC-format tree, its marker, and how it is built.

A generated sample (:func:`zfkit.sample.make_sample`; the kinds are in :mod:`zfkit.sample` and
:mod:`zfkit.photos`) is a ``VOCdevkit/VOC2007`` tree laid out exactly like the real one, so the real
crop builder reads it unchanged. This module holds the pieces both kinds use, written once:

* :func:`check_sample_args`: the argument checks, with errors that say what to pass;
* :func:`assign_splits` and :class:`ClassCycle`: which split each image is in, and classes in
  shuffled rounds of all 20 so that every split stays balanced;
* :func:`annotation_xml`: a VOC XML file whose ``<source><database>`` says it is generated;
* :func:`find_complete_sample`, :func:`start_build`, :func:`finish_build`: the tree is built in
  ``out/.VOCdevkit.partial`` and renamed into place after :data:`SAMPLE_MARKER` is written (last),
  so a half-written tree is never taken for a whole one; a complete sample with the same
  parameters (:func:`marker_fields`) is reused; a ``VOCdevkit`` without a marker is never touched;
* :func:`sample_source`: what the crop builder calls a tree's crops, read from its marker.
"""
from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .atomic import read_json, write_json_atomic
from .classes import VOC_CLASSES

__all__ = [
    "SAMPLE_MARKER", "SAMPLE_KINDS", "sample_source", "check_sample_args", "marker_fields",
    "ClassCycle", "assign_splits", "annotation_xml", "find_complete_sample", "start_build",
    "finish_build",
]

# Written last into a generated tree: marks it complete, and tells build_crops it is not VOC data.
SAMPLE_MARKER = "ZFKIT_GENERATED_SAMPLE.json"
SAMPLE_KINDS: tuple[str, ...] = ("shapes", "photos")
_SAMPLE_FORMAT = 1             # the layout of the marker and the tree
_GENERATOR = "zfkit.sample.make_sample"
_STAGING, _OLD = ".VOCdevkit.partial", ".VOCdevkit.old"
_SOURCES: dict[str, tuple[str, str]] = {
    "shapes": ("generated-sample",
               "crops of the GENERATED VOC-format sample made by zfkit.sample.make_sample "
               "(synthetic shapes, NOT Pascal VOC data)"),
    "photos": ("generated-photos",
               "crops of the GENERATED photo-textured sample made by zfkit.sample.make_sample("
               "kind='photos') (shapes textured with scikit-image's photographs, among clutter; "
               "NOT Pascal VOC data)"),
}


def sample_source(voc_root: str | os.PathLike) -> tuple[str, str] | None:
    """What the crops of a tree are called: ``(source, description)``, or None for real data.

    Args:
        voc_root: a ``VOCdevkit/VOC2007`` folder.
    Returns:
        ``("generated-sample", ...)`` for the shapes kind (and for markers older than the
        ``kind`` field), ``("generated-photos", ...)`` for the photos kind, or None when the tree
        has no :data:`SAMPLE_MARKER` (real VOC data).
    """
    path = Path(voc_root) / SAMPLE_MARKER
    if not path.is_file():
        return None
    kind = read_json(path).get("kind", "shapes")
    return _SOURCES.get(kind, (f"generated-{kind}", f"crops of a GENERATED zfkit sample of kind "
                                                   f"{kind!r} (NOT Pascal VOC data)"))


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_sample_args(*, images: int, seed: int, kind: str, workers: int | None) -> None:
    """Raise a ValueError that names the bad argument and says what to pass instead."""
    if kind not in SAMPLE_KINDS:
        raise ValueError(f"kind must be one of {list(SAMPLE_KINDS)}, not {kind!r}")
    if not _is_int(images) or images < 3:
        raise ValueError(f"images must be an integer of at least 3 (one per split), "
                         f"not {images!r}")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    if workers is not None and (not _is_int(workers) or workers < 1):
        raise ValueError(f"workers must be a positive integer, or None for every CPU core, "
                         f"not {workers!r}")


class ClassCycle:
    """Classes in shuffled rounds of all 20, so every split stays roughly balanced."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.queue = rng, []

    def next(self) -> str:
        """The next class name (a new shuffled round of all 20 when one is used up)."""
        if not self.queue:
            self.queue = [VOC_CLASSES[i] for i in self.rng.permutation(len(VOC_CLASSES))]
        return self.queue.pop()


def assign_splits(rng: np.random.Generator, images: int,
                  fractions: tuple[float, float, float] = (0.5, 0.25, 0.25)) -> list[str]:
    """The split of each image, shuffled: ``fractions`` of val and test (at least one each),
    the rest train (``fractions[0]`` is implied)."""
    n_val, n_test = (max(1, round(images * f)) for f in fractions[1:])
    return [str(s) for s in rng.permutation(
        ["train"] * (images - n_val - n_test) + ["val"] * n_val + ["test"] * n_test)]


def annotation_xml(image_id: str, size: tuple[int, int], objects: Sequence[dict], *,
                   database: str, annotation: str) -> bytes:
    """A VOC-style XML annotation; ``database`` (its ``<source><database>``) says what made it.

    Args:
        image_id: e.g. ``"000001"`` (the file name is ``<image_id>.jpg``).
        size: the image's ``(width, height)``.
        objects: dicts with ``name``, ``box`` (VOC: 1-based, inclusive), ``difficult``,
            ``truncated``.
        database, annotation: the texts of ``<source><database>`` and ``<source><annotation>``.
    Returns:
        The UTF-8 XML document, tab-indented as VOC's own files are.
    """
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2007"
    ET.SubElement(root, "filename").text = f"{image_id}.jpg"
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = database
    ET.SubElement(source, "annotation").text = annotation
    ET.SubElement(source, "image").text = "generated"
    size_el = ET.SubElement(root, "size")
    for tag, value in zip(("width", "height", "depth"), (*size, 3)):
        ET.SubElement(size_el, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for obj in objects:
        el = ET.SubElement(root, "object")
        ET.SubElement(el, "name").text = obj["name"]
        ET.SubElement(el, "pose").text = "Unspecified"
        ET.SubElement(el, "truncated").text = str(int(obj["truncated"]))
        ET.SubElement(el, "difficult").text = str(int(obj["difficult"]))
        bndbox = ET.SubElement(el, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), obj["box"]):
            ET.SubElement(bndbox, tag).text = str(value)
    ET.indent(root, space="\t")
    return ET.tostring(root, encoding="utf-8") + b"\n"


def marker_fields(kind: str, version: int, images: int, seed: int) -> dict[str, Any]:
    """The marker fields a sample must match to be reused (kind, generator version, parameters)."""
    return {"generator": _GENERATOR, "format": _SAMPLE_FORMAT, "kind": kind, "version": version,
            "images": images, "seed": seed}


def find_complete_sample(out: Path, wanted: dict[str, Any]) -> Path | None:
    """``out/VOCdevkit/VOC2007`` when it is a complete sample made with ``wanted``, else None.

    Complete: its marker (written last) matches ``wanted`` and it holds one XML file and one
    JPEG per image. Raises a ValueError when ``out/VOCdevkit`` exists without a marker (not ours).
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"out={str(out)!r} is a file, not a folder: choose a folder for the "
                         "sample")
    voc_root = out / "VOCdevkit" / "VOC2007"
    if (out / "VOCdevkit").exists() and not (voc_root / SAMPLE_MARKER).is_file():
        raise ValueError(f"{out / 'VOCdevkit'} exists and is not a zfkit sample: refusing to "
                         "overwrite it; choose another folder (out=...) for the sample")
    marker = read_json(voc_root / SAMPLE_MARKER)
    if {k: marker.get(k) for k in wanted} != wanted:
        return None
    files = [len(os.listdir(voc_root / sub)) if (voc_root / sub).is_dir() else -1
             for sub in ("Annotations", "JPEGImages")]
    return voc_root if files == [wanted["images"]] * 2 else None


def start_build(out: Path) -> Path:
    """A fresh staging tree ``out/.VOCdevkit.partial/VOC2007`` with the three VOC folders."""
    staging = out / _STAGING
    shutil.rmtree(staging, ignore_errors=True)        # an interrupted earlier build
    tree = staging / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (tree / sub).mkdir(parents=True)
    return tree


def finish_build(out: Path, tree: Path, ids: dict[str, list[str]], marker: dict) -> Path:
    """Write the split lists, then the marker, then swap the staging tree into ``out/VOCdevkit``.

    Args:
        out: the sample's folder.
        tree: the staging tree from :func:`start_build`, every image written.
        ids: the image ids of ``train``, ``val`` and ``test`` (``trainval`` is added).
        marker: the marker's content.
    Returns:
        ``out/VOCdevkit/VOC2007``.
    """
    ids = {**ids, "trainval": sorted(ids["train"] + ids["val"])}
    for split, listed in ids.items():
        lines = "".join(f"{i}\n" for i in sorted(listed))
        (tree / "ImageSets" / "Main" / f"{split}.txt").write_text(lines)
    write_json_atomic(tree / SAMPLE_MARKER, marker)  # last: from now on the tree is complete
    old = out / _OLD
    shutil.rmtree(old, ignore_errors=True)
    if (out / "VOCdevkit").exists():                  # an older sample with other parameters
        os.replace(out / "VOCdevkit", old)
    os.replace(tree.parent, out / "VOCdevkit")
    shutil.rmtree(old, ignore_errors=True)
    return out / "VOCdevkit" / "VOC2007"
