"""Is this robot model fit for a twin? Joints and limits, FK at home, IK round trips over the
workspace, self-collision at home, and a picture of the reach envelope.

What ``celltwin robot check`` prints and draws. The round trips sample arm configurations
uniformly within the joint limits, take the TCP pose there (FK) as a target, and ask the IK
the experts and layout checks use (:meth:`celltwin.robots.kinematics.Kinematics.ik`, from the
home pose, then random restarts) to reach it: a target found within the tolerances with every
joint within its limits is a success, and the errors are the distances at the answer.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pybullet

from celltwin.core.atomic import atomic_write_bytes
from celltwin.core.client import direct_client, quiet_c_output
from celltwin.robots.kinematics import Kinematics
from celltwin.robots.model import RobotModel

# How far the tool axis at home may lean from straight down and still "point down" [deg].
_DOWN_TOLERANCE_DEG = 5.0
# Contacts deeper than this are real, not two surfaces that just meet at a joint [m].
_CONTACT_DEPTH_M = 1e-4


@dataclass(frozen=True)
class JointReport:
    """One arm joint: its limits [rad], home position [rad], effort [N m], velocity [rad/s]."""

    name: str
    lower: float
    upper: float
    home: float
    effort: float
    velocity: float


@dataclass
class RobotCheck:
    """What :func:`check_robot` found.

    Attributes:
        model: the model's name.
        source: its robot file, or ``None`` for a registry model.
        joints: the arm joints, base to wrist.
        tcp_home_xyz: TCP position at home in the base frame [m].
        tcp_home_quat_xyzw: TCP orientation at home in the base frame, quaternion.
        tool_axis_home: the TCP's z axis at home in the base frame (unit vector).
        ik_samples: IK round trips tried.
        ik_successes: round trips within the tolerances and the joint limits.
        worst_position_error_m: largest position error of a round trip [m].
        worst_orientation_error_rad: largest orientation error of a round trip [rad].
        worst_success_position_error_m: largest position error of a successful one [m].
        position_tol_m: the position tolerance of a success [m].
        orientation_tol_rad: the orientation tolerance of a success [rad].
        self_collisions: pairs of links in contact at home (neighbours not counted).
        reach_points_m: TCP positions of the sampled configurations, base frame [m], (N, 3).
        ik_ok: for each of the first ``ik_samples`` reach points, whether its round trip
            succeeded.
    """

    model: str
    source: str | None
    joints: list[JointReport]
    tcp_home_xyz: tuple[float, ...]
    tcp_home_quat_xyzw: tuple[float, ...]
    tool_axis_home: tuple[float, ...]
    ik_samples: int
    ik_successes: int
    worst_position_error_m: float
    worst_orientation_error_rad: float
    worst_success_position_error_m: float
    position_tol_m: float
    orientation_tol_rad: float
    self_collisions: list[tuple[str, str]]
    reach_points_m: np.ndarray = field(repr=False)
    ik_ok: np.ndarray = field(repr=False)

    @property
    def ik_success_share(self) -> float:
        """Share of the IK round trips that succeeded [-]."""
        return self.ik_successes / self.ik_samples if self.ik_samples else 0.0

    @property
    def points_down_at_home(self) -> bool:
        """Whether the tool axis points straight down at home (what picking from above needs)."""
        return self.tool_axis_home[2] < -math.cos(math.radians(_DOWN_TOLERANCE_DEG))

    def ok(self, min_ik_success: float) -> bool:
        """No self-collision at home and at least ``min_ik_success`` of the round trips."""
        return not self.self_collisions and self.ik_success_share >= min_ik_success

    def to_text(self) -> str:
        """The report for people: one block per question."""
        lines = [f"robot '{self.model}'" + (f" ({self.source})" if self.source else "")
                 + f": {len(self.joints)} arm joints",
                 f"  {'joint':<22}{'lower':>11}{'upper':>11}{'home':>11}{'effort':>11}"
                 f"{'velocity':>11}",
                 f"  {'':<22}{'[deg]':>11}{'[deg]':>11}{'[deg]':>11}{'[N m]':>11}{'[deg/s]':>11}"]
        for joint in self.joints:
            numbers = [math.degrees(joint.lower), math.degrees(joint.upper),
                       math.degrees(joint.home), joint.effort, math.degrees(joint.velocity)]
            lines.append(f"  {joint.name:<22}" + "".join(f"{v:>11.1f}" for v in numbers))
        x, y, z = self.tcp_home_xyz
        axis = ", ".join(f"{value:+.2f}" for value in self.tool_axis_home)
        lines += [f"FK at home (base frame): TCP at ({x:.4f}, {y:.4f}, {z:.4f}) m, quaternion "
                  f"(x, y, z, w) ({', '.join(f'{v:.4f}' for v in self.tcp_home_quat_xyzw)})",
                  f"  tool axis ({axis}): "
                  + ("points down" if self.points_down_at_home else
                     "does not point down (tasks that pick from above start from home)"),
                  f"IK round trips: {self.ik_successes}/{self.ik_samples} "
                  f"({100 * self.ik_success_share:.1f}%) within "
                  f"{self.position_tol_m * 1000:g} mm and "
                  f"{math.degrees(self.orientation_tol_rad):.2g} deg; worst error "
                  f"{self.worst_position_error_m * 1000:.3f} mm, "
                  f"{math.degrees(self.worst_orientation_error_rad):.3f} deg (of the "
                  f"successes: {self.worst_success_position_error_m * 1000:.3f} mm)"]
        if self.self_collisions:
            pairs = ", ".join(f"{a} x {b}" for a, b in self.self_collisions)
            lines.append(f"self-collision at home: {pairs}")
        else:
            lines.append("self-collision at home: none")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """The report for machines (JSON-ready)."""
        return {
            "model": self.model, "source": self.source,
            "joints": [vars(joint) for joint in self.joints],
            "tcp_home_xyz_m": list(self.tcp_home_xyz),
            "tcp_home_quat_xyzw": list(self.tcp_home_quat_xyzw),
            "points_down_at_home": self.points_down_at_home,
            "ik": {"samples": self.ik_samples, "successes": self.ik_successes,
                   "success_share": self.ik_success_share,
                   "worst_position_error_m": self.worst_position_error_m,
                   "worst_orientation_error_rad": self.worst_orientation_error_rad,
                   "worst_success_position_error_m": self.worst_success_position_error_m,
                   "position_tol_m": self.position_tol_m,
                   "orientation_tol_rad": self.orientation_tol_rad},
            "self_collisions": [list(pair) for pair in self.self_collisions],
        }


def check_robot(model: RobotModel, *, ik_samples: int = 200, reach_samples: int = 2000,
                seed: int = 0, position_tol_m: float = 1e-3,
                orientation_tol_rad: float = 1e-2) -> RobotCheck:
    """Run every check on ``model`` mounted at the origin.

    Args:
        model: the robot model.
        ik_samples: IK round trips [-].
        reach_samples: configurations whose TCP positions draw the reach envelope [-]
            (the round trips' targets are the first of them).
        seed: seed of the configuration sampling.
        position_tol_m: a round trip within this distance succeeds [m].
        orientation_tol_rad: ... and within this rotation [rad].
    """
    rng = np.random.default_rng(seed)
    with Kinematics(model) as kinematics:
        lower, upper = kinematics.lower, kinematics.upper
        configs = rng.uniform(lower, upper, size=(max(reach_samples, ik_samples), len(lower)))
        poses = [kinematics.fk(q) for q in configs]
        results = [kinematics.ik(pos, quat, position_tol_m=position_tol_m,
                                 orientation_tol_rad=orientation_tol_rad)
                   for pos, quat in poses[:ik_samples]]
        tcp_pos, tcp_quat = kinematics.fk(model.home)
        effort, velocity = _effort_and_velocity(model)
    axis = _rotate(tcp_quat, (0.0, 0.0, 1.0))
    ok = np.array([result.reachable for result in results], dtype=bool)
    return RobotCheck(
        model=model.name, source=model.source,
        joints=[JointReport(name, float(lo), float(hi), float(home), eff, vel)
                for name, lo, hi, home, eff, vel in zip(model.arm_joint_names, lower, upper,
                                                         model.home, effort, velocity)],
        tcp_home_xyz=tuple(tcp_pos.tolist()), tcp_home_quat_xyzw=tuple(tcp_quat.tolist()),
        tool_axis_home=axis, ik_samples=len(results), ik_successes=int(ok.sum()),
        worst_position_error_m=max((r.position_error_m for r in results), default=0.0),
        worst_orientation_error_rad=max((r.orientation_error_rad for r in results), default=0.0),
        worst_success_position_error_m=max((r.position_error_m for r in results if r.reachable),
                                           default=0.0),
        position_tol_m=position_tol_m, orientation_tol_rad=orientation_tol_rad,
        self_collisions=self_collisions_at_home(model),
        reach_points_m=np.array([pos for pos, _ in poses]), ik_ok=ok)


def self_collisions_at_home(model: RobotModel) -> list[tuple[str, str]]:
    """Pairs of links in contact at the home pose, gripper open; a link and the one that
    carries it are neighbours at a joint and not counted (links held by fixed joints are one
    link, as celltwin simulates them: :meth:`RobotModel.merged_urdf`)."""
    client = direct_client()
    try:
        with quiet_c_output():
            body = client.loadURDF(str(model.merged_urdf().path), useFixedBase=True,
                                   flags=pybullet.URDF_USE_SELF_COLLISION
                                   | pybullet.URDF_USE_INERTIA_FROM_FILE)
        names = {-1: client.getBodyInfo(body)[0].decode()}
        joints = {}
        for index in range(client.getNumJoints(body)):
            info = client.getJointInfo(body, index)
            names[index], joints[info[1].decode()] = info[12].decode(), index
        for name, value in zip(model.arm_joint_names, model.home):
            client.resetJointState(body, joints[name], value)
        opening = model.gripper_width_range_m[1] / 2
        for name in model.gripper_joint_names:
            if name in joints:
                client.resetJointState(body, joints[name], opening)
        client.performCollisionDetection()
        pairs = {tuple(sorted((names[contact[3]], names[contact[4]])))
                 for contact in client.getContactPoints(body, body)
                 if contact[8] < -_CONTACT_DEPTH_M and contact[3] != contact[4]}
        return sorted(pairs)
    finally:
        client.disconnect()


def write_reach_png(report: RobotCheck, path: str | Path) -> Path:
    """Draw the reach envelope, top view and side view, and write it as a PNG (atomically).

    Grey: TCP positions of the sampled configurations; green and red: the IK round trips'
    targets that succeeded and failed; the star is the TCP at home, the cross the base.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend, no GUI

    points, ok = report.reach_points_m, report.ik_ok
    targets = points[:len(ok)]
    figure = Figure(figsize=(11, 5.2), dpi=100)
    for axes, (u, v), title in zip(figure.subplots(1, 2), ((0, 1), (0, 2)),
                                   ("top view (x, y)", "side view (x, z)")):
        axes.scatter(points[:, u], points[:, v], s=3, color="0.7", label="reach samples")
        axes.scatter(targets[ok, u], targets[ok, v], s=9, color="tab:green",
                     label="IK round trip ok")
        axes.scatter(targets[~ok, u], targets[~ok, v], s=16, color="tab:red",
                     label="IK round trip failed")
        axes.plot(report.tcp_home_xyz[u], report.tcp_home_xyz[v], "*", color="tab:blue",
                  markersize=14, label="TCP at home")
        axes.plot(0.0, 0.0, "+", color="black", markersize=14, label="base")
        axes.set_aspect("equal")
        axes.set_xlabel(f"{'xyz'[u]} [m]")
        axes.set_ylabel(f"{'xyz'[v]} [m]")
        axes.set_title(title, fontsize=10)
        axes.grid(True, linewidth=0.3)
    figure.axes[0].legend(fontsize=7, loc="lower left")
    figure.suptitle(f"{report.model}: reach envelope, IK {report.ik_successes}/"
                    f"{report.ik_samples} within {report.position_tol_m * 1000:g} mm",
                    fontsize=11)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())


def _effort_and_velocity(model: RobotModel) -> tuple[list[float], list[float]]:
    """The arm joints' effort [N m] and velocity [rad/s] limits, as pybullet read them."""
    client = direct_client()
    try:
        with quiet_c_output():
            body = client.loadURDF(str(model.merged_urdf().path), useFixedBase=True)
        infos = {}
        for index in range(client.getNumJoints(body)):
            info = client.getJointInfo(body, index)
            infos[info[1].decode()] = (float(info[10]), float(info[11]))
        return ([infos[name][0] for name in model.arm_joint_names],
                [infos[name][1] for name in model.arm_joint_names])
    finally:
        client.disconnect()


def _rotate(quat_xyzw, vector) -> tuple[float, float, float]:
    x, y, z, w = quat_xyzw
    u = np.array([x, y, z])
    v = np.asarray(vector, dtype=float)
    rotated = v + 2.0 * np.cross(u, np.cross(u, v) + w * v)
    return tuple(float(value) for value in rotated)


__all__ = ["JointReport", "RobotCheck", "check_robot", "self_collisions_at_home",
           "write_reach_png"]
