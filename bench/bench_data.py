"""Benchmark: the cached uint8 iterator (zfkit.data.batches) vs the seed's ImageFolder + DataLoader.

Usage::

    python bench/bench_data.py                 # a generated sample crops folder in a temp dir
    python bench/bench_data.py --crops DIR     # an existing crops folder (e.g. VOC 2007 crops)
    python bench/bench_data.py --random-jpegs --json bench/results/data-bench.json   # chapter 4's

Both paths read the same crops and yield the same normalized float batches (the seed's Resize 227,
random flip, ToTensor, Normalize 0.5). Their epochs are interleaved (cached, seed, cached, ...) so a
busy shared machine slows both alike, and the table reports the ratio. Also printed: the time to
build the cache (decode + resize + save) and to read it back, and peak memory as the kernel's
high-water mark of resident memory (``resource.getrusage(...).ru_maxrss``) for this process and for
the largest DataLoader worker. ``tracemalloc`` is not used: it does not see torch's allocations.

With ``--json PATH`` the figures are also written to a small JSON file, with where they come
from (date, machine, CPU count and load, torch version, the command line): chapter 4 reads
``bench/results/data-bench.json`` and prints it as a measurement on that machine.

This is a script that prints figures, not a timed test.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torchvision.datasets  # noqa: F401  imported here (seconds), so no timing below includes it
from PIL import Image

from zfkit import data as D
from zfkit import voc

# The seed's train set: the non-difficult VOC 2007 train objects (6301), for the extrapolation.
SEED_TRAIN_CROPS = sum(voc.VOC2007_OFFICIAL_COUNTS["train"].values())


@dataclass
class BenchConfig:
    """Settings of one benchmark run (see ``--help``)."""
    crops: Path | None
    split: str
    epochs: int
    batch_size: int
    workers: int
    sample_crops: int
    device: str
    seed: int
    threads: int | None
    random_jpegs: bool
    json_out: Path | None = None


def _peak_rss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def write_random_crops(root: Path, n: int, seed: int) -> Path:
    """Random JPEGs with the spread of sizes of VOC object crops, and a manifest.

    The pictures are smooth random blobs plus noise (so they compress like photos, not like pure
    noise), with sides from 40 to 500 pixels, as VOC's boxes have. They are labelled
    ``generated-sample``: nothing here is VOC data.
    """
    rng = np.random.default_rng(seed)
    classes = list(voc.VOC_CLASSES)
    counts: dict[str, int] = {}
    for i in range(n):
        name = classes[i % len(classes)]
        h, w = (int(v) for v in rng.integers(40, 501, size=2))
        coarse = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize((w, h), Image.BICUBIC)  # smooth blobs (h, w, 3)
        pixels = np.asarray(img).astype(np.int16) + rng.integers(-12, 13, size=(h, w, 3))
        folder = root / "train" / name
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i:06d}_0.jpg",
                                                                   quality=90)
        counts[name] = counts.get(name, 0) + 1
    manifest = {"classes": classes, "counts": {"train": counts}, "source": "generated-sample",
                "hash": f"random-jpegs-{n}-{seed}"}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def make_crops(cfg: BenchConfig, tmp: Path) -> tuple[Path, str]:
    """The crops folder to benchmark, and a line saying what it is."""
    if cfg.crops is not None:
        return cfg.crops, f"crops folder {cfg.crops}"
    if cfg.random_jpegs:
        root = write_random_crops(tmp / "crops", cfg.sample_crops, cfg.seed)
        return root, f"{cfg.sample_crops} random JPEGs of VOC-like sizes (generated, not VOC)"
    images = max(3, cfg.sample_crops)  # half the images are train ones, with about two crops each
    voc_root = voc.make_sample(tmp / "sample", images=images, seed=cfg.seed)
    root = tmp / "crops"
    voc.build_crops(voc_root, root, progress=False)
    return root, f"zfkit.voc generated sample ({images} images; generated, not VOC)"


def _cpu_seconds() -> float:
    """CPU time used so far by this process and its finished children (the DataLoader workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def epoch_cached(data: D.CachedSplit, cfg: BenchConfig, g: torch.Generator) -> tuple[float, float]:
    """Wall and CPU seconds for one epoch of the cached iterator."""
    start, cpu = time.perf_counter(), _cpu_seconds()
    for x, y in D.batches(data, cfg.batch_size, shuffle=True, flip=True, device=cfg.device,
                          generator=g):
        pass
    if cfg.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, _cpu_seconds() - cpu


def epoch_imagefolder(loader: torch.utils.data.DataLoader, cfg: BenchConfig) -> tuple[float, float]:
    """Wall and CPU seconds (workers included) for one epoch of the seed's path, batches moved to
    the device as the seed does. The workers are not persistent, so they are counted once they exit
    at the end of the epoch."""
    start, cpu = time.perf_counter(), _cpu_seconds()
    for x, y in loader:
        x, y = x.to(cfg.device), y.to(cfg.device)
    if cfg.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, _cpu_seconds() - cpu


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    """Where the figures were measured: enough to tell this machine from a reader's."""
    return {"platform": platform.platform(), "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}


def write_json(path: Path, cfg: BenchConfig, figures: dict, load_before: list[float]) -> None:
    """The figures and their provenance, written to ``path`` (a temporary file, then renamed)."""
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()
                if k != "json_out"}
    record = {"benchmark": "bench/bench_data.py", "format": 1,
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["python", "bench/bench_data.py", *sys.argv[1:]]),
              "settings": settings, "machine": {**machine(), "load_average_before": load_before},
              **figures}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")


def run(cfg: BenchConfig) -> dict:
    """Run the benchmark, print its table and return its figures (what ``--json`` writes)."""
    rss_start = _peak_rss_mib(resource.RUSAGE_SELF)  # torch and torchvision imported: the baseline
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {cfg.device}")
    with tempfile.TemporaryDirectory(prefix="zfkit-bench-") as tmp_name:
        tmp = Path(tmp_name)
        start = time.perf_counter()
        crops, what = make_crops(cfg, tmp)
        print(f"data: {what} [{time.perf_counter() - start:.1f} s to write]")

        start = time.perf_counter()
        D.load_split(crops, cfg.split, progress=False)  # no cache_dir: decode + resize only
        decode_s = time.perf_counter() - start
        start = time.perf_counter()
        data = D.load_split(crops, cfg.split, cache_dir=tmp / "cache", progress=False)
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        data = D.load_split(crops, cfg.split, cache_dir=tmp / "cache", progress=False)
        reload_s = time.perf_counter() - start
        rss_after_cache = _peak_rss_mib(resource.RUSAGE_SELF)
        n = len(data)
        if cfg.device.startswith("cuda"):
            data = data.to(cfg.device)
        print(f"{data.describe()}")
        print(f"cache: decode + resize {decode_s:.2f} s ({n / decode_s:.0f} img/s); with saving to "
              f"disk {build_s:.2f} s; read back from disk {reload_s:.2f} s")

        loader = D.imagefolder_loader(crops, cfg.split, batch_size=cfg.batch_size, shuffle=True,
                                      num_workers=cfg.workers,
                                      generator=torch.Generator().manual_seed(cfg.seed))
        g = torch.Generator().manual_seed(cfg.seed)
        epoch_cached(data, cfg, g)  # warm-up epochs, not timed (first-touch, worker start-up code)
        epoch_imagefolder(loader, cfg)
        cached, seed_path = [], []
        for epoch in range(cfg.epochs):  # interleaved, so background load hits both alike
            cached.append(epoch_cached(data, cfg, g))
            seed_path.append(epoch_imagefolder(loader, cfg))
            print(f"  epoch {epoch}: cached {cached[-1][0]:.2f} s, "
                  f"ImageFolder {seed_path[-1][0]:.2f} s")

    label = f"ImageFolder + DataLoader(num_workers={cfg.workers})"
    print()
    print(f"{n} crops, batch {cfg.batch_size}, {cfg.epochs} timed epochs each (after 1 warm-up); "
          f"medians (min-max) over epochs:")
    print(f"  {'path':<44} {'images/s':>22} {'s/epoch':>8} {'CPU ms/image':>13}")
    medians = []
    for name, runs in (("cached uint8 + batches()", cached), (label, seed_path)):
        rates = [n / wall for wall, _ in runs]
        medians.append((statistics.median(rates), statistics.median(cpu for _, cpu in runs)))
        span = f"{medians[-1][0]:,.0f} ({min(rates):,.0f}-{max(rates):,.0f})"
        print(f"  {name:<44} {span:>22} {statistics.median(w for w, _ in runs):>8.2f} "
              f"{1000 * medians[-1][1] / n:>13.2f}")
    (med_c, cpu_c), (med_s, cpu_s) = medians
    print(f"  ratio cached / ImageFolder: {med_c / med_s:.1f}x the images per second, "
          f"{cpu_s / cpu_c:.1f}x less CPU time per image")
    print(f"  at these rates one epoch of {SEED_TRAIN_CROPS} crops (the seed's VOC 2007 train count) "
          f"takes {SEED_TRAIN_CROPS / med_c:.1f} s cached vs {SEED_TRAIN_CROPS / med_s:.1f} s")
    print(f"peak resident memory (ru_maxrss, a high-water mark): this process {rss_start:.0f} MiB "
          f"after importing torch, {rss_after_cache:.0f} MiB after building the cache, "
          f"{_peak_rss_mib(resource.RUSAGE_SELF):.0f} MiB at the end; largest DataLoader worker "
          f"{_peak_rss_mib(resource.RUSAGE_CHILDREN):.0f} MiB")
    rates = {name: [n / wall for wall, _ in runs] for name, runs in
             (("cached", cached), ("imagefolder", seed_path))}
    return {
        "data": what, "crops": n, "batch_size": cfg.batch_size, "timed_epochs": cfg.epochs,
        "workers": cfg.workers, "device": cfg.device,
        "paths": {"cached": "cached uint8 + batches()", "imagefolder": label},
        "images_per_s": {"cached": med_c, "imagefolder": med_s},
        "images_per_s_range": {k: [min(v), max(v)] for k, v in rates.items()},
        "cpu_ms_per_image": {"cached": 1000 * cpu_c / n, "imagefolder": 1000 * cpu_s / n},
        "ratio_images_per_s": med_c / med_s, "ratio_cpu_per_image": cpu_s / cpu_c,
        "cache_s": {"decode_resize": decode_s, "with_save": build_s, "read_back": reload_s},
        "epoch_s_at_seed_train_crops": {"crops": SEED_TRAIN_CROPS,
                                        "cached": SEED_TRAIN_CROPS / med_c,
                                        "imagefolder": SEED_TRAIN_CROPS / med_s},
    }


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--crops", type=Path, default=None,
                   help="a crops folder with manifest.json (default: generate one in a temp dir)")
    p.add_argument("--split", default="train", choices=D.SPLITS)
    p.add_argument("--epochs", type=int, default=5, help="timed epochs per path")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the seed's path")
    p.add_argument("--sample-crops", type=int, default=400,
                   help="about how many crops to generate when --crops is not given")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--random-jpegs", action="store_true",
                   help="generate random JPEGs with the sizes of VOC crops (40-500 px a side) "
                        "instead of the zfkit.voc sample, whose pictures are smaller")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads of this process (default: torch's choice). On a "
                        "crowded machine 1 can be faster: busy-waiting threads lose their core")
    p.add_argument("--json", type=Path, default=None,
                   help="also write the figures and their provenance (date, machine, command) "
                        "to this JSON file, e.g. bench/results/data-bench.json")
    a = p.parse_args(argv)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda needs a CUDA GPU; use --device cpu")
    return BenchConfig(a.crops, a.split, a.epochs, a.batch_size, a.workers, a.sample_crops,
                       a.device, a.seed, a.threads, a.random_jpegs, a.json)


if __name__ == "__main__":
    config = parse_args(sys.argv[1:])
    load = [round(x, 2) for x in os.getloadavg()]
    results = run(config)
    if config.json_out is not None:
        write_json(config.json_out, config, results, load)
