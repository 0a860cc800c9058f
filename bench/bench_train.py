"""Benchmark: CPU training throughput of both nets, zfkit's loop vs a seed-style loop, side by side.

Usage::

    python bench/bench_train.py                   # crops of a generated sample, in a temp dir
    python bench/bench_train.py --crops DIR       # an existing crops folder
    python bench/bench_train.py --batch-size 64 --rounds 3 --models alexnet zfnet
    python bench/bench_train.py --json bench/results/train-bench.json   # the recorded figures

Each round runs in two fresh processes, one per memory setting, side by side (their order
alternates from round to round):

* **glibc**: glibc's defaults, which hand every freed block above 32 MiB back to the kernel, so
  the next step's large tensors arrive as fresh pages that fault on first touch;
* **reuse**: :func:`zfkit.cpumem.reuse_freed_memory`, what :func:`zfkit.train.fit` does on the
  CPU: freed memory stays in the process and is reused.

The table gives each setting's figures and their ratio. ``--memory glibc`` or ``--memory reuse``
runs one setting in this process.

The two loops train the same architecture on the same train split, one full epoch per round:

* **zfkit**: :class:`zfkit.train.TrainState` and :func:`zfkit.train.run_epoch`, the pieces
  :func:`zfkit.train.fit` uses: crops decoded once into a uint8 tensor (:func:`zfkit.data.batches`
  flips and normalizes per batch), channels-last, the fused Adam kernel, metrics summed without
  reading them back per batch.
* **seed**: what the seed's script does: ``ImageFolder`` + ``DataLoader`` decoding and resizing
  every JPEG every epoch (:func:`zfkit.data.imagefolder_loader`), the default Adam, ``.item()``
  per batch.

Rounds alternate (zfkit, seed, zfkit, ...), so a busy shared machine slows both alike; the table
reports the median. It also measures this machine's fp32 matrix-multiply rate in the same run
(before, between and after the models; the best is used) and reports the FLOP rate each loop
achieves as a fraction of it. Beside it, the rate of one large 3x3 convolution (oneDNN): on some
CPUs (the AMD EPYC this was written on among them) PyTorch's matrix product is slower than its
convolutions, and a loop can then exceed "100 % of GEMM".

The work of one trained image, from the mult-adds of :func:`zfkit.layer_table`: the forward pass,
the weight gradients (as many mult-adds again) and the input gradients (again, except for the first
layer, whose input needs none), 2 FLOPs per mult-add; data loading and the optimizer step count as
overhead. The first epoch of each loop is a warm-up, not timed.

This is a script that prints figures, not a timed test.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from zfkit import data as D
from zfkit import layer_table
from zfkit.cpumem import reuse_freed_memory
from zfkit.models import build_model
from zfkit.train import TrainConfig, TrainState, run_epoch


@dataclass
class BenchConfig:
    """Settings of one benchmark run (see ``--help``)."""
    crops: Path | None
    models: tuple[str, ...]
    batch_size: int
    rounds: int
    workers: int
    sample_images: int
    threads: int | None


def gemm_flops(n: int = 2048, repeats: int = 5) -> float:
    """The best fp32 rate of an ``n x n`` matrix product on this machine, in FLOP/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def conv_flops(repeats: int = 5) -> float:
    """The best fp32 rate of one AlexNet-conv3-sized convolution (oneDNN), in FLOP/s."""
    x = torch.randn(64, 256, 27, 27)  # (B, C, H, W)
    conv = nn.Conv2d(256, 384, 3, padding=1)
    best = float("inf")
    with torch.no_grad():
        out = conv(x)  # warm-up; (B, 384, 27, 27)
        for _ in range(repeats):
            start = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - start)
    mult_adds = out.numel() * conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    return 2 * mult_adds / best


def train_flops_per_image(model: str, size: int = 227) -> float:
    """FLOPs to train on one image: forward + weight gradients + input gradients (none for the
    first layer), each as many mult-adds as the forward pass, 2 FLOPs per mult-add."""
    table = layer_table(model, size)
    first = next(row for row in table.rows if row.mult_adds)
    return 2 * (3 * table.total_mult_adds - first.mult_adds)


def zfkit_epoch(state: TrainState, train: D.CachedSplit, batch_size: int) -> float:
    """One training epoch with zfkit's loop; returns its seconds."""
    state.model.train()
    start = time.perf_counter()
    loader = D.batches(train, batch_size, shuffle=True, flip=True, generator=state.generator,
                       channels_last=True)
    totals = run_epoch(state.model, loader, nn.CrossEntropyLoss(), optimizer=state.optimizer,
                       scaler=state.scaler)
    totals["loss_sum"].item()  # wait for the device (a no-op on the CPU)
    return time.perf_counter() - start


def seed_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, loader, device: torch.device
               ) -> float:
    """One training epoch the way the seed's script runs it; returns its seconds."""
    criterion = nn.CrossEntropyLoss()
    model.train()
    start = time.perf_counter()
    running_loss, running_corrects = 0.0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        out = model(x)                          # (B, classes)
        _, preds = torch.max(out, 1)
        loss = criterion(out, y)
        loss.backward()
        optimizer.step()
        running_loss += loss.item() * x.size(0)  # a host sync every batch
        running_corrects += torch.sum(preds == y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def sample_crops(folder: Path, images: int) -> Path:
    """Crops of a generated VOC-format sample (labelled as such in their manifest)."""
    from zfkit import voc

    voc_root = voc.make_sample(folder / "voc", images=images, seed=0)
    voc.build_crops(voc_root, folder / "crops", progress=False)
    return folder / "crops"


def bench_model(name: str, crops: Path, cfg: BenchConfig) -> list[dict]:
    """Time both loops on one model; returns one row per loop."""
    device = torch.device("cpu")
    train = D.load_split(crops, "train", progress=False)
    n_classes = len(train.classes)
    state = TrainState.build(TrainConfig(model=name, batch_size=cfg.batch_size, device="cpu"),
                             n_classes, device, None)
    torch.manual_seed(0)
    seed_model = build_model(name, num_classes=n_classes)
    seed_optimizer = torch.optim.Adam(seed_model.parameters(), lr=1e-3)
    loader = D.imagefolder_loader(crops, "train", batch_size=cfg.batch_size,
                                  num_workers=cfg.workers)
    zfkit_epoch(state, train, cfg.batch_size)  # warm-up epochs
    seed_epoch(seed_model, seed_optimizer, loader, device)
    times: dict[str, list[float]] = {"zfkit": [], "seed": []}
    for _ in range(cfg.rounds):
        times["zfkit"].append(zfkit_epoch(state, train, cfg.batch_size))
        times["seed"].append(seed_epoch(seed_model, seed_optimizer, loader, device))
    per_image = train_flops_per_image(name)
    rows = []
    for loop, seconds in times.items():
        median = statistics.median(seconds)
        rows.append({"model": name, "loop": loop, "images": len(train), "s/epoch": median,
                     "img/s": len(train) / median, "flop/s": len(train) / median * per_image,
                     "spread": (min(seconds), max(seconds))})
    return rows


def measure(crops: Path, cfg: BenchConfig) -> dict:
    """Every model's rows, this machine's GEMM and convolution rates (one process, one setting)."""
    rates, convs, rows = [gemm_flops()], [conv_flops()], []
    for name in cfg.models:
        rows += bench_model(name, crops, cfg)
        rates.append(gemm_flops())
        convs.append(conv_flops())
    return {"rows": rows, "gemm": max(rates), "conv": max(convs), "threads": torch.get_num_threads()}


def _child(crops: Path, mode: str, cfg: BenchConfig, argv: list[str]) -> dict:
    """One round in a fresh process with memory setting ``mode``; its figures."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    try:
        cmd = [sys.executable, __file__, *argv, "--crops", str(crops), "--memory", mode,
               "--rounds", "1", "--child-json", str(out)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def _strip(argv: list[str], *options: str) -> list[str]:
    """``argv`` without the given options and their values (the parent passes its own)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in options)):
            kept.append(arg)
    return kept


def print_table(figures: dict[str, dict], cfg: BenchConfig) -> None:
    """One row per model, loop and memory setting: medians, and the settings' ratio. The fractions
    use the best GEMM and convolution rates of any setting (the machine's, not the allocator's)."""
    gemm = max(fig["gemm"] for fig in figures.values())
    conv = max(fig["conv"] for fig in figures.values())
    header = (f"{'model':8} {'loop':6} {'memory':6} {'s/epoch':>18} {'img/s':>7} "
              f"{'GFLOP/s':>8} {'of GEMM':>8} {'of conv':>8}")
    print(header)
    print("-" * len(header))
    for mode, fig in figures.items():
        for row in fig["rows"]:
            lo, hi = row["spread"]
            print(f"{row['model']:8} {row['loop']:6} {mode:6} "
                  f"{row['s/epoch']:>6.2f} [{lo:.2f}-{hi:.2f}] {row['img/s']:>7.1f} "
                  f"{row['flop/s'] / 1e9:>8.1f} {row['flop/s'] / gemm:>8.1%} "
                  f"{row['flop/s'] / conv:>8.1%}")
    for mode, fig in figures.items():
        for name in cfg.models:
            z, s = (next(r for r in fig["rows"] if r["model"] == name and r["loop"] == loop)
                    for loop in ("zfkit", "seed"))
            print(f"{name} ({mode}): zfkit's loop is {s['s/epoch'] / z['s/epoch']:.2f}x the "
                  "seed-style loop's speed")
    if set(figures) == {"glibc", "reuse"}:
        for name in cfg.models:
            for loop in ("zfkit", "seed"):
                a, b = (next(r for r in figures[m]["rows"] if r["model"] == name
                             and r["loop"] == loop) for m in ("glibc", "reuse"))
                print(f"{name}, {loop} loop: freed memory reused is "
                      f"{a['s/epoch'] / b['s/epoch']:.2f}x as fast as glibc's defaults")


def _median_rows(rounds: list[dict]) -> dict:
    """The per-round figures of one setting folded into medians (and the rounds' range)."""
    rows = []
    for first in rounds[0]["rows"]:
        same = [r for fig in rounds for r in fig["rows"]
                if (r["model"], r["loop"]) == (first["model"], first["loop"])]
        seconds = [r["s/epoch"] for r in same]
        median = statistics.median(seconds)
        rows.append({**first, "s/epoch": median, "img/s": first["images"] / median,
                     "flop/s": first["flop/s"] * first["s/epoch"] / median,
                     "spread": (min(seconds), max(seconds)), "rounds": seconds})
    return {"rows": rows, "gemm": max(f["gemm"] for f in rounds),
            "conv": max(f["conv"] for f in rounds), "threads": rounds[0]["threads"]}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crops", type=Path, help="a crops folder (default: a generated sample)")
    parser.add_argument("--models", nargs="+", default=["alexnet", "zfnet"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs per loop")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (seed loop)")
    parser.add_argument("--sample-images", type=int, default=120,
                        help="images in the generated sample when --crops is not given")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--memory", choices=("both", "glibc", "reuse"), default="both",
                        help="memory setting: both side by side (default), or one in this process")
    parser.add_argument("--json", type=Path, help="also write the figures, with provenance")
    parser.add_argument("--child-json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cfg = BenchConfig(args.crops, tuple(args.models), args.batch_size, args.rounds, args.workers,
                      args.sample_images, args.threads)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if args.memory == "reuse" and not reuse_freed_memory():
        raise SystemExit("--memory reuse needs Linux with glibc (and no ZFKIT_GLIBC_MALLOC=1)")

    with tempfile.TemporaryDirectory(prefix="zfkit-bench-train-") as tmp:
        crops = cfg.crops or sample_crops(Path(tmp), cfg.sample_images)
        source = D.read_manifest(crops)["source"]
        if args.memory != "both":
            figures = {args.memory: measure(crops, cfg)}
            if args.child_json:
                args.child_json.write_text(json.dumps(figures[args.memory]))
                return
        else:
            forward = _strip(argv, "--crops", "--rounds", "--json", "--memory")
            per_mode: dict[str, list[dict]] = {"glibc": [], "reuse": []}
            load_before = list(os.getloadavg())
            for r in range(cfg.rounds):
                for mode in (("glibc", "reuse") if r % 2 == 0 else ("reuse", "glibc")):
                    per_mode[mode].append(_child(crops, mode, cfg, forward))
                    print(f"round {r + 1}/{cfg.rounds}, {mode}: done", flush=True)
            figures = {mode: _median_rows(rounds) for mode, rounds in per_mode.items()}
        threads = next(iter(figures.values()))["threads"]
        print(f"torch {torch.__version__}, {threads} threads; crops: {crops} ({source}); batch "
              f"{cfg.batch_size}; {cfg.rounds} timed epochs per loop and setting (median shown, "
              "min-max in brackets)")
    for mode, fig in figures.items():
        print(f"{mode}: fp32 GEMM rate (2048x2048 matmul, best of 5, before, between and after "
              f"the models) {fig['gemm'] / 1e9:.1f} GFLOP/s; one 3x3 convolution (256->384 "
              f"channels, 27x27, batch 64) {fig['conv'] / 1e9:.1f} GFLOP/s")
    print("the fractions below use the highest of each, over the settings")
    print()
    print_table(figures, cfg)
    if args.json:
        record = {"benchmark": "bench/bench_train.py", "format": 1,
                  "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "command": " ".join(["python", "bench/bench_train.py", *argv]),
                  "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                              "torch": torch.__version__, "torch_threads": threads,
                              "load_average_before": load_before if args.memory == "both"
                              else list(os.getloadavg())},
                  "batch_size": cfg.batch_size, "crops_source": source, "figures": figures}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = args.json.with_name(args.json.name + ".tmp")
        tmp_path.write_text(json.dumps(record, indent=1) + "\n")
        tmp_path.replace(args.json)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
