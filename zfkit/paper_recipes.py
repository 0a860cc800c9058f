"""How the two papers trained, quoted as data, and what their numbers imply in optimizer steps
and in how fast weight decay wears a random start away.

The numbers are *quoted* (each :class:`PaperRecipe` names the section it comes from), so the
chapters print them from here rather than typing them; :func:`steps` and :func:`decay_per_step`
are the arithmetic on them.

* Krizhevsky et al. (2012), Sec. 5 "Details of learning": "stochastic gradient descent with a
  batch size of 128 examples, momentum of 0.9, and weight decay of 0.0005"; "The learning rate
  was initialized at 0.01 and reduced three times prior to termination"; "roughly 90 cycles
  through the training set of 1.2 million images", five to six days on two GTX 580 3GB GPUs.
* Zeiler and Fergus (2014), Sec. 3 "Training details": ImageNet 2012, 1.3 million images;
  "Stochastic gradient descent with a mini-batch size of 128", "a learning rate of 10^-2, in
  conjunction with a momentum term of 0.9", annealed "manually when the validation error
  plateaus"; no weight decay is stated; "We stopped training after 70 epochs, which took around
  12 days on a single GTX580 GPU". Filters whose RMS exceeds 0.1 are renormalised to 0.1, for
  inputs "roughly in the [-128,128] range" (:data:`ZFNET_RENORMALISATION`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["PaperRecipe", "ALEXNET_2012", "ZFNET_2014", "PAPER_RECIPES", "Renormalisation",
           "ZFNET_RENORMALISATION", "steps", "decay_per_step", "half_life_steps"]


@dataclass(frozen=True)
class PaperRecipe:
    """One paper's training recipe, as printed.

    Attributes:
        paper: who and when.
        where: the section the numbers are quoted from.
        optimizer: ``"sgd"`` for both papers.
        lr: the initial learning rate.
        momentum: the momentum term.
        weight_decay: the L2 weight decay (``None``: the paper states none).
        batch_size: images per step.
        epochs: passes over the training set.
        train_images: images in the training set.
        schedule: how the learning rate was lowered, in the paper's words.
        hardware: what it ran on, and for how long.
    """
    paper: str
    where: str
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float | None
    batch_size: int
    epochs: int
    train_images: int
    schedule: str
    hardware: str


ALEXNET_2012 = PaperRecipe(
    paper="Krizhevsky et al. 2012 (AlexNet)", where="Sec. 5, Details of learning",
    optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=0.0005, batch_size=128, epochs=90,
    train_images=1_200_000, schedule="divided by 10 when the validation error stopped "
    "improving; reduced three times", hardware="two GTX 580 3GB GPUs, five to six days")

ZFNET_2014 = PaperRecipe(
    paper="Zeiler and Fergus 2014 (ZFNet)", where="Sec. 3, Training details",
    optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=None, batch_size=128, epochs=70,
    train_images=1_300_000, schedule="annealed manually when the validation error plateaus",
    hardware="one GTX580 GPU, around 12 days")

PAPER_RECIPES: dict[str, PaperRecipe] = {"alexnet": ALEXNET_2012, "zfnet": ZFNET_2014}


@dataclass(frozen=True)
class Renormalisation:
    """ZFNet's rule against dominant filters (Sec. 3, Fig. 6 (a)).

    Attributes:
        radius: filters whose RMS exceeds it are scaled back to it.
        input_range: the paper's inputs are "roughly in the [-128,128] range".
    """
    radius: float = 0.1
    input_range: float = 128.0

    def radius_for(self, input_range: float) -> float:
        """The same rule for inputs in ``[-input_range, input_range]``: a filter's response
        scales with its input, so the radius scales by ``self.input_range / input_range``
        (inputs in [-1, 1], as the seed normalises them, give 12.8)."""
        if input_range <= 0:
            raise ValueError(f"input_range must be positive, got {input_range}")
        return self.radius * self.input_range / input_range


ZFNET_RENORMALISATION = Renormalisation()


def steps(recipe: PaperRecipe) -> int:
    """Optimizer steps of the whole run: ``epochs * ceil(train_images / batch_size)``."""
    return recipe.epochs * math.ceil(recipe.train_images / recipe.batch_size)


def decay_per_step(lr: float, weight_decay: float, momentum: float = 0.0) -> float:
    """How much of a weight the L2 term removes per step, once momentum has built up:
    ``lr * weight_decay / (1 - momentum)`` (SGD's velocity then holds ``1 / (1 - momentum)``
    steps' worth of the decay term). What no gradient keeps up fades as
    ``exp(-decay_per_step * steps)``."""
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    return lr * weight_decay / (1 - momentum)


def half_life_steps(lr: float, weight_decay: float, momentum: float = 0.0) -> float:
    """Steps in which weight decay alone halves what no gradient keeps up (``inf`` without it)."""
    rate = decay_per_step(lr, weight_decay, momentum)
    return math.log(2) / rate if rate > 0 else math.inf
