"""The typed, frozen models of a cell layout file: :class:`CellSpec` and one class per section.

Units are SI (metres, kilograms, seconds) and angles are degrees where a key ends in ``_deg``.
Field docstrings become the fields' descriptions (``use_attribute_docstrings``); ``docs/cells.md``
documents the same keys. Models check what one value or one section can know; checks across
sections (names, references, robot models) live in :mod:`celltwin.spec.references`, and
:func:`validate_cell_data` runs both on a raw document and reports every problem at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, Strict, ValidationInfo, field_validator, model_validator

from celltwin.core.documents import (FROM_YAML, LineIndex, dump_yaml, findings_to_problems,
                                     unique_problems, validate_document)
from celltwin.core.errors import CellSpecError, Problem, did_you_mean, one_of
from celltwin.spec.bodies import (BinSpec, BoxEquipment, BoxPart, ConveyorSpec, CylinderEquipment,
                                  CylinderPart, Equipment, MeshEquipment, Part, SpawnRegionSpec,
                                  SpherePart, TargetSpec)
from celltwin.spec.primitives import MESH_SUFFIXES, Float, Name, Pose, SpecModel, Vec3
from celltwin.spec.references import reference_findings

__all__ = [
    "CONTROL_MODES", "MESH_SUFFIXES", "BinSpec", "BoxEquipment", "BoxPart", "CellSpec",
    "ControlMode", "ConveyorSpec", "CylinderEquipment", "CylinderPart", "Equipment",
    "MeshEquipment", "Part", "PhysicsSection", "Pose", "RobotSpec", "SpawnRegionSpec",
    "SpherePart", "TargetSpec", "validate_cell_data",
]

ControlMode = Literal["joint_position", "joint_delta", "ee_delta"]
CONTROL_MODES: tuple[str, ...] = get_args(ControlMode)


class PhysicsSection(SpecModel):
    """Simulation settings of the cell; ``--physics FILE`` may override them later."""

    timestep_s: Annotated[float, Strict(), Field(gt=0, le=0.05, allow_inf_nan=False)] = 1 / 500
    """physics timestep [s]"""
    substeps: Annotated[int, Strict(), Field(ge=1, le=1000)] = 20
    """physics steps per control step [-]"""
    solver_iterations: Annotated[int, Strict(), Field(ge=1, le=10000)] = 50
    """constraint solver iterations per physics step [-]"""
    gravity_mps2: Vec3 = (0.0, 0.0, -9.81)
    """gravity vector in the world frame [m/s^2]"""

    @property
    def control_period_s(self) -> float:
        """Time between two control steps, ``timestep_s * substeps`` [s]."""
        return self.timestep_s * self.substeps


class RobotSpec(SpecModel):
    """One robot arm placed in the cell."""

    name: Name
    """unique name of the robot in the cell"""
    model: Annotated[str, Strict()]
    """registered robot model (``celltwin.robots.registry``), e.g. ``panda``, or a robot file
    (``robots/my_arm.yaml``, relative to the cell's folder; absolute once loaded)"""
    base: Pose = Pose()
    """pose of the robot base in the world frame"""
    control: ControlMode = "ee_delta"
    """control mode of the robot's actions"""
    home_deg: Annotated[tuple[Float, ...], FROM_YAML] | None = None
    """arm joint positions of the home pose [deg]; one per arm joint; default: the model's"""

    @field_validator("model")
    @classmethod
    def _resolve_robot_file(cls, model: str, info: ValidationInfo) -> str:
        # Imported here: the registry pulls in pybullet, which reading a cell's schema does not.
        from celltwin.robots.registry import is_robot_file

        if not is_robot_file(model):
            return model
        base_dir = (info.context or {}).get("base_dir") or Path.cwd()
        return str((Path(base_dir) / Path(model).expanduser()).resolve())


class CellSpec(SpecModel):
    """A production cell: robots, fixed equipment, conveyors, bins, parts and targets."""

    name: Name
    """name of the cell"""
    description: Annotated[str, Strict()] = ""
    """free text for people"""
    physics: PhysicsSection = PhysicsSection()
    """simulation settings"""
    robots: Annotated[tuple[RobotSpec, ...], FROM_YAML] = Field(min_length=1)
    """the robots, at least one"""
    equipment: Annotated[tuple[Equipment, ...], FROM_YAML] = ()
    """fixed bodies; ``shape`` picks the kind"""
    conveyors: Annotated[tuple[ConveyorSpec, ...], FROM_YAML] = ()
    """conveyor belts"""
    bins: Annotated[tuple[BinSpec, ...], FROM_YAML] = ()
    """bins and trays"""
    parts: Annotated[tuple[Part, ...], FROM_YAML] = ()
    """free part types; ``shape`` picks the kind"""
    spawn_regions: Annotated[tuple[SpawnRegionSpec, ...], FROM_YAML] = ()
    """regions parts start in"""
    targets: Annotated[tuple[TargetSpec, ...], FROM_YAML] = ()
    """named poses robots must reach"""

    @field_validator("physics", "equipment", "conveyors", "bins", "parts", "spawn_regions",
                     "targets", mode="before")
    @classmethod
    def _empty_section(cls, value, info: ValidationInfo):
        # `equipment:` with every entry commented out reads as null: mean "none".
        if value is None:
            return {} if info.field_name == "physics" else ()
        return value

    @model_validator(mode="after")
    def _references_hold(self, info: ValidationInfo) -> CellSpec:
        # The loader checks references on the raw document (so it can report them beside
        # schema errors); a spec built in Python gets the same checks here.
        if (info.context or {}).get("references_checked"):
            return self
        problems = unique_problems(findings_to_problems(reference_findings(self.model_dump())))
        if problems:
            raise CellSpecError(problems)
        return self

    def body_names(self) -> list[str]:
        """All body names except robots, in build order: equipment, conveyors, bins, parts."""
        names = [item.name for item in (*self.equipment, *self.conveyors, *self.bins)]
        for part in self.parts:
            names.extend(part.body_names())
        return names

    def robot(self, name: str) -> RobotSpec:
        """Return the robot called ``name``."""
        for robot in self.robots:
            if robot.name == name:
                return robot
        names = [robot.name for robot in self.robots]
        raise CellSpecError(Problem(f"no robot named '{name}'{did_you_mean(name, names)}",
                                    path="robots", value=name, expected=one_of(names)))

    def with_robot_model(self, model: str) -> CellSpec:
        """Return a copy in which every robot is a ``model`` (and ``home_deg`` is dropped)."""
        data = self.model_dump()
        data["robots"] = [{**robot, "model": model, "home_deg": None} for robot in data["robots"]]
        return validate_cell_data(data)

    def to_yaml(self) -> str:
        """Serialize as YAML that :func:`celltwin.spec.parse_cell` reads back to an equal spec."""
        return dump_yaml(self.model_dump(mode="json", exclude_none=True))


def validate_cell_data(data: Any, *, file: str | None = None, base_dir: Path | None = None,
                       lines: LineIndex | None = None) -> CellSpec:
    """Validate a raw cell document (as YAML gives it) and return the spec.

    Raises:
        CellSpecError: with every schema and reference problem found.
    """
    return validate_document(data, CellSpec, error=CellSpecError, file=file,
                             lines=lines or LineIndex(), what="cell",
                             context={"base_dir": base_dir, "references_checked": True},
                             checks=lambda raw: reference_findings(raw, base_dir=base_dir))
