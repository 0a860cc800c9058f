"""The data pipeline: decode and resize every crop once, then flip and normalize per batch.

The seed trains with ``ImageFolder`` and this transform, applied to every image on every epoch::

    Resize((227, 227)) -> RandomHorizontalFlip() -> ToTensor() -> Normalize((0.5,)*3, (0.5,)*3)

Only the flip is random, so the JPEG decode and the resize give the same result every epoch. Here
they are done once: :func:`load_split` decodes each crop with PIL, resizes it with PIL's bilinear
filter (what ``Resize`` does to a PIL image) and keeps the whole split as one ``uint8`` tensor
``(N, 3, 227, 227)``, optionally cached on disk. :func:`batches` then gathers a shuffled batch,
moves it to the device and only there flips it and converts it to float with the same operations as
``ToTensor`` and ``Normalize``, so the model sees exactly the pixels the seed's transform would give.

:func:`imagefolder_loader` is the seed's own path (``ImageFolder`` + ``DataLoader``), kept for
comparison and for the benchmark in ``bench/bench_data.py``.

The crops folder (written by :mod:`zfkit.voc`) looks like ``CROPS/<split>/<class>/<id>_<k>.jpg`` with
``CROPS/manifest.json`` holding at least ``classes`` (label order), ``source`` and ``hash``, and
usually ``counts`` (checked against the files of a split when it is decoded).
"""
from __future__ import annotations

import inspect
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from PIL import Image
from torch import Tensor

from .atomic import write_atomic
from .voc import MANIFEST, SPLITS

__all__ = [
    "SPLITS", "MEAN", "STD", "CachedSplit", "read_manifest", "list_crops", "decode_resize",
    "cache_path", "load_split", "normalize_batch", "batches", "seed_transform", "imagefolder_loader",
]

MEAN = 0.5  # the seed's Normalize((0.5,)*3, (0.5,)*3): the same value for every channel
STD = 0.5
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
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: build the crops first with "
                                "`python -m zfkit voc-crops` (or zfkit.profiles.prepare_data)")
    manifest = json.loads(path.read_text())
    missing = [k for k in ("classes", "source", "hash") if k not in manifest]
    if missing:
        raise ValueError(f"{path} lacks {missing}: rebuild the crops with `python -m zfkit voc-crops`")
    return manifest


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {SPLITS}")


def _split_folder(crops_dir: str | Path, split: str, classes: list[str]) -> Path:
    """``crops_dir/split``, checked to exist and to hold no folder that is not a manifest class."""
    _check_split(split)
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

    root = _split_folder(crops_dir, split, classes)
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
    with open(path, "rb") as f:
        img = Image.open(f).convert("RGB")
    return np.asarray(img.resize((size, size), Image.BILINEAR))  # (size, size, 3)


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
    digest = "".join(c for c in str(manifest["hash"]) if c.isalnum())[:24]
    return Path(cache_dir) / f"{manifest['source']}-{split}-{size}px-{digest}-v{_CACHE_VERSION}.pt"


def _build(crops_dir: Path, manifest: dict[str, Any], split: str, size: int, progress: bool,
           workers: int) -> CachedSplit:
    classes = list(manifest["classes"])
    items = list_crops(crops_dir, split, classes)
    expected = _expected_count(manifest, split)
    if expected is not None and expected != len(items):
        raise ValueError(f"manifest.json says {expected} {split} crops but {crops_dir / split} has "
                         f"{len(items)}: the folder changed; rebuild it with `python -m zfkit voc-crops`")
    images = torch.empty((len(items), 3, size, size), dtype=torch.uint8)  # (N, 3, S, S)

    def load_one(i: int) -> None:  # PIL releases the GIL while decoding and resizing
        try:
            pixels = decode_resize(crops_dir / items[i][0], size)  # (S, S, 3)
        except (OSError, ValueError) as err:
            raise RuntimeError(f"cannot read crop {crops_dir / items[i][0]} ({err}): rebuild the "
                               "crops with `python -m zfkit voc-crops`") from err
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
    """Write the cache atomically (:func:`zfkit.atomic.write_atomic`)."""
    state = {"version": _CACHE_VERSION, "size": size, "images": data.images,
             "labels": data.labels, "classes": data.classes, "split": data.split,
             "source": data.source, "manifest_hash": data.manifest_hash, "files": data.files}
    write_atomic(path, lambda f: torch.save(state, f))


def _load(path: Path, manifest: dict[str, Any], split: str, size: int) -> CachedSplit | None:
    """The cached split, or ``None`` when the file is unreadable or was made from other data."""
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
    _check_split(split)
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


# ----------------------------------------------------------------------------------------------
# The batch iterator


def normalize_batch(images: Tensor, flip: Tensor | None = None, *,
                    channels_last: bool = False) -> Tensor:
    """Flip some images left-right and turn ``uint8`` pixels into the seed's normalized floats.

    The float operations are the ones ``ToTensor`` (``x.float().div(255)``) and ``Normalize``
    (``sub_(mean).div_(std)``) run, in the same order, so on the CPU the result is bit-identical to
    the torchvision path (a GPU may round the division differently, by at most one float step). A
    flip only moves pixels, so doing it before the conversion changes nothing.

    Args:
        images: ``uint8`` ``(B, 3, H, W)`` on any device.
        flip: ``bool`` ``(B,)`` on the same device, ``True`` where an image is mirrored; or ``None``.
        channels_last: return the batch in ``torch.channels_last`` memory format.

    Returns:
        ``float32`` ``(B, 3, H, W)`` with values in ``[-1, 1]``.
    """
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"expected uint8 (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    if flip is not None:
        images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)  # (B, 3, H, W)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = images.to(torch.float32, memory_format=fmt).div_(255)  # ToTensor: [0, 1]
    return x.sub_(MEAN).div_(STD)  # Normalize: [-1, 1]


def batches(data: CachedSplit, batch_size: int, *, shuffle: bool, flip: bool,
            device: torch.device | str | None = None, generator: torch.Generator | None = None,
            drop_last: bool = False, channels_last: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
    """One epoch of ``(x, y)`` batches, flipped and normalized on the device.

    Each call draws a fresh order (``shuffle``) and fresh flips (``flip``: each image mirrored with
    probability 0.5, like ``RandomHorizontalFlip``), all for the epoch at once from ``generator``,
    so a fixed generator gives the same epoch on any device. Per batch it gathers the ``uint8``
    images, moves them to ``device`` without blocking, and converts them there: the host never
    waits for the device. Keep ``data`` on the device (``data.to("cuda")``) to skip the copy.

    Args:
        data: the split.
        batch_size: images per batch.
        shuffle: visit the images in a random order.
        flip: mirror each image left-right with probability 0.5.
        device: where the batches go (default: where ``data`` is).
        generator: the source of random numbers (default: torch's global generator).
        drop_last: skip the last batch when it is smaller than ``batch_size``.
        channels_last: yield ``x`` in ``torch.channels_last`` memory format.

    Returns:
        An iterator of ``x`` ``float32 (B, 3, H, W)`` and ``y`` ``int64 (B,)``, both on ``device``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    device = torch.device(device) if device is not None else data.device
    rng_device = generator.device if generator is not None else torch.device("cpu")
    n = len(data)
    if shuffle:
        order = torch.randperm(n, generator=generator, device=rng_device)  # (N,)
    else:
        order = torch.arange(n, device=rng_device)
    flips = (torch.rand(n, generator=generator, device=rng_device) < 0.5) if flip else None  # (N,)
    # Indices are used where the images are; flips where the batch goes. Once per epoch (a copy
    # into host memory blocks, so the host never reads indices that have not arrived).
    order = order.to(data.device, non_blocking=data.device.type != "cpu")
    flips = flips.to(device, non_blocking=device.type != "cpu") if flips is not None else None
    pin = device.type == "cuda" and data.device.type == "cpu"
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]  # (B,)
        # Gather straight into page-locked memory when the batch goes to a GPU, so the copy to
        # the device runs in the background (torch keeps that memory until the copy is done).
        xb = torch.empty((len(idx), *data.images.shape[1:]), dtype=torch.uint8,
                         device=data.device, pin_memory=pin)
        yb = torch.empty(len(idx), dtype=torch.int64, device=data.device, pin_memory=pin)
        torch.index_select(data.images, 0, idx, out=xb)  # (B, 3, H, W) uint8
        torch.index_select(data.labels, 0, idx, out=yb)  # (B,)
        xb = xb.to(device, non_blocking=True)
        yb = yb.to(device, non_blocking=True)
        fb = flips[start:start + batch_size] if flips is not None else None
        yield normalize_batch(xb, fb, channels_last=channels_last), yb


# ----------------------------------------------------------------------------------------------
# The seed's path: ImageFolder + DataLoader, for comparison


def seed_transform(size: int = 227, flip_p: float = 0.5):
    """The seed's transform: ``Resize((size, size))``, ``RandomHorizontalFlip(flip_p)``,
    ``ToTensor()``, ``Normalize((0.5,)*3, (0.5,)*3)``.

    Args:
        size: output height and width.
        flip_p: flip probability (0.5 in the seed; 0 and 1 make it deterministic for tests).

    Returns:
        A ``torchvision.transforms.Compose``.
    """
    from torchvision import transforms

    return transforms.Compose([
        transforms.Resize((size, size)),
        transforms.RandomHorizontalFlip(flip_p),
        transforms.ToTensor(),
        transforms.Normalize((MEAN,) * 3, (STD,) * 3),
    ])


class _Relabel:
    """Maps ``ImageFolder``'s label (index among the folders present) to the manifest's label."""

    def __init__(self, folder_classes: list[str], classes: list[str]) -> None:
        self.table = [classes.index(name) for name in folder_classes]

    def __call__(self, target: int) -> int:
        return self.table[target]


def imagefolder_loader(crops_dir: str | Path, split: str, *, batch_size: int = 128,
                       shuffle: bool = True, num_workers: int = 2, size: int = 227,
                       flip_p: float = 0.5,
                       generator: torch.Generator | None = None) -> torch.utils.data.DataLoader:
    """The seed's data path: ``ImageFolder`` with :func:`seed_transform` in a ``DataLoader``.

    Every epoch decodes and resizes every JPEG again (in ``num_workers`` processes). Labels follow
    the manifest's class order, so they agree with :func:`load_split` even when a split lacks a
    class (``ImageFolder`` alone would number only the folders present).

    Args:
        crops_dir: the crops folder (with ``manifest.json``).
        split: ``"train"``, ``"val"`` or ``"test"``.
        batch_size: images per batch (128 in the seed).
        shuffle: reshuffle every epoch.
        num_workers: loader processes (the seed used 8; Colab has 2 cores).
        size: output height and width.
        flip_p: flip probability.
        generator: the DataLoader's source of random order.

    Returns:
        A ``DataLoader`` of ``(x float32 (B, 3, size, size), y int64 (B,))``.
    """
    from torchvision.datasets import ImageFolder

    _check_split(split)
    classes = list(read_manifest(crops_dir)["classes"])
    root = _split_folder(crops_dir, split, classes)
    # build_crops makes all 20 class folders, and a small split can leave some empty; ImageFolder
    # refuses empty folders unless told otherwise (torchvision >= 0.18 has allow_empty).
    empty_ok = ({"allow_empty": True}
                if "allow_empty" in inspect.signature(ImageFolder.__init__).parameters else {})
    dataset = ImageFolder(str(root), transform=seed_transform(size, flip_p), **empty_ok)
    dataset.target_transform = _Relabel(dataset.classes, classes)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       num_workers=num_workers, generator=generator)
