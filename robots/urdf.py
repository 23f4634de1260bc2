"""Rewrite robot descriptions into files pybullet can load: arm + gripper, limits, TCP frame.

* :func:`compose_urdf` appends a gripper (``assets/robots/grippers``) under the arm's flange
  link with a fixed mounting joint.
* :func:`prepare_arm_urdf` is a robot file's URDF as celltwin simulates it: joint limits
  overridden, continuous arm joints given limits, a ROS ``world`` root dropped.
* :func:`add_tcp_frame` hangs a fixed TCP frame off a link, at an offset.

Mesh filenames are rewritten to absolute paths because pybullet resolves relative (and
``package://``) mesh paths against the folder of the URDF it loads, and the written file lives
in celltwin's cache, far from the meshes. Every result is written atomically to
``cache_dir("robots")`` under a name derived from a hash of every input, so it is built once
per machine and any change to an input builds a new file.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from celltwin.robots.errors import RobotError
from celltwin.robots.mesh_files import loadable_mesh
from celltwin.core.resources import cache_dir
from celltwin.core.atomic import atomic_write_text
from celltwin.core.errors import Problem, did_you_mean, one_of

# Bump when the composition itself changes, so cached files from older code are not reused.
_COMPOSER_VERSION = "1"
_PREPARER_VERSION = "2"
_PACKAGE_PREFIX = "package://"
_FILE_PREFIX = "file://"


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
    drop_world_link(arm)
    _attach(arm, gripper, mount)
    ET.indent(arm)
    text = f"<?xml version=\"1.0\"?>\n<!-- composed by celltwin from {arm_urdf} and " \
           f"{mount.gripper_urdf}; do not edit, it is rebuilt from its inputs -->\n" \
           + ET.tostring(arm, encoding="unicode") + "\n"
    atomic_write_text(target, text)
    return target


@dataclass(frozen=True)
class JointLimits:
    """The limits celltwin simulates a joint with (written into its ``<limit>`` element).

    Attributes:
        lower: lower position limit [rad or m].
        upper: upper position limit [rad or m].
        effort: most torque or force its motor gives [N m or N].
        velocity: fastest it moves [rad/s or m/s].
    """

    lower: float
    upper: float
    effort: float
    velocity: float


@dataclass(frozen=True)
class TcpFrame:
    """A tool centre point frame hung off a link of the description by a fixed joint.

    Attributes:
        name: the new link's name (what ``RobotModel.ee_link`` names).
        link: the link it is fixed to.
        xyz: its origin in ``link``'s frame [m].
        rpy: its orientation in ``link``'s frame, fixed-axis roll, pitch, yaw [rad].
    """

    name: str
    link: str
    xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)


def prepare_arm_urdf(name: str, source: Path, limits: Mapping[str, JointLimits]) -> Path:
    """Return ``source`` as celltwin simulates it, cached: the file a robot file's arm is.

    Meshes get absolute paths (:func:`resolve_mesh`; an ASCII STL becomes a binary copy,
    :mod:`celltwin.robots.mesh_files`), a ROS ``world`` root is dropped
    (:func:`drop_world_link`), each joint of ``limits`` gets those limits (a continuous one
    becomes revolute: pybullet reads no limits from a continuous joint, and celltwin's
    controllers clip to them), and a link held by a fixed joint that has no ``<inertial>``
    gets a massless one: ROS tool frames (``tool0``, ``flange``) are massless, whereas pybullet
    would give each 1 kg. So does a root link without one (a ROS ``base_link`` frame), which
    pybullet would warn about on every load.

    Raises:
        RobotError: the file cannot be read, is not a URDF, or names a missing mesh.
    """
    text = read_urdf(source)
    robot = parse_urdf(text, source)
    absolutize_meshes(robot, source.parent)
    # The meshes' stamps are part of the key: an ASCII STL is converted into the cache.
    meshes = sorted({mesh.get("filename") for mesh in robot.iter("mesh")})
    stamps = [f"{mesh} {Path(mesh).stat().st_mtime_ns} {Path(mesh).stat().st_size}"
              for mesh in meshes]
    spelled = repr(sorted((joint, tuple(vars(limit).values())) for joint, limit in limits.items()))
    digest = hashlib.sha256("\0".join([_PREPARER_VERSION, str(source.resolve()), text, spelled,
                                       *stamps]).encode("utf-8")).hexdigest()[:16]
    target = cache_dir("robots") / f"{name}-arm-{digest}.urdf"
    if target.exists():
        return target
    for mesh in robot.iter("mesh"):
        mesh.set("filename", str(loadable_mesh(Path(mesh.get("filename")))))
    drop_world_link(robot)
    children = {joint.find("child").get("link"): joint.get("type")
                for joint in robot.findall("joint") if joint.find("child") is not None}
    for link in robot.findall("link"):
        if link.find("inertial") is None and children.get(link.get("name"), "fixed") == "fixed":
            _add_massless_inertial(link)  # held by a fixed joint, or the root
    for joint in robot.findall("joint"):
        limit = limits.get(joint.get("name"))
        if limit is None:
            continue
        if joint.get("type") == "continuous":
            joint.set("type", "revolute")
        element = joint.find("limit")
        if element is None:
            element = ET.SubElement(joint, "limit")
        for key, value in vars(limit).items():
            element.set(key, repr(float(value)))
    _write(target, robot, f"{source} as celltwin simulates it")
    return target


def add_tcp_frame(name: str, urdf: Path, frame: TcpFrame) -> Path:
    """Return ``urdf`` with ``frame`` added as a massless link on a fixed joint, cached.

    Raises:
        RobotError: the file cannot be read, or its link is missing or its name taken.
    """
    text = read_urdf(urdf)
    digest = hashlib.sha256("\0".join([_PREPARER_VERSION, str(urdf.resolve()), text,
                                       repr(frame)]).encode("utf-8")).hexdigest()[:16]
    target = cache_dir("robots") / f"{name}-tcp-{digest}.urdf"
    if target.exists():
        return target
    robot = parse_urdf(text, urdf)
    links = {link.get("name") for link in robot.findall("link")}
    if frame.link not in links or frame.name in links:
        raise RobotError(Problem(f"cannot hang the TCP frame '{frame.name}' off link "
                                 f"'{frame.link}'", file=str(urdf), value=frame.link,
                                 expected=f"an existing link, and no link named {frame.name}"))
    absolutize_meshes(robot, urdf.parent)
    _add_massless_inertial(ET.SubElement(robot, "link", name=frame.name))
    joint = ET.SubElement(robot, "joint", name=f"{frame.name}_joint", type="fixed")
    ET.SubElement(joint, "parent", link=frame.link)
    ET.SubElement(joint, "child", link=frame.name)
    ET.SubElement(joint, "origin", xyz=" ".join(map(repr, frame.xyz)),
                  rpy=" ".join(map(repr, frame.rpy)))
    _write(target, robot, f"{urdf} with a TCP frame")
    return target


def _add_massless_inertial(link: ET.Element) -> None:
    inertial = ET.SubElement(link, "inertial")
    ET.SubElement(inertial, "mass", value="0")
    ET.SubElement(inertial, "inertia", ixx="0", ixy="0", ixz="0", iyy="0", iyz="0", izz="0")


def _write(target: Path, robot: ET.Element, what: str) -> None:
    ET.indent(robot)
    what = what.replace("--", "- -")  # an XML comment may not hold "--" (a folder name may)
    atomic_write_text(target, f"<?xml version=\"1.0\"?>\n<!-- {what}, written by celltwin; do "
                      "not edit, it is rebuilt from its inputs -->\n"
                      + ET.tostring(robot, encoding="unicode") + "\n")


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
    """Rewrite every mesh filename to an absolute path (:func:`resolve_mesh`)."""
    for mesh in robot.iter("mesh"):
        filename = mesh.get("filename", "")
        resolved, tried = resolve_mesh(filename, folder)
        if resolved is None:
            raise RobotError(Problem("mesh file not found", file=str(folder), value=filename,
                                     expected="a file at " + " or ".join(map(str, tried))))
        mesh.set("filename", str(resolved))


def resolve_mesh(filename: str, folder: Path) -> tuple[Path | None, list[Path]]:
    """Find the file a URDF in ``folder`` means by a mesh ``filename``.

    A relative name is relative to ``folder``. ``package://pkg/rest`` is searched for in
    ``folder`` and each folder above it, as ``pkg/rest`` inside one of them or as ``rest``
    inside a folder named ``pkg`` (a ROS package laid out as ``pkg/urdf/``, ``pkg/meshes/``).

    Returns:
        the file (``None`` when no candidate exists) and every candidate tried, in order.
    """
    name = filename.removeprefix(_FILE_PREFIX)
    if not name.startswith(_PACKAGE_PREFIX):
        path = Path(name) if Path(name).is_absolute() else folder / name
        return (path.resolve() if path.is_file() else None), [path]
    package, _, rest = name.removeprefix(_PACKAGE_PREFIX).partition("/")
    tried = []
    for root in (folder.resolve(), *folder.resolve().parents):
        tried.append(root / package / rest)
        if root.name == package:
            tried.append(root / rest)
    return next((path for path in tried if path.is_file()), None), tried


def drop_world_link(robot: ET.Element) -> None:
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
