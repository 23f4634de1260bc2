"""PhysicsParams to MuJoCo, field by field: the one mapping, when a twin is built and when its
parameters change (``docs/mujoco.md`` has the same table for people).

=====================================  =======================================================
PhysicsParams                          MuJoCo
=====================================  =======================================================
``timestep_s``                         ``option.timestep``
``substeps``                           physics steps per control step (the twin's loop)
``solver_iterations``                  ``option.iterations`` (a cap: Newton converges sooner)
``gravity_mps2``                       ``option.gravity``
``bodies.*.mass_kg``                   part: its geom's mass (inertia from the shape, as in
                                       pybullet); link: body mass, inertia scaled with it
``bodies.*.lateral_friction``          ``pair.friction[0:2]`` = a * b (Bullet's product)
``bodies.*.spinning_friction``         ``pair.friction[2]`` = s_a b + s_b a; condim 4
``bodies.*.rolling_friction``          ``pair.friction[3:5]`` = r_a b + r_b a; condim 6
``bodies.*.restitution``               none: a pair whose product a * b is > 0 is an error
``joints.*.damping``                   an explicit torque each physics step, as pybullet's
                                       (the servo; MuJoCo's implicit ``joint.damping`` is 0)
``joints.*.friction``                  ``joint.frictionloss``
``joints.*.force_limit``               motor ``forcerange`` and the servo's bound (x2 on a
                                       driven geared finger, as in pybullet)
``robots.*.position_gain``             the servo law (:mod:`celltwin.mujoco.servo`)
``robots.*.velocity_gain``             the servo law
``robots.*.latency_steps``             the robot's Actuation (celltwin.robots), as in pybullet
``robots.*.joint_noise_std_rad``       the robot's Actuation, as in pybullet
=====================================  =======================================================
"""

from __future__ import annotations

import numpy as np

from celltwin.core.errors import Problem
from celltwin.mujoco.engine import load_mujoco
from celltwin.mujoco.errors import MujocoError
from celltwin.physics import PhysicsParams

mujoco = load_mujoco()

# Bullet clamps combined friction to [-10, 10] (btManifoldResult); MuJoCo to [1e-5, ...].
MAX_FRICTION = 10.0
MIN_FRICTION = 1e-5


def apply_params(cell, params: PhysicsParams) -> None:
    """Write every field of ``params`` that has a MuJoCo counterpart into ``cell.spec``.

    Args:
        cell: a :class:`celltwin.mujoco.model.CellModel`.
        params: complete parameters (as a world reports them); the servo gains, joint
            damping, latency and sensor noise act at run time (the twin sets them on each
            robot's servo and actuation).

    Raises:
        MujocoError: a value MuJoCo cannot express (every one found, at once).
    """
    spec = cell.spec
    spec.option.timestep = params.timestep_s
    spec.option.iterations = params.solver_iterations
    spec.option.gravity = list(params.gravity_mps2)
    problems = _contacts(cell, params)
    _masses(cell, params)
    for robot in cell.robots.values():
        _robot(cell, robot, params)
    if problems:
        raise MujocoError(problems)


def _contacts(cell, params: PhysicsParams) -> list[Problem]:
    """Each pair's friction as Bullet combines it; restitution has no MuJoCo counterpart."""
    problems = []
    refused = set()
    for first, second, pair in cell.pairs:
        a, b = params.bodies[first.owner], params.bodies[second.owner]
        if a.restitution * b.restitution > 0 and (first.owner, second.owner) not in refused:
            refused.add((first.owner, second.owner))
            problems.append(Problem(
                f"'{first.owner}' and '{second.owner}' bounce (restitution "
                f"{a.restitution:g} x {b.restitution:g}); MuJoCo's soft contacts have no "
                "coefficient of restitution", path=f"bodies.{first.owner}.restitution",
                value=a.restitution, expected="0 on one of the two bodies for the MuJoCo twin"))
        lateral = min(a.lateral_friction * b.lateral_friction, MAX_FRICTION)
        spinning = min(a.spinning_friction * b.lateral_friction
                       + b.spinning_friction * a.lateral_friction, MAX_FRICTION)
        rolling = min(a.rolling_friction * b.lateral_friction
                      + b.rolling_friction * a.lateral_friction, MAX_FRICTION)
        pair.condim = 6 if rolling > 0 else 4 if spinning > 0 else 3
        pair.friction = [max(value, MIN_FRICTION)
                         for value in (lateral, lateral, spinning, rolling, rolling)]
    return problems


def _masses(cell, params: PhysicsParams) -> None:
    geometries = {part.name: part.geometry for part in cell.source.parts}
    for name, part in cell.parts.items():
        mass = params.bodies[name].mass_kg
        cell.spec.geom(part.geom).mass = mass
        body = cell.spec.body(part.body)
        if body.explicitinertial:   # centre of mass off the centre: the body carries it
            body.mass = mass
            body.inertia = shape_moments(geometries[name], mass).tolist()
    for robot in cell.robots.values():
        for key, body_name in robot.links.items():
            mass = params.bodies[key].mass_kg
            nominal_mass, inertia, full = cell.link_inertia[body_name]
            if mass is None or nominal_mass <= 0:
                continue
            body = cell.spec.body(body_name)
            body.mass = mass
            body.inertia = (inertia * (mass / nominal_mass)).tolist()
            body.fullinertia = (full * (mass / nominal_mass)).tolist()


def _robot(cell, robot, params: PhysicsParams) -> None:
    for joint, key in robot.joint_keys.items():
        dynamics = params.joints[key]
        cell.spec.joint(joint).frictionloss = dynamics.friction
    for motor in robot.arm_actuators + robot.finger_actuators:
        share = robot.finger_share if motor in robot.finger_actuators else 1.0
        limit = params.joints[robot.joint_keys[motor]].force_limit * share
        cell.spec.actuator(motor).forcerange = [-limit, limit]


def shape_moments(geometry, mass_kg: float) -> np.ndarray:
    """Principal moments of inertia [kg m^2] of a solid box, cylinder (axis z) or sphere of
    ``mass_kg`` about its centre: what Bullet's shapes and MuJoCo's geoms compute."""
    if geometry.shape == "box":
        x, y, z = (2.0 * h for h in geometry.half_extents_m)
        return mass_kg / 12.0 * np.array([y * y + z * z, x * x + z * z, x * x + y * y])
    if geometry.shape == "cylinder":
        r, h = geometry.radius_m, geometry.height_m
        across = mass_kg / 12.0 * (3.0 * r * r + h * h)
        return np.array([across, across, 0.5 * mass_kg * r * r])
    return np.full(3, 0.4 * mass_kg * geometry.radius_m ** 2)
