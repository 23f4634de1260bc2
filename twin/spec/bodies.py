"""The things a cell holds besides robots: equipment, conveyors, bins, parts, regions, targets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Field, Strict, StrictBool, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from celltwin.core.documents import FROM_YAML
from celltwin.spec.primitives import (BELT_COLOR, BIN_COLOR, EQUIPMENT_COLOR, MESH_SUFFIXES,
                                      MESH_UNITS_M, PART_COLOR, Color, Float, Name, Pose,
                                      PositiveFloat, Size3, SpecModel, Vec3)


class _Equipment(SpecModel):
    name: Name
    """unique name of the body"""
    pose: Pose = Pose()
    """pose of the body's centre in the world frame"""
    color: Color = EQUIPMENT_COLOR
    """RGBA colour, each in [0, 1]"""
    collision: StrictBool = True
    """whether other bodies collide with it (false: visual only)"""


class BoxEquipment(_Equipment):
    """A fixed box, e.g. a table or a guard."""

    shape: Literal["box"] = "box"
    """``box``"""
    size_m: Size3
    """full extents along x, y, z [m]"""


class CylinderEquipment(_Equipment):
    """A fixed upright cylinder (axis along the local z axis), e.g. a post."""

    shape: Literal["cylinder"] = "cylinder"
    """``cylinder``"""
    radius_m: PositiveFloat
    """radius [m]"""
    height_m: PositiveFloat
    """height along the local z axis [m]"""


class MeshEquipment(_Equipment):
    """A fixed body from a CAD mesh file."""

    shape: Literal["mesh"] = "mesh"
    """``mesh``"""
    mesh: Annotated[Path, FROM_YAML]
    """mesh file (.stl .obj .glb .gltf .ply), relative to the cell's folder; absolute once loaded"""
    mesh_units: Literal["m", "cm", "mm", "in"] = "m"
    """length unit the mesh file is written in"""
    scale: PositiveFloat = 1.0
    """extra uniform scale applied after the unit conversion [-]"""

    @field_validator("mesh")
    @classmethod
    def _resolve_mesh(cls, mesh: Path, info: ValidationInfo) -> Path:
        if mesh.suffix.lower() not in MESH_SUFFIXES:
            raise PydanticCustomError("mesh_suffix", "unsupported mesh format '{suffix}'", {
                "suffix": mesh.suffix or "(none)",
                "expected": "a file ending in " + ", ".join(MESH_SUFFIXES)})
        base_dir = (info.context or {}).get("base_dir") or Path.cwd()
        resolved = (Path(base_dir) / mesh.expanduser()).resolve()
        if not resolved.is_file():
            raise PydanticCustomError("mesh_missing", "mesh file not found: {resolved}", {
                "resolved": str(resolved), "expected": "an existing mesh file"})
        return resolved

    @property
    def vertex_scale(self) -> float:
        """Factor that turns the file's vertex coordinates into metres (units times ``scale``)."""
        return MESH_UNITS_M[self.mesh_units] * self.scale


Equipment = Annotated[Union[BoxEquipment, CylinderEquipment, MeshEquipment],
                      Field(discriminator="shape")]


class ConveyorSpec(SpecModel):
    """A straight conveyor belt; it carries parts along its local +x axis."""

    name: Name
    """unique name of the belt body"""
    pose: Pose = Pose()
    """pose of the centre of the belt's top surface; the belt runs along local +x"""
    length_m: PositiveFloat
    """belt length along local x [m]"""
    width_m: PositiveFloat
    """belt width along local y [m]"""
    speed_mps: Annotated[float, Strict(), Field(ge=-5, le=5, allow_inf_nan=False)]
    """belt surface speed along local +x; negative runs backwards [m/s]"""
    height_m: PositiveFloat = 0.1
    """thickness of the belt body below the top surface [m]"""
    color: Color = BELT_COLOR
    """RGBA colour, each in [0, 1]"""


class BinSpec(SpecModel):
    """An open box: a floor and four walls."""

    name: Name
    """unique name of the body"""
    kind: Literal["bin", "tray"] = "bin"
    """``bin`` or ``tray`` (the same geometry; a tray is a shallow bin)"""
    pose: Pose = Pose()
    """pose of the centre of the bottom face"""
    size_m: Size3
    """outer extents x, y and wall height z [m]"""
    wall_thickness_m: PositiveFloat = 0.01
    """thickness of the floor and the walls [m]"""
    color: Color = BIN_COLOR
    """RGBA colour, each in [0, 1]"""

    @field_validator("wall_thickness_m")
    @classmethod
    def _wall_fits(cls, wall: float, info: ValidationInfo) -> float:
        size = info.data.get("size_m")
        if size is not None and wall >= min(size[0], size[1]) / 2:
            limit = min(size[0], size[1]) / 2
            raise PydanticCustomError(
                "wall_too_thick", "a {wall} m wall leaves no room inside a {x} x {y} m bin",
                {"wall": wall, "x": size[0], "y": size[1], "expected": f"< {limit:g}"})
        return wall


class _Part(SpecModel):
    name: Name
    """name of the part type; with ``count`` > 1 the bodies are ``name_0 .. name_{count-1}``"""
    mass_kg: PositiveFloat
    """mass of one part [kg]"""
    friction: Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)] = 0.8
    """lateral friction coefficient [-]"""
    color: Color = PART_COLOR
    """RGBA colour, each in [0, 1]"""
    spawn: Name
    """name of the spawn region the parts start in"""
    count: Annotated[int, Strict(), Field(ge=1, le=1000)] = 1
    """number of parts of this type [-]"""

    def body_names(self) -> list[str]:
        """Names of the bodies this part type becomes, in build order."""
        if self.count == 1:
            return [self.name]
        return [f"{self.name}_{index}" for index in range(self.count)]


class BoxPart(_Part):
    """Free box-shaped parts."""

    shape: Literal["box"] = "box"
    """``box``"""
    size_m: Size3
    """full extents along x, y, z [m]"""


class CylinderPart(_Part):
    """Free cylindrical parts, standing upright when spawned."""

    shape: Literal["cylinder"] = "cylinder"
    """``cylinder``"""
    radius_m: PositiveFloat
    """radius [m]"""
    height_m: PositiveFloat
    """height along the part's z axis [m]"""


class SpherePart(_Part):
    """Free spherical parts."""

    shape: Literal["sphere"] = "sphere"
    """``sphere``"""
    radius_m: PositiveFloat
    """radius [m]"""


Part = Annotated[Union[BoxPart, CylinderPart, SpherePart], Field(discriminator="shape")]


class SpawnRegionSpec(SpecModel):
    """A box in which parts start: their centres lie between ``low_m`` and ``high_m``."""

    name: Name
    """unique name of the region"""
    on: Name | None = None
    """equipment, conveyor or bin whose frame ``low_m``/``high_m`` are in; default: the world"""
    low_m: Vec3
    """lower corner of the region [m]"""
    high_m: Vec3
    """upper corner of the region; each coordinate >= the one in ``low_m`` [m]"""
    yaw_deg: Annotated[tuple[Float, Float], FROM_YAML] = (0.0, 0.0)
    """range [low, high] of the parts' yaw about the frame's z axis [deg]"""

    @field_validator("high_m")
    @classmethod
    def _high_above_low(cls, high: tuple[float, ...], info: ValidationInfo) -> tuple[float, ...]:
        low = info.data.get("low_m")
        if low is not None:
            axes = [axis for axis, lo, hi in zip("xyz", low, high) if hi < lo]
            if axes:
                raise PydanticCustomError(
                    "range_order", "high_m is below low_m along {axes}",
                    {"axes": ", ".join(axes), "expected": f"each value >= low_m {list(low)}"})
        return high

    @field_validator("yaw_deg")
    @classmethod
    def _yaw_ordered(cls, yaw: tuple[float, float]) -> tuple[float, float]:
        if yaw[1] < yaw[0]:
            raise PydanticCustomError("range_order", "yaw range [{lo}, {hi}] is reversed", {
                "lo": yaw[0], "hi": yaw[1], "expected": "[low, high] with low <= high"})
        return yaw


class TargetSpec(SpecModel):
    """A named pose a robot must reach, e.g. a place pose."""

    name: Name
    """unique name of the target"""
    pose: Pose
    """pose of the target in the frame of ``relative_to``"""
    relative_to: Name | None = None
    """body whose frame ``pose`` is in; default: the world"""
    robot: Name | None = None
    """robot that must reach it; default: every robot in the cell"""

