"""Hostile input, written the way issue 12's faults were found: VOC trees, crops folders, tar
archives, HTTP servers on 127.0.0.1, checkpoints and caches made in tmp_path, then fed to the
real code paths (the crop builder, the command line, the download, the cache, ``fit``).

Each fault class must end in a clear error (what is wrong, with which file, what to do) or in a
correct result: never an escape from the given folders, a deleted user file, a raw traceback, a
hang, or a corrupt file trusted.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import threading
import time
import warnings
import xml.etree.ElementTree as ET
import zipfile
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zfkit import crops as zcrops
from zfkit import data as D
from zfkit import voc
from zfkit.__main__ import main as cli
from zfkit.annotations import read_annotation
from zfkit.atomic import folder_lock, remove_stale_partials, write_atomic
from zfkit.checkpoint import save_checkpoint
from zfkit.download import byte_cap
from zfkit.integrity import sidecar, verify_file, write_verified
from zfkit.manifest import verify_crops
from zfkit.models import SPECS, derive_spec
from zfkit.names import BadName, check_name
from zfkit.train import TrainConfig, fit, load_model

# ------------------------------------------------------------------------------------------------
# A VOC tree written by hand


def _xml(filename: str, objects: list[tuple], size=(40, 30)) -> str:
    """objects: ``(name, (xmin, ymin, xmax, ymax), difficult)``; any value may be a string."""
    objs = "".join(
        f"<object><name>{name}</name><truncated>0</truncated><difficult>{diff}</difficult>"
        f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax>"
        "</bndbox></object>" for name, b, diff in objects)
    return (f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
            f"<height>{size[1]}</height><depth>3</depth></size>{objs}</annotation>")


def _image(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))


def _tree(root: Path, images: dict, splits: dict) -> Path:
    """images: id -> objects (see :func:`_xml`); splits: split -> text of its list (or ids)."""
    voc_root = root / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc_root / sub).mkdir(parents=True, exist_ok=True)
    for n, (image_id, objects) in enumerate(images.items()):
        (voc_root / "Annotations" / f"{image_id}.xml").write_text(_xml(f"{image_id}.jpg",
                                                                       objects))
        _image(n).save(voc_root / "JPEGImages" / f"{image_id}.jpg")
    for split, ids in splits.items():
        text = ids if isinstance(ids, str) else "".join(f"{i}\n" for i in ids)
        (voc_root / "ImageSets/Main" / f"{split}.txt").write_text(text)
    return voc_root


CAT = [("cat", (2, 2, 20, 20), 0)]


def _plain_tree(tmp_path: Path, **extra) -> Path:
    images = {"000001": CAT, "000002": [("dog", (5, 5, 30, 25), 0)], "000003": CAT}
    return _tree(tmp_path, {**images, **extra.pop("images", {})},
                 {"train": ["000001", "000002"], "val": ["000003"], **extra})


def _files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


# ------------------------------------------------------------------------------------------------
# 1. Names read from data never become paths outside the folders given


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/b", "a\\b", "..", ".", "a\x00b",
                                 "x" * 201, "tab\there", "", 7])
def test_check_name_refuses_what_is_not_a_plain_name(bad):
    with pytest.raises(BadName, match=r"train.txt, line 3: the image id .* must be a plain"):
        check_name(bad, what="image id", source="train.txt", line=3)


@pytest.mark.parametrize("good", ["000005", "2008_000123", "a.b", "..hidden", "ü" * 60])
def test_check_name_accepts_plain_names(good):
    assert check_name(good, what="image id", source="train.txt") == good


def _escape_tree(tmp_path: Path, image_id: str) -> Path:
    """A tree whose train.txt lists ``image_id`` (line 2), with an annotation and an image
    planted where that id points, so that using it as a path would succeed."""
    voc_root = _tree(tmp_path / "a", {"000001": CAT}, {"train": ["000001", image_id],
                                                         "val": []})
    target = (voc_root / "Annotations" / f"{image_id}.xml")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(_xml("000001.jpg", CAT))
    return voc_root


@pytest.mark.parametrize("kind", ["dotdot", "absolute"])
def test_ids_in_split_lists_never_read_or_write_outside(tmp_path, kind):
    image_id = "../../../../escape" if kind == "dotdot" else str(tmp_path / "escape")
    voc_root = _escape_tree(tmp_path, image_id)
    out = tmp_path / "out" / "crops"
    assert cli(["voc-crops", "--voc-root", str(voc_root), "--out", str(out)]) == 2
    with pytest.raises(BadName, match=r"train.txt, line 2: the image id"):
        voc.build_crops(voc_root, out, progress=False)
    written = [p for p in tmp_path.rglob("escape_*")]
    assert written == [], f"a crop was written outside --out: {written}"


def test_image_file_names_in_xml_are_checked(tmp_path):
    voc_root = _plain_tree(tmp_path)
    (voc_root / "Annotations" / "000002.xml").write_text(_xml("../../../secret.jpg", CAT))
    with pytest.raises(ValueError, match=r"000002.xml.*image file name '../../../secret.jpg'"):
        voc.build_crops(voc_root, tmp_path / "crops", progress=False)
    manifest = voc.build_crops(voc_root, tmp_path / "lenient", skip_bad=True, progress=False)
    assert manifest["skipped"]["train"] == {"bad_annotation_file": 1}


@pytest.mark.parametrize("field, value", [("source", "../../outside"),
                                          ("source", "/tmp/outside"),
                                          ("classes", ["../../cat"] + list(voc.VOC_CLASSES[1:]))])
def test_manifest_fields_never_become_paths_outside(tmp_path, field, value):
    voc_root = _plain_tree(tmp_path)
    crops = tmp_path / "crops"
    voc.build_crops(voc_root, crops, progress=False)
    manifest = json.loads((crops / "manifest.json").read_text())
    manifest[field] = value
    (crops / "manifest.json").write_text(json.dumps(manifest))
    cache = tmp_path / "deep" / "cache"
    with pytest.raises(ValueError, match=f"manifest.json.*the {'source' if field == 'source' else 'class name'}"):
        D.load_split(crops, "train", size=16, cache_dir=cache, progress=False)
    assert not list(tmp_path.rglob("*outside*")) and not cache.exists()


# ------------------------------------------------------------------------------------------------
# 2. --out: never a user's folder


def test_a_foreign_folder_with_a_manifest_json_is_refused_and_kept(tmp_path, capsys):
    voc_root = _plain_tree(tmp_path)
    mine = tmp_path / "mine"
    for split in ("train", "val", "test"):
        (mine / split).mkdir(parents=True)
        (mine / split / "holiday.jpg").write_bytes(b"my photo")
    (mine / "manifest.json").write_text('{"name": "my web app", "files": {}}')
    before = {p: p.read_bytes() for p in mine.rglob("*") if p.is_file()}
    assert cli(["voc-crops", "--voc-root", str(voc_root), "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert "holds no crops build made by zfkit" in err and "choose an empty or new folder" in err
    assert {p: p.read_bytes() for p in mine.rglob("*") if p.is_file()} == before


def test_user_files_inside_a_zfkit_crops_folder_are_never_deleted(tmp_path):
    voc_root = _plain_tree(tmp_path)
    out = tmp_path / "crops"
    voc.build_crops(voc_root, out, progress=False)
    (out / "train" / "cat" / "my-notes.txt").write_text("keep me")
    (voc_root / "ImageSets/Main/val.txt").write_text("")          # the source changed: rebuild
    with pytest.raises(ValueError, match=r"does not list, e.g. \['train/cat/my-notes.txt'\]"):
        voc.build_crops(voc_root, out, progress=False)
    assert (out / "train" / "cat" / "my-notes.txt").read_text() == "keep me"


def test_a_zfkit_manifest_copied_beside_other_files_does_not_make_them_deletable(tmp_path):
    voc_root = _plain_tree(tmp_path)
    voc.build_crops(voc_root, tmp_path / "crops", progress=False)
    mine = tmp_path / "mine"
    (mine / "train").mkdir(parents=True)
    (mine / "train" / "thesis.pdf").write_bytes(b"%PDF")
    shutil.copy(tmp_path / "crops" / "manifest.json", mine / "manifest.json")
    with pytest.raises(ValueError, match="thesis.pdf"):
        voc.build_crops(voc_root, mine, progress=False)
    assert (mine / "train" / "thesis.pdf").read_bytes() == b"%PDF"


def test_out_that_is_a_file_is_a_clear_error(tmp_path, capsys):
    voc_root = _plain_tree(tmp_path)
    (tmp_path / "afile").write_text("x")
    assert cli(["voc-crops", "--voc-root", str(voc_root), "--out", str(tmp_path / "afile")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "x"


def test_unwritable_crops_out_is_found_before_any_work(tmp_path, capsys):
    voc_root = _plain_tree(tmp_path)
    (tmp_path / "afile").write_text("x")                  # nothing can be made under a file
    out = tmp_path / "afile" / "crops"
    assert cli(["voc-crops", "--voc-root", str(voc_root), "--out", str(out)]) == 2
    assert "cannot write to --out" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_crops_out_is_a_clear_error(tmp_path):
    voc_root = _plain_tree(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(RuntimeError, match="cannot write to --out"):
            voc.build_crops(voc_root, ro / "crops", progress=False)
    finally:
        ro.chmod(0o700)


# ------------------------------------------------------------------------------------------------
# 3. Archives: refused before anything is written, with or without tarfile's data filter


def _tar(entries: list[tuple]) -> bytes:
    """entries: (name, kind, payload): kind "file" (bytes), "dir", "sym"/"hard" (target),
    "chr", "fifo"."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
                         "chr": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            if kind in ("sym", "hard"):
                info.linkname = payload
            tar.addfile(info)
    return buffer.getvalue()


GOOD = ("VOCdevkit/VOC2007/ImageSets/Main/train.txt", "file", b"000001\n")
HOSTILE_ARCHIVES = {
    "link-chain": [GOOD, ("s1", "sym", "."), ("s1/s2", "sym", ".."), ("s2/evil.txt", "file", b"x")],
    "link-to-link": [GOOD, ("a", "sym", "b"), ("b", "sym", "c"), ("c", "dir", None)],
    "symlink-out": [GOOD, ("VOCdevkit/l", "sym", "../../evil.txt")],
    "symlink-absolute": [GOOD, ("VOCdevkit/l", "sym", "/etc/passwd")],
    "through-symlink": [GOOD, ("VOCdevkit/l", "sym", "VOC2007"), ("VOCdevkit/l/x", "file", b"x")],
    "hardlink-out": [GOOD, ("VOCdevkit/h", "hard", "../../etc/passwd")],
    "hardlink-absolute": [GOOD, ("VOCdevkit/h", "hard", "/etc/passwd")],
    "device": [GOOD, ("VOCdevkit/null", "chr", None)],
    "fifo": [GOOD, ("VOCdevkit/pipe", "fifo", None)],
    "absolute-name": [GOOD, ("/tmp/zfkit-evil.txt", "file", b"x")],
    "dotdot-name": [GOOD, ("VOCdevkit/../../evil.txt", "file", b"x")],
}


@pytest.mark.parametrize("with_filter", [True, False], ids=["data-filter", "no-filter"])
@pytest.mark.parametrize("case", list(HOSTILE_ARCHIVES))
def test_hostile_archives_are_refused_before_writing(tmp_path, monkeypatch, case, with_filter):
    if not with_filter:           # as on Python < 3.10.12 / 3.11.4: no tarfile.data_filter
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    archive = tmp_path / "bad.tar"
    archive.write_bytes(_tar(HOSTILE_ARCHIVES[case]))
    dest = tmp_path / "root" / "dest"
    with pytest.raises(RuntimeError, match="refusing to extract bad.tar: nothing was extracted"):
        voc.safe_extract(archive, dest)
    assert list(dest.iterdir()) == [], "a half-written tree was left"
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "root" / "evil.txt").exists()
    assert not Path("/tmp/zfkit-evil.txt").exists()


def test_a_genuine_archive_with_an_inside_link_still_extracts(tmp_path, monkeypatch):
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    archive = tmp_path / "ok.tar"
    archive.write_bytes(_tar([GOOD, ("VOCdevkit/VOC2007/f.txt", "file", b"y"),
                              ("VOCdevkit/VOC2007/link", "sym", "f.txt"),
                              ("VOCdevkit/VOC2007/hard", "hard", "VOCdevkit/VOC2007/f.txt")]))
    voc.safe_extract(archive, tmp_path / "dest")
    assert (tmp_path / "dest/VOCdevkit/VOC2007/link").read_bytes() == b"y"
    assert (tmp_path / "dest/VOCdevkit/VOC2007/hard").read_bytes() == b"y"


def test_a_damaged_archive_is_a_clear_error(tmp_path):
    (tmp_path / "bad.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(RuntimeError, match="bad.tar is not a readable tar archive"):
        voc.safe_extract(tmp_path / "bad.tar", tmp_path / "dest")


# ------------------------------------------------------------------------------------------------
# 4. Integrity: checkpoints, caches and crops that changed are never trusted


def _flip_in_largest_entry(path: Path, n: int = 4096) -> None:
    """Flip ``n`` bytes in the middle of the largest entry of a torch zip file (a tensor)."""
    with zipfile.ZipFile(path) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    with open(path, "r+b") as f:
        f.seek(info.header_offset)
        name_len, extra_len = struct.unpack("<HH", f.read(30)[26:30])
        start = info.header_offset + 30 + name_len + extra_len
        n = min(n, info.file_size)
        f.seek(start + (info.file_size - n) // 2)
        block = bytes(b ^ 0xFF for b in f.read(n))
        f.seek(start + (info.file_size - n) // 2)
        f.write(block)


SMALL = dict(conv1=dict(filters=8), conv2=dict(filters=8), conv3=dict(filters=8),
             conv4=dict(filters=8), conv5=dict(filters=8), fc6=dict(filters=32),
             fc7=dict(filters=32))


@pytest.fixture
def tiny():
    derive_spec("alexnet", "tiny-h", register=True, **SMALL)
    yield TrainConfig(model="tiny-h", epochs=3, image_size=64, batch_size=8, device="cpu")
    SPECS.pop("tiny-h", None)


@pytest.fixture(scope="module")
def sample_crops(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    voc_root = voc.make_sample(root / "voc", images=24, seed=0)
    voc.build_crops(voc_root, root / "crops", progress=False)
    return root / "crops"


class _Stop(Exception):
    pass


def _stopped_run(config, crops: Path, out: Path) -> Path:
    """A run killed after its first epoch (``last.pt`` holds epoch 1)."""
    def stop(history):
        raise _Stop

    with pytest.raises(_Stop):
        fit(config, crops, out, progress=False, callbacks=[stop])
    return out


def test_a_corrupt_last_pt_is_refused_with_what_to_do(tmp_path, tiny, sample_crops, capsys):
    run = _stopped_run(tiny, sample_crops, tmp_path / "run")
    _flip_in_largest_entry(run / "last.pt")                 # 4 KiB of weights flipped
    with pytest.raises(RuntimeError, match=r"last.pt is corrupt.*Do not resume from it: delete"):
        fit(tiny, sample_crops, run, progress=False)
    assert cli(["train", "--model", "tiny-h", "--data", str(sample_crops), "--out", str(run),
                "--epochs", "3", "--batch-size", "8", "--device", "cpu", "--resume"]) == 2
    assert "is corrupt" in capsys.readouterr().err


def test_resume_cleans_the_temporary_files_a_kill_left(tmp_path, tiny, sample_crops):
    run = _stopped_run(tiny, sample_crops, tmp_path / "run")
    dead = run / ".last.pt.999999999.k3jdh2ls.partial"     # no such pid
    old = run / ".best.pt.ab12cd34.partial"                 # an older zfkit's name, 2 hours old
    dead.write_bytes(b"x" * 1000)
    old.write_bytes(b"x" * 1000)
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    history = fit(tiny, sample_crops, run, progress=False)
    assert history.completed and not dead.exists() and not old.exists()
    assert sorted(p.name for p in run.iterdir()) == [
        "best.pt", "best.pt.sha256", "history.json", "last.pt", "last.pt.sha256"]


def test_a_corrupt_best_pt_is_refused(tmp_path, tiny, sample_crops):
    fit(tiny, sample_crops, tmp_path / "run", progress=False)
    _flip_in_largest_entry(tmp_path / "run" / "best.pt")
    with pytest.raises(RuntimeError, match=r"best.pt is corrupt.*train again"):
        load_model(tmp_path / "run", "best")


def test_a_flipped_byte_in_the_cache_is_rebuilt(tmp_path, sample_crops):
    cache = tmp_path / "cache"
    fresh = D.load_split(sample_crops, "train", size=16, progress=False)
    D.load_split(sample_crops, "train", size=16, cache_dir=cache, progress=False)
    (path,) = cache.glob("*.pt")
    _flip_in_largest_entry(path, n=1)
    with pytest.warns(UserWarning, match="is corrupt.*rebuilt"):
        again = D.load_split(sample_crops, "train", size=16, cache_dir=cache, progress=False)
    assert torch.equal(again.images, fresh.images)
    assert verify_file(path, what="cache", remedy="")         # and the file was rewritten whole


def test_a_crop_changed_in_place_is_found_by_its_digest_and_rebuilt(tmp_path):
    voc_root = _plain_tree(tmp_path)
    out = tmp_path / "crops"
    manifest = voc.build_crops(voc_root, out, progress=False)
    crop = out / manifest["files"]["train"][0]
    original = crop.read_bytes()
    _image(9).crop((0, 0, 19, 19)).save(crop, quality=95)   # a valid JPEG, other pixels
    with pytest.raises(RuntimeError, match=f"{crop.name}.*MD5.*voc-crops"):
        D.load_split(out, "train", size=16, progress=False)
    crop.write_bytes(original[: len(original) // 2])          # truncated in place
    again = voc.build_crops(voc_root, out, progress=False)    # noticed: rebuilt
    assert again["hash"] == manifest["hash"] and crop.read_bytes() == original


def test_a_kill_between_digest_and_rename_leaves_a_verifiable_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    write_verified(path, lambda f: f.write(b"epoch 1" * 1000))
    real = os.replace

    def killed(src, dst):
        if Path(dst) == path:
            raise KeyboardInterrupt                           # the process dies here
        return real(src, dst)

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_verified(path, lambda f: f.write(b"epoch 2" * 1000))
    monkeypatch.undo()
    assert path.read_bytes() == b"epoch 1" * 1000 and verify_file(path, what="x", remedy="")
    write_verified(path, lambda f: f.write(b"epoch 2" * 1000))
    assert verify_file(path, what="x", remedy="")
    assert json.loads(sidecar(path).read_text())["also"] == []
    path.write_bytes(b"epoch 3" * 1000)                       # same size, other bytes
    with pytest.raises(RuntimeError, match="is corrupt"):
        verify_file(path, what="checkpoint", remedy="do X")


def test_leftover_partials_are_cleaned_at_the_next_write(tmp_path):
    target = tmp_path / "last.pt"
    dead = tmp_path / ".last.pt.999999999.aaaa.partial"
    live = tmp_path / f".last.pt.{os.getppid()}.bbbb.partial"  # a live writer's: kept
    legacy_old = tmp_path / ".last.pt.cccccccc.partial"
    legacy_new = tmp_path / ".last.pt.dddddddd.partial"        # may be being written: kept
    other = tmp_path / ".best.pt.999999999.eeee.partial"       # another target's: not touched
    for p in (dead, live, legacy_old, legacy_new, other):
        p.write_bytes(b"x")
    os.utime(legacy_old, (time.time() - 7200, time.time() - 7200))
    save_checkpoint({"epoch": 1}, target)
    assert not dead.exists() and not legacy_old.exists()
    assert live.exists() and legacy_new.exists() and other.exists()
    assert remove_stale_partials(tmp_path / "best.pt") == [other]


# ------------------------------------------------------------------------------------------------
# 5. --skip-bad really skips; strict mode says what is wrong


@pytest.mark.parametrize("value", ["inf", "1e400", "-inf", "nan", "12px"])
def test_non_finite_coordinates_name_the_file_or_are_skipped(tmp_path, value):
    voc_root = _plain_tree(tmp_path, images={"000002": [("dog", (2, value, 30, 25), 0)]})
    with pytest.raises(ValueError, match=rf"000002.xml: <ymin> is '{value}', not a"):
        voc.build_crops(voc_root, tmp_path / "strict", progress=False)
    manifest = voc.build_crops(voc_root, tmp_path / "lenient", skip_bad=True, progress=False)
    assert manifest["skipped"]["train"] == {"bad_annotation_file": 1}


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("pixels", [(15000, 15000), (10000, 10000)], ids=["over-2x", "over-1x"])
def test_decompression_bombs_are_refused_or_skipped(tmp_path, pixels):
    voc_root = _plain_tree(tmp_path)
    (voc_root / "JPEGImages" / "000002.jpg").write_bytes(_png_header_only(*pixels))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(ValueError, match=r"cannot read image .*000002.jpg"):
            voc.build_crops(voc_root, tmp_path / "strict", progress=False)
        manifest = voc.build_crops(voc_root, tmp_path / "lenient", skip_bad=True, progress=False)
    assert manifest["skipped"]["train"] == {"unreadable_image": 1}


def _in_thread(fn, timeout: float = 60.0):
    """Run ``fn`` in a thread; fail (instead of hanging) if it does not return in time."""
    result: dict = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as exc:    # noqa: BLE001  (handed back to the test)
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    return thread, result


@pytest.mark.parametrize("where", ["JPEGImages/000002.jpg", "Annotations/000002.xml"])
def test_a_fifo_is_never_opened(tmp_path, where):
    voc_root = _plain_tree(tmp_path)
    fifo = voc_root / where
    fifo.unlink()
    os.mkfifo(fifo)
    thread, result = _in_thread(lambda: voc.build_crops(voc_root, tmp_path / "strict",
                                                        progress=False))
    if thread.is_alive():                       # unblock the reader, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
        pytest.fail(f"the builder opened the FIFO {where} and hung")
    assert isinstance(result.get("error"), ValueError) and "is a FIFO" in str(result["error"])
    manifest = voc.build_crops(voc_root, tmp_path / "lenient", skip_bad=True, progress=False)
    reason = "unreadable_image" if where.startswith("JPEG") else "bad_annotation_file"
    assert manifest["skipped"]["train"] == {reason: 1}


def test_an_inverted_box_is_an_error_in_strict_mode(tmp_path):
    voc_root = _plain_tree(tmp_path, images={"000002": [("dog", (30, 5, 10, 25), 0)]})
    with pytest.raises(ValueError, match=r"object 0 \(dog\) of .*000002.xml has an inverted box"):
        voc.build_crops(voc_root, tmp_path / "strict", progress=False)
    manifest = voc.build_crops(voc_root, tmp_path / "lenient", skip_bad=True, progress=False)
    assert manifest["skipped"]["train"] == {"inverted_box": 1}


@pytest.mark.parametrize("flag, difficult", [("true", True), ("True", True), ("yes", True),
                                             ("1", True), (" 1 ", True), ("0", False),
                                             ("false", False), ("", False)])
def test_difficult_spelled_as_words_is_difficult(tmp_path, flag, difficult):
    voc_root = _plain_tree(tmp_path, images={"000002": [("dog", (5, 5, 30, 25), flag)]})
    assert read_annotation(voc_root / "Annotations/000002.xml").objects[0].difficult is difficult
    manifest = voc.build_crops(voc_root, tmp_path / "crops", progress=False)
    assert manifest["counts"]["train"]["dog"] == (0 if difficult else 1)


def test_an_unknown_difficult_value_is_named(tmp_path):
    voc_root = _plain_tree(tmp_path, images={"000002": [("dog", (5, 5, 30, 25), "maybe")]})
    with pytest.raises(ValueError, match=r"000002.xml: <difficult> is 'maybe'; expected 0 or 1"):
        voc.build_crops(voc_root, tmp_path / "crops", progress=False)


def test_an_id_listed_twice_is_used_once_with_a_warning(tmp_path):
    voc_root = _plain_tree(tmp_path, train="000001\n000002\n000001\n")
    with pytest.warns(UserWarning, match=r"train.txt lists 1 image id\(s\) twice: '000001' "
                                         r"\(lines 1 and 3\)"):
        manifest = voc.build_crops(voc_root, tmp_path / "crops", progress=False)
    assert manifest["images"]["train"] == 2 and manifest["counts"]["train"]["cat"] == 1
    assert voc.read_manifest(tmp_path / "crops")["hash"] == manifest["hash"]   # it verifies


def test_an_id_in_two_splits_is_refused_as_leakage(tmp_path, capsys):
    voc_root = _plain_tree(tmp_path, val=["000003", "000002"])
    out = tmp_path / "crops"
    assert cli(["voc-crops", "--voc-root", str(voc_root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "listed in both ImageSets/Main/train.txt and val.txt" in err and "'000002'" in err
    assert "leakage" in err and not out.exists()


def test_missing_test_annotations_are_named_never_a_silently_dropped_split(tmp_path):
    voc_root = _plain_tree(tmp_path, images={"000004": CAT}, test=["000004", "000009"])
    with pytest.raises(FileNotFoundError, match=r"test.txt lists 1 image\(s\) without an "
                                                r"annotation.*'000009'.*skip_bad"):
        voc.build_crops(voc_root, tmp_path / "strict", progress=False)
    manifest = voc.build_crops(voc_root, tmp_path / "lenient", skip_bad=True, progress=False)
    assert manifest["splits"] == ["train", "val", "test"]
    assert manifest["skipped"]["test"] == {"missing_annotation": 1}
    assert manifest["counts"]["test"]["cat"] == 1


def test_a_test_list_without_any_annotation_is_left_out_with_a_warning(tmp_path):
    voc_root = _plain_tree(tmp_path, test=["000008", "000009"])
    with pytest.warns(UserWarning, match="test.txt lists 2 images but none has an annotation"):
        manifest = voc.build_crops(voc_root, tmp_path / "crops", progress=False)
    assert manifest["splits"] == ["train", "val"]


def test_a_split_list_that_is_not_utf8_names_the_file(tmp_path, capsys):
    voc_root = _plain_tree(tmp_path)
    (voc_root / "ImageSets/Main/val.txt").write_bytes(b"000003\n00\xff\xfe04\n")
    out = tmp_path / "crops"
    assert cli(["voc-crops", "--voc-root", str(voc_root), "--out", str(out)]) == 2
    assert re.search(r"val.txt is not UTF-8 text \(line 2", capsys.readouterr().err)


def test_a_crops_folder_with_only_train_is_a_clear_error(tmp_path, tiny, sample_crops):
    crops = tmp_path / "crops"
    shutil.copytree(sample_crops, crops)
    shutil.rmtree(crops / "val")
    shutil.rmtree(crops / "test")
    with pytest.raises(FileNotFoundError, match=r"crops folder .* has no val split.*voc-crops"):
        fit(tiny, crops, tmp_path / "run", progress=False)


def test_unwritable_train_out_is_found_before_the_first_epoch(tmp_path, tiny, sample_crops,
                                                              capsys):
    (tmp_path / "afile").write_text("x")
    epochs = []
    with pytest.raises(RuntimeError, match="cannot write to the run folder"):
        fit(tiny, sample_crops, tmp_path / "afile" / "run", progress=False,
            callbacks=[lambda h: epochs.append(h.epochs_done)])
    assert epochs == []
    assert cli(["train", "--model", "tiny-h", "--data", str(sample_crops), "--out",
                str(tmp_path / "afile"), "--device", "cpu"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_second_builder_waits_then_refuses_naming_the_holder(tmp_path):
    voc_root = _plain_tree(tmp_path)
    out = tmp_path / "crops"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"f = open({str(out / '.zfkit-lock')!r}, 'a+')\n"
        "fcntl.flock(f, fcntl.LOCK_EX); f.truncate(0); f.write('4242\\n'); f.flush()\n"
        "print('locked', flush=True); time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        with pytest.raises(RuntimeError, match=r"locked by pid 4242, which is building crops"):
            voc.build_crops(voc_root, out, progress=False, lock_wait=0.5)
        assert time.monotonic() - start < 10
        assert not (out / "train").exists()
    finally:
        holder.kill()
        holder.wait()
    assert voc.build_crops(voc_root, out, progress=False, lock_wait=5)["splits"]  # lock released


def test_two_concurrent_builders_give_one_correct_folder(tmp_path, monkeypatch):
    voc_root = _plain_tree(tmp_path)
    out = tmp_path / "crops"
    real, inside, release = zcrops._crop_image, threading.Event(), threading.Event()

    def held(*args, **kw):                    # the first builder is held mid-build
        inside.set()
        release.wait(20)
        return real(*args, **kw)

    monkeypatch.setattr(zcrops, "_crop_image", held)
    build = lambda: voc.build_crops(voc_root, out, progress=False, workers=1)  # noqa: E731
    first = _in_thread(build, timeout=0)
    assert inside.wait(20)
    second = _in_thread(build, timeout=0)     # starts while the first is cropping
    time.sleep(1.0)
    release.set()
    for thread, _ in (first, second):
        thread.join(60)
    results = [first[1], second[1]]
    assert all("value" in r for r in results), [r.get("error") for r in results]
    assert results[0]["value"]["hash"] == results[1]["value"]["hash"]
    assert voc.read_manifest(out)["hash"] == results[0]["value"]["hash"]
    assert not verify_crops(out, voc.read_manifest(out))


def test_folder_lock_is_exclusive_and_released(tmp_path):
    with folder_lock(tmp_path, what="testing", wait=1):
        thread, result = _in_thread(lambda: folder_lock(tmp_path, what="x", wait=0.3)
                                    .__enter__(), timeout=10)
        assert isinstance(result.get("error"), RuntimeError)
    with folder_lock(tmp_path, what="testing", wait=0.3):
        pass


# ------------------------------------------------------------------------------------------------
# 6. Downloads: malformed mirrors, a deadline, a byte cap (servers on 127.0.0.1, in threads)


class _Hostile:
    """One server, ``mode``: "ok" (the file), "trickle" (a byte every 0.1 s), "endless" (no
    Content-Length, bytes forever), "huge" (announces 100x the size)."""

    def __init__(self, data: bytes, mode: str):
        self.data, self.mode, self.sent = data, mode, 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def do_GET(self):
                try:
                    server.serve(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/voc/"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()

    def serve(self, h):
        h.send_response(200)
        if self.mode in ("ok", "trickle"):
            h.send_header("Content-Length", str(len(self.data)))
        if self.mode == "huge":
            h.send_header("Content-Length", str(100 * len(self.data)))
        h.end_headers()
        if self.mode == "ok":
            h.wfile.write(self.data)
        elif self.mode == "trickle":
            for i in range(len(self.data)):
                h.wfile.write(self.data[i:i + 1])
                h.wfile.flush()
                self.sent += 1
                time.sleep(0.1)
        elif self.mode in ("endless", "huge"):
            block = b"\0" * 65536
            while self.sent < 1 << 30:
                h.wfile.write(block)
                self.sent += len(block)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hostile():
    servers = []

    def start(data, mode):
        servers.append(_Hostile(data, mode))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _voc_tar() -> bytes:
    payload = np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    return _tar([("VOCdevkit/VOC2007/Annotations/000001.xml", "file", _xml("a.jpg", []).encode()),
                 GOOD, ("VOCdevkit/VOC2007/JPEGImages/000001.jpg", "file", payload)])


def _archive(data: bytes, known_size: bool = True) -> voc.Archive:
    return voc.Archive("t.tar", hashlib.md5(data).hexdigest(), len(data) if known_size else None)


def test_malformed_mirror_urls_are_skipped_and_the_loop_goes_on(tmp_path, hostile, capsys):
    data = _voc_tar()
    good = hostile(data, "ok")
    mirrors = ["not a url", "htp:/x", "http://[::1", "http://127.0.0.1:99999/", "", good.url]
    root = voc.download_voc(tmp_path, archives=[_archive(data)], mirrors=mirrors,
                            default_mirrors=False, progress=False, timeout=5)
    assert (root / "ImageSets/Main/train.txt").read_bytes() == b"000001\n"
    err = capsys.readouterr().err
    assert "mirror skipped: 'not a url' is not an http:// or https:// URL" in err
    assert "'http://[::1' is not a valid URL" in err
    with pytest.raises(RuntimeError, match=r"Tried:\n  'htp:/x' is not an http"):
        voc.download_voc(tmp_path / "b", archives=[_archive(data)], mirrors=mirrors[1:3],
                         default_mirrors=False, progress=False, timeout=5)


def test_a_trickling_server_is_abandoned_at_the_deadline(tmp_path, hostile):
    data = _voc_tar()
    slow = hostile(data, "trickle")
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"deadline passed after .* bytes.*partial file "
                                           r"t.tar.partial is kept"):
        voc.download_voc(tmp_path, archives=[_archive(data)], mirrors=[slow.url],
                         default_mirrors=False, progress=False, timeout=5, deadline=1.5)
    assert time.monotonic() - start < 6
    assert 0 < (tmp_path / "t.tar.partial").stat().st_size < len(data)   # kept, to resume


@pytest.mark.parametrize("known_size", [True, False], ids=["size-known", "size-unknown"])
def test_an_endless_stream_is_cut_at_the_cap_and_the_mirror_skipped(tmp_path, hostile,
                                                                    known_size):
    data = _voc_tar()
    endless, good = hostile(data, "endless"), hostile(data, "ok")
    archive = _archive(data, known_size)
    cap = 2 * len(data)
    cap_arg = {} if known_size else {"max_bytes": cap}    # unknown size: the caller's cap
    start = time.monotonic()
    path = voc.fetch_archive(archive, tmp_path, [endless.url, good.url], progress=False,
                             timeout=5, deadline=60, **cap_arg)
    assert voc.md5sum(path) == archive.md5 and time.monotonic() - start < 20
    with pytest.raises(RuntimeError, match=r"sent more than [\d,]+ bytes.*cut \(deleted; "
                                           r"mirror skipped\)"):
        voc.fetch_archive(archive, tmp_path / "b", [endless.url], progress=False, timeout=5,
                          deadline=60, **cap_arg)
    assert not (tmp_path / "b" / "t.tar.partial").exists()


def test_a_server_announcing_too_many_bytes_is_skipped_unread(tmp_path, hostile):
    data = _voc_tar()
    huge = hostile(data, "huge")
    with pytest.raises(RuntimeError, match="announces .* bytes, more than the"):
        voc.fetch_archive(_archive(data), tmp_path, [huge.url], progress=False, timeout=5,
                          deadline=30)
    assert not (tmp_path / "t.tar.partial").exists()


def test_the_real_archives_have_a_size_and_so_a_tight_cap():
    for archive in (voc.VOC2007_TRAINVAL, voc.VOC2007_TEST):
        assert archive.size and byte_cap(archive) < 1.02 * archive.size


# ------------------------------------------------------------------------------------------------
# 8. XML: entity expansion and external entities (expat's limits, and the reader's own check)


def _billion_laughs(levels: int = 10) -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1)) * 10}">' for i in range(1, levels)]
    return (f'<?xml version="1.0"?><!DOCTYPE annotation [{"".join(entities)}]>'
            f"<annotation><filename>&lol{levels - 1};</filename></annotation>").encode()


def _external_entity(secret: Path) -> bytes:
    return (f'<?xml version="1.0"?><!DOCTYPE annotation [<!ENTITY xxe SYSTEM '
            f'"file://{secret}">]><annotation><filename>&xxe;</filename></annotation>').encode()


def test_expat_itself_stops_billion_laughs_and_external_entities(tmp_path):
    start = time.monotonic()
    with pytest.raises(ET.ParseError, match="amplification|recursive|limit"):
        ET.fromstring(_billion_laughs())              # 10**9 "lol"s if it expanded
    assert time.monotonic() - start < 5
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    with pytest.raises(ET.ParseError, match="undefined entity"):
        ET.fromstring(_external_entity(secret))       # ElementTree never loads it


@pytest.mark.parametrize("kind", ["billion-laughs", "external-entity"])
def test_the_annotation_reader_refuses_entities_clearly(tmp_path, kind):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    voc_root = _plain_tree(tmp_path)
    xml = voc_root / "Annotations" / "000002.xml"
    xml.write_bytes(_billion_laughs() if kind == "billion-laughs" else _external_entity(secret))
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"malformed VOC annotation .*000002.xml: it has a DTD") \
            as info:
        read_annotation(xml)
    assert "TOP-SECRET" not in str(info.value) and time.monotonic() - start < 5
    manifest = voc.build_crops(voc_root, tmp_path / "crops", skip_bad=True, progress=False)
    assert manifest["skipped"]["train"] == {"bad_annotation_file": 1}


# ------------------------------------------------------------------------------------------------
# Atomic writes: a failed write leaves the old file and no temporary file


def test_a_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("old")

    def boom(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_atomic(target, boom)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.json"]

