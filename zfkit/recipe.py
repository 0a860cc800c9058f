"""The training recipe: the seed's settings as one dataclass, and the optimizer they choose.

The seed trains each net with Adam (lr 1e-3), StepLR (step 15, gamma 0.1), cross-entropy and
batch 128 for 50 epochs. :class:`TrainConfig` is that recipe, every setting overridable and checked
against its allowed values; :func:`make_optimizer` builds Adam or SGD from it.

Reference: Krizhevsky et al. (2012), Sec. 5 "Details of learning" (SGD with momentum 0.9, weight
decay, the rate divided by 10 when validation stops improving) and Zeiler and Fergus (2014),
Sec. 3 "Training Details" (SGD, lr 1e-2, momentum 0.9, 70 epochs). The seed departs from both: Adam
and StepLR, the defaults here; ``optimizer="sgd"`` gives the papers' optimizer.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from .specs import SPECS

__all__ = ["TrainConfig", "make_optimizer", "make_warmup", "saved_recipe"]


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
        warmup_steps: raise the rate linearly from ``lr / warmup_steps`` to ``lr`` over the first
            this many optimizer steps (seed: 0, no warm-up). Not in the seed's recipe: the book
            profile uses it because Adam's first full-size steps can kill the deeper layers' ReLUs
            (5 of its 12 runs without it never trained: chapter 5).
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
    warmup_steps: int = 0
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
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be 0 (no warm-up) or more, got {self.warmup_steps}")
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


def saved_recipe(values: Mapping[str, Any]) -> dict[str, Any]:
    """A recipe saved by an older zfkit, with the settings added since at their defaults (which
    reproduce what that zfkit did: e.g. ``warmup_steps=0``, no warm-up)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)
                if f.default is not dataclasses.MISSING}
    return {**defaults, **values}


def make_warmup(config: TrainConfig, optimizer: torch.optim.Optimizer
                ) -> torch.optim.lr_scheduler.LinearLR | None:
    """The linear warm-up, stepped after every optimizer step; ``None`` without one.

    It multiplies the rate, as StepLR does once per epoch, so the two chain: after
    ``warmup_steps`` steps the rate is ``lr`` times StepLR's factor.
    """
    if config.warmup_steps == 0:
        return None
    return torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1 / config.warmup_steps,
                                             end_factor=1.0, total_iters=config.warmup_steps)


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Adam or SGD; the fused kernel where this torch has one for the device (one kernel for all
    parameters: about 10x faster on the CPU, and no host sync with the fp16 gradient scaler)."""
    cls, kwargs = ((torch.optim.Adam, {}) if config.optimizer == "adam"
                   else (torch.optim.SGD, {"momentum": config.momentum}))
    try:
        return cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                   fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel in this torch for the device
        return cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, **kwargs)
