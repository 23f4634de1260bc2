"""Turns the static and free objects of a cell spec into pybullet bodies.

Robots are built by ``celltwin.robots.Robot``; everything else a cell holds (floor, equipment,
conveyor belts, bins and trays, parts) is built here. Each function returns the new body id; the
world records it under the object's name.
"""

from __future__ import annotations

import math

import numpy as np
import pybullet_data

from celltwin.meshes import PreparedMesh
from celltwin.parts import PartGeometry

_BELT_COLOR = (0.15, 0.15, 0.17, 1.0)


def _quat(pose) -> list[float]:
    return list(pose.quaternion_xyzw())


def add_floor(client) -> int:
    """Load the ground plane at z = 0."""
    return client.loadURDF(f"{pybullet_data.getDataPath()}/plane.urdf", useFixedBase=True)


def add_box(client, half_extents, position, orientation, color, mass_kg: float = 0.0,
            collision: bool = True, maximal_coordinates: bool = False) -> int:
    """Create a box body; ``mass_kg = 0`` makes it fixed."""
    shape = client.createCollisionShape(client.GEOM_BOX, halfExtents=list(half_extents)) if collision else -1
    visual = client.createVisualShape(client.GEOM_BOX, halfExtents=list(half_extents), rgbaColor=list(color))
    return client.createMultiBody(mass_kg, shape, visual, list(position), list(orientation),
                                  useMaximalCoordinates=maximal_coordinates)


def add_cylinder(client, radius_m, height_m, position, orientation, color, mass_kg: float = 0.0,
                 collision: bool = True, maximal_coordinates: bool = False) -> int:
    """Create an upright cylinder body centred on ``position``."""
    shape = (client.createCollisionShape(client.GEOM_CYLINDER, radius=radius_m, height=height_m)
             if collision else -1)
    visual = client.createVisualShape(client.GEOM_CYLINDER, radius=radius_m, length=height_m,
                                      rgbaColor=list(color))
    return client.createMultiBody(mass_kg, shape, visual, list(position), list(orientation),
                                  useMaximalCoordinates=maximal_coordinates)


def add_equipment(client, item, mesh: PreparedMesh | None = None) -> int:
    """Create one fixed equipment item (box, cylinder, or CAD mesh prepared by ``prepare_mesh``)."""
    position, orientation = list(item.pose.xyz), _quat(item.pose)
    if item.shape == "box":
        return add_box(client, np.asarray(item.size_m) / 2, position, orientation, item.color,
                       collision=item.collision)
    if item.shape == "cylinder":
        return add_cylinder(client, item.radius_m, item.height_m, position, orientation, item.color,
                            collision=item.collision)
    shape = (client.createCollisionShape(client.GEOM_MESH, fileName=str(mesh.collision_obj))
             if item.collision else -1)
    visual = client.createVisualShape(client.GEOM_MESH, fileName=str(mesh.visual_obj),
                                      rgbaColor=list(item.color))
    return client.createMultiBody(0.0, shape, visual, position, orientation)


def add_conveyor(client, conveyor) -> tuple[int, np.ndarray]:
    """Create a belt whose top surface centre is at the conveyor's pose.

    Returns:
        The body id and the unit running direction (belt local +x) in the world frame.
    """
    half = np.array([conveyor.length_m, conveyor.width_m, conveyor.height_m]) / 2
    orientation = _quat(conveyor.pose)
    rotation = np.array(client.getMatrixFromQuaternion(orientation)).reshape(3, 3)
    centre = np.asarray(conveyor.pose.xyz) - rotation[:, 2] * half[2]
    color = conveyor.color if conveyor.color is not None else _BELT_COLOR
    body = add_box(client, half, centre, orientation, color)
    return body, rotation[:, 0]


def add_bin(client, bin_spec) -> int:
    """Create an open box (floor and four walls) as one fixed body; pose is the bottom centre."""
    sx, sy, sz = bin_spec.size_m
    t = bin_spec.wall_thickness_m
    halves = [(sx / 2, sy / 2, t / 2), (t / 2, sy / 2, sz / 2), (t / 2, sy / 2, sz / 2),
              (sx / 2, t / 2, sz / 2), (sx / 2, t / 2, sz / 2)]
    offsets = [(0, 0, t / 2), (-(sx - t) / 2, 0, sz / 2), ((sx - t) / 2, 0, sz / 2),
               (0, -(sy - t) / 2, sz / 2), (0, (sy - t) / 2, sz / 2)]
    shape = client.createCollisionShapeArray([client.GEOM_BOX] * 5, halfExtents=halves,
                                             collisionFramePositions=offsets)
    visual = client.createVisualShapeArray([client.GEOM_BOX] * 5, halfExtents=halves,
                                           visualFramePositions=offsets,
                                           rgbaColors=[list(bin_spec.color)] * 5)
    return client.createMultiBody(0.0, shape, visual, list(bin_spec.pose.xyz), _quat(bin_spec.pose))


def add_part(client, part, position, yaw_rad: float, maximal_coordinates: bool = False) -> int:
    """Create one free part resting at ``position`` (its centre) with yaw ``yaw_rad``.

    ``maximal_coordinates`` builds it as a Bullet rigid body instead of a one-link multibody:
    the same dynamics for a free body, and a cheaper solve (long layout runs use it).
    """
    orientation = client.getQuaternionFromEuler([0.0, 0.0, yaw_rad])
    return build_part(client, PartGeometry.of(part), position, orientation, part.color,
                      part.mass_kg, part.friction, maximal_coordinates)


def build_part(client, geometry: PartGeometry, position, orientation, color, mass_kg: float,
               friction: float, maximal_coordinates: bool = False) -> int:
    """Create a free part body of ``geometry`` with its shape's centre at ``position``.

    The one place part bodies are made, as built and as randomized variants. pybullet derives
    the inertia from the collision shape and ``mass_kg``; an offset centre of mass becomes the
    body's inertial frame, which pybullet then reports as the body's position.
    """
    half = list(geometry.half_extents_m)
    com = list(geometry.com_m)
    if geometry.shape == "box":
        shape = client.createCollisionShape(client.GEOM_BOX, halfExtents=half)
        visual = client.createVisualShape(client.GEOM_BOX, halfExtents=half, rgbaColor=list(color))
    elif geometry.shape == "cylinder":
        shape = client.createCollisionShape(client.GEOM_CYLINDER, radius=geometry.radius_m,
                                            height=geometry.height_m)
        visual = client.createVisualShape(client.GEOM_CYLINDER, radius=geometry.radius_m,
                                          length=geometry.height_m, rgbaColor=list(color))
    else:
        shape = client.createCollisionShape(client.GEOM_SPHERE, radius=geometry.radius_m)
        visual = client.createVisualShape(client.GEOM_SPHERE, radius=geometry.radius_m,
                                          rgbaColor=list(color))
    # ``position`` places the part frame; pybullet keeps the collision and visual shapes on
    # it and moves only the inertial frame (measured: AABB and rendered image stay put).
    body = client.createMultiBody(mass_kg, shape, visual, list(position), list(orientation),
                                  baseInertialFramePosition=com,
                                  useMaximalCoordinates=maximal_coordinates)
    client.changeDynamics(body, -1, lateralFriction=friction)
    return body


def spawn_positions(region, count: int, frame_position, frame_orientation, client):
    """Nominal spawn poses for ``count`` parts: spread evenly along the region's longest axis.

    Randomized spawning belongs to domain randomization; a freshly built world is nominal.

    Returns:
        A list of ``(position, yaw_rad)`` in the world frame.
    """
    low, high = np.asarray(region.low_m, float), np.asarray(region.high_m, float)
    axis = int(np.argmax(high - low))
    poses = []
    for index in range(count):
        point = (low + high) / 2
        if count > 1:
            point[axis] = low[axis] + (high[axis] - low[axis]) * index / (count - 1)
        world_point, _ = client.multiplyTransforms(frame_position, frame_orientation,
                                                   point.tolist(), [0, 0, 0, 1])
        yaw = math.radians(sum(region.yaw_deg) / 2)
        poses.append((list(world_point), yaw))
    return poses
