"""Batches: a cached split gathered, flipped and normalized on the device, once per batch; and the
seed's own path (``ImageFolder`` + ``DataLoader``), kept for comparison.

The seed's transform is, for every image on every epoch::

    Resize((227, 227)) -> RandomHorizontalFlip() -> ToTensor() -> Normalize((0.5,)*3, (0.5,)*3)

The decode and resize are done once (:mod:`zfkit.cache`); :func:`batches` gathers a shuffled
batch of the ``uint8`` images, moves it to the device and only there flips it and converts it to
float with the same operations as ``ToTensor`` and ``Normalize`` (:func:`normalize_batch`), so the
model sees exactly the pixels the seed's transform would give. :func:`imagefolder_loader` is the
seed's path, kept for the comparison in the data chapter and ``bench/bench_data.py``.

Reference: Krizhevsky et al. (2012), Sec. 4.1 (horizontal reflections as data augmentation); the
seed subtracts 0.5 and divides by 0.5 per channel instead of subtracting the mean image (Sec. 2).
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import Tensor

from .cache import CachedSplit, check_split, read_manifest, split_folder

__all__ = ["MEAN", "STD", "normalize_batch", "batches", "seed_transform", "imagefolder_loader"]

MEAN = 0.5  # the seed's Normalize((0.5,)*3, (0.5,)*3): the same value for every channel
STD = 0.5


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


def seed_transform(size: int = 227, flip_p: float = 0.5) -> Callable[[Any], Tensor]:
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

    check_split(split)
    classes = list(read_manifest(crops_dir)["classes"])
    root = split_folder(crops_dir, split, classes)
    # build_crops makes all 20 class folders, and a small split can leave some empty; ImageFolder
    # refuses empty folders unless told otherwise (torchvision >= 0.18 has allow_empty).
    empty_ok = ({"allow_empty": True}
                if "allow_empty" in inspect.signature(ImageFolder.__init__).parameters else {})
    dataset = ImageFolder(str(root), transform=seed_transform(size, flip_p), **empty_ok)
    dataset.target_transform = _Relabel(dataset.classes, classes)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                                       num_workers=num_workers, generator=generator)
