"""How far colour alone gets: a colour-histogram + logistic-regression baseline on a crops folder.

Each crop becomes its joint RGB histogram (``bins`` levels per channel, so ``bins**3`` numbers that
sum to one, square-rooted: the Hellinger embedding, which suits a linear model), standardized with
the train split's mean and spread. A multinomial logistic regression is fitted on the train split
and scored on the others. It sees how much of each colour a crop holds and nothing of where: no
edge, texture or outline. A network that does much better than this has learnt something beyond
colour; one that does not may be reading colour only. The chapters print it next to the networks'
accuracies, for the shapes sample (colour solves much of it), the photos sample (colour cannot) and
real VOC crops.

scikit-learn's ``LogisticRegression`` (lbfgs) is used when it is installed; otherwise the same model
is fitted with plain gradient descent in numpy (``classifier`` in the result says which).
"""
from __future__ import annotations

import contextlib
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .voc import read_manifest

__all__ = ["ColourBaselineResult", "colour_histogram", "colour_histogram_baseline"]


@dataclass(frozen=True)
class ColourBaselineResult:
    """What the colour baseline scored.

    Args:
        source: the crops' ``source`` (e.g. ``"generated-photos"``, ``"voc2007"``).
        bins: histogram levels per channel.
        classifier: ``"sklearn LogisticRegression"`` or ``"numpy softmax regression"``.
        sizes: crops per split used.
        accuracy: ``{split: accuracy}`` for every split scored (``train`` included).
        majority_share: ``{split: share}``: the accuracy of always answering the most common
            train class.
        chance: one over the number of classes.
    """
    source: str
    bins: int
    classifier: str
    sizes: dict[str, int]
    accuracy: dict[str, float]
    majority_share: dict[str, float]
    chance: float
    classes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line, e.g. ``colour histogram (8^3 bins) + logistic regression on ...``."""
        scores = ", ".join(f"{s} {100 * a:.1f}%" for s, a in self.accuracy.items() if s != "train")
        majority = ", ".join(f"{s} {100 * a:.1f}%" for s, a in self.majority_share.items())
        return (f"colour histogram ({self.bins}^3 bins) + logistic regression on {self.source} "
                f"crops ({self.sizes.get('train', 0)} train): {scores} (majority class: "
                f"{majority}; chance {100 * self.chance:.1f}%)")


def colour_histogram(image: Image.Image, bins: int = 8, size: int = 64) -> np.ndarray:
    """The joint RGB histogram of an image, ``(bins**3,)`` float32 summing to one.

    Args:
        image: any PIL image (converted to RGB).
        bins: levels per channel.
        size: the image is first resized to ``size`` x ``size`` (bilinear), so every crop
            weighs the same and large ones are quick.
    """
    pixels = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR))  # (s, s, 3)
    q = (pixels.astype(np.int32) * bins) // 256
    index = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    counts = np.bincount(index.ravel(), minlength=bins ** 3)
    return (counts / counts.sum()).astype(np.float32)


def _features(crops_dir: Path, files: Sequence[str], bins: int, size: int,
              workers: int) -> np.ndarray:
    def one(rel: str) -> np.ndarray:
        with Image.open(crops_dir / rel) as image:
            return colour_histogram(image, bins, size)

    with ThreadPoolExecutor(workers) as pool:     # PIL decodes off the GIL
        return np.sqrt(np.stack(list(pool.map(one, files))))   # (N, bins**3), Hellinger


def _fit_numpy(x: np.ndarray, y: np.ndarray, n_classes: int, c: float,
               steps: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression, L2 penalty ``1 / (2 c)`` per sample as sklearn's, by
    gradient descent with a fixed step; returns weights ``(D, K)`` and biases ``(K,)``."""
    n, d = x.shape
    w, b = np.zeros((d, n_classes)), np.zeros(n_classes)
    onehot = np.eye(n_classes)[y]
    lr = 1.0 / (np.linalg.norm(x, 2) ** 2 / n + 1 / (c * n))        # 1 / Lipschitz bound
    for _ in range(steps):
        logits = x @ w + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grad = (p - onehot) / n
        w -= lr * (x.T @ grad + w / (c * n))
        b -= lr * grad.sum(0)
    return w, b


def _one_blas_thread() -> contextlib.AbstractContextManager:
    """BLAS limited to one thread: these products are small, and on a busy 2-core machine (a
    training run beside it) BLAS threads spinning against each other make a 0.3 s fit take 7 s."""
    try:
        from threadpoolctl import threadpool_limits   # comes with scikit-learn
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1)


def colour_histogram_baseline(crops_dir: str | os.PathLike, *, bins: int = 8, size: int = 64,
                              splits: Sequence[str] = ("val", "test"), c: float = 0.1,
                              max_iter: int = 1000, workers: int | None = None
                              ) -> ColourBaselineResult:
    """Fit the colour-histogram baseline on a crops folder's train split and score other splits.

    Args:
        crops_dir: a crops folder built by :func:`zfkit.voc.build_crops`.
        bins: histogram levels per channel (``bins**3`` features).
        size: crops are resized to ``size`` x ``size`` before counting.
        splits: the splits to score besides train (those the folder lacks are skipped).
        c: inverse L2 regularization strength (sklearn's ``C``).
        max_iter: iterations of sklearn's lbfgs.
        workers: threads decoding crops (default: CPU count, at most 8).
    Returns:
        A :class:`ColourBaselineResult`.
    """
    if not isinstance(bins, int) or not 2 <= bins <= 32:
        raise ValueError(f"bins must be an integer from 2 to 32, not {bins!r}")
    crops_dir = Path(crops_dir).expanduser()
    manifest = read_manifest(crops_dir)
    classes, files = list(manifest["classes"]), manifest["files"]
    if not files.get("train"):
        raise ValueError(f"{crops_dir} has no train crops: the baseline is fitted on them")
    workers = workers or min(8, os.cpu_count() or 1)
    chosen = ["train"] + [s for s in splits if s != "train" and files.get(s)]
    data = {}
    for split in chosen:
        labels = np.array([classes.index(rel.split("/")[1]) for rel in files[split]])
        data[split] = (_features(crops_dir, files[split], bins, size, workers), labels)
    x, y = data["train"]
    mean, std = x.mean(0), x.std(0) + 1e-3                 # standardized by the train split
    try:               # imported before the thread limit, so that it covers scipy's BLAS too
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        LogisticRegression = None
    with _one_blas_thread():
        if LogisticRegression is None:
            w, b = _fit_numpy((x - mean) / std, y, len(classes), c)
            predict = lambda f: np.argmax(f @ w + b, 1)        # noqa: E731
            name = "numpy softmax regression"
        else:
            model = LogisticRegression(C=c, max_iter=max_iter).fit((x - mean) / std, y)
            predict, name = model.predict, "sklearn LogisticRegression"
    majority = Counter(y.tolist()).most_common(1)[0][0]
    return ColourBaselineResult(
        source=str(manifest.get("source", "?")), bins=bins, classifier=name,
        sizes={s: len(data[s][1]) for s in chosen},
        accuracy={s: float(np.mean(predict((f - mean) / std) == t)) for s, (f, t) in data.items()},
        majority_share={s: float(np.mean(t == majority)) for s, (_, t) in data.items()
                        if s != "train"},
        chance=1 / len(classes), classes=classes)
