"""The data benchmark's recorded figures, which chapter 4 prints: present, complete, consistent."""
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "data-bench.json"
# What chapter 4 reads from the file.
KEYS = {"benchmark", "date", "command", "settings", "machine", "data", "crops", "batch_size",
        "timed_epochs", "device", "paths", "images_per_s", "images_per_s_range",
        "cpu_ms_per_image", "ratio_images_per_s", "ratio_cpu_per_image",
        "epoch_s_at_seed_train_crops"}
MACHINE = {"cpu", "cpu_count", "torch", "torch_threads", "load_average_before"}
PATHS = {"cached", "imagefolder"}


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_data", ROOT / "bench" / "bench_data.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_data"] = module          # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _check(record: dict) -> None:
    assert KEYS <= set(record), f"missing: {sorted(KEYS - set(record))}"
    assert MACHINE <= set(record["machine"]), sorted(MACHINE - set(record["machine"]))
    for key in ("paths", "images_per_s", "images_per_s_range", "cpu_ms_per_image"):
        assert set(record[key]) == PATHS, key
    rates = record["images_per_s"]
    assert all(rate > 0 for rate in rates.values())
    assert math.isclose(record["ratio_images_per_s"], rates["cached"] / rates["imagefolder"])
    for path, (low, high) in record["images_per_s_range"].items():
        assert low <= rates[path] <= high, path
    assert record["command"].startswith("python bench/bench_data.py")


def test_recorded_data_bench_has_what_chapter_4_prints():
    if not RESULT.is_file():
        pytest.fail(f"{RESULT.relative_to(ROOT)} is missing: run python bench/bench_data.py "
                    "--random-jpegs --sample-crops 400 --epochs 3 --json "
                    "bench/results/data-bench.json")
    _check(json.loads(RESULT.read_text()))


def test_write_json_keeps_figures_and_provenance(tmp_path, monkeypatch):
    bench = _bench_module()
    cfg = bench.parse_args(["--random-jpegs", "--epochs", "2", "--json", str(tmp_path / "x.json")])
    assert cfg.json_out == tmp_path / "x.json"
    figures = {"data": "random", "crops": 10, "batch_size": 4, "timed_epochs": 2,
               "device": "cpu", "paths": {"cached": "a", "imagefolder": "b"},
               "images_per_s": {"cached": 300.0, "imagefolder": 100.0},
               "images_per_s_range": {"cached": [250.0, 310.0], "imagefolder": [90.0, 120.0]},
               "cpu_ms_per_image": {"cached": 1.0, "imagefolder": 4.0},
               "ratio_images_per_s": 3.0, "ratio_cpu_per_image": 4.0,
               "epoch_s_at_seed_train_crops": {"crops": 6301, "cached": 21.0,
                                               "imagefolder": 63.0}}
    monkeypatch.setattr(sys, "argv", ["bench/bench_data.py", "--random-jpegs"])
    bench.write_json(cfg.json_out, cfg, figures, [1.0, 1.0, 1.0])
    record = json.loads(cfg.json_out.read_text())
    _check(record)
    assert record["settings"]["epochs"] == 2 and "json_out" not in record["settings"]
    assert record["machine"]["load_average_before"] == [1.0, 1.0, 1.0]
    assert not list(tmp_path.glob("*.tmp"))
