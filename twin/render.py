"""Pictures of a twin: a perspective view and a top view, rendered offscreen.

TinyRenderer (pybullet's CPU rasterizer) works everywhere; where an EGL driver is present,
``use_egl=True`` loads pybullet's EGL plugin for GPU rendering.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from twin.atomic import atomic_write_bytes


def scene_bounds(world) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned bounds [m] of everything in the cell except the floor."""
    lows, highs = [], []
    for name, body in world.bodies.items():
        if name == "floor":
            continue
        for link in range(-1, world.client.getNumJoints(body)):
            low, high = world.client.getAABB(body, link)
            lows.append(low)
            highs.append(high)
    return np.min(lows, axis=0), np.max(highs, axis=0)


def render_view(world, *, view: str = "perspective", width: int = 640, height: int = 480,
                renderer: int | None = None) -> np.ndarray:
    """Render the world as an RGB array (height x width x 3, uint8).

    Args:
        view: ``perspective`` (from the front-left, above) or ``top`` (straight down).
        renderer: a pybullet renderer constant; TinyRenderer by default.
    """
    client = world.client
    low, high = scene_bounds(world)
    centre = (low + high) / 2
    size = float(np.max(high - low))
    if view == "top":
        eye = centre + np.array([0.0, -1e-3, 1.6 * size + 0.5])
        up = [0.0, 1.0, 0.0]
    else:
        eye = centre + np.array([-0.9, -1.2, 0.9]) * (0.8 * size + 0.4)
        up = [0.0, 0.0, 1.0]
    view_matrix = client.computeViewMatrix(eye.tolist(), centre.tolist(), up)
    projection = client.computeProjectionMatrixFOV(45.0, width / height, 0.05, 50.0)
    _, _, rgba, _, _ = client.getCameraImage(
        width, height, view_matrix, projection,
        renderer=client.ER_TINY_RENDERER if renderer is None else renderer,
        lightDirection=[0.4, -0.6, 1.0], shadow=1)
    return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3]


def save_png(images: list[np.ndarray], path: str | Path) -> Path:
    """Write images side by side as one PNG, atomically."""
    import io

    combined = np.concatenate(images, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(combined).save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


def render_cell(world, path: str | Path, width: int = 640, height: int = 480) -> Path:
    """Write a perspective and a top view of ``world`` side by side to ``path``."""
    return save_png([render_view(world, view=view, width=width, height=height)
                     for view in ("perspective", "top")], path)
