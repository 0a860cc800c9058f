"""What the source blog post printed and reported, as data.

These numbers are *quoted*, not computed: the chapters check them against the formula
(:func:`zfkit.conv_output_size`) and against their own runs, and label them as the post's.
Every chapter takes them from here, so there is one copy to proofread against the post.
"""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["SeedRow", "SEED_TABLES", "SEED_FC_ROWS", "SEED_REPORTED", "SEED_LOG", "SEED_POST",
           "PAPER_RECIPES", "SEED_CROP_COUNTS", "PAPER_CLAIMS", "ZF_TABLE2"]


class SeedRow(NamedTuple):
    """One conv/pool row of the post's tables (pooling rows print "/" for padding: stored as 0)."""
    seed: str      # the post's row name, e.g. "POOL4"
    name: str      # zfkit's layer name, e.g. "pool2"
    kind: str      # "conv" or "pool"
    input: int     # input side
    kernel: int
    stride: int
    padding: int
    filters: int
    output: int    # output side as printed


SEED_TABLES: dict[str, list[SeedRow]] = {
    "alexnet": [
        SeedRow("CONV1", "conv1", "conv", 227, 11, 4, 0, 96, 55),
        SeedRow("POOL2", "pool1", "pool", 55, 3, 2, 0, 96, 27),
        SeedRow("CONV3", "conv2", "conv", 27, 5, 1, 2, 256, 27),
        SeedRow("POOL4", "pool2", "pool", 27, 3, 2, 0, 256, 13),
        SeedRow("CONV5", "conv3", "conv", 13, 3, 1, 1, 384, 13),
        SeedRow("CONV6", "conv4", "conv", 13, 3, 1, 1, 384, 13),
        SeedRow("CONV7", "conv5", "conv", 13, 3, 1, 1, 256, 13),
        SeedRow("POOL8", "pool5", "pool", 13, 3, 2, 0, 256, 6),
    ],
    "zfnet": [
        SeedRow("CONV1", "conv1", "conv", 227, 7, 2, 0, 96, 111),
        SeedRow("POOL2", "pool1", "pool", 111, 3, 2, 0, 96, 55),
        SeedRow("CONV3", "conv2", "conv", 55, 5, 2, 1, 256, 27),
        SeedRow("POOL4", "pool2", "pool", 27, 3, 1, 0, 256, 13),   # stride as printed (a typo)
        SeedRow("CONV5", "conv3", "conv", 13, 3, 1, 1, 384, 13),
        SeedRow("CONV6", "conv4", "conv", 13, 3, 1, 1, 384, 13),
        SeedRow("CONV7", "conv5", "conv", 13, 3, 1, 1, 256, 13),
        SeedRow("POOL8", "pool5", "pool", 13, 3, 2, 0, 256, 6),
    ],
}

# The fully connected rows, the same in both tables: (post's name, zfkit's name, inputs, outputs).
SEED_FC_ROWS: list[tuple[str, str, int, int]] = [
    ("FC9", "fc6", 9216, 4096), ("FC10", "fc7", 4096, 4096), ("FC11", "fc8", 4096, 1000)]

# The post's single run of each net on VOC 2007.
SEED_REPORTED: dict[str, dict[str, float]] = {
    "alexnet": {"best_val_acc": 0.519264, "epochs": 50, "train_time_s": 7 * 60 + 3},
    "zfnet": {"best_val_acc": 0.575710, "epochs": 50, "train_time_s": 8 * 60 + 50},
}

# The crops the post trained and validated on, as its script printed them (chapter 4 checks them
# against VOC 2007's official non-difficult counts of train and val).
SEED_CROP_COUNTS: dict[str, int] = {"train": 6301, "val": 6307}

# Numbers from the post's training logs (VOC 2007), quoted by chapter 5.
SEED_LOG: dict[str, dict[str, float]] = {
    "alexnet": {"first_train_loss": 2.9600, "first_val_acc": 0.3697,
                "last_two_val_acc": (0.5156, 0.5175)},
    "zfnet": {"first_train_loss": 2.6546, "first_val_acc": 0.3697},
}

# The post itself (see book/references.bib, key seedblog).
SEED_POST = {"title": "[PyTorch] ZFNet vs AlexNet", "author": "zhujian (zjykzj)",
             "url": "https://blog.zhujian.life/posts/d2cd3d94.html",
             "date": "not shown in the copies found"}

# How the papers trained (quoted; chapter 6 compares them with the seed's recipe).
PAPER_RECIPES: dict[str, dict[str, object]] = {
    "alexnet": {"source": "Krizhevsky et al. 2012, Sec. 5", "optimizer": "SGD",
                "batch_size": 128, "momentum": 0.9, "weight_decay": 5e-4, "lr": 0.01,
                "epochs": 90, "images": 1_200_000},
    "zfnet": {"source": "Zeiler and Fergus 2014, Sec. 3", "optimizer": "SGD",
              "batch_size": 128, "momentum": 0.9, "lr": 0.01, "epochs": 70,
              "images": 1_300_000},
}

# What Krizhevsky et al. (2012) report for each idea d2l's AlexNet section covers (quoted;
# chapter 2 shows the mechanisms, it cannot repeat the measurements). Gains are in percentage
# points of ImageNet error, except where the entry names another data set.
PAPER_CLAIMS: dict[str, dict[str, object]] = {
    "relu": {"source": "Krizhevsky et al. 2012, Sec. 3.1 and Fig. 1",
             "network": "a four-layer CNN", "dataset": "CIFAR-10",
             "target_train_error": 0.25, "times_faster_than_tanh": 6,
             "note": "learning rates chosen independently for each net, no regularization"},
    "lrn": {"source": "Krizhevsky et al. 2012, Sec. 3.3", "k": 2, "n": 5, "alpha": 1e-4,
            "beta": 0.75, "top1_points": 1.4, "top5_points": 1.2,
            "cifar10_test_error": (0.13, 0.11)},   # four-layer CNN: without, with LRN
    "overlapping_pooling": {"source": "Krizhevsky et al. 2012, Sec. 3.4", "z": 3, "s": 2,
                            "against": (2, 2), "top1_points": 0.4, "top5_points": 0.3},
    "augmentation": {"source": "Krizhevsky et al. 2012, Sec. 4.1", "image": 256, "crop": 224,
                     "factor": 2048, "crops_without": "substantial overfitting",
                     "pca_sigma": 0.1,
                     "pca_top1_points": "over 1"},  # "reduces our top-1 error rate by over 1%"
    "dropout": {"source": "Krizhevsky et al. 2012, Sec. 4.2", "p": 0.5,
                "layers": "the first two fully connected layers", "test_scale": 0.5,
                "without": "substantial overfitting",
                "iterations": "roughly doubles the number of iterations required to converge"},
    # Zeiler and Fergus 2014, Sec. 5.1, on their Table 2 (chapter 3)
    "zfnet": {"source": "Zeiler and Fergus 2014, Sec. 5.1 and Table 2",
              "replication_within_points": 0.1, "single_net_gain_points": 1.7,
              "gain_stated_as": "test top-5", "changes": "7x7 filters in layer 1 and stride 2 "
              "convolutions in layers 1 & 2 (Sec. 4.1)", "ensemble_test_top5": 14.8},
}

# Zeiler and Fergus (2014), Table 2 (ImageNet 2012, error %, single nets only) with the train
# top-1 of Table 3; None where the paper prints no number. (model, train top-1, val top-1,
# val top-5, test top-5).
ZF_TABLE2: list[tuple[str, float | None, float, float, float | None]] = [
    ("Krizhevsky et al. 2012, 1 convnet", None, 40.7, 18.2, None),
    ("Our replication of Krizhevsky et al., 1 convnet", 35.1, 40.5, 18.1, None),
    ("1 convnet as per Fig. 3", 33.1, 38.4, 16.5, None),
]
