"""The history of a training run: one record per epoch, the best epoch, the test score.

:func:`zfkit.train.fit` returns a :class:`History` and keeps it as ``history.json`` beside the
checkpoints after every epoch; :func:`load_history` reads it back, so a chapter can draw curves
and print summaries of runs it did not train itself. Plots are the caller's business
(:mod:`zfkit.results` draws the curves).

Reference: the seed trains 50 epochs and keeps the epoch with the best validation accuracy
(its reported numbers are in :mod:`zfkit.seed`). The papers report top-1/top-5 error on ImageNet
instead: Krizhevsky et al. (2012), Table 1; Zeiler and Fergus (2014), Table 2.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .atomic import write_json_atomic

__all__ = ["History", "load_history"]


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


def load_history(run_dir: str | Path) -> History:
    """The :class:`History` of a run (its ``history.json``)."""
    path = Path(run_dir) / "history.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: train the run first (python -m zfkit train, "
                                "or zfkit.profiles.train_run)")
    return History.load(path)
