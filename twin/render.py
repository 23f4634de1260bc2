"""Pictures of a twin: a perspective view and a top view, rendered offscreen.

TinyRenderer (pybullet's CPU rasterizer) works everywhere. Where an NVIDIA driver is present
(or ``CELLTWIN_RENDERER=egl``), pybullet's EGL plugin renders on the GPU instead;
``CELLTWIN_RENDERER=tiny`` forces the CPU path. A failed plugin load falls back to TinyRenderer.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

import numpy as np
from PIL import Image

from celltwin.core.atomic import atomic_write_bytes

# Per client object (ids are reused after a disconnect): whether the EGL plugin loaded.
_EGL_CLIENTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _wants_egl() -> bool:
    choice = os.environ.get("CELLTWIN_RENDERER", "auto").lower()
    if choice in ("egl", "tiny"):
        return choice == "egl"
    return Path("/dev/nvidia0").exists() or Path("/dev/dri/renderD128").exists()


def renderer_for(client) -> int:
    """The pybullet renderer to use with ``client``: EGL (GPU) when it loads, else TinyRenderer."""
    if client not in _EGL_CLIENTS:
        loaded = False
        if _wants_egl():
            import importlib.util

            egl = importlib.util.find_spec("eglRenderer")  # pkgutil.get_loader: gone in 3.14
            plugin = client.loadPlugin(egl.origin, "_eglRendererPlugin") if egl else -1
            loaded = plugin >= 0
        _EGL_CLIENTS[client] = loaded
    return client.ER_BULLET_HARDWARE_OPENGL if _EGL_CLIENTS[client] else client.ER_TINY_RENDERER


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


DEFAULT_LIGHT_DIRECTION = (0.4, -0.6, 1.0)


def camera_matrices(world, view: str = "perspective", width: int = 640, height: int = 480,
                    camera_offset_m=(0.0, 0.0, 0.0)) -> tuple[list, list]:
    """pybullet's view and projection matrices of :func:`render_view`'s camera (same args)."""
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
    eye = eye + np.asarray(camera_offset_m, dtype=float)
    view_matrix = client.computeViewMatrix(eye.tolist(), centre.tolist(), up)
    projection = client.computeProjectionMatrixFOV(45.0, width / height, 0.05, 50.0)
    return view_matrix, projection


def render_view(world, *, view: str = "perspective", width: int = 640, height: int = 480,
                renderer: int | None = None, light_direction=DEFAULT_LIGHT_DIRECTION,
                camera_offset_m=(0.0, 0.0, 0.0), matrices=None) -> np.ndarray:
    """Render the world as an RGB array (height x width x 3, uint8).

    Args:
        view: ``perspective`` (from the front-left, above) or ``top`` (straight down).
        renderer: a pybullet renderer constant; by default :func:`renderer_for` decides.
        light_direction: direction towards the light, world frame.
        camera_offset_m: added to the camera's eye position [m] (visual randomization).
        matrices: the camera's ``(view, projection)`` matrices, as :func:`camera_matrices`
            gives them; by default framed on the scene as it is now (a video keeps one
            camera: framing every frame anew would follow the arm's reach).
    """
    client = world.client
    view_matrix, projection = matrices or camera_matrices(world, view, width, height,
                                                          camera_offset_m)
    _, _, rgba, _, _ = client.getCameraImage(
        width, height, view_matrix, projection,
        renderer=renderer_for(client) if renderer is None else renderer,
        lightDirection=list(light_direction), shadow=1)
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
