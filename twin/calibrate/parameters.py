"""The physics parameters calibration can fit, by the names ``--params`` takes.

Each name maps onto PhysicsParams fields of one robot: per robot (``position_gain``) or one
value per arm joint (``joint_damping``). Continuous values are fitted on a scale that suits
them: a positive nominal value on a log scale around it (a factor), a nominal of zero (joint
damping and friction as pybullet builds them) linearly from zero in units of a reference.
``latency_steps`` is discrete and searched, not fitted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from celltwin.calibrate.errors import CalibrationError
from celltwin.core.errors import Problem, did_you_mean, one_of
from celltwin.physics import PhysicsParams


@dataclass(frozen=True)
class Parameter:
    """One fittable parameter name.

    Attributes:
        name: as ``--params`` takes it.
        section, field: where it lives in PhysicsParams (``robots``/``joints``/``bodies``).
        per_joint: one value per arm joint (else one per robot).
        unit: for the report.
        reference: the scale of a parameter whose nominal value is 0 (fitted in its units).
        description: one line for ``--help`` and the report.
        upper: largest value the fit may try (pybullet's motor diverges past it), or None.
    """

    name: str
    section: str
    field: str
    per_joint: bool
    unit: str
    reference: float
    description: str
    upper: float | None = None


PARAMETERS = {p.name: p for p in (
    Parameter("position_gain", "robots", "position_gain", False, "-", 0.1,
              "position gain of the joint position controller (Kp)", upper=1.0),
    Parameter("velocity_gain", "robots", "velocity_gain", False, "-", 1.0,
              "velocity gain of the joint position controller (Kd); pybullet's motor "
              "diverges above about 1.5", upper=1.5),
    Parameter("latency_steps", "robots", "latency_steps", False, "control steps", 1.0,
              "actuation latency, searched over 0..--max-latency"),
    Parameter("joint_damping", "joints", "damping", True, "N m s/rad", 1.0,
              "viscous damping of each arm joint"),
    Parameter("joint_friction", "joints", "friction", True, "N m", 1.0,
              "Coulomb friction of each arm joint (force the motor spends first)"),
    Parameter("payload_mass_kg", "bodies", "mass_kg", False, "kg", 1.0,
              "mass of the link that carries the TCP (tool and payload)"),
)}
DEFAULT_PARAMS = ("position_gain", "latency_steps")


def parse_params(names) -> tuple[str, ...]:
    """``--params`` names checked (the default set for ``None``); unknown names fail."""
    if names is None:
        return DEFAULT_PARAMS
    names = tuple(dict.fromkeys(names))
    problems = [Problem(f"unknown parameter '{name}'{did_you_mean(name, PARAMETERS)}",
                        path="--params", value=name, expected=one_of(sorted(PARAMETERS)))
                for name in names if name not in PARAMETERS]
    if not names:
        problems.append(Problem("no parameters named", path="--params",
                                expected="e.g. position_gain,latency_steps"))
    if problems:
        raise CalibrationError(problems)
    return names


@dataclass(frozen=True)
class Scalar:
    """One fitted number: a parameter of the robot, or of one of its joints.

    Attributes:
        parameter: what it is.
        key: the PhysicsParams key (robot, ``robot/joint`` or ``robot/link``).
        label: how the report names it (``joint_damping[panda_joint2]``).
        nominal: the twin's value before the fit.
    """

    parameter: Parameter
    key: str
    label: str
    nominal: float

    @property
    def log_scaled(self) -> bool:
        return self.nominal > 0

    def value(self, x: float) -> float:
        """The parameter's value at fitting coordinate ``x``."""
        if self.log_scaled:
            return self.nominal * math.exp(x)
        return self.parameter.reference * x

    def coordinate(self, value: float) -> float:
        """The fitting coordinate of ``value`` (inverse of :meth:`value`)."""
        if self.log_scaled:
            return math.log(max(value, 1e-12) / self.nominal)
        return value / self.parameter.reference

    def bounds(self) -> tuple[float, float]:
        """Fitting bounds: 1/20x to 20x a positive nominal (at most the parameter's upper
        bound); 0 to 100 references otherwise."""
        if not self.log_scaled:
            return (0.0, 100.0)
        high = math.log(20.0)
        if self.parameter.upper is not None:
            high = min(high, math.log(self.parameter.upper / self.nominal))
        return (math.log(0.05), high)


def scalars(names, nominal: PhysicsParams, robot: str, joints, payload_link: str) -> list[Scalar]:
    """The continuous numbers to fit for parameter ``names`` of ``robot`` (latency excluded)."""
    found = []
    for name in names:
        parameter = PARAMETERS[name]
        if name == "latency_steps":
            continue
        if parameter.per_joint:
            for joint in joints:
                key = f"{robot}/{joint}"
                value = getattr(nominal.joints[key], parameter.field) or 0.0
                found.append(Scalar(parameter, key, f"{name}[{joint}]", float(value)))
        elif parameter.section == "bodies":
            key = f"{robot}/{payload_link}"
            found.append(Scalar(parameter, key, name, float(nominal.bodies[key].mass_kg)))
        else:
            found.append(Scalar(parameter, robot, name,
                                float(getattr(nominal.robots[robot], parameter.field))))
    return found


def to_physics(scalars_: list[Scalar], values, robot: str, latency: int | None) -> PhysicsParams:
    """The PhysicsParams that set each scalar to its value (and the latency, when given)."""
    sections: dict = {"bodies": {}, "joints": {}, "robots": {}}
    for scalar, value in zip(scalars_, values):
        entry = sections[scalar.parameter.section].setdefault(scalar.key, {})
        entry[scalar.parameter.field] = float(value)
    if latency is not None:
        sections["robots"].setdefault(robot, {})["latency_steps"] = int(latency)
    return PhysicsParams.from_mapping({k: v for k, v in sections.items() if v},
                                      source="<calibration>")
