"""The training loop: the seed's recipe as a dataclass, checkpoints that resume exactly, a history.

The seed trains each net with Adam (lr 1e-3), StepLR (step 15, gamma 0.1), cross-entropy and
batch 128 for 50 epochs, and keeps the weights of the epoch with the best validation accuracy.
:class:`TrainConfig` is that recipe, every setting overridable; :func:`fit` runs it on a crops
folder (see :mod:`zfkit.voc`) with the cached data of :mod:`zfkit.data` and returns a
:class:`History`. After every epoch it writes ``last.pt`` (everything needed to resume) and, when
validation accuracy improved, ``best.pt``; a run killed at any moment resumes where it stopped.

Where this departs from the seed:
    * validation images are not flipped (the seed's val loader used the random-flip transform);
    * when the crops folder has a test split, the best-val checkpoint is also scored on it: the
      val number chose the checkpoint, so it is optimistic, the test number is not;
    * on a GPU: mixed precision, ``channels_last``, data kept on the device, and metrics summed on
      the device with one host synchronisation per phase (the seed calls ``.item()`` every batch).

Comparing runs and recording results for the book are in :mod:`zfkit.results`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from . import data as zdata
from .atomic import write_atomic, write_json_atomic
from .models import SPECS, ConvNet, build_model
from .seed import SEED_REPORTED  # re-exported: chapters import it from here too

__all__ = [
    "TrainConfig", "History", "TrainState", "fit", "evaluate", "run_epoch", "resolve_device",
    "amp_dtype", "load_model", "load_history", "print_epoch", "SEED_REPORTED",
]

CHECKPOINT_FORMAT = 1
FREE_ON_RESUME = ("epochs", "device")  # settings a resumed run may change; all others must match


@dataclass
class TrainConfig:
    """A training recipe; the defaults are the seed's.

    Args:
        model: a name registered in :data:`zfkit.models.SPECS`.
        epochs: passes over the training split (seed: 50).
        batch_size: images per batch (seed: 128).
        optimizer: ``"adam"`` (seed) or ``"sgd"`` (with ``momentum``).
        lr: initial learning rate (seed: 1e-3).
        momentum: SGD momentum (ignored by Adam).
        weight_decay: L2 penalty (seed: 0).
        lr_step, lr_gamma: StepLR multiplies the rate by ``lr_gamma`` every ``lr_step`` epochs
            (seed: 15 and 0.1).
        label_smoothing: of the training cross-entropy (seed: 0).
        flip: random horizontal flips of training images (seed: yes).
        image_size: side of the resized crops (seed: 227).
        seed: seeds weights, dropout, order and flips.
        device: ``"auto"`` (a CUDA GPU when there is one), ``"cpu"`` or ``"cuda"``.
        amp: mixed precision: ``"auto"`` (bf16 where the GPU supports it, else fp16 with a gradient
            scaler, as on a T4; off on the CPU), ``"off"``, ``"fp16"`` or ``"bf16"``.
        channels_last: keep activations in NHWC memory order (faster convolutions).
        deterministic: ask cuDNN for deterministic kernels (slower; CPU runs are deterministic).
    """
    model: str = "zfnet"
    epochs: int = 50
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_step: int = 15
    lr_gamma: float = 0.1
    label_smoothing: float = 0.0
    flip: bool = True
    image_size: int = 227
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = True
    deterministic: bool = False

    def __post_init__(self) -> None:
        if self.model not in SPECS:
            raise ValueError(f"unknown model {self.model!r}: choose one of {sorted(SPECS)}, or "
                             "register a variant with zfkit.models.derive_spec(..., register=True)")
        allowed = {"optimizer": ("adam", "sgd"), "device": ("auto", "cpu", "cuda"),
                   "amp": ("auto", "off", "fp16", "bf16")}
        for name, values in allowed.items():
            if getattr(self, name) not in values:
                raise ValueError(f"{name} must be one of {values}, got {getattr(self, name)!r}")
        for name in ("epochs", "batch_size", "lr_step", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig settings {unknown}; known: {sorted(known)}")
        return cls(**values)


@dataclass
class History:
    """What a run did, epoch by epoch; saved as ``history.json`` beside the checkpoints.

    Each record has ``epoch`` (1-based; the seed prints 0-based), ``train_loss``, ``train_acc``,
    ``val_loss``, ``val_acc``, ``lr`` (during the epoch), ``epoch_time`` (s, train + val) and
    ``images_per_s`` (training images per second).
    """
    config: dict[str, Any]
    classes: list[str]
    data_source: str
    manifest_hash: str
    has_test: bool = False
    device: str = ""
    records: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0  # 0: no epoch finished yet
    best_val_acc: float = 0.0
    test_acc: float | None = None
    test_loss: float | None = None

    @property
    def model(self) -> str:
        return self.config["model"]

    @property
    def seed(self) -> int:
        return self.config["seed"]

    @property
    def planned_epochs(self) -> int:
        return self.config["epochs"]

    @property
    def epochs_done(self) -> int:
        return len(self.records)

    @property
    def completed(self) -> bool:
        """All planned epochs done and, when there is a test split, the test accuracy known."""
        return (self.epochs_done >= self.planned_epochs
                and (not self.has_test or self.test_acc is not None))

    def column(self, key: str) -> list[float]:
        """One metric over the epochs, e.g. ``history.column("val_acc")``."""
        return [r[key] for r in self.records]

    @property
    def mean_epoch_time(self) -> float:
        """Seconds per epoch (train + val), averaged over the epochs done."""
        return float(np.mean(self.column("epoch_time")))

    @property
    def total_time(self) -> float:
        """Seconds of all the epochs done (train + val)."""
        return float(np.sum(self.column("epoch_time")))

    @property
    def mean_images_per_s(self) -> float:
        """Training images per second, averaged over the epochs done."""
        return float(np.mean(self.column("images_per_s")))

    def epoch_line(self, record: Mapping[str, float]) -> str:
        """The fixed-format line printed after each epoch."""
        return (f"{self.model} s{self.seed} epoch {record['epoch']:>3}/{self.planned_epochs}: "
                f"train loss {record['train_loss']:.4f} acc {record['train_acc']:.2%} | "
                f"val loss {record['val_loss']:.4f} acc {record['val_acc']:.2%} | "
                f"lr {record['lr']:.0e} | {record['epoch_time']:.1f} s, "
                f"{record['images_per_s']:.0f} img/s")

    def summary(self) -> str:
        """One fixed-format line: best val accuracy and its epoch, test accuracy, speed, data."""
        head = f"{self.model} (seed {self.seed}, {self.data_source})"
        if not self.records:
            return f"{head}: no epoch finished yet (0/{self.planned_epochs})"
        test = "n/a" if self.test_acc is None else f"{self.test_acc:.2%}"
        return (f"{head}: best val acc {self.best_val_acc:.2%} at epoch {self.best_epoch}/"
                f"{self.planned_epochs}, test acc {test}, {self.mean_epoch_time:.1f} s/epoch, "
                f"{self.mean_images_per_s:.0f} train img/s on {self.device}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "History":
        return cls(**{**values, "records": [dict(r) for r in values.get("records", [])]})

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "History":
        return cls.from_dict(json.loads(Path(path).read_text()))


# ----------------------------------------------------------------------------------------------
# Devices, files and random states


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"``: the CUDA GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but no CUDA GPU is visible: on Colab "
                           "choose Runtime > Change runtime type > T4 GPU, or use device 'cpu'")
    return torch.device(name)


def amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``config.amp`` on ``device`` (``None``: full fp32)."""
    if config.amp == "off" or (config.amp == "auto" and device.type != "cuda"):
        return None
    if config.amp == "fp16" and device.type != "cuda":
        raise ValueError("amp 'fp16' needs a CUDA GPU; use amp 'bf16' or 'off' on the CPU")
    if config.amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp16": torch.float16, "bf16": torch.bfloat16}[config.amp]


def _describe_device(device: torch.device, amp: torch.dtype | None) -> str:
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"{torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''}")
    precision = "fp32" if amp is None else f"{str(amp).replace('torch.', '')} autocast"
    return f"{device.type} ({name}, {precision})"


def _save_torch(obj: Any, path: Path) -> None:
    write_atomic(path, lambda f: torch.save(obj, f))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every random state, as tensors and plain values (so ``weights_only`` loading works)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                      float(gauss)],
            "python": list(random.getstate()),
            "batches": generator.get_state()}


def _set_rng_state(state: Mapping[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    cuda = state["cuda"]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    generator.set_state(state["batches"])


def _make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Adam or SGD; the fused kernel where this torch has one for the device (one kernel for all
    parameters: about 10x faster on the CPU, and no host sync with the fp16 gradient scaler)."""
    cls, kwargs = ((torch.optim.Adam, {}) if config.optimizer == "adam"
                   else (torch.optim.SGD, {"momentum": config.momentum}))
    try:
        return cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                   fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel in this torch for the device
        return cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, **kwargs)


# ----------------------------------------------------------------------------------------------
# One epoch


def run_epoch(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
              criterion: nn.Module, *, optimizer: torch.optim.Optimizer | None = None,
              scaler: torch.amp.GradScaler | None = None, amp: torch.dtype | None = None,
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


def _check_resumable(ckpt: Mapping[str, Any], config: TrainConfig, path: Path) -> None:
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise RuntimeError(f"{path} has checkpoint format {ckpt.get('format')}, this zfkit writes "
                           f"{CHECKPOINT_FORMAT}: use another run folder or delete this one")
    saved, now = ckpt["config"], config.to_dict()
    differ = [f"{k}: {saved.get(k)!r} in the checkpoint, {now[k]!r} now" for k in now
              if k not in FREE_ON_RESUME and saved.get(k) != now[k]]
    if differ:
        raise RuntimeError(f"{path} belongs to another run ({'; '.join(differ)}). Resume it with "
                           "the same settings, or use another run folder (--out) or delete it.")


def _load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RuntimeError(f"cannot read checkpoint {path} ({type(err).__name__}: {err}); "
                           "delete the run folder to start again") from err


@dataclass
class TrainState:
    """Everything that changes while a run trains: what ``last.pt`` saves and restores.

    :meth:`build` makes it from a config (the model right after seeding, channels-last when asked,
    the fused optimizer where there is one, StepLR, the fp16 gradient scaler, the batch generator);
    :func:`fit` then runs :func:`run_epoch` on it. ``bench/bench_train.py`` times the same pieces.
    """
    model: ConvNet
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.StepLR
    scaler: torch.amp.GradScaler
    generator: torch.Generator  # the order and flips of the batches (on the CPU, for any device)

    @classmethod
    def build(cls, config: TrainConfig, num_classes: int, device: torch.device,
              amp: torch.dtype | None) -> "TrainState":
        model = build_model(config.model, num_classes=num_classes).to(device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = _make_optimizer(config, model)
        return cls(model, optimizer,
                   torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step, config.lr_gamma),
                   torch.amp.GradScaler(device.type, enabled=amp == torch.float16),
                   torch.Generator().manual_seed(config.seed))

    def state(self, history: History) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "epoch": history.epochs_done,
                "best_val_acc": history.best_val_acc, "rng": _rng_state(self.generator),
                "config": history.config, "classes": history.classes,
                "history": history.to_dict()}

    def restore(self, ckpt: Mapping[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        kernels = [(g.get("fused"), g.get("foreach")) for g in self.optimizer.param_groups]
        self.optimizer.load_state_dict(ckpt["optimizer"])
        for group, (fused, foreach) in zip(self.optimizer.param_groups, kernels, strict=True):
            group["fused"], group["foreach"] = fused, foreach  # this device's kernels
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        _set_rng_state(ckpt["rng"], self.generator)


def _open_run(config: TrainConfig, manifest: Mapping[str, Any], out_dir: Path,
              resume: bool) -> dict[str, Any] | None:
    """The checkpoint to resume from (``None``: a fresh run), after checking it fits ``config``."""
    path = out_dir / "last.pt"
    if not path.is_file():
        return None
    if not resume:
        raise RuntimeError(f"{out_dir} already holds a run: resume it (--resume, resume=True), "
                           "or choose another run folder, or delete this one")
    ckpt = _load_checkpoint(path)
    _check_resumable(ckpt, config, path)
    history = ckpt["history"]
    if history["manifest_hash"] != str(manifest["hash"]):
        raise RuntimeError(f"{out_dir} was trained on other data (manifest hash "
                           f"{history['manifest_hash']}; this crops folder has {manifest['hash']})"
                           ": use the same crops folder, or another run folder")
    if len(history["records"]) > config.epochs:
        raise RuntimeError(f"{out_dir} already has {len(history['records'])} epochs, more than the "
                           f"{config.epochs} asked for: use another run folder")
    return ckpt


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
                       scaler=parts.scaler, amp=amp, on_batch=on_batch)
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
        cache_dir: str | Path | None = None) -> History:
    """Train ``config.model`` on a crops folder, resuming ``out_dir`` when it holds a run.

    After every epoch ``last.pt`` holds everything needed to resume (model, optimizer, scheduler,
    gradient scaler, every random state, config and history) and ``best.pt`` the weights of the
    best validation epoch so far. A finished run keeps its final weights in ``last.pt`` but drops
    the optimizer state (two thirds of the file), so it can no longer be extended.

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
    Returns:
        The :class:`History`; its ``test_acc`` is the best-val checkpoint's test accuracy.
    Raises:
        RuntimeError: for a checkpoint of another model, setting or data set, or a loss that
            became NaN or infinite (``last.pt`` then still holds the last good epoch).
    """
    from tqdm.auto import tqdm

    crops, out_dir = Path(data), Path(out_dir)
    ckpt = _open_run(config, zdata.read_manifest(crops), out_dir, resume)
    if ckpt is not None:
        history = History.from_dict({**ckpt["history"],
                                     "config": {**ckpt["config"], "epochs": config.epochs}})
        if history.completed:
            return history
        if "optimizer" not in ckpt:
            raise RuntimeError(f"{out_dir} is a finished run of {history.epochs_done} epochs whose "
                               "optimizer state was dropped to save space, so it cannot be "
                               f"extended to {config.epochs}: train in another run folder")

    device = resolve_device(config.device)
    amp = amp_dtype(config, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not config.deterministic
        torch.backends.cudnn.deterministic = config.deterministic
    _seed_everything(config.seed)
    splits = {name: zdata.load_split(crops, name, size=config.image_size, cache_dir=cache_dir,
                                     progress=progress).to(device)
              for name in ("train", "val", "test") if (crops / name).is_dir()}
    train, val, test = splits["train"], splits["val"], splits.get("test")
    # The model is the first thing drawn after seeding (zfkit.probe.initial_model relies on it).
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
            _save_torch({"format": CHECKPOINT_FORMAT, "model": parts.model.state_dict(),
                         "epoch": epoch, "val_acc": record["val_acc"], "config": history.config,
                         "classes": history.classes}, out_dir / "best.pt")
        # last.pt after best.pt: a run killed between the two redoes this epoch identically
        _save_torch(parts.state(history), out_dir / "last.pt")
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
    finished = {k: v for k, v in parts.state(history).items()
                if k not in ("optimizer", "scheduler", "scaler", "rng")}
    _save_torch(finished, out_dir / "last.pt")
    history.save(out_dir / "history.json")
    return history


def print_epoch(history: History) -> None:
    """A callback for :func:`fit` that prints the line of the epoch just finished (no bars)."""
    print(history.epoch_line(history.records[-1]), flush=True)


def load_model(run_dir: str | Path, which: str = "best", *,
               device: torch.device | str = "cpu") -> ConvNet:
    """The network of a run, in eval mode.

    Args:
        run_dir: the run folder.
        which: ``"best"`` (the best-val epoch, the seed's choice) or ``"last"``.
        device: where to put it.
    Returns:
        The :class:`~zfkit.models.ConvNet` with the checkpoint's weights.
    """
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    path = Path(run_dir) / f"{which}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: train the run first (python -m zfkit train, "
                                "or zfkit.profiles.train_run)")
    ckpt = _load_checkpoint(path)
    name = ckpt["config"]["model"]
    if name not in SPECS:
        raise ValueError(f"{path} is a {name!r} network, which is not registered in this session: "
                         "register it first with zfkit.models.derive_spec(..., register=True)")
    model = build_model(name, num_classes=len(ckpt["classes"]))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval()


def load_history(run_dir: str | Path) -> History:
    """The :class:`History` of a run (its ``history.json``)."""
    path = Path(run_dir) / "history.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: train the run first (python -m zfkit train, "
                                "or zfkit.profiles.train_run)")
    return History.load(path)
