"""A top view of a cell with planning marks drawn over it: reach circles, targets, trouble spots.

The picture is :func:`celltwin.render.render_view` with ``view="top"``; the marks are drawn with
matplotlib at the pixels where world points land. :class:`TopViewProjection` rebuilds the
camera of that view (same bounds, eye, field of view) to find those pixels, so both must change
together.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from celltwin.core.atomic import atomic_write_bytes
from celltwin.render import render_view, scene_bounds

_FOV_DEG = 45.0  # render_view's camera
_NEAR_M, _FAR_M = 0.05, 50.0


class TopViewProjection:
    """World point -> pixel of ``render_view(world, view="top", width, height)``."""

    def __init__(self, world, width: int, height: int):
        client = world.client
        low, high = scene_bounds(world)
        centre = (low + high) / 2
        size = float(np.max(high - low))
        eye = centre + np.array([0.0, -1e-3, 1.6 * size + 0.5])
        view = client.computeViewMatrix(eye.tolist(), centre.tolist(), [0.0, 1.0, 0.0])
        projection = client.computeProjectionMatrixFOV(_FOV_DEG, width / height, _NEAR_M, _FAR_M)
        # pybullet's matrices are column-major 4x4 lists.
        self._matrix = (np.asarray(projection).reshape(4, 4).T
                        @ np.asarray(view).reshape(4, 4).T)
        self.width, self.height = width, height

    def __call__(self, points_m) -> np.ndarray:
        """Pixels (u right, v down) of world points, shape (n, 2)."""
        points = np.atleast_2d(np.asarray(points_m, dtype=float))
        clip = np.c_[points, np.ones(len(points))] @ self._matrix.T
        ndc = clip[:, :2] / clip[:, 3:4]
        return np.c_[(ndc[:, 0] + 1) / 2 * self.width, (1 - ndc[:, 1]) / 2 * self.height]


@dataclass(frozen=True)
class Mark:
    """A point to mark on the top view.

    Attributes:
        position_m: world position [m].
        label: text beside it.
        color: a matplotlib colour.
        marker: a matplotlib marker (``o`` target, ``x`` trouble spot).
    """

    position_m: tuple[float, float, float]
    label: str
    color: str = "limegreen"
    marker: str = "o"


def draw_top_view(world, path: str | Path | None, *, envelopes_m: dict[str, float] | None = None,
                  marks: list[Mark] = (), title: str = "", width: int = 800,
                  height: int = 600):
    """Render the top view with reach circles and marks; write a PNG (atomically) or return it.

    Args:
        world: the world to draw.
        path: where to write the PNG; ``None`` returns the matplotlib figure instead.
        envelopes_m: robot name -> reach radius around its base [m], drawn at base height.
        marks: points to mark.
        title: figure title.
    """
    from celltwin.core.plots import new_figure

    image = render_view(world, view="top", width=width, height=height)
    project = TopViewProjection(world, width, height)
    figure = new_figure(figsize=(width / 100, height / 100 + 0.4), dpi=100)
    axes = figure.subplots()
    axes.imshow(image)
    angles = np.linspace(0.0, 2 * np.pi, 121)
    low, high = scene_bounds(world)
    shown = [project([[x, y, high[2]] for x in (low[0], high[0]) for y in (low[1], high[1])])]
    for name, radius in (envelopes_m or {}).items():
        base = world.robots[name].base_xyz
        circle = np.c_[base[0] + radius * np.cos(angles), base[1] + radius * np.sin(angles),
                       np.full_like(angles, base[2])]
        pixels = project(circle)
        shown.append(pixels)
        axes.plot(pixels[:, 0], pixels[:, 1], "--", color="deepskyblue", linewidth=1.2)
        centre = project(base)[0]
        axes.annotate(f"{name} reach {radius:.2f} m", pixels[30], color="deepskyblue",
                      fontsize=8, ha="left")
        axes.plot(*centre, "+", color="deepskyblue", markersize=10)
    for mark in marks:
        u, v = project(mark.position_m)[0]
        shown.append(np.array([[u, v]]))
        axes.plot(u, v, mark.marker, color=mark.color, markersize=8,
                  markeredgecolor="black" if mark.marker == "o" else mark.color,
                  markeredgewidth=1.5)
        axes.annotate(mark.label, (u, v), xytext=(6, -6), textcoords="offset points",
                      color=mark.color, fontsize=8,
                      bbox=dict(boxstyle="round,pad=0.15", fc="black", alpha=0.45, lw=0))
    # Zoom to the cell, its reach circles and marks: the camera frames more floor than that.
    shown = np.concatenate(shown)
    left, top = np.maximum(shown.min(axis=0) - 40, 0)
    right, bottom = np.minimum(shown.max(axis=0) + 40, [width, height])
    axes.set_xlim(left, right)
    axes.set_ylim(bottom, top)
    axes.axis("off")
    if title:
        axes.set_title(title, fontsize=10)
    figure.tight_layout()
    if path is None:
        return figure
    return save_figure(figure, path)


def save_figure(figure, path: str | Path) -> Path:
    """Write a matplotlib figure as PNG, atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())
