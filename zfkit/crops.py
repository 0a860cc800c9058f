"""The crop builder: every non-difficult object of a VOC tree cut into a class folder, and the
manifest that says what was cut.

:func:`build_crops` turns object ``k`` of image ``ID`` into ``out/<split>/<class>/<ID>_<k>.<ext>``
(its box converted with :func:`zfkit.annotations.crop_box`), in threads, into ``out/.building/``
first; ``out/manifest.json`` is written last and atomically, with the counts per class (compared
with :data:`zfkit.official.VOC2007_OFFICIAL_COUNTS`), what was skipped and why, every file with
its size and MD5, and a content hash (:mod:`zfkit.manifest`, which also reads it back). A
generated sample (:mod:`zfkit.sample`) goes through the same code; its manifest says it is not VOC
data.

What it refuses: ids and file names that are not plain names (:mod:`zfkit.names`), an image in two
splits (leakage), a split list that is not UTF-8, an ``out`` that holds anything zfkit did not
write there (it is never deleted), and a second builder of the same ``out`` (a lock: it waits).
With ``skip_bad`` it skips and counts bad annotations, unreadable or non-regular images, images
over PIL's pixel limit and inverted boxes.

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
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from PIL import Image
from tqdm.auto import tqdm

from .annotations import crop_box, read_annotation, read_split
from .atomic import check_writable, folder_lock, write_json_atomic
from .classes import SPLITS, VOC_CLASSES
from .download import md5sum, read_json
from .manifest import (FORMAT, MANIFEST, OWNED, STAGING, content_hash, owned_files,
                       read_manifest, verify_crops)
from .names import check_regular_file
from .official import VOC2007_OFFICIAL_COUNTS
from .sample import SAMPLE_MARKER, sample_source
from .version import __version__

__all__ = ["MANIFEST", "build_crops", "read_manifest"]

_CROPS_FORMAT = 1
_STAGING = STAGING
_IMAGE_FORMATS = {"jpg": "JPEG", "png": "PNG"}
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


def _split_ids(voc_root: Path, splits: Sequence[str] | None,
               skip_bad: bool) -> dict[str, list[str]]:
    """The ids of each split to crop. Default: train and val, plus test when the tree has
    ``test.txt`` and its annotations (a list without any annotation is skipped with a warning; a
    list with some missing is an error, or, with ``skip_bad``, cropped and the missing counted)."""
    main = voc_root / "ImageSets" / "Main"
    if splits is None:
        chosen = {s: read_split(voc_root, s) for s in ("train", "val")
                  if os.path.lexists(main / f"{s}.txt")}   # read_split refuses a non-file
        if os.path.lexists(main / "test.txt"):
            ids = read_split(voc_root, "test")
            missing = [i for i in ids if not (voc_root / "Annotations" / f"{i}.xml").is_file()]
            if ids and len(missing) == len(ids):
                warnings.warn(f"{main / 'test.txt'} lists {len(ids)} images but none has an "
                              "annotation: the test split is left out (download the test "
                              "archive with its annotations: download-voc --test)", stacklevel=3)
            elif missing and not skip_bad:
                raise FileNotFoundError(
                    f"{main / 'test.txt'} lists {len(missing)} image(s) without an annotation "
                    f"in {voc_root / 'Annotations'}, e.g. {missing[:3]}: the test archive is "
                    f"incomplete; extract it again (download-voc --test). {_SKIP_HINT}")
            else:
                chosen["test"] = ids                  # only with the test archive's annotations
        if not chosen:
            raise FileNotFoundError(f"{main} has no train.txt, val.txt or test.txt")
        return chosen
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise ValueError(f"unknown splits {bad}: choose from {list(SPLITS)}")
    missing = [s for s in splits if not os.path.lexists(main / f"{s}.txt")]
    if missing:
        raise FileNotFoundError(f"{main} lacks {[f'{s}.txt' for s in missing]}; for the test "
                                "split download the test archive (download-voc --test)")
    return {s: read_split(voc_root, s) for s in dict.fromkeys(splits)}


def _check_no_leakage(voc_root: Path, ids: dict[str, list[str]]) -> None:
    """Refuse an image listed in two splits: its crops would be trained on and scored on."""
    names = list(ids)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = sorted(set(ids[a]) & set(ids[b]))
            if both:
                raise ValueError(
                    f"{len(both)} image(s) are listed in both ImageSets/Main/{a}.txt and {b}.txt "
                    f"of {voc_root}, e.g. {both[:5]}: their crops would be in both splits "
                    "(leakage). Remove them from one of the lists, or restore the lists from "
                    "the VOC archive.")


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


def _open_image(path: Path) -> Image.Image:
    """The decoded RGB image, refusing non-regular files and images over PIL's pixel limit
    before decoding them."""
    check_regular_file(path, what="image")
    with Image.open(path) as opened:                # reads the header only
        limit = Image.MAX_IMAGE_PIXELS
        if limit and opened.width * opened.height > limit:
            raise ValueError(f"{opened.width}x{opened.height} pixels is more than PIL's limit of "
                             f"{limit:,} (Image.MAX_IMAGE_PIXELS): a decompression bomb?")
        return opened.convert("RGB")                # (H, W, 3) once decoded


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
        result.skipped["missing_annotation" if not os.path.lexists(xml)
                       else "bad_annotation_file"] += 1
        return result
    wanted = []
    for k, obj in enumerate(ann.objects):          # k: the object's index in its XML file
        xmin, ymin, xmax, ymax = obj.box
        if obj.name not in _CLASS_SET:
            if not skip_bad:
                raise ValueError(f"unknown class {obj.name!r} in {xml} (expected one of the 20 VOC "
                                 f"classes). {_SKIP_HINT}")
            result.skipped["unknown_class"] += 1
        elif obj.difficult:
            result.skipped["difficult"] += 1
        elif xmin > xmax or ymin > ymax:
            if not skip_bad:
                raise ValueError(f"object {k} ({obj.name}) of {xml} has an inverted box: xmin "
                                 f"{xmin}, xmax {xmax}, ymin {ymin}, ymax {ymax}. {_SKIP_HINT}")
            result.skipped["inverted_box"] += 1
        else:
            wanted.append((k, obj))
    if not wanted:
        return result
    image_path = voc_root / "JPEGImages" / ann.filename
    try:
        image = _open_image(image_path)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
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


def _crop_split(voc_root: Path, split: str, ids: list[str], dest: Path, *, skip_bad: bool,
                ext: str, quality: int, progress: bool, workers: int) -> dict[str, Any]:
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


def _is_sample(voc_root: Path) -> bool:
    return (voc_root / SAMPLE_MARKER).is_file()


def _up_to_date(out: Path, params: dict, checksums: dict) -> dict | None:
    """The existing manifest, when it was made from the same tree and settings and every crop
    still has its MD5; ``None`` otherwise (the folder is then rebuilt)."""
    try:
        existing = read_manifest(out)
    except (FileNotFoundError, RuntimeError):
        return None
    if existing["params"] == params and existing["source_checksums"] == checksums \
            and not verify_crops(out, existing):
        return existing
    return None


def _swap_in(out: Path, staging: Path, chosen: Sequence[str], manifest: dict,
             owned: set[str]) -> None:
    """Move the new split folders into ``out`` and the manifest last. At every step each file in
    ``out``'s split folders is listed in ``staging/owned.json`` (so a build killed here can be
    redone: the folder stays provably zfkit's)."""
    new_files = {f for files in manifest["files"].values() for f in files}
    write_json_atomic(staging / OWNED, {"format": FORMAT, "files": sorted(owned | new_files)})
    write_json_atomic(staging / MANIFEST, manifest)
    for split in SPLITS:                            # old split folders go, rebuilt or not
        if (out / split).exists():
            shutil.rmtree(staging / f"old-{split}", ignore_errors=True)
            os.replace(out / split, staging / f"old-{split}")
    for split in chosen:
        os.replace(staging / split, out / split)
    os.replace(staging / MANIFEST, out / MANIFEST)
    shutil.rmtree(staging, ignore_errors=True)


def build_crops(voc_root: str | os.PathLike, out: str | os.PathLike, *,
                splits: Sequence[str] | None = None, skip_bad: bool = False,
                progress: bool = True, ext: str = "jpg", quality: int = 95,
                workers: int | None = None, lock_wait: float = 3600.0) -> dict:
    """Crop every non-difficult object of a VOC tree into ``out/<split>/<class>/``.

    Object ``k`` (its index in the XML file, difficult ones included) of image ``ID`` becomes
    ``out/<split>/<class>/<ID>_<k>.<ext>``; its box is converted with :func:`crop_box` and clipped
    to the image, and a box with nothing left is skipped and counted. Crops are written into
    ``out/.building/`` and moved into place at the end; ``out/manifest.json`` is written last and
    atomically, so an interrupted build has no manifest and is redone from scratch by the next call.
    A call whose manifest is complete, was made from the same tree (same path, split lists and
    archive or sample markers) and settings, and whose crops all still have their MD5 does
    nothing; delete ``out/manifest.json`` to force a rebuild after editing annotations in place.

    Args:
        voc_root: a ``VOCdevkit/VOC2007`` folder (real, or from :func:`make_sample`).
        out: the crops folder (created; it must be empty, new, or a crops folder zfkit made:
            anything else is refused and left untouched).
        splits: subset of ``("train", "val", "test")``; default: train and val, plus test when the
            tree has ``ImageSets/Main/test.txt`` and its annotations.
        skip_bad: skip and count (instead of raising) unknown class names, malformed or missing
            XML files, missing, unreadable, non-regular or oversized images, and inverted boxes.
        progress: show progress bars.
        ext: ``"jpg"`` (JPEG, ``quality``) or ``"png"`` (lossless).
        quality: JPEG quality of the crops.
        workers: threads decoding and encoding images (default: CPU count, at most 8).
        lock_wait: seconds to wait for another process building the same ``out``.
    Returns:
        The manifest (see :func:`read_manifest`).
    """
    voc_root, out = Path(voc_root).expanduser(), Path(out).expanduser()
    _check_voc_root(voc_root)
    if ext not in _IMAGE_FORMATS:
        raise ValueError(f"ext must be one of {sorted(_IMAGE_FORMATS)}, not {ext!r}")
    ids = _split_ids(voc_root, splits, skip_bad)
    _check_no_leakage(voc_root, ids)
    chosen = tuple(ids)
    params = {"crops_format": _CROPS_FORMAT, "splits": list(chosen), "skip_bad": skip_bad,
              "ext": ext, "quality": quality if ext == "jpg" else None,
              "voc_root": str(voc_root.resolve())}
    checksums = _source_checksums(voc_root, chosen)
    owned_files(out)                                # refuses a folder zfkit did not make
    existing = _up_to_date(out, params, checksums)
    if existing is not None:
        return existing
    check_writable(out, what="--out")
    with folder_lock(out, what="building crops", wait=lock_wait):
        existing = _up_to_date(out, params, checksums)   # another builder may just have finished
        if existing is not None:
            return existing
        owned = owned_files(out) or set()
        staging = out / _STAGING
        for leftover in (SPLITS if staging.is_dir() else ()):
            shutil.rmtree(staging / leftover, ignore_errors=True)
        staging.mkdir(exist_ok=True)
        write_json_atomic(staging / OWNED, {"format": FORMAT, "files": sorted(owned)})
        (out / MANIFEST).unlink(missing_ok=True)   # from here on the folder counts as incomplete
        workers = workers or min(8, os.cpu_count() or 1)
        results = {split: _crop_split(voc_root, split, ids[split], staging / split,
                                      skip_bad=skip_bad, ext=ext, quality=quality,
                                      progress=progress, workers=workers)
                   for split in chosen}
        source, description = sample_source(voc_root) or (
            "voc2007", "crops of the non-difficult objects of Pascal VOC 2007")
        files = {s: r["files"] for s, r in results.items()}
        digests = {s: r["digests"] for s, r in results.items()}
        manifest = {
            "format": FORMAT,
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
            "files": files,
            "sizes": {s: r["sizes"] for s, r in results.items()},
            "digests": digests,
            "source_checksums": checksums,
            "params": params,
            "zfkit_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "hash": content_hash(files, digests),
        }
        _swap_in(out, staging, chosen, manifest, owned)
    return manifest
