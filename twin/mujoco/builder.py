"""The one builder of a cell's MuJoCo model: a :class:`TwinSource` in, an ``MjSpec`` out.

It lays out what the cell is made of, body by body, as the pybullet world does
(:mod:`celltwin.scene`, :class:`celltwin.robots.Robot`): a floor, static equipment (boxes,
cylinders, CAD meshes as the convex hulls celltwin's V-HACD made), conveyor belts, bins and
trays, free parts, and each robot loaded from the same merged URDF pybullet simulates, with
MuJoCo's URDF compiler, attached at its base pose, a TCP site, one torque motor per driven
joint (driven by :mod:`celltwin.mujoco.servo`) and a joint equality for geared fingers
(:mod:`celltwin.mujoco.attach`). Every
physical value (masses, frictions, force limits, timestep, gravity) is then written by
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
from pathlib import Path

import numpy as np

from celltwin.core.errors import Problem
from celltwin.mujoco.attach import attach_robot
from celltwin.mujoco.engine import load_mujoco
from celltwin.mujoco.errors import MujocoError
from celltwin.mujoco.mapping import apply_params
from celltwin.mujoco.model import CellModel, Collider, PartNames, rotation, wxyz
from celltwin.mujoco.source import TwinSource

mujoco = load_mujoco()

FLOOR = "floor"


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
        attach_robot(cell, robot, colliders)
    for first, second in itertools.combinations(colliders, 2):
        if first.body != second.body and (first.moving or second.moving):
            pair = spec.add_pair(geomname1=first.geom, geomname2=second.geom)
            cell.pairs.append((first, second, pair))
    apply_params(cell, source.params)
    return cell


# ----------------------------------------------------------------------------- static bodies
def _static_body(cell: CellModel, name: str, position, quat_xyzw):
    body = cell.spec.worldbody.add_body(name=cell.names.claim("body", name), pos=list(position),
                                        quat=wxyz(quat_xyzw))
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
    _geom(cell, body, FLOOR, colliders, FLOOR, type=mujoco.mjtGeom.mjGEOM_PLANE,
          size=[0.0, 0.0, 1.0], rgba=[0.9, 0.9, 0.9, 1.0])


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
    up = rotation(quat)[:, 2]
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
                                        pos=list(part.position), quat=wxyz(part.quat_xyzw))
    joint = body.add_freejoint(name=cell.names.claim("joint", part.name))
    if geometry.shape == "box":
        shape = dict(type=mujoco.mjtGeom.mjGEOM_BOX, size=list(geometry.half_extents_m))
    elif geometry.shape == "cylinder":
        shape = dict(type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                     size=[geometry.radius_m, geometry.half_height_m, 0.0])
    else:
        shape = dict(type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[geometry.radius_m, 0.0, 0.0])
    if geometry.com_offset:
        # A randomized variant (World.rebuild_part): the body stays at the part's centre and
        # its inertial frame moves to the centre of mass, with the shape's own moments there
        # (pybullet's inertial frame of the variant); mapping sets the mass and moments.
        body.explicitinertial = True
        body.ipos = list(geometry.com_m)
    # The inertia follows from the shape and the mass (mapping sets the mass), as pybullet's.
    geom = _geom(cell, body, part.name, colliders, part.name, moving=True,
                 rgba=list(part.color), **shape)
    cell.bodies[part.name] = body.name
    cell.parts[part.name] = PartNames(body.name, joint.name, geom.name)
