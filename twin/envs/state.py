"""Reads robot and object state out of a world, in the robot's base frame.

This is the pybullet side of :mod:`celltwin.observation`: it fills the state mapping that the
observation builder turns into a vector. It makes the fewest calls it can per step (one link
state with velocity for the TCP, one joint-state call for the fingers, one pose and one velocity
call for the object) because it runs on every env step.
"""

from __future__ import annotations

import numpy as np

_IDENTITY = (0.0, 0.0, 0.0, 1.0)


class StateReader:
    """Reads the state of one robot and, optionally, one object body.

    Args:
        world: the world.
        robot: the robot whose base frame everything is expressed in.
        object_body: pybullet id of the task's object, or ``None``.
        object_com_m: the object's centre of mass in its own frame [m] (a randomized part);
            the object's position and velocity are read at its centre, as a camera sees it.
        terms: the observation terms needed (default: all it can read); the gripper opening
            is read only when asked for.
    """

    def __init__(self, world, robot, object_body: int | None = None, terms=None,
                 object_com_m=(0.0, 0.0, 0.0)):
        client = world.client
        self.robot = robot
        self.object_body = object_body
        # pybullet reports a body's inertial frame: from there back to the part's centre.
        self._centre_from_com = [-float(c) for c in object_com_m] if any(object_com_m) else None
        self._base_position = np.asarray(robot.base_xyz, dtype=float)
        rotation = np.array(client.getMatrixFromQuaternion(robot.base_quat_xyzw.tolist())).reshape(3, 3)
        self._to_base = rotation.T  # world -> base for vectors
        inverse = client.invertTransform(robot.base_xyz.tolist(), robot.base_quat_xyzw.tolist())
        self._inverse_base = inverse
        self._multiply = client.multiplyTransforms
        self._euler = client.getEulerFromQuaternion
        self._pose = client.getBasePositionAndOrientation
        self._velocity = client.getBaseVelocity
        self._tcp_state = robot.tcp_state
        # The same rotation as plain floats: a 3x3 product of tuples costs a quarter of numpy's
        # on arrays this small, and read() runs on every env step.
        self._rows = tuple(tuple(row) for row in self._to_base.tolist())
        self._origin = tuple(self._base_position.tolist())
        self._gripper_width = robot.gripper_width  # also knows a gripper held closed
        self._gripper = terms is None or "gripper_width" in terms

    def to_base(self, world_position) -> np.ndarray:
        """Express a world-frame point in the robot base frame [m]."""
        x, y, z = np.asarray(world_position, dtype=float).tolist()
        ox, oy, oz = self._origin
        return np.array(self._rotate(x - ox, y - oy, z - oz))

    def to_world(self, base_position) -> np.ndarray:
        """Express a base-frame point in the world frame [m]."""
        return self._to_base.T @ np.asarray(base_position, dtype=float) + self._base_position

    def read(self) -> dict[str, np.ndarray]:
        """Return the current state (the terms this reader was asked for, at least)."""
        rotate, (ox, oy, oz) = self._rotate, self._origin
        ee_position, ee_velocity = self._tcp_state()
        x, y, z = ee_position
        state = {
            "ee_position": np.array(rotate(x - ox, y - oy, z - oz)),
            "ee_velocity": np.array(rotate(*ee_velocity)),
        }
        if self._gripper:
            state["gripper_width"] = np.array([self._gripper_width()])
        if self.object_body is not None:
            position, orientation = self._pose(self.object_body)
            linear, angular = self._velocity(self.object_body)
            if self._centre_from_com is not None:
                com = position
                position, _ = self._multiply(position, orientation, self._centre_from_com, _IDENTITY)
                # The centre moves with the centre of mass plus the spin about it (w x r,
                # written out: np.cross costs more than the rest of this read).
                (wx, wy, wz), (vx, vy, vz) = angular, linear
                rx, ry, rz = position[0] - com[0], position[1] - com[1], position[2] - com[2]
                linear = (vx + wy * rz - wz * ry, vy + wz * rx - wx * rz, vz + wx * ry - wy * rx)
            # pybullet's transforms round to single precision (~1e-7 m): good enough for the
            # orientation, which ends as Euler angles in a float32 vector; the position is
            # rotated here in double precision.
            _, relative = self._multiply(*self._inverse_base, position, orientation)
            x, y, z = position
            state["object_position"] = np.array(rotate(x - ox, y - oy, z - oz))
            state["object_orientation"] = np.array(self._euler(relative))
            state["object_velocity"] = np.array(rotate(*linear))
            state["object_angular_velocity"] = np.array(rotate(*angular))
        return state

    def _rotate(self, x: float, y: float, z: float) -> tuple[float, float, float]:
        """A world-frame vector in the base frame."""
        (a, b, c), (d, e, f), (g, h, i) = self._rows
        return (a * x + b * y + c * z, d * x + e * y + f * z, g * x + h * y + i * z)
