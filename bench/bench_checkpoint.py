"""Benchmark: the per-epoch checkpoint write of the real AlexNet and ZFNet, on a slow disk.

Usage::

    python bench/bench_checkpoint.py                      # local disk, then Drive-like 20 and 50 MB/s
    python bench/bench_checkpoint.py --rates 20 --dir /content/drive/MyDrive/tmp   # a real Drive

Every epoch ``fit`` writes ``last.pt`` (weights, Adam's two moments, random states: everything a
resume needs) and, when validation accuracy improved, ``best.pt`` (the weights), each through
:func:`zfkit.integrity.write_verified` (temporary file, fsync, SHA-256 beside it, rename), exactly
as :func:`zfkit.checkpoint.save_checkpoint` does. A slow disk such as a mounted Google Drive is
emulated by a file wrapper that sleeps ``size / rate`` after every block it passes on (the fsync
and the rename are the real local ones). Printed per network: the file sizes, the local time and
its cost per MB, the time at each emulated rate, and what a finished run keeps (``best.pt`` in
float16, ``last.pt`` without weights).

This is a script that prints figures, not a timed test.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import torch

from zfkit.checkpoint import TrainState, _half
from zfkit.history import History
from zfkit.integrity import sha256_file, write_verified
from zfkit.recipe import TrainConfig

MB = 1e6


class Throttled:
    """A write-only file that passes every block on, then sleeps as a ``rate`` MB/s disk would."""

    def __init__(self, f: IO[bytes], rate_mb_s: float):
        self._f, self._rate = f, rate_mb_s * MB

    def write(self, data: Any) -> int:
        n = self._f.write(data)
        time.sleep(memoryview(data).nbytes / self._rate)
        return n

    def flush(self) -> None:
        self._f.flush()


def _states(model: str) -> dict[str, dict]:
    """What ``fit`` writes for ``model``: ``last.pt`` and ``best.pt`` during training, and the
    finished ``best.pt`` (float16) and ``last.pt`` (no weights)."""
    config = TrainConfig(model=model, device="cpu")
    parts = TrainState.build(config, 20, torch.device("cpu"), None)
    for p in parts.model.parameters():               # one step, so Adam's moments exist
        p.grad = torch.zeros_like(p)
    parts.optimizer.step()
    history = History(config.to_dict(), [f"c{i}" for i in range(20)], "bench", "0",
                      has_test=False)
    history.records.append({"epoch": 1, "train_loss": 1.0, "train_acc": 0.1, "val_loss": 1.0,
                            "val_acc": 0.1, "lr": 1e-3, "epoch_time": 1.0, "images_per_s": 1.0})
    history.best_epoch, history.best_val_acc = 1, 0.1
    best = parts.best_state(history)
    finished = {k: v for k, v in parts.finished_state(history).items() if k != "model"}
    return {"last.pt": parts.state(history), "best.pt": best,
            "best.pt (finished, fp16)": {**best, "model": _half(best["model"]),
                                         "weights_dtype": "float16"},
            "last.pt (finished)": finished}


def _write(state: dict, path: Path, rate: float | None) -> tuple[float, int]:
    start = time.perf_counter()
    write_verified(path, lambda f: torch.save(state, f if rate is None else Throttled(f, rate)))
    return time.perf_counter() - start, path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["alexnet", "zfnet"])
    parser.add_argument("--rates", nargs="+", type=float, default=[20.0, 50.0],
                        help="emulated write rates in MB/s (Drive: about 20-50)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    folder = Path(tempfile.mkdtemp(prefix="zfkit-bench-ckpt-", dir=args.dir))
    print(f"writing in {folder} (torch {torch.__version__}, {os.cpu_count()} CPUs)")
    try:
        for model in args.models:
            states = _states(model)
            print(f"\n{model}")
            print(f"  {'file':<26}{'MB':>8}{'local s':>9}{'s/MB local':>12}"
                  + "".join(f"{f'@{r:g} MB/s':>12}" for r in args.rates))
            times: dict[str, list[float]] = {}
            for name, state in states.items():
                path = folder / name.split()[0]
                local, size = _write(state, path, None)
                times[name] = [_write(state, path, r)[0] for r in args.rates] \
                    if "finished" not in name else []
                cells = "".join(f"{t:>11.1f}s" for t in times[name])
                per_mb = f"{local / (size / MB):>12.4f}" if size >= MB else f"{'-':>12}"
                print(f"  {name:<26}{size / MB:>8.1f}{local:>8.2f}s{per_mb}" + cells)
            print("  per epoch (last.pt every epoch, + best.pt when val improved): "
                  + ", ".join(f"{last:.0f} s (+{best:.0f} s) at {r:g} MB/s" for last, best, r
                              in zip(times["last.pt"], times["best.pt"], args.rates)))
            _write(states["last.pt"], folder / "last.pt", None)
            _write(states["best.pt"], folder / "best.pt", None)
            start = time.perf_counter()
            sha256_file(folder / "last.pt")
            hashing = time.perf_counter() - start
            size = (folder / "last.pt").stat().st_size
            print(f"  of the local write, the SHA-256 costs about {hashing:.1f} s for last.pt "
                  f"({size / MB / hashing:.0f} MB/s); fsync and rename the rest")
            kept = sum((folder / n).stat().st_size for n in ("best.pt", "last.pt"))
            _write(states["best.pt (finished, fp16)"], folder / "best.pt", None)
            _write(states["last.pt (finished)"], folder / "last.pt", None)
            slim = sum((folder / n).stat().st_size for n in ("best.pt", "last.pt"))
            print(f"  a finished run keeps {slim / MB:.0f} MB (was {kept / MB:.0f} MB while "
                  "training)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
