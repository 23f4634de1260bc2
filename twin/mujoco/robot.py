"""One robot inside a MuJoCo twin: read its joints and TCP, command its servos.

The same surface as :class:`celltwin.robots.Robot` where a controller uses it (commands,
readings, ``hold``, ``motor_targets``), and the same :class:`celltwin.robots.actuation.Actuation`
between the two: set-points wait out the actuation latency and readings carry the joint-sensor
noise exactly as in the pybullet twin; the targets they reach are held by the robot's
:class:`celltwin.mujoco.servo.Servo`.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from celltwin.core.errors import Problem
from celltwin.mujoco.model import RobotHandles
from celltwin.mujoco.engine import load_mujoco
from celltwin.mujoco.servo import Servo
from celltwin.mujoco.suction import MujocoSuctionCup
from celltwin.robots.actuation import Actuation
from celltwin.robots.errors import RobotError

mujoco = load_mujoco()


class MujocoRobot:
    """The runtime handle of one robot of a :class:`celltwin.mujoco.twin.MujocoTwin`.

    Attributes:
        name: the robot's name in the cell.
        model: its :class:`celltwin.robots.registry.RobotModel` (held closed where it is).
        base_xyz: base position in the world [m].
        base_quat_xyzw: base orientation in the world, quaternion (x, y, z, w).
        arm_lower: arm joint lower limits [rad].
        arm_upper: arm joint upper limits [rad].
        gripper_joint_indices: MuJoCo joint ids of the fingers (empty when held closed).
        actuation: the set-point path to the servos: latency, sensor noise, targets.
        suction: the suction cup's vacuum and grip (:mod:`celltwin.mujoco.suction`), or None.
    """

    def __init__(self, handles: RobotHandles, model, data):
        start = handles.start
        self.handles = handles
        self.name = start.name
        self.model = start.model
        self.base_xyz = np.array(start.base_xyz, dtype=float)
        self.base_quat_xyzw = np.array(start.base_quat_xyzw, dtype=float)
        self._width_closed, self._width_open = self.model.gripper_width_range_m
        self.servo = Servo(handles.arm_joints + handles.finger_actuators,
                           handles.arm_actuators + handles.finger_actuators,
                           handles.arm_joints + handles.finger_joints)
        self.actuation = Actuation(self._send_arm, self._send_fingers, self.name)
        # A suction cup's gripper set-point is the vacuum: on below the middle of its range,
        # as on the pybullet robot.
        self._vacuum_mid = 0.5 * (self._width_closed + self._width_open)
        self.suction = None if handles.suction is None else \
            MujocoSuctionCup(handles.suction, self.name, model, data)
        self.bind(model, data)

    @property
    def has_gripper(self) -> bool:
        """Whether a gripper command does something: fingers that move, or a suction cup (the
        pybullet robot's property of the same name)."""
        return len(self.gripper_joint_indices) > 0 or self.suction is not None

    def bind(self, model, data) -> None:
        """Address ``model`` and ``data`` (after the twin compiled its model again)."""
        self._model, self._data = model, data
        handles = self.handles

        def ids(kind, names):
            return np.array([mujoco.mj_name2id(model, kind, name) for name in names], dtype=int)

        arm = ids(mujoco.mjtObj.mjOBJ_JOINT, handles.arm_joints)
        fingers = ids(mujoco.mjtObj.mjOBJ_JOINT, handles.finger_joints)
        self.gripper_joint_indices = fingers
        self._arm_q, self._arm_v = model.jnt_qposadr[arm], model.jnt_dofadr[arm]
        self._finger_q, self._finger_v = model.jnt_qposadr[fingers], model.jnt_dofadr[fingers]
        self._driven_fingers = len(handles.finger_actuators)
        self.servo.bind(model)
        self.arm_lower = model.jnt_range[arm, 0].copy()
        self.arm_upper = model.jnt_range[arm, 1].copy()
        self._finger_limits = [tuple(model.jnt_range[j]) for j in fingers]
        self._tcp = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, handles.tcp_site)
        self._tcp_body = model.site_bodyid[self._tcp]
        if self.suction is not None:
            self.suction.bind(model, data)
        self.actuation.resend()

    def apply_servo(self) -> None:
        """Set this physics step's motor torques (the twin calls it between mj_step1 and
        mj_step2)."""
        self.servo.apply(self._model, self._data)

    @property
    def dof(self) -> int:
        """Number of arm joints."""
        return len(self._arm_q)

    # --- state -----------------------------------------------------------------------------

    def reset_joints(self, q: Sequence[float], gripper_width: float | None = None) -> None:
        """Put the arm (and the fingers) at a configuration at rest and hold it there.

        The twin's kinematics are stale until it runs forward (:meth:`MujocoTwin.forward`).
        """
        q = self.as_joint_vector(q, "joint positions")
        self._data.qpos[self._arm_q] = q
        self._data.qvel[self._arm_v] = 0.0
        fingers = None
        if gripper_width is not None and len(self._finger_q):
            positions = self._finger_position(gripper_width)
            self._data.qpos[self._finger_q] = positions
            self._data.qvel[self._finger_v] = 0.0
            fingers = positions[:self._driven_fingers]
        elif gripper_width is not None and self.suction is not None:
            fingers = self._vacuum_target(gripper_width)   # at rest now: nothing held
            self.suction.release()
            self.suction.set_vacuum(fingers[0] < self._vacuum_mid)
        self.actuation.apply_now(self._clipped(q), fingers)

    def joint_positions(self) -> np.ndarray:
        """Arm joint positions [rad], shape (dof,)."""
        return self._data.qpos[self._arm_q].copy()

    def measured_joint_positions(self) -> np.ndarray:
        """Arm joint positions as the joint sensors report them (the actuation's noise)."""
        return self.actuation.measured(self.joint_positions())

    def joint_velocities(self) -> np.ndarray:
        """Arm joint velocities [rad/s], shape (dof,)."""
        return self._data.qvel[self._arm_v].copy()

    def gripper_width(self) -> float:
        """Opening between the finger pads [m] (each finger joint is half of it)."""
        if self.suction is not None:
            return self.suction.width(self._width_closed, self._width_open)
        if not len(self._finger_q):
            return self._width_closed
        return float(self._data.qpos[self._finger_q].sum())

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """TCP position [m] and orientation (x, y, z, w) in the world."""
        position = self._data.site_xpos[self._tcp].copy()
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, self._data.site_xmat[self._tcp])
        return position, np.array([quat[1], quat[2], quat[3], quat[0]])

    def ee_position_and_velocity(self) -> tuple[np.ndarray, np.ndarray]:
        """TCP position [m] and linear velocity [m/s] in the world."""
        jacobian = np.zeros((3, self._model.nv))
        mujoco.mj_jacSite(self._model, self._data, jacobian, None, self._tcp)
        return self._data.site_xpos[self._tcp].copy(), jacobian @ self._data.qvel

    # --- commands --------------------------------------------------------------------------

    def command_joint_positions(self, q: Sequence[float]) -> None:
        """Set the arm servos' targets, clipped to the joint limits [rad], after the latency."""
        self.actuation.command_arm(self._clipped(self.as_joint_vector(q, "joint position "
                                                                         "command")))

    def command_gripper_width(self, width_m: float) -> None:
        """Set the finger servos' targets for an opening of ``width_m`` [m], clipped; a suction
        cup's vacuum comes on below the middle of its range and goes off above it."""
        if self.suction is not None:
            self.actuation.command_fingers(self._vacuum_target(width_m))
            return
        self.actuation.command_fingers(self._finger_position(width_m)[:self._driven_fingers])

    def motor_targets(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The arm and finger targets the servos hold now (after latency)."""
        return tuple(self.actuation.arm_target or ()), tuple(self.actuation.finger_target or ())

    def hold(self) -> None:
        """Make the current positions the targets at once (a stop: no latency); a suction
        cup's vacuum stays as it is."""
        if self.suction is not None:
            fingers = [self._width_closed if self.suction.vacuum else self._width_open]
        else:
            fingers = self._finger_position(self.gripper_width())[:self._driven_fingers]
        self.actuation.apply_now(self._clipped(self.joint_positions()), fingers)

    def as_joint_vector(self, q: Sequence[float], what: str = "joint positions") -> np.ndarray:
        """``q`` as a float array, or RobotError unless it is dof finite values."""
        q = np.asarray(q, dtype=float)
        if q.shape != (self.dof,) or not np.isfinite(q).all():
            raise RobotError(Problem(f"{what} for robot '{self.name}' is invalid",
                                     value=q.tolist(), expected=f"{self.dof} finite values [rad]"))
        return q

    # --- internals -------------------------------------------------------------------------

    def _clipped(self, q: np.ndarray) -> list[float]:
        return np.clip(q, self.arm_lower, self.arm_upper).tolist()

    def _finger_position(self, width_m: float) -> list[float]:
        width = float(width_m)
        if not math.isfinite(width):
            raise RobotError(Problem(f"gripper width command for robot '{self.name}' is not "
                                     "finite", value=width, expected="a width [m]"))
        half = 0.5 * min(max(width, self._width_closed), self._width_open)
        return [min(max(half, low), high) for low, high in self._finger_limits]

    def _send_arm(self, target: Sequence[float]) -> None:
        self.servo.target[:self.dof] = target

    def _vacuum_target(self, width_m: float) -> list[float]:
        width = float(width_m)
        if not math.isfinite(width):
            raise RobotError(Problem(f"gripper width command for robot '{self.name}' is not "
                                     "finite", value=width, expected="a width [m]"))
        return [self._width_closed if width < self._vacuum_mid else self._width_open]

    def _send_fingers(self, target: Sequence[float]) -> None:
        if self.suction is not None:
            self.suction.set_vacuum(target[0] < self._vacuum_mid)
            return
        if self._driven_fingers:
            self.servo.target[self.dof:] = target
