"""Reading Pascal VOC's annotations: one XML file per image, the split lists, and what a box means
in pixels.

:func:`read_annotation` parses ``Annotations/<id>.xml`` into an :class:`Annotation` of
:class:`VocObject` boxes; :func:`read_split` lists the image ids of
``ImageSets/Main/<split>.txt``; :func:`crop_box` turns a VOC box into the box PIL crops.

VOC numbers pixels from 1 and includes both ends of a box, so ``xmin..xmax`` is the PIL crop box
``(xmin - 1, ymin - 1, xmax, ymax)``. The seed reads boxes as 0-based
(``img[ymin:ymax, xmin:xmax]``) and so drops every box's first row and column; this is the
correction.

Reference: Everingham, Van Gool, Williams, Winn, Zisserman (2010), "The PASCAL Visual Object
Classes (VOC) Challenge", IJCV 88(2) (the "difficult" and "truncated" flags); the VOC2007
development kit documentation (the XML format, 1-based pixel coordinates).
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["VocObject", "Annotation", "read_annotation", "read_split", "crop_box"]


@dataclass(frozen=True)
class VocObject:
    """One annotated object. ``box`` is VOC's ``(xmin, ymin, xmax, ymax)``: 1-based, inclusive."""
    name: str
    box: tuple[int, int, int, int]
    difficult: bool
    truncated: bool


@dataclass(frozen=True)
class Annotation:
    """One VOC XML file: the image's file name, its size as annotated, and its objects in order."""
    filename: str
    width: int | None
    height: int | None
    objects: tuple[VocObject, ...] = field(default_factory=tuple)


def _number(text: str | None) -> int:
    if text is None:
        raise ValueError("a coordinate is missing")
    return int(round(float(text)))


def read_annotation(path: str | os.PathLike) -> Annotation:
    """Parse one VOC annotation file.

    Raises:
        ValueError: the file is not well-formed VOC XML (the message names the file).
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
        filename = (root.findtext("filename") or f"{path.stem}.jpg").strip()
        size = root.find("size")
        width = _number(size.findtext("width")) if size is not None else None
        height = _number(size.findtext("height")) if size is not None else None
        objects = []
        for obj in root.findall("object"):
            name = obj.findtext("name")
            bndbox = obj.find("bndbox")
            if name is None or bndbox is None:
                raise ValueError("an <object> lacks <name> or <bndbox>")
            box = tuple(_number(bndbox.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            objects.append(VocObject(name.strip(), box,  # type: ignore[arg-type]
                                     difficult=(obj.findtext("difficult") or "0").strip() == "1",
                                     truncated=(obj.findtext("truncated") or "0").strip() == "1"))
    except (ET.ParseError, ValueError) as exc:
        raise ValueError(f"malformed VOC annotation {path}: {exc}") from exc
    return Annotation(filename, width, height, tuple(objects))


def read_split(voc_root: str | os.PathLike, split: str) -> list[str]:
    """The image ids listed in ``ImageSets/Main/<split>.txt``."""
    path = Path(voc_root) / "ImageSets" / "Main" / f"{split}.txt"
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def crop_box(box: tuple[int, int, int, int], width: int,
             height: int) -> tuple[int, int, int, int] | None:
    """The PIL crop box for a VOC box, clipped to a ``width`` x ``height`` image.

    VOC numbers pixels from 1 and includes both ends, so ``xmin..xmax`` are the 0-based columns
    ``xmin - 1 .. xmax - 1``: the half-open range ``[xmin - 1, xmax)`` that PIL's
    ``crop((left, upper, right, lower))`` takes.

    Returns:
        ``(left, upper, right, lower)``, or ``None`` when nothing of the box is inside the image.
    """
    xmin, ymin, xmax, ymax = box
    left, upper = max(xmin - 1, 0), max(ymin - 1, 0)
    right, lower = min(xmax, width), min(ymax, height)
    if right <= left or lower <= upper:
        return None
    return left, upper, right, lower
