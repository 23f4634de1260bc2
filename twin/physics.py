"""PhysicsParams: the one typed object that holds every physical knob of a twin.

A world reports its parameters with ``World.physics_params()`` and takes new ones with
``World.apply_physics(params)``. Every field may be ``None``, meaning "leave as it is", so the
same class serves as a complete description (read from a world, every field filled) and as an
overrides file (``--physics FILE``: only what the file sets). Domain randomization perturbs it,
calibration fits it, evaluation sweeps it; nothing else mutates physics.

Names: bodies are keyed by their name in the cell (``part``, ``table``); a link of a multi-link
body by ``body/link`` (``arm/panda_link3``); joints by ``robot/joint`` (``arm/panda_joint2``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field

from celltwin.core.actuation_limits import (JOINT_NOISE_STD_RAD_RANGE, LATENCY_STEPS_RANGE,
                                            SEAL_TOLERANCE_M_RANGE, SUCTION_FORCE_N_RANGE)
from celltwin.core.atomic import atomic_write_text
from celltwin.core.documents import (DOCUMENT_CONFIG, FROM_YAML, load_model, model_from_mapping,
                                     parse_model)
from celltwin.core.errors import PhysicsParamsError

_CONFIG = ConfigDict(**DOCUMENT_CONFIG, frozen=True)

NonNegative = Annotated[float, Field(ge=0.0)]

GLOBAL_FIELDS = ("timestep_s", "substeps", "solver_iterations", "gravity_mps2")
SECTIONS = ("bodies", "joints", "robots")


class BodyDynamics(BaseModel):
    """Contact and inertial properties of one body (its base) or one link."""

    model_config = _CONFIG

    mass_kg: Annotated[float, Field(gt=0.0)] | None = None
    """Mass [kg]. Fixed bodies (equipment, conveyors, bins) have none to set."""
    lateral_friction: NonNegative | None = None
    """Coulomb friction coefficient for sliding [-]."""
    rolling_friction: NonNegative | None = None
    """Rolling friction coefficient [m]: torque resisting rolling per unit normal force."""
    spinning_friction: NonNegative | None = None
    """Spinning (torsional) friction coefficient [m]."""
    restitution: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    """Coefficient of restitution [-]: 0 inelastic, 1 elastic."""


class JointDynamics(BaseModel):
    """Dissipation and actuation limits of one joint."""

    model_config = _CONFIG

    damping: NonNegative | None = None
    """Viscous joint damping [N m s/rad] (revolute) or [N s/m] (prismatic)."""
    friction: NonNegative | None = None
    """Coulomb joint friction [N m] or [N]. On a joint a robot drives, it is modelled as force
    the motor must spend before moving the load (the motor's force limit shrinks by it); on a
    passive joint, as a velocity motor holding zero speed with this much force."""
    force_limit: NonNegative | None = None
    """Largest force or torque the joint's motor may apply [N m] or [N]."""


class RobotActuation(BaseModel):
    """Controller, sensing and suction properties of one robot."""

    model_config = _CONFIG

    position_gain: NonNegative | None = None
    """Position gain of pybullet's joint position controller [-] (the ERP-like Kp)."""
    velocity_gain: NonNegative | None = None
    """Velocity gain of pybullet's joint position controller [-] (Kd)."""
    latency_steps: Annotated[int, Field(ge=LATENCY_STEPS_RANGE[0],
                                        le=LATENCY_STEPS_RANGE[1])] | None = None
    """Actuation latency [control steps]: a command takes effect this many steps later."""
    joint_noise_std_rad: Annotated[float, Field(ge=JOINT_NOISE_STD_RAD_RANGE[0])] | None = None
    """Standard deviation of Gaussian noise on joint position readings [rad]."""
    suction_force_n: Annotated[float, Field(gt=SUCTION_FORCE_N_RANGE[0])] | None = None
    """Rated holding force of the robot's suction cup [N]: the most its vacuum pulls a sealed
    part with (robots with a suction cup only)."""
    suction_seal_tolerance_m: Annotated[float, Field(ge=SEAL_TOLERANCE_M_RANGE[0],
                                                     le=SEAL_TOLERANCE_M_RANGE[1])] | None = None
    """Largest gap between the suction cup and a part's face that seals, and how far a held
    part may be pulled off before the seal breaks [m] (robots with a suction cup only)."""


class PhysicsParams(BaseModel):
    """Every physical knob of a twin. ``None`` anywhere means "unchanged"."""

    model_config = _CONFIG

    timestep_s: Annotated[float, Field(gt=0.0, le=0.05)] | None = None
    """Physics timestep [s]."""
    substeps: Annotated[int, Field(ge=1, le=1000)] | None = None
    """Physics steps per control step [-]; the control period is ``timestep_s * substeps``."""
    solver_iterations: Annotated[int, Field(ge=1, le=10000)] | None = None
    """Constraint solver iterations per physics step [-]."""
    gravity_mps2: Annotated[tuple[float, float, float], FROM_YAML] | None = None
    """Gravity vector in the world frame [m/s^2]."""
    bodies: dict[str, BodyDynamics] = Field(default_factory=dict)
    """Per body (``name``) or link (``body/link``) dynamics."""
    joints: dict[str, JointDynamics] = Field(default_factory=dict)
    """Per joint (``robot/joint``) dynamics."""
    robots: dict[str, RobotActuation] = Field(default_factory=dict)
    """Per robot controller, latency and sensing."""

    @property
    def control_period_s(self) -> float | None:
        """Control period [s], when both timestep and substeps are known."""
        if self.timestep_s is None or self.substeps is None:
            return None
        return self.timestep_s * self.substeps

    def merged(self, overrides: "PhysicsParams") -> "PhysicsParams":
        """Return a copy where every field set in ``overrides`` replaces this one's.

        Costs in proportion to what ``overrides`` sets, not to the size of this object: it
        runs on every randomized episode reset. Both inputs are validated already, so the
        copy is not validated again.
        """
        update: dict = {name: getattr(overrides, name) for name in GLOBAL_FIELDS
                        if getattr(overrides, name) is not None}
        for section in SECTIONS:
            theirs = getattr(overrides, section)
            if not theirs:
                continue
            mine = dict(getattr(self, section))
            for key, entry in theirs.items():
                changes = {k: v for k, v in entry.__dict__.items() if v is not None}
                mine[key] = mine[key].model_copy(update=changes) if key in mine else entry
            update[section] = mine
        return self.model_copy(update=update)

    def entries(self, section: str, keys) -> "PhysicsParams":
        """A PhysicsParams holding only ``keys`` of ``section`` (e.g. to revert them)."""
        table = getattr(self, section)
        return PhysicsParams(**{section: {key: table[key] for key in keys if key in table}})

    def to_yaml(self) -> str:
        """Serialize the fields that are set, as YAML."""
        data = self.model_dump(mode="json", exclude_none=True, exclude_defaults=False)
        for section in ("bodies", "joints", "robots"):
            data[section] = {k: v for k, v in data.get(section, {}).items() if v}
            if not data[section]:
                del data[section]
        return yaml.safe_dump(data, sort_keys=False)

    def save(self, path: str | Path) -> Path:
        """Write the parameters to a YAML file atomically."""
        return atomic_write_text(path, self.to_yaml())

    @classmethod
    def from_yaml_text(cls, text: str, *, file: str | None = None) -> "PhysicsParams":
        """Parse parameters from YAML text; every problem is reported at once."""
        return parse_model(text, cls, file=file, error=PhysicsParamsError, what="physics")

    @classmethod
    def from_mapping(cls, data: dict, *, source: str = "<physics argument>") -> "PhysicsParams":
        """Parameters from a mapping given in Python, checked exactly as a file is."""
        return model_from_mapping(data, cls, source=source, error=PhysicsParamsError,
                                  what="physics")

    @classmethod
    def load(cls, path: str | Path) -> "PhysicsParams":
        """Read parameters from a YAML file (an overrides file sets only some fields)."""
        return load_model(path, cls, error=PhysicsParamsError, what="physics")


class CenteredRandomization(BaseModel):
    """A randomization whose ranges go around a physics file's values: the form
    ``{preset: standard, center: fit/physics.yaml}`` of a training config's ``randomization``
    (what it does: :mod:`celltwin.randomization.center`). Here, beside PhysicsParams, so that a
    config can be checked without loading the randomizer."""

    model_config = ConfigDict(**DOCUMENT_CONFIG)
    preset: str
    """preset name (``standard``) or randomization YAML file"""
    center: str
    """physics file the ranges go around (``celltwin calibrate fit``'s ``physics.yaml``)"""
