"""Checks of a robot file against its URDF: joint and link names, the chain, limits, home, meshes.

Each check returns findings located in the robot file (``arm_joints[2]``, ``tcp.link``), so that
:mod:`celltwin.robots.description` reports them with their lines, all at once; meshes are
located in the URDF. A check that depends on names another check found wrong is skipped, so one
mistake is one problem.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from celltwin.core.errors import Problem, did_you_mean, one_of
from celltwin.core.problems import Finding
from celltwin.robots.urdf import JointLimits, resolve_mesh
from celltwin.robots.urdf_info import UrdfInfo

# What pybullet's URDF importer loads (its UrdfParser: STL, Wavefront OBJ, COLLADA).
MESH_SUFFIXES = (".stl", ".obj", ".dae")
# A continuous joint has no limits; celltwin's controllers clip to limits, so it gets two turns.
CONTINUOUS_LIMIT_RAD = 2.0 * math.pi
_ARM_TYPES = ("revolute", "continuous")
# Home angles are written in degrees; a value on a limit must not fail by a rounding.
_LIMIT_SLACK_RAD = 1e-9


def check_against_urdf(spec, urdf: UrdfInfo, gripper: UrdfInfo | None,
                       ) -> tuple[list[Finding], dict[str, JointLimits]]:
    """Check a parsed robot file (``RobotFile``) against its URDF (and the gripper's).

    Returns:
        the findings, and the limits each arm joint is simulated with.
    """
    findings = _arm_joint_findings(spec, urdf)
    arm_ok = not findings
    for name in spec.joint_limits:
        if name not in spec.arm_joints:
            findings.append(Finding(("joint_limits", name), f"'{name}' is not an arm joint"
                                    + did_you_mean(name, spec.arm_joints), value=name,
                                    expected=one_of(spec.arm_joints), at_key=True))
    findings += _end_effector_findings(spec, urdf, gripper)
    tcp_findings, end_link = _tcp_findings(spec, urdf, gripper)
    findings += tcp_findings
    limits: dict[str, JointLimits] = {}
    if arm_ok:
        findings += _chain_findings(spec, urdf, end_link)
        limit_findings, limits = _limits(spec, urdf)
        findings += limit_findings
        if not limit_findings:
            findings += _home_findings(spec, limits)
    return findings, limits


def mesh_problems(urdf: UrdfInfo) -> list[Problem]:
    """One problem per mesh file the URDF names that is missing or that pybullet cannot load."""
    problems, seen = [], set()
    for mesh in urdf.meshes:
        if mesh.filename in seen:
            continue
        seen.add(mesh.filename)
        where = dict(file=str(urdf.path), line=mesh.line, path=f"link[{mesh.link}]",
                     value=mesh.filename)
        resolved, tried = resolve_mesh(mesh.filename, urdf.path.parent)
        if resolved is None:
            package, _, rest = mesh.filename.partition("package://")[2].partition("/")
            expected = (f"a folder '{package}' holding '{rest}' in {urdf.path.parent} or a "
                        "folder above it" if mesh.filename.startswith("package://")
                        else f"a file at {tried[0]}")
            problems.append(Problem(f"mesh file not found: '{mesh.filename}'", **where,
                                    expected=expected))
        elif resolved.suffix.lower() not in MESH_SUFFIXES:
            problems.append(Problem(f"pybullet cannot load '{resolved.suffix}' meshes", **where,
                                    expected="a file ending in " + ", ".join(MESH_SUFFIXES)))
    return problems


def _arm_joint_findings(spec, urdf: UrdfInfo) -> list[Finding]:
    findings: list[Finding] = []
    moving = [name for name, joint in urdf.joints.items() if joint.type in _ARM_TYPES]
    first: dict[str, int] = {}
    for index, name in enumerate(spec.arm_joints):
        loc = ("arm_joints", index)
        joint = urdf.joints.get(name)
        if name in first:
            findings.append(Finding(loc, f"joint '{name}' is listed twice; first at {{first}}",
                                    value=name, expected="each arm joint once",
                                    first=("arm_joints", first[name])))
        elif joint is None:
            findings.append(Finding(loc, f"the URDF has no joint '{name}'"
                                    + did_you_mean(name, moving), value=name,
                                    expected=one_of(moving) if moving
                                    else "a revolute joint of the URDF (it has none)"))
        elif joint.type not in _ARM_TYPES:
            findings.append(Finding(loc, f"joint '{name}' is {joint.type or 'of no type'}",
                                    value=name, expected="a revolute or continuous joint"))
        first.setdefault(name, index)
    return findings


def _end_effector_findings(spec, urdf: UrdfInfo, gripper: UrdfInfo | None) -> list[Finding]:
    effector, findings = spec.end_effector, []
    if effector.type in ("parallel_jaw", "suction"):  # celltwin's own, bolted to a link
        if effector.mount_link not in urdf.links:
            findings.append(_no_link(("end_effector", "mount_link"), effector.mount_link,
                                     urdf.links))
        clashes = sorted((set(urdf.links) | set(urdf.joints))
                         & (set(gripper.links) | set(gripper.joints)))
        if clashes:
            findings.append(Finding(("end_effector", "type"), "the URDF already has links or "
                                    f"joints named like the {effector.type} gripper's: "
                                    f"{', '.join(clashes)}",
                                    value=clashes, expected="distinct link and joint names"))
        return findings
    prismatic = [name for name, joint in urdf.joints.items()
                 if joint.type == "prismatic" and name not in spec.arm_joints]
    fingers_ok = True
    for index, name in enumerate(effector.finger_joints):
        loc = ("end_effector", "finger_joints", index)
        joint = urdf.joints.get(name)
        if joint is None or joint.type != "prismatic":
            fingers_ok = False
            what = (f"the URDF has no joint '{name}'{did_you_mean(name, prismatic)}"
                    if joint is None else f"joint '{name}' is {joint.type}")
            findings.append(Finding(loc, what, value=name, expected=(
                "a prismatic joint whose position is half the opening; "
                + (one_of(prismatic) if prismatic else "the URDF has none"))))
    closed, opened = effector.width_m
    if closed >= opened:
        findings.append(Finding(("end_effector", "width_m"), "the closed width is not below "
                                "the open one", value=list(effector.width_m),
                                expected="[closed, open] with closed < open [m]"))
    elif fingers_ok:
        for name in effector.finger_joints:
            joint = urdf.joints[name]
            if joint.upper is not None and opened / 2 > joint.upper + _LIMIT_SLACK_RAD:
                findings.append(Finding(("end_effector", "width_m", 1),
                                        f"finger joint '{name}' opens only to "
                                        f"{2 * joint.upper:g} m", value=opened,
                                        expected=f"at most {2 * joint.upper:g} m"))
                break
    return findings


def _tcp_findings(spec, urdf: UrdfInfo,
                  gripper: UrdfInfo | None) -> tuple[list[Finding], str | None]:
    """Check the TCP link; return the findings and the arm link that carries the TCP."""
    effector = spec.end_effector
    mount = getattr(effector, "mount_link", None)  # celltwin's gripper or cup
    mount = mount if mount in urdf.links else None
    if spec.tcp is None:
        if effector.type == "own":
            return [Finding(("tcp",), "a robot with its own fingers needs a 'tcp': the link "
                            "(and offset) of the point between the fingertips",
                            expected="a mapping with keys link, xyz_m, rpy_deg")], None
        return [], mount  # the gripper's own tcp
    link = spec.tcp.link
    if link in urdf.links:
        return [], link
    if gripper is not None and link in gripper.links:
        return [], mount
    known = set(urdf.links) | set(gripper.links if gripper is not None else ())
    return [_no_link(("tcp", "link"), link, known)], None


def _chain_findings(spec, urdf: UrdfInfo, end_link: str | None) -> list[Finding]:
    """The arm joints must be the moving joints from the base to the TCP, in order."""
    if end_link is None:  # no valid TCP: check the arm up to its deepest joint
        end_link = max((urdf.joints[name].child for name in spec.arm_joints),
                       key=lambda link: len(urdf.joints_above(link)))
    chain = urdf.joints_above(end_link)
    last = spec.arm_joints[-1]
    if spec.tcp is not None and last not in [joint.name for joint in chain]:
        return [Finding(("tcp", "link"), f"link '{spec.tcp.link}' is not moved by the last "
                        f"arm joint '{last}'", value=spec.tcp.link,
                        expected=f"a link carried by '{last}'")]
    moving = [joint.name for joint in chain if joint.moves]
    if moving == list(spec.arm_joints):
        return []
    return [Finding(("arm_joints",), "the joints that move the TCP, base to wrist, are "
                    + (", ".join(moving) or "none"), value=list(spec.arm_joints),
                    expected="exactly those (revolute), in that order")]


def _limits(spec, urdf: UrdfInfo) -> tuple[list[Finding], dict[str, JointLimits]]:
    findings, limits = [], {}
    for index, name in enumerate(spec.arm_joints):
        joint = urdf.joints[name]
        override = spec.joint_limits.get(name)
        loc = ("joint_limits", name) if override is not None else ("arm_joints", index)
        continuous = joint.type == "continuous"
        values = {
            "lower": -CONTINUOUS_LIMIT_RAD if continuous else joint.lower,
            "upper": CONTINUOUS_LIMIT_RAD if continuous else joint.upper,
            "effort": joint.effort, "velocity": joint.velocity}
        if override is not None:
            for key, given in (("lower", override.lower_deg), ("upper", override.upper_deg),
                               ("effort", override.effort_nm),
                               ("velocity", override.velocity_deg_s)):
                if given is not None:
                    values[key] = given if key == "effort" else math.radians(given)
        missing = [key for key, value in values.items() if value is None
                   or (key in ("effort", "velocity") and value <= 0)]
        if missing:
            keys = {"lower": "lower_deg", "upper": "upper_deg", "effort": "effort_nm",
                    "velocity": "velocity_deg_s"}
            findings.append(Finding(loc, f"joint '{name}' has no {' or '.join(missing)} limit "
                                    "in the URDF", value=name,
                                    expected=f"<limit> in the URDF, or joint_limits.{name}."
                                    + f", joint_limits.{name}.".join(keys[k] for k in missing)))
        elif values["lower"] >= values["upper"]:
            findings.append(Finding(loc, f"joint '{name}': lower limit "
                                    f"{math.degrees(values['lower']):g} deg is not below the "
                                    f"upper {math.degrees(values['upper']):g} deg",
                                    value=[values["lower"], values["upper"]],
                                    expected="lower < upper"))
        else:
            limits[name] = JointLimits(**values)
    return findings, limits


def _home_findings(spec, limits: Mapping[str, JointLimits]) -> list[Finding]:
    if len(spec.home_deg) != len(spec.arm_joints):
        return [Finding(("home_deg",), f"{len(spec.home_deg)} angles given, but arm_joints lists "
                        f"{len(spec.arm_joints)}", value=list(spec.home_deg),
                        expected=f"a list of {len(spec.arm_joints)} angles [deg]")]
    findings = []
    for index, (name, angle) in enumerate(zip(spec.arm_joints, spec.home_deg)):
        limit = limits[name]
        if not (limit.lower - _LIMIT_SLACK_RAD <= math.radians(angle)
                <= limit.upper + _LIMIT_SLACK_RAD):
            low, high = math.degrees(limit.lower), math.degrees(limit.upper)
            findings.append(Finding(("home_deg", index), f"{angle:g} deg is outside the limits "
                                    f"of joint '{name}'", value=angle,
                                    expected=f"an angle in [{low:.6g}, {high:.6g}] deg"))
    return findings


def _no_link(loc, name: str, links) -> Finding:
    return Finding(loc, f"the URDF has no link '{name}'{did_you_mean(name, links)}", value=name,
                   expected=one_of(links) if links else "a link of the URDF")
