"""The one builder of a cell's MuJoCo model: a :class:`TwinSource` in, an ``MjSpec`` out.

It lays out what the cell is made of, body by body, as the pybullet world does
(:mod:`celltwin.scene`, :class:`celltwin.robots.Robot`): a floor, static equipment (boxes,
cylinders, CAD meshes as the convex hulls celltwin's V-HACD made), conveyor belts, bins and
trays, free parts, and each robot loaded from the same merged URDF pybullet simulates, with
MuJoCo's URDF compiler, attached at its base pose, a TCP site, one position servo per driven
joint and a joint equality for geared fingers. Every physical value (masses, frictions,
damping, force limits, gains, timestep, gravity) is then written by
:func:`celltwin.mujoco.mapping.apply_params` from the PhysicsParams; nothing here is a number
of its own but the geometry the cell gives.

Contacts are explicit geom pairs, one for every pair of bodies pybullet collides (different
bodies, at least one of them moving; a robot's links never with each other, as celltwin loads
robots without self-collision), so that each pair carries the friction pybullet combines for
it (see mapping). Dynamic contact generation is off (contype = conaffinity = 0).

Conveyors: the belt is a static box whose top geom has MuJoCo's surface velocity
(``geom/@surfacevel``) along its running axis: contacts see the belt's surface move, so
friction carries parts at ``speed_mps`` the way a real belt does. pybullet has no moving
surfaces; there the belt has no friction along its axis and parts on it get their velocity
set every control step (:mod:`celltwin.conveyor`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from celltwin.core.errors import Problem
from celltwin.mujoco.engine import load_mujoco
from celltwin.mujoco.errors import MujocoError
from celltwin.mujoco.mapping import apply_params
from celltwin.mujoco.source import RobotStart, TwinSource

mujoco = load_mujoco()

FLOOR = "floor"


@dataclass(frozen=True)
class Collider:
    """A geom that touches others.

    Attributes:
        geom: the geom's name in the model.
        owner: the PhysicsParams ``bodies`` key its contact properties come from
            (``table``, ``part``, ``arm`` for a robot's base link, ``arm/panda_link3``).
        body: the pybullet body it belongs to (a robot's links all belong to the robot).
        moving: whether it moves (a part, or a robot link other than the fixed base).
    """

    geom: str
    owner: str
    body: str
    moving: bool


@dataclass
class RobotHandles:
    """Where one robot sits in the model, by name.

    Attributes:
        start: the robot as the pybullet world built it.
        root_body: the body of its base link.
        links: MuJoCo body of each PhysicsParams link key (``arm/panda_link1``).
        arm_joints: MuJoCo joint of each arm joint, in the model's order.
        finger_joints: MuJoCo joints of the fingers (none when held closed).
        arm_actuators: one motor per arm joint, in the same order (named as the joint).
        finger_actuators: one motor per driven finger (the first of two geared fingers).
        joint_keys: PhysicsParams ``joints`` key of each moving joint, by MuJoCo joint name.
        tcp_site: the site at the tool centre point.
    """

    start: RobotStart
    root_body: str
    links: dict[str, str]
    arm_joints: tuple[str, ...]
    finger_joints: tuple[str, ...]
    arm_actuators: tuple[str, ...]
    finger_actuators: tuple[str, ...]
    joint_keys: dict[str, str]
    tcp_site: str

    @property
    def finger_share(self) -> float:
        """Fingers per driven finger: one motor driving two geared fingers pushes twice as
        hard for the same force per finger (as :class:`celltwin.robots.Robot` does)."""
        return len(self.finger_joints) / max(len(self.finger_actuators), 1)


@dataclass(frozen=True)
class PartNames:
    """The MuJoCo elements of one free part: its body, free joint and geom."""

    body: str
    joint: str
    geom: str


class Names:
    """MuJoCo names for the cell's elements, one namespace per kind as in MuJoCo.

    Each element gets its cell name where MuJoCo has it free, else that name with a suffix
    (``table~2``): a cell may call a table ``world`` (MuJoCo's world body) or a part
    ``arm/panda_link1``, and the twin still builds. Look names up in :class:`CellModel`'s
    tables, never by the cell name.
    """

    def __init__(self) -> None:
        self._used: dict[str, set[str]] = {"body": {"world"}}

    def claim(self, kind: str, wanted: str) -> str:
        """A free ``kind`` name (``body``, ``geom``, ``joint``, ``mesh``), claimed."""
        used = self._used.setdefault(kind, set())
        name, count = wanted, 1
        while name in used:
            count += 1
            name = f"{wanted}~{count}"
        used.add(name)
        return name

    def prefix(self, wanted: str) -> str:
        """A prefix no name claimed so far starts with, for the elements of a robot."""
        used = set().union(*self._used.values())
        prefix, count = f"{wanted}/", 1
        while any(name.startswith(prefix) for name in used):
            count += 1
            prefix = f"{wanted}~{count}/"
        return prefix

    def add(self, kind: str, names) -> None:
        """Record names an attached robot brought."""
        self._used.setdefault(kind, set()).update(names)


@dataclass
class CellModel:
    """A cell's MjSpec with the names that tie it to the cell and its PhysicsParams.

    Attributes:
        spec: the MuJoCo model specification.
        source: what it was built from.
        bodies: MuJoCo body of every named body of the cell (robots: their base link).
        parts: MuJoCo body, free joint and geom of every free part body.
        belts: MuJoCo geom of every conveyor's belt.
        robots: the robots, by name.
        pairs: the contact pairs with the two colliders each joins.
        link_inertia: nominal mass and inertia (``inertia``, ``fullinertia``) of every robot
            link body, by MuJoCo body name: a new mass scales them, as pybullet's does.
    """

    spec: object
    source: TwinSource
    bodies: dict[str, str] = field(default_factory=dict)
    parts: dict[str, PartNames] = field(default_factory=dict)
    belts: dict[str, str] = field(default_factory=dict)
    robots: dict[str, RobotHandles] = field(default_factory=dict)
    pairs: list[tuple[Collider, Collider, object]] = field(default_factory=list)
    link_inertia: dict[str, tuple[float, np.ndarray, np.ndarray]] = field(default_factory=dict)
    names: Names = field(default_factory=lambda: Names())


def build_cell(source: TwinSource) -> CellModel:
    """Build the MjSpec of ``source``'s cell, with every value of its PhysicsParams applied.

    Raises:
        MujocoError: a robot description MuJoCo cannot read, or a physical value it cannot
            express (see :func:`celltwin.mujoco.mapping.apply_params`).
    """
    spec = mujoco.MjSpec()
    spec.modelname = source.spec.name
    spec.compiler.degree = False
    # MuJoCo's recommended integrator; nothing in the twin is stiff in velocity (the servo's
    # torques are computed per step, joint damping is applied explicitly, as in pybullet).
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    cell = CellModel(spec, source)
    colliders: list[Collider] = []
    _floor(cell, colliders)
    for item in source.spec.equipment:
        _equipment(cell, item, colliders)
    for conveyor in source.spec.conveyors:
        _conveyor(cell, conveyor, colliders)
    for bin_spec in source.spec.bins:
        _bin(cell, bin_spec, colliders)
    for part in source.parts:
        _part(cell, part, colliders)
    for robot in source.robots:
        _robot(cell, robot, colliders)
    for first, second in itertools.combinations(colliders, 2):
        if first.body != second.body and (first.moving or second.moving):
            pair = spec.add_pair(geomname1=first.geom, geomname2=second.geom)
            cell.pairs.append((first, second, pair))
    apply_params(cell, source.params)
    return cell


# ----------------------------------------------------------------------------- static bodies
def _static_body(cell: CellModel, name: str, position, quat_xyzw):
    body = cell.spec.worldbody.add_body(name=cell.names.claim("body", name), pos=list(position),
                                        quat=_wxyz(quat_xyzw))
    cell.bodies[name] = body.name
    return body


def _geom(cell: CellModel, body, name: str, colliders: list[Collider] | None, owner: str,
          moving: bool = False, **attributes):
    """Add a geom; a collider (in ``colliders``) unless that is None (visual only)."""
    geom = body.add_geom(name=cell.names.claim("geom", name), contype=0, conaffinity=0,
                         **attributes)
    if colliders is not None:
        colliders.append(Collider(geom.name, owner, owner, moving))
    return geom


def _floor(cell: CellModel, colliders: list[Collider]) -> None:
    body = _static_body(cell, FLOOR, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
    _geom(cell, body, FLOOR, colliders, FLOOR, type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0.0, 0.0, 1.0],
          rgba=[0.9, 0.9, 0.9, 1.0])


def _equipment(cell: CellModel, item, colliders: list[Collider]) -> None:
    body = _static_body(cell, item.name, item.pose.xyz, item.pose.quaternion_xyzw())
    touching = colliders if item.collision else None
    color = list(item.color)
    if item.shape == "box":
        _geom(cell, body, item.name, touching, item.name, type=mujoco.mjtGeom.mjGEOM_BOX,
              size=[s / 2 for s in item.size_m], rgba=color)
    elif item.shape == "cylinder":
        _geom(cell, body, item.name, touching, item.name, type=mujoco.mjtGeom.mjGEOM_CYLINDER,
              size=[item.radius_m, item.height_m / 2, 0.0], rgba=color)
    else:
        _mesh_equipment(cell, body, item, touching, color)


def _mesh_equipment(cell: CellModel, body, item, colliders, color) -> None:
    """A CAD item: one convex mesh per hull of the decomposition pybullet collides with."""
    prepared = cell.source.meshes[item.name]
    hulls = _obj_hulls(prepared.collision_obj)
    for index, vertices in enumerate(hulls):
        name = f"{item.name}/hull{index}"
        if len(vertices) < 4 or np.linalg.matrix_rank(vertices[1:] - vertices[0]) < 3:
            raise MujocoError(Problem(
                f"equipment '{item.name}': hull {index} of its collision mesh is flat",
                path=f"equipment.{item.name}.mesh", value=str(item.mesh),
                expected="a mesh whose convex parts each enclose a volume (MuJoCo collides "
                         "with volumes only)"))
        mesh = cell.spec.add_mesh(name=cell.names.claim("mesh", name))
        mesh.uservert = vertices.ravel().tolist()
        _geom(cell, body, name, colliders, item.name, type=mujoco.mjtGeom.mjGEOM_MESH,
              meshname=mesh.name, rgba=color)


def _obj_hulls(path: Path) -> list[np.ndarray]:
    """The vertices of each object (``o``) of a V-HACD OBJ file, one array per convex hull."""
    hulls: list[list[list[float]]] = []
    for line in path.read_text().splitlines():
        if line.startswith("o ") or (line.startswith("v ") and not hulls):
            hulls.append([])
        if line.startswith("v "):
            hulls[-1].append([float(value) for value in line.split()[1:4]])
    return [np.asarray(vertices, dtype=float) for vertices in hulls if vertices]


def _conveyor(cell: CellModel, conveyor, colliders: list[Collider]) -> None:
    """A belt whose top surface centre is the conveyor's pose, as in :mod:`celltwin.scene`."""
    quat = conveyor.pose.quaternion_xyzw()
    half = np.array([conveyor.length_m, conveyor.width_m, conveyor.height_m]) / 2
    up = _rotation(quat)[:, 2]
    centre = np.asarray(conveyor.pose.xyz) - up * half[2]
    body = _static_body(cell, conveyor.name, centre, quat)
    geom = _geom(cell, body, conveyor.name, colliders, conveyor.name,
                 type=mujoco.mjtGeom.mjGEOM_BOX, size=half.tolist(), rgba=list(conveyor.color))
    # Linear velocity of the surface in the geom's frame: along the belt's local +x.
    geom.surfacevel = [cell.source.conveyor_speeds[conveyor.name], 0.0, 0.0, 0.0, 0.0, 0.0]
    cell.belts[conveyor.name] = geom.name


def _bin(cell: CellModel, bin_spec, colliders: list[Collider]) -> None:
    """A floor and four walls in one static body; the pose is the bottom centre."""
    body = _static_body(cell, bin_spec.name, bin_spec.pose.xyz, bin_spec.pose.quaternion_xyzw())
    sx, sy, sz = bin_spec.size_m
    t = bin_spec.wall_thickness_m
    walls = {"floor": ((sx / 2, sy / 2, t / 2), (0, 0, t / 2)),
             "wall_-x": ((t / 2, sy / 2, sz / 2), (-(sx - t) / 2, 0, sz / 2)),
             "wall_+x": ((t / 2, sy / 2, sz / 2), ((sx - t) / 2, 0, sz / 2)),
             "wall_-y": ((sx / 2, t / 2, sz / 2), (0, -(sy - t) / 2, sz / 2)),
             "wall_+y": ((sx / 2, t / 2, sz / 2), (0, (sy - t) / 2, sz / 2))}
    for wall, (half, offset) in walls.items():
        _geom(cell, body, f"{bin_spec.name}/{wall}", colliders, bin_spec.name,
              type=mujoco.mjtGeom.mjGEOM_BOX, size=list(half), pos=list(offset),
              rgba=list(bin_spec.color))


# ----------------------------------------------------------------------------- parts
def _part(cell: CellModel, part, colliders: list[Collider]) -> None:
    geometry = part.geometry
    body = cell.spec.worldbody.add_body(name=cell.names.claim("body", part.name),
                                        pos=list(part.position), quat=_wxyz(part.quat_xyzw))
    joint = body.add_freejoint(name=cell.names.claim("joint", part.name))
    if geometry.shape == "box":
        shape = dict(type=mujoco.mjtGeom.mjGEOM_BOX, size=list(geometry.half_extents_m))
    elif geometry.shape == "cylinder":
        shape = dict(type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                     size=[geometry.radius_m, geometry.half_height_m, 0.0])
    else:
        shape = dict(type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[geometry.radius_m, 0.0, 0.0])
    if geometry.com_offset:
        raise MujocoError(Problem(f"part '{part.name}' has its centre of mass off its centre",
                                  path=f"parts.{part.name}", value=list(geometry.com_m),
                                  expected="a nominal part (the MuJoCo twin builds no "
                                           "randomized variants yet)"))
    # The inertia follows from the shape and the mass (mapping sets the mass), as pybullet's.
    geom = _geom(cell, body, part.name, colliders, part.name, moving=True,
                 rgba=list(part.color), **shape)
    cell.bodies[part.name] = body.name
    cell.parts[part.name] = PartNames(body.name, joint.name, geom.name)


# ----------------------------------------------------------------------------- robots
def _robot(cell: CellModel, start: RobotStart, colliders: list[Collider]) -> None:
    """Load the robot's merged URDF with MuJoCo's URDF compiler and attach it at its base."""
    model = start.model
    description = model.merged_urdf()
    try:
        child = mujoco.MjSpec.from_file(str(description.path))
    except ValueError as error:
        raise MujocoError(Problem(f"MuJoCo cannot read the description of robot "
                                  f"'{start.name}' ({model.name}): {_one_line(error)}",
                                  path=f"robots.{start.name}.model", file=str(description.path),
                                  expected="a URDF whose meshes MuJoCo reads (STL, OBJ)")) from None
    prefix = cell.names.prefix(start.name)
    root = child.worldbody.first_body()
    root_name = root.name  # attaching renames the child's elements in place
    for equality in list(child.equalities):
        # MuJoCo turns URDF <mimic> tags into joint equalities; pybullet ignores them, and the
        # finger gear added below is the coupling both engines share.
        child.delete(equality)
    for index, geom in enumerate(child.geoms):
        geom.name = f"{geom.parent.name}#{index}"
        geom.contype, geom.conaffinity = 0, 0
    links = {}  # PhysicsParams key -> MuJoCo body
    for body in child.bodies:
        if body.name and body.name != "world":
            cell.link_inertia[prefix + body.name] = (
                float(body.mass), np.array(body.inertia, dtype=float),
                np.array(body.fullinertia, dtype=float))
            if body.name != root_name:
                links[f"{start.name}/{body.name}"] = prefix + body.name
    for geom in child.geoms:
        link = geom.parent.name
        moving = link != root_name
        owner = f"{start.name}/{link}" if moving else start.name
        colliders.append(Collider(prefix + geom.name, owner, start.name, moving))
    brought = {kind: [prefix + element.name for element in elements if element.name]
               for kind, elements in (("body", child.bodies), ("geom", child.geoms),
                                      ("joint", child.joints), ("mesh", child.meshes))}
    frame = cell.spec.worldbody.add_frame(pos=list(start.base_xyz),
                                          quat=_wxyz(start.base_quat_xyzw))
    frame.attach_body(root, prefix, "")
    cell.bodies[start.name] = prefix + root_name
    for kind, names in brought.items():
        cell.names.add(kind, names)

    arm = tuple(prefix + joint for joint in model.arm_joint_names)
    fingers = () if model.gripper_held_closed else tuple(
        prefix + joint for joint in model.gripper_joint_names)
    driven = fingers[:1] if len(fingers) == 2 else fingers
    for joint in arm + fingers:
        element = cell.spec.joint(joint)
        # MuJoCo's URDF import bounds each joint's actuator force by the URDF effort; the
        # servo's limit is the PhysicsParams force limit, on its motor (mapping).
        element.actfrclimited = mujoco.mjtLimited.mjLIMITED_FALSE
        # ... and takes the URDF's damping, which the servo applies as pybullet does instead.
        element.damping = [0.0, 0.0, 0.0]
    if len(fingers) == 2:
        # The gear of celltwin.robots.finger_gear: the second finger follows the first.
        gear = cell.spec.add_equality(type=mujoco.mjtEq.mjEQ_JOINT, name1=fingers[1],
                                      name2=fingers[0])
        polynomial = np.zeros(len(gear.data))  # its length differs between MuJoCo versions
        polynomial[1] = 1.0                    # q_follower = 0 + 1 q_driven
        gear.data = polynomial
    for joint in arm + driven:
        # A torque motor per driven joint; the servo (celltwin.mujoco.servo) sets its torque.
        motor = cell.spec.add_actuator(name=joint, target=joint,
                                       trntype=mujoco.mjtTrn.mjTRN_JOINT)
        motor.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        motor.gainprm = [1.0] + [0.0] * 9
        motor.biastype = mujoco.mjtBias.mjBIAS_NONE
        motor.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        motor.ctrllimited = mujoco.mjtLimited.mjLIMITED_FALSE
    survivor, tcp_xyz, tcp_quat = model.ee_link, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)
    if model.ee_link in description.merged:
        frame_on = description.merged[model.ee_link]
        survivor, tcp_xyz, tcp_quat = frame_on.link, frame_on.xyz, frame_on.quat_xyzw
    tcp = f"{prefix}tcp"
    cell.spec.body(prefix + survivor).add_site(name=tcp, pos=list(tcp_xyz),
                                               quat=_wxyz(tcp_quat))
    keys = {prefix + joint: f"{start.name}/{joint}"
            for joint in model.arm_joint_names + model.gripper_joint_names
            if prefix + joint in arm + fingers}
    cell.robots[start.name] = RobotHandles(start, prefix + root_name, links, arm, fingers, arm,
                                           driven, keys, tcp)


# ----------------------------------------------------------------------------- helpers
def _wxyz(quat_xyzw) -> list[float]:
    x, y, z, w = (float(v) for v in quat_xyzw)
    return [w, x, y, z]


def _rotation(quat_xyzw) -> np.ndarray:
    matrix = np.zeros(9)
    mujoco.mju_quat2Mat(matrix, np.asarray(_wxyz(quat_xyzw)))
    return matrix.reshape(3, 3)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
