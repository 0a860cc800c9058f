"""Profiles: one switch that sets the scale of every chapter.

``full``  real Pascal VOC 2007 and the seed's 50-epoch recipe (default when a CUDA GPU is present).
``smoke`` the generated VOC-format sample and a few epochs (default elsewhere, e.g. CI).

Choose explicitly with the environment variable ``ZFKIT_PROFILE=smoke|full``. Data, crops and runs
live under ``ZFKIT_HOME`` (default ``~/.cache/zfkit``; on Colab with Google Drive mounted,
``/content/drive/MyDrive/zfkit``, so runs survive a disconnect).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Profile", "PROFILES", "get_profile", "zfkit_home", "prepare_data"]

_DRIVE = Path("/content/drive/MyDrive")


@dataclass(frozen=True)
class Profile:
    """The scale of an experiment.

    Args:
        name: ``"smoke"`` or ``"full"``.
        data: ``"sample"`` (the generated VOC-format sample) or ``"voc2007"`` (the real data).
        epochs: training epochs per run.
        sample_images: images in the generated sample (``data == "sample"`` only).
        seeds: the seeds that multi-seed comparisons use.
    """
    name: str
    data: str
    epochs: int
    sample_images: int
    seeds: tuple[int, ...]

    @property
    def is_sample(self) -> bool:
        return self.data == "sample"

    def describe(self) -> str:
        """One line that every chapter prints, so no reader mistakes a smoke run for a result."""
        if self.is_sample:
            what = (f"the GENERATED VOC-format sample ({self.sample_images} synthetic images), "
                    "not Pascal VOC 2007: numbers below show the code works, not how the nets "
                    "compare on real photos")
        else:
            what = "Pascal VOC 2007 object crops"
        return f"Profile '{self.name}': {what}; {self.epochs} epochs per run, seeds {list(self.seeds)}."


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", "sample", epochs=4, sample_images=120, seeds=(0, 1)),
    "full": Profile("full", "voc2007", epochs=50, sample_images=0, seeds=(0, 1, 2)),
}


def zfkit_home() -> Path:
    """Where data, crops and runs are kept (``ZFKIT_HOME``, Drive on Colab, else ~/.cache/zfkit)."""
    if os.environ.get("ZFKIT_HOME"):
        return Path(os.environ["ZFKIT_HOME"]).expanduser()
    if _DRIVE.is_dir():
        return _DRIVE / "zfkit"
    return Path.home() / ".cache" / "zfkit"


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
    ``ZFKIT_HOME/voc``, then crop it. Both steps are no-ops when already complete.
    """
    from . import voc

    home = zfkit_home()
    if profile.is_sample:
        voc_root = voc.make_sample(home / f"sample-{profile.sample_images}",
                                   images=profile.sample_images, seed=0)
        out = home / f"sample-{profile.sample_images}-crops"
    else:
        given = os.environ.get("ZFKIT_VOC_ROOT")
        voc_root = (Path(given).expanduser() if given
                    else voc.download_voc(home / "voc", test=True, progress=progress))
        out = home / "voc2007-crops"
    voc.build_crops(voc_root, out, progress=progress)
    return out
