"""Recorded runs: train every run a chapter shows, once, and keep what the chapters need of it.

``python -m zfkit record --profile book`` trains AlexNet, ZFNet and the two networks of the 2x2
ablation (conv1 kernel 11 or 7 x strides 4, 1 or 2, 2; chapter 8) for every seed of the profile,
then exports each finished run to ``book/results/<profile>-<model>-s<seed>/``:

* ``history.json``, ``metrics.json`` (best val and test accuracy, majority-class shares);
* ``provenance.json``: data kind and scale, seed, manifest hash, sample generator version, zfkit
  version and commit, torch version, device and threads, wall time, date, the recipe and the spec;
* ``conv1.npz``: ``weight`` (the best checkpoint's first layer), ``initial`` (the same layer before
  the first step) and ``bias``, float32;
* ``analysis.json``: what needs the whole network (the classifier too), computed at record time
  on the shared probe images: shift consistency (Sec. 4.1's invariance) and test predictions;
* for one seed of AlexNet and one of ZFNet also ``convs.npz`` (every convolution layer, float16:
  feature maps, top-9 and deconvnet projections need no classifier) and ``occlusion.npz`` (Sec.
  4.2's maps for a few probe images, which do). The seed is chosen by a rule fixed before any
  run: once every seed of the network is recorded, the one with the highest best validation
  accuracy (the lowest seed on a tie; the test split plays no part), as one would pick a network
  to look inside. :func:`zfkit.recorded.detailed_run` finds it.

The probe images (test crops of the sample, JPEG-encoded once) are ``probe-images.npz`` beside the
runs; every analysis, here and in the chapters, uses those same decoded pixels.

Recording is resumable: a run that was exported is skipped, a run that was interrupted continues
from its last epoch (:func:`zfkit.profiles.train_run`), and progress is printed run by run and
epoch by epoch. :func:`check_recorded` tells whether a recorded run still matches what the current
code would make; :func:`recorded_runs` lists them.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .atomic import read_json, write_atomic
from .specs import ABLATION_GRID, get_spec
from .profiles import Profile, get_profile, prepare_data, train_run
from .recorded import (RECORD_FORMAT, RESULTS_DIR, Recorded, export_run, git_commit,
                       probe_images, write_probe_images)
from .train import TrainConfig, load_history, load_model

__all__ = ["RUN_NETS", "ABLATION_GRID", "DETAILED", "RunPlan", "plan_runs", "record",
           "check_recorded", "choose_detailed", "RECORD_COMMAND", "SHIFTS", "PAPER_SGD"]

RECORD_COMMAND = "python -m zfkit record --profile {profile}"
RUN_NETS = tuple(dict.fromkeys(("alexnet", "zfnet", *ABLATION_GRID.values())))
DETAILED = ("alexnet", "zfnet")    # one seed of these keeps its conv layers and occlusion maps
SHIFTS = (0, 2, 4, 8, 12, 16, 24, 32)
OCCLUSION_IMAGES = 4
THREADS = 1                        # CPU runs are reproducible for a fixed thread count
# The commit (and whether the tree differed from it) when this recording process started: the code
# that trains is the code imported then, whatever is committed while it runs.
_STARTED_FROM: tuple[str, bool | None] | None = None


@dataclass(frozen=True)
class RunPlan:
    """One run to record: its network, seed and any recipe changes (``overrides``)."""
    model: str
    seed: int
    overrides: tuple[tuple[str, Any], ...] = ()
    tag: str = ""                  # appended to the name, e.g. "sgd"

    def name(self, profile: Profile) -> str:
        return f"{profile.name}-{self.model}-s{self.seed}" + (f"-{self.tag}" if self.tag else "")

    def config(self, profile: Profile) -> TrainConfig:
        """The recipe this run trains with: the seed's, with the profile's scale."""
        return TrainConfig(model=self.model, seed=self.seed,
                           **{**profile.recipe(), **dict(self.overrides)})


# The papers' optimiser (Krizhevsky et al. 2012, Sec. 5: SGD, momentum 0.9, weight decay 5e-4,
# lr 0.01), for one comparison run beside the seed's Adam.
# The seed's recipe as it is, for the runs beside a profile's warm-up (chapters 5 and 8).
NO_WARMUP = (("warmup_steps", 0),)
PAPER_SGD = (("optimizer", "sgd"), ("lr", 0.01), ("momentum", 0.9), ("weight_decay", 5e-4),
             *NO_WARMUP)  # the papers warm nothing up


def plan_runs(profile: Profile) -> list[RunPlan]:
    """Every run the chapters show, in recording order: seed 0 of AlexNet and ZFNet first, then
    the other seeds and the ablation, and last one AlexNet run with the papers' optimiser
    (:data:`PAPER_SGD`, tagged ``sgd``) beside the seed's Adam (chapter 6). A profile with a
    warm-up (a departure from the seed's recipe) also records every untagged run without it
    (:data:`NO_WARMUP`, tagged ``nowarmup``), so the chapters can show what the warm-up changed."""
    plans = [RunPlan(m, s) for s in profile.seeds for m in RUN_NETS]
    plans.sort(key=lambda p: (p.seed != profile.seeds[0] or p.model not in DETAILED))
    plans.append(RunPlan("alexnet", profile.seeds[0], PAPER_SGD, "sgd"))
    if profile.warmup_steps:   # the same runs without the profile's warm-up: the seed's recipe
        plans += [RunPlan(p.model, p.seed, NO_WARMUP, "nowarmup") for p in plans if not p.tag]
    return plans


# ----------------------------------------------------------------------------------------------
# Export


def _sample_version(kind: str | None) -> int | None:
    """The generator version of a sample kind (``None``: real data)."""
    if kind is None:
        return None
    from .photos import PHOTOS_VERSION
    from .sample import SHAPES_VERSION
    return {"shapes": SHAPES_VERSION, "photos": PHOTOS_VERSION}[kind]


def _analyse(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
             detailed: bool, to: Path) -> dict[str, Any]:
    """What needs the classifier: predictions, shift consistency and (detailed) occlusion."""
    from . import probe

    with torch.no_grad():
        x = probe.as_input(images)
        predictions = torch.cat([model(x[i:i + 64]).argmax(1) for i in range(0, len(x), 64)])
    by_shift = probe.consistency_by_shift(model, images, list(SHIFTS))
    analysis = {"probe_predictions": predictions.tolist(),
                "probe_accuracy": float((predictions == labels).float().mean()),
                "shifts": list(SHIFTS), "shift_consistency": by_shift.tolist()}
    if detailed:
        right = np.nonzero((predictions == labels).numpy())[0]
        wrong = np.nonzero((predictions != labels).numpy())[0]
        picks = [int(i) for i in [*right, *wrong][:OCCLUSION_IMAGES]]  # right ones first
        maps = [probe.occlusion_map(model, images[i], int(labels[i])) for i in picks]
        write_atomic(to / "occlusion.npz", lambda f: np.savez_compressed(
            f, images=np.array(picks), prob=np.stack([m.prob.numpy() for m in maps]),
            top_class=np.stack([m.top_class.numpy() for m in maps]),
            base_prob=np.array([m.base_prob for m in maps]),
            target=np.array([m.target for m in maps]), ys=np.array(maps[0].ys),
            xs=np.array(maps[0].xs), patch=np.array(maps[0].patch)))
    return analysis


def _export(plan: RunPlan, profile: Profile, folder: Path, crops: Path, to: Path,
            wall_time: float, detailed: bool = False) -> None:
    """Analyse a finished run on the probe images and record it (``metrics.json`` last); with
    ``detailed``, also its conv layers and occlusion maps."""
    images, labels, _ = probe_images(to.parent)
    start = time.perf_counter()
    commit, dirty = _STARTED_FROM or git_commit()
    best = load_model(folder, "best")
    analysis = _analyse(best, images, labels, detailed, to)
    export_run(folder, to, crops=crops, analysis=analysis, keep_convs=detailed, best=best,
               provenance={
                   "profile": profile.name,
                   "command": RECORD_COMMAND.format(profile=profile.name),
                   "data_kind": profile.data, "sample_images": profile.sample_images,
                   "sample_generator_version": _sample_version(profile.sample_kind),
                   # this process only: a run resumed after a kill counts its last part
                   # (train_time_s, from the history, counts every epoch)
                   "wall_time_s": wall_time + time.perf_counter() - start,
                   "git_commit": commit, "git_dirty": dirty, "detailed": detailed})


def choose_detailed(metrics: dict[int, dict[str, Any]]) -> int:
    """The seed whose network the chapters look inside: the highest best validation accuracy,
    the lowest seed on a tie (``metrics``: seed -> its ``metrics.json``)."""
    return min(metrics, key=lambda seed: (-metrics[seed]["best_val_acc"], seed))


def _detail(profile: Profile, out: Path, crops: Path, progress: Callable[[str], None]) -> None:
    """Give the chosen seed of each :data:`DETAILED` network its conv layers and occlusion maps
    (and take them from any other seed), once all its seeds are recorded."""
    for model in DETAILED:
        plans = [p for p in plan_runs(profile) if p.model == model and not p.tag]
        folders = {p.seed: out / p.name(profile) for p in plans}
        if not folders or not all((f / "metrics.json").is_file() for f in folders.values()):
            continue
        metrics = {seed: read_json(f / "metrics.json") for seed, f in folders.items()}
        chosen = choose_detailed(metrics)
        for seed, folder in folders.items():
            if seed != chosen:
                for extra in ("convs.npz", "occlusion.npz"):
                    (folder / extra).unlink(missing_ok=True)
        to = folders[chosen]
        provenance = read_json(to / "provenance.json")
        if provenance.get("detailed") and (to / "convs.npz").is_file():
            continue
        plan = next(p for p in plans if p.seed == chosen)
        progress(f"{to.name}: the {model} seed with the best validation accuracy "
                 f"({metrics[chosen]['best_val_acc']:.1%}); keeping its conv layers")
        folder = train_run(profile, plan.model, plan.seed, progress=False)
        _export(plan, profile, folder, crops, to, provenance.get("wall_time_s", 0.0),
                detailed=True)


def _claim(out: Path, name: str) -> Path | None:
    """Claim run ``name`` for this process: ``out/.claims/<name>`` holds the claimer's pid,
    created exclusively. Returns the claim file, or ``None`` when a live process holds it (a
    claim of a process that died is taken over)."""
    import os

    folder = out / ".claims"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = int(path.read_text() or 0)
                os.kill(holder, 0)            # raises when no such process
                if holder != os.getpid():
                    return None
                return path
            except (ValueError, ProcessLookupError, FileNotFoundError):
                path.unlink(missing_ok=True)  # a dead job's claim
                continue
            except PermissionError:
                return None
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return path
    return None


def _run_jobs(profile: Profile, out: Path, names: list[str], jobs: int,
              progress: Callable[[str], None]) -> None:
    """Record ``names`` in ``jobs`` child processes, one torch thread each; each child claims the
    next run no other job holds (see :func:`_claim`). Their lines go to ``progress`` with a job
    prefix."""
    import subprocess
    import sys
    import threading

    children = []
    for job in range(min(jobs, len(names))):
        mine = names          # every job takes the next run no other job has claimed
        cmd = [sys.executable, "-u", "-m", "zfkit", "record", "--profile", profile.name, "--out",
               str(out), "--jobs", "1", *[arg for n in mine for arg in ("--only", n)]]
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, bufsize=1)
        reader = threading.Thread(target=lambda c=child, j=job: [
            progress(f"job {j + 1}: {line.rstrip()}") for line in c.stdout], daemon=True)
        reader.start()
        children.append((child, reader))
    failed = []
    for child, reader in children:
        child.wait()
        reader.join()
        if child.returncode:
            failed.append(child.returncode)
    if failed:
        raise RuntimeError(f"{len(failed)} recording job(s) failed (see their lines above); run "
                           f"`{RECORD_COMMAND.format(profile=profile.name)}` again to resume")


def record(profile: str | Profile = "book", *, out: str | Path | None = None,
           only: Sequence[str] = (), jobs: int = 1,
           progress: Callable[[str], None] = print) -> list[Path]:
    """Train (or resume) and export every run of ``profile`` (see :func:`plan_runs`).

    Every run uses one torch thread, so its numbers are the same however many jobs run.

    Args:
        profile: the profile (``"book"`` for the book's recorded runs).
        out: where the recorded runs go (default ``book/results`` of this checkout).
        only: record only the runs with these names (e.g. ``book-zfnet-s1``).
        jobs: runs trained at the same time, each in its own process (e.g. one per core).
        progress: called with one line per run and per epoch.
    Returns:
        The folders of the recorded runs.
    """
    global _STARTED_FROM
    _STARTED_FROM = _STARTED_FROM or git_commit()
    profile = get_profile(profile) if isinstance(profile, str) else profile
    out = Path(out) if out is not None else RESULTS_DIR
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    plans = plan_runs(profile)
    unknown = sorted(set(only) - {p.name(profile) for p in plans})
    if unknown:
        raise ValueError(f"no run(s) {unknown} in profile {profile.name!r}; its runs are "
                         f"{[p.name(profile) for p in plans]}")
    plans = [p for p in plans if not only or p.name(profile) in only]
    torch.set_num_threads(THREADS)
    crops = prepare_data(profile, progress=False)
    if not (out / "probe-images.npz").is_file():
        write_probe_images(crops, out / "probe-images.npz")
    todo = [p.name(profile) for p in plans if not (out / p.name(profile) / "metrics.json").is_file()]
    if jobs > 1 and len(todo) > 1:
        progress(f"recording {len(todo)} of {len(plans)} runs in {jobs} jobs")
        _run_jobs(profile, out, todo, jobs, progress)
        _detail(profile, out, crops, progress)
        return [out / p.name(profile) for p in plans]
    done = []
    for number, plan in enumerate(plans, start=1):
        name, to = plan.name(profile), out / plan.name(profile)
        if (to / "metrics.json").is_file():
            progress(f"[{number}/{len(plans)}] {name}: recorded already, skipped")
            done.append(to)
            continue
        claim = _claim(out, name)
        if claim is None:
            progress(f"[{number}/{len(plans)}] {name}: another job is recording it, skipped")
            continue
        progress(f"[{number}/{len(plans)}] {name}: training "
                 f"({plan.config(profile).epochs} epochs)")
        start = time.perf_counter()
        folder = train_run(profile, plan.model, plan.seed, progress=False,
                           callbacks=[lambda h: progress(h.epoch_line(h.records[-1]))],
                           **dict(plan.overrides))
        _export(plan, profile, folder, crops, to, time.perf_counter() - start)
        claim.unlink(missing_ok=True)
        progress(f"[{number}/{len(plans)}] {name}: {load_history(folder).summary()}")
        done.append(to)
    if not only:
        _detail(profile, out, crops, progress)
    return done


def check_recorded(run: Recorded) -> list[str]:
    """What differs between a recorded run and what the current code would make (empty: none).

    Compared: the export format, the network's spec, the recipe, the sample kind and its
    generator's version. (The manifest is checked by the tests, which regenerate part of it.)
    """
    name = run.provenance.get("profile")
    if name is None:
        return [f"{run.name} was not made by `python -m zfkit record` (no profile)"]
    profile = get_profile(name)
    plan = next((p for p in plan_runs(profile) if p.name(profile) == run.name), None)
    if plan is None:
        return [f"{run.name} is not a run of profile {profile.name!r} any more"]
    problems = []
    if run.provenance.get("format") != RECORD_FORMAT:
        problems.append(f"export format {run.provenance.get('format')} != {RECORD_FORMAT}")
    spec = json.loads(json.dumps(dataclasses.asdict(get_spec(plan.model))))
    if run.provenance["spec"] != spec:
        problems.append(f"the spec of {plan.model} changed")
    recipe = plan.config(profile).to_dict()
    changed = sorted(k for k in recipe if run.recipe.get(k) != recipe[k])
    if changed:
        problems.append(f"the recipe changed ({', '.join(changed)})")
    if run.provenance.get("data_kind") != profile.data:
        problems.append(f"data kind {run.provenance.get('data_kind')} != {profile.data}")
    version = _sample_version(profile.sample_kind)
    if run.provenance.get("sample_generator_version") != version:
        problems.append(f"sample generator version "
                        f"{run.provenance.get('sample_generator_version')} != {version}")
    if run.provenance.get("sample_images") != profile.sample_images:
        problems.append(f"sample size {run.provenance.get('sample_images')} != "
                        f"{profile.sample_images}")
    return problems
