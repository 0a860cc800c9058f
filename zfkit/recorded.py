"""Recorded runs on disk: the small folders under ``book/results/`` that let a chapter show a run
it did not train, and the probe images every recorded analysis uses.

A recorded run folder holds ``history.json``, ``metrics.json`` (written last: a folder without it
is an unfinished export), ``provenance.json`` (data, scale, seed, manifest hash, generator
version, zfkit version and commit, torch, device, wall time, recipe, spec), ``conv1.npz``
(``weight``: the best checkpoint's first layer; ``initial``: the same layer before training),
``analysis.json`` (what needs the classifier), and for the runs the chapters look inside,
``convs.npz`` (float16 conv layers) and ``occlusion.npz``. :mod:`zfkit.record` makes them;
:func:`export_run` records a reader's own run (e.g. the ``full`` profile on VOC 2007).
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import write_atomic, write_json_atomic
from .models import build_model, conv_layers, get_spec
from .recipe import saved_recipe
from .train import History, load_history, load_model

__all__ = ["RESULTS_DIR", "RECORD_FORMAT", "Recorded", "load_recorded", "recorded_runs",
           "detailed_run", "export_run", "probe_images", "write_probe_images", "git_commit"]

# The book's recorded runs; ZFKIT_RESULTS points elsewhere (e.g. a reader's own recordings).
RESULTS_DIR = Path(os.environ.get("ZFKIT_RESULTS")
                   or Path(__file__).resolve().parents[1] / "book" / "results")
RECORD_FORMAT = 1
PROBE_IMAGES = 128                 # test crops kept as JPEG for every analysis


def git_commit() -> tuple[str, bool | None]:
    """The commit of this zfkit and whether tracked files differ from it (``None``: unknown):
    from git when run from a clone, else from pip's record of a ``git+`` install."""
    here = Path(__file__).parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=10)
        if head.returncode == 0:
            diff = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "."], cwd=here.parent,
                                  capture_output=True, timeout=30)
            return head.stdout.strip(), diff.returncode != 0
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import distribution
        info = json.loads(distribution("zfkit").read_text("direct_url.json") or "{}")
        return info.get("vcs_info", {}).get("commit_id", "unknown"), None
    except Exception:
        return "unknown", None


# ----------------------------------------------------------------------------------------------
# Probe images


def _encode_jpeg(image: np.ndarray, quality: int = 92) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def write_probe_images(crops: Path, path: Path) -> None:
    """Every ``len/PROBE_IMAGES``-th test crop (all classes appear), JPEG-encoded once."""
    from .data import load_split

    test = load_split(crops, "test", progress=False)
    step = max(1, len(test) // PROBE_IMAGES)
    index = np.arange(0, len(test), step)[:PROBE_IMAGES]
    jpegs = [_encode_jpeg(test.images[i].permute(1, 2, 0).numpy()) for i in index]
    sizes = np.array([len(j) for j in jpegs], dtype=np.int64)
    write_atomic(path, lambda f: np.savez(
        f, jpeg=np.frombuffer(b"".join(jpegs), dtype=np.uint8), sizes=sizes,
        labels=test.labels[index].numpy().astype(np.int64), index=index.astype(np.int64),
        classes=np.array(test.classes), source=np.array(test.source)))


def probe_images(folder: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The recorded probe images: ``uint8 (N, 3, 227, 227)``, their labels ``(N,)`` and the class
    names. Every recorded analysis was computed on exactly these decoded pixels."""
    from PIL import Image

    path = Path(folder or RESULTS_DIR) / "probe-images.npz"
    with np.load(path, allow_pickle=False) as npz:
        blob, sizes = npz["jpeg"].tobytes(), npz["sizes"]
        labels, classes = torch.from_numpy(npz["labels"]), [str(c) for c in npz["classes"]]
    ends = np.cumsum(sizes)
    images = [np.asarray(Image.open(io.BytesIO(blob[e - n:e])).convert("RGB"))
              for n, e in zip(sizes, ends)]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), labels, classes


# ----------------------------------------------------------------------------------------------
# Reading them back


@dataclass
class Recorded:
    """A recorded run (see :mod:`zfkit.record` and :func:`export_run`).

    Attributes:
        path: its folder.
        history: the :class:`~zfkit.train.History`.
        metrics: best val / test accuracy, majority-class shares, conv1's relative change.
        provenance: where and how it was made.
        conv1: ``weight``, ``initial`` and ``bias`` of the first layer (float32 arrays).
        analysis: what was computed with the classifier (may be empty).
    """
    path: Path
    history: History
    metrics: dict[str, Any]
    provenance: dict[str, Any]
    conv1: dict[str, np.ndarray]
    analysis: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model(self) -> str:
        return self.history.model

    @property
    def seed(self) -> int:
        return self.history.seed

    @property
    def data_label(self) -> str:
        """What the run was trained on, in words a figure can carry."""
        kind = self.provenance.get("data_kind")
        if kind == "photos":
            return "generated photo-textured sample, not VOC 2007"
        if kind == "sample":
            return "generated shapes sample, not VOC 2007"
        return str(self.provenance.get("data_source", "unknown data"))

    @property
    def recipe(self) -> dict[str, Any]:
        """The recipe the run trained with, every setting named (those added to
        :class:`~zfkit.recipe.TrainConfig` since it was recorded at their defaults)."""
        return saved_recipe(self.provenance["recipe"])

    def describe(self) -> str:
        """One line saying where the numbers come from."""
        p = self.provenance
        crops = f"{sum(p['crops'].values())} crops, " if p.get("crops") else ""
        warmup = self.recipe["warmup_steps"]
        recipe = f"{warmup}-step warm-up" if warmup else "no warm-up"
        return (f"recorded run {self.name}: {self.model}, seed {self.seed}, on the "
                f"{self.data_label} ({crops}manifest {str(p['manifest_hash'])[:10]}), "
                f"{self.history.epochs_done} epochs, {recipe}, on {p['device']}, zfkit "
                f"{p['zfkit_version']} commit {str(p['git_commit'])[:10]}, {p['date'][:10]}")

    @property
    def stuck(self) -> bool:
        """Whether the run never left the ``ln(classes)`` plateau of a network that gives every
        image the same scores: its last training loss is within 2 % of ``ln(classes)``, or it named
        one class for every probe image when it was recorded."""
        plateau = math.log(len(self.history.classes))
        last = self.history.records[-1]["train_loss"]
        named = set(self.analysis.get("probe_predictions", ()))
        return last >= 0.98 * plateau or len(named) == 1

    @property
    def detailed(self) -> bool:
        """Whether the run keeps every conv layer and occlusion maps (see :func:`detailed_run`)."""
        return (self.path / "convs.npz").is_file()

    def network(self) -> torch.nn.Module:
        """The best checkpoint's feature layers (stored float16, float32 here) in a network
        whose classifier is NOT the trained one: for feature maps, top-9 and deconvnet only."""
        path = self.path / "convs.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{self.name} keeps only conv1 ({path} missing): the conv "
                                    "layers are kept for one seed of alexnet and of zfnet "
                                    "(zfkit.recorded.detailed_run finds it)")
        model = build_model(self.model, num_classes=len(self.history.classes))
        with np.load(path, allow_pickle=False) as npz:
            for name, conv in conv_layers(model):
                conv.weight.data = torch.from_numpy(npz[f"{name}.weight"].astype(np.float32))
                conv.bias.data = torch.from_numpy(npz[f"{name}.bias"].astype(np.float32))
        return model.eval()

    def occlusion(self) -> dict[str, np.ndarray]:
        """The recorded occlusion maps (the detailed seed of AlexNet and ZFNet)."""
        with np.load(self.path / "occlusion.npz", allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}


def _find(name_or_path: str | Path) -> Path | None:
    given = Path(name_or_path)
    for candidate in (given, Path.cwd() / "results" / given, Path.cwd() / "book" / "results" /
                      given, RESULTS_DIR / given):
        if (candidate / "metrics.json").is_file():
            return candidate
    return None


def load_recorded(name_or_path: str | Path, *, missing_ok: bool = False) -> Recorded | None:
    """A recorded run: a folder, or a name looked up in ``results/`` and ``book/results/`` below
    the working folder and in the checkout zfkit was installed from.

    Args:
        name_or_path: e.g. ``"book-zfnet-s0"`` or ``"book/results/zfnet-voc2007-s0"``.
        missing_ok: return ``None`` instead of raising when there is no such run.
    Returns:
        The :class:`Recorded` run (or ``None``).
    """
    path = _find(name_or_path)
    if path is None:
        if missing_ok:
            return None
        raise FileNotFoundError(f"no recorded run {str(name_or_path)!r} (a folder with "
                                "metrics.json): record the book's runs with `python -m zfkit "
                                "record --profile book`, or your own with `python -m zfkit "
                                "export RUN_DIR --to book/results/NAME`")
    with np.load(path / "conv1.npz", allow_pickle=False) as npz:
        conv1 = {key: npz[key] for key in npz.files}
    read = lambda name: json.loads((path / name).read_text())  # noqa: E731
    analysis = read("analysis.json") if (path / "analysis.json").is_file() else {}
    return Recorded(path, History.load(path / "history.json"), read("metrics.json"),
                    read("provenance.json"), conv1, analysis)


def recorded_runs(profile: str = "book", *, folder: str | Path | None = None,
                  model: str | None = None, tag: str = "") -> list[Recorded]:
    """The recorded runs of ``profile`` (folders ``<profile>-<model>-s<seed>[-<tag>]`` in
    ``folder``, default ``book/results``), sorted by name.

    Args:
        profile: the profile that made them.
        folder: where to look.
        model: only this network's runs.
        tag: only runs with this tag (``"sgd"``: the papers' optimiser); ``""``: untagged runs.
    Returns:
        A list of :class:`Recorded` (empty when none are recorded).
    """
    folder = Path(folder) if folder is not None else RESULTS_DIR
    runs = [load_recorded(p) for p in sorted(folder.glob(f"{profile}-*"))
            if (p / "metrics.json").is_file()]
    def tag_of(run: Recorded) -> str:
        last = run.name.rsplit("-", 1)[-1]
        return "" if last == f"s{run.seed}" else last
    return [r for r in runs if (model is None or r.model == model) and tag_of(r) == tag]


def detailed_run(runs: list[Recorded]) -> Recorded | None:
    """The run among ``runs`` (one network's seeds) that keeps its conv layers: the seed with
    the best validation accuracy (:func:`zfkit.record.choose_detailed`); ``None`` if none does."""
    return next((run for run in runs if run.detailed), None)


def export_run(run_dir: str | Path, to: str | Path, *, crops: str | Path | None = None,
               provenance: dict[str, Any] | None = None, analysis: dict[str, Any] | None = None,
               keep_convs: bool = False, best: torch.nn.Module | None = None) -> Path:
    """Record a finished run in a small folder a chapter can show (``book/results/NAME``).

    Args:
        run_dir: a finished run folder.
        to: the folder to write; ``metrics.json`` is written last.
        crops: the run's crops folder (adds its counts and majority-class shares).
        provenance: more provenance fields (e.g. the profile, the command that made it).
        analysis: results computed with the whole network, saved as ``analysis.json``.
        keep_convs: also keep every conv layer of the best checkpoint in float16 (``convs.npz``).
        best: the run's best network when the caller has loaded it already (else loaded here).
    Returns:
        ``to`` as a ``Path``.
    """
    from .checkpoint import initial_model
    from .version import __version__

    run_dir, to = Path(run_dir), Path(to)
    history = load_history(run_dir)
    if not history.completed:
        raise ValueError(f"{run_dir} is not finished ({history.epochs_done}/"
                         f"{history.planned_epochs} epochs): resume it before exporting")
    best = best if best is not None else load_model(run_dir, "best")
    (_, conv1), *_ = conv_layers(best)
    (_, conv1_0), *_ = conv_layers(initial_model(run_dir))
    as_f32 = lambda t: t.detach().numpy().astype(np.float32)  # noqa: E731
    weight, initial = as_f32(conv1.weight), as_f32(conv1_0.weight)
    write_atomic(to / "conv1.npz", lambda f: np.savez_compressed(
        f, weight=weight, initial=initial, bias=as_f32(conv1.bias)))
    if keep_convs:
        arrays = {f"{name}.{part}": getattr(conv, part).detach().numpy().astype(np.float16)
                  for name, conv in conv_layers(best) for part in ("weight", "bias")}
        write_atomic(to / "convs.npz", lambda f: np.savez_compressed(f, **arrays))
    if analysis is not None:
        write_json_atomic(to / "analysis.json", analysis)
    history.save(to / "history.json")
    counts, shares = {}, {}
    if crops is not None:
        from .data import read_manifest
        for split, per_class in read_manifest(crops)["counts"].items():
            counts[split] = sum(per_class.values())
            shares[split] = max(per_class.values()) / max(counts[split], 1)
    commit, dirty = git_commit()
    write_json_atomic(to / "provenance.json", {
        "format": RECORD_FORMAT, "data_source": history.data_source, "crops": counts,
        "manifest_hash": history.manifest_hash, "seed": history.seed, "recipe": history.config,
        "spec": json.loads(json.dumps(dataclasses.asdict(get_spec(history.model)))),
        "zfkit_version": __version__, "git_commit": commit, "git_dirty": dirty,
        "torch_version": torch.__version__, "device": history.device,
        "threads": torch.get_num_threads(), "train_time_s": history.total_time,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_dir": str(run_dir), **(provenance or {})})
    write_json_atomic(to / "metrics.json", {
        "model": history.model, "seed": history.seed, "best_val_acc": history.best_val_acc,
        "best_epoch": history.best_epoch, "epochs": history.epochs_done,
        "test_acc": history.test_acc, "test_loss": history.test_loss, "majority_share": shares,
        "conv1_change": float(np.linalg.norm(weight - initial) / np.linalg.norm(initial))})
    return to
