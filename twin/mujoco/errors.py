"""The error of the MuJoCo twin: a cell it cannot express, or no usable MuJoCo installed."""

from __future__ import annotations

from celltwin.core.errors import CelltwinError


class MujocoError(CelltwinError):
    """The MuJoCo twin cannot be built as asked: ``mujoco`` is missing or too old, or the cell
    (or its PhysicsParams) holds something MuJoCo has no counterpart for."""
