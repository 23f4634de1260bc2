"""Robot files: your own arm as a YAML file that names its URDF, and the model read from it.

A robot file says which URDF (relative to the file, or inside an installed Python package),
which joints are the arm (base to wrist), where the TCP is, the home pose, any joint limits that
differ from the URDF's, and the end effector: the URDF's ``own`` fingers, or celltwin's
``parallel_jaw`` gripper or ``suction`` cup mounted on a link. :func:`load_robot_file` reads
and checks it and returns the :class:`~celltwin.robots.model.RobotModel` a cell, an env or
``celltwin robot check`` uses; every problem is reported at once, each with its file, line and
dotted path (the URDF's own problems with the URDF's file and line). The format is documented
in ``docs/robots.md``.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Strict, ValidationError

from celltwin.core.documents import (findings_to_problems, open_document, parse_yaml_document,
                                     require_mapping, unique_problems)
from celltwin.core.problems import Finding, validation_findings
from celltwin.core.resources import asset_path
from celltwin.robots.errors import RobotError
from celltwin.robots.model import (PARALLEL_JAW_JOINTS, PARALLEL_JAW_URDF, SUCTION_CUP_LINK,
                                   SUCTION_CUP_URDF, RobotModel)
from celltwin.robots.robot_file_checks import check_against_urdf, mesh_problems
from celltwin.robots.suction import MAX_SEAL_TOLERANCE_M, SuctionSpec
from celltwin.robots.urdf import GripperMount, TcpFrame, prepare_arm_urdf
from celltwin.robots.urdf_info import read_urdf_info

Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
PositiveFloat = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
Name = Annotated[str, Strict(), Field(min_length=1)]
# A model name becomes part of cache file names and is told apart from a file path by having
# no folder separator and no suffix.
ModelName = Annotated[str, Strict(), Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")]
Vec3 = tuple[Float, Float, Float]


class _FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False,
                              use_attribute_docstrings=True)


class TcpSpec(_FileModel):
    """Where the tool centre point is: a link and an offset from it."""

    link: Name
    """the link the TCP is fixed to"""
    xyz_m: Vec3 = (0.0, 0.0, 0.0)
    """TCP position in that link's frame [m]"""
    rpy_deg: Vec3 = (0.0, 0.0, 0.0)
    """TCP orientation in that link's frame, roll, pitch, yaw about fixed x, y, z [deg]"""


class JointLimitSpec(_FileModel):
    """Limits of one arm joint that replace the URDF's; each one left out keeps the URDF's."""

    lower_deg: Float | None = None
    """lower position limit [deg]"""
    upper_deg: Float | None = None
    """upper position limit [deg]"""
    effort_nm: PositiveFloat | None = None
    """most torque the joint's motor gives [N m]"""
    velocity_deg_s: PositiveFloat | None = None
    """fastest the joint turns [deg/s]"""


class OwnFingers(_FileModel):
    """The URDF's own two fingers: prismatic joints, each at half the opening."""

    # A default although the tag is required: the located-problem walk reads the tag of
    # each union member from its default.
    type: Literal["own"] = "own"
    """the URDF's own fingers"""
    finger_joints: tuple[Name, ...] = Field(min_length=2, max_length=2)
    """the two finger joints (prismatic; each moves half the opening width)"""
    width_m: tuple[NonNegativeFloat, PositiveFloat]
    """opening between the finger pads, closed and open [m]"""
    force_n: PositiveFloat = 20.0
    """grip force per finger [N]"""


class ParallelJaw(_FileModel):
    """celltwin's parallel-jaw gripper (80 mm stroke), bolted to a link of the arm."""

    type: Literal["parallel_jaw"] = "parallel_jaw"
    """celltwin's parallel-jaw gripper"""
    mount_link: Name
    """the arm link the gripper is bolted to, its z axis pointing out of the flange"""
    xyz_m: Vec3 = (0.0, 0.0, 0.0)
    """gripper position in the mount link's frame [m]"""
    rpy_deg: Vec3 = (0.0, 0.0, 0.0)
    """gripper orientation in the mount link's frame [deg]"""
    force_n: PositiveFloat = 40.0
    """grip force per finger [N]"""


class SuctionCup(_FileModel):
    """celltwin's suction cup (30 mm, its face 80 mm beyond the flange), bolted to a link."""

    type: Literal["suction"] = "suction"
    """celltwin's suction cup"""
    mount_link: Name
    """the arm link the cup is bolted to, its z axis pointing out of the flange"""
    xyz_m: Vec3 = (0.0, 0.0, 0.0)
    """cup position in the mount link's frame [m]"""
    rpy_deg: Vec3 = (0.0, 0.0, 0.0)
    """cup orientation in the mount link's frame [deg]"""
    force_n: PositiveFloat = 30.0
    """rated holding force: the most the vacuum pulls a sealed part with [N]"""
    seal_tolerance_m: Annotated[float, Strict(), Field(ge=0, le=MAX_SEAL_TOLERANCE_M,
                                                       allow_inf_nan=False)] = 0.003
    """largest gap between the cup and a part's face that seals, and how far a held part may
    be pulled off before the seal breaks [m]"""


# The cup as its URDF draws it (assets/robots/grippers/suction_cup.urdf): radius, and its face
# along the cup link's z axis (half the cup's length) [m].
SUCTION_CUP_RADIUS_M = 0.015
SUCTION_CUP_FACE_Z_M = 0.01

# Discriminator(), not Field(discriminator=): pydantic keeps it in the field's metadata, where
# the located-problem walk (celltwin.core.problems) finds the tag key.
EndEffector = Annotated[Union[OwnFingers, ParallelJaw, SuctionCup], Discriminator("type")]


class RobotFile(_FileModel):
    """A robot arm described by a URDF, as a robot file spells it."""

    name: ModelName | None = None
    """the model's name (messages, bundles); default: the file's name without .yaml"""
    description: Annotated[str, Strict()] = ""
    """one line for people"""
    urdf: Name
    """the URDF: a path relative to this file, or inside ``urdf_package`` when given"""
    urdf_package: Name | None = None
    """an installed Python package that holds the URDF (``pybullet_data``)"""
    arm_joints: tuple[Name, ...] = Field(min_length=1)
    """the arm's joints, base to wrist: every revolute joint that moves the TCP"""
    tcp: TcpSpec | None = None
    """the tool centre point; for ``parallel_jaw`` and ``suction`` the default is the
    gripper's own"""
    home_deg: tuple[Float, ...] = Field(min_length=1)
    """arm joint positions of the home pose [deg]; the TCP should point down there"""
    joint_limits: dict[Name, JointLimitSpec] = {}
    """limits that replace the URDF's, by arm joint name"""
    end_effector: EndEffector
    """the gripper; ``type`` picks the kind"""


def load_robot_file(source: str | Path) -> RobotModel:
    """Read and check a robot file (a path, or the name of one shipped in assets/robots).

    Raises:
        RobotError: with every problem found, in the robot file or in its URDF.
    """
    path, text = open_document(source, "robots", error=RobotError, what="robot")
    spec, lines = _parse(text, str(path))
    urdf_path = _urdf_path(spec, path, lines)
    urdf = read_urdf_info(urdf_path)
    gripper = (read_urdf_info(asset_path(_GRIPPER_URDFS[spec.end_effector.type]))
               if spec.end_effector.type in _GRIPPER_URDFS else None)
    findings, limits = check_against_urdf(spec, urdf, gripper)
    problems = unique_problems(findings_to_problems(findings, file=str(path), lines=lines))
    problems += mesh_problems(urdf)
    if problems:
        raise RobotError(problems)
    name = spec.name or path.stem
    arm_urdf = prepare_arm_urdf(name, urdf_path, limits)
    model = _model(spec, name, arm_urdf, path, urdf, gripper)
    model.merged_urdf()  # builds (and so checks) what pybullet will load, once per machine
    return model


def _parse(text: str, file: str):
    data, lines = parse_yaml_document(text, file=file, error=RobotError)
    require_mapping(data, RobotFile, error=RobotError, file=file, lines=lines, what="robot")
    findings = list(lines.duplicate_keys)
    spec = None
    try:
        spec = RobotFile.model_validate(data)
    except ValidationError as exc:
        findings += validation_findings(exc, RobotFile)
    if findings or spec is None:
        raise RobotError(unique_problems(findings_to_problems(findings, file=file, lines=lines)))
    return spec, lines


def _urdf_path(spec: RobotFile, path: Path, lines) -> Path:
    def fail(loc, message, value, expected):
        raise RobotError(findings_to_problems([Finding(loc, message, value=value,
                                                       expected=expected)],
                                              file=str(path), lines=lines))

    folder = path.parent
    if spec.urdf_package is not None:
        try:
            folder = Path(str(resources.files(spec.urdf_package)))
        except (ImportError, TypeError, ValueError):  # not installed, or fails to import
            fail(("urdf_package",), f"no installed Python package '{spec.urdf_package}'",
                 spec.urdf_package, "an importable package that holds the URDF")
    urdf = (folder / Path(spec.urdf).expanduser()).resolve()
    if not urdf.is_file():
        fail(("urdf",), "URDF file not found", spec.urdf,
             f"a file at {urdf}" + (f" (inside {spec.urdf_package})" if spec.urdf_package
                                    else " (relative to the robot file)"))
    return urdf


def _model(spec: RobotFile, name: str, arm_urdf: Path, path: Path, urdf, gripper) -> RobotModel:
    effector = spec.end_effector
    links = set(urdf.links) | set(gripper.links if gripper is not None else ())
    tcp = spec.tcp or TcpSpec(link="tcp")  # the checks required a tcp for own fingers
    frame = None
    if any(tcp.xyz_m) or any(tcp.rpy_deg):
        frame = TcpFrame("tcp" if "tcp" not in links else "celltwin_tcp", tcp.link,
                         tcp.xyz_m, tuple(math.radians(a) for a in tcp.rpy_deg))
    common = dict(name=name, description=spec.description or f"robot file {path}",
                  arm_urdf=str(arm_urdf), arm_joint_names=spec.arm_joints,
                  home=tuple(math.radians(angle) for angle in spec.home_deg),
                  ee_link=frame.name if frame else tcp.link, tcp_frame=frame,
                  gripper_force_n=effector.force_n, source=str(path.resolve()))
    if isinstance(effector, OwnFingers):
        return RobotModel(**common, gripper_joint_names=effector.finger_joints,
                          gripper_width_range_m=effector.width_m)
    mount = GripperMount(asset_path(_GRIPPER_URDFS[effector.type]), effector.mount_link,
                         effector.xyz_m, tuple(math.radians(angle) for angle in effector.rpy_deg))
    if isinstance(effector, SuctionCup):
        cup = SuctionSpec(SUCTION_CUP_LINK, SUCTION_CUP_FACE_Z_M, SUCTION_CUP_RADIUS_M,
                          effector.force_n, effector.seal_tolerance_m)
        return RobotModel(**common, gripper_joint_names=(), gripper_mount=mount, suction=cup,
                          gripper_width_range_m=(0.0, 2.0 * SUCTION_CUP_RADIUS_M))
    return RobotModel(**common, gripper_joint_names=PARALLEL_JAW_JOINTS,
                      gripper_width_range_m=_parallel_jaw_width(gripper), gripper_mount=mount)


# celltwin's grippers, by end effector type: the URDFs bolted onto the arm.
_GRIPPER_URDFS = {"parallel_jaw": PARALLEL_JAW_URDF, "suction": SUCTION_CUP_URDF}


def _parallel_jaw_width(gripper) -> tuple[float, float]:
    """The parallel jaw's opening range from its URDF: twice each finger's stroke [m]."""
    finger = gripper.joints[PARALLEL_JAW_JOINTS[0]]
    return 2.0 * finger.lower, 2.0 * finger.upper


__all__ = ["EndEffector", "JointLimitSpec", "OwnFingers", "ParallelJaw", "RobotFile",
           "SuctionCup", "TcpSpec", "load_robot_file"]
