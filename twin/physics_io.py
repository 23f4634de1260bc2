"""Reading PhysicsParams out of a world and applying them to it.

The only module that writes physical properties into pybullet. Names are checked before
anything is applied, so a bad overrides file changes nothing and reports every unknown name.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Protocol

from celltwin.core.errors import PhysicsParamsError, Problem, WorldError, did_you_mean
from celltwin.physics import (GLOBAL_FIELDS, SECTIONS, BodyDynamics, JointDynamics, PhysicsParams,
                              RobotActuation)

# getDynamicsInfo tuple positions
_MASS, _LATERAL, _RESTITUTION, _ROLLING, _SPINNING = 0, 1, 5, 6, 7
_JOINT_DAMPING = 6  # getJointInfo


class IndexTables:
    """A world's name -> pybullet index tables, each read from the world on first use.

    Every world owns one (``World.index_tables``); rebuilding a part makes it forget what
    depended on the old body (:meth:`forget_part`).
    """

    def __init__(self) -> None:
        self._tables: dict[str, dict] = {}

    def get(self, name: str, read: Callable[[], dict]) -> dict:
        """The table called ``name``, made by ``read()`` the first time it is asked for."""
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = read()
        return table

    def forget_part(self, name: str) -> None:
        """Part ``name`` is a new body now: the link table and its nominal inertia are stale."""
        self._tables.pop("links", None)
        self._tables.get("inertia", {}).pop(name, None)  # re-read from the new shape


class PhysicsHost(Protocol):
    """What this module needs of a world (:class:`celltwin.world.World` is one)."""

    client: Any
    bodies: dict[str, int]
    robots: dict[str, Any]
    static_bodies: list[str]
    index_tables: IndexTables

    def joint_value(self, key: str, field: str) -> Any:
        """One field of joint ``key`` (``robot/joint``) as it is now."""

    def record_physics_values(self, entries: tuple, values: list) -> None:
        """Note values an :class:`EntryWriter` just applied."""


def _links(world: PhysicsHost) -> dict[str, tuple[int, int]]:
    """Map every addressable body/link name to ``(body_id, link_index)`` (cached per world)."""
    return world.index_tables.get("links", lambda: _read_links(world))


def _joints(world: PhysicsHost) -> dict[str, tuple[str, int, int]]:
    """Map ``robot/joint`` names to ``(robot_name, body_id, joint_index)`` (cached per world)."""
    return world.index_tables.get("joints", lambda: _read_joints(world))


def _read_links(world: PhysicsHost) -> dict[str, tuple[int, int]]:
    client = world.client
    links: dict[str, tuple[int, int]] = {}
    robot_links: dict[str, str] = {}
    for name, body in world.bodies.items():
        links[name] = (body, -1)
        if name in world.robots:
            for index in range(client.getNumJoints(body)):
                key = f"{name}/{client.getJointInfo(body, index)[12].decode()}"
                links[key] = (body, index)
                robot_links[key] = name
    # A body named as a robot's link would share that link's PhysicsParams key: one entry
    # for two bodies, each engine reading the other's mass. Refused, named, at build.
    clashes = [key for key in robot_links if key in world.bodies]
    if clashes:
        raise WorldError([Problem(f"body '{key}' has the name of robot '{robot_links[key]}''s "
                                  f"link '{key.split('/', 1)[1]}', its PhysicsParams key too",
                                  value=key, expected="a body name no robot link has (e.g. "
                                  "without the robot's name and '/')") for key in clashes])
    return links


def _read_joints(world: PhysicsHost) -> dict[str, tuple[str, int, int]]:
    client = world.client
    joints = {}
    for name, robot in world.robots.items():
        for index in range(client.getNumJoints(robot.body_id)):
            info = client.getJointInfo(robot.body_id, index)
            if info[2] != client.JOINT_FIXED:
                joints[f"{name}/{info[1].decode()}"] = (name, robot.body_id, index)
    return joints


def read_physics(world: PhysicsHost) -> PhysicsParams:
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
                                   latency_steps=robot.actuation.latency_steps,
                                   joint_noise_std_rad=robot.actuation.joint_noise_std_rad,
                                   **_suction_fields(robot))
              for name, robot in world.robots.items()}
    # Substeps are World.step's loop count, not pybullet's numSubSteps; the cell sets them.
    return PhysicsParams(timestep_s=engine["fixedTimeStep"], substeps=1,
                         solver_iterations=engine["numSolverIterations"],
                         gravity_mps2=(engine["gravityAccelerationX"], engine["gravityAccelerationY"],
                                       engine["gravityAccelerationZ"]),
                         bodies=bodies, joints=joints, robots=robots)


def _suction_fields(robot) -> dict:
    cup = robot.suction
    if cup is None:
        return {}
    return {"suction_force_n": cup.force_n, "suction_seal_tolerance_m": cup.seal_tolerance_m}


def _force_limit(robot, joint_index: int) -> float:
    arm = list(robot.arm_joint_indices)
    if joint_index in arm:
        return float(robot.arm_force_limits[arm.index(joint_index)])
    return float(robot.gripper_force_n)


def _check_names(world: PhysicsHost, params: PhysicsParams, links, joints) -> None:
    problems = []
    for section, known in (("bodies", links), ("joints", joints), ("robots", world.robots)):
        for key in getattr(params, section):
            if key not in known:
                problems.append(Problem(f"no {section[:-1] if section != 'bodies' else 'body'} "
                                        f"named '{key}'{did_you_mean(key, known)}",
                                        path=f"{section}.{key}", value=key))
    problems += suction_problems(world.robots, params)
    static = set(world.static_bodies) | set(world.robots)
    for key, dynamics in params.bodies.items():
        if dynamics.mass_kg is not None and key in static:
            problems.append(Problem(f"'{key}' is fixed in place; it has no mass to set",
                                    path=f"bodies.{key}.mass_kg", value=dynamics.mass_kg))
    if problems:
        raise PhysicsParamsError(problems)


def suction_problems(robots, params: PhysicsParams) -> list[Problem]:
    """A suction field set for a robot (of ``robots``: name -> a robot with ``suction``, in
    either engine) that has no suction cup, or holds it closed: one problem each."""
    problems = []
    for key, actuation in params.robots.items():
        robot = robots.get(key)
        for field in SUCTION_FIELDS:
            given = getattr(actuation, field)
            if robot is not None and robot.suction is None and given is not None:
                problems.append(Problem(f"robot '{key}' has no suction cup (or it is held "
                                        "closed)", path=f"robots.{key}.{field}",
                                        value=given,
                                        expected="a robot whose end effector is a suction cup"))
    return problems


def as_entries(params: PhysicsParams) -> tuple[dict, dict]:
    """Split ``params`` into the set global fields and ``{section: {key: {field: value}}}``."""
    globals_ = {name: getattr(params, name) for name in GLOBAL_FIELDS
                if getattr(params, name) is not None}
    sections = {}
    for section in SECTIONS:
        table = getattr(params, section)
        if table:
            sections[section] = {key: {k: v for k, v in entry.__dict__.items() if v is not None}
                                 for key, entry in table.items()}
    return globals_, sections


def apply_physics(world: PhysicsHost, params: PhysicsParams) -> None:
    """Check every name in ``params``, then apply every field that is set."""
    _check_names(world, params, _links(world), _joints(world))
    apply_entries(world, *as_entries(params))


_ACTUATION_FIELDS = frozenset(("latency_steps", "joint_noise_std_rad"))
# RobotActuation fields of a robot's suction cup, by the cup's attribute they set.
SUCTION_FIELDS = {"suction_force_n": "force_n", "suction_seal_tolerance_m": "seal_tolerance_m"}
_BODY_FIELDS = {"mass_kg": "mass", "lateral_friction": "lateralFriction",
                "rolling_friction": "rollingFriction", "spinning_friction": "spinningFriction",
                "restitution": "restitution"}


def apply_entries(world: PhysicsHost, globals_: dict, sections: dict) -> None:
    """Apply checked values: globals by name, sections as ``{key: {field: value}}``.

    The hot path of randomized resets, so it works on plain dicts and touches pybullet only
    for what is given. Joint force limits of one robot are collected and sent once.
    """
    client = world.client
    if "timestep_s" in globals_:
        client.setPhysicsEngineParameter(fixedTimeStep=globals_["timestep_s"], numSubSteps=0)
        for robot in world.robots.values():
            # pybullet turns a motor's force limit into an impulse limit with the timestep in
            # force when the command is sent; commands sent before the change must be re-sent.
            robot.actuation.resend()
    if "solver_iterations" in globals_:
        client.setPhysicsEngineParameter(numSolverIterations=globals_["solver_iterations"])
    if "gravity_mps2" in globals_:
        client.setGravity(*globals_["gravity_mps2"])
    links = _links(world)
    change = client.changeDynamics  # BulletClient builds a new partial on every lookup
    for key, fields in sections.get("bodies", {}).items():
        body, link = links[key]
        changes = {_BODY_FIELDS[name]: value for name, value in fields.items()}
        if "mass" in changes:
            # pybullet recomputes a link's inertia from its collision shape when only the mass
            # changes; scale the nominal inertia instead, so the body stays the same shape of
            # mass and a return to the nominal mass restores the nominal inertia exactly.
            nominal_mass, nominal_inertia = _nominal_inertia(world, key, body, link)
            changes["localInertiaDiagonal"] = [i * (changes["mass"] / nominal_mass)
                                               for i in nominal_inertia]
        change(body, link, **changes)
    if "joints" in sections:
        _apply_joints(world, sections["joints"])
    for name, fields in sections.get("robots", {}).items():
        robot = world.robots[name]
        if "position_gain" in fields:
            robot.position_gain = fields["position_gain"]
        if "velocity_gain" in fields:
            robot.velocity_gain = fields["velocity_gain"]
        for field in _ACTUATION_FIELDS.intersection(fields):  # the robot's actuation steps them
            setattr(robot.actuation, field, fields[field])
        for field in SUCTION_FIELDS.keys() & fields:
            setattr(robot.suction, SUCTION_FIELDS[field], fields[field])


def _apply_joints(world: PhysicsHost, entries: dict) -> None:
    table = _joint_table(world)
    change = world.client.changeDynamics
    current = world.joint_value
    new_limits: dict[str, list[float]] = {}
    grip: dict[str, float] = {}
    for key, fields in entries.items():
        robot_name, body, index, slot = table[key]
        if "damping" in fields:
            change(body, index, jointDamping=fields["damping"])
        limit, friction = fields.get("force_limit"), fields.get("friction")
        if limit is None and friction is None:
            continue
        if limit is None:
            limit = current(key, "force_limit")
        if friction is None:
            friction = current(key, "friction") or 0.0
        effective = limit - friction if limit > friction else 0.0  # friction eats into the force
        if slot is None:
            grip[robot_name] = effective
            continue
        limits = new_limits.get(robot_name)
        if limits is None:
            limits = new_limits[robot_name] = world.robots[robot_name].arm_force_limits.tolist()
        limits[slot] = effective
    # One assignment per robot: each re-sends the motor commands (once per motor_batch).
    for robot_name, limits in new_limits.items():
        world.robots[robot_name].arm_force_limits = limits
    for robot_name, force in grip.items():
        world.robots[robot_name].gripper_force_n = force


def _joint_table(world: PhysicsHost) -> dict[str, tuple[str, int, int, int | None]]:
    """``robot/joint`` -> (robot, body, joint index, slot in the arm order or None) (cached)."""
    return world.index_tables.get("joint_table", lambda: _read_joint_table(world))


def _read_joint_table(world: PhysicsHost) -> dict[str, tuple[str, int, int, int | None]]:
    table = {}
    for key, (robot_name, body, index) in _joints(world).items():
        arm = world.robots[robot_name].arm_joint_indices.tolist()
        table[key] = (robot_name, body, index, arm.index(index) if index in arm else None)
    return table


def _nominal_inertia(world: PhysicsHost, key: str, body: int, link: int):
    """Mass and local inertia diagonal of a body/link as built (cached on first use)."""
    table = world.index_tables.get("inertia", dict)
    if key not in table:
        info = world.client.getDynamicsInfo(body, link)
        table[key] = (info[0], tuple(info[2]))
    return table[key]




class EntryWriter:
    """Applies values to a fixed list of checked ``(section, key, field)`` entries.

    What :func:`apply_entries` does for the same entries, with every name resolved once: a
    randomized reset sets the same entries every episode, and resolving them each time cost
    more than the pybullet calls. The values are recorded in the world's physics record too.

    Args:
        world: the world the entries were checked against.
        entries: ``(section, key, field)`` triples; a call passes one value per triple.
    """

    def __init__(self, world: PhysicsHost, entries: list[tuple[str, str, str]]):
        self.world = world
        self.entries = list(entries)
        links, joints = _links(world), _joint_table(world)
        bodies: dict[str, list] = {}
        self._damping: list[tuple[int, int, int]] = []
        forces: dict[str, dict[str, dict[str, int]]] = {}
        self._robot_fields: list[tuple[object, str, int]] = []  # (robot or actuation, field, at)
        for position, (section, key, field) in enumerate(self.entries):
            if section == "bodies":
                bodies.setdefault(key, []).append((field, position))
            elif section == "joints" and field == "damping":
                self._damping.append((joints[key][1], joints[key][2], position))
            elif section == "joints":
                forces.setdefault(joints[key][0], {}).setdefault(key, {})[field] = position
            else:  # gains on the robot, latency and sensor noise on its actuation
                robot = world.robots[key]
                owner = robot.actuation if field in _ACTUATION_FIELDS else robot
                if field in SUCTION_FIELDS:  # force and seal tolerance on its suction cup
                    owner, field = robot.suction, SUCTION_FIELDS[field]
                self._robot_fields.append((owner, field, position))
        self._bodies = []
        for key, fields in bodies.items():
            body, link = links[key]
            mass = dict(fields).get("mass_kg")
            nominal = _nominal_inertia(world, key, body, link) if mass is not None else None
            self._bodies.append((body, link, [(_BODY_FIELDS[f], p) for f, p in fields], mass, nominal))
        # Per robot: arm joints by slot and finger joints, each with its force limit and
        # friction as a position in the values or, for the one not given, the value on record
        # now. A writer is built right after a restore and used right after each restore, so
        # what is not written here is always the snapshot's value.
        self._forces = []
        current = world.joint_value
        for robot_name, entries_ in forces.items():
            arm, fingers = [], []
            for key, fields in entries_.items():
                slot = joints[key][3]
                limit = fields.get("force_limit"), current(key, "force_limit")
                friction = fields.get("friction"), current(key, "friction") or 0.0
                (fingers if slot is None else arm).append((slot, limit, friction))
            robot = world.robots[robot_name]
            self._forces.append((robot, arm, fingers, _whole_arm(robot, arm)))
        self._entries = tuple(self.entries)
        self._change = world.client.changeDynamics  # BulletClient makes a partial per lookup
        self._record = world.record_physics_values

    def __call__(self, values: list) -> None:
        change = self._change
        for body, link, fields, mass, nominal in self._bodies:
            changes = {name: values[position] for name, position in fields}
            if mass is not None:  # scale the nominal inertia, as apply_entries does
                ratio = values[mass] / nominal[0]
                changes["localInertiaDiagonal"] = [i * ratio for i in nominal[1]]
            change(body, link, **changes)
        for body, index, position in self._damping:
            change(body, index, jointDamping=values[position])
        for robot, arm, fingers, whole_arm in self._forces:
            if whole_arm is not None:  # every arm limit drawn, no friction: pick them in C
                robot.arm_force_limits = whole_arm(values)
                arm = []
            limits = robot.arm_force_limits.tolist() if arm else None
            for slot, (limit, fixed_limit), (friction, fixed_friction) in arm + fingers:
                limit = fixed_limit if limit is None else values[limit]
                friction = fixed_friction if friction is None else values[friction]
                effective = limit - friction if limit > friction else 0.0  # friction eats force
                if slot is None:
                    grip = effective
                else:
                    limits[slot] = effective
            if arm:
                robot.arm_force_limits = limits
            if fingers:
                robot.gripper_force_n = grip
        for owner, field, position in self._robot_fields:
            setattr(owner, field, values[position])
        self._record(self._entries, values)


def _whole_arm(robot, arm: list) -> "operator.itemgetter | None":
    """The values' arm force limits in slot order, when they are all there and no friction
    eats into them (the common ``{robot}/*`` motor-strength term); else None."""
    by_slot = {slot: limit for slot, (limit, _), (friction, fixed) in arm
               if limit is not None and friction is None and fixed == 0.0}
    if len(arm) != robot.dof or sorted(by_slot) != list(range(robot.dof)) or robot.dof < 2:
        return None
    return operator.itemgetter(*(by_slot[slot] for slot in range(robot.dof)))
