"""Pascal VOC 2007: download and verify it, crop every object into class folders, and generate a
small VOC-format sample that runs the same code without downloading anything.

Three parts, in the order the data flows:

1. :func:`download_voc` fetches the tar archives from a list of mirrors (resuming with HTTP Range),
   checks their MD5 and extracts them, refusing any member that would land outside the target.
2. :func:`build_crops` turns every non-difficult object box into an image file
   ``out/<split>/<class>/<image-id>_<k>.<ext>`` and writes ``out/manifest.json`` last;
   :func:`read_manifest` reads it back and checks the folder still matches it.
3. :func:`make_sample` writes a generated VOC-format tree (XML annotations, JPEGs, split lists)
   whose objects a small CNN can tell apart. It is never VOC data: its crops' manifest says
   ``"source": "generated-sample"``.

Reference: Everingham, Van Gool, Williams, Winn, Zisserman (2010), "The PASCAL Visual Object Classes
(VOC) Challenge", IJCV 88(2). The crop recipe is the seed blog post's (every non-difficult box of
``ImageSets/Main/{train,val}.txt``) with one correction: VOC boxes are 1-based and inclusive, so
``xmin..xmax`` is the PIL crop box ``(xmin - 1, ymin - 1, xmax, ymax)``; the seed reads them as
0-based (``img[ymin:ymax, xmin:xmax]``) and so drops every box's first row and column.
"""
from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from .atomic import write_json_atomic

__all__ = [
    "VOC_CLASSES", "SPLITS", "VOC2007_OFFICIAL_COUNTS", "VOC2007_OFFICIAL_IMAGES", "Archive",
    "VOC2007_TRAINVAL", "VOC2007_TEST", "DEFAULT_MIRRORS", "SAMPLE_MARKER", "SAMPLE_LOOKS",
    "VocObject", "Annotation", "download_voc", "fetch_archive", "safe_extract", "md5sum",
    "read_annotation", "read_split", "crop_box", "build_crops", "read_manifest", "make_sample",
]

# The 20 classes in VOC's own (alphabetical) order; a crop's label is its index here.
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)
SPLITS: tuple[str, ...] = ("train", "val", "test")
_CLASS_SET = frozenset(VOC_CLASSES)


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


def _zfkit_version() -> str:
    from . import __version__   # imported late: zfkit/__init__ may import this module
    return __version__


def _read_json(path: Path) -> dict:
    """The JSON object in ``path``, or ``{}`` when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ----------------------------------------------------------------------------------------------
# 1. Download, verify, extract
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Archive:
    """One tar archive: its file name on the mirrors, its MD5 and, when known, its size in bytes."""
    filename: str
    md5: str
    size: int | None = None


VOC2007_TRAINVAL = Archive("VOCtrainval_06-Nov-2007.tar", "c52e279531787c972589f7e41ab4ae64",
                           460_032_000)
VOC2007_TEST = Archive("VOCtest_06-Nov-2007.tar", "b6e924de25625d8de591ea690078ad9f")
# Tried in order after any mirrors the caller gives.
DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://thor.robots.ox.ac.uk/pascal/VOC/voc2007/",   # the long-term official host
    "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/",    # the former host (now redirects)
)


class TransferCut(OSError):
    """The server closed the connection before it sent every byte (the partial file is kept)."""


def md5sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The MD5 hex digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, partial: Path, *, size: int | None, progress: bool, timeout: float) -> None:
    """Append what ``partial`` lacks of ``url`` to it, asking for the missing bytes with Range."""
    have = partial.stat().st_size if partial.exists() else 0
    if size is not None and have >= size:
        return                                   # every byte is here already; the MD5 decides
    headers = {"User-Agent": "zfkit"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:             # "range not satisfiable": nothing is missing
            return
        raise
    with response:
        content_range = response.headers.get("Content-Range", "")
        if have and not (response.status == 206 and content_range.startswith(f"bytes {have}-")):
            have = 0                             # the server ignored Range: start again
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length is not None else size
        got = have
        with open(partial, "ab" if have else "wb") as f, \
                tqdm(total=expected, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=partial.name.removesuffix(".partial"), disable=not progress) as bar:
            try:
                while block := response.read(1 << 16):
                    f.write(block)
                    got += len(block)
                    bar.update(len(block))
            except http.client.IncompleteRead as exc:
                f.write(exc.partial)
                got += len(exc.partial)
    if expected is not None and got < expected:
        raise TransferCut(f"{url}: connection closed after {got:,} of {expected:,} bytes")


def fetch_archive(archive: Archive, folder: str | os.PathLike, mirrors: Sequence[str], *,
                  progress: bool = True, attempts: int = 3, timeout: float = 60.0) -> Path:
    """Download ``archive`` into ``folder`` from the first mirror that serves the right bytes.

    A copy already in ``folder`` whose MD5 matches is reused without any request. Otherwise the
    archive is streamed to ``<filename>.partial``; a cut transfer is resumed with an HTTP Range
    request (up to ``attempts`` times per mirror, and across mirrors); a file whose MD5 differs is
    deleted and the next mirror tried.

    Args:
        archive: file name, MD5 and (optionally) size.
        folder: where the archive is kept.
        mirrors: base URLs, tried in order; the file's URL is ``mirror + archive.filename``.
        progress: show a tqdm progress bar.
        attempts: tries per mirror when the connection is cut.
        timeout: seconds to wait for a server before giving up on it.
    Returns:
        The path of the verified archive.
    Raises:
        RuntimeError: no mirror gave a file with the right MD5 (the message lists every attempt,
            with the expected and actual checksums).
    """
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / archive.filename
    problems: list[str] = []
    if final.exists():
        actual = md5sum(final)
        if actual == archive.md5:
            return final
        final.unlink()
        problems.append(f"{final}: MD5 {actual}, expected {archive.md5} (deleted)")
    partial = folder / f"{archive.filename}.partial"
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + archive.filename
        for _ in range(attempts):
            try:
                _fetch(url, partial, size=archive.size, progress=progress, timeout=timeout)
            except TransferCut as exc:
                problems.append(str(exc))
                continue                          # resume from the same mirror
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                problems.append(f"{url}: {exc}")
                break                             # this mirror is dead or refuses: next one
            actual = md5sum(partial)
            if actual == archive.md5:
                os.replace(partial, final)
                return final
            partial.unlink()
            problems.append(f"{url}: MD5 {actual}, expected {archive.md5} (deleted)")
            break
    raise RuntimeError(
        f"could not get a verified {archive.filename} (expected MD5 {archive.md5}). Tried:\n  "
        + "\n  ".join(problems or ["no mirrors were given"])
        + f"\nAdd a working mirror (mirrors=[...] or --mirror URL), copy the archive into {folder} "
        "by hand, or set ZFKIT_VOC_ROOT to an existing VOCdevkit/VOC2007 folder.")


def safe_extract(tar_path: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Extract a tar archive into ``dest``, refusing the whole archive (before writing anything) if
    a member would land outside ``dest``: absolute paths, ``..``, links pointing out, devices.

    Raises:
        RuntimeError: naming the offending member.
    """
    tar_path, dest = Path(tar_path), Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()

    def inside(path: Path) -> bool:
        resolved = path.resolve()
        return resolved == dest or dest in resolved.parents

    with tarfile.open(tar_path) as tar:
        members = tar.getmembers()
        for member in members:
            target = dest / member.name
            if member.issym():
                link_ok = inside(target.parent / member.linkname)
            elif member.islnk():
                link_ok = inside(dest / member.linkname)
            else:
                link_ok = member.isfile() or member.isdir()
            if not inside(target) or not link_ok:
                raise RuntimeError(f"refusing to extract {tar_path.name}: member {member.name!r} "
                                   f"would land outside {dest} (or is a device); the archive is "
                                   "not a genuine VOC archive, delete it and download it again")
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(dest, members=members, **safe)


def download_voc(root: str | os.PathLike, *, test: bool = False,
                 mirrors: Sequence[str] | None = None, progress: bool = True,
                 archives: Sequence[Archive] | None = None, default_mirrors: bool = True,
                 timeout: float = 60.0) -> Path:
    """Download, verify and extract Pascal VOC 2007 into ``root/VOCdevkit/VOC2007``.

    Each archive is extracted once; a marker file then makes later calls return at once, without
    any request. Already have the data (e.g. on a mounted Google Drive)? Skip this and point
    :func:`build_crops` (or ``ZFKIT_VOC_ROOT``) at your ``VOCdevkit/VOC2007`` instead.

    Args:
        root: folder that receives the archives and ``VOCdevkit/``.
        test: also the test archive (``VOCtest_06-Nov-2007.tar``, with annotations).
        mirrors: base URLs tried first, in order.
        progress: show download progress bars.
        archives: the archive table (default: VOC 2007 trainval, plus test if ``test``); tests
            inject their own small archives here.
        default_mirrors: also try :data:`DEFAULT_MIRRORS` after ``mirrors``.
        timeout: seconds to wait for a server.
    Returns:
        ``root/VOCdevkit/VOC2007``.
    """
    root = Path(root).expanduser()
    voc_root = root / "VOCdevkit" / "VOC2007"
    if archives is None:
        archives = (VOC2007_TRAINVAL, VOC2007_TEST) if test else (VOC2007_TRAINVAL,)
    urls = [*(mirrors or ()), *(DEFAULT_MIRRORS if default_mirrors else ())]
    if not urls:
        raise ValueError("no mirrors to try: pass mirrors=[...] or keep default_mirrors=True")
    for archive in archives:
        marker = voc_root / f".zfkit-extracted-{archive.filename}.json"
        if _read_json(marker).get("md5") == archive.md5:
            continue
        tar_path = fetch_archive(archive, root, urls, progress=progress, timeout=timeout)
        safe_extract(tar_path, root)
        if not voc_root.is_dir():
            raise RuntimeError(f"{tar_path.name} held no VOCdevkit/VOC2007 folder: is it really a "
                               "VOC 2007 archive?")
        write_json_atomic(marker, {"archive": archive.filename, "md5": archive.md5})
    return voc_root


# ----------------------------------------------------------------------------------------------
# 2. Annotations and crops
# ----------------------------------------------------------------------------------------------

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


MANIFEST = "manifest.json"
_CROPS_FORMAT = 1
_STAGING = ".building"
_IMAGE_FORMATS = {"jpg": "JPEG", "png": "PNG"}
_REQUIRED_KEYS = ("source", "classes", "counts", "skipped", "files", "sizes",
                  "source_checksums", "zfkit_version", "hash", "params")
_SKIP_HINT = "Pass skip_bad=True (command line: --skip-bad) to skip such cases and count them."


def _check_voc_root(voc_root: Path) -> None:
    if (voc_root / "Annotations").is_dir() and (voc_root / "ImageSets" / "Main").is_dir():
        return
    hint = (f" Did you mean {voc_root / 'VOC2007'}?" if (voc_root / "VOC2007").is_dir() else "")
    raise FileNotFoundError(
        f"{voc_root} is not a VOCdevkit/VOC2007 folder (it needs Annotations/ and "
        f"ImageSets/Main/).{hint} Download VOC 2007 with `python -m zfkit download-voc --root DIR "
        "--test` (then use DIR/VOCdevkit/VOC2007), or generate the sample with "
        "`python -m zfkit make-sample --out DIR`.")


def _choose_splits(voc_root: Path, splits: Sequence[str] | None) -> tuple[str, ...]:
    main = voc_root / "ImageSets" / "Main"
    if splits is None:
        chosen = [s for s in ("train", "val") if (main / f"{s}.txt").is_file()]
        if (main / "test.txt").is_file() and all(
                (voc_root / "Annotations" / f"{i}.xml").is_file()
                for i in read_split(voc_root, "test")):
            chosen.append("test")             # only with the test archive and its annotations
        if not chosen:
            raise FileNotFoundError(f"{main} has no train.txt, val.txt or test.txt")
        return tuple(chosen)
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise ValueError(f"unknown splits {bad}: choose from {list(SPLITS)}")
    missing = [s for s in splits if not (main / f"{s}.txt").is_file()]
    if missing:
        raise FileNotFoundError(f"{main} lacks {[f'{s}.txt' for s in missing]}; for the test "
                                "split download the test archive (download-voc --test)")
    return tuple(dict.fromkeys(splits))


def _source_checksums(voc_root: Path, splits: Sequence[str]) -> dict[str, str]:
    """Cheap fingerprints of the source: the split lists, the sample marker, the archive MD5s."""
    sums = {f"ImageSets/Main/{s}.txt": md5sum(voc_root / "ImageSets" / "Main" / f"{s}.txt")
            for s in splits}
    if _is_sample(voc_root):
        sums[SAMPLE_MARKER] = md5sum(voc_root / SAMPLE_MARKER)
    for marker in sorted(voc_root.glob(".zfkit-extracted-*.json")):
        info = _read_json(marker)
        if "archive" in info:
            sums[info["archive"]] = info.get("md5", "")
    return sums


@dataclass
class _ImageCrops:
    """What one image contributed: ``(class, file name, (w, h), md5)`` per crop, and skips."""
    crops: list[tuple[str, str, tuple[int, int], str]] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)


def _crop_image(voc_root: Path, image_id: str, dest: Path, *, skip_bad: bool,
                ext: str, quality: int) -> _ImageCrops:
    """Crop every non-difficult object of one image into ``dest/<class>/``."""
    result = _ImageCrops()
    xml = voc_root / "Annotations" / f"{image_id}.xml"
    try:
        ann = read_annotation(xml)
    except (ValueError, OSError) as exc:
        if not skip_bad:
            raise ValueError(f"{exc}. {_SKIP_HINT}") from exc
        result.skipped["bad_annotation_file"] += 1
        return result
    wanted = []
    for k, obj in enumerate(ann.objects):          # k: the object's index in its XML file
        if obj.name not in _CLASS_SET:
            if not skip_bad:
                raise ValueError(f"unknown class {obj.name!r} in {xml} (expected one of the 20 VOC "
                                 f"classes). {_SKIP_HINT}")
            result.skipped["unknown_class"] += 1
        elif obj.difficult:
            result.skipped["difficult"] += 1
        else:
            wanted.append((k, obj))
    if not wanted:
        return result
    image_path = voc_root / "JPEGImages" / Path(ann.filename).name
    try:
        with Image.open(image_path) as opened:
            image = opened.convert("RGB")          # (H, W, 3) once decoded
    except (OSError, ValueError) as exc:
        if not skip_bad:
            kind = FileNotFoundError if isinstance(exc, FileNotFoundError) else ValueError
            raise kind(f"cannot read image {image_path} (annotated in {xml}): {exc}. "
                       f"{_SKIP_HINT}") from exc
        result.skipped["unreadable_image"] += len(wanted)
        return result
    for k, obj in wanted:
        box = crop_box(obj.box, *image.size)
        if box is None:
            result.skipped["empty_after_clip"] += 1
            continue
        crop = image.crop(box)                     # (ymax - ymin + 1, xmax - xmin + 1, 3) unclipped
        buffer = io.BytesIO()
        options = {"quality": quality} if ext == "jpg" else {}
        crop.save(buffer, format=_IMAGE_FORMATS[ext], **options)
        data = buffer.getvalue()
        name = f"{image_id}_{k}.{ext}"
        (dest / obj.name / name).write_bytes(data)
        result.crops.append((obj.name, name, crop.size, hashlib.md5(data).hexdigest()))
    return result


def _crop_split(voc_root: Path, split: str, dest: Path, *, skip_bad: bool, ext: str,
                quality: int, progress: bool, workers: int) -> dict[str, Any]:
    ids = read_split(voc_root, split)
    for name in VOC_CLASSES:
        (dest / name).mkdir(parents=True, exist_ok=True)
    counts = Counter({name: 0 for name in VOC_CLASSES})
    skipped: Counter = Counter()
    files, sizes, digests = [], [], []
    with ThreadPoolExecutor(max_workers=workers) as pool:   # PIL decodes and encodes off the GIL
        jobs = pool.map(lambda i: _crop_image(voc_root, i, dest, skip_bad=skip_bad, ext=ext,
                                              quality=quality), ids)
        for one in tqdm(jobs, total=len(ids), desc=f"crops {split}", disable=not progress):
            skipped.update(one.skipped)
            for name, filename, size, digest in one.crops:
                counts[name] += 1
                files.append(f"{split}/{name}/{filename}")
                sizes.append(list(size))
                digests.append(digest)
    return {"images": len(ids), "counts": dict(counts), "skipped": dict(sorted(skipped.items())),
            "files": files, "sizes": sizes, "digests": digests}


def _content_hash(results: dict[str, dict[str, Any]]) -> str:
    """SHA-256 over the class list and every crop's path and MD5: the data cache's key."""
    lines = sorted(f"{path} {digest}" for r in results.values()
                   for path, digest in zip(r["files"], r["digests"]))
    return hashlib.sha256("\n".join([",".join(VOC_CLASSES), *lines]).encode()).hexdigest()


def _is_sample(voc_root: Path) -> bool:
    return (voc_root / SAMPLE_MARKER).is_file()


def build_crops(voc_root: str | os.PathLike, out: str | os.PathLike, *,
                splits: Sequence[str] | None = None, skip_bad: bool = False,
                progress: bool = True, ext: str = "jpg", quality: int = 95,
                workers: int | None = None) -> dict:
    """Crop every non-difficult object of a VOC tree into ``out/<split>/<class>/``.

    Object ``k`` (its index in the XML file, difficult ones included) of image ``ID`` becomes
    ``out/<split>/<class>/<ID>_<k>.<ext>``; its box is converted with :func:`crop_box` and clipped
    to the image, and a box with nothing left is skipped and counted. Crops are written into
    ``out/.building/`` and moved into place at the end; ``out/manifest.json`` is written last and
    atomically, so an interrupted build has no manifest and is redone from scratch by the next call.
    A call whose manifest is complete and was made from the same tree (same path, split lists and
    archive or sample markers) and settings does nothing; delete ``out/manifest.json`` to force a
    rebuild after editing annotations in place.

    Args:
        voc_root: a ``VOCdevkit/VOC2007`` folder (real, or from :func:`make_sample`).
        out: the crops folder (created; it must be empty or hold an earlier build).
        splits: subset of ``("train", "val", "test")``; default: train and val, plus test when the
            tree has ``ImageSets/Main/test.txt`` and its annotations.
        skip_bad: skip and count (instead of raising) unknown class names, malformed XML files and
            missing or unreadable images.
        progress: show progress bars.
        ext: ``"jpg"`` (JPEG, ``quality``) or ``"png"`` (lossless).
        quality: JPEG quality of the crops.
        workers: threads decoding and encoding images (default: CPU count, at most 8).
    Returns:
        The manifest (see :func:`read_manifest`).
    """
    voc_root, out = Path(voc_root).expanduser(), Path(out).expanduser()
    _check_voc_root(voc_root)
    if ext not in _IMAGE_FORMATS:
        raise ValueError(f"ext must be one of {sorted(_IMAGE_FORMATS)}, not {ext!r}")
    chosen = _choose_splits(voc_root, splits)
    params = {"crops_format": _CROPS_FORMAT, "splits": list(chosen), "skip_bad": skip_bad,
              "ext": ext, "quality": quality if ext == "jpg" else None,
              "voc_root": str(voc_root.resolve())}
    checksums = _source_checksums(voc_root, chosen)
    try:
        existing = read_manifest(out)
    except (FileNotFoundError, RuntimeError):
        existing = None
    if existing and existing["params"] == params and existing["source_checksums"] == checksums:
        return existing

    if out.is_dir() and any(out.iterdir()) and not ((out / MANIFEST).exists()
                                                    or (out / _STAGING).exists()):
        raise ValueError(f"{out} is not empty and holds no crops build: choose an empty or "
                         "new folder for the crops")
    (out / MANIFEST).unlink(missing_ok=True)       # from here on the folder counts as incomplete
    staging = out / _STAGING
    shutil.rmtree(staging, ignore_errors=True)
    workers = workers or min(8, os.cpu_count() or 1)
    results = {split: _crop_split(voc_root, split, staging / split, skip_bad=skip_bad, ext=ext,
                                  quality=quality, progress=progress, workers=workers)
               for split in chosen}
    for split in SPLITS:                            # old split folders go, rebuilt or not
        shutil.rmtree(out / split, ignore_errors=True)
    for split in chosen:
        os.replace(staging / split, out / split)

    sample = _is_sample(voc_root)
    manifest = {
        "source": "generated-sample" if sample else "voc2007",
        "description": ("crops of the GENERATED VOC-format sample made by zfkit.voc.make_sample "
                        "(synthetic shapes, NOT Pascal VOC data)" if sample else
                        "crops of the non-difficult objects of Pascal VOC 2007"),
        "voc_root": str(voc_root.resolve()),
        "classes": list(VOC_CLASSES),
        "splits": list(chosen),
        "images": {s: r["images"] for s, r in results.items()},
        "counts": {s: r["counts"] for s, r in results.items()},
        "skipped": {s: r["skipped"] for s, r in results.items()},
        "matches_official_counts": {s: r["counts"] == VOC2007_OFFICIAL_COUNTS[s]
                                    for s, r in results.items()},
        "files": {s: r["files"] for s, r in results.items()},
        "sizes": {s: r["sizes"] for s, r in results.items()},
        "source_checksums": checksums,
        "params": params,
        "zfkit_version": _zfkit_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "hash": _content_hash(results),
    }
    write_json_atomic(out / MANIFEST, manifest)
    shutil.rmtree(staging, ignore_errors=True)
    return manifest


def read_manifest(crops_dir: str | os.PathLike) -> dict:
    """Read ``crops_dir/manifest.json`` and check the folder still holds what it lists.

    The manifest has: ``source`` (``"generated-sample"`` or ``"voc2007"``), ``description``,
    ``voc_root`` (the tree it was cut from), ``classes`` (label order), ``splits``, ``images``
    and ``counts`` ``{split: {class: n}}``, ``skipped`` ``{split: {reason: n}}``, ``files`` and
    ``sizes`` ``{split: [...]}`` (crop paths relative to ``crops_dir`` and their
    ``[width, height]``, in the same order), ``matches_official_counts``, ``source_checksums``,
    ``params``, ``zfkit_version``, ``created`` and ``hash`` (a content hash).

    Raises:
        FileNotFoundError: no manifest (the folder was never built, or its build was interrupted).
        RuntimeError: the manifest is unreadable or the folder no longer matches it.
    """
    crops_dir = Path(crops_dir).expanduser()
    path = crops_dir / MANIFEST
    how = (f"Build the crops with `python -m zfkit voc-crops --voc-root .../VOCdevkit/VOC2007 "
           f"--out {crops_dir}` or, in a chapter, `zfkit.profiles.prepare_data(profile)`.")
    if not path.is_file():
        raise FileNotFoundError(f"no crops manifest at {path} (never built, or the build was "
                                f"interrupted). {how}")
    manifest = _read_json(path)
    missing = [k for k in _REQUIRED_KEYS if k not in manifest]
    if missing:
        raise RuntimeError(f"crops manifest {path} is unreadable or lacks {missing}. Delete "
                           f"{crops_dir} and rebuild. {how}")
    problems = []
    for split, per_class in manifest["counts"].items():
        for name, n in per_class.items():
            folder = crops_dir / split / name
            on_disk = len(os.listdir(folder)) if folder.is_dir() else 0
            if on_disk != n:
                problems.append(f"{split}/{name} holds {on_disk} files, the manifest says {n}")
    if problems:
        raise RuntimeError(f"crops folder {crops_dir} no longer matches its manifest ("
                           + "; ".join(problems[:3]) + f"). Delete {crops_dir} and rebuild. {how}")
    return manifest


# ----------------------------------------------------------------------------------------------
# 3. The generated VOC-format sample
# ----------------------------------------------------------------------------------------------

# Written last into a generated tree: marks it complete, and tells build_crops it is not VOC data.
SAMPLE_MARKER = "ZFKIT_GENERATED_SAMPLE.json"
_SAMPLE_FORMAT = 1

# Each class is one shape in one colour: 5 shapes x 4 colours = 20 classes a small CNN can tell
# apart after a resize to 227 and a horizontal flip. Shapes are polygons in unit coordinates.
_SHAPES: dict[str, tuple[tuple[float, float], ...]] = {
    "disc": tuple((float(np.cos(t)), float(np.sin(t)))
                  for t in np.linspace(0, 2 * np.pi, 40, endpoint=False)),
    "square": ((-1, -1), (1, -1), (1, 1), (-1, 1)),
    "triangle": ((0, -1), (1, 1), (-1, 1)),
    "diamond": ((0, -1), (1, 0), (0, 1), (-1, 0)),
    "cross": ((-.35, -1), (.35, -1), (.35, -.35), (1, -.35), (1, .35), (.35, .35), (.35, 1),
              (-.35, 1), (-.35, .35), (-1, .35), (-1, -.35), (-.35, -.35)),
}
_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 45, 40), "green": (40, 165, 60), "blue": (45, 80, 215), "yellow": (235, 205, 35)}
SAMPLE_LOOKS: dict[str, tuple[str, str]] = {
    name: (list(_SHAPES)[i // 4], list(_COLOURS)[i % 4]) for i, name in enumerate(VOC_CLASSES)}


@dataclass(frozen=True)
class _SampleSettings:
    """How the sample is drawn (fixed: changing it changes every generated file)."""
    split_fractions: tuple[float, float, float] = (0.5, 0.25, 0.25)   # train (the rest), val, test
    objects_per_image: tuple[int, ...] = (1, 2, 3, 4)
    objects_weights: tuple[float, ...] = (0.25, 0.3, 0.25, 0.2)
    width: tuple[int, int] = (240, 320)
    height: tuple[int, int] = (180, 260)
    side: tuple[int, int] = (40, 110)              # object size in pixels
    difficult_side: tuple[int, int] = (14, 22)     # small and faint: flagged difficult
    difficult_rate: float = 0.1
    truncated_rate: float = 0.15                   # partly outside the image, box at the border
    colour_jitter: int = 25
    noise_std: float = 9.0
    jpeg_quality: int = 90


class _ClassCycle:
    """Classes in shuffled rounds of all 20, so every split stays roughly balanced."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.queue = rng, []

    def next(self) -> str:
        if not self.queue:
            self.queue = [VOC_CLASSES[i] for i in self.rng.permutation(len(VOC_CLASSES))]
        return self.queue.pop()


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _draw_object(image: Image.Image, rng: np.random.Generator, name: str, *, difficult: bool,
                 truncated: bool, taken: list[tuple[int, int, int, int]],
                 s: _SampleSettings) -> tuple[int, int, int, int] | None:
    """Draw one object; returns its VOC box (1-based, inclusive), or None if no free place."""
    w, h = image.size
    shape, colour_name = SAMPLE_LOOKS[name]
    lo, hi = s.difficult_side if difficult else s.side
    side, aspect = float(rng.integers(lo, hi + 1)), float(rng.uniform(0.75, 1.33))
    rx, ry = side * aspect ** 0.5 / 2, side / aspect ** 0.5 / 2      # half width, half height
    angle = float(np.deg2rad(rng.uniform(-15, 15)))
    cos, sin = np.cos(angle), np.sin(angle)
    for _ in range(15):                                 # try places until one is free
        cx, cy = rng.uniform(rx, w - rx), rng.uniform(ry, h - ry)
        if truncated:                                   # push 25-50 % of it over one edge
            over, edge = rng.uniform(0.25, 0.5), int(rng.integers(4))
            if edge < 2:
                cx = rx - 2 * rx * over if edge == 0 else w - rx + 2 * rx * over
            else:
                cy = ry - 2 * ry * over if edge == 2 else h - ry + 2 * ry * over
        points = [(cx + rx * u * cos - ry * v * sin, cy + rx * u * sin + ry * v * cos)
                  for u, v in _SHAPES[shape]]           # the unit shape scaled, rotated, moved
        mask = Image.new("L", (w, h), 0)
        ImageDraw.Draw(mask).polygon(points, fill=255)
        bbox = mask.getbbox()          # 0-based (left, upper, right, lower); right, lower exclusive
        if bbox is None or any(_overlap(bbox, t) for t in taken):
            continue
        jitter = rng.integers(-s.colour_jitter, s.colour_jitter + 1, 3)
        colour = tuple(int(c) for c in np.clip(np.add(_COLOURS[colour_name], jitter), 0, 255))
        if difficult:                                   # faint: 45 % over the background
            mask = mask.point(lambda v: v * 45 // 100)
        image.paste(Image.new("RGB", (w, h), colour), mask=mask)
        taken.append(bbox)
        left, upper, right, lower = bbox
        return left + 1, upper + 1, right, lower        # VOC: 1-based, inclusive
    return None


def _sample_image(rng: np.random.Generator, cycle: _ClassCycle,
                  s: _SampleSettings) -> tuple[Image.Image, list[dict]]:
    """One noisy background with 1-4 objects; returns the image and its objects' annotations."""
    w = int(rng.integers(s.width[0], s.width[1] + 1))
    h = int(rng.integers(s.height[0], s.height[1] + 1))
    base = (rng.integers(70, 186) + rng.integers(-30, 31, size=3)).astype(np.float32)  # muted
    ramp = np.linspace(-1, 1, w, dtype=np.float32)[None, :, None] * rng.uniform(-30, 30, 3)
    canvas = np.clip(np.broadcast_to(base + ramp, (h, w, 3)), 0, 255).astype(np.uint8)  # (H, W, 3)
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):          # grey clutter, never a class colour
        grey = int(rng.integers(40, 220))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        draw.line((x0, y0, int(rng.integers(0, w)), int(rng.integers(0, h))), fill=(grey,) * 3,
                  width=int(rng.integers(1, 5)))
    objects, taken = [], []
    for _ in range(int(rng.choice(s.objects_per_image, p=s.objects_weights))):
        name = cycle.next()
        difficult = bool(rng.random() < s.difficult_rate)
        truncated = not difficult and bool(rng.random() < s.truncated_rate)
        box = _draw_object(image, rng, name, difficult=difficult, truncated=truncated,
                           taken=taken, s=s)
        if box is not None:
            objects.append({"name": name, "box": box, "difficult": difficult,
                            "truncated": truncated})
    pixels = np.asarray(image, dtype=np.float32) + s.noise_std * rng.standard_normal(
        (h, w, 3), dtype=np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), objects


def _annotation_xml(image_id: str, size: tuple[int, int], objects: list[dict], seed: int) -> bytes:
    """A VOC-style XML annotation; its <source> says the image is generated."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2007"
    ET.SubElement(root, "filename").text = f"{image_id}.jpg"
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "zfkit generated sample (NOT Pascal VOC data)"
    ET.SubElement(source, "annotation").text = f"zfkit.voc.make_sample(seed={seed})"
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


def make_sample(out: str | os.PathLike, *, images: int = 120, seed: int = 0) -> Path:
    """Write a generated VOC-format tree to ``out/VOCdevkit/VOC2007``.

    Same layout as the real thing (``Annotations/*.xml``, ``JPEGImages/*.jpg``,
    ``ImageSets/Main/{train,val,trainval,test}.txt``); each of the 20 classes is a shape in a colour
    (:data:`SAMPLE_LOOKS`) drawn with size, aspect, angle and colour jitter on a noisy background,
    with difficult (small, faint) objects, truncated boxes at the border, and images with one to
    four objects. Deterministic for a seed. The tree is built in ``out/.VOCdevkit.partial`` and
    renamed at the end, with :data:`SAMPLE_MARKER` written last; a complete sample with the same
    parameters is reused as it is.

    Args:
        out: folder that receives ``VOCdevkit/``.
        images: number of images (half train, a quarter each val and test).
        seed: random seed.
    Returns:
        ``out/VOCdevkit/VOC2007``.
    """
    if images < 3:
        raise ValueError(f"images must be at least 3 (one per split), not {images}")
    out = Path(out).expanduser()
    voc_root = out / "VOCdevkit" / "VOC2007"
    wanted = {"generator": "zfkit.voc.make_sample", "format": _SAMPLE_FORMAT, "images": images,
              "seed": seed}
    marker = _read_json(voc_root / SAMPLE_MARKER)
    if {k: marker.get(k) for k in wanted} == wanted:
        return voc_root
    if (out / "VOCdevkit").exists() and not (voc_root / SAMPLE_MARKER).is_file():
        raise ValueError(f"{out / 'VOCdevkit'} exists and is not a zfkit sample: refusing to "
                         "overwrite it; choose another folder for the sample")

    settings = _SampleSettings()
    rng = np.random.default_rng(seed)
    n_val, n_test = (max(1, round(images * f)) for f in settings.split_fractions[1:])
    split_of = [str(s) for s in rng.permutation(
        ["train"] * (images - n_val - n_test) + ["val"] * n_val + ["test"] * n_test)]
    staging = out / ".VOCdevkit.partial"
    shutil.rmtree(staging, ignore_errors=True)
    tree = staging / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (tree / sub).mkdir(parents=True)
    cycles = {split: _ClassCycle(rng) for split in SPLITS}
    ids: dict[str, list[str]] = {split: [] for split in SPLITS}
    objects: Counter = Counter()
    for index, split in enumerate(split_of, start=1):
        image_id = f"{index:06d}"
        image, objs = _sample_image(rng, cycles[split], settings)
        image.save(tree / "JPEGImages" / f"{image_id}.jpg", quality=settings.jpeg_quality)
        (tree / "Annotations" / f"{image_id}.xml").write_bytes(
            _annotation_xml(image_id, image.size, objs, seed))
        ids[split].append(image_id)
        objects.update(f"{split}/{'difficult' if o['difficult'] else 'non-difficult'}"
                       for o in objs)
    ids["trainval"] = sorted(ids["train"] + ids["val"])
    for split, listed in ids.items():
        lines = "".join(f"{i}\n" for i in sorted(listed))
        (tree / "ImageSets" / "Main" / f"{split}.txt").write_text(lines)
    write_json_atomic(tree / SAMPLE_MARKER, {
        **wanted, "note": "GENERATED data for tests and smoke runs: NOT Pascal VOC 2007",
        "images_per_split": {s: len(ids[s]) for s in SPLITS},
        "objects": dict(sorted(objects.items()))})
    shutil.rmtree(out / "VOCdevkit", ignore_errors=True)   # an older sample with other parameters
    os.replace(staging, out / "VOCdevkit")
    return voc_root
