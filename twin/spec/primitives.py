"""Building blocks shared by every section of a cell: strict number types, colours, Pose.

Numbers are strict because YAML turns `yes` into True and lax pydantic would then turn True into
1.0; strict floats still accept ints, which is what a person writing `0` for `0.0` means.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict

from celltwin.core.documents import DOCUMENT_CONFIG, FROM_YAML

Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
PositiveFloat = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
UnitFloat = Annotated[float, Strict(), Field(ge=0, le=1, allow_inf_nan=False)]
Name = Annotated[str, Strict(), Field(min_length=1)]
Vec3 = Annotated[tuple[Float, Float, Float], FROM_YAML]
Size3 = Annotated[tuple[PositiveFloat, PositiveFloat, PositiveFloat], FROM_YAML]
Color = Annotated[tuple[UnitFloat, UnitFloat, UnitFloat, UnitFloat], FROM_YAML]

MESH_SUFFIXES = (".stl", ".obj", ".glb", ".gltf", ".ply")
MESH_UNITS_M = {"m": 1.0, "cm": 0.01, "mm": 0.001, "in": 0.0254}
EQUIPMENT_COLOR = (0.7, 0.7, 0.7, 1.0)
BELT_COLOR = (0.15, 0.15, 0.17, 1.0)
BIN_COLOR = (0.35, 0.45, 0.6, 1.0)
PART_COLOR = (0.8, 0.3, 0.2, 1.0)


class SpecModel(BaseModel):
    """Base of every cell and line model: the documents' strictness
    (:data:`~celltwin.core.documents.DOCUMENT_CONFIG`), immutable."""

    model_config = ConfigDict(**DOCUMENT_CONFIG, frozen=True, use_attribute_docstrings=True)


class Pose(SpecModel):
    """A position and a fixed-axis roll-pitch-yaw orientation."""

    xyz: Vec3 = (0.0, 0.0, 0.0)
    """position [m]"""
    rpy_deg: Vec3 = (0.0, 0.0, 0.0)
    """roll, pitch, yaw about the fixed x, y, z axes, applied in that order [deg]"""

    def quaternion_xyzw(self) -> tuple[float, float, float, float]:
        """Return the orientation as a unit quaternion ``(x, y, z, w)``, pybullet's convention."""
        roll, pitch, yaw = (math.radians(angle) / 2 for angle in self.rpy_deg)
        cr, sr = math.cos(roll), math.sin(roll)
        cp, sp = math.cos(pitch), math.sin(pitch)
        cy, sy = math.cos(yaw), math.sin(yaw)
        return (sr * cp * cy - cr * sp * sy,
                cr * sp * cy + sr * cp * sy,
                cr * cp * sy - sr * sp * cy,
                cr * cp * cy + sr * sp * sy)

