"""What each randomization target and parameter means, and how a value is applied.

A term resolves to one *knob* per matched target (``arm/*`` matches every joint of the arm;
each gets its own sample). Physics knobs write through :class:`PhysicsParams`; scene knobs
move bodies or change conveyor speed; part geometry knobs rebuild a part's body (startup
only); actuation, sensing and visual knobs set values the env and the renderer read. Targets
may use ``{robot}`` and ``{object}`` for the env's acting robot and task object, so one preset
fits every cell.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import numpy as np

from celltwin.core.actuation_limits import (JOINT_NOISE_STD_RAD_RANGE, LATENCY_STEPS_RANGE,
                                            SEAL_TOLERANCE_M_RANGE)
from celltwin.core.errors import Problem, did_you_mean, one_of
from celltwin.parts import SHAPES
from celltwin.render import DEFAULT_LIGHT_DIRECTION
from celltwin.textures import NO_TEXTURE, TEXTURES
from celltwin.randomization.terms import Choice, RandomizationError, Term

BODY_PARAMETERS = {"mass_kg": (1e-4, None), "lateral_friction": (0.0, None),
                   "rolling_friction": (0.0, None), "spinning_friction": (0.0, None),
                   "restitution": (0.0, 1.0)}
JOINT_PARAMETERS = {"damping": (0.0, None), "friction": (0.0, None), "force_limit": (0.0, None)}
ROBOT_PARAMETERS = {"position_gain": (0.0, None), "velocity_gain": (0.0, None),
                    "latency_steps": LATENCY_STEPS_RANGE,
                    "joint_noise_std_rad": JOINT_NOISE_STD_RAD_RANGE,
                    # a suction cup's (robots with one; the force is clipped above zero)
                    "suction_force_n": (1e-3, None),
                    "suction_seal_tolerance_m": SEAL_TOLERANCE_M_RANGE}
ACTUATOR_PARAMETERS = {"action_noise_std": (0.0, None), "action_scale": (0.0, None)}
BASE_PARAMETERS = {"base_x_m", "base_y_m", "base_yaw_rad"}
PART_POSE_PARAMETERS = {"spawn_x_m", "spawn_y_m", "spawn_yaw_rad"}
# Rebuild the part's body (celltwin.world.World.rebuild_part); the COM is clamped into the part
# there, where its size is known.
PART_GEOMETRY_PARAMETERS = {"com_x_m": (None, None), "com_y_m": (None, None),
                            "com_z_m": (None, None), "size_scale": (0.01, None), "shape": (None, None)}
SENSOR_PARAMETERS = {"noise_std": (0.0, None), "bias": (None, None),
                     "drop_probability": (0.0, 1.0), "delay_steps": (0, 50)}
VISUAL_PARAMETERS = {"color_scale": (0.0, None)}
# Parameters whose values are names: what they choose from, and what the names are.
NAMED_VALUES = {"shape": (SHAPES, "a part's shape is chosen from shape names"),
                "texture": (TEXTURES, "a texture is chosen from the built-in texture names")}
LIGHT_PARAMETERS = {"direction_x", "direction_y", "direction_z"}
CAMERA_PARAMETERS = {"eye_x_m", "eye_y_m", "eye_z_m"}

@dataclass
class EpisodeEffects:
    """Values the env reads each step: actuation and sensing disturbances, render jitter."""

    action_noise_std: float = 0.0
    action_scale: float = 1.0
    sensor_noise_std: dict[str, float] = field(default_factory=dict)
    sensor_bias: dict[str, float] = field(default_factory=dict)
    sensor_drop_probability: dict[str, float] = field(default_factory=dict)
    sensor_delay_steps: dict[str, int] = field(default_factory=dict)
    light_direction: np.ndarray = field(default_factory=lambda: np.array(DEFAULT_LIGHT_DIRECTION))
    camera_offset_m: np.ndarray = field(default_factory=lambda: np.zeros(3))


@dataclass
class Knob:
    """One randomized quantity: where it goes, its nominal value and its valid range."""

    term: Term
    kind: str            # physics, conveyor, base, part_pose, part_geometry, actuator, sensor,
                         # visual, texture, light, camera
    key: str             # physics/section key, conveyor/body/sensor term name
    parameter: str
    nominal: float | str  # a name for ``shape`` and ``texture``
    bounds: tuple = (None, None)
    section: str = ""    # for physics knobs: bodies, joints, robots



def _matches(pattern: str, names, term: Term, index: int, required: bool) -> list[str]:
    found = [name for name in names if fnmatch.fnmatchcase(name, pattern)]
    if not found and required:
        raise RandomizationError(Problem(
            f"target '{pattern}' matches nothing for parameter '{term.parameter}'"
            + did_you_mean(pattern, names), path=f"terms[{index}].target", value=pattern,
            expected=one_of(names) if len(names) < 40 else "a body, link, joint or robot name"))
    return found


def resolve(term: Term, index: int, world, robot, object_name: str | None,
            required: bool = True) -> list[Knob]:
    """Turn one term into knobs for this world; unknown targets/parameters are errors."""
    target = term.target.replace("{robot}", robot.name).replace("{object}", object_name or "")
    params = world.physics_params()
    parameter = term.parameter
    _check_values(term, index)
    if parameter in BODY_PARAMETERS:
        keys = _matches(target, params.bodies, term, index, required)
        knobs = []
        for key in keys:
            nominal = getattr(params.bodies[key], parameter)
            if nominal is None:
                if fnmatch.fnmatchcase(key, target) and target == key:
                    raise RandomizationError(Problem(f"'{key}' is fixed in place; it has no {parameter}",
                                                     path=f"terms[{index}].target", value=key))
                continue
            knobs.append(Knob(term, "physics", key, parameter, nominal, BODY_PARAMETERS[parameter], "bodies"))
        return knobs
    if parameter in JOINT_PARAMETERS:
        return [Knob(term, "physics", key, parameter, getattr(params.joints[key], parameter) or 0.0,
                     JOINT_PARAMETERS[parameter], "joints")
                for key in _matches(target, params.joints, term, index, required)]
    if parameter in ROBOT_PARAMETERS:
        keys = _matches(target, params.robots, term, index, required)
        cupless = [key for key in keys if parameter.startswith("suction_")
                   and getattr(params.robots[key], parameter) is None]
        if cupless and required and target in cupless:
            raise RandomizationError(Problem(f"robot '{target}' has no suction cup; it has no "
                                             f"{parameter}", path=f"terms[{index}].target",
                                             value=term.target,
                                             expected="a robot with a suction cup"))
        return [Knob(term, "physics", key, parameter, float(getattr(params.robots[key], parameter) or 0),
                     ROBOT_PARAMETERS[parameter], "robots")
                for key in keys if key not in cupless]
    if parameter in ACTUATOR_PARAMETERS:
        nominal = 1.0 if parameter == "action_scale" else 0.0
        return [Knob(term, "actuator", key, parameter, nominal, ACTUATOR_PARAMETERS[parameter])
                for key in _matches(target, world.robots, term, index, required)]
    if parameter in BASE_PARAMETERS:
        return [Knob(term, "base", key, parameter, 0.0)
                for key in _matches(target, world.robots, term, index, required)]
    if parameter in PART_POSE_PARAMETERS:
        return [Knob(term, "part_pose", key, parameter, 0.0)
                for key in _matches(target, world.parts, term, index, required)]
    if parameter in PART_GEOMETRY_PARAMETERS:
        return [Knob(term, "part_geometry", key, parameter,
                     world.part_geometries[key].shape if parameter == "shape"
                     else 1.0 if parameter == "size_scale" else 0.0,
                     PART_GEOMETRY_PARAMETERS[parameter])
                for key in _matches(target, world.parts, term, index, required)]
    if parameter == "speed_mps":
        return [Knob(term, "conveyor", key, parameter, world.conveyors[key].speed_mps)
                for key in _matches(target, world.conveyors, term, index, required)]
    if parameter in SENSOR_PARAMETERS and target.split("/")[0] == "sensor":
        return [Knob(term, "sensor", target.partition("/")[2] or "*", parameter, 0.0,
                     SENSOR_PARAMETERS[parameter])]
    if parameter == "texture":  # a whole body (every link), or one link of a robot
        return [Knob(term, "texture", key, parameter, NO_TEXTURE)
                for key in _matches(target, params.bodies, term, index, required)]
    if parameter in VISUAL_PARAMETERS:
        return [Knob(term, "visual", key, parameter, 1.0, VISUAL_PARAMETERS[parameter])
                for key in _matches(target, world.bodies, term, index, required)]
    if target == "light" and parameter in LIGHT_PARAMETERS:
        return [Knob(term, "light", "light", parameter, 0.0)]
    if target == "camera" and parameter in CAMERA_PARAMETERS:
        return [Knob(term, "camera", "camera", parameter, 0.0)]
    raise _unknown_parameter(term, index, target, world, params)


def parameters_of(target: str, world, params) -> list[str]:
    """Every parameter that applies to ``target`` (a name or pattern, ``{robot}`` filled in):
    the names a suggestion may come from, in the order of :func:`resolve`'s tables."""
    def matched(names) -> bool:
        return any(fnmatch.fnmatchcase(name, target) for name in names)

    found: list[str] = []
    tables = ((BODY_PARAMETERS, params.bodies), (JOINT_PARAMETERS, params.joints),
              (ROBOT_PARAMETERS, params.robots), (ACTUATOR_PARAMETERS, world.robots),
              (BASE_PARAMETERS, world.robots), (PART_POSE_PARAMETERS, world.parts),
              (PART_GEOMETRY_PARAMETERS, world.parts), ({"speed_mps"}, world.conveyors),
              ({"texture"}, params.bodies), (VISUAL_PARAMETERS, world.bodies))
    for parameters, names in tables:
        if matched(names):
            found += [name for name in parameters if name not in found]
    special = ((SENSOR_PARAMETERS, target.split("/")[0] == "sensor"),
               (LIGHT_PARAMETERS, target == "light"), (CAMERA_PARAMETERS, target == "camera"))
    for parameters, applies in special:
        if applies:
            found += sorted(parameters)
    return found


def _unknown_parameter(term: Term, index: int, target: str, world, params) -> RandomizationError:
    """The parameter names nothing ``target`` has: suggest only parameters it does have (a
    suggestion that then fails again helps nobody)."""
    valid = parameters_of(target, world, params)
    if valid:
        return RandomizationError(Problem(
            f"parameter '{term.parameter}' does not apply to target '{term.target}'"
            + did_you_mean(term.parameter, valid), path=f"terms[{index}].parameter",
            value=term.parameter, expected=f"a parameter of '{term.target}': " + ", ".join(valid)))
    names = [*params.bodies, *params.joints, *world.conveyors, "sensor", "camera", "light"]
    return RandomizationError(Problem(
        f"parameter '{term.parameter}' does not apply to target '{term.target}', which matches "
        f"nothing in this cell{did_you_mean(target, names)}", path=f"terms[{index}].target",
        value=term.target,
        expected="a body, link, joint, robot, conveyor, sensor, camera or light; "
                 "see docs/randomization.md"))


def _check_values(term: Term, index: int) -> None:
    """Shape and texture terms choose names, other terms numbers; geometry terms run at
    startup only."""
    problems = []
    names = isinstance(term.distribution, Choice) and term.distribution.names
    if term.parameter in NAMED_VALUES:
        allowed, message = NAMED_VALUES[term.parameter]
        unknown = [v for v in term.distribution.values if v not in allowed] if names else []
        if not names or unknown:
            problems.append(Problem(
                message + (did_you_mean(unknown[0], allowed) if unknown else ""),
                path=f"terms[{index}].distribution",
                value=getattr(term.distribution, "values", term.distribution.type),
                expected="{type: choice, values: [...]} with values from " + ", ".join(allowed)))
        if term.operation != "set":
            problems.append(Problem(f"a {term.parameter} can only be set",
                                    path=f"terms[{index}].operation",
                                    value=term.operation, expected="set"))
    elif names:
        problems.append(Problem(f"'{term.parameter}' takes numbers, not names",
                                path=f"terms[{index}].distribution.values",
                                value=term.distribution.values, expected="numbers"))
    if term.parameter in PART_GEOMETRY_PARAMETERS and term.when != "startup":
        # pybullet cannot change a created body's shape or inertial frame: the part is built
        # again, and every episode restores a snapshot that holds the bodies it was taken with.
        problems.append(Problem(
            f"'{term.parameter}' rebuilds the part's body, which happens once per env",
            path=f"terms[{index}].when", value=term.when, expected="startup"))
    if problems:
        raise RandomizationError(problems)


def apply_pose_offsets(world, offsets: dict) -> None:
    """Move robot bases and parts by the sampled offsets (after the task placed its parts)."""
    for (kind, key), values in offsets.items():
        prefix = "base" if kind == "base" else "spawn"
        move_body(world, kind, key, values.get(f"{prefix}_x_m", 0.0),
                  values.get(f"{prefix}_y_m", 0.0), values.get(f"{prefix}_yaw_rad", 0.0))


def move_body(world, kind: str, key: str, dx: float, dy: float, yaw: float) -> None:
    """Shift a robot base (``kind`` base) or a part by ``dx``, ``dy`` [m] and turn it by ``yaw``
    [rad] about the world z axis through its origin (a part: its centre, not its centre of
    mass, when that is randomized)."""
    if kind != "base":
        world.move_part(key, dx, dy, yaw)
        return
    world.move_base(key, dx, dy, yaw)
