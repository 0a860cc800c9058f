"""Tests of zfkit.train, zfkit.results and profiles.train_run: the recipe, checkpoints, exact resume
after a SIGKILL, refusals, the NaN stop, comparisons and recorded results.

Most tests train a tiny variant of AlexNet (8 filters per conv layer, 32-unit FC layers: the same
builder and loop, a thousandth of the work) at 64x64 on crops of the generated VOC-format sample;
one test trains the real AlexNet for an epoch through the command line.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from zfkit import voc
from zfkit.models import SPECS, conv_layers, derive_spec
from zfkit.train import (History, TrainConfig, TrainState, _rng_state, _set_rng_state,
                         amp_dtype, evaluate, fit, load_history, load_model, resolve_device)

TIMING = ("epoch_time", "images_per_s")
SMALL = dict(conv1=dict(filters=8), conv2=dict(filters=8), conv3=dict(filters=8),
             conv4=dict(filters=8), conv5=dict(filters=8), fc6=dict(filters=32),
             fc7=dict(filters=32))
FAST = dict(image_size=64, batch_size=8)


def _register_tiny() -> None:
    """``tiny`` (AlexNet's layout) and ``tiny-zf`` (ZFNet's conv1 and conv2), both narrow."""
    derive_spec("alexnet", "tiny", register=True, **SMALL)
    derive_spec("zfnet", "tiny-zf", register=True, **SMALL)


@pytest.fixture(autouse=True)
def tiny_specs():
    _register_tiny()
    yield
    SPECS.pop("tiny", None)
    SPECS.pop("tiny-zf", None)


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Crops of a 24-image generated sample: train, val and test splits, 20 classes."""
    root = tmp_path_factory.mktemp("sample")
    voc_root = voc.make_sample(root / "voc", images=24, seed=0)
    voc.build_crops(voc_root, root / "crops", progress=False)
    return root / "crops"


def _without_timing(history: History) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in history.records]


def _state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------------------------
# The recipe


def test_defaults_are_the_seeds_recipe() -> None:
    config = TrainConfig(model="alexnet")
    assert (config.epochs, config.batch_size, config.lr) == (50, 128, 1e-3)
    assert (config.optimizer, config.lr_step, config.lr_gamma) == ("adam", 15, 0.1)
    assert (config.label_smoothing, config.weight_decay, config.flip) == (0.0, 0.0, True)
    parts = TrainState.build(config, 20, torch.device("cpu"), None)
    assert isinstance(parts.optimizer, torch.optim.Adam)
    assert parts.model.classifier[-1].out_features == 20
    parts.optimizer.step()  # no gradients yet: changes nothing, but keeps StepLR from warning
    lrs = []
    for _ in range(31):
        lrs.append(parts.optimizer.param_groups[0]["lr"])
        parts.scheduler.step()
    assert lrs[0] == lrs[14] == 1e-3
    assert lrs[15] == pytest.approx(1e-4) and lrs[29] == pytest.approx(1e-4)
    assert lrs[30] == pytest.approx(1e-5)


def test_settings_can_be_overridden() -> None:
    config = TrainConfig(model="zfnet", optimizer="sgd", lr=0.01, momentum=0.8, seed=3)
    parts = TrainState.build(config, 5, torch.device("cpu"), None)
    assert isinstance(parts.optimizer, torch.optim.SGD)
    assert parts.optimizer.param_groups[0]["momentum"] == 0.8
    assert parts.model.classifier[-1].out_features == 5
    assert TrainConfig.from_dict(TrainConfig(seed=7).to_dict()) == TrainConfig(seed=7)


@pytest.mark.parametrize("bad, message", [
    (dict(model="vgg"), "unknown model 'vgg'"), (dict(optimizer="rmsprop"), "optimizer must be"),
    (dict(device="tpu"), "device must be"), (dict(amp="fp8"), "amp must be"),
    (dict(epochs=0), "epochs must be at least 1"), (dict(lr=0.0), "lr must be positive"),
    (dict(label_smoothing=1.0), "label_smoothing"), (dict(warmup_steps=-1), "warmup_steps"),
])
def test_bad_settings_are_refused(bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**bad)


def test_warmup_rises_linearly_then_chains_with_steplr() -> None:
    """The rate of every step, read inside the real loop: lr * (1/W + (1 - 1/W) k / W) for the
    first W = 5 steps, then lr; StepLR's drop after each epoch multiplies whatever it finds."""
    from zfkit.train import run_epoch

    config = TrainConfig(model="tiny", warmup_steps=5, lr_step=1, **FAST)
    parts = TrainState.build(config, 20, torch.device("cpu"), None)
    assert TrainState.build(TrainConfig(model="tiny"), 20, torch.device("cpu"), None).warmup is None
    x, y = torch.randn(8, 3, 64, 64), torch.arange(8)
    seen = []
    for _ in range(3):   # epochs of 3 steps
        run_epoch(parts.model, [(x, y)] * 3, torch.nn.CrossEntropyLoss(),
                  optimizer=parts.optimizer, warmup=parts.warmup,
                  on_batch=lambda step: seen.append(parts.optimizer.param_groups[0]["lr"]))
        parts.scheduler.step()
    rate = [min(1.0, 1 / 5 + (1 - 1 / 5) * (k + 1) / 5) for k in range(9)]  # after step k
    drop = [0.1 ** (k // 3) for k in range(9)]                                # StepLR, step 1
    assert seen == pytest.approx([1e-3 * r * d for r, d in zip(rate, drop)], rel=1e-9)
    assert parts.warmup.last_epoch == 5      # stepped no further once done


def test_an_older_checkpoint_without_warmup_resumes_as_no_warmup(tmp_path: Path) -> None:
    """A recipe saved before ``warmup_steps`` existed reads it as 0: it resumes as what it was,
    and a warm-up asked for now is refused rather than applied half-way."""
    from zfkit.checkpoint import CHECKPOINT_FORMAT, _check_resumable

    saved = {k: v for k, v in TrainConfig(model="tiny").to_dict().items() if k != "warmup_steps"}
    ckpt = {"format": CHECKPOINT_FORMAT, "config": saved}
    _check_resumable(ckpt, TrainConfig(model="tiny"), tmp_path / "last.pt")
    with pytest.raises(RuntimeError, match="warmup_steps: 0 in the checkpoint, 100 now"):
        _check_resumable(ckpt, TrainConfig(model="tiny", warmup_steps=100), tmp_path / "last.pt")


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown TrainConfig settings"):
        TrainConfig.from_dict({"lr": 1e-3, "learning_rate": 1e-3})


@pytest.mark.parametrize("capability, name, expected", [
    ((7, 5), "Tesla T4", torch.float16), ((7, 0), "Tesla V100", torch.float16),
    ((6, 0), "Tesla P100", torch.float16), ((8, 0), "A100", torch.bfloat16),
    ((8, 9), "L4", torch.bfloat16), ((9, 0), "H100", torch.bfloat16)])
def test_bf16_only_with_bf16_tensor_cores(capability, name, expected,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # A T4 "supports" bf16 by emulation (torch.cuda.is_bf16_supported() says yes), but has no
    # bf16 tensor cores: auto must choose fp16 there, whatever that function says.
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    gpu = torch.device("cuda")
    assert amp_dtype(TrainConfig(), gpu) is expected, name
    assert amp_dtype(TrainConfig(amp="off"), gpu) is None
    assert amp_dtype(TrainConfig(amp="bf16"), gpu) is torch.bfloat16   # asked for explicitly


def test_mixed_precision_choice() -> None:
    cpu = torch.device("cpu")
    assert amp_dtype(TrainConfig(), cpu) is None  # auto: fp32 on the CPU
    assert amp_dtype(TrainConfig(amp="bf16"), cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        amp_dtype(TrainConfig(amp="fp16"), cpu)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_random_states_survive_a_weights_only_round_trip(tmp_path: Path) -> None:
    import random

    generator = torch.Generator().manual_seed(5)
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    torch.save(_rng_state(generator), tmp_path / "rng.pt")

    def draw() -> list:
        return [torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random()],
                torch.rand(3, generator=generator).tolist()]

    first = draw()
    _set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True), generator)
    assert draw() == first


# ----------------------------------------------------------------------------------------------
# fit: history, checkpoints, best epoch, test accuracy


@pytest.fixture(scope="module")
def run(crops: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, History]:
    _register_tiny()
    out = tmp_path_factory.mktemp("run") / "tiny-s0"
    seen = []
    history = fit(TrainConfig(model="tiny", epochs=4, lr_step=2, **FAST), crops, out,
                  progress=False, callbacks=[lambda h: seen.append(h.epochs_done)])
    assert seen == [1, 2, 3, 4]  # the callback ran after every epoch
    return out, history


def test_history_records_every_epoch(run: tuple[Path, History], crops: Path) -> None:
    out, history = run
    assert [r["epoch"] for r in history.records] == [1, 2, 3, 4]
    assert history.column("lr") == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])  # StepLR, step 2
    for record in history.records:
        assert 0 <= record["train_acc"] <= 1 and 0 <= record["val_acc"] <= 1
        assert record["train_loss"] > 0 and record["epoch_time"] > 0 and record["images_per_s"] > 0
    manifest = json.loads((crops / "manifest.json").read_text())
    assert history.data_source == "generated-sample" and history.manifest_hash == manifest["hash"]
    assert history.completed and history.has_test
    assert load_history(out) == history == History.load(out / "history.json")


def test_best_checkpoint_is_the_best_val_epoch(run: tuple[Path, History], crops: Path) -> None:
    from zfkit.data import load_split

    out, history = run
    val_acc = history.column("val_acc")
    assert history.best_epoch == 1 + int(np.argmax(val_acc))  # the first of equal maxima
    assert history.best_val_acc == max(val_acc)
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["epoch"] == history.best_epoch
    model = load_model(out, "best")
    val = load_split(crops, "val", size=64, progress=False)
    assert evaluate(model, val, batch_size=8)[1] == pytest.approx(history.best_val_acc, abs=1e-12)
    test = load_split(crops, "test", size=64, progress=False)
    assert evaluate(model, test, batch_size=8) == pytest.approx(
        (history.test_loss, history.test_acc), rel=1e-6)


def test_summary_is_one_fixed_format_line(run: tuple[Path, History]) -> None:
    _, history = run
    line = history.summary()
    assert "\n" not in line
    assert line.startswith("tiny (seed 0, generated-sample): best val acc ")
    assert f"at epoch {history.best_epoch}/4, test acc {history.test_acc:.2%}" in line


def test_finished_run_is_returned_without_training(run: tuple[Path, History],
                                                   crops: Path) -> None:
    out, history = run
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    start = time.perf_counter()
    again = fit(TrainConfig(model="tiny", epochs=4, lr_step=2, **FAST), crops, out, progress=False)
    assert time.perf_counter() - start < 5
    assert again == history
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    last = torch.load(out / "last.pt", weights_only=True)
    assert "optimizer" not in last  # a finished run keeps only what chapters need
    with pytest.raises(RuntimeError, match="cannot be extended"):
        fit(TrainConfig(model="tiny", epochs=5, lr_step=2, **FAST), crops, out, progress=False)


def test_a_finished_run_keeps_fp16_best_weights_and_no_second_copy(run: tuple[Path, History]
                                                                   ) -> None:
    out, history = run
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["weights_dtype"] == "float16"
    assert all(v.dtype == torch.float16 for v in best["model"].values())
    last = torch.load(out / "last.pt", weights_only=True)
    assert not {"model", "optimizer", "scheduler", "rng"} & set(last)
    assert last["history"]["test_acc"] == history.test_acc and last["epoch"] == 4
    model = load_model(out, "best")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with pytest.raises(ValueError, match="keeps no weights.*use which='best'"):
        load_model(out, "last")


def test_slimming_changes_no_number_of_the_run(crops: Path, tmp_path: Path) -> None:
    """The test accuracy is measured on the full-precision best weights, before slimming."""
    config = TrainConfig(model="tiny", epochs=2, lr_step=2, **FAST)
    slim = fit(config, crops, tmp_path / "slim", progress=False)
    full = fit(config, crops, tmp_path / "full", progress=False, slim=False)
    assert _without_timing(slim) == _without_timing(full)
    assert (slim.best_epoch, slim.best_val_acc, slim.test_acc, slim.test_loss) == (
        full.best_epoch, full.best_val_acc, full.test_acc, full.test_loss)
    fp32 = torch.load(tmp_path / "full" / "best.pt", weights_only=True)["model"]
    fp16 = torch.load(tmp_path / "slim" / "best.pt", weights_only=True)["model"]
    assert all(torch.equal(fp32[k].half(), fp16[k]) for k in fp32)
    size = {d: sum(p.stat().st_size for p in (tmp_path / d).iterdir()) for d in ("slim", "full")}
    assert size["slim"] < 0.3 * size["full"], size     # fp16 best only vs fp32 best + last


def test_the_full_profile_runs_fit_in_2_gb() -> None:
    """Disk of the full profile's finished runs, from parameter counts (fp16 best.pt, no weights
    in last.pt), printed for the README: it must stay under 2 GB on a student's Drive."""
    from zfkit.models import build_model
    from zfkit.profiles import get_profile
    from zfkit.record import plan_runs

    profile = get_profile("full")
    total, peak_extra = 0, 0
    for plan in plan_runs(profile):
        with torch.device("meta"):                   # parameter counts, no memory
            n = sum(p.numel() for p in build_model(plan.model, num_classes=20).parameters())
        total += 2 * n + (1 << 20)                   # fp16 weights, plus headers and last.pt
        peak_extra = max(peak_extra, 4 * n * 3 + 4 * n - 2 * n)   # training: last.pt (weights,
    print(f"full profile: {len(plan_runs(profile))} finished runs take {total / 1e9:.2f} GB; "
          f"while the last one trains, {(total + peak_extra) / 1e9:.2f} GB")  # Adam) + fp32 best
    assert total < 2e9


def test_checkpoints_of_other_runs_are_refused(run: tuple[Path, History], crops: Path,
                                               tmp_path: Path) -> None:
    out, _ = run
    with pytest.raises(RuntimeError, match="model: 'tiny' in the checkpoint, 'tiny-zf' now"):
        fit(TrainConfig(model="tiny-zf", epochs=4, lr_step=2, **FAST), crops, out, progress=False)
    with pytest.raises(RuntimeError, match="lr: 0.001 in the checkpoint, 0.01 now"):
        fit(TrainConfig(model="tiny", epochs=4, lr_step=2, lr=0.01, **FAST), crops, out,
            progress=False)
    with pytest.raises(RuntimeError, match="already holds a run"):
        fit(TrainConfig(model="tiny", epochs=4, lr_step=2, **FAST), crops, out, resume=False)
    other = tmp_path / "other-crops"  # the same files under another manifest hash
    subprocess.run(["cp", "-r", str(crops), str(other)], check=True)
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "hash": "something-else"}))
    with pytest.raises(RuntimeError, match="trained on other data"):
        fit(TrainConfig(model="tiny", epochs=4, lr_step=2, **FAST), other, out, progress=False)


def test_nan_loss_stops_and_keeps_the_last_good_epoch(crops: Path, tmp_path: Path) -> None:
    # StepLR multiplies the rate by 1e12 after epoch 1: SGD then blows the weights up in epoch 2.
    config = TrainConfig(model="tiny", epochs=3, optimizer="sgd", lr=1e-3, lr_step=1,
                         lr_gamma=1e12, **FAST)
    with pytest.raises(RuntimeError, match="NaN or infinite in epoch 2.*still holds epoch 1"):
        fit(config, crops, tmp_path / "run", progress=False)
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and len(last["history"]["records"]) == 1
    assert all(torch.isfinite(t).all() for t in last["model"].values())
    assert load_history(tmp_path / "run").epochs_done == 1


# ----------------------------------------------------------------------------------------------
# Exact resume after a kill


SCRIPT = """
import sys, time
from pathlib import Path
from zfkit.models import derive_spec
from zfkit.train import TrainConfig, fit

derive_spec("alexnet", "tiny", register=True, **{small})
crops, out, pause = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]


class PauseMidEpoch:
    # after batch STEP of epoch EPOCH: say so in a marker file, then wait to be killed
    def __call__(self, history):
        pass

    def on_batch(self, epoch, step):
        if pause and (epoch, step) == (int(pause[0]), int(pause[1])):
            Path(pause[2]).write_text("paused")
            time.sleep(600)


config = TrainConfig(model="tiny", epochs=4, lr_step=2, **{fast}, **{extra})
history = fit(config, crops, out, progress=False, callbacks=[PauseMidEpoch()])
print(history.summary())
"""


@pytest.mark.parametrize("extra", [{}, {"warmup_steps": 100}], ids=["seed-recipe", "warmup"])
def test_killed_run_resumes_exactly(crops: Path, tmp_path: Path, extra: dict) -> None:
    # warmup: 100 steps outlast the 2 epochs kept before the kill, so the resumed run must
    # restore the warm-up half-way through
    script = tmp_path / "train_tiny.py"
    script.write_text(SCRIPT.format(small=SMALL, fast=FAST, extra=extra))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same thread count in every run
    python = [sys.executable, str(script), str(crops)]

    marker = tmp_path / "paused"
    killed = subprocess.Popen(python + [str(tmp_path / "killed"), "3", "1", str(marker)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert killed.poll() is None, "the run ended before it reached epoch 3"
            assert time.monotonic() < deadline, "the run never reached epoch 3"
            time.sleep(0.05)
        killed.send_signal(signal.SIGKILL)  # no chance to clean up, as in a Colab disconnect
    finally:
        killed.kill()
        killed.wait()
    assert torch.load(tmp_path / "killed" / "last.pt", weights_only=True)["epoch"] == 2
    assert load_history(tmp_path / "killed").epochs_done == 2

    subprocess.run(python + [str(tmp_path / "killed")], env=env, check=True)
    subprocess.run(python + [str(tmp_path / "straight")], env=env, check=True)
    resumed, straight = load_history(tmp_path / "killed"), load_history(tmp_path / "straight")
    assert resumed.epochs_done == straight.epochs_done == 4
    assert (resumed.column("lr")[0] < 1e-3) == bool(extra)   # the warm-up did run
    assert _without_timing(resumed) == _without_timing(straight)  # exactly, not approximately
    assert (resumed.best_epoch, resumed.best_val_acc, resumed.test_acc) == (
        straight.best_epoch, straight.best_val_acc, straight.test_acc)
    assert _state_equal(load_model(tmp_path / "killed", "best").state_dict(),
                        load_model(tmp_path / "straight", "best").state_dict())
    for name in ("best.pt", "last.pt"):      # the finished, slimmed files: equal too
        killed, straight = (torch.load(tmp_path / run / name, weights_only=True)
                            for run in ("killed", "straight"))
        assert killed.keys() == straight.keys() and "optimizer" not in killed
        assert ("model" in killed) == (name == "best.pt") and killed["epoch"] == straight["epoch"]
    assert _state_equal(*(torch.load(tmp_path / run / "best.pt", weights_only=True)["model"]
                          for run in ("killed", "straight")))


# ----------------------------------------------------------------------------------------------
# The command line, comparisons, recorded results, profiles


def test_cli_trains_the_real_alexnet_for_one_epoch(crops: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "zfkit", "train", "--model", "alexnet", "--data", str(crops),
               "--out", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "16",
               "--device", "cpu"]
    first = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "alexnet s0 epoch   1/1: train loss" in first.stderr + first.stdout
    summary = first.stdout.strip().splitlines()[-1]
    assert summary.startswith("alexnet (seed 0, generated-sample): best val acc")
    history = load_history(tmp_path / "run")
    assert history.epochs_done == 1 and history.config["batch_size"] == 16
    refused = subprocess.run(command, capture_output=True, text=True)
    assert refused.returncode == 2 and "already holds a run" in refused.stderr
    again = subprocess.run(command + ["--resume"], capture_output=True, text=True, check=True)
    assert again.stdout.strip().splitlines()[-1] == summary


def test_compare_trains_every_model_and_seed(crops: Path, tmp_path: Path) -> None:
    from zfkit.results import compare

    runs = compare(crops, tmp_path, models=("tiny", "tiny-zf"), seeds=2, epochs=2,
                   device="cpu", progress=False, **FAST)
    assert {name: [h.seed for h in hs] for name, hs in runs.items()} == {
        "tiny": [0, 1], "tiny-zf": [0, 1]}
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (tmp_path / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("model,runs,")
    import csv
    for row in csv.DictReader(rows):
        accs = [h.best_val_acc for h in runs[row["model"]]]
        assert float(row["best_val_acc_mean"]) == pytest.approx(np.mean(accs))
        assert float(row["best_val_acc_std"]) == pytest.approx(np.std(accs, ddof=1))
    assert "±" in (tmp_path / "results.md").read_text()
    assert runs["tiny"][0].records != runs["tiny"][1].records  # the seeds differ


def test_export_and_load_recorded(run: tuple[Path, History], tmp_path: Path) -> None:
    from zfkit.results import export_run, load_recorded

    out, history = run
    target = export_run(out, tmp_path / "results" / "tiny-smoke")
    recorded = load_recorded(target)
    assert recorded.history == history
    assert recorded.metrics["best_val_acc"] == history.best_val_acc
    assert recorded.metrics["test_acc"] == history.test_acc
    conv1 = conv_layers(load_model(out, "best"))[0][1]
    assert np.array_equal(recorded.conv1["weight"], conv1.weight.detach().numpy())
    assert recorded.conv1["weight"].shape == (8, 3, 11, 11)
    p = recorded.provenance
    assert p["manifest_hash"] == history.manifest_hash and p["data_source"] == "generated-sample"
    assert p["zfkit_version"] and p["git_commit"] and p["date"] and p["device"].startswith("cpu")
    assert "git_dirty" in p and p["torch_version"] == torch.__version__
    assert "generated-sample" in recorded.describe()
    assert load_recorded("no-such-result", missing_ok=True) is None
    with pytest.raises(FileNotFoundError, match="python -m zfkit export"):
        load_recorded("no-such-result")


def test_unfinished_run_is_not_exported(crops: Path, tmp_path: Path) -> None:
    from zfkit.results import export_run

    class Stop(Exception):
        pass

    def stop(history: History) -> None:
        raise Stop

    with pytest.raises(Stop):
        fit(TrainConfig(model="tiny", epochs=3, **FAST), crops, tmp_path / "run", progress=False,
            callbacks=[stop])
    with pytest.raises(ValueError, match="not finished .1/3 epochs"):
        export_run(tmp_path / "run", tmp_path / "out")


def test_train_run_is_the_single_entry_point(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from zfkit import profiles

    monkeypatch.setenv("ZFKIT_HOME", str(tmp_path))
    profile = profiles.Profile("test", "sample", epochs=1, sample_images=12, seeds=(0,))
    folder = profiles.train_run(profile, "tiny", seed=1, **FAST)
    assert folder == tmp_path / "runs" / "test" / "tiny-s1-batch_size8-image_size64"
    history = load_history(folder)
    assert (history.seed, history.epochs_done, history.data_source) == (1, 1, "generated-sample")
    mtime = (folder / "last.pt").stat().st_mtime_ns
    assert profiles.train_run(profile, "tiny", seed=1, **FAST) == folder
    assert (folder / "last.pt").stat().st_mtime_ns == mtime  # found, not trained again
    assert any((tmp_path / "cache").iterdir())  # decoded crops are cached for the next run


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_epoch_never_waits_for_the_device(crops: Path) -> None:
    from zfkit.data import batches, load_split
    from zfkit.train import _read, run_epoch

    device = torch.device("cuda")
    config = TrainConfig(model="tiny", amp="fp16", **FAST)
    parts = TrainState.build(config, 20, device, torch.float16)
    train = load_split(crops, "train", size=64, progress=False).to(device)
    loader = batches(train, 8, shuffle=True, flip=True, generator=parts.generator,
                     channels_last=True)
    parts.model.train()
    torch.cuda.set_sync_debug_mode("error")  # any host sync inside the loop raises
    try:
        totals = run_epoch(parts.model, loader, torch.nn.CrossEntropyLoss(),
                           optimizer=parts.optimizer, scaler=parts.scaler, amp=torch.float16)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    loss, acc, bad = _read(totals)
    assert loss > 0 and 0 <= acc <= 1 and not bad
