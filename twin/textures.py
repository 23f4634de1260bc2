"""Procedural textures for visual domain randomization, made with numpy and cached as PNG files.

pybullet loads textures from image files only, so each texture is drawn once, written into the
cache (``cache_dir("textures")``, atomically) and loaded from there. A texture's pixels depend
on its name alone (its generator is seeded by the name), so every process and every machine
draws the same picture; the file name carries a hash of the pixels, so a changed generator
writes a new file instead of reusing a stale one.

Textures are greyish and bright (values about 0.4-1): pybullet multiplies them with a body's
colour, so a textured part keeps its colour and a ``color_scale`` term still shows.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from celltwin.core.resources import cache_dir
from celltwin.core.atomic import atomic_write_bytes

TEXTURE_SIZE_PX = 64
NO_TEXTURE = "none"
"""the nominal look: whatever texture (usually none) the body was built with"""


def _grid() -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates in [0, 1): u across, v down."""
    axis = np.arange(TEXTURE_SIZE_PX) / TEXTURE_SIZE_PX
    return np.meshgrid(axis, axis)


def _smooth_noise(rng: np.random.Generator, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a ``cells`` x ``cells`` random grid, bilinearly enlarged."""
    coarse = rng.random((cells + 1, cells + 1))
    position = np.arange(TEXTURE_SIZE_PX) * cells / TEXTURE_SIZE_PX
    low = position.astype(int)
    frac = position - low
    rows = coarse[low] * (1 - frac)[:, None] + coarse[low + 1] * frac[:, None]
    return rows[:, low] * (1 - frac) + rows[:, low + 1] * frac


def _checker(rng: np.random.Generator) -> np.ndarray:
    u, v = _grid()
    squares = (np.floor(u * 8) + np.floor(v * 8)) % 2
    return np.repeat((0.45 + 0.55 * squares)[..., None], 3, axis=2)


def _stripes(rng: np.random.Generator) -> np.ndarray:
    u, v = _grid()
    bands = np.floor((u + v) * 6) % 2  # diagonal, so they show on every face of a box
    return np.repeat((0.5 + 0.5 * bands)[..., None], 3, axis=2)


def _noise(rng: np.random.Generator) -> np.ndarray:
    # Coloured blotches: each channel its own noise, as in Tobin et al.'s random textures.
    return np.stack([0.4 + 0.6 * _smooth_noise(rng, 8) for _ in range(3)], axis=2)


def _brushed(rng: np.random.Generator) -> np.ndarray:
    # Brushed metal: fine noise smeared along u (a box filter, wrapping), so the streaks run
    # one way and vary from row to row.
    fine = rng.normal(0.0, 1.0, (TEXTURE_SIZE_PX, TEXTURE_SIZE_PX))
    streaks = sum(np.roll(fine, shift, axis=1) for shift in range(-8, 9)) / np.sqrt(17)
    grey = np.clip(0.78 + 0.07 * streaks + 0.04 * rng.normal(0.0, 1.0, fine.shape), 0.4, 1.0)
    return np.repeat(grey[..., None], 3, axis=2)


def _wood(rng: np.random.Generator) -> np.ndarray:
    # Growth rings about a centre off the picture, bent a little by smooth noise.
    u, v = _grid()
    centre = rng.uniform(-0.6, -0.3, 2)
    radius = np.hypot(u - centre[0], (v - centre[1]) * 0.35) + 0.06 * _smooth_noise(rng, 4)
    rings = 0.5 + 0.5 * np.sin(2 * np.pi * 9 * radius)
    light, dark = np.array([0.95, 0.78, 0.58]), np.array([0.62, 0.42, 0.26])
    return dark + (light - dark) * rings[..., None] ** 0.7


_MAKERS = {"checker": _checker, "stripes": _stripes, "noise": _noise, "brushed": _brushed,
           "wood": _wood}
TEXTURES = (NO_TEXTURE, *_MAKERS)
"""every texture a ``texture`` term may choose, ``none`` (the nominal look) first"""


@cache
def texture_image(name: str) -> np.ndarray:
    """The texture ``name`` as a square RGB image (uint8), the same on every call and machine."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # str hash() differs per process
    pixels = np.round(np.clip(_MAKERS[name](rng), 0.0, 1.0) * 255).astype(np.uint8)
    pixels.setflags(write=False)  # shared by every caller through the cache
    return pixels


def texture_file(name: str) -> Path:
    """The PNG file of texture ``name`` in the cache, written the first time it is asked for."""
    pixels = texture_image(name)
    digest = hashlib.sha256(pixels.tobytes()).hexdigest()[:16]
    path = cache_dir("textures") / f"{name}-{TEXTURE_SIZE_PX}px-{digest}.png"
    if not path.exists():
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        atomic_write_bytes(path, buffer.getvalue())  # a parallel env never reads half a file
    return path
