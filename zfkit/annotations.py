"""Reading Pascal VOC's annotations: one XML file per image, the split lists, and what a box means
in pixels.

:func:`read_annotation` parses ``Annotations/<id>.xml`` into an :class:`Annotation` of
:class:`VocObject` boxes; :func:`read_split` lists the image ids of
``ImageSets/Main/<split>.txt``; :func:`crop_box` turns a VOC box into the box PIL crops. Every id
and file name read here passes :func:`zfkit.names.check_name` (no path can hide in one), and a
file that is not a regular file is refused before it is opened.

Hostile XML: VOC annotations have no DTD, so a file with one (``<!DOCTYPE``/``<!ENTITY``) is
refused before parsing; expat's own limits (input amplification, no external entities in
ElementTree) stop entity expansion and external entities even without that check.

VOC numbers pixels from 1 and includes both ends of a box, so ``xmin..xmax`` is the PIL crop box
``(xmin - 1, ymin - 1, xmax, ymax)``. The seed reads boxes as 0-based
(``img[ymin:ymax, xmin:xmax]``) and so drops every box's first row and column; this is the
correction.

Reference: Everingham, Van Gool, Williams, Winn, Zisserman (2010), "The PASCAL Visual Object
Classes (VOC) Challenge", IJCV 88(2) (the "difficult" and "truncated" flags); the VOC2007
development kit documentation (the XML format, 1-based pixel coordinates).
"""
from __future__ import annotations

import math
import os
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from .names import check_name, check_regular_file

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


_MAX_XML_BYTES = 1 << 20                      # VOC annotations are a few KB
_FLAGS = {"0": False, "1": True, "false": False, "true": True, "no": False, "yes": True}


def _number(text: str | None, tag: str = "coordinate") -> int:
    if text is None:
        raise ValueError(f"<{tag}> is missing")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"<{tag}> is {text.strip()!r}, not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"<{tag}> is {text.strip()!r}, not a finite number")
    return int(round(value))


def _flag(obj: ET.Element, tag: str) -> bool:
    """``<difficult>``/``<truncated>``: 0 or 1 (also true/false, yes/no); missing: 0."""
    text = obj.findtext(tag)
    if text is None or not text.strip():
        return False
    key = text.strip().lower()
    if key not in _FLAGS:
        raise ValueError(f"<{tag}> is {text.strip()!r}; expected 0 or 1")
    return _FLAGS[key]


def read_annotation(path: str | os.PathLike) -> Annotation:
    """Parse one VOC annotation file.

    Raises:
        ValueError: the file is not well-formed VOC XML (the message names the file).
    """
    path = Path(path)
    try:
        check_regular_file(path, what="annotation")
        with open(path, "rb") as f:
            data = f.read(_MAX_XML_BYTES + 1)
        if len(data) > _MAX_XML_BYTES:
            raise ValueError(f"more than {_MAX_XML_BYTES:,} bytes, not a VOC annotation")
        if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
            raise ValueError("it has a DTD (<!DOCTYPE> or <!ENTITY>), which VOC annotations "
                             "never have (entities could expand or read other files)")
        root = ET.fromstring(data)
        filename = (root.findtext("filename") or f"{path.stem}.jpg").strip()
        check_name(filename, what="image file name", source=path)
        size = root.find("size")
        width = _number(size.findtext("width"), "width") if size is not None else None
        height = _number(size.findtext("height"), "height") if size is not None else None
        objects = []
        for obj in root.findall("object"):
            name = obj.findtext("name")
            bndbox = obj.find("bndbox")
            if name is None or bndbox is None:
                raise ValueError("an <object> lacks <name> or <bndbox>")
            box = tuple(_number(bndbox.findtext(k), k) for k in ("xmin", "ymin", "xmax", "ymax"))
            objects.append(VocObject(name.strip(), box,  # type: ignore[arg-type]
                                     difficult=_flag(obj, "difficult"),
                                     truncated=_flag(obj, "truncated")))
    except (ET.ParseError, ValueError) as exc:
        raise ValueError(f"malformed VOC annotation {path}: {exc}") from exc
    return Annotation(filename, width, height, tuple(objects))


def read_split(voc_root: str | os.PathLike, split: str) -> list[str]:
    """The image ids listed in ``ImageSets/Main/<split>.txt``, each once, in order.

    An id listed twice is kept once, with a warning naming the lines.

    Raises:
        ValueError: the file is not UTF-8 text, or an id is not a plain file name
            (:func:`zfkit.names.check_name`); the message names the file and the line.
    """
    path = check_regular_file(Path(voc_root) / "ImageSets" / "Main" / f"{split}.txt",
                              what="split list")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ValueError(f"{path} is not UTF-8 text (line {line}, byte {exc.start}: "
                         f"{exc.reason}); a split list holds one image id per line: restore it "
                         "from the VOC archive") from None
    ids: dict[str, int] = {}
    repeated: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        image_id = check_name(line.split()[0], what="image id", source=path, line=number,
                              fix="fix the line, or restore the file from the VOC archive")
        if image_id in ids:
            repeated.append(f"{image_id!r} (lines {ids[image_id]} and {number})")
        else:
            ids[image_id] = number
    if repeated:
        warnings.warn(f"{path} lists {len(repeated)} image id(s) twice: "
                      f"{', '.join(repeated[:5])}; each is used once", stacklevel=2)
    return list(ids)


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
