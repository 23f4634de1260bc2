"""The robot models celltwin knows, by name: URDF, joints, home pose, end effector, gripper.

A :class:`RobotModel` is a static description; :class:`celltwin.robots.robot.Robot` is one instance
of it inside a running world. Cell files name models by the keys of this registry.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from importlib import metadata
from pathlib import Path

import pybullet_data

from celltwin.robots.errors import RobotError
from celltwin.robots.fixed_links import LinkInertial, MergedUrdf, merge_fixed_links
from celltwin.robots.held_gripper import hold_gripper_closed
from celltwin.robots.urdf import GripperMount, compose_urdf
from celltwin.core.resources import asset_path
from celltwin.core.client import direct_client, quiet_c_output
from celltwin.core.errors import Problem, did_you_mean, one_of

_PARALLEL_JAW = "robots/grippers/parallel_jaw.urdf"
_PARALLEL_JAW_JOINTS = ("gripper_left_finger_joint", "gripper_right_finger_joint")


@dataclass(frozen=True)
class RobotModel:
    """A robot arm with its gripper, as celltwin loads it.

    Attributes:
        name: registry key, as written in cell files (``panda``).
        description: one line for people.
        arm_urdf: the arm's URDF, relative to pybullet_data.
        arm_joint_names: the actuated arm joints, base to wrist.
        home: arm joint positions of the home pose [rad]; the gripper points down.
        ee_link: the tool centre point link, between the fingertips.
        gripper_joint_names: the finger joints; each finger moves half the opening width.
        gripper_width_range_m: (closed, open) distance between the finger pads [m].
        gripper_force_n: default grip force per finger [N].
        gripper_mount: the gripper to attach to the arm, or ``None`` if the URDF has its own.
        gripper_held_closed: the fingers are welded shut (:meth:`held_closed`); the robot
            then simulates no finger joints.
    """

    name: str
    description: str
    arm_urdf: str
    arm_joint_names: tuple[str, ...]
    home: tuple[float, ...]
    ee_link: str
    gripper_joint_names: tuple[str, ...]
    gripper_width_range_m: tuple[float, float]
    gripper_force_n: float
    gripper_mount: GripperMount | None = None
    gripper_held_closed: bool = False

    @property
    def dof(self) -> int:
        """Number of actuated arm joints (the gripper not counted)."""
        return len(self.arm_joint_names)

    def held_closed(self) -> "RobotModel":
        """Return this model with its gripper held closed, for tasks that never open it.

        See :mod:`celltwin.robots.held_gripper`: the same robot, with the fingers one rigid piece at
        the closed opening, and cheaper to simulate.
        """
        return replace(self, gripper_held_closed=True)

    def urdf_path(self) -> Path:
        """Return the full robot description (arm + gripper), composing it on first use.

        With :attr:`gripper_held_closed`, the fingers in it are welded shut.
        """
        return _urdf_path(self)

    def merged_urdf(self) -> MergedUrdf:
        """Return the description to simulate: :meth:`urdf_path` with its fixed links merged.

        See :mod:`celltwin.robots.fixed_links`: same robot, fewer links for pybullet to step.
        """
        return _merged_urdf(self)


@cache
def _urdf_path(model: RobotModel) -> Path:
    # Cached per process: the file is built once per machine, but hashing its inputs still
    # reads two files, which a world that loads many robots should not repeat.
    arm = Path(pybullet_data.getDataPath()) / model.arm_urdf
    full = arm if model.gripper_mount is None else compose_urdf(model.name, arm,
                                                               model.gripper_mount)
    if model.gripper_held_closed:
        return hold_gripper_closed(model.name, full, model.gripper_joint_names,
                                   model.gripper_width_range_m[0])
    return full


@cache
def _merged_urdf(model: RobotModel) -> MergedUrdf:
    return merge_fixed_links(model.name, _urdf_path(model), simulated_inertials,
                             salt=f"pybullet {metadata.version('pybullet')}")


def simulated_inertials(urdf: Path) -> dict[str, LinkInertial]:
    """Return the mass properties pybullet simulates for each link of ``urdf``.

    Loaded without ``URDF_USE_INERTIA_FROM_FILE``, as celltwin always simulated its robots
    and as panda-gym does: pybullet then derives each link's inertia from its mass and
    collision geometry, which is sane for every link, whereas some shipped URDFs carry
    placeholder tensors (the Panda's 0.1 kg m^2 on every link, fingers included).
    """
    client = direct_client()
    try:
        with quiet_c_output():
            body = client.loadURDF(str(urdf), useFixedBase=True)
        inertials = {}
        for link in range(client.getNumJoints(body)):
            info = client.getDynamicsInfo(body, link)
            inertials[client.getJointInfo(body, link)[12].decode()] = LinkInertial(
                mass_kg=info[0], com_xyz=tuple(info[3]), axes_quat_xyzw=tuple(info[4]),
                moments=tuple(info[2]))
        return inertials
    finally:
        client.disconnect()


def _parallel_jaw_on(flange_link: str, xyz: tuple[float, float, float]) -> GripperMount:
    return GripperMount(gripper_urdf=asset_path(_PARALLEL_JAW), flange_link=flange_link, xyz=xyz)

# Home poses solved for "TCP ahead of the base, pointing straight down" with the arm kept in
# its vertical plane (redundant joints at 0), then rounded so that joints 2, 4 and 6 still sum
# to a vertical tool axis. iiwa: TCP at (0.50, 0, 0.30) m, joint 4 0.32 rad inside its limit;
# xArm 6: TCP at (0.45, 0, 0.27) m.
_IIWA_HOME = (0.0, 0.44, 0.0, -1.77, 0.0, 0.932, 0.0)
_XARM6_HOME = (0.0, -0.04, -0.98, 0.0, 1.02, 0.0)


def _build_registry() -> dict[str, RobotModel]:
    models = [
        RobotModel(
            name="panda",
            description="Franka Emika Panda, 7 DOF, with its own two-finger hand",
            arm_urdf="franka_panda/panda.urdf",
            arm_joint_names=tuple(f"panda_joint{i}" for i in range(1, 8)),
            # panda-gym's neutral pose: hand pointing straight down over the table.
            home=(0.0, 0.41, 0.0, -1.85, 0.0, 2.26, 0.79),
            ee_link="panda_grasptarget",
            gripper_joint_names=("panda_finger_joint1", "panda_finger_joint2"),
            gripper_width_range_m=(0.0, 0.08),
            gripper_force_n=20.0,
        ),
        RobotModel(
            name="kuka_iiwa",
            description="KUKA LBR iiwa 7 R800, 7 DOF, with celltwin's parallel-jaw gripper",
            arm_urdf="kuka_iiwa/model.urdf",
            arm_joint_names=tuple(f"lbr_iiwa_joint_{i}" for i in range(1, 8)),
            home=_IIWA_HOME,
            ee_link="tcp",
            gripper_joint_names=_PARALLEL_JAW_JOINTS,
            gripper_width_range_m=(0.0, 0.08),
            gripper_force_n=40.0,
            # The media flange is 45 mm beyond the link_7 frame along its z axis.
            gripper_mount=_parallel_jaw_on("lbr_iiwa_link_7", (0.0, 0.0, 0.045)),
        ),
        RobotModel(
            name="xarm6",
            description="UFACTORY xArm 6, 6 DOF, with celltwin's parallel-jaw gripper",
            arm_urdf="xarm/xarm6_robot.urdf",
            arm_joint_names=tuple(f"joint{i}" for i in range(1, 7)),
            home=_XARM6_HOME,
            ee_link="tcp",
            # The xArm gripper in pybullet_data is a six-bar linkage: mimic joints and closed
            # kinematic chains that pybullet neither enforces nor actuates, so its fingers
            # would flop. A parallel jaw grips the same way and simulates faithfully.
            gripper_joint_names=_PARALLEL_JAW_JOINTS,
            gripper_width_range_m=(0.0, 0.08),
            gripper_force_n=40.0,
            # The tool flange face is the link6 frame itself.
            gripper_mount=_parallel_jaw_on("link6", (0.0, 0.0, 0.0)),
        ),
    ]
    return {model.name: model for model in models}


_REGISTRY = _build_registry()


def robot_model_names() -> list[str]:
    """Return the names of every registered robot model, sorted."""
    return sorted(_REGISTRY)


def get_robot_model(name: str) -> RobotModel:
    """Return the registered model called ``name``.

    Raises:
        RobotError: no model has that name; the message suggests the closest one.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise RobotError(Problem(f"unknown robot model '{name}'" + did_you_mean(name, _REGISTRY),
                                 value=name, expected=one_of(_REGISTRY))) from None
