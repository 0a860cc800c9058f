"""zfkit.voc: the download (against a local HTTP server), the crop builder on small VOC trees
written in tmp_path, and the generated sample. Offline and fast."""
from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zfkit import crops, voc
from zfkit.__main__ import main as cli

# ------------------------------------------------------------------------------------------------
# Official statistics


def test_classes_are_vocs_twenty_in_alphabetical_order():
    assert len(set(voc.VOC_CLASSES)) == 20
    assert list(voc.VOC_CLASSES) == sorted(voc.VOC_CLASSES)


# trainval (non-difficult objects per class) as copied in a second public source
# (balancap/SSD-Tensorflow, datasets/pascalvoc_2007.py); train + val must add up to it.
_TRAINVAL = dict(zip(voc.VOC_CLASSES, (306, 353, 486, 290, 505, 229, 1250, 376, 798, 259,
                                       215, 510, 362, 339, 4690, 514, 257, 248, 297, 324)))


def test_official_counts_add_up():
    official = voc.VOC2007_OFFICIAL_COUNTS
    assert {s: sum(c.values()) for s, c in official.items()} == {
        "train": 6301, "val": 6307, "test": 12032}
    assert all(list(c) == list(voc.VOC_CLASSES) for c in official.values())
    assert {k: official["train"][k] + official["val"][k] for k in voc.VOC_CLASSES} == _TRAINVAL
    assert voc.VOC2007_OFFICIAL_IMAGES == {"train": 2501, "val": 2510, "test": 4952}


# ------------------------------------------------------------------------------------------------
# A tiny VOC tree written by hand


def _xml(filename, objects, size=(40, 30)):
    objs = "".join(
        f"<object><name>{name}</name><truncated>0</truncated><difficult>{int(diff)}</difficult>"
        f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax>"
        "</bndbox></object>" for name, b, diff in objects)
    return (f"<annotation><folder>VOC2007</folder><filename>{filename}</filename><size>"
            f"<width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"
            f"{objs}</annotation>")


def _tree(root: Path, images: dict, splits: dict) -> Path:
    """images: id -> (PIL image or None, objects, file extension); splits: split -> ids."""
    voc_root = root / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc_root / sub).mkdir(parents=True, exist_ok=True)
    for image_id, (image, objects, ext) in images.items():
        (voc_root / "Annotations" / f"{image_id}.xml").write_text(
            _xml(f"{image_id}.{ext}", objects))
        if image is not None:
            image.save(voc_root / "JPEGImages" / f"{image_id}.{ext}")
    for split, ids in splits.items():
        (voc_root / "ImageSets/Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return voc_root


BACKGROUND, BOX = (10, 20, 30), (250, 128, 5)


def _boxed_image(cols=(10, 29), rows=(5, 19), size=(40, 30)) -> Image.Image:
    """A solid box on a plain background; cols/rows are 0-based and inclusive."""
    pixels = np.zeros((size[1], size[0], 3), np.uint8)            # (H, W, 3)
    pixels[:] = BACKGROUND
    pixels[rows[0]:rows[1] + 1, cols[0]:cols[1] + 1] = BOX
    return Image.fromarray(pixels)


@pytest.mark.parametrize("box, expected", [
    ((1, 1, 1, 1), (0, 0, 1, 1)),            # the top-left pixel alone
    ((11, 6, 30, 20), (10, 5, 30, 20)),      # 20 x 15 pixels
    ((1, 1, 40, 30), (0, 0, 40, 30)),        # the whole 40 x 30 image
    ((35, 25, 45, 33), (34, 24, 40, 30)),    # clipped to the image
    ((0, -3, 5, 5), (0, 0, 5, 5)),           # clipped at the top-left
    ((41, 1, 50, 10), None),                 # entirely outside: nothing left
    ((5, 5, 4, 9), None),                    # xmax < xmin
])
def test_crop_box_converts_one_based_inclusive_boxes(box, expected):
    assert voc.crop_box(box, 40, 30) == expected


def test_crop_is_exactly_the_box_pixels(tmp_path):
    # The box covers 0-based columns 10..29 and rows 5..19, i.e. VOC (11, 6, 30, 20).
    image = _boxed_image()
    root = _tree(tmp_path, {"000001": (image, [("cat", (11, 6, 30, 20), False)], "png")},
                 {"train": ["000001"], "val": []})
    voc.build_crops(root, tmp_path / "crops", ext="png", progress=False)
    crop = np.asarray(Image.open(tmp_path / "crops/train/cat/000001_0.png"))
    assert crop.shape == (15, 20, 3)
    assert (crop == BOX).all(), "the crop holds background pixels: off by one"
    # The seed's slice img[ymin:ymax, xmin:xmax] reads the numbers as 0-based: it drops the box's
    # first row and column.
    seed_crop = np.asarray(image)[6:20, 11:30]
    assert seed_crop.shape == (14, 19, 3)


def _small_tree(tmp_path, *, with_test=True):
    img = _boxed_image()
    images = {
        "000001": (img, [("cat", (11, 6, 30, 20), False), ("dog", (2, 2, 8, 8), True),
                         ("cat", (30, 20, 60, 60), False)], "jpg"),       # clipped to the image
        "000002": (img, [("person", (1, 1, 40, 30), False),
                         ("car", (41, 31, 50, 40), False)], "jpg"),       # nothing left: skipped
        "000003": (img, [("tvmonitor", (3, 3, 12, 12), False)], "jpg"),
    }
    splits = {"train": ["000001", "000002"], "val": ["000003"]}
    if with_test:
        images["000004"] = (img, [("bus", (5, 5, 25, 25), False)], "jpg")
        splits["test"] = ["000004"]
    return _tree(tmp_path, images, splits)


def test_build_crops_layout_counts_and_manifest(tmp_path):
    root = _small_tree(tmp_path)
    out = tmp_path / "crops"
    manifest = voc.build_crops(root, out, progress=False)
    assert manifest["splits"] == ["train", "val", "test"]
    assert manifest["source"] == "voc2007"
    assert manifest["classes"] == list(voc.VOC_CLASSES)
    nonzero = {s: {k: n for k, n in c.items() if n} for s, c in manifest["counts"].items()}
    assert nonzero == {"train": {"cat": 2, "person": 1}, "val": {"tvmonitor": 1},
                       "test": {"bus": 1}}
    assert manifest["skipped"]["train"] == {"difficult": 1, "empty_after_clip": 1}
    assert sorted(manifest["files"]["train"]) == [
        "train/cat/000001_0.jpg", "train/cat/000001_2.jpg", "train/person/000002_0.jpg"]
    sizes = dict(zip(manifest["files"]["train"], map(tuple, manifest["sizes"]["train"])))
    assert sizes["train/cat/000001_2.jpg"] == (11, 11)           # (30..60) clipped to 40 x 30
    assert sizes["train/person/000002_0.jpg"] == (40, 30)
    for rel in manifest["files"]["train"]:
        assert Image.open(out / rel).size == sizes[rel]
    assert all((out / s / c).is_dir() for s in ("train", "val", "test") for c in voc.VOC_CLASSES)
    assert manifest["matches_official_counts"] == {"train": False, "val": False, "test": False}
    assert not (out / ".building").exists()
    assert voc.read_manifest(out) == json.loads((out / "manifest.json").read_text())


def test_test_split_needs_its_list_and_annotations(tmp_path):
    root = _small_tree(tmp_path, with_test=False)
    assert voc.build_crops(root, tmp_path / "a", progress=False)["splits"] == ["train", "val"]
    (root / "ImageSets/Main/test.txt").write_text("000009\n")   # listed, but no annotation
    with pytest.warns(UserWarning, match="none has an annotation: the test split is left out"):
        assert voc.build_crops(root, tmp_path / "b", progress=False)["splits"] == ["train", "val"]
    with pytest.raises(ValueError, match="unknown splits"):
        voc.build_crops(root, tmp_path / "c", splits=["trainval"], progress=False)


def test_not_a_voc_tree_says_what_to_run(tmp_path):
    root = _small_tree(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"Did you mean .*VOC2007.*download-voc"):
        voc.build_crops(root.parent, tmp_path / "crops", progress=False)


def test_rerun_is_a_no_op_and_a_changed_source_rebuilds(tmp_path):
    root = _small_tree(tmp_path)
    out = tmp_path / "crops"
    first = voc.build_crops(root, out, progress=False)
    crop = out / "train/cat/000001_0.jpg"
    stamp = crop.stat().st_mtime_ns
    time.sleep(0.01)
    assert voc.build_crops(root, out, progress=False) == first
    assert crop.stat().st_mtime_ns == stamp
    as_png = voc.build_crops(root, out, ext="png", progress=False)    # other settings
    assert all(f.endswith(".png") for f in as_png["files"]["train"])
    assert not any((out / "train").rglob("*.jpg"))
    (root / "ImageSets/Main/val.txt").write_text("")              # the source changed
    again = voc.build_crops(root, out, progress=False)
    assert sum(again["counts"]["val"].values()) == 0 and again["hash"] != first["hash"]
    assert not any((out / "val").rglob("*.jpg"))


def test_interrupted_build_is_detected_and_redone(tmp_path, monkeypatch):
    root = _small_tree(tmp_path)
    out = tmp_path / "crops"
    real = crops._crop_image                                # the builder's per-image step

    def dies_on_val(voc_root, image_id, dest, **kw):
        if image_id == "000003":
            raise KeyboardInterrupt
        return real(voc_root, image_id, dest, **kw)

    voc.build_crops(root, out, progress=False)              # a complete build first
    (root / "ImageSets/Main/train.txt").write_text("000001\n")   # then the source changes
    monkeypatch.setattr(crops, "_crop_image", dies_on_val)
    with pytest.raises(KeyboardInterrupt):
        voc.build_crops(root, out, progress=False, workers=1)
    assert not (out / "manifest.json").exists() and (out / ".building").exists()
    with pytest.raises(FileNotFoundError, match="interrupted"):
        voc.read_manifest(out)
    monkeypatch.setattr(crops, "_crop_image", real)
    manifest = voc.build_crops(root, out, progress=False)
    assert sum(manifest["counts"]["val"].values()) == 1 and not (out / ".building").exists()


def test_a_changed_folder_is_noticed_and_rebuilt(tmp_path):
    root = _small_tree(tmp_path)
    out = tmp_path / "crops"
    voc.build_crops(root, out, progress=False)
    (out / "train/cat/000001_0.jpg").unlink()
    with pytest.raises(RuntimeError, match="no longer matches"):
        voc.read_manifest(out)
    voc.build_crops(root, out, progress=False)
    assert (out / "train/cat/000001_0.jpg").exists()


def test_refuses_a_non_empty_foreign_folder(tmp_path):
    root = _small_tree(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        voc.build_crops(root, tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_read_manifest_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="voc-crops"):
        voc.read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"classes": []}')
    with pytest.raises(RuntimeError, match="lacks"):
        voc.read_manifest(tmp_path)


@pytest.mark.parametrize("case, reason", [
    ("unknown_class", "unknown_class"),
    ("malformed_xml", "bad_annotation_file"),
    ("missing_image", "unreadable_image"),
    ("corrupt_image", "unreadable_image"),
])
def test_bad_inputs_raise_naming_the_file_or_are_skipped_and_counted(tmp_path, case, reason):
    img = _boxed_image()
    bad_id = "000002"
    objects = [("unicorn" if case == "unknown_class" else "cat", (2, 2, 9, 9), False)]
    root = _tree(tmp_path, {"000001": (img, [("cat", (2, 2, 9, 9), False)], "jpg"),
                            bad_id: (None if case == "missing_image" else img, objects, "jpg")},
                 {"train": ["000001", bad_id], "val": []})
    if case == "malformed_xml":
        (root / "Annotations" / f"{bad_id}.xml").write_text("<annotation><object>")
    if case == "corrupt_image":
        (root / "JPEGImages" / f"{bad_id}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises((ValueError, FileNotFoundError), match=bad_id) as info:
        voc.build_crops(root, tmp_path / "strict", progress=False)
    assert "skip_bad" in str(info.value)
    manifest = voc.build_crops(root, tmp_path / "lenient", skip_bad=True, progress=False)
    assert manifest["skipped"]["train"] == {reason: 1}
    assert sum(manifest["counts"]["train"].values()) == 1


# ------------------------------------------------------------------------------------------------
# The generated sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    start = time.perf_counter()
    voc_root = voc.make_sample(out, images=120, seed=0)
    manifest = voc.build_crops(voc_root, out / "crops", progress=False)
    return voc_root, manifest, time.perf_counter() - start


def test_sample_is_quick_and_says_it_is_generated(sample):
    voc_root, manifest, seconds = sample
    assert seconds < 15, f"make_sample + build_crops took {seconds:.1f} s"
    assert manifest["source"] == "generated-sample"
    assert "NOT Pascal VOC" in manifest["description"]
    assert voc.SAMPLE_MARKER in manifest["source_checksums"]
    assert "NOT Pascal VOC" in (voc_root / "Annotations/000001.xml").read_text()


def test_sample_has_the_cases_real_data_has(sample):
    voc_root, manifest, _ = sample
    objects, per_image = [], []
    for xml in sorted((voc_root / "Annotations").glob("*.xml")):
        ann = voc.read_annotation(xml)
        width, height = Image.open(voc_root / "JPEGImages" / ann.filename).size
        assert (ann.width, ann.height) == (width, height)
        per_image.append(len(ann.objects))
        objects += [(o, width, height) for o in ann.objects]
    assert min(per_image) == 1 and max(per_image) >= 3
    assert any(o.difficult for o, _, _ in objects)
    truncated = [(o, w, h) for o, w, h in objects if o.truncated]
    assert truncated and all(o.box[0] == 1 or o.box[1] == 1 or o.box[2] == w or o.box[3] == h
                             for o, w, h in truncated), "truncated boxes touch the border"
    assert all(1 <= o.box[0] <= o.box[2] <= w and 1 <= o.box[1] <= o.box[3] <= h
               for o, w, h in objects)
    total = sum(sum(c.values()) for c in manifest["counts"].values())
    assert 200 <= total <= 400, total
    train = manifest["counts"]["train"]
    assert min(train.values()) >= 3 and max(train.values()) <= 3 * min(train.values())
    assert all(sum(manifest["counts"][s].values()) > 0 for s in ("val", "test"))


def test_sample_crops_are_the_drawn_colours(sample):
    voc_root, manifest, _ = sample
    crops_dir = voc_root.parents[1] / "crops"
    for name in ("aeroplane", "bicycle", "bird", "boat"):       # disc in red, green, blue, yellow
        rel = next(f for f in manifest["files"]["train"] if f.split("/")[1] == name)
        centre = np.asarray(Image.open(crops_dir / rel), dtype=float)
        h, w, _ = centre.shape
        mean = centre[h // 3:2 * h // 3, w // 3:2 * w // 3].reshape(-1, 3).mean(0)
        colour = voc._COLOURS[voc.SAMPLE_LOOKS[name][1]]
        assert np.abs(mean - colour).max() < 45, (name, mean, colour)


def test_sample_is_deterministic_and_reused(tmp_path):
    a = voc.make_sample(tmp_path / "a", images=12, seed=3)
    b = voc.make_sample(tmp_path / "b", images=12, seed=3)
    c = voc.make_sample(tmp_path / "c", images=12, seed=4)
    names = sorted(p.name for p in (a / "Annotations").iterdir())
    assert names == sorted(p.name for p in (b / "Annotations").iterdir()) and len(names) == 12
    for name in names:
        assert (a / "Annotations" / name).read_bytes() == (b / "Annotations" / name).read_bytes()
        stem = name.removesuffix(".xml")
        pa = np.asarray(Image.open(a / "JPEGImages" / f"{stem}.jpg"))
        pb = np.asarray(Image.open(b / "JPEGImages" / f"{stem}.jpg"))
        assert np.array_equal(pa, pb)
    for split in ("train", "val", "trainval", "test"):
        assert (a / f"ImageSets/Main/{split}.txt").read_text() == \
            (b / f"ImageSets/Main/{split}.txt").read_text()
    first = "Annotations/000001.xml"
    assert (a / first).read_bytes() != (c / first).read_bytes()
    # A complete sample with the same parameters is reused; other parameters replace it.
    stamp = (a / "JPEGImages/000001.jpg").stat().st_mtime_ns
    assert voc.make_sample(tmp_path / "a", images=12, seed=3) == a
    assert (a / "JPEGImages/000001.jpg").stat().st_mtime_ns == stamp
    voc.make_sample(tmp_path / "a", images=6, seed=3)
    assert len(list((a / "Annotations").iterdir())) == 6


def test_sample_never_overwrites_real_data(tmp_path):
    real = _small_tree(tmp_path)
    with pytest.raises(ValueError, match="not a zfkit sample"):
        voc.make_sample(tmp_path, images=6)
    assert (real / "Annotations/000001.xml").exists()


def test_command_line_makes_and_crops_a_sample(tmp_path, capsys):
    assert cli(["make-sample", "--out", str(tmp_path / "s"), "--images", "9"]) == 0
    assert "not real VOC data" in capsys.readouterr().out
    assert cli(["voc-crops", "--voc-root", str(tmp_path / "s/VOCdevkit/VOC2007"),
                "--out", str(tmp_path / "c")]) == 0
    assert "train:" in capsys.readouterr().out
    assert cli(["voc-crops", "--voc-root", str(tmp_path), "--out", str(tmp_path / "d")]) == 2
    assert "download-voc" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# Download: a local HTTP server with Range support


class _Server:
    """Serves ``files`` (URL path -> bytes) on 127.0.0.1 and records every request's Range."""

    def __init__(self, files: dict[str, bytes], cut_once: frozenset[str] = frozenset(),
                 ignore_range: bool = False):
        self.files, self.cut_once, self.requests = files, set(cut_once), []
        self.ignore_range = ignore_range
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                if server.ignore_range:                 # an old server: always the whole file
                    rng = None
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if self.path in server.cut_once:        # send half, then hang up
                    server.cut_once.discard(self.path)
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/voc/"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(files, **kw):
        servers.append(_Server(files, **kw))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _tar_bytes(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


def _voc_tar() -> bytes:
    payload = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    return _tar_bytes({
        "VOCdevkit/VOC2007/Annotations/000001.xml": _xml("000001.jpg", []).encode(),
        "VOCdevkit/VOC2007/ImageSets/Main/train.txt": b"000001\n",
        "VOCdevkit/VOC2007/JPEGImages/000001.jpg": payload})


def _archive(name: str, data: bytes) -> voc.Archive:
    return voc.Archive(name, hashlib.md5(data).hexdigest(), len(data))


def _download(root, archive, mirrors):
    return voc.download_voc(root, archives=[archive], mirrors=mirrors, default_mirrors=False,
                            progress=False, timeout=5)


def test_download_verifies_and_extracts(tmp_path, serve):
    data = _voc_tar()
    server = serve({"/voc/t.tar": data})
    root = _download(tmp_path, _archive("t.tar", data), [server.url])
    assert root == tmp_path / "VOCdevkit" / "VOC2007"
    assert (root / "ImageSets/Main/train.txt").read_text() == "000001\n"
    assert voc.md5sum(tmp_path / "t.tar") == hashlib.md5(data).hexdigest()
    assert server.requests == [("/voc/t.tar", None)]
    _download(tmp_path, _archive("t.tar", data), [server.url])   # extracted once: no request
    assert len(server.requests) == 1


def test_a_cut_transfer_resumes_with_range(tmp_path, serve):
    data = _voc_tar()
    server = serve({"/voc/t.tar": data}, cut_once=frozenset({"/voc/t.tar"}))
    _download(tmp_path, _archive("t.tar", data), [server.url])
    assert server.requests == [("/voc/t.tar", None), ("/voc/t.tar", f"bytes={len(data) // 2}-")]
    assert voc.md5sum(tmp_path / "t.tar") == hashlib.md5(data).hexdigest()
    assert not (tmp_path / "t.tar.partial").exists()


def test_a_partial_file_from_an_earlier_session_is_resumed(tmp_path, serve):
    data = _voc_tar()
    (tmp_path / "t.tar.partial").write_bytes(data[:1000])
    server = serve({"/voc/t.tar": data})
    _download(tmp_path, _archive("t.tar", data), [server.url])
    assert server.requests == [("/voc/t.tar", "bytes=1000-")]


def test_a_server_that_ignores_range_is_read_from_the_start(tmp_path, serve):
    data = _voc_tar()
    (tmp_path / "t.tar.partial").write_bytes(data[:1000])
    server = serve({"/voc/t.tar": data}, ignore_range=True)
    _download(tmp_path, _archive("t.tar", data), [server.url])
    assert server.requests == [("/voc/t.tar", "bytes=1000-")]
    assert voc.md5sum(tmp_path / "t.tar") == hashlib.md5(data).hexdigest()


def test_a_corrupt_archive_is_deleted_and_named(tmp_path, serve):
    data = _voc_tar()
    corrupt = data[:-10] + b"X" * 10
    server = serve({"/voc/t.tar": corrupt})
    expected = hashlib.md5(data).hexdigest()
    with pytest.raises(RuntimeError) as info:
        _download(tmp_path, _archive("t.tar", data), [server.url])
    assert expected in str(info.value) and hashlib.md5(corrupt).hexdigest() in str(info.value)
    assert not (tmp_path / "t.tar").exists() and not (tmp_path / "t.tar.partial").exists()
    assert not (tmp_path / "VOCdevkit").exists()


def test_a_dead_mirror_falls_through_to_the_next(tmp_path, serve):
    data = _voc_tar()
    with socket.socket() as s:                      # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/voc/"
    missing = serve({})                              # a live server without the file: 404
    good = serve({"/voc/t.tar": data})
    root = _download(tmp_path, _archive("t.tar", data), [dead, missing.url, good.url])
    assert (root / "ImageSets/Main/train.txt").exists()
    assert missing.requests == [("/voc/t.tar", None)] and len(good.requests) == 1


@pytest.mark.parametrize("members, links", [
    ({"VOCdevkit/VOC2007/a.txt": b"ok", "../evil.txt": b"boom"}, None),
    ({"VOCdevkit/../../evil.txt": b"boom"}, None),
    ({"VOCdevkit/VOC2007/a.txt": b"ok"}, {"VOCdevkit/VOC2007/link": "../../../evil.txt"}),
], ids=["dotdot", "nested-dotdot", "symlink-out"])
def test_members_outside_the_target_are_refused(tmp_path, serve, members, links):
    data = _tar_bytes(members, links)
    server = serve({"/voc/bad.tar": data})
    root = tmp_path / "root"
    with pytest.raises(RuntimeError, match="refusing to extract"):
        _download(root, _archive("bad.tar", data), [server.url])
    assert not (tmp_path / "evil.txt").exists() and not (root / "VOCdevkit").exists()


def test_a_verified_copy_is_reused_without_any_request(tmp_path, serve):
    data = _voc_tar()
    (tmp_path / "t.tar").write_bytes(data)
    server = serve({"/voc/t.tar": data})
    root = _download(tmp_path, _archive("t.tar", data), [server.url])
    assert server.requests == [] and (root / "Annotations/000001.xml").exists()


def test_no_mirrors_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no mirrors"):
        voc.download_voc(tmp_path, mirrors=[], default_mirrors=False, progress=False)
