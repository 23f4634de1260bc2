"""Reading PhysicsParams out of a world and applying them to it.

The only module that writes physical properties into pybullet. Names are checked before
anything is applied, so a bad overrides file changes nothing and reports every unknown name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from twin.errors import PhysicsParamsError, Problem, did_you_mean
from twin.physics import BodyDynamics, JointDynamics, PhysicsParams, RobotActuation

if TYPE_CHECKING:
    from twin.world import World

# getDynamicsInfo tuple positions
_MASS, _LATERAL, _RESTITUTION, _ROLLING, _SPINNING = 0, 1, 5, 6, 7
_JOINT_DAMPING = 6  # getJointInfo


def _links(world: "World") -> dict[str, tuple[int, int]]:
    """Map every addressable body/link name to ``(body_id, link_index)``."""
    client = world.client
    links: dict[str, tuple[int, int]] = {}
    for name, body in world.bodies.items():
        links[name] = (body, -1)
        if name in world.robots:
            for index in range(client.getNumJoints(body)):
                links[f"{name}/{client.getJointInfo(body, index)[12].decode()}"] = (body, index)
    return links


def _joints(world: "World") -> dict[str, tuple[str, int, int]]:
    """Map ``robot/joint`` names to ``(robot_name, body_id, joint_index)`` for movable joints."""
    client = world.client
    joints = {}
    for name, robot in world.robots.items():
        for index in range(client.getNumJoints(robot.body_id)):
            info = client.getJointInfo(robot.body_id, index)
            if info[2] != client.JOINT_FIXED:
                joints[f"{name}/{info[1].decode()}"] = (name, robot.body_id, index)
    return joints


def read_physics(world: "World") -> PhysicsParams:
    """Read every knob from pybullet and the robots (used once, right after building)."""
    client = world.client
    engine = client.getPhysicsEngineParameters()
    bodies = {}
    static = set(world.static_bodies)
    for name, (body, link) in _links(world).items():
        info = client.getDynamicsInfo(body, link)
        fixed = name in static or (link == -1 and name in world.robots)
        bodies[name] = BodyDynamics(
            mass_kg=None if fixed or info[_MASS] <= 0 else info[_MASS],
            lateral_friction=info[_LATERAL], rolling_friction=info[_ROLLING],
            spinning_friction=info[_SPINNING], restitution=min(max(info[_RESTITUTION], 0.0), 1.0))
    joints = {}
    for key, (robot_name, body, index) in _joints(world).items():
        robot = world.robots[robot_name]
        joints[key] = JointDynamics(damping=client.getJointInfo(body, index)[_JOINT_DAMPING],
                                    friction=0.0, force_limit=_force_limit(robot, index))
    robots = {name: RobotActuation(position_gain=robot.position_gain,
                                   velocity_gain=robot.velocity_gain,
                                   latency_steps=0, joint_noise_std_rad=0.0)
              for name, robot in world.robots.items()}
    # Substeps are World.step's loop count, not pybullet's numSubSteps; the cell sets them.
    return PhysicsParams(timestep_s=engine["fixedTimeStep"], substeps=1,
                         solver_iterations=engine["numSolverIterations"],
                         gravity_mps2=(engine["gravityAccelerationX"], engine["gravityAccelerationY"],
                                       engine["gravityAccelerationZ"]),
                         bodies=bodies, joints=joints, robots=robots)


def _force_limit(robot, joint_index: int) -> float:
    arm = list(robot.arm_joint_indices)
    if joint_index in arm:
        return float(robot.arm_force_limits[arm.index(joint_index)])
    return float(robot.gripper_force_n)


def _check_names(world: "World", params: PhysicsParams, links, joints) -> None:
    problems = []
    for section, known in (("bodies", links), ("joints", joints), ("robots", world.robots)):
        for key in getattr(params, section):
            if key not in known:
                problems.append(Problem(f"no {section[:-1] if section != 'bodies' else 'body'} "
                                        f"named '{key}'{did_you_mean(key, known)}",
                                        path=f"{section}.{key}", value=key))
    static = set(world.static_bodies) | set(world.robots)
    for key, dynamics in params.bodies.items():
        if dynamics.mass_kg is not None and key in static:
            problems.append(Problem(f"'{key}' is fixed in place; it has no mass to set",
                                    path=f"bodies.{key}.mass_kg", value=dynamics.mass_kg))
    if problems:
        raise PhysicsParamsError(problems)


def apply_physics(world: "World", params: PhysicsParams) -> None:
    """Apply every field of ``params`` that is set; fields left ``None`` stay as they are."""
    client = world.client
    links, joints = _links(world), _joints(world)
    _check_names(world, params, links, joints)
    current = getattr(world, "_params", None)
    if params.timestep_s is not None:
        client.setPhysicsEngineParameter(fixedTimeStep=params.timestep_s, numSubSteps=0)
        for robot in world.robots.values():
            # pybullet turns a motor's force limit into an impulse limit with the timestep in
            # force when the command is sent; commands sent before the change must be re-sent.
            robot.restore_motor_targets(robot.motor_targets())
    if params.solver_iterations is not None:
        client.setPhysicsEngineParameter(numSolverIterations=params.solver_iterations)
    if params.gravity_mps2 is not None:
        client.setGravity(*params.gravity_mps2)
    for key, dynamics in params.bodies.items():
        body, link = links[key]
        changes = {"mass": dynamics.mass_kg, "lateralFriction": dynamics.lateral_friction,
                   "rollingFriction": dynamics.rolling_friction,
                   "spinningFriction": dynamics.spinning_friction,
                   "restitution": dynamics.restitution}
        changes = {k: v for k, v in changes.items() if v is not None}
        if changes:
            client.changeDynamics(body, link, **changes)
    for key, dynamics in params.joints.items():
        _apply_joint(world, key, joints[key], dynamics, current)
    for name, actuation in params.robots.items():
        robot = world.robots[name]
        if actuation.position_gain is not None:
            robot.position_gain = actuation.position_gain
        if actuation.velocity_gain is not None:
            robot.velocity_gain = actuation.velocity_gain


def _apply_joint(world, key, joint, dynamics: JointDynamics, current: PhysicsParams | None) -> None:
    robot_name, body, index = joint
    robot = world.robots[robot_name]
    if dynamics.damping is not None:
        world.client.changeDynamics(body, index, jointDamping=dynamics.damping)
    if dynamics.force_limit is None and dynamics.friction is None:
        return
    before = current.joints.get(key) if current else None
    limit = dynamics.force_limit if dynamics.force_limit is not None else before.force_limit
    friction = dynamics.friction if dynamics.friction is not None else (before.friction or 0.0)
    effective = max(limit - friction, 0.0)  # friction eats into what the motor can deliver
    arm = list(robot.arm_joint_indices)
    if index in arm:
        limits = np.array(robot.arm_force_limits, dtype=float)
        limits[arm.index(index)] = effective
        robot.arm_force_limits = limits
    else:
        robot.gripper_force_n = effective
