"""The recorded runs in book/results/: complete, small, and made by the code as it is now.

A recorded run goes stale when the spec, the recipe, the sample generator or the crop builder
that made it changes; these tests fail then and say which command re-records it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from zfkit import record as R
from zfkit.models import build_model, conv_layers
from zfkit.profiles import Profile, get_profile
from zfkit.recorded import RESULTS_DIR, detailed_run, load_recorded, probe_images, recorded_runs

BOOK = get_profile("book")
PLANS = R.plan_runs(BOOK)


def _rerecord(name: str) -> str:
    return (f"re-record it: delete book/results/{name} and run `python -m zfkit record "
            f"--profile book --only {name}` (or `python -m zfkit record --profile book --jobs 2` "
            "for every missing run)")


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.name(BOOK))
def test_every_run_the_chapters_show_is_recorded_and_current(plan: R.RunPlan) -> None:
    name = plan.name(BOOK)
    run = load_recorded(RESULTS_DIR / name, missing_ok=True)
    assert run is not None, f"{name} is not recorded; {_rerecord(name)}"
    problems = R.check_recorded(run)
    assert not problems, f"{name} is stale ({'; '.join(problems)}); {_rerecord(name)}"
    assert run.history.completed and run.history.epochs_done == BOOK.epochs
    assert run.provenance["data_kind"] == "photos" and "not VOC" in run.describe()
    warmup = plan.config(BOOK).warmup_steps   # the departure is named under every figure
    assert (f"{warmup}-step warm-up" if warmup else "no warm-up") in run.describe()


def test_recorded_runs_lists_them_as_recorded_objects(tmp_path: Path) -> None:
    runs = recorded_runs("book")
    assert {r.name for r in runs} == {p.name(BOOK) for p in PLANS if not p.tag}
    for tag in ("sgd", "nowarmup"):
        assert [r.name for r in recorded_runs("book", tag=tag)] == sorted(
            p.name(BOOK) for p in PLANS if p.tag == tag)
    assert {p.tag for p in PLANS} == {"", "sgd", "nowarmup"}
    assert {r.seed for r in recorded_runs("book", model="zfnet")} == set(BOOK.seeds)
    # The tag filter on a folder of copies.
    import shutil
    first = runs[0].name
    for name in (first, f"{first}-sgd"):
        shutil.copytree(RESULTS_DIR / first, tmp_path / name)
    assert [r.name for r in recorded_runs("book", folder=tmp_path)] == [first]
    assert [r.name for r in recorded_runs("book", folder=tmp_path, tag="sgd")] == [
        f"{first}-sgd"]


def test_recorded_initial_filters_are_the_seeded_start() -> None:
    # The export's "initial" is what seeding and building the network gives today: a changed
    # initialisation (or spec) fails here even where the provenance still matches.
    for run in recorded_runs("book"):
        torch.manual_seed(run.seed)
        model = build_model(run.model, num_classes=len(run.history.classes))
        initial = conv_layers(model)[0][1].weight.detach().numpy()
        assert np.array_equal(run.conv1["initial"], initial), _rerecord(run.name)
        change = np.linalg.norm(run.conv1["weight"] - initial) / np.linalg.norm(initial)
        assert change == pytest.approx(run.metrics["conv1_change"], rel=1e-5)
        assert change > 0, f"{run.name}: training did not move conv1 at all"


def test_recorded_data_is_what_the_generator_makes_today(tmp_path: Path) -> None:
    # Regenerate the book's sample and crop it: the manifest hash (every crop's MD5) must be the
    # one every recorded run was trained on.
    from zfkit import voc

    root = voc.make_sample(tmp_path / "photos", images=BOOK.sample_images, seed=0,
                           kind="photos")
    manifest = voc.build_crops(root, tmp_path / "crops", progress=False)
    hashes = {run.name: run.provenance["manifest_hash"] for run in recorded_runs("book")}
    stale = sorted(name for name, h in hashes.items() if h != manifest["hash"])
    assert hashes and not stale, (f"{stale} were trained on other data than the generator and "
                                  f"crop builder make today; {_rerecord(stale[0]) if stale else ''}")


def test_probe_images_and_detailed_runs() -> None:
    images, labels, classes = probe_images()
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 227, 227)
    assert len(images) == len(labels) and len(classes) == 20
    assert len(set(labels.tolist())) >= 15, "the probe images should cover most classes"
    for name in R.DETAILED:
        runs = recorded_runs("book", model=name)
        # exactly one seed keeps its conv layers: the best by validation accuracy
        assert [r.seed for r in runs if r.detailed] == [
            R.choose_detailed({r.seed: r.metrics for r in runs})], name
        run = detailed_run(runs)
        assert run.provenance["detailed"] is True
        net = run.network()
        first = conv_layers(net)[0][1].weight.detach().numpy()
        assert np.allclose(first, run.conv1["weight"], atol=2e-3, rtol=2e-3)  # float16 copy
        occ = run.occlusion()
        assert occ["prob"].ndim == 3 and float(np.abs(occ["prob"]).max()) > 0
        assert len(run.analysis["shift_consistency"]) == len(R.SHIFTS)


def test_choose_detailed_takes_the_best_validation_accuracy_then_the_lowest_seed() -> None:
    metrics = {0: {"best_val_acc": 0.2, "test_acc": 0.9}, 1: {"best_val_acc": 0.3, "test_acc": 0.1},
               2: {"best_val_acc": 0.3, "test_acc": 0.5}}
    assert R.choose_detailed(metrics) == 1                 # the test split plays no part
    assert R.choose_detailed({3: {"best_val_acc": 0.1}}) == 3


def test_stuck_reads_the_last_loss_and_the_probe_predictions() -> None:
    run = load_recorded(RESULTS_DIR / PLANS[0].name(BOOK))

    def variant(loss: float, predictions: list[int]):
        history = dataclasses.replace(
            run.history, records=[{**run.history.records[-1], "train_loss": loss}])
        return dataclasses.replace(run, history=history,
                                   analysis={**run.analysis, "probe_predictions": predictions})

    assert variant(2.99, [0, 1]).stuck            # ln 20 = 2.9957
    assert variant(1.5, [3, 3, 3]).stuck          # one class for every image
    assert not variant(1.5, [0, 1, 3]).stuck


def test_book_results_stay_small() -> None:
    total = sum(p.stat().st_size for p in RESULTS_DIR.rglob("*") if p.is_file())
    assert total < 30 * 2**20, f"book/results/ is {total / 2**20:.1f} MB, over 30 MB"


def test_check_recorded_notices_each_kind_of_change() -> None:
    run = load_recorded(RESULTS_DIR / PLANS[0].name(BOOK))
    assert R.check_recorded(run) == []

    def changed(**provenance) -> list[str]:
        return R.check_recorded(dataclasses.replace(
            run, provenance={**run.provenance, **provenance}))

    spec = dict(run.provenance["spec"], input_size=224)
    assert any("spec" in p for p in changed(spec=spec))
    assert any("recipe" in p for p in changed(recipe={**run.provenance["recipe"], "lr": 0.5}))
    assert any("generator" in p for p in changed(sample_generator_version=-1))
    assert any("format" in p for p in changed(format=-1))
    assert any("not made by" in p for p in changed(profile=None))
    # a recipe saved before the warm-up existed is the seed's, not the profile's warm-up
    older = {k: v for k, v in run.provenance["recipe"].items() if k != "warmup_steps"}
    assert BOOK.warmup_steps and changed(recipe=older) == ["the recipe changed (warmup_steps)"]


def test_a_profile_with_a_warmup_also_records_the_seeds_recipe() -> None:
    """Every untagged run has a twin without the warm-up (tagged ``nowarmup``); the papers' SGD
    run warms nothing up; a profile without a warm-up (``full``) records no twins."""
    untagged = [p for p in PLANS if not p.tag]
    twins = {(p.model, p.seed): p for p in PLANS if p.tag == "nowarmup"}
    assert sorted(twins) == sorted((p.model, p.seed) for p in untagged)
    for plan in untagged:
        assert plan.config(BOOK).warmup_steps == BOOK.warmup_steps > 0
        twin = twins[(plan.model, plan.seed)].config(BOOK)
        assert twin == dataclasses.replace(plan.config(BOOK), warmup_steps=0)
    assert all(p.config(BOOK).warmup_steps == 0 for p in PLANS if p.tag == "sgd")
    full = get_profile("full")
    assert full.warmup_steps == 0 and not any(p.tag == "nowarmup" for p in R.plan_runs(full))


def test_record_trains_exports_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    # The whole pipeline on a narrow network and a tiny photos sample, in tmp_path.
    from zfkit.models import derive_spec
    from zfkit.specs import SPECS

    small = {f"conv{i}": dict(filters=8) for i in range(1, 6)}
    small.update(fc6=dict(filters=32), fc7=dict(filters=32))
    derive_spec("alexnet", "tiny-rec", register=True, **small)
    try:
        monkeypatch.setenv("ZFKIT_HOME", str(tmp_path / "home"))
        tiny = Profile("book", "photos", epochs=2, sample_images=40, seeds=(0, 1), batch_size=16,
                       lr_step=1)
        monkeypatch.setattr(R, "plan_runs",
                            lambda profile: [R.RunPlan("tiny-rec", 0), R.RunPlan("tiny-rec", 1)])
        monkeypatch.setattr(R, "DETAILED", ("tiny-rec",))
        lines: list[str] = []
        out = tmp_path / "results"
        folder, other = R.record(tiny, out=out, progress=lines.append)
        assert folder == out / "book-tiny-rec-s0"
        # one seed, the better by validation accuracy, keeps its conv layers and occlusion maps
        runs = recorded_runs("book", folder=out)
        chosen = R.choose_detailed({r.seed: r.metrics for r in runs})
        assert [r.seed for r in runs if r.detailed] == [chosen]
        assert [r.seed for r in runs if (r.path / "occlusion.npz").is_file()] == [chosen]
        assert detailed_run(runs).network() is not None
        for name in ("history.json", "metrics.json", "provenance.json", "conv1.npz",
                     "analysis.json"):
            assert (folder / name).is_file(), name
        assert (out / "probe-images.npz").is_file()
        assert any("epoch   2/2" in line for line in lines), lines
        run = load_recorded(folder)
        assert run.provenance["command"] == "python -m zfkit record --profile book"
        assert run.provenance["threads"] == R.THREADS and run.provenance["wall_time_s"] > 0
        assert run.conv1["initial"].shape == run.conv1["weight"].shape == (8, 3, 11, 11)
        assert len(run.analysis["probe_predictions"]) == len(probe_images(out)[1])
        lines.clear()
        R.record(tiny, out=out, progress=lines.append)      # a second call only skips
        assert lines == ["[1/2] book-tiny-rec-s0: recorded already, skipped",
                         "[2/2] book-tiny-rec-s1: recorded already, skipped"]
        with pytest.raises(ValueError, match="no run.*nope"):
            R.record(tiny, out=out, only=("nope",))
        with pytest.raises(ValueError, match="jobs must be at least 1"):
            R.record(tiny, out=out, jobs=0)
    finally:
        SPECS.pop("tiny-rec", None)
