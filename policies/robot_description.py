"""The robot section of a bundle manifest, read from the URDF the twin simulated.

Export side only (it reads the robot registry, which needs pybullet_data). The deployment
adapter gets everything it needs to know about the arm from the manifest: joint names and
limits for the safety layer, and the kinematic chain from the base link to the TCP for numpy
FK (:mod:`celltwin.policies.kinematics`). The chain comes from the merged description
(:meth:`celltwin.robots.registry.RobotModel.merged_urdf`), the very file pybullet loads, so the FK
the adapter computes is the FK the policy was trained with.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Sequence

from celltwin.policies.errors import ExportError
from celltwin.policies.kinematics import ChainJoint
from celltwin.core.errors import Problem


def describe_robot(model, base_xyz: Sequence[float] = (0.0, 0.0, 0.0),
                   base_quat_xyzw: Sequence[float] = (0.0, 0.0, 0.0, 1.0)) -> dict:
    """Return the manifest's ``robot`` section for a :class:`celltwin.robots.registry.RobotModel`.

    Args:
        model: the registered robot model the policy was trained on.
        base_xyz: where the robot's base stood in the training cell [m] (for people and for
            calibration; observations and commands are all in the base frame).
        base_quat_xyzw: its orientation there, quaternion (x, y, z, w).

    Raises:
        ExportError: the description has an arm joint without finite position limits or the
            arm joints are not all on the chain from the base to the TCP.
    """
    merged = model.merged_urdf()
    path = merged.path
    root = ET.parse(path).getroot()
    joints = {joint.get("name"): joint for joint in root.findall("joint")}
    parent_joint = {joint.find("child").get("link"): joint for joint in root.findall("joint")}

    tcp = merged.merged.get(model.ee_link)
    carrier = tcp.link if tcp is not None else model.ee_link
    chain: list[ChainJoint] = []
    link = carrier
    while link in parent_joint:
        joint = parent_joint[link]
        chain.append(_chain_joint(joint))
        link = joint.find("parent").get("link")
    chain.reverse()
    base_link = link

    moving = [joint.name for joint in chain if joint.type != "fixed"]
    if sorted(moving) != sorted(model.arm_joint_names):
        raise ExportError(Problem(
            f"the chain from '{base_link}' to the TCP of {model.name} moves joints {moving}",
            file=str(path), value=moving,
            expected=f"exactly the arm joints {list(model.arm_joint_names)}"))

    lower, upper, velocity, effort = [], [], [], []
    for name in model.arm_joint_names:
        limit = joints[name].find("limit")
        values = {key: _float(limit, key) for key in ("lower", "upper", "velocity", "effort")} \
            if limit is not None else {}
        if not all(math.isfinite(values.get(key, math.nan)) for key in ("lower", "upper")):
            raise ExportError(Problem(f"joint '{name}' of {model.name} has no finite position "
                                      "limits", file=str(path), path=f"joint[{name}].limit",
                                      expected="lower and upper [rad]"))
        lower.append(values["lower"])
        upper.append(values["upper"])
        velocity.append(values.get("velocity", math.nan))
        effort.append(values.get("effort", math.nan))
    for what, numbers in (("velocity", velocity), ("effort", effort)):
        bad = [name for name, value in zip(model.arm_joint_names, numbers)
               if not (math.isfinite(value) and value > 0)]
        if bad:
            raise ExportError(Problem(f"joints {bad} of {model.name} have no positive {what} "
                                      "limit", file=str(path), expected=f"a {what} limit > 0"))

    return {
        "model": model.name,
        "joint_names": list(model.arm_joint_names),
        "home_rad": list(model.home),
        "joint_limits": {"position_lower_rad": lower, "position_upper_rad": upper,
                         "velocity_rad_s": velocity, "effort_nm": effort},
        "gripper": {"joint_names": list(model.gripper_joint_names),
                    "width_range_m": list(model.gripper_width_range_m)},
        "kinematics": {
            "base_link": base_link,
            "tcp_link": model.ee_link,
            "joints": [joint.as_dict() for joint in chain],
            "tcp_offset": {"xyz": list(tcp.xyz) if tcp else [0.0, 0.0, 0.0],
                           "quat_xyzw": list(tcp.quat_xyzw) if tcp else [0.0, 0.0, 0.0, 1.0]},
            "base_pose_in_cell": {"xyz": [float(v) for v in base_xyz],
                                  "quat_xyzw": [float(v) for v in base_quat_xyzw]},
        },
    }


def _chain_joint(joint: ET.Element) -> ChainJoint:
    origin = joint.find("origin")
    axis = joint.find("axis")
    return ChainJoint(
        name=joint.get("name"), type=joint.get("type"),
        origin_xyz=_triple(origin.get("xyz") if origin is not None else None),
        origin_rpy=_triple(origin.get("rpy") if origin is not None else None),
        # URDF's default axis is x (1, 0, 0) when <axis> is left out.
        axis=_triple(axis.get("xyz") if axis is not None else None, default=(1.0, 0.0, 0.0)))


def _triple(text: str | None, default=(0.0, 0.0, 0.0)) -> tuple[float, float, float]:
    if not text:
        return tuple(default)
    values = tuple(float(value) for value in text.split())
    return values if len(values) == 3 else tuple(default)


def _float(element: ET.Element, key: str) -> float:
    text = element.get(key)
    return float(text) if text is not None else math.nan
