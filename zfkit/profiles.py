"""Profiles: one switch that sets the scale of every chapter.

``full``  real Pascal VOC 2007 and the seed's 50-epoch recipe (default when a CUDA GPU is present).
``smoke`` the generated shapes sample and a few epochs (default elsewhere, e.g. CI): proves the
          code runs.
``book``  the generated photo-textured sample at the largest scale a 2-core CPU trains in about
          an hour and a half: the recorded runs in ``book/results/`` that chapters 5-8 show
          (``python -m zfkit record --profile book``).

Choose explicitly with the environment variable ``ZFKIT_PROFILE=smoke|full``. Data, crops and runs
live under ``ZFKIT_HOME`` (default ``~/.cache/zfkit``). On Colab with Google Drive mounted, runs go
to ``/content/drive/MyDrive/zfkit`` so they survive a disconnect, while the data (tens of thousands
of small files, slow on Drive) stays on the VM's local disk and is rebuilt after a disconnect.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["Profile", "PROFILES", "DATA_KINDS", "get_profile", "zfkit_home", "data_home", "prepare_data",
           "cache_dir",
           "run_dir", "train_run"]

_DRIVE = Path("/content/drive/MyDrive")
DATA_KINDS = ("sample", "photos", "voc2007")


@dataclass(frozen=True)
class Profile:
    """The scale of an experiment.

    Args:
        name: ``"smoke"``, ``"book"`` or ``"full"``.
        data: ``"sample"`` (the generated shapes sample), ``"photos"`` (the generated
            photo-textured sample) or ``"voc2007"`` (the real data).
        epochs: training epochs per run.
        sample_images: images in the generated sample (generated data only).
        seeds: the seeds that multi-seed comparisons use.
        batch_size: images per training batch (the recipe's 128; the generated samples use
            smaller batches so their few crops still give hundreds of optimizer steps).
        lr_step: StepLR's step in epochs; the seed's 15 of 50 epochs, scaled to the profile's
            epochs where the profile is shorter (``None``: the recipe's 15).
        warmup_steps: a linear warm-up of the learning rate over this many optimizer steps
            (0: none, as in the seed's recipe).
    """
    name: str
    data: str
    epochs: int
    sample_images: int
    seeds: tuple[int, ...]
    batch_size: int = 128
    lr_step: int | None = None
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        if self.data not in DATA_KINDS:
            raise ValueError(f"data must be one of {DATA_KINDS}, got {self.data!r}")

    @property
    def is_sample(self) -> bool:
        """Generated data (either sample), never to be presented as VOC results."""
        return self.data != "voc2007"

    @property
    def sample_kind(self) -> str | None:
        """``"shapes"`` or ``"photos"`` for generated data, ``None`` for VOC 2007."""
        return {"sample": "shapes", "photos": "photos"}.get(self.data)

    def recipe(self) -> dict[str, int]:
        """The :class:`~zfkit.train.TrainConfig` settings this profile sets."""
        settings = {"epochs": self.epochs, "batch_size": self.batch_size}
        if self.lr_step is not None:
            settings["lr_step"] = self.lr_step
        if self.warmup_steps:
            settings["warmup_steps"] = self.warmup_steps
        return settings

    def describe(self) -> str:
        """One line that every chapter prints, so no reader mistakes a smoke run for a result."""
        if self.data == "sample":
            what = (f"the GENERATED shapes sample ({self.sample_images} synthetic images), "
                    "not Pascal VOC 2007: numbers below show the code works, not how the nets "
                    "compare on real photos")
        elif self.data == "photos":
            what = (f"the GENERATED photo-textured sample ({self.sample_images} images made "
                    "from scikit-image's photographs), not Pascal VOC 2007")
        else:
            what = "Pascal VOC 2007 object crops"
        batch = "" if self.batch_size == 128 else f", batch {self.batch_size}"
        step = ("" if self.lr_step is None else
                f", lr x0.1 every {self.lr_step} epochs" if self.lr_step < self.epochs else
                ", the learning rate never drops (the seed's first drop comes after 750 steps)")
        warm = ("" if not self.warmup_steps else
                f", a linear warm-up over the first {self.warmup_steps} steps (not in the seed's "
                "recipe)")
        return (f"Profile '{self.name}': {what}; {self.epochs} epochs per run{batch}{step}{warm}, "
                f"seeds {list(self.seeds)}.")


PROFILES: dict[str, Profile] = {
    # smoke: sized so that one run of either net takes about a minute on 2 CPU cores (measured
    # with bench/bench_train.py and chapter 5) and still learns well above chance (5 %).
    "smoke": Profile("smoke", "sample", epochs=5, sample_images=400, seeds=(0, 1), batch_size=64),
    # book: the recorded runs of chapters 5-8 (python -m zfkit record --profile book --jobs 2).
    # Sized to this 2-core machine (idle, one thread per run: about 30 training images per second
    # for AlexNet, 25 for ZFNet): 2400 images (~2260 training crops), batch 32, 8 epochs: ~570
    # optimizer steps a run, 12 runs in about 80 minutes with two jobs. Batch 16 on 600 images
    # left every net on the ln 20 plateau (the previous book profile); batch 32 on 2400 images
    # takes AlexNet off it within ~150 steps. The seed's StepLR is scaled by steps, not epochs:
    # its first drop comes after 750 steps (15 epochs of 50 steps), so a book run stays at 1e-3.
    # Without a warm-up, 5 of the 12 runs never left the plateau: Adam's first full-size steps
    # (1e-3 per weight, as large as the deeper layers' initial RMS) left conv5's ReLUs all dead.
    # A linear warm-up over 100 steps (the first 1.4 epochs) took every one of them off it
    # (chapter 5 counts both; the runs without it are recorded too, tagged nowarmup).
    "book": Profile("book", "photos", epochs=8, sample_images=2400, seeds=(0, 1, 2),
                    batch_size=32, lr_step=15, warmup_steps=100),
    "full": Profile("full", "voc2007", epochs=50, sample_images=0, seeds=(0, 1, 2)),
}


def zfkit_home() -> Path:
    """Where data, crops and runs are kept (``ZFKIT_HOME``, Drive on Colab, else ~/.cache/zfkit)."""
    if os.environ.get("ZFKIT_HOME"):
        return Path(os.environ["ZFKIT_HOME"]).expanduser()
    if _DRIVE.is_dir():
        return _DRIVE / "zfkit"
    return Path.home() / ".cache" / "zfkit"


def data_home() -> Path:
    """Where downloads, crops and decoded caches are kept: :func:`zfkit_home`, except on Colab with
    Drive mounted (and no ``ZFKIT_HOME``), where they stay on the fast local disk."""
    if not os.environ.get("ZFKIT_HOME") and _DRIVE.is_dir():
        return Path("/content/zfkit-data")
    return zfkit_home()


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``; by default ``ZFKIT_PROFILE``, else ``full`` on a CUDA machine
    and ``smoke`` elsewhere."""
    if name is None:
        name = os.environ.get("ZFKIT_PROFILE")
    if name is None:
        import torch
        name = "full" if torch.cuda.is_available() else "smoke"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: set ZFKIT_PROFILE to one of {sorted(PROFILES)}")
    return PROFILES[name]


def prepare_data(profile: Profile, *, progress: bool = True) -> Path:
    """Make sure the crops for ``profile`` exist and return the crops folder.

    ``sample``: generate the VOC-format sample and crop it. ``voc2007``: use ``ZFKIT_VOC_ROOT`` (an
    existing ``VOCdevkit/VOC2007``, e.g. on Drive) or download VOC 2007 (trainval and test) into
    :func:`data_home` ``/voc``, then crop it. Both steps are no-ops when already complete.
    """
    from . import voc

    home = data_home()
    if profile.data == "sample":
        voc_root = voc.make_sample(home / f"sample-{profile.sample_images}",
                                   images=profile.sample_images, seed=0)
        out = home / f"sample-{profile.sample_images}-crops"
    elif profile.data == "photos":
        voc_root = voc.make_sample(home / f"photos-{profile.sample_images}",
                                   images=profile.sample_images, seed=0, kind="photos")
        out = home / f"photos-{profile.sample_images}-crops"
    else:
        given = os.environ.get("ZFKIT_VOC_ROOT")
        voc_root = (Path(given).expanduser() if given
                    else voc.download_voc(home / "voc", test=True, progress=progress))
        out = home / "voc2007-crops"
    voc.build_crops(voc_root, out, progress=progress)
    return out


def cache_dir() -> Path:
    """Where decoded crops are cached (:func:`zfkit.data.load_split`): ``data_home()/cache``."""
    return data_home() / "cache"


def run_dir(profile: Profile, model: str, seed: int = 0, **overrides: Any) -> Path:
    """The folder of one run: ``ZFKIT_HOME/runs/<profile>/<model>-s<seed>``, plus ``-<key><value>``
    for each override in name order (e.g. ``zfnet-s0-label_smoothing0.1``)."""
    suffix = "".join(f"-{key}{value}" for key, value in sorted(overrides.items()))
    return zfkit_home() / "runs" / profile.name / f"{model}-s{seed}{suffix}"


def train_run(profile: Profile, model: str, seed: int = 0, *, progress: bool = False,
              callbacks: Sequence[Callable] = (), **overrides: Any) -> Path:
    """Train one run of ``profile``, resume it, or just find it: the one entry point of chapters.

    The run lives in :func:`run_dir`; a finished run is returned at once, an interrupted one (e.g.
    a Colab disconnect) continues from its last epoch. The recipe is the seed's
    (:class:`zfkit.train.TrainConfig`) with the profile's epochs and batch size and any
    ``overrides``.

    Args:
        profile: the profile (its data and epochs).
        model: a registered model name (a variant must be registered in this session first).
        seed: the run's seed.
        progress: progress bars and one line per epoch (off by default: chapters draw curves with a
            callback instead).
        callbacks: passed to :func:`zfkit.train.fit` (called after every epoch with the history).
        **overrides: other :class:`~zfkit.train.TrainConfig` settings, e.g. ``label_smoothing=0.1``.
    Returns:
        The run folder (read it with :func:`zfkit.train.load_history` and
        :func:`zfkit.train.load_model`).
    """
    from .train import TrainConfig, fit

    crops = prepare_data(profile, progress=progress)
    folder = run_dir(profile, model, seed, **overrides)
    settings = {**profile.recipe(), **overrides}
    config = TrainConfig(model=model, seed=seed, **settings)
    fit(config, crops, folder, resume=True, callbacks=callbacks, progress=progress,
        cache_dir=cache_dir())
    return folder
