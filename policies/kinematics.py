"""Forward kinematics, TCP velocity and IK steps of a robot arm in numpy alone.

The deployment adapter runs on a controller PC without pybullet, yet its observations need the
TCP position and velocity in the robot base frame (as the env reads them from pybullet), and
``ee_delta`` policies need IK. The bundle's manifest carries the kinematic chain (joint
origins, axes and the TCP offset, from the URDF the twin simulated); :class:`KinematicChain`
evaluates it. Tests check it against pybullet's own FK for every registered robot.

Frames: everything is in the robot base frame (the URDF root link frame), the frame the env
expresses observations in. Units: m, rad, s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

JOINT_TYPES = ("revolute", "continuous", "prismatic", "fixed")


# --- rotations -------------------------------------------------------------------------------


def rpy_to_matrix(rpy: Sequence[float]) -> np.ndarray:
    """URDF roll, pitch, yaw [rad] (fixed axes x, then y, then z) to a rotation matrix."""
    roll, pitch, yaw = (float(v) for v in rpy)
    cr, sr, cp, sp, cy, sy = (math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch),
                              math.cos(yaw), math.sin(yaw))
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def quat_to_matrix(quat_xyzw: Sequence[float]) -> np.ndarray:
    """Unit quaternion (x, y, z, w) to a rotation matrix (normalized first)."""
    x, y, z, w = np.asarray(quat_xyzw, dtype=float) / np.linalg.norm(quat_xyzw)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def matrix_to_quat(rotation: np.ndarray) -> np.ndarray:
    """Rotation matrix to a unit quaternion (x, y, z, w) with w >= 0 (Shepperd's method)."""
    m = np.asarray(rotation, dtype=float)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(1.0 + trace)
        quat = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(max(1.0 + m[i, i] - m[j, j] - m[k, k], 1e-300))
        quat = [0.0, 0.0, 0.0, (m[k, j] - m[j, k]) / s]
        quat[i] = 0.25 * s
        quat[j] = (m[j, i] + m[i, j]) / s
        quat[k] = (m[k, i] + m[i, k]) / s
    quat = np.array(quat)
    quat /= np.linalg.norm(quat)
    return -quat if quat[3] < 0 else quat


def rotation_vector(rotation: np.ndarray) -> np.ndarray:
    """Axis times angle [rad] of a rotation matrix (the log map), robust near 0 and pi."""
    x, y, z, w = matrix_to_quat(rotation)
    sine = math.sqrt(x * x + y * y + z * z)
    if sine < 1e-12:
        return 2.0 * np.array([x, y, z])  # small angle: 2 asin(s) / s -> 2
    angle = 2.0 * math.atan2(sine, w)
    return (angle / sine) * np.array([x, y, z])


# --- the chain -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainJoint:
    """One joint on the way from the base link to the link carrying the TCP.

    Attributes:
        name: URDF joint name.
        type: ``revolute``, ``continuous``, ``prismatic`` or ``fixed``.
        origin_xyz: joint frame position in the parent link frame [m].
        origin_rpy: joint frame orientation in the parent link frame, URDF rpy [rad].
        axis: joint axis in the joint frame (unit vector; ignored for ``fixed``).
    """

    name: str
    type: str
    origin_xyz: tuple[float, float, float]
    origin_rpy: tuple[float, float, float]
    axis: tuple[float, float, float] = (0.0, 0.0, 1.0)

    def as_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "origin_xyz": list(self.origin_xyz),
                "origin_rpy": list(self.origin_rpy), "axis": list(self.axis)}


class KinematicChain:
    """FK, Jacobian and damped-least-squares IK of one serial chain, base frame to TCP.

    Args:
        joints: the chain's joints from the base link outwards (fixed ones included).
        joint_names: the actuated joints in the order of every joint array (the controller's
            order); each must be a moving joint of the chain, and every moving joint of the
            chain must be named here.
        tcp_xyz: TCP position in the frame of the chain's last link [m].
        tcp_quat_xyzw: TCP orientation in that frame, quaternion (x, y, z, w).

    Raises:
        ValueError: a joint of unknown type, a zero axis, or joint names that do not match
            the chain's moving joints (the bundle loader turns this into a BundleError).
    """

    def __init__(self, joints: Sequence[ChainJoint], joint_names: Sequence[str],
                 tcp_xyz: Sequence[float] = (0.0, 0.0, 0.0),
                 tcp_quat_xyzw: Sequence[float] = (0.0, 0.0, 0.0, 1.0)):
        self.joints = tuple(joints)
        self.joint_names = tuple(joint_names)
        moving = [j.name for j in self.joints if j.type != "fixed"]
        if sorted(moving) != sorted(self.joint_names) or len(set(moving)) != len(moving):
            raise ValueError(f"chain's moving joints {moving} differ from joint names "
                             f"{list(self.joint_names)}")
        self.dof = len(self.joint_names)
        # Each joint as a homogeneous origin transform; the motion is added per call, for all
        # joints at once (Rodrigues: R_origin (I + sin q K + (1 - cos q) K^2)), and only the
        # chaining of the local transforms is a Python loop.
        origins, rev_steps, rev_slots, rok, rok2 = [], [], [], [], []
        pri_steps, pri_slots, ro_axis, moving_steps, moving_slots, moving_axes = [], [], [], [], [], []
        for index, joint in enumerate(self.joints):
            if joint.type not in JOINT_TYPES:
                raise ValueError(f"joint '{joint.name}' has unknown type '{joint.type}'")
            axis = np.asarray(joint.axis, dtype=float)
            norm = float(np.linalg.norm(axis))
            if joint.type != "fixed" and not norm > 0:
                raise ValueError(f"joint '{joint.name}' has a zero axis")
            axis = axis / norm if norm > 0 else axis
            origin = np.eye(4)
            origin[:3, :3] = rpy_to_matrix(joint.origin_rpy)
            origin[:3, 3] = joint.origin_xyz
            origins.append(origin)
            if joint.type == "fixed":
                continue
            slot = self.joint_names.index(joint.name)
            moving_steps.append(index)
            moving_slots.append(slot)
            moving_axes.append(axis)
            if joint.type == "prismatic":
                pri_steps.append(index)
                pri_slots.append(slot)
                ro_axis.append(origin[:3, :3] @ axis)
            else:
                cross = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]],
                                  [-axis[1], axis[0], 0.0]])
                rev_steps.append(index)
                rev_slots.append(slot)
                rok.append(origin[:3, :3] @ cross)
                rok2.append(origin[:3, :3] @ cross @ cross)
        self._origins = np.array(origins).reshape(-1, 4, 4)
        self._rev_steps, self._rev_slots = np.array(rev_steps, dtype=int), np.array(rev_slots, dtype=int)
        self._rok, self._rok2 = np.array(rok).reshape(-1, 3, 3), np.array(rok2).reshape(-1, 3, 3)
        self._pri_steps, self._pri_slots = np.array(pri_steps, dtype=int), np.array(pri_slots, dtype=int)
        self._ro_axis = np.array(ro_axis).reshape(-1, 3)
        self._moving_steps = np.array(moving_steps, dtype=int)
        self._moving_slots = np.array(moving_slots, dtype=int)
        self._moving_axes = np.array(moving_axes).reshape(-1, 3)
        self._prismatic = np.zeros(self.dof, dtype=bool)  # by slot (joint_names order)
        self._prismatic[self._pri_slots] = True
        self._revolute = ~self._prismatic
        self.tcp_xyz = np.asarray(tcp_xyz, dtype=float)
        self.tcp_rotation = quat_to_matrix(tcp_quat_xyzw)
        self._tcp = np.eye(4)
        self._tcp[:3, :3] = self.tcp_rotation
        self._tcp[:3, 3] = self.tcp_xyz
        self._cumulative = np.empty_like(self._origins)

    # --- forward kinematics ----------------------------------------------------------------

    def _walk(self, q: np.ndarray, want_axes: bool):
        """Return the TCP pose and, if asked, each moving joint's axis and origin (base frame).

        Axes and origins are in joint-name order; a revolute joint's axis is the same before
        and after its own rotation, so the frame after the motion serves.
        """
        local = self._origins.copy()
        if self._rev_steps.size:
            angles = q[self._rev_slots]
            local[self._rev_steps, :3, :3] += (np.sin(angles)[:, None, None] * self._rok
                                               + (1.0 - np.cos(angles))[:, None, None] * self._rok2)
        if self._pri_steps.size:
            local[self._pri_steps, :3, 3] += self._ro_axis * q[self._pri_slots][:, None]
        cumulative = self._cumulative
        cumulative[0] = local[0]
        for index in range(1, len(local)):
            np.matmul(cumulative[index - 1], local[index], out=cumulative[index])
        tcp = cumulative[-1] @ self._tcp
        if not want_axes:
            return tcp[:3, 3], tcp[:3, :3], None, None
        frames = cumulative[self._moving_steps]
        axes = np.empty((self.dof, 3))
        origins = np.empty((self.dof, 3))
        axes[self._moving_slots] = np.einsum("nij,nj->ni", frames[:, :3, :3], self._moving_axes)
        origins[self._moving_slots] = frames[:, :3, 3]
        return tcp[:3, 3], tcp[:3, :3], axes, origins

    def fk(self, q: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """TCP position [m] and rotation matrix in the base frame at joint positions ``q`` [rad]."""
        position, rotation, _, _ = self._walk(self._vector(q), want_axes=False)
        return position, rotation

    def jacobian(self, q: Sequence[float]) -> np.ndarray:
        """Geometric Jacobian of the TCP in the base frame, shape (6, dof): linear rows first.

        Column j maps joint j's speed [rad/s or m/s] to TCP linear [m/s] and angular [rad/s]
        velocity.
        """
        return self.fk_and_jacobian(q)[2]

    def fk_and_jacobian(self, q: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """TCP position, rotation and Jacobian in one pass (the adapter needs all three)."""
        position, rotation, axes, origins = self._walk(self._vector(q), want_axes=True)
        lever = position - origins
        jac = np.zeros((6, self.dof))
        # axis x lever, written out: numpy's cross costs more than the arithmetic here.
        jac[0] = axes[:, 1] * lever[:, 2] - axes[:, 2] * lever[:, 1]
        jac[1] = axes[:, 2] * lever[:, 0] - axes[:, 0] * lever[:, 2]
        jac[2] = axes[:, 0] * lever[:, 1] - axes[:, 1] * lever[:, 0]
        jac[3:] = axes.T
        if self._pri_slots.size:
            jac[:3, self._prismatic] = axes[self._prismatic].T
            jac[3:, self._prismatic] = 0.0
        return position, rotation, jac

    def tcp_velocity(self, q: Sequence[float], qdot: Sequence[float]) -> np.ndarray:
        """TCP linear velocity in the base frame [m/s]: the Jacobian's linear rows times qdot."""
        return self.jacobian(q)[:3] @ self._vector(qdot)

    def reach_weights(self, max_abs_q: Sequence[float] | None = None) -> np.ndarray:
        """Upper bound on each joint's lever arm to the TCP [m] (1 for prismatic joints).

        The TCP moves at most ``sum(weights * |dq|)`` for a joint-space step ``dq``: a revolute
        joint moves it by its angle times the TCP's distance from the axis, which is at most
        the sum of the link offsets (and prismatic strokes) between the joint and the TCP. The
        safety layer bounds TCP speed with it, so the bound holds in every configuration
        without evaluating FK.

        Args:
            max_abs_q: largest |position| of each joint [m for prismatic joints], for the
                strokes of prismatic joints further out; ``None`` when there are none.
        """
        weights = np.zeros(self.dof)
        beyond = float(np.linalg.norm(self.tcp_xyz))
        for joint in reversed(self.joints):
            if joint.type == "prismatic":
                slot = self.joint_names.index(joint.name)
                weights[slot] = 1.0
                if max_abs_q is None:
                    raise ValueError("a prismatic joint needs max_abs_q for the reach bound")
                beyond += abs(float(max_abs_q[slot]))
            elif joint.type != "fixed":
                weights[self.joint_names.index(joint.name)] = beyond
            beyond += float(np.linalg.norm(joint.origin_xyz))
        return weights

    # --- inverse kinematics ----------------------------------------------------------------

    def ik(self, q_start: Sequence[float], target_position: Sequence[float],
           target_rotation: np.ndarray | None = None, *, damping: float = 1e-2,
           iterations: int = 20, position_tol_m: float = 1e-5,
           orientation_tol_rad: float = 1e-4, orientation_weight_m: float = 0.1,
           lower: np.ndarray | None = None, upper: np.ndarray | None = None) -> np.ndarray:
        """Damped-least-squares IK from ``q_start`` towards a TCP target (base frame).

        What ``ee_delta`` needs: the target is a few centimetres from the current TCP, so a
        handful of DLS iterations from the measured configuration land on it, as pybullet's
        ``calculateInverseKinematics`` does in the twin. Joints are kept inside
        ``lower``/``upper`` after every iteration.

        Args:
            q_start: configuration to start from [rad], usually the measured one.
            target_position: TCP target in the base frame [m].
            target_rotation: TCP target orientation (3x3) or ``None`` for position only.
            damping: DLS damping [m]; larger is calmer near singularities.
            iterations: at most this many DLS iterations.
            position_tol_m: stop when the TCP is this close to the target [m].
            orientation_tol_rad: and its orientation this close [rad].
            orientation_weight_m: how many metres of position error one radian of orientation
                error counts as.
            lower, upper: joint limits [rad] (or ``None``).

        Returns:
            the joint positions [rad] reached (finite; the start when the target is not finite).
        """
        q = self._vector(q_start).copy()
        target = np.asarray(target_position, dtype=float)
        if not np.isfinite(target).all() or not np.isfinite(q).all():
            return q
        damping2 = float(damping) ** 2
        rows = 3 if target_rotation is None else 6
        for _ in range(int(iterations)):
            position, rotation, jac = self.fk_and_jacobian(q)
            error = np.empty(rows)
            error[:3] = target - position
            position_error = float(np.linalg.norm(error[:3]))
            if rows == 6:
                rot_error = rotation_vector(target_rotation @ rotation.T)
                error[3:] = orientation_weight_m * rot_error
                done = (position_error < position_tol_m
                        and float(np.linalg.norm(rot_error)) < orientation_tol_rad)
                jac = np.vstack([jac[:3], orientation_weight_m * jac[3:]])
            else:
                done = position_error < position_tol_m
                jac = jac[:3]
            if done:
                break
            step = jac.T @ np.linalg.solve(jac @ jac.T + damping2 * np.eye(rows), error)
            q = q + step
            if lower is not None and upper is not None:
                q = np.clip(q, lower, upper)
        return q

    # --- helpers ---------------------------------------------------------------------------

    def _vector(self, values: Sequence[float]) -> np.ndarray:
        vector = np.asarray(values, dtype=float)
        if vector.shape != (self.dof,):
            raise ValueError(f"expected {self.dof} joint values, got shape {vector.shape}")
        return vector

    @classmethod
    def from_manifest(cls, kinematics: Mapping, joint_names: Sequence[str]) -> KinematicChain:
        """Build the chain from a manifest's ``robot.kinematics`` section (already validated)."""
        joints = [ChainJoint(j["name"], j["type"], tuple(j["origin_xyz"]), tuple(j["origin_rpy"]),
                             tuple(j.get("axis", (0.0, 0.0, 1.0)))) for j in kinematics["joints"]]
        tcp = kinematics["tcp_offset"]
        return cls(joints, joint_names, tcp["xyz"], tcp["quat_xyzw"])
