"""Compose an arm URDF and a gripper URDF into one robot description pybullet can load.

The arm comes from pybullet_data, the gripper from ``assets/robots/grippers``. The gripper's
links and joints are appended under the arm's flange link with a fixed mounting joint. Mesh
filenames are rewritten to absolute paths because pybullet resolves relative (and
``package://``) mesh paths against the folder of the URDF it loads, and the composed file lives
in celltwin's cache, far from the arm's meshes.

The result is written atomically to ``cache_dir("robots")`` under a name derived from a hash
of every input, so it is built once per machine and any change to an input builds a new file.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from celltwin.robots.errors import RobotError
from celltwin.core.resources import cache_dir
from celltwin.core.atomic import atomic_write_text
from celltwin.core.errors import Problem, did_you_mean, one_of

# Bump when the composition itself changes, so cached files from older code are not reused.
_COMPOSER_VERSION = "1"
_PACKAGE_PREFIX = "package://"


@dataclass(frozen=True)
class GripperMount:
    """How a gripper sits on an arm.

    Attributes:
        gripper_urdf: the gripper's URDF (its root link is attached to the flange).
        flange_link: the arm link the gripper is bolted to.
        xyz: mounting offset of the gripper root in the flange link frame [m].
        rpy: mounting rotation of the gripper root in the flange link frame [rad].
    """

    gripper_urdf: Path
    flange_link: str
    xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)


def compose_urdf(name: str, arm_urdf: Path, mount: GripperMount) -> Path:
    """Return the path of the composed arm + gripper URDF, building it if not cached.

    Args:
        name: robot model name; the first part of the cached file's name.
        arm_urdf: the arm's URDF file.
        mount: which gripper goes where.

    Raises:
        RobotError: an input is missing, is not a URDF, or names clash or are unknown.
    """
    arm_text = read_urdf(arm_urdf)
    gripper_text = read_urdf(mount.gripper_urdf)
    digest = hashlib.sha256(
        "\0".join([_COMPOSER_VERSION, str(arm_urdf.resolve()), arm_text,
                   str(mount.gripper_urdf.resolve()), gripper_text, mount.flange_link,
                   repr(mount.xyz), repr(mount.rpy)]).encode("utf-8")).hexdigest()[:16]
    target = cache_dir("robots") / f"{name}-{digest}.urdf"
    if target.exists():
        return target
    arm = parse_urdf(arm_text, arm_urdf)
    gripper = parse_urdf(gripper_text, mount.gripper_urdf)
    absolutize_meshes(arm, arm_urdf.parent)
    absolutize_meshes(gripper, mount.gripper_urdf.parent)
    _drop_world_link(arm)
    _attach(arm, gripper, mount)
    ET.indent(arm)
    text = f"<?xml version=\"1.0\"?>\n<!-- composed by celltwin from {arm_urdf} and " \
           f"{mount.gripper_urdf}; do not edit, it is rebuilt from its inputs -->\n" \
           + ET.tostring(arm, encoding="unicode") + "\n"
    atomic_write_text(target, text)
    return target


def read_urdf(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RobotError(Problem(f"cannot read robot description: {exc.strerror}",
                                 file=str(path))) from exc


def parse_urdf(text: str, path: Path) -> ET.Element:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise RobotError(Problem(f"not valid XML: {exc}", file=str(path))) from exc
    if root.tag != "robot":
        raise RobotError(Problem("not a URDF", file=str(path), value=root.tag,
                                 expected="a <robot> root element"))
    return root


def absolutize_meshes(robot: ET.Element, folder: Path) -> None:
    """Rewrite every mesh filename to an absolute path resolved the way pybullet would."""
    for mesh in robot.iter("mesh"):
        filename = mesh.get("filename", "")
        relative = filename.removeprefix(_PACKAGE_PREFIX)
        if Path(relative).is_absolute():
            continue
        resolved = (folder / relative).resolve()
        if not resolved.exists():
            raise RobotError(Problem("mesh file not found", file=str(folder),
                                     value=filename, expected=f"a file at {resolved}"))
        mesh.set("filename", str(resolved))


def _drop_world_link(robot: ET.Element) -> None:
    """Remove a ROS-style empty ``world`` root link and its fixed joint.

    Some arms (xArm) ship rooted at a geometry-less ``world`` link; with a fixed base in
    pybullet it would become the base and push the real base to joint index 0.
    """
    world = next((link for link in robot.findall("link") if link.get("name") == "world"), None)
    if world is None or len(world):
        return
    for joint in robot.findall("joint"):
        parent = joint.find("parent")
        if parent is not None and parent.get("link") == "world" and joint.get("type") == "fixed":
            robot.remove(joint)
    robot.remove(world)


def _attach(arm: ET.Element, gripper: ET.Element, mount: GripperMount) -> None:
    """Append the gripper's materials, links and joints, plus a fixed mounting joint."""
    arm_links = {link.get("name") for link in arm.findall("link")}
    if mount.flange_link not in arm_links:
        raise RobotError(Problem(
            f"flange link '{mount.flange_link}' is not in the arm"
            + did_you_mean(mount.flange_link, arm_links),
            value=mount.flange_link, expected=one_of(arm_links)))
    gripper_links = [link.get("name") for link in gripper.findall("link")]
    names = arm_links | {joint.get("name") for joint in arm.findall("joint")}
    clashes = names & (set(gripper_links) | {j.get("name") for j in gripper.findall("joint")})
    if clashes:
        raise RobotError(Problem("gripper names clash with arm names",
                                 value=sorted(clashes), expected="distinct link/joint names"))
    children = {joint.find("child").get("link") for joint in gripper.findall("joint")}
    roots = [name for name in gripper_links if name not in children]
    if len(roots) != 1:
        raise RobotError(Problem("a gripper must have exactly one root link",
                                 file=str(mount.gripper_urdf), value=roots))
    arm_materials = {m.get("name") for m in arm.findall("material")}
    for element in gripper:
        if element.tag == "material" and element.get("name") in arm_materials:
            continue
        if element.tag in ("material", "link", "joint"):
            arm.append(element)
    joint = ET.SubElement(arm, "joint", name="gripper_mount", type="fixed")
    ET.SubElement(joint, "parent", link=mount.flange_link)
    ET.SubElement(joint, "child", link=roots[0])
    ET.SubElement(joint, "origin", xyz=" ".join(map(repr, mount.xyz)),
                  rpy=" ".join(map(repr, mount.rpy)))
