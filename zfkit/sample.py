"""The generated VOC-format samples: the ``shapes`` kind, and :func:`make_sample`, which makes
either kind.

A generated sample is a ``VOCdevkit/VOC2007`` tree laid out exactly like the real one
(``Annotations/*.xml``, ``JPEGImages/*.jpg``, ``ImageSets/Main/{train,val,trainval,test}.txt``), so
the real crop builder (:func:`zfkit.voc.build_crops`) reads it unchanged. It is never VOC data:
its XML ``<source><database>`` says so, and so does :data:`SAMPLE_MARKER`, a JSON file written last,
which also tells the crop builder what to call the crops (:func:`sample_source`). What both kinds
share (the marker, the XML writer, the staging folder and the reuse rules) is in
:mod:`zfkit.sampletree`. The kinds (:data:`SAMPLE_KINDS`):

* ``"shapes"`` (here): each class is one shape in one colour (:data:`SAMPLE_LOOKS`) on a noisy
  background. Tiny and fast, for tests and smoke runs; colour alone tells its classes apart.
* ``"photos"`` (:mod:`zfkit.photos`): shapes textured with scikit-image's photographs among clutter,
  with wide variation inside each class, so that colour alone does not solve it.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .classes import SPLITS, VOC_CLASSES
from .photos import make_photos
from .sampletree import (SAMPLE_KINDS, SAMPLE_MARKER, ClassCycle, annotation_xml, assign_splits,
                         check_sample_args, find_complete_sample, finish_build, marker_fields,
                         sample_source, start_build)

__all__ = ["SAMPLE_MARKER", "SAMPLE_KINDS", "SAMPLE_LOOKS", "SHAPES_VERSION", "make_sample",
           "sample_source"]

SHAPES_VERSION = 1             # bump whenever the shapes kind would draw different files

# ----------------------------------------------------------------------------------------------
# The shapes kind

# Each class is one shape in one colour: 5 shapes x 4 colours = 20 classes a small CNN can tell
# apart after a resize to 227 and a horizontal flip. Shapes are polygons in unit coordinates.
_SHAPES: dict[str, tuple[tuple[float, float], ...]] = {
    "disc": tuple((float(np.cos(t)), float(np.sin(t)))
                  for t in np.linspace(0, 2 * np.pi, 40, endpoint=False)),
    "square": ((-1, -1), (1, -1), (1, 1), (-1, 1)),
    "triangle": ((0, -1), (1, 1), (-1, 1)),
    "diamond": ((0, -1), (1, 0), (0, 1), (-1, 0)),
    "cross": ((-.35, -1), (.35, -1), (.35, -.35), (1, -.35), (1, .35), (.35, .35), (.35, 1),
              (-.35, 1), (-.35, .35), (-1, .35), (-1, -.35), (-.35, -.35)),
}
_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 45, 40), "green": (40, 165, 60), "blue": (45, 80, 215), "yellow": (235, 205, 35)}
SAMPLE_LOOKS: dict[str, tuple[str, str]] = {
    name: (list(_SHAPES)[i // 4], list(_COLOURS)[i % 4]) for i, name in enumerate(VOC_CLASSES)}


@dataclass(frozen=True)
class _ShapesSettings:
    """How the shapes sample is drawn (fixed: changing it changes every generated file)."""
    split_fractions: tuple[float, float, float] = (0.5, 0.25, 0.25)   # train (the rest), val, test
    objects_per_image: tuple[int, ...] = (1, 2, 3, 4)
    objects_weights: tuple[float, ...] = (0.25, 0.3, 0.25, 0.2)
    width: tuple[int, int] = (240, 320)
    height: tuple[int, int] = (180, 260)
    side: tuple[int, int] = (40, 110)              # object size in pixels
    difficult_side: tuple[int, int] = (14, 22)     # small and faint: flagged difficult
    difficult_rate: float = 0.1
    truncated_rate: float = 0.15                   # partly outside the image, box at the border
    colour_jitter: int = 25
    noise_std: float = 9.0
    jpeg_quality: int = 90


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _draw_shape(image: Image.Image, rng: np.random.Generator, name: str, *, difficult: bool,
                truncated: bool, taken: list[tuple[int, int, int, int]],
                s: _ShapesSettings) -> tuple[int, int, int, int] | None:
    """Draw one object; returns its VOC box (1-based, inclusive), or None if no free place."""
    w, h = image.size
    shape, colour_name = SAMPLE_LOOKS[name]
    lo, hi = s.difficult_side if difficult else s.side
    side, aspect = float(rng.integers(lo, hi + 1)), float(rng.uniform(0.75, 1.33))
    rx, ry = side * aspect ** 0.5 / 2, side / aspect ** 0.5 / 2      # half width, half height
    angle = float(np.deg2rad(rng.uniform(-15, 15)))
    cos, sin = np.cos(angle), np.sin(angle)
    for _ in range(15):                                 # try places until one is free
        cx, cy = rng.uniform(rx, w - rx), rng.uniform(ry, h - ry)
        if truncated:                                   # push 25-50 % of it over one edge
            over, edge = rng.uniform(0.25, 0.5), int(rng.integers(4))
            if edge < 2:
                cx = rx - 2 * rx * over if edge == 0 else w - rx + 2 * rx * over
            else:
                cy = ry - 2 * ry * over if edge == 2 else h - ry + 2 * ry * over
        points = [(cx + rx * u * cos - ry * v * sin, cy + rx * u * sin + ry * v * cos)
                  for u, v in _SHAPES[shape]]           # the unit shape scaled, rotated, moved
        mask = Image.new("L", (w, h), 0)
        ImageDraw.Draw(mask).polygon(points, fill=255)
        bbox = mask.getbbox()          # 0-based (left, upper, right, lower); right, lower exclusive
        if bbox is None or any(_overlap(bbox, t) for t in taken):
            continue
        jitter = rng.integers(-s.colour_jitter, s.colour_jitter + 1, 3)
        colour = tuple(int(c) for c in np.clip(np.add(_COLOURS[colour_name], jitter), 0, 255))
        if difficult:                                   # faint: 45 % over the background
            mask = mask.point(lambda v: v * 45 // 100)
        image.paste(Image.new("RGB", (w, h), colour), mask=mask)
        taken.append(bbox)
        left, upper, right, lower = bbox
        return left + 1, upper + 1, right, lower        # VOC: 1-based, inclusive
    return None


def _shapes_image(rng: np.random.Generator, cycle: ClassCycle,
                  s: _ShapesSettings) -> tuple[Image.Image, list[dict]]:
    """One noisy background with 1-4 objects; returns the image and its objects' annotations."""
    w = int(rng.integers(s.width[0], s.width[1] + 1))
    h = int(rng.integers(s.height[0], s.height[1] + 1))
    base = (rng.integers(70, 186) + rng.integers(-30, 31, size=3)).astype(np.float32)  # muted
    ramp = np.linspace(-1, 1, w, dtype=np.float32)[None, :, None] * rng.uniform(-30, 30, 3)
    canvas = np.clip(np.broadcast_to(base + ramp, (h, w, 3)), 0, 255).astype(np.uint8)  # (H, W, 3)
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):          # grey clutter, never a class colour
        grey = int(rng.integers(40, 220))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        draw.line((x0, y0, int(rng.integers(0, w)), int(rng.integers(0, h))), fill=(grey,) * 3,
                  width=int(rng.integers(1, 5)))
    objects, taken = [], []
    for _ in range(int(rng.choice(s.objects_per_image, p=s.objects_weights))):
        name = cycle.next()
        difficult = bool(rng.random() < s.difficult_rate)
        truncated = not difficult and bool(rng.random() < s.truncated_rate)
        box = _draw_shape(image, rng, name, difficult=difficult, truncated=truncated,
                          taken=taken, s=s)
        if box is not None:
            objects.append({"name": name, "box": box, "difficult": difficult,
                            "truncated": truncated})
    pixels = np.asarray(image, dtype=np.float32) + s.noise_std * rng.standard_normal(
        (h, w, 3), dtype=np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), objects


def _make_shapes(out: Path, *, images: int, seed: int) -> Path:
    """The shapes kind. One random stream draws everything in order (the files must stay what
    they have been since the first version), so it runs in one process."""
    wanted = marker_fields("shapes", SHAPES_VERSION, images, seed)
    found = find_complete_sample(out, wanted)
    if found is not None:
        return found
    settings = _ShapesSettings()
    rng = np.random.default_rng(seed)
    split_of = assign_splits(rng, images, settings.split_fractions)
    tree = start_build(out)
    cycles = {split: ClassCycle(rng) for split in SPLITS}
    ids: dict[str, list[str]] = {split: [] for split in SPLITS}
    objects: Counter = Counter()
    for index, split in enumerate(split_of, start=1):
        image_id = f"{index:06d}"
        image, objs = _shapes_image(rng, cycles[split], settings)
        image.save(tree / "JPEGImages" / f"{image_id}.jpg", quality=settings.jpeg_quality)
        (tree / "Annotations" / f"{image_id}.xml").write_bytes(annotation_xml(
            image_id, image.size, objs, database="zfkit generated sample (NOT Pascal VOC data)",
            annotation=f"zfkit.voc.make_sample(seed={seed})"))
        ids[split].append(image_id)
        objects.update(f"{split}/{'difficult' if o['difficult'] else 'non-difficult'}"
                       for o in objs)
    return finish_build(out, tree, ids, {
        **wanted, "note": "GENERATED data for tests and smoke runs: NOT Pascal VOC 2007",
        "images_per_split": {s: len(ids[s]) for s in SPLITS},
        "objects": dict(sorted(objects.items()))})


# ----------------------------------------------------------------------------------------------
# The dispatcher

def make_sample(out: str | os.PathLike, *, images: int = 120, seed: int = 0,
                kind: str = "shapes", workers: int | None = None) -> Path:
    """Write a generated VOC-format tree to ``out/VOCdevkit/VOC2007`` (NOT Pascal VOC data).

    ``kind="shapes"``: each of the 20 classes is a shape in a colour (:data:`SAMPLE_LOOKS`) drawn
    with size, aspect, angle and colour jitter on a noisy background, with difficult (small, faint)
    objects, truncated boxes at the border, and one to four objects per image.
    ``kind="photos"``: see :func:`zfkit.photos.make_photos`. Deterministic for a seed. The tree is
    built in ``out/.VOCdevkit.partial`` and renamed at the end, with :data:`SAMPLE_MARKER` written
    last; a complete sample with the same parameters is reused as it is, one with other
    parameters is replaced, and a ``VOCdevkit`` that is not a zfkit sample is never touched.

    Args:
        out: folder that receives ``VOCdevkit/``.
        images: number of images (at least 3; half train, a quarter each val and test).
        seed: random seed (a non-negative integer).
        kind: one of :data:`SAMPLE_KINDS`.
        workers: processes drawing the photos kind (default: every CPU core; the files do not
            depend on it). The shapes kind always runs in one process.
    Returns:
        ``out/VOCdevkit/VOC2007``.
    """
    check_sample_args(images=images, seed=seed, kind=kind, workers=workers)
    out = Path(out).expanduser()
    if kind == "photos":
        return make_photos(out, images=int(images), seed=int(seed), workers=workers)
    return _make_shapes(out, images=int(images), seed=int(seed))
