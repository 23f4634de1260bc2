"""A robot description whose gripper is held closed: the fingers become one rigid piece.

Tasks that never open the gripper (Reach, Push) hold it closed, as panda-gym does with its
``block_gripper``. A real Franka hand at rest is held by a self-locking spindle, i.e. rigidly,
whereas two position-controlled finger joints in pybullet are two more degrees of freedom,
two more motor rows and two joint-limit rows for the solver on every substep: about 30% of
the Panda's physics time in ``celltwin/Reach-v0`` (``benchmarks/env_speed.py``: 806 vs
553-562 us of ``stepSimulation`` per 25 Hz step).

So the finger joints are welded at the closed opening (fixed joints at that joint position)
and every finger after the first is hung from the first one. The fingers keep their own
contact parameters (the Panda's rubber pads: friction 1.0, soft contact), which pybullet keeps
per link, so :mod:`celltwin.robots.fixed_links` merges the fingers into one link of their own
instead of into the hand. Mass, inertia and collision shapes are unchanged.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from celltwin.robots.errors import RobotError
from celltwin.robots.fixed_links import origin_matrix, set_origin
from celltwin.robots.urdf import absolutize_meshes, parse_urdf, read_urdf
from celltwin.core.resources import cache_dir
from celltwin.core.atomic import atomic_write_text
from celltwin.core.errors import Problem

# Bump when the written file's content changes for the same inputs (this module's welding or
# fixed_links.set_origin's formatting).
_HOLDER_VERSION = "2"
_MOVING = ("prismatic", "revolute", "continuous")


def hold_gripper_closed(name: str, urdf: Path, finger_joints: Sequence[str],
                        width_m: float) -> Path:
    """Return ``urdf`` with its finger joints welded at an opening of ``width_m``, cached.

    Each finger joint is set to half the width, clipped to its URDF limits, as
    :meth:`celltwin.robots.robot.Robot.command_gripper_width` would command it.

    Args:
        name: robot model name; the first part of the cached file's name.
        urdf: the full description (arm + gripper).
        finger_joints: the gripper's finger joints.
        width_m: the opening to hold [m].

    Raises:
        RobotError: a finger joint is missing or does not move.
    """
    text = read_urdf(urdf)
    digest = hashlib.sha256("\0".join([_HOLDER_VERSION, str(urdf.resolve()), text,
                                       *finger_joints, repr(float(width_m))])
                            .encode("utf-8")).hexdigest()[:16]
    target = cache_dir("robots") / f"{name}-held-{digest}.urdf"
    if target.exists():
        return target
    robot = parse_urdf(text, urdf)
    joints = {joint.get("name"): joint for joint in robot.findall("joint")}
    welded = []
    for finger in finger_joints:
        joint = joints.get(finger)
        if joint is None or joint.get("type") not in _MOVING:
            raise RobotError(Problem(f"finger joint '{finger}' is missing or does not move",
                                     file=str(urdf), expected="a prismatic or revolute joint"))
        welded.append((joint, _weld(joint, 0.5 * float(width_m))))
    _hang_from_first(welded)
    absolutize_meshes(robot, urdf.parent)
    ET.indent(robot)
    atomic_write_text(target, f"<?xml version=\"1.0\"?>\n<!-- {urdf} with its gripper held "
                      f"closed at {width_m!r} m by celltwin; do not edit, it is rebuilt from it "
                      "-->\n" + ET.tostring(robot, encoding="unicode") + "\n")
    return target


def _weld(joint: ET.Element, position: float) -> np.ndarray:
    """Make ``joint`` fixed at ``position`` (clipped to its limits); return its new origin."""
    limit = joint.find("limit")
    if limit is not None and joint.get("type") != "continuous":
        # URDF's defaults; pybullet reads lower > upper as "no limits" and so does this.
        lower, upper = float(limit.get("lower", "0")), float(limit.get("upper", "0"))
        if lower <= upper:
            position = min(max(position, lower), upper)
    axis_element = joint.find("axis")
    axis = np.array([float(v) for v in (axis_element.get("xyz", "1 0 0")
                                         if axis_element is not None else "1 0 0").split()])
    motion = np.eye(4)
    if joint.get("type") == "prismatic":
        motion[:3, 3] = axis * position  # pybullet moves along the axis as written, unscaled
    else:
        motion[:3, :3] = Rotation.from_rotvec(axis / np.linalg.norm(axis) * position).as_matrix()
    origin = origin_matrix(joint) @ motion
    joint.set("type", "fixed")
    for tag in ("axis", "limit", "mimic", "dynamics", "calibration", "safety_controller"):
        for element in joint.findall(tag):
            joint.remove(element)
    set_origin(joint, origin)
    return origin


def _hang_from_first(welded: list[tuple[ET.Element, np.ndarray]]) -> None:
    """Re-parent every finger that shares the first finger's parent onto the first finger.

    Fixed-joint siblings cannot be merged into each other; a fixed chain hand -> finger ->
    finger can, so both fingers end up as one link.
    """
    if len(welded) < 2:
        return
    first, first_origin = welded[0]
    parent = first.find("parent").get("link")
    child = first.find("child").get("link")
    to_first = np.linalg.inv(first_origin)
    for joint, origin in welded[1:]:
        if joint.find("parent").get("link") == parent:
            joint.find("parent").set("link", child)
            set_origin(joint, to_first @ origin)
