"""The crop builder: every non-difficult object of a VOC tree cut into a class folder, and the
manifest that says what was cut.

:func:`build_crops` turns object ``k`` of image ``ID`` into ``out/<split>/<class>/<ID>_<k>.<ext>``
(its box converted with :func:`zfkit.annotations.crop_box`), in threads, into ``out/.building/``
first; ``out/manifest.json`` is written last and atomically, with the counts per class (compared
with :data:`zfkit.official.VOC2007_OFFICIAL_COUNTS`), what was skipped and why, every file with
its size and a content hash. :func:`read_manifest` reads it back and checks the folder still
matches it. A generated sample (:mod:`zfkit.sample`) goes through the same code; its manifest says
it is not VOC data.

Reference: the crop recipe is the seed blog post's (every non-difficult box of
``ImageSets/Main/{train,val}.txt`` becomes one image of its class), with the box correction of
:mod:`zfkit.annotations`. VOC's own classification task labels whole images instead (Everingham
et al. (2010), "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 88(2)).
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from PIL import Image
from tqdm.auto import tqdm

from .annotations import crop_box, read_annotation, read_split
from .atomic import write_json_atomic
from .classes import SPLITS, VOC_CLASSES
from .download import md5sum, read_json
from .official import VOC2007_OFFICIAL_COUNTS
from .sample import SAMPLE_MARKER, sample_source
from .version import __version__

__all__ = ["MANIFEST", "build_crops", "read_manifest"]

MANIFEST = "manifest.json"
_CROPS_FORMAT = 1
_STAGING = ".building"
_IMAGE_FORMATS = {"jpg": "JPEG", "png": "PNG"}
_REQUIRED_KEYS = ("source", "classes", "counts", "skipped", "files", "sizes",
                  "source_checksums", "zfkit_version", "hash", "params")
_SKIP_HINT = "Pass skip_bad=True (command line: --skip-bad) to skip such cases and count them."
_CLASS_SET = frozenset(VOC_CLASSES)


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
        info = read_json(marker)
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

    source, description = sample_source(voc_root) or (
        "voc2007", "crops of the non-difficult objects of Pascal VOC 2007")
    manifest = {
        "source": source,
        "description": description,
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
        "zfkit_version": __version__,
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
    manifest = read_json(path)
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
