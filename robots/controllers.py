"""Action controllers: turn a policy's action vector into motor commands for one robot.

Every action is ``[arm part..., gripper]``. The gripper element is in [-1, 1] and maps linearly
to the model's closed..open width. The arm part depends on the mode:

- ``joint_position``: absolute arm joint targets [rad], bounded by the joint limits.
- ``joint_delta``: joint position change per action, in [-1, 1] times ``scale_rad``.
- ``ee_delta``: TCP position change per action in the robot's BASE frame, in [-1, 1] times
  ``scale_m``; the gripper is held at the home orientation (pointing down). An optional
  workspace box (``workspace_low_m``/``workspace_high_m``, base frame) bounds the target.

The base frame for ``ee_delta`` keeps a policy independent of where the robot stands in the
cell, and matches how real controllers take Cartesian jogs. Controllers do not clip actions to
``action_low``/``action_high`` (the env decides that); the robot clips its joint targets to the
joint limits. Non-finite actions raise :class:`RobotError` instead of commanding NaN.

Joint controllers start from the measured joint positions (with the robot's sensor noise), and
every set-point goes through the robot's actuation (its latency), as on a real controller.
Every controller moves the arm's set-point towards its target within the joint speed, per-step,
acceleration and position limits (:meth:`Robot.move_joints_towards`), by the law the
deployment safety layer applies (:mod:`celltwin.core.joint_motion`): a policy trained here
learns only motions that deployment lets through. ``control_period_s`` is the time between
actions those limits are judged over.
"""

from __future__ import annotations

import inspect
import numbers
from typing import Sequence

import numpy as np

from celltwin.robots.errors import RobotError
from celltwin.robots.kinematics import home_ee_pose_in_base
from celltwin.robots.robot import Robot
from celltwin.core.errors import Problem, did_you_mean, one_of


class Controller:
    """Base of every controller: action bounds and the gripper element.

    Attributes:
        mode: the name :func:`make_controller` knows this controller by.
        robot: the robot this controller commands.
        action_dim: length of an action (arm part + 1 gripper element).
        action_low: lower bound of each action element (read-only).
        action_high: upper bound of each action element (read-only).
        action_names: each element's meaning and unit, for manifests and plots.
    """

    mode = ""
    period_s = 0.04  # time between actions [s]; each mode takes control_period_s

    def __init__(self, robot: Robot, arm_low: np.ndarray, arm_high: np.ndarray,
                 arm_names: Sequence[str]):
        self.robot = robot
        self.action_low = np.append(np.asarray(arm_low, dtype=float), -1.0)
        self.action_high = np.append(np.asarray(arm_high, dtype=float), 1.0)
        self.action_low.setflags(write=False)
        self.action_high.setflags(write=False)
        self.action_dim = self.action_low.size
        self.action_names = (*arm_names, "gripper [-1 closed .. 1 open]")
        closed, opened = robot.model.gripper_width_range_m
        self._width_mid = 0.5 * (opened + closed)
        self._width_half_span = 0.5 * (opened - closed)
        # Bound set-points by the deployment safety layer's law (see the module docstring).
        # Off only for scripted robot programs (layout runs of the scripted cycle), which a
        # real controller's own motion planner runs, not the adapter.
        self.limit_motion = True

    def _command(self, q) -> None:
        """Send arm target ``q`` [rad]: within the joint motion limits, or as it is."""
        if self.limit_motion:
            self.robot.move_joints_towards(q, self.period_s)
        else:
            self.robot.command_joint_positions(q)

    def apply(self, action: Sequence[float]) -> None:
        """Command the robot to carry out ``action`` (it moves when the physics steps).

        Raises:
            RobotError: the action has the wrong length or a non-finite element.
        """
        action = np.asarray(action, dtype=float)
        if action.shape != (self.action_dim,) or not np.isfinite(action).all():
            raise RobotError(Problem(
                f"{self.mode} action for robot '{self.robot.name}' is invalid",
                value=action.tolist(), expected=f"{self.action_dim} finite numbers"))
        self._apply_arm(action[:-1])
        gripper = min(max(float(action[-1]), -1.0), 1.0)
        self.robot.command_gripper_width(self._width_mid + gripper * self._width_half_span)

    def _apply_arm(self, arm_action: np.ndarray) -> None:
        raise NotImplementedError


class JointPositionController(Controller):
    """Arm action = absolute joint position targets [rad].

    Each control step the set-point moves towards the action within the robot's joint speed
    and acceleration limits, as a robot controller's trajectory generator would: pybullet's
    position motors know no speed limit, and a far target would otherwise swing the arm at
    speeds no real arm reaches.
    """

    mode = "joint_position"

    def __init__(self, robot: Robot, control_period_s: float = 0.04):
        """Args:
            robot: the robot to command.
            control_period_s: time between actions [s].
        """
        _check_scale("control_period_s", control_period_s)
        super().__init__(robot, robot.arm_lower, robot.arm_upper,
                         [f"{name} [rad]" for name in robot.model.arm_joint_names])
        self.period_s = float(control_period_s)
        speeds = robot.urdf_velocity_limits
        self._max_step_rad = np.where(speeds > 0, speeds * self.period_s, np.inf)

    def _apply_arm(self, arm_action: np.ndarray) -> None:
        if self.limit_motion:
            self.robot.move_joints_towards(arm_action, self.period_s)
            return
        # A scripted program's move: at most the URDF joint speed for one period from the
        # measured joints, as the controller's trajectory generator would.
        current = self.robot.measured_joint_positions()
        step = np.clip(arm_action - current, -self._max_step_rad, self._max_step_rad)
        self.robot.command_joint_positions(current + step)


class JointDeltaController(Controller):
    """Arm action in [-1, 1] = joint position change of ``scale_rad`` times it [rad].

    The change is added to the measured joint positions, so a zero action holds the arm
    where it is (panda-gym's convention).
    """

    mode = "joint_delta"

    def __init__(self, robot: Robot, scale_rad: float = 0.05, control_period_s: float = 0.04):
        """Args:
            scale_rad: joint change for an action element of 1 [rad].
            control_period_s: time between actions [s].
        """
        _check_scale("scale_rad", scale_rad)
        _check_scale("control_period_s", control_period_s)
        self.scale_rad = float(scale_rad)
        self.period_s = float(control_period_s)
        ones = np.ones(robot.dof)
        super().__init__(robot, -ones, ones, [f"d{name} [{self.scale_rad:g} rad]"
                                              for name in robot.model.arm_joint_names])

    def _apply_arm(self, arm_action: np.ndarray) -> None:
        self._command(self.robot.measured_joint_positions() + self.scale_rad * arm_action)


class EEDeltaController(Controller):
    """Arm action in [-1, 1]^3 = TCP displacement of ``scale_m`` times it, in the base frame [m].

    The target is the measured TCP position plus the displacement, clipped into the workspace
    box if one is set, with the orientation held at the home orientation. One
    damped-least-squares IK call on the live robot turns it into joint targets, as panda-gym
    does: fast, and exact enough for small steps because the next action corrects from the
    measured position.

    The workspace box is where a real cell lets the TCP go (its safety fence, the table top it
    must not dig into). panda-gym clips the target height to the table surface in the same
    way; the box is the general form. A target outside it is moved to the nearest point
    inside, so an action pushing outward holds the TCP on the boundary.
    """

    mode = "ee_delta"

    def __init__(self, robot: Robot, scale_m: float = 0.05, ik_damping: float = 1e-2,
                 workspace_low_m: Sequence[float] | None = None,
                 workspace_high_m: Sequence[float] | None = None,
                 control_period_s: float = 0.04):
        """Args:
            robot: the robot to command.
            scale_m: TCP displacement for an action element of 1 [m].
            ik_damping: damped-least-squares damping of each joint [-]; smaller tracks
                better, larger is calmer near singularities.
            workspace_low_m: lowest TCP target (x, y, z) in the robot base frame [m]; ``None``
                (or ``-inf`` on an axis) leaves it unbounded.
            workspace_high_m: highest TCP target (x, y, z) in the robot base frame [m];
                ``None`` (or ``inf`` on an axis) leaves it unbounded.
            control_period_s: time between actions [s].
        """
        _check_scale("scale_m", scale_m)
        _check_scale("control_period_s", control_period_s)
        self.period_s = float(control_period_s)
        _check_scale("ik_damping", ik_damping)
        self.scale_m = float(scale_m)
        self.workspace_low_m = _workspace_bound("workspace_low_m", workspace_low_m, -np.inf)
        self.workspace_high_m = _workspace_bound("workspace_high_m", workspace_high_m, np.inf)
        if np.any(self.workspace_low_m > self.workspace_high_m):
            raise RobotError(Problem("controller workspace is empty: low is above high",
                                     value=(self.workspace_low_m.tolist(),
                                            self.workspace_high_m.tolist()),
                                     expected="workspace_low_m <= workspace_high_m per axis"))
        self._bounded = bool(np.isfinite(self.workspace_low_m).any()
                             or np.isfinite(self.workspace_high_m).any())
        ones = np.ones(3)
        super().__init__(robot, -ones, ones,
                         [f"d{axis} base [{self.scale_m:g} m]" for axis in "xyz"])
        client = robot.client
        home_pos, home_quat = home_ee_pose_in_base(robot.model)
        base_xyz, base_quat = robot.base_xyz.tolist(), robot.base_quat_xyzw.tolist()
        self.target_quat_xyzw = np.array(
            client.multiplyTransforms(base_xyz, base_quat, home_pos, home_quat)[1])
        self._base_rotation = np.array(client.getMatrixFromQuaternion(base_quat)).reshape(3, 3)
        self._base_xyz = robot.base_xyz.copy()
        # Base-frame action to world-frame displacement in one product.
        self._action_to_world = self.scale_m * self._base_rotation
        # IK moves the link that carries the TCP. With the orientation target fixed, its
        # target is the TCP target plus a fixed world offset, with a fixed orientation.
        offset, self._ik_quat = robot.ik_target([0.0, 0.0, 0.0], self.target_quat_xyzw)
        self._tcp_to_ik = np.array(offset)
        self._damping = [float(ik_damping)] * robot.num_movable_joints
        self._ik = client.calculateInverseKinematics
        self._slots = robot.arm_ik_slots

    def _apply_arm(self, arm_action: np.ndarray) -> None:
        robot = self.robot
        target = robot.ee_pose()[0] + self._action_to_world @ arm_action
        if self._bounded:
            in_base = self._base_rotation.T @ (target - self._base_xyz)
            in_base = np.clip(in_base, self.workspace_low_m, self.workspace_high_m)
            target = self._base_rotation @ in_base + self._base_xyz
        solution = self._ik(robot.body_id, robot.ee_link_index,
                            (target + self._tcp_to_ik).tolist(), self._ik_quat,
                            jointDamping=self._damping)
        self._command([solution[i] for i in self._slots])


_CONTROLLERS: dict[str, type[Controller]] = {
    cls.mode: cls for cls in (JointPositionController, JointDeltaController, EEDeltaController)}


def controller_modes() -> list[str]:
    """Return the control modes :func:`make_controller` accepts, sorted."""
    return sorted(_CONTROLLERS)


def make_controller(mode: str, robot: Robot, **kwargs) -> Controller:
    """Build the controller for ``mode`` (``joint_position``, ``joint_delta``, ``ee_delta``).

    Args:
        mode: control mode name.
        robot: the robot to command.
        **kwargs: the mode's options (``control_period_s``, ``scale_rad``, ``scale_m``,
            ``ik_damping``, ``workspace_low_m``, ``workspace_high_m``; every mode takes
            ``control_period_s``).

    Raises:
        RobotError: unknown mode or option.
    """
    try:
        cls = _CONTROLLERS[mode]
    except (KeyError, TypeError):
        raise RobotError(Problem(
            f"unknown control mode '{mode}'" + did_you_mean(mode, _CONTROLLERS),
            value=mode, expected=one_of(_CONTROLLERS))) from None
    accepted = [name for name in inspect.signature(cls.__init__).parameters
                if name not in ("self", "robot")]
    for name in kwargs:
        if name not in accepted:
            raise RobotError(Problem(f"control mode '{mode}' has no option '{name}'"
                                     + did_you_mean(name, accepted), value=name,
                                     expected=one_of(accepted) if accepted else "no options"))
    return cls(robot, **kwargs)


def _workspace_bound(name: str, value: Sequence[float] | None, unbounded: float) -> np.ndarray:
    """Return a workspace corner as a read-only (3,) array; ``None`` is unbounded."""
    try:
        bound = np.full(3, unbounded) if value is None else np.array(value, dtype=float)
    except (TypeError, ValueError):
        bound = np.full(1, np.nan)
    if bound.shape != (3,) or np.isnan(bound).any():
        raise RobotError(Problem(f"controller option {name} is invalid", value=repr(value),
                                 expected="3 numbers (x, y, z) in the base frame [m], or None"))
    bound.setflags(write=False)
    return bound


def _check_scale(name: str, value: float) -> None:
    if not (isinstance(value, numbers.Real) and np.isfinite(value) and value > 0):
        raise RobotError(Problem(f"controller option {name} must be a positive number",
                                 value=value, expected="a finite number > 0"))
