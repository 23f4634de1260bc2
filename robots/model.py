"""The static description of one robot arm with its end effector: :class:`RobotModel`.

A model says which URDF, which joints are the arm, where the TCP is, the home pose and the
gripper; :class:`celltwin.robots.robot.Robot` is one instance of it inside a running world.
Models come from the registry (:mod:`celltwin.robots.registry`: the shipped ones, and those
registered from Python) or from a robot file (:mod:`celltwin.robots.description`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from importlib import metadata
from pathlib import Path

import pybullet
import pybullet_data

from celltwin.core.client import direct_client, quiet_c_output
from celltwin.core.errors import Problem
from celltwin.robots.errors import RobotError
from celltwin.robots.fixed_links import LinkInertial, MergedUrdf, merge_fixed_links
from celltwin.robots.held_gripper import hold_gripper_closed
from celltwin.robots.suction import SuctionSpec
from celltwin.robots.urdf import GripperMount, TcpFrame, add_tcp_frame, compose_urdf

# celltwin's own gripper (assets/robots/grippers): an 80 mm parallel jaw whose TCP link is `tcp`.
PARALLEL_JAW_URDF = "robots/grippers/parallel_jaw.urdf"
PARALLEL_JAW_JOINTS = ("gripper_left_finger_joint", "gripper_right_finger_joint")
# celltwin's suction cup (assets/robots/grippers): a 30 mm cup whose face is its TCP link `tcp`.
SUCTION_CUP_URDF = "robots/grippers/suction_cup.urdf"
SUCTION_CUP_LINK = "suction_cup"

@dataclass(frozen=True)
class RobotModel:
    """A robot arm with its gripper, as celltwin loads it.

    Attributes:
        name: registry key, as written in cell files (``panda``).
        description: one line for people.
        arm_urdf: the arm's URDF: a path relative to pybullet_data, or an absolute one.
        arm_joint_names: the actuated arm joints, base to wrist.
        home: arm joint positions of the home pose [rad]; the gripper points down.
        ee_link: the tool centre point link, between the fingertips (``tcp_frame.name`` when
            the model adds a TCP frame).
        gripper_joint_names: the finger joints; each finger moves half the opening width
            (none for a suction cup).
        gripper_width_range_m: (closed, open) distance between the finger pads [m]; for a
            suction cup ``(0, diameter)``, its state as an opening
            (:mod:`celltwin.robots.suction`).
        gripper_force_n: default grip force per finger [N]; a suction cup's rated force.
        gripper_mount: the gripper to attach to the arm, or ``None`` if the URDF has its own.
        gripper_held_closed: the fingers are welded shut (:meth:`held_closed`); the robot
            then simulates no finger joints (a suction cup: its vacuum stays off).
        tcp_frame: a TCP frame to add to the full description (after the gripper), or
            ``None`` when ``ee_link`` is a link of the URDFs as they are.
        source: the robot file the model was read from, or ``None``.
        suction: the suction cup, or ``None`` for a gripper with fingers.
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
    tcp_frame: TcpFrame | None = None
    source: str | None = None
    suction: SuctionSpec | None = None

    @property
    def dof(self) -> int:
        """Number of actuated arm joints (the gripper not counted)."""
        return len(self.arm_joint_names)

    def held_closed(self) -> "RobotModel":
        """Return this model with its gripper held closed, for tasks that never open it.

        See :mod:`celltwin.robots.held_gripper`: the same robot, with the fingers one rigid piece at
        the closed opening, and cheaper to simulate. A suction cup held closed never grips: its
        vacuum stays off (a task that never grips must not pick up what it pushes).
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
    if model.tcp_frame is not None:
        full = add_tcp_frame(model.name, full, model.tcp_frame)
    if model.gripper_held_closed and model.gripper_joint_names:
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
        try:
            with quiet_c_output():
                body = client.loadURDF(str(urdf), useFixedBase=True)
        except pybullet.error as exc:
            raise RobotError(Problem(f"pybullet cannot load the robot description: {exc}",
                                     file=str(urdf), expected="a URDF pybullet loads")) from None
        inertials = {}
        for link in range(client.getNumJoints(body)):
            info = client.getDynamicsInfo(body, link)
            inertials[client.getJointInfo(body, link)[12].decode()] = LinkInertial(
                mass_kg=info[0], com_xyz=tuple(info[3]), axes_quat_xyzw=tuple(info[4]),
                moments=tuple(info[2]))
        return inertials
    finally:
        client.disconnect()
