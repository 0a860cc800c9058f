"""zfkit.sample and zfkit.photos: the generated samples (determinism, layout, markers, refusals,
interrupted builds), the colour baseline that shows colour alone does not solve the photos
sample, the photo credits and the command line. Offline; small samples in tmp_path."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from zfkit import photos, sample, textures, voc
from zfkit.__main__ import main as cli
from zfkit.baseline import colour_histogram_baseline

KINDS = sample.SAMPLE_KINDS


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def photos_sample(tmp_path_factory):
    """240 photo images, cropped: every class, enough crops for the colour baseline."""
    out = tmp_path_factory.mktemp("photos")
    root = sample.make_sample(out, images=240, seed=0, kind="photos", workers=2)
    return root, voc.build_crops(root, out / "crops", progress=False)


# ------------------------------------------------------------------------------------------------
# Determinism

def test_photos_same_seed_same_bytes_whatever_the_workers(tmp_path):
    one = _files(sample.make_sample(tmp_path / "a", images=10, seed=3, kind="photos", workers=1))
    two = _files(sample.make_sample(tmp_path / "b", images=10, seed=3, kind="photos", workers=2))
    assert one == two
    assert sum(name.endswith(".jpg") for name in one) == 10
    other = _files(sample.make_sample(tmp_path / "c", images=10, seed=4, kind="photos", workers=2))
    assert other.keys() == one.keys()
    assert other["JPEGImages/000001.jpg"] != one["JPEGImages/000001.jpg"]
    assert other["Annotations/000001.xml"] != one["Annotations/000001.xml"]


def test_shapes_files_are_what_they_always_were(tmp_path):
    """The annotations and split lists of a shapes sample, digested when zfkit.voc drew them."""
    root = sample.make_sample(tmp_path, images=12, seed=3)
    digest = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in (".xml", ".txt"):
            digest.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    assert digest.hexdigest() == "680f40b357da374b514bf8eebb049b818c9cb0c0e047d4c4f9bf965d9b53b8ba"
    assert voc.make_sample is sample.make_sample and voc.SAMPLE_MARKER == sample.SAMPLE_MARKER


# ------------------------------------------------------------------------------------------------
# Layout, markers and what the crops are called

def test_photos_layout_is_read_by_the_crop_builder(photos_sample):
    root, manifest = photos_sample
    assert manifest["source"] == "generated-photos"
    assert "GENERATED" in manifest["description"] and "NOT Pascal VOC" in manifest["description"]
    assert all(n > 0 for n in manifest["counts"]["train"].values()), "every class in train"
    assert all(sum(manifest["counts"][s].values()) > 0 for s in ("val", "test"))
    assert sum(manifest["skipped"]["train"].values()) > 0, "difficult objects are flagged"
    xml = (root / "Annotations/000001.xml").read_text()
    assert "<database>zfkit generated photo-textured sample (NOT Pascal VOC data)</database>" in xml
    ids = {s: (root / f"ImageSets/Main/{s}.txt").read_text().split() for s in
           ("train", "val", "trainval", "test")}
    assert sorted(ids["train"] + ids["val"]) == ids["trainval"]
    assert len(ids["trainval"]) + len(ids["test"]) == 240
    objects = [o for x in sorted((root / "Annotations").glob("*.xml"))
               for o in voc.read_annotation(x).objects]
    assert any(o.truncated for o in objects) and any(o.difficult for o in objects)


def test_photos_crops_load_as_tensors(photos_sample):
    from zfkit.data import load_split

    root, manifest = photos_sample
    data = load_split(root.parents[1] / "crops", "val", size=32, progress=False)
    assert data.source == "generated-photos"
    assert tuple(data.images.shape[1:]) == (3, 32, 32)
    assert len(data) == sum(manifest["counts"]["val"].values())


def test_markers_say_kind_version_and_generated(photos_sample, tmp_path):
    root, _ = photos_sample
    marker = json.loads((root / sample.SAMPLE_MARKER).read_text())
    assert (marker["kind"], marker["version"], marker["images"], marker["seed"]) == \
        ("photos", photos.PHOTOS_VERSION, 240, 0)
    assert "GENERATED" in marker["note"] and "NOT Pascal VOC" in marker["note"]
    assert sum(marker["images_per_split"].values()) == 240
    assert marker["looks"]["aeroplane"] == list(photos.PHOTOS_LOOKS["aeroplane"])
    shapes = sample.make_sample(tmp_path, images=6, seed=1)
    marker = json.loads((shapes / sample.SAMPLE_MARKER).read_text())
    assert (marker["kind"], marker["version"]) == ("shapes", sample.SHAPES_VERSION)
    assert sample.sample_source(shapes)[0] == "generated-sample"
    assert sample.sample_source(root)[0] == "generated-photos"
    assert sample.sample_source(tmp_path) is None                   # no marker: real data


def test_classes_need_every_cue_together():
    looks = photos.PHOTOS_LOOKS
    assert len(set(looks.values())) == 20
    for position in range(3):                    # every single cue is shared by 4 or 10 classes
        counts = {v: sum(look[position] == v for look in looks.values())
                  for v in {look[position] for look in looks.values()}}
        assert min(counts.values()) >= 4, counts
    for name, unit in photos.OUTLINES.items():   # a horizontal flip keeps every outline
        points = {(round(x, 6), round(y, 6)) for x, y in unit}
        assert {(round(-x, 6) + 0.0, y) for x, y in points} == points, name


# ------------------------------------------------------------------------------------------------
# Refusals and interrupted builds

@pytest.mark.parametrize("kwargs, message", [
    ({"images": 2}, "images must be an integer of at least 3"),
    ({"images": "10"}, "images must be an integer"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"kind": "voc"}, r"kind must be one of \['shapes', 'photos'\]"),
    ({"workers": 0}, "workers must be a positive integer"),
    ({"workers": 1.5}, "workers must be a positive integer"),
])
def test_bad_arguments_say_what_to_pass(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample.make_sample(tmp_path, **{"images": 6, "kind": "photos", **kwargs})
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("kind", KINDS)
def test_foreign_folders_are_never_overwritten(tmp_path, kind):
    foreign = tmp_path / "VOCdevkit" / "VOC2007" / "Annotations"
    foreign.mkdir(parents=True)
    (foreign / "000001.xml").write_text("<annotation/>")
    with pytest.raises(ValueError, match="is not a zfkit sample: refusing to overwrite"):
        sample.make_sample(tmp_path, images=6, kind=kind, workers=1)
    assert (foreign / "000001.xml").read_text() == "<annotation/>"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        sample.make_sample(tmp_path / "file", images=6, kind=kind, workers=1)


@pytest.mark.parametrize("kind", KINDS)
def test_interrupted_or_damaged_builds_are_not_reused(tmp_path, kind):
    make = lambda **kw: sample.make_sample(tmp_path, images=6, seed=2, kind=kind,  # noqa: E731
                                           workers=1, **kw)
    (tmp_path / ".VOCdevkit.partial" / "VOC2007").mkdir(parents=True)   # a killed build
    (tmp_path / ".VOCdevkit.partial" / "VOC2007" / sample.SAMPLE_MARKER).write_text("{}")
    root = make()
    assert not (tmp_path / ".VOCdevkit.partial").exists()
    whole = _files(root)
    stamp = (root / "JPEGImages/000001.jpg").stat().st_mtime_ns
    assert make() == root and (root / "JPEGImages/000001.jpg").stat().st_mtime_ns == stamp
    (root / "JPEGImages/000004.jpg").unlink()                           # a damaged tree
    assert _files(make()) == whole
    marker = json.loads((root / sample.SAMPLE_MARKER).read_text())
    (root / sample.SAMPLE_MARKER).write_text(json.dumps({**marker, "version": -1}))
    assert _files(make()) == whole                                       # an older generator
    (root / sample.SAMPLE_MARKER).unlink()                              # no marker: not ours
    with pytest.raises(ValueError, match="not a zfkit sample"):
        make()


def test_another_kind_replaces_a_sample(tmp_path):
    sample.make_sample(tmp_path, images=6, seed=0)
    root = sample.make_sample(tmp_path, images=6, seed=0, kind="photos", workers=1)
    assert sample.sample_source(root)[0] == "generated-photos"
    assert not (tmp_path / ".VOCdevkit.old").exists()


# ------------------------------------------------------------------------------------------------
# Colour alone does not solve the photos sample

def test_colour_baseline_is_far_weaker_on_photos_than_on_shapes(photos_sample, tmp_path):
    root, _ = photos_sample
    on_photos = colour_histogram_baseline(root.parents[1] / "crops")
    shapes = sample.make_sample(tmp_path, images=240, seed=0)
    voc.build_crops(shapes, tmp_path / "crops", progress=False)
    on_shapes = colour_histogram_baseline(tmp_path / "crops")
    assert on_shapes.source == "generated-sample" and on_photos.source == "generated-photos"
    photos_acc = np.mean([on_photos.accuracy[s] for s in ("val", "test")])
    shapes_acc = np.mean([on_shapes.accuracy[s] for s in ("val", "test")])
    assert shapes_acc > 0.15, on_shapes.describe()
    assert photos_acc < 0.5 * shapes_acc, (on_photos.describe(), on_shapes.describe())
    assert on_photos.chance == 0.05 and 0 < on_photos.majority_share["val"] < 0.2
    assert "colour histogram (8^3 bins)" in on_photos.describe()


# ------------------------------------------------------------------------------------------------
# Credits and the command line

def _plain(doc: str) -> str:
    """A docstring without reST links and markup, on one line."""
    doc = re.sub(r"`([^`<]*?)\s*<[^>]*>`_{1,2}", r"\1", doc)     # `text <url>`_ -> text
    doc = re.sub(r"\s*<[^>]*>`?_{0,2}", "", doc)                  # a bare <url>`__ goes
    return " ".join(doc.replace("`", "").split())


def test_every_photo_is_credited_as_scikit_image_does():
    skimage_data = pytest.importorskip("skimage.data")
    loaded = photos.load_photos()
    assert set(loaded) == set(photos.PHOTO_CREDITS)
    for name, (function, material) in textures.PHOTO_SOURCES.items():
        doc = _plain(getattr(skimage_data, function).__doc__)
        for sentence in photos.PHOTO_CREDITS[name]:
            assert sentence in doc, (name, sentence)
        assert loaded[name].mode == ("L" if material == "mineral" else "RGB")
    text = photos.photo_credits_markdown()
    assert "Stefan van der Walt" in text and "Eileen Collins" in text and "NOT Pascal VOC" in text


def test_cli_makes_either_kind_and_refuses_bad_input(tmp_path, capsys):
    assert cli(["make-sample", "--kind", "photos", "--out", str(tmp_path / "p"), "--images", "6",
                "--seed", "1", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "kind 'photos'" in printed and "not real VOC data" in printed and "6 images" in printed
    root = tmp_path / "p" / "VOCdevkit" / "VOC2007"
    assert json.loads((root / sample.SAMPLE_MARKER).read_text())["seed"] == 1
    assert cli(["make-sample", "--out", str(tmp_path / "s"), "--images", "6"]) == 0
    assert "kind 'shapes'" in capsys.readouterr().out
    assert cli(["make-sample", "--out", str(tmp_path / "x"), "--images", "2"]) == 2
    assert "images must be an integer of at least 3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["make-sample", "--kind", "voc", "--out", str(tmp_path / "y")])
    shutil.rmtree(tmp_path / "s")
