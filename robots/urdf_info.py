"""What a URDF holds, with the line of every element: links, joints and their limits, meshes.

Robot files (:mod:`celltwin.robots.description`) are checked against the URDF they name, and
each problem found there points at its line; ElementTree keeps no lines, so the file is read
with expat, which does. Only what celltwin needs is read: no kinematics, no inertia.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from xml.parsers import expat

from celltwin.core.errors import Problem
from celltwin.robots.errors import RobotError

MOVING_TYPES = ("revolute", "continuous", "prismatic")


@dataclass(frozen=True)
class UrdfJoint:
    """One ``<joint>`` of a URDF.

    Attributes:
        name: the joint's name.
        type: ``revolute``, ``continuous``, ``prismatic``, ``fixed``, ...
        parent: the parent link's name.
        child: the child link's name.
        lower: lower position limit [rad or m], ``None`` when the URDF gives none.
        upper: upper position limit [rad or m], ``None`` when the URDF gives none.
        effort: effort limit [N m or N], ``None`` when the URDF gives none.
        velocity: velocity limit [rad/s or m/s], ``None`` when the URDF gives none.
        line: its line in the file.
    """

    name: str
    type: str
    parent: str
    child: str
    lower: float | None
    upper: float | None
    effort: float | None
    velocity: float | None
    line: int

    @property
    def moves(self) -> bool:
        """Whether the joint is one a motor drives (revolute, continuous, prismatic)."""
        return self.type in MOVING_TYPES


@dataclass(frozen=True)
class UrdfMesh:
    """A mesh a link's visual or collision geometry names.

    Attributes:
        filename: as written in the URDF (``package://arm/meshes/base.stl``).
        link: the link it belongs to.
        line: its line in the file.
    """

    filename: str
    link: str
    line: int


@dataclass(frozen=True)
class UrdfInfo:
    """The parts of a URDF a robot file refers to.

    Attributes:
        path: the URDF file.
        links: link names with their lines.
        joints: joints by name.
        meshes: every mesh reference, in file order.
    """

    path: Path
    links: dict[str, int]
    joints: dict[str, UrdfJoint]
    meshes: tuple[UrdfMesh, ...]

    def parent_joint(self) -> dict[str, UrdfJoint]:
        """The joint that carries each link, by child link name."""
        return {joint.child: joint for joint in self.joints.values()}

    def joints_above(self, link: str) -> list[UrdfJoint]:
        """The joints from the root down to ``link``, root first."""
        carried_by, chain, seen = self.parent_joint(), [], set()
        while link in carried_by and link not in seen:  # `seen`: a loop is no tree
            seen.add(link)
            chain.append(carried_by[link])
            link = carried_by[link].parent
        return chain[::-1]


def read_urdf_info(path: Path) -> UrdfInfo:
    """Read ``path`` as a URDF.

    Raises:
        RobotError: the file cannot be read, is not XML, or is not a URDF (with its line).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RobotError(Problem(f"cannot read the URDF: {reason}", file=str(path),
                                 expected="a readable UTF-8 URDF file")) from None
    root, lines = parse_with_lines(text, path)
    if root.tag != "robot":
        raise RobotError(Problem("not a URDF", file=str(path), line=lines[root], value=root.tag,
                                 expected="a <robot> root element"))
    links = {link.get("name", ""): lines[link] for link in root.findall("link")}
    joints, problems = {}, []
    for element in root.findall("joint"):
        parent, child = element.find("parent"), element.find("child")
        name = element.get("name", "")
        if parent is None or child is None or not parent.get("link") or not child.get("link"):
            problems.append(Problem(f"joint '{name}' has no parent or child link",
                                    file=str(path), line=lines[element],
                                    expected="<parent link=...> and <child link=...>"))
            continue
        limit = element.find("limit")
        values = {key: _number(limit, key, path, lines) for key in
                  ("lower", "upper", "effort", "velocity")} if limit is not None else {}
        joints[name] = UrdfJoint(name, element.get("type", ""), parent.get("link"),
                                 child.get("link"), values.get("lower"), values.get("upper"),
                                 values.get("effort"), values.get("velocity"), lines[element])
    for joint in joints.values():
        for link in (joint.parent, joint.child):
            if link not in links:
                problems.append(Problem(f"joint '{joint.name}' names link '{link}', which the "
                                        "URDF does not define", file=str(path), line=joint.line,
                                        value=link, expected="a <link> of this URDF"))
    if problems:
        raise RobotError(problems)
    meshes = tuple(UrdfMesh(mesh.get("filename", ""), link.get("name", ""), lines[mesh])
                   for link in root.findall("link") for mesh in link.iter("mesh"))
    return UrdfInfo(path, links, joints, meshes)


def parse_with_lines(text: str, path: Path) -> tuple[ET.Element, dict[ET.Element, int]]:
    """Parse XML into ElementTree elements and the line each starts on.

    Raises:
        RobotError: the text is not well-formed XML (with the line expat stopped at).
    """
    parser = expat.ParserCreate()
    lines: dict[ET.Element, int] = {}
    stack: list[ET.Element] = []
    roots: list[ET.Element] = []

    def start(tag: str, attributes: dict) -> None:
        element = ET.Element(tag, attributes)
        lines[element] = parser.CurrentLineNumber
        (stack[-1].append(element) if stack else roots.append(element))
        stack.append(element)

    def end(_tag: str) -> None:
        stack.pop()

    parser.StartElementHandler, parser.EndElementHandler = start, end
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        raise RobotError(Problem(f"not valid XML: {expat.errors.messages[exc.code]}",
                                 file=str(path), line=exc.lineno,
                                 expected="a URDF (an XML file)")) from None
    return roots[0], lines


def _number(limit: ET.Element, key: str, path: Path, lines) -> float | None:
    text = limit.get(key)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise RobotError(Problem(f"limit {key} is not a finite number", file=str(path),
                                 line=lines[limit], value=text, expected="a number"))
    return value
