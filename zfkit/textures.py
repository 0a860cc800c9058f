"""Textures cut from the photographs that ship inside scikit-image, and their credits.

The photos sample (:mod:`zfkit.photos`) paints every object, clutter leaf and background with a
patch of one of these photographs (:data:`PHOTO_SOURCES`), loaded once per process from
``skimage.data`` (no download: the files are in the wheel). A patch is cut at a random place and
scale, flipped or not, then recoloured: a colour photograph (material ``"photo"``) has its hue
turned in YIQ space and its saturation, gain and contrast changed; a greyscale texture (material
``"mineral"``: brick, grass, gravel) is tinted a random colour. :func:`stripe_pattern` makes the
soft stripes the objects carry. The photographs are credited as scikit-image's own docstrings
credit them (:data:`PHOTO_CREDITS`, :func:`photo_credits_markdown`).
"""
from __future__ import annotations

import colorsys
import functools

import numpy as np
from PIL import Image

__all__ = ["MATERIALS", "PHOTO_SOURCES", "PHOTO_CREDITS", "load_photos", "cut_texture",
           "stripe_pattern", "photo_credits_markdown"]

MATERIALS: tuple[str, ...] = ("photo", "mineral")
# name: (skimage.data function, material); a mineral photo is greyscale and gets tinted.
PHOTO_SOURCES: dict[str, tuple[str, str]] = {
    "astronaut": ("astronaut", "photo"), "chelsea": ("chelsea", "photo"),
    "coffee": ("coffee", "photo"), "rocket": ("rocket", "photo"),
    "motorcycle": ("stereo_motorcycle", "photo"), "hubble": ("hubble_deep_field", "photo"),
    "retina": ("retina", "photo"), "ihc": ("immunohistochemistry", "photo"),
    "brick": ("brick", "mineral"), "grass": ("grass", "mineral"), "gravel": ("gravel", "mineral"),
}
# Sentences of each function's docstring in the installed scikit-image, verbatim.
PHOTO_CREDITS: dict[str, tuple[str, ...]] = {
    "astronaut": ("Photograph of Eileen Collins, an American astronaut.",
                  "This image was downloaded from the NASA Great Images database.",
                  "No known copyright restrictions, released into the public domain."),
    "chelsea": ("Chelsea the cat.",
                "No copyright restrictions. CC0 by the photographer (Stefan van der Walt)."),
    "coffee": ("Coffee cup.", "This photograph is courtesy of Pikolo Espresso Bar.",
               "No copyright restrictions. CC0 by the photographer (Rachel Michetti)."),
    "rocket": ("Launch photo of DSCOVR on Falcon 9 by SpaceX.",
               "The image was captured by SpaceX and released in the public domain."),
    "motorcycle": ("The two images are part of the Middlebury 2014 stereo benchmark.",
                   "The dataset was created by Nera Nesic, Porter Westling, Xi Wang, York "
                   "Kitajima, Greg Krathwohl, and Daniel Scharstein at Middlebury College."),
    "hubble": ("Hubble eXtreme Deep Field.", "This image was downloaded from HubbleSite.",
               "The image was captured by NASA and may be freely used in the public domain."),
    "retina": ("Human retina.", "This image was downloaded from wikimedia.",
               "This file is made available under the Creative Commons CC0 1.0 Universal Public "
               "Domain Dedication.",
               'Häggström, Mikael (2014). "Medical gallery of Mikael Häggström 2014". '
               "WikiJournal of Medicine 1 (2)."),
    "ihc": ("Immunohistochemical (IHC) staining with hematoxylin counterstaining.",
            "This image was acquired at the Center for Microscopy And Molecular Imaging (CMMI).",
            "No known copyright restrictions."),
    "brick": ("Brick wall.", "The original image was downloaded from CC0Textures and licensed "
                             "under the Creative Commons CC0 License."),
    "grass": ("Grass.", "The original image was downloaded from DeviantArt and licensed under "
                        "the Creative Commons CC0 License."),
    "gravel": ("Gravel", "The original image was downloaded from CC0Textures and licensed under "
                         "the Creative Commons CC0 License."),
}



@functools.lru_cache(maxsize=1)
def load_photos() -> dict[str, Image.Image]:
    """Every source photograph as a PIL image (RGB, or L for the greyscale ones), loaded once per
    process from ``skimage.data`` (the files ship inside the scikit-image wheel)."""
    try:
        import skimage.data
    except ImportError as exc:
        raise ImportError("the photos sample needs scikit-image: pip install scikit-image") from exc
    photos = {}
    for name, (function, _) in PHOTO_SOURCES.items():
        array = getattr(skimage.data, function)()
        array = array[0] if isinstance(array, tuple) else array     # stereo: the left image
        photos[name] = Image.fromarray(np.ascontiguousarray(array))
    return photos



_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_RGB = np.linalg.inv(_YIQ)


def _matrix(m: np.ndarray, contrast: float) -> tuple[float, ...]:
    """A 3 x 3 colour matrix, its contrast scaled about mid-grey, as the 12 numbers (a row and
    an offset per channel) PIL's ``convert(matrix=...)`` takes."""
    return tuple(float(v) for row in m for v in (*(contrast * row), (1 - contrast) * 128.0))


@functools.lru_cache(maxsize=None)
def _pyramid(name: str) -> tuple[Image.Image, ...]:
    """A photo at full, half and quarter size: clutter cuts its textures from these unscaled."""
    levels = [load_photos()[name]]
    for _ in range(2):
        levels.append(levels[-1].reduce(2))
    return tuple(levels)


def cut_texture(rng: np.random.Generator, material: str, w: int, h: int, *, zoom: bool = True,
                hue_jitter: float = 40.0) -> Image.Image:
    """A ``w`` x ``h`` RGB patch of a photo of ``material``, cut at a random place and scale
    (``zoom``: any scale, resampled; else one of three sizes, just cut), then hue-turned (photo)
    or tinted (mineral), with a random gain and contrast.

    Args:
        rng: the random stream (of one image).
        material: ``"photo"`` (a colour photograph, its hue turned by up to ``hue_jitter``
            degrees) or ``"mineral"`` (a greyscale texture, tinted a random colour).
        w, h: the patch size in pixels.
    Returns:
        An RGB PIL image.
    """
    names = [n for n, (_, m) in PHOTO_SOURCES.items() if m == material]
    name = names[int(rng.integers(len(names)))]
    levels = _pyramid(name)
    image = levels[int(rng.integers(len(levels)))]
    if image.width < w or image.height < h:
        zoom = True
    pw, ph = image.size
    if zoom:                                        # the cut in full-size pixels
        pw, ph = levels[0].size
        scale = rng.uniform(0.5, 2.0) * max(w / pw, h / ph, 0.3)    # pixels per source pixel
        cw, ch = min(pw, w / scale), min(ph, h / scale)
        x0, y0 = rng.uniform(0, pw - cw), rng.uniform(0, ph - ch)
        k = 0                                       # the smallest level still finer than (w, h)
        while k + 1 < len(levels) and cw / 2 ** (k + 1) >= w and ch / 2 ** (k + 1) >= h:
            k += 1
        box = tuple(v / 2 ** k for v in (x0, y0, x0 + cw, y0 + ch))
        patch = levels[k].resize((w, h), Image.BILINEAR, box=box)
    else:
        x0, y0 = int(rng.integers(pw - w + 1)), int(rng.integers(ph - h + 1))
        patch = image.crop((x0, y0, x0 + w, y0 + h))
    if rng.random() < 0.5:
        patch = patch.transpose(Image.FLIP_LEFT_RIGHT)
    gain, contrast = rng.uniform(0.7, 1.3), rng.uniform(0.6, 1.2)
    if material == "mineral":                       # grey -> tinted RGB
        tint = 1.3 * gain * np.asarray(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.2, 0.65),
                                                           1.0))
        return Image.merge("RGB", (patch,) * 3).convert(
            "RGB", matrix=_matrix(np.diag(tint), contrast))
    turn, sat = np.deg2rad(rng.uniform(-hue_jitter, hue_jitter)), rng.uniform(0.6, 1.3)
    iq = np.array([[1, 0, 0], [0, sat * np.cos(turn), -sat * np.sin(turn)],
                   [0, sat * np.sin(turn), sat * np.cos(turn)]])
    m = gain * _RGB @ iq @ _YIQ                     # the hue turned in YIQ space, in RGB
    return patch.convert("RGB", matrix=_matrix(m, contrast))


def stripe_pattern(rng: np.random.Generator, w: int, h: int, angle: float, period: float,
             contrast: float) -> np.ndarray:
    """A ``(h, w, 1)`` multiplier: soft-edged stripes running at ``angle`` (radians)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    across = -x * np.float32(np.sin(angle)) + y * np.float32(np.cos(angle))
    wave = np.tanh(3 * np.sin(across * np.float32(2 * np.pi / period) + rng.uniform(0, 6.3)))
    return (1 + np.float32(contrast) * wave)[..., None]



def photo_credits_markdown() -> str:
    """A short markdown paragraph crediting every photograph the photos sample is cut from."""
    parts = [f"**{name}** (`skimage.data.{PHOTO_SOURCES[name][0]}`): " + " ".join(text)
             for name, text in PHOTO_CREDITS.items()]
    return ("The textures and backgrounds of the GENERATED photos sample (NOT Pascal VOC data) "
            "are cut from photographs that ship with scikit-image (van der Walt et al. 2014, "
            "*scikit-image: image processing in Python*, PeerJ 2:e453). " + "; ".join(parts))
