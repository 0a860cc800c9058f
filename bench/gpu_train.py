"""Benchmark on a CUDA GPU: zfkit's training loop vs the seed's, at the size of VOC 2007.

Usage::

    python bench/gpu_train.py              # needs a CUDA GPU; a few minutes on one GPU
    python bench/gpu_train.py --dry        # the same code on the CPU with a tiny data set
    python bench/gpu_train.py --epochs 5 --workers 8 --keep /tmp/crops

It writes a synthetic crops folder the size of the seed's (6,301 train + 6,307 val JPEG crops of
VOC-like sizes, 20 classes; not VOC images: only the sizes and counts matter for speed) into a
temporary folder, then trains each net for a few epochs both ways:

* **zfkit**: :func:`zfkit.train.fit` (crops decoded once, data on the GPU, bf16 or fp16 autocast,
  channels-last, fused Adam, one host sync per phase, checkpoints after every epoch);
* **seed**: ``ImageFolder`` + ``DataLoader`` (decode and resize every JPEG every epoch, the seed's
  8 workers), fp32, default Adam, ``.item()`` every batch, val with the same loader settings.

It prints the epoch times (train + val, median of the epochs after the first) of both loops, their
ratio, and what 50 epochs would take. Without a GPU (and without ``--dry``) it says so and exits.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from zfkit import data as D
from zfkit.atomic import write_json_atomic
from zfkit.models import build_model
from zfkit.train import SEED_REPORTED, TrainConfig, fit
from zfkit.voc import VOC2007_OFFICIAL_COUNTS, VOC_CLASSES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import seed_epoch  # noqa: E402  the same seed-style training epoch as on the CPU

# the seed's VOC 2007 crop counts: 6,301 train and 6,307 val (the official non-difficult objects)
SEED_COUNTS = {split: sum(VOC2007_OFFICIAL_COUNTS[split].values()) for split in ("train", "val")}
RECIPE_EPOCHS = TrainConfig().epochs  # the seed's 50, for the "what a full run takes" columns


def _one_crop(path: Path, seed: int) -> None:
    """A smooth random JPEG of a VOC-like object size (compresses and decodes like a photo)."""
    rng = np.random.default_rng(seed)
    w, h = (int(v) for v in rng.integers(30, 480, size=2))
    coarse = rng.integers(0, 256, size=(max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
    Image.fromarray(coarse).resize((w, h), Image.BICUBIC).save(path, quality=90)


def write_crops(root: Path, counts: dict[str, int], workers: int) -> Path:
    """A crops folder with ``counts[split]`` JPEGs per split, classes round-robin, a manifest."""
    jobs, per_class = [], {}
    for split, n in counts.items():
        per_class[split] = {name: 0 for name in VOC_CLASSES}
        for i in range(n):
            name = VOC_CLASSES[i % len(VOC_CLASSES)]
            (root / split / name).mkdir(parents=True, exist_ok=True)
            jobs.append((root / split / name / f"{i:06d}_0.jpg", len(jobs)))
            per_class[split][name] += 1
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda job: _one_crop(*job), jobs))
    manifest = {"classes": list(VOC_CLASSES), "counts": per_class,
                "source": "synthetic-benchmark", "hash": f"synthetic-{sum(counts.values())}"}
    write_json_atomic(root / "manifest.json", manifest)
    return root


def seed_val_epoch(model: nn.Module, loader, device: torch.device) -> float:
    """The seed's validation phase (its loader flips and shuffles val too); returns seconds."""
    model.eval()
    start = time.perf_counter()
    running_loss, running_corrects = 0.0, 0
    criterion = nn.CrossEntropyLoss()
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            out = model(x)
            _, preds = torch.max(out, 1)
            running_loss += criterion(out, y).item() * x.size(0)
            running_corrects += torch.sum(preds == y)
    return time.perf_counter() - start


def bench_seed(name: str, crops: Path, device: torch.device, epochs: int, workers: int,
               n_classes: int) -> list[float]:
    """Epoch times (train + val) of the seed's loop."""
    torch.manual_seed(0)
    model = build_model(name, num_classes=n_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loaders = {split: D.imagefolder_loader(crops, split, batch_size=128, num_workers=workers)
               for split in ("train", "val")}
    times = []
    for _ in range(epochs):
        seconds = seed_epoch(model, optimizer, loaders["train"], device)
        seconds += seed_val_epoch(model, loaders["val"], device)
        times.append(seconds)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry", action="store_true",
                        help="run on the CPU with 40 + 40 crops, 2 epochs (checks the script)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per loop (first = warm-up)")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers (seed: 8)")
    parser.add_argument("--models", nargs="+", default=["alexnet", "zfnet"])
    parser.add_argument("--keep", type=Path, help="write the crops here and keep them")
    args = parser.parse_args(argv)
    if not args.dry and not torch.cuda.is_available():
        print("bench/gpu_train.py needs a CUDA GPU and none is visible; nothing was run. "
              "`python bench/gpu_train.py --dry` checks the script on the CPU.")
        return 0
    device = torch.device("cpu" if args.dry else "cuda")
    counts = {"train": 40, "val": 40} if args.dry else dict(SEED_COUNTS)
    epochs = 2 if args.dry else max(2, args.epochs)
    workers = min(args.workers, os.cpu_count() or 1)
    what = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU (--dry)"
    print(f"device: {what}; torch {torch.__version__}; {os.cpu_count()} CPU cores, "
          f"{workers} DataLoader workers; {epochs} epochs per loop")

    with tempfile.TemporaryDirectory(prefix="zfkit-gpu-bench-") as tmp:
        crops = args.keep or Path(tmp) / "crops"
        start = time.perf_counter()
        if not (crops / "manifest.json").is_file():
            write_crops(crops, counts, workers=os.cpu_count() or 1)
        print(f"synthetic crops ({sum(counts.values())} JPEGs, not VOC images) ready in "
              f"{time.perf_counter() - start:.1f} s at {crops}")
        start = time.perf_counter()
        for split in counts:
            D.load_split(crops, split, cache_dir=Path(tmp) / "cache", progress=False)
        print(f"zfkit: decode + resize once, both splits: {time.perf_counter() - start:.1f} s "
              "(paid once; the later runs read the cache)")
        rows = []
        for name in args.models:
            config = TrainConfig(model=name, epochs=epochs, device=device.type)
            start = time.perf_counter()
            history = fit(config, crops, Path(tmp) / f"run-{name}", progress=False,
                          cache_dir=Path(tmp) / "cache")
            wall = time.perf_counter() - start
            zfkit_times = history.column("epoch_time")
            seed_times = bench_seed(name, crops, device, epochs, workers, len(VOC_CLASSES))
            rows.append((name, zfkit_times, seed_times, wall, history.device))
            print(f"{name}: zfkit epochs {[round(t, 2) for t in zfkit_times]} s "
                  f"(fit wall {wall:.1f} s incl. loading and checkpoints; {history.device}); "
                  f"seed epochs {[round(t, 2) for t in seed_times]} s", flush=True)

    print()
    print(f"{'model':8} {'zfkit s/epoch':>14} {'seed s/epoch':>13} {'ratio':>6} "
          f"{f'{RECIPE_EPOCHS} epochs zfkit':>16} {f'{RECIPE_EPOCHS} epochs seed':>15}")
    for name, zfkit_times, seed_times, _, _ in rows:
        z, s = statistics.median(zfkit_times[1:]), statistics.median(seed_times[1:])
        print(f"{name:8} {z:>14.2f} {s:>13.2f} {s / z:>5.1f}x {RECIPE_EPOCHS * z / 60:>14.1f} m "
              f"{RECIPE_EPOCHS * s / 60:>13.1f} m")
    for name in args.models:
        if name in SEED_REPORTED:
            minutes, seconds = divmod(int(SEED_REPORTED[name]["train_time_s"]), 60)
            print(f"(the seed reports {minutes} min {seconds} s for "
                  f"{SEED_REPORTED[name]['epochs']} epochs of {name} on an unnamed GPU, quoted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
