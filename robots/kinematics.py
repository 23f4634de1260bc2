"""Forward and inverse kinematics of one robot model at one base pose, for planning.

:class:`Kinematics` owns a private pybullet DIRECT client that holds nothing but that robot, so
planners, scripted experts and layout checks can try configurations freely without disturbing
a running world. All poses are in the world frame (the base pose given at construction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Sequence

import numpy as np
from celltwin.core.client import direct_client

from celltwin.robots.errors import RobotError
from celltwin.robots.model import RobotModel
from celltwin.robots.robot import Robot
from celltwin.core.errors import Problem

_TWO_PI = 2.0 * math.pi
# Random restarts come from a fixed seed so that the same query always gets the same answer.
_RESTART_SEED = 20240601


@dataclass(frozen=True)
class IKResult:
    """The outcome of an inverse kinematics query.

    Attributes:
        q: best arm configuration found [rad], shape (dof,); meaningful even when unreachable.
        reachable: errors within tolerance and every joint within its limits minus the margin.
        position_error_m: distance from the target to the TCP at ``q`` [m].
        orientation_error_rad: rotation angle from the target to the TCP at ``q`` [rad]
            (0 when no orientation was asked for).
        within_limits: every joint of ``q`` is within its limits minus the margin.
        reason: why the target is not reachable, in words; ``""`` when it is.
    """

    q: np.ndarray = field(repr=False)
    reachable: bool
    position_error_m: float
    orientation_error_rad: float
    within_limits: bool
    reason: str = ""

    def __post_init__(self) -> None:
        self.q.setflags(write=False)  # frozen means frozen: copy q to change it


def yawed(yaw: float, orientation) -> tuple[float, float, float, float]:
    """``orientation`` (xyzw) turned by ``yaw`` about the world z axis: q_z(yaw) * q."""
    s, c = math.sin(0.5 * yaw), math.cos(0.5 * yaw)
    x, y, z, w = orientation
    return (c * x - s * y, c * y + s * x, c * z + s * w, c * w - s * z)


def quaternion_angle(a: Sequence[float], b: Sequence[float]) -> float:
    """Return the rotation angle between two unit quaternions (x, y, z, w) [rad]."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    # atan2 of the relative rotation's vector and scalar parts: acos(|a.b|) loses all
    # precision for small angles (1e-8 of rounding in the dot product is 3e-4 rad).
    vector = a[3] * b[:3] - b[3] * a[:3] - np.cross(a[:3], b[:3])
    return 2.0 * math.atan2(float(np.linalg.norm(vector)), abs(float(np.dot(a, b))))


class Kinematics:
    """FK and IK of ``model`` mounted at a base pose, on a private physics client.

    Use as a context manager, or call :meth:`close`, to release the client.
    """

    def __init__(self, model: RobotModel, base_xyz: Sequence[float] = (0.0, 0.0, 0.0),
                 base_quat_xyzw: Sequence[float] = (0.0, 0.0, 0.0, 1.0)):
        """Load ``model`` at ``base_xyz``/``base_quat_xyzw`` [m, quaternion x y z w]."""
        self.model = model
        self._client = direct_client()
        try:
            self._robot = Robot(self._client, model, "kinematics", base_xyz, base_quat_xyzw)
        except BaseException:
            self._client.disconnect()
            raise
        self._ik_slots = self._robot.arm_ik_slots
        # pybullet's default damping (0.1) makes each solve creep a fraction of the way; with
        # 1e-3 a solve from a nearby start lands within 0.1 mm, measured on all three arms.
        self._ik_damping = [1e-3] * self._robot.num_movable_joints
        self.lower = self._robot.arm_lower.copy()
        self.upper = self._robot.arm_upper.copy()
        self._joint_names = model.arm_joint_names
        self._arm_list = self._robot.arm_joint_indices.tolist()

    # --- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Disconnect the private client; further queries fail."""
        if self._client is not None:
            try:
                self._client.disconnect()
            finally:
                self._client = None

    def __enter__(self) -> Kinematics:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- queries ---------------------------------------------------------------------------

    def fk(self, q: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Return the TCP pose at arm configuration ``q`` [rad]: position [m], quaternion."""
        self._require_open()
        self._set(self._robot.as_joint_vector(q, "joint positions"))
        return self._robot.ee_pose()

    def ik(self, pos: Sequence[float], quat: Sequence[float] | None = None,
           seed: Sequence[float] | None = None, *, position_tol_m: float = 1e-3,
           orientation_tol_rad: float = 1e-2, limit_margin_rad: float = 0.0,
           max_iters: int = 30, restarts: int = 20) -> IKResult:
        """Find an arm configuration that puts the TCP at ``pos`` (and ``quat``).

        Runs pybullet's damped-least-squares IK repeatedly, each time from the configuration
        the previous solve reached, until the TCP is within tolerance. Starts from the home
        pose, then ``seed``, then ``restarts`` random configurations.

        Args:
            pos: target TCP position in the world [m].
            quat: target TCP orientation (x, y, z, w), or ``None`` for position only.
            seed: a configuration to start from [rad] (e.g. the current one).
            position_tol_m: accepted position error [m].
            orientation_tol_rad: accepted orientation error [rad].
            limit_margin_rad: how far inside its limits every joint must stay [rad].
            max_iters: solves per start configuration.
            restarts: random start configurations tried after home and ``seed``; with 20,
                600 random reachable poses of the three arms all solved (8 left 8 unsolved).
        """
        self._require_open()
        target_pos = np.asarray(pos, dtype=float)
        target_quat = None if quat is None else np.asarray(quat, dtype=float)
        if target_pos.shape != (3,) or not np.isfinite(target_pos).all() or (
                target_quat is not None and (target_quat.shape != (4,)
                                             or not np.isfinite(target_quat).all())):
            raise RobotError(Problem("IK target is invalid", value=(target_pos.tolist(), quat),
                                     expected="a finite position [m] and optional quaternion"))
        if target_quat is not None:
            target_quat = target_quat / np.linalg.norm(target_quat)
        lower, upper = self.lower + limit_margin_rad, self.upper - limit_margin_rad
        rng = np.random.default_rng(_RESTART_SEED)
        starts = [np.array(self.model.home, dtype=float)]
        if seed is not None:
            starts.append(self._robot.as_joint_vector(seed, "IK seed"))
        starts += [rng.uniform(lower, upper) for _ in range(restarts)]

        solve = dict(target_pos=target_pos, target_quat=target_quat, lower=lower, upper=upper,
                     position_tol_m=position_tol_m, orientation_tol_rad=orientation_tol_rad,
                     max_iters=max_iters)
        # Each solve is held inside the limits (DLS ignores them), so a solution it finds is
        # valid; the random restarts cover targets whose valid solutions lie far from home.
        best: IKResult | None = None
        for start in starts:
            result = self._solve(start, clip=True, **solve)
            if result.reachable:
                return result
            if best is None or _badness(result, position_tol_m) < _badness(best, position_tol_m):
                best = result
        # Nothing valid found: solve once more without limits to tell "too far" from
        # "blocked by a joint limit", and report the best valid attempt with that reason.
        free = min((self._solve(start, clip=False, **solve) for start in starts[:2]),
                   key=lambda result: _badness(result, position_tol_m))
        if free.reachable:
            return free
        return replace(best, reason=free.reason)

    # --- internals -------------------------------------------------------------------------

    def _require_open(self) -> None:
        if self._client is None:
            raise RobotError(Problem(f"kinematics of {self.model.name} used after close()"))

    def _set(self, q: np.ndarray) -> None:
        body = self._robot.body_id
        for joint, value in zip(self._arm_list, q.tolist()):
            self._client.resetJointState(body, joint, value)

    def _ik_target(self, target_pos: np.ndarray, target_quat: np.ndarray | None) -> list:
        """Return calculateInverseKinematics's target for the link that carries the TCP."""
        if target_quat is not None:
            return list(self._robot.ik_target(target_pos, target_quat))
        # Position only: the link's orientation is free, so the TCP offset is placed with the
        # link's current orientation; each solve of the loop refines it.
        robot = self._robot
        link_quat = self._client.getLinkState(robot.body_id, robot.ee_link_index, 0, 1)[5]
        offset = self._client.multiplyTransforms([0.0, 0.0, 0.0], link_quat,
                                                 robot.ee_offset_xyz.tolist(),
                                                 [0.0, 0.0, 0.0, 1.0])[0]
        return [(target_pos - np.asarray(offset)).tolist()]

    def _solve(self, start, *, clip, target_pos, target_quat, lower, upper, position_tol_m,
               orientation_tol_rad, max_iters) -> IKResult:
        body, ee = self._robot.body_id, self._robot.ee_link_index
        q = start.copy()
        self._set(q)
        for _ in range(max_iters):
            solution = self._client.calculateInverseKinematics(
                body, ee, *self._ik_target(target_pos, target_quat),
                jointDamping=self._ik_damping, maxNumIterations=20, residualThreshold=1e-7)
            q = self._wrap_into_limits(np.array([solution[i] for i in self._ik_slots]))
            if clip:
                q = np.clip(q, lower, upper)
            self._set(q)
            pos_err, ori_err = self._errors(target_pos, target_quat)
            # Converge well below tolerance, so that rounding of q by callers stays inside it.
            if pos_err < 0.1 * position_tol_m and ori_err < 0.1 * orientation_tol_rad:
                break
        pos_err, ori_err = self._errors(target_pos, target_quat)
        outside = np.flatnonzero((q < lower) | (q > upper))
        within = outside.size == 0
        reason = ""
        if pos_err > position_tol_m:
            reason = f"target out of reach by {pos_err:.3f} m"
        elif ori_err > orientation_tol_rad:
            reason = f"orientation unreachable: off by {ori_err:.3f} rad at the target position"
        elif not within:
            j = int(outside[0])
            reason = (f"joint limit on {self._joint_names[j]}: needs {q[j]:.3f} rad, allowed "
                      f"[{lower[j]:.3f}, {upper[j]:.3f}] rad")
        return IKResult(q=q, reachable=not reason, position_error_m=pos_err,
                        orientation_error_rad=ori_err, within_limits=within, reason=reason)

    def _wrap_into_limits(self, q: np.ndarray) -> np.ndarray:
        """Shift joints by whole turns into their limits: DLS IK ignores that angles wrap."""
        turns = np.where(q > self.upper, -np.ceil((q - self.upper) / _TWO_PI),
                         np.where(q < self.lower, np.ceil((self.lower - q) / _TWO_PI), 0.0))
        shifted = q + turns * _TWO_PI
        return np.where((shifted >= self.lower) & (shifted <= self.upper), shifted, q)

    def _errors(self, target_pos, target_quat) -> tuple[float, float]:
        pos, quat = self._robot.ee_pose()
        pos_err = float(np.linalg.norm(pos - target_pos))
        ori_err = 0.0 if target_quat is None else quaternion_angle(quat, target_quat)
        return pos_err, ori_err


def _badness(result: IKResult, position_tol_m: float) -> tuple:
    """Order failed results: fewest broken constraints, then smallest errors."""
    return (result.position_error_m > position_tol_m, not result.within_limits,
            result.position_error_m + 0.1 * result.orientation_error_rad)


@cache
def home_ee_pose_in_base(model: RobotModel) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Return the TCP pose at the home configuration, in the robot's base frame.

    Cached per model: controllers hold the gripper at this orientation, and loading a private
    client for every env would be wasteful.

    Returns:
        position [m] and quaternion (x, y, z, w), as tuples.
    """
    with Kinematics(model) as kinematics:
        pos, quat = kinematics.fk(model.home)
    return tuple(pos.tolist()), tuple(quat.tolist())
