"""Merge the links that fixed joints hold together, so that pybullet simulates fewer bodies.

pybullet's Featherstone solver pays for every link of a multibody on every substep, whether
its joint moves or not: the Panda's flange, hand and grasp target are three links that are
rigidly one piece with link 7. Merging such links into the link that carries them leaves the
robot physically the same (same collision shapes, same total mass, centre of mass and inertia
tensor of the rigid piece) and makes a substep cheaper.

pybullet can merge by itself (``URDF_MERGE_FIXED_LINKS``), but it misplaces the centre of mass
of a chain of merged links (the Panda's link 7 + hand at 86 mm instead of 134 mm along the
flange), so celltwin writes the merged description itself. Its inertials are the ones pybullet
simulates for the unmerged description, passed in by the caller, so that loading the merged
file with ``URDF_USE_INERTIA_FROM_FILE`` gives the same dynamics as loading the original one.

Every merged-away link is remembered as a :class:`RigidFrame` on the link that carries it, so
that callers can still name it (``panda_hand``) and locate it (the TCP).
"""

from __future__ import annotations

import hashlib
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
from scipy.spatial.transform import Rotation

from celltwin.robots.urdf import absolutize_meshes, parse_urdf, read_urdf
from celltwin.core.resources import cache_dir
from celltwin.core.atomic import atomic_write_text

# Bump when the merged file's content changes for the same inputs.
_MERGER_VERSION = "2"


@dataclass(frozen=True)
class LinkInertial:
    """Mass properties of one link, in that link's frame.

    Attributes:
        mass_kg: mass [kg].
        com_xyz: centre of mass [m].
        axes_quat_xyzw: orientation of the principal axes, quaternion (x, y, z, w).
        moments: principal moments of inertia about the centre of mass [kg m^2].
    """

    mass_kg: float
    com_xyz: tuple[float, float, float]
    axes_quat_xyzw: tuple[float, float, float, float]
    moments: tuple[float, float, float]


@dataclass(frozen=True)
class RigidFrame:
    """Where a merged-away link's frame sits on the link that carries it now.

    Attributes:
        link: the link it was merged into.
        xyz: its origin in ``link``'s frame [m].
        quat_xyzw: its orientation in ``link``'s frame, quaternion (x, y, z, w).
    """

    link: str
    xyz: tuple[float, float, float]
    quat_xyzw: tuple[float, float, float, float]


@dataclass(frozen=True)
class MergedUrdf:
    """A robot description with its fixed links merged.

    Attributes:
        path: the merged URDF, to load with ``URDF_USE_INERTIA_FROM_FILE``.
        merged: every merged-away link, by name.
    """

    path: Path
    merged: Mapping[str, RigidFrame]


def merge_fixed_links(name: str, urdf: Path,
                      simulated_inertials: Callable[[Path], Mapping[str, LinkInertial]],
                      salt: str = "") -> MergedUrdf:
    """Return ``urdf`` with every fixed-joint child merged into its parent, cached on disk.

    The root link is never merged away and keeps its own inertial (pybullet reports a body's
    base pose at it, and a fixed base has no mass to merge anyway).

    Args:
        name: robot model name; the first part of the cached file's name.
        urdf: the description to merge.
        simulated_inertials: returns the mass properties pybullet simulates for each link of
            ``urdf`` by link name (celltwin's robots use
            :func:`celltwin.robots.registry.simulated_inertials`); only called when the merged
            file is not cached yet.
        salt: anything else the result depends on (the pybullet version), for the cache key.

    Raises:
        RobotError: the description cannot be read.
    """
    text = read_urdf(urdf)
    robot = parse_urdf(text, urdf)
    plan = _plan(robot, urdf)
    merged = {link: RigidFrame(survivor, tuple(transform[:3, 3].tolist()),
                               tuple(Rotation.from_matrix(transform[:3, :3]).as_quat().tolist()))
              for link, (survivor, transform) in plan.items()}
    digest = hashlib.sha256("\0".join([_MERGER_VERSION, str(urdf.resolve()), text, salt])
                            .encode("utf-8")).hexdigest()[:16]
    target = cache_dir("robots") / f"{name}-merged-{digest}.urdf"
    if not target.exists():
        inertials = simulated_inertials(urdf)
        absolutize_meshes(robot, urdf.parent)
        _merge(robot, plan, inertials)
        ET.indent(robot)
        atomic_write_text(target, f"<?xml version=\"1.0\"?>\n<!-- {urdf} with its fixed links "
                          "merged by celltwin; do not edit, it is rebuilt from it -->\n"
                          + ET.tostring(robot, encoding="unicode") + "\n")
    return MergedUrdf(target, merged)


# --- internals -----------------------------------------------------------------------------


def _plan(robot: ET.Element, urdf: Path) -> dict[str, tuple[str, np.ndarray]]:
    """Map every link to be merged to (surviving link, 4x4 pose of its frame in that link).

    A link merges into the link carrying it only if both have the same contact parameters:
    pybullet keeps one set per link, so a rubber-padded finger welded to a bare hand stays a
    link of its own (and a second finger welded to it merges into it).
    """
    parent_joint = {joint.find("child").get("link"): joint for joint in robot.findall("joint")}
    links = {element.get("name"): element for element in robot.findall("link")}
    plan: dict[str, tuple[str, np.ndarray]] = {}

    def resolve(link: str) -> tuple[str, np.ndarray]:
        if link in plan:
            return plan[link]
        joint = parent_joint.get(link)
        if joint is None or joint.get("type") != "fixed":
            return link, np.eye(4)
        survivor, transform = resolve(joint.find("parent").get("link"))
        if _contact(links[link]) != _contact(links[survivor]):
            return link, np.eye(4)
        return survivor, transform @ origin_matrix(joint)

    for link in links:
        survivor, transform = resolve(link)
        if survivor != link:
            plan[link] = (survivor, transform)
    return plan


def _contact(link: ET.Element) -> tuple | None:
    """A link's contact parameters as comparable values: layout and attribute order aside."""
    def canonical(element: ET.Element) -> tuple:
        return (element.tag, tuple(sorted(element.attrib.items())),
                tuple(canonical(child) for child in element))
    contact = link.find("contact")
    return None if contact is None else canonical(contact)


def _merge(robot: ET.Element, plan: Mapping[str, tuple[str, np.ndarray]],
           inertials: Mapping[str, LinkInertial]) -> None:
    links = {element.get("name"): element for element in robot.findall("link")}
    root = _root(robot, links)
    # The pieces that make up each surviving link, each with its pose in that link.
    pieces: dict[str, list[tuple[LinkInertial, np.ndarray]]] = {}
    for link in links:
        survivor, transform = plan.get(link, (link, np.eye(4)))
        if link in inertials:
            pieces.setdefault(survivor, []).append((inertials[link], transform))
    for link, (survivor, transform) in plan.items():
        for tag in ("visual", "collision"):
            for element in links[link].findall(tag):
                set_origin(element, transform @ origin_matrix(element))
                links[survivor].append(element)
    for joint in list(robot.findall("joint")):
        child, parent = joint.find("child").get("link"), joint.find("parent")
        if child in plan:
            robot.remove(joint)
        elif parent.get("link") in plan:
            survivor, transform = plan[parent.get("link")]
            parent.set("link", survivor)
            set_origin(joint, transform @ origin_matrix(joint))
    for link in plan:
        robot.remove(links[link])
    for link, parts in pieces.items():
        if link != root:
            _set_inertial(links[link], _combine(parts))


def _root(robot: ET.Element, links: Mapping[str, ET.Element]) -> str:
    children = {joint.find("child").get("link") for joint in robot.findall("joint")}
    return next(name for name in links if name not in children)


def _combine(parts: list[tuple[LinkInertial, np.ndarray]]) -> LinkInertial:
    """Mass properties of rigidly joined pieces, each given in its own frame placed by a pose."""
    if len(parts) == 1 and np.array_equal(parts[0][1], np.eye(4)):
        return parts[0][0]  # nothing merged into this link: keep pybullet's numbers exactly
    masses, centres, tensors = [], [], []
    for inertial, transform in parts:
        rotation = transform[:3, :3]
        axes = rotation @ Rotation.from_quat(inertial.axes_quat_xyzw).as_matrix()
        masses.append(inertial.mass_kg)
        centres.append(rotation @ np.asarray(inertial.com_xyz) + transform[:3, 3])
        tensors.append(axes @ np.diag(inertial.moments) @ axes.T)
    total = float(sum(masses))
    if total <= 0.0:
        return LinkInertial(0.0, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0))
    centre = sum(m * c for m, c in zip(masses, centres)) / total
    tensor = np.zeros((3, 3))
    for mass, own_centre, own_tensor in zip(masses, centres, tensors):
        offset = own_centre - centre  # parallel axis theorem
        tensor += own_tensor + mass * (offset @ offset * np.eye(3) - np.outer(offset, offset))
    moments, axes = np.linalg.eigh(0.5 * (tensor + tensor.T))
    # eigh sorts by moment; put each principal axis next to the link axis it is closest to,
    # so that a tensor that is (nearly) diagonal keeps (nearly) the link's own axes.
    order = np.argmax(np.abs(axes), axis=1)
    if len(set(order.tolist())) == 3:
        axes, moments = axes[:, order], moments[order]
    axes = axes * np.where(np.diag(axes) < 0, -1.0, 1.0)
    if np.linalg.det(axes) < 0:
        axes[:, 2] = -axes[:, 2]
    return LinkInertial(total, tuple(centre.tolist()),
                        tuple(Rotation.from_matrix(axes).as_quat().tolist()),
                        tuple(np.maximum(moments, 0.0).tolist()))


def origin_matrix(element: ET.Element) -> np.ndarray:
    """Return the 4x4 pose of an element's ``<origin>`` (identity when it has none)."""
    transform = np.eye(4)
    origin = element.find("origin")
    if origin is not None:
        transform[:3, 3] = _floats(origin.get("xyz", "0 0 0"))
        # URDF rpy: roll about x, then pitch about y, then yaw about z, all fixed axes.
        transform[:3, :3] = Rotation.from_euler("xyz", _floats(origin.get("rpy", "0 0 0")))\
            .as_matrix()
    return transform


def set_origin(element: ET.Element, transform: np.ndarray) -> None:
    origin = element.find("origin")
    if origin is None:
        origin = ET.Element("origin")
        element.insert(0, origin)
    origin.set("xyz", _text(transform[:3, 3]))
    origin.set("rpy", _text(_rpy(Rotation.from_matrix(transform[:3, :3]))))


def _set_inertial(link: ET.Element, inertial: LinkInertial) -> None:
    old = link.find("inertial")
    if old is not None:
        link.remove(old)
    element = ET.Element("inertial")
    rpy = _rpy(Rotation.from_quat(inertial.axes_quat_xyzw))
    ET.SubElement(element, "origin", xyz=_text(inertial.com_xyz), rpy=_text(rpy))
    ET.SubElement(element, "mass", value=repr(float(inertial.mass_kg)))
    ixx, iyy, izz = (repr(float(moment)) for moment in inertial.moments)
    ET.SubElement(element, "inertia", ixx=ixx, ixy="0", ixz="0", iyy=iyy, iyz="0", izz=izz)
    link.insert(0, element)


def _rpy(rotation: Rotation) -> np.ndarray:
    """Return URDF roll, pitch, yaw [rad] of a rotation."""
    with warnings.catch_warnings():
        # At pitch +-90 deg (the Panda fingers' principal axes) roll and yaw share one axis;
        # scipy then warns and puts all of it in roll, which is the same rotation.
        warnings.simplefilter("ignore", UserWarning)
        return rotation.as_euler("xyz")


def _floats(text: str) -> np.ndarray:
    return np.array([float(value) for value in text.split()], dtype=float)


def _text(values) -> str:
    return " ".join(repr(float(value)) for value in values)
