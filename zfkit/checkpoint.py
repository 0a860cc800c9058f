"""Checkpoints: what a run saves after every epoch, how it resumes exactly, how it is loaded.

``last.pt`` holds everything needed to resume (:class:`TrainState`: model, optimizer, scheduler,
gradient scaler, every random state, plus the config and the history); ``best.pt`` holds the
weights of the best validation epoch, the seed's choice of model. Both are written atomically
with a SHA-256 beside them (:func:`zfkit.integrity.write_verified`), ``best.pt`` first, so a run
killed at any moment resumes from a consistent pair, and a checkpoint whose bytes changed is
refused (:func:`zfkit.integrity.verify_file`) instead of resumed. :func:`open_run` refuses a
checkpoint of another model, recipe or data set; :func:`load_model` and :func:`initial_model`
give a run's network after and before training.

A finished run keeps only what a chapter needs (:func:`slim_finished`): ``best.pt`` with its
weights in float16 (half the size; :func:`load_model` returns them as float32) and a ``last.pt``
without weights or optimizer state (its history and config). ``fit`` measures the test accuracy
on the full-precision best weights before that.

Reference: the layout follows pytorch/examples' ImageNet ``save_checkpoint(state, is_best)``.
The papers keep no checkpoints; the seed keeps only the best weights, in memory.
"""
from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .atomic import remove_stale_partials
from .history import History, load_history
from .models import SPECS, ConvNet, build_model
from .integrity import sidecar, verify_file, write_verified
from .recipe import TrainConfig, make_optimizer, make_warmup, saved_recipe

__all__ = [
    "CHECKPOINT_FORMAT", "FREE_ON_RESUME", "TrainState", "save_checkpoint", "load_checkpoint",
    "slim_finished", "open_run", "load_model", "initial_model",
]

CHECKPOINT_FORMAT = 1
FREE_ON_RESUME = ("epochs", "device")  # settings a resumed run may change; all others must match


def save_checkpoint(state: Mapping[str, Any], path: str | Path) -> None:
    """``torch.save`` ``state`` to ``path`` atomically (a reader never sees half a file), with its
    SHA-256 in ``<path>.sha256``."""
    write_verified(Path(path), lambda f: torch.save(state, f))


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


def _check_resumable(ckpt: Mapping[str, Any], config: TrainConfig, path: Path) -> None:
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise RuntimeError(f"{path} has checkpoint format {ckpt.get('format')}, this zfkit writes "
                           f"{CHECKPOINT_FORMAT}: use another run folder or delete this one")
    saved, now = saved_recipe(ckpt["config"]), config.to_dict()
    differ = [f"{k}: {saved.get(k)!r} in the checkpoint, {now[k]!r} now" for k in now
              if k not in FREE_ON_RESUME and saved.get(k) != now[k]]
    if differ:
        raise RuntimeError(f"{path} belongs to another run ({'; '.join(differ)}). Resume it with "
                           "the same settings, or use another run folder (--out) or delete it.")


def _remedy(path: Path) -> str:
    run = path.parent
    return (f"Do not resume from it: delete {run} and train again (python -m zfkit train ... "
            f"--out {run}, or zfkit.profiles.train_run in a chapter), or restore {path.name} and "
            f"{sidecar(path).name} together from a copy.")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint after checking it against its SHA-256 (``weights_only`` unpickling).

    A checkpoint without a ``.sha256`` beside it (an older zfkit wrote it) is read with
    a warning.

    Raises:
        RuntimeError: the file is corrupt, its digest differs or it cannot be read; the message
            names it and says what to do (:class:`zfkit.integrity.IntegrityError` for a digest).
    """
    path = Path(path)
    if not verify_file(path, what="checkpoint", remedy=_remedy(path)):
        warnings.warn(f"checkpoint {path} has no {sidecar(path).name} beside it (an older zfkit "
                      "wrote it), so it cannot be verified; it is read as it is", stacklevel=2)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RuntimeError(f"cannot read checkpoint {path} ({type(err).__name__}: {err}). "
                           f"{_remedy(path)}") from err


def _half(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", torch.float16).contiguous() if v.is_floating_point() else v
            for k, v in weights.items()}


def slim_finished(state: Mapping[str, Any], out_dir: str | Path) -> None:
    """Reduce a finished run to what a chapter needs: ``last.pt`` without weights and without
    optimizer, scheduler, scaler and random states (so it cannot be extended), then ``best.pt``
    with float16 weights. Called by ``fit`` after the test accuracy was measured.

    Args:
        state: the finished run's ``last.pt`` content (:meth:`TrainState.finished_state`).
        out_dir: the run folder.
    """
    out_dir = Path(out_dir)
    save_checkpoint({k: v for k, v in state.items() if k != "model"}, out_dir / "last.pt")
    best = load_checkpoint(out_dir / "best.pt")
    if best.get("weights_dtype") != "float16":
        save_checkpoint({**best, "model": _half(best["model"]), "weights_dtype": "float16"},
                        out_dir / "best.pt")


@dataclass
class TrainState:
    """Everything that changes while a run trains: what ``last.pt`` saves and restores.

    :meth:`build` makes it from a config (the model right after seeding, channels-last when asked,
    the fused optimizer where there is one, StepLR, the warm-up when the recipe has one, the fp16
    gradient scaler, the batch generator);
    :func:`zfkit.train.fit` then runs :func:`zfkit.train.run_epoch` on it.
    ``bench/bench_train.py`` times the same pieces.
    """
    model: ConvNet
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.StepLR
    scaler: torch.amp.GradScaler
    generator: torch.Generator  # the order and flips of the batches (on the CPU, for any device)
    warmup: torch.optim.lr_scheduler.LinearLR | None = None  # stepped after every optimizer step

    @classmethod
    def build(cls, config: TrainConfig, num_classes: int, device: torch.device,
              amp: torch.dtype | None) -> "TrainState":
        model = build_model(config.model, num_classes=num_classes).to(device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = make_optimizer(config, model)
        return cls(model, optimizer,
                   torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step, config.lr_gamma),
                   torch.amp.GradScaler(device.type, enabled=amp == torch.float16),
                   torch.Generator().manual_seed(config.seed), make_warmup(config, optimizer))

    def state(self, history: History) -> dict[str, Any]:
        """What ``last.pt`` holds after every epoch: everything needed to resume."""
        warmup = {} if self.warmup is None else {"warmup": self.warmup.state_dict()}
        return {**warmup, "format": CHECKPOINT_FORMAT, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "epoch": history.epochs_done,
                "best_val_acc": history.best_val_acc, "rng": _rng_state(self.generator),
                "config": history.config, "classes": history.classes,
                "history": history.to_dict()}

    def best_state(self, history: History) -> dict[str, Any]:
        """What ``best.pt`` holds: the weights of ``history``'s best epoch, which just finished."""
        return {"format": CHECKPOINT_FORMAT, "model": self.model.state_dict(),
                "epoch": history.best_epoch, "val_acc": history.best_val_acc,
                "config": history.config, "classes": history.classes}

    def finished_state(self, history: History) -> dict[str, Any]:
        """What ``last.pt`` keeps of a finished run: :meth:`state` without the optimizer, the
        scheduler, the scaler and the random states (two thirds of the file), so it cannot be
        extended (:func:`slim_finished` also drops the weights)."""
        return {k: v for k, v in self.state(history).items()
                if k not in ("optimizer", "scheduler", "warmup", "scaler", "rng")}

    def restore(self, ckpt: Mapping[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        kernels = [(g.get("fused"), g.get("foreach")) for g in self.optimizer.param_groups]
        self.optimizer.load_state_dict(ckpt["optimizer"])
        for group, (fused, foreach) in zip(self.optimizer.param_groups, kernels, strict=True):
            group["fused"], group["foreach"] = fused, foreach  # this device's kernels
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.warmup is not None:
            self.warmup.load_state_dict(ckpt["warmup"])
        self.scaler.load_state_dict(ckpt["scaler"])
        _set_rng_state(ckpt["rng"], self.generator)


def open_run(config: TrainConfig, manifest: Mapping[str, Any], out_dir: Path,
              resume: bool) -> dict[str, Any] | None:
    """The checkpoint to resume from (``None``: a fresh run), after checking it fits ``config``."""
    path = out_dir / "last.pt"
    if not path.is_file():
        return None
    if not resume:
        raise RuntimeError(f"{out_dir} already holds a run: resume it (--resume, resume=True), "
                           "or choose another run folder, or delete this one")
    for name in ("last.pt", "best.pt", "history.json"):   # what a killed writer left behind
        remove_stale_partials(out_dir / name)
        remove_stale_partials(sidecar(out_dir / name))
    ckpt = load_checkpoint(path)
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


def load_model(run_dir: str | Path, which: str = "best", *,
               device: torch.device | str = "cpu") -> ConvNet:
    """The network of a run, in eval mode, with float32 weights (also when ``best.pt`` keeps them
    in float16, as a finished run does).

    Args:
        run_dir: the run folder.
        which: ``"best"`` (the best-val epoch, the seed's choice) or ``"last"`` (the latest
            epoch of a run that is still training; a finished run keeps only ``"best"``).
        device: where to put it.
    Returns:
        The :class:`~zfkit.models.ConvNet` with the checkpoint's weights.
    Raises:
        ValueError: ``"last"`` of a finished run, or a network that is not registered.
        RuntimeError: the checkpoint is corrupt (see :func:`load_checkpoint`).
    """
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    path = Path(run_dir) / f"{which}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: train the run first (python -m zfkit train, "
                                "or zfkit.profiles.train_run)")
    ckpt = load_checkpoint(path)
    if "model" not in ckpt:
        raise ValueError(f"{path} is the last.pt of a finished run, which keeps no weights (a "
                         "finished run keeps its best epoch's, in best.pt): use which='best'")
    name = ckpt["config"]["model"]
    if name not in SPECS:
        raise ValueError(f"{path} is a {name!r} network, which is not registered in this session: "
                         "register it first with zfkit.models.derive_spec(..., register=True)")
    model = build_model(name, num_classes=len(ckpt["classes"]))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in ckpt["model"].items()})
    return model.to(device).eval()


def initial_model(run_dir: str | Path) -> ConvNet:
    """The network of a training run as it was before its first step (rebuilt, not loaded).

    :func:`zfkit.train.fit` seeds torch with the run's seed and builds the model before drawing
    any other random number, so seeding and building the same way gives the same initial weights
    (``tests/test_probe.py`` checks this against a real run). The global random state is left as
    it was.

    Args:
        run_dir: a run folder (its ``history.json`` names the model, seed and classes).
    Returns:
        The freshly initialised :class:`ConvNet` on the CPU, in eval mode.
    """
    history = load_history(run_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(history.seed)
        model = build_model(history.model, num_classes=len(history.classes))
    return model.eval()
