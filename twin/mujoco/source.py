"""What the MuJoCo builder takes from celltwin: a cell, its complete PhysicsParams, its start.

A cell spec leaves many physical values to the engine (a table's friction, a link's mass and
inertia, a motor's gains), and celltwin's one record of them is the PhysicsParams a built
pybullet :class:`celltwin.world.World` reports. So the MuJoCo twin is built from a world: its
spec, ``world.physics_params()`` (every field filled, ``--physics`` overrides included), and
the state it starts in (part poses, joint positions, the prepared CAD meshes). Both engines
then start from the same numbers, and nothing here is a second copy of a default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Mapping

from celltwin.meshes import PreparedMesh
from celltwin.parts import PartGeometry
from celltwin.physics import PhysicsParams
from celltwin.robots.registry import RobotModel
from celltwin.spec import CellSpec
from celltwin.world import World


@dataclass(frozen=True)
class RobotStart:
    """One robot as the world built it.

    Attributes:
        name: the robot's name in the cell.
        model: its model, held closed where the world holds its gripper closed.
        base_xyz: base position in the world [m].
        base_quat_xyzw: base orientation in the world, quaternion (x, y, z, w).
        joint_positions: arm joint positions it starts at [rad].
        gripper_width_m: finger opening it starts at [m].
        body_xyz: where the base link is in the world [m]; differs from ``base_xyz`` when
            randomization moved the base (``base_x_m``: a calibration error the robot's
            controller does not know of, so it keeps reporting in ``base_xyz``'s frame).
        body_quat_xyzw: the base link's orientation in the world (x, y, z, w).
    """

    name: str
    model: RobotModel
    base_xyz: tuple[float, float, float]
    base_quat_xyzw: tuple[float, float, float, float]
    joint_positions: tuple[float, ...]
    gripper_width_m: float
    body_xyz: tuple[float, float, float] | None = None
    body_quat_xyzw: tuple[float, float, float, float] | None = None

    @property
    def body_pose(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Where the base link is: ``body_xyz`` and ``body_quat_xyzw``, the base pose when
        those are not given."""
        if self.body_xyz is None or self.body_quat_xyzw is None:
            return self.base_xyz, self.base_quat_xyzw
        return self.body_xyz, self.body_quat_xyzw


@dataclass(frozen=True)
class PartStart:
    """One free part body as the world built it.

    Attributes:
        name: the body's name (``part``, ``part_3``).
        geometry: its shape and size.
        position: its centre in the world [m].
        quat_xyzw: its orientation in the world, quaternion (x, y, z, w).
        color: RGBA colour.
    """

    name: str
    geometry: PartGeometry
    position: tuple[float, float, float]
    quat_xyzw: tuple[float, float, float, float]
    color: tuple[float, float, float, float]


@dataclass(frozen=True)
class TwinSource:
    """Everything the MuJoCo builder needs (see the module docstring).

    Attributes:
        spec: the validated cell.
        params: every physical knob, as the pybullet world reports it.
        robots: the robots, in the cell's order.
        parts: the free part bodies, in build order.
        meshes: the prepared CAD mesh of every mesh equipment item, by name.
        conveyor_speeds: belt speeds [m/s], by conveyor name.
    """

    spec: CellSpec
    params: PhysicsParams
    robots: tuple[RobotStart, ...]
    parts: tuple[PartStart, ...]
    meshes: Mapping[str, PreparedMesh]
    conveyor_speeds: Mapping[str, float]

    @classmethod
    def of_world(cls, world: World) -> "TwinSource":
        """Read a built world (through its public API only)."""
        colors = {name: part.color for part in world.spec.parts for name in part.body_names()}
        robots = tuple(RobotStart(
            name=name, model=robot.model,
            base_xyz=tuple(float(v) for v in robot.base_xyz),
            base_quat_xyzw=tuple(float(v) for v in robot.base_quat_xyzw),
            joint_positions=tuple(float(v) for v in robot.joint_positions()),
            gripper_width_m=float(robot.gripper_width()),
            **_base_link_pose(world, name)) for name, robot in world.robots.items())
        parts = []
        for name in world.parts:
            position, orientation = world.part_pose(name)
            parts.append(PartStart(name, world.part_geometries[name],
                                   tuple(float(v) for v in position),
                                   tuple(float(v) for v in orientation), colors[name]))
        return cls(world.spec, world.physics_params(), robots, tuple(parts), dict(world.meshes),
                   {name: belt.speed_mps for name, belt in world.conveyors.items()})

    @classmethod
    def of_cell(cls, cell: CellSpec | str | Path, physics: PhysicsParams | None = None,
                held_grippers: Collection[str] = ()) -> "TwinSource":
        """Build the pybullet world of ``cell`` (as :class:`World` takes it), read it, close it."""
        with World(cell, physics=physics, held_grippers=held_grippers) as world:
            return cls.of_world(world)


def _base_link_pose(world: World, name: str) -> dict:
    """Where robot ``name``'s base link is now, which randomization may have moved away from
    ``robot.base_xyz`` (World.move_base moves the body only). pybullet reports a base's
    inertial frame; the link frame is that pose times the inverse of the inertial offset."""
    client, body = world.client, world.body(name)
    position, orientation = client.getBasePositionAndOrientation(body)
    local_xyz, local_quat = client.getDynamicsInfo(body, -1)[3:5]
    inverse = client.invertTransform(local_xyz, local_quat)
    xyz, quat = client.multiplyTransforms(position, orientation, *inverse)
    return {"body_xyz": tuple(float(v) for v in xyz),
            "body_quat_xyzw": tuple(float(v) for v in quat)}
