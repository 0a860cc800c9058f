"""Benchmark: one Adam step over all of a network's weights, fused kernel vs PyTorch's default.

Usage::

    python bench/bench_optim.py                 # alexnet and zfnet, 5 rounds, prints a table
    python bench/bench_optim.py --json bench/results/optim.json   # also keep the figures

The two optimisers update the same weights with the same (random) gradients; rounds alternate
(fused, default, fused, ...) so a busy machine slows both alike, and the table shows medians and
the ratio. Chapter 5 quotes the ratio from the JSON this writes (with the date, machine and torch
version), never a typed number. This is a script that prints figures, not a timed test.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from zfkit.models import build_model


def step_seconds(optimizer: torch.optim.Optimizer) -> float:
    start = time.perf_counter()
    optimizer.step()
    return time.perf_counter() - start


def bench(name: str, rounds: int) -> dict:
    """Median seconds of one step for the fused and the default Adam on ``name``'s weights."""
    pair = {}
    for fused in (True, False):
        torch.manual_seed(0)
        model = build_model(name)
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        pair[fused] = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
        pair[fused].step()                                   # warm-up, creates the state
    times = {True: [], False: []}
    for _ in range(rounds):
        for fused in (True, False):
            times[fused].append(step_seconds(pair[fused]))
    n = sum(p.numel() for p in build_model(name).parameters())
    fused, default = (statistics.median(times[k]) for k in (True, False))
    return {"model": name, "weights": n, "fused_s": fused, "default_s": default,
            "ratio": default / fused}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["alexnet", "zfnet"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    rows = [bench(name, args.rounds) for name in args.models]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.rounds} rounds (median)")
    print(f"{'model':8} {'weights':>11} {'fused s':>8} {'default s':>9} {'ratio':>6}")
    for r in rows:
        print(f"{r['model']:8} {r['weights']:>11,} {r['fused_s']:>8.3f} {r['default_s']:>9.3f} "
              f"{r['ratio']:>5.1f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "rows": rows, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": "python bench/bench_optim.py --json bench/results/optim.json"},
            indent=1) + "\n")


if __name__ == "__main__":
    main()
