"""The ``photos`` kind of generated sample: shapes textured with real photographs, among clutter.

Every texture and background is cut from the photographs that ship inside scikit-image's wheel
(:mod:`zfkit.textures`; credited in :data:`PHOTO_CREDITS`). Each of the 20 classes is a
combination of three cues (:data:`PHOTOS_LOOKS`), and each cue is shared by several classes, so
no single one solves it:

* an outline (disc, triangle, square, cross, star: 4 classes each; all mirror-symmetric, so a
  horizontal flip keeps the class, and drawn at any angle and aspect),
* a material (``photo``: a patch of a colour photograph with its hue turned; ``mineral``: brick,
  grass or gravel tinted with a random colour: 10 classes each),
* stripes across it, horizontal or vertical in the image (within 15 degrees; 10 classes each).

Colour tells a class at best up to its material (one of ten), so a colour histogram scores far
below what a network that sees outlines and stripe edges can learn. Inside a class: scale over a
factor of six, angle, aspect, lighting, contrast and hue, clutter (a dead-leaves model of textured
discs and blobs) behind the objects and partly in front of them, truncation at the border, and
small faint objects flagged difficult. Every image has its own random stream,
``np.random.default_rng([seed, 1, index])``, so the files are the same whatever the number of
worker processes drawing them.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .classes import SPLITS, VOC_CLASSES
from .sampletree import (ClassCycle, annotation_xml, assign_splits, find_complete_sample,
                         finish_build, marker_fields, start_build)
from .textures import (PHOTO_CREDITS, cut_texture, load_photos,  # noqa: F401  (re-exported)
                       photo_credits_markdown, stripe_pattern)

__all__ = ["PHOTOS_VERSION", "PHOTO_CREDITS", "PHOTOS_LOOKS", "OUTLINES", "make_photos",
           "load_photos", "photo_credits_markdown"]

PHOTOS_VERSION = 1             # bump whenever the photos kind would draw different files


def _star(points: int, inner: float) -> tuple[tuple[float, float], ...]:
    angles = np.pi * np.arange(2 * points) / points - np.pi / 2
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return tuple((float(r * np.cos(a)), float(r * np.sin(a))) for r, a in zip(radii, angles))


# Unit polygons, each symmetric under a mirror (a flipped crop is still the same outline).
OUTLINES: dict[str, tuple[tuple[float, float], ...]] = {
    "disc": _star(20, 1.0),
    "triangle": ((0.0, -1.0), (0.87, 0.5), (-0.87, 0.5)),
    "square": ((-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)),
    "cross": ((-.3, -1), (.3, -1), (.3, -.3), (1, -.3), (1, .3), (.3, .3), (.3, 1), (-.3, 1),
              (-.3, .3), (-1, .3), (-1, -.3), (-.3, -.3)),
    "star": _star(5, 0.42),
}
# class: (outline, material, stripes): 5 outlines x 2 materials x 2 stripe directions.
PHOTOS_LOOKS: dict[str, tuple[str, str, str]] = {
    name: (list(OUTLINES)[i // 4], ("photo", "mineral")[i // 2 % 2],
           ("horizontal", "vertical")[i % 2]) for i, name in enumerate(VOC_CLASSES)}


@dataclass(frozen=True)
class _PhotosSettings:
    """How the photos sample is drawn (fixed: changing it means a new :data:`PHOTOS_VERSION`)."""
    split_fractions: tuple[float, float, float] = (0.5, 0.25, 0.25)
    objects_per_image: tuple[int, ...] = (1, 2, 3, 4)
    objects_weights: tuple[float, ...] = (0.3, 0.3, 0.25, 0.15)
    width: tuple[int, int] = (300, 400)
    height: tuple[int, int] = (240, 320)
    side: tuple[float, float] = (40.0, 0.8)        # pixels .. fraction of the shorter image side
    difficult_side: tuple[int, int] = (12, 22)     # small and faint: flagged difficult
    difficult_rate: float = 0.08
    truncated_rate: float = 0.15
    leaves_behind: tuple[int, int] = (5, 12)
    occluder_rate: float = 0.4                     # chance of a leaf partly in front of an object
    hue_jitter: float = 40.0                       # degrees, for photo textures
    stripe_tilt: float = 15.0                      # degrees either side of horizontal/vertical
    jpeg_quality: int = 90


def _polygon(unit: np.ndarray, cx: float, cy: float, rx: float, ry: float,
             angle: float) -> np.ndarray:
    """The unit polygon ``(n, 2)`` scaled to half-axes ``rx``, ``ry``, turned and moved."""
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (unit * [rx, ry]) @ rot.T + [cx, cy]


def _frame(points: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The pixel box ``(x0, y0, w, h)`` around ``points``, clipped to the image, or None."""
    x0, y0 = np.maximum(np.floor(points.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(points.max(0)).astype(int) + 1, size)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def _shade(tex: Image.Image, rng: np.random.Generator, *, light: bool, stripes: float | None,
           period: float) -> Image.Image:
    """``tex`` times a lighting gradient (``light``) and soft stripes at angle ``stripes``."""
    if stripes is None and not light:
        return tex
    pixels = np.asarray(tex, dtype=np.float32)                        # (h, w, 3)
    h, w, _ = pixels.shape
    if light:
        pixels = pixels * (1 + np.linspace(-1, 1, w, dtype=np.float32)[None, :, None]
                           * np.float32(rng.uniform(-0.25, 0.25)))
    if stripes is not None:
        pixels = pixels * stripe_pattern(rng, w, h, stripes, period, rng.uniform(0.3, 0.55))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _paint(canvas: Image.Image, rng: np.random.Generator, points: np.ndarray, material: str,
           s: _PhotosSettings, *, stripes: float, period: float,
           opacity: float = 1.0) -> tuple[int, int, int, int] | None:
    """Paint an object (a textured, lit, striped polygon, anti-aliased) into ``canvas``; returns
    its 0-based box ``(left, upper, right, lower)`` (right, lower exclusive), or None."""
    frame = _frame(points, canvas.size)
    if frame is None:
        return None
    x0, y0, w, h = frame
    mask = Image.new("L", (2 * w, 2 * h), 0)                          # 2x: smooth edges
    ImageDraw.Draw(mask).polygon([(float(u), float(v)) for u, v in 2 * (points - [x0, y0])],
                                 fill=255)
    mask = mask.reduce(2)
    half = np.asarray(mask) > 127                                     # (h, w): mostly inside
    rows, cols = np.flatnonzero(half.any(1)), np.flatnonzero(half.any(0))
    if rows.size == 0:
        return None
    tex = cut_texture(rng, material, w, h, hue_jitter=s.hue_jitter)
    tex = _shade(tex, rng, light=True, stripes=stripes, period=period)
    if opacity < 1:
        mask = mask.point(lambda v: int(v * opacity))
    canvas.paste(tex, (x0, y0), mask)
    return x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1


def _blob(rng: np.random.Generator) -> np.ndarray:
    """A random clutter outline: an ellipse or an irregular blob, as a unit polygon ``(n, 2)``."""
    n = int(rng.integers(7, 13))
    t = np.sort(rng.uniform(0, 2 * np.pi, n)) if rng.random() < 0.6 else np.linspace(
        0, 2 * np.pi, 24, endpoint=False)
    r = rng.uniform(0.55, 1.0, t.size) if t.size == n else np.ones(t.size)
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)


def _leaf(canvas: Image.Image, rng: np.random.Generator, cx: float, cy: float, radius: float,
          s: _PhotosSettings) -> None:
    """One clutter leaf: a textured blob, striped at a random angle one time in five."""
    material = "mineral" if rng.random() < 0.35 else "photo"
    stripes = float(rng.uniform(0, np.pi)) if rng.random() < 0.2 else None
    aspect = rng.uniform(0.6, 1.6)
    points = _polygon(_blob(rng), cx, cy, radius * aspect ** 0.5, radius / aspect ** 0.5,
                      float(rng.uniform(0, 2 * np.pi)))
    frame = _frame(points, canvas.size)
    if frame is None:
        return
    x0, y0, w, h = frame
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).polygon([(float(u), float(v)) for u, v in points - [x0, y0]], fill=255)
    tex = cut_texture(rng, material, w, h, zoom=False, hue_jitter=s.hue_jitter)
    tex = _shade(tex, rng, light=False, stripes=stripes,
                 period=max(6.0, radius * rng.uniform(0.35, 0.6)))
    canvas.paste(tex, (x0, y0), mask)


def _overlaps(a: tuple[int, int, int, int], taken: list[tuple[int, int, int, int]]) -> bool:
    """Whether box ``a`` covers more than 15 % of itself or of an earlier box."""
    def area(b: tuple[int, int, int, int]) -> int:
        return max(0, b[2] - b[0]) * max(0, b[3] - b[1])

    for b in taken:
        inter = area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
        if inter > 0.15 * min(area(a), area(b)):
            return True
    return False


def _place(rng: np.random.Generator, W: int, H: int, rx: float, ry: float, *, truncated: bool,
           taken: list[tuple[int, int, int, int]]) -> tuple[float, float] | None:
    """A centre for an object of half-axes ``rx``, ``ry`` whose box does not cover much of an
    earlier one (10 tries), pushed 20-45 % over an edge when ``truncated``; None if none found."""
    for _ in range(10):
        cx, cy = rng.uniform(rx, max(rx + 1, W - rx)), rng.uniform(ry, max(ry + 1, H - ry))
        if truncated:
            over, edge = rng.uniform(0.2, 0.45), int(rng.integers(4))
            cx = {0: rx - 2 * rx * over, 1: W - rx + 2 * rx * over}.get(edge, cx)
            cy = {2: ry - 2 * ry * over, 3: H - ry + 2 * ry * over}.get(edge, cy)
        if not _overlaps((int(cx - rx), int(cy - ry), int(cx + rx), int(cy + ry)), taken):
            return float(cx), float(cy)
    return None


def _draw_object(canvas: Image.Image, rng: np.random.Generator, name: str,
                 taken: list[tuple[int, int, int, int]], s: _PhotosSettings) -> dict | None:
    """Draw one object of class ``name`` (and maybe a leaf partly in front of it); returns its
    annotation (VOC box: 1-based, inclusive), or None when it found no place."""
    W, H = canvas.size
    outline, material, direction = PHOTOS_LOOKS[name]
    difficult = bool(rng.random() < s.difficult_rate)
    truncated = not difficult and bool(rng.random() < s.truncated_rate)
    side = (rng.uniform(*s.difficult_side) if difficult else
            np.exp(rng.uniform(np.log(s.side[0]), np.log(s.side[1] * min(W, H)))))
    aspect = rng.uniform(0.7, 1.4)
    rx, ry = side * aspect ** 0.5 / 2, side / aspect ** 0.5 / 2
    angle = float(rng.uniform(0, 2 * np.pi))
    tilt = np.deg2rad(rng.uniform(-s.stripe_tilt, s.stripe_tilt))
    stripes = float(tilt + (np.pi / 2 if direction == "vertical" else 0.0))
    place = _place(rng, W, H, rx, ry, truncated=truncated, taken=taken)
    if place is None:
        return None
    points = _polygon(np.asarray(OUTLINES[outline]), *place, rx, ry, angle)
    painted = _paint(canvas, rng, points, material, s, stripes=stripes,
                     period=max(6.0, min(rx, ry) * rng.uniform(0.35, 0.6)),
                     opacity=0.55 if difficult else 1.0)
    if painted is None:
        return None
    taken.append(painted)
    left, upper, right, lower = painted
    if not difficult and rng.random() < s.occluder_rate:       # a leaf partly in front
        px, py = rng.uniform(left, right), rng.choice([upper, lower])
        if rng.random() < 0.5:
            px, py = rng.choice([left, right]), rng.uniform(upper, lower)
        _leaf(canvas, rng, float(px), float(py), side * rng.uniform(0.12, 0.3), s)
    return {"name": name, "box": (left + 1, upper + 1, right, lower), "difficult": difficult,
            "truncated": left == 0 or upper == 0 or right == W or lower == H}


def _draw_image(seed: int, index: int, names: list[str],
                s: _PhotosSettings) -> tuple[Image.Image, list[dict]]:
    """Image ``index`` with the objects ``names``, from its own random stream."""
    rng = np.random.default_rng([seed, 1, index])
    W, H = int(rng.integers(s.width[0], s.width[1] + 1)), int(rng.integers(s.height[0],
                                                                           s.height[1] + 1))
    canvas = cut_texture(rng, "photo" if rng.random() < 0.8 else "mineral", W, H,
                         hue_jitter=s.hue_jitter)
    for _ in range(int(rng.integers(*s.leaves_behind))):      # dead leaves: many small, few big
        radius = 10 / np.sqrt(1 - rng.random() * (1 - (10 / (0.35 * min(W, H))) ** 2))
        _leaf(canvas, rng, rng.uniform(0, W), rng.uniform(0, H), radius, s)
    objects: list[dict] = []
    taken: list[tuple[int, int, int, int]] = []
    for name in names:
        obj = _draw_object(canvas, rng, name, taken, s)
        if obj is not None:
            objects.append(obj)
    return canvas, objects


def _render(tree: str, seed: int, jobs: list[tuple[int, list[str]]]) -> list[list[bool]]:
    """Draw and write the images ``jobs`` (``(index, class names)``); returns their objects'
    difficult flags. Runs in a worker process."""
    settings, out = _PhotosSettings(), Path(tree)
    flags = []
    for index, names in jobs:
        image_id = f"{index:06d}"
        image, objects = _draw_image(seed, index, names, settings)
        image.save(out / "JPEGImages" / f"{image_id}.jpg", quality=settings.jpeg_quality)
        (out / "Annotations" / f"{image_id}.xml").write_bytes(annotation_xml(
            image_id, image.size, objects,
            database="zfkit generated photo-textured sample (NOT Pascal VOC data)",
            annotation=f"zfkit.sample.make_sample(kind='photos', seed={seed})"))
        flags.append([o["difficult"] for o in objects])
    return flags


def _in_processes(workers: int, tree: str, seed: int,
                  chunks: list[list[tuple[int, list[str]]]]) -> list[list[list[bool]]]:
    """:func:`_render` every chunk in a pool of ``workers`` processes, results in chunk order.

    Forked on Linux: a worker starts in milliseconds instead of importing zfkit (and torch)
    afresh, and needs no ``if __name__ == "__main__"`` guard in the caller's script. The workers
    only run numpy and PIL on their own images, so Python's warning about forking a process that
    has threads (torch's, say) does not apply to them.
    """
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*multi-threaded.*fork",
                                category=DeprecationWarning)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
            return list(pool.map(_render, [tree] * len(chunks), [seed] * len(chunks), chunks))


def make_photos(out: Path, *, images: int, seed: int, workers: int | None = None) -> Path:
    """Write the photos sample to ``out/VOCdevkit/VOC2007`` (call it through
    :func:`zfkit.sample.make_sample`, which checks the arguments).

    Args:
        out: folder that receives ``VOCdevkit/``.
        images: number of images (half train, a quarter each val and test).
        seed: random seed; with ``images`` it fixes every file.
        workers: processes drawing images (default: ``os.cpu_count()``); the files do not depend
            on it.
    Returns:
        ``out/VOCdevkit/VOC2007``.
    """
    wanted = marker_fields("photos", PHOTOS_VERSION, images, seed)
    found = find_complete_sample(out, wanted)
    if found is not None:
        return found
    settings = _PhotosSettings()
    plan = np.random.default_rng([seed, 0])               # splits and class lists only
    split_of = assign_splits(plan, images, settings.split_fractions)
    cycles = {split: ClassCycle(plan) for split in SPLITS}
    jobs = [(index, [cycles[split].next() for _ in range(int(plan.choice(
        settings.objects_per_image, p=settings.objects_weights)))])
        for index, split in enumerate(split_of, start=1)]
    tree = start_build(out)
    workers = workers or os.cpu_count() or 1
    size = max(1, min(40, -(-images // (4 * workers))))
    chunks = [jobs[i:i + size] for i in range(0, len(jobs), size)]
    if workers == 1 or len(chunks) == 1:
        results = [_render(str(tree), seed, chunk) for chunk in chunks]
    else:
        results = _in_processes(min(workers, len(chunks)), str(tree), seed, chunks)
    ids: dict[str, list[str]] = {split: [] for split in SPLITS}
    objects: Counter = Counter()
    flags = [f for chunk in results for f in chunk]
    for (index, _), split, image_flags in zip(jobs, split_of, flags):
        ids[split].append(f"{index:06d}")
        objects.update(f"{split}/{'difficult' if d else 'non-difficult'}" for d in image_flags)
    return finish_build(out, tree, ids, {
        **wanted, "note": "GENERATED photo-textured data: NOT Pascal VOC 2007",
        "images_per_split": {s: len(ids[s]) for s in SPLITS},
        "objects": dict(sorted(objects.items())), "photos": sorted(PHOTO_CREDITS),
        "looks": {name: list(look) for name, look in PHOTOS_LOOKS.items()}})
