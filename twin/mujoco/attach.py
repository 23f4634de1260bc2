"""A robot in the cell's MuJoCo model: the merged URDF pybullet simulates, read by MuJoCo's URDF
compiler and attached at the robot's base pose, with its TCP site, motors and finger gear."""

from __future__ import annotations

import numpy as np

from celltwin.core.errors import Problem
from celltwin.mujoco.engine import load_mujoco
from celltwin.mujoco.errors import MujocoError
from celltwin.mujoco.model import CellModel, Collider, RobotHandles, rotation, wxyz
from celltwin.mujoco.source import RobotStart
from celltwin.mujoco.suction import SuctionHandles

mujoco = load_mujoco()


def attach_robot(cell: CellModel, start: RobotStart, colliders: list[Collider]) -> None:
    """Load the robot's merged URDF with MuJoCo's URDF compiler and attach it at its base."""
    model = start.model
    description = model.merged_urdf()
    try:
        child = mujoco.MjSpec.from_file(str(description.path))
    except ValueError as error:
        raise MujocoError(Problem(f"MuJoCo cannot read the description of robot "
                                  f"'{start.name}' ({model.name}): {_one_line(error)}",
                                  path=f"robots.{start.name}.model", file=str(description.path),
                                  expected="a URDF whose meshes MuJoCo reads (STL, OBJ)")) from None
    prefix = cell.names.prefix(start.name)
    root = child.worldbody.first_body()
    root_name = root.name  # attaching renames the child's elements in place
    for equality in list(child.equalities):
        # MuJoCo turns URDF <mimic> tags into joint equalities; pybullet ignores them, and the
        # finger gear added below is the coupling both engines share.
        child.delete(equality)
    for index, geom in enumerate(child.geoms):
        geom.name = f"{geom.parent.name}#{index}"
        geom.contype, geom.conaffinity = 0, 0
    links = {}  # PhysicsParams key -> MuJoCo body
    for body in child.bodies:
        if body.name and body.name != "world":
            cell.link_inertia[prefix + body.name] = (
                float(body.mass), np.array(body.inertia, dtype=float),
                np.array(body.fullinertia, dtype=float))
            if body.name != root_name:
                links[f"{start.name}/{body.name}"] = prefix + body.name
    for geom in child.geoms:
        link = geom.parent.name
        moving = link != root_name
        owner = f"{start.name}/{link}" if moving else start.name
        colliders.append(Collider(prefix + geom.name, owner, start.name, moving))
    brought = {kind: [prefix + element.name for element in elements if element.name]
               for kind, elements in (("body", child.bodies), ("geom", child.geoms),
                                      ("joint", child.joints), ("mesh", child.meshes))}
    # Where the base link is (a randomized base offset included), not where the robot's
    # controller believes it is (start.base_xyz, the frame it reports in).
    body_xyz, body_quat = start.body_pose
    frame = cell.spec.worldbody.add_frame(pos=list(body_xyz), quat=wxyz(body_quat))
    frame.attach_body(root, prefix, "")
    cell.bodies[start.name] = prefix + root_name
    for kind, names in brought.items():
        cell.names.add(kind, names)

    arm = tuple(prefix + joint for joint in model.arm_joint_names)
    fingers = () if model.gripper_held_closed else tuple(
        prefix + joint for joint in model.gripper_joint_names)
    driven = fingers[:1] if len(fingers) == 2 else fingers
    for joint in arm + fingers:
        element = cell.spec.joint(joint)
        # MuJoCo's URDF import bounds each joint's actuator force by the URDF effort; the
        # servo's limit is the PhysicsParams force limit, on its motor (mapping).
        element.actfrclimited = mujoco.mjtLimited.mjLIMITED_FALSE
        # ... and takes the URDF's damping, which the servo applies as pybullet does instead.
        element.damping = [0.0, 0.0, 0.0]
    if len(fingers) == 2:
        # The gear of celltwin.robots.finger_gear: the second finger follows the first.
        gear = cell.spec.add_equality(type=mujoco.mjtEq.mjEQ_JOINT, name1=fingers[1],
                                      name2=fingers[0])
        polynomial = np.zeros(len(gear.data))  # its length differs between MuJoCo versions
        polynomial[1] = 1.0                    # q_follower = 0 + 1 q_driven
        gear.data = polynomial
    for joint in arm + driven:
        # A torque motor per driven joint; the servo (celltwin.mujoco.servo) sets its torque.
        motor = cell.spec.add_actuator(name=joint, target=joint,
                                       trntype=mujoco.mjtTrn.mjTRN_JOINT)
        motor.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        motor.gainprm = [1.0] + [0.0] * 9
        motor.biastype = mujoco.mjtBias.mjBIAS_NONE
        motor.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        motor.ctrllimited = mujoco.mjtLimited.mjLIMITED_FALSE
    survivor, tcp_xyz, tcp_quat = model.ee_link, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)
    if model.ee_link in description.merged:
        frame_on = description.merged[model.ee_link]
        survivor, tcp_xyz, tcp_quat = frame_on.link, frame_on.xyz, frame_on.quat_xyzw
    tcp = f"{prefix}tcp"
    cell.spec.body(prefix + survivor).add_site(name=tcp, pos=list(tcp_xyz),
                                               quat=wxyz(tcp_quat))
    keys = {prefix + joint: f"{start.name}/{joint}"
            for joint in model.arm_joint_names + model.gripper_joint_names
            if prefix + joint in arm + fingers}
    cell.robots[start.name] = RobotHandles(start, prefix + root_name, links, arm, fingers, arm,
                                           driven, keys, tcp, _suction(cell, start, prefix))


def _suction(cell: CellModel, start: RobotStart, prefix: str) -> SuctionHandles | None:
    """The robot's suction cup: a site on its face and one weld per part, inactive until the
    cup seals on that part (:mod:`celltwin.mujoco.suction`)."""
    model = start.model
    cup = model.suction
    if cup is None or model.gripper_held_closed:
        return None
    link, xyz, quat = cup.cup_link, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)
    merged = model.merged_urdf().merged.get(cup.cup_link)
    if merged is not None:   # merged into the link carrying it, as pybullet loads it
        link, xyz, quat = merged.link, merged.xyz, merged.quat_xyzw
    face_xyz = np.asarray(xyz, dtype=float) + rotation(quat)[:, 2] * cup.face_z_m
    body = prefix + link
    site = f"{prefix}suction_face"
    cell.spec.body(body).add_site(name=site, pos=face_xyz.tolist(), quat=wxyz(quat))
    welds, parts = {}, {}
    for part, names in cell.parts.items():
        weld = cell.spec.add_equality(type=mujoco.mjtEq.mjEQ_WELD, name1=body, name2=names.body,
                                      objtype=mujoco.mjtObj.mjOBJ_BODY, active=False,
                                      name=f"{prefix}suction/{part}")
        welds[part], parts[part] = weld.name, names.body
    cell.names.add("equality", list(welds.values()))
    return SuctionHandles(cup, body, site, welds, parts)


# ----------------------------------------------------------------------------- helpers


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
