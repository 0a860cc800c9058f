"""The decoded crops: every crop of a split decoded and resized once, kept as one ``uint8`` tensor,
optionally cached on disk.

The seed's transform decodes and resizes every JPEG on every epoch, although only its flip is
random. Here :func:`load_split` decodes each crop with PIL, resizes it with PIL's bilinear filter
(what ``Resize`` does to a PIL image) and keeps the whole split as a :class:`CachedSplit`,
``uint8`` ``(N, 3, 227, 227)``; with ``cache_dir`` it also writes it to a file keyed by the crops'
manifest hash (:func:`cache_path`), written atomically with its SHA-256
(:mod:`zfkit.integrity`) and checked when read: a cache whose bytes changed is rebuilt. Each crop
is checked against the manifest's digest as it is decoded. What happens per batch (flip,
normalize) is in :mod:`zfkit.batches`.

The crops folder (written by :mod:`zfkit.crops`) looks like ``CROPS/<split>/<class>/<id>_<k>.jpg``
with ``CROPS/manifest.json`` holding at least ``classes`` (label order), ``source`` and ``hash``,
and usually ``counts`` (checked against the files of a split when it is decoded).

Reference: Krizhevsky et al. (2012), Sec. 2 (images rescaled to a fixed size once, before
training); the seed's ``Resize((227, 227))`` in place of their 256 + random 224 crops.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .classes import SPLITS
from .crops import MANIFEST
from .integrity import IntegrityError, verify_file, write_verified
from .names import check_name, check_regular_file

__all__ = [
    "CachedSplit", "read_manifest", "check_split", "split_folder", "list_crops", "decode_resize",
    "cache_path", "load_split",
]

_CACHE_VERSION = 1  # bump when the cache file layout changes; old files are then ignored


@dataclass
class CachedSplit:
    """One split of the crops, decoded and resized once, held as ``uint8``.

    Args:
        images: ``uint8`` tensor ``(N, 3, H, W)``, RGB, pixel values 0..255.
        labels: ``int64`` tensor ``(N,)``, indices into ``classes``.
        classes: class names in label order (from the manifest, not from the folders present).
        split: ``"train"``, ``"val"`` or ``"test"``.
        source: where the crops came from: ``"generated-sample"`` or ``"voc2007"``.
        manifest_hash: the content hash of the crops folder this was built from.
        files: each image's path relative to the crops folder, in the same order as ``images``.
    """
    images: Tensor
    labels: Tensor
    classes: list[str]
    split: str
    source: str
    manifest_hash: str
    files: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be uint8 (N, 3, H, W), got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must be int64 ({self.images.shape[0]},), got "
                             f"{self.labels.dtype} {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device | str) -> "CachedSplit":
        """A copy whose tensors live on ``device`` (still ``uint8``: 4x smaller than float)."""
        return replace(self, images=self.images.to(device), labels=self.labels.to(device))

    def describe(self) -> str:
        """One line: split, size, source and memory, for a chapter to print."""
        n, _, h, w = self.images.shape
        size = self.images.numel()
        size = f"{size / 2**20:.0f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"
        return (f"{self.split}: {n} crops of {h}x{w} from {self.source} "
                f"({len(self.classes)} classes, {size} as uint8, on {self.device})")


# ----------------------------------------------------------------------------------------------
# Reading the crops folder


def read_manifest(crops_dir: str | Path) -> dict[str, Any]:
    """The crops folder's ``manifest.json``, checked only for the keys this module needs.

    Deliberately lighter than :func:`zfkit.voc.read_manifest` (every key the builder writes, and
    a listing of every class folder of every split): this one runs before every
    :func:`load_split`, including the ones a disk cache answers without touching the crops, and
    accepts any folder laid out like the builder's. The split being decoded is checked against the
    manifest's ``counts`` when it is decoded (:func:`load_split`), with that split's files only.

    Args:
        crops_dir: the crops folder (holds ``manifest.json`` and ``train/``, ``val/``, ``test/``).

    Returns:
        The manifest as a dict.
    """
    path = Path(crops_dir) / MANIFEST
    rebuild = f"rebuild the crops with `python -m zfkit voc-crops --out {Path(crops_dir)} ...`"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: build the crops first with "
                                "`python -m zfkit voc-crops` (or zfkit.profiles.prepare_data)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is not readable JSON ({err}): {rebuild}") from err
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} is not a crops manifest: {rebuild}")
    missing = [k for k in ("classes", "source", "hash") if k not in manifest]
    if missing:
        raise ValueError(f"{path} lacks {missing}: {rebuild}")
    if not isinstance(manifest["classes"], list):
        raise ValueError(f"{path}: 'classes' is not a list: {rebuild}")
    for value, what in [(manifest["source"], "source"), *((c, "class name")
                                                          for c in manifest["classes"])]:
        check_name(value, what=what, source=path, fix=rebuild)
    return manifest


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {SPLITS}")


def split_folder(crops_dir: str | Path, split: str, classes: list[str]) -> Path:
    """``crops_dir/split``, checked to exist and to hold no folder that is not a manifest class."""
    check_split(split)
    root = Path(crops_dir) / split
    if not root.is_dir():
        raise FileNotFoundError(f"{root} not found: build the {split!r} crops with "
                                "`python -m zfkit voc-crops`")
    unknown = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in classes)
    if unknown:
        raise ValueError(f"{root} has folders {unknown} that are not classes in manifest.json: "
                         "rebuild the crops with `python -m zfkit voc-crops`")
    return root


def list_crops(crops_dir: str | Path, split: str, classes: list[str]) -> list[tuple[str, int]]:
    """Every image of a split as ``(path relative to crops_dir, label)``, in a fixed order.

    The order is by label, then by file name, which is ``ImageFolder``'s order when ``classes`` is
    sorted. Files are the ones ``ImageFolder`` would accept (its image extensions).

    Args:
        crops_dir: the crops folder.
        split: ``"train"``, ``"val"`` or ``"test"``.
        classes: class names in label order.

    Returns:
        A list of ``(relative path, label)``.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS

    root = split_folder(crops_dir, split, classes)
    items = []
    for label, name in enumerate(classes):
        for path in sorted((root / name).rglob("*")) if (root / name).is_dir() else []:
            if path.is_file() and path.name.lower().endswith(IMG_EXTENSIONS):
                items.append((path.relative_to(crops_dir).as_posix(), label))
    if not items:
        raise FileNotFoundError(f"no images under {root}: build the crops with "
                                "`python -m zfkit voc-crops`")
    return items


def _expected_count(manifest: dict[str, Any], split: str) -> int | None:
    """The manifest's image count for a split, when it states one (an int or a per-class dict)."""
    counts = manifest.get("counts", {})
    value = counts.get(split) if isinstance(counts, dict) else None
    if isinstance(value, int):
        return value
    if isinstance(value, dict) and all(isinstance(v, int) for v in value.values()):
        return sum(value.values())
    return None


def decode_resize(path: str | Path, size: int) -> np.ndarray:
    """One crop as the seed's ``Resize((size, size))`` sees it, before ``ToTensor``.

    ``ImageFolder`` opens a file with PIL and converts it to RGB; ``Resize`` on a PIL image calls
    ``Image.resize`` with the bilinear filter, which PIL always antialiases. Same calls here.

    Args:
        path: the image file.
        size: output height and width.

    Returns:
        ``uint8`` array ``(size, size, 3)``.
    """
    with open(check_regular_file(path, what="crop"), "rb") as f:
        opened = Image.open(f)
        limit = Image.MAX_IMAGE_PIXELS
        if limit and opened.width * opened.height > limit:
            raise ValueError(f"{opened.width}x{opened.height} pixels is more than PIL's limit "
                             "(Image.MAX_IMAGE_PIXELS): not a crop zfkit wrote")
        img = opened.convert("RGB")
    return np.asarray(img.resize((size, size), Image.BILINEAR))  # (size, size, 3)


def _check_md5(path: Path, md5: str) -> None:
    with open(check_regular_file(path, what="crop"), "rb") as f:
        actual = hashlib.md5(f.read()).hexdigest()
    if actual != md5:
        raise ValueError(f"its MD5 {actual} is not the manifest's {md5} (changed or truncated "
                         "since it was cut)")


def _digests(manifest: dict[str, Any], split: str) -> dict[str, str]:
    """``{path relative to the crops folder: MD5}`` from the manifest (empty when it has none)."""
    files = manifest.get("files", {})
    digests = manifest.get("digests", {})
    if not (isinstance(files, dict) and isinstance(digests, dict)):
        return {}
    paths, sums = files.get(split) or [], digests.get(split) or []
    return dict(zip(paths, sums)) if len(paths) == len(sums) else {}


# ----------------------------------------------------------------------------------------------
# Building and caching a split


def cache_path(cache_dir: str | Path, manifest: dict[str, Any], split: str, size: int) -> Path:
    """The cache file for one split: its name holds the manifest hash, the split and the size.

    Args:
        cache_dir: the folder for cache files.
        manifest: the crops folder's manifest (its ``source`` and ``hash`` are used).
        split: the split.
        size: the image size.

    Returns:
        The path (which may not exist yet).
    """
    check_split(split)
    source = check_name(manifest["source"], what="source", source="the crops manifest",
                        fix="rebuild the crops with `python -m zfkit voc-crops`")
    digest = "".join(c for c in str(manifest["hash"]) if c.isalnum())[:24]
    return Path(cache_dir) / f"{source}-{split}-{int(size)}px-{digest}-v{_CACHE_VERSION}.pt"


def _build(crops_dir: Path, manifest: dict[str, Any], split: str, size: int, progress: bool,
           workers: int) -> CachedSplit:
    classes = list(manifest["classes"])
    items = list_crops(crops_dir, split, classes)
    expected = _expected_count(manifest, split)
    if expected is not None and expected != len(items):
        raise ValueError(f"manifest.json says {expected} {split} crops but {crops_dir / split} has "
                         f"{len(items)}: the folder changed; rebuild it with `python -m zfkit voc-crops`")
    images = torch.empty((len(items), 3, size, size), dtype=torch.uint8)  # (N, 3, S, S)
    digests = _digests(manifest, split)
    unlisted = [rel for rel, _ in items if digests and rel not in digests]
    if unlisted:
        raise RuntimeError(f"crops folder {crops_dir} holds {unlisted[:3]}, which its manifest "
                           f"does not list: rebuild it with `python -m zfkit voc-crops --out "
                           f"{crops_dir} ...` (it rebuilds a folder that changed)")

    def load_one(i: int) -> None:  # PIL releases the GIL while decoding and resizing
        rel = items[i][0]
        try:
            if rel in digests:
                _check_md5(crops_dir / rel, digests[rel])
            pixels = decode_resize(crops_dir / rel, size)  # (S, S, 3)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            raise RuntimeError(f"cannot use crop {crops_dir / rel} ({err}): rebuild the crops "
                               f"with `python -m zfkit voc-crops --out {crops_dir} ...` (it "
                               "rebuilds a folder whose crops changed)") from err
        np.copyto(images[i].permute(1, 2, 0).numpy(), pixels)  # into images[i], (3, S, S)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        jobs = pool.map(load_one, range(len(items)))
        if progress:
            from tqdm.auto import tqdm
            jobs = tqdm(jobs, total=len(items), desc=f"decode+resize {split}", unit="img")
        for _ in jobs:
            pass
    labels = torch.tensor([label for _, label in items], dtype=torch.int64)  # (N,)
    return CachedSplit(images, labels, classes, split, str(manifest["source"]),
                       str(manifest["hash"]), [rel for rel, _ in items])


def _save(data: CachedSplit, path: Path, size: int) -> None:
    """Write the cache atomically with its SHA-256 (:func:`zfkit.integrity.write_verified`)."""
    state = {"version": _CACHE_VERSION, "size": size, "images": data.images,
             "labels": data.labels, "classes": data.classes, "split": data.split,
             "source": data.source, "manifest_hash": data.manifest_hash, "files": data.files}
    write_verified(path, lambda f: torch.save(state, f))


def _load(path: Path, manifest: dict[str, Any], split: str, size: int) -> CachedSplit | None:
    """The cached split, or ``None`` when the file is corrupt, unverified, unreadable or was made
    from other data (the caller then rebuilds it)."""
    try:
        if not verify_file(path, what="cache file", remedy="It is rebuilt from the crops."):
            warnings.warn(f"cache file {path} has no SHA-256 beside it (an older zfkit wrote "
                          "it); rebuilding it")
            return None
    except (IntegrityError, OSError) as err:
        warnings.warn(f"{err}")
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        data = CachedSplit(state["images"], state["labels"], list(state["classes"]),
                           state["split"], state["source"], state["manifest_hash"],
                           list(state["files"]))
        ok = (state["version"] == _CACHE_VERSION and state["size"] == size
              and data.images.shape[2:] == (size, size) and data.split == split
              and data.manifest_hash == str(manifest["hash"])
              and data.classes == list(manifest["classes"]) and len(data.files) == len(data))
    except Exception as err:  # a truncated or corrupt file: say so and rebuild it
        warnings.warn(f"cache file {path} is unreadable ({type(err).__name__}: {err}); rebuilding it")
        return None
    return data if ok else None


def load_split(crops_dir: str | Path, split: str, *, size: int = 227,
               cache_dir: str | Path | None = None, progress: bool = True,
               workers: int | None = None) -> CachedSplit:
    """Decode and resize every crop of a split once, into a ``uint8`` tensor in memory.

    With ``cache_dir`` the result is also kept on disk, in a file whose name holds the manifest
    hash, the split and the size (see :func:`cache_path`); a later call reads it instead of
    decoding again. The file is written atomically and checked when read: a cache made from other
    crops, or a truncated one, is never used (it is rebuilt).

    Args:
        crops_dir: the crops folder (with ``manifest.json``).
        split: ``"train"``, ``"val"`` or ``"test"``.
        size: output height and width (the seed's ``Resize((227, 227))``).
        cache_dir: where to keep cache files; ``None`` keeps nothing on disk.
        progress: show a progress bar while decoding.
        workers: decoding threads (default: the number of CPU cores, at most 8).

    Returns:
        The split as a :class:`CachedSplit` on the CPU.
    """
    check_split(split)
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    crops_dir = Path(crops_dir)
    manifest = read_manifest(crops_dir)
    path = cache_path(cache_dir, manifest, split, size) if cache_dir is not None else None
    if path is not None and path.is_file():
        data = _load(path, manifest, split, size)
        if data is not None:
            return data
    data = _build(crops_dir, manifest, split, size, progress, workers or min(8, os.cpu_count() or 1))
    if path is not None:
        _save(data, path, size)
    return data
