"""Tests of zfkit.data: the cached split and batch iterator against torchvision's own path."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms
from torchvision.datasets import ImageFolder

from zfkit import data as D
from zfkit.integrity import write_verified
from zfkit import voc

VOC_CLASSES = list(voc.VOC_CLASSES)
# A few classes per split, and "val" lacks "bird": labels must still follow the manifest.
LAYOUT = {"train": {"bird": 3, "cat": 4, "dog": 3, "tvmonitor": 2},
          "val": {"cat": 2, "dog": 3, "tvmonitor": 2}}


def write_crops(root: Path, seed: int = 0, hash_: str = "abc123") -> Path:
    """A tiny crops folder: random-size JPEGs (some smaller, some larger than 227) + manifest.json.

    The manifest holds only what zfkit.data reads (classes, counts, source, hash): data's
    read_manifest is the light check, not zfkit.voc's full one.
    """
    rng = np.random.default_rng(seed)
    counts = {}
    for split, per_class in LAYOUT.items():
        counts[split] = {}
        for name, n in per_class.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(n):
                h, w = (int(v) for v in rng.integers(20, 320, size=2))
                pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
                img = Image.fromarray(pixels)
                if k == 1:
                    img = img.convert("L")  # a greyscale JPEG: both paths must convert to RGB
                img.save(folder / f"{2007_000000 + 37 * k + n:06d}_{k}.jpg", quality=90)
            counts[split][name] = n
    manifest = {"classes": VOC_CLASSES, "counts": counts, "source": "generated-sample",
                "hash": hash_}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_crops(tmp_path_factory.mktemp("crops"))


def torchvision_reference(crops: Path, split: str, flip_p: float) -> dict[str, torch.Tensor]:
    """The seed's transform, built here from torchvision, keyed by path relative to ``crops``."""
    tf = transforms.Compose([transforms.Resize((227, 227)), transforms.RandomHorizontalFlip(flip_p),
                             transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])
    ds = ImageFolder(str(crops / split), transform=tf)
    return {Path(p).relative_to(crops).as_posix(): ds[i][0] for i, (p, _) in enumerate(ds.samples)}


def all_batches(data: D.CachedSplit, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*D.batches(data, **kw))
    return torch.cat(xs), torch.cat(ys)


def fake_split(n: int, size: int = 4) -> D.CachedSplit:
    """A split whose label is the image's index, so a batch says which images it holds."""
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)
    return D.CachedSplit(images, torch.arange(n), [f"c{i}" for i in range(n)], "train",
                         "generated-sample", "h", [f"{i}.jpg" for i in range(n)])


# ------------------------------------------------------------------------------------------------
# The pixels are the seed's pixels


def test_no_flip_matches_torchvision(crops: Path) -> None:
    data = D.load_split(crops, "train", progress=False)
    assert data.images.shape == (12, 3, 227, 227) and data.images.dtype == torch.uint8
    x, _ = all_batches(data, batch_size=5, shuffle=False, flip=False)
    ref = torchvision_reference(crops, "train", flip_p=0.0)
    assert sorted(ref) == sorted(data.files)
    for i, rel in enumerate(data.files):
        torch.testing.assert_close(x[i], ref[rel], rtol=0, atol=1e-6)


def test_flip_matches_torchvision(crops: Path) -> None:
    data = D.load_split(crops, "val", progress=False)
    ref = torchvision_reference(crops, "val", flip_p=1.0)
    x = D.normalize_batch(data.images, torch.ones(len(data), dtype=torch.bool))
    for i, rel in enumerate(data.files):
        torch.testing.assert_close(x[i], ref[rel], rtol=0, atol=1e-6)


def test_random_flip_is_one_or_the_other(crops: Path) -> None:
    data = D.load_split(crops, "train", progress=False)
    plain = D.normalize_batch(data.images)
    mirrored = D.normalize_batch(data.images, torch.ones(len(data), dtype=torch.bool))
    g = torch.Generator().manual_seed(3)
    x, y = all_batches(data, batch_size=4, shuffle=False, flip=True, generator=g)
    flipped = [torch.equal(x[i], mirrored[i]) for i in range(len(data))]
    kept = [torch.equal(x[i], plain[i]) for i in range(len(data))]
    assert all(f or k for f, k in zip(flipped, kept))
    assert any(flipped) and any(kept)  # with this seed both happen
    assert torch.equal(y, data.labels)


def test_labels_follow_manifest_even_when_a_class_is_missing(crops: Path) -> None:
    data = D.load_split(crops, "val", size=16, progress=False)
    assert data.classes == VOC_CLASSES and len(data) == 7
    for rel, label in zip(data.files, data.labels.tolist()):
        assert VOC_CLASSES[label] == Path(rel).parent.name  # "val" has no "bird": no shift
    assert data.source == "generated-sample" and data.manifest_hash == "abc123"


def test_imagefolder_loader_agrees_with_cached_path(crops: Path) -> None:
    data = D.load_split(crops, "val", progress=False)
    loader = D.imagefolder_loader(crops, "val", batch_size=3, shuffle=False, num_workers=0,
                                  flip_p=0.0)
    xs, ys = zip(*loader)
    x_ref, y_ref = torch.cat(xs), torch.cat(ys)
    x, y = all_batches(data, batch_size=3, shuffle=False, flip=False)
    assert torch.equal(y, y_ref)  # the same order and the manifest's labels in both
    torch.testing.assert_close(x, x_ref, rtol=0, atol=1e-6)


def test_channels_last(crops: Path) -> None:
    data = D.load_split(crops, "val", size=32, progress=False)
    x, _ = next(D.batches(data, 4, shuffle=False, flip=False, channels_last=True))
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, D.normalize_batch(data.images[:4]))


# ------------------------------------------------------------------------------------------------
# The disk cache


def test_cache_is_used_and_keyed_by_manifest_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_crops(tmp_path / "crops", hash_="first")
    cache = tmp_path / "cache"
    first = D.load_split(folder, "train", size=24, cache_dir=cache, progress=False)
    files = sorted(cache.glob("*.pt"))
    assert [p.name for p in cache.iterdir() if p not in files] == [files[0].name + ".sha256"]
    assert len(files) == 1 and "first" in files[0].name and "train" in files[0].name
    assert "24px" in files[0].name

    def fail(*args, **kwargs):
        raise AssertionError("decoded again although a valid cache exists")

    monkeypatch.setattr("zfkit.cache.decode_resize", fail)  # where load_split decodes
    again = D.load_split(folder, "train", size=24, cache_dir=cache, progress=False)
    assert torch.equal(again.images, first.images) and again.files == first.files

    # New crops (a new hash): a new cache file, and nothing is read from the old one.
    monkeypatch.undo()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert D.cache_path(cache, manifest, "train", 24) == files[0]
    manifest["hash"] = "second"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert D.cache_path(cache, manifest, "train", 24) != files[0]
    assert D.cache_path(cache, manifest, "val", 24) != D.cache_path(cache, manifest, "train", 24)
    assert D.cache_path(cache, manifest, "train", 32) != D.cache_path(cache, manifest, "train", 24)
    new = D.load_split(folder, "train", size=24, cache_dir=cache, progress=False)
    assert new.manifest_hash == "second" and len(list(cache.glob("*.pt"))) == 2


def test_truncated_cache_is_rebuilt(crops: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    good = D.load_split(crops, "val", size=24, cache_dir=cache, progress=False)
    (path,) = cache.glob("*.pt")
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])  # a half-written file
    with pytest.warns(UserWarning, match="corrupt"):
        rebuilt = D.load_split(crops, "val", size=24, cache_dir=cache, progress=False)
    assert torch.equal(rebuilt.images, good.images)
    assert torch.equal(torch.load(path, weights_only=True)["images"], good.images)  # rewritten whole
    assert sorted(p.name for p in cache.iterdir()) == [path.name, path.name + ".sha256"]  # no
    # temporary file left behind


def test_cache_from_other_data_under_the_right_name_is_not_used(crops: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    D.load_split(crops, "val", size=24, cache_dir=cache, progress=False)
    (path,) = cache.glob("*.pt")
    state = torch.load(path, weights_only=True)
    state["manifest_hash"] = "something-else"
    state["images"] = torch.zeros_like(state["images"])
    write_verified(path, lambda f: torch.save(state, f))  # a genuine cache of other crops
    data = D.load_split(crops, "val", size=24, cache_dir=cache, progress=False)
    assert data.manifest_hash == "abc123" and data.images.any()


# ------------------------------------------------------------------------------------------------
# The iterator


@pytest.mark.parametrize("drop_last", [False, True])
def test_shuffle_visits_every_image_once(drop_last: bool) -> None:
    data = fake_split(37)
    g = torch.Generator().manual_seed(0)
    orders = []
    for _ in range(2):  # two epochs
        sizes, ys = [], []
        for x, y in D.batches(data, 8, shuffle=True, flip=True, generator=g, drop_last=drop_last):
            assert x.dtype == torch.float32 and x.shape == (len(y), 3, 4, 4) and y.dtype == torch.int64
            sizes.append(len(y))
            ys.append(y)
        y = torch.cat(ys)
        assert sizes == ([8] * 4 if drop_last else [8] * 4 + [5])
        assert len(set(y.tolist())) == len(y)  # no image twice
        if not drop_last:
            assert sorted(y.tolist()) == list(range(37))  # every image once
        orders.append(y.tolist())
    assert orders[0] != orders[1] and orders[0] != sorted(orders[0])  # really shuffled, per epoch


def test_batches_are_deterministic_for_a_fixed_generator() -> None:
    data = fake_split(20)

    def epoch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return all_batches(data, batch_size=6, shuffle=True, flip=True,
                           generator=torch.Generator().manual_seed(seed))

    (x1, y1), (x2, y2), (_, y3) = epoch(5), epoch(5), epoch(6)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(y1, y3)
    # the pixels travel with their label: image i is image i, mirrored or not
    plain = D.normalize_batch(data.images[y1])
    mirrored = D.normalize_batch(data.images[y1], torch.ones(len(y1), dtype=torch.bool))
    assert all(torch.equal(x1[i], plain[i]) or torch.equal(x1[i], mirrored[i]) for i in range(20))


def test_to_keeps_uint8_and_len() -> None:
    data = fake_split(5)
    moved = data.to("cpu")
    assert len(moved) == 5 and moved.images.dtype == torch.uint8 and moved.labels.dtype == torch.int64
    assert "5 crops of 4x4" in moved.describe()


def test_batches_stay_on_the_data_device_or_go_to_device() -> None:
    """Without a GPU, the "meta" device shows that every tensor lands where it should."""
    data = fake_split(10)
    for source, device in ((data.to("meta"), None), (data, "meta")):
        for x, y in D.batches(source, 4, shuffle=True, flip=True, device=device,
                              generator=torch.Generator().manual_seed(0)):
            assert x.device.type == "meta" and y.device.type == "meta"
            assert x.dtype == torch.float32 and x.shape[1:] == (3, 4, 4) and y.dtype == torch.int64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_batches_match_cpu_without_host_sync() -> None:
    data = fake_split(50, size=32)
    cpu = all_batches(data, batch_size=16, shuffle=True, flip=True,
                      generator=torch.Generator().manual_seed(1))
    for source in (data, data.to("cuda")):  # copied per batch, or already on the GPU
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            got = list(D.batches(source, 16, shuffle=True, flip=True, device="cuda",
                                 generator=torch.Generator().manual_seed(1)))
        finally:
            torch.cuda.set_sync_debug_mode("default")
        x = torch.cat([b[0] for b in got]).cpu()
        y = torch.cat([b[1] for b in got]).cpu()
        assert got[0][0].device.type == "cuda"
        assert torch.equal(y, cpu[1])
        torch.testing.assert_close(x, cpu[0], rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Errors that say what to do


def test_errors(crops: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="voc-crops"):
        D.load_split(tmp_path, "train", progress=False)
    with pytest.raises(ValueError, match="unknown split"):
        D.load_split(crops, "trainval", progress=False)
    with pytest.raises(FileNotFoundError, match="test"):
        D.load_split(crops, "test", progress=False)
    with pytest.raises(ValueError, match="uint8"):
        D.CachedSplit(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.int64), [], "train", "s", "h")

    odd = write_crops(tmp_path / "odd")
    (odd / "train" / "unicorn").mkdir()
    with pytest.raises(ValueError, match="unicorn"):
        D.load_split(odd, "train", progress=False)
    with pytest.raises(ValueError, match="unicorn"):
        D.imagefolder_loader(odd, "train")

    short = write_crops(tmp_path / "short")
    next((short / "val" / "cat").iterdir()).unlink()
    with pytest.raises(ValueError, match="says 7 val crops"):
        D.load_split(short, "val", progress=False)


def test_a_broken_crop_names_the_file(tmp_path: Path) -> None:
    folder = write_crops(tmp_path / "crops")
    bad = next((folder / "val" / "dog").iterdir())
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(RuntimeError, match=bad.name):
        D.load_split(folder, "val", size=16, progress=False)


def test_reads_what_zfkit_voc_builds(tmp_path: Path) -> None:
    root = voc.make_sample(tmp_path / "sample", images=12, seed=0)
    manifest = voc.build_crops(root, tmp_path / "crops", progress=False)
    for split in ("train", "val", "test"):
        data = D.load_split(tmp_path / "crops", split, size=32, cache_dir=tmp_path / "cache",
                            progress=False)
        assert sorted(data.files) == sorted(manifest["files"][split])
        assert data.source == "generated-sample" and data.manifest_hash == manifest["hash"]
        counts = {name: n for name, n in manifest["counts"][split].items() if n}
        got = {name: int((data.labels == data.classes.index(name)).sum()) for name in counts}
        assert got == counts and len(data) == sum(counts.values())


def test_imagefolder_loader_accepts_an_empty_class_folder(tmp_path):
    """build_crops makes every class folder; a small split leaves some empty."""
    import inspect
    from torchvision.datasets import ImageFolder
    if "allow_empty" not in inspect.signature(ImageFolder.__init__).parameters:
        pytest.skip("this torchvision's ImageFolder cannot skip empty folders")
    folder = write_crops(tmp_path / "crops")
    (folder / "val" / "bird").mkdir()
    xs, ys = zip(*D.imagefolder_loader(folder, "val", batch_size=4, shuffle=False, num_workers=0))
    assert sum(len(y) for y in ys) == sum(LAYOUT["val"].values())
