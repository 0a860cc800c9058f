"""The training loop: one epoch (:func:`run_epoch`), evaluation, and :func:`fit`, which trains a
recipe on a crops folder, resumes a killed run exactly and returns its history.

The seed trains each net with Adam (lr 1e-3), StepLR (step 15, gamma 0.1), cross-entropy and
batch 128 for 50 epochs, and keeps the weights of the epoch with the best validation accuracy.
:func:`fit` runs that recipe (:class:`~zfkit.recipe.TrainConfig`) on a crops folder (see
:mod:`zfkit.crops`) with the cached data of :mod:`zfkit.data` and returns a
:class:`~zfkit.history.History`. After every epoch it writes ``last.pt`` (everything needed to
resume) and, when validation accuracy improved, ``best.pt`` (:mod:`zfkit.checkpoint`); a run
killed at any moment resumes where it stopped. The recipe, the history and the checkpoint names
are re-exported here, where the chapters import them.

Where this departs from the seed:
    * validation images are not flipped (the seed's val loader used the random-flip transform);
    * when the crops folder has a test split, the best-val checkpoint is also scored on it: the
      val number chose the checkpoint, so it is optimistic, the test number is not;
    * on a GPU: mixed precision, ``channels_last``, data kept on the device, and metrics summed on
      the device with one host synchronisation per phase (the seed calls ``.item()`` every batch);
    * on the CPU: freed memory kept for reuse (:mod:`zfkit.cpumem`), so the large tensors of every
      step are not mapped and zeroed by the kernel again.

Reference: Krizhevsky et al. (2012), Sec. 5 (learning) and Zeiler and Fergus (2014), Sec. 3
(training details) train with SGD; the seed, and so the default recipe, uses Adam. Comparing runs
and recording results for the book are in :mod:`zfkit.results`.
"""
from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from . import data as zdata
from .atomic import check_writable
from .checkpoint import TrainState, load_model, open_run, save_checkpoint, slim_finished
from .cpumem import reuse_freed_memory
from .checkpoint import _rng_state, _set_rng_state  # noqa: F401  (the tests reach them here)
from .history import History, load_history
from .recipe import TrainConfig
from .seed import SEED_REPORTED  # re-exported: chapters import it from here too

__all__ = [
    "TrainConfig", "History", "TrainState", "fit", "evaluate", "run_epoch", "resolve_device",
    "amp_dtype", "has_bf16_tensor_cores", "load_model", "load_history", "print_epoch",
    "SEED_REPORTED",
]


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"``: the CUDA GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but no CUDA GPU is visible: on Colab "
                           "choose Runtime > Change runtime type > T4 GPU, or use device 'cpu'")
    return torch.device(name)


def has_bf16_tensor_cores(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware: NVIDIA compute capability 8.0 (Ampere) or
    newer. ``torch.cuda.is_bf16_supported()`` is not the test: by default it also counts
    emulation and says yes on a T4 (7.5), where bf16 runs far slower than fp16."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)


def amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``config.amp`` on ``device`` (``None``: full fp32).

    ``"auto"``: bf16 on compute capability 8.0 or newer (A100, H100, L4...), fp16 with the
    gradient scaler on older GPUs (Colab's T4), fp32 on the CPU.
    """
    if config.amp == "off" or (config.amp == "auto" and device.type != "cuda"):
        return None
    if config.amp == "fp16" and device.type != "cuda":
        raise ValueError("amp 'fp16' needs a CUDA GPU; use amp 'bf16' or 'off' on the CPU")
    if config.amp == "auto":
        return torch.bfloat16 if has_bf16_tensor_cores(device) else torch.float16
    return {"fp16": torch.float16, "bf16": torch.bfloat16}[config.amp]


def _describe_device(device: torch.device, amp: torch.dtype | None) -> str:
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"{torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''}")
    precision = "fp32" if amp is None else f"{str(amp).replace('torch.', '')} autocast"
    return f"{device.type} ({name}, {precision})"


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


# ----------------------------------------------------------------------------------------------
# One epoch


def run_epoch(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
              criterion: nn.Module, *, optimizer: torch.optim.Optimizer | None = None,
              scaler: torch.amp.GradScaler | None = None, amp: torch.dtype | None = None,
              warmup: torch.optim.lr_scheduler.LinearLR | None = None,
              on_batch: Callable[[int], None] | None = None) -> dict[str, torch.Tensor | int]:
    """One pass over ``batches``: training when ``optimizer`` is given, else evaluation.

    Nothing here waits for the device: the loss sum, the correct count and a "some loss was not
    finite" flag stay on the device until the caller reads them once.

    Args:
        model: the network (already in train or eval mode).
        batches: ``(x float (B, 3, H, W), y int64 (B,))`` on the model's device.
        criterion: the loss (mean over a batch).
        optimizer: update the weights after every batch when given.
        scaler: the fp16 gradient scaler (``None`` or disabled: plain backward and step).
        amp: the autocast dtype, or ``None`` for fp32.
        warmup: a scheduler stepped after every optimizer step until its ``total_iters`` are done
            (the recipe's warm-up; :func:`zfkit.recipe.make_warmup`).
        on_batch: called with the batch index after each batch.
    Returns:
        ``loss_sum`` (float64, 0-d), ``correct`` (int64, 0-d), ``bad`` (bool, 0-d) on the device
        and ``count`` (int): the images seen.
    """
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    bad = torch.zeros((), dtype=torch.bool, device=device)
    count = 0
    for step, (x, y) in enumerate(batches):
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            logits = model(x)              # (B, classes)
            loss = criterion(logits, y)    # mean over the batch, fp32 even under autocast
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None and scaler.is_enabled():
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            if warmup is not None and warmup.last_epoch < warmup.total_iters:
                warmup.step()
        loss_sum += loss.detach().double() * y.shape[0]
        correct += (logits.argmax(1) == y).sum()
        bad |= ~torch.isfinite(loss.detach())
        count += y.shape[0]
        if on_batch is not None:
            on_batch(step)
    return {"loss_sum": loss_sum, "correct": correct, "bad": bad, "count": count}


def _read(totals: Mapping[str, Any]) -> tuple[float, float, bool]:
    """Mean loss, accuracy and the not-finite flag: the one host synchronisation of a phase."""
    loss_sum, correct, bad = torch.stack([totals["loss_sum"], totals["correct"].double(),
                                          totals["bad"].double()]).tolist()
    n = max(totals["count"], 1)
    return loss_sum / n, correct / n, bool(bad)


@torch.no_grad()
def evaluate(model: nn.Module, split: zdata.CachedSplit, *, batch_size: int = 128,
             amp: torch.dtype | None = None, channels_last: bool = False) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on a split (no flips, in order).

    Returns:
        ``(loss, accuracy)``.
    """
    model.eval()
    device = next(model.parameters()).device
    loader = zdata.batches(split, batch_size, shuffle=False, flip=False, device=device,
                           channels_last=channels_last)
    loss, acc, _ = _read(run_epoch(model, loader, nn.CrossEntropyLoss(), amp=amp))
    return loss, acc


# ----------------------------------------------------------------------------------------------
# The loop


def _train_epoch(parts: TrainState, config: TrainConfig, train: zdata.CachedSplit,
                 val: zdata.CachedSplit, epoch: int, amp: torch.dtype | None, progress: bool,
                 on_batch: Callable[[int], None] | None) -> tuple[dict[str, float], bool]:
    """One epoch of training and validation. Returns the epoch's record and "the loss was not
    finite"."""
    from tqdm.auto import tqdm

    lr = parts.optimizer.param_groups[0]["lr"]
    start = time.perf_counter()
    parts.model.train()
    loader = zdata.batches(train, config.batch_size, shuffle=True, flip=config.flip,
                           generator=parts.generator, channels_last=config.channels_last)
    bar = tqdm(loader, total=math.ceil(len(train) / config.batch_size), leave=False,
               disable=not progress, desc=f"{config.model} epoch {epoch}/{config.epochs}")
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    totals = run_epoch(parts.model, bar, criterion, optimizer=parts.optimizer,
                       scaler=parts.scaler, amp=amp, warmup=parts.warmup, on_batch=on_batch)
    train_loss, train_acc, bad = _read(totals)  # the one host sync of the training phase
    train_time = time.perf_counter() - start
    parts.scheduler.step()
    val_loss, val_acc = evaluate(parts.model, val, batch_size=config.batch_size, amp=amp,
                                 channels_last=config.channels_last)
    return {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
            "val_loss": val_loss, "val_acc": val_acc, "lr": lr,
            "epoch_time": time.perf_counter() - start,
            "images_per_s": len(train) / train_time}, bad


def fit(config: TrainConfig, data: str | Path, out_dir: str | Path, *, resume: bool = True,
        callbacks: Sequence[Callable[[History], None]] = (), progress: bool = True,
        cache_dir: str | Path | None = None, slim: bool = True) -> History:
    """Train ``config.model`` on a crops folder, resuming ``out_dir`` when it holds a run.

    After every epoch ``last.pt`` holds everything needed to resume (model, optimizer, scheduler,
    gradient scaler, every random state, config and history) and ``best.pt`` the weights of the
    best validation epoch so far, each with its SHA-256 (a corrupt checkpoint is refused). When
    the run finishes, the test accuracy is measured on the full-precision best weights; then
    (``slim``) ``best.pt`` keeps them in float16 and ``last.pt`` only the history and config, so
    a finished run takes half the disk of its weights and can no longer be extended.

    Args:
        config: the recipe.
        data: a crops folder (``train/``, ``val/``, optionally ``test/``, ``manifest.json``).
        out_dir: the run folder: ``last.pt``, ``best.pt`` and ``history.json`` go there.
        resume: continue the run in ``out_dir`` (a finished run is returned without training).
            When ``False``, a folder that already holds a run is an error (nothing is overwritten).
        callbacks: each called as ``callback(history)`` after every epoch (e.g. to draw live
            curves). A callback with an ``on_batch(epoch, step)`` method is also called after every
            training batch.
        progress: show progress bars and print one line per epoch.
        cache_dir: where :func:`zfkit.data.load_split` keeps its decoded crops (``None``: nowhere).
        slim: shrink the finished run as above; ``False`` keeps ``best.pt`` in float32 and the
            last epoch's weights in ``last.pt`` (e.g. to analyse the exact weights first).
    Returns:
        The :class:`History`; its ``test_acc`` is the best-val checkpoint's test accuracy.
    Raises:
        RuntimeError: for a checkpoint of another model, setting or data set, a corrupt
            checkpoint, an ``out_dir`` that cannot be written, or a loss that became NaN or
            infinite (``last.pt`` then still holds the last good epoch).
        FileNotFoundError: the crops folder lacks ``train/`` or ``val/``.
    """
    from tqdm.auto import tqdm

    crops, out_dir = Path(data), Path(out_dir)
    manifest = zdata.read_manifest(crops)
    missing = [s for s in ("train", "val") if not (crops / s).is_dir()]
    if missing:
        raise FileNotFoundError(f"crops folder {crops} has no {' or '.join(missing)} split "
                                f"(a run needs train/ and val/): rebuild it with `python -m zfkit "
                                f"voc-crops --voc-root .../VOCdevkit/VOC2007 --out {crops}`")
    ckpt = open_run(config, manifest, out_dir, resume)
    if ckpt is not None:
        history = History.from_dict({**ckpt["history"],
                                     "config": {**ckpt["config"], "epochs": config.epochs}})
        if history.completed:
            return history
        if "optimizer" not in ckpt:
            raise RuntimeError(f"{out_dir} is a finished run of {history.epochs_done} epochs whose "
                               "optimizer state was dropped to save space, so it cannot be "
                               f"extended to {config.epochs}: train in another run folder")

    check_writable(out_dir, what="the run folder")   # before the first epoch, not after it
    device = resolve_device(config.device)
    amp = amp_dtype(config, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not config.deterministic
        torch.backends.cudnn.deterministic = config.deterministic
    else:
        reuse_freed_memory()      # no page faults on every step's large tensors (zfkit.cpumem)
    _seed_everything(config.seed)
    splits = {name: zdata.load_split(crops, name, size=config.image_size, cache_dir=cache_dir,
                                     progress=progress).to(device)
              for name in ("train", "val", "test") if (crops / name).is_dir()}
    train, val, test = splits["train"], splits["val"], splits.get("test")
    # The model is the first thing drawn after seeding (checkpoint.initial_model relies on it).
    parts = TrainState.build(config, len(train.classes), device, amp)
    if ckpt is None:
        history = History(config.to_dict(), list(train.classes), train.source, train.manifest_hash,
                          has_test=test is not None)
    else:
        parts.restore(ckpt)
    here = _describe_device(device, amp)
    if here not in history.device:
        history.device = f"{history.device}, then {here}" if history.device else here
    batch_hooks = [cb.on_batch for cb in callbacks if hasattr(cb, "on_batch")]

    for epoch in range(history.epochs_done + 1, config.epochs + 1):
        on_batch = ((lambda step, e=epoch: [hook(e, step) for hook in batch_hooks])
                    if batch_hooks else None)
        record, bad = _train_epoch(parts, config, train, val, epoch, amp, progress, on_batch)
        if bad:
            kept = (f"{out_dir / 'last.pt'} still holds epoch {epoch - 1}" if epoch > 1
                    else "no epoch was kept")
            raise RuntimeError(f"{config.model}: the training loss became NaN or infinite in "
                               f"epoch {epoch}; stopped ({kept}). Lower the learning rate or use "
                               "amp 'off', then train again.")
        history.records.append(record)
        history.test_acc = history.test_loss = None  # belongs to the finished run only
        if history.best_epoch == 0 or record["val_acc"] > history.best_val_acc:
            history.best_epoch, history.best_val_acc = epoch, record["val_acc"]
            save_checkpoint(parts.best_state(history), out_dir / "best.pt")
        # last.pt after best.pt: a run killed between the two redoes this epoch identically
        save_checkpoint(parts.state(history), out_dir / "last.pt")
        history.save(out_dir / "history.json")
        if progress:
            tqdm.write(history.epoch_line(record))
        for callback in callbacks:
            callback(history)

    if test is not None:  # score the best-val checkpoint (the seed's choice) on unseen data
        best = load_model(out_dir, "best", device=device)
        if config.channels_last:
            best = best.to(memory_format=torch.channels_last)
        history.test_loss, history.test_acc = evaluate(best, test, batch_size=config.batch_size,
                                                       amp=amp, channels_last=config.channels_last)
    if slim:
        slim_finished(parts.finished_state(history), out_dir)
    else:
        save_checkpoint(parts.finished_state(history), out_dir / "last.pt")
    history.save(out_dir / "history.json")
    return history


def print_epoch(history: History) -> None:
    """A callback for :func:`fit` that prints the line of the epoch just finished (no bars)."""
    print(history.epoch_line(history.records[-1]), flush=True)
